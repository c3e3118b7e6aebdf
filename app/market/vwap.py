"""Session VWAP with standard-deviation bands.

``VWAP = sum(p_i v_i) / sum(v_i)`` over every trade of the trading session (price ``p_i`` in
ticks, size ``v_i`` in the instrument's units), and the volume-weighted standard deviation
``sd = sqrt(sum(v_i (p_i - VWAP)^2) / sum(v_i))``; the bands are ``VWAP +- k x sd`` (k = 1, 2 are
the usual ones). This is the definition of the VWAP study in Sierra Chart ("Volume Weighted
Average Price", standard-deviation band method) and most charting packages. It restarts at each
session open (:mod:`app.core.sessions`), with the volume profile and the cumulative delta.

Sums are kept relative to the session's first trade price, so the variance does not lose its
digits to cancellation on a large price (BTC at 600,000 ticks).
"""

from __future__ import annotations

import math

import numpy as np


class SessionVWAP:
    """Running VWAP and its standard deviation since the last :meth:`reset`.

    Attributes
    ----------
    volume : float
        Traded volume in the session so far (instrument units).
    """

    __slots__ = ("_ref", "_v", "_pv", "_ppv", "volume")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new session: no trades yet."""
        self._ref = None
        self._v = self._pv = self._ppv = 0.0
        self.volume = 0.0

    def add(self, price: np.ndarray, size: np.ndarray) -> None:
        """Add trades: ``price`` int64 ticks and ``size`` float64, both of shape (N,)."""
        if price.shape[0] == 0:
            return
        if self._ref is None:
            self._ref = int(price[0])
        d = price.astype(np.float64) - self._ref
        w = np.asarray(size, dtype=np.float64)
        self._v += float(w.sum())
        self._pv += float(np.dot(d, w))
        self._ppv += float(np.dot(d * d, w))
        self.volume = self._v

    @property
    def vwap(self) -> float:
        """Session VWAP, ticks (float); ``nan`` before the first trade."""
        if self._v <= 0:
            return math.nan
        return self._ref + self._pv / self._v

    @property
    def sd(self) -> float:
        """Volume-weighted standard deviation of the session's trade prices, ticks; ``nan``
        before the first trade."""
        if self._v <= 0:
            return math.nan
        m = self._pv / self._v
        return math.sqrt(max(0.0, self._ppv / self._v - m * m))

    def bands(self, k: float) -> tuple[float, float]:
        """``(VWAP - k sd, VWAP + k sd)``, ticks; ``(nan, nan)`` before the first trade."""
        v, s = self.vwap, self.sd
        return v - k * s, v + k * s
