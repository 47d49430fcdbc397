"""A small labelled reprint archive built with PIL for the training tests (seconds, no clippings.synth)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from clippings.storage import write_dataset

WORDS = "wire story mayor fire bridge storm court bank rail ship strike vote city river mill price".split()


def _story(rng: np.random.Generator) -> tuple[tuple, str]:
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    box = tuple(int(v) for v in rng.integers(4, 40, 2))
    return (colour, box), " ".join(rng.choice(WORDS, 6))


def _reprint(rng: np.random.Generator, story: tuple, caption: str) -> tuple[bytes, str]:
    (colour, (x, y)) = story
    im = Image.new("RGB", (64, 64), (235, 235, 225))
    dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
    ImageDraw.Draw(im).rectangle([x + dx, y + dy, x + dx + 20, y + dy + 20], fill=colour)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    chars = list(caption)
    for i in rng.integers(0, len(chars), 2):  # OCR noise
        chars[i] = chr(int(rng.integers(97, 123)))
    return buf.getvalue(), "".join(chars)


def make_archive(path: str, classes: int, per_class: int, seed: int, labelled: bool = True) -> str:
    """Write `classes` reprint groups of `per_class` noisy reprints each to the archive folder `path`."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"clipping_id": [], "image": [], "caption": [], "label": []}
    for c in range(classes):
        story, caption = _story(rng)
        for r in range(per_class):
            image, text = _reprint(rng, story, caption)
            rows["clipping_id"].append(f"s{seed}-c{c:03d}-r{r}")
            rows["image"].append(image)
            rows["caption"].append(text)
            rows["label"].append(f"c{seed}-{c}" if labelled else None)
    table = pa.table({**rows, "label": pa.array(rows["label"], pa.string())})
    write_dataset(table, path)
    return path
