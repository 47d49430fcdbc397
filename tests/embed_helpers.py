"""Small archives for the embed tests, built with PIL (no dependence on the synthetic generator)."""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
from PIL import Image

from clippings.storage import part_name, write_table_atomic


def png(seed: int, size: tuple[int, int] = (40, 56)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_archive(folder: str, parts: int, rows: int, first_id: int = 0) -> list[str]:
    """`parts` parts of `rows` rows each, images inline, captions of varied length; returns all ids."""
    os.makedirs(folder, exist_ok=True)
    ids = []
    for p in range(parts):
        n = [f"c{first_id + p * rows + i:05d}" for i in range(rows)]
        captions = [f"Gen. Pershing {i} at El Paso " * (1 + i % 4) for i in range(len(n))]
        table = pa.table({
            "clipping_id": n,
            "image": pa.array([png(first_id + p * rows + i) for i in range(rows)], pa.binary()),
            "caption": captions,
            "label": [None] * rows,
        })
        write_table_atomic(table, os.path.join(folder, part_name(p)))
        ids.extend(n)
    return ids
