"""Reading the importers' input documents: listing a file or folder (local or s3://), JSON, JSON lines, CSV and
Parquet rows, list-valued cells written as text, and where a page image may lie."""

from __future__ import annotations

import ast
import csv
import io
import json
import posixpath
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import pyarrow.parquet as pq

from clippings.errors import BadInput
from clippings.storage import filesystem, join, read_bytes

IMAGE_EXTENSIONS = (".jp2", ".jpg", ".jpeg", ".png", ".tif", ".tiff")


def list_documents(path: str, extensions: Sequence[str], what: str) -> list[str]:
    """`path` itself when it is a file, else the files below the folder ending in `extensions`, sorted.

    Raises BadInput naming the path when nothing is there.
    """
    fs, inner = filesystem(path)
    if not fs.exists(inner):
        raise BadInput(f"{what} input {path}: not found; give an existing file or folder")
    if not fs.isdir(inner):
        return [path]
    root = inner.rstrip("/")
    found = sorted(p for p in fs.find(inner) if p.lower().endswith(tuple(extensions)))
    if not found:
        raise BadInput(f"{what} input {path}: no {'/'.join(extensions)} files in the folder; "
                       "give the folder holding them")
    return [join(path, posixpath.relpath(p, root)) for p in found]


def read_text(path: str) -> str:
    """A document's text, UTF-8 with or without a byte-order mark."""
    return read_bytes(path).decode("utf-8-sig")


def read_json_document(path: str) -> Any:
    """A JSON document; BadInput-free: raises ValueError with a quarantine reason when unreadable."""
    try:
        return json.loads(read_text(path))
    except FileNotFoundError as e:
        raise ValueError(f"document not found: {path}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"document {path} is not valid JSON ({str(e)[:80]})") from e


def read_rows(path: str, what: str) -> list[dict[str, Any]]:
    """The rows of a table document by extension: .csv, .jsonl/.ndjson, .json (a list of objects), .parquet.

    Raises BadInput naming the file and the fix when it cannot be read as such.
    """
    name = path.lower()
    try:
        if name.endswith(".parquet"):
            fs, inner = filesystem(path)
            with fs.open(inner, "rb") as f:
                return pq.read_table(f).to_pylist()
        text = read_text(path)
        if name.endswith(".csv"):
            return list(csv.DictReader(io.StringIO(text)))
        if name.endswith((".jsonl", ".ndjson")):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if name.endswith(".json"):
            data = json.loads(text)
            if isinstance(data, list) and all(isinstance(r, dict) for r in data):
                return data
            raise BadInput(f"{what} {path}: a .json table must be a list of objects (one per row); "
                           "give rows as a list or as JSON lines (.jsonl)")
    except BadInput:
        raise
    except Exception as e:
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise BadInput(f"{what} {path}: not readable ({first}); fix or re-export the file") from e
    raise BadInput(f"{what} {path}: unknown extension; give .csv, .jsonl, .json or .parquet")


def parse_list(value: Any) -> list[Any]:
    """A list cell: a list as is; a string '[1, 2]', "['a', 'b']" or '1,2,3,4' parsed (CSV exports write lists
    as text). Raises ValueError when it is neither."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return list(value.tolist())
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text[0] in "[(":
            try:
                return list(json.loads(text))
            except json.JSONDecodeError:
                return list(ast.literal_eval(text))  # literals only: no code runs
        return [part.strip() for part in text.split(",")]
    raise ValueError(f"expected a list, got {type(value).__name__}")


def page_candidates(name: str) -> list[str]:
    """Where a page named in a document (a relative path, or a URL to the archive's server) may lie inside
    the pages folder, longest first: the path as given (a URL's path without its host and query), then with
    its leading folders dropped one by one, down to the file name alone. A mirror of
    `batches/x/sn1/1910/seq-1.jp2` kept as `sn1/1910/seq-1.jp2` or flat as `seq-1.jp2` is found either way."""
    path = urlparse(name).path if "://" in name else name
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ["/".join(parts[i:]) for i in range(len(parts))] if parts else [name]


def number(value: Any) -> float | None:
    """A float from a number, a decimal or a numeric string; None for null or ''."""
    if value is None or value == "":
        return None
    return float(value)


def folder_of(doc: str) -> str:
    """The folder holding a document (local: absolute), where its relative page paths are resolved by default."""
    if "://" in doc:
        return posixpath.dirname(doc)
    import os

    return os.path.dirname(os.path.abspath(doc))
