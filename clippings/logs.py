"""The console a person reads, and the log files that keep everything else.

Console: each stage (a CLI subcommand) prints one start line and one end line (counts, time, where the output
went) on stdout; a long stage adds one live progress line on stderr (`clippings.progress`); errors go to
stderr. Everything else — Ray's, Ray Data's and Ray Train's own logging, the output of Ray workers and actors,
the C++ lines Ray's core writes straight to file descriptor 2, Python warnings — goes to the stage's log file
(`<log_dir>/<stage>.log`, or a local temporary file when the output is remote) and to the log of any run
around it (`demo.log`, `replicate.log`). `--verbose`, or `CLIPPINGS_VERBOSE=1` for jobs, leaves that output on
the console as the libraries print it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from clippings.errors import BadInput
from clippings.storage import is_remote

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERBOSE_ENV = "CLIPPINGS_VERBOSE"
DETAIL = "clippings.detail"
"""Logger for what belongs in the log files only (library output, tracebacks, per-epoch lines)."""

QUIET_LOGGERS = ("py.warnings", "ray", "ray.data", "ray.train", "ray.tune")
"""Loggers whose console handlers are replaced by the log files unless verbose (Ray installs its own)."""


def verbose() -> bool:
    """True when the libraries' own output should stay on the console (`--verbose`, CLIPPINGS_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


class _Console(logging.Handler):
    """Message-only lines on the *current* sys.stdout (INFO) or sys.stderr (WARNING and above).

    Looked up at emit time, so a test's captured streams and a stage's stderr swap are honoured; written
    through `tqdm.write` so a live progress bar is cleared and redrawn around the line instead of torn.
    """

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


class _ToDetail(logging.Handler):
    """Forwards a library's records to the detail logger, i.e. to the open log files."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(DETAIL).handle(record)


_TO_DETAIL = _ToDetail()


def setup_logging(log_dir: str | None = None, name: str = "clippings") -> logging.Logger:
    """The `clippings` logger: INFO lines on the console and, when `log_dir` is a local folder, in
    `log_dir/<name>.log` for the rest of the process (a run's top-level log, e.g. demo.log) together with the
    detail logger's records. A file already open (the current stage's) is not opened twice."""
    logger = logging.getLogger("clippings")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, _Console) for h in logger.handlers):
        logger.addHandler(_Console())
    detail = logging.getLogger(DETAIL)
    detail.setLevel(logging.DEBUG)
    detail.propagate = False
    if log_dir and not is_remote(log_dir):
        path = os.path.abspath(os.path.join(log_dir, f"{name}.log"))
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == path for h in detail.handlers):
            _attach(_file_handler(path))
    return logger


def _file_handler(path: str) -> logging.FileHandler:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def _missing_folders(folder: str) -> list[str]:
    """The folders that creating `folder` would make, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _unmake(log_path: str, made: list[str]) -> None:
    """Remove the log file and the folders `made` for it when nothing else was written into them (a refused
    command leaves no `<out>_runs/`); a folder that holds anything else stays, with the log."""
    if not made or os.listdir(made[0]) != [os.path.basename(log_path)]:
        return
    os.remove(log_path)
    for folder in made:
        try:
            os.rmdir(folder)  # only an empty folder goes
        except OSError:
            return


def _attach(handler: logging.Handler) -> None:
    logging.getLogger("clippings").addHandler(handler)
    logging.getLogger(DETAIL).addHandler(handler)


def _detach(handler: logging.Handler) -> None:
    logging.getLogger("clippings").removeHandler(handler)
    logging.getLogger(DETAIL).removeHandler(handler)
    handler.close()


def quiet_libraries() -> None:
    """Send the libraries' loggers (Ray's, warnings) to the log files instead of the console.

    Idempotent; call again after importing a library that installs console handlers on import (Ray Data
    does). No-op when verbose.
    """
    if verbose():
        return
    logging.captureWarnings(True)
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        if _TO_DETAIL not in logger.handlers:
            logger.addHandler(_TO_DETAIL)
        logger.propagate = False


