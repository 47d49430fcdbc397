"""One module per CLI subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int`.

Keep imports of torch, ray, faiss and transformers inside `run` so the parser stays light.
"""

from __future__ import annotations

import argparse


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """`--overwrite`, the one flag of every stage that resumes earlier work in its output (pretrain and train
    from checkpoints, embed part by part, replicate and demo stage by stage; `clippings.settings`)."""
    parser.add_argument("--overwrite", action="store_true",
                        help="discard the earlier run in the output (checkpoints, embedded parts, finished stages) "
                             "and start afresh; without it a re-run resumes work recorded with the same settings "
                             "and refuses work made with others")
