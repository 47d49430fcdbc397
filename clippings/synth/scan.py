"""One paper's print and scan of a photo: crop, scale, rotation, tone, halftone or dither, noise, blur, JPEG.

`scan` is the light scan of the `mild` archive (unchanged, byte for byte); `print_and_scan` the `hard` one.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter
from scipy.ndimage import gaussian_filter

from clippings.synth.difficulty import ScanModel
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


def _bayer(n: int) -> np.ndarray:
    """The n×n Bayer threshold matrix (n a power of two), thresholds in (0, 1)."""
    m = np.zeros((1, 1))
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / m.size


_BAYER8 = _bayer(8).astype(np.float32)


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def print_and_scan(base: Image.Image, rng: np.random.Generator, m: ScanModel) -> bytes:
    """One paper's print of `base` and a scan of that page, with the variation of real reprints (`hard`).

    The clipping: a crop (`m.crop` of each side, aspect jittered by `m.aspect`), lying up to
    `m.rotation_deg` askew, sometimes flopped. The print: a tone curve (contrast, brightness, gamma, dot
    gain) onto the paper's white and the ink's black, through an AM dot screen at a random angle and line
    frequency, an ordered dither, or neither, rendered at `m.oversample`× the scan's resolution. The scan:
    the print averaged down to 96-128 px on the long side (the screen aliases into moiré, as on microfilm
    scans), blurred, unevenly lit, stained, grainy, JPEG at quality `m.jpeg_quality`, mostly grey.
    All whole-array numpy on the print's ~65k float32 pixels (the archive's hot loop). Cost: ~1.5 ms at
    128 px, about twice `scan`.
    """
    s, k = BASE_SIZE, m.oversample
    frac = _draw(rng, m.crop)
    stretch = math.exp(rng.uniform(-1.0, 1.0) * math.log1p(m.aspect))
    cw, ch = min(s, s * frac * math.sqrt(stretch)), min(s, s * frac / math.sqrt(stretch))
    x0, y0 = rng.uniform(0, s - cw), rng.uniform(0, s - ch)
    angle = math.radians(rng.uniform(-m.rotation_deg, m.rotation_deg))
    long_side = int(rng.integers(96, 129))
    scale = max(cw, ch) / long_side
    out_w, out_h = max(1, min(long_side, round(cw / scale))), max(1, min(long_side, round(ch / scale)))
    w, h = out_w * k, out_h * k  # the print, k print pixels per scan pixel
    cos, sin = math.cos(angle) * scale / k, math.sin(angle) * scale / k
    icx, icy = x0 + cw / 2, y0 + ch / 2
    affine = (cos, -sin, icx - cos * w / 2 + sin * h / 2, sin, cos, icy - sin * w / 2 - cos * h / 2)
    img = base.convert("L")
    if rng.random() < m.flop_p:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.transform((w, h), Image.AFFINE, affine, resample=Image.BILINEAR, fillcolor=255)
    # the tone curve, as darkness (ink coverage) in [0, 1]: one 256-entry lookup table
    contrast, brightness, gamma = _draw(rng, m.contrast), rng.normal(0, m.brightness), _draw(rng, m.gamma)
    gain = _draw(rng, m.dot_gain)
    v = np.arange(256, dtype=np.float64) / 255.0
    dark = 1.0 - np.clip((v - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    dark = np.clip(dark + 4 * gain * dark * (1 - dark), 0, 1).astype(np.float32)[np.asarray(img)]
    paper, ink = _draw(rng, m.paper), _draw(rng, m.ink)
    screen = rng.random()
    if screen < m.halftone_p:  # AM screen: dots on a grid at angle theta, grown by the darkness
        period, theta = _draw(rng, m.screen_period) * k, rng.uniform(0, math.pi / 2)
        phase = rng.uniform(0, 2 * math.pi, 2)
        f = np.float32(2 * math.pi / period)
        xs, ys = np.arange(w, dtype=np.float32)[None, :] * f, np.arange(h, dtype=np.float32)[:, None] * f
        c, sn = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        # round dots: cos(u) + cos(v) on the rotated grid, each cosine of a sum as outer products (speed)
        xu, yu, xv, yv = xs * c, ys * sn + np.float32(phase[0]), -xs * sn, ys * c + np.float32(phase[1])
        spot = (np.cos(yu) * np.cos(xu) - np.sin(yu) * np.sin(xu)) + (np.cos(yv) * np.cos(xv) - np.sin(yv) * np.sin(xv))
        lum = np.where(dark > (2 - spot) * 0.25, np.float32(ink), np.float32(paper))
    elif screen < m.halftone_p + m.dither_p:  # ordered dither, each matrix cell `cell` print pixels
        cell = int(rng.integers(m.dither_cell[0], m.dither_cell[1] + 1))
        tile = np.repeat(np.repeat(_BAYER8, cell, 0), cell, 1)
        tile = np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1))[:h, :w]
        lum = np.where(dark > tile, np.float32(ink), np.float32(paper))
    else:  # continuous tone
        lum = np.float32(paper) - np.float32(paper - ink) * dark
    a = sum(lum[i::k, j::k] for i in range(k) for j in range(k)) / np.float32(k * k)  # a scan pixel's area
    sigma = _draw(rng, m.blur)
    if sigma > 0.2:
        a = gaussian_filter(a, sigma, mode="nearest")
    # uneven light: a ramp in a random direction, and smooth stains from a 3×3 field upsampled
    shade, direction = _draw(rng, m.shading), rng.uniform(0, 2 * math.pi)
    ramp = (np.arange(out_w, dtype=np.float32)[None, :] / out_w * math.cos(direction)
            + np.arange(out_h, dtype=np.float32)[:, None] / out_h * math.sin(direction))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    field = Image.fromarray(rng.standard_normal((3, 3)).astype(np.float32))
    stains = np.asarray(field.resize((out_w, out_h), Image.BICUBIC)) * np.float32(_draw(rng, m.blotch))
    a = a * (1 - np.float32(shade) * ramp) + stains
    a = a + rng.standard_normal(a.shape, dtype=np.float32) * np.float32(_draw(rng, m.grain))
    grey = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(grey)
    if rng.random() < m.colour_p:  # the yellowed page in colour: blue absorbed most, green a little
        tint = np.array([1.0, 0.95, 0.82], dtype=np.float32)
        img = Image.fromarray((grey[..., None] * tint).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(m.jpeg_quality[0], m.jpeg_quality[1] + 1)))
    return buf.getvalue()
