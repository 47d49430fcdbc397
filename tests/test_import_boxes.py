"""Every box convention through `clippings.importers.boxes`: round trips, clamping, quarantine reasons, and the
photo–caption pairing rule."""

from __future__ import annotations

import itertools

import pytest

from clippings.importers.boxes import (
    BoxSpec,
    alto_frame,
    clamp_box,
    from_pixels,
    page_box,
    to_pixels,
    units_per_pixel,
)
from clippings.importers.pairing import pair_captions

SIZE = (1237, 1789)  # odd sizes: fractions and percents of them are not exact in binary
BOXES = [(0, 0, SIZE[0], SIZE[1]), (13, 7, 411, 389), (1000, 1500, 1237, 1789), (3, 1788 - 5, 10, 1789)]


@pytest.mark.parametrize("fmt,units", list(itertools.product(("xyxy", "xywh"), ("pixels", "fraction", "percent"))))
def test_every_format_and_unit_round_trips_to_the_same_pixels(fmt, units):
    for box in BOXES:
        values = from_pixels(box, fmt, units, SIZE)
        spec = BoxSpec(values, fmt, units)
        assert page_box(spec, SIZE) == box
        assert to_pixels(spec, SIZE) == pytest.approx(box, abs=1e-6)


@pytest.mark.parametrize("unit", ["pixel", "mm10", "inch1200"])
@pytest.mark.parametrize("dpi", [300.0, 400.0])
def test_alto_units_scale_by_image_pixels_over_page_width(unit, dpi):
    k = units_per_pixel(unit, dpi)
    frame = alto_frame(unit, SIZE[0] * k, SIZE[1] * k)
    for box in BOXES:
        x0, y0, x1, y1 = box
        spec = BoxSpec((x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k), "xywh", "pixels", frame)
        assert page_box(spec, SIZE) == box
        # the same ALTO read against a half-size derivative of the page lands on the half-size box
        half = (SIZE[0] // 2, SIZE[1] // 2)
        hx0, hy0, hx1, hy1 = to_pixels(spec, half)
        assert hx0 == pytest.approx(x0 * half[0] / SIZE[0]) and hy1 == pytest.approx(y1 * half[1] / SIZE[1])


def test_alto_frame_rules():
    assert alto_frame(None, None, None) is None  # pixel ALTO without a page size: pixels of the image
    assert alto_frame("PIXEL", 10, 20) == (10.0, 20.0)
    with pytest.raises(ValueError, match="no Page@WIDTH"):
        alto_frame("mm10", None, None)
    with pytest.raises(ValueError, match="not one of"):
        alto_frame("furlong", 1, 1)


def test_american_stories_approximate_size_is_the_jp2_itself_and_a_derivative_is_scaled():
    box = (100, 200, 300, 400)
    approx = BoxSpec(box, "xyxy", "pixels", (1010, 2020), 0.05)  # stored size 1% off the decoded 1000×2000
    assert page_box(approx, (1000, 2000)) == box
    derivative = BoxSpec(box, "xyxy", "pixels", (1000, 2000), 0.05)
    assert page_box(derivative, (500, 1000)) == (50, 100, 150, 200)


def test_clamping_rounds_outwards_and_reasons_name_the_problem():
    assert clamp_box((10.2, 20.7, 30.1, 40.0), (100, 100)) == (10, 20, 31, 40)
    assert clamp_box((-5, -5, 50, 50), (100, 100)) == (0, 0, 50, 50)  # partly outside: clamped
    with pytest.raises(ValueError, match="empty box"):
        clamp_box((50, 50, 40, 60), (100, 100))
    with pytest.raises(ValueError, match="outside the page"):
        clamp_box((120, 130, 150, 160), (100, 100))
    with pytest.raises(ValueError, match="xyxy vs xywh"):
        clamp_box((60, 60, 160, 160), (100, 100))  # 84% outside: corners read as x,y,w,h, most likely
    with pytest.raises(ValueError, match="non-finite"):
        clamp_box((float("nan"), 0, 5, 5), (100, 100))
    with pytest.raises(ValueError, match="under 2 px"):
        clamp_box((10, 10, 11, 30), (100, 100))
    with pytest.raises(ValueError, match="needs 4"):
        to_pixels(BoxSpec((1, 2, 3)), (10, 10))  # type: ignore[arg-type]


def test_pairing_is_one_to_one_and_takes_the_caption_below_when_two_photos_are_stacked():
    top, bottom = (100, 100, 400, 300), (100, 340, 400, 540)
    cap_top, cap_bottom = (110, 305, 390, 335), (110, 545, 390, 575)  # cap_top lies between the photos
    pairs = pair_captions([top, bottom], [cap_bottom, cap_top])
    assert [p[0] for p in pairs] == [1, 0]
    assert all(0 < p[1] <= 1 for p in pairs)
    # a caption far away or beside the photo pairs with nothing; one caption never serves two photos
    assert pair_captions([top], [(600, 305, 800, 335)]) == [(None, None)]
    twins = pair_captions([top, (100, 100, 400, 300)], [cap_top])
    assert sorted(p[0] is None for p in twins) == [False, True]
