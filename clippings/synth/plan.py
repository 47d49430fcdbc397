"""The story-level plan of the built-in archive: splits, image kinds, reprint counts and confounder links."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("unlabelled", "train", "val", "test")
SPLIT_FRACTIONS = (0.40, 0.30, 0.15, 0.15)
BASE_SIZE = 128
KINDS = ("portrait", "scene", "map", "headline")
KIND_P = (0.35, 0.30, 0.15, 0.20)
PHOTO_REUSE_P = 0.12  # a story reuses another story's photo (same split), with its own caption
FOLLOW_UP_P = 0.15  # a story is a follow-up of another: same people, places and event, new wording
TWIN_PORTRAIT_P = 0.15  # a portrait story gets a near-copy of another story's portrait
FORMULAIC_P = 0.30  # a story uses a fixed-wording template family (engagements, obituaries, ...)



@dataclass
class Story:
    index: int
    split: str
    kind: str
    size: int
    photo_of: int  # whose photo (== index unless reused)
    twin_of: int = -1  # portrait near-copied from this story (-1: none)
    formulaic: bool = False
    follow_of: int = -1  # shares people/places/event with this story (-1: none)
    facts: dict = field(default_factory=dict)


def _group_size(rng: np.random.Generator) -> int:
    """Heavy tail: 40 % singletons, else 1 + Zipf(2) capped at 60 (most 2-10, about 2 % of groups 30+)."""
    if rng.random() < 0.40:
        return 1
    return int(1 + min(rng.zipf(2.0), 59))


def plan(stories: int, seed: int) -> list[Story]:
    """Decide every story's split, image kind, reprint count and confounder links (no images yet).

    Cost: O(stories), milliseconds. Stories are split 40/30/15/15 into unlabelled/train/val/test; confounder
    partners are chosen inside the same split so every split holds its own confounders.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    counts = [int(round(f * stories)) for f in SPLIT_FRACTIONS]
    counts[0] = stories - sum(counts[1:])
    split_of = np.repeat(np.arange(len(SPLITS)), counts)
    rng.shuffle(split_of)
    kinds = rng.choice(len(KINDS), size=stories, p=KIND_P)
    plan_ = [Story(i, SPLITS[split_of[i]], KINDS[kinds[i]], _group_size(rng), i) for i in range(stories)]
    if stories >= 20 and max(s.size for s in plan_) < 30:  # keep the tail visible even in small archives
        max(plan_, key=lambda s: s.size).size = int(rng.integers(30, 46))
    for s in plan_:
        s.formulaic = bool(rng.random() < FORMULAIC_P)
    for name in SPLITS:
        members = [s for s in plan_ if s.split == name]
        photos = [s for s in members if s.kind != "headline"]
        portraits = [s for s in members if s.kind == "portrait"]
        for s in photos:
            if len(photos) > 1 and rng.random() < PHOTO_REUSE_P:
                other = photos[int(rng.integers(len(photos)))]
                if other.index != s.index and other.photo_of == other.index:
                    s.photo_of, s.kind = other.index, other.kind
                    if rng.random() < 0.5:  # the same person's photo with a new story about them
                        s.follow_of = other.index
        for s in members:
            if len(members) > 1 and s.follow_of < 0 and rng.random() < FOLLOW_UP_P:
                other = members[int(rng.integers(len(members)))]
                if other.index != s.index and other.follow_of < 0:
                    s.follow_of = other.index
        for s in portraits:
            if len(portraits) > 1 and s.photo_of == s.index and rng.random() < TWIN_PORTRAIT_P:
                other = portraits[int(rng.integers(len(portraits)))]
                if other.index != s.index and other.twin_of < 0 and other.kind == "portrait":  # still a face
                    s.twin_of = other.index
    return plan_
