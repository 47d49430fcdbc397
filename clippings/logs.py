"""Logging to the console and to a file next to a job's output, so long jobs leave a record."""

from __future__ import annotations

import logging
import os
import sys

from clippings.archive import is_remote

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_dir: str | None = None, name: str = "clippings") -> logging.Logger:
    """Log INFO to stderr and, when `log_dir` is a local folder, to `log_dir/<name>.log` too."""
    logger = logging.getLogger("clippings")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in logger.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    if log_dir and not is_remote(log_dir):
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.abspath(os.path.join(log_dir, f"{name}.log"))
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == path for h in logger.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter(FORMAT))
            logger.addHandler(handler)
    logger.propagate = False
    return logger
