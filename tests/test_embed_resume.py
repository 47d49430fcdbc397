"""Kill the embed driver mid-job with SIGKILL, re-run, and check: complete, no duplicates, no recompute."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from embed_helpers import write_archive

from clippings import cli
from clippings.archive import read_quarantine
from clippings.embeddings import read_embeddings
from clippings.storage import part_name

PARTS, ROWS = 12, 4


SLOW_CALLS = """
import importlib.abc, importlib.util, sys, time


class SlowEmbedCalls(importlib.abc.MetaPathFinder):
    # Once clippings.embed is imported, each call of its batch embedder sleeps first.
    def find_spec(self, name, path, target=None):
        if name != "clippings.embed":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            call = module._Embedder.__call__

            def slow(self, batch):
                time.sleep(DELAY)
                return call(self, batch)

            module._Embedder.__call__ = slow

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, SlowEmbedCalls())
"""


def _slow_model_calls(tmp_path, seconds: float) -> str:
    """A folder whose sitecustomize makes every process that imports it (the driver and, through the
    inherited PYTHONPATH, its Ray workers) sleep `seconds` before each model call: a fault-injection hook
    that lives in the test, not in the product."""
    folder = tmp_path / "slow_calls"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"DELAY = {seconds}\n" + SLOW_CALLS)
    return str(folder)


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """`clippings --verbose embed` in a fresh process (its own local Ray), its model calls slowed, killed with
    SIGKILL (it and its Ray) once a part is finished: {"archive", "out", "ids", "before": the finished parts'
    markers and their mtimes, "output": what it printed}."""
    tmp_path = tmp_path_factory.mktemp("embed_resume")
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    ids = write_archive(archive, parts=PARTS, rows=ROWS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_slow_model_calls(tmp_path, 0.5),
                                                                   os.environ.get("PYTHONPATH")])))
    env.pop("RAY_ADDRESS", None)
    env.pop("CLIPPINGS_VERBOSE", None)
    output = tmp_path / "output.txt"
    with open(output, "w") as printed:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clippings.cli", "--verbose", "embed", "--archive", archive, "--model", "tiny",
             "--out", out, "--batch-size", str(ROWS)],
            env=env, stdout=printed, stderr=subprocess.STDOUT, start_new_session=True,
        )
        done_dir = os.path.join(out, "_done")
        deadline = time.monotonic() + 300  # a loaded 2-core machine has taken over 120 s to start Ray and embed a part
        try:
            while time.monotonic() < deadline and not (os.path.isdir(done_dir) and os.listdir(done_dir)):
                assert proc.poll() is None, "the embed job ended before any part was finished"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray, all in the session we started
        finally:
            proc.wait(timeout=60)
    assert os.path.isdir(done_dir), "no part was finished before the deadline: the kill did not land mid-job"
    before = {n: os.stat(os.path.join(done_dir, n)).st_mtime_ns for n in os.listdir(done_dir)}
    return {"archive": archive, "out": out, "ids": ids, "before": before, "output": output.read_text()}


def test_verbose_brings_rays_own_lines_back_to_the_console(killed):
    """--verbose: Ray Data's own lines come to the console (without it they go to the log file alone:
    tests/test_demo.py, tests/test_link_actors.py)."""
    assert "Starting execution of Dataset" in killed["output"], killed["output"][-3000:]


def test_sigkill_mid_job_then_resume(ray_local, killed):
    archive, out, ids, before = killed["archive"], killed["out"], killed["ids"], killed["before"]
    done_dir = os.path.join(out, "_done")
    finished = [json.load(open(os.path.join(done_dir, n)))["shard"] for n in before]
    parts_before = {s: os.stat(os.path.join(out, s)).st_mtime_ns for s in finished}
    assert 1 <= len(before) < PARTS, "the kill must land mid-job"

    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", out, "--batch-size", "3"]) == 0
    after = {n: os.stat(os.path.join(done_dir, n)).st_mtime_ns for n in os.listdir(done_dir)}
    assert len(after) == PARTS
    assert {n: after[n] for n in before} == before  # finished parts were not recomputed
    assert {s: os.stat(os.path.join(out, s)).st_mtime_ns for s in finished} == parts_before
    emb = read_embeddings(out)  # refuses duplicate ids and mixed fingerprints
    assert sorted(emb.ids.tolist()) == sorted(ids) and read_quarantine(out).num_rows == 0
    assert sorted(p for p in os.listdir(out) if p.startswith("part-")) == [part_name(i) for i in range(PARTS)]
    log = open(os.path.join(out, "embed.log")).read()
    assert f"resuming: {len(before)} of {PARTS} parts already embedded" in log
