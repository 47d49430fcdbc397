"""`clippings replicate`: the paper's seven-row table on a labelled archive, in local Ray mode."""

from __future__ import annotations

import argparse

from clippings.params import Interval, validate_params

CONSTRAINTS = {
    "stories": Interval(int, 10, None),
    "pretrain_epochs": Interval(int, 1, None),
    "train_epochs": Interval(int, 1, None),
    "workers": Interval(int, 1, None),
}

HELP = "Replicate the paper's table (Jaccard, self-supervised and supervised rows) on an archive."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (results.md, results.json, every stage)")
    parser.add_argument("--scale", choices=("small", "paper"), default="small",
                        help="small: tiny CLIP within ~10 min on 2 CPUs; paper: the paper's sizes and settings")
    parser.add_argument("--archive", default=None,
                        help="folder with unlabelled/train/val/test splits (default: the built-in archive)")
    add_scale_overrides(parser)


def add_scale_overrides(parser: argparse.ArgumentParser) -> None:
    """Flags shared by replicate and demo: seed and overrides of the scale's sizes."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in archive and training")
    parser.add_argument("--stories", type=int, default=None, help="built-in archive size (overrides the scale)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="overrides the scale's pretrain epochs")
    parser.add_argument("--train-epochs", type=int, default=None, help="overrides the scale's SupCon epochs")
    parser.add_argument("--workers", type=int, default=None, help="Ray Train workers (overrides the scale)")


def scale_overrides(args: argparse.Namespace) -> dict:
    """The validated seed and scale overrides of replicate/demo as keyword arguments of `replicate`."""
    validate_params(args.command, vars(args), CONSTRAINTS)
    return {"seed": args.seed, "stories": args.stories, "pretrain_epochs": args.pretrain_epochs,
            "train_epochs": args.train_epochs, "workers": args.workers}


def run(args: argparse.Namespace) -> int:
    from clippings.logs import setup_logging
    from clippings.replicate import print_table, replicate

    setup_logging(args.out, "replicate")
    results = replicate(args.out, scale=args.scale, archive=args.archive, **scale_overrides(args))
    print_table(results)
    return 0
