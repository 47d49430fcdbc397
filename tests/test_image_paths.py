"""Where images are read from (design.md §4): relative paths stay inside the archive folder, absolute paths
and URIs only where the user allows them (and then they work); a null caption is linked by its image.

Every case asserts the exact quarantine reason or the exact one-line error.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embed_helpers import png

from clippings import cli
from clippings.archive import CLUSTERS_SCHEMA, MST_SCHEMA, read_quarantine
from clippings.embeddings import read_embeddings
from clippings.errors import BadInput
from clippings.image_paths import ImagePolicy, resolve_image_path
from clippings.model import load_model
from clippings.storage import filesystem, write_dataset, write_json, write_table_atomic

TRAVERSAL = "../../../../../../../../../../etc/passwd"


def escape_reason(image_path: str, location: str) -> str:
    return (f"image_path {image_path!r} resolves to {location}, outside the archive folder; a relative "
            "image_path must stay inside it: move the file in, or allow it with --allowed-image-prefix or "
            "--allow-external-images")


def external_reason(image_path: str) -> str:
    return (f"image_path {image_path!r} is an absolute path or URI, outside the archive folder; such paths are "
            "read only when allowed: give --allowed-image-prefix covering it or --allow-external-images")


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def local_case(tmp_path) -> dict:
    """An archive folder with good and escaping `image_path` rows, and a folder of images outside it.

    Returns the archive, the outside folder, the rows expected to be embedded by default and the expected
    quarantine reason of every other row.
    """
    root = os.path.realpath(tmp_path)
    archive, outside = os.path.join(root, "archive"), os.path.join(root, "outside")
    secret = os.path.join(outside, "secret.png")
    _write(os.path.join(archive, "img", "in.png"), png(1))
    _write(secret, png(2))
    os.symlink(os.path.join(archive, "img", "in.png"), os.path.join(archive, "img", "link_in.png"))
    os.symlink(secret, os.path.join(archive, "img", "link_out.png"))
    os.symlink(outside, os.path.join(archive, "linkdir"))
    rows = {  # clipping_id -> (image, image_path, caption)
        "in": (None, "img/in.png", "inside"),
        "symlink-in": (None, "img/link_in.png", "a symlink that stays inside"),
        "dotdot-in": (None, "img/../img/in.png", "'..' that stays inside"),
        "null-caption": (None, "img/in.png", None),
        "inline-wins": (png(3), "/etc/passwd", "inline bytes are read, the path never"),
        "traversal": (None, TRAVERSAL, "x"),
        "symlink-out": (None, "img/link_out.png", "x"),
        "symlink-dir-out": (None, "linkdir/secret.png", "x"),
        "absolute": (None, secret, "x"),
        "file-uri": (None, "file://" + secret, "x"),
    }
    write_dataset(pa.table({
        "clipping_id": list(rows),
        "image": pa.array([r[0] for r in rows.values()], pa.binary()),
        "image_path": [r[1] for r in rows.values()],
        "caption": pa.array([r[2] for r in rows.values()], pa.string()),
    }), archive)
    return {
        "archive": archive, "outside": outside, "secret": secret,
        "embedded": ["dotdot-in", "in", "inline-wins", "null-caption", "symlink-in"],
        "reasons": {
            "traversal": escape_reason(TRAVERSAL, "/etc/passwd"),
            "symlink-out": escape_reason("img/link_out.png", secret),
            "symlink-dir-out": escape_reason("linkdir/secret.png", secret),
            "absolute": external_reason(secret),
            "file-uri": external_reason("file://" + secret),
        },
    }


def _embed(archive: str, out: str, *flags: str) -> tuple[list[str], dict[str, str]]:
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", out, "--batch-size", "4",
                     *flags]) == 0
    quarantine = read_quarantine(out).to_pylist()
    assert {q["stage"] for q in quarantine} <= {"embed"}
    return sorted(read_embeddings(out).ids.tolist()), {q["clipping_id"]: q["reason"] for q in quarantine}


# ---------------------------------------------------------------- embed, local archive


def test_embed_refuses_paths_leaving_the_archive(ray_local, local_case, tmp_path):
    """Traversal, symlinks out, absolute paths and file:// URIs are quarantined, each naming the rule."""
    embedded, quarantined = _embed(local_case["archive"], str(tmp_path / "emb"))
    assert embedded == local_case["embedded"]
    assert quarantined == local_case["reasons"]
    emb = read_embeddings(str(tmp_path / "emb"))
    row = {cid: i for i, cid in enumerate(emb.ids.tolist())}
    ref = load_model("tiny")
    np.testing.assert_allclose(emb.image[row["inline-wins"]], ref.embed_images(ref.preprocess_images([png(3)]))[0],
                               atol=1e-5)


