"""The main job on the built-in default: synth → replicate (small) → the best model's test links → report."""

from __future__ import annotations

import os

from clippings.archive import join
from clippings.logs import setup_logging
from clippings.replicate import StageRunner, print_table, replicate

BEST_ROW = "Supervised multimodal"


def demo(out: str, seed: int = 0, **overrides: int | None) -> dict:
    """Run the demo into `out/`; finished stages are skipped on re-run. Returns the replication results.

    overrides: sizes passed to `replicate` (stories, pretrain_epochs, train_epochs, workers).
    """
    from clippings.cli import main as cli_main

    log = setup_logging(out, "demo")
    results = replicate(out, scale="small", seed=seed, cli_main=cli_main, **overrides)
    best = results["rows"][BEST_ROW]
    test = join(results["archive"], "test")
    report = join(out, "report")
    stages = StageRunner(out, cli_main)
    stages.run("report", ["report", "--links", best["links"], "--archive", test, "--out", report,
                          "--curve", join(best["tune"], "curve.csv"),
                          "--embeddings", join(out, "embeddings", "supervised_multimodal", "test")])
    print_table(results)
    index = os.path.abspath(join(report, "index.html"))
    log.info("report: %s", index)
    print(f"Report: {index}")
    log.info("results: %s", os.path.abspath(join(out, "results.md")))
    return results
