"""IIIF crops from a local Image API server on 127.0.0.1 implementing the region and size syntax over
generated pages: URLs built right (identifier percent-encoded, pct rounded outwards, size cap), retries after
failures, the request rate, the cache, and `import navigator --iiif` end to end in this process."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import numpy as np
import pytest
from import_helpers import make_page, navigator_page_json, run_local, write_json
from PIL import Image

from clippings.importers.iiif import IIIFClient, image_url, pct_region, pixel_region
from clippings.importers.records import ImportOptions


class Server:
    """pages: identifier → PIL image. fail_first: answer each URL's first request with 503."""

    def __init__(self, pages: dict[str, Image.Image], fail_first: bool = False) -> None:
        self.pages, self.fail_first, self.seen = pages, fail_first, Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                outer.seen[self.path] += 1
                if outer.fail_first and outer.seen[self.path] == 1:
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                try:
                    body, kind = outer.answer(self.path)
                except KeyError:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/iiif"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[bytes, str]:
        parts = path.split("/")  # '', 'iiif', identifier, region, size, rotation, quality.format
        page = self.pages[unquote(parts[2])]  # an unencoded '/' in the identifier would split it: 404
        w, h = page.size
        if parts[3] == "info.json":
            return json.dumps({"width": w, "height": h}).encode(), "application/json"
        region, size = parts[3], parts[4]
        if region == "full":
            box = (0, 0, w, h)
        elif region.startswith("pct:"):
            x, y, rw, rh = (float(v) for v in region[4:].split(","))
            box = (math.floor(x * w / 100), math.floor(y * h / 100), math.ceil((x + rw) * w / 100),
                   math.ceil((y + rh) * h / 100))
        else:
            x, y, rw, rh = (int(v) for v in region.split(","))
            box = (x, y, x + rw, y + rh)
        crop = page.crop(box)
        if size.startswith("!"):
            cw, ch = (int(v) for v in size[1:].split(","))
            scale = min(cw / crop.width, ch / crop.height, 1.0)
            crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
        buf = io.BytesIO()
        crop.convert("RGB").save(buf, "JPEG", quality=95)
        return buf.getvalue(), "image/jpeg"

    def close(self) -> None:
        self.httpd.shutdown()


def test_region_urls():
    assert pct_region((0.1, 0.2, 0.30001, 0.5)) == "pct:10,20,20.001,30"
    assert pct_region((1 / 3, 0, 2 / 3, 1)) == "pct:33.3333,0,33.3334,100"  # left down, right up
    assert pixel_region((5, 6, 105, 206)) == "5,6,100,200"
    assert image_url("https://x.org/iiif/", "sn1/1910/seq-1.jp2", "full", 512) == \
        "https://x.org/iiif/sn1%2F1910%2Fseq-1.jp2/full/!512,512/0/default.jpg"


@pytest.fixture
def iiif_pages():
    page = make_page("sn1/1910/seq-1.jp2", (600, 800), [(40, 50, 300, 250), (320, 400, 560, 640)],
                     ["Gen. Pershing at El Paso", "The new bridge opened"], seed=1)
    server = Server({page.name: page.image}, fail_first=True)
    yield server, page
    server.close()


def test_client_retries_paces_and_caches(iiif_pages, tmp_path):
    server, page = iiif_pages
    urls = [image_url(server.base, page.name, pixel_region(p.box), 512) for p in page.pictures]
    fetch = IIIFClient(str(tmp_path / "cache"), max_requests_per_minute=600, backoff_s=0.01)
    start = time.monotonic()
    bodies = [fetch.get(u) for u in urls]
    assert time.monotonic() - start >= 3 * 0.1  # 4 requests (2 failed once) spaced 0.1 s apart
    assert fetch.requests == 4 and all(Image.open(io.BytesIO(b)).size for b in bodies)
    again = IIIFClient(str(tmp_path / "cache"))
    assert [again.get(u) for u in urls] == bodies and again.requests == 0
    with pytest.raises(ValueError, match="HTTP 404"):
        IIIFClient(retries=1, backoff_s=0.01).get(image_url(server.base, "no-such-page", "full", 64))


def test_import_navigator_over_iiif(iiif_pages, tmp_path):
    server, page = iiif_pages
    doc = navigator_page_json(page, [([1.2, 1.3, 1.5, 1.6], 0.9, 0, ["gone"])])
    write_json(str(tmp_path / "json" / "a.json"), doc)
    options = ImportOptions(iiif=server.base, iiif_cache=str(tmp_path / "cache"))
    rows, bad, _, _ = run_local("navigator", str(tmp_path / "json"), str(tmp_path / "out"), options)
    assert len(rows) == 2 and len(bad) == 1 and "outside the page" in next(iter(bad.values()))
    for pic in page.pictures:
        row = next(r for r in rows.values() if r["caption"] == pic.caption)
        got = Image.open(io.BytesIO(row["image"])).convert("RGB")
        x0, y0, x1, y1 = pic.box
        # pct rounded outwards, then the server's own rounding: at most one more pixel on each side
        assert 0 <= got.width - (x1 - x0) <= 2 and 0 <= got.height - (y1 - y0) <= 2
        diffs = [float(np.abs(np.asarray(got, np.float32) - np.asarray(
            page.image.crop((x0 - dx, y0 - dy, x0 - dx + got.width, y0 - dy + got.height)), np.float32)).mean())
            for dx in (0, 1) for dy in (0, 1)]
        assert min(diffs) <= 6.0
        assert row["page_image"] == f"{server.base}/{page.name}"
    requests = sum(server.seen.values())
    again, _, _, _ = run_local("navigator", str(tmp_path / "json"), str(tmp_path / "again"), options)
    assert sorted(again) == sorted(rows) and sum(server.seen.values()) == requests  # all from the cache