def test_embed_reads_allowed_prefixes_and_uris(ray_local, local_case, tmp_path):
    """With the outside folder allowed, absolute paths, file:// URIs and symlinks into it are read; a path
    resolving elsewhere (/etc/passwd) is still refused."""
    out = str(tmp_path / "emb")
    embedded, quarantined = _embed(local_case["archive"], out, "--allowed-image-prefix", local_case["outside"])
    assert quarantined == {"traversal": local_case["reasons"]["traversal"]}
    assert embedded == sorted(local_case["embedded"] + ["absolute", "file-uri", "symlink-dir-out", "symlink-out"])
    emb = read_embeddings(out)
    row = {cid: i for i, cid in enumerate(emb.ids.tolist())}
    ref = load_model("tiny")
    secret = ref.embed_images(ref.preprocess_images([png(2)]))[0]
    for cid in ("absolute", "file-uri", "symlink-out"):
        np.testing.assert_allclose(emb.image[row[cid]], secret, atol=1e-5)


def test_embed_file_uri_with_allow_external_images(ray_local, tmp_path):
    """`--allow-external-images` reads a file:// URI (it used to be glued onto the archive folder; refusing
    one by default is checked above)."""
    archive, outside = str(tmp_path / "archive"), os.path.realpath(tmp_path / "outside")
    _write(os.path.join(outside, "x.png"), png(4))
    uri = "file://" + os.path.join(outside, "x.png")
    write_dataset(pa.table({"clipping_id": ["inline", "u"], "image": pa.array([png(5), None], pa.binary()),
                            "image_path": [None, uri], "caption": ["inline", "a URI"]}), archive)
    embedded, quarantined = _embed(archive, str(tmp_path / "emb"), "--allow-external-images")
    assert embedded == ["inline", "u"] and quarantined == {}
    emb = read_embeddings(str(tmp_path / "emb"))
    ref = load_model("tiny")
    np.testing.assert_allclose(emb.image[emb.ids.tolist().index("u")],
                               ref.embed_images(ref.preprocess_images([png(4)]))[0], atol=1e-5)


# ---------------------------------------------------------------- embed, archive on S3 (moto on 127.0.0.1)


