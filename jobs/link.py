"""`ray job submit ... -- python jobs/link.py --embeddings s3://... --out s3://...`: the same flags as
`clippings link`, `--add NEW --to LINKS --out DIR` (a batch into an existing linking) and `--from-links`
included. With `--index ivf --search-actors N` every pass over the rows runs in Ray tasks across the cluster, one per
embeddings part, and the range search on N actors, which load the parts' lists from `--index-dir` (an s3://
folder when the machines share no disk; docs/linking-at-scale.md#search-actors), reading and writing s3:// or
folders."""

from clippings.cli import run_job

raise SystemExit(run_job("link"))
