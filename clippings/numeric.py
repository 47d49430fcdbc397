"""Array helpers the hot paths share."""

from __future__ import annotations

import numpy as np


def unique_ints(values: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, ascending (np.unique's result), by one sort and a neighbour
    comparison. Why not np.unique: without return_* arguments numpy 2.4 takes a hash-table path that is an
    order of magnitude slower than sorting on the large arrays of many distinct keys deduplicated here
    (pairs, n-grams; docs/benchmarks.md#deduplicating-integer-keys)."""
    flat = np.sort(np.asarray(values).ravel())
    keep = np.ones(flat.size, bool)
    np.not_equal(flat[1:], flat[:-1], out=keep[1:])
    return flat[keep]
