"""The replication table over seeds: mean and sample sd per row, every row in the Markdown."""

from __future__ import annotations

import numpy as np
import pytest

from clippings.replicate import ROWS, SCALES, seeds_markdown, summarise_seeds


def _run(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = {name: {"ari": float(rng.uniform()), "val_ari": float(rng.uniform())} for name in ROWS}
    rows["Jaccard"].pop("val_ari")
    return {"rows": rows}


def test_summary_is_mean_and_sample_sd_of_each_row():
    runs = [_run(s) for s in range(3)]
    summary = summarise_seeds(runs)
    for name in ROWS:
        values = [run["rows"][name]["ari"] for run in runs]
        assert summary[name]["ari"]["values"] == values
        assert summary[name]["ari"]["mean"] == pytest.approx(np.mean(values))
        assert summary[name]["ari"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert "val_ari" not in summary["Jaccard"]


def test_seeds_markdown_lists_every_row_with_its_spread():
    results = {"scale": "small", "seeds": 2, "rows": summarise_seeds([_run(0), _run(1)])}
    table = seeds_markdown(results)
    for name in ROWS:
        stats = results["rows"][name]["ari"]
        assert f"| {name} | {100 * stats['mean']:.1f} ± {100 * stats['sd']:.1f} |" in table


def test_scales_set_encoder_rates_and_epochs_per_row():
    small, medium = SCALES["small"], SCALES["medium"]
    assert small.lr_argv("train") == [] and small.epochs(0.0) == small.epochs(1.0) == small.train_epochs
    assert medium.model == "minilm" and medium.lr_argv("pretrain") == ["--text-lr", "0.0"]
    assert (medium.view_weight, medium.clip_weight) == (1.0, 0.0)  # the image tower learns from views alone
    assert (small.view_weight, small.clip_weight) == (0.0, 1.0)  # tiny has no pretrained text tower to keep
    assert medium.lr_argv("train") == ["--text-lr", "2e-05"]
    assert medium.epochs(1.0) == medium.train_epochs and medium.epochs(0.5) == medium.text_train_epochs
