"""The cell search's products on a GPU: each list times its queries in float16 (tensor cores), every
candidate re-checked in float32 — compressed vectors where the hardware multiplies them faster.

Why float16 on a GPU and float32 on CPUs: a GPU's float16 tensor-core products run several times faster
than its float32 ones, while a CPU without native float16 products runs them several times slower than
float32 (clippings.link.cells.BlasProduct, docs/benchmarks.md#cpu-products-by-dtype). A float16 product of unit vectors lies within HALF_MARGIN of the
float32 one (each input rounded to 11 bits: 2·2⁻¹¹; the product rounded once more: 2⁻¹¹; accumulation in
float32), so every pair the float32 search keeps is among the candidates above min_sim − HALF_MARGIN. Each
candidate's similarity is then recomputed in float32 from the float32 rows (a gather and a row-wise dot on
the device) and kept by the float32 search's own test: the pairs, and so the forest, are the float32
search's (tested against it, float16 run on the CPU).

The lists stay where they are (a mapped file: clippings.link.cellfile); a batch's queries go to the device
once, each list when its cell comes (each list is multiplied exactly once over the whole search).

`products` picks a search's products for its device, here and not in the search's callers, so the driver's
search (clippings.link.ivf) and each search actor's (clippings.link.actors) import it without importing
each other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clippings.embeddings import torch_view
from clippings.link.cells import BlasProduct

HALF_MARGIN = 2.0**-9
"""Bound on |float16 product − float32 product| of two unit vectors (3·2⁻¹¹ ≈ 1.5·10⁻³, with room)."""


class TorchProduct:
    """The lists' products with torch on `device`: float16 candidates, each re-checked in float32."""

    def __init__(self, device: str = "cuda") -> None:
        import torch

        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}-float16"

    def queries(self, q: np.ndarray):
        """A batch's query vectors on the device (float32; float16 copy made per list slice)."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).to(self.device)

    def hits(self, vectors: np.ndarray, q, min_sim: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
        """As clippings.link.cells.BlasProduct.hits: (query positions, member positions, float32
        similarities) above min_sim, and the float32 lookup of any (member, query) similarity."""
        import torch

        v = torch_view(vectors, np.float32).to(self.device)  # a list may be a view of the mapped lists
        m = len(q)
        block = v.half() @ q.half().T
        flat = torch.nonzero(block.ravel() > min_sim - HALF_MARGIN).squeeze(1)
        del block
        j, i = flat // m, flat % m
        sims = (v[j] * q[i]).sum(dim=1)  # the float32 re-check of every candidate
        keep = sims > min_sim
        i, j, sims = i[keep], j[keep], sims[keep]

        def similarity(jj: np.ndarray, kk: np.ndarray) -> np.ndarray:
            jj_t, kk_t = (torch.from_numpy(np.asarray(a, dtype=np.int64)).to(self.device) for a in (jj, kk))
            return (v[jj_t] * q[kk_t]).sum(dim=1).cpu().numpy()

        return i.cpu().numpy(), j.cpu().numpy(), sims.cpu().numpy(), similarity


def products(device: str | None) -> BlasProduct | TorchProduct:
    """The lists' products: float32 BLAS on the CPUs (device None), else torch on `device` in float16 with
    every candidate re-checked in float32 (TorchProduct)."""
    return BlasProduct() if device is None else TorchProduct(device)
