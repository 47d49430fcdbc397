"""The Ray Data embed pipeline: equal to a plain loop, every id accounted for, S3 end to end, clear errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embed_helpers import png, write_archive

from clippings import cli
from clippings.archive import read_quarantine
from clippings.embeddings import read_embeddings
from clippings.model import load_model
from clippings.storage import filesystem, part_name, write_json, write_table_atomic


def _mixed_archive(folder: str, image_dir: str) -> dict[str, str]:
    """Two inline parts plus one part of `image_path` rows with bad rows; returns id -> expected reason.

    `image_dir` holds an image named by absolute path: the run must allow it (`--allowed-image-prefix`)."""
    write_archive(folder, parts=2, rows=7)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    with open(os.path.join(folder, "images", "a.png"), "wb") as f:
        f.write(png(100))
    os.makedirs(image_dir, exist_ok=True)
    absolute = os.path.join(image_dir, "b.png")
    with open(absolute, "wb") as f:
        f.write(png(101))
    table = pa.table({
        "clipping_id": ["p0", "p1", "bad-missing", "bad-decode", "null-caption", "p2"],
        "image": pa.array([None, None, None, b"not an image", png(102), png(103)], pa.binary()),
        "image_path": [os.path.join("images", "a.png"), absolute, "images/nope.png", None, None, None],
        "caption": ["relative path", "absolute path", "x", "y", None, ""],
    })
    write_table_atomic(table, os.path.join(folder, part_name(2)))
    return {
        "bad-missing": f"image file not found: {os.path.join(folder, 'images/nope.png')}",
        "bad-decode": "undecodable image",
    }


def _reference(folder: str, model_spec: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The oracle: the same rows embedded one by one in a plain loop with LoadedModel."""
    loaded = load_model(model_spec)
    ref = {}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("part-"):
            continue
        try:
            table = pq.read_table(os.path.join(folder, name)).to_pylist()
        except pa.ArrowInvalid:
            continue
        for row in table:
            try:
                data = row.get("image")
                if data is None:
                    path = row["image_path"]
                    path = path if os.path.isabs(path) else os.path.join(folder, path)
                    with open(path, "rb") as f:
                        data = f.read()
                pixels = loaded.preprocess_images([data])
            except (ValueError, FileNotFoundError):
                continue
            caption = row["caption"] or ""  # a null caption is the empty caption
            ref[row["clipping_id"]] = (loaded.embed_images(pixels)[0], loaded.embed_texts([caption])[0])
    return ref


def test_embed_equals_plain_loop_and_accounts_for_every_id(ray_local, tmp_path, tiny_model_dir, capsys):
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    reasons = _mixed_archive(archive, str(tmp_path / "elsewhere"))
    with open(os.path.join(archive, part_name(3)), "wb") as f:
        f.write(b"garbage, not parquet")
    rc = cli.main(["embed", "--archive", archive, "--model", str(tiny_model_dir), "--out", out,
                   "--batch-size", "4", "--skip-bad-files", "--allowed-image-prefix", str(tmp_path / "elsewhere")])
    assert rc == 0
    emb = read_embeddings(out)
    ref = _reference(archive, str(tiny_model_dir))
    assert sorted(emb.ids.tolist()) == sorted(ref)
    for i, cid in enumerate(emb.ids):
        np.testing.assert_allclose(emb.image[i], ref[cid][0], atol=1e-5)
        np.testing.assert_allclose(emb.text[i], ref[cid][1], atol=1e-5)
    assert emb.fingerprint == load_model(str(tiny_model_dir)).fingerprint
    quarantine = read_quarantine(out).to_pylist()
    got = {q["clipping_id"]: q["reason"] for q in quarantine}
    assert set(got) == set(reasons) and {q["stage"] for q in quarantine} == {"embed"}
    for cid, reason in reasons.items():
        assert got[cid].startswith(reason)
    every = emb.ids.tolist() + list(got)
    assert len(every) == len(set(every)) == 7 + 7 + 6
    # one output part per readable input part, same names, each with a marker naming it
    assert sorted(p for p in os.listdir(out) if p.startswith("part-")) == [part_name(i) for i in range(3)]
    markers = [json.load(open(os.path.join(out, "_done", n))) for n in sorted(os.listdir(os.path.join(out, "_done")))]
    assert [(m["shard"], m["rows"], m["quarantined"]) for m in markers] == [
        (part_name(0), 7, 0), (part_name(1), 7, 0), (part_name(2), 6, 2)]
    skipped = json.load(open(os.path.join(out, "_quarantine", "skipped-files.json")))
    assert [s["file"] for s in skipped] == [os.path.join(archive, part_name(3))]
    log = open(os.path.join(out, "embed.log")).read()
    assert "embedded: 18" in log and "quarantined: 2" in log and "skipped unreadable files: 1" in log


