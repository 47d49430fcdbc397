"""A product that proposes and float32 that decides: the pairs above a similarity, found by brute force.

Calibration and recall are measured against every pair within t of a sample of rows, found by brute force:
each sample row against every row (clippings.link.exact.exact_pairs), at 10M rows the third-largest cost of a
link. `pairs_above` runs that product in bfloat16 where the CPU multiplies bfloat16 natively (AVX-512 BF16 or
AMX; about twice float32's rate there), else in float32, and takes a pair as a candidate when its approximate
similarity is within the product's error bound of the cut; each candidate's similarity is then computed again
in float32, one dot product per pair, and decides. So which product proposed does not change the pairs
(tests/test_products.py). A sample row has few pairs, so few are computed twice.

Why the bound holds: bfloat16 keeps 8 significant bits, so rounding x and y costs at most (2u + u²)·|x|·|y|
of their dot product (u = 2⁻⁸); the sum of exact bfloat16 products in float32 adds γ_d, and the bfloat16
result adds u·|x·y|. Where every pair is searched against lists of reprints, most products are hits and the
second computation costs more than the first saved
(docs/benchmarks.md#bfloat16-products-in-the-cell-search-slower-on-reprint-data-not-landed); the probes
among the centroids, where the bound is wide beside the probe margin, likewise
(docs/benchmarks.md#bfloat16-probes-slower-than-faisss-float32-search-not-landed).
"""

from __future__ import annotations

import functools

import numpy as np

from clippings.embeddings import torch_view
from clippings.link.pruned import float32_margin

U_BF16 = 2.0**-8
"""bfloat16's unit roundoff (8 significant bits)."""
BFLOAT16_WORK = 10**11
"""Multiply-adds from which a brute force lets bfloat16 propose (clippings.link.exact.exact_pairs): about a
second of float32 work, so importing torch (~1.5 s once per process) pays for itself; a small link does not
import it."""


@functools.cache
def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 products (Linux flags avx512_bf16 or amx_bf16) that torch's
    oneDNN uses; elsewhere a bfloat16 GEMM is several times slower than float32
    (docs/benchmarks.md#cpu-products-by-dtype)."""
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in flags or "amx_bf16" in flags)


def product_error(dim: int, product: str) -> float:
    """Bound on |approximate − float32| similarity of two unit vectors of `dim` under `product`: two float32
    margins (the product's rounding and the per-pair dot's), plus bfloat16's rounding of inputs and result."""
    f32 = 2.0 * float32_margin(dim)
    return f32 if product == "float32" else 3.0 * U_BF16 + 4.0 * U_BF16**2 + f32


def _bfloat16(a: np.ndarray):
    """A bfloat16 copy of a float32 array as a torch tensor (a read-only array, e.g. memory-mapped, too)."""
    import torch

    return torch_view(a, np.float32).to(torch.bfloat16)


def pairs_above(queries: np.ndarray, block: np.ndarray, min_sim: float, product: str = "auto"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query positions i, block positions j, float32 similarities) of the pairs whose float32 similarity,
    one dot product per pair, exceeds min_sim: proposed by `product` ("bfloat16", "float32", or "auto":
    bfloat16 where the CPU multiplies it natively) within its error bound, then computed again. A float32
    product's own values may differ from the per-pair ones in the last bit, so its hits are computed again
    too."""
    if product == "auto":
        product = "bfloat16" if cpu_multiplies_bfloat16() else "float32"
    if len(queries) == 0 or len(block) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    q_norms = np.sqrt(np.einsum("ij,ij->i", queries, queries, dtype=np.float64))
    b_norm = float(np.sqrt(np.einsum("ij,ij->i", block, block).max()))
    cut = min_sim - product_error(queries.shape[1], product) * q_norms * b_norm
    if product == "float32":
        hits = np.flatnonzero(queries @ block.T > cut.astype(np.float32)[:, None])
    else:
        import torch

        low = torch.from_numpy(cut).float()
        low = (low - 2.0 * U_BF16 * low.abs()).to(torch.bfloat16)  # rounding to bfloat16 must not raise the cut
        hits = np.flatnonzero(((_bfloat16(queries) @ _bfloat16(block).T) > low[:, None]).numpy())
    i, j = np.divmod(hits, len(block))
    sims = np.einsum("ij,ij->i", queries[i], block[j])
    keep = sims > np.float32(min_sim)
    return i[keep], j[keep], sims[keep]
