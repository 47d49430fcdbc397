"""`ray job submit` of the jobs to a real two-node Ray cluster on this machine (a head and a second node with
their own CPUs and temp dirs, started once for this file and stopped by PID): jobs/embed_archive.py embeds an
archive; jobs/link.py --search-actors 2 --index-dir s3://… links with the lists on the local S3 server, the
parts read and placed on both nodes, the clusters those of one process.

Never `ray stop`: it would end every Ray on the machine, the test session's own included.
"""

from __future__ import annotations

import glob
import os

import pyarrow.parquet as pq
import pytest
from embed_helpers import write_archive

from clippings.cli import main
from clippings.embeddings import read_embeddings
from tests.ray_cluster import ray_cluster, submit
from tests.test_link_actors import T, _write, reprint_groups

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    """A `ray start --head` (2 CPUs) and a second node (2 CPUs) on free loopback ports, each with its own
    short temp dir; yields the Cluster."""
    with ray_cluster(head_cpus=2, worker_cpus=2) as cluster:
        yield cluster


def _ran_on(temp_dir: str, name: str) -> bool:
    """Whether a worker of the node with this temp dir ran a task or actor called `name` (Ray marks each in
    its worker's log)."""
    for path in glob.glob(os.path.join(temp_dir, "session_*", "logs", "worker-*.out")):
        with open(path, errors="replace") as f:
            text = f.read()
        if f":task_name:{name}" in text or f":actor_name:{name}" in text:
            return True
    return False


def test_ray_job_submit_embeds_an_archive(two_nodes, tmp_path):
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    ids = write_archive(archive, parts=2, rows=5)
    proc = submit(two_nodes, ["jobs/embed_archive.py", "--archive", archive, "--model", "tiny", "--out", out],
                  timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    assert "embedded: 10" in proc.stdout + proc.stderr
    emb = read_embeddings(out)
    assert sorted(emb.ids.tolist()) == sorted(ids)


def test_a_two_node_cluster_links_as_one_process(two_nodes, s3_bucket, tmp_path):
    emb = _write(str(tmp_path / "emb"), reprint_groups(12_000, 16, seed=4))
    base = ["--embeddings", emb, "--threshold", str(T), "--index", "ivf"]
    assert main(["link", *base, "--out", str(tmp_path / "one")]) == 0
    s3 = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                     "AWS_DEFAULT_REGION")}
    proc = submit(two_nodes, ["jobs/link.py", *base, "--out", str(tmp_path / "spread"),
                              "--search-actors", "2", "--index-dir", f"{s3_bucket}/index"], env=s3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    worker_dir = two_nodes.temp_dirs[1]
    assert _ran_on(worker_dir, "CellSearcher") or _ran_on(worker_dir, "place_part")
    for name in ("clusters.parquet", "mst.parquet"):
        assert pq.read_table(tmp_path / "spread" / name).equals(pq.read_table(tmp_path / "one" / name)), name
