"""Hugging Face helpers every model builder shares: seeded builds and quiet hub access."""

from __future__ import annotations

import contextlib
import logging

import torch


def seeded(build, seed: int):
    """Run `build()` with torch's global generator at `seed`, restoring it after: a built-in model is the same
    for a seed, and building one does not change the caller's random stream."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build()
    finally:
        torch.random.set_rng_state(state)


@contextlib.contextmanager
def quiet_hub():
    """Hold back huggingface_hub's per-retry warnings while it tries an unreachable hub: the failure is
    reported once, as one BadInput line, by the caller."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
