"""Hard-negative batch plans for SupCon: k classes that look alike × m items each, every class every epoch.

A sampler's shape (labels, prototypes, m, k, seed in; index batches out), pure numpy + FAISS, no torch and
no global RNG. Classes are grouped greedily: take an unassigned class in random order, add its nearest
still-unassigned classes (cosine over class prototypes, FAISS inner product on unit vectors) until the group
holds k. Re-run each epoch with prototypes from the current model to re-mine (the reference mined once).
Adapted in spirit from pytorch-metric-learning's `MPerClassSampler` (m items per class per batch).
"""

from __future__ import annotations

import numpy as np


def class_groups(prototypes: np.ndarray | None, n_classes: int, k: int, seed: int) -> list[np.ndarray]:
    """Group class ids 0..n_classes-1 into groups of exactly k classes, nearest classes together.

    prototypes: (n_classes, d) class mean embeddings (normalised here), or None for random groups.
    Every class is in at least one group; when n_classes is not a multiple of k, the last group is
    topped up with the seed's nearest classes already used (so every batch keeps k classes).
    Cost: one FAISS flat search of n_classes × min(n_classes, 4k+1) (O(n_classes² · d) flops) plus O(n·k).
    """
    if n_classes < 1:
        raise ValueError("class_groups needs at least one class")
    k_eff = min(k, n_classes)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_classes)
    if prototypes is None:
        padded = np.concatenate([order, rng.permutation(n_classes)[: (-n_classes) % k_eff]])
        return [padded[i : i + k_eff] for i in range(0, len(padded), k_eff)]
    protos = _unit(prototypes)
    neighbours = _nearest(protos, min(n_classes, 4 * k_eff + 1))
    assigned = np.zeros(n_classes, dtype=bool)
    groups = []
    for seed_class in order:
        if assigned[seed_class]:
            continue
        group = [int(seed_class)]
        assigned[seed_class] = True
        for c in neighbours[seed_class]:
            if len(group) == k_eff:
                break
            if not assigned[c]:
                group.append(int(c))
                assigned[c] = True
        if len(group) < k_eff:  # the precomputed neighbours ran out: rank all classes for this seed
            sims = protos @ protos[seed_class]
            ranked = np.argsort(-sims, kind="stable")
            for pick_assigned in (False, True):  # unassigned first, then repeats to fill the last group
                for c in ranked:
                    if len(group) == k_eff:
                        break
                    if assigned[c] == pick_assigned and c not in group:
                        group.append(int(c))
                        assigned[c] = True
        groups.append(np.asarray(group, dtype=np.int64))
    return groups


def hard_negative_batches(
    labels: np.ndarray, prototypes: np.ndarray | None, m: int, k: int, seed: int
) -> list[np.ndarray]:
    """Index batches of k hard-negative classes × m items each (k·m indices per batch).

    labels: (n,) int class codes 0..C-1 (every code present). prototypes: (C, d) class means or None.
    m: items per class; a class with fewer than m items is sampled with replacement, a larger class gives
    a random m of its items this epoch. k: classes per batch (capped at C). seed: the epoch's seed; the
    same inputs and seed give the same plan. Returns batches in random order.
    Cost: `class_groups` plus O(n) to index classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(np.bincount(labels, minlength=n_classes))[:-1])
    groups = class_groups(prototypes, n_classes, k, seed)
    rng = np.random.default_rng([seed, 1])
    batches = []
    for group in groups:
        parts = []
        for c in group:
            items = members[c]
            parts.append(rng.choice(items, size=m, replace=len(items) < m))
        batches.append(np.concatenate(parts))
    return [batches[i] for i in rng.permutation(len(batches))]


def class_prototypes(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-norm mean embedding per class code (C, d). Cost: O(n·d)."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    sums = np.zeros((n_classes, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, embeddings)
    return _unit(sums.astype(np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _nearest(protos: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Each prototype's nearest prototypes by inner product, itself included (FAISS flat, exact)."""
    import faiss

    index = faiss.IndexFlatIP(protos.shape[1])
    index.add(protos)
    _, ids = index.search(protos, n_neighbours)
    return ids
