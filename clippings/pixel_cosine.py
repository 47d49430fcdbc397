"""Pixel cosine: the visual rule baseline, counterpart of Jaccard on captions.

Each image becomes a 16×16 grey thumbnail, mean-centred and unit-normalised; two clippings are linked by
single linkage when the cosine distance of their thumbnails is ≤ t, with t tuned on a labelled validation
set. It measures how much of reprint identity plain low-resolution layout and tone already carry, so a
learned image tower has to beat it to be worth its training.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from clippings.archive import quarantine_table, read_archive
from clippings.embeddings import Embeddings
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, read_row_image

SIZE = 16
STAGE = "baseline-pixels"


def thumbnail_vector(data: bytes, size: int = SIZE) -> np.ndarray:
    """A unit-norm, mean-centred `size`² grey thumbnail of encoded image bytes (a flat image: all zeros)."""
    from PIL import Image

    from clippings.image_paths import decode_image

    grey = decode_image(data).convert("L").resize((size, size), Image.Resampling.BOX)
    v = np.asarray(grey, np.float32).reshape(-1)
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-6 else np.zeros_like(v)


def pixel_embeddings(dataset: str, images: ImagePolicy = ARCHIVE_ONLY, require_labels: bool = False
                     ) -> tuple[Embeddings, list[str | None], pa.Table]:
    """Thumbnail vectors of every readable image of `dataset` (as both towers), the labels of those rows,
    and a quarantine table of the rows whose image could not be read or decoded (with the reason).

    Memory: the archive table plus n·256 float32. Cost: one decode and resize per image, one core.
    """
    table = read_archive(dataset, require_labels=require_labels)
    ids, vectors, labels, bad_ids, reasons = [], [], [], [], []
    rows = zip(table.column("clipping_id").to_pylist(), table.column("image").to_pylist(),
               table.column("image_path").to_pylist(), table.column("label").to_pylist(), strict=True)
    for clipping_id, image, path, label in rows:
        try:
            vectors.append(thumbnail_vector(read_row_image(dataset, image, path, images)))
        except ValueError as e:
            bad_ids.append(clipping_id)
            reasons.append(str(e))
            continue
        ids.append(clipping_id)
        labels.append(label)
    matrix = np.stack(vectors) if vectors else np.zeros((0, SIZE * SIZE), np.float32)
    emb = Embeddings(np.asarray(ids, dtype=object), matrix, matrix, f"pixels:{SIZE}px-grey", "pixel cosine")
    return emb, labels, quarantine_table(bad_ids, STAGE, reasons)


def run_pixel_baseline(archive: str, val: str, out: str, images: ImagePolicy = ARCHIVE_ONLY) -> dict:
    """Tune t on `val`, link `archive` by thumbnail cosine, write a links folder to `out`; returns links.json.

    Unreadable images are quarantined in `out/_quarantine` (the clusters hold every other id).
    Cost: the thumbnails, then an exact flat kNN link (clippings.link).
    """
    from clippings.evaluate import ari
    from clippings.link.pipeline import link_embeddings, write_links
    from clippings.link.tune import tune_threshold

    t0 = time.perf_counter()
    val_emb, val_labels, _ = pixel_embeddings(val, images, require_labels=True)
    tuned = tune_threshold(val_emb.image, np.asarray(val_labels, dtype=object).astype(str))
    tune_s = time.perf_counter() - t0
    emb, labels, quarantine = pixel_embeddings(archive, images)
    result = link_embeddings(emb, tuned.threshold, im_wt=1.0)
    result.info.update({"method": "pixels", "size": SIZE, "val_ari": float(tuned.ari), "archive": archive,
                        "val": val})
    result.info["counts"]["quarantined"] = quarantine.num_rows
    result.info["timings"]["tune_s"] = round(tune_s, 3)
    if labels and all(label is not None for label in labels):
        result.info["ari"] = ari(labels, result.cluster_ids)
    write_links(out, result, quarantine if quarantine.num_rows else None)
    return result.info
