"""The stories' unscanned photos: procedural scenes, portraits (with near-twins), maps and headline blocks."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clippings.synth.captions import headline_words, town
from clippings.synth.plan import BASE_SIZE, Story


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def draw_scene(rng: np.random.Generator) -> Image.Image:
    """A landscape/town photo: sky gradient, horizon, hills, buildings with windows, sun, trees, a road."""
    s = BASE_SIZE
    top, bottom = np.array(_color(rng, 80, 256)), np.array(_color(rng, 120, 256))
    t = np.linspace(0, 1, s)[:, None, None]
    sky = (top * (1 - t) + bottom * t).astype(np.uint8)
    img = Image.fromarray(np.broadcast_to(sky, (s, s, 3)).copy())
    d = ImageDraw.Draw(img)
    horizon = int(rng.integers(s * 0.4, s * 0.75))
    if rng.random() < 0.7:
        cx, cy, r = int(rng.integers(10, s - 10)), int(rng.integers(5, horizon - 10)), int(rng.integers(5, 14))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_color(rng, 180, 256))
    hills = [(0, horizon)] + [(x, horizon - int(rng.integers(0, 30))) for x in range(0, s + 16, 16)] + [(s, s), (0, s)]
    d.polygon(hills, fill=_color(rng, 0, 160))
    d.rectangle((0, horizon, s, s), fill=_color(rng, 20, 180))
    for _ in range(int(rng.integers(0, 7))):
        w, h = int(rng.integers(10, 30)), int(rng.integers(12, 60))
        x = int(rng.integers(-5, s - 5))
        body = _color(rng, 0, 200)
        d.rectangle((x, horizon - h, x + w, horizon + 4), fill=body, outline=(0, 0, 0))
        win = _color(rng, 150, 256)
        for wy in range(horizon - h + 3, horizon - 2, 7):
            for wx in range(x + 2, x + w - 3, 6):
                d.rectangle((wx, wy, wx + 2, wy + 3), fill=win)
    for _ in range(int(rng.integers(0, 6))):
        x, y, r = int(rng.integers(0, s)), int(rng.integers(horizon, s)), int(rng.integers(4, 12))
        d.rectangle((x - 1, y - r, x + 1, y + 2), fill=(60, 40, 20))
        d.ellipse((x - r, y - 2 * r, x + r, y), fill=_color(rng, 0, 140))
    if rng.random() < 0.5:
        x0 = int(rng.integers(20, s - 20))
        d.polygon([(x0 - 4, horizon), (x0 + 4, horizon), (x0 + int(rng.integers(10, 60)), s),
                   (x0 - int(rng.integers(10, 60)), s)], fill=_color(rng, 60, 200))
    for _ in range(int(rng.integers(0, 12))):  # people / cars: small blobs in the foreground
        x, y = int(rng.integers(0, s)), int(rng.integers(horizon, s))
        d.ellipse((x - 2, y - 6, x + 2, y), fill=_color(rng, 0, 120))
    return img


def portrait_params(rng: np.random.Generator) -> dict:
    """A portrait's parameters: near-identical portraits are small perturbations of these."""
    return {
        "bg": rng.uniform(0.2, 1.0, 3), "skin": rng.uniform(0.45, 0.95), "suit": rng.uniform(0.0, 0.6, 3),
        "hair": rng.uniform(0.0, 0.8), "fw": rng.uniform(0.22, 0.32), "fh": rng.uniform(0.30, 0.40),
        "cx": rng.uniform(0.42, 0.58), "cy": rng.uniform(0.36, 0.46), "eye": rng.uniform(0.28, 0.4),
        "mouth": rng.uniform(0.25, 0.5), "style": int(rng.integers(0, 4)), "glasses": bool(rng.random() < 0.3),
        "hat": bool(rng.random() < 0.2), "tie": bool(rng.random() < 0.5), "shoulder": rng.uniform(0.75, 0.95),
    }


def perturb_portrait(p: dict, rng: np.random.Generator) -> dict:
    """A different person who looks almost the same: every continuous parameter moved by a few percent."""
    q = dict(p)
    for k, v in p.items():
        if isinstance(v, np.ndarray):
            q[k] = np.clip(v + rng.normal(0, 0.04, v.shape), 0, 1)
        elif isinstance(v, float):
            q[k] = v * (1 + rng.normal(0, 0.03))
    return q


