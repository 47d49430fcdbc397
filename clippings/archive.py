"""The data contract: Arrow schemas of every dataset, and reading, validating and writing them.

A dataset is a folder (local path or `s3://` URI) of `part-*.parquet` files. Every write is atomic: a local
file is written under a temporary name and renamed; an S3 object is one PUT (or one completed multipart
upload), which S3 makes visible all at once. Every check raises `BadInput` with one line naming the dataset,
the file or row, and the fix (see docs/architecture.md#data-contract and #reliability).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clippings.errors import BadInput

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


# ---------------------------------------------------------------- filesystems and atomic files


def filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Resolve a local path or URI to (fsspec filesystem, path inside it).

    `s3://` goes through s3fs, which takes endpoint and credentials from the standard AWS chain
    (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ... or instance roles); nothing is printed.
    """
    fs, inner = fsspec.core.url_to_fs(path)
    return fs, inner


def is_remote(path: str) -> bool:
    """True for URIs such as `s3://bucket/key`, False for local paths."""
    return "://" in path and not path.startswith("file://")


def join(base: str, *parts: str) -> str:
    """Join path parts for local paths and URIs alike (URIs always use '/')."""
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.exists(inner)


def makedirs(path: str) -> None:
    fs, inner = filesystem(path)
    if not is_remote(path):
        fs.makedirs(inner, exist_ok=True)


def remove_tree(path: str) -> bool:
    """Delete a file or folder and everything under it (local or s3://); False when there was nothing."""
    fs, inner = filesystem(path)
    fs.invalidate_cache(inner)  # s3fs: a listing cached before other writers (Ray Train) wrote must not hide them
    if not fs.exists(inner):
        return False
    fs.rm(inner, recursive=True)
    return True


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    fs, inner = filesystem(path)
    if is_remote(path):
        with fs.open(inner, "wb") as f:  # one PUT / one completed multipart upload: atomic on S3
            f.write(data)
        return
    parent = os.path.dirname(os.path.abspath(inner))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(inner)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, inner)


def read_bytes(path: str) -> bytes:
    fs, inner = filesystem(path)
    with fs.open(inner, "rb") as f:
        return f.read()


def write_json(path: str, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str) -> Any:
    try:
        return json.loads(read_bytes(path))
    except FileNotFoundError as e:
        raise BadInput(f"{path}: file not found; check the path") from e
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); re-create the file") from e


def write_table_atomic(table: pa.Table, path: str) -> None:
    """Write one Parquet file atomically (schema metadata included)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------- datasets (folders of parts)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def list_parts(path: str, what: str = "dataset") -> list[str]:
    """The sorted `part-*.parquet` files of a dataset folder, as full paths/URIs.

    Raises BadInput when the folder is missing or holds no parts.
    """
    fs, inner = filesystem(path)
    if not fs.exists(inner) or not fs.isdir(inner):
        raise BadInput(f"{what} {path}: folder not found; give a folder of part-*.parquet files")
    names = sorted(p for p in fs.ls(inner, detail=False) if posixpath.basename(p).startswith("part-")
                   and p.endswith(".parquet"))
    if not names:
        raise BadInput(f"{what} {path}: no part-*.parquet files in the folder; write the dataset as Parquet parts")
    return [join(path, posixpath.basename(n)) for n in names]


def read_part(part: str, what: str = "dataset", columns: list[str] | None = None) -> pa.Table:
    """Read one part file; an unreadable file is a BadInput naming it."""
    fs, inner = filesystem(part)
    try:
        with fs.open(inner, "rb") as f:
            return pq.read_table(f, columns=columns)
    except (pa.ArrowInvalid, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadInput(
            f"{what} {part}: file is not readable Parquet ({first}); re-write or remove the file"
        ) from e


def read_dataset(path: str, what: str = "dataset", columns: list[str] | None = None) -> pa.Table:
    """Read all parts of a dataset folder into one table (schemas unified); empty datasets are errors."""
    tables = [read_part(p, what, columns) for p in list_parts(path, what)]
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    if table.num_rows == 0:
        raise BadInput(f"{what} {path}: the dataset is empty (0 rows); give at least one row")
    return table


def write_dataset(table: pa.Table, path: str, rows_per_part: int = 50_000) -> list[str]:
    """Write `table` as `part-00000.parquet`, ... in folder `path`, each part atomically.

    Returns the part paths. Cost: one pass over the table; memory of one part's encoded bytes.
    """
    makedirs(path)
    parts = []
    n = max(table.num_rows, 1)
    for i, start in enumerate(range(0, n, rows_per_part)):
        part = join(path, part_name(i))
        write_table_atomic(table.slice(start, rows_per_part), part)
        parts.append(part)
    return parts


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


@dataclass(frozen=True)
class ImagePolicy:
    """Which image locations outside the archive folder a run may read
    (docs/architecture.md#where-images-are-read-from).

    An archive handed over by someone else must not pull arbitrary files of the job's user (`/etc/passwd`,
    a key file behind a symlink) into a job, so by default an `image_path` is read only inside the archive
    folder. allow_external: read any absolute path or URI, and relative paths resolving anywhere (the user
    trusts the archive). allowed_prefixes: absolute folders or URI prefixes (`/data/images`,
    `file:///data/images`, `s3://bucket/images`) whose contents may be read; local ones are compared after
    following symlinks, URIs after normalising `..`, and a prefix matches whole path components only.
    """

    allow_external: bool = False
    allowed_prefixes: tuple[str, ...] = ()

    def allows(self, location: str) -> bool:
        """True when the canonical `location` (from `canonical_location`) may be read."""
        return self.allow_external or any(
            _inside(location, canonical_location(prefix)) for prefix in self.allowed_prefixes
        )

    def argv(self) -> list[str]:
        """The command-line flags giving this policy (for stages run through the CLI, e.g. replicate)."""
        flags = ["--allow-external-images"] if self.allow_external else []
        for prefix in self.allowed_prefixes:
            flags += ["--allowed-image-prefix", prefix]
        return flags


ARCHIVE_ONLY = ImagePolicy()
"""The default policy: images are read only inside the archive folder."""


def canonical_location(path: str) -> str:
    """The location a path or URI names, in one spelling: a local path (also `file://`) made absolute with
    symlinks followed; another URI as `scheme://` plus its path with `.`, `..` and repeated `/` removed."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" not in path:
        return os.path.realpath(path)
    scheme, rest = path.split("://", 1)
    rest = posixpath.normpath(rest).lstrip("/")
    return f"{scheme}://{'' if rest == '.' else rest}"


