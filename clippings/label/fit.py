"""The threshold t that answered pairs point to, how sure it is, and precision and recall at it.

Single linkage links two clippings when d ≤ t, so each answered pair votes on t: a Same pair wants t ≥ d, a
Different pair wants t < d. The asked pairs are MST edges, and keeping an edge links every pair of the two
groups it joins, so each vote weighs the clipping pairs its edge joins (Answer.joins): the edge that glues two
large stories outweighs a missed pair of singletons, as it does in pair-counting scores such as ARI (one vote
per answer puts t at the edge of the cliff where large stories start to merge; see docs/benchmarks.md,
"bench.label at medium over 3 seeds"). `fit_threshold` picks the t with the fewest such pairs on the wrong
side (the midpoint of the first run of best cuts, as clippings.link.tune.best_threshold takes the midpoint of
the best ARI plateau). Unsure answers do not vote. The interval comes from a seeded bootstrap over the voting
answers; precision and recall at t come from the pairs asked at random (uniform over the MST edges of the
links folder), the only ones not chosen for their distance, so the estimate is unbiased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clippings.label.answers import Answer

BOOTSTRAP = 200
"""Resamples behind the interval for t."""
LEVEL = 0.9
"""Coverage of the interval for t (the 5th to the 95th percentile of the bootstrap)."""
MOVE_WINDOW = 10
"""'How much t still moves': the change of t over the last this many answers."""


def cut_errors(distances: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(u, errors): the distinct answered distances ascending, and for each cut k = 0..len(u) (t in
    [u[k-1], u[k]), linking the first k distances) the summed weight (default 1 each) of the answers that
    disagree with it. O(n log n)."""
    u, inverse = np.unique(np.asarray(distances, np.float64), return_inverse=True)
    same = np.asarray(same, bool)
    weights = np.ones(len(inverse)) if weights is None else np.asarray(weights, np.float64)
    same_at = np.bincount(inverse, weights=weights * same, minlength=len(u))
    diff_at = np.bincount(inverse, weights=weights * ~same, minlength=len(u))
    kept_different = np.r_[0.0, np.cumsum(diff_at)]
    dropped_same = float(same_at.sum()) - np.r_[0.0, np.cumsum(same_at)]
    return u, kept_different + dropped_same


def fit_threshold(distances: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None
                  ) -> tuple[float, float] | None:
    """(t, wrong) with the least weight of answers disagreeing; None unless both Same and Different occur.

    distances: (n,) float pair distances; same: (n,) bool, True for Same; weights: (n,) votes (default 1).
    t is the midpoint of the first run of best cuts: from the largest distance it links to the smallest it
    leaves out (0 when it links none; the largest distance itself when it links all).
    """
    same = np.asarray(same, bool)
    if not same.any() or same.all():
        return None
    u, errors = cut_errors(distances, same, weights)
    best = errors.min()
    i = int(np.argmax(errors == best))
    j = i
    while j + 1 < len(errors) and errors[j + 1] == best:
        j += 1
    low = 0.0 if i == 0 else float(u[i - 1])
    high = float(u[-1]) if j == len(u) else float(u[j])
    return (low + high) / 2.0, float(best)


def bootstrap_interval(distances: np.ndarray, same: np.ndarray, weights: np.ndarray, seed: int = 0,
                       resamples: int = BOOTSTRAP) -> tuple[float, float] | None:
    """The LEVEL interval of `fit_threshold` over `resamples` seeded bootstrap resamples of the answers
    (resamples with one class only are skipped); None when fewer than half could be fitted. O(B·n log n)."""
    rng = np.random.default_rng(seed)
    n = len(distances)
    fits = []
    for _ in range(resamples):
        pick = rng.integers(0, n, size=n)
        fit = fit_threshold(distances[pick], same[pick], weights[pick])
        if fit is not None:
            fits.append(fit[0])
    if len(fits) < resamples / 2:
        return None
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    return float(np.percentile(fits, tail)), float(np.percentile(fits, 100.0 - tail))


def precision_recall(distances: np.ndarray, same: np.ndarray, t: float) -> tuple[float | None, float | None]:
    """Pair precision (Same among pairs with d ≤ t) and recall (pairs with d ≤ t among Same) of a cut at t
    over the given answers; None where the denominator is empty."""
    linked = np.asarray(distances) <= t
    same = np.asarray(same, bool)
    hits = int((linked & same).sum())
    precision = hits / int(linked.sum()) if linked.any() else None
    recall = hits / int(same.sum()) if same.any() else None
    return precision, recall


