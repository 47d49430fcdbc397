"""A product that proposes, float32 that decides: the pairs above a similarity are the same whichever product
proposed them, those of the float32 pair similarities, also where bfloat16 alone would err."""

from __future__ import annotations

import numpy as np
import torch

from clippings.link.products import pairs_above, product_error


def _rows_near(centroids: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centroids[rng.integers(0, len(centroids), n)] + noise * rng.standard_normal((n, centroids.shape[1]))
    return x.astype(np.float32)


def _centroids(nlist: int, dim: int, seed: int) -> np.ndarray:
    c = np.random.default_rng(seed).standard_normal((nlist, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def test_pairs_above_a_similarity_are_the_float32_pairs_whichever_product_proposed_them():
    centroids = _centroids(40, 64, seed=5)
    x = _rows_near(centroids, 2000, 0.05, seed=6)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:250]
    for min_sim in (0.9, 0.97):
        sims = np.stack([np.einsum("ij,ij->i", np.repeat(q[None], len(x), axis=0), x) for q in queries])
        want = set(zip(*np.nonzero(sims > np.float32(min_sim)), strict=True))
        for product in ("bfloat16", "float32"):
            i, j, got = pairs_above(queries, x, min_sim, product=product)
            assert set(zip(i.tolist(), j.tolist(), strict=True)) == want
            np.testing.assert_array_equal(got, sims[i, j])


def test_pairs_at_the_cut_are_decided_in_float32_where_bfloat16_would_err():
    """Pairs built within bfloat16's error of the cut: bfloat16's own similarities misplace some of them,
    the float32 decision does not."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((300, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    tilt = rng.standard_normal((300, 32)).astype(np.float32)
    tilt -= np.einsum("ij,ij->i", tilt, base)[:, None] * base
    tilt /= np.linalg.norm(tilt, axis=1, keepdims=True)
    cosines = np.float32(0.9) + rng.uniform(-4e-3, 4e-3, (300, 1)).astype(np.float32)
    other = cosines * base + np.sqrt(1 - cosines**2) * tilt  # each pair (k, 300 + k) at cosine ~0.9
    x = np.concatenate([base, other])
    assert product_error(32, "bfloat16") > 10 * product_error(32, "float32")
    sims = np.einsum("ij,ij->i", base, other)
    want = {(k, 300 + k) for k in np.flatnonzero(sims > np.float32(0.9))}
    i, j, _ = pairs_above(base, x, 0.9, product="bfloat16")
    assert {(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True) if b >= 300} == want
    rounded = (torch.from_numpy(base).to(torch.bfloat16) @ torch.from_numpy(other).to(torch.bfloat16).T).float()
    assert {k for k in range(300) if rounded[k, k] > 0.9} != {a for a, _ in want}
