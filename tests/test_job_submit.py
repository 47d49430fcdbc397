"""`ray job submit` of jobs/embed_archive.py to a real local head started for this test (and stopped by PID).

Never `ray stop`: it would end every Ray on the machine, the test session's own included.
"""

from __future__ import annotations

import pytest
from embed_helpers import write_archive

from clippings.embeddings import read_embeddings
from tests.ray_cluster import ray_cluster, submit


@pytest.fixture
def ray_head():
    """A `ray start --head` (2 CPUs) on free loopback ports with its own short temp dir; yields the Cluster."""
    with ray_cluster(head_cpus=2) as cluster:
        yield cluster


@pytest.mark.slow
def test_ray_job_submit_embeds_an_archive(ray_head, tmp_path):
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    ids = write_archive(archive, parts=2, rows=5)
    proc = submit(ray_head, ["jobs/embed_archive.py", "--archive", archive, "--model", "tiny", "--out", out],
                  timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    assert "embedded: 10" in proc.stdout + proc.stderr
    emb = read_embeddings(out)
    assert sorted(emb.ids.tolist()) == sorted(ids)
