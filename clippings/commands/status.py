"""`clippings status OUT`: which stages of a replicate or demo folder finished, their times, what is left."""

from __future__ import annotations

import argparse

HELP = "Show which stages of a replicate/demo folder finished, their times, and what is left."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="the --out folder of 'clippings replicate' or 'clippings demo'")


def run(args: argparse.Namespace) -> int:
    from clippings.status import folder_status, status_lines

    for status in folder_status(args.out):
        print("\n".join(status_lines(status)))
    return 0
