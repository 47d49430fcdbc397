"""The built-in synthetic reprint archive: the embedded default data of the demo, tests and benchmarks.

A *story* is one clipping as a wire service sent it: a photo-like image (a procedural scene, a portrait, a
map or a headline block) and a caption. Each story is reprinted by a heavy-tailed number of papers (many
singletons, most groups of 2-10, a few of 30+). A reprint is a new scan of the image (crop, scale, small
rotation, contrast, halftone or dither, noise, blur, JPEG artefacts, mostly grayscale) and a new OCR of the
caption (rn/m, l/1/I, O/0, e/c, cl/d confusions; dropped and merged words; broken hyphenation; truncation;
editorial datelines and tails). Confounders make single modalities fail the way they do on real archives:
the same photo reused by a different story (defeats image-only), the same formulaic caption template with
different names and photos (defeats low-n Jaccard and text-only), near-identical portraits of different
people (defeats image-only).

Determinism: every random choice comes from a numpy Generator seeded by (seed, story[, reprint]); there is
no global RNG and no timestamp anywhere, so the same seed gives byte-identical Parquet files.
"""


from __future__ import annotations

from clippings.synth.captions import reprint_caption, story_facts, story_facts_for
from clippings.synth.difficulty import DIFFICULTIES, HARD, MILD, Difficulty, difficulty_of
from clippings.synth.drawing import base_image
from clippings.synth.plan import SPLITS, Story, plan
from clippings.synth.rows import generate, generate_captions, read_caption, story_rows

__all__ = ["DIFFICULTIES", "HARD", "MILD", "SPLITS", "Difficulty", "Story", "base_image", "difficulty_of", "generate", "generate_captions", "plan", "read_caption", "reprint_caption",
           "story_facts", "story_facts_for", "story_rows"]
