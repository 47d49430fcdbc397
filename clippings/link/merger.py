"""The spread link's forest, MST and cut, held by one Ray actor instead of the driver.

The search actors' forests go to the ForestMerger straight from the object store; it folds them
(clippings.link.slink.ForestBuffer), asks the search actors for the kept edges' float64 distances, takes the
MST and cuts it. It then serves what the tables' tasks need: each row's component, each component's size, the
MST's row numbers per embeddings part, the members of a few clusters. The driver receives counts only, so its
memory does not grow with the rows (clippings.link.spread). What the merger holds: O(n + max_edges) for the
forest while it folds, then the MST (24 B an edge) and the components (4 B a row); it takes no CPU from the
search (num_cpus 0, like the driver it stands in for).
"""

from __future__ import annotations

import time

import numpy as np

from clippings.link.actors import searcher_distances
from clippings.link.pipeline import size_floor, size_histogram
from clippings.link.slink import ForestBuffer, Mst, components, mst_from_graph


class ForestMerger:
    """A Ray actor (start it with `remote_merger`): add forests, then cut, then serve the cut."""

    def __init__(self, n: int, max_edges: int):
        self.n = n
        self.buffer: ForestBuffer | None = ForestBuffer(n, max_edges, unique=True)  # one shard per pair
        self.mst: Mst | None = None
        self.labels = np.empty(0, np.int32)
        self.sizes = np.empty(0, np.int64)

    def add(self, forest: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Fold one search shard's forest in."""
        self.buffer.add(*forest)

    def cut(self, searchers: list, threshold: float, largest: int) -> dict:
        """The MST of every forest added, with the searchers' float64 distances, cut at `threshold`: the
        counts the driver records (edges folded, compactions, MST edges, clusters and their size histogram,
        the size from which a cluster may be among the `largest`, seconds)."""
        start = time.perf_counter()
        src, dst, dist = self.buffer.result()
        edges, compactions = len(src), self.buffer.compactions
        self.buffer = None
        dist = searcher_distances(searchers, src, dst)
        self.mst = mst_from_graph(self.n, src, dst, dist)
        del src, dst, dist
        self.labels = components(self.mst, threshold).astype(np.int32)
        self.sizes = np.bincount(self.labels, minlength=1 if self.n else 0).astype(np.int64)
        return {"edges": int(edges), "compactions": int(compactions), "mst_edges": int(len(self.mst.src)),
                "clusters": int(len(self.sizes)), "size_histogram": size_histogram(self.sizes),
                "floor": size_floor(self.sizes, largest), "seconds": time.perf_counter() - start}

    def row_components(self) -> np.ndarray:
        """The component of each row (int32, row order)."""
        return self.labels

    def component_sizes(self) -> np.ndarray:
        """The size of each component (int64)."""
        return self.sizes

    def members(self, components: list[int]) -> list[np.ndarray]:
        """The rows of each of these components (ascending)."""
        return [np.flatnonzero(self.labels == c) for c in components]

    def mst_requests(self, firsts: list[int]) -> tuple:
        """For each embeddings part (rows firsts[p] … firsts[p + 1] − 1): the MST endpoints it holds, as
        (places, rows in the part), places counting 2·i for edge i's src and 2·i + 1 for its dst, ascending.
        One result per part (a tuple when more than one)."""
        ends = np.empty(2 * len(self.mst.src), np.int64)
        ends[0::2], ends[1::2] = self.mst.src, self.mst.dst
        part = np.searchsorted(np.asarray(firsts[1:]), ends, side="right")
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(len(firsts)))
        out = tuple((order[a:b], ends[order[a:b]] - firsts[p])
                    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)))
        return out if len(out) > 1 else out[0]

    def mst_distances(self, chunk: int) -> tuple:
        """The MST's distances in chunks of `chunk` edges (MST order); one result per chunk."""
        d = self.mst.distance
        out = tuple(d[start : start + chunk] for start in range(0, max(len(d), 1), chunk))
        return out if len(out) > 1 else out[0]


def remote_merger(n: int, max_edges: int):
    """A ForestMerger actor (no CPU reserved: it waits most of the search)."""
    import ray

    return ray.remote(num_cpus=0)(ForestMerger).remote(n, max_edges)
