"""`ray job submit ... -- python jobs/link.py --embeddings s3://... --out s3://...`: the same flags as
`clippings link`, `--add NEW --to LINKS --out DIR` (a batch into an existing linking) and `--from-links`
included; runs on the driver (FAISS uses the node's cores), reading and writing s3:// or folders."""

from clippings.cli import run_job

raise SystemExit(run_job("link"))
