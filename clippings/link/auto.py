"""A linking threshold chosen without labels: the valley of the distribution of the MST's edge lengths.

Single linkage at t keeps the MST edges ≤ t. In an archive of reprints those edges come in two kinds: short
ones inside a reprint group (the same clipping scanned twice) and long ones joining different clippings
(every singleton and every group adds one). When the embedding separates reprints, the edge lengths are
bimodal and the cut belongs in the valley between the two modes; when it does not, no cut is clearly right,
and we refuse (BadInput) rather than fall back to a fixed t. Whether a valley is clear is one score for every
method: its depth, 1 − f(t) / min(highest f left of t, highest f right of t), where f is a Gaussian kernel
density of the edge lengths (Silverman's bandwidth): 0 on a slope or a single mode, 1 where the density
between two modes is nil. A cut is accepted when the depth is ≥ MIN_DEPTH (the density at the cut at most
0.7 of the lower of the two modes it separates) and it joins at most MAX_GROUP_SHARE of the clippings into one
group (a deep valley can lie between a chain of look-alikes and a few outliers).

Methods (each maps the edge lengths to t): "valley" the deepest point of f; "otsu" Otsu's split (the t
maximising the between-class variance of the lengths); "gmm" where a two-component Gaussian mixture's
posteriors cross between its means. For multimodal embeddings w is chosen from a small grid: among the
weights with a clear valley, the one whose cut makes the smallest largest group (a valley can be clear at a
weight where one tower chains look-alike clippings; reprint groups stay small), then the most separated sides
(Ashman's D). MIN_DEPTH and that rule were chosen on the built-in archive's `val` (docs/benchmarks.md,
"The auto cut's acceptance depth and w, chosen on val"); the default method is the valley, by reasoning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from clippings.errors import BadInput
from clippings.link.graph import Graph
from clippings.link.slink import Mst, components
from clippings.link.tune import DENSE_MAX

METHODS = ("valley", "otsu", "gmm")
DEFAULT_METHOD = "valley"
"""Provisional, by reasoning, not yet measured on the built-in archive's val: the KDE valley assumes no shape
for either mode and no balance between them (Otsu drifts toward the larger class; a Gaussian mixture
mis-fits the spike of exact duplicates at d = 0, and with a wide upper component its boundary can sit on
the reprint mode itself)."""
MIN_DEPTH = 0.3
"""The lowest depth at which every accepted cut on the medium replication's `val` (3 seeds, every language and
multimodal row) stayed within 0.92 of the val-tuned ARI; at 0.25 cuts at 0.80 of it came in (benchmarks)."""
MIN_EDGES = 20
MIN_SIDE = 0.02
"""A valley counts only with at least this fraction of the edges on each side of it."""
MAX_GROUP_SHARE = 0.5
"""A cut is refused when it joins more than this share of the clippings into one group: reprint groups are
small beside an archive, so such a group is chaining through look-alikes, whatever the valley's depth (a
valley between the bulk of the edges and a few outliers is deep and wrong)."""
W_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
TABLE_FACTORS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
DELTA_FRACTION = 0.05


class Poolable(Protocol):
    """Embeddings or Pooled: anything that gives the pooled unit vectors at a weight w."""

    def pooled(self, im_wt: float) -> np.ndarray: ...


@dataclass(frozen=True)
class Density:
    """A kernel density of distances sampled on an even `grid`; `bandwidth` is the kernel's σ; `below` the
    fraction of the distances ≤ each grid point."""

    grid: np.ndarray
    values: np.ndarray
    bandwidth: float
    below: np.ndarray


@dataclass
class AutoCut:
    """The label-free choice: `method`, `threshold` t, image weight `im_wt`, the valley `depth` at t, the
    `separation` of the modes, the number of MST `edges` read, the density's `bandwidth`, per candidate
    w the same figures (`grid`), the search that gave the edges (`index`: flat, or ivf with its
    nearest-neighbour recall `nn_recall`; see `neighbour_graph`)."""

    method: str
    threshold: float
    im_wt: float
    depth: float
    separation: float
    edges: int
    bandwidth: float
    grid: list[dict] = field(default_factory=list)
    index: str = "flat"
    nn_recall: float | None = None

    def line(self, command: str) -> str:
        """The one line `command` prints about the choice."""
        weights = ", ".join(f"{g['im_wt']:g}" for g in self.grid)
        tried = "" if len(self.grid) == 1 else f" of {weights}"
        search = "" if self.nn_recall is None else f", {self.index} kNN, nearest-neighbour recall {self.nn_recall:.3f}"
        return (f"{command}: threshold auto: t={self.threshold:.4f}, w={self.im_wt:g}{tried} ({self.method} of "
                f"{self.edges} MST edge lengths, valley depth {self.depth:.3f} ≥ {MIN_DEPTH:g}, separation "
                f"{self.separation:.1f}{search})")

    def record(self) -> dict:
        """The choice as links.json / tune.json record it (plain floats)."""
        return {
            "method": self.method,
            "threshold": self.threshold,
            "im_wt": self.im_wt,
            "depth": self.depth,
            "min_depth": MIN_DEPTH,
            "max_group_share": MAX_GROUP_SHARE,
            "separation": self.separation,
            "edges": self.edges,
            "bandwidth": self.bandwidth,
            "grid": self.grid,
            "index": self.index,
            "nn_recall": self.nn_recall,
        }


FLAT_MAX = 50_000
"""Rows up to which the label-free passes (these edge lengths, `clippings mine`'s searches) use exact flat kNN,
O(n²·d): cheap here (clippings.link.knn); above it, `cells_knn`. `index` "flat" or "ivf" forces either."""
INDEXES = ("auto", "flat", "ivf")
KNN_NPROBE = 2
"""Cells each row's kNN query reads in `cells_knn` (its own and the next nearest): its nearest-neighbour
recall is measured on a sample and recorded."""
RECALL_SAMPLE = 1000
ALONE_NPROBE = 16
"""Cells `nearest_within` reads for a row the kNN graph finds no neighbour near: a row is called alone only
after this wider look (its remaining error is measured: `recall_at`)."""


def index_for(index: str, n: int) -> str:
    """The search the label-free passes use on n rows: `index` when it is "flat" or "ivf"; for "auto", flat
    up to FLAT_MAX rows, ivf above."""
    if index not in INDEXES:
        raise ValueError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")
    return index if index != "auto" else ("flat" if n <= FLAT_MAX else "ivf")


def exact_nearest(x: np.ndarray, rows: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Cosine distance from each of x[rows] to its nearest other row, by brute force (inf for a lone row).
    Cost: O(len(rows)·n·d), memory O(len(rows)·chunk)."""
    best = np.full(len(rows), -np.inf, dtype=np.float32)
    q = np.ascontiguousarray(x[rows], dtype=np.float32)
    for start in range(0, len(x), chunk):
        sims = q @ np.ascontiguousarray(x[start : start + chunk], dtype=np.float32).T
        inside = (rows >= start) & (rows < start + sims.shape[1])
        sims[np.flatnonzero(inside), rows[inside] - start] = -np.inf
        np.maximum(best, sims.max(axis=1), out=best)
    return np.where(np.isfinite(best), np.clip(1.0 - best.astype(np.float64), 0.0, 2.0), np.inf)


def nearest_of(graph: Graph) -> np.ndarray:
    """Each row's shortest edge in `graph` (inf where it has none): its nearest neighbour where the graph
    holds it, else an overestimate."""
    out = np.full(graph.n, np.inf)
    np.minimum.at(out, graph.src, graph.distance)
    np.minimum.at(out, graph.dst, graph.distance)
    return out


def recall_at(graph: Graph, t: float, nearest: np.ndarray | None = None) -> float | None:
    """For an ivf `cells_knn` graph: among its sampled rows whose true nearest neighbour lies within t, the
    share whose `nearest` distance (default: the graph's, `nearest_of`) is within t too: 1 − the share a
    search at t would wrongly call alone. None for an exact graph (no sample)."""
    if "nn_sample" not in graph.stats:
        return None
    near = graph.stats["nn_exact"] <= t
    if not near.any():
        return 1.0
    nearest = nearest_of(graph) if nearest is None else nearest
    return float(np.mean(nearest[graph.stats["nn_sample"][near]] <= t))


def nearest_within(vectors: np.ndarray, graph: Graph, rows: np.ndarray, threshold: float,
                   nprobe: int = ALONE_NPROBE) -> np.ndarray:
    """The nearest distance of each of x[rows] among the rows of its `nprobe` nearest cells of a `cells_knn`
    graph, or of another of `rows` whose cells hold it (a wider look than the kNN's, for rows the graph
    finds no neighbour within `threshold`), inf where none lies within `threshold`. Cost: O(len(rows)·nlist·d + len(rows)·nprobe·(n/nlist)·d)."""
    from clippings.link.cells import invert_probes, probe_cells

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    cells: KnnCells = graph.stats["cells"]
    nlist = len(cells.first) - 1
    width = int(min(nprobe, nlist))
    table = np.full((len(x), width), -1, dtype=np.int32)
    table[rows] = probe_cells(cells.quantizer, x[rows], width)
    best = np.full(len(x), -np.inf, dtype=np.float32)
    for queries, members, sims in KnnCells(invert_probes(table, nlist), cells.order, cells.first,
                                           cells.quantizer).sweep(x):
        np.maximum.at(best, queries, sims.max(axis=1))
        np.maximum.at(best, members, sims.max(axis=0))  # a pair seen from either of its rows
    dist = 1.0 - best[rows].astype(np.float64)
    return np.where(dist <= threshold, np.clip(dist, 0.0, 2.0), np.inf)


@dataclass(frozen=True)
class KnnCells:
    """IVF cells of a set of rows for `cells_knn` and `cells_within`: each row's probed cells (`probes`,
    clippings.link.cells.Probes, its own cell first), the rows of cell c, rows[order[first[c]:first[c + 1]]],
    and the centroids' `quantizer`."""

    probes: Any
    order: np.ndarray
    first: np.ndarray
    quantizer: Any

    def sweep(self, x: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each cell: (its querying rows, its member rows, their float32 inner products), one GEMM per
        cell; a row's product with itself is −inf."""
        for c in range(len(self.first) - 1):
            members = self.order[self.first[c] : self.first[c + 1]]
            queries = self.probes.rows[self.probes.starts[c] : self.probes.starts[c + 1]].astype(np.int64)
            if len(members) and len(queries):
                sims = x[queries] @ x[members].T
                sims[queries[:, None] == members[None, :]] = -np.inf
                yield queries, members, sims


def knn_cells(x: np.ndarray, nprobe: int = KNN_NPROBE, seed: int = 0) -> KnnCells:
    """The cells of unit rows x by the link machinery (clippings.link.cells: spherical k-means centroids,
    nlist = 2·√n, each row probing its `nprobe` nearest). Cost: O(n·nlist·d)."""
    from clippings.link.cells import (
        centroid_quantizer,
        invert_probes,
        nlist_for,
        probe_cells,
        train_centroids,
    )

    centroids = train_centroids(x, nlist_for(len(x)), seed)
    nlist = len(centroids)
    quantizer = centroid_quantizer(centroids)
    table = probe_cells(quantizer, x, min(nprobe, nlist))
    order = np.argsort(table[:, 0], kind="stable")
    first = np.searchsorted(table[order, 0], np.arange(nlist + 1))
    return KnnCells(invert_probes(table, nlist), order, first, quantizer)


def _top_k(x: np.ndarray, cells: KnnCells, k: int, min_sim: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (src < dst, each once) of every row's k most similar rows among those its cells hold (a row
    meets the rows of the cells it probes, and is met by the rows probing its own), similarity > min_sim.
    Memory O(n·k)."""
    from clippings.link.knn import unique_pairs

    n = len(x)
    best = np.full((n, k), -np.inf, dtype=np.float32)
    found = np.full((n, k), -1, dtype=np.int64)
    for queries, members, sims in cells.sweep(x):
        if sims.shape[1] > k:  # the cell's own top k first: the merge below then handles 2k columns, not k + m
            mine = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims, members = np.take_along_axis(sims, mine, axis=1), members[mine]
        both_s = np.concatenate([best[queries], sims], axis=1)
        both_i = np.concatenate([found[queries], np.broadcast_to(members, sims.shape)], axis=1)
        top = np.argpartition(-both_s, k - 1, axis=1)[:, :k]
        best[queries] = np.take_along_axis(both_s, top, axis=1)
        found[queries] = np.take_along_axis(both_i, top, axis=1)
    found[~(best > min_sim)] = -1
    return unique_pairs(n, np.repeat(np.arange(n), k), found.ravel())


def cells_knn(vectors: np.ndarray, k: int, nprobe: int = KNN_NPROBE, seed: int = 0,
              sample: int = RECALL_SAMPLE) -> Graph:
    """An approximate k-nearest-neighbour graph of unit `vectors` on IVF cells (`knn_cells`): each row's
    top k among the rows of the cells it probes.

    A neighbour is missed only when it lies in a cell the row does not probe, so found distances are
    exact and a row's found k-th (and nearest) distance is ≥ the true one. `recall` is the nearest-neighbour
    recall: the share of `sample` random rows whose shortest edge in the graph (`nearest_of`: its own list
    or another row's) equals its brute-force nearest distance
    (stats: `nn_sample`, the rows, and `nn_exact`, their true nearest distances, for `recall_at`; `cells`,
    for `cells_within`). Cost: O(n·nlist·d) probes, O(n·nprobe·(n/nlist)·d) products, O(sample·n·d) for
    the recall; memory O(n·k + the largest cell's products).
    """
    from clippings.link.exact import cosine_distances_of_pairs
    from clippings.link.pruned import float32_margin, row_norms

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    start = time.perf_counter()
    cells = knn_cells(x, nprobe, seed)
    kk = max(1, min(k, n - 1))
    src, dst = _top_k(x, cells, kk)
    dist = cosine_distances_of_pairs(x, row_norms(x), src, dst)
    search_s = time.perf_counter() - start
    t0 = time.perf_counter()
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    truth = exact_nearest(x, rows)
    stats = {"k": kk, "nlist": len(cells.first) - 1, "nprobe": int(cells.probes.nprobe), "edges": int(len(src)),
             "nn_sample": rows, "nn_exact": truth, "cells": cells}
    graph = Graph(n, src, dst, dist, 0.0, "ivf", None, stats)
    got = nearest_of(graph)[rows]
    graph.recall = float(np.mean(got <= truth + float32_margin(x.shape[1]))) if len(rows) else 1.0
    stats["timings"] = {"search_s": round(search_s, 3), "recall_s": round(time.perf_counter() - t0, 3)}
    return graph


def cells_within(vectors: np.ndarray, graph: Graph, threshold: float, k: int, recall_target: float = 0.995,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(a, b, distance, record): the pairs a < b within `threshold` (float64 distances) among each row's k
    nearest that an IVF search on the cells of a `cells_knn` graph finds: a kNN graph's edges within t, so
    O(n·k) pairs where a group of g reprints has g²/2 within t, and every group of up to k + 1 keeps all its
    pairs. As `link --index ivf` does (clippings.link.ivf.calibrate_probes), the probes are calibrated on one
    random sample to examine `recall_target` of its exact within-threshold pairs with the fewest cells a
    row; where that is no wider than the graph's own probes (and k no larger), the graph's edges are used,
    no second search. Measured on the graph's own sample against brute force (clippings.link.exact.exact_pairs; record):
    `pair_recall`, the share of the exact within-t pairs kept, and `joined_recall`, the share whose two
    rows the kept pairs join (what single linkage at t, and the groups built from these pairs, lose).
    Cost: O(n·nlist·d) probes, O(n·probes·(n/nlist)·d) products, O(sample·n·d) twice; memory O(n·k)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from clippings.link.cells import invert_probes, probe_cells
    from clippings.link.exact import cosine_distances_of_pairs, exact_pairs
    from clippings.link.ivf import calibrate_probes, calibration_pairs
    from clippings.link.pruned import float32_margin, row_norms

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    cells: KnnCells = graph.stats["cells"]
    nlist = len(cells.first) - 1
    norms = row_norms(x)
    rng = np.random.default_rng([seed, 1])
    sample = np.sort(rng.choice(n, size=min(n, RECALL_SAMPLE), replace=False))
    nprobe, margin = calibrate_probes(cells.quantizer, x, calibration_pairs(x, norms, sample, threshold, rng),
                                      sample, recall_target, nlist)
    if nprobe <= cells.probes.nprobe and graph.stats["k"] >= k:  # the graph's own search looked as wide
        a, b, dist = graph.src, graph.dst, graph.distance
    else:
        probes = invert_probes(probe_cells(cells.quantizer, x, int(min(nprobe, nlist)), margin=margin), nlist)
        a, b = _top_k(x, KnnCells(probes, cells.order, cells.first, cells.quantizer), max(1, min(k, n - 1)),
                      1.0 - threshold - 2 * float32_margin(x.shape[1]))
        dist = cosine_distances_of_pairs(x, norms, a, b)
    keep = dist <= threshold
    a, b, dist = a[keep], b[keep], dist[keep]
    truth = exact_pairs(x, norms, graph.stats["nn_sample"], threshold)
    record = {"nprobe": int(nprobe), "probe_margin": None if margin == np.inf else float(margin), "k": int(k),
              "pair_recall": 1.0, "joined_recall": 1.0}
    if len(truth):
        keys = a * n + b  # ascending: unique_pairs sorts the keys
        at = np.minimum(np.searchsorted(keys, truth), max(len(keys) - 1, 0))
        record["pair_recall"] = float(np.mean(keys[at] == truth)) if len(keys) else 0.0
        edges = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        comp = connected_components(edges, directed=False)[1]
        record["joined_recall"] = float(np.mean(comp[truth // n] == comp[truth % n]))
    return a, b, dist, record


def neighbour_graph(vectors: np.ndarray, k: int = 20, index: str = "auto") -> Graph:
    """The neighbour graph whose MST gives the edge lengths (`edge_lengths`): complete up to DENSE_MAX rows,
    else the plain flat kNN graph (exact) or, for ivf (index_for), `cells_knn` (nearest-neighbour recall
    measured). Cost: flat O(n²·d); ivf see `cells_knn`."""
    from clippings.link.knn import knn_graph

    n = len(vectors)
    if index_for(index, n) == "ivf":
        return cells_knn(vectors, k)
    k_eff = n - 1 if n <= DENSE_MAX else k
    return knn_graph(vectors, k=max(1, k_eff), index="flat")


def edge_lengths(vectors: np.ndarray, k: int = 20, index: str = "auto") -> np.ndarray:
    """Sorted lengths (cosine distances) of the MST edges of unit `vectors` (`lengths_of` of
    `neighbour_graph`)."""
    return lengths_of(neighbour_graph(vectors, k, index))


def lengths_of(graph: Graph) -> np.ndarray:
    """Sorted MST edge lengths of a neighbour graph.

    Up to DENSE_MAX rows the graph is complete and the MST exact; above, it is the spanning forest of a
    k-nearest-neighbour graph: exact below the smallest k-th-neighbour distance; above it the sorted
    lengths can only be longer than the exact MST's (a subgraph's spanning forest is elementwise heavier)
    and a disconnected graph has fewer of them, so the upper mode may be stretched and thinned while the
    reprint mode, made mostly of rows' nearest-neighbour edges (always in the flat graph; in the ivf graph
    for the `recall` share of rows), barely moves. Cost: MST O(n·k log n).
    """
    from clippings.link.slink import mst_from_graph

    return mst_from_graph(graph.n, graph.src, graph.dst, graph.distance).distance


def density(distances: np.ndarray, points: int = 1024) -> Density:
    """Gaussian kernel density of `distances` on `points` grid points (binned, then convolved: O(n + points²)
    at most).

    Bandwidth: Silverman's 0.9·min(σ, IQR/1.34)·n^(−1/5), the IQR term keeping a minor mode (the reprints
    among many singletons) from being smoothed away; σ alone when the IQR is 0 (e.g. most edges are exact
    duplicates). All-equal distances give a zero bandwidth: a single spike, no valley.
    """
    d = np.asarray(distances, dtype=np.float64)
    sd = float(d.std())
    iqr = float(np.subtract(*np.percentile(d, [75, 25])))
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    h = 0.9 * spread * len(d) ** -0.2
    if h <= 0:
        return Density(np.array([float(d[0])]), np.array([1.0]), 0.0, np.array([1.0]))
    grid = np.linspace(float(d.min()) - 3 * h, float(d.max()) + 3 * h, points)
    step = grid[1] - grid[0]
    counts = np.bincount(np.clip(np.rint((d - grid[0]) / step).astype(np.int64), 0, points - 1),
                         minlength=points)
    half = min(points - 1, int(np.ceil(4 * h / step)))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * step / h) ** 2)
    values = np.convolve(counts, kernel)[half : half + points]
    below = np.searchsorted(np.sort(d), grid, side="right") / len(d)
    return Density(grid, values / (values.sum() * step), h, below)


def depths(dens: Density) -> np.ndarray:
    """Valley depth at every grid point: 1 − f / min(max f to its left, max f to its right), in [0, 1];
    0 where fewer than MIN_SIDE of the distances lie on either side (a gap before a few outliers in a tail
    is no valley between two modes)."""
    f = dens.values
    left = np.maximum.accumulate(f)
    right = np.maximum.accumulate(f[::-1])[::-1]
    lower = np.minimum(left, right)
    inside = (dens.below >= MIN_SIDE) & (dens.below <= 1 - MIN_SIDE) & (lower > 0)
    return np.where(inside, 1.0 - f / np.where(lower > 0, lower, 1.0), 0.0)


def depth_at(dens: Density, t: float) -> float:
    """Valley depth of the density at distance t (the nearest grid point)."""
    i = int(np.clip(np.searchsorted(dens.grid, t), 0, len(dens.grid) - 1))
    return float(depths(dens)[i])


def cut_valley(distances: np.ndarray, dens: Density) -> float:
    """The deepest point of the density; where the first deepest stretch is flat (an empty gap between the
    modes), its middle, keeping the widest margin to both."""
    depth = depths(dens)
    first = int(np.argmax(depth))
    last = first
    while last + 1 < len(depth) and depth[last + 1] == depth[first]:
        last += 1
    return float(dens.grid[(first + last) // 2])


def cut_otsu(distances: np.ndarray, dens: Density) -> float:
    """Otsu's threshold on the raw lengths: the split between consecutive distinct values that maximises the
    between-class variance w₀·w₁·(μ₀ − μ₁)², placed midway between them. O(n) on sorted input."""
    d = np.sort(np.asarray(distances, dtype=np.float64))
    n = len(d)
    w0 = np.arange(1, n) / n
    csum = np.cumsum(d)[:-1]
    mu0 = csum / np.arange(1, n)
    mu1 = (d.sum() - csum) / np.arange(n - 1, 0, -1)
    between = np.where(d[1:] > d[:-1], w0 * (1 - w0) * (mu0 - mu1) ** 2, -1.0)
    i = int(np.argmax(between))
    return float((d[i] + d[i + 1]) / 2)


def cut_gmm(distances: np.ndarray, dens: Density, seed: int = 0) -> float:
    """Two-component Gaussian mixture (sklearn) on the lengths: the last grid point from the lower mean
    upwards where the lower component's posterior is still ≥ 0.5 (the Bayes boundary between them)."""
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(2, random_state=seed).fit(np.asarray(distances, dtype=np.float64).reshape(-1, 1))
    lo, hi = np.argsort(gm.means_.ravel())
    mu_lo, mu_hi = float(gm.means_[lo, 0]), float(gm.means_[hi, 0])
    between = dens.grid[(dens.grid >= mu_lo) & (dens.grid <= mu_hi)]
    if not len(between):
        return mu_lo
    post = gm.predict_proba(between.reshape(-1, 1))[:, lo]
    below = np.flatnonzero(post < 0.5)
    first_below = int(below[0]) if len(below) else len(between)
    return float(between[max(first_below - 1, 0)])


CUTS: dict[str, Callable[[np.ndarray, Density], float]] = {
    "valley": cut_valley,
    "otsu": cut_otsu,
    "gmm": cut_gmm,
}


@dataclass(frozen=True)
class Cut:
    """One method's cut of one set of edge lengths: `threshold` t, the valley `depth` of the density at t
    (does a valley exist?), the `separation` of the two sides (how far apart are the modes?), and the
    density's `bandwidth`."""

    threshold: float
    depth: float
    separation: float
    bandwidth: float


def separation(distances: np.ndarray, t: float) -> float:
    """Ashman's D of the lengths ≤ t and > t: √2·|μ₁ − μ₀| / √(σ₀² + σ₁²) (two Gaussians of equal weight
    are bimodal for D > 2). Unlike the depth it does not saturate at an empty gap, so it ranks weights whose
    valleys are all deep; 0 when a side is empty."""
    d = np.asarray(distances, dtype=np.float64)
    lo, hi = d[d <= t], d[d > t]
    if not len(lo) or not len(hi):
        return 0.0
    spread = max(float(np.sqrt(lo.var() + hi.var())), 1e-12)  # finite, for JSON, when both sides are constant
    return float(np.sqrt(2) * (hi.mean() - lo.mean()) / spread)


def cut_of(distances: np.ndarray, method: str = DEFAULT_METHOD) -> Cut:
    """`method`'s cut of these edge lengths, t clipped to [0, 2], with its depth and separation."""
    dens = density(distances)
    if dens.bandwidth == 0:
        return Cut(float(np.clip(distances[0], 0.0, 2.0)), 0.0, 0.0, 0.0)
    t = float(np.clip(CUTS[method](distances, dens), 0.0, 2.0))
    return Cut(t, depth_at(dens, t), separation(distances, t), dens.bandwidth)


def is_clear(cut: dict, min_depth: float = MIN_DEPTH) -> bool:
    """Whether a cut (a dict with depth and largest_share, as `choose`'s grid rows) is accepted: its valley is
    at least `min_depth` deep and its largest group holds at most MAX_GROUP_SHARE of the clippings."""
    return cut["depth"] >= min_depth and cut["largest_share"] <= MAX_GROUP_SHARE


def preferred(clear: Sequence[dict]) -> dict:
    """The w to link at among clear cuts (dicts with im_wt, largest_share, separation): the smallest largest
    group, then the largest separation, then w nearest 0.5, then the smaller w."""
    return min(clear, key=lambda g: (g["largest_share"], -g["separation"], abs(g["im_wt"] - 0.5), g["im_wt"]))


def choose(emb: Poolable, weights: Sequence[float] = W_GRID, method: str = DEFAULT_METHOD, k: int = 20,
           min_depth: float = MIN_DEPTH, who: str = "link --threshold auto", index: str = "auto") -> AutoCut:
    """Choose t (and w among `weights`) from the embeddings alone.

    For each w: the MST edge lengths of the pooled vectors (`edge_lengths`), `method`'s cut and the share
    of the clippings in the largest group it makes. Among the weights whose valley depth is ≥ `min_depth`
    and whose largest group holds at most MAX_GROUP_SHARE of them, `preferred` picks: depth says whether the
    cut is clear, the largest group whether it chains. Raises BadInput (one line: the best depth or the largest group, the bound and what to do) when fewer
    than MIN_EDGES edges exist or no weight passes both: never a silent fallback; `who` begins the message.
    index: the search of the edge lengths (`index_for`: exact flat up to FLAT_MAX rows, ivf above, its
    nearest-neighbour recall in each grid row). Cost: one `edge_lengths` per weight.
    """
    from clippings.link.slink import mst_from_graph

    grid = []
    for w in weights:
        graph = neighbour_graph(emb.pooled(w), k, index)
        mst = mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)
        d = mst.distance
        if len(d) < MIN_EDGES:
            raise BadInput(f"{who}: only {len(d)} MST edges (at least {MIN_EDGES} are needed to see a valley); "
                           "give --threshold T")
        cut = cut_of(d, method)
        largest = int(np.bincount(components(mst, cut.threshold)).max())
        grid.append({"im_wt": float(w), "threshold": cut.threshold, "depth": cut.depth,
                     "separation": cut.separation, "bandwidth": cut.bandwidth, "edges": int(len(d)),
                     "largest_share": largest / graph.n, "index": graph.index, "nn_recall": graph.recall})
    clear = [g for g in grid if is_clear(g, min_depth)]
    if not clear:
        deep = [g for g in grid if g["depth"] >= min_depth]
        retry = "give --threshold T, or tune t on labelled clippings ('clippings tune --archive LABELLED')"
        if deep:
            merged = min(deep, key=lambda g: g["largest_share"])
            raise BadInput(
                f"{who}: no clear cut in the MST edge lengths (method {method}: the valley at t = "
                f"{merged['threshold']:.4f}, w = {merged['im_wt']:g} joins {100 * merged['largest_share']:.1f} % of "
                f"the clippings into one group, more than {100 * MAX_GROUP_SHARE:g} %: not reprints); {retry}")
        deepest = max(grid, key=lambda g: g["depth"])
        raise BadInput(
            f"{who}: no clear cut in the MST edge lengths (method {method}: valley depth {deepest['depth']:.3f} < "
            f"{min_depth:g} at t = {deepest['threshold']:.4f}, w = {deepest['im_wt']:g}); {retry}"
        )
    best = preferred(clear)
    return AutoCut(method, best["threshold"], best["im_wt"], best["depth"], best["separation"], best["edges"],
                   best["bandwidth"], grid, best["index"], best["nn_recall"])


def cut_table(mst: Mst, threshold: float, exact_up_to: float,
              factors: Sequence[float] = TABLE_FACTORS) -> dict:
    """What cuts near t do: {"delta": δ, "rows": one per t·factor (≤ 2)} with clusters, largest cluster,
    singletons, and the MST edges within ±δ of that cut (δ = DELTA_FRACTION·t: how many merges a small
    change would flip); `exact` is False above the MST's exact_up_to. Cost: O(n) per row."""
    delta = DELTA_FRACTION * threshold
    rows = []
    for factor in factors:
        t = min(2.0, threshold * factor)
        sizes = np.bincount(components(mst, t))
        rows.append({
            "threshold": t,
            "clusters": int(len(sizes)),
            "largest": int(sizes.max()) if len(sizes) else 0,
            "singletons": int((sizes == 1).sum()),
            "edges_within_delta": int((np.abs(mst.distance - t) <= delta).sum()),
            "exact": bool(t <= exact_up_to),
        })
    return {"delta": delta, "rows": rows}
