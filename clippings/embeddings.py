"""The embeddings dataset: both towers per clipping, unit norm, with the model fingerprint in file metadata.

Kept apart from `model.py` so linking and tuning read embeddings without importing torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.archive import check_unique_ids
from clippings.errors import BadInput
from clippings.storage import list_parts, read_part

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
        """Unit-norm `w·img + (1−w)·txt` (docs/architecture.md#the-job); float32 (n, d)."""
        return pool(self.image, self.text, im_wt)


def pool(image: np.ndarray, text: np.ndarray, im_wt: float) -> np.ndarray:
    """Unit-norm weighted sum of the two towers; rows whose sum is zero stay zero. Float32 throughout (the
    weights too); the sum is normalised in place (temporaries: the weighted text tower, the squares)."""
    v = np.multiply(image, np.float32(im_wt), dtype=np.float32)
    v += np.multiply(text, np.float32(1.0 - im_wt), dtype=np.float32)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))
    return v


TORCH_WIDENS = 1 << 25
"""From this many float16 values a column is widened by torch: exact, like numpy's cast, but vectorised
(numpy's float16 casts are scalar loops, ~10× slower); below it numpy's cast costs less than importing torch."""


def torch_view(a: np.ndarray, dtype: np.dtype | type | None = None):
    """A torch tensor over `a` (a copy only where `dtype` or the layout asks for one), read-only arrays too:
    Arrow's buffers and memory-mapped lists are read-only, and torch warns on them because it cannot keep a
    writer out; every caller here only reads the tensor or a cast of it."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))


def fixed_list_to_numpy(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    """(rows, dim) float32 copy of a fixed-size list column of vectors."""
    values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    if values.dtype == np.float16 and values.size >= TORCH_WIDENS:
        return torch_view(values).float().numpy()
    return values.astype(np.float32)


@dataclass
class TowersPart:
    """One part of an embeddings dataset read: ids (Arrow strings), both towers as float32, the model
    fingerprint and name from its metadata, and the dtype the vectors were stored in."""

    ids: pa.Array
    image: np.ndarray
    text: np.ndarray
    fingerprint: str
    model_name: str
    stored: str


def read_towers_part(part: str) -> TowersPart:
    """One embeddings part, after the checks that need no other part (its columns, a fingerprint)."""
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
    dim = table.schema.field("image_emb").type.list_size
    stored = np.dtype(table.schema.field("image_emb").type.value_type.to_pandas_dtype()).name
    return TowersPart(table.column("clipping_id").combine_chunks(), fixed_list_to_numpy(table.column("image_emb"), dim),
                      fixed_list_to_numpy(table.column("text_emb"), dim), fp, meta.get(META_MODEL, b"").decode(),
                      stored)


def same_model(path: str, parts: list[str], fingerprints: list[str]) -> None:
    """Refuse parts embedded by different models (one line naming the first two that differ)."""
    for part, fp in zip(parts, fingerprints, strict=True):
        if fp != fingerprints[0]:
            raise BadInput(
                f"embeddings {path}: mixed model fingerprints ({parts[0]} has {fingerprints[0]}, {part} has {fp}); "
                "embed the whole archive with one model"
            )


def pooled_part(path: str, part: str, im_wt: float) -> tuple[TowersPart, np.ndarray]:
    """One embeddings part read and checked (_check_vectors), and its rows pooled at `im_wt` (float32); the
    part's towers are dropped (image, text: empty)."""
    towers = read_towers_part(part)
    _check_vectors(path, towers.ids, towers.image, towers.text, towers.stored)
    pooled = pool(towers.image, towers.text, im_wt).astype(np.float32, copy=False)
    towers.image = towers.text = np.empty((0, pooled.shape[1]), np.float32)
    return towers, pooled


def _parts(path: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, str, str, str]]:
    """Each non-empty part of an embeddings dataset as (ids, image, text, fingerprint, model name, stored
    dtype), the vectors as float32, after the checks that need no other part: columns present, one model
    fingerprint across parts."""
    first = None
    for part in list_parts(path, "embeddings"):
        towers = read_towers_part(part)
        first = first or (part, towers.fingerprint)
        same_model(path, [first[0], part], [first[1], towers.fingerprint])
        if len(towers.ids) == 0:
            continue
        ids = np.asarray(towers.ids.to_pylist(), dtype=object)
        yield ids, towers.image, towers.text, towers.fingerprint, towers.model_name, towers.stored


