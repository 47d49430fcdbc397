"""Training ingestion (clippings.train.pairs) on real local Ray: the pretraining stream's order (seeded by
(seed, epoch), the same global batches for 1 and 2 workers), the quarantine of bad unlabelled rows, and the
labelled store read in plan order."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embed_helpers import png

from clippings.archive import read_quarantine
from clippings.storage import part_name, write_table_atomic


@pytest.fixture(scope="module")
def tiny():
    from clippings.model import load_model
    from clippings.preprocess import describe_loaded

    loaded = load_model("tiny")
    return describe_loaded("tiny", loaded), loaded


@pytest.fixture
def ordered(ray_local):
    """This process's Ray Data keeps block order (as the training workers set it)."""
    from ray.data import DataContext

    options = DataContext.get_current().execution_options
    old, options.preserve_order = options.preserve_order, True
    yield
    options.preserve_order = old


def write_archive(folder: str, parts: int, rows: int) -> list[str]:
    """`parts` parts of `rows` rows, inline images png(i), distinct captions; returns the ids."""
    ids = []
    for p in range(parts):
        n = range(p * rows, (p + 1) * rows)
        table = pa.table({"clipping_id": [f"c{i:05d}" for i in n], "image": pa.array([png(i) for i in n], pa.binary()),
                          "caption": [f"story {i} " * (1 + i % 3) for i in n]})
        write_table_atomic(table, os.path.join(folder, part_name(p)))
        ids += table.column("clipping_id").to_pylist()
    return ids


def _bad_archive(folder: str) -> dict[str, str]:
    """3 parts of 24 good rows plus, in part 3, an undecodable image, a missing file and a duplicate caption;
    returns the expected quarantine reason prefix of each bad id."""
    write_archive(folder, 3, 24)
    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    table = pa.table({
        "clipping_id": ["bad-bytes", "missing-file", "dup-caption"],
        "image": pa.array([b"not an image", None, png(1)], pa.binary()),
        "image_path": pa.array([None, "img/nope.png", None], pa.string()),
        "caption": ["broken", "lost", "story 0 "],  # the last repeats c00000's caption
    })
    write_table_atomic(table, os.path.join(folder, part_name(3)))
    return {"bad-bytes": "undecodable image", "missing-file": "image file not found"}


def _epoch(plan, model, *, rank: int, world: int, seed: int, epoch: int, per_lane: int = 4, cache=None):
    from clippings.image_paths import ARCHIVE_ONLY
    from clippings.train.pairs import RankStream, part_order, rank_dataset, stream_rows

    per_rank = plan.lanes // world
    lanes = list(range(rank * per_rank, (rank + 1) * per_rank))
    if cache is not None and cache.complete:
        entries = cache.replay(part_order(len(plan.parts), seed, epoch))
    else:
        entries = stream_rows(rank_dataset(plan, model, ARCHIVE_ONLY, rank=rank, world=world, seed=seed, epoch=epoch))
        entries = entries if cache is None else cache.record(entries)
    stream = RankStream(entries, lanes, 8, seed, epoch)
    steps = [[r.clipping_id for r in rows] for rows in stream.steps(per_lane, lambda ok: ok)]
    left = [r.clipping_id for q in stream.shuffle.ready.values() for r in q]
    return steps, left, stream


def test_stream_order_is_seeded_changes_per_epoch_and_is_the_same_for_1_and_2_workers(tmp_path, tiny, ordered):
    from clippings.train.pairs import pretraining_plan

    archive = str(tmp_path / "a")
    write_archive(archive, 3, 24)
    plan = pretraining_plan(archive, lanes=4, seed=0, val_fraction=0.1, max_val=100)
    model, _ = tiny
    one, _, _ = _epoch(plan, model, rank=0, world=1, seed=0, epoch=1)
    assert len(one) == min(plan.lane_rows) // 4 and all(len(s) == 16 for s in one)
    again, _, _ = _epoch(plan, model, rank=0, world=1, seed=0, epoch=1)
    assert again == one  # seeded
    second, _, _ = _epoch(plan, model, rank=0, world=1, seed=0, epoch=2)
    other_seed, _, _ = _epoch(plan, model, rank=0, world=1, seed=1, epoch=1)
    assert second != one and other_seed != one  # a new order each epoch, and per seed
    halves = [_epoch(plan, model, rank=r, world=2, seed=0, epoch=1)[0] for r in (0, 1)]
    both = [sorted(a + b) for a, b in zip(*halves, strict=False)]  # ranks stop together under Ray Train
    assert len(both) >= len(one) - 1 and both[: len(one)] == [sorted(s) for s in one][: len(both)]  # same batches


