"""Every box convention of the importers, converted in this one place to pixels of the page as decoded.

A box arrives as four numbers in a convention (`xyxy` corners or `xywh` corner + size) and a unit:
`pixels` of a coordinate frame, `fraction` of the page (Newspaper Navigator), `percent` of the page (IIIF's
`pct:`). A pixel frame other than the decoded image is given as its size (`frame`): American Stories boxes
are pixels of the full JP2 whose stored width/height may be approximate; ALTO coordinates are in
`MeasurementUnit`s (pixel, mm10, inch1200) of a page `Page@WIDTH` × `Page@HEIGHT` units large. Such boxes are
scaled by image pixels / frame size, i.e. always to the image as decoded, never trusting sizes stored beside
it more than the pixels themselves (see `BoxSpec.frame_tolerance`).

What holds: `to_pixels(from_pixels(b, ...), ...) == b` for every convention and unit (tested); `clamp_box`
returns whole pixels rounded outwards (a crop never loses a partial pixel of its box) inside the page, or
raises ValueError with a quarantine reason for an empty, non-finite or out-of-page box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FORMATS = ("xyxy", "xywh")
UNITS = ("pixels", "fraction", "percent")
ALTO_UNITS = ("pixel", "mm10", "inch1200")
EPS = 0.01
"""Slack in pixels before rounding outwards: 0.1 × 1000 must give pixel 100, not 101, and a coordinate
written with a few decimals (an ALTO file in mm10) must not grow the crop by a pixel for a 0.001 px excess."""
MIN_SIDE = 2
"""Smallest crop side in pixels once clamped; a thinner box is quarantined (nothing a model can read)."""
MAX_OUTSIDE = 0.5
"""A box with more than this share of its area outside the page is quarantined, not clamped: most often its
corners were given as xywh (or the reverse) or in the wrong unit."""

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in pixels of the decoded page, floats; `PixelBox` once clamped to whole pixels."""
PixelBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class BoxSpec:
    """A box as an input states it.

    values: the four numbers. fmt: 'xyxy' (x0, y0, x1, y1) or 'xywh' (x, y, width, height).
    units: 'pixels', 'fraction' (0–1 of the page) or 'percent' (0–100 of the page).
    frame: for pixels, the (width, height) of the frame the numbers refer to (ALTO's Page@WIDTH/HEIGHT in its
    MeasurementUnit, American Stories' scan width/height); None: the decoded image itself.
    frame_tolerance: when the decoded image's size is within this relative difference of `frame` on both
    axes, the frame is taken to be the decoded image (scale 1): American Stories' stored sizes are sometimes
    approximated, and its boxes are pixels of the very JP2 that is decoded; a page much smaller (a derivative)
    is scaled by image / frame.
    """

    values: tuple[float, float, float, float]
    fmt: str = "xyxy"
    units: str = "pixels"
    frame: tuple[float, float] | None = None
    frame_tolerance: float = 0.0


def corners(values: Sequence[float], fmt: str) -> Box:
    """(x0, y0, x1, y1) of four numbers in `fmt` ('xyxy' or 'xywh'), same unit."""
    a, b, c, d = (float(v) for v in values)
    if fmt == "xyxy":
        return a, b, c, d
    if fmt == "xywh":
        return a, b, a + c, b + d
    raise ValueError(f"unknown box format {fmt!r}; use one of {', '.join(FORMATS)}")


def _scale(spec: BoxSpec, image_size: tuple[int, int]) -> tuple[float, float]:
    """Pixels of the decoded image per unit of the box, (x, y)."""
    width, height = image_size
    if spec.units == "fraction":
        return float(width), float(height)
    if spec.units == "percent":
        return width / 100.0, height / 100.0
    if spec.units != "pixels":
        raise ValueError(f"unknown box unit {spec.units!r}; use one of {', '.join(UNITS)}")
    if spec.frame is None:
        return 1.0, 1.0
    fw, fh = spec.frame
    if not (fw > 0 and fh > 0):
        raise ValueError(f"box frame {fw}×{fh} is not a positive size")
    sx, sy = width / fw, height / fh
    if abs(sx - 1) <= spec.frame_tolerance and abs(sy - 1) <= spec.frame_tolerance:
        return 1.0, 1.0
    return sx, sy


def to_pixels(spec: BoxSpec, image_size: tuple[int, int]) -> Box:
    """The box in pixels of an image of `image_size` (width, height) as decoded; floats, not clamped.

    Raises ValueError (a quarantine reason) for an unknown format or unit, a non-finite number or a bad frame.
    """
    if len(spec.values) != 4:
        raise ValueError(f"box has {len(spec.values)} numbers, needs 4")
    x0, y0, x1, y1 = corners(spec.values, spec.fmt)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box {list(spec.values)} has a non-finite number")
    sx, sy = _scale(spec, image_size)
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