@contextmanager
def _fd2_into(path: str) -> Iterator[None]:
    """Point file descriptor 2 at `path` while Python's own `sys.stderr` keeps the console.

    Ray's C++ core logs ERROR lines (e.g. "core_worker.cc: Actor ... has constructor arguments in the object
    store") straight to fd 2, past Python's logging; this is the only way to keep them in the log file.
    sys.stderr is swapped for a duplicate of the old fd 2 only when it writes to fd 2 itself (a test's
    captured stream is left alone).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    swapped = None
    try:
        if sys.stderr.fileno() == 2:
            swapped = sys.stderr
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=swapped.encoding,  # noqa: SIM115
                              errors=swapped.errors)
    except (AttributeError, OSError, ValueError):  # no real file behind sys.stderr
        pass
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        if swapped is not None:
            sys.stderr.close()
            sys.stderr = swapped
        os.dup2(saved, 2)
        os.close(saved)


def elapsed(seconds: float) -> str:
    """'4.2 s', '3 min 07 s', '1 h 02 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def show_path(path: str) -> str:
    """A path as a person would type it: relative to the working directory when inside it."""
    if is_remote(path) or not os.path.isabs(path):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


@dataclass
class Stage:
    """The stage being run: its name, output, log file, the summary its end line will carry and the line
    after it (what to open next)."""

    name: str
    output: str | None
    log_path: str
    began: float
    summary: str = ""
    then: str = ""


_current: list[Stage] = []


def finish(summary: str, output: str | None = None, then: str = "") -> None:
    """Set what the current stage's end line says (counts), where the output went if not its --out, and a
    last line to print after it (what to open next)."""
    if _current:
        _current[-1].summary = summary
        _current[-1].then = then
        if output is not None:
            _current[-1].output = output


@contextmanager
def stage(name: str, start: str, log_dir: str | None, output: str | None) -> Iterator[Stage]:
    """Run one stage: its start line, its log file receiving every library's output, its end line.

    start: what the stage reads (the start line's text). log_dir: folder of `<name>.log` (a temporary folder
    when None or remote). output: where the output goes (named in the end line; `finish` may change it).
    A BadInput passes through untouched (the CLI prints it as one line), and a stage refused before it wrote
    anything beside its log leaves no folder behind (`_unmake`); any other error adds one line naming the log
    file, whose end holds the traceback.
    """
    logger = setup_logging()
    if log_dir and not is_remote(log_dir):
        path = os.path.abspath(os.path.join(log_dir, f"{name}.log"))
    else:
        path = os.path.join(tempfile.gettempdir(), "clippings-logs", f"{name}-{os.getpid()}-{int(time.time())}.log")
    made = _missing_folders(os.path.dirname(path))
    handler = _file_handler(path)
    _attach(handler)
    quiet_libraries()
    current = Stage(name, output, path, time.perf_counter())
    _current.append(current)
    logger.info("%s: %s", name, start)
    try:
        if verbose():
            yield current
        else:
            with _fd2_into(path):
                yield current
    except BadInput:
        _detach(handler)
        _unmake(path, made)
        raise
    except BaseException:
        logging.getLogger(DETAIL).exception("%s stopped", name)
        logger.info("%s: stopped after %s; the log %s ends with the cause", name,
                    elapsed(time.perf_counter() - current.began), show_path(path))
        raise
    else:
        logger.info("%s", end_line(current, time.perf_counter() - current.began))
        if current.then:
            logger.info("%s", current.then)
    finally:
        _current.pop()
        _detach(handler)


def end_line(current: Stage, seconds: float) -> str:
    """'<name>: <summary> in <time> -> <output> (log: <file>)'; the log by file name when it lies in the output."""
    line = f"{current.name}: {current.summary or 'done'} in {elapsed(seconds)}"
    if current.output:
        line += f" -> {show_path(current.output)}"
    inside = current.output and not is_remote(current.output) and \
        os.path.dirname(current.log_path) == os.path.abspath(current.output)
    return line + f" (log: {os.path.basename(current.log_path) if inside else show_path(current.log_path)})"


@contextmanager
def verbose_mode(on: bool) -> Iterator[None]:
    """Within the block, `verbose()` is true when `on` (set through the environment, so nested commands and
    Ray workers see it too); the previous value comes back after."""
    if not on:
        yield
        return
    old = os.environ.get(VERBOSE_ENV)
    os.environ[VERBOSE_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(VERBOSE_ENV, None)
        else:
            os.environ[VERBOSE_ENV] = old