def test_embed_s3_archive_prefix_rules(ray_local, s3_bucket, tmp_path):
    """On s3:// a relative path must stay under the archive's prefix after normalising '..'; an allowed
    prefix matches whole path components only."""
    fs, _ = filesystem(s3_bucket)
    bucket = s3_bucket.removeprefix("s3://")
    for key, seed in (("archive/img/in.png", 5), ("shared/y.png", 6), ("secret/z.png", 7), ("sharedX/w.png", 8)):
        fs.pipe(f"{bucket}/{key}", png(seed))
    rows = {
        "in": "img/in.png",
        "up-to-allowed": "../shared/y.png",
        "up-to-secret": "../secret/z.png",
        "uri-allowed": f"{s3_bucket}/shared/y.png",
        "uri-sibling": f"{s3_bucket}/sharedX/w.png",
        "uri-dotdot": f"{s3_bucket}/shared/../secret/z.png",
    }
    archive = f"{s3_bucket}/archive"
    write_dataset(pa.table({"clipping_id": list(rows), "image_path": list(rows.values()),
                            "caption": ["c"] * len(rows)}), archive)
    embedded, quarantined = _embed(archive, str(tmp_path / "emb"), "--allowed-image-prefix", f"{s3_bucket}/shared")
    assert embedded == ["in", "up-to-allowed", "uri-allowed"]
    assert quarantined == {
        "up-to-secret": escape_reason("../secret/z.png", f"{s3_bucket}/secret/z.png"),
        "uri-sibling": external_reason(rows["uri-sibling"]),
        "uri-dotdot": external_reason(rows["uri-dotdot"]),
    }
    emb = read_embeddings(str(tmp_path / "emb"))
    ref = load_model("tiny")
    np.testing.assert_allclose(emb.image[emb.ids.tolist().index("uri-allowed")],
                               ref.embed_images(ref.preprocess_images([png(6)]))[0], atol=1e-5)


# ---------------------------------------------------------------- the rule itself, and the flags


@pytest.mark.parametrize("dataset, image_path, policy, expected", [
    ("s3://b/a", "x/../y.png", ImagePolicy(), "s3://b/a/y.png"),
    ("s3://b/a", "../a/y.png", ImagePolicy(), "s3://b/a/y.png"),
    ("s3://b/a", "s3://b/a/y.png", ImagePolicy(allowed_prefixes=("s3://b/a/",)), "s3://b/a/y.png"),
    ("s3://b/a", "s3://c/y.png", ImagePolicy(allowed_prefixes=("s3://",)), "s3://c/y.png"),
    ("s3://b/a", "/y.png", ImagePolicy(allowed_prefixes=("file:///",)), "/y.png"),
    ("s3://b/a", "s3://c//d/./y.png", ImagePolicy(allow_external=True), "s3://c/d/y.png"),
    ("/data/a", TRAVERSAL, ImagePolicy(allow_external=True), "/etc/passwd"),
])
def test_resolve_image_path_allows(dataset, image_path, policy, expected):
    assert resolve_image_path(dataset, image_path, policy) == expected


@pytest.mark.parametrize("dataset, image_path, policy, reason", [
    ("s3://b/a", "../ab/y.png", ImagePolicy(), escape_reason("../ab/y.png", "s3://b/ab/y.png")),
    ("s3://b/a", "s3://b/a/y.png", ImagePolicy(), external_reason("s3://b/a/y.png")),
    ("s3://b/a", "s3://b/ab/y.png", ImagePolicy(allowed_prefixes=("s3://b/a",)), external_reason("s3://b/ab/y.png")),
    ("s3://b/a", "s3://b/y.png", ImagePolicy(allowed_prefixes=("s3://c",)), external_reason("s3://b/y.png")),
    ("/data/a", "/data/ab/y.png", ImagePolicy(allowed_prefixes=("/data/a",)), external_reason("/data/ab/y.png")),
])
def test_resolve_image_path_refuses(dataset, image_path, policy, reason):
    with pytest.raises(ValueError) as e:
        resolve_image_path(dataset, image_path, policy)
    assert str(e.value) == reason


