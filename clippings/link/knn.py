"""The neighbour graph that single linkage needs: every pair at cosine distance ≤ t, proven complete.

Single-linkage clusters at t are the components of the graph of pairs with d ≤ t
(docs/architecture.md#linking). A kNN graph holds all of a point's pairs closer than its k-th neighbour, so
it is complete up to the smallest k-th-neighbour distance; points whose k-th neighbour lies within t
("saturated") are re-queried with a larger k, then with a range search, until every pair ≤ t is in.
`exact_up_to` records the largest threshold for which the graph provably holds every pair.

FAISS computes inner products in float32; candidates are gathered with the float32 error margin and every
edge's distance is recomputed in float64 (clippings.link.exact), so no pair at exactly t is lost to rounding.

Three searches: "flat" (exact kNN + re-queries, above), "pruned" (exact ε-graph by ball-pruned cells,
clippings.link.pruned) and "ivf" (FAISS IVF range search at radius t, nprobe chosen on a sample to reach a
recall target, the recall reported). The ε-graph searches hand their pairs to a `ForestBuffer`, which keeps
memory at O(n + max_edges) by compacting to a minimum spanning forest: the same single linkage up to t.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np

from clippings.errors import BadInput
from clippings.link.exact import confirmed_pairs, cosine_distances_of_pairs
from clippings.link.graph import Graph
from clippings.link.pruned import float32_margin, pruned_range_graph, row_norms
from clippings.link.slink import ForestBuffer

INDEXES = ("flat", "ivf", "pruned")


def _faiss_index(x: np.ndarray, index: str, nlist: int | None, seed: int):
    """A FAISS inner-product index over x: flat, or IVF (k-means cells, 10 iterations on ≤ 64·nlist
    points; nlist default 2·√n) for index="ivf" with n ≥ 1024. Memory: a copy of x."""
    import faiss

    n, dim = x.shape
    if index == "flat" or n < 1024:
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        return flat, "flat"
    nlist = min(nlist or max(16, int(2 * math.sqrt(n))), n)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    ivf.cp.min_points_per_centroid = 1
    rng = np.random.default_rng(seed)
    ivf.train(x[np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))])
    ivf.add(x)
    return ivf, "ivf"


def _search(index, x: np.ndarray, rows: np.ndarray, k: int, batch: int,
            progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products of x[rows] in batches (memory O(batch·k)); `progress` gets each batch's size."""
    sims = np.empty((len(rows), k), dtype=np.float32)
    idx = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), batch):
        q = x[rows[start : start + batch]]
        sims[start : start + len(q)], idx[start : start + len(q)] = index.search(q, k)
        if progress is not None:
            progress(len(q))
    return sims, idx


