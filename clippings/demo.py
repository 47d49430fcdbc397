"""The main job on the built-in default: synth → replicate (small) → the best model's test links → report."""

from __future__ import annotations

import os

from clippings.logs import finish, setup_logging, show_path
from clippings.replicate import BEST_ROW, replicate
from clippings.results_table import print_table
from clippings.storage import join


def demo(out: str, seed: int = 0, **overrides: int | None) -> dict:
    """Run the demo into `out/`; finished stages are skipped on re-run. Returns the replication results.

    overrides: sizes passed to `replicate` (stories, pretrain_epochs, train_epochs, workers).
    """
    from clippings.cli import main as cli_main

    setup_logging(out, "demo")  # demo.log: every stage's lines and the libraries' output, in one file
    results = replicate(out, scale="small", seed=seed, cli_main=cli_main, demo=True, **overrides)
    best = results["rows"][BEST_ROW]
    print_table(results)
    index = os.path.abspath(join(out, "report", "index.html"))
    finish(f"{len(results['rows'])} rows; {BEST_ROW} ARI {best['ari']:.4f} on the test split",
           then=f"Open next: {show_path(index)} (the linked groups, in a browser), "
                f"{show_path(os.path.abspath(join(out, 'results.md')))} (the table); "
                f"'clippings status {show_path(os.path.abspath(out))}' lists the stages and their times.")
    return results
