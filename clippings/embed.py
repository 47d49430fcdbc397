"""The Ray Data embedding pipeline: archive parts in, one embeddings part (both towers) per input part out.

Stages (docs/architecture.md#data-flow, #reliability, #local-runs-and-tests):
  read (`clippings.reader`: CPU tasks, one per run of READ_ROWS rows of a part) → decode + preprocess images,
  tokenise captions (`clippings.preprocess`, `map_batches` with a function) → embed both towers: on GPUs a
  pool of model actors; on CPUs the same tasks, each worker process keeping its model replica between tasks
  (`_cached_embedder`) → the driver gathers each part's rows, puts them back in the part's order and writes
  `out/part-N.parquet`, its quarantine rows and, last, `out/_done/part-N.json`.
`embed()` is the pure stage (dataset in, dataset out); `embed_archive()` plans, reads, calls it, writes and
resumes. A re-run skips every part with a completion marker recording the same settings (`embed_settings`,
`part_settings`; a marker of other settings is refused, or removed with `overwrite`); at most the parts in
flight are redone.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from clippings.archive import QUARANTINE_DIR, quarantine_table, write_quarantine
from clippings.embeddings import embeddings_table
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.model import load_model
from clippings.preprocess import EmbedModel, describe_model, preprocess_rows
from clippings.progress import Progress
from clippings.raylocal import runtime_env, size_thread_pools
from clippings.reader import Plan, Shard, plan_shards, read_shards
from clippings.settings import check_settings
from clippings.storage import (
    filesystem,
    join,
    makedirs,
    read_json,
    remove_tree,
    write_json,
    write_table_atomic,
)

STAGE = "embed"
DONE_DIR = "_done"
SKIPPED_FILES = "skipped-files.json"

log = logging.getLogger("clippings.embed")


# ---------------------------------------------------------------- the stage


class _Embedder:
    """A model replica: builds its LoadedModel once, then embeds both towers of each batch.

    Called as a Ray Data actor on GPUs and through `_cached_embedder` in CPU tasks. threads: threads of every
    pool in its process (torch, OpenMP, MKL, OpenBLAS, tokenizers).
    """

    def __init__(self, model: EmbedModel, device: str, half: bool, threads: int) -> None:
        size_thread_pools(threads)
        dtype = torch.float16 if half else torch.float32
        self.loaded = load_model(model.spec, device=device, dtype=dtype)
        if self.loaded.fingerprint != model.fingerprint:
            raise BadInput(
                f"model {model.spec}: weights changed during the run (fingerprint {self.loaded.fingerprint}, "
                f"expected {model.fingerprint}); re-run once the model folder is stable"
            )
        self.pad = self.loaded.processor.tokenizer.pad_token_id or 0
        self.dim = model.dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["clipping_id"])
        ok = np.flatnonzero(batch["reason"] == "")
        image = np.zeros((n, self.dim), np.float32)
        text = np.zeros((n, self.dim), np.float32)
        if len(ok):
            image[ok] = self.loaded.embed_images(torch.from_numpy(batch["pixel_values"][ok]))
            lengths = batch["length"][ok]
            width = int(lengths.max())
            ids = torch.from_numpy(batch["input_ids"][ok, :width])
            mask = torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]
            ids = ids.masked_fill(~mask, self.pad)
            text[ok] = self.loaded.embed_tokens(ids, mask.long())
        return {"clipping_id": batch["clipping_id"], "shard": batch["shard"], "row": batch["row"],
                "image_emb": image, "text_emb": text, "reason": batch["reason"]}


_replica: tuple[tuple, _Embedder] | None = None
"""This process's last model replica and its key (CPU tasks: one model per worker process, not per task)."""


