"""`ray job submit ... -- python jobs/compose.py --vision ... --text ... --out s3://...`: the same flags as
`clippings compose`; runs on the driver (hub ids need the cluster to reach the hub)."""

from clippings.cli import run_job

raise SystemExit(run_job("compose"))
