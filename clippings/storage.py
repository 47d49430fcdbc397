"""Storage: fsspec I/O that every stage shares, for local paths and URIs (`s3://`, anything fsspec reads).

Paths and filesystems, atomic files (bytes, JSON, one Parquet table), and datasets: a dataset is a folder
of `part-*.parquet` files, listed, read and written here. Every write is atomic: a local file is written
under a temporary name and renamed; an S3 object is one PUT (or one completed multipart upload), which S3
makes visible all at once (see docs/architecture.md#reliability). A missing or unreadable file is a
`BadInput` with one line naming it and the fix.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from clippings.errors import BadInput

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
    write_tables_atomic(path, table.schema, [table])


def write_tables_atomic(path: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> None:
    """Write `tables` (each of `schema`) one after another as one Parquet file, so that readers see the old
    file or the whole new one: one table in memory at a time. Locally a hidden temporary file renamed at the
    end; on S3 one multipart upload, which appears only when complete."""
    fs, inner = filesystem(path)
    if is_remote(path):
        f = fs.open(inner, "wb")
        try:
            with pq.ParquetWriter(f, schema, compression="zstd") as writer:
                for table in tables:
                    writer.write_table(table)
        except BaseException:
            f.discard()  # closing would complete the upload with what was written so far
            raise
        f.close()
        return
    parent = os.path.dirname(os.path.abspath(inner))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(inner)}")
    try:
        with open(tmp, "wb") as f:
            with pq.ParquetWriter(f, schema, compression="zstd") as writer:
                for table in tables:
                    writer.write_table(table)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, inner)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