def _inside(location: str, folder: str) -> bool:
    """True when canonical `location` is `folder` or below it (whole components: /a/bc is not in /a/b)."""
    return location == folder or location.startswith(folder.rstrip("/") + "/")


def resolve_image_path(dataset: str, image_path: str, policy: ImagePolicy = ARCHIVE_ONLY) -> str:
    """The canonical location of a row's `image_path`, read only where `policy` allows it.

    A relative path is taken from the dataset folder and must stay inside it once `..` is normalised and,
    for local folders, symlinks are followed; an absolute path or a URI (`file://`, `s3://`, anything
    fsspec reads) lies outside the archive by definition. Outside locations are read only when `policy`
    allows them. Returns the location checked, so the reader opens exactly what was allowed.
    Raises ValueError with a quarantine reason naming the rule otherwise. Cost: one `realpath` (a few
    `lstat` calls) for local paths, string work for URIs; no file is opened.
    """
    if "://" in image_path or os.path.isabs(image_path):
        location = canonical_location(image_path)
        if policy.allows(location):
            return location
        raise ValueError(
            f"image_path {image_path!r} is an absolute path or URI, outside the archive folder; such paths are "
            "read only when allowed: give --allowed-image-prefix covering it or --allow-external-images"
        )
    location = canonical_location(join(dataset, image_path))
    if _inside(location, canonical_location(dataset)) or policy.allows(location):
        return location
    raise ValueError(
        f"image_path {image_path!r} resolves to {location}, outside the archive folder; a relative image_path "
        "must stay inside it: move the file in, or allow it with --allowed-image-prefix or "
        "--allow-external-images"
    )


def read_image_bytes(image: bytes | None, path: str | None) -> bytes:
    """The encoded image of a row: inline bytes, else the file at `path` (already resolved, local or URI).

    Raises ValueError with a short reason (a quarantine reason) when neither is there or the file cannot be read.
    """
    if image is not None:
        return image
    if path is None:
        raise ValueError("no image and no image_path")
    fs, inner = filesystem(path)
    try:
        with fs.open(inner, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise ValueError(f"image file not found: {path}") from e
    except OSError as e:
        raise ValueError(f"image file not readable: {path} ({type(e).__name__})") from e


def read_row_image(dataset: str, image: bytes | None, image_path: str | None,
                   policy: ImagePolicy = ARCHIVE_ONLY) -> bytes:
    """A row's encoded image when the caller holds the raw row: inline bytes win; else `image_path` is
    resolved against `dataset` under `policy` (`resolve_image_path`) and read (`read_image_bytes`).

    Raises ValueError with a quarantine reason (refused path, missing or unreadable file).
    """
    if image is not None or image_path is None:
        return read_image_bytes(image, None)
    return read_image_bytes(None, resolve_image_path(dataset, image_path, policy))


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
