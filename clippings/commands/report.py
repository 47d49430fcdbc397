"""`clippings report`: a static HTML report of a links folder, with thumbnails, plots and a caption search."""

from __future__ import annotations

import argparse

from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import Interval, validate_params

HELP = "Write a browsable static HTML report (DIR/index.html) of the largest linked groups."

CONSTRAINTS = {
    "top": Interval(int, 1, None),
    "max_per_group": Interval(int, 1, None),
    "thumb_size": Interval(int, 16, 1024),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--links", required=True, help="links folder written by 'clippings link'")
    parser.add_argument("--archive", required=True, help="the archive the links were built from (images, captions)")
    parser.add_argument("--out", required=True, help="output folder for index.html and images/")
    parser.add_argument("--curve", default=None, help="CSV with columns threshold,ari (written by 'clippings tune')")
    parser.add_argument("--embeddings", default=None,
                        help="embeddings folder: adds image/text similarity of each group's weakest link")
    parser.add_argument("--top", type=int, default=50, help="largest groups to show (default: 50)")
    parser.add_argument("--max-per-group", type=int, default=24, help="clippings shown per group (default: 24)")
    parser.add_argument("--thumb-size", type=int, default=128, help="thumbnail longest side in pixels (default: 128)")
    parser.add_argument("--made-by", default=None,
                        help="the method and model that made the links, named first in the header (default: "
                             "the model recorded in links.json)")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("report", vars(args), CONSTRAINTS)
    images = image_policy(args)
    from clippings.logs import finish
    from clippings.progress import Progress
    from clippings.report import build_report

    with Progress("report: thumbnails", unit="clipping") as bar:
        summary = build_report(args.links, args.archive, args.out, curve=args.curve, embeddings=args.embeddings,
                               top=args.top, max_per_group=args.max_per_group, thumb_size=args.thumb_size,
                               images=images, made_by=args.made_by, progress=bar)
    finish(f"{summary.groups} groups of {summary.clusters} clusters, {summary.thumbnails} thumbnails, "
           f"{summary.unreadable_images} unreadable images", summary.index)
    return 0
