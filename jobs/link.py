"""`ray job submit ... -- python jobs/link.py --embeddings s3://... --out s3://...`: the same flags as
`clippings link`, `--add NEW --to LINKS --out DIR` (a batch into an existing linking) and `--from-links`
included. The index is built on the driver; with `--index ivf --search-actors N` the range search runs on
N actors across the cluster, which load the index from `--index-dir` (an s3:// folder when the machines
share no disk), reading and writing s3:// or folders."""

from clippings.cli import run_job

raise SystemExit(run_job("link"))
