"""Single linkage from the kNN graph equals DBSCAN(min_samples=1) and scipy's single linkage, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.link.knn import knn_graph
from clippings.link.slink import ForestBuffer, components, cut_mst, mst_from_graph
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


def _forest_weight_and_cuts(mst, thresholds) -> tuple[float, list[np.ndarray]]:
    return float(mst.distance.sum()), [components(mst, t) for t in thresholds]


@pytest.mark.parametrize("index,extra", [("pruned", {}), ("ivf", {"nprobe": 10_000})])
def test_compacted_forest_is_the_same_single_linkage(index, extra):
    # 1200 points in groups of ~30 (≫ k): ~15k pairs within t, compacted to a forest every 500 edges;
    # ivf with nprobe ≥ nlist searches every cell, so it must be exact too
    x = sign_vectors(1200, groups=40, flip=0.04, seed=8)
    t = 5 / 32
    full = knn_graph(x, threshold=t, index="pruned", max_edges=None)
    graph = knn_graph(x, threshold=t, index=index, max_edges=500, **extra)
    assert graph.stats["compactions"] >= 1 and len(graph.src) < len(x) <= len(full.src)
    lower = (0.0, 1 / 32, 2 / 32, 4 / 32, t)
    weight, cuts = _forest_weight_and_cuts(mst_from_graph(1200, full.src, full.dst, full.distance), lower)
    ours_weight, ours_cuts = _forest_weight_and_cuts(
        mst_from_graph(1200, graph.src, graph.dst, graph.distance), lower
    )
    assert ours_weight == pytest.approx(weight, abs=1e-12)
    for s, ours, ref in zip(lower, ours_cuts, cuts, strict=True):
        assert same_partition(ours, ref), s
    dbscan, scipy_labels = reference_clusters(x, t)
    assert same_partition(dbscan, ours_cuts[-1]) and same_partition(scipy_labels, ours_cuts[-1])


def test_forest_buffer_keeps_the_smallest_distance_of_a_repeated_pair():
    buffer = ForestBuffer(4, max_edges=None)
    buffer.add(np.array([0, 1]), np.array([1, 2]), np.array([0.5, 0.0]))
    buffer.add(np.array([0, 2]), np.array([1, 3]), np.array([0.25, 0.75]))
    src, dst, dist = buffer.edges()
    assert sorted(zip(src.tolist(), dst.tolist(), dist.tolist(), strict=True)) == [
        (0, 1, 0.25),
        (1, 2, 0.0),
        (2, 3, 0.75),
    ]
    buffer.add(np.array([0]), np.array([2]), np.array([0.1]))
    buffer.compact()  # the cycle 0-1-2 loses its largest edge, 0-1 at 0.25
    assert sorted(zip(*(a.tolist() for a in buffer.edges()), strict=True)) == [
        (0, 2, 0.1),
        (1, 2, 0.0),
        (2, 3, 0.75),
    ]
