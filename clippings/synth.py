"""The built-in synthetic reprint archive: the embedded default data of the demo, tests and benchmarks.

A *story* is one clipping as a wire service sent it: a photo-like image (a procedural scene, a portrait, a
map or a headline block) and a caption. Each story is reprinted by a heavy-tailed number of papers (many
singletons, most groups of 2-10, a few of 30+). A reprint is a new scan of the image (crop, scale, small
rotation, contrast, halftone or dither, noise, blur, JPEG artefacts, mostly grayscale) and a new OCR of the
caption (rn/m, l/1/I, O/0, e/c, cl/d confusions; dropped and merged words; broken hyphenation; truncation;
editorial datelines and tails). Confounders make single modalities fail the way they do on real archives:
the same photo reused by a different story (defeats image-only), the same formulaic caption template with
different names and photos (defeats low-n Jaccard and text-only), near-identical portraits of different
people (defeats image-only).

Determinism: every random choice comes from a numpy Generator seeded by (seed, story[, reprint]); there is
no global RNG and no timestamp anywhere, so the same seed gives byte-identical Parquet files.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from clippings.archive import ARCHIVE_SCHEMA, join, write_dataset
from clippings.errors import BadInput

SPLITS = ("unlabelled", "train", "val", "test")
SPLIT_FRACTIONS = (0.40, 0.30, 0.15, 0.15)
BASE_SIZE = 128
KINDS = ("portrait", "scene", "map", "headline")
KIND_P = (0.35, 0.30, 0.15, 0.20)
PHOTO_REUSE_P = 0.12  # a story reuses another story's photo (same split), with its own caption
FOLLOW_UP_P = 0.15  # a story is a follow-up of another: same people, places and event, new wording
TWIN_PORTRAIT_P = 0.15  # a portrait story gets a near-copy of another story's portrait
FORMULAIC_P = 0.30  # a story uses a fixed-wording template family (engagements, obituaries, ...)

# ---------------------------------------------------------------- word lists

FIRST = (
    "John Mary William Helen James Margaret George Dorothy Charles Ruth Robert Mildred Joseph Frances Frank "
    "Edith Edward Alice Thomas Florence Walter Evelyn Harold Marie Henry Irene Paul Louise Arthur Martha Albert "
    "Grace Raymond Lillian Harry Anna Clarence Gladys Fred Ethel Richard Virginia Roy Catherine Louis Josephine "
    "Earl Hazel Ralph Doris Carl Elizabeth Howard Bernice Herbert Esther Leonard Marjorie Ernest Agnes Eugene "
    "Pauline Lawrence Vera Kenneth Lucille Samuel Beatrice Norman Eleanor Chester Rose Elmer Viola Francis Edna"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin Jackson "
    "Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker "
    "Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards Collins Stewart Morris Murphy "
    "Cook Rogers Morgan Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks "
    "Bennett Gray Hughes Price Sanders Myers Long Ross Foster Powell Jenkins Perry Russell Sullivan Fisher "
    "Henderson Coleman Simmons Patterson Jordan Reynolds Hamilton Graham Wallace Gibson Ellis Hoffman Schultz "
    "Kowalski Nowak Lindqvist Olsen Gallagher Donnelly Moretti Castillo Fontaine Brennan Whitfield Ashby"
).split()
CITY_STATE = (
    "Chicago Illinois|Boston Massachusetts|Denver Colorado|Omaha Nebraska|Dallas Texas|Atlanta Georgia|"
    "Seattle Washington|Portland Oregon|Tulsa Oklahoma|Toledo Ohio|Dayton Ohio|Akron Ohio|Memphis Tennessee|"
    "Nashville Tennessee|Richmond Virginia|Norfolk Virginia|Topeka Kansas|Wichita Kansas|Des Moines Iowa|"
    "Duluth Minnesota|St. Paul Minnesota|Madison Wisconsin|Milwaukee Wisconsin|Detroit Michigan|Flint Michigan|"
    "Albany New York|Buffalo New York|Trenton New Jersey|Newark New Jersey|Hartford Connecticut|Providence Rhode "
    "Island|Baltimore Maryland|Raleigh North Carolina|Charleston South Carolina|Savannah Georgia|Mobile Alabama|"
    "Birmingham Alabama|Jackson Mississippi|Little Rock Arkansas|Shreveport Louisiana|Austin Texas|El Paso Texas|"
    "Phoenix Arizona|Tucson Arizona|Reno Nevada|Boise Idaho|Helena Montana|Fargo North Dakota|Sioux Falls South "
    "Dakota|Cheyenne Wyoming|Santa Fe New Mexico|Sacramento California|Fresno California|San Diego California|"
    "Spokane Washington|Lincoln Nebraska|Springfield Illinois|Peoria Illinois|Evansville Indiana|Gary Indiana|"
    "Louisville Kentucky|Lexington Kentucky|Scranton Pennsylvania|Erie Pennsylvania|Wheeling West Virginia"
).split("|")
# Composed names. A real archive names hundreds of thousands of people and thousands of towns; with only the
# common lists above, every name n-gram would be shared by thousands of captions at 100k rows, and Jaccard (and
# text models) would see unrelated stories as reprints. Names are built from fixed part tables (no RNG), so
# a seed still reproduces the archive; a quarter of the draws use the common lists, so frequent names exist.
_SUR_HEAD = (
    "Ab Ash Bal Bar Beck Bell Black Bran Brook Burk Cal Carl Chap Ches Cor Cran Dal Dav Dunn Eck Ell Fair Fen "
    "Fitz Ful Gar Gil Glad Gold Gor Hal Ham Hart Haw Hol Hum Ing Jen Kell Ken Kirk Lam Lang Lind Lock Mal Mar "
    "Mer Mil Mon Nor Oak Or Pem Pen Pres Quin Rad Ram Red Rich Ros Rut Sal Sand Sher Stan Stock Strat Sum Tal "
    "Thorn Tren Val Vaughn Wad Wal War Well Whit Wil Win Wolf Wood Yar"
).split()
_SUR_TAIL = (
    "ard berg bert bury by combe dale den ell er ett field ford gan gate ham hurst ing ington ins kin land ler "
    "ley ling low man mann more ner ney ning ridge sen ski son stead stein ston ter ton vale well wick win wood "
    "worth"
).split()
_FIRST_HEAD = "Al Ber Cal Del El Fer Ger Hil Is Jo La Le Lo Ma Mel Na Or Ro Ros Sel Ter Vi Wil".split()
_FIRST_TAIL = "bert don fred ma mer na ra rence ton vin wood lie ette ine".split()
_TOWN_HEAD = (
    "Ash Bay Bear Beech Bell Birch Black Bloom Brook Cedar Clear Clay Cold Crown Deer Eagle East Elm Fair Fox "
    "Glen Gold Green Hazel Hill Holly Lake Laurel Lime Maple Marsh Mill Moss New North Oak Pine Pleasant Plum "
    "Red River Rock Rose Sand Silver Spring Stone Sugar Sun Walnut West White Willow Wolf"
).split()
_TOWN_TAIL = "boro brook burg dale field ford grove ham haven land mont port ridge ton vale view ville water wood".split()
COMPOSED_LAST = tuple(h + t for h in _SUR_HEAD for t in _SUR_TAIL)
COMPOSED_FIRST = tuple(h + t for h in _FIRST_HEAD for t in _FIRST_TAIL)
COMPOSED_TOWNS = tuple(h + t for h in _TOWN_HEAD for t in _TOWN_TAIL)
COMMON_P = 0.25  # a name is drawn from the common lists; otherwise from the composed ones

ORGS = (
    "State Highway Commission|Chamber of Commerce|American Legion|Red Cross|Federal Power Commission|"
    "Board of Education|Rotary Club|Farm Bureau|Interstate Commerce Commission|National Guard|"
    "Bar Association|Medical Society|Steel Workers Union|Railroad Brotherhood|Women's Club|Historical Society|"
    "Public Service Commission|Civil Aeronautics Board|Atomic Energy Commission|Weather Bureau|Park Service|"
    "Reclamation Bureau|Tariff Commission|Parent-Teacher Association|Kiwanis Club|Garden Club|"
    "Community Chest|Boy Scouts|Girl Scouts|Veterans Administration|Labor Department|Navy Department|"
    "War Department|Treasury Department|Supreme Court|Senate Finance Committee|House Rules Committee|"
    "Securities Commission|Coal Operators Association|Teachers College"
).split("|")
ROLES = (
    "president|secretary|chairman|director|treasurer|commissioner|superintendent|governor|mayor|senator|"
    "congressman|judge|general manager|chief engineer|vice president|executive secretary|dean|coach|"
    "ambassador|admiral|colonel|bishop|professor|inspector"
).split("|")
TITLES = ("Mr.", "Mrs.", "Miss", "Dr.", "Gov.", "Sen.", "Rep.", "Judge", "Gen.", "Col.", "Prof.", "Rev.")
EVENTS = (
    "county fair|flood|tornado|parade|strike|dedication|convention|rodeo|blizzard|bridge opening|airshow|"
    "harvest festival|train wreck|fire|dam completion|dust storm|regatta|track meet|homecoming|ice jam|"
    "mine rescue|bond rally|centennial|oil strike|circus|auto race|drought|earthquake|eclipse|launching"
).split("|")
VERBS = (
    "was named|was elected|was appointed|resigned|was honored|spoke|arrived|testified|announced plans|"
    "was nominated|took office|retired|was re-elected|was promoted|was sworn in|accepted the post|"
    "returned home|was welcomed|was decorated|was injured"
).split("|")
THINGS = (
    "highway program|school bond issue|new hospital|water project|tax measure|power plant|airport expansion|"
    "relief fund|housing plan|farm bill|rail merger|wage agreement|budget|peace plan|treaty|trade pact|"
    "flood control plan|reforestation project|library addition|stadium"
).split("|")
CROWD = ("persons", "spectators", "residents", "visitors", "delegates", "workers", "farmers", "students")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January February March April May June July August September October November December").split()
MASTHEADS = ("Herald", "Gazette", "Courier", "Tribune", "Evening Star", "Daily News", "Journal", "Sentinel",
             "Register", "Times", "Post", "Enterprise", "Leader", "Record", "Advocate", "Bulletin")
WIRES = ("AP", "UP", "INS", "NEA", "Wide World", "Acme")

EXTRA = (
    "The {org} will meet again {weekday} to consider the {thing}.",
    "He is a native of {city2} and a graduate of the state university.",
    "She has been active in {org2} work for {num} years.",
    "Officials said the {thing} would cost about ${money} million.",
    "Approximately {num} {crowd} attended the ceremonies.",
    "The announcement was made by {first2} {last2}, {role2} of the {org2}.",
    "{last} succeeds {first2} {last2}, who retired last {month}.",
    "Work on the {thing} is expected to begin in {month}.",
    "The vote was {num} to {num2}.",
    "Friends said {last} had been in poor health since {month}.",
    "Damage was estimated at ${money},000 by {city} authorities.",
    "The {event} was the largest in the history of {city}.",
    "Photo shows {last} at {weekday}'s session of the {org}.",
    "A reception in honor of {last} will be held at the {org2} hall.",
    "Traffic was halted for {num} hours on the main highway near {city2}.",
    "Both houses of the legislature approved the {thing} without debate.",
    "The family moved to {city} from {city2} in {year}.",
    "{num} members of the {org2} attended the luncheon.",
    "Rain delayed the opening of the {event} for {num2} hours.",
    "Federal funds will pay half the cost of the {thing}.",
)

# Formulaic families: the wording is fixed, only the slots differ (a real archive's "same template" confounder).
FORMULAIC = {
    "portrait": (
        "Miss {first} {last}, daughter of Mr. and Mrs. {first2} {last} of {city}, whose engagement to {first3} "
        "{last3} has been announced. The wedding will take place in {month}.",
        "{title} {first} {last}, {age}, {role} of the {org} for many years, died {weekday} at his home in "
        "{city}. Funeral services will be held {weekday2}.",
        "{first} {last} of {city}, who has been appointed {role} of the {org}. He succeeds {first2} {last2}.",
        "Mrs. {first} {last} of {city}, newly elected president of the state {org}, will preside at the "
        "convention in {city2} in {month}.",
    ),
    "scene": (
        "Scene at {city} as the {event} drew a crowd of {num},000 {crowd} on {weekday}. The {org} sponsored "
        "the program.",
        "{city} high school defeated {city2} {num} to {num2} in the state championship game {weekday} night.",
    ),
    "map": (
        "Map locates {city}, {state}, where the {event} struck {weekday}. Arrow points to the area of heaviest "
        "damage.",
        "Shaded area on map shows the region of {state} covered by the {thing} approved {weekday} by the {org}.",
    ),
    "headline": (
        "The {org} {verb} {weekday} on the {thing}, {first} {last}, {role}, told reporters in {city}.",
    ),
}
LEADS = {
    "portrait": (
        "{title} {first} {last}, {role} of the {org}, {verb} {weekday} in {city}.",
        "{first} {last} of {city}, {state}, {verb} {role} of the {org} at a meeting {weekday}.",
        "{title} {first} {last}, {age}, {verb} at the annual session of the {org} in {city}.",
        "Pictured is {first} {last}, {role}, who {verb} by the {org} this week.",
    ),
    "scene": (
        "{num},000 {crowd} watched the {event} at {city}, {state}, on {weekday}.",
        "The {event} at {city} brought out {num},000 {crowd} as the {org} opened its {thing} drive.",
        "Workmen at {city} cleared wreckage {weekday} after the {event} swept the {state} town.",
        "A view of the {event} near {city}, where the {org} is directing relief.",
    ),
    "map": (
        "Map shows the route of the proposed {thing} from {city} to {city2}, {state}.",
        "Heavy line on map traces the path of the {event} across {state} from {city} to {city2}.",
        "Area around {city}, {state}, affected by the {event}, is shown in black on the map.",
    ),
    "headline": (
        "{title} {first} {last} {verb} {weekday} as the {org} took up the {thing} in {city}.",
        "{first} {last}, {role} of the {org}, {verb} in {city} after the {thing} was approved.",
        "The {org} announced {weekday} in {city} that {first} {last} {verb} {role}.",
    ),
}

# OCR confusions: (seen, read-as); applied per occurrence with the reprint's noise level.
_CONFUSIONS = (("rn", "m"), ("m", "rn"), ("l", "1"), ("l", "I"), ("I", "l"), ("i", "l"), ("O", "0"), ("o", "0"),
               ("0", "O"), ("e", "c"), ("c", "e"), ("cl", "d"), ("d", "cl"), ("h", "b"), ("u", "n"), ("n", "u"),
               ("a", "o"), ("t", "f"), ("S", "5"), ("B", "8"), ("f", "t"), ("w", "vv"))
_CONF_BY_FIRST: dict[str, list[tuple[str, str]]] = {}
for _src, _dst in _CONFUSIONS:
    _CONF_BY_FIRST.setdefault(_src[0], []).append((_src, _dst))


# ---------------------------------------------------------------- the plan (story-level structure)


@dataclass
class Story:
    index: int
    split: str
    kind: str
    size: int
    photo_of: int  # whose photo (== index unless reused)
    twin_of: int = -1  # portrait near-copied from this story (-1: none)
    formulaic: bool = False
    follow_of: int = -1  # shares people/places/event with this story (-1: none)
    facts: dict = field(default_factory=dict)


def _group_size(rng: np.random.Generator) -> int:
    """Heavy tail: 40 % singletons, else 1 + Zipf(2) capped at 60 (most 2-10, about 2 % of groups 30+)."""
    if rng.random() < 0.40:
        return 1
    return int(1 + min(rng.zipf(2.0), 59))


def plan(stories: int, seed: int) -> list[Story]:
    """Decide every story's split, image kind, reprint count and confounder links (no images yet).

    Cost: O(stories), milliseconds. Stories are split 40/30/15/15 into unlabelled/train/val/test; confounder
    partners are chosen inside the same split so every split holds its own confounders.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    counts = [int(round(f * stories)) for f in SPLIT_FRACTIONS]
    counts[0] = stories - sum(counts[1:])
    split_of = np.repeat(np.arange(len(SPLITS)), counts)
    rng.shuffle(split_of)
    kinds = rng.choice(len(KINDS), size=stories, p=KIND_P)
    plan_ = [Story(i, SPLITS[split_of[i]], KINDS[kinds[i]], _group_size(rng), i) for i in range(stories)]
    if stories >= 20 and max(s.size for s in plan_) < 30:  # keep the tail visible even in small archives
        max(plan_, key=lambda s: s.size).size = int(rng.integers(30, 46))
    for s in plan_:
        s.formulaic = bool(rng.random() < FORMULAIC_P)
    for name in SPLITS:
        members = [s for s in plan_ if s.split == name]
        photos = [s for s in members if s.kind != "headline"]
        portraits = [s for s in members if s.kind == "portrait"]
        for s in photos:
            if len(photos) > 1 and rng.random() < PHOTO_REUSE_P:
                other = photos[int(rng.integers(len(photos)))]
                if other.index != s.index and other.photo_of == other.index:
                    s.photo_of, s.kind = other.index, other.kind
                    if rng.random() < 0.5:  # the same person's photo with a new story about them
                        s.follow_of = other.index
        for s in members:
            if len(members) > 1 and s.follow_of < 0 and rng.random() < FOLLOW_UP_P:
                other = members[int(rng.integers(len(members)))]
                if other.index != s.index and other.follow_of < 0:
                    s.follow_of = other.index
        for s in portraits:
            if len(portraits) > 1 and s.photo_of == s.index and rng.random() < TWIN_PORTRAIT_P:
                other = portraits[int(rng.integers(len(portraits)))]
                if other.index != s.index and other.twin_of < 0 and other.kind == "portrait":  # still a face
                    s.twin_of = other.index
    return plan_


