"""One live progress line per long stage (training epochs, embedding, kNN search, report), with rate and ETA.

On a terminal it is a tqdm bar on stderr that disappears when the stage's end line is printed; when stderr is
not a terminal (a pipe, a log collector, `ray job submit`) it is a plain line at most every `PLAIN_EVERY_S`
seconds, so captured output stays short. Training reports from inside Ray Train workers through a
`Board` actor that the driver reads (`training_progress`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

PLAIN_EVERY_S = 30.0
POLL_S = 0.5
BOARD_NAME = "clippings-progress-board"
"""The driver's Board actor (named: every fit of a driver finds the same one)."""
_driver_handles: dict[str, Any] = {}
"""The Board this driver made, by the node id of its Ray: the handle that made an actor keeps it alive (one
found by name does not), so the driver keeps it between fits; a new Ray (a later ray.init) gets a new one."""

log = logging.getLogger("clippings.progress")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """A live count of `unit`s done out of `total` (None: unknown), with rate and ETA.

    desc: the line's label (the stage name). status: free text after the numbers (e.g. "epoch 3/8, loss 1.2").
    The rate counts from the first update, so start-up time (Ray, model loading) does not dilute it.
    """

    def __init__(self, desc: str, total: float | None = None, unit: str = "it") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0.0
        self.status = ""
        self._first: tuple[float, float] | None = None  # (time, done) at the first update
        self._printed = time.monotonic()
        self._last_line = ""
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                             unit_scale=True, smoothing=0.1)

    def update(self, n: float = 1) -> None:
        self.set(self.done + n)

    def set(self, done: float, total: float | None = None, status: str | None = None) -> None:
        """Move to `done` (and a known `total`, a new `status`); prints a plain line when one is due."""
        now = time.monotonic()
        if self._first is None and done > self.done:  # the clock starts at the first real progress
            self._first = (now, done)
        if total is not None:
            self.total = total
        if status is not None:
            self.status = status
        if self._bar is not None:
            if total is not None:
                self._bar.total = total
            self._bar.update(done - self.done)
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
        self.done = done
        if self._bar is None and now - self._printed >= PLAIN_EVERY_S:
            self._printed = now
            line = self.line()
            if line != self._last_line:  # a stage waiting at the same count (validation) says it once
                self._last_line = line
                print(line, file=sys.stderr, flush=True)

    def rate(self) -> float | None:
        """Units per second since the first update, or None before any measurable progress."""
        if self._first is None:
            return None
        seconds = time.monotonic() - self._first[0]
        return (self.done - self._first[1]) / seconds if seconds > 0 and self.done > self._first[1] else None

    def line(self) -> str:
        """The plain-text line: '<desc>: 120/600 rows (20%), 9.5 rows/s, ETA 0:50, <status>'."""
        parts = [f"{self.done:.0f}/{self.total:.0f} {self.unit}s ({100 * self.done / self.total:.0f}%)"
                 if self.total else f"{self.done:.0f} {self.unit}s"]
        rate = self.rate()
        if rate:
            parts.append(f"{rate:.1f} {self.unit}s/s")
            if self.total:
                parts.append(f"ETA {_duration(max(0.0, self.total - self.done) / rate)}")
        if self.status:
            parts.append(self.status)
        return f"{self.desc}: " + ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Board:
    """Where training workers post progress events and the driver takes them (a Ray actor, 0 CPUs), one
    channel per fit: one board serves every fit of a driver (`training_progress`), so a fit does not start a
    process for it.

    Events are dicts: {"done", "total", "status"} to move the line, {"note"} for a console line,
    {"detail"} for a log-file line.
    """

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}

    def post(self, channel: str, event: dict[str, Any]) -> None:
        self.events.setdefault(channel, []).append(event)

    def take(self, channel: str) -> list[dict[str, Any]]:
        return self.events.pop(channel, [])


@dataclass(frozen=True)
class Channel:
    """A fit's channel on the driver's Board (pickled to the workers)."""

    board: Any
    name: str


class Poster:
    """A worker's side of the board: posts progress at most every `every_s` seconds; notes at once.
    channel None: posts nothing (every rank but 0)."""

    def __init__(self, channel: Channel | None, every_s: float = POLL_S) -> None:
        self.channel, self.every_s, self.last = channel, every_s, 0.0

    def _post(self, event: dict[str, Any]) -> None:
        if self.channel is not None:
            self.channel.board.post.remote(self.channel.name, event)

    def progress(self, done: float, total: float, status: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.channel is not None and (force or now - self.last >= self.every_s):
            self.last = now
            self._post({"done": done, "total": total, "status": status})

    def note(self, text: str) -> None:
        self._post({"note": text})

    def detail(self, text: str) -> None:
        self._post({"detail": text})


def _driver_board() -> Any:
    import ray

    node = ray.get_runtime_context().get_node_id()
    if node not in _driver_handles:
        _driver_handles.clear()
        _driver_handles[node] = ray.remote(num_cpus=0)(Board).options(name=BOARD_NAME, get_if_exists=True).remote()
    return _driver_handles[node]


@contextmanager
def training_progress(desc: str, unit: str = "sample") -> Iterator[Channel]:
    """Yield a Channel on the driver's Board for the workers (pass it in their config) while a driver thread
    turns its events into one Progress line, console notes and log-file lines. Needs Ray initialised.

    Cost: one 0-CPU actor per driver (BOARD_NAME, made by the first fit, ends with the driver) and one remote
    call per POLL_S seconds.
    """
    import ray

    from clippings.logs import DETAIL

    board = _driver_board()
    channel = Channel(board, uuid.uuid4().hex)
    stop = threading.Event()
    detail = logging.getLogger(DETAIL)

    def apply(events: list[dict[str, Any]], bar: Progress) -> None:
        for event in events:
            if "note" in event:
                log.info("%s", event["note"])
            elif "detail" in event:
                detail.info("%s", event["detail"])
            else:
                bar.set(event["done"], event["total"], event["status"])

    def watch(bar: Progress) -> None:
        while not stop.wait(POLL_S):
            try:
                apply(ray.get(board.take.remote(channel.name), timeout=30), bar)
            except Exception as e:  # the line is a courtesy: never let it break training
                detail.debug("progress board unreadable: %r", e)

    with Progress(desc, unit=unit) as bar:
        thread = threading.Thread(target=watch, args=(bar,), name="clippings-progress", daemon=True)
        thread.start()
        try:
            yield channel
        finally:
            stop.set()
            thread.join()
            try:
                apply(ray.get(board.take.remote(channel.name), timeout=30), bar)
            except Exception as e:  # a lost board (its node gone): the next fit makes a new one
                detail.debug("progress board unreadable: %r", e)
                _driver_handles.clear()
