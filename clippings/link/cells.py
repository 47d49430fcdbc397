"""The IVF range search done list by list: every list is compared, in one float32 GEMM, with all the
queries that probe it.

Why not `index.range_search(x[rows])`: FAISS scans a list vector by vector for each query (and queries in
row order jump between unrelated lists), where BLAS multiplies a block of queries by a list at once. Each row probes the cells of its nprobe nearest centroids, its own first (the quantizer's search,
as FAISS probes; one BLAS GEMM against the centroids, which also places the row in its cell), and the
search runs over the inverted table — for each cell, the rows probing it — a batch of consecutive cells at
a time. With nlist = 2·√n (`nlist_for`) the probe search and the list scans cost about the same.

Probing by the cells nearest each row, not by a table of the cells nearest the row's own cell: the pairs
such a table misses straddle cells whose centroids are not close, so its recall stops short of the target
however wide it grows, while a row's own nearest centroids reach it with a few probes
(docs/benchmarks.md#ivf-probing-by-own-cell-table-failed). The recall of within-t pairs is calibrated and
measured with the same probes (clippings.link.ivf), so it is what is reported.

A reprint group of g rows gives g²/2 pairs within t; single linkage needs a spanning forest of them, so
each batch's pairs leave as their minimum spanning forest (the cycle property: the MST of the union is the
MST of the parts' forests), which keeps the edge buffer from compacting again and again.

The lists are row blocks sorted by cell (`PartLists`): one file of every row in cell order for a link
(clippings.link.cellfile: mapped, so a process holding it — a Ray actor of clippings.link.actors — needs no
other copy of the vectors; the queries' rows are read from it too), a links folder's parts and a batch for
`link --add`. Pairs whose float32 distance lies within the rounding margin of t are re-checked in float64
from the lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from clippings.link.pruned import float32_margin
from clippings.link.slink import ForestBuffer, spanning_forest

NLIST_FACTOR = 2.0
"""nlist = NLIST_FACTOR·√n: a row's probe search (nlist centroids) and its list scans (nprobe lists of
n/nlist rows) then cost about the same, both one BLAS GEMM, and the whole search n^1.5·d."""
BATCH_ROWS = 32768
"""Query rows per batch of consecutive cells (a row probing k of them counts k times): bounds the batch's
query vectors and results in memory."""


def nlist_for(n: int) -> int:
    """IVF cells for n rows: NLIST_FACTOR·√n, at least 16 (and at most n)."""
    return int(min(n, max(16, round(NLIST_FACTOR * math.sqrt(n)))))


LARGE_NLIST = 2048
"""From this many cells, k-means is FAISS's two-level one (its cost grows as nlist^1.5, not nlist²)."""
HNSW_NLIST = 20_000
"""From this many cells (an --nlist given by hand: the default reaches it at 100M rows) rows find their cells
through an HNSW graph of the centroids, O(log nlist·d) a row, instead of the flat quantizer's BLAS search,
O(nlist·d) a row: one GEMM beats a graph walk per row until nlist is large, and HNSW can miss a row's
nearest cell (docs/benchmarks.md#quantizer-flat-gemm-vs-hnsw)."""


def centroid_sample(n: int, nlist: int, seed: int = 0, train_per_cell: int = 32) -> np.ndarray:
    """The sorted row numbers `train_centroids` trains on: min(n, train_per_cell·nlist) random rows, half as
    many per cell from LARGE_NLIST cells."""
    per_cell = train_per_cell if nlist < LARGE_NLIST else train_per_cell // 2
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n, per_cell * nlist), replace=False))


def train_centroids(x: np.ndarray, nlist: int, seed: int = 0, train_per_cell: int = 32, niter: int = 10
                    ) -> np.ndarray:
    """IVF centroids (nlist, d) float32 of unit rows x, by spherical k-means on a sample (centroid_sample).

    Below LARGE_NLIST cells: k-means (`niter` iterations). From LARGE_NLIST: FAISS's two-level k-means (√nlist
    coarse cells, each split in proportion to its rows), whose cost grows as nlist^1.5, not nlist².
    """
    sample = x[centroid_sample(len(x), nlist, seed, train_per_cell)]
    return centroids_of_sample(sample, nlist, seed, train_per_cell, niter)


