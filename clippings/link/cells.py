"""The IVF range search done cell by cell: the queries are the index's own lists, taken a cell at a time.

Why not `index.range_search(x[rows])`, as before: (1) with nlist = 2·√n the lists hold √n/2 rows each, so a
query's work (nprobe lists + nlist centroids) grows as √n and the whole search as n^1.5 — 5M took 12.8× the
time of 1M; (2) queries in row order touch unrelated lists one after another, so every list comes from
memory, not cache. Here nlist grows with n (a constant mean list size, `nlist_for`), and a batch of
queries is whole cells: a cell's rows probe the same few neighbouring lists, which stay in cache.

Probing: the rows of a cell are compared with every row of the `nprobe` cells whose centroids are nearest
its own (its own first; a table of nlist rows computed once), in one float32 GEMM per cell, instead of
FAISS's search over all nlist centroids per query (n·nlist·d: the dominant cost once nlist grows with n)
and its per-query list scans (measured at 200k × 256, rows in random order, same process and load: per-query
`range_search` 397 µs a query, FAISS `range_search_preassigned` cell by cell 628 µs, the GEMM 149 µs with
7 % more pairs found). The recall of within-t pairs is calibrated and measured with the same probing
(clippings.link.ivf), so it is what is reported.

The queries come from the lists themselves (IndexIVFFlat keeps float32 rows): a process that holds the
index needs no other copy of the vectors — the Ray actors of clippings.link.actors hold only the index.
Pairs whose float32 distance lies within the rounding margin of t are re-checked in float64 from the index
(its direct map), as the in-process search does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clippings.link.pruned import float32_margin
from clippings.link.slink import ForestBuffer

LIST_SIZE = 256
"""Mean rows per IVF list (nlist = n / LIST_SIZE): constant, so a query's list scans cost the same at any n."""
PROBE_WIDTH = 1
"""Columns of the probe table per probe (the table holds the PROBE_WIDTH·nprobe nearest cells of each cell)."""
BATCH_ROWS = 8192
"""Query rows per range-search call (whole cells): bounds the transient result memory."""


def nlist_for(n: int, list_size: int = LIST_SIZE) -> int:
    """IVF cells for n rows: n / list_size, at least 16 (and at most n)."""
    return int(min(n, max(16, round(n / list_size))))


LARGE_NLIST = 2048
"""From this many cells, k-means is two-level and rows find their cell through an HNSW graph of the centroids:
a flat quantizer costs n·nlist·d to fill the index, quadratic in n once nlist grows with n."""


