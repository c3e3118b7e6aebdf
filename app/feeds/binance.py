"""Binance USD-M futures stream recordings (hftbacktest capture format) -> MIA Elite events.

The file ``crypto/btcusdt_20240808.gz`` (nkaz001/hftbacktest ``examples/usdm``) is gzip text, one
message per line: ``<local_recv_ns> <raw JSON>``. Four kinds of message occur:

* a REST depth snapshot ``{"lastUpdateId": L, "E": .., "T": .., "bids": [[p, q], ..], "asks": ..}``
  (1000 levels a side);
* ``<sym>@depth@0ms`` diff updates ``{"e": "depthUpdate", "U": first id, "u": last id,
  "pu": previous event's u, "b": [[p, q], ..], "a": [[p, q], ..]}``: ``q`` is the new **absolute**
  quantity at price ``p``; ``q == 0`` removes the level;
* ``<sym>@bookTicker`` best bid/ask with sizes (``b``, ``B``, ``a``, ``A``);
* ``<sym>@trade`` trades (``p``, ``q``, ``m`` = "is the buyer the market maker").

Rules, with their sources
-------------------------
* Book synchronisation: Binance USD-M Futures "How to manage a local order book correctly"
  (developers.binance.com, derivatives/usds-margined-futures/websocket-market-streams): buffer the
  diff stream, take the REST snapshot, drop every diff with ``u < lastUpdateId``; the first diff
  applied must have ``U <= lastUpdateId <= u``; afterwards every diff's ``pu`` must equal the
  previous diff's ``u``. A break (``pu`` mismatch) would require a new snapshot, which a recording
  cannot fetch: it is counted in ``stats['sequence_gaps']``, logged, and the diff applied anyway.
  (The shipped file has no gap: checked in the tests.)
* The snapshot becomes ``OP_CLEAR`` (side 0) + one ``OP_SET`` per level (bids best first, then
  asks), all ``FLAG_SNAPSHOT``, the last ``FLAG_BATCH_END``. Each diff message becomes one batch
  (bid updates, then ask updates; ``q == 0`` -> ``OP_DELETE``) whose last event carries
  ``FLAG_BATCH_END``. A diff with no levels emits nothing.
* Trades: ``m == true`` means the buyer was the resting maker, i.e. the aggressor sold into the
  bid, so the trade's side is ``SIDE_BID``; ``m == false`` -> ``SIDE_ASK`` (buyer aggressor)
  (Binance "Trade Streams" payload; MIA convention in :mod:`app.core.events`).
* Quotes: each bookTicker gives two ``KIND_QUOTE`` events (bid then ask), as the DTC client does.
* Time: ``ts`` is the capture's local receive time in ns (the first column; the order the file
  was written). Diffs buffered before the snapshot are emitted right after the snapshot, so the
  output time is made non-decreasing (running maximum). The exchange times ``E``/``T`` (ms) are not
  used for ordering: in this capture the local clock runs about 1.27 s behind them.
* Prices are decimal strings in USDT; ticks = ``round(price / 0.1)``. Sizes are BTC (fractional
  contracts).

BTCUSDT perpetual defaults: tick size 0.1 USDT, tick value 0.1 USD per 1 BTC contract
(Binance futures exchangeInfo ``PRICE_FILTER.tickSize = 0.10`` for BTCUSDT).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

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
from app.feeds.recording import Recording

log = logging.getLogger(__name__)

BTCUSDT_TICK_SIZE = 0.1
BTCUSDT_TICK_VALUE = 0.1


class BinanceError(ValueError):
    """The file is not a Binance stream recording this reader understands."""


def btcusdt_instrument(symbol: str = "BTCUSDT") -> Instrument:
    """Instrument of the Binance USD-M BTCUSDT perpetual (tick 0.1 USDT, 0.1 USD per tick per BTC)."""
    return Instrument(
        symbol=symbol,
        tick_size=BTCUSDT_TICK_SIZE,
        tick_value=BTCUSDT_TICK_VALUE,
        exchange="BINANCE-USDM",
        description=f"Binance USD-M perpetual {symbol}",
        price_decimals=1,
    )


class _Cols:
    """Column accumulator: flat Python lists turned into one event array at the end."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.price: list[str | float] = []
        self.size: list[str | float] = []
        self.kind: list[int] = []
        self.side: list[int] = []
        self.op: list[int] = []
        self.flags: list[int] = []

    def add(self, ts, price, size, kind, side, op, flags) -> None:
        self.ts.append(ts)
        self.price.append(price)
        self.size.append(size)
        self.kind.append(kind)
        self.side.append(side)
        self.op.append(op)
        self.flags.append(flags)

    def levels(self, ts: int, bids, asks, flags: int) -> None:
        """Append one batch of level updates; the last gets FLAG_BATCH_END."""
        n0 = len(self.ts)
        for side, levels in ((SIDE_BID, bids), (SIDE_ASK, asks)):
            for p, q in levels:
                self.add(ts, p, q, KIND_DEPTH, side, OP_SET, flags)
        if len(self.ts) > n0:
            self.flags[-1] |= FLAG_BATCH_END

    def to_array(self, tick_size: float) -> np.ndarray:
        n = len(self.ts)
        out = np.zeros(n, dtype=EVENT_DTYPE)
        if n == 0:
            return out
        ts = np.asarray(self.ts, dtype=np.int64)
        out["ts"] = np.maximum.accumulate(ts)
        px = np.asarray(self.price, dtype=np.float64)  # decimal strings parse here, vectorised
        out["price"] = np.rint(px / tick_size).astype(np.int64)
        out["size"] = np.asarray(self.size, dtype=np.float64)
        out["kind"] = self.kind
        out["side"] = self.side
        op = np.asarray(self.op, dtype=np.uint8)
        # absolute quantity 0 in a diff removes the level
        op[(op == OP_SET) & (out["size"] == 0.0)] = OP_DELETE
        out["op"] = op
        out["flags"] = self.flags
        return out