def centroids_of_sample(sample: np.ndarray, nlist: int, seed: int = 0, train_per_cell: int = 32, niter: int = 10
                        ) -> np.ndarray:
    """train_centroids' k-means on its sample rows (the driver of a spread link has only those)."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if nlist < LARGE_NLIST:
        kmeans = faiss.Kmeans(sample.shape[1], nlist, niter=niter, seed=seed, spherical=True,
                              min_points_per_centroid=1, max_points_per_centroid=max(train_per_cell, 1))
        kmeans.train(sample)
        return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    from faiss.contrib.clustering import two_level_clustering

    centroids, _ = two_level_clustering(sample, int(math.sqrt(nlist)), nlist, clustering_niter=niter, seed=seed,
                                        spherical=True, min_points_per_centroid=1)
    return np.ascontiguousarray(centroids, dtype=np.float32)


def centroid_quantizer(centroids: np.ndarray):
    """The quantizer of a set of centroids (inner product): exact (flat) below HNSW_NLIST, else HNSW."""
    import faiss

    nlist, dim = centroids.shape
    if nlist < HNSW_NLIST:
        quantizer = faiss.IndexFlatIP(dim)
    else:
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = 64
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return quantizer


@dataclass
class Probes:
    """The cells each row's query probes: `cells` (n, nprobe) int32, the cells of its nprobe nearest
    centroids, nearest (its own cell) first (−1: none; a row of −1 does not query); `rows`/`starts` invert
    it: the rows probing cell c are rows[starts[c]:starts[c + 1]] (ascending). A pair (a, b) is examined
    when b's cell is among a's probes or a's cell among b's: what the search finds, what its recall counts."""

    cells: np.ndarray
    rows: np.ndarray
    starts: np.ndarray
    owners: np.ndarray
    """(nlist + 1,) cumulative count of the querying rows whose own cell is below c (for progress)."""

    @property
    def nprobe(self) -> int:
        return int(self.cells.shape[1])

    def sizes(self) -> np.ndarray:
        """Query rows probing each cell (nlist,)."""
        return np.diff(self.starts)

    def batch(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, starts) of cells [c0, c1): the rows probing them (int64; by cell, ascending within one) and
        where each cell's run starts in them (c1 − c0 + 1,)."""
        r0 = int(self.starts[c0])
        return self.rows[r0 : int(self.starts[c1])].astype(np.int64), self.starts[c0 : c1 + 1] - r0

    def cells_of(self, rows: np.ndarray) -> np.ndarray:
        """The probe rows (len(rows), nprobe) of these rows."""
        return self.cells[rows]


def gather_rows(blocks: list[np.ndarray], offsets: np.ndarray, rows: np.ndarray,
                inverse: list[np.ndarray | None] | None = None) -> np.ndarray:
    """The rows of these row numbers (a copy), over blocks numbered consecutively: block k holds rows
    offsets[k] … offsets[k + 1] − 1, row offsets[k] + i at blocks[k][inverse[k][i]] (in order where inverse
    is None)."""
    rows = np.asarray(rows, dtype=np.int64)
    block = np.searchsorted(offsets, rows, side="right") - 1
    out = np.empty((len(rows), *blocks[0].shape[1:]), dtype=blocks[0].dtype)
    for p in np.unique(block).tolist():
        here = np.flatnonzero(block == p)
        local = rows[here] - offsets[p]
        if inverse is not None and inverse[p] is not None:
            local = inverse[p][local]
        out[here] = blocks[p][local]
    return out


