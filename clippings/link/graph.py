"""The neighbour graph every search hands to single linkage, and the IVF cells an `ivf` search leaves behind.

Shared by the searches (clippings.link.knn, clippings.link.ivf, clippings.link.incremental) and by the links
folder that keeps the cells (clippings.link.store), so it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class IvfCells:
    """The cells of an IVF index: centroids (nlist, d) float32 and the cell of each row (n,) int64."""

    centroids: np.ndarray
    assign: np.ndarray


@dataclass
class Graph:
    """Undirected edges (src < dst, row indices into the vectors) with float64 cosine distances.

    exact_up_to: single linkage of the graph is exact up to this distance: the graph holds every pair
    ≤ exact_up_to, or a minimum spanning forest of them when compacted (`ivf`: spanning forests of each
    batch's pairs; up to the recall).
    recall: for `ivf`, the fraction of the exact within-threshold pairs found, measured on a sample.
    stats: counts and timings for links.json.
    cells: for `ivf`, the index's cells (centroids, cell of each row), which `link --add` reuses to
    index new rows without re-training or re-assigning the old ones.
    """

    n: int
    src: np.ndarray
    dst: np.ndarray
    distance: np.ndarray
    exact_up_to: float
    index: str
    recall: float | None = None
    stats: dict = field(default_factory=dict)
    cells: IvfCells | None = None
