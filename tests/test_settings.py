"""Re-runs into an earlier output resume only work recorded with the same settings (issue #31): the comparison,
the run folder's claim (local and s3://), and the train/pretrain refusals and --overwrite before any fit."""

from __future__ import annotations

import json
import os

import pytest

from clippings import cli
from clippings.errors import BadInput
from clippings.settings import check_settings, dataset_fingerprint, first_difference, read_settings
from clippings.train.fit import claim_run


def test_first_difference_names_the_innermost_setting_in_order():
    recorded = {"lr": 0.001, "archive": {"path": "/a", "parts": {"part-00000.parquet": 10, "part-00001.parquet": 9}}}
    assert first_difference(recorded, {**recorded, "new_flag": None})[::2] == ("new_flag", None)
    changed = {"lr": 0.001, "archive": {"path": "/a", "parts": {"part-00000.parquet": 11}}}
    assert first_difference(recorded, changed) == ("archive.parts.part-00000.parquet", 10, 11)
    shrunk = {"lr": 0.001, "archive": {"path": "/a", "parts": {"part-00000.parquet": 10}}}
    key, was, _ = first_difference(recorded, shrunk)  # a part only the record has still differs
    assert (key, was) == ("archive.parts.part-00001.parquet", 9)
    assert first_difference({"prefixes": ["/x"], "lr": 1}, {"prefixes": ("/x",), "lr": 1.0}) is None  # as JSON


def test_check_settings_is_one_line_with_both_values_and_the_fix():
    with pytest.raises(BadInput) as e:
        check_settings({"im_wt": 1.0, "seed": 0}, {"im_wt": 0.0, "seed": 0}, "train: run /r/train", "--out")
    assert str(e.value) == ("train: run /r/train was made with im_wt = 1.0, but this run has im_wt = 0.0; pass "
                            "--overwrite to start afresh, or use another --out")
    with pytest.raises(BadInput, match=r"^x holds earlier work but no record of its settings .*--overwrite"):
        check_settings(None, {"seed": 0}, "x", "--out")
    with pytest.raises(BadInput, match=r"dtype = \(nothing recorded\), but this run has dtype = 'float32'"):
        check_settings({"seed": 0}, {"seed": 0, "dtype": "float32"}, "x", "--out")


def test_dataset_fingerprint_is_part_names_and_sizes(tmp_path):
    from embed_helpers import write_archive

    archive = str(tmp_path / "a")
    write_archive(archive, parts=2, rows=2)
    found = dataset_fingerprint(archive, "archive")
    assert found["path"] == archive and sorted(found["parts"]) == ["part-00000.parquet", "part-00001.parquet"]
    assert found["parts"]["part-00000.parquet"] == os.path.getsize(os.path.join(archive, "part-00000.parquet"))
    with pytest.raises(BadInput, match=r"^val .*: folder not found"):
        dataset_fingerprint(str(tmp_path / "missing"), "val")


def _fake_checkpoint(run_path: str) -> None:
    os.makedirs(os.path.join(run_path, "epoch-0001"))
    open(os.path.join(run_path, "epoch-0001", "state.json"), "w").write("{}")


def test_claim_run_refuses_other_settings_only_where_work_was_done(tmp_path):
    run = str(tmp_path / "runs" / "train")
    claim_run(run, "train", {"seed": 0}, overwrite=False)
    claim_run(run, "train", {"seed": 1}, overwrite=False)  # no checkpoint yet: nothing computed, record replaced
    assert read_settings(run) == {"seed": 1}
    _fake_checkpoint(run)
    claim_run(run, "train", {"seed": 1}, overwrite=False)  # the same settings resume
    with pytest.raises(BadInput, match=r"^train: run .* was made with seed = 1, but this run has seed = 2; "):
        claim_run(run, "train", {"seed": 2}, overwrite=False)
    claim_run(run, "train", {"seed": 2}, overwrite=True)
    assert read_settings(run) == {"seed": 2} and not os.path.exists(os.path.join(run, "epoch-0001"))
    os.remove(os.path.join(run, "settings.json"))
    _fake_checkpoint(run)  # checkpoints without a record: made by an older clippings
    with pytest.raises(BadInput, match="no record of its settings"):
        claim_run(run, "train", {"seed": 2}, overwrite=False)


