"""Training pairs from an archive through Ray Data: the driver plans, CPU tasks decode, workers train.

The driver never holds pixels. It reads the archive's light columns once (`clipping_id`, `caption`,
`label`: ≈100 bytes per row plus an 8-byte caption hash and a 4-byte role) to check ids, drop exact
duplicate captions and choose the held-out rows; images are read, decoded, resized and cropped in Ray Data
CPU tasks with the archive reader and preprocessing that embedding uses (`clippings.reader.read_part_rows`,
`clippings.preprocess.preprocess_rows`), and travel as uint8 (`clippings.train.pixels`) until the worker's
device.

Pretraining streams (`pretraining_plan`, `RankStream`). Each train row belongs to one of `lanes` lanes
(round robin in archive order); rank r of w owns lanes r·L/w … (r+1)·L/w − 1 and, each epoch, runs its
own Ray Data stream over every part (parts in an order seeded by (seed, epoch)), keeping only its lanes'
rows and its share of the held-out rows. Each lane goes through a shuffle buffer seeded by (seed, epoch,
lane), and a step takes B/L rows from every lane. A lane's row sequence does not depend on which rank
reads it, so any worker count dividing `lanes` trains on the same global batches (1 vs 2 workers equal up
to float summation order) and a resumed epoch replays the same order. Costs: every rank reads every part's
encoded bytes (w× reading) but decodes only its own rows (1× decoding); a worker holds `buffer` rows per
lane (3·H·W bytes each) and its share of the held-out rows.

Unlabelled rows whose image is missing, refused or undecodable are dropped from training and quarantined
with their reason (gathered to rank 0 each epoch); labelled sets must be clean (`LabelledStore`).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clippings.archive import validate_archive_part
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.preprocess import EmbedModel, preprocess_rows
from clippings.reader import part_runs, plan_shards, read_part_rows
from clippings.storage import filesystem, read_part

DUPLICATE = -1
"""Role of a row dropped as an exact duplicate caption. Train rows have their lane (≥ 0); held-out row i
has −(2 + i)."""
PREPROCESS_ROWS = 64
"""Rows preprocessed at once: memory ≈ 64 decoded images."""
DECODE_ROWS = 256
"""Rows of a part one decode task (pretraining stream, labelled store) reads and preprocesses: a part's rows
decode in parallel; the task reads only the row groups holding its rows (`read_part_rows`)."""
DATA_CPUS = 0.25
"""CPUs a decode task asks for beside training workers (fractional: on 2 CPUs whole ones deadlock)."""
SHUFFLE_BUFFER = 256
"""Rows per lane in the shuffle buffer (the local shuffle window)."""


# ---------------------------------------------------------------- the driver's light pass


@dataclass
class LightArchive:
    """The light columns of an archive in archive order: part paths/names and row counts, ids, captions'
    hashes and labels (None when not asked for). Memory ≈ 100 bytes per row (ids) + 8 (hash)."""

    archive: str
    parts: list[tuple[str, str, int]]
    ids: list[str]
    caption_hash: np.ndarray
    labels: list[str | None] | None

    def provenance(self) -> dict[str, Any]:
        return {"path": self.archive, "rows": len(self.ids),
                "ids_sha256": hashlib.sha256("\n".join(sorted(self.ids)).encode()).hexdigest()[:16]}


def read_light(archive: str, labelled: bool) -> LightArchive:
    """Check every part's schema and ids (`clippings.reader.plan_shards`) and read the light columns.

    labelled: every row needs a label (BadInput naming the part and row otherwise).
    Cost: one pass over the parts' id/caption/label columns, no image bytes.
    """
    plan = plan_shards(archive)
    parts, ids, hashes, labels = [], [], [], [] if labelled else None
    for shard in plan.shards:
        fs, inner = filesystem(shard.path)
        with fs.open(inner, "rb") as f:
            names = pq.read_schema(f).names
        columns = [c for c in ("clipping_id", "caption", "label", "image", "image_path") if c in names]
        light = [c for c in columns if c not in ("image", "image_path")]
        table = read_part(shard.path, "archive", columns=light)
        if labelled:  # the same check as a full read, on an image-less view of the schema
            validate_archive_part(_with_image_placeholder(table), shard.path, require_labels=True)
            labels.extend(table.column("label").to_pylist())
        parts.append((shard.path, shard.name, table.num_rows))
        ids.extend(table.column("clipping_id").to_pylist())
        captions = table.column("caption").to_pylist() if "caption" in light else [None] * table.num_rows
        hashes.append(np.fromiter((_caption_hash(c) for c in captions), np.uint64, table.num_rows))
    return LightArchive(archive, parts, ids, np.concatenate(hashes), labels)


def _with_image_placeholder(table: pa.Table) -> pa.Table:
    """`table` plus a dummy non-null `image` column, so validation checks ids and labels without image bytes
    (image presence is checked where images are read)."""
    return table.append_column("image", pa.array([b""] * table.num_rows, pa.binary()))


def _caption_hash(caption: str | None) -> int:
    """64-bit hash of a caption; null and empty are one caption."""
    return int.from_bytes(hashlib.blake2b((caption or "").encode(), digest_size=8).digest(), "little")


# ---------------------------------------------------------------- pretraining: the plan (driver)


@dataclass
class StreamPlan:
    """What every rank needs to stream its rows: the parts with each row's role (int32 bytes, see
    DUPLICATE), the lane count, rows per lane, held-out rows, and provenance. About 4 bytes per row."""

    archive: str
    parts: list[tuple[str, str, bytes]]
    lanes: int
    lane_rows: list[int]
    n_val: int
    duplicates: int
    provenance: dict[str, Any]

    @property
    def n_train(self) -> int:
        return sum(self.lane_rows)


def pretraining_plan(archive: str, *, lanes: int, seed: int, val_fraction: float, max_val: int) -> StreamPlan:
    """Drop exact duplicate captions (the first row of each caption in archive order stays), hold out
    round(val_fraction·n) rows (at most `max_val`; none below 20 rows) chosen by `seed`, and deal the other
    rows to `lanes` lanes round robin. Cost: `read_light` plus O(n) integers."""
    light = read_light(archive, labelled=False)
    _, first = np.unique(light.caption_hash, return_index=True)
    kept = np.sort(first)
    n = len(kept)
    n_val = min(max_val, max(1, int(round(n * val_fraction)))) if n >= 20 else 0
    order = np.random.default_rng(seed).permutation(n)
    roles = np.full(len(light.ids), DUPLICATE, np.int32)
    val_rows, train_rows = kept[np.sort(order[:n_val])], kept[np.sort(order[n_val:])]
    roles[val_rows] = -2 - np.arange(n_val, dtype=np.int32)
    roles[train_rows] = np.arange(len(train_rows), dtype=np.int32) % lanes
    parts, start = [], 0
    for path, name, rows in light.parts:
        parts.append((path, name, roles[start : start + rows].tobytes()))
        start += rows
    lane_rows = np.bincount(roles[roles >= 0], minlength=lanes).tolist()
    provenance = {**light.provenance(), "duplicate_captions": len(light.ids) - n}
    return StreamPlan(archive, parts, lanes, lane_rows, n_val, len(light.ids) - n, provenance)


def lanes_for(workers: int, lanes: int) -> int:
    """The lane count for `workers`: the smallest multiple of `workers` ≥ `lanes` (so each rank owns whole
    lanes; worker counts dividing `lanes` all see the same batches)."""
    return -(-lanes // workers) * workers


# ---------------------------------------------------------------- pretraining: a rank's stream (worker)


def _decode_rank_rows(batch: dict[str, np.ndarray], archive: str, images: ImagePolicy, lanes: list[int],
                      rank: int, world: int, model: EmbedModel) -> Iterator[dict[str, np.ndarray]]:
    """Read rows first … first + len(roles) − 1 of one part and preprocess the ones this rank streams: its
    lanes' train rows and held-out rows i with i % world == rank, with `lane` (−1 for held-out), `val_index`
    (−1 for train) and `part` (index in the plan) columns; PREPROCESS_ROWS rows at a time."""
    for path, name, roles_bytes, part, first in zip(batch["path"], batch["name"], batch["roles"], batch["part"],
                                                    batch["first"], strict=True):
        roles = np.frombuffer(roles_bytes, np.int32)
        done = 0
        for table in read_part_rows(str(path), str(name), archive, images, int(first), int(first) + len(roles)):
            role, done = roles[done : done + table.num_rows], done + table.num_rows
            train = role >= 0
            val_index = np.where(role <= -2, -2 - role, -1)
            keep = (train & np.isin(role, lanes)) | ((val_index >= 0) & (val_index % world == rank))
            if not keep.any():
                continue
            table = table.filter(pa.array(keep))
            table = table.append_column("lane", pa.array(np.where(train, role, -1)[keep], pa.int32()))
            table = table.append_column("part", pa.array(np.full(int(keep.sum()), part, np.int32)))
            table = table.append_column("val_index", pa.array(val_index[keep], pa.int64()))
            yield from _preprocessed(table, model, carry=("lane", "val_index", "part"))


def _preprocessed(table: pa.Table, model: EmbedModel, carry: tuple[str, ...] = ()) -> Iterator[dict[str, np.ndarray]]:
    """`preprocess_rows` (uint8 pixels) of `table`, PREPROCESS_ROWS rows at a time: memory ≈ that many images."""
    for at in range(0, table.num_rows, PREPROCESS_ROWS):
        yield preprocess_rows(table.slice(at, PREPROCESS_ROWS), model=model, uint8=True, carry=carry)


def part_order(parts: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which every rank reads the parts in `epoch` (seeded by (seed, epoch))."""
    return np.random.default_rng([seed, epoch, 7]).permutation(parts)