class PartProbes:
    """The Probes of a link whose rows were probed part by part (clippings.link.spread): per part, its probe
    table and its rows grouped by probed cell, read in place (mapped files); no table of all n rows is ever
    built. Part k holds rows offsets[k] … offsets[k + 1] − 1, the parts in row order, so a cell's rows,
    joined part after part, ascend as Probes' do: the search sees the same rows in the same order."""

    def __init__(self, tables: list[np.ndarray], rows: list[np.ndarray], starts: list[np.ndarray],
                 owners: np.ndarray):
        self.tables, self.part_rows, self.part_starts, self.owners = tables, rows, starts, owners
        self.offsets = np.concatenate([[0], np.cumsum([len(t) for t in tables])]).astype(np.int64)

    @property
    def nprobe(self) -> int:
        return int(self.tables[0].shape[1])

    def batch(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """As Probes.batch: the parts' runs of cells [c0, c1), ordered by cell (stable: part order within)."""
        cells, rows = [], []
        for part_rows, starts in zip(self.part_rows, self.part_starts, strict=True):
            counts = np.diff(starts[c0 : c1 + 1])
            rows.append(part_rows[int(starts[c0]) : int(starts[c1])])
            cells.append(np.repeat(np.arange(c0, c1, dtype=np.int32), counts))
        cell = np.concatenate(cells)
        order = np.argsort(cell, kind="stable")
        joined = np.concatenate(rows).astype(np.int64)[order]
        return joined, np.searchsorted(cell[order], np.arange(c0, c1 + 1)).astype(np.int64)

    def cells_of(self, rows: np.ndarray) -> np.ndarray:
        return gather_rows(self.tables, self.offsets, rows)


def nearest_centroids(quantizer, x: np.ndarray, k: int, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, cells), each (len(x), k), of every row's k nearest centroids, nearest first (the
    quantizer's search, as FAISS probes). Cost: a quantizer search per row (flat: O(nlist·d); HNSW:
    O(log nlist·d))."""
    sims = np.empty((len(x), k), dtype=np.float32)
    cells = np.empty((len(x), k), dtype=np.int32)
    for start in range(0, len(x), chunk):
        s, near = quantizer.search(np.ascontiguousarray(x[start : start + chunk], dtype=np.float32), k)
        sims[start : start + len(near)], cells[start : start + len(near)] = s, near
    return sims, cells


def probe_table(sims: np.ndarray, cells: np.ndarray, nprobe: int, margin: float = math.inf) -> np.ndarray:
    """The probe table of nearest_centroids' output: each row's first nprobe cells, where a cell after the
    first is probed only when its centroid's similarity is within `margin` of the nearest's (else −1)."""
    table = np.array(cells[:, :nprobe], dtype=np.int32)
    if margin < math.inf:
        table[sims[:, :nprobe] < sims[:, :1] - np.float32(margin)] = -1
    return table


def probe_cells(quantizer, x: np.ndarray, nprobe: int, chunk: int = 1 << 16, margin: float = math.inf
                ) -> np.ndarray:
    """(len(x), nprobe) int32: the cells each row probes (probe_table of its nprobe nearest centroids);
    column 0 is the row's own cell. margin: see probe_table (a row deep inside its cell, whose next
    centroids are far less similar than its own, probes fewer cells; calibrated in clippings.link.ivf)."""
    out = np.empty((len(x), nprobe), dtype=np.int32)
    for start in range(0, len(x), chunk):
        sims, near = nearest_centroids(quantizer, x[start : start + chunk], nprobe, chunk)
        out[start : start + len(near)] = probe_table(sims, near, nprobe, margin)
    return out


def invert_probes(cells: np.ndarray, nlist: int) -> Probes:
    """The Probes of a (n, nprobe) probe table: its rows grouped by probed cell. Memory: n·nprobe int32 for
    the table and the same again for the inverted rows, plus a transient n·nprobe int64 sort order."""
    width = cells.shape[1]
    flat = cells.ravel()
    order = np.argsort(flat, kind="stable")  # int32 keys: radix sort; rows ascend within a cell
    skip = int(np.count_nonzero(flat < 0))
    rows = (order[skip:] // width).astype(np.int32)
    starts = np.searchsorted(flat[order[skip:]], np.arange(nlist + 1)).astype(np.int64)
    own = cells[:, 0]
    owners = np.concatenate([[0], np.cumsum(np.bincount(own[own >= 0], minlength=nlist))])
    return Probes(cells, rows, starts, owners)


def coverage(cells_a: np.ndarray, own_a: np.ndarray, cells_b: np.ndarray, own_b: np.ndarray) -> np.ndarray:
    """For pairs (a, b) given by their probe rows and own cells: whether the search examines the pair
    (b's cell probed by a, or a's probed by b)."""
    return (cells_a == own_b[:, None]).any(axis=1) | (cells_b == own_a[:, None]).any(axis=1)


def confirm(lists: PartLists, q: np.ndarray, local: np.ndarray, rows: np.ndarray, dst: np.ndarray, sims: np.ndarray,
            threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range-search hits (query q[local] = row rows[local], neighbour dst, float32 similarity) → the pairs
    (a < b, b, distance) within threshold, self pairs dropped. Hits within the float32 margin of t are
    re-checked in float64 with the neighbour's vector from the lists."""
    src = rows[local]
    keep = src != dst
    src, dst, local = src[keep], dst[keep], local[keep]
    dist = 1.0 - sims[keep].astype(np.float64)
    near = np.flatnonzero(np.abs(dist - threshold) <= float32_margin(q.shape[1]))
    if len(near):
        a = q[local[near]].astype(np.float64)
        b = lists.take(dst[near]).astype(np.float64)
        dots = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        dist[near] = 1.0 - dots
    keep = dist <= threshold
    src, dst, dist = src[keep], dst[keep], np.clip(dist[keep], 0.0, 2.0)
    return np.minimum(src, dst), np.maximum(src, dst), dist


