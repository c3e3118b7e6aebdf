"""Binance stream recordings (hftbacktest capture format: USD-M, COIN-M, spot) -> MIA Elite events.

The files ``crypto/btcusdt_20240808.gz`` and ``crypto/ethusdt_20240808.gz`` (nkaz001/hftbacktest
``examples/usdm``) are gzip text, one message per line: ``<local_recv_ns> <raw JSON>``. Four kinds
of message occur:

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
* Prices are decimal strings in the quote currency; ticks = ``round(price / tick_size)``. Sizes
  are in the base asset (USD-M, spot: fractional units) or in contracts (COIN-M).

What the stream itself tells (nothing is assumed from the file name)
--------------------------------------------------------------------
* **Symbol**: the ``s`` field of every stream message (and the ``<symbol>@...`` stream name). A
  file with one symbol gives it; a file with several needs ``symbol``; a file with none (a REST
  snapshot only) cannot tell and the reader says so (:class:`BinanceError`, "pass --symbol").
* **Market** (payloads documented in Binance's "Websocket Market Streams" pages for spot, USD-M
  and COIN-M futures): COIN-M symbols carry a contract suffix (``BTCUSD_PERP``,
  ``ETHUSD_240927``) and their depth diffs a pair field ``ps``; USD-M depth diffs carry ``pu``
  (previous final update id) and the transaction time ``T``, its bookTicker an event type
  ``"e": "bookTicker"`` and its trades ``"X"`` (execution type); spot depth diffs have no ``pu``,
  spot bookTicker no ``e``, and spot trades an ``M`` field. Conflicting or absent evidence ->
  :class:`BinanceError` ("pass --market").
* **Tick size**: the greatest common divisor of the differences between every distinct price in
  the file (snapshot levels, diffs, trades, quotes), in units of the finest decimal written. A
  1000-level snapshot gives hundreds of consecutive levels, so the divisor is the exchange's
  ``PRICE_FILTER.tickSize`` (BTCUSDT 0.10, ETHUSDT 0.01). With fewer than
  :data:`MIN_PRICES_FOR_TICK` distinct prices the reader does not guess: it asks for
  ``--tick-size``. A tick size given is checked: a price off its grid is an error.
* **Tick value** (USD per tick per contract): linear markets (USD-M, spot) ``tick_size`` (1 unit
  of the base asset per contract, quote ~ USD); COIN-M contracts are inverse (their USD value per
  tick varies with the price), so the tick value is 0 (unknown) unless given.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from pathlib import Path

import msgspec
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
#: Fewest distinct prices from which the tick size is taken from the stream.
MIN_PRICES_FOR_TICK = 20
#: Markets, and the exchange names of their instruments.
MARKET_USDM, MARKET_COINM, MARKET_SPOT = "USD-M", "COIN-M", "spot"
EXCHANGES = {MARKET_USDM: "BINANCE-USDM", MARKET_COINM: "BINANCE-COINM", MARKET_SPOT: "BINANCE"}


_msgspec_decode = msgspec.json.decode


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
    """Column accumulator: prices and sizes per event, the other columns per run of events.

    A run (``_run``) is a stretch of events sharing time, kind, side, op and flags (a side of
    a depth message, one trade, one quote): those columns are stored once per run and
    expanded with ``np.repeat`` at the end, so a 1000-level snapshot costs two list extends
    instead of 2000 appends per column.
    """

    def __init__(self) -> None:
        self.price: list[str | float] = []
        self.size: list[str | float] = []
        self.run_ts: list[int] = []
        self.run_n: list[int] = []
        self.run_kind: list[int] = []
        self.run_side: list[int] = []
        self.run_op: list[int] = []
        self.run_flags: list[int] = []
        self.batch_end: list[int] = []  # indices of events that get FLAG_BATCH_END
        self.n = 0

    def _run(self, ts, n, kind, side, op, flags) -> None:
        self.run_ts.append(ts)
        self.run_n.append(n)
        self.run_kind.append(kind)
        self.run_side.append(side)
        self.run_op.append(op)
        self.run_flags.append(flags)
        self.n += n

    def add(self, ts, price, size, kind, side, op, flags) -> None:
        self.price.append(price)
        self.size.append(size)
        self._run(ts, 1, kind, side, op, flags)

    def end_batch(self) -> None:
        """Mark the last event added with FLAG_BATCH_END."""
        self.batch_end.append(self.n - 1)

    def levels(self, ts: int, bids, asks, flags: int) -> None:
        """Append one batch of level updates (bids, then asks); the last gets FLAG_BATCH_END.

        A side whose entries are not all pairs is taken entry by entry, so a malformed entry
        raises where a plain ``for p, q in levels`` loop would, after the entries before it.
        """
        n0 = self.n
        for side, levels in ((SIDE_BID, bids), (SIDE_ASK, asks)):
            k = len(levels) if isinstance(levels, list) else -1
            if k > 0 and _all_pairs(levels):
                ps, qs = zip(*levels)
                self.price.extend(ps)
                self.size.extend(qs)
                self._run(ts, k, KIND_DEPTH, side, OP_SET, flags)
            elif k != 0:
                for p, q in levels:
                    self.add(ts, p, q, KIND_DEPTH, side, OP_SET, flags)
        if self.n > n0:
            self.end_batch()

    def to_array(self, tick_size: float) -> np.ndarray:
        n = self.n
        out = np.zeros(n, dtype=EVENT_DTYPE)
        if n == 0:
            return out
        counts = np.asarray(self.run_n, dtype=np.int64)
        ts = np.repeat(np.asarray(self.run_ts, dtype=np.int64), counts)
        out["ts"] = np.maximum.accumulate(ts)
        px = np.asarray(self.price, dtype=np.float64)  # decimal strings parse here, vectorised
        out["price"] = np.rint(px / tick_size).astype(np.int64)
        out["size"] = np.asarray(self.size, dtype=np.float64)
        out["kind"] = np.repeat(np.asarray(self.run_kind, dtype=np.uint8), counts)
        out["side"] = np.repeat(np.asarray(self.run_side, dtype=np.uint8), counts)
        op = np.repeat(np.asarray(self.run_op, dtype=np.uint8), counts)
        # absolute quantity 0 in a diff removes the level
        op[(op == OP_SET) & (out["size"] == 0.0)] = OP_DELETE
        out["op"] = op
        flags = np.repeat(np.asarray(self.run_flags, dtype=np.uint8), counts)
        flags[np.asarray(self.batch_end, dtype=np.int64)] |= FLAG_BATCH_END
        out["flags"] = flags
        return out


def _all_pairs(levels: list) -> bool:
    """Whether every entry of ``levels`` has two items, so ``zip(*levels)`` gives exactly what
    ``for p, q in levels`` would (JSON entries: arrays, or objects/strings of two keys/chars,
    which unpack the same way); False for anything else, including entries without a length."""
    try:
        return set(map(len, levels)) == {2}
    except TypeError:
        return False


def _loads(text: str):
    """One JSON document: msgspec's decoder, and the standard library's for what msgspec refuses
    (``NaN``, numbers beyond 64 bits, lone surrogates), so the result is always ``json.loads``'s.

    Raises
    ------
    ValueError
        Not JSON (``json.JSONDecodeError``).
    """
    try:
        return _msgspec_decode(text)
    except msgspec.MsgspecError:
        return json.loads(text)


def _open_lines(path: Path) -> list[str]:
    """The file's text lines (gzip or plain).

    Raises
    ------
    BinanceError
        A truncated or corrupt gzip stream, or text that is not UTF-8 (names the file).
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise BinanceError(f"{path}: truncated gzip file (the compressed stream ends early)") from None
        except (OSError, zlib.error) as exc:
            raise BinanceError(f"{path}: corrupt gzip file ({exc})") from None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BinanceError(f"{path}: not a text capture (byte {exc.start} is not UTF-8)") from None


