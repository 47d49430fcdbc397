"""The data contract: Arrow schemas of every dataset, validating and reading archives, and quarantine.

An archive is a dataset (a folder of `part-*.parquet` files, local or `s3://`; read and written by
`clippings.storage`); its rows' images are read under `clippings.image_paths`. Every check raises
`BadInput` with one line naming the dataset, the file or row, and the fix (see
docs/architecture.md#data-contract and #reliability).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from clippings.errors import BadInput
from clippings.storage import filesystem, join, list_parts, read_part, write_table_atomic

ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("clipping_id", pa.string(), nullable=False),
        pa.field("image", pa.binary()),
        pa.field("image_path", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("label", pa.string()),
        pa.field("source", pa.string()),
        pa.field("date", pa.string()),
        pa.field("page", pa.string()),
    ]
)
"""Archive columns: `clipping_id` is required and unique; one of `image`/`image_path` per row."""

MST_SCHEMA = pa.schema(
    [pa.field("src", pa.string()), pa.field("dst", pa.string()), pa.field("distance", pa.float64())]
)
CLUSTERS_SCHEMA = pa.schema(
    [pa.field("clipping_id", pa.string()), pa.field("cluster_id", pa.string()), pa.field("cluster_size", pa.int64())]
)
QUARANTINE_SCHEMA = pa.schema(
    [pa.field("clipping_id", pa.string()), pa.field("stage", pa.string()), pa.field("reason", pa.string())]
)
QUARANTINE_DIR = "_quarantine"

_STRING_TYPES = (pa.string(), pa.large_string())
_BINARY_TYPES = (pa.binary(), pa.large_binary())
_COLUMN_TYPES = {
    "clipping_id": _STRING_TYPES,
    "image": _BINARY_TYPES,
    "image_path": _STRING_TYPES,
    "caption": _STRING_TYPES,
    "label": _STRING_TYPES,
}


# ---------------------------------------------------------------- archive validation


def _type_ok(column: str, typ: pa.DataType) -> bool:
    allowed = _COLUMN_TYPES.get(column)
    return allowed is None or typ in allowed or pa.types.is_null(typ)


def validate_archive_part(table: pa.Table, where: str, require_labels: bool = False) -> None:
    """Check one archive part's schema and rows; `where` names the file in messages."""
    names = table.column_names
    if "clipping_id" not in names:
        raise BadInput(
            f"archive {where}: required column 'clipping_id' is missing (found: {', '.join(names) or 'none'}); "
            "add a unique string id per clipping"
        )
    for column in names:
        typ = table.schema.field(column).type
        if not _type_ok(column, typ):
            need = "binary" if column == "image" else "string"
            raise BadInput(
                f"archive {where}: column '{column}' has type {typ}, needs {need}; cast the column to {need}"
            )
    if "image" not in names and "image_path" not in names:
        raise BadInput(
            f"archive {where}: neither 'image' nor 'image_path' column is present; "
            "give encoded image bytes in 'image' or a file path in 'image_path'"
        )
    if require_labels and "label" not in names:
        raise BadInput(f"archive {where}: column 'label' is missing; a labelled set needs a label on every row")
    ids = table.column("clipping_id")
    if ids.null_count:
        row = ids.is_null().to_pylist().index(True)
        raise BadInput(f"archive {where}: row {row} has no clipping_id; give every row a unique id")
    has_image = (table.column("image").is_valid() if "image" in names
                 else pa.array([False] * table.num_rows, pa.bool_()))
    has_path = (table.column("image_path").is_valid() if "image_path" in names
                else pa.array([False] * table.num_rows, pa.bool_()))
    both_missing = pc.invert(pc.or_(has_image, has_path))
    if pc.any(both_missing).as_py():
        row = both_missing.to_pylist().index(True)
        raise BadInput(
            f"archive {where}: row {row} (clipping_id {ids[row].as_py()!r}) has neither 'image' nor 'image_path'; "
            "give every row an image or an image path"
        )
    if require_labels:
        labels = table.column("label")
        if labels.null_count:
            row = labels.is_null().to_pylist().index(True)
            raise BadInput(
                f"archive {where}: row {row} (clipping_id {ids[row].as_py()!r}) has no label; a labelled set "
                "gives every row a label (singletons their own)"
            )


def check_unique_ids(ids: Iterable[str], where: str, what: str = "archive") -> None:
    """Raise BadInput naming up to three repeated ids with their counts."""
    counts = Counter(ids)
    repeated = [(i, c) for i, c in counts.items() if c > 1]
    if repeated:
        shown = ", ".join(f"{i!r} appears {c} times" for i, c in repeated[:3])
        more = f" (and {len(repeated) - 3} more)" if len(repeated) > 3 else ""
        raise BadInput(f"{what} {where}: clipping_id {shown}{more}; ids must be unique: deduplicate the input")


def normalise_archive(table: pa.Table) -> pa.Table:
    """Cast a validated archive table to ARCHIVE_SCHEMA's types, adding absent optional columns as nulls."""
    columns = {}
    for field in ARCHIVE_SCHEMA:
        if field.name in table.column_names:
            columns[field.name] = table.column(field.name).cast(field.type)
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    extra = [c for c in table.column_names if c not in columns]
    for c in extra:
        columns[c] = table.column(c)
    return pa.table(columns)


def read_archive(path: str, require_labels: bool = False) -> pa.Table:
    """Read and validate an archive dataset; returns a table in ARCHIVE_SCHEMA's types.

    Memory: the whole archive (images included) in RAM; use the Ray Data pipeline for archive scale.
    """
    tables = []
    for part in list_parts(path, "archive"):
        t = read_part(part, "archive")
        validate_archive_part(t, part, require_labels)
        tables.append(normalise_archive(t))
    table = pa.concat_tables(tables, promote_options="permissive")
    if table.num_rows == 0:
        raise BadInput(f"archive {path}: the dataset is empty (0 rows); give at least one row")
    check_unique_ids(table.column("clipping_id").to_pylist(), path)
    return table


def iter_archive_parts(path: str, require_labels: bool = False) -> Iterator[tuple[str, pa.Table]]:
    """Yield (part path, validated table) for each part: bounded memory for big archives."""
    for part in list_parts(path, "archive"):
        t = read_part(part, "archive")
        validate_archive_part(t, part, require_labels)
        yield part, normalise_archive(t)


# ---------------------------------------------------------------- quarantine


def quarantine_table(ids: list[str], stage: str, reasons: list[str]) -> pa.Table:
    return pa.table(
        {"clipping_id": ids, "stage": [stage] * len(ids), "reason": reasons}, schema=QUARANTINE_SCHEMA
    )


def write_quarantine(output: str, table: pa.Table, name: str) -> str | None:
    """Write quarantine rows to `output/_quarantine/<name>` (e.g. a part name); nothing when empty."""
    if table.num_rows == 0:
        return None
    path = join(output, QUARANTINE_DIR, name)
    write_table_atomic(table.cast(QUARANTINE_SCHEMA), path)
    return path


def read_quarantine(output: str) -> pa.Table:
    """All quarantine rows next to dataset `output` (an empty table when there are none)."""
    folder = join(output, QUARANTINE_DIR)
    fs, inner = filesystem(folder)
    if not fs.exists(inner):
        return QUARANTINE_SCHEMA.empty_table()
    files = sorted(p for p in fs.ls(inner, detail=False) if p.endswith(".parquet"))
    if not files:
        return QUARANTINE_SCHEMA.empty_table()
    return pa.concat_tables(
        [read_part(join(folder, posixpath.basename(f)), "quarantine") for f in files]
    ).cast(QUARANTINE_SCHEMA)
