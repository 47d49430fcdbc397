"""The kNN graph holds every pair up to exact_up_to (saturated points re-queried); IVF reports its recall;
the pruned search finds every pair ≤ t while skipping cells."""

from __future__ import annotations

import numpy as np

from clippings.link.knn import knn_graph
from clippings.link.pruned import pruned_range_graph
from clippings.link.slink import components, mst_from_graph
from tests.link_helpers import sign_vectors


def _pairs_within(x: np.ndarray, t: float) -> set[tuple[int, int]]:
    x64 = x.astype(np.float64)
    i, j = np.nonzero(np.triu(1.0 - x64 @ x64.T <= t, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def _edges(graph, t: float) -> set[tuple[int, int]]:
    keep = graph.distance <= t
    return set(zip(graph.src[keep].tolist(), graph.dst[keep].tolist(), strict=True))


def test_plain_knn_graph_is_complete_up_to_exact_up_to():
    x = sign_vectors(200, groups=20, flip=0.05, seed=2)
    graph = knn_graph(x, k=4)
    assert 0.0 <= graph.exact_up_to < 2.0
    assert _pairs_within(x, graph.exact_up_to) <= _edges(graph, graph.exact_up_to)
    assert graph.stats["saturated"] == 0


def test_saturated_points_are_requeried_until_every_pair_within_t_is_in():
    x = sign_vectors(200, groups=8, flip=0.03, seed=4, duplicates=20)  # groups of ~25 ≫ k
    t = 4 / 32
    graph = knn_graph(x, k=2, threshold=t)
    assert graph.stats["saturated"] > 0 and graph.exact_up_to == t
    assert _edges(graph, t) == _pairs_within(x, t)
    # distances are float64 cosine distances, exact for these vectors
    d = 1.0 - np.einsum("ij,ij->i", x[graph.src].astype(np.float64), x[graph.dst].astype(np.float64))
    assert np.array_equal(graph.distance, np.clip(d, 0, 2))


def test_ivf_reports_recall_of_within_threshold_pairs():
    x = sign_vectors(2000, groups=300, flip=0.03, seed=5)
    t = 4 / 32
    graph = knn_graph(x, k=5, threshold=t, index="ivf", recall_sample=300)
    assert graph.index == "ivf"
    truth = _pairs_within(x, t)
    # the search keeps a spanning forest of what it finds: count the true pairs it leaves linked
    labels = components(mst_from_graph(graph.n, graph.src, graph.dst, graph.distance), t)
    measured = np.mean([labels[a] == labels[b] for a, b in truth])
    assert 0.9 <= graph.recall <= 1.0 and 0.9 <= measured <= 1.0
    assert _edges(graph, t) <= truth  # never a false pair


def test_pruned_search_is_exact_and_skips_cells():
    x = sign_vectors(3000, groups=400, flip=0.02, seed=6)
    t = 3 / 32
    src, dst, dist, stats = pruned_range_graph(x, t)
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == _pairs_within(x, t)
    assert np.all(dist <= t)
    assert stats["compared_fraction"] < 0.5
    graph = knn_graph(x, threshold=t, index="pruned")
    assert graph.exact_up_to == t and _edges(graph, t) == _pairs_within(x, t)


def test_single_point_and_k_larger_than_n():
    x = sign_vectors(5, groups=2, flip=0.0, seed=0, duplicates=0)
    assert len(knn_graph(x[:1], k=20).src) == 0
    graph = knn_graph(x, k=20)
    assert graph.exact_up_to == 2.0 and len(graph.src) == 10
