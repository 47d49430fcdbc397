"""Hard-negative batch plans, checked batch by batch against brute-force nearest classes."""

from __future__ import annotations

import numpy as np
import pytest

from clippings.train.batches import class_groups, class_prototypes, hard_negative_batches


def _data(n_classes: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_classes)  # sizes 1..5: some classes smaller than m = 3
    labels = np.repeat(np.arange(n_classes), sizes)
    protos = rng.normal(size=(n_classes, 8)).astype(np.float32)
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    return labels, protos


@pytest.mark.parametrize("n_classes,k", [(20, 3), (21, 3), (7, 4), (2, 3)])
def test_batches_have_k_classes_of_m_items_and_cover_every_class(n_classes, k):
    labels, protos = _data(n_classes)
    m = 3
    batches = hard_negative_batches(labels, protos, m=m, k=k, seed=5)
    k_eff = min(k, n_classes)
    assert len(batches) == -(-n_classes // k_eff)
    seen = set()
    for batch in batches:
        assert len(batch) == k_eff * m
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == k_eff and (counts == m).all()
        for c in classes:  # without replacement when the class has at least m items
            items = batch[labels[batch] == c]
            if (labels == c).sum() >= m:
                assert len(set(items)) == m
        seen |= set(classes.tolist())
    assert seen == set(range(n_classes))


def test_groups_hold_the_nearest_unassigned_classes():
    labels, protos = _data(30)
    k = 3
    groups = class_groups(protos, 30, k, seed=2)
    sims = protos @ protos.T
    assigned: set[int] = set()
    for group in groups:
        seed_class, members = int(group[0]), [int(c) for c in group[1:]]
        others = [c for c in range(30) if c not in assigned and c not in group]
        fresh = [c for c in members if c not in assigned]
        for c in fresh:  # every new member is at least as close to the seed as any class left out
            assert all(sims[seed_class, c] >= sims[seed_class, o] - 1e-6 for o in others)
        assigned |= {int(c) for c in group}
    # the first group is exactly the seed's k-1 nearest neighbours (brute force)
    first = groups[0]
    brute = [int(c) for c in np.argsort(-sims[first[0]]) if c != first[0]][: k - 1]
    assert sorted(first[1:].tolist()) == sorted(brute)


def test_plan_is_deterministic_for_a_seed_and_changes_with_it():
    labels, protos = _data(25)
    a = hard_negative_batches(labels, protos, 3, 3, seed=11)
    b = hard_negative_batches(labels, protos, 3, 3, seed=11)
    c = hard_negative_batches(labels, protos, 3, 3, seed=12)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any(not (x == y).all() for x, y in zip(a, c, strict=False))


def test_random_groups_without_prototypes_cover_every_class():
    labels, _ = _data(10)
    batches = hard_negative_batches(labels, None, 2, 3, seed=0)
    assert all(len(np.unique(labels[b])) == 3 for b in batches)
    assert set(np.concatenate([labels[b] for b in batches]).tolist()) == set(range(10))


def test_class_prototypes_are_unit_means():
    emb = np.array([[1, 0], [0, 1], [3, 4]], dtype=np.float32)
    protos = class_prototypes(emb, np.array([0, 0, 1]))
    np.testing.assert_allclose(protos, [[2**-0.5, 2**-0.5], [0.6, 0.8]], rtol=1e-6)
