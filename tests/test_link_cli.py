"""`clippings link` and `clippings tune` through cli.main: folders and s3://, re-cuts, quarantine, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.archive import quarantine_table, read_quarantine, write_quarantine
from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.errors import BadInput
from clippings.storage import write_dataset
from tests.link_helpers import reference_clusters, sign_vectors

N = 120


def _ids(n: int = N) -> list[str]:
    return [f"p{i:04d}" for i in range(n)]


def _write_embeddings(
    path: str,
    image: np.ndarray,
    text: np.ndarray,
    fingerprint: str = "tiny@abc",
    ids: list[str] | None = None,
) -> str:
    ids = ids or _ids(len(image))
    write_dataset(embeddings_table(ids, image, text, fingerprint, "tiny"), path, rows_per_part=50)
    return path


@pytest.fixture(scope="module")
def towers():
    image = sign_vectors(N, groups=14, flip=0.03, seed=11)
    text = sign_vectors(N, groups=14, flip=0.03, seed=11)  # same groups, other noise
    return image, text


def _clusters(links: str) -> dict[str, str]:
    table = pq.read_table(os.path.join(links, "clusters.parquet"))
    return dict(
        zip(table.column("clipping_id").to_pylist(), table.column("cluster_id").to_pylist(), strict=True)
    )


def test_link_matches_dbscan_and_writes_the_links_folder(tmp_path, towers):
    image, _ = towers
    emb = _write_embeddings(str(tmp_path / "emb"), image, image)
    write_quarantine(emb, quarantine_table(["bad1"], "embed", ["image unreadable"]), "part-00000.parquet")
    out = str(tmp_path / "links")
    t = 3 / 32
    assert (
        main(
            ["link", "--embeddings", emb, "--out", out, "--threshold", repr(t), "--im-wt", "1.0", "--k", "3"]
        )
        == 0
    )
    clusters = _clusters(out)
    dbscan, _ = reference_clusters(image, t)
    assert adjusted_rand_score(dbscan, [clusters[i] for i in _ids()]) == 1.0
    info = json.load(open(os.path.join(out, "links.json")))
    assert info["threshold"] == t and info["im_wt"] == 1.0 and info["k"] == 3 and info["index"] == "flat"
    assert info["exact_up_to"] >= t and info["fingerprint"] == "tiny@abc"
    assert info["counts"]["clusters"] == len(set(clusters.values())) and info["counts"]["quarantined"] == 1
    assert sum(info["diagnostics"]["size_histogram"].values()) == info["counts"]["clusters"]
    mst = pq.read_table(os.path.join(out, "mst.parquet"))
    assert mst.schema.names == ["src", "dst", "distance"]
    assert N - info["counts"]["clusters"] <= mst.num_rows <= N - 1  # a spanning forest holding every cut edge
    # every input id is in the output or the quarantine
    quarantined = read_quarantine(out).column("clipping_id").to_pylist()
    assert sorted(clusters) + quarantined == _ids() + ["bad1"]


def test_recut_from_links_equals_a_fresh_link_and_refuses_beyond_exact(tmp_path, towers, capsys):
    image, text = towers
    emb = _write_embeddings(str(tmp_path / "emb"), image, text)
    wide = str(tmp_path / "wide")
    assert main(["link", "--embeddings", emb, "--out", wide, "--threshold", "0.25", "--k", "4"]) == 0
    for t in ("0.0625", "0.125"):
        fresh, recut = str(tmp_path / f"fresh{t}"), str(tmp_path / f"recut{t}")
        assert main(["link", "--embeddings", emb, "--out", fresh, "--threshold", t, "--k", "4"]) == 0
        assert main(["link", "--from-links", wide, "--out", recut, "--threshold", t]) == 0
        assert _clusters(fresh) == _clusters(recut)
    exact = json.load(open(os.path.join(wide, "links.json")))["exact_up_to"]
    capsys.readouterr()
    assert main(["link", "--from-links", wide, "--out", str(tmp_path / "x"), "--threshold", "1.5"]) == 2
    assert capsys.readouterr().err == (
        f"clippings link: error: links {wide}: threshold 1.5 is above exact_up_to {exact} of its MST; re-cut at "
        f"≤ {exact} or re-run 'clippings link --embeddings ...' at the new threshold\n"
    )


def test_tune_writes_curve_and_model_choice_then_link_uses_it(tmp_path, towers):
    image, text = towers
    ids = _ids()
    emb = _write_embeddings(str(tmp_path / "emb"), image, text)
    # labels: the groups single linkage finds at 3/32 on the pooled vectors (so the best ARI is 1.0)
    pooled = image + text
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    labels, _ = reference_clusters(pooled, 3 / 32)
    archive = pa.table(
        {"clipping_id": ids, "image": [b"png"] * N, "caption": [""] * N, "label": [f"g{v}" for v in labels]}
    )
    write_dataset(archive, str(tmp_path / "val"))
    model = str(tmp_path / "model")
    os.makedirs(model)
    out = str(tmp_path / "tune")
    assert (
        main(
            [
                "tune",
                "--embeddings",
                emb,
                "--archive",
                str(tmp_path / "val"),
                "--search-im-wt",
                "--model",
                model,
                "--out",
                out,
            ]
        )
        == 0
    )
    tuned = json.load(open(os.path.join(out, "tune.json")))
    assert tuned["ari"] == 1.0 and len(tuned["grid"]) == 11 and tuned["im_wt"] == 0.5
    meta = json.load(open(os.path.join(model, "clippings.json")))
    assert (meta["threshold"], meta["im_wt"], meta["val_ari"]) == (tuned["threshold"], 0.5, 1.0)
    rows = open(os.path.join(out, "curve.csv")).read().splitlines()
    assert rows[0] == "threshold,ari" and len(rows) > 3
    assert all(len([float(x) for x in row.split(",")]) == 2 for row in rows[1:])  # the report parses these
    assert open(os.path.join(out, "curve.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    links = str(tmp_path / "links")
    assert main(["link", "--embeddings", emb, "--out", links, "--model", model]) == 0
    assert adjusted_rand_score(labels, [_clusters(links)[i] for i in ids]) == 1.0


def test_link_reads_and_writes_s3(s3_bucket, towers):
    image, text = towers
    emb = _write_embeddings(f"{s3_bucket}/emb", image, text)
    out = f"{s3_bucket}/links"
    assert main(["link", "--embeddings", emb, "--out", out, "--threshold", "0.1", "--index", "pruned"]) == 0
    import s3fs

    fs = s3fs.S3FileSystem()
    with fs.open(f"{out}/clusters.parquet", "rb") as f:
        assert pq.read_table(f).num_rows == N
    assert json.loads(fs.cat(f"{out}/links.json"))["index"] == "pruned"


def _bad(tmp_path, name: str) -> str:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    path = str(tmp_path / name)
    if name == "mixed":
        write_dataset(embeddings_table(_ids(3), v[:3], v[:3], "a@1", "a"), path)
        from clippings.storage import write_table_atomic

        write_table_atomic(
            embeddings_table(_ids(6)[3:], v[3:], v[3:], "b@2", "b"), f"{path}/part-00001.parquet"
        )
    elif name == "nan":
        v[2, 0] = np.nan
        _write_embeddings(path, v, v, ids=_ids(6))
    elif name == "nonunit":
        _write_embeddings(path, v * 2, v, ids=_ids(6))
    elif name == "empty":
        write_dataset(embeddings_table([], v[:0], v[:0], "a@1", "a"), path)
    else:
        _write_embeddings(path, v, v, ids=_ids(6))
    return path


@pytest.mark.parametrize(
    "case,flags,message",
    [
        (
            "mixed",
            [],
            "embeddings {p}: mixed model fingerprints ({p}/part-00000.parquet has a@1, "
            "{p}/part-00001.parquet has b@2); embed the whole archive with one model",
        ),
        (
            "nan",
            [],
            "embeddings {p}: image_emb of clipping_id 'p0002' has NaN or infinite values; "
            "re-embed it or quarantine it",
        ),
        (
            "nonunit",
            [],
            "embeddings {p}: image_emb of clipping_id 'p0000' has norm 2.0000, not 1; "
            "embeddings must be unit norm: normalise them or re-run 'clippings embed'",
        ),
        ("empty", [], "embeddings {p}: the dataset is empty (0 rows); embed at least one clipping"),
        (
            "ok",
            ["--threshold", "3.5"],
            "The 'threshold' parameter of link must be a float in the range [0.0, 2.0]. Got 3.5 instead.",
        ),
        (
            "ok",
            ["--k", "0"],
            "The 'k' parameter of link must be an int in the range [1, inf). Got 0 instead.",
        ),
        (
            "ok",
            ["--im-wt", "1.5"],
            "The 'im_wt' parameter of link must be a float in the range [0.0, 1.0]. Got 1.5 instead.",
        ),
        (
            "ok",
            ["--threshold", None],
            "link: no --threshold given; give --threshold T or a --model tuned by 'clippings tune --model'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, flags, message):
    path = _bad(tmp_path, case)
    argv = ["link", "--embeddings", path, "--out", str(tmp_path / "out")]
    argv += flags if flags and flags[-1] is not None else []
    if not flags:
        argv += ["--threshold", "0.2"]
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == f"clippings link: error: {message.format(p=path)}\n"


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--add", "new"], "link --add needs --to; usage: clippings link --add NEW_EMBEDDINGS --to LINKS_DIR --out DIR"),
        (["--add", "new", "--to", "l", "--from-links", "l"],
         "link --add takes no --from-links; usage: clippings link --add NEW_EMBEDDINGS --to LINKS_DIR --out DIR"),
        (["--from-links", "l"],
         "link --from-links needs --threshold; usage: clippings link --from-links LINKS_DIR --threshold T --out DIR"),
        (["--from-links", "l", "--threshold", "0.1", "--embeddings", "e"],
         "link --from-links takes no --embeddings; usage: clippings link --from-links LINKS_DIR --threshold T --out "
         "DIR"),
        (["--from-links", "l", "--threshold", "auto"],
         "link --from-links takes a number for --threshold: auto chooses t from --embeddings DIR; usage: clippings "
         "link --from-links LINKS_DIR --threshold T --out DIR"),
        (["--threshold", "0.1"], "link without --add or --from-links needs --embeddings; usage: clippings link "
         "--embeddings DIR --out DIR [--threshold T|auto]"),
        (["--embeddings", "e", "--to", "l"], "link without --add or --from-links takes no --to; usage: clippings link "
         "--embeddings DIR --out DIR [--threshold T|auto]"),
    ],
)
def test_each_mode_refuses_a_missing_or_foreign_option_in_one_line(tmp_path, capsys, flags, message):
    capsys.readouterr()
    assert main(["link", "--out", str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err == f"clippings link: error: {message}\n"
    assert not (tmp_path / "out" / "links.json").exists()


@pytest.mark.parametrize("dtype,accepted", [("float32", False), ("float16", True)])
def test_unit_norm_tolerance_follows_the_stored_dtype(tmp_path, dtype, accepted):
    """A norm 0.5 % off 1 is rounding in float16 (tolerance 1e-2) but not in float32 (1e-3)."""
    from clippings.embeddings import read_embeddings

    v = sign_vectors(6, 2, 0.0, seed=0) * 1.005
    path = str(tmp_path / "emb")
    write_dataset(embeddings_table(_ids(6), v, v, "tiny@abc", "tiny", dtype=dtype), path)
    if accepted:
        assert len(read_embeddings(path).ids) == 6
    else:
        with pytest.raises(BadInput, match=r"has norm 1\.0050, not 1"):
            read_embeddings(path)
