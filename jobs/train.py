"""`ray job submit ... -- python jobs/train.py ...`: the same flags as `clippings train`; joins the cluster
through RAY_ADDRESS."""

from clippings.cli import run_job

raise SystemExit(run_job("train"))
