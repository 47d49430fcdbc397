"""The real console script in a fresh process (its own local Ray), and the rules for what it may print."""

from __future__ import annotations

import os
import re
import subprocess
import sys

# a line a person should never see on a run that succeeded
ALARM = re.compile(r"Failed|Error|Traceback")


def console_env() -> dict[str, str]:
    """The environment of a fresh console script: the suite's settings, without its Ray address or
    --verbose, and this interpreter's import path (the tests' own helpers included)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLIPPINGS_VERBOSE", "RAY_ADDRESS")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PYTHONPATH=os.pathsep.join(sys.path))
    return env


def run_clippings(*argv: str, cwd: str, timeout: float = 900) -> list[str]:
    """Run `clippings ARGV` in a fresh process, stdout and stderr together (not a terminal); check that it
    exited 0 and return its lines."""
    proc = subprocess.run([sys.executable, "-m", "clippings.cli", *argv], cwd=cwd, env=console_env(),
                          timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout.splitlines()


def assert_quiet_about_ray(lines: list[str]) -> None:
    """No alarm, and none of Ray's own lines: its C++ logs (fd 2) and Ray Data's execution lines belong in
    the log files."""
    text = "\n".join(lines)
    assert not [line for line in lines if ALARM.search(line)], text
    assert not [line for line in lines if "core_worker.cc" in line], text
    assert not [line for line in lines if "Starting execution of Dataset" in line], text
