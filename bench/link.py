"""Exact single linkage vs DBSCAN(min_samples=1, metric='cosine'), and the one-sweep ARI curve vs the
reference tuning protocol (one clustering per candidate threshold), measured side by side in one run.

    python -m bench.link [--quick] [--big N] [--sizes 10000,50000]

Data: clustered unit vectors with a heavy tail of group sizes (Zipf, capped at 400: many groups larger than
k = 20), members at cosine distance ~0.1 from each other, groups ~1 apart; t = 0.3. Each method runs in its
own subprocess; time is wall-clock, memory is the peak RSS (ru_maxrss) less the RSS after the imports
(faiss, scipy, sklearn) and the data load (the same baseline for every method). The machine's load average
is printed with the table: on a shared machine every time is inflated alike. Clusters of every method
are checked equal to DBSCAN's (ARI = 1.0 asserted). Sizes: 10k and 50k at d = 512 (--quick: 2k and 5k); ours alone on --big N vectors at
d = 256 with the IVF index, recall of within-t pairs measured on a sample (default 1M; 0 skips).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

THRESHOLD = 0.3


def make_data(n: int, dim: int, seed: int = 0, noise: float = 0.33) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in groups of Zipf(1.8) sizes (≤ 400) around random centres; returns (x, group)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(1.8, size=n), 400)  # more than enough groups; keep those covering n
    last = int(np.searchsorted(np.cumsum(sizes), n))
    sizes = sizes[: last + 1]
    sizes[-1] -= int(sizes.sum()) - n
    group = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.normal(size=(len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, dim), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(dim))
    for start in range(0, n, 65536):  # in chunks: no float64 n × d temporary
        rows = group[start : start + 65536]
        x[start : start + len(rows)] = centres[rows] + scale * rng.standard_normal(
            (len(rows), dim), np.float32
        )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, group


def _worker(method: str, data: str, out: str) -> None:
    """Run one method on the saved vectors; write labels and a JSON record (seconds, extra peak RSS)."""
    import faiss  # noqa: F401 - imported before the baseline, like sklearn for DBSCAN
    from scipy.sparse.csgraph import connected_components  # noqa: F401 - imported before the baseline
    from sklearn.cluster import DBSCAN

    from clippings.link.knn import knn_graph
    from clippings.link.slink import components, mst_from_graph
    from clippings.link.tune import ari_curve

    x = np.load(data)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    record: dict = {}
    if method == "dbscan":
        labels = DBSCAN(eps=THRESHOLD, min_samples=1, metric="cosine").fit(x).labels_
    else:
        index = {"ours-flat": "flat", "ours-pruned": "pruned", "ours-ivf": "ivf"}[method]
        graph = knn_graph(x, k=20, threshold=THRESHOLD, index=index, recall_sample=1000)
        mst = mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)
        labels = components(mst, THRESHOLD)
        record.update(recall=graph.recall, exact_up_to=graph.exact_up_to, stats=graph.stats)
        if method == "ours-flat":  # the whole exact ARI curve, against the groups as labels
            t0 = time.perf_counter()
            group = np.load(data.replace(".npy", "-groups.npy"))
            thresholds, _ = ari_curve(mst, group, max_threshold=graph.exact_up_to)
            record.update(curve_s=time.perf_counter() - t0, curve_points=len(thresholds))
    record["seconds"] = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record.update(peak_extra_mb=(peak - base) / 1024, peak_total_mb=peak / 1024, load=os.getloadavg()[0])
    np.save(out + ".npy", labels)
    with open(out + ".json", "w") as f:
        json.dump(record, f, default=float)


def _run(method: str, data: str, tmp: str, timeout: float) -> tuple[dict, np.ndarray]:
    out = os.path.join(tmp, method)
    subprocess.run(
        [sys.executable, "-m", "bench.link", "--worker", method, "--data", data, "--out", out],
        check=True,
        timeout=timeout,
    )
    with open(out + ".json") as f:
        return json.load(f), np.load(out + ".npy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k and 5k points, no big run")
    parser.add_argument("--big", type=int, default=1_000_000, help="size of the IVF run at d=256 (0: skip)")
    parser.add_argument(
        "--sizes",
        default="10000,50000",
        help="sizes compared with DBSCAN at d=512 ('': none; --quick: 2000,5000)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.data, args.out)
        return 0
    from sklearn.metrics import adjusted_rand_score

    sizes = (2_000, 5_000) if args.quick else tuple(int(v) for v in args.sizes.split(",") if v)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            x, group = make_data(n, 512, seed=n)
            data = os.path.join(tmp, f"x{n}.npy")
            np.save(data, x)
            np.save(data.replace(".npy", "-groups.npy"), group)
            ref, ref_labels = _run("dbscan", data, tmp, 3600)
            for method in ("ours-flat", "ours-pruned"):
                rec, labels = _run(method, data, tmp, 3600)
                ari = adjusted_rand_score(ref_labels, labels)
                assert ari == 1.0, f"{method} at n={n}: ARI {ari} against DBSCAN"
                rows.append((n, method, rec, ref))
                if method == "ours-flat":
                    protocol = 100_000 * ref["seconds"]
                    rows.append(
                        (
                            n,
                            "tune curve",
                            {
                                "seconds": rec["curve_s"],
                                "peak_extra_mb": float("nan"),
                                "points": rec["curve_points"],
                            },
                            {"seconds": protocol},
                        )
                    )
        print(
            f"\nsingle linkage at t={THRESHOLD} (d=512), vs DBSCAN(min_samples=1, cosine); "
            f"ARI vs DBSCAN = 1.0; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"{'n':>8} {'method':<12} {'ours s':>9} {'ref s':>10} {'time ratio':>11} {'ours MB':>8} "
            f"{'ref MB':>8} {'mem ratio':>9}"
        )
        for n, method, rec, ref in rows:
            ref_mb = ref.get("peak_extra_mb", float("nan"))
            print(
                f"{n:>8} {method:<12} {rec['seconds']:>9.2f} {ref['seconds']:>10.1f} "
                f"{ref['seconds'] / rec['seconds']:>10.1f}x {rec['peak_extra_mb']:>8.0f} {ref_mb:>8.0f} "
                f"{ref_mb / max(rec['peak_extra_mb'], 1):>8.1f}x"
            )
        print("tune curve: ref = one DBSCAN run × 100,000 candidate thresholds (the reference protocol)")
        for n, method, rec, _ in rows:
            if "stats" in rec:
                stats = {key: v for key, v in rec["stats"].items() if key not in ("k",)}
                print(f"  {n:>8} {method:<12} load {rec['load']:.1f} {stats}")
        if args.big and not args.quick:
            x, _ = make_data(args.big, 256, seed=1)
            data = os.path.join(tmp, "big.npy")
            np.save(data, x)
            del x
            rec, labels = _run("ours-ivf", data, tmp, 3600)
            stats = rec["stats"]
            print(
                f"\nours, IVF (nlist {stats['nlist']}, nprobe {stats['nprobe']}), n={args.big:,} d=256: "
                f"{rec['seconds']:.1f} s, peak RSS {rec['peak_total_mb']:.0f} MB (extra "
                f"{rec['peak_extra_mb']:.0f} MB), recall of within-t pairs {rec['recall']:.4f} (sample of "
                f"1000 points vs exact search), {len(np.unique(labels)):,} clusters, load {rec['load']:.1f}"
            )
            print(f"  timings {stats['timings']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
