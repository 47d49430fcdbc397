"""Story facts, wire texts and each reprint's OCR-read caption (confusions, dropped and merged words,
broken hyphenation, truncation, editorial datelines)."""

from __future__ import annotations

import numpy as np

from clippings.synth.plan import Story
from clippings.synth.words import (
    CITY_STATE,
    COMMON_P,
    COMPOSED_FIRST,
    COMPOSED_LAST,
    COMPOSED_TOWNS,
    CROWD,
    EVENTS,
    EXTRA,
    FIRST,
    FORMULAIC,
    LAST,
    LEADS,
    MONTHS,
    ORGS,
    ROLES,
    THINGS,
    TITLES,
    VERBS,
    WEEKDAYS,
    WIRES,
)

_CONFUSIONS = (("rn", "m"), ("m", "rn"), ("l", "1"), ("l", "I"), ("I", "l"), ("i", "l"), ("O", "0"), ("o", "0"),
               ("0", "O"), ("e", "c"), ("c", "e"), ("cl", "d"), ("d", "cl"), ("h", "b"), ("u", "n"), ("n", "u"),
               ("a", "o"), ("t", "f"), ("S", "5"), ("B", "8"), ("f", "t"), ("w", "vv"))
_CONF_BY_FIRST: dict[str, list[tuple[str, str]]] = {}
for _src, _dst in _CONFUSIONS:
    _CONF_BY_FIRST.setdefault(_src[0], []).append((_src, _dst))



def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _first(rng: np.random.Generator) -> str:
    return pick(rng, FIRST if rng.random() < COMMON_P else COMPOSED_FIRST)


def _last(rng: np.random.Generator) -> str:
    return pick(rng, LAST if rng.random() < COMMON_P else COMPOSED_LAST)


def town(rng: np.random.Generator) -> tuple[str, str]:
    """(town, state): a common city with its state, or a composed town in any state (~50,000 places)."""
    if rng.random() < COMMON_P:
        return _split_city(pick(rng, CITY_STATE))
    return pick(rng, COMPOSED_TOWNS), pick(rng, STATES)


def _org(rng: np.random.Generator) -> str:
    """An organisation: a national body, or a local chapter named after a town or a county."""
    org, u = pick(rng, ORGS), rng.random()
    if u < 0.35:
        return f"{town(rng)[0]} {org}"
    if u < 0.6:
        return f"{_last(rng)} County {org}"
    return org


def story_facts(rng: np.random.Generator) -> dict:
    """The slot values of one story: people, places, organisations, events, numbers, dates."""
    city, state = town(rng)
    city2, _ = town(rng)
    year = int(rng.integers(1920, 1976))
    month = int(rng.integers(1, 13))
    return {
        "first": _first(rng), "last": _last(rng), "first2": _first(rng),
        "last2": _last(rng), "first3": _first(rng), "last3": _last(rng),
        "title": pick(rng, TITLES), "role": pick(rng, ROLES), "role2": pick(rng, ROLES),
        "org": _org(rng), "org2": _org(rng), "city": city, "state": state, "city2": city2,
        "event": pick(rng, EVENTS), "verb": pick(rng, VERBS), "thing": pick(rng, THINGS),
        "crowd": pick(rng, CROWD), "weekday": pick(rng, WEEKDAYS), "weekday2": pick(rng, WEEKDAYS),
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
        text = pick(rng, FORMULAIC[kind]).format(**facts)
        n_extra = int(rng.integers(0, 2))
    else:
        text = pick(rng, LEADS[kind]).format(**facts)
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
        words = [f"{facts['city'].upper()},", f"({pick(rng, WIRES)})", "—"] + words
    if rng.random() < 0.15:
        words = words + [pick(rng, ("(Continued on Page 6)", "(See Picture Page)", "—Staff Photo.",
                                     f"({pick(rng, WIRES)} Wirephoto)", "Story on Page 2."))]
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