def rank_dataset(plan: StreamPlan, model: EmbedModel, images: ImagePolicy, *, rank: int, world: int, seed: int, epoch: int,
                 cpus: float = DATA_CPUS):
    """This rank's Ray Dataset of preprocessed rows for `epoch`, in a deterministic order.

    model: an `EmbedModel` (processor and text length). Columns: `clipping_id`, `pixels` (uint8), `input_ids`,
    `length`, `reason` (non-empty: quarantine), `lane`, `val_index`, `part`. The caller's DataContext must preserve
    order (a training worker sets it in `PretrainTask.start`). cpus: per decode task.
    """
    import ray

    from clippings.raylocal import runtime_env

    per_rank = plan.lanes // world
    lanes = list(range(rank * per_rank, (rank + 1) * per_rank))
    items = []
    for i in part_order(len(plan.parts), seed, epoch):
        path, name, roles_bytes = plan.parts[i]
        roles = np.frombuffer(roles_bytes, np.int32)
        for first, stop in part_runs(len(roles), DECODE_ROWS):
            items.append({"path": path, "name": name, "roles": roles[first:stop].tobytes(),
                          "part": int(i), "first": first})
    env = runtime_env(cpus)
    # One task reads a run of DECODE_ROWS rows of a part and decodes them: a part's rows decode in parallel,
    # and no other operator holds a CPU (a Ray Data repartition would take a whole CPU per task and keep it
    # while its output waits, leaving 2 CPUs one decoder at a time).
    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        _decode_rank_rows, batch_size=1, num_cpus=cpus, runtime_env=env,
        fn_kwargs={"archive": plan.archive, "images": images, "lanes": lanes, "rank": rank, "world": world,
                   "model": model},
    )