def from_pixels(box: Box, fmt: str, units: str, image_size: tuple[int, int],
                frame: tuple[float, float] | None = None) -> tuple[float, float, float, float]:
    """The inverse of `to_pixels`: four numbers in `fmt` and `units` for a pixel box of an image of
    `image_size`. Used to write test documents and IIIF regions; `frame` as in BoxSpec (no tolerance)."""
    x0, y0, x1, y1 = box
    sx, sy = _scale(BoxSpec((0, 0, 0, 0), fmt, units, frame), image_size)
    a, b, c, d = x0 / sx, y0 / sy, x1 / sx, y1 / sy
    if fmt == "xywh":
        return a, b, c - a, d - b
    if fmt == "xyxy":
        return a, b, c, d
    raise ValueError(f"unknown box format {fmt!r}; use one of {', '.join(FORMATS)}")


def clamp_box(box: Box, image_size: tuple[int, int]) -> PixelBox:
    """Whole pixels (x0, y0, x1, y1), rounded outwards and clamped to the image; x1, y1 exclusive.

    Raises ValueError with a quarantine reason when the box is empty (x1 ≤ x0 or y1 ≤ y0), lies outside the
    page, has more than MAX_OUTSIDE of its area outside it, or is thinner than MIN_SIDE pixels once clamped.
    """
    width, height = image_size
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"box {_show(box)} has a non-finite number")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty box {_show(box)} (x1 ≤ x0 or y1 ≤ y0); check --box-format (xyxy vs xywh)")
    left, top = math.floor(x0 + EPS), math.floor(y0 + EPS)
    right, bottom = math.ceil(x1 - EPS), math.ceil(y1 - EPS)
    cx0, cy0, cx1, cy1 = max(0, left), max(0, top), min(width, right), min(height, bottom)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"box {_show(box)} lies outside the page ({width}×{height} px)")
    inside = (cx1 - cx0) * (cy1 - cy0) / ((right - left) * (bottom - top))
    if inside < 1 - MAX_OUTSIDE:
        raise ValueError(
            f"box {_show(box)} lies {100 * (1 - inside):.0f}% outside the page ({width}×{height} px); "
            "check the box format (xyxy vs xywh) and units"
        )
    if cx1 - cx0 < MIN_SIDE or cy1 - cy0 < MIN_SIDE:
        raise ValueError(f"box {_show(box)} is {cx1 - cx0}×{cy1 - cy0} px on the page, under {MIN_SIDE} px a side")
    return cx0, cy0, cx1, cy1


def page_box(spec: BoxSpec, image_size: tuple[int, int]) -> PixelBox:
    """`to_pixels` then `clamp_box`: the crop rectangle of `spec` on the decoded page, or ValueError."""
    return clamp_box(to_pixels(spec, image_size), image_size)


def alto_frame(unit: str | None, page_width: float | None, page_height: float | None
               ) -> tuple[float, float] | None:
    """The BoxSpec frame of ALTO coordinates: Page@WIDTH × Page@HEIGHT in `MeasurementUnit` (default pixel).

    ALTO boxes are scaled by image pixels / Page@WIDTH (and HEIGHT) whatever the unit, so pixel, mm10 and
    inch1200 files all land on the image as decoded. A pixel file without a page size is taken as pixels of
    the image. Raises ValueError for an unknown unit, or mm10/inch1200 without the page size (no way to know
    the resolution).
    """
    unit = (unit or "pixel").strip().lower()
    if unit not in ALTO_UNITS:
        raise ValueError(f"ALTO MeasurementUnit {unit!r} is not one of {', '.join(ALTO_UNITS)}")
    if page_width and page_height and page_width > 0 and page_height > 0:
        return float(page_width), float(page_height)
    if unit == "pixel":
        return None
    raise ValueError(f"ALTO file in {unit} has no Page@WIDTH/HEIGHT, so its boxes cannot be scaled to the image")


def units_per_pixel(unit: str, dpi: float) -> float:
    """ALTO units per image pixel at `dpi` (pixel: 1, mm10: 254/dpi, inch1200: 1200/dpi): for writing test
    documents; reading never needs the resolution (see `alto_frame`)."""
    return {"pixel": 1.0, "mm10": 254.0 / dpi, "inch1200": 1200.0 / dpi}[unit]


def _show(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
