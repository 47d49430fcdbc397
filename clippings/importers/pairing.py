"""Pair each picture with at most one caption block by geometry, one to one.

A caption belongs to the picture it overlaps horizontally and sits nearest to vertically, most often just
below. Pairs are chosen together (an assignment minimising the summed cost), not greedily, so on a page with
two photos stacked one above the other the caption between them goes to the photo it belongs to and the
second photo keeps its own caption. The cost of a photo–caption pair is
    vertical gap / photo height + (1 − horizontal overlap / caption width) + ABOVE_PENALTY if above,
and a pair is allowed only when the overlap share is at least MIN_OVERLAP and the gap at most MAX_GAP photo
heights. Confidence = 1 − cost / (MAX_GAP + 1 − MIN_OVERLAP + ABOVE_PENALTY), in (0, 1]: 1 for a caption
touching the photo's bottom edge and spanning inside its width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clippings.importers.boxes import Box

MIN_OVERLAP = 0.5
"""Share of the caption's width that must lie within the photo's columns."""
MAX_GAP = 0.5
"""Largest vertical gap between photo and caption, in photo heights."""
ABOVE_PENALTY = 0.25
"""Captions above their photo are rarer than below; this breaks ties towards the one below."""
_WORST = MAX_GAP + (1 - MIN_OVERLAP) + ABOVE_PENALTY


def pair_cost(photo: Box, caption: Box) -> float | None:
    """The cost of pairing `caption` with `photo` (boxes as x0, y0, x1, y1 in one frame), None if not allowed."""
    px0, py0, px1, py1 = photo
    cx0, cy0, cx1, cy1 = caption
    width = cx1 - cx0
    height = py1 - py0
    if width <= 0 or height <= 0:
        return None
    overlap = max(0.0, min(px1, cx1) - max(px0, cx0)) / width
    if overlap < MIN_OVERLAP:
        return None
    above = cy1 <= (py0 + py1) / 2 and cy0 < py0  # the caption's body lies over the photo's upper half
    gap = max(0.0, py0 - cy1) if above else max(0.0, cy0 - py1)
    if gap > MAX_GAP * height:
        return None
    return gap / height + (1 - overlap) + (ABOVE_PENALTY if above else 0.0)


def pair_captions(photos: Sequence[Box], captions: Sequence[Box]) -> list[tuple[int | None, float | None]]:
    """For each photo, (index of its caption or None, pairing confidence or None); each caption used once.

    Cost: an assignment over a photos × captions matrix (scipy's linear_sum_assignment), O(n³) in the
    boxes of one page (tens at most).
    """
    result: list[tuple[int | None, float | None]] = [(None, None)] * len(photos)
    if not photos or not captions:
        return result
    from scipy.optimize import linear_sum_assignment

    big = 1e6
    cost = np.full((len(photos), len(captions)), big)
    for i, p in enumerate(photos):
        for j, c in enumerate(captions):
            value = pair_cost(p, c)
            if value is not None:
                cost[i, j] = value
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] < big:
            result[i] = (int(j), round(1 - float(cost[i, j]) / _WORST, 4))
    return result
