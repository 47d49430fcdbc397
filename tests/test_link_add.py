"""`clippings link --add`: a batch linked into an existing linking equals linking everything from scratch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.link.store import staged_folder
from clippings.storage import write_dataset
from tests.link_helpers import reference_clusters, same_partition, sign_vectors

T = 3 / 32


def _write(path: str, ids: np.ndarray, x: np.ndarray, fingerprint: str = "tiny@abc") -> str:
    write_dataset(embeddings_table(ids.tolist(), x, x, fingerprint, "tiny"), path, rows_per_part=70)
    return path


def _batches(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(ids, vectors, rows of A, B, C): ids shuffled so each batch holds small and large ids; B and C hold
    exact duplicates of A and B rows (d = 0 across batches)."""
    x = sign_vectors(n, groups=n // 10, flip=0.04, seed=seed, duplicates=0)
    a, b = int(0.7 * n), int(0.9 * n)
    rng = np.random.default_rng(seed)
    x[a : a + 3] = x[rng.integers(0, a, 3)]
    x[b : b + 3] = x[rng.integers(a, b, 3)]
    x[n - 3 :] = x[rng.integers(0, a, 3)]
    ids = np.array([f"c{i:05d}" for i in rng.permutation(n)], dtype=object)
    return ids, x, [np.arange(0, a), np.arange(a, b), np.arange(b, n)]


def _clusters(links: str) -> dict[str, str]:
    table = pq.read_table(os.path.join(links, "clusters.parquet"))
    return dict(zip(table["clipping_id"].to_pylist(), table["cluster_id"].to_pylist(), strict=True))


def _expected_changes(before: dict[str, str], after: dict[str, str]) -> list[dict]:
    """changes.parquet by brute force: every cluster holding a new clipping, with the old ids it absorbed."""
    rows = []
    for cid in sorted({after[i] for i in after if i not in before}):
        members = [i for i in after if after[i] == cid]
        rows.append(
            {
                "cluster_id": cid,
                "old_cluster_ids": sorted({before[i] for i in members if i in before}),
                "added": sum(i not in before for i in members),
                "cluster_size": len(members),
            }
        )
    return rows


def _link(emb: str, out: str, index: str) -> None:
    extra = ["--nprobe", "100000"] if index == "ivf" else []  # every cell probed: ivf exact too
    argv = ["link", "--embeddings", emb, "--out", out, "--threshold", repr(T), "--k", "3", "--index", index]
    assert main([*argv, *extra]) == 0


@pytest.mark.parametrize("index,n", [("flat", 240), ("pruned", 240), ("ivf", 1600)])
def test_link_a_add_b_add_c_equals_linking_all_and_dbscan(tmp_path, index, n):
    ids, x, (a, b, c) = _batches(n, seed=5)
    d = 1.0 - x.astype(np.float64) @ x.astype(np.float64).T
    assert (d[np.ix_(a, b)] == T).any() and (d[np.ix_(a, c)] == 0).any()  # ties at t, duplicates across
    links = str(tmp_path / "links")
    _link(_write(str(tmp_path / "a"), ids[a], x[a]), links, index)
    seen = _clusters(links)
    for name, rows in (("b", b), ("c", c)):
        assert main(["link", "--add", _write(str(tmp_path / name), ids[rows], x[rows]), "--to", links,
                     "--out", links]) == 0
        now = _clusters(links)
        # a cluster no new clipping joined keeps its members and its id
        touched = {now[i] for i in now if i not in seen}
        for cid in {seen[i] for i in seen if now[i] not in touched}:
            assert {i for i in seen if seen[i] == cid} == {i for i in now if now[i] == cid}
        assert pq.read_table(os.path.join(links, "changes.parquet")).to_pylist() == _expected_changes(seen, now)
        seen = now
    fresh = str(tmp_path / "fresh")
    _link(_write(str(tmp_path / "all"), ids, x), fresh, "flat")
    assert _clusters(links) == _clusters(fresh)
    dbscan, _ = reference_clusters(x, T)
    assert same_partition(dbscan, [seen[i] for i in ids])
    assert all(cid == min(i for i in seen if seen[i] == cid) for cid in set(seen.values()))
    info = json.load(open(os.path.join(links, "links.json")))
    assert [add["rows"] for add in info["adds"]] == [len(b), len(c)]
    assert all(add["index"] == ("ivf" if index == "ivf" else "flat") for add in info["adds"])
    assert info["adds"][-1]["embeddings"] == str(tmp_path / "c") and info["counts"]["clippings"] == n
    if index == "ivf":
        assert all(add["recall"] == 1.0 for add in info["adds"])
    assert sorted(os.listdir(tmp_path)) == ["a", "all", "b", "c", "fresh", "links"]  # no temp folders left
    assert "link.log" in os.listdir(links)


def test_recut_after_adds_equals_a_fresh_link_up_to_what_was_searched(tmp_path, capsys):
    ids, x, (a, b, c) = _batches(240, seed=8)
    links, grown = str(tmp_path / "links"), str(tmp_path / "grown")
    _link(_write(str(tmp_path / "a"), ids[a], x[a]), links, "flat")
    assert main(["link", "--add", _write(str(tmp_path / "b"), ids[b], x[b]), "--to", links, "--out", grown]) == 0
    low = str(tmp_path / "low")
    assert main(["link", "--from-links", grown, "--out", low, "--threshold", repr(2 / 32)]) == 0
    assert main(["link", "--add", _write(str(tmp_path / "c"), ids[c], x[c]), "--to", low, "--out", low]) == 0
    for t, folder in ((2 / 32, low), (1 / 32, None)):
        if folder is None:
            folder = str(tmp_path / "lower")
            assert main(["link", "--from-links", low, "--out", folder, "--threshold", repr(t)]) == 0
        fresh = str(tmp_path / f"fresh{t}")
        assert main(["link", "--embeddings", _write(str(tmp_path / f"all{t}"), ids, x), "--out", fresh,
                     "--threshold", repr(t)]) == 0
        assert _clusters(folder) == _clusters(fresh)
    assert json.load(open(os.path.join(low, "links.json")))["exact_up_to"] == 2 / 32  # what the add searched
    capsys.readouterr()
    assert main(["link", "--from-links", grown, "--out", str(tmp_path / "x"), "--threshold", repr(T + 0.01)]) == 2
    assert f"is above exact_up_to {T} of its MST" in capsys.readouterr().err


def test_a_failed_write_leaves_the_old_folder_whole(tmp_path):
    ids, x, (a, _, _) = _batches(240, seed=2)
    links = str(tmp_path / "links")
    _link(_write(str(tmp_path / "a"), ids[a], x[a]), links, "flat")
    before = {name: open(os.path.join(links, name), "rb").read() for name in ("links.json", "clusters.parquet")}
    with pytest.raises(OSError), staged_folder(links) as folder:
        open(os.path.join(folder, "links.json"), "w").write("{}")
        raise OSError("disk full")
    assert {name: open(os.path.join(links, name), "rb").read() for name in before} == before
    assert sorted(os.listdir(tmp_path)) == ["a", "links"]


def _listing(folder) -> list[str]:
    """The entries of a folder, log files aside (a run logs to its --out before it checks anything)."""
    return sorted(e for e in os.listdir(folder) if not e.endswith(".log"))


def _refusal_case(tmp_path, case: str) -> tuple[list[str], str]:
    ids, x, (a, b, _) = _batches(240, seed=3)
    links = str(tmp_path / "links")
    _link(_write(str(tmp_path / "a"), ids[a], x[a]), links, "flat")
    new = str(tmp_path / "b")
    flags: list[str] = []
    if case == "fingerprint":
        _write(new, ids[b], x[b], fingerprint="other@123")
        msg = (f"link --add: embeddings {new} come from model 'other@123' but links {links} were made from "
               "'tiny@abc'; embed the batch with the links' model or re-link everything")
    elif case == "present":
        _write(new, ids[np.concatenate([b, a[5:7]])], x[np.concatenate([b, a[5:7]])])
        msg = (f"link --add: 2 clipping_id(s) of embeddings {new} are already in links {links} (first: "
               f"{ids[a[5]]!r}); drop them from the batch (a changed clipping needs a full re-link)")
    elif case == "dim":
        y = np.repeat(x[b], 2, axis=1) / np.sqrt(2)
        _write(new, ids[b], y.astype(np.float32))
        msg = (f"link --add: embeddings {new} have dimension 128 but links {links} hold 64-dimensional "
               "vectors; embed the batch with the links' model")
    elif case == "w":
        _write(new, ids[b], x[b])
        flags = ["--im-wt", "0.7"]
        msg = (f"link --add: --im-wt 0.7 differs from w = 0.5 of links {links}; a batch is added with the "
               "links' w (omit --im-wt), or re-link everything with the new w")
    elif case == "foreign-out":  # --out is someone's folder: never replaced
        _write(new, ids[b], x[b])
        links = str(tmp_path)
        msg = (f"links {links}: the folder exists and is not a links folder (it holds 'a'); give a new or "
               "empty folder as --out")
        return ["link", "--add", new, "--to", str(tmp_path / "links"), "--out", links], msg
    else:  # a links folder without the vectors an add searches
        _write(new, ids[b], x[b])
        import shutil

        shutil.rmtree(os.path.join(links, "vectors"))
        msg = (f"links {links}: no vectors/ folder (the pooled vectors 'link --add' searches new rows "
               "against); re-run 'clippings link --embeddings ...' to make a links folder that can be extended")
    return ["link", "--add", new, "--to", links, "--out", links, *flags], msg


@pytest.mark.parametrize("case", ["fingerprint", "present", "dim", "w", "no-vectors", "foreign-out"])
def test_refusals_are_one_line_exit_2_and_leave_the_links_untouched(tmp_path, capsys, case):
    argv, message = _refusal_case(tmp_path, case)
    links = argv[4]
    before, listed = _clusters(links), _listing(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == f"clippings link: error: {message}\n"
    assert _clusters(links) == before and _listing(tmp_path) == listed


def test_add_reads_and_writes_s3_and_runs_as_a_job(s3_bucket, tmp_path):
    ids, x, (a, b, _) = _batches(240, seed=4)
    rows = np.concatenate([a, b])
    local = str(tmp_path / "local")
    _link(_write(str(tmp_path / "all"), ids[rows], x[rows]), local, "flat")
    links, grown = f"{s3_bucket}/links", f"{s3_bucket}/grown"
    _link(_write(f"{s3_bucket}/a", ids[a], x[a]), links, "flat")
    new = _write(f"{s3_bucket}/b", ids[b], x[b])
    assert main(["link", "--add", new, "--to", links, "--out", grown]) == 0
    import s3fs

    fs = s3fs.S3FileSystem()
    with fs.open(f"{grown}/clusters.parquet", "rb") as f:
        table = pq.read_table(f)
    assert dict(zip(table["clipping_id"].to_pylist(), table["cluster_id"].to_pylist(), strict=True)) == (
        _clusters(local)
    )
    assert len(fs.ls(f"{grown}/vectors")) == len(fs.ls(f"{links}/vectors")) + 1
    assert main(["link", "--add", new, "--to", grown, "--out", grown]) == 2  # S3 cannot swap a folder
    # the job entrypoint takes the same flags (here without a cluster: what `ray job submit` would run)
    job_out = str(tmp_path / "job")
    done = subprocess.run(
        [sys.executable, "jobs/link.py", "--add", new, "--to", links, "--out", job_out],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
    )
    assert done.returncode == 0, done.stderr
    assert _clusters(job_out) == _clusters(local)
