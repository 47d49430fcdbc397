"""The label page: a Starlette app on uvicorn that shows one pair at a time and records the answers.

Safety: it listens on 127.0.0.1 unless told otherwise; every request must carry the session's random token
in its query string (`?token=`, compared in constant time) or gets 403, so another user of the machine can
neither read the archive through it nor write answers; captions and ids reach the page only as JSON put in
through `textContent` (static/label.js), and a Content-Security-Policy allows no inline script; images are
re-encoded as JPEG before they are served, so an archive's bytes are never sent as they are.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources

import pyarrow.compute as pc
import pyarrow.parquet as pq

from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, read_row_image
from clippings.label.answers import AnswerLog
from clippings.label.fit import fit_answers
from clippings.label.selection import PairPlan
from clippings.link.pipeline import read_links
from clippings.storage import exists, filesystem, join, list_parts, read_json, write_json

SESSION = "label.json"
"""What a label folder was started on (links, archive, threshold, counts, seed): a restart must match it."""
IMAGE_SIZE = 1000
"""Longest side of a served image, in pixels."""
META_COLUMNS = ("caption", "source", "date", "page")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Clipping:
    """What the page shows of a clipping besides its image, and the archive part that holds the image."""

    clipping_id: str
    caption: str
    source: str
    date: str
    page: str
    part: str

    def record(self) -> dict:
        return {"id": self.clipping_id, "caption": self.caption, "source": self.source, "date": self.date,
                "page": self.page}


def _text(value) -> str:
    return "" if value is None else str(value)


def read_clippings(archive: str) -> dict[str, Clipping]:
    """Captions and metadata of every clipping (no images), with the part each lives in. One pass reading
    only the text columns; memory O(rows × caption length)."""
    found: dict[str, Clipping] = {}
    for part in list_parts(archive, "archive"):
        fs, inner = filesystem(part)
        with fs.open(inner, "rb") as f:
            names = pq.read_schema(f).names
        if "clipping_id" not in names:
            raise BadInput(f"archive {part}: required column 'clipping_id' is missing; give the archive the "
                           "links were built from")
        with fs.open(inner, "rb") as f:
            table = pq.read_table(f, columns=["clipping_id", *[c for c in META_COLUMNS if c in names]])
        columns = {c: table.column(c).to_pylist() if c in names else [None] * table.num_rows
                   for c in ("clipping_id", *META_COLUMNS)}
        for i, cid in enumerate(columns["clipping_id"]):
            found[cid] = Clipping(cid, *(_text(columns[c][i]) for c in META_COLUMNS), part)
    return found


class LabelSession:
    """One label folder over one links folder and its archive: the next pair, the answers, the progress.

    Methods are safe to call from several threads (one lock): Starlette runs plain endpoints in a pool.
    """

    def __init__(self, links: str, archive: str, out: str, seed: int = 0, images: ImagePolicy = ARCHIVE_ONLY):
        ids, mst, info = read_links(links)
        if "threshold" not in info:
            raise BadInput(f"links {links}: links.json records no threshold; give the --out folder of "
                           "'clippings link'")
        if len(mst.distance) == 0:
            raise BadInput(f"links {links}: the MST has no edges (fewer than two clippings); nothing to ask")
        self.archive, self.images = archive, images
        self.ids = ids
        self.clippings = read_clippings(archive)
        missing = [i for i in ids.tolist() if i not in self.clippings]
        if missing:
            raise BadInput(f"links {links}: {len(missing)} clipping ids are not in archive {archive} (e.g. "
                           f"{missing[0]!r}); give the archive the links were built from")
        self.session = {"links": links, "archive": archive, "threshold": float(info["threshold"]),
                        "im_wt": info.get("im_wt"), "clippings": int(len(ids)), "edges": int(len(mst.distance)),
                        "seed": int(seed)}
        _check_session(out, self.session)
        self.plan = PairPlan(mst, ids, float(info["threshold"]), seed)
        self.log = AnswerLog(out)
        self.seed = seed
        self._lock = threading.Lock()
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._pending = None

    def state(self) -> dict:
        """The page's state: the pair to show (None when all are answered), progress, whether undo can."""
        with self._lock:
            return self._state()

    def _state(self) -> dict:
        answers = self.log.answers
        pair = self.plan.next(answers)
        self._pending = pair
        fit = fit_answers(answers, seed=self.seed)
        shown = None
        if pair is not None:
            shown = {"a": self.clippings[self.ids[pair.a]].record(), "b": self.clippings[self.ids[pair.b]].record(),
                     "distance": pair.distance, "cut": pair.cut, "reason": pair.reason}
        progress = {**fit.record(), "answers": len(answers), "links_threshold": self.session["threshold"],
                    "remaining": self.session["edges"] - len(answers)}
        return {"pair": shown, "progress": progress, "can_undo": bool(answers)}

    def answer(self, a: str, b: str, choice: str) -> dict:
        """Record `choice` for the pair on show; ValueError when (a, b) is not that pair (a stale page or a
        second tab) or the choice is not one of same, different, unsure."""
        with self._lock:
            pair = self._pending if self._pending is not None else self.plan.next(self.log.answers)
            if pair is None or {a, b} != {self.ids[pair.a], self.ids[pair.b]}:
                raise ValueError("that pair is not the one on show (answered already, or another tab moved on); "
                                 "the page now shows the current pair")
            self.log.add(a, b, pair.distance, choice, pair.reason, pair.joins)
            return self._state()

    def undo(self) -> dict:
        """Take back the latest answer; its pair is the next one shown."""
        with self._lock:
            self.log.undo()
            return self._state()

    def image(self, clipping_id: str) -> bytes:
        """The clipping's image as a JPEG of at most IMAGE_SIZE px (a few recent ones kept); KeyError for an
        unknown id, ValueError when the image cannot be read or decoded."""
        from clippings.report import thumbnail_jpeg

        with self._lock:
            if clipping_id in self._images:
                self._images.move_to_end(clipping_id)
                return self._images[clipping_id]
        clip = self.clippings[clipping_id]
        fs, inner = filesystem(clip.part)
        with fs.open(inner, "rb") as f:
            names = pq.read_schema(f).names
        with fs.open(inner, "rb") as f:
            table = pq.read_table(f, columns=[c for c in ("clipping_id", "image", "image_path") if c in names])
        row = table.filter(pc.equal(table.column("clipping_id"), clipping_id)).to_pylist()[0]
        data = thumbnail_jpeg(read_row_image(self.archive, row.get("image"), row.get("image_path"), self.images),
                              IMAGE_SIZE)
        with self._lock:
            self._images[clipping_id] = data
            while len(self._images) > 8:
                self._images.popitem(last=False)
        return data


