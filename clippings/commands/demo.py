"""`clippings demo`: the main job on the built-in archive, from synthetic data to a browsable report."""

from __future__ import annotations

import argparse

HELP = "Run the main job on the built-in archive: synth, replicate (small), link the test split, report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in archive and training")


def run(args: argparse.Namespace) -> int:
    from clippings.demo import demo

    demo(args.out, seed=args.seed)
    return 0
