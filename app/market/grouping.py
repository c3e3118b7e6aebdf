"""Price grouping: one heatmap / footprint / book row = ``k`` ticks (Sierra Chart's "tick size
multiplier", Bookmap's price grouping), chosen per instrument from its own statistics.

Why: thresholds and windows in rows only mean the same thing on every instrument when a row is a
comparable slice of the market. On ES a one-minute bar spans a few ticks, so 400 one-tick rows
show a session; on BTCUSDT the median one-minute range is about 900 ticks, so 400 one-tick rows
are less than one bar and the DOM detectors' "10 levels" are ten cents.

The grouping is applied where events enter the model (``app.live.engine`` runs every batch
through :class:`PriceGrouper` before :meth:`app.market.model.MarketModel.apply`), so the book,
the heatmap, the footprint bars, the volume profile and every analyzer work in rows, and the
model's instrument is :func:`grouped_instrument` (tick size and tick value ``k`` times the
exchange's). Row ``g`` holds the ticks ``g*k .. g*k + k - 1`` (``g = tick // k``, floor), and its
price is that of its lowest tick.

* **Depth**: the grouper keeps every exchange level's own size, so an update of one level sets
  its row to the correct sum of the row's levels (an ``OP_SET`` of the row; ``OP_DELETE`` when the
  row is empty). ``OP_CLEAR`` clears the side (or the book) and passes on.
* **Trades and quotes** are mapped to their row.

One event comes out per event in, in order (same array length and timestamps), so a caller can
cut the raw and the grouped stream at the same indices.

:func:`auto_row_ticks` picks ``k`` from the first minute of trades: ``k`` is the largest of 1, 2,
5, 10, 20, 50, ... that is at most the median 10-second trade range (ticks) over
:data:`AUTO_ROWS_PER_10S`. So a typical 10-second move spans about 4 rows (a median one-minute bar
about 8 to 20 rows) on every instrument, as far as its tick allows: ES, whose 10-second range is
a few ticks, stays at ``k = 1``.
"""

from __future__ import annotations

import numpy as np

from app.core.events import KIND_DEPTH, OP_CLEAR, OP_DELETE, OP_SET, SIDE_ASK, SIDE_BID, Instrument

#: Market time of trades the automatic choice looks at (ns), cut into slices of AUTO_SLICE_NS.
AUTO_WINDOW_NS = 60_000_000_000
AUTO_SLICE_NS = 10_000_000_000
#: Rows a median 10-second trade range should span.
AUTO_ROWS_PER_10S = 4.0


