"""Checkpoints and resume: a Ray Train worker killed with SIGKILL mid-run, re-running a finished run, and a
corrupt checkpoint folder."""

from __future__ import annotations

import csv
import glob
import os
import signal
import threading
import time

import pytest

from clippings import cli

pytestmark = pytest.mark.slow  # one Ray Train fit with a worker restart


@pytest.fixture(scope="module")
def killed_run(train_archives, ray_local, tmp_path_factory):
    """Pretrain 3 epochs on 2 workers; SIGKILL rank 1 once Ray Train has registered epoch 1's checkpoint
    (its controller lists it in checkpoint_manager_snapshot.json; a folder it has not registered yet is not
    what `get_checkpoint()` returns after the restart)."""
    from train_helpers import make_archive

    root = tmp_path_factory.mktemp("resume")
    archive = make_archive(str(root / "archive"), 200, 3, seed=7, labelled=False)  # ~2 s per epoch
    out, run_dir = str(root / "model"), str(root / "runs")
    run_path = os.path.join(run_dir, "pretrain")
    killed: dict = {}

    def killer() -> None:
        deadline = time.time() + 240
        snapshot = os.path.join(run_path, "checkpoint_manager_snapshot.json")
        while time.time() < deadline and not (os.path.exists(snapshot) and "epoch-0001" in open(snapshot).read()):
            time.sleep(0.05)
        pid = int(open(os.path.join(run_path, "pids", "rank-1.pid")).read())
        os.kill(pid, signal.SIGKILL)  # raises if the worker is already gone: then the test proves nothing
        killed["pid"] = pid

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    args = ["pretrain", "--archive", archive, "--out", out, "--workers", "2", "--epochs", "3",
            "--batch-size", "64", "--run-dir", run_dir]
    rc = cli.main(args)
    thread.join(timeout=5)
    return {"rc": rc, "killed": killed, "run_path": run_path, "out": out, "args": args}


def test_killed_worker_resumes_from_last_checkpoint(killed_run):
    from transformers import CLIPModel

    assert killed_run["rc"] == 0 and "pid" in killed_run["killed"]
    with open(os.path.join(killed_run["run_path"], "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # no epoch lost, none repeated
    starts = [int(r["attempt_start_epoch"]) for r in rows]
    assert starts[0] == 0 and starts[-1] >= 1  # the restarted group resumed after epoch >= 1, not from 0
    new_pid = int(open(os.path.join(killed_run["run_path"], "pids", "rank-1.pid")).read())
    assert new_pid != killed_run["killed"]["pid"]
    CLIPModel.from_pretrained(killed_run["out"])


def test_rerun_of_a_finished_run_does_not_retrain(killed_run, capsys):
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(killed_run["run_path"], "epoch-*", "*"))}
    began = time.time()
    assert cli.main(killed_run["args"]) == 0
    assert time.time() - began < 15  # no Ray Train start-up
    assert "already holds epoch 3; not retraining" in capsys.readouterr().err
    after = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(killed_run["run_path"], "epoch-*", "*"))}
    assert after == before


@pytest.mark.parametrize("damage", ["model.safetensors", "state.json"])
def test_corrupt_checkpoint_is_one_line_exit_2(killed_run, tmp_path, capsys, damage):
    import shutil

    run_dir = str(tmp_path / "runs")
    shutil.copytree(os.path.dirname(killed_run["run_path"]), run_dir)
    latest = os.path.join(run_dir, "pretrain", "epoch-0003")
    with open(os.path.join(latest, damage), "r+b") as f:
        f.truncate(10)
    args = list(killed_run["args"])
    args[args.index("--run-dir") + 1] = run_dir
    assert cli.main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"clippings pretrain: error: checkpoint {latest}: {damage} is missing or corrupt "
        f"({'SafetensorError' if damage.endswith('safetensors') else 'JSONDecodeError'}); delete the "
        "checkpoint folder to resume from the one before, or use a new --run-dir")
