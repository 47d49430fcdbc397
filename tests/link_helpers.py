"""Small vector sets whose cosine distances are exact in float32 and float64, for boundary tests.

Vectors with entries ±1/8 in 64 dimensions are unit norm exactly, and the distance of two of them is
(number of differing signs) / 32: every distance is a multiple of 1/32, exactly representable, with many
ties, exact duplicates (d = 0) and pairs at exactly any multiple of 1/32 — the cut at t is unambiguous for
FAISS (float32), for us (float64) and for the scipy/sklearn references.
"""

from __future__ import annotations

import numpy as np


def sign_vectors(n: int, groups: int, flip: float, seed: int, duplicates: int = 5) -> np.ndarray:
    """n sign vectors around `groups` random centres, each sign flipped with probability `flip`; the last
    `duplicates` rows copy earlier rows exactly. float32, unit norm, distances multiples of 1/32."""
    rng = np.random.default_rng(seed)
    centres = rng.choice([-1.0, 1.0], size=(groups, 64))
    x = centres[rng.integers(0, groups, n)]
    x[rng.random((n, 64)) < flip] *= -1
    if duplicates:
        x[n - duplicates :] = x[rng.integers(0, n - duplicates, duplicates)]
    return (x / 8.0).astype(np.float32)


def reference_clusters(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(DBSCAN labels, scipy single-linkage labels) at `threshold`, both 'linked when d ≤ t'."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist
    from sklearn.cluster import DBSCAN

    x64 = x.astype(np.float64)
    dbscan = DBSCAN(eps=threshold, min_samples=1, metric="cosine").fit(x64).labels_
    scipy_labels = fcluster(linkage(pdist(x64, "cosine"), "single"), threshold, criterion="distance")
    return dbscan, scipy_labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labelings group the points identically (label names aside)."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))