def nice_floor(x: float) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... that is <= ``x`` (1 when ``x`` < 2)."""
    if not x >= 2:
        return 1
    e = int(np.floor(np.log10(x)))
    best = 1
    for base in (1, 2, 5, 10):
        v = base * 10 ** e
        if v <= x + 1e-9:
            best = max(best, v)
    return int(best)


def auto_row_ticks(trade_ts: np.ndarray, trade_price: np.ndarray) -> int:
    """Ticks per row for an instrument, from its first minute of trades (rule: module docstring).

    Parameters
    ----------
    trade_ts : numpy.ndarray
        Shape (n,), int64 ns, ascending.
    trade_price : numpy.ndarray
        Shape (n,), int64 ticks.

    Returns
    -------
    int
        ``k >= 1`` (1 without trades).
    """
    if trade_ts.shape[0] < 2:
        return 1
    t0 = int(trade_ts[0])
    m = trade_ts < t0 + AUTO_WINDOW_NS
    ts, px = trade_ts[m], trade_price[m]
    sl = (ts - t0) // AUTO_SLICE_NS
    _u, first = np.unique(sl, return_index=True)
    ranges = np.maximum.reduceat(px, first) - np.minimum.reduceat(px, first)
    return nice_floor(float(np.median(ranges)) / AUTO_ROWS_PER_10S)


def grouped_instrument(inst: Instrument, k: int) -> Instrument:
    """``inst`` with rows of ``k`` ticks: tick size and tick value ``k`` times larger (``inst`` when k == 1)."""
    if k == 1:
        return inst
    return Instrument(inst.symbol, inst.tick_size * k, inst.tick_value * k, inst.exchange, inst.description,
                      inst.price_decimals)


def row_edge_ticks(row: int, k: int, low: bool) -> int:
    """The exchange tick at the low (``low=True``) or high edge of row ``row`` of ``k`` ticks."""
    return int(row) * k + (0 if low else k - 1)


def bracket_to_ticks(side: int, entry: int, stop: int, target: int, k: int) -> tuple[int, int, int]:
    """A bracket in rows of ``k`` ticks as exchange ticks: the edge of each row a trade must reach.

    Long (``side`` +1): the entry limit and the stop at their rows' high edge (a buy anywhere in
    the entry row; the stop triggers on any trade in its row), the target at its row's low edge
    (a sale anywhere in the row). Short: the mirror. With ``k == 1`` nothing changes.

    Returns
    -------
    (entry, stop, target) : tuple of int
        Exchange ticks.
    """
    lo = side < 0
    return row_edge_ticks(entry, k, lo), row_edge_ticks(stop, k, lo), row_edge_ticks(target, k, not lo)


class PriceGrouper:
    """Maps exchange-tick events to rows of ``k`` ticks (rules: module docstring).

    Parameters
    ----------
    k : int
        Ticks per row, >= 1 (1 passes every batch through unchanged).

    Raises
    ------
    ValueError
        If ``k < 1``.
    """

    def __init__(self, k: int):
        if int(k) < 1:
            raise ValueError(f"price grouping: ticks per row must be >= 1, got {k}")
        self.k = int(k)
        self._levels = {SIDE_BID: {}, SIDE_ASK: {}}  # tick -> (size, orders)
        self._rows = {SIDE_BID: {}, SIDE_ASK: {}}  # row -> [size, orders]

    def apply(self, events: np.ndarray) -> np.ndarray:
        """Grouped copy of a batch (1-D ``EVENT_DTYPE``); the batch itself when ``k == 1``.

        Returns
        -------
        numpy.ndarray
            Same length, dtype and order; prices in rows, depth sizes the rows' sums.
        """
        if self.k == 1 or not len(events):
            return events
        out = events.copy()
        k = self.k
        kinds = out["kind"]
        other = kinds != KIND_DEPTH
        out["price"][other] = np.floor_divide(out["price"][other], k)
        idx = np.flatnonzero(~other)
        if not len(idx):
            return out
        price, size, side = out["price"], out["size"], out["side"]
        op, orders = out["op"], out["num_orders"]
        levels, rows = self._levels, self._rows
        for i in idx.tolist():
            o = int(op[i])
            sd = int(side[i])
            if o == OP_CLEAR:
                for s in ((SIDE_BID, SIDE_ASK) if sd not in (SIDE_BID, SIDE_ASK) else (sd,)):
                    levels[s].clear()
                    rows[s].clear()
                continue
            tick = int(price[i])
            row = tick // k
            price[i] = row
            if sd not in levels or o not in (OP_SET, OP_DELETE):
                continue  # the model counts what it cannot apply; nothing to keep here
            lv, rw = levels[sd], rows[sd]
            old_sz, old_n = lv.get(tick, (0.0, 0))
            new_sz = float(size[i]) if o == OP_SET and size[i] > 0 else 0.0
            new_n = int(orders[i]) if new_sz > 0 else 0
            if new_sz > 0:
                lv[tick] = (new_sz, new_n)
            else:
                lv.pop(tick, None)
            acc = rw.get(row)
            if acc is None:
                acc = rw[row] = [0.0, 0]
            acc[0] += new_sz - old_sz
            acc[1] += new_n - old_n
            if acc[0] <= 1e-12:
                del rw[row]
                op[i] = OP_DELETE
                size[i] = 0.0
                orders[i] = 0
            else:
                op[i] = OP_SET
                size[i] = acc[0]
                orders[i] = max(acc[1], 0)
        return out

    def row_size(self, side: int, row: int) -> float:
        """Summed size of a row (0 when empty); ``side`` 1 bid, 2 ask."""
        acc = self._rows[side].get(row)
        return 0.0 if acc is None else acc[0]
