"""A links folder is never read as whole while half-written: links.json goes first (S3) and comes last, and
every reader refuses a folder of links files without it."""

from __future__ import annotations

import os

import pytest

from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.storage import write_dataset
from tests.link_helpers import sign_vectors

T = 3 / 32


def _embeddings(path: str, n: int, seed: int, first: int = 0) -> str:
    x = sign_vectors(n, groups=n // 10, flip=0.04, seed=seed, duplicates=0)
    ids = [f"c{first + i:04d}" for i in range(n)]
    write_dataset(embeddings_table(ids, x, x, "tiny@abc", "tiny"), path)
    return path


def _link(emb: str, out: str, threshold: float = T) -> int:
    return main(["link", "--embeddings", emb, "--out", out, "--threshold", repr(threshold), "--k", "3"])


def _crash_while_relinking(monkeypatch, emb: str, links: str, step: str) -> None:
    """Re-link `emb` into `links` at another threshold and crash at `step`: 'vectors' right after the older
    folder's files are removed (the first write), 'mst' once the new vectors are written."""
    import clippings.link.pipeline as pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("crash")

    monkeypatch.setattr(pipeline, "write_vectors" if step == "vectors" else "write_table_atomic", boom)
    with pytest.raises(RuntimeError, match="crash"):
        _link(emb, links, threshold=T / 2)
    monkeypatch.undo()


@pytest.mark.parametrize("step", ["vectors", "mst"])
def test_a_crashed_s3_link_is_refused_by_every_reader(s3_bucket, tmp_path, monkeypatch, capsys, step):
    emb = _embeddings(str(tmp_path / "a"), 60, seed=1)
    links = f"{s3_bucket}/links"
    assert _link(emb, links) == 0
    _crash_while_relinking(monkeypatch, emb, links, step)
    new = _embeddings(str(tmp_path / "b"), 20, seed=2, first=60)
    message = (f"links {links}: incomplete, it has clusters.parquet but no links.json (written last): a link "
               "into this folder did not finish; re-run that 'clippings link' to write the folder whole")
    add = ["link", "--add", new, "--to", links, "--out", str(tmp_path / "grown")]
    readers = [  # link --add, a re-cut, evaluate and report (the archive is never reached)
        add,
        ["link", "--from-links", links, "--threshold", repr(T / 2), "--out", str(tmp_path / "recut")],
        ["evaluate", "--links", links, "--archive", str(tmp_path / "archive")],
        ["report", "--links", links, "--archive", str(tmp_path / "archive"), "--out", str(tmp_path / "report")],
    ]
    for argv in readers:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"clippings {argv[0]}: error: {message}\n"
    assert _link(emb, links) == 0  # re-running the link makes the folder whole again
    assert main(add) == 0


def test_a_crashed_local_link_leaves_the_old_folder_whole(tmp_path, monkeypatch):
    emb = _embeddings(str(tmp_path / "a"), 60, seed=1)
    links = str(tmp_path / "links")
    assert _link(emb, links) == 0
    before = {name: open(os.path.join(links, name), "rb").read() for name in ("links.json", "mst.parquet")}
    _crash_while_relinking(monkeypatch, emb, links, "mst")
    assert {name: open(os.path.join(links, name), "rb").read() for name in before} == before
    assert sorted(e for e in os.listdir(tmp_path) if not e.endswith(".log")) == ["a", "links"]
    new = _embeddings(str(tmp_path / "b"), 20, seed=2, first=60)
    assert main(["link", "--add", new, "--to", links, "--out", str(tmp_path / "grown")]) == 0

