"""Local copies of `s3://` model folders, keyed by what the folder holds, so a re-trained model is fetched anew."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from typing import Any

from clippings.errors import BadInput
from clippings.model_meta import META_FILE
from clippings.storage import filesystem

FETCH_TRIES = 3
STALE_COPY_S = 3600.0  # far longer than a load reads its copy: older copies of the same URI are not in use


def local_copy(uri: str) -> str:
    """A local copy of the `s3://` model folder `uri` as it is now, fetched unless already cached; its path.

    The cache folder of a copy is named by what the folder holds (each file's name and ETag, see
    `_listing`), so a model re-trained into the same prefix is fetched anew instead of loading the old
    weights. A copy is complete once it has its name (fetched under a temporary name, then renamed; a
    process that loses the race to another discards its own) and never changes after. A fetch during
    which the folder changed (a training writing it) is discarded and tried again. Copies of `uri` unused
    for `STALE_COPY_S` are removed when it is next loaded. `clippings.json` is not copied (it changes when
    `tune` records a choice, not the weights): it is always read from `uri` itself.
    """
    fs, inner = filesystem(uri)
    uri_key = "s3-" + hashlib.sha256(uri.encode()).hexdigest()[:16]
    root = os.path.join(tempfile.gettempdir(), "clippings-models", uri_key)
    for _ in range(FETCH_TRIES):
        files = _listing(fs, inner, uri)
        copy = os.path.join(root, _content_key(files))
        if _claim(copy) or _fetch(fs, inner, uri, files, copy):
            _remove_stale(root, keep=copy)
            return copy
    raise BadInput(f"model folder {uri}: its files changed while being copied, {FETCH_TRIES} times (a "
                   "training still writing it?); load it once it is written")


def _listing(fs, inner: str, uri: str) -> dict[str, str]:
    """Each file of the model folder (path inside it → version), listed fresh, `clippings.json` aside.

    The version is the ETag (S3 changes it whenever the object is rewritten), or size and modification time
    where a store gives none. Raises BadInput for a folder without config.json.
    """
    fs.invalidate_cache(inner)  # s3fs keeps listings per process: a rewrite by another machine is not in them
    prefix = inner.rstrip("/") + "/"
    files = {
        path[len(prefix):]: _version(info)
        for path, info in fs.find(inner, detail=True).items()
        if path.startswith(prefix) and info.get("type") != "directory"
    }
    files.pop(META_FILE, None)
    if "config.json" not in files:
        raise BadInput(
            f"model folder {uri}: no config.json; give a folder written by 'clippings pretrain/train'"
        )
    return files


def _version(info: dict[str, Any]) -> str:
    """What changes when a file is rewritten: its ETag, else its size and modification time."""
    if info.get("ETag"):
        return str(info["ETag"])
    return f"{info.get('size')}@{info.get('LastModified') or info.get('mtime')}"


def _content_key(files: dict[str, str]) -> str:
    """A name for a copy that changes whenever a file is added, removed or rewritten."""
    return hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:24]


def _claim(copy: str) -> bool:
    """Mark a finished copy as in use now (its modification time, see `_remove_stale`); False when absent."""
    try:
        os.utime(copy)
    except FileNotFoundError:
        return False
    return True


def _fetch(fs, inner: str, uri: str, files: dict[str, str], copy: str) -> bool:
    """Download exactly the listed `files` into `copy`; False (nothing kept) when the folder changed
    meanwhile."""
    tmp = os.path.join(os.path.dirname(copy), f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    names = sorted(files)
    targets = [os.path.join(tmp, *name.split("/")) for name in names]
    for target in targets:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        fs.get([f"{inner.rstrip('/')}/{name}" for name in names], targets)  # the files listed, no others
        if _listing(fs, inner, uri) != files:
            return False
        try:
            os.rename(tmp, copy)
        except OSError:  # another process finished the same copy first (a non-empty folder is not replaced)
            if not os.path.isdir(copy):
                raise
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(root: str, keep: str) -> None:
    """Remove the copies of one URI and abandoned temporary folders unused for STALE_COPY_S, except `keep`.

    A load claims its copy (`_claim`) right before reading it, so a copy this old is not being read; a
    removal that races with another process is ignored.
    """
    now = time.time()
    for entry in os.scandir(root):
        with contextlib.suppress(OSError):
            if entry.path != keep and now - entry.stat(follow_symlinks=False).st_mtime > STALE_COPY_S:
                shutil.rmtree(entry.path)
