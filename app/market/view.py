"""The analyzers' input: a read-only view of the market state, built by the market model.

The market model (``app.market``) owns the mutable state and fills a :class:`MarketView` for
each analysis step; the analyzers (``app.analysis``) read it and never write to it. Every
per-price array shares one row grid: row ``i`` is price ``base + i`` ticks, ``rows`` rows in all
(the heatmap's rows). Columns are heatmap time columns of ``column_ns`` each, newest last.

Shapes, dtypes, units:

=================  ==================  =====================================================
field              dtype, shape        meaning
=================  ==================  =====================================================
ts                 int                 market time of the last event applied, ns UTC
tick_size          float               price units per tick
tick_value         float               USD per tick per contract
base               int                 price (ticks) of row 0
bid, ask           float64 (R,)        resting size now per row, contracts (0 = empty)
bid_orders,        float64 (R,)        orders at the level now (0 when the source has no counts)
ask_orders
best_bid,          int                 ticks; -1 when that side is empty
best_ask
hist_bid,          float32 (R, C)      resting size per row at the end of each column
hist_ask
traded_buy,        float32 (R, C)      volume traded at the ask (buyer aggressor) / at the bid
traded_sell                            (seller aggressor) per row per column
column_ns          int                 width of one column, ns
col_t0             int                 start time of column 0, ns
trades             EVENT_DTYPE (T,)    the most recent trades (up to a few thousand), oldest first
bars               BAR_DTYPE (K,)      footprint bars, oldest first; the last one may be open
fp_buy, fp_sell    float32 (K, R)      per bar: volume at the ask / at the bid per row
session_buy,       float64 (R,)        session volume at the ask / at the bid per row
session_sell
poc, vah, val      int                 volume-profile point of control, value-area high/low, ticks
                                       (-1 when no volume yet)
cum_delta          float               session cumulative delta (buy - sell), contracts
session_start_ns   int                 open of the trading session the profile and delta count
                                       from, ns (-1: no calendar, they count from the start)
session_volume     float               volume traded in that session, contracts
vwap, vwap_sd      float               session VWAP and its volume-weighted standard deviation,
                                       ticks (nan before the session's first trade;
                                       :mod:`app.market.vwap`)
session_phase      str                 overnight / open / midday / close / closed (CME), session
                                       (crypto), "" without a calendar
=================  ==================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MarketView:
    """Read-only market state for one analysis step (see the module docstring for fields)."""

    ts: int
    tick_size: float
    tick_value: float
    base: int
    bid: np.ndarray
    ask: np.ndarray
    bid_orders: np.ndarray
    ask_orders: np.ndarray
    best_bid: int
    best_ask: int
    hist_bid: np.ndarray
    hist_ask: np.ndarray
    traded_buy: np.ndarray
    traded_sell: np.ndarray
    column_ns: int
    col_t0: int
    trades: np.ndarray
    bars: np.ndarray
    fp_buy: np.ndarray
    fp_sell: np.ndarray
    session_buy: np.ndarray
    session_sell: np.ndarray
    poc: int
    vah: int
    val: int
    cum_delta: float
    session_start_ns: int = -1
    session_volume: float = 0.0
    vwap: float = float("nan")
    vwap_sd: float = float("nan")
    session_phase: str = ""

    @property
    def rows(self) -> int:
        """Number of price rows R."""
        return int(self.bid.shape[0])

    def row_of(self, price_tick: int) -> int:
        """Row index of a price in ticks (may be out of range: check against :attr:`rows`)."""
        return int(price_tick) - self.base
