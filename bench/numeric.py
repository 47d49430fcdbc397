"""Deduplicating integer keys: np.unique beside clippings.numeric.unique_ints (one sort), side by side.

    python -m bench.numeric [--quick]

Keys are random int64 with few (100) or many (up to 2^40) distinct values, 1M and 8M of them (`--quick`:
1M only); both results are asserted equal. The machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.numeric")
    parser.add_argument("--quick", action="store_true", help="1M keys only")
    args = parser.parse_args(argv)
    from clippings.numeric import unique_ints

    print(f"load before: {os.getloadavg()[0]:.2f}; numpy {np.__version__}")
    print("| keys | distinct | np.unique s | unique_ints s | ratio |\n|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n in (1_000_000,) if args.quick else (1_000_000, 8_000_000):
        for distinct, high in (("few (100)", 100), ("many", 2**40)):
            keys = rng.integers(0, high, n)
            start = time.perf_counter()
            expected = np.unique(keys)
            numpy_s = time.perf_counter() - start
            start = time.perf_counter()
            got = unique_ints(keys)
            ours_s = time.perf_counter() - start
            assert np.array_equal(got, expected)
            print(f"| {n:,} | {distinct} | {numpy_s:.2f} | {ours_s:.2f} | {numpy_s / ours_s:.1f}× |")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
