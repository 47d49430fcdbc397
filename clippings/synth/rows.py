"""Archive rows of the built-in archive and its writer: ids, each story's reprints, the split folders; the
captions alone for text benchmarks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa

from clippings.archive import ARCHIVE_SCHEMA
from clippings.errors import BadInput
from clippings.storage import join, write_dataset
from clippings.synth.captions import pick, reprint_caption, story_facts_for, story_text, town
from clippings.synth.difficulty import Difficulty, difficulty_of
from clippings.synth.drawing import base_image
from clippings.synth.ocr import ocr_caption
from clippings.synth.plan import SPLITS, Story, plan
from clippings.synth.scan import print_and_scan, scan
from clippings.synth.words import MASTHEADS


def clipping_id(seed: int, story: int, reprint: int) -> str:
    """An id that reveals nothing of the story (ids are hashes, rows are shuffled)."""
    return "c" + hashlib.blake2b(f"{seed}:{story}:{reprint}".encode(), digest_size=6).hexdigest()


def read_caption(text: str, facts: dict, rng: np.random.Generator, difficulty: Difficulty, kind: str) -> str:
    """One paper's caption of the wire text `text` (a story of image `kind`) as the OCR read it."""
    if difficulty.ocr is None:
        return reprint_caption(text, facts, rng)
    return ocr_caption(text, facts, rng, difficulty.ocr, kind)


def story_rows(story: Story, stories: list[Story], seed: int, difficulty: str | Difficulty = "mild"
               ) -> Iterator[dict]:
    """All reprint rows of one story (archive columns), deterministic for (seed, story, difficulty).

    difficulty: "mild" (the light scan and OCR, the default) or "hard" (see clippings.synth.difficulty).
    """
    level = difficulty_of(difficulty)
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
            "image": scan(base, r) if level.scan is None else print_and_scan(base, r, level.scan),
            "image_path": None,
            "caption": read_caption(text, facts, r, level, story.kind),
            "label": None if story.split == "unlabelled" else f"story-{story.index:06d}",
            "source": f"{city} {pick(r, MASTHEADS)}",
            "date": f"{y:04d}-{m:02d}-{min(day, 28):02d}",
            "page": str(int(r.integers(1, 25))),
        }


def _rows_for(args: tuple[list[int], list[Story], int, Difficulty]) -> list[tuple[str, dict]]:
    indices, stories, seed, level = args
    return [(stories[i].split, row) for i in indices for row in story_rows(stories[i], stories, seed, level)]


def generate(out: str, stories: int = 2000, seed: int = 0, workers: int | None = None,
             difficulty: str | Difficulty = "mild") -> dict[str, str]:
    """Write the synthetic archive into `out/{unlabelled,train,val,test}`; returns split name -> folder.

    stories: number of distinct stories (about 3.1 reprints each on average, so 2000 stories ~ 6,200 rows).
    seed: the same seed gives byte-identical Parquet files. workers: processes drawing images (default: up
    to 2, one for small archives); the output does not depend on it. difficulty: "mild" (default; the light
    scan and OCR the demo and the tests were built on) or "hard" (real reprint variation and OCR error
    rates: clippings.synth.difficulty). Cost: ~0.5 ms per row on 2 cores mild, about twice that hard;
    memory of the whole archive's encoded images (~3 KB per row).
    """
    if stories < 4:
        raise BadInput(f"The 'stories' parameter of synth must be an int in the range [4, inf). Got {stories!r} instead.")
    level = difficulty_of(difficulty)
    stories_ = plan(stories, seed)
    workers = workers or (1 if stories < 300 else min(2, os.cpu_count() or 1))
    step = max(1, -(-stories // (workers * 8)))
    chunks = [(list(range(i, min(i + step, stories))), stories_, seed, level) for i in range(0, stories, step)]
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


def _captions_for(args: tuple[int, int, int, int, Difficulty]) -> tuple[list[str], list[str]]:
    stories, seed, lo, hi, level = args
    captions, labels = [], []
    for s in plan(stories, seed)[lo:hi]:
        facts = story_facts_for(s, seed)
        text = story_text(s.kind, s.formulaic, facts, np.random.default_rng([seed, s.index, 0]))
        for k in range(s.size):
            r = np.random.default_rng([seed, s.index, 1 + k])
            captions.append(read_caption(text, facts, r, level, s.kind))
            labels.append(f"story-{s.index:07d}")
    return captions, labels


def generate_captions(stories: int, seed: int = 0, workers: int = 1, difficulty: str | Difficulty = "mild"
                      ) -> tuple[list[str], list[str]]:
    """Reprint captions only (no images): (captions, labels) for `stories` stories of the plan.

    For benchmarks of text methods at archive scale (~3.1 captions per story). workers: processes (each
    re-plans, O(stories)); the output does not depend on it. difficulty: as for `generate` (the captions are
    read with the same OCR model, though not the same draws as the archive's rows). Cost: ~0.2 ms per
    caption per process.
    """
    level = difficulty_of(difficulty)
    step = -(-stories // max(workers, 1))
    chunks = [(stories, seed, lo, min(lo + step, stories), level) for lo in range(0, stories, step)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_captions_for, chunks))
    else:
        parts = [_captions_for(c) for c in chunks]
    return [c for p in parts for c in p[0]], [label for p in parts for label in p[1]]
