"""Which pair to ask next: the MST edges that teach most about where to cut, and some at random.

Single linkage at t keeps exactly the MST edges with d ≤ t, so the MST edges are the decisions a cut makes
and the only pairs worth asking about. The next pair depends on how many pairs were asked so far, through a
cycle of slots (`SLOTS`):
- `below` / `above`: the unanswered edge nearest the cut on that side, i.e. the join just below t and the
  near miss just above it. These take most slots, so the edges nearest the cut come first. The cut is the
  current estimate from the answers (clippings.label.fit) once they hold both Same and Different, else the
  links folder's t;
- `largest`: the weakest link (largest inner MST edge) of the largest group at the cut whose weakest link is
  still unanswered: a long chain that glued two stories shows up there;
- `random`: the first unanswered edge of a seeded random permutation of all MST edges, uniform over the
  edges and blind to distances and answers, so that precision and recall can be estimated without bias.
A slot with nothing left falls back to the next of below, above, random. The choice is a function of the
links folder, the seed and the answers in force: a restarted server asks the same next pair, and after an
undo the undone pair comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clippings.label.answers import Answer, pair_key
from clippings.label.fit import fit_answers
from clippings.link.slink import Mst, components, joined_pairs

SLOTS = ("below", "above", "largest", "below", "above", "random")
"""One cycle of the order: 4 of 6 pairs next to the cut, 1 weakest link of a large group, 1 at random."""


@dataclass(frozen=True)
class Pair:
    """A pair to ask: row numbers into the links folder's ids, their MST distance, the slot that chose it, the
    cut it was chosen around and the clipping pairs its edge joins (clippings.link.slink.joined_pairs)."""

    a: int
    b: int
    distance: float
    reason: str
    cut: float
    joins: int


class PairPlan:
    """The ask order over one links folder's MST.

    mst: edges sorted by distance (clippings.link.pipeline.read_mst); ids: the clipping id of each row;
    threshold: the links folder's t (the cut until the answers give one); seed: the random slot's permutation.
    Memory O(E); `next` costs O(n + E) (the chosen edge's joined pairs; the `largest` slot's components).
    """

    def __init__(self, mst: Mst, ids: np.ndarray, threshold: float, seed: int = 0):
        self.mst, self.ids, self.threshold = mst, ids, float(threshold)
        self.order = np.random.default_rng(seed).permutation(len(mst.distance))
        self._edge = {pair_key(str(ids[a]), str(ids[b])): e
                      for e, (a, b) in enumerate(zip(mst.src.tolist(), mst.dst.tolist(), strict=True))}

    def edge_of(self, a: str, b: str) -> int | None:
        """The MST edge number of the pair, None when it is not an MST edge."""
        return self._edge.get(pair_key(a, b))

    def cut(self, answers: Sequence[Answer]) -> float:
        """The cut the next pair is chosen around: the answers' t once they give one, else the links' t."""
        t = fit_answers(answers, interval=False).threshold
        return self.threshold if t is None else t

    def next(self, answers: Sequence[Answer]) -> Pair | None:
        """The next pair to ask given the answers in force (oldest first); None when every edge is answered."""
        done = {e for a in answers if (e := self.edge_of(a.a, a.b)) is not None}
        if len(done) >= len(self.mst.distance):
            return None
        cut = self.cut(answers)
        slot = SLOTS[len(answers) % len(SLOTS)]
        for kind in (slot, "below", "above", "random"):
            e = self._pick(kind, cut, done)
            if e is not None:
                return Pair(int(self.mst.src[e]), int(self.mst.dst[e]), float(self.mst.distance[e]), kind, cut,
                            joined_pairs(self.mst, e))
        return None

    def _pick(self, kind: str, cut: float, done: set[int]) -> int | None:
        d = self.mst.distance
        split = int(np.searchsorted(d, cut, side="right"))  # edges [0, split) are linked at the cut
        if kind == "below":
            return next((e for e in range(split - 1, -1, -1) if e not in done), None)
        if kind == "above":
            return next((e for e in range(split, len(d)) if e not in done), None)
        if kind == "random":
            return next((int(e) for e in self.order if int(e) not in done), None)
        return self._largest(split, done)

    def _largest(self, split: int, done: set[int]) -> int | None:
        """The weakest inner edge of the largest group at the cut (ties: smallest row) not yet answered."""
        if split == 0:
            return None
        group = components(self.mst, float(self.mst.distance[split - 1]))
        sizes = np.bincount(group)
        edge_group = group[self.mst.src[:split]]
        # edges are sorted by distance, so a group's last linked edge is its weakest link
        last = np.full(len(sizes), -1, np.int64)
        np.maximum.at(last, edge_group, np.arange(split))
        first_row = np.full(len(sizes), len(group), np.int64)
        np.minimum.at(first_row, group, np.arange(len(group)))
        for g in np.lexsort((first_row, -sizes)):
            if sizes[g] < 2:
                break
            if int(last[g]) not in done:
                return int(last[g])
        return None


def answers_from_labels(plan: PairPlan, labels: Sequence, count: int) -> list[Answer]:
    """A simulated labeller: up to `count` answers through `plan`, each Same exactly when the two rows share a
    label (`labels` aligned with the plan's ids). The benchmark and the tests ask the same order a person
    would be asked, so what they measure is the ask order and the fit, not a second copy of them."""
    answers: list[Answer] = []
    for seq in range(count):
        pair = plan.next(answers)
        if pair is None:
            break
        same = labels[pair.a] == labels[pair.b]
        answers.append(Answer(seq, str(plan.ids[pair.a]), str(plan.ids[pair.b]), pair.distance,
                              "same" if same else "different", pair.reason, pair.joins))
    return answers
