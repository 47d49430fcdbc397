"""The neighbour graph that single linkage needs: every pair at cosine distance ≤ t, proven complete.

Single-linkage clusters at t are the components of the graph of pairs with d ≤ t (design.md §7). A kNN
graph holds all of a point's pairs closer than its k-th neighbour, so it is complete up to the smallest
k-th-neighbour distance; points whose k-th neighbour lies within t ("saturated") are re-queried with a
larger k, then with a range search, until every pair ≤ t is in. `exact_up_to` records the largest
threshold for which the graph provably holds every pair.

FAISS computes inner products in float32; every edge's distance is recomputed in float64 as scipy's
cosine distance (1 − x·y / (|x||y|)), and candidates are gathered with a margin (the float32 dot-product
error bound) so no pair at exactly t is lost to rounding. Distances are clipped to [0, 2].
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

INDEXES = ("flat", "ivf", "pruned")


@dataclass
class Graph:
    """Undirected edges (src < dst, row indices into the vectors) with float64 cosine distances.

    exact_up_to: the graph holds every pair with distance ≤ exact_up_to (for `ivf`, up to the recall).
    recall: for `ivf`, the fraction of the exact within-threshold pairs found, measured on a sample.
    stats: counts and timings for links.json.
    """

    n: int
    src: np.ndarray
    dst: np.ndarray
    distance: np.ndarray
    exact_up_to: float
    index: str
    recall: float | None = None
    stats: dict = field(default_factory=dict)


def float32_margin(dim: int) -> float:
    """An upper bound on the error of a float32 dot product of two unit vectors of `dim` (γ_d ≈ d·2⁻²⁴),
    doubled; candidate searches widen their radius by it so rounding never drops a pair at exactly t."""
    return max(1e-6, 2.0 * dim * 2.0**-24)


def cosine_distances_of_pairs(
    x: np.ndarray, norms: np.ndarray, src: np.ndarray, dst: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """float64 cosine distance 1 − x_i·x_j / (|x_i||x_j|) of each pair, clipped to [0, 2].

    The same formula as scipy's `cosine` and sklearn's `cosine_distances`, so cuts agree with them at the
    boundary. Cost: O(E·d) time, O(chunk·d) extra memory.
    """
    out = np.empty(len(src), dtype=np.float64)
    for start in range(0, len(src), chunk):
        i, j = src[start : start + chunk], dst[start : start + chunk]
        dots = np.einsum("ij,ij->i", x[i].astype(np.float64), x[j].astype(np.float64))
        out[start : start + chunk] = 1.0 - dots / (norms[i] * norms[j])
    return np.clip(out, 0.0, 2.0, out=out)


def _faiss_index(x: np.ndarray, index: str, nlist: int | None, nprobe: int | None, seed: int):
    import faiss

    n, dim = x.shape
    if index == "flat" or n < 1024:
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        return flat, "flat"
    nlist = nlist or max(16, int(4 * math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
    ivf.train(sample)
    ivf.add(x)
    ivf.nprobe = nprobe or max(8, nlist // 16)
    return ivf, "ivf"


def _search(index, x: np.ndarray, rows: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products of x[rows] in batches (memory O(batch·k)); on CUDA when faiss cannot."""
    sims = np.empty((len(rows), k), dtype=np.float32)
    idx = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), batch):
        q = x[rows[start : start + batch]]
        sims[start : start + len(q)], idx[start : start + len(q)] = index.search(q, k)
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