def _check_session(out: str, session: dict) -> None:
    """Write `out/label.json` on the first start; on a restart refuse other links (answers would mix)."""
    path = join(out, SESSION)
    if not exists(path):
        write_json(path, session)
        return
    before = read_json(path)
    differs = [k for k in ("threshold", "clippings", "edges", "seed") if before.get(k) != session[k]]
    if differs:
        raise BadInput(f"out {out}: holds answers for links {before.get('links')} ({', '.join(differs)} "
                       f"differ from {session['links']}); give a new --out for these links")


def _asset(name: str) -> bytes:
    return resources.files("clippings.label").joinpath("static", name).read_bytes()


def build_app(session: LabelSession, token: str):
    """The Starlette app: `/` the page, `/static/…` its script and style, `/image?id=` a clipping's image,
    `/api/state`, `/api/answer` (POST {a, b, answer}), `/api/undo` (POST). Every route needs `?token=`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    page = _asset("index.html").replace(b"__TOKEN__", token.encode())
    static = {"label.js": ("text/javascript", _asset("label.js")), "label.css": ("text/css", _asset("label.css"))}

    async def guard(request: Request, call_next):
        given = request.query_params.get("token", "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            response = Response("403: this page needs the token printed by 'clippings label'\n", 403,
                                media_type="text/plain")
        else:
            response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    def asset(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            return Response("not found\n", 404, media_type="text/plain")
        return Response(found[1], media_type=found[0])

    def image(request: Request) -> Response:
        try:
            return Response(session.image(request.query_params.get("id", "")), media_type="image/jpeg")
        except KeyError:
            return Response("no such clipping\n", 404, media_type="text/plain")
        except ValueError as e:
            return Response(f"image unreadable: {e}\n", 422, media_type="text/plain")

    def state(request: Request) -> JSONResponse:
        return JSONResponse(session.state())

    async def answer(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            a, b, choice = str(body["a"]), str(body["b"]), str(body["answer"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send JSON {a, b, answer}", "state": session.state()}, 400)
        try:
            return JSONResponse(session.answer(a, b, choice))
        except ValueError as e:
            return JSONResponse({"error": str(e), "state": session.state()}, 409)

    def undo(request: Request) -> JSONResponse:
        return JSONResponse(session.undo())

    routes = [Route("/", index), Route("/static/{name}", asset), Route("/image", image),
              Route("/api/state", state), Route("/api/answer", answer, methods=["POST"]),
              Route("/api/undo", undo, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def serve(session: LabelSession, host: str, port: int, announce) -> None:
    """Serve the page until interrupted (Ctrl-C). `announce(url)` is called once the socket is bound (port 0
    picks a free port), with the URL holding a fresh token."""
    import socket

    import uvicorn

    token = secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # before the URL is announced, so a browser opening it at once finds the port open
    except OSError as e:
        sock.close()
        raise BadInput(f"The 'port' parameter of label: cannot listen on {host}:{port} ({e.strerror}); "
                       "give another --port (0 picks a free one)") from e
    shown_host = f"[{host}]" if ":" in host else host
    announce(f"http://{shown_host}:{sock.getsockname()[1]}/?token={token}")
    config = uvicorn.Config(build_app(session, token), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])

