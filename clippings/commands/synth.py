"""`clippings synth`: write the built-in synthetic reprint archive."""

from __future__ import annotations

import argparse

from clippings.params import Interval, OneOf, validate_params

HELP = "Write the built-in synthetic reprint archive: DIR/{unlabelled,train,val,test}."

CONSTRAINTS = {"stories": Interval(int, 4, None), "seed": Interval(int, 0, None),
               "difficulty": OneOf(("hard", "mild"))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (local or s3://)")
    parser.add_argument("--stories", type=int, default=2000,
                        help="distinct stories, ~3 reprints each on average (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files (default: 0)")
    parser.add_argument("--difficulty", default="hard", choices=("hard", "mild"),
                        help="hard: reprints printed through halftone screens, scanned askew and read at real OCR "
                             "error rates; mild: the light scan and OCR of the demo and the tests (default: hard)")


def run(args: argparse.Namespace) -> int:
    validate_params("synth", vars(args), CONSTRAINTS)
    import pyarrow.parquet as pq

    from clippings.logs import finish
    from clippings.storage import list_parts
    from clippings.synth import generate

    paths = generate(args.out, stories=args.stories, seed=args.seed, difficulty=args.difficulty)
    counts = []
    for name, path in paths.items():
        rows = sum(pq.read_metadata(p).num_rows if "://" not in p else 0 for p in list_parts(path))
        counts.append(f"{name} {rows}" if rows else name)
    finish(f"{args.stories} stories ({args.difficulty}): {', '.join(counts)} rows")
    return 0
