"""Exact ε-graph (every pair at cosine distance ≤ t) that skips far cells with a proof.

Vectors are covered by cells (a greedy leader cover; any assignment would be valid). Each cell B has a unit
centre μ_B (its normalised mean) and an angular radius r_B, the largest angle between μ_B and a member,
measured in float64 and rounded up. With α = arccos(1 − t), a pair (p ∈ A, q ∈ B) at angle ≤ α needs, by the
triangle inequality on angles, ∠(μ_A, μ_B) ≤ r_A + α + r_B; cell pairs farther apart are skipped unexamined
(tested as cos ∠(μ_A, μ_B) < cos(r_A + α + r_B) less the float32 rounding margin). Each surviving cell is
compared with its candidate cells in float64 GEMMs over blocks of consecutive cells (points ranked by
cell; a pair is kept from the row ranked first, so each is seen once). Edges go to a `ForestBuffer`, so
memory stays O(n + max_edges).

Reprints form tight groups far apart, so cells ≈ groups and the work is O(n·L·d) for the cover with L
cells, O(L²·d) for the cell bounds and Σ_A |A|·|candidates of A| for the blocks — far below the O(n²·d)
of brute force when the data are clustered and t is small; O(n²·d) at worst (one big cell).
"""

from __future__ import annotations

import math
import time

import numpy as np

from clippings.link.slink import ForestBuffer

BLOCK = 1 << 21
"""Entries of one float32 similarity block (8 MiB): bounds the transient memory of every GEMM here."""


def float32_margin(dim: int) -> float:
    """An upper bound on the error of a float32 dot product of two unit vectors of `dim` (γ_d ≈ d·2⁻²⁴),
    doubled; candidate searches widen their radius by it so rounding never drops a pair at exactly t."""
    return max(1e-6, 2.0 * dim * 2.0**-24)


def row_norms(x: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """float64 norm of each row, a chunk at a time (no float64 copy of x). Cost: O(n·d)."""
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), chunk):
        out[start : start + chunk] = np.linalg.norm(x[start : start + chunk].astype(np.float64), axis=1)
    return out


def ball_cover(x: np.ndarray, min_cos: float, batch: int = 1024) -> np.ndarray:
    """Greedy leader cover: each point joins the first leader with cosine ≥ min_cos, else leads a new cell.

    Returns the cell of each point (cells numbered by first appearance). Cost: O(n·L·d) for L leaders (one
    FAISS flat search per batch against the leaders so far) plus O(batch²·d) per batch; memory O(batch² +
    L·d).
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
        close = (q[rest] @ q[rest].T) >= min_cos
        free = np.ones(len(rest), dtype=bool)
        new = []
        for r in range(len(rest)):
            if not free[r]:
                continue
            members = free & close[r]
            members[r] = True
            part[rest[members]] = leaders.ntotal + len(new)
            free &= ~members
            new.append(rest[r])
        leaders.add(q[new])
    return assign


def _cells(x: np.ndarray, assign: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit centres float32, angular radii float64 rounded up) of the cells of `assign`. Cost: O(n·d)."""
    from scipy.sparse import csr_matrix

    n = len(x)
    cells = int(assign.max()) + 1
    sums = np.zeros((cells, x.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):  # sparse indicator · rows: the per-cell sums without a sort or copy
        rows = slice(start, start + 65536)
        m = len(assign[rows])
        ind = csr_matrix((np.ones(m, np.float32), (assign[rows], np.arange(m))), shape=(cells, m))
        sums += ind @ x[rows]
    mu = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-300)).astype(np.float32)
    min_cos = np.full(cells, np.inf)
    for start in range(0, n, 8192):
        rows = slice(start, start + 8192)
        cos = np.einsum("ij,ij->i", x[rows], mu[assign[rows]]) / norms[rows]
        np.minimum.at(min_cos, assign[rows], cos)
    # less the float32 rounding bound (which also covers |μ| ≠ 1 by ~1e-7): never an underestimate
    radius = np.arccos(np.clip(min_cos.astype(np.float64) - float32_margin(x.shape[1]), -1.0, 1.0))
    return mu, radius


