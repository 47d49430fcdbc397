"""The archive data contract: every bad input is one line with exit code 2; round trips local and on S3."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clippings import cli
from clippings.archive import ARCHIVE_SCHEMA, read_archive
from clippings.errors import BadInput
from clippings.storage import filesystem, read_json, write_dataset, write_json

PNG = b"\x89PNG\r\n\x1a\n fake bytes are fine for the contract"


def _archive(n: int = 4, **overrides) -> pa.Table:
    columns = {
        "clipping_id": [f"c{i:03d}" for i in range(n)],
        "image": [PNG] * n,
        "caption": [f"caption {i}" for i in range(n)],
        "label": [f"g{i // 2}" for i in range(n)],
    }
    columns.update(overrides)
    return pa.table({k: v for k, v in columns.items() if v is not None})


def _write(folder, *tables) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, t in enumerate(tables):
        paths.append(str(folder / f"part-{i:05d}.parquet"))
        pq.write_table(t, paths[-1])
    return paths


def _evaluate_error(archive, links, capsys) -> str:
    code = cli.main(["evaluate", "--links", str(links), "--archive", str(archive)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err.strip()


def test_missing_required_column(tmp_path, capsys):
    (part,) = _write(tmp_path / "a", _archive(clipping_id=None))
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {part}: required column 'clipping_id' is missing "
        "(found: image, caption, label); add a unique string id per clipping"
    )


def test_wrong_column_type(tmp_path, capsys):
    (part,) = _write(tmp_path / "a", _archive(clipping_id=[1, 2, 3, 4]))
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {part}: column 'clipping_id' has type int64, needs string; "
        "cast the column to string"
    )


def test_duplicate_ids_are_named_across_parts(tmp_path, capsys):
    a = _archive(4)
    b = _archive(3, clipping_id=["c000", "c001", "c001"], label=["x", "y", "y"])
    _write(tmp_path / "a", a, b)
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {tmp_path / 'a'}: clipping_id 'c000' appears 2 times, 'c001' appears "
        "3 times; ids must be unique: deduplicate the input"
    )


def test_empty_dataset(tmp_path, capsys):
    _write(tmp_path / "a", _archive(0, clipping_id=pa.array([], pa.string()), image=pa.array([], pa.binary()),
                                    caption=pa.array([], pa.string()), label=pa.array([], pa.string())))
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {tmp_path / 'a'}: the dataset is empty (0 rows); give at least one row"
    )


def test_row_with_neither_image_nor_path(tmp_path, capsys):
    t = _archive(3, image=[PNG, None, PNG]).append_column("image_path", pa.array([None, None, "x.png"], pa.string()))
    (part,) = _write(tmp_path / "a", t)
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {part}: row 1 (clipping_id 'c001') has neither 'image' nor "
        "'image_path'; give every row an image or an image path"
    )


def test_unlabelled_row_in_a_labelled_set(tmp_path, capsys):
    (part,) = _write(tmp_path / "a", _archive(3, label=["g0", "g0", None]))
    assert _evaluate_error(tmp_path / "a", tmp_path, capsys) == (
        f"clippings evaluate: error: archive {part}: row 2 (clipping_id 'c002') has no label; a labelled set gives "
        "every row a label (singletons their own)"
    )


def test_corrupt_parquet_file(tmp_path, capsys):
    (part,) = _write(tmp_path / "a", _archive(4))
    with open(part, "r+b") as f:  # keep the magic bytes, break the footer
        f.seek(-12, os.SEEK_END)
        f.write(b"\x00" * 8)
    err = _evaluate_error(tmp_path / "a", tmp_path, capsys)
    assert err.startswith(f"clippings evaluate: error: archive {part}: file is not readable Parquet (")
    assert err.endswith("); re-write or remove the file")


def test_folder_not_found(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert _evaluate_error(missing, tmp_path, capsys) == (
        f"clippings evaluate: error: archive {missing}: folder not found; give a folder of part-*.parquet files"
    )


def test_baseline_reports_a_bad_validation_set(synth_dir, tmp_path, capsys):
    code = cli.main(["baseline", "--archive", str(synth_dir / "test"), "--val", str(synth_dir / "unlabelled"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"clippings baseline: error: archive {synth_dir / 'unlabelled'}/part-00000.parquet: row 0 ")
    assert err.endswith("has no label; a labelled set gives every row a label (singletons their own)")


def test_read_archive_raises_badinput_not_other_errors(tmp_path):
    _write(tmp_path / "a", _archive(2, image=None))
    with pytest.raises(BadInput, match="neither 'image' nor 'image_path' column is present"):
        read_archive(str(tmp_path / "a"))


def _round_trip(path: str) -> None:
    table = _archive(7).append_column("source", pa.array(["Herald"] * 7))
    parts = write_dataset(table, path, rows_per_part=3)
    assert [p.rsplit("/", 1)[-1] for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    back = read_archive(path, require_labels=True)
    assert [(f.name, f.type) for f in back.schema] == [(f.name, f.type) for f in ARCHIVE_SCHEMA]
    for column in ("clipping_id", "image", "caption", "label", "source"):
        assert back.column(column).to_pylist() == table.column(column).to_pylist()
    assert back.column("image_path").null_count == 7
    meta = path.rstrip("/") + "/meta.json"
    write_json(meta, {"rows": 7})
    assert read_json(meta) == {"rows": 7}
    fs, inner = filesystem(path)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False))
    assert names == ["meta.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]  # no temp files


def test_round_trip_local(tmp_path):
    _round_trip(str(tmp_path / "archive"))


def test_round_trip_s3(s3_bucket):
    _round_trip(f"{s3_bucket}/archive")


def test_evaluate_reads_an_s3_archive(s3_bucket, tmp_path, capsys):
    write_dataset(_archive(6), f"{s3_bucket}/test")
    from clippings.archive import CLUSTERS_SCHEMA
    from clippings.storage import write_table_atomic

    ids = [f"c{i:03d}" for i in range(6)]
    write_table_atomic(pa.table({"clipping_id": ids, "cluster_id": ["c000", "c000", "c002", "c002", "c004", "c004"],
                                 "cluster_size": [2] * 6}, schema=CLUSTERS_SCHEMA), f"{s3_bucket}/links/clusters.parquet")
    write_json(f"{s3_bucket}/links/links.json", {"threshold": 0.2})  # last, as a link writes it
    assert cli.main(["evaluate", "--links", f"{s3_bucket}/links", "--archive", f"{s3_bucket}/test"]) == 0
    assert read_json(f"{s3_bucket}/links/metrics.json")["ari"] == 1.0
    missing = f"{s3_bucket}/absent"
    assert _evaluate_error(missing, f"{s3_bucket}/links", capsys) == (
        f"clippings evaluate: error: archive {missing}: folder not found; give a folder of part-*.parquet files"
    )