def _range(
    index, x: np.ndarray, rows: np.ndarray, min_sim: float, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (row, neighbour) with inner product > min_sim (faiss range search is strict)."""
    srcs, dsts = [], []
    for start in range(0, len(rows), batch):
        q_rows = rows[start : start + batch]
        lims, _, labels = index.range_search(x[q_rows], float(min_sim))
        counts = np.diff(lims.astype(np.int64))
        srcs.append(np.repeat(q_rows, counts))
        dsts.append(labels.astype(np.int64))
    if not srcs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(srcs), np.concatenate(dsts)


def _torch_knn(x: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products with a CUDA matmul (the GPU path when faiss-gpu is absent)."""
    import torch

    xt = torch.from_numpy(x).cuda()
    sims, idx = [], []
    for start in range(0, len(x), batch):
        s, i = torch.topk(xt[start : start + batch] @ xt.T, k, dim=1)
        sims.append(s.cpu().numpy())
        idx.append(i.cpu().numpy())
    return np.concatenate(sims), np.concatenate(idx).astype(np.int64)


def _cuda_available() -> bool:
    """CUDA through torch, checked only where an NVIDIA device node exists (importing torch costs seconds)."""
    if not os.path.exists("/dev/nvidiactl"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def gpu_backend() -> str | None:
    """The GPU search available here: "faiss-gpu" (a FAISS GPU build, `faiss.get_num_gpus()` > 0), "torch"
    (CUDA through torch with a CPU-only FAISS: a matmul top-k), or None (no GPU)."""
    import faiss

    if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        return "faiss-gpu"
    return "torch" if _cuda_available() else None


def unique_pairs(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop self pairs and missing (-1) neighbours; order each pair (small, large) and deduplicate.
    Cost: one in-place sort of E int64 keys (numpy's hash-based unique is several times slower)."""
    keep = (dst >= 0) & (src != dst)
    a, b = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    key = a.astype(np.int64) * n + b
    key.sort()
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key = key[first]
    return key // n, key % n


def knn_graph(
    vectors: np.ndarray,
    k: int = 20,
    threshold: float | None = None,
    index: str = "flat",
    batch_size: int = 8192,
    nlist: int | None = None,
    nprobe: int | None = None,
    recall_sample: int = 1000,
    recall_target: float = 0.995,
    seed: int = 0,
    gpu: bool | None = None,
    max_edges: int | None = None,
    progress: Callable[[int], None] | None = None,
    search_actors: int = 0,
    index_dir: str | None = None,
) -> Graph:
    """Neighbour graph of unit vectors (cosine distance), complete up to `threshold` (module docstring).

    vectors: (n, d) float32, unit norm. k: neighbours per point (flat). threshold: the cut to be made
    exact; None gives the plain kNN graph (exact up to the smallest k-th-neighbour distance). index: "flat"
    (exact kNN + re-queries), "pruned" (exact ε-graph, needs threshold) or "ivf" (approximate; with a
    threshold a range search whose probes, unless nprobe is given, are calibrated to reach `recall_target`
    on `recall_sample` points with the fewest cells per row (clippings.link.ivf.calibrate_probes); the
    recall of within-t pairs is then measured on another sample against exact search; below 1,024 rows,
    too few for cells, the exact flat search instead). nlist: ivf cells
    (default 2·√n). gpu: a CUDA torch matmul top-k for the flat kNN step, and for ivf's range search float16
    products on the GPU, every candidate re-checked in float32: in this process, or with search actors one
    GPU per actor (None: where this process sees CUDA, or where the Ray cluster has a GPU per actor; True
    without them is refused). max_edges: edges the ε-graph searches hold before
    compacting to a minimum spanning forest (default max(2²⁰, 8·n); None there keeps all edges).
    progress: called with the number of points queried after each batch of the flat/ivf search.
    search_actors: ivf with a threshold: spread the range search over this many Ray actors (0: in this
    process; clippings.link.actors), which load the index from `index_dir` (default: a local temporary
    folder; on a cluster without a shared disk give an s3:// folder).
    Cost: flat O(n²·d) time, O(batch·n) transient and O(n·k) edge memory; pruned see
    clippings.link.pruned; ivf ~ nprobe/nlist of flat plus O(n·nlist·d), memory a copy of x + max_edges.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    if max_edges is None:
        max_edges = default_max_edges(n)
    if index == "pruned" and threshold is None:
        raise ValueError("the pruned index needs a threshold")
    if index == "pruned":
        src, dst, dist, stats = pruned_range_graph(x, threshold, max_edges=max_edges)
        return Graph(n, src, dst, dist, float(threshold), "pruned", None, {"edges": int(len(src)), **stats})
    if index == "ivf" and threshold is not None and n >= 1024:
        from clippings.link.ivf import ivf_cells_graph

        cuda = not search_actors and gpu is not False and _cuda_available()
        if gpu and not search_actors and not cuda:
            raise BadInput("link --gpu: torch sees no CUDA device here; drop --gpu or run where one is")
        return ivf_cells_graph(x, threshold, nlist, nprobe, recall_sample, recall_target, seed, max_edges,
                               search_actors, index_dir, progress, "cuda" if cuda else None, gpu)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    norms = row_norms(x)
    margin = float32_margin(dim)
    kk = min(k + 1, n)  # +1: a point finds itself (or an exact duplicate of itself)
    backend = gpu_backend() if gpu is None or gpu else None
    if gpu and backend is None:
        raise BadInput("link --gpu: neither faiss-gpu nor CUDA through torch is available here; drop --gpu or "
                       "install the GPU build (docs/operations.md#gpus)")
    searcher = None
    if backend == "torch" and index == "flat":
        kind = "flat"
        sims, idx = _torch_knn(x, kk, batch_size)
        faiss_index = None
    else:
        backend = backend if backend == "faiss-gpu" and index == "flat" else "faiss-cpu"
        faiss_index, kind = _faiss_index(x, index, nlist, seed)
        if kind == "ivf":  # a plain kNN graph: no recall target to calibrate against
            faiss_index.nprobe = nprobe or max(8, faiss_index.nlist // 16)
        searcher = faiss_index
        if backend == "faiss-gpu":  # kNN on the GPUs; the range search of saturated points stays on the CPU
            import faiss

            searcher = faiss.index_cpu_to_all_gpus(faiss_index)
        timings["index_s"] = time.perf_counter() - start
        sims, idx = _search(searcher, x, np.arange(n), kk, batch_size, progress)
    timings["knn_s"] = time.perf_counter() - start - timings.get("index_s", 0.0)
    src_parts, dst_parts = [np.repeat(np.arange(n), kk)], [idx.reshape(-1)]
    complete = kk >= n  # every point saw every other point
    kth = 1.0 - sims[:, -1].astype(np.float64)
    kth[idx[:, -1] < 0] = np.inf  # ivf found fewer than k: the list holds all it could see
    saturated = np.empty(0, np.int64)
    requeried = 0
    exact_up_to = 2.0 if complete else float(kth.min()) - margin
    if not complete and threshold is not None:
        limit = threshold + margin  # FAISS's k-th distance may be off by the margin
        saturated = np.flatnonzero(kth <= limit)
        k2 = min(4 * kk, n)
        if len(saturated) and k2 > kk and faiss_index is not None:  # first a larger k, then range search
            t0 = time.perf_counter()
            sims2, idx2 = _search(searcher, x, saturated, k2, batch_size)
            src_parts.append(np.repeat(saturated, k2))
            dst_parts.append(idx2.reshape(-1))
            kth[saturated] = np.inf if k2 >= n else 1.0 - sims2[:, -1].astype(np.float64)
            requeried = len(saturated)
            saturated = saturated[kth[saturated] <= limit]
            timings["requery_s"] = time.perf_counter() - t0
        unsat = np.ones(n, dtype=bool)
        unsat[saturated] = False
        exact_up_to = min(2.0, float(kth[unsat].min()) - margin) if unsat.any() else 2.0
        if len(saturated):
            faiss_index = faiss_index or _faiss_index(x, "flat", None, seed)[0]
            t0 = time.perf_counter()
            # range search is strict (> radius): widen by the margin, the float64 distances decide
            s_src, s_dst = _range(
                faiss_index, x, saturated, 1.0 - threshold - 2 * margin, max(1, batch_size // 8)
            )
            src_parts.append(s_src)
            dst_parts.append(s_dst)
            exact_up_to = min(exact_up_to, threshold)
            timings["range_s"] = time.perf_counter() - t0
    src, dst = unique_pairs(n, np.concatenate(src_parts), np.concatenate(dst_parts))
    del src_parts, dst_parts
    t0 = time.perf_counter()
    dist = cosine_distances_of_pairs(x, norms, src, dst)
    timings["distances_s"] = time.perf_counter() - t0
    stats = {
        "edges": int(len(src)),
        "requeried": int(requeried),
        "saturated": int(len(saturated)),
        "k": int(k),
        "search": {"backend": backend, "actors": 0},
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    return Graph(n, src, dst, dist, max(0.0, exact_up_to), kind, None, stats)


def _query_pairs(
    index, x: np.ndarray, norms: np.ndarray, rows: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs within threshold that a FAISS range search of x[rows] finds (radius widened by the
    margin)."""
    min_sim = 1.0 - threshold - 2 * float32_margin(x.shape[1])
    lims, sims, labels = index.range_search(x[rows], float(min_sim))
    src = np.repeat(rows, np.diff(lims.astype(np.int64)))
    return confirmed_pairs(x, norms, src, labels.astype(np.int64), sims, threshold)


def default_max_edges(n: int) -> int:
    """Edges an ε-graph search holds before compacting them to a spanning forest (n = rows)."""
    return max(1 << 20, 8 * n)


def range_search_forest(index, x: np.ndarray, norms: np.ndarray, first: int, threshold: float, batch: int,
                        max_edges: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Every pair within threshold that a FAISS range search of rows first..n−1 of x finds (in batches),
    folded into a minimum spanning forest as it comes, with exact float32 distances:
    (src, dst, distance, how many times the buffer compacted).

    Memory O(n + max_edges); time one range search per query row.
    """
    n = len(x)
    buffer = ForestBuffer(n, max_edges)
    for q0 in range(first, n, batch):
        buffer.add(*_query_pairs(index, x, norms, np.arange(q0, min(n, q0 + batch)), threshold))
    src, dst, _ = buffer.result()
    return src, dst, cosine_distances_of_pairs(x, norms, src, dst), buffer.compactions
