"""LOBSTER (Nasdaq, lobsterdata.com) message + orderbook files -> MIA Elite events.

Files (LOBSTER documentation, "Output structure"): ``<TICKER>_<date>_<start>_<end>_message_<L>.csv``
with one line per event ``time, type, order_id, size, price, direction`` and
``..._orderbook_<L>.csv`` with the visible book *after* that event, ``4 * L`` columns
``ask_px1, ask_sz1, bid_px1, bid_sz1, ask_px2, ...``. No header lines. ``time`` is seconds after
midnight (Eastern time) of the date in the file name; prices are USD x 10000; empty levels carry
the dummy prices 9999999999 (ask) / -9999999999 (bid) with size 0. Event types: 1 new limit order,
2 partial cancel, 3 delete, 4 execution of a visible order, 5 execution of a hidden order,
6 cross trade, 7 trading halt. ``direction`` is the side of the *resting* order: 1 buy (bid),
-1 sell (ask).

Conversion
----------
* Depth: the book is the visible ``L`` levels of the orderbook file (no order ids are needed).
  Row 1 becomes a snapshot batch (``OP_CLEAR`` side 0 + every level, ``FLAG_SNAPSHOT``); each
  next row becomes one batch with an ``OP_SET`` for every level whose size changed or that
  appeared, and an ``OP_DELETE`` for every price that left the visible window, bids first; the
  last event of a batch gets ``FLAG_BATCH_END``. Rows that change nothing give no depth event.
  (A level leaving the top ``L`` is deleted from this book although it still exists deeper in the
  exchange book: the book here is exactly LOBSTER's visible book.)
* Trades: types 4, 5 and 6 are trades at ``price`` for ``size`` shares. Executing a resting buy
  order (direction 1) means the aggressor sold: ``SIDE_BID``; direction -1 -> ``SIDE_ASK``. The
  trade is emitted before the depth batch of the same row (the trade caused the book change).
* Time: seconds after midnight in America/New_York on the file's date -> ns UTC (``zoneinfo``).
* Instrument: tick size 0.01 USD, tick value 0.01 USD per share per tick.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from pathlib import Path

import numpy as np

from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.feeds.recording import Recording

log = logging.getLogger(__name__)

_NAME = re.compile(r"(?P<ticker>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_(?:message|orderbook)_(?P<levels>\d+)")
DUMMY_ASK = 9999999999
DUMMY_BID = -9999999999
PRICE_SCALE = 10000


class LobsterError(ValueError):
    """The files are not a matching LOBSTER message/orderbook pair (message names the problem)."""


def orderbook_path_for(message_path: str | os.PathLike) -> Path:
    """The ``..._orderbook_L.csv`` beside a ``..._message_L.csv``."""
    p = Path(message_path)
    return p.with_name(p.name.replace("_message_", "_orderbook_"))


def _midnight_utc_ns(day: _dt.date) -> int:
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("America/New_York")
    except Exception as exc:  # noqa: BLE001 - no tz database (Windows without tzdata)
        raise LobsterError(f"time zone America/New_York unavailable ({exc}); install the 'tzdata' package")
    local = _dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(local.timestamp()) * 1_000_000_000


def read_lobster(message_path: str | os.PathLike, orderbook_path: str | os.PathLike | None = None,
                 symbol: str | None = None, tick_size: float = 0.01, tick_value: float = 0.01,
                 day: _dt.date | None = None) -> Recording:
    """Read a LOBSTER message/orderbook pair into a :class:`Recording`.

    Parameters
    ----------
    message_path : path-like
        The ``..._message_L.csv`` file.
    orderbook_path : path-like, optional
        Default: the matching ``..._orderbook_L.csv``.
    symbol : str, optional
        Default: the ticker in the file name.
    tick_size, tick_value : float
        USD; tick value per share.
    day : datetime.date, optional
        Trading day; default the date in the file name.

    Returns
    -------
    Recording
        ``events`` (EVENT_DTYPE; depth batches + trades, ts ns UTC non-decreasing),
        ``extra["stats"]``: rows, trades, halts, depth_events, bad_rows.

    Raises
    ------
    FileNotFoundError, LobsterError
        Row counts differ, a row has the wrong number of columns, or the date is unknown.
    """
    mp = Path(message_path)
    op_ = Path(orderbook_path) if orderbook_path else orderbook_path_for(mp)
    m = _NAME.search(mp.name)
    if day is None:
        if not m:
            raise LobsterError(f"{mp.name}: no date in the file name; pass day=")
        day = _dt.date.fromisoformat(m.group("date"))
    symbol = symbol or (m.group("ticker") if m else "LOBSTER")
    try:
        msg = np.loadtxt(mp, delimiter=",", dtype=np.float64, ndmin=2)
        book = np.loadtxt(op_, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise LobsterError(f"{mp.name}/{op_.name}: not numeric CSV ({exc})") from exc
    if msg.shape[1] != 6:
        raise LobsterError(f"{mp.name}: {msg.shape[1]} columns, expected 6 (time,type,id,size,price,direction)")
    if book.shape[1] % 4:
        raise LobsterError(f"{op_.name}: {book.shape[1]} columns, expected a multiple of 4")
    if len(msg) != len(book):
        raise LobsterError(f"{mp.name} has {len(msg)} rows but {op_.name} has {len(book)}")
    levels = book.shape[1] // 4
    base = _midnight_utc_ns(day)
    ts = base + np.rint(msg[:, 0] * 1e9).astype(np.int64)
    typ = msg[:, 1].astype(np.int64)
    size = msg[:, 3]
    price = msg[:, 4].astype(np.int64)
    direction = msg[:, 5].astype(np.int64)
    ticks_per_unit = 1.0 / (tick_size * PRICE_SCALE)

    ask_px = book[:, 0::4]
    ask_sz = book[:, 1::4]
    bid_px = book[:, 2::4]
    bid_sz = book[:, 3::4]

    rows: list[tuple] = []
    st = dict(rows=len(msg), levels=levels, trades=0, halts=int((typ == 7).sum()), depth_events=0)
    prev = {SIDE_BID: {}, SIDE_ASK: {}}
    for i in range(len(msg)):
        t = int(ts[i])
        if typ[i] in (4, 5, 6):
            side = SIDE_BID if direction[i] == 1 else SIDE_ASK
            rows.append((t, int(price[i]), float(size[i]), KIND_TRADE, side, 0, 0))
            st["trades"] += 1
        cur = {
            SIDE_BID: {int(p): int(s) for p, s in zip(bid_px[i], bid_sz[i]) if s > 0 and p != DUMMY_BID},
            SIDE_ASK: {int(p): int(s) for p, s in zip(ask_px[i], ask_sz[i]) if s > 0 and p != DUMMY_ASK},
        }
        n0 = len(rows)
        if i == 0:
            rows.append((t, 0, 0.0, KIND_DEPTH, 0, OP_CLEAR, FLAG_SNAPSHOT))
            for sd, order in ((SIDE_BID, True), (SIDE_ASK, False)):
                for p in sorted(cur[sd], reverse=order):
                    rows.append((t, p, float(cur[sd][p]), KIND_DEPTH, sd, OP_SET, FLAG_SNAPSHOT))
        else:
            for sd in (SIDE_BID, SIDE_ASK):
                old, new = prev[sd], cur[sd]
                for p in sorted(old.keys() - new.keys()):
                    rows.append((t, p, 0.0, KIND_DEPTH, sd, OP_DELETE, 0))
                for p in sorted(new):
                    if old.get(p) != new[p]:
                        rows.append((t, p, float(new[p]), KIND_DEPTH, sd, OP_SET, 0))
        if len(rows) > n0 and rows[-1][3] == KIND_DEPTH:
            r = rows[-1]
            rows[-1] = r[:6] + (r[6] | FLAG_BATCH_END,)
        prev = cur
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    if rows:
        cols = list(zip(*rows))
        out["ts"] = np.maximum.accumulate(np.asarray(cols[0], dtype=np.int64))
        raw_px = np.asarray(cols[1], dtype=np.int64)
        out["price"] = np.rint(raw_px * ticks_per_unit).astype(np.int64)
        out["size"] = cols[2]
        out["kind"] = cols[3]
        out["side"] = cols[4]
        out["op"] = cols[5]
        out["flags"] = cols[6]
    st["depth_events"] = int((out["kind"] == KIND_DEPTH).sum())
    inst = Instrument(symbol=symbol, tick_size=tick_size, tick_value=tick_value, exchange="NASDAQ",
                      description=f"{symbol} LOBSTER level-{levels} {day.isoformat()}", price_decimals=2)
    return Recording(instrument=inst, events=out, source=f"LOBSTER {mp.name} + {op_.name}",
                     extra={"stats": st})