# ---------------------------------------------------------------- captions


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _first(rng: np.random.Generator) -> str:
    return _pick(rng, FIRST if rng.random() < COMMON_P else COMPOSED_FIRST)


def _last(rng: np.random.Generator) -> str:
    return _pick(rng, LAST if rng.random() < COMMON_P else COMPOSED_LAST)


def _town(rng: np.random.Generator) -> tuple[str, str]:
    """(town, state): a common city with its state, or a composed town in any state (~50,000 places)."""
    if rng.random() < COMMON_P:
        return _split_city(_pick(rng, CITY_STATE))
    return _pick(rng, COMPOSED_TOWNS), _pick(rng, STATES)


def _org(rng: np.random.Generator) -> str:
    """An organisation: a national body, or a local chapter named after a town or a county."""
    org, u = _pick(rng, ORGS), rng.random()
    if u < 0.35:
        return f"{_town(rng)[0]} {org}"
    if u < 0.6:
        return f"{_last(rng)} County {org}"
    return org


def story_facts(rng: np.random.Generator) -> dict:
    """The slot values of one story: people, places, organisations, events, numbers, dates."""
    city, state = _town(rng)
    city2, _ = _town(rng)
    year = int(rng.integers(1920, 1976))
    month = int(rng.integers(1, 13))
    return {
        "first": _first(rng), "last": _last(rng), "first2": _first(rng),
        "last2": _last(rng), "first3": _first(rng), "last3": _last(rng),
        "title": _pick(rng, TITLES), "role": _pick(rng, ROLES), "role2": _pick(rng, ROLES),
        "org": _org(rng), "org2": _org(rng), "city": city, "state": state, "city2": city2,
        "event": _pick(rng, EVENTS), "verb": _pick(rng, VERBS), "thing": _pick(rng, THINGS),
        "crowd": _pick(rng, CROWD), "weekday": _pick(rng, WEEKDAYS), "weekday2": _pick(rng, WEEKDAYS),
        "month": MONTHS[month - 1], "year": str(year - int(rng.integers(2, 30))),
        "num": str(int(rng.integers(2, 90))), "num2": str(int(rng.integers(1, 60))),
        "money": str(int(rng.integers(2, 500))), "age": str(int(rng.integers(28, 91))),
        "date": f"{year:04d}-{month:02d}-{int(rng.integers(1, 29)):02d}",
    }