def test_a_replayed_epoch_is_the_stream_it_replaces_and_an_overfull_cache_keeps_nothing(tmp_path, tiny, ordered):
    from clippings.train.pairs import DecodedCache, pretraining_plan

    archive = str(tmp_path / "a")
    reasons = _bad_archive(archive)
    plan = pretraining_plan(archive, lanes=4, seed=0, val_fraction=0.1, max_val=100)
    model, _ = tiny
    cache = DecodedCache(1 << 30)
    first = _epoch(plan, model, rank=0, world=1, seed=0, epoch=1, cache=cache)
    assert cache.complete and first[0] == _epoch(plan, model, rank=0, world=1, seed=0, epoch=1)[0]
    streamed = _epoch(plan, model, rank=0, world=1, seed=0, epoch=2)
    replayed = _epoch(plan, model, rank=0, world=1, seed=0, epoch=2, cache=cache)
    assert replayed[:2] == streamed[:2] and replayed[0] != first[0]  # same steps and leftovers; a new order
    assert sorted(replayed[2].val) == sorted(streamed[2].val) and dict(replayed[2].bad).keys() == reasons.keys()
    small = DecodedCache(1000)  # a few rows: the cache gives up and the next epoch streams again
    _epoch(plan, model, rank=0, world=1, seed=0, epoch=1, cache=small)
    assert not small.complete and small.parts is None


def test_bad_unlabelled_rows_are_quarantined_and_every_id_is_accounted_for(tmp_path, tiny, ordered):
    from clippings.train.pairs import pretraining_plan

    archive = str(tmp_path / "a")
    reasons = _bad_archive(archive)
    plan = pretraining_plan(archive, lanes=4, seed=0, val_fraction=0.1, max_val=100)
    assert plan.duplicates == 1 and plan.provenance["rows"] == 75
    steps, left, stream = _epoch(plan, tiny[0], rank=0, world=1, seed=0, epoch=1)
    used = sum(steps, []) + left + [r.clipping_id for r in stream.val.values()]
    bad = dict(stream.bad)
    assert set(bad) == set(reasons) and all(bad[i].startswith(reasons[i]) for i in reasons)
    every = set(used) | set(bad) | {"dup-caption"}
    assert len(used) + len(bad) + 1 == 75 and len(every) == 75  # ids in = used ∪ quarantined ∪ duplicates


@pytest.mark.slow
def test_pretraining_quarantines_bad_rows_and_counts_them_in_clippings_json(tmp_path, ray_local):
    from clippings.train.pretrain import pretrain

    archive = str(tmp_path / "a")
    reasons = _bad_archive(archive)
    out = str(tmp_path / "model")
    state = pretrain(archive, out, workers=1, epochs=1, batch_size=16, seed=0)
    assert state["history"][0]["quarantined"] == 2
    with open(os.path.join(out, "clippings.json")) as f:
        data = json.load(f)["data"]["archive"]
    assert data["rows"] == 75 and data["quarantined"] == 2 and data["duplicate_captions"] == 1
    assert data["rows_used"] == 75 - 2 - 1
    quarantine = read_quarantine(out).to_pylist()
    assert sorted(q["clipping_id"] for q in quarantine) == sorted(reasons)
    assert all(q["stage"] == "pretrain" and q["reason"].startswith(reasons[q["clipping_id"]]) for q in quarantine)


def test_labelled_store_reads_rows_in_plan_order(tmp_path, tiny, ray_local):
    from clippings.image_paths import decode_image
    from clippings.preprocess import uint8_pixels
    from clippings.train.pairs import labelled_store

    archive = str(tmp_path / "labelled")
    ids = write_archive(archive, 2, 10)
    for p in range(2):  # label = story of 2 reprints
        path = os.path.join(archive, part_name(p))
        table = pq.read_table(path)
        labels = [f"g{int(i[1:]) // 2}" for i in table.column("clipping_id").to_pylist()]
        write_table_atomic(table.append_column("label", pa.array(labels)), path)
    model, loaded = tiny
    store = labelled_store(archive, model)
    assert store.labels.tolist() == [i // 2 for i in range(20)]  # archive order
    plan = np.asarray([7, 3, 3, 19, 0, 12])  # any order, repeats allowed (m-per-class batches resample)
    rows = store.rows(plan)
    expected = uint8_pixels(loaded.processor, [decode_image(png(int(ids[i][1:]))) for i in plan])
    np.testing.assert_array_equal(rows["pixels"], expected)
    whole = store.rows(np.arange(20))
    np.testing.assert_array_equal(rows["input_ids"], whole["input_ids"][plan])
    np.testing.assert_array_equal(rows["length"], whole["length"][plan])
