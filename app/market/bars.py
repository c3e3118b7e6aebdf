"""Footprint bars: one record per bar interval, built by :class:`app.market.model.MarketModel`.

Prices are int64 ticks, volumes are contracts, ``ts`` is the bar open time in int64 ns since
the UNIX epoch UTC.
"""

from __future__ import annotations

import numpy as np

from app.core.events import Instrument

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


def scid_to_bars(records: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0) -> np.ndarray:
    """Sierra Chart ``.scid`` bar records -> :data:`BAR_DTYPE` (tick records are skipped).

    ``records`` is the ``.scid`` record array of :func:`app.feeds.scid.read_scid` (shape (N,));
    returns shape (M,) with M <= N.

    ``buy_volume`` = AskVolume (traded at the ask), ``sell_volume`` = BidVolume, ``delta`` = their
    difference, ``volume`` = TotalVolume, ``trades`` = NumTrades, prices in ticks, ``ts`` = bar
    start (ns UTC).
    """
    from app.feeds.scid import sc_datetime_to_ns, tick_record_mask  # only this converter needs the reader

    recs = records[~tick_record_mask(records)]
    out = np.zeros(len(recs), dtype=BAR_DTYPE)
    m = np.float64(price_multiplier)
    out["ts"] = sc_datetime_to_ns(recs["dt"])
    for f, g in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close")):
        out[g] = instrument.to_ticks(recs[f].astype(np.float64) * m)
    out["volume"] = recs["total_volume"]
    out["buy_volume"] = recs["ask_volume"]
    out["sell_volume"] = recs["bid_volume"]
    out["delta"] = out["buy_volume"] - out["sell_volume"]
    out["trades"] = recs["num_trades"]
    return out
