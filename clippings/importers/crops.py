"""Decode a page scan (JPEG 2000 included) within a stated size cap and cut crops as JPEG bytes.

Pillow decodes JPEG 2000 through OpenJPEG (`PIL.features.check('jpg_2000')`). Its decompression-bomb guard
refuses images over 2 × 89 M pixels, which large newspaper pages can pass; here the guard is replaced, for
page scans only, by PAGE_PIXEL_CAP: a page above it is quarantined with the reason, never decoded.
"""

from __future__ import annotations

import io
import threading

from PIL import Image

from clippings.importers.boxes import PixelBox

PAGE_PIXEL_CAP = 250_000_000
"""Largest page decoded, in pixels (e.g. 12,500 × 20,000: a broadsheet at 800 dpi). Decoding one costs up to
3 bytes per pixel of memory (750 MB at the cap) in the task that holds the page."""
CROP_LONG_SIDE = 1024
"""Crops are stored with their long side at most this many pixels (shrunk, aspect kept, never enlarged):
well above what an image tower sees (224 px) and enough to read a caption in the report."""
JPEG_QUALITY = 90

_guard = threading.Lock()


def decode_page(data: bytes, cap: int = PAGE_PIXEL_CAP) -> Image.Image:
    """The decoded page (mode L or RGB, fully loaded) of encoded bytes (JPEG 2000, JPEG, PNG, TIFF, ...).

    Raises ValueError with a quarantine reason when the bytes do not decode or the page exceeds `cap` pixels
    (checked from the header, before any pixel is decoded).
    """
    try:
        with _guard:  # Pillow's guard is a module global: lift it only around this open
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        width, height = image.size
        if width * height > cap:
            raise ValueError(f"page of {width}×{height} px is over the cap of {cap:,} pixels; "
                             "downscale it or raise the cap")
        image.load()
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    except ValueError:
        raise
    except Exception as e:  # Pillow raises many types for corrupt data
        raise ValueError(f"undecodable page image ({type(e).__name__}: {str(e)[:80]})") from e


def encode_crop(image: Image.Image, long_side: int = CROP_LONG_SIDE) -> bytes:
    """`image` as RGB JPEG bytes, shrunk so its long side is at most `long_side` pixels."""
    image = image.convert("RGB")
    if max(image.size) > long_side:
        scale = long_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def crop_jpeg(page: Image.Image, box: PixelBox, long_side: int = CROP_LONG_SIDE) -> bytes:
    """The crop of `page` at `box` (whole pixels, clamped: see boxes.clamp_box) as JPEG bytes."""
    return encode_crop(page.crop(box), long_side)
