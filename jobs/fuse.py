"""`ray job submit ... -- python jobs/fuse.py --image-embeddings ... --text-embeddings ... --out ...`: the same
flags as `clippings fuse`; runs on the driver, part by part."""

from clippings.cli import run_job

raise SystemExit(run_job("fuse"))
