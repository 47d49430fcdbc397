"""A second training run into the same folder with other settings (issue #31): refused in one line, the earlier
model left as it was; with --overwrite trained afresh, so clippings.json and the weights are the new run's."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest
import torch

from clippings import cli

pytestmark = pytest.mark.slow  # Ray Train fits (~15 s start-up each)


def _meta(out: str) -> dict:
    with open(os.path.join(out, "clippings.json")) as f:
        return json.load(f)


def _weights(out: str) -> dict[str, torch.Tensor]:
    from clippings.model import load_model

    return load_model(out).model.state_dict()


def _tower(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k.startswith(prefix)}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_with_another_im_wt_is_refused_then_retrained_with_overwrite(one_tower, tmp_path, capsys):
    from clippings.model import load_model

    assert one_tower["rc"] == (0, 0)
    first = _weights(one_tower["image"])
    out = str(tmp_path / "model")  # the --im-wt 1 model and its run, copied: other tests read them as they are
    shutil.copytree(one_tower["image"], out)
    shutil.copytree(one_tower["image"] + "_runs", out + "_runs")
    capsys.readouterr()
    assert cli.main([*one_tower["argv"], "--out", out, "--im-wt", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was made with im_wt = 1.0, but this run has im_wt = 0.0; pass --overwrite" in err
    assert _meta(out)["im_wt"] == 1.0 and _equal(_weights(out), first)  # nothing stamped on the old weights

    # the same folder retrained with --overwrite (the fixture's `text`, a copy of the --im-wt 1 model and run)
    out = one_tower["text"]
    assert _meta(out)["im_wt"] == 0.0
    start, second = load_model("tiny").model.state_dict(), _weights(out)
    # w = 0 trains the text tower only: the vision tower is the start model's again, not the w = 1 run's
    assert _equal(_tower(second, "vision_"), _tower(start, "vision_"))
    assert not _equal(_tower(first, "vision_"), _tower(start, "vision_"))
    assert not _equal(_tower(second, "text_"), _tower(start, "text_"))
    with open(os.path.join(_meta(out)["run"], "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["attempt_start_epoch"]) for r in rows] == [("1", "0")]  # trained afresh, not resumed


def test_pretrain_with_a_view_term_is_refused_then_retrained_with_overwrite(pretrained, retrained):
    """The session's `retrained` (tests/conftest.py): the pretrained model's folder asked for a view term is
    refused and left as it was; with --overwrite it is pretrained afresh (3 epochs from the start)."""
    rc, err, kept = retrained["refused"]
    assert rc == 2 and err.count("\n") == 1
    assert "was made with view_weight = 0.0, but this run has view_weight = 0.5; pass --overwrite" in err
    assert kept == _meta(pretrained[1])  # the refused run left the folder's model as it was
    assert retrained["rc"] == 0
    meta = _meta(retrained["out"])
    assert (meta["view_weight"], meta["epochs_trained"]) == (0.5, 3)
    # the earlier run's checkpoints went with it: the 2 kept are the new run's last
    assert sorted(n for n in os.listdir(meta["run"]) if n.startswith("epoch-")) == ["epoch-0002", "epoch-0003"]
    with open(os.path.join(meta["run"], "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["attempt_start_epoch"]) for r in rows] == [("1", "0"), ("2", "0"), ("3", "0")]
    assert not _equal(_weights(retrained["out"]), _weights(pretrained[1]))
