"""`ray job submit ... -- python jobs/pretrain.py ...`: the same flags as `clippings pretrain`; joins the cluster
through RAY_ADDRESS."""

from clippings.cli import run_job

raise SystemExit(run_job("pretrain"))
