"""`clippings demo`: the main job on the built-in archive, from synthetic data to a browsable report."""

from __future__ import annotations

import argparse

from clippings.commands.replicate import add_scale_overrides, scale_overrides

HELP = "Run the main job on the built-in archive: synth, replicate (small), link the test split, report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    add_scale_overrides(parser)


def run(args: argparse.Namespace) -> int:
    from clippings.demo import demo

    demo(args.out, **scale_overrides(args))
    return 0
