"""`clippings baseline`: the Jaccard n-gram linker, tuned on a labelled validation set."""

from __future__ import annotations

import argparse

from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import Interval, OneOf, validate_params

HELP = ("Rule baselines tuned on --val by ARI: captions by word n-gram Jaccard overlap (n and overlap), or "
        "images by pixel cosine of 16 px grey thumbnails (threshold).")

CONSTRAINTS = {"max_df": Interval(int, 2, None), "pair_budget": Interval(float, 1.0, None),
               "method": OneOf(("jaccard", "pixels"))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="archive to link")
    parser.add_argument("--val", required=True, help="labelled archive to tune n and the overlap on")
    parser.add_argument("--out", required=True, help="links folder: clusters.parquet, links.json")
    parser.add_argument("--method", default="jaccard", choices=("jaccard", "pixels"),
                        help="jaccard (captions, default) or pixels (image thumbnails)")
    parser.add_argument("--max-df", type=int, default=500,
                        help="prefix n-grams held by more captions are not candidate sources (default: 500)")
    parser.add_argument("--pair-budget", type=float, default=30.0,
                        help="candidate pairs per caption at most; lowers the n-gram cap on large archives so the "
                             "cost stays linear (default: 30)")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("baseline", vars(args), CONSTRAINTS)
    from clippings.logs import finish

    if args.method == "pixels":
        from clippings.pixel_cosine import run_pixel_baseline

        info = run_pixel_baseline(args.archive, args.val, args.out, image_policy(args))
        ari = f"; ARI on {args.archive}: {info['ari']:.4f}" if "ari" in info else ""
        finish(f"pixel cosine, t={info['threshold']:.4f} (val ARI {info['val_ari']:.4f}); "
               f"{info['counts']['clippings']} clippings linked, {info['counts']['quarantined']} quarantined{ari}")
        return 0
    from clippings.baselines import run_baseline

    info = run_baseline(args.archive, args.val, args.out, max_df=args.max_df, pair_budget=args.pair_budget)
    counts = info["counts"]
    ari = f"; ARI on {args.archive}: {info['ari']:.4f}" if "ari" in info else ""
    finish(f"n={info['n']} overlap={info['overlap']} (val ARI {info['val_ari']:.4f}); "
           f"{counts['clippings']} clippings -> {counts['clusters']} clusters{ari}")
    return 0