def _split_city(pair: str) -> tuple[str, str]:
    words = pair.split(" ")
    # two-word cities ("Des Moines", "St. Paul", "Little Rock", ...) vs two-word states
    n_city = 2 if words[0] in ("Des", "St.", "Little", "El", "Santa", "San", "Sioux") else 1
    return " ".join(words[:n_city]), " ".join(words[n_city:])


STATES = tuple(sorted({_split_city(pair)[1] for pair in CITY_STATE}))


_REWORD = {"was": "is", "said": "declared", "announced": "disclosed", "about": "nearly", "died": "passed",
           "home": "residence", "meeting": "session", "approved": "passed", "attended": "were at", "the": "the",
           "will": "is to", "expected": "slated", "largest": "biggest", "Officials": "Authorities"}


def story_facts_for(story: Story, seed: int) -> dict:
    """A story's facts; a follow-up keeps its partner's people, places, organisation and event."""
    facts = story_facts(np.random.default_rng([seed, story.index]))
    if story.follow_of >= 0:
        base = story_facts(np.random.default_rng([seed, story.follow_of]))
        for key in ("first", "last", "title", "role", "org", "city", "state", "event", "thing"):
            facts[key] = base[key]
    return facts


def story_text(kind: str, formulaic: bool, facts: dict, rng: np.random.Generator) -> str:
    """The clean wire text of a story: a lead (or a fixed-wording family) plus 0-3 extra sentences."""
    if formulaic:
        text = _pick(rng, FORMULAIC[kind]).format(**facts)
        n_extra = int(rng.integers(0, 2))
    else:
        text = _pick(rng, LEADS[kind]).format(**facts)
        n_extra = int(rng.integers(1, 4))
    picks = rng.choice(len(EXTRA), size=n_extra, replace=False)
    return " ".join([text] + [EXTRA[i].format(**facts) for i in picks])