def _candidate_cells(
    mu: np.ndarray, radius: np.ndarray, alpha: float, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) of, for each cell A, the cells B > A that may hold a point within angle α of a
    point of A: cos ∠(μ_A, μ_B) ≥ cos(r_A + α + r_B) − margin.

    Cost: O(L²·d) float32 GEMM in row blocks (memory O(BLOCK)); cosines evaluated only for the cell pairs
    that pass the looser bound with the largest radius.
    """
    cells = len(mu)
    r_max = float(radius.max())
    counts = np.zeros(cells, dtype=np.int64)
    parts = []
    rows = max(1, BLOCK // cells)
    for a0 in range(0, cells, rows):
        sims = mu[a0 : a0 + rows] @ mu.T
        a_idx = np.arange(a0, a0 + len(sims))
        loose = np.cos(np.minimum(radius[a_idx] + alpha + r_max, math.pi)) - margin
        i, b = np.nonzero((sims >= loose[:, None]) & (np.arange(cells)[None, :] > a_idx[:, None]))
        s = sims[i, b]
        keep = s >= np.cos(np.minimum(radius[a0 + i] + alpha + radius[b], math.pi)) - margin
        counts[a0 : a0 + len(sims)] = np.bincount(i[keep], minlength=len(sims))
        parts.append(b[keep])
    return np.concatenate([[0], np.cumsum(counts)]), np.concatenate(parts)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + l) for each (s, l), without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total) + offsets


ROWS = 256
"""Rows of one comparison block: consecutive cells are gathered up to this many (small GEMMs are slow)."""


def pruned_range_graph(
    vectors: np.ndarray,
    threshold: float,
    cover_angle: float | None = None,
    max_edges: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(src, dst, distance, stats) of every pair with float64 cosine distance ≤ threshold, or (when more
    than `max_edges` edges come in) a minimum spanning forest of them — the same single linkage up to t.

    vectors: (n, d) float32 unit rows. threshold: t in [0, 2]. cover_angle: leader angle of the cover
    (default α = arccos(1 − t)). max_edges: edges held before compacting to a forest (None: keep all).
    Points are ranked by cell; a block of consecutive cells (≤ ROWS rows) is compared in one float64 GEMM
    with the members of all their candidate cells, keeping pairs whose column ranks after the row (so
    each pair is computed once). Cost: see the module docstring; memory O(n + L·d + max_edges + BLOCK).
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    margin = float32_margin(dim)
    start = time.perf_counter()
    norms = row_norms(x)
    alpha = math.acos(max(-1.0, 1.0 - threshold - 2 * margin))
    assign = ball_cover(x, math.cos(alpha if cover_angle is None else cover_angle))
    mu, radius = _cells(x, assign, norms)
    timings = {"cells_s": time.perf_counter() - start}
    t0 = time.perf_counter()
    indptr, partners = _candidate_cells(mu, radius, alpha, margin)
    timings["bounds_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cells = len(mu)
    order = np.argsort(assign, kind="stable")  # rank → row; cells occupy consecutive ranks
    sizes = np.bincount(assign, minlength=cells)
    first = np.concatenate([[0], np.cumsum(sizes)])
    buffer = ForestBuffer(n, max_edges, unique=True)
    compared = 0
    a = 0
    while a < cells:
        b = a + 1
        while b < cells and first[b + 1] - first[a] <= ROWS:
            b += 1
        near = partners[indptr[a] : indptr[b]]
        if first[b] - first[a] == 1 and not len(near):
            a = b
            continue  # a lone point with no cell near it
        cand = np.union1d(np.arange(a, b), near)
        col_rank = _ranges(first[cand], sizes[cand])
        cols = order[col_rank]
        xc = x[cols].astype(np.float64)
        step = max(1, BLOCK // len(cols))
        for r0 in range(first[a], first[b], step):
            row_rank = np.arange(r0, min(first[b], r0 + step))
            rows = order[row_rank]
            compared += len(rows) * len(cols)
            dist = 1.0 - (x[rows].astype(np.float64) @ xc.T) / np.outer(norms[rows], norms[cols])
            i, j = np.nonzero((dist <= threshold) & (col_rank[None, :] > row_rank[:, None]))
            p, q = rows[i], cols[j]
            buffer.add(np.minimum(p, q), np.maximum(p, q), np.clip(dist[i, j], 0.0, 2.0))
        a = b
    src, dst, dist = buffer.result()
    timings["blocks_s"] = time.perf_counter() - t0
    stats = {
        "cells": int(cells),
        "compared_fraction": round(compared / n**2, 4),  # of the n² dot products of brute force
        "compactions": buffer.compactions,
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    return src, dst, dist, stats