def _cached_embedder(model: EmbedModel, threads: int) -> _Embedder:
    """The replica of `model` this worker process holds, built on first use and kept for the tasks after it.

    A Ray worker process runs many tasks; loading the model per task, or starting an actor per run (a new
    process importing torch and transformers: seconds), would cost more than embedding a small archive.
    One replica per process: a new model (another spec or fingerprint) replaces the last.
    """
    global _replica
    key = (model.spec, model.fingerprint, threads)
    if _replica is None or _replica[0] != key:
        _replica = None  # free the old model before loading the next
        _replica = (key, _Embedder(model, "cpu", False, threads))
    return _replica[1]


def _preprocess_and_embed(batch: pa.Table, model: EmbedModel, threads: int) -> dict[str, np.ndarray]:
    """CPU path: `preprocess_rows` then this process's cached replica, in one task (no float pixels travel)."""
    return _cached_embedder(model, threads)(preprocess_rows(batch, model, carry=("row",)))


def embed(dataset, model: EmbedModel, *, batch_size: int = 64, concurrency: int | None = None, gpu: bool = False,
          half: bool = False, threads: int | None = None):
    """The embed stage: archive rows in, (`clipping_id`, `shard`, `row`, `image_emb`, `text_emb`, `reason`) out.

    dataset: Ray Dataset with `clipping_id`, `image` (bytes or null), `image_path` (absolute/URI or null),
    `caption` (null = empty: the text tower sees ""), `shard`, `row` (passed through), `reason` (non-empty:
    the row was refused when read, e.g. an image_path outside the archive; it is passed through to the
    quarantine). model: from `describe_model`. batch_size: rows per model call. half: fp16 on GPU.
    A row that cannot be embedded keeps zero vectors and a non-empty `reason`.

    GPU: preprocessing in CPU tasks, then a pool of `concurrency` model actors (default 1), one GPU each.
    CPU: each task preprocesses and embeds its batch with its process's cached replica, `threads` threads
    per pool (default 1) and as many CPUs; `concurrency` caps the tasks at once (default: as many as the
    CPUs allow). Memory: one model per worker process that embeds, plus a batch of float32 pixels
    (batch_size·3·H·W·4 bytes) per task.
    """
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    if not gpu:
        threads = threads or 1
        return dataset.map_batches(_preprocess_and_embed, batch_size=batch_size, batch_format="pyarrow",
                                   fn_kwargs={"model": model, "threads": threads}, num_cpus=threads,
                                   compute=TaskPoolStrategy(size=concurrency), runtime_env=runtime_env(threads))
    pre = dataset.map_batches(preprocess_rows, batch_size=batch_size, batch_format="pyarrow",
                              fn_kwargs={"model": model, "carry": ("row",)}, num_cpus=1, runtime_env=runtime_env(1))
    return pre.map_batches(
        _Embedder,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=concurrency or 1),
        fn_constructor_kwargs={"model": model, "device": "cuda", "half": half, "threads": 1},
        runtime_env=runtime_env(1),
        num_gpus=1,
        num_cpus=1,
    )


# ---------------------------------------------------------------- writing and resuming (driver)


@dataclass
class EmbedSummary:
    """Counts of one run: rows in this run and already done, embedded, quarantined, skipped files, time."""

    rows_in: int = 0
    embedded: int = 0
    quarantined: int = 0
    shards_done: int = 0
    shards_resumed: int = 0
    rows_resumed: int = 0
    skipped_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


def marker_path(out: str, shard_name: str) -> str:
    return join(out, DONE_DIR, shard_name + ".json")


def embed_settings(model: EmbedModel, dtype: str, images: ImagePolicy) -> dict[str, Any]:
    """What defines every part's embeddings, recorded in each completion marker: the model's weights
    fingerprint, the stored dtype and the image policy (which rows are embedded and which quarantined).

    Not --gpu (fp16 there: the device's rounding, not what is computed, so a run begun on CPUs may finish on
    a GPU cluster), nor the batch size, concurrency or threads: they change only how fast rows are embedded.
    """
    return {"fingerprint": model.fingerprint, "dtype": dtype, "images": asdict(images)}