def headline_words(facts: dict) -> list[str]:
    """Two or three short lines for a headline-block image, derived from the story."""
    return [f"{facts['last'].upper()} {facts['verb'].split()[-1].upper()}", f"{facts['org'].upper()}",
            f"{facts['city'].upper()} {facts['weekday'][:3].upper()}."]


def reprint_caption(text: str, facts: dict, rng: np.random.Generator) -> str:
    """One paper's OCR of a story: editorial changes, then character-level OCR noise.

    The noise level varies per reprint (some clean, some badly garbled) like real scans.
    """
    sentences = text.split(". ")
    if len(sentences) > 2 and rng.random() < 0.3:  # an editor dropped a sentence
        del sentences[int(rng.integers(1, len(sentences)))]
    words = ". ".join(sentences).split(" ")
    if rng.random() < 0.3:  # an editor's rewording
        words = [_REWORD.get(w, w) if rng.random() < 0.6 else w for w in words]
    if rng.random() < 0.5 and len(words) > 10:  # the paper cut the story to fit its column
        words = words[: max(8, int(len(words) * rng.uniform(0.3, 0.9)))]
    if rng.random() < 0.3:
        words = [f"{facts['city'].upper()},", f"({_pick(rng, WIRES)})", "—"] + words
    if rng.random() < 0.15:
        words = words + [_pick(rng, ("(Continued on Page 6)", "(See Picture Page)", "—Staff Photo.",
                                     f"({_pick(rng, WIRES)} Wirephoto)", "Story on Page 2."))]
    level = float(rng.beta(1.5, 4.0))  # mean ~0.27; a third of reprints are noisy (> 0.3)
    u = rng.random((len(words), 3)).tolist()  # drop, hyphen break, merge: drawn at once (speed)
    cuts = rng.integers(2, 1 << 30, len(words)).tolist()
    caption: list[str] = []
    for w, (drop, hyphen, merge), cut in zip(words, u, cuts, strict=True):
        if drop < 0.1 * level:  # dropped word
            continue
        if len(w) > 6 and hyphen < 0.12 * level:  # broken hyphenation "con- tinued"
            c = 2 + cut % (len(w) - 3)
            w = w[:c] + "- " + w[c:]
        if caption and merge >= 0.06 * level:  # merged words lack the space
            caption.append(" ")
        caption.append(w)
    return _ocr_chars("".join(caption), 0.2 * level, rng)