def _stream_symbol(msg: dict) -> str | None:
    """Upper-case symbol of a stream message (``data.s``, else the stream name), or None."""
    d = msg.get("data", msg)
    if isinstance(d, dict) and isinstance(d.get("s"), str):
        return d["s"].upper()
    stream = msg.get("stream")
    if isinstance(stream, str) and "@" in stream:
        return stream.split("@", 1)[0].upper()
    return None


def _market_evidence(msg: dict, sym: str | None) -> str | None:
    """The market one message shows (module docstring), or None when it shows none."""
    if sym and "_" in sym:
        return MARKET_COINM
    if "lastUpdateId" in msg and "bids" in msg:
        return MARKET_USDM if "T" in msg else MARKET_SPOT  # futures REST depth carries E and T
    d = msg.get("data", msg)
    if not isinstance(d, dict):
        return None
    e = d.get("e")
    if e == "depthUpdate":
        if "ps" in d:
            return MARKET_COINM
        return MARKET_USDM if "pu" in d else MARKET_SPOT
    if e == "trade":
        if "X" in d:
            return MARKET_USDM
        if "M" in d:
            return MARKET_SPOT
        return None
    if e == "bookTicker":
        return MARKET_USDM  # spot bookTicker has no event type
    if e is None and {"u", "s", "b", "B", "a", "A"} <= d.keys():
        return MARKET_SPOT
    return None


