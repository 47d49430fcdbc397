"""The settings that define a resumable stage's result: recorded beside its output, compared on every re-run.

pretrain and train resume from checkpoints, embed part by part, replicate and demo stage by stage. Resuming
or skipping finished work is right only when the re-run would compute the same thing, so each of them
records the settings that change its result (the flags that do, and fingerprints of its inputs: the
datasets' part files, the start model's weights) and resumes only work recorded with the same ones. Any
other is refused with one line naming the first setting that differs, as recorded and as asked now, and the
two ways on: `--overwrite` (discard the old work, start afresh) or another output folder. What changes only
how fast or where a run computes (workers, threads, batch sizes of inference, progress and log flags,
output paths) is not recorded; each recorder says what it records and why.

Records are compared as JSON (a tuple reads back as a list) and flattened to dotted names, so a refusal
names the innermost setting that differs (`archive.parts.part-00003.parquet`), not a whole fingerprint.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any

from clippings.errors import BadInput
from clippings.storage import exists, filesystem, join, list_parts, read_json, write_json

SETTINGS_FILE = "settings.json"
_MISSING = object()


def dataset_fingerprint(path: str, what: str = "dataset") -> dict[str, Any]:
    """A dataset folder's identity: its path and each part file's name and size in bytes.

    One listing (no part is read, where a content hash would read the whole archive); a part rewritten
    with other rows changes its compressed size in practice. BadInput naming `what` when the folder holds
    no parts.
    """
    fs, _ = filesystem(path)
    parts = list_parts(path, what)
    return {"path": path, "parts": {posixpath.basename(p): int(fs.size(filesystem(p)[1])) for p in parts}}


def as_recorded(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` as they read back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(settings))


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of dotted names; empty mappings and every other value are leaves."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def first_difference(recorded: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first setting (dotted name) whose recorded value differs from the one found now, with both values
    (`_MISSING` where one side lacks it); None when they agree. `found`'s order first, then what only the
    record has (e.g. a part the dataset no longer holds)."""
    was, now = flatten(recorded), flatten(as_recorded(found))
    for key in [*now, *(k for k in was if k not in now)]:
        if was.get(key, _MISSING) != now.get(key, _MISSING):
            return key, was.get(key, _MISSING), now.get(key, _MISSING)
    return None


def check_settings(recorded: Mapping[str, Any] | None, found: Mapping[str, Any], where: str, other: str) -> None:
    """Refuse, as one BadInput line, to resume work whose record is not `found`'s settings.

    recorded: the record (None: the work has none, so it was made by a clippings that kept none and nothing
    says what it was made with). where: what holds the work, opening the line ('train: run /m_runs/train').
    other: the output flag(s) a fresh run could use instead ('--out').
    """
    fix = f"pass --overwrite to start afresh, or use another {other}"
    if recorded is None:
        raise BadInput(f"{where} holds earlier work but no record of its settings (an older clippings made it); "
                       f"{fix}")
    difference = first_difference(recorded, found)
    if difference is not None:
        key, was, now = difference
        raise BadInput(f"{where} was made with {key} = {_shown(was, 'nothing recorded')}, but this run has "
                       f"{key} = {_shown(now, 'nothing')}; {fix}")


def _shown(value: Any, missing: str) -> str:
    return f"({missing})" if value is _MISSING else repr(value)


def read_settings(folder: str) -> dict[str, Any] | None:
    """The settings recorded in `folder` (local or s3://), None when it has no record."""
    path = join(folder, SETTINGS_FILE)
    return read_json(path) if exists(path) else None


def record_settings(folder: str, settings: Mapping[str, Any]) -> None:
    """Write `settings` to `folder/settings.json` atomically (local or s3://)."""
    write_json(join(folder, SETTINGS_FILE), as_recorded(settings))