def draw_portrait(p: dict) -> Image.Image:
    """A head-and-shoulders photo from `portrait_params`."""
    s = BASE_SIZE
    g = lambda v: tuple(int(255 * x) for x in v)  # noqa: E731
    img = Image.new("RGB", (s, s), g(p["bg"]))
    d = ImageDraw.Draw(img)
    cx, cy, fw, fh = p["cx"] * s, p["cy"] * s, p["fw"] * s, p["fh"] * s
    sk = p["skin"]
    skin = g((sk, sk * 0.85, sk * 0.7))
    d.ellipse((cx - s * 0.45, cy + fh * 0.8, cx + s * 0.45, s * (1 + p["shoulder"])), fill=g(p["suit"]))
    d.polygon([(cx - fw * 0.3, cy + fh * 0.8), (cx + fw * 0.3, cy + fh * 0.8), (cx, cy + fh * 1.3)],
              fill=(240, 240, 240))
    if p["tie"]:
        d.polygon([(cx - 3, cy + fh * 0.85), (cx + 3, cy + fh * 0.85), (cx, cy + fh * 1.4)], fill=(40, 20, 20))
    d.rectangle((cx - fw * 0.25, cy + fh * 0.4, cx + fw * 0.25, cy + fh * 0.9), fill=skin)
    d.ellipse((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2), fill=skin)
    hair = g((p["hair"], p["hair"] * 0.8, p["hair"] * 0.6))
    style = p["style"]
    if style == 0:
        d.chord((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh * 0.1), 180, 360, fill=hair)
    elif style == 1:
        d.ellipse((cx - fw * 0.6, cy - fh * 0.65, cx + fw * 0.6, cy + fh * 0.05), fill=hair)
        d.ellipse((cx - fw * 0.45, cy - fh * 0.35, cx + fw * 0.45, cy + fh * 0.5), fill=skin)
    elif style == 2:
        d.ellipse((cx - fw * 0.7, cy - fh * 0.6, cx + fw * 0.7, cy + fh * 0.7), fill=hair)
        d.ellipse((cx - fw * 0.45, cy - fh * 0.4, cx + fw * 0.45, cy + fh * 0.5), fill=skin)
    else:
        d.chord((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy), 200, 340, fill=hair)
    ey, ex = cy - fh * 0.05, fw * p["eye"]
    for sx in (-1, 1):
        d.ellipse((cx + sx * ex - 2.5, ey - 1.5, cx + sx * ex + 2.5, ey + 1.5), fill=(20, 20, 20))
        if p["glasses"]:
            d.ellipse((cx + sx * ex - 6, ey - 5, cx + sx * ex + 6, ey + 5), outline=(10, 10, 10), width=1)
    d.line((cx, ey + 2, cx - 2, cy + fh * 0.18), fill=g((sk * 0.6, sk * 0.5, sk * 0.4)), width=1)
    mw = fw * p["mouth"]
    d.arc((cx - mw, cy + fh * 0.12, cx + mw, cy + fh * 0.32), 20, 160, fill=(90, 30, 30), width=2)
    if p["hat"]:
        d.rectangle((cx - fw * 0.8, cy - fh * 0.42, cx + fw * 0.8, cy - fh * 0.34), fill=(30, 30, 30))
        d.rectangle((cx - fw * 0.5, cy - fh * 0.85, cx + fw * 0.5, cy - fh * 0.4), fill=(30, 30, 30))
    return img


