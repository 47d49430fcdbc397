"""`clippings replicate`: the paper's seven-row table on a labelled archive, in local Ray mode."""

from __future__ import annotations

import argparse

HELP = "Replicate the paper's table (Jaccard, self-supervised and supervised rows) on an archive."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (results.md, results.json, every stage)")
    parser.add_argument("--scale", choices=("small", "paper"), default="small",
                        help="small: tiny CLIP within ~10 min on 2 CPUs; paper: the paper's sizes and settings")
    parser.add_argument("--archive", default=None,
                        help="folder with unlabelled/train/val/test splits (default: the built-in archive)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in archive and training")


def run(args: argparse.Namespace) -> int:
    from clippings.logs import setup_logging
    from clippings.replicate import print_table, replicate

    setup_logging(args.out, "replicate")
    results = replicate(args.out, scale=args.scale, archive=args.archive, seed=args.seed)
    print_table(results)
    return 0