class LaneShuffle:
    """Per-lane shuffle buffers, each seeded by (seed, epoch, lane): a lane's output order depends only on
    its own input order, never on the other lanes or the rank that holds it.

    A row enters its lane's buffer; once the buffer holds `size` rows, each new row releases a random one
    to the lane's output queue; at the end of the stream the rest leave in random order.
    """

    def __init__(self, lanes: list[int], size: int, seed: int, epoch: int) -> None:
        self.size = size
        self.buffers: dict[int, list] = {lane: [] for lane in lanes}
        self.ready: dict[int, deque] = {lane: deque() for lane in lanes}
        self.rngs = {lane: np.random.default_rng([seed, epoch, lane]) for lane in lanes}

    def add(self, lane: int, row: Any) -> None:
        buffer = self.buffers[lane]
        buffer.append(row)
        if len(buffer) > self.size:
            self.ready[lane].append(self._pop(lane))

    def close(self) -> None:
        for lane, buffer in self.buffers.items():
            while buffer:
                self.ready[lane].append(self._pop(lane))

    def _pop(self, lane: int) -> Any:
        buffer = self.buffers[lane]
        j = int(self.rngs[lane].integers(len(buffer)))
        buffer[j], buffer[-1] = buffer[-1], buffer[j]
        return buffer.pop()

    def has(self, per_lane: int) -> bool:
        return all(len(q) >= per_lane for q in self.ready.values())

    def take(self, per_lane: int) -> list[Any]:
        """per_lane rows from each lane, lanes in order."""
        return [q.popleft() for lane in sorted(self.ready) for q in [self.ready[lane]] for _ in range(per_lane)]


@dataclass
class Row:
    """One preprocessed pair on a worker: uint8 pixels (3·H·W bytes), token ids, caption length."""

    clipping_id: str
    pixels: np.ndarray
    input_ids: np.ndarray
    length: int


