"""One paper's typesetting and OCR of a wire caption at real error rates (the `hard` archive).

The paper edits the wire text (a dropped sentence, rewording, a cut to fit), keeps the wire's headline,
writes its own or none, and adds a dateline and a photo credit; it sets the text in a narrow column with
hyphenated line ends. The OCR then reads it line by line: lines lost, two lines run together, a line split
inside a word, a line of the next column read in, and characters substituted (rn/m, e/c, l/1, ...),
deleted and inserted (specks read as . , ' -) at a character error rate of 5-15 % that varies line by
line, as on microfilmed newspapers.
"""

from __future__ import annotations

import zlib

import numpy as np

from clippings.synth.captions import _CONF_BY_FIRST, _REWORD, pick, story_facts
from clippings.synth.difficulty import OcrModel
from clippings.synth.words import EXTRA, LEADS, MONTHS, WIRES

# characters a worn or smudged glyph is read as (besides the multi-letter confusions of captions.py)
_SIMILAR = {
    "a": "oes", "b": "hl6", "c": "eo(", "d": "al", "e": "co", "f": "ti", "g": "q9y", "h": "bn", "i": "l1!",
    "j": "i;", "k": "lx", "l": "1Ii", "m": "nr", "n": "uhr", "o": "0ce", "p": "o", "q": "g", "r": "ni", "s": "5a",
    "t": "fl", "u": "nv", "v": "yu", "w": "v", "x": "k", "y": "v", "z": "2", "0": "OD", "1": "lI", "2": "z",
    "3": "8", "5": "S6", "6": "b5", "8": "B3", "9": "g", ".": ",", ",": ".", " ": ".",
}
_SPECKS = ".,'-:;"
_CREDITS = ("({wire} Wirephoto)", "—{wire} Photo.", "({wire} Telephoto)", "—Staff Photo.", "({wire} Photo)",
            "(See Picture Page)", "—Photo by {wire}.")
_OWN_HEADS = ("IN THE NEWS", "LOCAL INTEREST", "NAMED TO POST", "WINS HONOR", "NEWS IN PICTURES", "TAKES OFFICE",
              "{city} MAN {verb}", "{last} {verb}", "{event} NEWS", "{org}")


def wire_headline(facts: dict) -> str:
    """The headline the wire suggested: the same for every reprint of a story (chosen by a hash of it)."""
    forms = ("{last} {verb}", "{event} AT {city}", "{role} {last}", "{org} NAMES {last}", "{thing} FOR {city}")
    form = forms[zlib.crc32(f"{facts['last']}|{facts['city']}|{facts['date']}".encode()) % len(forms)]
    return _head(form, facts)


def _head(form: str, facts: dict) -> str:
    slots = {k: facts[k].upper() for k in ("last", "city", "event", "role", "org", "thing")}
    slots["verb"] = facts["verb"].split()[-1].upper()
    return form.format(**slots)


def _wrap(words: list[str], width: int, hyphenate_p: float, rng: np.random.Generator) -> list[str]:
    """Set `words` in a column `width` characters wide; a word that does not fit may be hyphenated."""
    lines, line = [], ""
    u = rng.random(len(words)).tolist()
    for w, h in zip(words, u, strict=True):
        if not line:
            line = w
        elif len(line) + 1 + len(w) <= width:
            line += " " + w
        else:
            room = width - len(line) - 2  # a space and the hyphen
            if h < hyphenate_p and len(w) > 5 and room >= 2 and w[:room].isalpha():
                cut = min(room, len(w) - 3)
                lines.append(f"{line} {w[:cut]}-")
                line = w[cut:]
            else:
                lines.append(line)
                line = w
    return lines + [line] if line else lines


