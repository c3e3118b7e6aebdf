"""``Instrument.to_ticks`` never wraps: a price whose tick count does not fit int64, or that is not
finite, raises (issue 13 item 1: ``Price1 = 3e18`` at tick 0.25 came back as -2.3e18 ticks)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import Instrument

ES = Instrument("ESH4", 0.25, 12.5)


def test_prices_round_to_the_nearest_tick():
    assert ES.to_ticks(4810.25) == 19241
    assert ES.to_ticks(4810.124) == 19240
    assert ES.to_ticks([4810.0, -1.0, 0.0]).tolist() == [19240, -4, 0]
    assert ES.to_ticks(np.zeros(0)).dtype == np.int64


@pytest.mark.parametrize("price", [3e18, 2.4e18, -3e18, 1e300, 2.0**61])
def test_a_tick_count_beyond_int64_raises_instead_of_wrapping(price):
    with pytest.raises(ValueError, match=r"ESH4: price .* out of range"):
        ES.to_ticks(price)


@pytest.mark.parametrize("price", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_price_raises(price):
    with pytest.raises(ValueError, match="not finite"):
        ES.to_ticks(price)


def test_an_array_with_one_bad_price_raises_and_names_it():
    with pytest.raises(ValueError, match=r"3e\+18"):
        ES.to_ticks(np.array([4810.0, 3e18, 4811.0]))


def test_the_largest_tick_counts_that_fit_still_convert():
    big = float(2**62) * 0.25  # 2**62 ticks
    assert int(ES.to_ticks(big)) == 2**62
    assert int(ES.to_ticks(-big)) == -(2**62)
