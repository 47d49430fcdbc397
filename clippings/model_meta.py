"""`clippings.json` beside a model's HF files: the pooling weight, threshold, provenance and metrics.

Light on purpose (no torch) so linking and tuning can read and update it.
"""

from __future__ import annotations

from typing import Any

from clippings.storage import exists, join, read_json, write_json

META_FILE = "clippings.json"


def read_clippings_meta(model_dir: str) -> dict[str, Any]:
    """The model's `clippings.json` as a dict; {} when the folder has none (e.g. a hub model)."""
    path = join(model_dir, META_FILE)
    return read_json(path) if exists(path) else {}


def update_clippings_meta(model_dir: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the model's `clippings.json` (atomic write) and return the result."""
    meta = read_clippings_meta(model_dir)
    meta.update(fields)
    write_json(join(model_dir, META_FILE), meta)
    return meta