def _check_vectors(path: str, ids: np.ndarray | pa.Array, image: np.ndarray, text: np.ndarray, stored: str) -> None:
    """Refuse NaN/inf values and vectors that are not unit norm within the tolerance of the dtype they were
    `stored` in (one line naming the clipping)."""
    for name, vectors in (("image_emb", image), ("text_emb", text)):
        # one pass: a row with a NaN or infinite value has a norm that is not finite (a finite row's may
        # overflow to inf too; it is then refused for its norm)
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        odd = np.flatnonzero(~np.isfinite(norms))
        nonfinite = odd[~np.isfinite(vectors[odd]).all(axis=1)]
        if len(nonfinite):
            row = int(nonfinite[0])
            raise BadInput(
                f"embeddings {path}: {name} of clipping_id {_id_at(ids, row)!r} has NaN or infinite values; "
                "re-embed it or quarantine it"
            )
        bad = np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE[stored]
        if bad.any():
            row = int(np.argmax(bad))
            raise BadInput(
                f"embeddings {path}: {name} of clipping_id {_id_at(ids, row)!r} has norm {norms[row]:.4f}, not 1; "
                "embeddings must be unit norm: normalise them or re-run 'clippings embed'"
            )


def _id_at(ids: np.ndarray | pa.Array, row: int) -> str:
    return ids[row].as_py() if isinstance(ids, pa.Array) else ids[row]


def check_unique(ids: np.ndarray | pa.Array | pa.ChunkedArray, path: str) -> None:
    """Duplicate ids are refused; counted by Arrow's hash (no Python set of n strings unless one repeats)."""
    values = ids if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids, pa.string())
    if pc.count_distinct(values).as_py() != len(values):
        check_unique_ids(values.to_pylist(), path, "embeddings")


def read_embeddings(path: str) -> Embeddings:
    """Read and validate an embeddings dataset.

    Refuses: mixed model fingerprints across parts, NaN/inf values, vectors that are not unit norm,
    an empty dataset, duplicate ids. Memory: 2·n·d·4 bytes.
    """
    ids, images, texts = [], [], []
    fingerprint = model_name = ""
    for part in _parts(path):
        part_ids, image, text, fingerprint, model_name, stored = part
        _check_vectors(path, part_ids, image, text, stored)
        ids.append(part_ids)
        images.append(image)
        texts.append(text)
    if not ids:
        raise BadInput(f"embeddings {path}: the dataset is empty (0 rows); embed at least one clipping")
    emb = Embeddings(np.concatenate(ids), np.concatenate(images), np.concatenate(texts), fingerprint, model_name)
    check_unique(emb.ids, path)
    return emb


@dataclass
class Pooled:
    """The pooled vectors of an embeddings dataset at one w, as `link` reads them at scale: ids, the (n, d)
    float32 unit vectors (a read-only memory map of a spill file), fingerprint and model name. Quacks like
    Embeddings for linking (`pooled(w)`)."""

    ids: np.ndarray
    vectors: np.ndarray
    fingerprint: str
    model_name: str
    im_wt: float

    def pooled(self, im_wt: float) -> np.ndarray:
        if im_wt != self.im_wt:
            raise ValueError(f"these vectors were pooled at w = {self.im_wt}, not {im_wt}")
        return self.vectors


def read_pooled(path: str, im_wt: float, spill_dir: str | None = None) -> Pooled:
    """Read an embeddings dataset part by part, validated as read_embeddings does, keeping only the pooled
    vectors, written to a spill file and memory-mapped: the towers of one part are in memory at a time.

    spill_dir: local folder for the spill file (default: the system's temporary folder); the file is
    unlinked as soon as it is mapped, so it disappears when the mapping does. Memory: one part's towers plus
    the ids; the n·d·4 bytes of vectors live in the page cache (reclaimable), not in the process's own heap.
    """
    import os
    import tempfile

    ids = []
    fingerprint = model_name = ""
    dim = rows = 0
    fd, spill = tempfile.mkstemp(prefix="clippings-pooled-", suffix=".f32", dir=spill_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in _parts(path):
                part_ids, image, text, fingerprint, model_name, stored = part
                del part
                _check_vectors(path, part_ids, image, text, stored)
                pooled = pool(image, text, im_wt)
                del image, text
                f.write(np.ascontiguousarray(pooled, dtype=np.float32).tobytes())
                ids.append(part_ids)
                dim, rows = pooled.shape[1], rows + len(pooled)
        if not ids:
            raise BadInput(f"embeddings {path}: the dataset is empty (0 rows); embed at least one clipping")
        vectors = np.memmap(spill, dtype=np.float32, mode="r", shape=(rows, dim))
    finally:
        os.unlink(spill)
    all_ids = np.concatenate(ids)
    check_unique(all_ids, path)
    return Pooled(all_ids, vectors, fingerprint, model_name, float(im_wt))
