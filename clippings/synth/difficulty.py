"""How hard the built-in archive is: each difficulty's print-and-scan and OCR numbers, in one place.

`mild` is the archive as it always was (the light scan of `clippings.synth.scan.scan` and the light OCR of
`clippings.synth.captions.reprint_caption`), byte-identical for a seed. `hard` prints each reprint through
a rotated AM halftone screen or an ordered dither and scans it again (`scan.print_and_scan`), and reads its
caption at the character error rates of real newspaper OCR with the page's lines, headlines, datelines and
credits (`clippings.synth.ocr.ocr_caption`). Ranges (lo, hi) are drawn uniformly per reprint; `_p` fields
are probabilities per reprint unless they say otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from clippings.errors import BadInput


@dataclass(frozen=True)
class ScanModel:
    """One paper's print of a wire photo and a scan of that page (`clippings.synth.scan.print_and_scan`)."""

    crop: tuple[float, float] = (0.70, 1.00)  # the kept part's side, as a fraction of the photo's
    aspect: float = 0.15  # the kept part's aspect ratio varies by up to ±15 %
    rotation_deg: float = 3.0  # the clipping lies on the scanner at up to ±3°
    flop_p: float = 0.04  # a mirrored ("flopped") print: editors turned a face into the page
    oversample: int = 2  # the print is rendered at 2× the scan's resolution, then averaged (the scanner)
    halftone_p: float = 0.55  # an AM dot screen at a random angle; else ...
    dither_p: float = 0.15  # ... an ordered dither (Bayer 8×8); else continuous tone (a photo print)
    screen_period: tuple[float, float] = (1.2, 3.0)  # scan pixels per screen line: coarse dots to moiré
    dither_cell: tuple[int, int] = (1, 2)  # print pixels per dither matrix cell
    contrast: tuple[float, float] = (0.7, 1.5)
    brightness: float = 0.08  # sd of the tone curve's shift
    gamma: tuple[float, float] = (0.7, 1.5)
    dot_gain: tuple[float, float] = (0.0, 0.2)  # ink spreading into the paper darkens the mid-tones
    paper: tuple[float, float] = (0.75, 0.96)  # the paper's white (newsprint greys and yellows)
    ink: tuple[float, float] = (0.02, 0.25)  # the ink's black (worn plates and faded scans are grey)
    shading: tuple[float, float] = (0.0, 0.40)  # uneven light: the scan darkens by up to this across it
    blotch: tuple[float, float] = (0.0, 0.10)  # stains and foxing: smooth low-frequency brightness changes
    blur: tuple[float, float] = (0.0, 1.2)  # the scanner's optics: Gaussian sigma in scan pixels
    grain: tuple[float, float] = (0.01, 0.06)  # sensor noise and paper fibre: noise sd
    jpeg_quality: tuple[int, int] = (25, 85)
    colour_p: float = 0.15  # scanned in colour (the yellowed page shows); else grey


@dataclass(frozen=True)
class OcrModel:
    """One paper's typesetting of a wire caption and an OCR of it (`clippings.synth.ocr.ocr_caption`)."""

    cer: tuple[float, float] = (0.05, 0.15)  # character error rate of a reprint
    line_spread: float = 0.5  # lognormal sd of a line's error rate around the reprint's (a smudged line)
    substitute: float = 0.6  # shares of the character errors: substitutions (rn/m, e/c, ...), ...
    delete: float = 0.2  # ... deletions, and the rest insertions (specks read as . , ' -)
    column: tuple[int, int] = (24, 44)  # characters per line of the paper's column
    hyphenate_p: float = 0.6  # a word that does not fit the line is broken with a hyphen (per word)
    line_drop_p: float = 0.05  # a line the OCR lost (a fold, a tear, a faint line), per line
    line_merge_p: float = 0.15  # two lines read as one without a space, per line end
    line_break_p: float = 0.06  # a line read as two pieces (a space inside a word), per line
    neighbour_p: float = 0.3  # lines of the next column read into the caption (1 or 2 lines)
    rewrite_p: float = 0.3  # the paper's desk wrote its own lead sentence from the wire's facts
    sentence_drop_p: float = 0.3  # an editor dropped a sentence
    reword_p: float = 0.3  # an editor's rewording
    truncate_p: float = 0.5  # the paper cut the story to fit its column ...
    truncate: tuple[float, float] = (0.3, 0.9)  # ... keeping this fraction of its words
    wire_headline_p: float = 0.4  # the wire's suggested headline kept; else ...
    own_headline_p: float = 0.3  # ... the paper's own headline; else none
    dateline_p: float = 0.4  # "LAURELPORT, Ohio, May 4 (AP) —"
    credit_p: float = 0.35  # "(AP Wirephoto)", "—Acme Telephoto"


@dataclass(frozen=True)
class Difficulty:
    """A difficulty of the built-in archive: its scan and OCR models (None: the original light ones)."""

    name: str
    scan: ScanModel | None
    ocr: OcrModel | None


MILD = Difficulty("mild", None, None)
HARD = Difficulty("hard", ScanModel(), OcrModel())
DIFFICULTIES = {d.name: d for d in (HARD, MILD)}


def difficulty_of(name: str | Difficulty) -> Difficulty:
    """The Difficulty named `name` ("hard" or "mild"); a Difficulty is returned as it is."""
    if isinstance(name, Difficulty):
        return name
    if name not in DIFFICULTIES:
        raise BadInput(f"The 'difficulty' parameter of synth must be a str among {sorted(DIFFICULTIES)}. "
                       f"Got {name!r} instead.")
    return DIFFICULTIES[name]
