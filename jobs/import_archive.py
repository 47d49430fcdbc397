"""`ray job submit ... -- python jobs/import_archive.py FORMAT --input ... --out ...`: same flags as
`clippings import`; joins the cluster through RAY_ADDRESS."""

from clippings.cli import run_job

raise SystemExit(run_job("import"))
