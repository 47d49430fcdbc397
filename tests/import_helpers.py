"""Generated pages and layout documents for the importer tests: pictures with known boxes and typeset captions
drawn with PIL, and Navigator / American Stories / ALTO / manifest documents written from the published
schemas. No archive data is read."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from clippings.archive import read_quarantine
from clippings.importers.boxes import from_pixels, units_per_pixel
from clippings.importers.job import plan_tasks, run_task
from clippings.importers.records import ImportOptions
from clippings.storage import read_dataset

CROP_TOLERANCE = 6.0
"""Largest mean absolute difference (0-255 levels, over all pixels and channels) between an imported crop
(JPEG, quality 90) and the reference crop of the lossless page: JPEG's error on these smooth pictures is
about 1-2 levels; a crop one pixel off, or a box in the wrong convention, is far above it."""


@dataclass
class Picture:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the page
    caption: str
    caption_box: tuple[int, int, int, int] | None = None


@dataclass
class Page:
    name: str
    image: Image.Image
    pictures: list[Picture] = field(default_factory=list)


def picture_pixels(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth, distinct picture: two gradients and a disc (JPEG-friendly, so crops compare tightly)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b, c = rng.uniform(0.2, 1.0, 3)
    r = (x / max(width, 1)) * 255 * a
    g = (y / max(height, 1)) * 255 * b
    cx, cy, rad = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height, min(width, height) / 4
    disc = ((x - cx) ** 2 + (y - cy) ** 2 < rad ** 2) * 200 * c
    return np.clip(np.stack([r, g, disc + 30], axis=-1), 0, 255).astype(np.uint8)


def make_page(name: str, size: tuple[int, int], boxes: list[tuple[int, int, int, int]], captions: list[str],
              seed: int = 0, caption_height: int = 24, grey: bool = False) -> Page:
    """A paper-white page with a picture at each box and its caption typeset just below it."""
    width, height = size
    canvas = Image.new("RGB", size, (245, 242, 235))
    draw = ImageDraw.Draw(canvas)
    page = Page(name, canvas)
    for i, (box, caption) in enumerate(zip(boxes, captions, strict=True)):
        x0, y0, x1, y1 = box
        canvas.paste(Image.fromarray(picture_pixels(x1 - x0, y1 - y0, seed * 100 + i)), (x0, y0))
        cap = (x0, y1 + 4, x1, min(height, y1 + 4 + caption_height))
        draw.text((cap[0] + 2, cap[1] + 2), caption, fill=(20, 20, 20))
        page.pictures.append(Picture(box, caption, cap))
    if grey:
        page.image = canvas.convert("L")
    return page


def save_page(page: Page, folder: str, fmt: str = "JPEG2000") -> str:
    """Write the page losslessly (JPEG 2000 by default, else PNG) as folder/page.name; returns the path."""
    path = os.path.join(folder, page.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    page.image.save(path, format=fmt)
    return path


def assert_crop_matches(data: bytes, page: Image.Image, box: tuple[int, int, int, int],
                        tolerance: float = CROP_TOLERANCE) -> None:
    """The imported JPEG crop has exactly the box's size and its pixels within `tolerance` of the page's."""
    got = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
    want = np.asarray(page.crop(box).convert("RGB"), np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float(np.abs(got - want).mean())
    assert diff <= tolerance, diff


def run_local(fmt: str, input_path: str, out: str, options: ImportOptions | None = None):
    """plan + every task in this process: (rows by id, quarantine reasons by id, markers)."""
    options = options or ImportOptions()
    tasks, skipped = plan_tasks(fmt, input_path, options)
    markers = [run_task(t, fmt, options, out) for t in tasks]
    rows = {}
    if any(m["rows"] for m in markers):
        rows = {r["clipping_id"]: r for r in read_dataset(out).to_pylist()}
    bad = {q["clipping_id"]: q["reason"] for q in read_quarantine(out).to_pylist()}
    assert not set(rows) & set(bad)
    assert sum(m["detections"] for m in markers) == len(rows) + len(bad)
    return rows, bad, markers, skipped


# ---------------------------------------------------------------- documents from the published schemas


def navigator_page_json(page: Page, extra: list[tuple[list[float], float, int, list[str]]] = (),
                        score: float = 0.93, lccn: str = "sn00000001", date: str = "1910-01-01") -> dict:
    """A Newspaper Navigator per-page JSON: boxes as [x1, y1, x2, y2] fractions, the caption's words in `ocr`."""
    size = page.image.size
    boxes = [list(from_pixels(p.box, "xyxy", "fraction", size)) for p in page.pictures]
    doc = {"filepath": page.name, "lccn": lccn, "pub_date": date, "edition_seq_num": 1, "page_seq_num": 1,
           "boxes": boxes, "scores": [score] * len(boxes), "pred_classes": [0] * len(boxes),
           "ocr": [p.caption.split() for p in page.pictures], "visual_content_filepath": "x"}
    for box, s, cls, words in extra:
        doc["boxes"].append(box)
        doc["scores"].append(s)
        doc["pred_classes"].append(cls)
        doc["ocr"].append(words)
    return doc


