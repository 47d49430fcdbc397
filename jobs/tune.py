"""`ray job submit ... -- python jobs/tune.py --embeddings ... --archive ... --model ...`: the same flags as
`clippings tune`; runs on the driver."""

from clippings.cli import run_job

raise SystemExit(run_job("tune"))
