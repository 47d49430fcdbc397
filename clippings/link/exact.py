"""Exact numerics of the searches: float64 cosine distances of pairs, the float64 check of float32
candidates at the threshold, and the brute-force within-t pairs that calibration and recall are measured
against.

FAISS and BLAS compute inner products in float32; a pair's distance is decided in float64 as scipy's cosine
distance (1 − x·y / (|x||y|)), and candidates are gathered with a margin (the float32 dot-product error
bound: clippings.link.pruned.float32_margin) so no pair at exactly t is lost to rounding. Distances are
clipped to [0, 2].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from clippings.link.products import BFLOAT16_WORK, pairs_above
from clippings.link.pruned import BLOCK, float32_margin
from clippings.numeric import unique_ints

if TYPE_CHECKING:
    from clippings.link.cells import PartLists


def cosine_distances_of_pairs(
    x: np.ndarray | PartLists, norms: np.ndarray | None, src: np.ndarray, dst: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """float64 cosine distance 1 − x_i·x_j / (|x_i||x_j|) of each pair, clipped to [0, 2].

    The same formula as scipy's `cosine` and sklearn's `cosine_distances`, so cuts agree with them at the
    boundary. norms: float64 row norms of x (None: computed from the pairs' rows, when few rows are paired).
    Cost: O(E·d) time, O(chunk·d) extra memory.
    """
    out = np.empty(len(src), dtype=np.float64)
    for start in range(0, len(src), chunk):
        i, j = src[start : start + chunk], dst[start : start + chunk]
        a, b = x[i].astype(np.float64), x[j].astype(np.float64)
        if norms is None:
            scale = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        else:
            scale = norms[i] * norms[j]
        out[start : start + chunk] = 1.0 - np.einsum("ij,ij->i", a, b) / scale
    return np.clip(out, 0.0, 2.0, out=out)


def confirmed_pairs(
    x: np.ndarray | PartLists, norms: np.ndarray | None, src: np.ndarray, dst: np.ndarray, sims: np.ndarray,
    threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs with float32 similarities → (a < b, b, float64-safe distance) of those ≤ threshold.

    Pairs whose float32 distance lies within the rounding margin of t are recomputed in float64; the
    others keep the float32 distance (the final edges are recomputed in float64 anyway). Self pairs drop.
    """
    margin = float32_margin(x.shape[1])
    keep = src != dst
    src, dst = src[keep], dst[keep]
    dist = 1.0 - sims[keep].astype(np.float64)
    near = np.flatnonzero(np.abs(dist - threshold) <= margin)
    dist[near] = cosine_distances_of_pairs(x, norms, src[near], dst[near])
    keep = dist <= threshold
    src, dst, dist = src[keep], dst[keep], np.clip(dist[keep], 0.0, 2.0)
    return np.minimum(src, dst), np.maximum(src, dst), dist


def exact_pairs(x: np.ndarray | PartLists, norms: np.ndarray | None, rows: np.ndarray, threshold: float
                ) -> np.ndarray:
    """Keys a·n + b (a < b) of every pair within threshold that involves x[rows], by brute force in float32
    blocks (no copy of x) with the float64 check. x: an array, or row blocks (clippings.link.cells.PartLists,
    walked piece by piece). Cost: O(len(rows)·n·d)."""
    n = len(x)
    min_sim = 1.0 - threshold - 2 * float32_margin(x.shape[1])
    step = max(1, BLOCK // max(1, len(rows)))
    queries = x[rows]
    if isinstance(x, np.ndarray):
        pieces = ((np.arange(s, min(n, s + step)), x[s : s + step]) for s in range(0, n, step))
    else:
        pieces = x.pieces(step)
    keys = [np.empty(0, np.int64)]
    product = "auto" if len(rows) * n * x.shape[1] >= BFLOAT16_WORK else "float32"
    for numbers, block in pieces:
        i, j, sims = pairs_above(queries, block, min_sim, product)
        a, b, _ = confirmed_pairs(x, norms, rows[i], numbers[j], sims, threshold)
        keys.append(a * n + b)
    return unique_ints(np.concatenate(keys))
