"""What every layout parser produces (pages with their detections), stable ids, and the output rows.

A `PageGroup` is one page image with the detections found on it; a `Detection` is one picture (box, caption,
score or pairing confidence). Both travel to Ray tasks as JSON. The output archive has the contract's
columns (`clipping_id`, `image`, `caption`, `source`, `date`, `page`) plus `page_image` (where the page was
read), `box` (the crop in pixels of the page as decoded, x0, y0, x1, y1), `score` and `pair_confidence`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from clippings.importers.boxes import BoxSpec
from clippings.params import NAVIGATOR_MIN_SCORE

IMPORT_SCHEMA = pa.schema([
    pa.field("clipping_id", pa.string(), nullable=False),
    pa.field("image", pa.binary()),
    pa.field("caption", pa.string()),
    pa.field("source", pa.string()),
    pa.field("date", pa.string()),
    pa.field("page", pa.string()),
    pa.field("page_image", pa.string()),
    pa.field("box", pa.list_(pa.int32(), 4)),
    pa.field("score", pa.float64()),
    pa.field("pair_confidence", pa.float64()),
])


def clipping_id(prefix: str, page: str, spec: BoxSpec) -> str:
    """A stable id from the page and the box as the input states it: '<prefix>-<16 hex>'.

    Known before the page is decoded (so a detection on a missing page is quarantined under the id it would
    have had), the same on every re-run and machine; numbers are rounded to 6 decimals, so a box read as
    a float, a decimal or a CSV string gives one id.
    """
    numbers = ",".join(repr(round(float(v), 6)) for v in spec.values)
    key = f"{page}|{spec.fmt}|{spec.units}|{numbers}"
    return f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def path_id(prefix: str, location: str) -> str:
    """A stable id for a ready crop named by its path or URI (manifest rows without a clipping_id)."""
    return f"{prefix}-{hashlib.sha1(location.encode()).hexdigest()[:16]}"


@dataclass
class Detection:
    """One picture on a page: its id, its box (None for a ready crop at `crop`), caption and scores."""

    clipping_id: str
    box: BoxSpec | None
    caption: str = ""
    score: float | None = None
    pair_confidence: float | None = None
    crop: str | None = None
    """A ready crop's path or URI (manifest `image`): no page is decoded for it."""
    reason: str = ""
    """Non-empty: the detection is quarantined with this reason without reading anything."""
    source: str | None = None
    date: str | None = None
    page_label: str | None = None
    """Per-row metadata (manifest rows) overriding the page group's."""


@dataclass
class PageGroup:
    """A page image and its detections. page: the page image path as the input names it, relative to `root`
    (the folder it is resolved in, under the image policy) or absolute / a URI; None when none was found
    (then every detection is quarantined with `missing`)."""

    page: str | None
    root: str
    detections: list[Detection]
    source: str | None = None
    date: str | None = None
    page_label: str | None = None
    missing: str = ""
    alternatives: list[str] = field(default_factory=list)
    """Further places the page may lie (relative to `root`), tried in order when `page` is not there."""
    iiif: str | None = None
    """A IIIF Image API base URL: crops are fetched as regions of image `page` there; no page is read."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> PageGroup:
        detections = []
        for d in data["detections"]:
            box = d.get("box")
            spec = None if box is None else BoxSpec(tuple(box["values"]), box["fmt"], box["units"],
                                                   tuple(box["frame"]) if box["frame"] else None,
                                                   box["frame_tolerance"])
            detections.append(Detection(**{**d, "box": spec}))
        return PageGroup(**{**data, "detections": detections})


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Output rows (dicts with IMPORT_SCHEMA's keys) as a table in IMPORT_SCHEMA."""
    return pa.Table.from_pylist(rows, schema=IMPORT_SCHEMA)


@dataclass(frozen=True)
class ImportOptions:
    """The layout-specific choices of one import run (the CLI's flags), shipped to every task.

    pages: folder (or URI prefix) of the page images; None: beside the input documents.
    classes / min_score: Navigator's classes kept (0 = Photograph) and its lowest score kept.
    box_format / box_units: how a manifest's `box` column is written.
    boxes: ALTO only, a Navigator or COCO JSON file of picture boxes used instead of the ALTO pictures.
    iiif / iiif_cache / max_requests_per_minute: Navigator only, fetch crops as IIIF regions of the page
    (identifier: the document's `filepath`) from this base URL, caching responses in a local folder, at most
    this many requests a minute per task process (the job divides the user's limit by its concurrency).
    """

    pages: str | None = None
    classes: tuple[int, ...] = (0,)
    min_score: float = NAVIGATOR_MIN_SCORE
    box_format: str = "xyxy"
    box_units: str = "pixels"
    boxes: str | None = None
    iiif: str | None = None
    iiif_cache: str | None = None
    max_requests_per_minute: float | None = None
