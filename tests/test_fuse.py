"""`clippings fuse`: one model's image vectors beside another's text vectors, row for row; other archives,
orders or sizes refused in one line; the quarantine carried; an output of other files refused."""

from __future__ import annotations

import numpy as np
import pytest

from clippings.archive import quarantine_table, write_quarantine
from clippings.cli import main
from clippings.embeddings import embeddings_table, read_embeddings
from clippings.fuse import fuse_embeddings
from clippings.storage import join, write_table_atomic


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _embeddings(folder: str, ids: list[list[str]], seed: int, dim: int = 8, model: str = "m") -> dict[str, np.ndarray]:
    """An embeddings folder of one part per id list; returns each id's (image, text) vectors."""
    rng, vectors = np.random.default_rng(seed), {}
    for i, part in enumerate(ids):
        image, text = _unit(rng, len(part), dim), _unit(rng, len(part), dim)
        write_table_atomic(embeddings_table(part, image, text, f"fp-{model}", model), join(folder, f"part-{i:05d}.parquet"))
        vectors.update({cid: (image[j], text[j]) for j, cid in enumerate(part)})
    write_quarantine(folder, quarantine_table(["bad"], "embed", ["image does not decode"]), "part-00000.parquet")
    return vectors


def test_fused_rows_hold_the_image_of_one_and_the_text_of_the_other(tmp_path, capsys):
    ids = [["a", "b", "c"], ["d", "e"]]
    image_side = _embeddings(str(tmp_path / "visual"), ids, seed=1, model="visual")
    text_side = _embeddings(str(tmp_path / "language"), ids, seed=2, model="language")
    out = str(tmp_path / "fused")
    assert main(["fuse", "--image-embeddings", str(tmp_path / "visual"), "--text-embeddings",
                 str(tmp_path / "language"), "--out", out]) == 0
    fused = read_embeddings(out)
    assert fused.ids.tolist() == ["a", "b", "c", "d", "e"]
    for row, cid in enumerate(fused.ids):
        np.testing.assert_array_equal(fused.image[row], image_side[cid][0])
        np.testing.assert_array_equal(fused.text[row], text_side[cid][1])
    assert fused.fingerprint == "image:fp-visual+text:fp-language"
    assert "5 clippings in 2 parts (1 quarantined)" in capsys.readouterr().out
    again = fuse_embeddings(str(tmp_path / "visual"), str(tmp_path / "language"), out)  # an earlier fusion: replaced
    assert again == {"parts": 2, "rows": 5, "quarantined": 1}


def test_other_archives_and_outputs_are_refused_in_one_line(tmp_path, capsys):
    _embeddings(str(tmp_path / "a"), [["a", "b"]], seed=1)
    _embeddings(str(tmp_path / "swapped"), [["b", "a"]], seed=2)
    _embeddings(str(tmp_path / "two"), [["a"], ["b"]], seed=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases = [("swapped", "fused1", "hold other clippings (or another order)"),
             ("two", "fused2", "hold other parts (1 and 2)"),
             ("a", "busy", "exists and holds 'notes.txt', not an earlier fusion")]
    for other, out, message in cases:
        capsys.readouterr()
        assert main(["fuse", "--image-embeddings", str(tmp_path / "a"), "--text-embeddings", str(tmp_path / other),
                     "--out", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_towers_of_other_sizes_are_refused(tmp_path):
    from clippings.errors import BadInput

    _embeddings(str(tmp_path / "a"), [["a", "b"]], seed=1, dim=8)
    _embeddings(str(tmp_path / "b"), [["a", "b"]], seed=2, dim=4)
    with pytest.raises(BadInput, match="8-d vectors and .* 4-d"):
        fuse_embeddings(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "out"))
