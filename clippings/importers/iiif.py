"""IIIF Image API crops for online users: fetch each picture's region instead of the whole page.

URL: `{base}/{identifier}/{region}/{size}/0/default.jpg`, the identifier percent-encoded whole (a page path's
`/` becomes `%2F`, as the API requires), region `x,y,w,h` in pixels or `pct:x,y,w,h` in percent of the page,
size `!N,N` (fit within N × N, aspect kept: the crop cap). Percent regions are rounded outwards to
PCT_DECIMALS decimals (left/top down, right/bottom up), so the server's crop never loses an edge of the box.
`IIIFClient` caches every response on local disk, spaces requests to a per-process rate, and retries
429/5xx/network failures with exponential backoff (honouring Retry-After); other failures are quarantine
reasons. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from clippings.importers.boxes import Box, PixelBox
from clippings.storage import write_bytes_atomic

PCT_DECIMALS = 4
RETRIES = 4
BACKOFF_S = 0.5
MAX_WAIT_S = 60.0
"""Longest single wait before a retry (a Retry-After above it is capped)."""
TIMEOUT_S = 60.0


def pct_region(box: Box) -> str:
    """`pct:x,y,w,h` of a box given in fractions of the page (x0, y0, x1, y1), rounded outwards, clamped to
    0–100."""
    scale = 10 ** PCT_DECIMALS

    def down(v: float) -> float:
        return max(0.0, math.floor(v * 100 * scale + 1e-6) / scale)

    def up(v: float) -> float:
        return min(100.0, math.ceil(v * 100 * scale - 1e-6) / scale)

    x0, y0, x1, y1 = box
    left, top, right, bottom = down(x0), down(y0), up(x1), up(y1)
    return f"pct:{_num(left)},{_num(top)},{_num(right - left)},{_num(bottom - top)}"


def pixel_region(box: PixelBox) -> str:
    """`x,y,w,h` of a whole-pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return f"{x0},{y0},{x1 - x0},{y1 - y0}"


def image_url(base: str, identifier: str, region: str, size_cap: int) -> str:
    """The region's URL, long side at most `size_cap` pixels (the server keeps the aspect)."""
    return f"{base.rstrip('/')}/{quote(identifier, safe='')}/{region}/!{size_cap},{size_cap}/0/default.jpg"


def info_url(base: str, identifier: str) -> str:
    return f"{base.rstrip('/')}/{quote(identifier, safe='')}/info.json"


def _num(v: float) -> str:
    return f"{round(v, PCT_DECIMALS):.{PCT_DECIMALS}f}".rstrip("0").rstrip(".")


class IIIFClient:
    """GETs with a disk cache, a request rate and retries.

    cache: a local folder (None: no cache); a URL found there is never requested again.
    max_requests_per_minute: this process's rate (None: unlimited); the import job divides the user's limit
    by its concurrency. retries / backoff_s: attempts after the first and the first wait (doubled each time).
    """

    def __init__(self, cache: str | None = None, max_requests_per_minute: float | None = None,
                 retries: int = RETRIES, backoff_s: float = BACKOFF_S, timeout_s: float = TIMEOUT_S) -> None:
        self.cache, self.retries, self.backoff_s, self.timeout_s = cache, retries, backoff_s, timeout_s
        self.interval = 60.0 / max_requests_per_minute if max_requests_per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self.requests = 0

    def _cached(self, url: str) -> str | None:
        return os.path.join(self.cache, hashlib.sha1(url.encode()).hexdigest()) if self.cache else None

    def _pace(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            time.sleep(wait)

    def get(self, url: str) -> bytes:
        """The body of `url`; raises ValueError with a quarantine reason when it cannot be had."""
        path = self._cached(url)
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        last = ""
        for attempt in range(self.retries + 1):
            self._pace()
            self.requests += 1
            wait = self.backoff_s * 2 ** attempt
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                    data = response.read()
                if path:
                    write_bytes_atomic(path, data)
                return data
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code != 429 and e.code < 500:
                    raise ValueError(f"IIIF request failed ({last}): {url}") from e
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.isdigit():
                    wait = float(retry_after)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = type(e).__name__
            if attempt < self.retries:
                time.sleep(min(wait, MAX_WAIT_S))
        raise ValueError(f"IIIF request failed after {self.retries + 1} attempts ({last}): {url}")

    def size(self, base: str, identifier: str) -> tuple[int, int]:
        """(width, height) of the full image from its info.json."""
        try:
            info = json.loads(self.get(info_url(base, identifier)))
            return int(info["width"]), int(info["height"])
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"IIIF info.json of {identifier!r} has no width/height") from e


_clients: dict[tuple, IIIFClient] = {}


def client(cache: str | None, max_requests_per_minute: float | None) -> IIIFClient:
    """This process's client for these settings, kept between tasks so its pace holds across them."""
    key = (cache, max_requests_per_minute)
    if key not in _clients:
        _clients[key] = IIIFClient(cache, max_requests_per_minute)
    return _clients[key]
