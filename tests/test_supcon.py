"""SupCon fine-tuning on real Ray Train workers: pretrain → train through the CLI, and one-tower training."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from clippings import cli

pytestmark = pytest.mark.slow  # each test runs a Ray Train fit (~15 s start-up)


def test_pretrain_then_train_through_the_cli(pretrained, supervised):
    """The session's `supervised` (tests/conftest.py): `clippings train` from the pretrained model."""
    from transformers import CLIPModel

    rc, pre = pretrained
    assert rc == 0 and supervised["rc"] == 0
    out = supervised["out"]
    CLIPModel.from_pretrained(out)
    with open(os.path.join(out, "clippings.json")) as f:
        meta = json.load(f)
    assert meta["im_wt"] == 0.5 and 0.0 <= meta["threshold"] <= 2.0 and -1.0 <= meta["val_ari"] <= 1.0
    assert meta["data"]["train"]["rows"] == 72 and meta["data"]["val"]["rows"] == 36
    assert meta["base_model"] == pre and "clippings_version" in meta["code"]
    with open(os.path.join(meta["run"], "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert meta["val_ari"] == max(float(r["val_ari"]) for r in rows)  # the best epoch was written
    assert meta["epoch"] == int(max(rows, key=lambda r: float(r["val_ari"]))["epoch"])


@pytest.mark.parametrize("tower,frozen", [("image", "text_"), ("text", "vision_")])
def test_one_tower_training_leaves_the_other_tower_alone(tower, frozen, one_tower):
    """--im-wt 1 trains the image tower alone, --im-wt 0 the text tower alone (the session's `clippings train`
    runs of the tiny model, tests/conftest.py)."""
    from clippings.model import load_model

    assert one_tower["rc"] == (0, 0)
    out = one_tower[tower]
    with open(os.path.join(out, "clippings.json")) as f:
        meta = json.load(f)
    assert meta["im_wt"] == (1.0 if tower == "image" else 0.0)
    assert meta["epochs_trained"] == 1 and "val_ari" in meta and meta["view_p"] == 0.5
    before = load_model("tiny").model.state_dict()
    after = load_model(out).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    trained = "vision_" if frozen == "text_" else "text_"
    assert changed and all(not k.startswith(frozen) for k in changed)
    assert any(k.startswith(trained) for k in changed)


def test_multimodal_training_is_bit_identical_beside_a_busy_loop_on_every_core(pretrained, supervised, tmp_path):
    """The demo's table must not move with the machine's load: the multimodal stage (both towers, 2 workers)
    trained again beside a busy-looping process on every core gives the session's `supervised` weights (trained
    with nothing of its own beside it) bit for bit."""
    import subprocess
    import sys

    from clippings.model import load_model

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        assert cli.main([*supervised["argv"], "--out", str(tmp_path / "busy")]) == 0
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    quiet, busy = load_model(supervised["out"]).model.state_dict(), load_model(str(tmp_path / "busy")).model.state_dict()
    assert quiet.keys() == busy.keys()
    differ = [k for k in quiet if not torch.equal(quiet[k], busy[k])]
    assert not differ, f"weights differ under load: {differ[:5]}"
    base = load_model(pretrained[1]).model.state_dict()
    assert any(not torch.equal(base[k], quiet[k]) for k in base)  # it did train