def _ocr_chars(text: str, p: float, rng: np.random.Generator) -> str:
    """Apply OCR confusions at the positions where a uniform draw falls below `p` (left to right)."""
    hits = np.flatnonzero(rng.random(len(text)) < p).tolist()
    if not hits:
        return text
    out, last = [], 0
    for i in hits:
        if i < last:
            continue
        for src, dst in _CONF_BY_FIRST.get(text[i], ()):
            if text.startswith(src, i):
                out.append(text[last:i])
                out.append(dst)
                last = i + len(src)
                break
    out.append(text[last:])
    return "".join(out)


def _captions_for(args: tuple[int, int, int, int]) -> tuple[list[str], list[str]]:
    stories, seed, lo, hi = args
    captions, labels = [], []
    for s in plan(stories, seed)[lo:hi]:
        facts = story_facts_for(s, seed)
        text = story_text(s.kind, s.formulaic, facts, np.random.default_rng([seed, s.index, 0]))
        for k in range(s.size):
            captions.append(reprint_caption(text, facts, np.random.default_rng([seed, s.index, 1 + k])))
            labels.append(f"story-{s.index:07d}")
    return captions, labels


def generate_captions(stories: int, seed: int = 0, workers: int = 1) -> tuple[list[str], list[str]]:
    """Reprint captions only (no images): (captions, labels) for `stories` stories of the plan.

    For benchmarks of text methods at archive scale (~3.1 captions per story). workers: processes (each
    re-plans, O(stories)); the output does not depend on it. Cost: ~0.2 ms per caption per process.
    """
    step = -(-stories // max(workers, 1))
    chunks = [(stories, seed, lo, min(lo + step, stories)) for lo in range(0, stories, step)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_captions_for, chunks))
    else:
        parts = [_captions_for(c) for c in chunks]
    return [c for p in parts for c in p[0]], [label for p in parts for label in p[1]]


# ---------------------------------------------------------------- images


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def draw_scene(rng: np.random.Generator) -> Image.Image:
    """A landscape/town photo: sky gradient, horizon, hills, buildings with windows, sun, trees, a road."""
    s = BASE_SIZE
    top, bottom = np.array(_color(rng, 80, 256)), np.array(_color(rng, 120, 256))
    t = np.linspace(0, 1, s)[:, None, None]
    sky = (top * (1 - t) + bottom * t).astype(np.uint8)
    img = Image.fromarray(np.broadcast_to(sky, (s, s, 3)).copy())
    d = ImageDraw.Draw(img)
    horizon = int(rng.integers(s * 0.4, s * 0.75))
    if rng.random() < 0.7:
        cx, cy, r = int(rng.integers(10, s - 10)), int(rng.integers(5, horizon - 10)), int(rng.integers(5, 14))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_color(rng, 180, 256))
    hills = [(0, horizon)] + [(x, horizon - int(rng.integers(0, 30))) for x in range(0, s + 16, 16)] + [(s, s), (0, s)]
    d.polygon(hills, fill=_color(rng, 0, 160))
    d.rectangle((0, horizon, s, s), fill=_color(rng, 20, 180))
    for _ in range(int(rng.integers(0, 7))):
        w, h = int(rng.integers(10, 30)), int(rng.integers(12, 60))
        x = int(rng.integers(-5, s - 5))
        body = _color(rng, 0, 200)
        d.rectangle((x, horizon - h, x + w, horizon + 4), fill=body, outline=(0, 0, 0))
        win = _color(rng, 150, 256)
        for wy in range(horizon - h + 3, horizon - 2, 7):
            for wx in range(x + 2, x + w - 3, 6):
                d.rectangle((wx, wy, wx + 2, wy + 3), fill=win)
    for _ in range(int(rng.integers(0, 6))):
        x, y, r = int(rng.integers(0, s)), int(rng.integers(horizon, s)), int(rng.integers(4, 12))
        d.rectangle((x - 1, y - r, x + 1, y + 2), fill=(60, 40, 20))
        d.ellipse((x - r, y - 2 * r, x + r, y), fill=_color(rng, 0, 140))
    if rng.random() < 0.5:
        x0 = int(rng.integers(20, s - 20))
        d.polygon([(x0 - 4, horizon), (x0 + 4, horizon), (x0 + int(rng.integers(10, 60)), s),
                   (x0 - int(rng.integers(10, 60)), s)], fill=_color(rng, 60, 200))
    for _ in range(int(rng.integers(0, 12))):  # people / cars: small blobs in the foreground
        x, y = int(rng.integers(0, s)), int(rng.integers(horizon, s))
        d.ellipse((x - 2, y - 6, x + 2, y), fill=_color(rng, 0, 120))
    return img


