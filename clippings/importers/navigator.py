"""Newspaper Navigator (Library of Congress): per-page JSON, or the prepackaged yearly rows (JSON, CSV or the
Parquet copy), into page groups of photos with their captions.

Per-page JSON: `boxes` ([x1, y1, x2, y2] fractions of the page), `scores`, `pred_classes` (0 = Photograph,
1 Illustration, 2 Map, 3 Comics/Cartoon, 4 Editorial Cartoon, 5 Headline, 6 Advertisement), `ocr` (per box,
the words of the page's ALTO that lie inside it: a photo's caption is printed inside its box), `filepath`
(the page's JP2, relative to the archive's batches), `lccn`, `pub_date`, `edition_seq_num`, `page_seq_num`.
Yearly rows: one detection each, with `box`, `score`, `ocr`, `filepath`, `pub_date`, `lccn`, `name`, `url`
(and `pred_class` when the file mixes classes); in CSV lists are text, in Parquet `box` may be decimal128.
"""

from __future__ import annotations

import posixpath
from typing import Any

from clippings.errors import BadInput
from clippings.importers.boxes import BoxSpec
from clippings.importers.documents import (
    folder_of,
    list_documents,
    number,
    page_candidates,
    parse_list,
    read_json_document,
    read_rows,
)
from clippings.importers.records import Detection, ImportOptions, PageGroup, clipping_id, path_id
from clippings.importers.text import join_words

PREFIX = "nav"
EXTENSIONS = (".json", ".csv", ".parquet", ".jsonl")
# its classes (by number) and default score cut: clippings.params.NAVIGATOR_CLASSES, NAVIGATOR_MIN_SCORE


def is_page_document(doc: str) -> bool:
    """Per-page JSON files parse in the Ray tasks; table files (yearly rows) on the driver."""
    return doc.lower().endswith(".json") and not posixpath.basename(doc).lower().endswith("_photos.json")


def documents(path: str) -> list[str]:
    return list_documents(path, EXTENSIONS, "navigator")


def _selected(cls: Any, score: float | None, options: ImportOptions) -> bool:
    try:
        cls = 0 if cls is None or cls == "" else int(float(cls))
    except (TypeError, ValueError):
        return False  # a class that is no number is no photo: left out and counted
    return cls in options.classes and (score is None or score >= options.min_score)


def _group(page: str, root: str, meta: dict[str, Any], detections: list[Detection], iiif: str | None = None
           ) -> PageGroup:
    first, *rest = [page] if iiif else page_candidates(page)
    lccn, date = meta.get("lccn"), meta.get("pub_date")
    label = page
    if lccn and date and meta.get("page_seq_num") is not None:
        label = f"{lccn}/{date}/ed-{meta.get('edition_seq_num', 1)}/seq-{meta['page_seq_num']}"
    return PageGroup(first, root, detections, source=meta.get("name") or lccn, date=str(date) if date else None,
                     page_label=label, alternatives=rest, iiif=iiif)


def _detection(page: str, box: Any, score: Any, ocr: Any) -> Detection:
    spec = BoxSpec((0.0, 0.0, 0.0, 0.0), "xyxy", "fraction")
    reason = ""
    try:
        values = tuple(float(v) for v in parse_list(box))
        spec = BoxSpec(values, "xyxy", "fraction")  # type: ignore[arg-type]
        if len(values) != 4:
            reason = f"box {list(values)} has {len(values)} numbers, needs 4"
    except (ValueError, TypeError, SyntaxError) as e:
        reason = f"box {str(box)[:60]!r} is not a list of 4 numbers ({type(e).__name__})"
    try:
        caption = join_words(ocr if isinstance(ocr, (list, tuple)) else parse_list(ocr) if ocr else "")
    except (ValueError, SyntaxError):
        caption = join_words(str(ocr))
    cid = path_id(PREFIX, f"{page}|{box}") if reason else clipping_id(PREFIX, page, spec)
    return Detection(cid, spec, caption, number(score), None, reason=reason)


def parse_page(doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    """A per-page JSON document: ([its page group], detections left out by class or score)."""
    data = read_json_document(doc)
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):  # yearly rows under another name
        if data and not {"box", "filepath"} <= set(data[0]):
            raise ValueError(f"document {doc}: rows need 'box' and 'filepath': not a Newspaper Navigator file")
        return _from_rows(data, doc, options)
    if not isinstance(data, dict) or "boxes" not in data:
        raise ValueError(f"document {doc} has no 'boxes': not a Newspaper Navigator page JSON")
    page = data.get("filepath") or posixpath.splitext(posixpath.basename(doc))[0] + ".jp2"
    boxes = data.get("boxes") or []
    n = len(boxes)
    scores = list(data.get("scores") or [None] * n)
    classes = list(data.get("pred_classes") or [0] * n)
    ocr = list(data.get("ocr") or [[]] * n)
    if not (len(scores) == len(classes) == len(ocr) == n):
        raise ValueError(f"document {doc}: boxes, scores, pred_classes and ocr differ in length")
    detections, skipped = [], 0
    for box, score, cls, words in zip(boxes, scores, classes, ocr, strict=True):
        if _selected(cls, number(score), options):
            detections.append(_detection(page, box, score, words))
        else:
            skipped += 1
    return [_group(page, options.pages or folder_of(doc), data, detections, options.iiif)], skipped


def parse_rows(doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    """A prepackaged table (JSON list, CSV, Parquet): page groups in first-seen page order, and the rows left
    out by class or score. Raises BadInput naming the file when a needed column is missing."""
    rows = read_rows(doc, "navigator")
    if rows and not {"box", "filepath"} <= set(rows[0]):
        raise BadInput(f"navigator {doc}: columns 'box' and 'filepath' are needed (found: {', '.join(rows[0])}); "
                       "give a Newspaper Navigator per-page JSON or prepackaged file")
    return _from_rows(rows, doc, options)


def _from_rows(rows: list[dict[str, Any]], doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    pages: dict[str, tuple[dict[str, Any], list[Detection]]] = {}
    skipped = 0
    for row in rows:
        score = number(row.get("score"))
        if not _selected(row.get("pred_class"), score, options):
            skipped += 1
            continue
        page = str(row["filepath"])
        pages.setdefault(page, (row, []))[1].append(_detection(page, row["box"], score, row.get("ocr")))
    root = options.pages or folder_of(doc)
    return [_group(page, root, meta, dets, options.iiif) for page, (meta, dets) in pages.items()], skipped
