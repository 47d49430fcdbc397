"""The embeddings dataset: both towers per clipping, unit norm, with the model fingerprint in file metadata.

Kept apart from `model.py` so linking and tuning read embeddings without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clippings.archive import check_unique_ids, list_parts, read_part
from clippings.errors import BadInput

META_FINGERPRINT = b"clippings.fingerprint"
META_MODEL = b"clippings.model"
META_DIM = b"clippings.dim"
META_DTYPE = b"clippings.dtype"

UNIT_NORM_TOLERANCE = {"float32": 1e-3, "float16": 1e-2}


def embeddings_schema(dim: int, dtype: str, fingerprint: str, model_name: str) -> pa.Schema:
    """Schema of an embeddings part: id + two fixed-size float lists, fingerprint in the metadata."""
    value = pa.float16() if dtype == "float16" else pa.float32()
    return pa.schema(
        [
            pa.field("clipping_id", pa.string()),
            pa.field("image_emb", pa.list_(value, dim)),
            pa.field("text_emb", pa.list_(value, dim)),
        ],
        metadata={
            META_FINGERPRINT: fingerprint.encode(),
            META_MODEL: model_name.encode(),
            META_DIM: str(dim).encode(),
            META_DTYPE: dtype.encode(),
        },
    )


def embeddings_table(
    ids: list[str], image: np.ndarray, text: np.ndarray, fingerprint: str, model_name: str, dtype: str = "float32"
) -> pa.Table:
    """Build an embeddings part from (n, d) arrays (already unit norm)."""
    n, dim = image.shape
    np_dtype = np.float16 if dtype == "float16" else np.float32
    schema = embeddings_schema(dim, dtype, fingerprint, model_name)
    value_type = schema.field("image_emb").type.value_type

    def column(a: np.ndarray) -> pa.Array:
        flat = pa.array(np.ascontiguousarray(a, dtype=np_dtype).reshape(-1), type=value_type)
        return pa.FixedSizeListArray.from_arrays(flat, dim)

    return pa.Table.from_arrays([pa.array(ids, pa.string()), column(image), column(text)], schema=schema)


@dataclass
class Embeddings:
    """Both towers of an embeddings dataset in memory (float32), rows aligned with `ids`."""

    ids: np.ndarray
    image: np.ndarray
    text: np.ndarray
    fingerprint: str
    model_name: str

    def pooled(self, im_wt: float) -> np.ndarray:
        """Unit-norm `w·img + (1−w)·txt` (design.md §1); float32 (n, d)."""
        return pool(self.image, self.text, im_wt)


def pool(image: np.ndarray, text: np.ndarray, im_wt: float) -> np.ndarray:
    """Unit-norm weighted sum of the two towers; rows whose sum is zero stay zero."""
    v = im_wt * image.astype(np.float32, copy=False) + (1.0 - im_wt) * text.astype(np.float32, copy=False)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def _fixed_list_to_numpy(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    arr = column.combine_chunks()
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)


def read_embeddings(path: str) -> Embeddings:
    """Read and validate an embeddings dataset.

    Refuses: mixed model fingerprints across parts, NaN/inf values, vectors that are not unit norm,
    an empty dataset, duplicate ids. Memory: 2·n·d·4 bytes.
    """
    ids, images, texts = [], [], []
    fingerprint = model_name = None
    first_part = None
    for part in list_parts(path, "embeddings"):
        table = read_part(part, "embeddings")
        missing = {"clipping_id", "image_emb", "text_emb"} - set(table.column_names)
        if missing:
            raise BadInput(
                f"embeddings {part}: column(s) {', '.join(sorted(missing))} missing; "
                "this is not an embeddings dataset: run 'clippings embed'"
            )
        meta = table.schema.metadata or {}
        fp = meta.get(META_FINGERPRINT, b"").decode()
        if not fp:
            raise BadInput(f"embeddings {part}: no model fingerprint in the file metadata; re-run 'clippings embed'")
        if fingerprint is None:
            fingerprint, model_name, first_part = fp, meta.get(META_MODEL, b"").decode(), part
        elif fp != fingerprint:
            raise BadInput(
                f"embeddings {path}: mixed model fingerprints ({first_part} has {fingerprint}, {part} has {fp}); "
                "embed the whole archive with one model"
            )
        if table.num_rows == 0:
            continue
        dim = table.schema.field("image_emb").type.list_size
        ids.append(np.asarray(table.column("clipping_id").to_pylist(), dtype=object))
        images.append(_fixed_list_to_numpy(table.column("image_emb"), dim))
        texts.append(_fixed_list_to_numpy(table.column("text_emb"), dim))
    if not ids:
        raise BadInput(f"embeddings {path}: the dataset is empty (0 rows); embed at least one clipping")
    emb = Embeddings(np.concatenate(ids), np.concatenate(images), np.concatenate(texts), fingerprint, model_name)
    check_unique_ids(emb.ids.tolist(), path, "embeddings")
    for name, vectors in (("image_emb", emb.image), ("text_emb", emb.text)):
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise BadInput(
                f"embeddings {path}: {name} of clipping_id {emb.ids[row]!r} has NaN or infinite values; "
                "re-embed it or quarantine it"
            )
        norms = np.linalg.norm(vectors, axis=1)
        bad = np.abs(norms - 1.0) > 1e-2
        if bad.any():
            row = int(np.argmax(bad))
            raise BadInput(
                f"embeddings {path}: {name} of clipping_id {emb.ids[row]!r} has norm {norms[row]:.4f}, not 1; "
                "embeddings must be unit norm: normalise them or re-run 'clippings embed'"
            )
    return emb
