"""Parameter validation messages keep one shape."""

import pytest

from clippings.errors import BadInput
from clippings.params import Interval, OneOf, validate_params


def test_interval_message_shape():
    with pytest.raises(BadInput) as err:
        validate_params("link", {"threshold": 3.5}, {"threshold": Interval(float, 0.0, 2.0)})
    assert str(err.value) == (
        "The 'threshold' parameter of link must be a float in the range [0.0, 2.0]. Got 3.5 instead."
    )


def test_bounds_are_inclusive_unless_open_and_nan_is_rejected():
    closed = Interval(float, 0.0, 2.0)
    assert closed.holds(0.0) and closed.holds(2.0) and not closed.holds(float("nan"))
    assert not Interval(int, 1, None).holds(0) and Interval(int, 1, None).holds(5)
    assert not Interval(int, 1, None).holds(1.5) and not Interval(int, 1, None).holds(True)
    assert not Interval(float, 0.0, 1.0, open_low=True).holds(0.0)


def test_one_of_and_none_skipped():
    validate_params("link", {"index": None}, {"index": OneOf(("flat", "ivf"))})
    with pytest.raises(BadInput, match=r"must be one of 'flat', 'ivf'\. Got 'hnsw' instead\."):
        validate_params("link", {"index": "hnsw"}, {"index": OneOf(("flat", "ivf"))})