def portrait_params(rng: np.random.Generator) -> dict:
    """A portrait's parameters: near-identical portraits are small perturbations of these."""
    return {
        "bg": rng.uniform(0.2, 1.0, 3), "skin": rng.uniform(0.45, 0.95), "suit": rng.uniform(0.0, 0.6, 3),
        "hair": rng.uniform(0.0, 0.8), "fw": rng.uniform(0.22, 0.32), "fh": rng.uniform(0.30, 0.40),
        "cx": rng.uniform(0.42, 0.58), "cy": rng.uniform(0.36, 0.46), "eye": rng.uniform(0.28, 0.4),
        "mouth": rng.uniform(0.25, 0.5), "style": int(rng.integers(0, 4)), "glasses": bool(rng.random() < 0.3),
        "hat": bool(rng.random() < 0.2), "tie": bool(rng.random() < 0.5), "shoulder": rng.uniform(0.75, 0.95),
    }


def perturb_portrait(p: dict, rng: np.random.Generator) -> dict:
    """A different person who looks almost the same: every continuous parameter moved by a few percent."""
    q = dict(p)
    for k, v in p.items():
        if isinstance(v, np.ndarray):
            q[k] = np.clip(v + rng.normal(0, 0.04, v.shape), 0, 1)
        elif isinstance(v, float):
            q[k] = v * (1 + rng.normal(0, 0.03))
    return q


def draw_portrait(p: dict) -> Image.Image:
    """A head-and-shoulders photo from `portrait_params`."""
    s = BASE_SIZE
    g = lambda v: tuple(int(255 * x) for x in v)  # noqa: E731
    img = Image.new("RGB", (s, s), g(p["bg"]))
    d = ImageDraw.Draw(img)
    cx, cy, fw, fh = p["cx"] * s, p["cy"] * s, p["fw"] * s, p["fh"] * s
    sk = p["skin"]
    skin = g((sk, sk * 0.85, sk * 0.7))
    d.ellipse((cx - s * 0.45, cy + fh * 0.8, cx + s * 0.45, s * (1 + p["shoulder"])), fill=g(p["suit"]))
    d.polygon([(cx - fw * 0.3, cy + fh * 0.8), (cx + fw * 0.3, cy + fh * 0.8), (cx, cy + fh * 1.3)],
              fill=(240, 240, 240))
    if p["tie"]:
        d.polygon([(cx - 3, cy + fh * 0.85), (cx + 3, cy + fh * 0.85), (cx, cy + fh * 1.4)], fill=(40, 20, 20))
    d.rectangle((cx - fw * 0.25, cy + fh * 0.4, cx + fw * 0.25, cy + fh * 0.9), fill=skin)
    d.ellipse((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2), fill=skin)
    hair = g((p["hair"], p["hair"] * 0.8, p["hair"] * 0.6))
    style = p["style"]
    if style == 0:
        d.chord((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh * 0.1), 180, 360, fill=hair)
    elif style == 1:
        d.ellipse((cx - fw * 0.6, cy - fh * 0.65, cx + fw * 0.6, cy + fh * 0.05), fill=hair)
        d.ellipse((cx - fw * 0.45, cy - fh * 0.35, cx + fw * 0.45, cy + fh * 0.5), fill=skin)
    elif style == 2:
        d.ellipse((cx - fw * 0.7, cy - fh * 0.6, cx + fw * 0.7, cy + fh * 0.7), fill=hair)
        d.ellipse((cx - fw * 0.45, cy - fh * 0.4, cx + fw * 0.45, cy + fh * 0.5), fill=skin)
    else:
        d.chord((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy), 200, 340, fill=hair)
    ey, ex = cy - fh * 0.05, fw * p["eye"]
    for sx in (-1, 1):
        d.ellipse((cx + sx * ex - 2.5, ey - 1.5, cx + sx * ex + 2.5, ey + 1.5), fill=(20, 20, 20))
        if p["glasses"]:
            d.ellipse((cx + sx * ex - 6, ey - 5, cx + sx * ex + 6, ey + 5), outline=(10, 10, 10), width=1)
    d.line((cx, ey + 2, cx - 2, cy + fh * 0.18), fill=g((sk * 0.6, sk * 0.5, sk * 0.4)), width=1)
    mw = fw * p["mouth"]
    d.arc((cx - mw, cy + fh * 0.12, cx + mw, cy + fh * 0.32), 20, 160, fill=(90, 30, 30), width=2)
    if p["hat"]:
        d.rectangle((cx - fw * 0.8, cy - fh * 0.42, cx + fw * 0.8, cy - fh * 0.34), fill=(30, 30, 30))
        d.rectangle((cx - fw * 0.5, cy - fh * 0.85, cx + fw * 0.5, cy - fh * 0.4), fill=(30, 30, 30))
    return img


