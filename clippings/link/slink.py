"""Single linkage from a neighbour graph: the minimum spanning tree, cuts at a threshold, stable cluster ids.

The MST of a graph that holds every pair ≤ T is the single-linkage dendrogram up to T: cutting it at any
t ≤ T (dropping edges > t) gives the connected components of {pairs with d ≤ t} — DBSCAN's convention
(linked when d ≤ t) with min_samples = 1. scipy.sparse drops explicit zeros, and reprints can be exact
duplicates (d = 0), so zero weights are stored as the smallest positive float64 (below any non-zero
distance 1 − x·y can produce) and restored to 0 afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ZERO = np.finfo(np.float64).tiny


@dataclass
class Mst:
    """A minimum spanning forest over n points: edges (src, dst row indices) with float64 distances,
    sorted by distance (ties by src, dst) so a sweep or a cut reads them in order."""

    n: int
    src: np.ndarray
    dst: np.ndarray
    distance: np.ndarray


def mst_from_graph(n: int, src: np.ndarray, dst: np.ndarray, distance: np.ndarray) -> Mst:
    """Minimum spanning forest of an undirected graph with unique pairs (src < dst).

    Cost: O(E log E) time (scipy's Kruskal), O(n + E) memory; a 100k-node kNN graph takes under a second.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    if len(src) == 0:
        empty = np.empty(0, np.int64)
        return Mst(n, empty, empty.copy(), np.empty(0, np.float64))
    weights = np.maximum(np.asarray(distance, dtype=np.float64), _ZERO)  # keep d = 0 edges (duplicates)
    graph = coo_matrix((weights, (src, dst)), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    d = np.where(tree.data <= _ZERO, 0.0, tree.data)
    a = np.minimum(tree.row, tree.col).astype(np.int64)
    b = np.maximum(tree.row, tree.col).astype(np.int64)
    order = np.lexsort((b, a, d))
    return Mst(n, a[order], b[order], d[order])


def spanning_forest(src: np.ndarray, dst: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, ...]:
    """A minimum spanning forest of unique pairs (src < dst) over the rows they touch: (src, dst, distance).
    The nodes are renumbered first, so the cost is O(E log E) whatever the row numbers (no n-sized arrays)."""
    if not len(src):
        return src, dst, distance
    nodes, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    mst = mst_from_graph(len(nodes), inverse[: len(src)], inverse[len(src) :], distance)
    return nodes[mst.src], nodes[mst.dst], mst.distance


def components(mst: Mst, threshold: float) -> np.ndarray:
    """Component number of each point after dropping MST edges with distance > threshold (O(n))."""
    keep = mst.distance <= threshold
    return _components_of(mst.n, mst.src[keep], mst.dst[keep])


def _components_of(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ones = np.ones(len(src), dtype=np.int8)  # 1, not the distance: a 0 weight would vanish
    _, labels = connected_components(coo_matrix((ones, (src, dst)), shape=(n, n)), directed=False)
    return labels


def joined_pairs(mst: Mst, edge: int) -> int:
    """How many clipping pairs MST edge `edge` joins: the product of the sizes of the two components it merges
    when the edges are added in their sorted (Kruskal) order. Single linkage links those pairs exactly when
    the edge is kept, so it is what linking the edge wrongly (or leaving it out wrongly) costs in pair-counting
    scores such as ARI. O(n + E) (the components of the edges before it)."""
    labels = _components_of(mst.n, mst.src[:edge], mst.dst[:edge])
    sizes = np.bincount(labels)
    return int(sizes[labels[mst.src[edge]]]) * int(sizes[labels[mst.dst[edge]]])


def stable_cluster_ids(ids: np.ndarray | pa.Array, labels: np.ndarray) -> np.ndarray | pa.Array:
    """Name each component by its smallest member clipping_id (string order): the same clusters get the
    same names across runs, whatever the row order. Cost: one sort of the ids. Arrow ids (a spread link's)
    are sorted by Arrow and the names are Arrow: no Python string per row."""
    arrow = isinstance(ids, pa.Array | pa.ChunkedArray)
    if arrow:
        order = pc.sort_indices(ids).to_numpy()
    else:
        ids = np.asarray(ids, dtype=object)
        order = np.argsort(ids.astype(str), kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    first = np.full(labels.max() + 1 if len(labels) else 0, len(ids), dtype=np.int64)
    np.minimum.at(first, labels, rank)
    chosen = order[first[labels]]
    return ids.take(pa.array(chosen)) if arrow else ids[chosen]


def cut_mst(ids: np.ndarray | pa.Array, mst: Mst, threshold: float) -> np.ndarray | pa.Array:
    """Cluster id (smallest member id) of each point at `threshold`; linked when distance ≤ threshold."""
    return stable_cluster_ids(ids, components(mst, threshold))


def dedupe_min(n: int, src: np.ndarray, dst: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep one copy of each pair (src < dst), the one with the smallest distance. scipy's sparse matrices
    would sum repeated pairs instead. Cost: one O(E log E) sort."""
    key = src.astype(np.int64) * n + dst
    order = np.lexsort((distance, key))
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    keep = order[first]
    return src[keep], dst[keep], distance[keep]


class ForestBuffer:
    """Collects edges (src < dst, float64 distances) in parts and, once more than `max_edges` have come in
    since the last compaction, replaces them by their minimum spanning forest.

    Single linkage needs only the MST, and by the cycle property the MST of a union of graphs is the MST of
    the union of their MSTs: whatever the order of compactions, the final forest is an MST of every edge
    added (ties aside, which change no cut). Memory stays O(n + max_edges) however many pairs lie within t;
    each compaction costs O((n + max_edges) log n). max_edges None: never compact (keep every edge).
    """

    def __init__(self, n: int, max_edges: int | None = None, unique: bool = False):
        self.n = n
        self.unique = unique  # the caller adds each pair once: no deduplication needed
        self.max_edges = max_edges
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pending = 0
        self.compactions = 0

    def add(self, src: np.ndarray, dst: np.ndarray, distance: np.ndarray) -> None:
        """Add edges (a pair may repeat: the smallest distance counts); compact when over the limit."""
        if len(src):
            self.parts.append((src, dst, distance))
            self.pending += len(src)
        if self.max_edges is not None and self.pending > self.max_edges:
            self.compact()

    def compact(self) -> None:
        """Replace the edges held by their minimum spanning forest (≤ n − 1 edges)."""
        mst = mst_from_graph(self.n, *self.edges())
        self.parts = [(mst.src, mst.dst, mst.distance)]
        self.pending = 0
        self.compactions += 1

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The edges held, as one minimum spanning forest if any compaction happened (else every edge)."""
        if self.compactions and self.pending:
            self.compact()
        return self.edges()

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, distance) of the edges held, each pair once."""
        if not self.parts:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
        src, dst, dist = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        src, dst = src.astype(np.int64, copy=False), dst.astype(np.int64, copy=False)
        if not self.unique:
            src, dst, dist = dedupe_min(self.n, src, dst, dist)
        self.parts = [(src, dst, dist)]
        return src, dst, dist
