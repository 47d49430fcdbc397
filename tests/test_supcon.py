"""SupCon fine-tuning on real Ray Train workers: pretrain → train through the CLI, and one-tower training."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from clippings import cli

pytestmark = pytest.mark.slow  # each test runs a Ray Train fit (~15 s start-up)


def test_pretrain_then_train_through_the_cli(pretrained, train_archives, tmp_path):
    from transformers import CLIPModel

    rc, pre = pretrained
    assert rc == 0
    out = str(tmp_path / "model")
    rc = cli.main(["train", "--archive", train_archives["train"], "--val", train_archives["val"], "--out", out,
                   "--model", pre, "--workers", "2", "--epochs", "2", "--groups-per-step", "4"])
    assert rc == 0
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


def test_multimodal_training_is_bit_identical_beside_a_busy_loop_on_every_core(train_archives, tiny_model_dir,
                                                                               ray_local, tmp_path):
    """The demo's table must not move with the machine's load: the multimodal stage (both towers) trained
    twice, once beside a busy-looping process on every core, gives the same weights bit for bit."""
    import subprocess
    import sys

    from clippings.model import load_model
    from clippings.train.supcon import train_supcon

    def trained(out: str) -> dict[str, torch.Tensor]:
        train_supcon(train_archives["train"], train_archives["val"], out, model=str(tiny_model_dir), im_wt=0.5,
                     workers=1, epochs=2, groups_per_step=4)
        return load_model(out).model.state_dict()

    quiet = trained(str(tmp_path / "quiet"))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        busy = trained(str(tmp_path / "busy"))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert quiet.keys() == busy.keys()
    differ = [k for k in quiet if not torch.equal(quiet[k], busy[k])]
    assert not differ, f"weights differ under load: {differ[:5]}"
    base = load_model(str(tiny_model_dir)).model.state_dict()
    assert any(not torch.equal(base[k], quiet[k]) for k in base)  # it did train