def _decimals(text: str) -> int:
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _tick_from_prices(prices: list[str]) -> tuple[float | None, int]:
    """Tick size as the GCD of the differences of the distinct prices (module docstring).

    Returns (tick or None when fewer than :data:`MIN_PRICES_FOR_TICK` distinct prices, count).
    """
    uniq = sorted(set(prices))
    if not uniq:
        return None, 0
    dec = max(_decimals(p) for p in uniq)
    ints = np.unique(np.rint(np.asarray(uniq, dtype=np.float64) * 10.0 ** dec).astype(np.int64))
    if len(ints) < MIN_PRICES_FOR_TICK:
        return None, len(ints)
    g = int(np.gcd.reduce(np.diff(ints)))
    return round(g / 10.0 ** dec, dec), len(ints)


def _first_column(levels) -> list:
    """The prices of a list of ``[price, qty]`` entries (as ``[p for p, _q in levels]``, which
    it falls back to, with its errors, when an entry is not a two-item list)."""
    if isinstance(levels, list) and levels and _all_pairs(levels):
        return list(next(zip(*levels)))
    return [p for p, _q in levels]


def _price_strings(msg: dict) -> list[str]:
    out: list[str] = []
    if "lastUpdateId" in msg and "bids" in msg:
        out.extend(_first_column(msg.get("bids", ())))
        out.extend(_first_column(msg.get("asks", ())))
        return out
    d = msg.get("data", msg)
    if not isinstance(d, dict):
        return out
    e = d.get("e")
    if e == "depthUpdate":
        out.extend(_first_column(d.get("b", ())))
        out.extend(_first_column(d.get("a", ())))
    elif e == "trade" and "p" in d:
        out.append(d["p"])
    elif "b" in d and "a" in d and isinstance(d["b"], str):
        out.extend((d["b"], d["a"]))
    return [p for p in out if isinstance(p, str)]


