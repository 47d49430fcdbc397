"""The label-free threshold against the labelled optimum: ARI at each method's auto t vs the best t.

    python -m bench.auto_threshold --embeddings VAL_EMB --archive VAL [--im-wt W] [--k 20]
    python -m bench.auto_threshold [--quick]          # generated clustered towers, no files

For every w of clippings.link.auto.W_GRID (or the one --im-wt) and every method of clippings.link.auto,
prints the auto t, its valley depth, separation and largest group's share, the ARI at that t (from the exact ARI
curve of clippings.link.tune), the best t and best ARI of the same curve, and their ratio; then, per method, the
w it picks (clippings.link.auto.preferred among the clear cuts, as `link --threshold auto` does) with its ARI
against the best (w, t) of the grid. This is the measurement that decides clippings.link.auto's MIN_DEPTH and
DEFAULT_METHOD: run it on the built-in archive's `val` (never `test`).
Up to clippings.link.tune.DENSE_MAX rows the graph is complete (every curve exact over [0, 2]); above, the
graph is completed up to 1.5 × the largest auto t, so the best t is searched only up to there (printed).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from clippings.embeddings import Embeddings
from clippings.link.auto import (
    MAX_GROUP_SHARE,
    METHODS,
    MIN_DEPTH,
    W_GRID,
    cut_of,
    edge_lengths,
    is_clear,
    preferred,
)


def generated(n: int, seed: int = 0) -> tuple[Embeddings, np.ndarray]:
    """Towers where each alone misleads: groups of Zipf sizes (most of them singletons); in the image tower
    every second group's centre lies close to the previous one's (the same photo with another story), in
    the text tower every centre is its own but the members are noisy (OCR). Labels = groups."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(2.0, size=n), 50)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    groups = np.repeat(np.arange(len(sizes)), sizes)[:n]

    def tower(centres: np.ndarray, noise: float) -> np.ndarray:
        x = centres[groups] + noise / np.sqrt(centres.shape[1]) * rng.standard_normal((n, centres.shape[1]))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    image_centres = rng.standard_normal((len(sizes), 64))
    image_centres[1::2] = image_centres[:-1:2][: len(image_centres[1::2])] + 0.3 * rng.standard_normal(
        (len(image_centres[1::2]), 64))
    image = tower(image_centres / np.linalg.norm(image_centres, axis=1, keepdims=True) * 8, 3.0)
    text = tower(rng.standard_normal((len(sizes), 64)), 0.9)
    return Embeddings(np.array([f"r{i}" for i in range(n)], dtype=object), image, text, "gen", "generated"), groups


def measure(vectors: np.ndarray, labels: np.ndarray, k: int) -> list[dict]:
    """Per method: auto t, depth, ARI at t, and the best (t, ARI) of the exact curve on these vectors."""
    from clippings.link.knn import knn_graph
    from clippings.link.slink import components, mst_from_graph
    from clippings.link.tune import DENSE_MAX, ari_curve, best_threshold

    lengths = edge_lengths(vectors, k=k)
    cuts = {m: cut_of(lengths, m) for m in METHODS}
    n = len(vectors)
    upper = None if n <= DENSE_MAX else min(2.0, 1.5 * max(c.threshold for c in cuts.values()))
    graph = knn_graph(vectors, k=n - 1 if upper is None else k, threshold=upper, index="flat")
    exact = graph.exact_up_to if upper is None else min(graph.exact_up_to, upper)
    mst = mst_from_graph(n, graph.src, graph.dst, graph.distance)
    thresholds, aris = ari_curve(mst, labels, exact)
    best_t, best_ari = best_threshold(thresholds, aris, upper=exact)
    rows = []
    for method, cut in cuts.items():
        t = cut.threshold
        at = float(aris[max(0, int(np.searchsorted(thresholds, t, side="right")) - 1)]) if t <= exact else None
        rows.append({"method": method, "t": t, "depth": cut.depth, "separation": cut.separation, "ari": at,
                     "best_t": best_t, "best_ari": best_ari, "exact_up_to": exact,
                     "largest_share": int(np.bincount(components(mst, t)).max()) / n})
    return rows


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.auto_threshold", description=__doc__.splitlines()[0])
    ap.add_argument("--embeddings", default=None, help="embeddings of a labelled set (e.g. the archive's val)")
    ap.add_argument("--archive", default=None, help="the labelled archive of those embeddings")
    ap.add_argument("--im-wt", type=float, default=None, help="one w instead of the grid")
    ap.add_argument("--k", type=int, default=20, help="neighbours per row above 4096 rows")
    ap.add_argument("--quick", action="store_true", help="generated data: 1,000 rows (default 3,000)")
    args = ap.parse_args(argv)
    if args.embeddings:
        from clippings.commands.tune import _labels_for
        from clippings.embeddings import read_embeddings

        emb = read_embeddings(args.embeddings)
        labels = _labels_for(emb.ids, args.archive, args.embeddings)
        source = f"{args.embeddings} labelled by {args.archive}"
    else:
        emb, labels = generated(1000 if args.quick else 3000)
        source = "generated towers (look-alike images, noisy captions)"
    weights = W_GRID if args.im_wt is None else (args.im_wt,)
    print(f"auto threshold vs best t: {source}, {len(emb.ids)} rows; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'w':>5} {'method':>7} {'auto t':>7} {'depth':>6} {'sep.':>6} {'largest':>7} {'ARI@t':>6} {'best t':>7} "
          f"{'best':>6} {'ratio':>6}")
    by_method: dict[str, list[tuple[float, dict]]] = {m: [] for m in METHODS}
    start = time.perf_counter()
    for w in weights:
        for row in measure(emb.pooled(w), labels, args.k):
            by_method[row["method"]].append((w, row))
            ratio = None if row["ari"] is None or row["best_ari"] <= 0 else row["ari"] / row["best_ari"]
            print(f"{w:5.2f} {row['method']:>7} {row['t']:7.4f} {row['depth']:6.3f} {row['separation']:6.2f} "
                  f"{row['largest_share']:7.3f} {_fmt(row['ari'])} {row['best_t']:7.4f} {row['best_ari']:6.3f} "
                  f"{_fmt(ratio)}")
    best = max(row["best_ari"] for rows in by_method.values() for _, row in rows)
    print(f"per method, the w it picks (clippings.link.auto.choose's rule) against the best (w, t) of the grid, "
          f"ARI {best:.3f}:")
    for method, rows in by_method.items():
        clear = [{**row, "im_wt": w} for w, row in rows if is_clear(row)]
        if not clear:
            print(f"  {method:>7}: refused (no depth ≥ {MIN_DEPTH:g} with a largest group ≤ {MAX_GROUP_SHARE:g})")
            continue
        row = preferred(clear)
        print(f"  {method:>7}: w={row['im_wt']:g} t={row['t']:.4f} depth {row['depth']:.3f} "
              f"ARI {_fmt(row['ari']).strip()}")
    print(f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