def test_embed_s3_in_and_out(ray_local, tmp_path, s3_bucket):
    local = str(tmp_path / "archive")
    ids = write_archive(local, parts=2, rows=5)
    os.makedirs(os.path.join(local, "img"))
    with open(os.path.join(local, "img", "z.png"), "wb") as f:
        f.write(png(7))
    write_table_atomic(pa.table({"clipping_id": ["s3-path"], "image_path": ["img/z.png"], "caption": ["on s3"]}),
                       os.path.join(local, part_name(2)))
    fs, inner = filesystem(f"{s3_bucket}/archive")
    fs.put(local + "/", inner, recursive=True)
    out = f"{s3_bucket}/emb"
    assert cli.main(["embed", "--archive", f"{s3_bucket}/archive", "--model", "tiny", "--out", out,
                     "--dtype", "float16"]) == 0
    emb = read_embeddings(out)
    assert sorted(emb.ids.tolist()) == sorted(ids + ["s3-path"])
    ref = load_model("tiny")
    row = emb.ids.tolist().index("s3-path")
    np.testing.assert_allclose(emb.image[row], ref.embed_images(ref.preprocess_images([png(7)]))[0], atol=2e-3)
    assert read_quarantine(out).num_rows == 0
    assert fs.exists(f"{inner.replace('archive', 'emb')}/_done/{part_name(2)}.json")


def test_unreadable_file_is_one_line_and_exit_2(tmp_path, capsys):
    archive = str(tmp_path / "archive")
    write_archive(archive, parts=1, rows=2)
    bad = os.path.join(archive, part_name(1))
    with open(bad, "wb") as f:
        f.write(b"garbage, not parquet")
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"clippings embed: error: archive {bad}: file is not readable Parquet (Parquet magic bytes not found in "
        "footer. Either the file is corrupted or this is not a parquet file.); re-write or remove the file\n"
    )


def test_duplicate_ids_across_parts_are_refused(tmp_path, capsys):
    archive = str(tmp_path / "archive")
    write_archive(archive, parts=1, rows=3)
    shutil.copy(os.path.join(archive, part_name(0)), os.path.join(archive, part_name(1)))
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"clippings embed: error: archive {archive}: clipping_id 'c00000' appears 2 times, 'c00001' appears 2 "
        "times, 'c00002' appears 2 times; ids must be unique: deduplicate the input\n"
    )


def test_wrong_schema_names_the_part(tmp_path, capsys):
    archive = str(tmp_path / "archive")
    write_table_atomic(pa.table({"clipping_id": ["a"], "image": [b"x"], "caption": [3]}),
                       os.path.join(archive, part_name(0)))
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"clippings embed: error: archive {os.path.join(archive, part_name(0))}: column 'caption' has type int64, "
        "needs string; cast the column to string\n"
    )


def test_resume_refuses_another_model(tmp_path, capsys):
    archive, out = str(tmp_path / "archive"), str(tmp_path / "emb")
    write_archive(archive, parts=1, rows=2)
    marker = os.path.join(out, "_done", part_name(0) + ".json")
    write_json(marker, {"shard": part_name(0), "rows": 2, "fingerprint": "sha256:0123456789abcdef"})
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", out]) == 2
    fp = load_model("tiny").fingerprint
    assert capsys.readouterr().err == (
        f"clippings embed: error: embeddings {out}: {marker} was made with fingerprint = 'sha256:0123456789abcdef', "
        f"but this run has fingerprint = '{fp}'; pass --overwrite to start afresh, or use another --out\n"
    )


