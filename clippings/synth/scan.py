"""One paper's print and scan of a photo: crop, scale, rotation, tone, halftone or dither, noise, blur, JPEG."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter

from clippings.synth.plan import BASE_SIZE

_BAYER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) / 16


_PAPER = (235, 235, 230)


def scan(base: Image.Image, rng: np.random.Generator) -> bytes:
    """One paper's print and scan of `base`: crop, scale, rotate, tone, halftone/dither, noise, blur, JPEG.

    Crop, rotation and scaling are one affine resampling, the tone curve is a 256-entry lookup table and the
    screens and noise are whole-array numpy ops on uint8/float32 (this is the archive's hot loop). Returns
    encoded JPEG bytes (PNG for about one in ten), 96-128 px on the long side. Cost: ~1 ms at 128 px.
    """
    s = BASE_SIZE
    frac = rng.uniform(0.7, 1.0)
    cw, ch = s * frac * rng.uniform(0.92, 1.0), s * frac * rng.uniform(0.92, 1.0)
    x0, y0 = rng.uniform(0, s - cw), rng.uniform(0, s - ch)
    angle = math.radians(float(rng.normal(0, 2.0))) if rng.random() < 0.7 else 0.0
    long_side = int(rng.integers(96, 129))
    scale = max(cw, ch) / long_side  # input pixels per output pixel
    out_w, out_h = max(1, min(long_side, round(cw / scale))), max(1, min(long_side, round(ch / scale)))
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    icx, icy, ocx, ocy = x0 + cw / 2, y0 + ch / 2, out_w / 2, out_h / 2
    # output (x, y) -> input: centre_in + R(angle) * scale * ((x, y) - centre_out)
    affine = (cos, -sin, icx - cos * ocx + sin * ocy, sin, cos, icy - sin * ocx - cos * ocy)
    gray = rng.random() < 0.75
    img = base.convert("L") if gray else base
    img = img.transform((out_w, out_h), Image.AFFINE, affine, resample=Image.BILINEAR,
                        fillcolor=_PAPER[0] if gray else _PAPER)
    contrast, brightness, gamma = rng.uniform(0.6, 1.5), rng.normal(0, 0.08), rng.uniform(0.7, 1.4)
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip((v - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    a = np.asarray(img, dtype=np.uint8)
    screen = rng.random()
    if gray and screen < 0.3:  # a halftone screen: ordered dither (Bayer 4x4) or coarse 2x2 dots
        h, w = a.shape
        cell = _BAYER if screen < 0.2 else np.clip(_BAYER[:2, :2] * 2 - 0.25, 0, 1)
        lo, hi = (0.1, 0.95) if screen < 0.2 else (0.05, 0.95)
        tile = np.tile(cell, (h // cell.shape[0] + 1, w // cell.shape[1] + 1))[:h, :w]
        a = np.where(lut[a] > tile, hi, lo).astype(np.float32)
    else:
        a = lut.astype(np.float32)[a]
    sigma = rng.uniform(0.0, 0.06)
    a = a + rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma)
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(float(rng.uniform(0.3, 1.0))))
    buf = io.BytesIO()
    if rng.random() < 0.1:
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=int(rng.integers(25, 86)))
    return buf.getvalue()
