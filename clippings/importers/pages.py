"""Turn one `PageGroup` into archive rows: read the page under the image policy, decode it once, cut every
detection's crop; each detection ends as one row or one quarantine entry (id, reason), never dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, read_image_bytes, resolve_image_path
from clippings.importers.boxes import PixelBox, page_box, to_pixels
from clippings.importers.crops import crop_jpeg, decode_page, encode_crop
from clippings.importers.records import Detection, PageGroup

if TYPE_CHECKING:
    from clippings.importers.iiif import IIIFClient


def read_page(group: PageGroup, images: ImagePolicy) -> tuple[str, bytes]:
    """(location, bytes) of the group's page: `page`, then each of `alternatives`, resolved against `root`
    under `images`. A name the policy refuses (leading out of `root`) stops the search with that refusal
    rather than being looked for under shorter names. Raises ValueError naming every place tried when none
    holds the file."""
    names = [n for n in [group.page, *group.alternatives] if n]
    if not names:
        raise ValueError("the document names no page image")
    for name in names:
        location = resolve_image_path(group.root, name, images)
        try:
            return location, read_image_bytes(None, location)
        except ValueError as e:
            if "not found" not in str(e):
                raise
    raise ValueError(f"page image not found: tried {', '.join(repr(n) for n in names)} in {group.root}; "
                     "give --pages the folder holding the page images")


def iiif_crop(group: PageGroup, d: Detection, fetch: IIIFClient, long_side: int) -> tuple[bytes, PixelBox | None]:
    """A detection's crop fetched as a IIIF region of image `group.page` at `group.iiif`: a fraction or
    percent box as a `pct:` region (no page size needed; the box column stays empty), a pixel box as an
    `x,y,w,h` region of the size info.json states. Raises ValueError with a quarantine reason."""
    from clippings.importers.iiif import image_url, pct_region, pixel_region

    if d.box.units in ("fraction", "percent"):
        page_box(d.box, (10_000, 10_000))  # the same empty / out-of-page reasons as a decoded page
        x0, y0, x1, y1 = to_pixels(d.box, (1, 1))
        region, box = pct_region((max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))), None
    else:
        box = page_box(d.box, fetch.size(group.iiif, group.page))
        region = pixel_region(box)
    data = fetch.get(image_url(group.iiif, group.page, region, long_side))
    return encode_crop(decode_page(data), long_side), box


def import_group(group: PageGroup, images: ImagePolicy = ARCHIVE_ONLY, long_side: int | None = None,
                 fetch: IIIFClient | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(rows in IMPORT_SCHEMA's keys, [(clipping_id, reason)]) for one page group.

    The page is resolved against `group.root` (inside it, or where `images` allows), read and decoded once;
    boxes are scaled to the page as decoded and clamped (`boxes.page_box`). A repeated id (the same box twice
    on a page) is quarantined after its first row. With `group.iiif`, crops are fetched as IIIF regions
    through `fetch` instead (`iiif_crop`). Cost: one page decode (up to 3 bytes per pixel) and one
    JPEG encode per crop.
    """
    from clippings.importers.crops import CROP_LONG_SIDE

    long_side = long_side or CROP_LONG_SIDE
    rows: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    seen: set[str] = set()
    todo = []
    for d in group.detections:
        if d.clipping_id in seen:
            bad.append((d.clipping_id, "duplicate detection: the same page and box as an earlier one"))
        elif d.reason:
            bad.append((d.clipping_id, d.reason))
        else:
            todo.append(d)
        seen.add(d.clipping_id)
    page = None
    needs_page = not group.iiif and any(d.crop is None for d in todo)
    page_reason = group.missing
    location = None
    if needs_page and not page_reason:
        try:
            location, data = read_page(group, images)
            page = decode_page(data)
        except ValueError as e:
            page_reason = str(e)
    base = {"source": group.source, "date": group.date, "page": group.page_label or group.page,
            "page_image": location or (f"{group.iiif.rstrip('/')}/{group.page}" if group.iiif else group.page)}
    for d in todo:
        try:
            if d.crop is not None:
                data = read_image_bytes(None, resolve_image_path(group.root, d.crop, images))
                image, box = encode_crop(decode_page(data), long_side), None
            elif group.iiif:
                if fetch is None:
                    raise ValueError("IIIF page without a client")
                image, box = iiif_crop(group, d, fetch, long_side)
            else:
                if page is None:
                    raise ValueError(page_reason)
                box = page_box(d.box, page.size)
                image = crop_jpeg(page, box, long_side)
        except ValueError as e:
            bad.append((d.clipping_id, str(e)))
            continue
        own = {k: v for k, v in (("source", d.source), ("date", d.date), ("page", d.page_label)) if v is not None}
        rows.append({**base, **own, "clipping_id": d.clipping_id, "image": image, "caption": d.caption,
                     "box": list(box) if box else None, "score": d.score, "pair_confidence": d.pair_confidence})
    return rows, bad