def stack(rows: list[Row]) -> dict[str, np.ndarray]:
    """Rows as batch arrays (`pixels`, `input_ids`, `length`) for `clippings.train.pixels.model_inputs`."""
    return {"pixels": np.stack([r.pixels for r in rows]), "input_ids": np.stack([r.input_ids for r in rows]),
            "length": np.asarray([r.length for r in rows], np.int64)}


Entry = tuple[int, str, Any, Any]
"""One streamed row as a rank sees it: (part, kind, key, value) with kind "train" (key: lane, value: Row),
"val" (key: val_index, value: Row) or "bad" (key: clipping_id, value: reason)."""


def stream_rows(dataset) -> Iterator[Entry]:
    """The entries of a rank's dataset (`rank_dataset`), in its order."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        for i, (cid, reason) in enumerate(zip(batch["clipping_id"], batch["reason"], strict=True)):
            part = int(batch["part"][i])
            if reason:
                yield part, "bad", str(cid), str(reason)
                continue
            # copies: a view would keep the stream's whole batch alive for as long as one row waits
            row = Row(str(cid), batch["pixels"][i].copy(), batch["input_ids"][i].copy(), int(batch["length"][i]))
            if batch["val_index"][i] >= 0:
                yield part, "val", int(batch["val_index"][i]), row
            else:
                yield part, "train", int(batch["lane"][i]), row


class DecodedCache:
    """A rank's decoded rows, kept from its first streamed epoch while they fit `budget` bytes, and replayed
    in a later epoch's part order instead of decoding the archive again.

    Within a part a stream yields rows in archive order, and parts come in `part_order`; a replay yields the
    kept parts in that order, so it is the very sequence a new stream would give: the lane shuffles, the
    batches and the 1-vs-2-worker equality are unchanged. Decoding costs far more than a training step of a
    small model (docs/benchmarks.md#pretraining-ingestion), so an archive whose rank share fits is decoded
    once; one that does not streams every epoch, as the memory bound needs.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.parts: dict[int, list[Entry]] | None = {}
        self.size = 0
        self.complete = False

    def record(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """Pass `entries` through, keeping them until they exceed the budget (then keep nothing)."""
        for entry in entries:
            if self.parts is not None:
                value = entry[3]
                self.size += value.pixels.nbytes + value.input_ids.nbytes if isinstance(value, Row) else 64
                if self.size > self.budget:
                    self.parts = None
                else:
                    self.parts.setdefault(entry[0], []).append(entry)
            yield entry
        self.complete = self.parts is not None

    def replay(self, order: np.ndarray) -> Iterator[Entry]:
        for part in order:
            yield from self.parts.get(int(part), ())


class RankStream:
    """One epoch of a rank's rows: global batches' local parts, then the held-out rows and the bad rows.

    entries: `stream_rows` of this epoch's `rank_dataset`, or a `DecodedCache` replay. Iterate
    `steps(per_lane, agree)` for the training steps (each B/w rows: per_lane rows of each of the
    rank's lanes); `agree(ok) -> bool` must return True only when every rank has a step (an all-reduce of
    min), so all ranks take the same number of steps. After the steps the stream is drained, so `val`
    (val_index → Row) and `bad` ((clipping_id, reason) pairs) are complete.
    """

    def __init__(self, entries: Iterator[Entry], lanes: list[int], buffer: int, seed: int, epoch: int) -> None:
        self.entries = entries
        self.shuffle = LaneShuffle(lanes, buffer, seed, epoch)
        self.val: dict[int, Row] = {}
        self.bad: list[tuple[str, str]] = []
        self.done = False

    def _pull(self) -> None:
        entry = next(self.entries, None)
        if entry is None:
            self.shuffle.close()
            self.done = True
            return
        _, kind, key, value = entry
        if kind == "bad":
            self.bad.append((key, value))
        elif kind == "val":
            self.val[key] = value
        else:
            self.shuffle.add(key, value)

    def steps(self, per_lane: int, agree) -> Iterator[list[Row]]:
        while True:
            while not self.shuffle.has(per_lane) and not self.done:
                self._pull()
            if not agree(self.shuffle.has(per_lane)):
                break
            yield self.shuffle.take(per_lane)
        while not self.done:
            self._pull()


# ---------------------------------------------------------------- labelled sets: an object-store row store


@dataclass
class LabelledStore:
    """A labelled set preprocessed once into object-store blocks (uint8 pixels, tokens), read by row index.

    refs: one ObjectRef per block (a dict of numpy arrays: `pixels`, `input_ids`, `length`). block, offset:
    where row i (archive order) lives. labels: int class codes (archive order). The driver holds refs and 12
    bytes per row, never pixels; a worker fetches the blocks a batch needs (zero-copy on the node that holds
    them) and keeps the last `cache` ones.
    """

    refs: list[Any]
    block: np.ndarray
    offset: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any]
    cache: int = 64

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Rows `idx` (any order, repeats allowed) as batch arrays for `model_inputs`."""
        import ray

        cached = self.__dict__.setdefault("_cache", {})
        blocks, offsets = self.block[idx], self.offset[idx]
        need = [b for b in dict.fromkeys(blocks.tolist()) if b not in cached]
        for b, value in zip(need, ray.get([self.refs[b] for b in need]), strict=True):
            cached[b] = value
        out = {k: np.stack([cached[b][k][o] for b, o in zip(blocks, offsets, strict=True)])
               for k in ("pixels", "input_ids", "length")}
        for b in list(cached)[: max(0, len(cached) - self.cache)]:
            del cached[b]
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}


def labelled_store(archive: str, model: EmbedModel, images: ImagePolicy = ARCHIVE_ONLY, cpus: float = 0.5) -> LabelledStore:
    """Preprocess a labelled archive into a `LabelledStore` with Ray CPU tasks.

    model: an `EmbedModel`. An undecodable, missing or refused image is a BadInput naming the archive and the
    first such clipping id (labels must be clean: fix or remove the row). cpus: per decode task (fractional,
    beside the training workers). Cost: one decode per row in parallel tasks; object store 3·H·W + ~8·L bytes per
    row; driver ~120 bytes per row.
    """
    import ray

    from clippings.progress import Progress
    from clippings.raylocal import runtime_env

    light = read_light(archive, labelled=True)
    # Plain tasks, one per run of DECODE_ROWS rows of a part, each returning its block and its ids and reasons
    # apart: the driver owns every block without fetching pixels. Through Ray Data (a map, then the blocks'
    # refs) 2 CPUs decoded no faster than 1 here, and converting or inspecting its blocks took tasks of their own.
    decode = ray.remote(_store_block).options(num_cpus=cpus, runtime_env=runtime_env(cpus), num_returns=2)
    runs = [decode.remote(path, name, first, stop - first, archive, images, model)
            for path, name, rows in light.parts for first, stop in part_runs(rows, DECODE_ROWS)]
    refs, pending = [block for block, _ in runs], [meta for _, meta in runs]
    done: dict[Any, tuple[list[str], list[str]]] = {}  # each run's (ids, reasons), fetched once as it ends
    with Progress(f"train: decode {archive}", total=len(light.ids), unit="clipping") as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done[ready[0]] = ray.get(ready[0])
            bar.update(len(done[ready[0]][0]))
    meta = [done[ref] for _, ref in runs]
    position = {cid: i for i, cid in enumerate(light.ids)}
    block = np.full(len(light.ids), -1, np.int32)
    offset = np.full(len(light.ids), -1, np.int32)
    bad = {}
    for b, (ids, reasons) in enumerate(meta):
        for o, (cid, reason) in enumerate(zip(ids, reasons, strict=True)):
            block[position[cid]], offset[position[cid]] = b, o
            if reason:
                bad[position[cid]] = (cid, reason)
    if bad:
        cid, reason = bad[min(bad)]
        raise BadInput(f"archive {archive}: clipping_id {cid!r}: {reason}; fix or remove the row before training")
    _, codes = np.unique(np.asarray(light.labels, dtype=object).astype(str), return_inverse=True)
    return LabelledStore(refs, block, offset, codes.astype(np.int64),
                         {**light.provenance(), "rows_used": len(light.ids)})


def _store_block(path: str, name: str, first: int, count: int, archive: str, images: ImagePolicy,
                 model: EmbedModel) -> tuple[dict[str, np.ndarray], tuple[list[str], list[str]]]:
    """Rows first … first + count − 1 of one part, preprocessed: the block (`pixels`, `input_ids`, `length`)
    and its (ids, reasons)."""
    pieces = [piece for table in read_part_rows(path, name, archive, images, first, first + count)
              for piece in _preprocessed(table, model)]
    block = {k: np.concatenate([p[k] for p in pieces]) for k in ("pixels", "input_ids", "length")}
    return block, ([str(c) for p in pieces for c in p["clipping_id"]], [str(r) for p in pieces for r in p["reason"]])
