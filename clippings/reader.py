"""The archive reader that embedding and training share: plan the parts, read runs of a part's rows.

The driver plans (`plan_shards`: schemas and ids only, no image bytes); CPU tasks read (`read_part_rows`: the
rows of one run of a part, only the row groups holding them, `image_path` resolved or refused by the image
policy). Rows leave the reader as normalised archive rows (`clipping_id`, `image`, `image_path`, `caption`)
plus `shard` (the part's name) and `reason` (non-empty: the row was refused and goes to the quarantine), so
every stage downstream needs no knowledge of the archive's folder or layout.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clippings.archive import check_unique_ids, normalise_archive, validate_archive_part
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, resolve_image_path
from clippings.raylocal import runtime_env
from clippings.storage import filesystem, list_parts, read_part

READ_ROWS = 256
"""Rows per read task and per block read from a part: a part's rows decode in parallel, and a task's memory
is bounded by READ_ROWS images plus the row groups it overlaps."""


# ---------------------------------------------------------------- planning (driver, cheap)


@dataclass(frozen=True)
class Shard:
    """One input part file: its full path/URI, its name (= the output part name), row count and size in bytes."""

    path: str
    name: str
    rows: int
    bytes: int


@dataclass
class Plan:
    """What a run over an archive reads: all readable shards, the files skipped as unreadable, the archive root."""

    archive: str
    shards: list[Shard]
    skipped_files: list[dict[str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)


def plan_shards(archive: str, skip_bad_files: bool = False) -> Plan:
    """List and check the archive's parts reading only their footers and `clipping_id` columns.

    Each part's schema is checked with `validate_archive_part` (on an empty table of that schema: columns and
    types), its ids for nulls, and all ids together for duplicates. An unreadable part is a BadInput naming
    it, or with `skip_bad_files` is recorded in `Plan.skipped_files`. Cost: one id column per part in memory
    at a time plus one Counter over all ids (≈100 bytes per id).
    """
    shards, skipped, ids = [], [], []
    for part in list_parts(archive, "archive"):
        try:
            fs, inner = filesystem(part)
            with fs.open(inner, "rb") as f:
                schema = pq.read_schema(f)
            size = int(fs.size(inner))
            validate_archive_part(schema.empty_table(), part)
            id_column = read_part(part, "archive", columns=["clipping_id"]).column("clipping_id")
        except BadInput as e:
            if not skip_bad_files or "not readable" not in str(e):
                raise
            skipped.append({"file": part, "reason": str(e)})
            continue
        except (pa.ArrowInvalid, OSError) as e:
            reason = f"archive {part}: file is not readable Parquet ({str(e).splitlines()[0]}); " \
                     "re-write or remove the file"
            if not skip_bad_files:
                raise BadInput(reason) from e
            skipped.append({"file": part, "reason": reason})
            continue
        if id_column.null_count:
            row = id_column.is_null().to_pylist().index(True)
            raise BadInput(f"archive {part}: row {row} has no clipping_id; give every row a unique id")
        ids.extend(id_column.to_pylist())
        shards.append(Shard(part, posixpath.basename(part), len(id_column), size))
    check_unique_ids(ids, archive)
    if not ids:
        raise BadInput(f"archive {archive}: the dataset is empty (0 readable rows); give at least one row")
    return Plan(archive, shards, skipped)


# ---------------------------------------------------------------- reading (CPU tasks)


def part_runs(rows: int, size: int = READ_ROWS) -> list[tuple[int, int]]:
    """A part of `rows` rows cut into runs of `size` rows, (start, stop) each: one decode task per run."""
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def read_part_rows(path: str, name: str, archive: str, images: ImagePolicy, start: int = 0,
                   stop: int | None = None) -> Iterator[pa.Table]:
    """Rows start … stop − 1 (None: to the end) of one part, READ_ROWS at a time, as normalised archive rows
    plus `shard` and `reason`.

    Only the row groups holding those rows are read, so a task that decodes one run of a large part does not
    read the part up to it. `image_path` is resolved here (to a canonical absolute path or URI) so the stage
    needs no knowledge of the archive's folder; a path that `images` does not allow is nulled and its row
    carries the refusal as `reason` (empty for a good row), which the stage turns into a quarantine row.
    """
    fs, inner = filesystem(path)
    with fs.open(inner, "rb") as f:
        part = pq.ParquetFile(f)
        stop = part.metadata.num_rows if stop is None else stop
        groups, first, at = [], None, 0  # the row groups overlapping the rows, and the first one's first row
        for g in range(part.metadata.num_row_groups):
            rows = part.metadata.row_group(g).num_rows
            if at < stop and at + rows > start:
                groups.append(g)
                first = at if first is None else first
            at += rows
        end = first or 0
        for record_batch in part.iter_batches(batch_size=READ_ROWS, row_groups=groups) if groups else ():
            begin, end = end, end + record_batch.num_rows  # this batch holds the part's rows begin … end − 1
            if begin >= stop:
                break
            lo, hi = max(start, begin), min(stop, end)
            if lo < hi:
                yield _normalised_rows(pa.Table.from_batches([record_batch]).slice(lo - begin, hi - lo), name,
                                       archive, images)


def _normalised_rows(table: pa.Table, name: str, archive: str, images: ImagePolicy) -> pa.Table:
    """Archive rows with `image_path` resolved (or refused into `reason`) and the part's `shard` name."""
    table = normalise_archive(table).select(["clipping_id", "image", "image_path", "caption"])
    paths, reasons = [], []
    for image, p in zip(table.column("image").to_pylist(), table.column("image_path").to_pylist(), strict=True):
        try:  # inline bytes win over a path, so only a path that will be read is checked
            paths.append(None if p is None or image is not None else resolve_image_path(archive, p, images))
            reasons.append("")
        except ValueError as e:
            paths.append(None)
            reasons.append(str(e))
    table = table.set_column(2, "image_path", pa.array(paths, pa.string()))
    table = table.append_column("shard", pa.array([name] * table.num_rows, pa.string()))
    return table.append_column("reason", pa.array(reasons, pa.string()))