def _open_lines(path: Path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8").splitlines()


def read_binance_gz(
    path: str | os.PathLike,
    symbol: str = "BTCUSDT",
    tick_size: float = BTCUSDT_TICK_SIZE,
    tick_value: float = BTCUSDT_TICK_VALUE,
    quotes: bool = True,
) -> Recording:
    """Read an hftbacktest Binance USD-M capture (``<recv_ns> <json>`` lines, gzip or plain).

    Parameters
    ----------
    path : path-like
        The ``.gz`` file (plain text also accepted).
    symbol : str
        Symbol of the returned instrument (messages of other symbols are counted and skipped).
    tick_size : float
        Price increment in USDT (BTCUSDT: 0.1).
    tick_value : float
        USD per tick per contract (BTCUSDT: 0.1 per 1 BTC).
    quotes : bool
        Emit ``KIND_QUOTE`` events from ``bookTicker`` messages.

    Returns
    -------
    Recording
        ``events``: 1-D :data:`EVENT_DTYPE` array, ts non-decreasing (ns UTC), prices in ticks,
        sizes in BTC. ``extra["stats"]`` holds counters: ``lines``, ``snapshots``, ``diffs``,
        ``diffs_applied``, ``diffs_dropped`` (``u < lastUpdateId`` or before any snapshot),
        ``sequence_gaps``, ``trades``, ``book_tickers``, ``bad_lines``, ``other``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    BinanceError
        If no line of the file is a Binance message (names the file).
    """
    path = Path(path)
    lines = _open_lines(path)
    want = symbol.lower()
    st = dict(lines=len(lines), snapshots=0, diffs=0, diffs_applied=0, diffs_dropped=0,
              sequence_gaps=0, trades=0, book_tickers=0, bad_lines=0, other=0)
    cols = _Cols()
    pending: list[tuple[int, dict]] = []  # diffs received before the first snapshot
    last_u: int | None = None  # u of the last applied diff (None: not synchronised)
    snap_id: int | None = None
    recognised = 0

    def apply_diff(ts: int, d: dict) -> None:
        nonlocal last_u
        u = int(d["u"])
        if last_u is None:
            # first diff after a snapshot: drop u < L; must satisfy U <= L <= u
            if u < snap_id:
                st["diffs_dropped"] += 1
                return
            if int(d["U"]) > snap_id:
                st["sequence_gaps"] += 1
                log.warning("%s: first diff after snapshot starts at U=%s > lastUpdateId=%s",
                            path.name, d["U"], snap_id)
        elif int(d.get("pu", last_u)) != last_u:
            st["sequence_gaps"] += 1
            log.warning("%s: depth sequence gap: pu=%s, previous u=%s", path.name, d.get("pu"), last_u)
        last_u = u
        st["diffs_applied"] += 1
        cols.levels(ts, d.get("b", ()), d.get("a", ()), 0)

    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            head, js = line.split(" ", 1)
            ts = int(head)
            msg = json.loads(js)
        except (ValueError, json.JSONDecodeError):
            st["bad_lines"] += 1
            if st["bad_lines"] <= 5:
                log.warning("%s:%d: not '<recv_ns> <json>', skipped", path.name, ln)
            continue
        try:
            if "lastUpdateId" in msg and "bids" in msg:
                recognised += 1
                st["snapshots"] += 1
                snap_id = int(msg["lastUpdateId"])
                last_u = None
                cols.add(ts, 0.0, 0.0, KIND_DEPTH, 0, OP_CLEAR, FLAG_SNAPSHOT)
                cols.levels(ts, msg["bids"], msg["asks"], FLAG_SNAPSHOT)
                if not msg["bids"] and not msg["asks"]:
                    cols.flags[-1] |= FLAG_BATCH_END
                for pts, d in pending:
                    apply_diff(max(pts, ts), d)
                pending.clear()
                continue
            stream = msg.get("stream", "")
            d = msg.get("data", msg)
            if not isinstance(d, dict):
                st["other"] += 1
                continue
            if d.get("s", symbol).lower() != want:
                st["other"] += 1
                continue
            e = d.get("e")
            if e == "depthUpdate" or stream.endswith("@depth") or "@depth@" in stream:
                recognised += 1
                st["diffs"] += 1
                if snap_id is None:
                    pending.append((ts, d))
                else:
                    apply_diff(ts, d)
            elif e == "trade" or stream.endswith("@trade"):
                recognised += 1
                st["trades"] += 1
                side = SIDE_BID if d["m"] else SIDE_ASK
                cols.add(ts, d["p"], d["q"], KIND_TRADE, side, 0, 0)
            elif stream.endswith("@bookTicker") or e == "bookTicker":
                recognised += 1
                st["book_tickers"] += 1
                if quotes:
                    cols.add(ts, d["b"], d["B"], KIND_QUOTE, SIDE_BID, 0, 0)
                    cols.add(ts, d["a"], d["A"], KIND_QUOTE, SIDE_ASK, 0, 0)
            else:
                st["other"] += 1
        except (KeyError, TypeError, ValueError) as exc:
            st["bad_lines"] += 1
            if st["bad_lines"] <= 5:
                log.warning("%s:%d: malformed message (%s), skipped", path.name, ln, exc)
    if recognised == 0:
        raise BinanceError(f"{path}: no Binance stream message found")
    st["diffs_dropped"] += len(pending)  # diffs never preceded by a snapshot
    inst = Instrument(symbol=symbol, tick_size=tick_size, tick_value=tick_value,
                      exchange="BINANCE-USDM", description=f"Binance USD-M perpetual {symbol}",
                      price_decimals=max(0, -int(np.floor(np.log10(tick_size) + 1e-9))))
    events = cols.to_array(tick_size)
    return Recording(instrument=inst, events=events,
                     source=f"Binance USD-M stream capture {path.name} (hftbacktest format)",
                     extra={"stats": st})