def americanstories_json(page: Page, width_error: float = 0.0, decoys: bool = True) -> dict:
    """An American Stories scan: photographs and image_caption boxes, unpaired, in pixels of the JP2; the stored
    width/height off by `width_error` (relative), as the dataset's approximated sizes are."""
    w, h = page.image.size
    boxes = []
    for i, p in enumerate(page.pictures):
        x0, y0, x1, y1 = p.box
        boxes.append({"id": 2 * i, "bbox": {"x0": x0, "y0": y0, "x1": x1, "y1": y1}, "class": "photograph",
                      "raw_text": ""})
        cx0, cy0, cx1, cy1 = p.caption_box
        boxes.append({"id": 2 * i + 1, "bbox": {"x0": cx0, "y0": cy0, "x1": cx1, "y1": cy1},
                      "class": "image_caption", "raw_text": p.caption})
    if decoys:
        boxes.append({"id": 99, "bbox": {"x0": 0, "y0": 0, "x1": 50, "y1": 20}, "class": "headline",
                      "raw_text": "HEADLINE"})
    boxes.reverse()  # unpaired, in no useful order
    return {"lccn": {"lccn": "sn00000002", "title": "The Daily Test"}, "edition": {"date": "1921-05-04"},
            "page_number": "3",
            "scan": {"jp2_url": f"https://example.org/data/batches/x/{page.name}",
                     "width": round(w * (1 + width_error)), "height": round(h * (1 + width_error)),
                     "ocr_url": "https://example.org/x.xml"},
            "bboxes": boxes}


def alto_xml(page: Page, unit: str = "pixel", dpi: float = 300.0, version: int = 4, bom: bool = False,
             hyphenate: bool = True, composed: bool = False) -> bytes:
    """ALTO for the page: Illustration (or ComposedBlock TYPE=Illustration) per picture, one caption TextBlock
    below each, the caption's second word split over two lines with SUBS_TYPE/SUBS_CONTENT and a HYP, a long
    article block elsewhere; coordinates in `unit` at `dpi`."""
    k = units_per_pixel(unit, dpi)
    ns = {2: "http://www.loc.gov/standards/alto/ns-v2#", 3: "http://www.loc.gov/standards/alto/ns-v3#",
          4: "http://www.loc.gov/standards/alto/ns-v4#"}[version]

    def pos(box: tuple[float, float, float, float]) -> str:
        x0, y0, x1, y1 = box
        return f'HPOS="{x0 * k:.3f}" VPOS="{y0 * k:.3f}" WIDTH="{(x1 - x0) * k:.3f}" HEIGHT="{(y1 - y0) * k:.3f}"'

    w, h = page.image.size
    blocks = []
    for i, p in enumerate(page.pictures):
        pic = f'<Illustration ID="I{i}" {pos(p.box)}/>'
        if composed:
            pic = f'<ComposedBlock ID="C{i}" TYPE="Illustration" {pos(p.box)}><GraphicalElement ID="G{i}" ' \
                  f'{pos(p.box)}/></ComposedBlock>'
        blocks.append(pic)
        words = p.caption.split()
        cb = p.caption_box
        if hyphenate and len(words) >= 2:
            second = words[1]
            cut = max(1, len(second) // 2)
            line1 = [f'<String CONTENT="{words[0]}"/><SP/>',
                     f'<String CONTENT="{second[:cut]}" SUBS_TYPE="HypPart1" SUBS_CONTENT="{second}"/><HYP CONTENT="-"/>']
            line2 = [f'<String CONTENT="{second[cut:]}" SUBS_TYPE="HypPart2" SUBS_CONTENT="{second}"/>'] + \
                [f'<SP/><String CONTENT="{wd}"/>' for wd in words[2:]]
            lines = f'<TextLine {pos(cb)}>{"".join(line1)}</TextLine><TextLine {pos(cb)}>{"".join(line2)}</TextLine>'
        else:
            lines = f'<TextLine {pos(cb)}>' + "<SP/>".join(f'<String CONTENT="{wd}"/>' for wd in words) + "</TextLine>"
        blocks.append(f'<TextBlock ID="T{i}" {pos(cb)}>{lines}</TextBlock>')
    article = "".join(f'<TextLine {pos((0, 0, 10, 10))}><String CONTENT="line{j}"/></TextLine>' for j in range(12))
    blocks.append(f'<TextBlock ID="A" {pos((0, 0, w, h))}>{article}</TextBlock>')
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<alto xmlns="{ns}"><Description><MeasurementUnit>{unit}'
            f'</MeasurementUnit></Description><Layout><Page ID="P1" WIDTH="{w * k:.3f}" HEIGHT="{h * k:.3f}" '
            f'PHYSICAL_IMG_NR="1"><PrintSpace {pos((0, 0, w, h))}>{"".join(blocks)}</PrintSpace></Page></Layout></alto>')
    data = text.encode("utf-8")
    return b"\xef\xbb\xbf" + data if bom else data


def write_json(path: str, obj) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path