def test_rerun_with_other_settings_is_refused_and_overwrite_starts_afresh(ray_local, tmp_path, capsys):
    """A finished output is resumed only by a run of the same model, dtype, image policy and input parts; with
    --overwrite another run replaces it whole (a part the new archive lacks goes too)."""
    import torch

    from clippings.model import save_model

    archive, other, out = str(tmp_path / "archive"), str(tmp_path / "other"), str(tmp_path / "emb")
    write_archive(archive, parts=3, rows=2)
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", out]) == 0
    capsys.readouterr()
    marker = os.path.join(out, "_done", part_name(0) + ".json")
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", out, "--dtype", "float16"]) == 2
    assert capsys.readouterr().err == (
        f"clippings embed: error: embeddings {out}: {marker} was made with dtype = 'float32', but this run has "
        "dtype = 'float16'; pass --overwrite to start afresh, or use another --out\n"
    )
    ids = write_archive(other, parts=2, rows=3, first_id=100)  # the same part names, other rows
    assert cli.main(["embed", "--archive", other, "--model", "tiny", "--out", out]) == 2
    assert (f"was made with input = '{os.path.join(archive, part_name(0))}', but this run has input = "
            f"'{os.path.join(other, part_name(0))}'") in capsys.readouterr().err
    model, other_weights = str(tmp_path / "tiny-moved"), load_model("tiny")
    with torch.no_grad():
        next(other_weights.model.parameters()).add_(0.01)
    save_model(other_weights.model, other_weights.processor, model)
    argv = ["embed", "--archive", other, "--model", model, "--out", out, "--overwrite"]
    assert cli.main(argv) == 0
    emb = read_embeddings(out)
    assert emb.fingerprint == load_model(model).fingerprint and sorted(emb.ids.tolist()) == sorted(ids)
    assert sorted(os.listdir(os.path.join(out, "_done"))) == [part_name(i) + ".json" for i in range(2)]
    assert not os.path.exists(os.path.join(out, part_name(2)))
    assert cli.main(argv[:-1]) == 0  # the same settings again: every part resumed
    assert "0 parts written, 2 done before" in capsys.readouterr().out


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--batch-size", "0", "The 'batch_size' parameter of embed must be an int in the range [1, inf). Got 0 instead."),
    ("--dtype", "int8", "The 'dtype' parameter of embed must be one of 'float32', 'float16'. Got 'int8' instead."),
])
def test_bad_parameters(tmp_path, capsys, flag, value, message):
    argv = ["embed", "--archive", str(tmp_path), "--model", "tiny", "--out", str(tmp_path / "o"), flag, value]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"clippings embed: error: {message}\n"


@pytest.mark.parametrize("start,stop", [(0, None), (15, 37), (20, 30), (29, 31), (45, None), (50, None)])
def test_read_part_rows_reads_exactly_a_run(tmp_path, start, stop):
    """A decode task's run of a part (read from the row groups that hold it): rows start … stop − 1, across
    row-group boundaries, each with its own image."""
    from clippings.image_paths import ARCHIVE_ONLY
    from clippings.reader import read_part_rows

    n = 50
    path = str(tmp_path / part_name(0))
    table = pa.table({"clipping_id": [f"c{i:03d}" for i in range(n)], "image": pa.array([png(i) for i in range(n)]),
                      "caption": [f"story {i}" for i in range(n)]})
    pq.write_table(table, path, row_group_size=10)
    got = [t for t in read_part_rows(path, "p0", str(tmp_path), ARCHIVE_ONLY, start, stop)]
    ids = [i for t in got for i in t.column("clipping_id").to_pylist()]
    assert ids == table.column("clipping_id").to_pylist()[start:stop]
    assert all(t.column("shard").to_pylist() == ["p0"] * t.num_rows for t in got)
    assert all(t.column("image").to_pylist() == [png(int(i[1:])) for i in t.column("clipping_id").to_pylist()]
               for t in got)


def test_a_large_part_embeds_in_runs_and_keeps_its_order(ray_local, tmp_path, tiny_model_dir):
    """A part of several READ_ROWS runs (row groups crossing the runs' bounds) decodes in parallel tasks whose
    runs end in any order; the output part still lists the rows in the input's order, each equal to the
    plain loop's embedding."""
    from clippings.reader import READ_ROWS

    archive, out = tmp_path / "archive", str(tmp_path / "emb")
    archive.mkdir()
    n = READ_ROWS + 37
    ids = [f"c{n - i:04d}" for i in range(n)]  # not sorted: the order kept must be the part's, not the ids'
    pq.write_table(pa.table({"clipping_id": ids, "image": pa.array([png(i) for i in range(n)]),
                             "caption": [f"story {i % 7} page {i}" for i in range(n)]}),
                   str(archive / part_name(0)), row_group_size=100)
    assert cli.main(["embed", "--archive", str(archive), "--model", str(tiny_model_dir), "--out", out]) == 0
    written = pq.read_table(os.path.join(out, part_name(0)))
    assert written.column("clipping_id").to_pylist() == ids
    emb, ref = read_embeddings(out), _reference(str(archive), str(tiny_model_dir))
    for i, cid in enumerate(emb.ids):
        np.testing.assert_allclose(emb.image[i], ref[cid][0], atol=1e-5)
        np.testing.assert_allclose(emb.text[i], ref[cid][1], atol=1e-5)
