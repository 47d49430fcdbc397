"""Pixel cosine, the visual rule baseline: 16 px grey thumbnails, single linkage checked against scipy."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from clippings.archive import read_archive
from clippings.cli import main
from clippings.pixel_cosine import pixel_embeddings, thumbnail_vector
from clippings.storage import write_dataset


def _scipy_clusters(vectors: np.ndarray, threshold: float) -> np.ndarray:
    return fcluster(linkage(vectors, method="single", metric="cosine"), t=threshold, criterion="distance")


def test_thumbnail_is_mean_centred_and_unit(train_archives):
    table = read_archive(train_archives["val"])
    data = table.column("image")[0].as_py()
    v = thumbnail_vector(data)
    assert v.shape == (256,) and abs(float(v.sum())) < 1e-3 and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    flat = thumbnail_vector(_png(np.full((20, 20, 3), 128, np.uint8)))
    assert not flat.any()  # a flat image has no layout: the zero vector, never NaN


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_pixel_baseline_equals_scipy_single_linkage_and_quarantines_bad_images(train_archives, tmp_path):
    table = read_archive(train_archives["train"])
    bad = pa.table({"clipping_id": ["broken"], "image": pa.array([b"not an image"], pa.binary()),
                    "caption": ["x"], "label": ["broken"]})
    archive = tmp_path / "archive"
    write_dataset(pa.concat_tables([table.select(["clipping_id", "image", "caption", "label"]), bad]), str(archive))
    out = tmp_path / "links"
    assert main(["baseline", "--method", "pixels", "--archive", str(archive), "--val", train_archives["val"],
                 "--out", str(out)]) == 0
    info = json.loads((out / "links.json").read_text())
    assert info["method"] == "pixels" and info["counts"]["quarantined"] == 1
    quarantine = pq.read_table(out / "_quarantine").to_pydict()
    assert quarantine["clipping_id"] == ["broken"] and quarantine["reason"][0].startswith("undecodable image")
    clusters = pq.read_table(out / "clusters.parquet").to_pydict()
    assert sorted(clusters["clipping_id"]) == sorted(table.column("clipping_id").to_pylist())

    emb, labels, _ = pixel_embeddings(str(archive))
    expected = _scipy_clusters(emb.image, info["threshold"])
    found = dict(zip(clusters["clipping_id"], clusters["cluster_id"], strict=True))
    assert adjusted_rand_score(expected, [found[i] for i in emb.ids]) == 1.0
    assert info["ari"] == adjusted_rand_score(labels, [found[i] for i in emb.ids])

    val, val_labels, _ = pixel_embeddings(train_archives["val"])
    assert info["val_ari"] == adjusted_rand_score(val_labels, _scipy_clusters(val.image, info["threshold"]))
