"""Plain-NumPy twins of the Sierra Chart decoding kernels (:mod:`app.feeds.sierra_kernels`).

:func:`depth_records_to_events_numpy` and :func:`scid_to_events_numpy` define the decoding rules
(module docstrings of :mod:`app.feeds.depthfile` and :mod:`app.feeds.scid`) with array
operations; the kernels behind :func:`app.feeds.depthfile.depth_records_to_events` and
:func:`app.feeds.scid.scid_to_events` must give the same events. The tests run the decoding
assertions on both; production code imports this module only as the deliberate fallback for
files with legacy float-days DateTime values (which the kernels do not decode).
"""

from __future__ import annotations

import numpy as np

from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_QUOTE,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.feeds.depthfile import COMMAND_CLEAR_BOOK, DELETE_ASK_LEVEL, FLAG_END_OF_BATCH, DepthStats
from app.feeds.scid import sc_datetime_to_ns, tick_record_mask, trade_sides

# depth record command -> (op, side); index = command code
_CMD_OP = np.array([0, OP_CLEAR, OP_SET, OP_SET, OP_SET, OP_SET, OP_DELETE, OP_DELETE], dtype=np.uint8)
_CMD_SIDE = np.array([0, 0, SIDE_BID, SIDE_ASK, SIDE_BID, SIDE_ASK, SIDE_BID, SIDE_ASK], dtype=np.uint8)


def depth_records_to_events_numpy(records: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0,
                                  stats: DepthStats | None = None, *, size_multiplier: float = 1.0) -> np.ndarray:
    """Depth records -> depth events, plain NumPy: the twin of
    :func:`app.feeds.depthfile.depth_records_to_events` (rules in that module's docstring).

    Parameters
    ----------
    records : np.ndarray of DEPTH_RECORD_DTYPE, shape (n,)
    instrument : Instrument
    price_multiplier : float
        Sierra's real-time price multiplier (stored * multiplier = price).
    stats : DepthStats, optional
        Updated in place.
    size_multiplier : float
        Stored Quantity = size x size_multiplier (whole numbers); sizes are Quantity / it
        (1 for futures; e.g. 1000 for BTC sizes with 0.001 steps).

    Returns
    -------
    np.ndarray of EVENT_DTYPE, shape (m,), m <= n, file order.
    """
    n = len(records)
    cmd = records["command"]
    valid = (cmd >= COMMAND_CLEAR_BOOK) & (cmd <= DELETE_ASK_LEVEL)
    c = np.where(valid, cmd, 0)
    end = (records["flags"] & FLAG_END_OF_BATCH) != 0
    # move end-of-batch flags of dropped records to the last kept record before them
    if not valid.all():
        kept_idx = np.flatnonzero(valid)
        lost = np.flatnonzero(~valid & end)
        if len(lost) and len(kept_idx):
            pos = np.searchsorted(kept_idx, lost) - 1
            pos = pos[pos >= 0]
            end = end.copy()
            end[kept_idx[pos]] = True
    op = _CMD_OP[c]
    qty = records["quantity"]
    zero_set = (op == OP_SET) & (qty == 0)
    op = np.where(zero_set, OP_DELETE, op).astype(np.uint8)
    # snapshot: every event of a batch containing a clear
    batch_id = np.concatenate(([0], np.cumsum(end[:-1]))) if n else np.zeros(0, np.int64)
    has_clear = np.zeros(int(batch_id[-1]) + 1 if n else 0, dtype=bool)
    has_clear[batch_id[valid & (c == COMMAND_CLEAR_BOOK)]] = True
    snap = has_clear[batch_id] if n else np.zeros(0, bool)

    out = np.zeros(n, dtype=EVENT_DTYPE)
    out["ts"] = sc_datetime_to_ns(records["dt"])
    px = records["price"].astype(np.float64) * np.float64(price_multiplier)
    out["price"] = np.where(op == OP_CLEAR, 0, instrument.to_ticks(px))
    out["size"] = qty / np.float64(size_multiplier)
    out["num_orders"] = records["num_orders"]
    out["kind"] = KIND_DEPTH
    out["side"] = _CMD_SIDE[c]
    out["op"] = op
    out["flags"] = np.where(end, FLAG_BATCH_END, 0) | np.where(snap, FLAG_SNAPSHOT, 0)
    if stats is not None:
        stats.records += n
        stats.dropped += int(n - valid.sum())
        stats.zero_quantity_sets += int(zero_set.sum())
    return out[valid] if not valid.all() else out


def scid_to_events_numpy(records: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0,
                         quotes: bool = True, *, size_multiplier: float = 1.0) -> np.ndarray:
    """Tick records -> events, plain NumPy (bar records are skipped; use
    :func:`app.market.bars.scid_to_bars`); the twin of :func:`app.feeds.scid.scid_to_events`.

    Parameters
    ----------
    records : np.ndarray of SCID_RECORD_DTYPE, shape (n,)
    instrument : Instrument
        Tick size for the price -> tick conversion.
    price_multiplier : float
        Sierra Chart's real-time price multiplier for the symbol (stored * multiplier = price).
    quotes : bool
        Also emit ``KIND_QUOTE`` bid/ask events from Low/High.
    size_multiplier : float
        TotalVolume = size x size_multiplier; sizes are TotalVolume / it (1 for futures).

    Returns
    -------
    np.ndarray of EVENT_DTYPE
        Up to 3 events per tick record (bid quote, ask quote, trade), file order, ts ns UTC.
    """
    recs = records[tick_record_mask(records)]
    n = len(recs)
    out = np.zeros(3 * n, dtype=EVENT_DTYPE)
    if n == 0:
        return out
    ts = sc_datetime_to_ns(recs["dt"])
    m = np.float64(price_multiplier)
    keep = np.zeros((n, 3), dtype=bool)
    view = out.reshape(n, 3)
    for j, (field, side) in enumerate((("low", SIDE_BID), ("high", SIDE_ASK))):
        px = recs[field].astype(np.float64) * m
        v = view[:, j]
        v["ts"] = ts
        v["kind"] = KIND_QUOTE
        v["side"] = side
        v["price"] = instrument.to_ticks(px)
        keep[:, j] = quotes & (px > 0)
    t = view[:, 2]
    t["ts"] = ts
    t["kind"] = KIND_TRADE
    t["price"] = instrument.to_ticks(recs["close"].astype(np.float64) * m)
    t["size"] = recs["total_volume"] / np.float64(size_multiplier)
    t["side"] = trade_sides(recs)
    keep[:, 2] = recs["total_volume"] > 0
    return out[keep.ravel()]
