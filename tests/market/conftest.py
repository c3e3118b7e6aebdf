"""Fixtures for the market-model tests: the real ES hour, the real Binance BTCUSDT capture, and
``impl``: the numba kernels or their plain Python/NumPy twins (:mod:`app.market.kernels_ref`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from app.core.events import FLAG_BATCH_END


@pytest.fixture(scope="session")
def es_recording():
    """The shipped real CME ES MBO hour as price-level events (helper B's converter)."""
    from app.feeds.samples import load_default_sample

    return load_default_sample(use_cache=False)


@pytest.fixture(scope="session")
def btc_recording(shared_data):
    """The real Binance BTCUSDT capture (depth diffs, trades, bookTicker quotes)."""
    from app.feeds.binance import read_binance_gz

    return read_binance_gz(shared_data / "crypto" / "btcusdt_20240808.gz")


@pytest.fixture(scope="session")
def cut():
    """``cut(events, every)``: split at every ``every``-th batch end (FLAG_BATCH_END)."""

    def _cut(events: np.ndarray, every: int) -> list[np.ndarray]:
        ends = np.flatnonzero(events["flags"] & FLAG_BATCH_END) + 1
        return [c for c in np.split(events, ends[::every]) if len(c)]

    return _cut


@pytest.fixture(params=["numba", "numpy"])
def impl(request) -> SimpleNamespace:
    """One implementation of the market kernels: ``impl.use_numba`` (the ``MarketModel`` switch),
    ``impl.value_area``."""
    if request.param == "numba":
        from app.market import kernels

        return SimpleNamespace(name="numba", use_numba=True, value_area=kernels.value_area_nb)
    from app.market import kernels_ref

    return SimpleNamespace(name="numpy", use_numba=False, value_area=kernels_ref.value_area_py)