def read_binance_gz(
    path: str | os.PathLike,
    symbol: str | None = None,
    tick_size: float | None = None,
    tick_value: float | None = None,
    quotes: bool = True,
    market: str | None = None,
) -> Recording:
    """Read an hftbacktest Binance capture (``<recv_ns> <json>`` lines, gzip or plain).

    Symbol, market and tick size come from the stream itself unless given (module docstring);
    when the stream cannot tell one of them, :class:`BinanceError` says which option to pass.

    Parameters
    ----------
    path : path-like
        The ``.gz`` file (plain text also accepted).
    symbol : str, optional
        Symbol to read (messages of other symbols are counted in ``stats['other_symbols']``
        and reported); required when the file holds several symbols or none.
    tick_size : float, optional
        Price increment in the quote currency; default: from the prices of the stream. A given
        one is checked against every price.
    tick_value : float, optional
        USD per tick per contract; default ``tick_size`` for USD-M and spot, 0 (unknown) for
        COIN-M (inverse contracts).
    quotes : bool
        Emit ``KIND_QUOTE`` events from ``bookTicker`` messages.
    market : str, optional
        ``"USD-M"``, ``"COIN-M"`` or ``"spot"``; default: from the stream.

    Returns
    -------
    Recording
        ``events``: 1-D :data:`EVENT_DTYPE` array, ts non-decreasing (ns UTC), prices in ticks,
        sizes in base units (COIN-M: contracts). ``extra["stats"]`` holds counters: ``lines``,
        ``snapshots``, ``diffs``, ``diffs_applied``, ``diffs_dropped`` (``u < lastUpdateId``
        or before any snapshot), ``sequence_gaps``, ``trades``, ``book_tickers``,
        ``bad_lines``, ``other``, ``other_symbols``; ``extra["market"]`` the market,
        ``extra["tick_from"]`` ``"stream"`` or ``"given"``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    BinanceError
        No line is a Binance message; a truncated or corrupt gzip; the symbol, market or tick
        size cannot be told from the stream (the message names the option to pass); a given
        symbol absent from the file; a price off the given tick size's grid. The message
        names the file.
    """
    path = Path(path)
    lines = _open_lines(path)
    st = dict(lines=len(lines), snapshots=0, diffs=0, diffs_applied=0, diffs_dropped=0,
              sequence_gaps=0, trades=0, book_tickers=0, bad_lines=0, other=0, other_symbols=0)
    parsed: list[tuple[int, int, dict, str | None]] = []  # line number, recv ns, message, its symbol
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            head, js = line.split(" ", 1)
            ts = int(head)
            msg = _loads(js)
            if not isinstance(msg, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            st["bad_lines"] += 1
            if st["bad_lines"] <= 5:
                log.warning("%s:%d: not '<recv_ns> <json>', skipped", path.name, ln)
            continue
        parsed.append((ln, ts, msg, _stream_symbol(msg)))

    # ---- what the stream tells: symbol, market, tick size
    counts: dict[str, int] = {}
    for _ln, _ts, _msg, sym in parsed:
        if sym:
            counts[sym] = counts.get(sym, 0) + 1
    if symbol:
        want = symbol.upper()
        if counts and want not in counts:
            raise BinanceError(f"{path}: no message for symbol {symbol!r}; the stream holds "
                               + ", ".join(f"{k} ({v:,} messages)" for k, v in counts.items()))
    elif len(counts) == 1:
        want = next(iter(counts))
    elif counts:
        raise BinanceError(f"{path}: the stream holds several symbols ("
                           + ", ".join(f"{k} ({v:,})" for k, v in counts.items()) + "); pass --symbol")
    elif any("lastUpdateId" in m for _l, _t, m, _s in parsed):
        raise BinanceError(f"{path}: only a REST depth snapshot, which names no symbol; pass --symbol "
                           "(and --tick-size if it has few levels)")
    else:
        raise BinanceError(f"{path}: no Binance stream message found")
    if len(counts) > 1 and any("lastUpdateId" in m for _l, _t, m, _s in parsed):
        raise BinanceError(f"{path}: several symbols (" + ", ".join(counts) + ") and REST depth snapshots, "
                           "which name no symbol: which book a snapshot is cannot be told; split the capture "
                           "per symbol")
    mine = [(ln, ts, m, sym) for ln, ts, m, sym in parsed if sym is None or sym == want]
    st["other_symbols"] = len(parsed) - len(mine)
    if st["other_symbols"]:
        log.warning("%s: %d messages of other symbols than %s skipped (%s)", path.name, st["other_symbols"], want,
                    ", ".join(k for k in counts if k != want))
    missing: list[tuple[str, str]] = []  # (what the stream cannot tell, the option to pass)
    if market is None:
        seen = {ev for ev in (_market_evidence(m, sym or want) for _l, _t, m, sym in mine) if ev}
        if len(seen) == 1:
            market = seen.pop()
        else:
            why = "no message shows it" if not seen else f"the messages disagree: {', '.join(sorted(seen))}"
            missing.append((f"the market ({MARKET_USDM}, {MARKET_COINM} or {MARKET_SPOT}: {why})", "--market"))
    elif market not in EXCHANGES:
        raise BinanceError(f"{path}: unknown market {market!r} (known: {', '.join(EXCHANGES)})")
    prices = [p for _l, _t, m, _s in mine for p in _price_strings(m)]
    tick_from = "given"
    if tick_size is None or tick_size <= 0:
        tick_size, n_prices = _tick_from_prices(prices)
        tick_from = "stream"
        if tick_size is None or tick_size <= 0:
            missing.append((f"the tick size (only {n_prices} distinct prices, {MIN_PRICES_FOR_TICK} needed)",
                            "--tick-size"))
    if missing:
        raise BinanceError(f"{path}: the stream of {want} cannot tell " + " nor ".join(w for w, _o in missing)
                           + "; pass " + " and ".join(o for _w, o in missing))
    if tick_from == "given":
        tick_size = float(tick_size)
        if prices:
            px = np.unique(np.asarray(prices, dtype=np.float64))
            off = np.abs(px / tick_size - np.rint(px / tick_size)) > 1e-6
            if off.any():
                raise BinanceError(f"{path}: price {px[off][0]:g} of {want} is not a multiple of the tick size "
                                   f"{tick_size:g} given ({int(off.sum())} such prices)")
    if tick_value is None:
        tick_value = 0.0 if market == MARKET_COINM else tick_size

    # ---- events
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
        elif "pu" in d and int(d["pu"]) != last_u:
            st["sequence_gaps"] += 1
            log.warning("%s: depth sequence gap: pu=%s, previous u=%s", path.name, d.get("pu"), last_u)
        elif "pu" not in d and int(d["U"]) != last_u + 1:  # spot: U = previous u + 1
            st["sequence_gaps"] += 1
            log.warning("%s: depth sequence gap: U=%s, previous u=%s", path.name, d.get("U"), last_u)
        last_u = u
        st["diffs_applied"] += 1
        cols.levels(ts, d.get("b", ()), d.get("a", ()), 0)

    for ln, ts, msg, _sym in mine:
        try:
            if "lastUpdateId" in msg and "bids" in msg:
                recognised += 1
                st["snapshots"] += 1
                snap_id = int(msg["lastUpdateId"])
                last_u = None
                cols.add(ts, 0.0, 0.0, KIND_DEPTH, 0, OP_CLEAR, FLAG_SNAPSHOT)
                cols.levels(ts, msg["bids"], msg["asks"], FLAG_SNAPSHOT)
                if not msg["bids"] and not msg["asks"]:
                    cols.end_batch()
                for pts, d in pending:
                    apply_diff(max(pts, ts), d)
                pending.clear()
                continue
            stream = msg.get("stream", "")
            d = msg.get("data", msg)
            if not isinstance(d, dict):
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
            elif stream.endswith("@bookTicker") or e == "bookTicker" or (e is None and "B" in d and "A" in d):
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
    kind = "futures" if market != MARKET_SPOT else "spot"
    inst = Instrument(symbol=want, tick_size=tick_size, tick_value=float(tick_value),
                      exchange=EXCHANGES[market], description=f"Binance {market} {kind} {want}"
                      if market != MARKET_SPOT else f"Binance spot {want}",
                      price_decimals=max(0, -int(np.floor(np.log10(tick_size) + 1e-9))))
    try:
        events = cols.to_array(tick_size)
    except ValueError as exc:  # a price or size that is not a number
        raise BinanceError(f"{path}: a price or size of {want} is not a number ({exc})") from None
    return Recording(instrument=inst, events=events,
                     source=f"Binance {market} stream capture {path.name} (hftbacktest format)",
                     extra={"stats": st, "market": market, "tick_from": tick_from})