def build_ivf(x: np.ndarray, nlist: int, seed: int = 0, train_per_cell: int = 32, niter: int = 10,
              chunk: int = 1 << 18):
    """An IndexIVFFlat (inner product) over x with row numbers as ids and a direct map (row → list slot).

    Below LARGE_NLIST cells: k-means (`niter` iterations) on min(n, train_per_cell·nlist) sampled rows and a
    flat quantizer (filling costs O(n·nlist·d)). From LARGE_NLIST: FAISS's two-level k-means (√nlist coarse
    cells, each split in proportion to its rows; train_per_cell/2 rows per cell) and an HNSW quantizer
    (filling O(n·log nlist·d); a row may land in a near-nearest cell, which the calibrated nprobe covers).
    Rows are added in chunks of `chunk`. Memory: n·(4·d + 16) bytes + the training sample.
    """
    import faiss

    n, dim = x.shape
    rng = np.random.default_rng(seed)
    if nlist < LARGE_NLIST:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = niter
        index.cp.min_points_per_centroid = 1
        index.cp.max_points_per_centroid = max(train_per_cell, 1)
        index.train(x[np.sort(rng.choice(n, size=min(n, train_per_cell * nlist), replace=False))])
    else:
        from faiss.contrib.clustering import two_level_clustering

        sample = x[np.sort(rng.choice(n, size=min(n, train_per_cell // 2 * nlist), replace=False))]
        centroids, _ = two_level_clustering(np.ascontiguousarray(sample, dtype=np.float32),
                                            int(math.sqrt(nlist)), nlist, clustering_niter=niter,
                                            seed=seed, spherical=True, min_points_per_centroid=1)
        del sample
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = 64
        quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    for start in range(0, n, chunk):
        index.add(np.ascontiguousarray(x[start : start + chunk], dtype=np.float32))
    index.make_direct_map()
    return index


@dataclass
class CellPlan:
    """What cell-by-cell probing needs: the centroids (nlist, d) float32 and, for each cell, the cells whose
    centroids are nearest its own (nlist, width) int64, its own first; `nprobe` lists probed per query."""

    centroids: np.ndarray
    neighbours: np.ndarray
    nprobe: int

    def with_nprobe(self, nprobe: int) -> CellPlan:
        return CellPlan(self.centroids, self.neighbours, int(min(nprobe, len(self.centroids))))

    def trimmed(self) -> CellPlan:
        """The same probing with only the neighbour columns it reads (smaller to ship to actors)."""
        width = min(self.neighbours.shape[1], PROBE_WIDTH * self.nprobe)
        return CellPlan(self.centroids, np.ascontiguousarray(self.neighbours[:, :width]), self.nprobe)


def cell_plan(index, nprobe: int, max_nprobe: int | None = None) -> CellPlan:
    """The probing table of an IVF index for up to `max_nprobe` (default nprobe) probes per query.
    Cost: O(nlist²·d) (a FAISS kNN of the centroids among themselves)."""
    import faiss

    centroids = index.quantizer.reconstruct_n(0, index.nlist)
    width = int(min(index.nlist, PROBE_WIDTH * max(nprobe, max_nprobe or nprobe)))
    _, neighbours = faiss.knn(centroids, centroids, width, metric=faiss.METRIC_INNER_PRODUCT)
    return CellPlan(centroids, neighbours.astype(np.int64), int(min(nprobe, index.nlist)))


def confirm(index, q: np.ndarray, local: np.ndarray, rows: np.ndarray, dst: np.ndarray, sims: np.ndarray,
            threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range-search hits (query q[local] = row rows[local], neighbour dst, float32 similarity) → the pairs
    (a < b, b, distance) within threshold, self pairs dropped. Hits within the float32 margin of t are
    re-checked in float64 with the neighbour's vector from the index (its direct map)."""
    src = rows[local]
    keep = src != dst
    src, dst, local = src[keep], dst[keep], local[keep]
    dist = 1.0 - sims[keep].astype(np.float64)
    near = np.flatnonzero(np.abs(dist - threshold) <= float32_margin(q.shape[1]))
    if len(near):
        a = q[local[near]].astype(np.float64)
        b = index.reconstruct_batch(dst[near]).astype(np.float64)
        dots = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        dist[near] = 1.0 - dots
    keep = dist <= threshold
    src, dst, dist = src[keep], dst[keep], np.clip(dist[keep], 0.0, 2.0)
    return np.minimum(src, dst), np.maximum(src, dst), dist


def query(index, plan: CellPlan, q: np.ndarray, rows: np.ndarray, cells: np.ndarray, threshold: float,
          once: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within threshold that searching q (rows `rows`, in cells `cells`) finds: each query is compared
    with every row of the plan's nprobe cells nearest its own cell (its own first), one float32 GEMM per
    cell (BLAS: ~3× FAISS's per-query list scans here). Returns (a < b, b, distance).

    once: the queries are whole cells of a search of every cell: a pair (a in A, b in B) is then met from
    both sides when A and B probe each other, and is kept only from the side of the smaller row, so every
    pair comes out exactly once over the whole search (no deduplication sort; half the edges)."""
    min_sim = 1.0 - threshold - 2 * float32_margin(q.shape[1])
    found = [(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))]
    order = np.argsort(cells, kind="stable")
    bounds = np.flatnonzero(np.diff(cells[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        own = int(cells[group[0]])
        probe = plan.neighbours[own, : plan.nprobe]
        parts = [list_rows(index, c) for c in probe.tolist()]
        ids = np.concatenate([p[0] for p in parts])
        if not len(ids):
            continue
        sims = q[group] @ np.concatenate([p[1] for p in parts]).T
        i, j = np.nonzero(sims > min_sim)
        if once:  # a pair that both sides' searches meet is kept from the side of its smaller row only
            other = np.repeat(probe, [len(p[0]) for p in parts])[j]
            mutual = (plan.neighbours[other, : plan.nprobe] == own).any(axis=1)
            keep = ~mutual | (rows[group[i]] < ids[j])
            i, j = i[keep], j[keep]
        found.append((group[i], ids[j], sims[i, j]))
    local, dst, hit_sims = (np.concatenate(a) for a in zip(*found, strict=True))
    return confirm(index, q, local, rows, dst, hit_sims, threshold)


def list_rows(index, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, float32 vectors) of one IVF list (a copy)."""
    from faiss.contrib.inspect_tools import get_invlist

    ids, codes = get_invlist(index.invlists, int(cell))
    return ids, codes.view(np.float32).reshape(len(ids), index.d)


def cell_batches(sizes: np.ndarray, rows: int = BATCH_ROWS) -> list[tuple[int, int]]:
    """Consecutive cell ranges [c0, c1) of about `rows` query rows each (a bigger cell is a batch alone)."""
    batches, c0, held = [], 0, 0
    for c, size in enumerate(sizes.tolist()):
        if held and held + size > rows:
            batches.append((c0, c))
            c0, held = c, 0
        held += size
    if c0 < len(sizes):
        batches.append((c0, len(sizes)))
    return batches


def list_sizes(index) -> np.ndarray:
    """Rows in each IVF list (nlist,) int64."""
    return np.array([index.invlists.list_size(c) for c in range(index.nlist)], dtype=np.int64)


def search_cells(index, plan: CellPlan, batches: list[tuple[int, int]], threshold: float,
                 max_edges: int | None, progress: Callable[[int], None] | None = None, forest: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Range-search every row of the cells in `batches` (the queries are read from the lists), folding the
    pairs within threshold into a minimum spanning forest as they come (`forest`: always end with one, as
    an actor does before sending its edges back).

    Returns (src, dst, distance, compactions, queries); distances are float32-exact (re-checked in float64
    near t), to be recomputed in float64 by the caller for the edges kept. Memory O(n + max_edges).
    """
    buffer = ForestBuffer(index.ntotal, max_edges, unique=True)  # query(once=True): each pair once
    queries = 0
    for c0, c1 in batches:
        parts = [list_rows(index, c) for c in range(c0, c1)]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        q = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, index.d), np.float32)
        cells = np.repeat(np.arange(c0, c1), [len(p[0]) for p in parts])
        buffer.add(*query(index, plan, q, rows, cells, threshold, once=True))
        queries += len(rows)
        if progress is not None:
            progress(len(rows))
    if forest and buffer.pending:
        buffer.compact()
    src, dst, dist = buffer.result()
    return src, dst, dist, buffer.compactions, queries


def balanced_shards(batches: list[tuple[int, int]], shards: int) -> list[list[tuple[int, int]]]:
    """Split the batches into `shards` runs of consecutive batches of about equal count (a run of cells
    keeps its lists' locality)."""
    per = math.ceil(len(batches) / max(1, shards)) if batches else 1
    return [batches[i : i + per] for i in range(0, len(batches), per)]
