"""The import job on Ray Data: input documents in, an archive (one part per task) out, resumable.

Plan (driver, cheap): list the input documents. Page documents (a Navigator or American Stories page JSON,
an ALTO file) are parsed inside the tasks, PAGES_PER_PART per task; table documents (a manifest, Navigator's
yearly rows) are parsed on the driver — metadata only — and their page groups handed out PAGES_PER_PART per
task. The tasks run on a Ray Data pool of import actors, one per CPU, each started once. Each task decodes
its pages, cuts the crops and writes, itself, `out/part-N.parquet`, its quarantine
rows and, last, `out/_done/part-N.json` (the task's key, counts), each atomically: the driver never holds a
pixel. A re-run plans the same tasks in the same order and skips every part whose marker carries the same
key; at most the tasks in flight at a crash are redone. Every selected input detection ends as a row or a
quarantine entry (a document that cannot be parsed is one entry under `document:<path>`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from clippings.archive import check_unique_ids, quarantine_table, write_quarantine
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.importers import FORMATS
from clippings.importers.records import ImportOptions, PageGroup, rows_table
from clippings.progress import Progress
from clippings.storage import (
    exists,
    filesystem,
    join,
    makedirs,
    part_name,
    read_json,
    read_part,
    write_json,
    write_table_atomic,
)

STAGE = "import"
DONE_DIR = "_done"
PAGES_PER_PART = 16
"""Pages (page documents or page groups) per task and per output part: enough rows per part for the readers
downstream, small enough that a crash loses little and two CPUs share 1,000 pages evenly."""

log = logging.getLogger("clippings.importers")


def layout(fmt: str) -> ModuleType:
    """The parser module of a format named on the command line."""
    if fmt not in FORMATS:
        raise BadInput(f"The 'format' parameter of import must be one of {', '.join(FORMATS)}. Got {fmt!r} instead.")
    import importlib

    return importlib.import_module(f"clippings.importers.{fmt}")


def is_page_document(fmt: str, doc: str) -> bool:
    """True when `doc` describes pages one file at a time (parsed in tasks), False for a table of rows."""
    if fmt == "navigator":
        from clippings.importers.navigator import is_page_document as navigator_page

        return navigator_page(doc)
    return fmt in ("americanstories", "alto")


@dataclass(frozen=True)
class Task:
    """One unit of work and its output part: `docs` to parse there, or page `groups` (JSON) parsed already.
    key: a digest of what the task reads, recorded in its marker so a resume never mixes inputs."""

    name: str
    key: str
    docs: tuple[str, ...] = ()
    groups: str = "[]"
    pages: int = 0


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def output_settings(fmt: str, options: ImportOptions, long_side: int | None) -> str:
    """The choices that change what a task writes (not where it caches or how fast it asks), folded into
    every task key: a re-run with another --min-score or crop size is refused instead of mixing parts."""
    keep = {k: getattr(options, k) for k in ("pages", "classes", "min_score", "box_format", "box_units", "boxes",
                                             "iiif")}
    from clippings.importers.crops import CROP_LONG_SIDE

    return json.dumps({"format": fmt, "long_side": long_side or CROP_LONG_SIDE, **keep}, sort_keys=True,
                      default=list)


def plan_tasks(fmt: str, input_path: str, options: ImportOptions, long_side: int | None = None
               ) -> tuple[list[Task], int]:
    """(tasks in a fixed order, detections left out on the driver by class or score).

    A task's key digests the settings (`output_settings`) and what it reads: its documents' names, or its
    page groups in full. A document edited in place under the same name is not noticed: use a new --out.

    Cost: a listing of the input; table documents read whole on the driver (their rows, no images).
    """
    module = layout(fmt)
    docs = module.documents(input_path)
    page_docs = [d for d in docs if is_page_document(fmt, d)]
    groups: list[PageGroup] = []
    skipped = 0
    for doc in docs:
        if not is_page_document(fmt, doc):
            found, left_out = module.parse_rows(doc, options)
            groups += found
            skipped += left_out
    salt = output_settings(fmt, options, long_side)
    tasks = []
    for start in range(0, len(page_docs), PAGES_PER_PART):
        chunk = tuple(page_docs[start:start + PAGES_PER_PART])
        tasks.append(Task(part_name(len(tasks)), _digest(salt + "\n".join(chunk)), docs=chunk, pages=len(chunk)))
    for start in range(0, len(groups), PAGES_PER_PART):
        payload = json.dumps([g.to_json() for g in groups[start:start + PAGES_PER_PART]], sort_keys=True)
        tasks.append(Task(part_name(len(tasks)), _digest(salt + payload), groups=payload,
                          pages=len(groups[start:start + PAGES_PER_PART])))
    return tasks, skipped


def run_task(task: Task, fmt: str, options: ImportOptions, out: str, images: ImagePolicy = ARCHIVE_ONLY,
             long_side: int | None = None) -> dict[str, Any]:
    """Do one task: parse its documents, import its pages, write part, quarantine and marker (last).

    Returns the marker's counts. Memory: one decoded page at a time plus the task's encoded crops.
    """
    from clippings.importers.pages import import_group

    groups = [PageGroup.from_json(g) for g in json.loads(task.groups)]
    bad: list[tuple[str, str]] = []
    skipped = 0
    module = layout(fmt)
    for doc in task.docs:
        try:
            found, left_out = module.parse_page(doc, options)
        except (ValueError, KeyError, TypeError) as e:
            bad.append((f"document:{doc}", str(e) if isinstance(e, ValueError) else
                        f"document {doc}: missing or mistyped field ({type(e).__name__}: {e})"))
            continue
        groups += found
        skipped += left_out
    detections = sum(len(g.detections) for g in groups) + len(bad)
    rows: list[dict[str, Any]] = []
    fetch = None
    if options.iiif:
        from clippings.importers.iiif import client

        fetch = client(options.iiif_cache, options.max_requests_per_minute)
    for group in groups:
        got, refused = import_group(group, images, long_side, fetch)
        rows += got
        bad += refused
    if len(rows) + len(bad) != detections:
        raise RuntimeError(f"import {task.name}: {detections} detections in, {len(rows)} rows + {len(bad)} "
                           "quarantined out")
    if rows:
        write_table_atomic(rows_table(rows), join(out, task.name))
    write_quarantine(out, quarantine_table([b[0] for b in bad], STAGE, [b[1] for b in bad]), task.name)
    marker = {"part": task.name, "key": task.key, "pages": task.pages, "detections": detections,
              "rows": len(rows), "quarantined": len(bad), "skipped": skipped}
    write_json(join(out, DONE_DIR, task.name + ".json"), marker)
    return marker


class _Importer:
    """A Ray Data actor that runs import tasks, one batch row each. An actor per CPU, started once, keeps its
    process (imports, PIL, the IIIF client's cache) for every task it is given, where a pool of Ray tasks
    pays for leasing and starting workers as the queue drains."""

    def __init__(self, fmt: str, options: ImportOptions, out: str, images: ImagePolicy, long_side: int | None):
        self.fmt, self.options, self.out, self.images, self.long_side = fmt, options, out, images, long_side

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        markers = [run_task(Task(str(n), str(k), tuple(json.loads(d)), str(g), int(p)), self.fmt, self.options,
                            self.out, self.images, self.long_side)
                   for n, k, d, g, p in zip(batch["name"], batch["key"], batch["docs"], batch["groups"],
                                            batch["pages"], strict=True)]
        return {k: [m[k] for m in markers] for k in ("part", "pages", "detections", "rows", "quarantined",
                                                      "skipped")}


@dataclass
class ImportSummary:
    """Counts of one run (this run's tasks plus those done before) and its time."""

    pages: int = 0
    detections: int = 0
    rows: int = 0
    quarantined: int = 0
    skipped: int = 0
    parts_done: int = 0
    parts_resumed: int = 0
    seconds: float = 0.0
    resumed_pages: int = 0
    parts: list[str] = field(default_factory=list)

    def add(self, marker: dict[str, Any]) -> None:
        for name in ("pages", "detections", "rows", "quarantined", "skipped"):
            setattr(self, name, getattr(self, name) + int(marker[name]))


def finished_tasks(out: str, tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """Markers of tasks already done in `out`, by part name; a marker whose key differs from the planned task
    of that name means the input changed since: BadInput (mixing would break the id invariant)."""
    planned = {t.name: t for t in tasks}
    folder = join(out, DONE_DIR)
    fs, inner = filesystem(folder)
    if not fs.exists(inner):
        return {}
    done = {}
    for path in sorted(fs.ls(inner, detail=False)):
        if not path.endswith(".json"):
            continue
        marker = read_json(join(folder, posixpath.basename(path)))
        name = marker.get("part")
        if name not in planned or planned[name].key != marker.get("key"):
            raise BadInput(f"import {out}: {posixpath.basename(path)} was written from other input than this run "
                           "plans; the input or options changed: use a new --out folder")
        done[name] = marker
    return done


def import_archive(fmt: str, input_path: str, out: str, options: ImportOptions | None = None, *,
                   images: ImagePolicy = ARCHIVE_ONLY, concurrency: int | None = None, long_side: int | None = None,
                   progress: Progress | None = None) -> ImportSummary:
    """Import `input_path` (a file or folder, local or s3://) in layout `fmt` into the archive folder `out`.

    options: the layout's choices (`ImportOptions`). images: where page images and crops outside the pages
    folder (`options.pages`, else the documents' folder) may be read. concurrency: import actors, one CPU
    and one task at a time each (default: one per CPU of the cluster, at most one per task). long_side: crop cap (default crops.CROP_LONG_SIDE).
    progress: advanced by pages. Ray must be initialised. Raises BadInput when the input cannot be planned,
    or when two pages produced the same clipping id (the same page listed twice).
    """
    import ray
    from ray.data import ActorPoolStrategy

    from clippings.raylocal import runtime_env

    start = time.perf_counter()
    options = options or ImportOptions()
    pool = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    if options.max_requests_per_minute:  # the user's limit is for the whole run: each actor gets a share
        options = replace(options, max_requests_per_minute=options.max_requests_per_minute / pool)
    tasks, skipped = plan_tasks(fmt, input_path, options, long_side)
    makedirs(out)
    done = finished_tasks(out, tasks)
    summary = ImportSummary(skipped=skipped, parts_resumed=len(done))
    for marker in done.values():
        summary.add(marker)
        summary.resumed_pages += int(marker["pages"])
    todo = [t for t in tasks if t.name not in done]
    if done:
        log.info("resuming: %d of %d parts already imported", len(done), len(tasks))
    if progress is not None:
        progress.set(0, total=sum(t.pages for t in todo))
    if todo:
        items = [{"name": t.name, "key": t.key, "docs": json.dumps(list(t.docs)), "groups": t.groups,
                  "pages": t.pages} for t in todo]
        result = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Importer, batch_size=1, num_cpus=1, compute=ActorPoolStrategy(size=min(pool, len(items))),
            fn_constructor_kwargs={"fmt": fmt, "options": options, "out": out, "images": images,
                                   "long_side": long_side},
            runtime_env=runtime_env(1),
        )
        for row in result.iter_rows():
            summary.add(row)
            summary.parts_done += 1
            if progress is not None:
                progress.update(int(row["pages"]))
    summary.parts = [join(out, t.name) for t in tasks if exists(join(out, t.name))]
    ids: list[str] = []
    for part in summary.parts:
        ids += read_part(part, "archive", columns=["clipping_id"]).column("clipping_id").to_pylist()
    check_unique_ids(ids, f"{out} (imported from {input_path})")
    summary.seconds = time.perf_counter() - start
    return summary