def draw_map(rng: np.random.Generator) -> Image.Image:
    """A news map: coastline, rivers, roads, cities with short labels, a border and a shaded area."""
    s = BASE_SIZE
    img = Image.new("RGB", (s, s), _color(rng, 200, 256))
    d = ImageDraw.Draw(img)
    pts, x, y = [], 0.0, float(rng.uniform(0.2, 0.8) * s)
    while x < s:
        pts.append((x, y))
        x += float(rng.uniform(4, 12))
        y = float(np.clip(y + rng.normal(0, 6), 5, s - 5))
    sea = _color(rng, 80, 200)
    d.polygon(pts + [(s, 0), (0, 0)] if rng.random() < 0.5 else pts + [(s, s), (0, s)], fill=sea)
    for _ in range(int(rng.integers(1, 4))):
        d.line([(float(rng.uniform(0, s)), float(rng.uniform(0, s))) for _ in range(4)], fill=(40, 60, 160), width=2)
    for _ in range(int(rng.integers(1, 4))):
        d.line([(float(rng.uniform(0, s)), float(rng.uniform(0, s))) for _ in range(3)], fill=(0, 0, 0), width=1)
    if rng.random() < 0.6:
        cx, cy, r = float(rng.uniform(20, s - 20)), float(rng.uniform(20, s - 20)), float(rng.uniform(10, 30))
        poly = [(cx + r * math.cos(a) * rng.uniform(0.6, 1.2), cy + r * math.sin(a) * rng.uniform(0.6, 1.2))
                for a in np.linspace(0, 2 * math.pi, 9)[:-1]]
        d.polygon(poly, fill=(70, 70, 70))
    font = _font(9)
    for _ in range(int(rng.integers(2, 6))):
        x, y = int(rng.integers(5, s - 30)), int(rng.integers(5, s - 12))
        d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(0, 0, 0))
        name = _town(rng)[0].upper()[:8]
        d.text((x + 3, y - 4), name, fill=(0, 0, 0), font=font)
    if rng.random() < 0.5:
        x0, y0 = int(rng.integers(10, s - 40)), int(rng.integers(10, s - 40))
        d.line((x0, y0, x0 + 25, y0 + 25), fill=(0, 0, 0), width=3)
        d.polygon([(x0 + 25, y0 + 25), (x0 + 15, y0 + 22), (x0 + 22, y0 + 15)], fill=(0, 0, 0))
    d.rectangle((0, 0, s - 1, s - 1), outline=(0, 0, 0), width=2)
    return img


