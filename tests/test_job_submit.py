"""`ray job submit` of jobs/embed_archive.py to a real local head started for this test (and stopped by PID).

Never `ray stop`: it would end every Ray on the machine, the test session's own included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import free_port
from embed_helpers import write_archive

from clippings.embeddings import read_embeddings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _ray_env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")  # the job's `python` is this venv's
    env.pop("RAY_ADDRESS", None)
    return env


def _pids_under(temp_dir: str) -> list[int]:
    """PIDs of processes whose command line names this head's temp dir (its raylet, GCS, dashboard, workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if temp_dir.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _stop_head(temp_dir: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_under(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while _pids_under(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture
def ray_head():
    """A `ray start --head` on free loopback ports with its own short temp dir; yields the dashboard URL."""
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    dash = free_port()
    ports = {"--port": free_port(), "--dashboard-port": dash, "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(), "--metrics-export-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--ray-client-server-port": free_port()}
    cmd = [os.path.join(BIN, "ray"), "start", "--head", "--num-cpus", "2", "--dashboard-host", "127.0.0.1",
           "--include-dashboard", "true", "--temp-dir", temp_dir, "--disable-usage-stats"]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    subprocess.run(cmd, env=_ray_env(), check=True, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dash}"
    finally:
        _stop_head(temp_dir)


@pytest.mark.slow
def test_ray_job_submit_embeds_an_archive(ray_head, tmp_path):
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    ids = write_archive(archive, parts=2, rows=5)
    runtime_env = {"working_dir": REPO,
                   "excludes": [".venv", ".git", "tests", "bench", "docs", "*.egg-info", "demo_out", "**/__pycache__"]}
    cmd = [os.path.join(BIN, "ray"), "job", "submit", "--address", ray_head,
           "--runtime-env-json", json.dumps(runtime_env), "--",
           "python", "jobs/embed_archive.py", "--archive", archive, "--model", "tiny", "--out", out]
    deadline = time.monotonic() + 60
    while True:  # right after `ray start` the head may answer "No available agent" for a few seconds
        proc = subprocess.run(cmd, env=_ray_env(), capture_output=True, text=True, timeout=400)
        if proc.returncode == 0 or "No available agent" not in proc.stdout + proc.stderr \
                or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    assert "embedded: 10" in proc.stdout + proc.stderr
    emb = read_embeddings(out)
    assert sorted(emb.ids.tolist()) == sorted(ids)
