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
