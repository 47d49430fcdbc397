"""The one-sweep ARI curve equals sklearn's adjusted_rand_score of a fresh cut at every threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.errors import BadInput
from clippings.link.knn import knn_graph
from clippings.link.slink import components, mst_from_graph
from clippings.link.tune import ari_curve, best_threshold, tune_threshold
from tests.link_helpers import sign_vectors


def _mst(x: np.ndarray):
    graph = knn_graph(x, k=len(x) - 1)  # complete graph: the curve is exact everywhere
    return mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)


@pytest.mark.parametrize("seed", [0, 1])
def test_curve_equals_adjusted_rand_score_of_a_fresh_cut_at_every_threshold(seed):
    rng = np.random.default_rng(seed)
    x = sign_vectors(120, groups=15, flip=0.05, seed=seed, duplicates=8)  # ties and d = 0 pairs
    labels = rng.integers(0, 20, size=120).astype(str)  # imperfect labels: ARI moves both ways
    mst = _mst(x)
    thresholds, aris = ari_curve(mst, labels)
    assert len(thresholds) > 5 and np.all(np.diff(thresholds) > 0)
    assert thresholds[0] == 0.0  # duplicates: the cut at 0 already links them
    for t, a in zip(thresholds, aris, strict=True):
        assert a == adjusted_rand_score(labels, components(mst, t))  # bit for bit


def test_curve_on_random_vectors_and_true_groups():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(30, 16))
    group = rng.integers(0, 30, 200)
    x = (centres[group] + 0.3 * rng.normal(size=(200, 16))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mst = _mst(x)
    thresholds, aris = ari_curve(mst, group)
    assert thresholds[0] == 0.0 and aris[0] == adjusted_rand_score(group, np.arange(200))
    for t, a in list(zip(thresholds, aris, strict=True))[::7]:
        assert a == adjusted_rand_score(group, components(mst, t))


def test_best_threshold_is_the_midpoint_of_the_first_best_plateau():
    thresholds = np.array([0.0, 0.1, 0.2, 0.3, 0.5])
    aris = np.array([0.2, 0.9, 0.9, 0.4, 0.9])
    assert best_threshold(thresholds, aris) == (pytest.approx(0.2), 0.9)  # [0.1, 0.3) → 0.2
    assert best_threshold(np.array([0.0, 0.4]), np.array([0.1, 0.8]), upper=0.6) == (pytest.approx(0.5), 0.8)
    assert best_threshold(np.array([0.0, 0.4]), np.array([0.1, 0.8])) == (0.4, 0.8)


def test_tune_threshold_finds_separable_groups():
    rng = np.random.default_rng(9)
    centres = rng.choice([-1.0, 1.0], size=(12, 64))
    group = rng.integers(0, 12, 150)
    flips = rng.random((150, 64)) < 0.03
    x = (np.where(flips, -centres[group], centres[group]) / 8).astype(np.float32)
    result = tune_threshold(x, group)
    assert result.exact_up_to == 2.0 and result.ari == 1.0
    assert adjusted_rand_score(group, components(_mst(x), result.threshold)) == 1.0
    limited = tune_threshold(x, group, k=5, max_threshold=0.5)
    assert limited.exact_up_to == 0.5 and limited.thresholds.max() <= 0.5 and limited.ari == 1.0


def test_tune_threshold_refuses_mismatched_labels():
    with pytest.raises(BadInput, match="3 vectors and 2 labels"):
        tune_threshold(np.eye(3, dtype=np.float32), np.array([0, 1]))