def read_shard_tables(batch: dict[str, np.ndarray], archive: str, images: ImagePolicy) -> Iterator[pa.Table]:
    """Stream the runs a batch names (`path`, `name`, `start`, `stop` of a part) as normalised archive rows
    plus `shard`, `reason` and `row` (the row's position in its part, so the writer can restore the order)."""
    for path, name, start, stop in zip(batch["path"], batch["name"], batch["start"], batch["stop"], strict=True):
        at = int(start)
        for table in read_part_rows(str(path), str(name), archive, images, at, int(stop)):
            yield table.append_column("row", pa.array(np.arange(at, at + table.num_rows), pa.int64()))
            at += table.num_rows


def read_shards(plan: Plan, shards: list[Shard], images: ImagePolicy = ARCHIVE_ONLY, cpus: float = 1.0):
    """A Ray Dataset of archive rows (`clipping_id`, `image`, `image_path`, `caption`, `shard`, `reason`, `row`)
    of `shards`; `images` says which image paths outside the archive folder may be read (default: none).

    One read task per run of READ_ROWS rows of a part, so a large part decodes on every CPU; each task reads
    only the row groups its run overlaps (parts written with row groups of a few thousand rows at most keep
    that cheap). cpus: the CPUs each read task asks for (fractional beside training workers,
    docs/architecture.md#local-runs-and-tests).
    """
    import ray

    items = [{"path": s.path, "name": s.name, "start": start, "stop": stop}
             for s in shards for start, stop in part_runs(s.rows)]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        read_shard_tables, batch_size=1, fn_kwargs={"archive": plan.archive, "images": images}, num_cpus=cpus,
        runtime_env=runtime_env(cpus),
    )