class PartLists:
    """IVF lists over row blocks each sorted by cell (a links folder's `vectors/` parts, mapped, then a
    batch): list c is the concatenation of each block's run of cell c, so the old rows are never copied
    wholesale (`link --add`: a join and an index filled from it would cost a pass over every old row and as
    much fresh memory, slow to fault in on small VMs; docs/benchmarks.md#adding-a-batch-old-lists-read-in-place).
    A block not sorted by cell (a links folder written before the parts
    were) is sorted here, a copy of that block.

    Rows are numbered consecutively over the blocks, in the blocks' own order; `take` and indexing by an
    array of row numbers gather vectors; `pieces` walks every row once (a brute-force pass)."""

    def __init__(self, blocks: list[np.ndarray], assign: np.ndarray, nlist: int):
        self.offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])]).astype(np.int64)
        self.d = int(blocks[0].shape[1])
        self.vectors, self.rows, self.starts, self.inverse = [], [], [], []
        cells = np.arange(nlist + 1)
        for block, start in zip(blocks, self.offsets[:-1].tolist(), strict=True):
            own = assign[start : start + len(block)]
            if len(own) > 1 and (own[1:] < own[:-1]).any():
                order = np.argsort(own, kind="stable")
                inverse = np.empty_like(order)
                inverse[order] = np.arange(len(order))
                block, own = block[order], own[order]
                self.rows.append(start + order)
                self.inverse.append(inverse)
            else:
                self.rows.append(np.arange(start, start + len(block)))
                self.inverse.append(None)
            self.vectors.append(block)
            self.starts.append(np.searchsorted(own, cells))

    @classmethod
    def cell_sorted(cls, vectors: np.ndarray, order: np.ndarray, starts: np.ndarray) -> PartLists:
        """One block already in cell order (clippings.link.cellfile: a mapped file, read in place):
        vectors[k] is row order[k], and list c is vectors[starts[c]:starts[c + 1]]."""
        return cls.sorted_blocks([(vectors, order, starts)])

    @classmethod
    def sorted_blocks(cls, blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> PartLists:
        """Blocks each already in cell order, as (vectors, order, starts) of cell_sorted; block k holds the
        rows numbered offsets[k] … offsets[k + 1] − 1 (its order a permutation of them), the blocks in row
        order: a link's per-part lists (clippings.link.cellfile), each written where its part was read."""
        lists = cls.__new__(cls)
        sizes = [len(order) for _, order, _ in blocks]
        lists.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        lists.d = int(blocks[0][0].shape[1])
        lists.vectors, lists.rows, lists.starts, lists.inverse = [], [], [], []
        for (vectors, order, starts), first in zip(blocks, lists.offsets[:-1].tolist(), strict=True):
            inverse = np.empty(len(order), dtype=np.int64)
            inverse[order - first] = np.arange(len(order))
            lists.vectors.append(vectors)
            lists.rows.append(order)
            lists.starts.append(starts)
            lists.inverse.append(inverse)
        return lists

    @property
    def ntotal(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.ntotal, self.d

    def __len__(self) -> int:
        return self.ntotal

    def size(self, cell: int) -> int:
        return int(sum(int(s[cell + 1] - s[cell]) for s in self.starts))

    def list(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, float32 vectors) of one list: the blocks' runs of the cell, joined."""
        runs = [(s[cell], s[cell + 1]) for s in self.starts]
        ids = [r[a:b] for r, (a, b) in zip(self.rows, runs, strict=True) if b > a]
        vectors = [v[a:b] for v, (a, b) in zip(self.vectors, runs, strict=True) if b > a]
        if len(ids) == 1:
            return ids[0], vectors[0]
        if not ids:
            return np.empty(0, np.int64), np.empty((0, self.d), np.float32)
        return np.concatenate(ids), np.concatenate(vectors)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of these row numbers (a copy)."""
        return gather_rows(self.vectors, self.offsets, rows, self.inverse)

    __getitem__ = take

    def pieces(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every row once, as (row numbers, vectors) pieces of at most `rows` rows (views)."""
        for numbers, vectors in zip(self.rows, self.vectors, strict=True):
            for start in range(0, len(numbers), rows):
                yield numbers[start : start + rows], vectors[start : start + rows]


CYCLE_MARGIN = 4.0
"""Float32 margins (clippings.link.pruned.float32_margin) by which a triangle's two other pairs must be
nearer for `shortcut_pairs` to drop a pair: each float32 similarity lies within 1.5 margins of the exact
cosine, so the order it relies on holds exactly."""


def shortcut_pairs(similarity: Callable[[np.ndarray, np.ndarray], np.ndarray], queries: np.ndarray,
                   members: np.ndarray, i: np.ndarray, j: np.ndarray, sims: np.ndarray, margin: float) -> np.ndarray:
    """Which hits (query i, list member j) single linkage can do without: a pair (a, b) whose query a has a
    nearer neighbour k in the same list (its pivot: its most similar hit) that is also nearer b. The pair is
    then the farthest of the triangle a–k–b, whose two other pairs the search also finds (a probes k's
    cell; k and b share their cell, and k queries it), so dropping it leaves every single-linkage distance
    (the minimax path) as it was: by induction on similarity, each dropped pair keeps a path of strictly
    nearer pairs. A reprint group of g rows inside one cell gives ~g²/2 pairs, most of them such shortcuts;
    the spanning forests after the search then sort far fewer pairs.

    similarity(jj, kk): the float32 similarities of list members jj with queries kk (positions); queries:
    the query rows (ascending); members: the list's rows; i, j: the hits' query and member positions, sims
    their similarities; margin: how much nearer (in similarity) both other pairs must be. A member that does
    not query the list (an old row in `link --add`) is never a pivot: its pairs with the list are not
    searched."""
    m = len(queries)
    column = np.searchsorted(queries, members)
    column[column == m] = 0
    column = np.where(queries[column] == members, column, -1)  # a member's own query, if it queries
    pivotal = (column[j] >= 0) & (queries[i] != members[j])
    best = np.full(m, -np.inf, dtype=sims.dtype)
    np.maximum.at(best, i[pivotal], sims[pivotal])
    chosen = np.flatnonzero(pivotal & (sims == best[i]))
    pivot = np.full(m, -1, dtype=np.int64)
    pivot[i[chosen]] = column[j[chosen]]
    k = pivot[i]
    drop = (k >= 0) & (best[i] > sims + margin)
    candidates = np.flatnonzero(drop)
    drop[candidates] = similarity(j[candidates], k[candidates]) > sims[candidates] + margin
    return drop


class BlasProduct:
    """The lists' products on the CPU: one float32 BLAS GEMM of a list with all its queries.

    Float32, not float16 or int8, on CPUs: a CPU without AVX-512 FP16, VNNI or AMX has no native float16,
    bfloat16 or int8 products, so BLAS runs them several times slower than float32, and the search is bound
    by these products (docs/benchmarks.md#cpu-products-by-dtype, docs/linking-at-scale.md#gpus).

    The product of each list is written into one buffer that grows to the largest list × queries block and is
    reused: a fresh block of tens of MB a list is mapped and zeroed by the kernel each time (glibc maps every
    allocation above 32 MB; measured in
    docs/benchmarks.md#linking-at-scale-10m-in-139-minutes-end-to-end-the-products-block-reused).
    The buffer is a block the search held anyway at its largest list; a lookup that `hits` returns holds
    until its next call."""

    name = "cpu-float32"

    def __init__(self) -> None:
        self.out = np.empty(0, np.float32)

    def queries(self, q: np.ndarray) -> np.ndarray:
        """A batch's query vectors as this product reads them."""
        return q

    def hits(self, vectors: np.ndarray, q: np.ndarray, min_sim: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
        """(query positions i, member positions j, float32 similarities) of the pairs above min_sim between
        a list's vectors and queries q, and the lookup of any (member, query) similarity (shortcut_pairs),
        valid until the next call."""
        m = len(q)
        if len(self.out) < len(vectors) * m:
            self.out = np.empty(len(vectors) * m, np.float32)
        block = self.out[: len(vectors) * m]
        np.matmul(vectors, q.T, out=block.reshape(len(vectors), m))
        # (list × queries), the hits read as flat indices: a 2-D np.nonzero of the block costs several
        # times more (docs/benchmarks.md#cell-search-details)
        hits = np.flatnonzero(block > min_sim)
        j, i = np.divmod(hits, m)
        return i, j, block[hits], lambda jj, kk: block[jj * m + kk]


def list_products(owners: np.ndarray, sizes: np.ndarray) -> int:
    """Similarities the search's products compute: over the cells, list length (the querying rows whose own
    cell it is, from `owners`, Probes.owners: every row of a link) times the queries probing it (`sizes`);
    the search's cost is about d times this, so links.json records it beside the mean probes (a skewed set of
    cells costs more than its mean list suggests)."""
    return int(np.dot(np.diff(owners).astype(np.float64), np.asarray(sizes, dtype=np.float64)))


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


def search_cells(lists: PartLists, probes: Probes, batches: list[tuple[int, int]], threshold: float,
                 max_edges: int | None, progress: Callable[[int], None] | None = None, forest: bool = False,
                 fold: bool = True, product: BlasProduct | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Range-search every query that probes the cells in `batches` against those cells' lists, folding the
    pairs within threshold into a minimum spanning forest as they come (`forest`: always end with one, as
    an actor does before sending its edges back; `fold` False: keep every pair unless more than max_edges
    come, for a caller that merges them into a larger forest itself). The query vectors are read from the
    lists.

    Each cell's list is compared with all the queries probing it in one product (`product`: a float32 BLAS
    GEMM by default; clippings.link.devicecells on a GPU). A pair met from both
    sides (each probes the other's cell) is kept from the side of its smaller row only, so every pair comes
    out once over the whole search (no deduplication sort).

    Returns (src, dst, distance, compactions, queries): distances float32-exact (re-checked in float64 near
    t), to be recomputed in float64 by the caller for the edges kept; queries = querying rows whose own cell
    was in the batches. Memory O(n + max_edges) plus a batch's query vectors.
    """
    buffer = ForestBuffer(lists.ntotal, max_edges, unique=True)
    product = product or BlasProduct()
    min_sim = 1.0 - threshold - 2 * float32_margin(lists.d)
    margin = CYCLE_MARGIN * float32_margin(lists.d)
    queries = 0
    for c0, c1 in batches:
        rows, starts = probes.batch(c0, c1)
        q = lists.take(rows) if len(rows) else np.empty((0, lists.d), np.float32)
        held = product.queries(q)
        found = []
        for c in range(c0, c1):
            s0, s1 = int(starts[c - c0]), int(starts[c - c0 + 1])
            if s0 == s1 or not lists.size(c):
                continue
            ids, vectors = lists.list(c)
            i, j, sims, similarity = product.hits(vectors, held[s0:s1], min_sim)
            # pairs that close a triangle of nearer pairs add nothing to single linkage (reprint groups)
            useful = ~shortcut_pairs(similarity, rows[s0:s1], ids, i, j, sims, margin)
            i, j, sims = i[useful], j[useful], sims[useful]
            a, b = rows[s0:s1][i], ids[j]
            # b also meets a when b probes a's own cell: the pair is then kept from its smaller row's side
            later = np.flatnonzero(a > b)
            mutual = (probes.cells_of(b[later]) == probes.cells_of(a[later])[:, :1]).any(axis=1)
            keep = a < b
            keep[later[~mutual]] = True
            found.append(confirm(lists, q[s0:s1], i[keep], rows[s0:s1], b[keep], sims[keep], threshold))
        if found:  # the batch's pairs (many per reprint group) leave as their spanning forest
            pairs = (np.concatenate(part) for part in zip(*found, strict=True))
            buffer.add(*(spanning_forest(*pairs) if fold else pairs))
        done = int(probes.owners[c1] - probes.owners[c0])
        queries += done
        if progress is not None:
            progress(done)
    if forest and buffer.pending:
        buffer.compact()
    src, dst, dist = buffer.result()
    return src, dst, dist, buffer.compactions, queries


def balanced_shards(batches: list[tuple[int, int]], shards: int) -> list[list[tuple[int, int]]]:
    """Split the batches into `shards` runs of consecutive batches of about equal count (a run of cells
    keeps its lists' locality)."""
    per = math.ceil(len(batches) / max(1, shards)) if batches else 1
    return [batches[i : i + per] for i in range(0, len(batches), per)]
