"""The IVF range search done cell by cell: the queries are the index's own lists, taken a cell at a time.

Why not `index.range_search(x[rows])`, as before: (1) with nlist = 2·√n the lists hold √n/2 rows each, so a
query's work (nprobe lists + nlist centroids) grows as √n and the whole search as n^1.5 — 5M took 12.8× the
time of 1M; (2) queries in row order touch unrelated lists one after another, so every list comes from
memory, not cache. Here nlist grows with n (a constant mean list size, `nlist_for`), and a batch of
queries is whole cells: a cell's rows probe the same few neighbouring lists, which stay in cache.

Probing: each query probes its `nprobe` nearest centroids among the `PROBE_WIDTH · nprobe` centroids nearest
its own cell's (a table of nlist rows computed once), instead of FAISS's search over all nlist centroids per
query (n·nlist·d: the dominant cost once nlist grows with n). The probes go to FAISS's
`range_search_preassigned`. The recall of within-t pairs is calibrated and measured with the same probing
(clippings.link.knn), so it is what is reported.

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
PROBE_WIDTH = 4
"""A query picks its nprobe lists among the PROBE_WIDTH·nprobe centroids nearest its own cell's."""
BATCH_ROWS = 8192
"""Query rows per range-search call (whole cells): bounds the transient result memory."""


def nlist_for(n: int, list_size: int = LIST_SIZE) -> int:
    """IVF cells for n rows: n / list_size, at least 16 (and at most n)."""
    return int(min(n, max(16, round(n / list_size))))


def build_ivf(x: np.ndarray, nlist: int, seed: int = 0, train_per_cell: int = 32, niter: int = 10,
              chunk: int = 1 << 18):
    """An IndexIVFFlat (inner product) over x with row numbers as ids and a direct map (row → list slot).

    k-means: `niter` iterations on min(n, train_per_cell·nlist) sampled rows. Rows are added in chunks of
    `chunk` (FAISS assigns each to its nearest centroid: O(n·nlist·d)). Memory: n·(4·d + 16) bytes.
    """
    import faiss

    n, dim = x.shape
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = niter
    index.cp.min_points_per_centroid = 1
    index.cp.max_points_per_centroid = max(train_per_cell, 1)
    rng = np.random.default_rng(seed)
    index.train(x[np.sort(rng.choice(n, size=min(n, train_per_cell * nlist), replace=False))])
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


def probes(plan: CellPlan, q: np.ndarray, cells: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(lists, similarities) (m, nprobe) each query q[i] of cell cells[i] probes: its nprobe nearest among
    the first PROBE_WIDTH·nprobe neighbours of its cell. Cost O(m·width·d)."""
    width = min(plan.neighbours.shape[1], PROBE_WIDTH * plan.nprobe)
    lists = np.empty((len(q), plan.nprobe), np.int64)
    sims = np.empty((len(q), plan.nprobe), np.float32)
    for s in range(0, len(q), chunk):
        cand = plan.neighbours[cells[s : s + chunk], :width]
        dots = np.einsum("rd,rmd->rm", q[s : s + chunk], plan.centroids[cand])
        top = np.argsort(-dots, axis=1, kind="stable")[:, : plan.nprobe]
        lists[s : s + chunk] = np.take_along_axis(cand, top, 1)
        sims[s : s + chunk] = np.take_along_axis(dots, top, 1)
    return lists, sims


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


def query(index, plan: CellPlan, q: np.ndarray, rows: np.ndarray, cells: np.ndarray, threshold: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within threshold that range-searching q (rows `rows`, in cells `cells`) finds with the plan's
    probing: (a < b, b, distance)."""
    if not len(q):
        empty = np.empty(0, np.int64)
        return empty, empty.copy(), np.empty(0, np.float64)
    lists, sims = probes(plan, q, cells)
    index.nprobe = plan.nprobe
    min_sim = 1.0 - threshold - 2 * float32_margin(q.shape[1])
    lims, hit_sims, labels = index.range_search_preassigned(q, float(min_sim), lists, sims)
    local = np.repeat(np.arange(len(q)), np.diff(lims.astype(np.int64)))
    return confirm(index, q, local, rows, labels.astype(np.int64), hit_sims, threshold)


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
    buffer = ForestBuffer(index.ntotal, max_edges)
    queries = 0
    for c0, c1 in batches:
        parts = [list_rows(index, c) for c in range(c0, c1)]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        q = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, index.d), np.float32)
        cells = np.repeat(np.arange(c0, c1), [len(p[0]) for p in parts])
        buffer.add(*query(index, plan, q, rows, cells, threshold))
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
