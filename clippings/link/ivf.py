"""The `ivf` linking: every pair within t that a cell-by-cell IVF range search finds, in this process or on
Ray actors, with nprobe calibrated to a recall target and the recall measured (docs/linking-at-scale.md).

Steps: train the centroids (nlist = 2·√n by default: clippings.link.cells), calibrate the probes on one
sample of rows (for each margin, the smallest nprobe of 1, 2, 3, 4, 6, 8, 12, … whose probes examine
`recall_target` of the sample's exact within-t pairs, a cell beyond a row's own probed only when its
centroid is within the margin of the nearest; the choice with the fewest probes per row wins), probe every
row (which places it in its cell), write the lists, search every list (clippings.link.cells.search_cells,
or clippings.link.actors), recompute the kept edges' distances in float64, and measure the recall on a
second sample with the search's own probe table.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable

import numpy as np

from clippings.link.cellfile import in_memory_lists, open_lists, remove_lists, write_lists
from clippings.link.cells import (
    PartLists,
    balanced_shards,
    cell_batches,
    centroid_quantizer,
    coverage,
    invert_probes,
    list_products,
    nearest_centroids,
    nlist_for,
    probe_cells,
    probe_table,
    search_cells,
    train_centroids,
)
from clippings.link.devicecells import products
from clippings.link.exact import cosine_distances_of_pairs, exact_pairs
from clippings.link.graph import Graph, IvfCells
from clippings.link.pruned import row_norms

MAX_NPROBE = 256
"""Calibration stops widening nprobe here (the recall it reached is then what is reported)."""
PROBE_MARGINS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, math.inf)
"""Similarity margins calibration tries: a row probes a cell beyond its own only when that cell's centroid
is within the margin of its nearest (inf: all of its nprobe nearest). Rows deep inside their cell then
probe fewer cells, rows near a border more."""
CALIBRATION_PAIRS = 20_000
"""Within-t pairs of the calibration sample whose coverage calibration counts (a random subset: the pairs'
rows each cost a quantizer search; the recall's standard error stays ≤ 0.004)."""
SPILL_ROWS = 2_000_000
"""From this many rows the lists are written to a temporary file in cell order and memory-mapped (page cache,
not heap: clippings.link.cellfile)."""
SHARDS_PER_ACTOR = 8
"""Work units per actor: enough that a slow actor takes fewer, few enough that each carries its forest once."""


def probe_recall(n: int, truth: np.ndarray, table: np.ndarray, assign: np.ndarray) -> float:
    """Fraction of the exact within-t pairs `truth` (keys a·n + b over n rows) that the search examines, and
    so finds (clippings.link.cells.coverage); 1 when there are none. table/assign: the search's probe table
    (rows that do not query: rows of −1) and every row's cell."""
    if not len(truth):
        return 1.0
    a, b = truth // n, truth % n
    return float(coverage(table[a], assign[a], table[b], assign[b]).mean())


def nprobe_ladder(limit: int) -> list[int]:
    """The nprobe values calibration tries, up to `limit`: 1, 2, 3, 4, 6, 8, 12, 16, … (steps of 1.5 and 4/3,
    not 2: the search's time is proportional to nprobe, so a finer ladder stops nearer the fewest probes
    that reach the target; docs/benchmarks.md#linking-at-scale-10m-before-the-probe-margin)."""
    powers = [2**k for k in range(max(1, limit).bit_length())]
    return sorted({v for p in powers for v in (p, 3 * p // 2) if v < limit} | {max(1, limit)})


def calibration_pairs(x: np.ndarray | PartLists, norms: np.ndarray | None, rows: np.ndarray, threshold: float,
                      rng: np.random.Generator) -> np.ndarray:
    """The exact within-t pairs of `rows` (keys a·n + b) that calibration counts: all of them, or a random
    CALIBRATION_PAIRS when there are more. Cost: O(len(rows)·n·d) brute force."""
    return subsample_pairs(exact_pairs(x, norms, rows, threshold), rng)


def subsample_pairs(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The pairs calibration counts: all of `truth`, or a random CALIBRATION_PAIRS of them."""
    if len(truth) > CALIBRATION_PAIRS:
        truth = np.sort(rng.choice(truth, size=CALIBRATION_PAIRS, replace=False))
    return truth


def calibrate_probes(quantizer, x: np.ndarray | PartLists, truth: np.ndarray, sample: np.ndarray, target: float,
                     nlist: int, first_query: int = 0) -> tuple[int, float]:
    """(nprobe, margin): the probes (clippings.link.cells.probe_table) that examine `target` of the exact
    within-t pairs `truth` with the fewest probes per row, on average over the random rows `sample` (the
    search's time follows it). For each margin of PROBE_MARGINS, the smallest nprobe of `nprobe_ladder`
    (up to nlist and MAX_NPROBE) reaching the target; the margin whose rows probe fewest wins. If none
    reaches it: the widest. first_query: rows below it do not query (`link --add`: the old rows), so a pair
    with one of them is found from the other side only. Cost: one quantizer search of the pairs' rows and the
    sample at the widest."""
    width = min(nlist, MAX_NPROBE)
    if not len(truth):
        return 1, math.inf
    n = len(x)
    rows, inverse = np.unique(np.concatenate([truth // n, truth % n]), return_inverse=True)
    a, b = inverse[: len(truth)], inverse[len(truth) :]
    sims, cells = nearest_centroids(quantizer, x[rows], width)
    own, silent = cells[:, 0], rows < first_query
    sample_sims, _ = nearest_centroids(quantizer, x[sample], width)
    best = (math.inf, width, math.inf)
    for margin in PROBE_MARGINS:
        for nprobe in nprobe_ladder(width):
            table = probe_table(sims, cells, nprobe, margin)
            table[silent] = -1
            if coverage(table[a], own[a], table[b], own[b]).mean() >= target:
                within = sample_sims[:, :nprobe] >= sample_sims[:, :1] - np.float32(margin)
                best = min(best, (float(within.sum(axis=1).mean()), nprobe, margin))
                break
    return best[1], best[2]


def ivf_cells_graph(
    x: np.ndarray,
    threshold: float,
    nlist: int | None,
    nprobe: int | None,
    recall_sample: int,
    recall_target: float,
    seed: int,
    max_edges: int,
    search_actors: int = 0,
    index_dir: str | None = None,
    progress: Callable[[int], None] | None = None,
    device: str | None = None,
    actor_gpu: bool | None = None,
) -> Graph:
    """The ivf Graph of unit rows x (n, d) float32 at `threshold` (see clippings.link.knn.knn_graph for the
    parameters). Memory: x; the lists (a sorted copy of x, n·(4·d + 16) bytes: in the heap below SPILL_ROWS,
    else a memory-mapped file, which actors map too: shared pages on one machine); O(n + max_edges) edges;
    n·nprobe·4 bytes of probes (twice). device: a torch device ("cuda") for the products of a search in this
    process (float16, candidates re-checked in float32: clippings.link.devicecells); None: float32 BLAS on
    the CPUs. actor_gpu: the same choice for search actors, one GPU each, made from the Ray cluster's GPUs
    (clippings.link.actors.actor_device; None: GPUs where the cluster has one per actor).
    Time: O(n·nprobe·(n/nlist)·d) for the search, O(n·nlist·d) for the probes (one BLAS GEMM each; HNSW from
    HNSW_NLIST cells: O(n·log nlist·d)), O(recall_sample·n·d) for each sample's exact pairs."""
    n = len(x)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    norms = row_norms(x)
    centroids = train_centroids(x, min(nlist or nlist_for(n), n), seed)
    quantizer = centroid_quantizer(centroids)
    timings["centroids_s"] = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    samples = rng.choice(n, size=min(n, 2 * recall_sample), replace=False)
    calibrate, measure = np.sort(samples[: len(samples) // 2]), np.sort(samples[len(samples) // 2 :])
    t0 = time.perf_counter()
    margin, calibrated = math.inf, not nprobe
    if calibrated:
        truth = calibration_pairs(x, norms, calibrate, threshold, rng)
        nprobe, margin = calibrate_probes(quantizer, x, truth, calibrate, recall_target, len(centroids))
    timings["calibrate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = probe_cells(quantizer, x, int(min(nprobe, len(centroids))), margin=margin)
    probes = invert_probes(table, len(centroids))
    del table
    assign = probes.cells[:, 0].astype(np.int64)
    timings["probes_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nlist = len(centroids)
    batches = cell_batches(probes.sizes())
    actors = 0
    spilled = bool(search_actors) or n >= SPILL_ROWS
    folder = (index_dir if search_actors else None) or tempfile.mkdtemp(prefix="clippings-ivf-")
    lists = None
    product = None if search_actors else products(device)
    product_name = product.name if product else ""
    try:
        if spilled:  # the lists as a mapped file in cell order (pages shared with the actors), no heap copy
            write_lists(x, assign, nlist, folder)
            lists = None if search_actors else open_lists(folder)
        else:
            lists = in_memory_lists(x, assign, nlist)
        timings["index_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if search_actors:
            from clippings.link.actors import search_with_actors

            shards = balanced_shards(batches, SHARDS_PER_ACTOR * search_actors)
            src, dst, _, compactions, actors, product_name = search_with_actors(
                folder, n, probes, shards, threshold, search_actors, max_edges, progress, actor_gpu)
        else:
            src, dst, _, compactions, _ = search_cells(lists, probes, batches, threshold, max_edges, progress,
                                                       product=product)
        dist = cosine_distances_of_pairs(x, norms, src, dst)
        timings["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        truth = exact_pairs(x, norms, measure, threshold)
        recall = probe_recall(n, truth, probes.cells, assign)
        timings["recall_s"] = time.perf_counter() - t0
    finally:
        lists = None  # unmap before the files go
        remove_lists(folder, given=bool(search_actors and index_dir))
    stats = {
        "edges": int(len(src)),
        "nlist": nlist,
        "nprobe": int(probes.nprobe),
        "probe_margin": None if margin == math.inf else margin,
        "nprobe_calibrated": calibrated,
        "mean_probes": round(float(len(probes.rows)) / max(1, n), 2),
        "list_products": list_products(probes.owners, probes.sizes()),
        "compactions": int(compactions),
        "search": {"backend": "faiss-cpu", "product": product_name, "actors": int(actors), "scheme": "cells",
                   "mean_list": round(n / nlist, 1), "index_memory_mapped": spilled},
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    cells = IvfCells(centroids, assign)
    return Graph(n, src, dst, dist, float(threshold), "ivf", recall, stats, cells)