def unique_pairs(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop self pairs and missing (-1) neighbours; order each pair (small, large) and deduplicate."""
    keep = (dst >= 0) & (src != dst)
    a, b = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    key = np.unique(a.astype(np.int64) * n + b)
    return key // n, key % n


def knn_graph(
    vectors: np.ndarray,
    k: int = 20,
    threshold: float | None = None,
    index: str = "flat",
    batch_size: int = 8192,
    nlist: int | None = None,
    nprobe: int | None = None,
    recall_sample: int = 500,
    seed: int = 0,
    gpu: bool | None = None,
) -> Graph:
    """kNN graph of unit vectors (cosine distance), completed up to `threshold` (see the module docstring).

    vectors: (n, d) float32, unit norm. k: neighbours per point. threshold: the cut to be made exact;
    None gives the plain kNN graph (exact up to the smallest k-th-neighbour distance). index: "flat"
    (exact), "ivf" (approximate; recall of within-threshold pairs measured on `recall_sample` points
    against exact search) or "pruned" (exact ε-graph by ball-pruned cells, see `pruned_range_graph`).
    gpu: a CUDA torch matmul top-k for the flat kNN step (None: when CUDA is present).
    Cost: flat O(n²·d) time, O(batch·n) transient and O(n·k) edge memory; ivf ~ nprobe/nlist of that.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    if index == "pruned":
        if threshold is None:
            raise ValueError("the pruned index needs a threshold")
        return pruned_range_graph(x, threshold)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    margin = float32_margin(dim)
    kk = min(k + 1, n)  # +1: a point finds itself (or an exact duplicate of itself)
    use_gpu = _cuda_available() if gpu is None else gpu
    if use_gpu and index == "flat":
        kind = "flat"
        sims, idx = _torch_knn(x, kk, batch_size)
        faiss_index = None
    else:
        faiss_index, kind = _faiss_index(x, index, nlist, nprobe, seed)
        timings["index_s"] = time.perf_counter() - start
        sims, idx = _search(faiss_index, x, np.arange(n), kk, batch_size)
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
            sims2, idx2 = _search(faiss_index, x, saturated, k2, batch_size)
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
            faiss_index = faiss_index or _faiss_index(x, "flat", None, None, seed)[0]
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
    t0 = time.perf_counter()
    dist = cosine_distances_of_pairs(x, norms, src, dst)
    timings["distances_s"] = time.perf_counter() - t0
    recall = None
    if kind == "ivf" and threshold is not None:
        recall = _recall(x, faiss_index, src, dst, dist, threshold, recall_sample, seed, margin)
    stats = {
        "edges": int(len(src)),
        "requeried": int(requeried),
        "saturated": int(len(saturated)),
        "k": int(k),
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    return Graph(n, src, dst, dist, max(0.0, exact_up_to), kind, recall, stats)


def _recall(
    x: np.ndarray,
    approx_index,
    src: np.ndarray,
    dst: np.ndarray,
    dist: np.ndarray,
    threshold: float,
    sample: int,
    seed: int,
    margin: float,
) -> float:
    """Fraction of exact within-threshold pairs of a random sample of points that the graph holds."""
    import faiss

    n, dim = x.shape
    rows = np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False)
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    e_src, e_dst = _range(flat, x, rows, 1.0 - threshold - 2 * margin, 256)
    keep = e_src != e_dst
    e_src, e_dst = e_src[keep], e_dst[keep]
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    within = cosine_distances_of_pairs(x, norms, e_src, e_dst) <= threshold
    if not within.any():
        return 1.0
    a, b = np.minimum(e_src, e_dst)[within], np.maximum(e_src, e_dst)[within]
    ok = dist <= threshold
    found = np.isin(a * n + b, src[ok] * n + dst[ok])
    return float(found.mean())


def ball_cover(x: np.ndarray, min_cos: float, batch: int = 2048) -> np.ndarray:
    """Greedy leader cover: each point joins the first leader with cosine ≥ min_cos, else leads a new cell.

    Returns the cell of each point. Cost: O(n·L·d) for L leaders (one FAISS flat search per batch against
    the leaders so far) plus a Python step per new leader; memory O(batch² + L·d).
    """
    import faiss

    n, dim = x.shape
    leaders = faiss.IndexFlatIP(dim)
    assign = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, batch):
        q = x[start : start + batch]
        part = assign[start : start + len(q)]
        if leaders.ntotal:
            sims, nearest = leaders.search(q, 1)
            joined = sims[:, 0] >= min_cos
            part[joined] = nearest[joined, 0]
        rest = np.flatnonzero(part < 0)
        if not len(rest):
            continue
        sims = q[rest] @ q[rest].T
        free = np.ones(len(rest), dtype=bool)
        new = []
        for r in range(len(rest)):
            if not free[r]:
                continue
            members = free & (sims[r] >= min_cos)
            members[r] = True
            part[rest[members]] = leaders.ntotal + len(new)
            free &= ~members
            new.append(rest[r])
        leaders.add(q[new])
    return assign


