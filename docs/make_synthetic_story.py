"""Draw docs/synthetic_story.png: the reprints of one synthetic story, each scan above its OCR caption.

Run: `python docs/make_synthetic_story.py [--seed 0] [--kind portrait] [--out docs/synthetic_story.png]`.
"""

from __future__ import annotations

import argparse
import io
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clippings.synth import plan, story_rows


def story_sheet(seed: int = 0, kind: str = "portrait", reprints: int = 6, confounder: bool = True) -> Image.Image:
    """A grid of one story's reprints (2 rows x 3), plus, when `confounder`, a story that reuses its photo."""
    stories = plan(2000, seed)
    story = next(s for s in stories if s.kind == kind and s.size >= reprints and s.photo_of == s.index
                 and any(o.photo_of == s.index and o.index != s.index for o in stories))
    rows = list(story_rows(story, stories, seed))[:reprints]
    cells = [(r, f"story {story.index}") for r in rows]
    if confounder:
        other = next(o for o in stories if o.photo_of == story.index and o.index != story.index)
        cells += [(r, f"story {other.index}: same photo") for r in
                  list(story_rows(other, stories, seed))[:3]]
    cw, ch, cols = 250, 330, 3
    sheet = Image.new("RGB", (cw * cols, ch * ((len(cells) + cols - 1) // cols)), "white")
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for i, (row, tag) in enumerate(cells):
        x, y = (i % cols) * cw, (i // cols) * ch
        img = Image.open(io.BytesIO(row["image"])).convert("RGB")
        img.thumbnail((128, 128))
        sheet.paste(img.resize((img.width * 3 // 2, img.height * 3 // 2)), (x + 10, y + 8))
        d.text((x + 10, y + 205), f"{tag} · {row['source']}", fill=(150, 0, 0), font=font)
        text = "\n".join(textwrap.wrap(row["caption"], 40)[:7])
        d.multiline_text((x + 10, y + 220), text, fill=(0, 0, 0), font=font, spacing=2)
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", default="portrait", choices=("portrait", "scene", "map"))
    ap.add_argument("--out", default="docs/synthetic_story.png")
    args = ap.parse_args()
    sheet = story_sheet(args.seed, args.kind)
    sheet = sheet.quantize(colors=128, dither=Image.Dither.NONE) if np.asarray(sheet).ndim == 3 else sheet
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
