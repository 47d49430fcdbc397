"""American Stories (CC-BY-4.0) scan JSON into page groups of photographs paired with their captions.

A scan document holds `scan{jp2_url, width, height}` and `bboxes[{id, bbox{x0, y0, x1, y1}, class,
raw_text}]`, boxes in absolute pixels of the full JP2; photos (`photograph`) and captions (`image_caption`)
are separate, unpaired boxes. Each photo gets at most one caption by geometry (`pairing.pair_captions`),
its confidence kept; an unpaired photo keeps an empty caption. The stored width/height are sometimes
approximated, so a decoded page within FRAME_TOLERANCE of them is taken as the JP2 itself (scale 1); a page
much smaller (a derivative) is scaled by its size / the stored size.
"""

from __future__ import annotations

import posixpath
from typing import Any

from clippings.importers.boxes import BoxSpec
from clippings.importers.documents import (
    folder_of,
    list_documents,
    number,
    page_candidates,
    read_json_document,
)
from clippings.importers.pairing import pair_captions
from clippings.importers.records import Detection, ImportOptions, PageGroup, clipping_id, path_id
from clippings.importers.text import clean

PREFIX = "as"
EXTENSIONS = (".json",)
PHOTO, CAPTION = "photograph", "image_caption"
FRAME_TOLERANCE = 0.05


def documents(path: str) -> list[str]:
    return list_documents(path, EXTENSIONS, "americanstories")


def _corners(bbox: Any) -> tuple[float, float, float, float]:
    if isinstance(bbox, dict):
        return tuple(float(bbox[k]) for k in ("x0", "y0", "x1", "y1"))  # type: ignore[return-value]
    a, b, c, d = (float(v) for v in bbox)
    return a, b, c, d


def _meta(data: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(source, date, page) from the scan's newspaper, edition and page fields, whichever are present."""
    lccn = data.get("lccn")
    source = (lccn.get("title") or lccn.get("lccn")) if isinstance(lccn, dict) else lccn
    edition = data.get("edition")
    date = edition.get("date") if isinstance(edition, dict) else data.get("date")
    page = data.get("page_number")
    return source, date, None if page is None else str(page)


def parse_page(doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    """A scan JSON (one object, or a list of them): (page groups, boxes of other classes left out)."""
    data = read_json_document(doc)
    scans = data if isinstance(data, list) else [data]
    groups, skipped = [], 0
    for scan in scans:
        if not isinstance(scan, dict) or "bboxes" not in scan:
            raise ValueError(f"document {doc} has no 'bboxes': not an American Stories scan JSON")
        info = scan.get("scan") or {}
        url = info.get("jp2_url") or posixpath.splitext(posixpath.basename(doc))[0] + ".jp2"
        width, height = number(info.get("width")), number(info.get("height"))
        frame = (width, height) if width and height else None
        photos, captions, texts = [], [], []
        for box in scan["bboxes"]:
            cls = str(box.get("class", "")).lower()
            if cls == PHOTO:
                photos.append(box)
            elif cls == CAPTION:
                try:
                    captions.append(_corners(box["bbox"]))
                    texts.append(clean(box.get("raw_text")))
                except (KeyError, ValueError, TypeError):
                    skipped += 1  # a caption without a readable box cannot be paired
            else:
                skipped += 1
        photo_boxes: list[tuple[float, float, float, float] | None] = []
        for box in photos:
            try:
                photo_boxes.append(_corners(box["bbox"]))
            except (KeyError, ValueError, TypeError):
                photo_boxes.append(None)
        good = [i for i, b in enumerate(photo_boxes) if b is not None]
        pairs = dict(zip(good, pair_captions([photo_boxes[i] for i in good], captions), strict=True))
        detections = []
        for i, box in enumerate(photos):
            if photo_boxes[i] is None:
                detections.append(Detection(path_id(PREFIX, f"{url}|{box.get('id')}|{box.get('bbox')}"), None,
                                            reason=f"photograph {box.get('id')} has no readable bbox x0, y0, x1, y1"))
                continue
            spec = BoxSpec(photo_boxes[i], "xyxy", "pixels", frame, FRAME_TOLERANCE)  # type: ignore[arg-type]
            j, confidence = pairs[i]
            detections.append(Detection(clipping_id(PREFIX, url, spec), spec, texts[j] if j is not None else "",
                                        None, confidence))
        source, date, page = _meta(scan)
        first, *rest = page_candidates(url)
        groups.append(PageGroup(first, options.pages or folder_of(doc), detections, source, date,
                                page or url, alternatives=rest))
    return groups, skipped
