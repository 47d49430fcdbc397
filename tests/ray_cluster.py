"""Real Ray clusters on this machine for tests and benches: a `ray start --head` on free loopback ports with
its own short temp dir, optionally a second node (`ray start --address`) with its own CPUs and temp dir, and
`ray job submit` to it. Stopped by PID, never by `ray stop` (which would end every Ray on the machine, a
test session's own included: platform.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
JOB_EXCLUDES = [".venv", ".git", "tests", "bench", "docs", "*.egg-info", "demo_out", "**/__pycache__"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(nodes: int = 1) -> dict[str, str]:
    """The environment of `ray start` and `ray job submit` here: no token, this venv's python, and for one node
    loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which also refuses a second node: a cluster of two
    binds to this machine's network address, as a real one does)."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0" if nodes == 1 else "1")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")  # the job's `python` is this venv's
    env.pop("RAY_ADDRESS", None)
    return env


def pids_under(temp_dir: str) -> list[int]:
    """PIDs of this node's processes: those whose command line names its temp dir (raylet, GCS, dashboard)
    and all their descendants (workers and agents retitle themselves `ray::…`, so their command lines no
    longer do)."""
    parent, named = {}, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if temp_dir.encode() in f.read():
                    named.append(int(entry))
            with open(f"/proc/{entry}/stat") as f:
                parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    family, frontier = set(named), list(named)
    while frontier:
        pid = frontier.pop()
        children = [child for child, ppid in parent.items() if ppid == pid and child not in family]
        family.update(children)
        frontier.extend(children)
    return sorted(family)


def stop_node(temp_dir: str) -> None:
    """Stop a node by its processes' PIDs (found once, before any dies: a killed raylet's children would be
    handed to init and no longer be found as its descendants)."""
    family = pids_under(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in family:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while any(os.path.exists(f"/proc/{pid}") for pid in family) and time.monotonic() < deadline:
            time.sleep(0.2)


@dataclass
class Cluster:
    """A started cluster: its dashboard URL (for `ray job submit`), GCS address and nodes' temp dirs."""

    dashboard: str
    address: str
    temp_dirs: list[str]
    env: dict[str, str]


def _ports(head: bool) -> list[str]:
    flags = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
             "--runtime-env-agent-port", "--node-manager-port", "--object-manager-port"]
    if head:
        flags += ["--ray-client-server-port"]
    return [arg for flag in flags for arg in (flag, str(free_port()))]


@contextmanager
def ray_cluster(head_cpus: float = 2, worker_cpus: float | None = None, object_store_gb: float = 1.0
                ) -> Iterator[Cluster]:
    """A head with `head_cpus` CPUs and, when `worker_cpus` is given, a second node joined to it; each node's
    object store capped at `object_store_gb` (Ray's default, 30 % of the memory, is per node)."""
    store = ["--object-store-memory", str(int(object_store_gb * 2**30))]
    head_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    dirs = [head_dir]
    dash, gcs = free_port(), free_port()
    cmd = [os.path.join(BIN, "ray"), "start", "--head", "--num-cpus", str(head_cpus), "--dashboard-host",
           "127.0.0.1", "--include-dashboard", "true", "--temp-dir", head_dir, "--disable-usage-stats",
           "--port", str(gcs), "--dashboard-port", str(dash), *store, *_ports(head=True)]
    env = ray_env(1 if worker_cpus is None else 2)
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        address = f"127.0.0.1:{gcs}"
        if worker_cpus is not None:
            worker_dir = tempfile.mkdtemp(prefix="rw", dir="/tmp")
            dirs.append(worker_dir)
            subprocess.run([os.path.join(BIN, "ray"), "start", "--address", address, "--num-cpus", str(worker_cpus),
                            "--temp-dir", worker_dir, "--disable-usage-stats", *store, *_ports(head=False)],
                           env=env, check=True, capture_output=True, timeout=120)
        yield Cluster(f"http://127.0.0.1:{dash}", address, dirs, env)
    finally:
        for temp_dir in reversed(dirs):
            stop_node(temp_dir)


def submit(cluster: Cluster, args: list[str], timeout: float = 600, env: dict | None = None
           ) -> subprocess.CompletedProcess:
    """`ray job submit` of `python ARGS` from this repository (its working dir); retried while the head
    answers "No available agent" (the first seconds after `ray start`)."""
    runtime_env = {"working_dir": REPO, "excludes": JOB_EXCLUDES, **({"env_vars": env} if env else {})}
    cmd = [os.path.join(BIN, "ray"), "job", "submit", "--address", cluster.dashboard,
           "--runtime-env-json", json.dumps(runtime_env), "--", "python", *args]
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0 or "No available agent" not in proc.stdout + proc.stderr \
                or time.monotonic() > deadline:
            return proc
        time.sleep(2)
