"""Archive rows of the built-in archive and its writer: ids, each story's reprints, the split folders."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa

from clippings.archive import ARCHIVE_SCHEMA, join, write_dataset
from clippings.errors import BadInput
from clippings.synth.captions import pick, reprint_caption, story_facts_for, story_text, town
from clippings.synth.drawing import base_image
from clippings.synth.plan import SPLITS, Story, plan
from clippings.synth.scan import scan
from clippings.synth.words import MASTHEADS


def clipping_id(seed: int, story: int, reprint: int) -> str:
    """An id that reveals nothing of the story (ids are hashes, rows are shuffled)."""
    return "c" + hashlib.blake2b(f"{seed}:{story}:{reprint}".encode(), digest_size=6).hexdigest()


def story_rows(story: Story, stories: list[Story], seed: int) -> Iterator[dict]:
    """All reprint rows of one story (archive columns), deterministic for (seed, story)."""
    facts = story_facts_for(story, seed)
    text = story_text(story.kind, story.formulaic, facts, np.random.default_rng([seed, story.index, 0]))
    base = base_image(story, stories, seed, facts)
    y, m, d = (int(v) for v in facts["date"].split("-"))
    for k in range(story.size):
        r = np.random.default_rng([seed, story.index, 1 + k])
        city, _ = town(r)
        day = d + int(r.integers(0, 12))
        yield {
            "clipping_id": clipping_id(seed, story.index, k),
            "image": scan(base, r),
            "image_path": None,
            "caption": reprint_caption(text, facts, r),
            "label": None if story.split == "unlabelled" else f"story-{story.index:06d}",
            "source": f"{city} {pick(r, MASTHEADS)}",
            "date": f"{y:04d}-{m:02d}-{min(day, 28):02d}",
            "page": str(int(r.integers(1, 25))),
        }


def _rows_for(args: tuple[list[int], list[Story], int]) -> list[tuple[str, dict]]:
    indices, stories, seed = args
    return [(stories[i].split, row) for i in indices for row in story_rows(stories[i], stories, seed)]


def generate(out: str, stories: int = 2000, seed: int = 0, workers: int | None = None) -> dict[str, str]:
    """Write the synthetic archive into `out/{unlabelled,train,val,test}`; returns split name -> folder.

    stories: number of distinct stories (about 2.6 reprints each on average, so 2000 stories ~ 5,000 rows).
    seed: the same seed gives byte-identical Parquet files. workers: processes drawing images (default: up
    to 2, one for small archives); the output does not depend on it. Cost: ~0.5 ms per row on 2 cores,
    memory of the whole archive's encoded images (~3 KB per row).
    """
    if stories < 4:
        raise BadInput(f"The 'stories' parameter of synth must be an int in the range [4, inf). Got {stories!r} instead.")
    stories_ = plan(stories, seed)
    workers = workers or (1 if stories < 300 else min(2, os.cpu_count() or 1))
    step = max(1, -(-stories // (workers * 8)))
    chunks = [(list(range(i, min(i + step, stories))), stories_, seed) for i in range(0, stories, step)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_rows_for, chunks))
    else:
        parts = [_rows_for(c) for c in chunks]
    by_split: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for rows in parts:
        for split, row in rows:
            by_split[split].append(row)
    paths = {}
    for i, name in enumerate(SPLITS):
        rows = by_split[name]
        order = np.random.default_rng([seed, 0xC0FFEE, i]).permutation(len(rows))
        table = pa.Table.from_pylist([rows[j] for j in order], schema=ARCHIVE_SCHEMA)
        paths[name] = join(out, name)
        write_dataset(table, paths[name])
    return paths
