"""`clippings fuse`: late fusion, the image tower of one embeddings dataset beside the text tower of another."""

from __future__ import annotations

import argparse

HELP = ("Late fusion: write embeddings whose image vectors come from one embeddings folder and text vectors from "
        "another (the same archive embedded by two models); tune, link and report take them as any embeddings.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-embeddings", required=True, help="embeddings folder whose image vectors are kept")
    parser.add_argument("--text-embeddings", required=True,
                        help="embeddings folder of the same archive whose text vectors are kept")
    parser.add_argument("--out", required=True, help="output embeddings folder (new, empty or an earlier fusion)")


def run(args: argparse.Namespace) -> int:
    from clippings.fuse import fuse_embeddings
    from clippings.logs import finish

    counts = fuse_embeddings(args.image_embeddings, args.text_embeddings, args.out)
    finish(f"{counts['rows']} clippings in {counts['parts']} parts ({counts['quarantined']} quarantined)", args.out)
    return 0
