"""The ivf link spread over a Ray cluster (`link --search-actors N` on an embeddings folder): every pass over
the rows runs in Ray tasks, part by part, where the rows are read; the driver trains the centroids on a
sample, hands out parts and search shards, and merges spanning forests.

Passes, each a Ray task per embeddings part (clippings.link.cellfile has the folder's layout):
1. read: the part is read, checked (finite, unit norm) and pooled at w, and its pooled rows are written to
   the index folder (`pooled/`); the task returns the part's ids (Arrow, left in the object store), its
   count, model fingerprint, and the vectors and ids of the sample rows it holds (centroids, calibration,
   recall, the id ranges' splitters). The ids are then shuffled into sorted ranges, which refuse a repeated
   id (clippings.link.spreadtables).
2. sample pairs: the exact within-t pairs of the calibration and recall samples' rows against the part's rows
   (brute force, both samples in one pass); then the vectors of the rows of the calibration's pairs
   (at most CALIBRATION_PAIRS of them).
3. place: the part's rows probe their nearest centroids (which puts each in its cell); the part writes its
   lists (its rows in cell order, as the links folder's vectors part, and its probes) and returns per-cell
   counts, from which the driver cuts the search into shards (O(nlist) per part).
4. recall: the probe rows of the recall sample's pairs' rows, read from the parts' probe tables.
5. search, on the search actors (clippings.link.actors.SearchPool), whose forests go straight to a
   ForestMerger actor (clippings.link.merger), which also cuts the MST (tasks run before: the actors may
   hold every CPU).
6. names and tables: the clusters are named and clusters.parquet and mst.parquet made by tasks
   (clippings.link.spreadtables); the largest clusters' radii from their members' pooled rows, part by part.

Rows are numbered by their place in the embeddings (parts in order), as in a single-process link, and each
step computes what the single-process one does on the same rows, so the clusters are the same
(tests/test_link_spread.py). The driver holds no array with a row per clipping: the sample rows, O(nlist)
per part, the ranges' splitters, and one range or MST chunk at a time while it writes the tables.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clippings.errors import BadInput
from clippings.link.cellfile import (
    cell_layout,
    local_file,
    part_array,
    part_name,
    remove_lists,
    save_array,
    write_part_lists,
)
from clippings.link.cells import (
    balanced_shards,
    cell_batches,
    centroid_quantizer,
    centroid_sample,
    centroids_of_sample,
    invert_probes,
    list_products,
    nlist_for,
    probe_cells,
)
from clippings.link.exact import exact_pairs
from clippings.link.graph import Graph
from clippings.link.ivf import SHARDS_PER_ACTOR, calibrate_probes, probe_recall, subsample_pairs
from clippings.link.pipeline import cluster_report, link_info
from clippings.link.spreadtables import SpreadTables, component_names, id_ranges
from clippings.link.store import CENTROIDS, VECTORS, VectorRows, fixed_list, vector_part_name, write_ipc
from clippings.numeric import unique_ints
from clippings.raylocal import task
from clippings.storage import filesystem, join, list_parts

SPREAD_FOLDERS = ("pooled", VECTORS, "lists")
"""What a spread link writes into its index folder (removed when the links folder is written)."""


class KnownRows:
    """Some rows' vectors by row number, among n: query rows from anywhere (sorted `rows`, `vectors`) and a
    part's block (rows first … first + len(block) − 1), which `pieces` walks: what exact_pairs reads."""

    def __init__(self, n: int, rows: np.ndarray, vectors: np.ndarray, first: int = 0, block: np.ndarray | None = None):
        self.n, self.rows, self.vectors, self.first = n, rows, vectors, first
        self.block = np.empty((0, vectors.shape[1]), np.float32) if block is None else block

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, int(self.vectors.shape[1])

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        inside = (rows >= self.first) & (rows < self.first + len(self.block))
        out[inside] = self.block[rows[inside] - self.first]
        at = np.searchsorted(self.rows, rows[~inside])
        if len(at) and (at.max() >= len(self.rows) or (self.rows[at] != rows[~inside]).any()):
            raise KeyError("a row that is neither a query nor in this part")
        out[~inside] = self.vectors[at]
        return out

    def pieces(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self.block), rows):
            piece = self.block[start : start + rows]
            yield np.arange(self.first + start, self.first + start + len(piece)), piece


