"""The spread link's driver as n grows, on a two-node Ray cluster on this machine (a head and a second node
with their own CPUs and temp dirs: tests/ray_cluster.py), `ray job submit ... jobs/link.py --index ivf
--search-actors 2 --index-dir s3://…` with the lists on a local S3 server (moto), at each size: the job's
wall time, the driver's own CPU time beside the whole cluster's (every process of both nodes and the driver,
idle before the job), and the driver's peak memory (RSS).

    python -m bench.spread [--quick] [--sizes 100000,400000,1600000] [--dim 64]

Goal (docs/linking-at-scale.md#search-actors): the driver's share of the CPU time ≤ 10 % and its peak memory
×≤ 1.2 from the smallest size to the largest, as n grows 16×. Data: bench.link.make_data (groups of Zipf
sizes, t = 0.3), both towers the same vectors, stored as float16 in parts of 100k rows. Processes are
sampled every 50 ms (a process's CPU time is its last sample: one that ends within 50 ms of its last sample
loses that much).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import ray  # noqa: F401 - also puts its bundled psutil on the path (Sampler)

ROWS_PER_PART = 100_000


def write_embeddings(path: str, n: int, dim: int) -> None:
    """n vectors of bench.link.make_data as an embeddings dataset (float16 towers)."""
    from bench.link import make_data
    from clippings.embeddings import embeddings_table
    from clippings.storage import write_dataset

    x, _ = make_data(n, dim)
    ids = [f"c{i:09d}" for i in range(n)]
    write_dataset(embeddings_table(ids, x, x, "bench@spread", "bench", dtype="float16"), path,
                  rows_per_part=ROWS_PER_PART)


class Sampler:
    """Samples, every `every` s, the CPU time of a cluster's processes (those whose command line names one of
    `marks`, the nodes' temp dirs, and their descendants), and the RSS of the driver (its command line names
    `driver`)."""

    def __init__(self, marks: list[str], driver: str, every: float = 0.05):
        self.marks, self.driver, self.every = marks, driver, every
        self.cpu: dict[int, float] = {}
        self.start_cpu: dict[int, float] = {}
        self.driver_cpu = 0.0
        self.driver_peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[int, tuple[float, int, bool]]:
        """(CPU seconds, RSS, is the driver) of the cluster's processes (tests.ray_cluster.pids_under: each
        node's named processes and their descendants; the job's driver is a child of its supervisor)."""
        import psutil  # Ray's bundled copy: importing ray (module top) put it on the path

        from tests.ray_cluster import pids_under

        seen = {}
        for pid in set().union(*(pids_under(mark) for mark in self.marks)):
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                seen[pid] = (times.user + times.system, proc.memory_info().rss, self.driver in " ".join(proc.cmdline()))
            except psutil.Error:
                continue
        return seen

    def __enter__(self) -> Sampler:
        self.start_cpu = {pid: cpu for pid, (cpu, _, _) in self._sample().items()}
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            for pid, (cpu, rss, is_driver) in self._sample().items():
                self.cpu[pid] = cpu
                if is_driver:
                    self.driver_cpu = max(self.driver_cpu, cpu)
                    self.driver_peak = max(self.driver_peak, rss)
            time.sleep(self.every)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def total_cpu(self) -> float:
        return sum(cpu - self.start_cpu.get(pid, 0.0) for pid, cpu in self.cpu.items())


def run_size(n: int, dim: int, s3: dict, bucket: str, work: str, cpus: int) -> dict:
    """Link n rows on a fresh two-node cluster; the row of the table."""
    from tests.ray_cluster import ray_cluster, submit

    emb = os.path.join(work, f"emb-{n}")
    if not os.path.exists(emb):
        write_embeddings(emb, n, dim)
    out = os.path.join(work, f"links-{n}")
    with ray_cluster(head_cpus=cpus, worker_cpus=cpus) as cluster:
        args = ["jobs/link.py", "--embeddings", emb, "--out", out, "--threshold", "0.3", "--index", "ivf",
                "--search-actors", "2", "--index-dir", f"{bucket}/index-{n}"]
        with Sampler(cluster.temp_dirs, "jobs/link.py") as sampler:
            start = time.perf_counter()
            proc = submit(cluster, args, timeout=3600, env=s3)
            wall = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    total = sampler.total_cpu()
    return {"n": n, "wall_s": wall, "driver_cpu_s": sampler.driver_cpu, "cluster_cpu_s": total,
            "driver_share": sampler.driver_cpu / max(total, 1e-9), "driver_peak_mb": sampler.driver_peak / 2**20}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spread", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k and 80k rows")
    parser.add_argument("--sizes", default="100000,400000,1600000")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs of each of the two nodes")
    args = parser.parse_args(argv)
    sizes = [20_000, 80_000] if args.quick else [int(s) for s in args.sizes.split(",")]

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from tests.ray_cluster import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
          "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(s3)
    boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"]).create_bucket(Bucket="bench-spread")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spread-") as work:
            for n in sizes:
                rows.append(run_size(n, args.dim, s3, "s3://bench-spread", work, args.cpus))
                print(f"  {n}: done in {rows[-1]['wall_s']:.1f} s", flush=True)
    finally:
        server.stop()
    print(f"\nspread link on a two-node cluster ({args.cpus} CPU each), d = {args.dim}, lists on local S3; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| rows | wall s | driver CPU s | cluster CPU s | driver share | driver peak MB | × peak of the first |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['n']:,} | {row['wall_s']:.1f} | {row['driver_cpu_s']:.1f} | {row['cluster_cpu_s']:.1f} | "
              f"{100 * row['driver_share']:.1f} % | {row['driver_peak_mb']:.0f} | "
              f"{row['driver_peak_mb'] / rows[0]['driver_peak_mb']:.2f} |")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
