"""`clippings baseline`: the Jaccard n-gram linker, tuned on a labelled validation set."""

from __future__ import annotations

import argparse

from clippings.params import Interval, validate_params

HELP = "Link captions by word n-gram Jaccard overlap (n and overlap tuned on --val by ARI)."

CONSTRAINTS = {"max_df": Interval(int, 2, None), "pair_budget": Interval(float, 1.0, None)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="archive to link")
    parser.add_argument("--val", required=True, help="labelled archive to tune n and the overlap on")
    parser.add_argument("--out", required=True, help="links folder: clusters.parquet, links.json")
    parser.add_argument("--max-df", type=int, default=500,
                        help="prefix n-grams held by more captions are not candidate sources (default: 500)")
    parser.add_argument("--pair-budget", type=float, default=30.0,
                        help="candidate pairs per caption at most; lowers the n-gram cap on large archives so the "
                             "cost stays linear (default: 30)")


def run(args: argparse.Namespace) -> int:
    validate_params("baseline", vars(args), CONSTRAINTS)
    from clippings.baselines import run_baseline

    info = run_baseline(args.archive, args.val, args.out, max_df=args.max_df, pair_budget=args.pair_budget)
    counts = info["counts"]
    print(f"baseline: n={info['n']} overlap={info['overlap']} (val ARI {info['val_ari']:.4f}); "
          f"{counts['clippings']} clippings -> {counts['clusters']} clusters in {args.out}")
    if "ari" in info:
        print(f"baseline: ARI on {args.archive}: {info['ari']:.4f}")
    return 0