def _misread(line: str, p: float, m: OcrModel, rng: np.random.Generator) -> str:
    """`line` read with character errors at rate `p`: substitutions, deletions and insertions."""
    hits = np.flatnonzero(rng.random(len(line)) < p).tolist()
    if not hits:
        return line
    ops = rng.random(len(hits)).tolist()
    picks = rng.integers(0, 1 << 30, len(hits)).tolist()
    out, last = [], 0
    for i, op, k in zip(hits, ops, picks, strict=True):
        if i < last:
            continue
        out.append(line[last:i])
        c = line[i]
        last = i + 1
        if op < m.substitute:
            multi = [(src, dst) for src, dst in _CONF_BY_FIRST.get(c, ()) if line.startswith(src, i)]
            if multi and k % 2:
                src, dst = multi[k // 2 % len(multi)]
                out.append(dst)
                last = i + len(src)
            else:
                alts = _SIMILAR.get(c.lower())
                alt = alts[k % len(alts)] if alts else _SPECKS[k % len(_SPECKS)]
                out.append(alt.upper() if c.isupper() and k % 3 else alt)
        elif op >= m.substitute + m.delete:  # a speck before the character
            out.append(_SPECKS[k % len(_SPECKS)] + c)
    out.append(line[last:])
    return "".join(out)


def ocr_caption(text: str, facts: dict, rng: np.random.Generator, m: OcrModel, kind: str | None = None) -> str:
    """One paper's edit, typesetting and OCR of the wire text `text` of a story with `facts` (see the module).

    kind: the story's image kind, whose lead templates a rewriting desk picks from (None: no rewriting).
    Deterministic for the state of `rng`. Returns one line (the OCR's lines joined). Cost: ~0.5 ms (a
    neighbouring column's words are drawn as a whole story's facts).
    """
    sentences = text.split(". ")
    if kind is not None and rng.random() < m.rewrite_p:  # the desk wrote its own lead from the same facts
        sentences[0] = pick(rng, LEADS[kind]).format(**facts).rstrip(".")
    if len(sentences) > 2 and rng.random() < m.sentence_drop_p:
        del sentences[int(rng.integers(1, len(sentences)))]
    words = ". ".join(sentences).split(" ")
    if rng.random() < m.reword_p:
        words = [_REWORD.get(w, w) if rng.random() < 0.6 else w for w in words]
    if rng.random() < m.truncate_p and len(words) > 10:
        words = words[: max(8, int(len(words) * rng.uniform(*m.truncate)))]
    wire = pick(rng, WIRES)
    if rng.random() < m.dateline_p:
        day = int(facts["date"][-2:])
        place = f"{facts['city'].upper()}, {facts['state']}," if rng.random() < 0.5 else f"{facts['city'].upper()},"
        words = place.split(" ") + [MONTHS[int(facts["date"][5:7]) - 1][:3] + ".", str(day), f"({wire})", "—"] + words
    if rng.random() < m.credit_p:
        words = words + pick(rng, _CREDITS).format(wire=wire).split(" ")
    u = rng.random()
    if u < m.wire_headline_p:
        head = wire_headline(facts)
    elif u < m.wire_headline_p + m.own_headline_p:
        head = _head(pick(rng, _OWN_HEADS), facts)
    else:
        head = ""
    width = int(rng.integers(m.column[0], m.column[1] + 1))
    lines = ([head] if head else []) + _wrap(words, width, m.hyphenate_p, rng)
    if rng.random() < m.neighbour_p:  # lines of the next column: another story's words
        other = " ".join(pick(rng, EXTRA).format(**story_facts(rng)) for _ in range(2)).split(" ")
        start, n = int(rng.integers(0, max(1, len(other) - 8))), int(rng.integers(1, 3))
        at = int(rng.integers(0, len(lines) + 1))
        lines[at:at] = _wrap(other[start:], width, 0.0, rng)[:n]
    cer = rng.uniform(*m.cer)
    per_line = np.exp(rng.normal(0, m.line_spread, len(lines)) - m.line_spread ** 2 / 2)  # mean 1
    u = rng.random((len(lines), 4)).tolist()
    out: list[str] = []
    for line, scale, (drop, merge, split, where) in zip(lines, per_line.tolist(), u, strict=True):
        if drop < m.line_drop_p and len(lines) > 2:
            continue
        if split < m.line_break_p and len(line) > 4:
            c = 1 + int(where * (len(line) - 2))
            line = line[:c] + " " + line[c:]
        if out:
            out.append("" if merge < m.line_merge_p else " ")
        out.append(_misread(line, min(0.5, cer * scale), m, rng))
    return "".join(out)