@dataclass
class PairFit:
    """What the answers say: t (None until both Same and Different were answered), its interval, how far t
    moved over the last MOVE_WINDOW answers, the answers and the clipping pairs they join on the wrong side of
    t, counts, and precision/recall at t from the random pairs."""

    threshold: float | None
    interval: tuple[float, float] | None
    moved: float | None
    disagreements: int | None
    wrong_pairs: int | None
    same: int
    different: int
    unsure: int
    precision: float | None
    recall: float | None
    random_pairs: int

    def record(self) -> dict:
        """A JSON-ready dict (tune.json, the page's progress)."""
        return {"threshold": self.threshold, "interval": list(self.interval) if self.interval else None,
                "moved": self.moved, "disagreements": self.disagreements, "wrong_pairs": self.wrong_pairs,
                "same": self.same,
                "different": self.different, "unsure": self.unsure, "precision": self.precision,
                "recall": self.recall, "random_pairs": self.random_pairs}


def voting(answers: Sequence[Answer], distances: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distances, same, random, joins) over the Same/Different answers; `distances` (one per answer)
    replaces the recorded ones (e.g. recomputed at another image weight)."""
    if not len(answers):
        return np.empty(0), np.empty(0, bool), np.empty(0, bool), np.empty(0)
    recorded = np.asarray([a.distance for a in answers], np.float64) if distances is None else distances
    keep = np.asarray([a.answer != "unsure" for a in answers], bool)
    same = np.asarray([a.answer == "same" for a in answers], bool)
    rand = np.asarray([a.reason == "random" for a in answers], bool)
    joins = np.asarray([a.joins for a in answers], np.float64)
    return recorded[keep], same[keep], rand[keep], joins[keep]


def fit_answers(answers: Sequence[Answer], distances: np.ndarray | None = None, seed: int = 0,
                interval: bool = True) -> PairFit:
    """`PairFit` of the answers in force (oldest first). distances: per answer, replacing the recorded ones.
    interval: also bootstrap the interval (the costly part: BOOTSTRAP fits)."""
    d, same, rand, joins = voting(answers, distances)
    fit = fit_threshold(d, same, joins)
    t = None if fit is None else fit[0]
    moved = precision = recall = disagreements = None
    if t is not None and len(answers) > MOVE_WINDOW:
        earlier = answers[:-MOVE_WINDOW]
        d0, s0, _, j0 = voting(earlier, None if distances is None else distances[: len(earlier)])
        before = fit_threshold(d0, s0, j0)
        moved = None if before is None else abs(t - before[0])
    if t is not None:
        precision, recall = precision_recall(d[rand], same[rand], t)
        disagreements = int(((d <= t) != same).sum())
    unsure = sum(1 for a in answers if a.answer == "unsure")
    return PairFit(t, bootstrap_interval(d, same, joins, seed) if interval and t is not None else None, moved,
                   disagreements, None if fit is None else int(fit[1]), int(same.sum()), int((~same).sum()),
                   unsure, precision, recall, int(rand.sum()))


def both_towers(image: np.ndarray, text: np.ndarray) -> bool:
    """Whether the embeddings hold two different towers (a single-tower set stores one tower twice or leaves
    the other zero): only then is there a w to choose."""
    return bool(np.abs(image).sum() > 0 and np.abs(text).sum() > 0 and not np.allclose(image, text))


def fit_weights(answers: Sequence[Answer], image: np.ndarray, text: np.ndarray, weights: Sequence[float],
                prefer: float = 0.5, seed: int = 0) -> tuple[float, PairFit, list[dict]]:
    """(w, fit at w, grid) for pairs answered on clippings whose rows in `image`/`text` are (2·i, 2·i + 1)
    for answer i: each w's pair distances are recomputed from the pooled towers, t is fitted at each, and the
    w with the fewest clipping pairs on the wrong side wins (ties: nearest `prefer`, the w the pairs were asked
    at, then the smaller). Each answer keeps the weight its edge had in the MST it was asked from. Raises
    ValueError when no w gives a t (no Same and Different answers both).
    Cost: O(len(weights) · n) pooling plus one bootstrap at the chosen w.
    """
    from clippings.embeddings import pool

    fits = {}
    for w in weights:
        pooled = pool(image, text, w)
        distances = 1.0 - np.einsum("ij,ij->i", pooled[0::2], pooled[1::2]).astype(np.float64)
        fit = fit_answers(answers, distances, seed, interval=False)
        if fit.threshold is not None:
            fits[w] = (fit, distances)
    if not fits:
        raise ValueError("no Same and Different answers both: answer more pairs")
    best = min(fits, key=lambda w: (fits[w][0].wrong_pairs, abs(w - prefer), w))
    grid = [{"im_wt": w, "threshold": f.threshold, "disagreements": f.disagreements, "wrong_pairs": f.wrong_pairs}
            for w, (f, _) in fits.items()]
    return best, fit_answers(answers, fits[best][1], seed), grid