def part_settings(shard: Shard) -> dict[str, Any]:
    """What identifies a part's input: its path, row count and size in bytes (a part rewritten with other rows
    under the same name changes its size in practice), recorded in the part's marker."""
    return {"input": shard.path, "rows": shard.rows, "bytes": shard.bytes}


def finished_shards(out: str, plan: Plan, settings: Mapping[str, Any]) -> set[str]:
    """Names of parts already embedded into `out` with `settings` (`embed_settings`), read from their markers
    (the name inside, not the file's).

    A marker of other settings, or of a part of this plan that is another file now (`part_settings`), is one
    BadInput line naming the first difference (`clippings.settings.check_settings`): its part would sit
    beside parts unlike it. Markers of parts this plan lacks are checked for `settings` only.
    """
    folder = join(out, DONE_DIR)
    fs, inner = filesystem(folder)
    if not fs.exists(inner):
        return set()
    parts = {s.name: part_settings(s) for s in plan.shards}
    done = set()
    for name in sorted(fs.ls(inner, detail=False)):
        if not name.endswith(".json"):
            continue
        path = join(folder, posixpath.basename(name))
        marker = read_json(path)
        expected = {**settings, **parts.get(marker.get("shard"), {})}
        check_settings({k: marker[k] for k in expected if k in marker}, expected, f"embeddings {out}: {path}",
                       "--out")
        done.add(marker.get("shard"))
    return done


def clear_output(out: str) -> bool:
    """Remove what earlier embed runs wrote into `out`: markers first (a part without one is redone), then
    quarantine and parts; the stage's log stays. Returns whether there was anything."""
    fs, inner = filesystem(out)
    fs.invalidate_cache(inner)
    if not fs.exists(inner):
        return False
    removed = [remove_tree(join(out, name)) for name in (DONE_DIR, QUARANTINE_DIR)]
    for path in fs.ls(inner, detail=False):
        name = posixpath.basename(path)
        if name.startswith("part-") and name.endswith(".parquet"):
            removed.append(remove_tree(join(out, name)))
    return any(removed)


class _ShardWriter:
    """Gathers the stage's output rows per part; writes a part in its input order when all its rows are in,
    marker last (runs of a part finish in any order)."""

    def __init__(self, out: str, model: EmbedModel, shards: list[Shard], dtype: str, settings: Mapping[str, Any],
                 summary: EmbedSummary):
        self.out, self.model, self.dtype, self.settings, self.summary = out, model, dtype, settings, summary
        self.expected = {s.name: s for s in shards}
        self.pending: dict[str, list[dict[str, np.ndarray]]] = {s.name: [] for s in shards}
        self.count = dict.fromkeys(self.expected, 0)
        for s in shards:
            if s.rows == 0:
                self._write(s.name)

    def add(self, batch: dict[str, np.ndarray]) -> None:
        shards = batch["shard"]
        for name in np.unique(shards):
            rows = {k: v[shards == name] for k, v in batch.items()}
            self.pending[name].append(rows)
            self.count[name] += len(rows["clipping_id"])
            if self.count[name] == self.expected[name].rows:
                self._write(name)

    def _write(self, name: str) -> None:
        dim = self.model.dim
        empty = {"row": np.zeros(0, np.int64), "clipping_id": np.zeros(0, object), "reason": np.zeros(0, object),
                 "image_emb": np.zeros((0, dim), np.float32), "text_emb": np.zeros((0, dim), np.float32)}
        chunks = self.pending.pop(name) or [empty]
        order = np.argsort(np.concatenate([c["row"] for c in chunks]), kind="stable")
        ids, image, text, reason = (np.concatenate([c[k] for c in chunks])[order]
                                    for k in ("clipping_id", "image_emb", "text_emb", "reason"))
        good = reason == ""
        bad = ~good
        write_quarantine(self.out, quarantine_table(ids[bad].tolist(), STAGE, reason[bad].tolist()), name)
        table = embeddings_table(ids[good].tolist(), image[good], text[good], self.model.fingerprint,
                                 self.model.name, self.dtype)
        write_table_atomic(table, join(self.out, name))
        shard = self.expected[name]
        write_json(marker_path(self.out, name), {
            "shard": name, **self.settings, **part_settings(shard), "embedded": int(good.sum()),
            "quarantined": int(bad.sum()), "model": self.model.name,
        })
        self.summary.rows_in += shard.rows
        self.summary.embedded += int(good.sum())
        self.summary.quarantined += int(bad.sum())
        self.summary.shards_done += 1

    def check_complete(self) -> None:
        if self.pending:
            short = ", ".join(f"{n} ({self.count[n]}/{self.expected[n].rows} rows)" for n in sorted(self.pending))
            raise RuntimeError(f"embed: the pipeline ended with parts incomplete: {short}")


