"""Footprint bars: one record per bar interval, built by :class:`app.market.model.MarketModel`.

Prices are int64 ticks, volumes are contracts, ``ts`` is the bar open time in int64 ns since
the UNIX epoch UTC.
"""

from __future__ import annotations

import numpy as np

#: Footprint bar, one per bar interval. Prices in ticks, volumes in contracts.
BAR_DTYPE = np.dtype(
    [
        ("ts", "<i8"),  # bar open time, ns
        ("open", "<i8"),
        ("high", "<i8"),
        ("low", "<i8"),
        ("close", "<i8"),
        ("volume", "<f8"),
        ("buy_volume", "<f8"),  # traded at ask (buyer aggressor)
        ("sell_volume", "<f8"),  # traded at bid (seller aggressor)
        ("delta", "<f8"),  # buy - sell
        ("trades", "<i8"),
    ]
)
