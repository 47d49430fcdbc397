"""Benchmarks: each module `bench/<name>.py` has `main(argv)` and prints a table of ratios measured side by side."""