def embed_archive(archive: str, model_spec: str, out: str, *, batch_size: int = 64, concurrency: int | None = None,
                  gpu: bool = False, dtype: str = "float32", skip_bad_files: bool = False,
                  threads: int | None = None, images: ImagePolicy = ARCHIVE_ONLY,
                  progress: Progress | None = None, overwrite: bool = False) -> EmbedSummary:
    """Embed every clipping of `archive` into `out` (local or s3://), resuming a partial run of the same
    settings (`finished_shards`; other settings are refused) or, with `overwrite`, removing what earlier runs
    wrote there first (`clear_output`).

    progress: a live line advanced by the rows embedded (its total: the rows left to do).

    images: which `image_path` locations outside the archive folder may be read (default: none; a refused
    row is quarantined with the rule it broke).

    Writes `out/part-*.parquet` (one per input part, same name; fingerprint in the file metadata),
    `out/_quarantine/part-*.parquet` for bad rows, `out/_quarantine/skipped-files.json` for skipped files
    and `out/_done/part-*.json` completion markers. Ray must be initialised (`clippings.raylocal.init_ray`).
    Cost: one pass over the archive; driver memory ≈ the embeddings of the parts in flight.
    """
    import ray

    start = time.perf_counter()
    plan = plan_shards(archive, skip_bad_files)
    model = describe_model(model_spec)
    if overwrite and clear_output(out):
        log.info("--overwrite: removed the earlier embeddings in %s", out)
    makedirs(out)
    summary = EmbedSummary(skipped_files=[f["file"] for f in plan.skipped_files])
    if plan.skipped_files:
        write_json(join(out, QUARANTINE_DIR, SKIPPED_FILES), plan.skipped_files)
    settings = embed_settings(model, dtype, images)
    done = finished_shards(out, plan, settings)
    todo = [s for s in plan.shards if s.name not in done]
    summary.shards_resumed = len(plan.shards) - len(todo)
    summary.rows_resumed = sum(s.rows for s in plan.shards if s.name in done)
    if done:
        log.info("resuming: %d of %d parts already embedded", summary.shards_resumed, len(plan.shards))
    if concurrency is None and gpu:
        concurrency = max(1, int(ray.cluster_resources().get("GPU", 1)))
    writer = _ShardWriter(out, model, todo, dtype, settings, summary)
    nonempty = [s for s in todo if s.rows]
    if progress is not None:
        progress.set(0, total=sum(s.rows for s in nonempty))
    if nonempty:
        result = embed(read_shards(plan, nonempty, images), model, batch_size=batch_size,
                       concurrency=concurrency, gpu=gpu, half=gpu, threads=threads)
        for batch in result.iter_batches(batch_size=None, batch_format="numpy"):
            writer.add(batch)
            if progress is not None:
                progress.update(len(batch["clipping_id"]))
    writer.check_complete()
    summary.seconds = time.perf_counter() - start
    return summary