@dataclass
class PartRead:
    """What pass 1 returns of one part: its rows, dimension, model, and the vectors of the sample rows in it."""

    rows: int
    dim: int
    fingerprint: str
    model_name: str
    sample_rows: np.ndarray
    sample: np.ndarray
    sample_ids: pa.Array


def _pooled_path(folder: str, number: int) -> str:
    return join(folder, "pooled", part_name(number) + ".npy")


def read_part(path: str, part: str, number: int, first: int, im_wt: float, folder: str, wanted: np.ndarray
              ) -> tuple[PartRead, pa.Array]:
    """Pass 1 on one part (module docstring); returns (PartRead, the part's ids)."""
    from clippings.embeddings import pooled_part

    towers, pooled = pooled_part(path, part, im_wt)
    if len(pooled):
        save_array(_pooled_path(folder, number), pooled)
    here = wanted[(wanted >= first) & (wanted < first + len(pooled))]
    read = PartRead(len(pooled), int(pooled.shape[1]), towers.fingerprint, towers.model_name, here,
                    np.ascontiguousarray(pooled[here - first]), towers.ids.take(pa.array(here - first)))
    return read, towers.ids


@contextmanager
def _pooled_rows(folder: str, number: int) -> Iterator[np.ndarray]:
    """One part's pooled rows, memory-mapped (downloaded first from s3://, removed after)."""
    with tempfile.TemporaryDirectory(prefix="clippings-spread-") as cache:
        yield np.load(local_file(_pooled_path(folder, number), cache), mmap_mode="r")


def part_pairs(folder: str, number: int, first: int, n: int, rows: np.ndarray, vectors: np.ndarray,
               threshold: float) -> np.ndarray:
    """Pass 2 on one part: the keys a·n + b of the exact within-t pairs of the query rows `rows` with this
    part's rows."""
    with _pooled_rows(folder, number) as block:
        return exact_pairs(KnownRows(n, rows, vectors, first, block), None, rows, threshold)


def part_pooled_rows(folder: str, number: int, first: int, rows: np.ndarray) -> np.ndarray:
    """The pooled vectors of these rows of one part."""
    with _pooled_rows(folder, number) as pooled:
        return np.array(pooled[rows - first])


def part_probe_rows(folder: str, number: int, first: int, rows: np.ndarray) -> np.ndarray:
    """Pass 4 on one part: the probe rows of these rows of the part (its probe table, written by pass 3)."""
    with tempfile.TemporaryDirectory(prefix="clippings-spread-") as cache:
        return np.array(part_array(folder, number, "probe_table", cache)[rows - first])