def test_claim_run_on_s3_refuses_and_overwrites(s3_bucket):
    from clippings.storage import exists, write_bytes_atomic

    run = f"{s3_bucket}/m_runs/pretrain"
    claim_run(run, "pretrain", {"lr": 0.001}, overwrite=False)
    write_bytes_atomic(f"{run}/epoch-0001/state.json", b"{}")  # as Ray Train would, behind s3fs's cache
    with pytest.raises(BadInput, match=r"was made with lr = 0\.001, but this run has lr = 0\.01"):
        claim_run(run, "pretrain", {"lr": 0.01}, overwrite=False)
    claim_run(run, "pretrain", {"lr": 0.01}, overwrite=True)
    assert not exists(f"{run}/epoch-0001/state.json") and read_settings(run) == {"lr": 0.01}


class _Stop(Exception):
    """Raised by a stub of the first step after the run is claimed: these tests need no Ray and no fit."""


def _stop(*args, **kwargs):
    raise _Stop


def _train(archives: dict, out: str, *flags: str) -> int:
    return cli.main(["train", "--archive", archives["train"], "--val", archives["val"], "--out", out,
                     "--model", "tiny", "--epochs", "1", *flags])


def test_train_with_another_im_wt_is_refused_before_any_work(train_archives, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("clippings.raylocal.init_ray", _stop)  # the claim comes before Ray starts
    out = str(tmp_path / "model")
    run = out + "_runs/train"
    with pytest.raises(_Stop):
        _train(train_archives, out, "--im-wt", "1")
    recorded = read_settings(run)
    assert recorded["im_wt"] == 1.0 and recorded["archive"] == dataset_fingerprint(train_archives["train"])
    _fake_checkpoint(run)
    with pytest.raises(_Stop):  # the workers and --gpu do not count: the run resumes
        _train(train_archives, out, "--im-wt", "1", "--workers", "2", "--groups-per-step", "8")
    capsys.readouterr()
    assert _train(train_archives, out, "--im-wt", "0") == 2
    assert capsys.readouterr().err == (
        f"clippings train: error: train: run {run} was made with im_wt = 1.0, but this run has im_wt = 0.0; pass "
        "--overwrite to start afresh, or use another --out or --run-dir\n")
    assert _train(train_archives, out, "--im-wt", "1", "--workers", "3") == 2  # 8 groups per step become 9
    assert "was made with groups_per_step = 8, but this run has groups_per_step = 9" in capsys.readouterr().err
    with pytest.raises(_Stop):
        _train(train_archives, out, "--im-wt", "0", "--overwrite")
    assert read_settings(run)["im_wt"] == 0.0 and not os.path.exists(os.path.join(run, "epoch-0001"))


def test_pretrain_with_another_seed_or_lanes_is_refused_before_any_work(train_archives, tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setattr("clippings.train.pretrain.pretraining_plan", _stop)
    out = str(tmp_path / "model")
    run = out + "_runs/pretrain"
    argv = ["pretrain", "--archive", train_archives["unlabelled"], "--out", out, "--epochs", "2"]
    with pytest.raises(_Stop):
        cli.main([*argv, "--workers", "2"])
    _fake_checkpoint(run)
    with pytest.raises(_Stop):  # 1, 2 or 4 workers stream the same 4 lanes
        cli.main([*argv, "--workers", "4"])
    capsys.readouterr()
    assert cli.main([*argv, "--seed", "4"]) == 2
    assert capsys.readouterr().err == (
        f"clippings pretrain: error: pretrain: run {run} was made with seed = 0, but this run has seed = 4; pass "
        "--overwrite to start afresh, or use another --out or --run-dir\n")
    assert cli.main([*argv, "--workers", "3"]) == 2
    assert "was made with lanes = 4, but this run has lanes = 6" in capsys.readouterr().err
    with pytest.raises(_Stop):
        cli.main([*argv, "--seed", "4", "--overwrite"])
    assert json.loads(open(os.path.join(run, "settings.json")).read())["seed"] == 4
