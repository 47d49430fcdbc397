"""`clippings embed`: embed an archive with a CLIP model on Ray Data (local Ray, or the cluster under
`ray job submit`), writing both towers per clipping, resumable part by part."""

from __future__ import annotations

import argparse

from clippings.params import Interval, OneOf, validate_params

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
                        help="model actors (default: 1 on CPU, the cluster's GPU count with --gpu)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per model actor, fp16")
    parser.add_argument("--dtype", default="float32", help="stored embedding dtype: float32 or float16")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per CPU actor (default: cores / concurrency)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable part files (listed in _quarantine/skipped-files.json)")


def run(args: argparse.Namespace) -> int:
    validate_params("embed", vars(args), CONSTRAINTS)
    from clippings.embed import embed_archive
    from clippings.logs import setup_logging
    from clippings.raylocal import init_ray

    log = setup_logging(args.out, "embed")
    init_ray()
    summary = embed_archive(
        args.archive, args.model, args.out, batch_size=args.batch_size, concurrency=args.concurrency,
        gpu=args.gpu, dtype=args.dtype, skip_bad_files=args.skip_bad_files, threads=args.threads,
    )
    log.info("embed %s -> %s", args.archive, args.out)
    for line in summary.lines():
        log.info("  %s", line)
    return 0