def place_part(folder: str, number: int, first: int, ids: pa.Array, centroids: np.ndarray, nprobe: int,
               margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Pass 3 on one part: probe, place and write its lists (module docstring); returns (query rows probing
    each cell, rows whose own cell it is), nlist each."""
    with _pooled_rows(folder, number) as pooled:
        nlist = len(centroids)
        table = probe_cells(centroid_quantizer(centroids), pooled, nprobe, margin=margin)
        own = table[:, 0].astype(np.int64)
        order, starts = cell_layout(own, nlist)
        vectors = pa.table({"clipping_id": ids.take(pa.array(order)), "vector": fixed_list(pooled[order]),
                            "cell": pa.array(own[order].astype(np.int32))})
        write_ipc(vectors, join(folder, VECTORS, vector_part_name(number)))
        inverted = invert_probes(table, nlist)
        write_part_lists(folder, number, {
            "cell_order": order + first,
            "cell_starts": starts,
            "probe_table": table,
            "probe_rows": (inverted.rows.astype(np.int64) + first).astype(np.int32),
            "probe_starts": inverted.starts,
        })
        return np.diff(inverted.starts), np.bincount(own, minlength=nlist)


def part_rows(part: str) -> int:
    """Rows of one Parquet part, from its footer."""
    import pyarrow.parquet as pq

    fs, inner = filesystem(part)
    with fs.open(inner, "rb") as f:
        return int(pq.ParquetFile(f).metadata.num_rows)


def embeddings_parts(path: str) -> list[tuple[str, int]]:
    """(part, rows) of each part of an embeddings dataset, from the parts' footers (no row read)."""
    return [(part, part_rows(part)) for part in list_parts(path, "embeddings")]


@contextmanager
def spread_folder(index_dir: str | None) -> Iterator[str]:
    """The folder a spread link writes its pooled rows and lists to: `index_dir` (local, or s3:// for a
    cluster whose machines share no disk), else a local temporary folder; what the link wrote there is
    removed on leaving (after the links folder, which carries the vectors parts, is written)."""
    folder = index_dir or tempfile.mkdtemp(prefix="clippings-spread-")
    if index_dir:
        remove_lists(folder, True, SPREAD_FOLDERS)  # a crashed link's leftovers
    try:
        yield folder
    finally:
        remove_lists(folder, bool(index_dir), SPREAD_FOLDERS)


def spread_link(path: str, parts_rows: list[tuple[str, int]], threshold: float, im_wt: float, folder: str,
                actors: int, nlist: int | None = None,
                nprobe: int | None = None, recall_sample: int = 1000, recall_target: float = 0.995, seed: int = 0,
                k: int = 20, max_edges: int | None = None, progress: Callable[[int], None] | None = None,
                gpu: bool | None = None, log: Callable[[str], None] | None = None, largest: int = 10
                ) -> SpreadTables:
    """Single linkage of embeddings dataset `path` at `threshold` (pooled at `im_wt`), the ivf search's
    clusters (clippings.link.ivf, the same parameters), every pass over the rows in Ray tasks (module
    docstring). folder: spread_folder's. The result writes its tables from tasks (write_links); its vectors
    are the folder's parts, carried into the links folder. Memory on the driver: the sample rows and O(nlist)
    per part; nothing per row."""

    from clippings.embeddings import same_model
    from clippings.link.actors import SearchPool
    from clippings.link.knn import default_max_edges
    from clippings.link.merger import remote_merger
    from clippings.raylocal import get, init_ray

    say = log or (lambda line: None)
    init_ray()
    start = time.perf_counter()
    timings: dict[str, float] = {}
    parts, counts = [part for part, _ in parts_rows], [rows for _, rows in parts_rows]
    n = sum(counts)
    if n == 0:
        raise BadInput(f"embeddings {path}: the dataset is empty (0 rows); embed at least one clipping")
    firsts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64).tolist()
    nlist = min(nlist or nlist_for(n), n)
    train = centroid_sample(n, nlist, seed)
    rng = np.random.default_rng(seed)
    samples = rng.choice(n, size=min(n, 2 * recall_sample), replace=False)
    calibrate, measure = np.sort(samples[: len(samples) // 2]), np.sort(samples[len(samples) // 2 :])
    wanted = unique_ints(np.concatenate([train, calibrate, measure]))

    say(f"link: reading {len(parts)} embeddings parts ({n} rows) on Ray tasks")
    calls = [task(read_part).options(num_returns=2).remote(path, part, p, firsts[p], im_wt, folder, wanted)
             for p, part in enumerate(parts)]
    reads: list[PartRead] = get([read for read, _ in calls])
    id_refs = [ids for _, ids in calls]
    same_model(path, parts, [r.fingerprint for r in reads])
    for part, read, count in zip(parts, reads, counts, strict=True):
        if read.rows != count:
            raise BadInput(f"embeddings {part}: its footer says {count} rows, {read.rows} were read; rewrite it")
    dim = reads[0].dim
    sample = KnownRows(n, np.concatenate([r.sample_rows for r in reads]),
                       np.concatenate([r.sample.reshape(-1, dim) for r in reads]))
    live = [k for k, r in enumerate(reads) if r.rows]
    ranges = id_ranges(path, id_refs, firsts, pa.concat_arrays([r.sample_ids for r in reads]))
    timings["read_s"] = time.perf_counter() - start

    t0 = time.perf_counter()
    centroids = centroids_of_sample(sample[train], nlist, seed)
    quantizer = centroid_quantizer(centroids)
    timings["centroids_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # the two samples' exact pairs in one pass over the parts
    margin, calibrated = math.inf, not nprobe
    queries = unique_ints(np.concatenate([calibrate, measure])) if calibrated else measure
    keys = unique_ints(np.concatenate(get([task(part_pairs).remote(folder, p, firsts[p], n, queries, sample[queries],
                                                                   threshold) for p in live])))
    a, b = keys // n, keys % n
    measured = keys[np.isin(a, measure) | np.isin(b, measure)]  # what exact_pairs of `measure` alone gives
    timings["sample_pairs_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if calibrated:
        truth = subsample_pairs(keys[np.isin(a, calibrate) | np.isin(b, calibrate)], rng)
        rows = unique_ints(np.concatenate([truth // n, truth % n, calibrate]))  # only these rows' vectors
        spans = [_rows_in(rows, firsts[p], firsts[p + 1]) for p in live]
        partners = KnownRows(n, rows, np.concatenate(get([task(part_pooled_rows).remote(folder, p, firsts[p], span)
                                                          for p, span in zip(live, spans, strict=True)])))
        nprobe, margin = calibrate_probes(quantizer, partners, truth, calibrate, recall_target, nlist)
        del partners
    nprobe = int(min(nprobe, nlist))
    del keys, a, b
    timings["calibrate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"link: placing the rows in {nlist} cells, {nprobe} probes each at most, on Ray tasks")
    placed = get([task(place_part).remote(folder, p, firsts[p], id_refs[p], centroids, nprobe, margin)
                  for p in live])
    write_ipc(pa.table({"centroid": fixed_list(centroids)}), join(folder, VECTORS, CENTROIDS))
    sizes = np.sum([p[0] for p in placed], axis=0)
    owners = np.concatenate([[0], np.cumsum(np.sum([p[1] for p in placed], axis=0))]).astype(np.int64)
    timings["probes_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # before the search: its actors may hold every CPU a task would need
    rows = unique_ints(np.concatenate([measured // n, measured % n]))
    spans = [_rows_in(rows, firsts[p], firsts[p + 1]) for p in live]
    tables = get([task(part_probe_rows).remote(folder, p, firsts[p], span) for p, span in zip(live, spans,
                                                                                             strict=True)])
    table = np.concatenate(tables) if tables else np.empty((0, nprobe), np.int32)
    a, b, m = np.searchsorted(rows, measured // n), np.searchsorted(rows, measured % n), len(rows)
    recall = probe_recall(m, a * m + b, table, table[:, 0].astype(np.int64))
    timings["recall_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shards = balanced_shards(cell_batches(sizes), SHARDS_PER_ACTOR * actors)
    max_edges = max_edges or default_max_edges(n)
    merger = remote_merger(n, max_edges)
    with SearchPool(folder, actors, gpu, owners) as pool:
        _, _, _, compactions, product = pool.search(n, None, shards, threshold, max_edges, progress, sink=merger)
        timings["search_s"] = time.perf_counter() - t0
        say(f"link: {n} rows searched; cutting at t = {threshold:g}")
        cut = get(merger.cut.remote(pool.pool, threshold, largest))
        actors_used = len(pool.pool)
    t0 = time.perf_counter()  # tasks again, now that the actors have let their CPUs go
    labels, sizes_of = merger.row_components.remote(), merger.component_sizes.remote()
    names, top = component_names(ranges, labels, sizes_of, cut["floor"], largest)
    radii = cluster_radii(folder, firsts, live, merger, [c for _, c, _ in top])
    report = cluster_report(cut["clusters"], cut["size_histogram"], top, radii.__getitem__, threshold)
    timings["names_s"] = time.perf_counter() - t0
    stats = {
        "nlist": nlist,
        "nprobe": nprobe,
        "probe_margin": None if margin == math.inf else margin,
        "nprobe_calibrated": calibrated,
        "mean_probes": round(float(sizes.sum()) / n, 2),
        "list_products": list_products(owners, sizes),
        "compactions": int(compactions + cut["compactions"]),
        "search": {"backend": "faiss-cpu", "product": product, "actors": actors_used, "scheme": "cells",
                   "mean_list": round(n / nlist, 1), "index_memory_mapped": True, "spread": True},
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    empty = np.empty(0, np.int64)
    graph = Graph(n, empty, empty, np.empty(0, np.float64), float(threshold), "ivf", recall, stats)
    info = link_info(graph, cut["edges"], cut["mst_edges"], dim, threshold, im_wt, k, reads[0].fingerprint,
                     reads[0].model_name, cut["seconds"], start, report)
    vectors = VectorRows(np.empty(0, object), np.empty((0, dim), np.float32), carry=folder)
    return SpreadTables(info, vectors, ranges, names, id_refs, firsts, labels, sizes_of, merger, cut["mst_edges"])


def member_sums(folder: str, number: int, first: int, count: int, members: list[np.ndarray]) -> np.ndarray:
    """The float64 sum of each cluster's members' vectors among this part's pooled rows (largest, d)."""
    with _pooled_rows(folder, number) as pooled:
        return np.stack([pooled[_rows_in(rows, first, first + count) - first].astype(np.float64).sum(axis=0) for rows in members])


def member_min_cos(folder: str, number: int, first: int, count: int, members: list[np.ndarray],
                   centroids: np.ndarray) -> np.ndarray:
    """The smallest cosine between each cluster's members among this part's rows and its centroid (1 where
    none), as clippings.link.pipeline.angular_radius computes it."""
    with _pooled_rows(folder, number) as pooled:
        out = np.ones(len(members))
        for k, (rows, centroid) in enumerate(zip(members, centroids, strict=True)):
            x = pooled[_rows_in(rows, first, first + count) - first].astype(np.float64)
            if len(x):
                out[k] = float((x @ centroid / np.maximum(np.linalg.norm(x, axis=1), 1e-300)).min())
        return out


def _rows_in(rows: np.ndarray, first: int, end: int) -> np.ndarray:
    """The rows among `rows` that lie in first … end − 1."""
    return rows[(rows >= first) & (rows < end)]


def cluster_radii(folder: str, firsts: list[int], live: list[int], merger, clusters: list[int]) -> dict[int, float]:
    """The angular radius (degrees) of each of these components, from their members' pooled rows read where
    they lie (two rounds of part tasks: the centroids' sums, then each member's cosine)."""
    from clippings.raylocal import get

    if not clusters:
        return {}
    members = merger.members.remote(clusters)
    spans = [(folder, p, firsts[p], firsts[p + 1] - firsts[p], members) for p in live]
    centroids = np.sum(get([task(member_sums).remote(*span) for span in spans]), axis=0)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-300)
    cos = np.min(get([task(member_min_cos).remote(*span, centroids) for span in spans]), axis=0)
    return {c: math.degrees(math.acos(float(np.clip(v, -1.0, 1.0)))) for c, v in zip(clusters, cos, strict=True)}


def spread_enabled(parts: list[tuple[str, int]]) -> bool:
    """Whether `link` spreads the ivf link of these embeddings parts (embeddings_parts) over its search actors:
    when they hold enough rows for cells (below 1,024 the search is the exact flat one, in this process)."""
    return sum(rows for _, rows in parts) >= 1024

