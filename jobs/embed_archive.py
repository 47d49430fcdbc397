"""`ray job submit ... -- python jobs/embed_archive.py --archive ... --model ... --out ...`: same flags as
`clippings embed`; joins the cluster through RAY_ADDRESS."""

from clippings.cli import run_job

raise SystemExit(run_job("embed"))