def pruned_range_graph(
    vectors: np.ndarray, threshold: float, cover_angle: float | None = None, block: int = 4096
) -> Graph:
    """Exact ε-graph (every pair with cosine distance ≤ threshold) that skips far cells with a proof.

    Vectors are covered by cells (`ball_cover` with leader angle `cover_angle`, default α = arccos(1 − t);
    any assignment would be valid). Each cell B has a unit centroid μ_B (its normalised mean) and an angular
    radius r_B, the largest angle between μ_B and a member, measured in float64. By the triangle inequality
    on angles, a query q is at least ∠(q, μ_B) − r_B from every member of B; when that exceeds α the cell is
    skipped unexamined (tested as cos ∠(q, μ_B) < cos(α + r_B) less the float32 rounding margin). The
    surviving (cell, candidate cells) blocks are compared in float32 with the margin, then confirmed in
    float64. Cost: O(n·L·d) for L cells (cover + bounds) plus the surviving blocks — far below the
    O(n²·d) of brute force when the data are clustered (reprints) and t is small; O(n²·d) at worst.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    margin = float32_margin(dim)
    start = time.perf_counter()
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    alpha = math.acos(max(-1.0, 1.0 - threshold - 2 * margin))
    rho = alpha if cover_angle is None else cover_angle
    assign = ball_cover(x, math.cos(rho))
    order = np.argsort(assign, kind="stable")
    xo = x[order]
    _, starts, sizes = np.unique(assign[order], return_index=True, return_counts=True)
    ends = starts + sizes
    cells = len(starts)
    sums = np.add.reduceat(xo.astype(np.float64), starts, axis=0)
    mu = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-300)).astype(np.float32)
    del sums
    cos_member = np.empty(n, dtype=np.float64)  # float64 cosine of each member to its (float32) centroid
    cell_of = np.repeat(np.arange(cells), sizes)
    for c0 in range(0, n, 4096):
        rows = slice(c0, c0 + 4096)
        cos_member[rows] = (
            np.einsum("ij,ij->i", xo[rows].astype(np.float64), mu[cell_of[rows]].astype(np.float64))
            / norms[order[rows]]
        )
    radius = np.arccos(np.clip(np.minimum.reduceat(cos_member, starts), -1.0, 1.0)) + 1e-9
    reach = alpha + radius
    min_cos_cell = np.where(reach < math.pi, np.cos(np.minimum(reach, math.pi)) - margin, -np.inf).astype(
        np.float32
    )
    timings = {"cells_s": time.perf_counter() - start}
    t0 = time.perf_counter()
    min_sim = 1.0 - threshold - 2 * margin
    src_parts, dst_parts, compared = [], [], 0
    a = 0
    while a < cells:  # cells in runs of ≤ block rows: one GEMM against all centroids per run
        b = a + 1
        while b < cells and ends[b] - starts[a] <= block:
            b += 1
        bound = xo[starts[a] : ends[b - 1]] @ mu.T >= min_cos_cell[None, :]
        for c in range(a, b):
            qa = xo[starts[c] : ends[c]]
            partners = np.flatnonzero(bound[starts[c] - starts[a] : ends[c] - starts[a]].any(axis=0))
            partners = partners[partners >= c]  # a pair (p, q) ≤ t passes the bound from both sides: keep one
            cols = np.concatenate([np.arange(starts[p], ends[p]) for p in partners])
            for k0 in range(0, len(cols), block):
                cb = cols[k0 : k0 + block]
                sims = qa @ xo[cb].T
                compared += sims.size
                i, j = np.nonzero(sims > min_sim)
                src_parts.append(order[starts[c] + i])
                dst_parts.append(order[cb[j]])
        a = b
    timings["blocks_s"] = time.perf_counter() - t0
    src, dst = unique_pairs(n, np.concatenate(src_parts), np.concatenate(dst_parts))
    dist = cosine_distances_of_pairs(x, norms, src, dst)
    keep = dist <= threshold
    src, dst, dist = src[keep], dst[keep], dist[keep]
    # fraction of the n² dot products a brute-force search computes (a cell against itself counts whole)
    stats = {
        "edges": int(len(src)),
        "cells": int(cells),
        "compared_fraction": round(compared / n**2, 4),
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    return Graph(n, src, dst, dist, float(threshold), "pruned", None, stats)
