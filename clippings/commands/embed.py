"""`clippings embed`: embed an archive with a CLIP model on Ray Data (local Ray, or the cluster under
`ray job submit`), writing both towers per clipping, resumable part by part."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from clippings.commands import add_overwrite_argument
from clippings.errors import BadInput
from clippings.params import Interval, OneOf, validate_params

if TYPE_CHECKING:
    from clippings.image_paths import ImagePolicy

HELP = "Embed an archive (both towers) with a model on Ray Data; resumes a partial run."

CONSTRAINTS = {
    "batch_size": Interval(int, 1, None),
    "concurrency": Interval(int, 1, None),
    "threads": Interval(int, 1, None),
    "dtype": OneOf(("float32", "float16")),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="archive dataset folder (local or s3://)")
    parser.add_argument("--model", required=True, help="model: 'tiny', a folder, an s3:// folder or a hub id")
    parser.add_argument("--out", required=True, help="output embeddings folder (local or s3://)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per model call (default: 64)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="model replicas at once: GPU actors with --gpu (default: the cluster's GPU count), "
                             "else CPU tasks (default: as many as the CPUs allow; one model per worker process)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per model actor, fp16")
    parser.add_argument("--dtype", default="float32", help="stored embedding dtype: float32 or float16")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads (and CPUs) per CPU embedding task, every pool (default: 1)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable part files (listed in _quarantine/skipped-files.json)")
    add_overwrite_argument(parser)
    add_image_arguments(parser)


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of every stage that reads images (embed, pretrain, train, report, replicate).

    By default an `image_path` is read only inside the archive folder, so an archive from elsewhere cannot
    pull other files of the job's user into a run; these flags widen that on purpose.
    """
    parser.add_argument("--allow-external-images", action="store_true",
                        help="also read image paths outside the archive folder: absolute paths, URIs "
                             "(file://, s3://, ...) and relative paths leading out (default: only inside it)")
    parser.add_argument("--allowed-image-prefix", action="append", default=[], metavar="PREFIX",
                        help="a folder or URI prefix (/data/images, s3://bucket/images) whose images may be "
                             "read although outside the archive folder; repeatable")


def image_policy(args: argparse.Namespace) -> ImagePolicy:
    """The validated `ImagePolicy` of `add_image_arguments`' flags; a relative local prefix is made absolute
    at the entry (Ray workers run in other working directories)."""
    from clippings.image_paths import ImagePolicy

    prefixes = []
    for prefix in args.allowed_image_prefix:
        if not prefix.strip():
            raise BadInput(f"The 'allowed_image_prefix' parameter of {args.command} must be a non-empty "
                           f"folder or URI prefix. Got {prefix!r} instead.")
        prefixes.append(prefix if "://" in prefix else os.path.abspath(prefix))
    return ImagePolicy(args.allow_external_images, tuple(prefixes))


def run(args: argparse.Namespace) -> int:
    validate_params("embed", vars(args), CONSTRAINTS)
    images = image_policy(args)
    from clippings.embed import embed_archive
    from clippings.logs import finish
    from clippings.progress import Progress
    from clippings.raylocal import init_ray

    init_ray()
    with Progress("embed", unit="row") as bar:
        summary = embed_archive(
            args.archive, args.model, args.out, batch_size=args.batch_size, concurrency=args.concurrency,
            gpu=args.gpu, dtype=args.dtype, skip_bad_files=args.skip_bad_files, threads=args.threads,
            images=images, progress=bar, overwrite=args.overwrite,
        )
    skipped = f", skipped unreadable files: {len(summary.skipped_files)}" if summary.skipped_files else ""
    finish(f"embedded: {summary.embedded}, quarantined: {summary.quarantined}{skipped} ({summary.shards_done} "
           f"parts written, {summary.shards_resumed} done before), {summary.throughput:.1f} rows/s")
    return 0