def draw_headline(lines: list[str], rng: np.random.Generator) -> Image.Image:
    """A headline block: two or three lines of bold caps between rules, as printed with a photo."""
    s = BASE_SIZE
    img = Image.new("RGB", (s, s), _color(rng, 215, 256))
    d = ImageDraw.Draw(img)
    y = int(rng.integers(4, 14))
    d.line((4, y, s - 4, y), fill=(0, 0, 0), width=2)
    y += 6
    for i, line in enumerate(lines):
        size = int(rng.integers(17, 23)) if i == 0 else int(rng.integers(11, 15))
        font = _font(size)
        for chunk in _wrap(line, font, s - 8):
            d.text((4, y), chunk, fill=(0, 0, 0), font=font, stroke_width=1 if i == 0 else 0, stroke_fill=(0, 0, 0))
            y += size + 3
    d.line((4, y + 2, s - 4, y + 2), fill=(0, 0, 0), width=1)
    for yy in range(y + 8, s - 4, 6):  # body text as grey bars
        d.line((4, yy, int(rng.integers(s // 2, s - 4)), yy), fill=(110, 110, 110), width=2)
    return img


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        cand = f"{cur} {w}".strip()
        if cur and font.getlength(cand) > width:
            lines.append(cur)
            cur = w
        else:
            cur = cand
    return lines + ([cur] if cur else [])


_BAYER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) / 16


_PAPER = (235, 235, 230)


def scan(base: Image.Image, rng: np.random.Generator) -> bytes:
    """One paper's print and scan of `base`: crop, scale, rotate, tone, halftone/dither, noise, blur, JPEG.

    Crop, rotation and scaling are one affine resampling, the tone curve is a 256-entry lookup table and the
    screens and noise are whole-array numpy ops on uint8/float32 (this is the archive's hot loop). Returns
    encoded JPEG bytes (PNG for about one in ten), 96-128 px on the long side. Cost: ~1 ms at 128 px.
    """
    s = BASE_SIZE
    frac = rng.uniform(0.7, 1.0)
    cw, ch = s * frac * rng.uniform(0.92, 1.0), s * frac * rng.uniform(0.92, 1.0)
    x0, y0 = rng.uniform(0, s - cw), rng.uniform(0, s - ch)
    angle = math.radians(float(rng.normal(0, 2.0))) if rng.random() < 0.7 else 0.0
    long_side = int(rng.integers(96, 129))
    scale = max(cw, ch) / long_side  # input pixels per output pixel
    out_w, out_h = max(1, min(long_side, round(cw / scale))), max(1, min(long_side, round(ch / scale)))
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    icx, icy, ocx, ocy = x0 + cw / 2, y0 + ch / 2, out_w / 2, out_h / 2
    # output (x, y) -> input: centre_in + R(angle) * scale * ((x, y) - centre_out)
    affine = (cos, -sin, icx - cos * ocx + sin * ocy, sin, cos, icy - sin * ocx - cos * ocy)
    gray = rng.random() < 0.75
    img = base.convert("L") if gray else base
    img = img.transform((out_w, out_h), Image.AFFINE, affine, resample=Image.BILINEAR,
                        fillcolor=_PAPER[0] if gray else _PAPER)
    contrast, brightness, gamma = rng.uniform(0.6, 1.5), rng.normal(0, 0.08), rng.uniform(0.7, 1.4)
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip((v - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    a = np.asarray(img, dtype=np.uint8)
    screen = rng.random()
    if gray and screen < 0.3:  # a halftone screen: ordered dither (Bayer 4x4) or coarse 2x2 dots
        h, w = a.shape
        cell = _BAYER if screen < 0.2 else np.clip(_BAYER[:2, :2] * 2 - 0.25, 0, 1)
        lo, hi = (0.1, 0.95) if screen < 0.2 else (0.05, 0.95)
        tile = np.tile(cell, (h // cell.shape[0] + 1, w // cell.shape[1] + 1))[:h, :w]
        a = np.where(lut[a] > tile, hi, lo).astype(np.float32)
    else:
        a = lut.astype(np.float32)[a]
    sigma = rng.uniform(0.0, 0.06)
    a = a + rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma)
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(float(rng.uniform(0.3, 1.0))))
    buf = io.BytesIO()
    if rng.random() < 0.1:
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=int(rng.integers(25, 86)))
    return buf.getvalue()


def _portrait_of(index: int, stories: list[Story], seed: int, depth: int = 0) -> dict:
    """The portrait parameters that story `index` shows (a twin: its partner's shown face, perturbed)."""
    src = stories[stories[index].photo_of]
    if src.twin_of < 0 or depth > 8:  # twin links form chains, never cycles; the guard only bounds work
        return portrait_params(np.random.default_rng([seed, src.index, 99]))
    return perturb_portrait(_portrait_of(src.twin_of, stories, seed, depth + 1),
                            np.random.default_rng([seed, src.index, 98]))


def base_image(story: Story, stories: list[Story], seed: int, facts: dict) -> Image.Image:
    """A story's unscanned photo; reused photos and twin portraits are drawn from their partner's seed.

    A reused photo is exactly the photo of the story it comes from, twin portrait included.
    """
    src = stories[story.photo_of]
    if src.kind == "portrait":
        return draw_portrait(_portrait_of(story.index, stories, seed))
    rng = np.random.default_rng([seed, src.index, 99])
    if src.kind == "scene":
        return draw_scene(rng)
    if src.kind == "map":
        return draw_map(rng)
    return draw_headline(headline_words(facts), rng)


# ---------------------------------------------------------------- rows and the writer


def clipping_id(seed: int, story: int, reprint: int) -> str:
    """An id that reveals nothing of the story (ids are hashes, rows are shuffled)."""
    return "c" + hashlib.blake2b(f"{seed}:{story}:{reprint}".encode(), digest_size=6).hexdigest()


def story_rows(story: Story, stories: list[Story], seed: int) -> Iterator[dict]:
    """All reprint rows of one story (archive columns), deterministic for (seed, story)."""
    facts = story_facts_for(story, seed)
    text = story_text(story.kind, story.formulaic, facts, np.random.default_rng([seed, story.index, 0]))
    base = base_image(story, stories, seed, facts)
    y, m, d = (int(v) for v in facts["date"].split("-"))
    for k in range(story.size):
        r = np.random.default_rng([seed, story.index, 1 + k])
        city, _ = _town(r)
        day = d + int(r.integers(0, 12))
        yield {
            "clipping_id": clipping_id(seed, story.index, k),
            "image": scan(base, r),
            "image_path": None,
            "caption": reprint_caption(text, facts, r),
            "label": None if story.split == "unlabelled" else f"story-{story.index:06d}",
            "source": f"{city} {_pick(r, MASTHEADS)}",
            "date": f"{y:04d}-{m:02d}-{min(day, 28):02d}",
            "page": str(int(r.integers(1, 25))),
        }


def _rows_for(args: tuple[list[int], list[Story], int]) -> list[tuple[str, dict]]:
    indices, stories, seed = args
    return [(stories[i].split, row) for i in indices for row in story_rows(stories[i], stories, seed)]


def generate(out: str, stories: int = 2000, seed: int = 0, workers: int | None = None) -> dict[str, str]:
    """Write the synthetic archive into `out/{unlabelled,train,val,test}`; returns split name -> folder.

    stories: number of distinct stories (about 2.6 reprints each on average, so 2000 stories ~ 5,000 rows).
    seed: the same seed gives byte-identical Parquet files. workers: processes drawing images (default: up
    to 2, one for small archives); the output does not depend on it. Cost: ~0.5 ms per row on 2 cores,
    memory of the whole archive's encoded images (~3 KB per row).
    """
    if stories < 4:
        raise BadInput(f"The 'stories' parameter of synth must be an int in the range [4, inf). Got {stories!r} instead.")
    stories_ = plan(stories, seed)
    workers = workers or (1 if stories < 300 else min(2, os.cpu_count() or 1))
    step = max(1, -(-stories // (workers * 8)))
    chunks = [(list(range(i, min(i + step, stories))), stories_, seed) for i in range(0, stories, step)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_rows_for, chunks))
    else:
        parts = [_rows_for(c) for c in chunks]
    by_split: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for rows in parts:
        for split, row in rows:
            by_split[split].append(row)
    paths = {}
    for i, name in enumerate(SPLITS):
        rows = by_split[name]
        order = np.random.default_rng([seed, 0xC0FFEE, i]).permutation(len(rows))
        table = pa.Table.from_pylist([rows[j] for j in order], schema=ARCHIVE_SCHEMA)
        paths[name] = join(out, name)
        write_dataset(table, paths[name])
    return paths
