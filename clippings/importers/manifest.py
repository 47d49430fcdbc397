"""A plain manifest (CSV, JSON lines, JSON list or Parquet): the door for every other layout.

Each row names either a ready crop, `image` (path or URI), or a page and a box on it, `page_image` + `box`
(four numbers in `--box-format` xyxy|xywh and `--box-units` pixels|fraction|percent; pixels are the page's
as decoded), plus `caption` and, when present, `clipping_id`, `source`, `date`, `page`, `score`. Relative
paths are read from the manifest's folder (or `--pages`). Without a `clipping_id` column ids are built from
the page and box (or the crop's path), the same on every run.
"""

from __future__ import annotations

from typing import Any

from clippings.errors import BadInput
from clippings.importers.boxes import BoxSpec
from clippings.importers.documents import folder_of, list_documents, number, parse_list, read_rows
from clippings.importers.records import Detection, ImportOptions, PageGroup, clipping_id, path_id
from clippings.importers.text import clean

PREFIX = "man"
EXTENSIONS = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
CROPS_PER_GROUP = 64
"""Ready-crop rows travel in groups of this many (they share no page)."""


def documents(path: str) -> list[str]:
    return list_documents(path, EXTENSIONS, "manifest")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_rows(doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    """The manifest's page groups (rows of one page together, in first-seen order; ready crops in groups of
    CROPS_PER_GROUP). Raises BadInput naming the file and row when a row has neither image nor page + box."""
    rows = read_rows(doc, "manifest")
    root = options.pages or folder_of(doc)
    pages: dict[str, PageGroup] = {}
    crops: list[PageGroup] = []
    for n, row in enumerate(rows):
        caption = clean(_text(row.get("caption")))
        given = _text(row.get("clipping_id"))
        meta = (_text(row.get("source")), _text(row.get("date")), _text(row.get("page")))
        if _text(row.get("image")):
            image = str(row["image"])
            detection = Detection(given or path_id(PREFIX, image), None, caption, number(row.get("score")),
                                  crop=image, source=meta[0], date=meta[1], page_label=meta[2])
            if not crops or len(crops[-1].detections) >= CROPS_PER_GROUP:
                crops.append(PageGroup(None, root, []))
            crops[-1].detections.append(detection)
            continue
        page = _text(row.get("page_image"))
        if page is None or row.get("box") in (None, ""):
            raise BadInput(f"manifest {doc}: row {n} has neither 'image' nor 'page_image' and 'box'; give a crop "
                           "path in 'image', or a page in 'page_image' with its 'box'")
        try:
            values = tuple(float(v) for v in parse_list(row["box"]))
            spec = BoxSpec(values, options.box_format, options.box_units)  # type: ignore[arg-type]
            reason = "" if len(values) == 4 else f"box {list(values)} has {len(values)} numbers, needs 4"
        except (ValueError, TypeError, SyntaxError):
            spec, reason = None, f"box {str(row['box'])[:60]!r} is not 4 numbers"
        cid = given or (clipping_id(PREFIX, page, spec) if spec and not reason else path_id(PREFIX, f"{page}|{row['box']}"))
        group = pages.setdefault(page, PageGroup(page, root, [], *meta))
        group.detections.append(Detection(cid, spec, caption, number(row.get("score")), reason=reason,
                                          source=meta[0], date=meta[1], page_label=meta[2]))
    return list(pages.values()) + crops, 0
