"""Run every benchmark module in `bench/` in turn: `python -m bench [--quick]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    quick = ["--quick"] if "--quick" in argv else []
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    failed = []
    for name in names:
        print(f"\n=== bench.{name} {' '.join(quick)}", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main(list(quick))
        except Exception as e:  # one broken benchmark must not hide the others' tables
            print(f"bench.{name} failed: {type(e).__name__}: {e}")
            failed.append(name)
        print(f"=== bench.{name}: {time.perf_counter() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
