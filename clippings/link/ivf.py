"""The `ivf` linking: every pair within t that a cell-by-cell IVF range search finds, in this process or on
Ray actors, with nprobe calibrated to a recall target and the recall measured (design.md §7).

Steps: build the index (nlist = n/256 by default: clippings.link.cells), calibrate nprobe on one sample of
rows (the smallest power of two whose search finds `recall_target` of the sample's exact within-t pairs),
search every cell (clippings.link.cells.search_cells, or clippings.link.actors), recompute the kept edges'
distances in float64, and measure the recall on a second sample. Both samples use the search's own probing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable

import numpy as np

from clippings.link.cells import (
    CellPlan,
    balanced_shards,
    build_ivf,
    cell_batches,
    cell_plan,
    list_sizes,
    nlist_for,
    query,
    search_cells,
)
from clippings.link.knn import Graph, IvfCells, _exact_pairs, cosine_distances_of_pairs, ivf_cells, recall_of
from clippings.link.pruned import row_norms

CALIBRATION_WIDTH = 64
"""The probe table is built for up to this nprobe first (rebuilt wider only if calibration goes beyond)."""
SPILL_ROWS = 2_000_000
"""From this many rows the index is written to a temporary file and memory-mapped (page cache, not heap)."""
SHARDS_PER_ACTOR = 8
"""Work units per actor: enough that a slow actor takes fewer, few enough that each carries its forest once."""


def _found(index, plan: CellPlan, x: np.ndarray, rows: np.ndarray, assign: np.ndarray, threshold: float
           ) -> np.ndarray:
    """Keys a·n + b of the within-t pairs of x[rows] that the plan's search finds."""
    a, b, _ = query(index, plan, x[rows], rows, assign[rows], threshold)
    return a * len(x) + b


def calibrate_nprobe(index, plan: CellPlan, x: np.ndarray, norms: np.ndarray, rows: np.ndarray,
                     assign: np.ndarray, threshold: float, target: float) -> CellPlan:
    """The plan at the smallest power-of-two nprobe whose search of x[rows] finds `target` of their exact
    within-t pairs (brute force: O(len(rows)·n·d)); nlist at most."""
    truth = _exact_pairs(x, norms, rows, threshold)
    nprobe = 1
    while nprobe < index.nlist:
        if nprobe > plan.neighbours.shape[1] and plan.neighbours.shape[1] < index.nlist:
            plan = cell_plan(index, nprobe)
        plan = plan.with_nprobe(nprobe)
        if recall_of(_found(index, plan, x, rows, assign, threshold), truth) >= target:
            return plan
        nprobe *= 2
    return plan.with_nprobe(index.nlist)


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
) -> Graph:
    """The ivf Graph of unit rows x (n, d) float32 at `threshold` (see clippings.link.knn.knn_graph for the
    parameters). Memory: x, the index (n·(4·d + 24) bytes) and O(n + max_edges) edges; with actors each
    holds the index memory-mapped (shared pages on one machine). Time: O(n·nprobe·256·d) for the search,
    O(n·nlist·d) to fill the index, O(recall_sample·n·d) per calibration step."""
    n = len(x)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    norms = row_norms(x)
    index = build_ivf(x, min(nlist or nlist_for(n), n), seed)
    assign = ivf_cells(index).assign
    timings["index_s"] = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    samples = rng.choice(n, size=min(n, 2 * recall_sample), replace=False)
    calibrate, measure = np.sort(samples[: len(samples) // 2]), np.sort(samples[len(samples) // 2 :])
    t0 = time.perf_counter()
    plan = cell_plan(index, nprobe or 1, max_nprobe=nprobe or CALIBRATION_WIDTH)
    if not nprobe:
        plan = calibrate_nprobe(index, plan, x, norms, calibrate, assign, threshold, recall_target)
    plan = plan.trimmed()
    timings["calibrate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = cell_batches(list_sizes(index))
    nlist = int(index.nlist)
    actors = 0
    spilled = bool(search_actors) or n >= SPILL_ROWS
    folder = (index_dir if search_actors else None) or tempfile.mkdtemp(prefix="clippings-ivf-")
    try:
        if spilled:  # the index leaves the heap: memory-mapped from its file, pages shared with the actors
            from clippings.link.actors import load_index, save_index

            path = save_index(index, folder)
            del index
            index = load_index(path)
            timings["spill_s"] = time.perf_counter() - t0
        if search_actors:
            from clippings.link.actors import search_with_actors

            shards = balanced_shards(batches, SHARDS_PER_ACTOR * search_actors)
            src, dst, _, compactions, actors = search_with_actors(
                path, n, plan, shards, threshold, search_actors, max_edges, progress)
        else:
            src, dst, _, compactions, _ = search_cells(index, plan, batches, threshold, max_edges, progress)
        dist = cosine_distances_of_pairs(x, norms, src, dst)
        timings["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        recall = recall_of(_found(index, plan, x, measure, assign, threshold),
                         _exact_pairs(x, norms, measure, threshold))
        timings["recall_s"] = time.perf_counter() - t0
    finally:
        index = None  # unmap before the file goes
        _remove_index(folder, index_dir if search_actors else None)
    stats = {
        "edges": int(len(src)),
        "nlist": nlist,
        "nprobe": int(plan.nprobe),
        "compactions": int(compactions),
        "search": {"backend": "faiss-cpu", "actors": int(actors), "scheme": "cells",
                   "mean_list": round(n / nlist, 1), "index_memory_mapped": spilled},
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    cells = IvfCells(plan.centroids, assign)
    return Graph(n, src, dst, dist, float(threshold), "ivf", recall, stats, cells)


def _remove_index(folder: str, given: str | None) -> None:
    """Remove the index file written for the actors (the whole folder when it was a temporary one)."""
    from clippings.archive import filesystem, join
    from clippings.link.actors import INDEX_FILE

    if given is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    fs, inner = filesystem(join(folder, INDEX_FILE))
    if fs.exists(inner):
        fs.rm(inner)