def test_every_image_reading_stage_and_job_takes_the_flags(capsys):
    for command in ("embed", "pretrain", "train", "report", "replicate"):
        assert cli.main([command, "--help"]) == 0
        help_text = capsys.readouterr().out
        assert "--allow-external-images" in help_text and "--allowed-image-prefix PREFIX" in help_text, command
    for job in ("embed_archive", "pretrain", "train"):
        done = subprocess.run([sys.executable, os.path.join("jobs", f"{job}.py"), "--help"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
        assert done.returncode == 0 and "--allowed-image-prefix PREFIX" in done.stdout, job


def test_empty_prefix_is_one_line_and_exit_2(tmp_path, capsys):
    rc = cli.main(["embed", "--archive", str(tmp_path), "--model", "tiny", "--out", str(tmp_path / "o"),
                   "--allowed-image-prefix", ""])
    err = capsys.readouterr().err
    assert rc == 2 and err == ("clippings embed: error: The 'allowed_image_prefix' parameter of embed must be a "
                               "non-empty folder or URI prefix. Got '' instead.\n")


# ---------------------------------------------------------------- training and report read the same way


def _labelled(archive: str) -> str:
    """Give every row of `archive` its own label, in place (so relative image paths still resolve)."""
    table = pq.read_table(os.path.join(archive, "part-00000.parquet"))
    write_dataset(table.append_column("label", table.column("clipping_id")), archive)
    return archive


def test_training_stops_on_a_refused_path_with_one_line(local_case, ray_local, tmp_path, capsys):
    archive = _labelled(local_case["archive"])
    rc = cli.main(["train", "--archive", archive, "--val", archive, "--model", "tiny", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"clippings train: error: archive {archive}: clipping_id "
                               f"'traversal': {local_case['reasons']['traversal']}; fix or remove the row before "
                               "training\n")


def _subset(local_case: dict, folder: str) -> tuple[list[str], str]:
    """An archive whose `img/` is a symlink to the case archive's image folder (outside this archive), with
    one inline row without caption and two rows naming the outside image by absolute path and file:// URI."""
    ids = ["in", "null-caption", "absolute", "file-uri"]
    write_dataset(pa.table({
        "clipping_id": ids,
        "image": pa.array([None, png(1), None, None], pa.binary()),
        "image_path": ["img/in.png", None, local_case["secret"], "file://" + local_case["secret"]],
        "caption": pa.array(["inside", None, "a", "b"], pa.string()),
    }), folder)
    os.symlink(os.path.join(local_case["archive"], "img"), os.path.join(folder, "img"))
    return ids, folder


def test_training_pairs_read_allowed_paths_and_null_captions(local_case, ray_local, tmp_path):
    from clippings.preprocess import describe_loaded, uint8_pixels
    from clippings.train.pairs import labelled_store

    loaded = load_model("tiny")
    model = describe_loaded("tiny", loaded)
    ids, archive = _subset(local_case, str(tmp_path / "subset"))
    _labelled(archive)
    with pytest.raises(BadInput) as e:
        labelled_store(archive, model)
    inside_file = os.path.join(local_case["archive"], "img", "in.png")
    assert str(e.value) == (f"archive {archive}: clipping_id 'in': {escape_reason('img/in.png', inside_file)}; "
                            "fix or remove the row before training")
    store = labelled_store(archive, model,
                           images=ImagePolicy(allowed_prefixes=(local_case["archive"], local_case["outside"])))
    assert store.provenance["rows"] == len(ids) and store.labels.tolist() == [2, 3, 0, 1]  # codes of the sorted labels
    rows = store.rows(np.arange(4))
    from clippings.image_paths import decode_image

    inside, secret = (uint8_pixels(loaded.processor, [decode_image(png(s))])[0] for s in (1, 2))
    for i, expected in enumerate((inside, inside, secret, secret)):
        np.testing.assert_array_equal(rows["pixels"][i], expected)
    empty = loaded.processor.tokenizer([""])["input_ids"][0]
    assert rows["input_ids"][1][: len(empty)].tolist() == empty and rows["length"][1] == len(empty)


def test_report_shows_a_refused_image_and_reads_an_allowed_one(local_case, tmp_path):
    ids, archive = _subset(local_case, str(tmp_path / "subset"))
    links = str(tmp_path / "links")
    write_table_atomic(pa.table({"clipping_id": ids, "cluster_id": ["absolute"] * 4, "cluster_size": [4] * 4},
                                schema=CLUSTERS_SCHEMA), f"{links}/clusters.parquet")
    write_table_atomic(pa.table({"src": ids[:3], "dst": ids[1:], "distance": [0.1, 0.2, 0.3]}, schema=MST_SCHEMA),
                       f"{links}/mst.parquet")
    write_json(f"{links}/links.json", {"threshold": 0.35})  # last, as a link writes it
    out = str(tmp_path / "report")
    assert cli.main(["report", "--links", links, "--archive", archive, "--out", out]) == 0
    page = open(os.path.join(out, "index.html")).read()
    refused = [external_reason(local_case["secret"]), external_reason("file://" + local_case["secret"]),
               escape_reason("img/in.png", os.path.join(local_case["archive"], "img", "in.png"))]
    for reason in refused:
        assert f'<div class="broken">image refused: {html.escape(reason)}</div>' in page
    assert page.count('<img src="images/') == 1  # the inline image
    assert '<div class="caption"><span class="nocap">(no caption)</span></div>' in page
    out = str(tmp_path / "report2")
    assert cli.main(["report", "--links", links, "--archive", archive, "--out", out, "--allowed-image-prefix",
                     local_case["archive"], "--allowed-image-prefix", local_case["outside"]]) == 0
    page = open(os.path.join(out, "index.html")).read()
    assert page.count('<img src="images/') == 4 and 'class="broken"' not in page


# ---------------------------------------------------------------- a null caption is linked by its image


def test_null_caption_is_linked_by_its_image_end_to_end(ray_local, tmp_path, capsys):
    """embed → link → evaluate → report: the clipping without caption joins its captioned reprint."""
    archive = str(tmp_path / "archive")
    write_dataset(pa.table({
        "clipping_id": ["a1", "a2", "b1", "c1"],
        "image": pa.array([png(11), png(11), png(12), png(13)], pa.binary()),
        "caption": pa.array(["General Pershing at El Paso", None, "Senate passes tariff bill", ""], pa.string()),
        "label": ["g1", "g1", "g2", "g3"],
    }), archive)
    emb_dir, links = str(tmp_path / "emb"), str(tmp_path / "links")
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", emb_dir]) == 0
    assert read_quarantine(emb_dir).num_rows == 0
    emb = read_embeddings(emb_dir)
    row = {cid: i for i, cid in enumerate(emb.ids.tolist())}
    ref = load_model("tiny")
    np.testing.assert_allclose(emb.text[row["a2"]], ref.embed_texts([""])[0], atol=1e-5)
    np.testing.assert_allclose(emb.text[row["a2"]], emb.text[row["c1"]], atol=1e-5)
    assert cli.main(["link", "--embeddings", emb_dir, "--out", links, "--threshold", "0.0001", "--im-wt", "1.0"]) == 0
    clusters = pq.read_table(os.path.join(links, "clusters.parquet")).to_pylist()
    assert {c["clipping_id"]: c["cluster_id"] for c in clusters} == {"a1": "a1", "a2": "a1", "b1": "b1", "c1": "c1"}
    capsys.readouterr()
    assert cli.main(["evaluate", "--links", links, "--archive", archive]) == 0
    assert "(4 clippings, 3 clusters, 3 true groups, 0 quarantined, 2 with (no caption))" in capsys.readouterr().out
    metrics = json.load(open(os.path.join(links, "metrics.json")))
    assert metrics["ari"] == 1.0 and metrics["no_caption"] == 2
    report = str(tmp_path / "report")
    assert cli.main(["report", "--links", links, "--archive", archive, "--out", report]) == 0
    page = open(os.path.join(report, "index.html")).read()
    assert page.count('<span class="nocap">(no caption)</span>') == 1 and "General Pershing at El Paso" in page


def test_jaccard_links_a_null_caption_to_nothing():
    from clippings.baselines import jaccard_link

    labels = jaccard_link(["General Pershing at El Paso", None, "", "General Pershing at El Paso"], 2, 0.5).labels
    assert labels[0] == labels[3] and len({labels[0], labels[1], labels[2]}) == 3
