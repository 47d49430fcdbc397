"""unique_ints against np.unique, its oracle."""

from __future__ import annotations

import numpy as np
import pytest

from clippings.numeric import unique_ints


@pytest.mark.parametrize("high", [1, 7, 1000, 2**62])
@pytest.mark.parametrize("n", [0, 1, 2, 5000])
def test_unique_ints_is_np_unique(n, high):
    values = np.random.default_rng([n, 3]).integers(0, high, n)
    got = unique_ints(values)
    assert got.dtype == values.dtype and np.array_equal(got, np.unique(values))
    assert np.array_equal(unique_ints(values.reshape(-1, 1) if n else values), np.unique(values))
