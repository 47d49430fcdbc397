"""Single linkage from the kNN graph equals DBSCAN(min_samples=1) and scipy's single linkage, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.link.knn import knn_graph
from clippings.link.slink import components, cut_mst, mst_from_graph
from tests.link_helpers import reference_clusters, same_partition, sign_vectors


def _clusters(x: np.ndarray, threshold: float, k: int, index: str) -> np.ndarray:
    graph = knn_graph(x, k=k, threshold=threshold, index=index)
    return components(mst_from_graph(graph.n, graph.src, graph.dst, graph.distance), threshold)


@pytest.mark.parametrize("index", ["flat", "pruned"])
def test_clusters_equal_dbscan_and_scipy_with_ties_duplicates_and_boundary(index):
    x = sign_vectors(240, groups=25, flip=0.04, seed=3)
    d = 1.0 - x.astype(np.float64) @ x.astype(np.float64).T
    for t in (1 / 32, 2 / 32, 3 / 32, 5 / 32, 0.25):
        assert np.isclose(d, t, rtol=0, atol=0).any(), "a pair must lie exactly at t"
        ours = _clusters(x, t, k=3, index=index)  # k = 3 < group sizes: saturated points get re-queried
        dbscan, scipy_labels = reference_clusters(x, t)
        assert adjusted_rand_score(dbscan, ours) == 1.0
        assert adjusted_rand_score(scipy_labels, ours) == 1.0
        assert same_partition(dbscan, ours)


def test_random_unit_vectors_match_references_between_distances():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[140:] = x[:10]  # exact duplicates, d = 0
    distinct = np.unique(np.round(1.0 - x.astype(np.float64) @ x.astype(np.float64).T, 12))
    gaps = np.flatnonzero(np.diff(distinct) > 1e-6)
    for q in (0.02, 0.1, 0.3):  # thresholds in the middle of gaps between pair distances
        i = gaps[int(q * len(gaps))]
        t = float((distinct[i] + distinct[i + 1]) / 2)
        ours = _clusters(x, t, k=4, index="flat")
        dbscan, scipy_labels = reference_clusters(x, t)
        assert len(set(ours.tolist())) < len(x)
        assert adjusted_rand_score(dbscan, ours) == 1.0 and adjusted_rand_score(scipy_labels, ours) == 1.0


def test_zero_distance_edges_survive_the_sparse_mst():
    # scipy.sparse drops explicit zeros: duplicates (d = 0) must still be linked
    mst = mst_from_graph(4, np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.0, 0.0, 0.7]))
    assert sorted(zip(mst.src.tolist(), mst.dst.tolist(), mst.distance.tolist(), strict=True)) == [
        (0, 1, 0.0),
        (1, 2, 0.0),
        (2, 3, 0.7),
    ]
    assert components(mst, 0.0).tolist()[:3] == [0, 0, 0]
    assert len(set(components(mst, 0.0).tolist())) == 2


def test_cluster_ids_are_the_smallest_member_and_stable_under_row_order():
    x = sign_vectors(60, groups=6, flip=0.03, seed=1)
    ids = np.array([f"c{i:03d}" for i in range(60)], dtype=object)
    t = 3 / 32
    graph = knn_graph(x, k=3, threshold=t)
    first = cut_mst(ids, mst_from_graph(60, graph.src, graph.dst, graph.distance), t)
    for cid in set(first.tolist()):
        assert cid == min(ids[first == cid])
    perm = np.random.default_rng(0).permutation(60)
    graph = knn_graph(x[perm], k=3, threshold=t)
    second = cut_mst(ids[perm], mst_from_graph(60, graph.src, graph.dst, graph.distance), t)
    assert dict(zip(ids[perm].tolist(), second.tolist(), strict=True)) == dict(
        zip(ids.tolist(), first.tolist(), strict=True)
    )
