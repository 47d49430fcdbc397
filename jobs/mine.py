"""`ray job submit ... -- python jobs/mine.py --archive ... --model ... --out ... [--rounds R]`: the same flags
as `clippings mine`; embedding (and, with rounds, training) runs on the cluster's workers."""

from clippings.cli import run_job

raise SystemExit(run_job("mine"))