def draw_map(rng: np.random.Generator) -> Image.Image:
    """A news map: coastline, rivers, roads, cities with short labels, a border and a shaded area."""
    s = BASE_SIZE
    img = Image.new("RGB", (s, s), _color(rng, 200, 256))
    d = ImageDraw.Draw(img)
    pts, x, y = [], 0.0, float(rng.uniform(0.2, 0.8) * s)
    while x < s:
        pts.append((x, y))
        x += float(rng.uniform(4, 12))
        y = float(np.clip(y + rng.normal(0, 6), 5, s - 5))
    sea = _color(rng, 80, 200)
    d.polygon(pts + [(s, 0), (0, 0)] if rng.random() < 0.5 else pts + [(s, s), (0, s)], fill=sea)
    for _ in range(int(rng.integers(1, 4))):
        d.line([(float(rng.uniform(0, s)), float(rng.uniform(0, s))) for _ in range(4)], fill=(40, 60, 160), width=2)
    for _ in range(int(rng.integers(1, 4))):
        d.line([(float(rng.uniform(0, s)), float(rng.uniform(0, s))) for _ in range(3)], fill=(0, 0, 0), width=1)
    if rng.random() < 0.6:
        cx, cy, r = float(rng.uniform(20, s - 20)), float(rng.uniform(20, s - 20)), float(rng.uniform(10, 30))
        poly = [(cx + r * math.cos(a) * rng.uniform(0.6, 1.2), cy + r * math.sin(a) * rng.uniform(0.6, 1.2))
                for a in np.linspace(0, 2 * math.pi, 9)[:-1]]
        d.polygon(poly, fill=(70, 70, 70))
    font = _font(9)
    for _ in range(int(rng.integers(2, 6))):
        x, y = int(rng.integers(5, s - 30)), int(rng.integers(5, s - 12))
        d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(0, 0, 0))
        name = town(rng)[0].upper()[:8]
        d.text((x + 3, y - 4), name, fill=(0, 0, 0), font=font)
    if rng.random() < 0.5:
        x0, y0 = int(rng.integers(10, s - 40)), int(rng.integers(10, s - 40))
        d.line((x0, y0, x0 + 25, y0 + 25), fill=(0, 0, 0), width=3)
        d.polygon([(x0 + 25, y0 + 25), (x0 + 15, y0 + 22), (x0 + 22, y0 + 15)], fill=(0, 0, 0))
    d.rectangle((0, 0, s - 1, s - 1), outline=(0, 0, 0), width=2)
    return img


def draw_headline(lines: list[str], rng: np.random.Generator) -> Image.Image:
    """A headline block: two or three lines of bold caps between rules, as printed with a photo."""
    s = BASE_SIZE
    img = Image.new("RGB", (s, s), _color(rng, 215, 256))
    d = ImageDraw.Draw(img)
    y = int(rng.integers(4, 14))
    d.line((4, y, s - 4, y), fill=(0, 0, 0), width=2)
    y += 6
    for i, line in enumerate(lines):
        size = int(rng.integers(17, 23)) if i == 0 else int(rng.integers(11, 15))
        font = _font(size)
        for chunk in _wrap(line, font, s - 8):
            d.text((4, y), chunk, fill=(0, 0, 0), font=font, stroke_width=1 if i == 0 else 0, stroke_fill=(0, 0, 0))
            y += size + 3
    d.line((4, y + 2, s - 4, y + 2), fill=(0, 0, 0), width=1)
    for yy in range(y + 8, s - 4, 6):  # body text as grey bars
        d.line((4, yy, int(rng.integers(s // 2, s - 4)), yy), fill=(110, 110, 110), width=2)
    return img


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        cand = f"{cur} {w}".strip()
        if cur and font.getlength(cand) > width:
            lines.append(cur)
            cur = w
        else:
            cur = cand
    return lines + ([cur] if cur else [])


def _portrait_of(index: int, stories: list[Story], seed: int, depth: int = 0) -> dict:
    """The portrait parameters that story `index` shows (a twin: its partner's shown face, perturbed)."""
    src = stories[stories[index].photo_of]
    if src.twin_of < 0 or depth > 8:  # twin links form chains, never cycles; the guard only bounds work
        return portrait_params(np.random.default_rng([seed, src.index, 99]))
    return perturb_portrait(_portrait_of(src.twin_of, stories, seed, depth + 1),
                            np.random.default_rng([seed, src.index, 98]))


def base_image(story: Story, stories: list[Story], seed: int, facts: dict) -> Image.Image:
    """A story's unscanned photo; reused photos and twin portraits are drawn from their partner's seed.

    A reused photo is exactly the photo of the story it comes from, twin portrait included.
    """
    src = stories[story.photo_of]
    if src.kind == "portrait":
        return draw_portrait(_portrait_of(story.index, stories, seed))
    rng = np.random.default_rng([seed, src.index, 99])
    if src.kind == "scene":
        return draw_scene(rng)
    if src.kind == "map":
        return draw_map(rng)
    return draw_headline(headline_words(facts), rng)
