"""Late fusion: one embeddings dataset from the image tower of one model and the text tower of another.

The paper's claim is that training the pooled embedding w·img + (1−w)·txt end to end beats towers trained
apart. Late fusion is the "apart" side: the supervised visual row's image vectors beside the supervised
language row's text vectors, pooled and cut at the w and t tuned on val like any embeddings (replicate's
"Supervised late fusion" row). Users get the same: the best image model and the best caption model, linked
together without training a joint one.

Both inputs must be embeddings of the same archive (`clippings embed` writes one part per archive part, rows
in archive order): parts are matched by name and their ids must be equal row for row, so the fused rows are
aligned without a join; anything else is refused in one line. With equal ids in every part, the two inputs
quarantined the same clippings: the image side's quarantine rows are carried over, so every archive id still
ends in the output or a quarantine file. `fuse.json` (inputs, counts) is written last; an `out` that holds
other files than an earlier fusion's (and logs) is refused, never overwritten.
"""

from __future__ import annotations

import os
import posixpath

import pyarrow as pa

from clippings.archive import QUARANTINE_DIR, read_quarantine, write_quarantine
from clippings.embeddings import (
    META_DTYPE,
    META_FINGERPRINT,
    META_MODEL,
    embeddings_table,
    fixed_list_to_numpy,
)
from clippings.errors import BadInput
from clippings.storage import (
    exists,
    filesystem,
    is_remote,
    join,
    list_parts,
    read_part,
    remove_tree,
    write_json,
    write_table_atomic,
)

FUSE_JSON = "fuse.json"


def _meta(table: pa.Table, key: bytes) -> str:
    return (table.schema.metadata or {}).get(key, b"").decode()


def _clear(out: str) -> None:
    """Remove an earlier fusion from `out`; refuse an `out` that holds anything else (logs aside)."""
    if exists(join(out, FUSE_JSON)):
        for name in (FUSE_JSON, QUARANTINE_DIR):
            remove_tree(join(out, name))
        fs, inner = filesystem(out)
        for path in fs.ls(inner, detail=False):
            if posixpath.basename(path).startswith("part-"):
                remove_tree(join(out, posixpath.basename(path)))
        return
    if not is_remote(out) and os.path.isdir(out):
        others = sorted(e for e in os.listdir(out) if not e.endswith(".log"))
        if others:
            raise BadInput(f"fuse: --out {out} exists and holds {others[0]!r}, not an earlier fusion; give a new or "
                           "empty folder")


def fuse_embeddings(image: str, text: str, out: str) -> dict[str, int]:
    """Write `out`: the `image_emb` of embeddings `image` and the `text_emb` of embeddings `text`, part by part
    (memory: one part of each). The fused fingerprint names both models'. Returns counts (parts, rows,
    quarantined). Raises BadInput when the two were not embedded from the same archive parts."""
    image_parts, text_parts = list_parts(image, "embeddings"), list_parts(text, "embeddings")
    names = [posixpath.basename(p) for p in image_parts]
    if names != [posixpath.basename(p) for p in text_parts]:
        raise BadInput(f"fuse: {image} and {text} hold other parts ({len(image_parts)} and {len(text_parts)}); "
                       "embed the same archive with both models")
    _clear(out)
    rows = 0
    for name, a_path, b_path in zip(names, image_parts, text_parts, strict=True):
        a, b = read_part(a_path, "embeddings"), read_part(b_path, "embeddings")
        if not a.column("clipping_id").equals(b.column("clipping_id")):
            raise BadInput(f"fuse: part {name} of {image} and of {text} hold other clippings (or another order); "
                           "embed the same archive with both models")
        dim_a, dim_b = (t.schema.field("image_emb").type.list_size for t in (a, b))
        if dim_a != dim_b:
            raise BadInput(f"fuse: {image} has {dim_a}-d vectors and {text} {dim_b}-d; the two towers must have "
                           "one size to be pooled")
        fingerprint = f"image:{_meta(a, META_FINGERPRINT)}+text:{_meta(b, META_FINGERPRINT)}"
        model = f"image tower of {_meta(a, META_MODEL)} + text tower of {_meta(b, META_MODEL)}"
        dtype = _meta(a, META_DTYPE) or "float32"
        table = embeddings_table(a.column("clipping_id").to_pylist(),
                                 fixed_list_to_numpy(a.column("image_emb"), dim_a),
                                 fixed_list_to_numpy(b.column("text_emb"), dim_a), fingerprint, model, dtype)
        write_table_atomic(table, join(out, name))
        rows += table.num_rows
    quarantine = read_quarantine(image)
    write_quarantine(out, quarantine, "image.parquet")
    counts = {"parts": len(names), "rows": rows, "quarantined": quarantine.num_rows}
    write_json(join(out, FUSE_JSON), {"image": image, "text": text, **counts})
    return counts
