"""Validate parameters once, at the entry, from a table of constraints (sklearn's habit).

Every message has one shape: "The 'threshold' parameter of link must be a float in the range
[0.0, 2.0]. Got 3.5 instead."
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clippings.errors import BadInput


@dataclass(frozen=True)
class Interval:
    """A numeric constraint: `kind` is int or float; bounds are inclusive unless open."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if value != value:  # NaN
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            return False
        return True

    def describe(self) -> str:
        name = "an int" if self.kind is int else "a float"
        if self.low is None and self.high is None:
            return name
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        left = "(" if self.open_low or self.low is None else "["
        right = ")" if self.open_high or self.high is None else "]"
        return f"{name} in the range {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class OneOf:
    """A constraint to a fixed set of values."""

    options: tuple

    def holds(self, value: Any) -> bool:
        return value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


def validate_params(command: str, values: Mapping[str, Any], constraints: Mapping[str, Any]) -> None:
    """Check each named value against its constraint; None values are skipped (optional flags).

    Raises BadInput with the message shape above for the first violation.
    """
    for name, constraint in constraints.items():
        value = values.get(name)
        if value is None:
            continue
        if not constraint.holds(value):
            raise BadInput(
                f"The '{name}' parameter of {command} must be {constraint.describe()}. Got {value!r} instead."
            )


# Choices and defaults that argument definitions (clippings/commands) share with library modules importing
# torch, transformers or pyarrow. They live here, and those modules import them from here, so building the
# parser (`clippings <command> --help`) imports none of those libraries.

VISION_BUILTINS = ("cnn", "cnn-pool", "vit-onepatch", "vit-patch8-64", "efficientnet-lite0")
"""Built-in vision encoders of `clippings.towers.compose` (described there)."""
MINILM = "minilm"
TEXT_BUILTINS = (MINILM,)
"""Built-in text encoders of `clippings.towers.compose`."""
POOLINGS = ("auto", "mean", "pooler")
"""Text poolings of `clippings.towers.compose`: auto picks mean for sentence-transformers encoders."""

NAVIGATOR_CLASSES = ("Photograph", "Illustration", "Map", "Comics/Cartoon", "Editorial Cartoon", "Headline",
                     "Advertisement")
"""Newspaper Navigator's detection classes, by class number (`clippings.importers.navigator`)."""
NAVIGATOR_MIN_SCORE = 0.5
"""The released files keep every detection down to a score of 0.05, most of the low ones not photos at all;
0.5, the usual cut for a Faster R-CNN detector's output, keeps the confident photos. Lower it for recall
(linking tolerates a few non-photos: they stay singletons) or raise it for a cleaner archive."""

MINE_STRICTNESS = 0.75
"""`clippings.mine`: each tower's strict cut = this × its label-free auto cut."""
MINE_NGRAM = 4
"""`clippings.mine`: character n-gram size of the caption witness."""
MINE_MAX_NGRAM = 8
"""`clippings.mine`: the longest character n-gram, whose key (7 bits a character, and its length) packs into
an int64."""
MINE_MIN_JACCARD = 0.3
"""`clippings.mine`: least Jaccard similarity of a mined pair's caption n-grams."""
MINE_VAL_FRACTION = 0.2
"""`clippings.mine`: share of the mined groups put in val."""
