"""Sierra Chart Intraday data files (``Data/<symbol>.scid``): vectorised reader and writer.

Layout (little endian; Sierra Chart "Intraday Data File Format", sierrachart.com
``doc/IntradayDataFileFormat.html``; confirmed on the real ``test.scid``; see
``shared/reference/market-data-formats.md`` section 2.1):

* header ``s_IntradayHeader``, 56 bytes, ``<4sIIHHI36s``: ``"SCID"``, HeaderSize (56),
  RecordSize (40), Version (1), Unused1, UTCStartIndex (0), 36 reserved bytes;
* records ``s_IntradayRecord``, 40 bytes (:data:`SCID_RECORD_DTYPE`): DateTime int64
  (``SCDateTimeMS``: microseconds since 1899-12-30 00:00 UTC), Open, High, Low, Close (float32),
  NumTrades, TotalVolume, BidVolume, AskVolume (uint32).

Record kinds
------------
* **Tick record**: ``Open == 0`` (``SINGLE_TRADE_WITH_BID_ASK``) or Open is one of the two
  unbundled-trade markers (:data:`FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE` = -1.99900095e+37,
  :data:`LAST_SUB_TRADE_OF_UNBUNDLED_TRADE` = -1.99900197e+37). Then High = ask, Low = bid,
  Close = trade price, TotalVolume = trade size. A tick record with TotalVolume 0 is a bid/ask
  update only.
* **Bar record**: any other Open (a real price): the record is an OHLC bar of the chart's period.

Events from tick records (:func:`scid_to_events`), per record in this order: a ``KIND_QUOTE`` bid
(Low) and ask (High) when ``quotes`` is set and the value is > 0, then the ``KIND_TRADE`` when
TotalVolume > 0. The trade side (the side traded against, :mod:`app.core.events`) is taken from
the volume fields Sierra Chart fills: AskVolume > BidVolume -> ``SIDE_ASK`` (the trade was at the
ask, buyer aggressor); BidVolume > AskVolume -> ``SIDE_BID``; a tie (both 0, or a bundled record
with both) falls back to price vs quote: Close >= High (ask) -> ``SIDE_ASK``, Close <= Low (bid) ->
``SIDE_BID``, else ``SIDE_UNSET``. (In ``test.scid`` the last trade at 4048.25 is below the
4048.50 bid and carries BidVolume 1: the volume fields win.)

Times: int64 microseconds since 1899-12-30 become ns since 1970 (``(us - 2,209,161,600,000,000)
* 1000``). Old files stored DateTime as float64 *days* since 1899-12-30; such a value read as
int64 is > 1e18 (any float64 >= 2.0), while microseconds up to year 9999 are < 3.2e17, so
:func:`sc_datetime_to_ns` tells the two apart per value. Prices are multiplied by the symbol's
real-time price multiplier (``price_multiplier``, default 1) before conversion to ticks.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.events import (
    EVENT_DTYPE,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_ASK,
    SIDE_BID,
    SIDE_UNSET,
    Instrument,
)

log = logging.getLogger(__name__)

SCID_MAGIC = b"SCID"
SCID_HEADER_SIZE = 56
SCID_RECORD_SIZE = 40
SCID_HEADER_STRUCT = struct.Struct("<4sIIHHI36s")

#: One ``s_IntradayRecord`` (40 bytes).
SCID_RECORD_DTYPE = np.dtype(
    [
        ("dt", "<i8"),  # SCDateTimeMS: microseconds since 1899-12-30 UTC
        ("open", "<f4"),
        ("high", "<f4"),  # tick record: ask
        ("low", "<f4"),  # tick record: bid
        ("close", "<f4"),  # tick record: trade price
        ("num_trades", "<u4"),
        ("total_volume", "<u4"),
        ("bid_volume", "<u4"),
        ("ask_volume", "<u4"),
    ]
)
assert SCID_RECORD_DTYPE.itemsize == SCID_RECORD_SIZE

#: Open value of the first sub-trade of an unbundled trade (Sierra ``IntradayRecord.h``).
FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE = np.float32(-1.99900095e37)
#: Open value of the last sub-trade of an unbundled trade.
LAST_SUB_TRADE_OF_UNBUNDLED_TRADE = np.float32(-1.99900197e37)

#: Microseconds from 1899-12-30 to 1970-01-01 (25,569 days).
SC_EPOCH_OFFSET_US = 25569 * 86_400 * 1_000_000
_FLOAT_DAYS_THRESHOLD = 10**18


class ScidError(ValueError):
    """A ``.scid`` file or buffer is not a valid Sierra Chart intraday file (message names the field)."""


@dataclass(frozen=True, slots=True)
class ScidHeader:
    """Decoded ``s_IntradayHeader``.

    Attributes
    ----------
    header_size, record_size : int
        Bytes (56 and 40 in every known file).
    version : int
    utc_start_index : int
    """

    header_size: int = SCID_HEADER_SIZE
    record_size: int = SCID_RECORD_SIZE
    version: int = 1
    utc_start_index: int = 0

    def to_bytes(self) -> bytes:
        """The 56-byte header."""
        return SCID_HEADER_STRUCT.pack(SCID_MAGIC, self.header_size, self.record_size,
                                       self.version, 0, self.utc_start_index, b"\x00" * 36)


def parse_scid_header(data: bytes, name: str = "<scid>") -> ScidHeader:
    """Decode and check the header at the start of ``data``.

    Raises
    ------
    ScidError
        When fewer than 56 bytes, the magic is not ``SCID``, HeaderSize < 56 or RecordSize != 40.
    """
    if len(data) < SCID_HEADER_SIZE:
        raise ScidError(f"{name}: header truncated ({len(data)} < {SCID_HEADER_SIZE} bytes)")
    magic, hsize, rsize, version, _u1, utc_idx, _res = SCID_HEADER_STRUCT.unpack_from(data, 0)
    if magic != SCID_MAGIC:
        raise ScidError(f"{name}: FileTypeUniqueHeaderID is {magic!r}, expected b'SCID'")
    if hsize < SCID_HEADER_SIZE:
        raise ScidError(f"{name}: HeaderSize {hsize} < {SCID_HEADER_SIZE}")
    if rsize != SCID_RECORD_SIZE:
        raise ScidError(f"{name}: RecordSize {rsize}, this reader knows only {SCID_RECORD_SIZE}")
    return ScidHeader(hsize, rsize, version, utc_idx)


def scid_records_from_bytes(data, offset: int = 0) -> np.ndarray:
    """View the whole 40-byte records of ``data[offset:]`` (a partial tail record is ignored).

    Returns
    -------
    np.ndarray
        1-D read-only view of :data:`SCID_RECORD_DTYPE` (no copy).
    """
    n = (len(data) - offset) // SCID_RECORD_SIZE
    return np.frombuffer(data, dtype=SCID_RECORD_DTYPE, count=max(n, 0), offset=offset)


def read_scid(path: str | os.PathLike, start: int = 0, count: int = -1) -> tuple[ScidHeader, np.ndarray]:
    """Read a ``.scid`` file: header and records ``start .. start+count`` (whole records only).

    Parameters
    ----------
    path : path-like
    start : int
        First record index (0-based). Negative counts from the end (``-100``: the last 100).
    count : int
        Records to read, -1 for all.

    Returns
    -------
    (ScidHeader, np.ndarray of SCID_RECORD_DTYPE)

    Raises
    ------
    FileNotFoundError, ScidError
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = parse_scid_header(f.read(SCID_HEADER_SIZE), str(path))
        size = os.fstat(f.fileno()).st_size
        total = max(0, (size - head.header_size) // SCID_RECORD_SIZE)
        if start < 0:
            start = max(0, total + start)
        start = min(start, total)
        n = total - start if count < 0 else min(count, total - start)
        f.seek(head.header_size + start * SCID_RECORD_SIZE)
        recs = np.fromfile(f, dtype=SCID_RECORD_DTYPE, count=n)
    return head, recs


def sc_datetime_to_ns(dt: np.ndarray) -> np.ndarray:
    """SCDateTime (int64 microseconds since 1899-12-30 UTC, or legacy float64 days) -> int64 ns UTC.

    Parameters
    ----------
    dt : np.ndarray of int64
        The raw 8-byte DateTime field.

    Returns
    -------
    np.ndarray of int64, ns since 1970-01-01 UTC.
    """
    dt = np.asarray(dt, dtype=np.int64)
    out = (dt - SC_EPOCH_OFFSET_US) * 1000
    legacy = dt > _FLOAT_DAYS_THRESHOLD
    if legacy.any():
        days = dt[legacy].view(np.float64)
        out[legacy] = np.rint((days - 25569.0) * 86_400e9).astype(np.int64)
    return out


def ns_to_sc_datetime(ns) -> np.ndarray:
    """int64 ns since 1970 UTC -> int64 SCDateTimeMS microseconds since 1899-12-30 (floor)."""
    return np.floor_divide(np.asarray(ns, dtype=np.int64), 1000) + SC_EPOCH_OFFSET_US


def tick_record_mask(records: np.ndarray) -> np.ndarray:
    """Boolean mask of tick records (Open 0 or one of the unbundled-trade markers)."""
    o = records["open"]
    return (o == 0) | (o == FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE) | (o == LAST_SUB_TRADE_OF_UNBUNDLED_TRADE)


def trade_sides(records: np.ndarray) -> np.ndarray:
    """Side traded against for tick records (uint8 ``SIDE_*``); rule in the module docstring."""
    bv = records["bid_volume"].astype(np.int64)
    av = records["ask_volume"].astype(np.int64)
    c, hi, lo = records["close"], records["high"], records["low"]
    side = np.full(len(records), SIDE_UNSET, dtype=np.uint8)
    side[(hi > 0) & (c >= hi)] = SIDE_ASK
    side[(lo > 0) & (c <= lo)] = SIDE_BID
    side[av > bv] = SIDE_ASK
    side[bv > av] = SIDE_BID
    return side


def scid_to_events(records: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0,
                   quotes: bool = True, *, size_multiplier: float = 1.0) -> np.ndarray:
    """Tick records -> events, one-pass numba kernel (bar records are skipped; use :func:`app.market.bars.scid_to_bars`).

    The plain-NumPy twin, :func:`app.feeds.sierra_kernels_ref.scid_to_events_numpy`, takes the
    same parameters and gives the same result; legacy float-days DateTime values are decoded by
    the twin.

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
        TotalVolume = size x size_multiplier; sizes are TotalVolume / it, contracts (1 for futures).

    Returns
    -------
    np.ndarray of EVENT_DTYPE
        Up to 3 events per tick record (bid quote, ask quote, trade), file order, ts ns UTC,
        prices in ticks.
    """
    from app.feeds.sierra_kernels import scid_kernel

    n = len(records)
    if n == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    if (records["dt"] > _FLOAT_DAYS_THRESHOLD).any():
        from app.feeds.sierra_kernels_ref import scid_to_events_numpy

        return scid_to_events_numpy(records, instrument, price_multiplier, quotes, size_multiplier=size_multiplier)
    out = np.zeros(3 * n, dtype=EVENT_DTYPE)
    m = scid_kernel(records["dt"], records["open"], records["high"], records["low"], records["close"],
                    records["total_volume"], records["bid_volume"], records["ask_volume"],
                    float(price_multiplier), float(instrument.tick_size), float(size_multiplier), bool(quotes),
                    FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE, LAST_SUB_TRADE_OF_UNBUNDLED_TRADE,
                    out["ts"], out["price"], out["size"], out["kind"], out["side"])
    return out[:m].copy() if m < len(out) // 2 else out[:m]


#: Largest price magnitude a record may hold (stored units); beyond it a record is damaged.
MAX_RECORD_PRICE = 1e9
#: Plausible record times: 1970-01-01 .. 2100-01-01 UTC, in SCDateTimeMS microseconds.
MIN_RECORD_US = SC_EPOCH_OFFSET_US
MAX_RECORD_US = SC_EPOCH_OFFSET_US + 4_102_444_800 * 1_000_000


def sc_datetime_ok(dt: np.ndarray) -> np.ndarray:
    """Mask of plausible SCDateTime values (1970..2100 UTC; int64 microseconds or legacy float days)."""
    dt = np.asarray(dt, dtype=np.int64)
    ok = (dt >= MIN_RECORD_US) & (dt < MAX_RECORD_US)
    legacy = dt > _FLOAT_DAYS_THRESHOLD
    if legacy.any():
        days = dt[legacy].view(np.float64)
        with np.errstate(invalid="ignore"):
            ok[legacy] = np.isfinite(days) & (days >= 25569.0) & (days < 73051.0)
    return ok


def check_scid_records(records: np.ndarray, name: str) -> None:
    """Refuse records that no Sierra Chart file holds (a damaged file, random bytes after a header).

    A record is valid when its DateTime is between 1970 and 2100 and its High, Low, Close (and
    Open of a bar record) are finite and at most :data:`MAX_RECORD_PRICE` in magnitude.

    Raises
    ------
    ScidError
        Names the file, the first bad record (1-based) and how many there are.
    """
    if not len(records):
        return
    bad_time = ~sc_datetime_ok(records["dt"])
    tick = tick_record_mask(records)
    with np.errstate(invalid="ignore", over="ignore"):
        px = [records[k].astype(np.float64) for k in ("high", "low", "close")]
        bad_px = np.zeros(len(records), dtype=bool)
        for v in px:
            bad_px |= ~np.isfinite(v) | (np.abs(v) > MAX_RECORD_PRICE)
        o = records["open"].astype(np.float64)
        bad_px |= ~tick & (~np.isfinite(o) | (np.abs(o) > MAX_RECORD_PRICE))
    bad = bad_time | bad_px
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = "its DateTime is not between 1970 and 2100" if bad_time[i] else "a price is not a finite price"
        raise ScidError(f"{name}: record {i + 1} of {len(records)} is not a Sierra Chart intraday record ({why}); "
                        f"{int(bad.sum())} such records: the file is damaged")


def read_scid_events(path, instrument: Instrument, price_multiplier: float = 1.0, quotes: bool = True, *,
                     size_multiplier: float = 1.0) -> np.ndarray:
    """:func:`read_scid` + :func:`check_scid_records` + :func:`scid_to_events` (whole file).

    A partial last record (a file Sierra Chart is still writing) is skipped with a warning that
    gives the records used and skipped.

    Raises
    ------
    FileNotFoundError
    ScidError
        A bad header, or a record that is not valid (:func:`check_scid_records`).
    """
    path = Path(path)
    head, recs = read_scid(path)
    rest = (path.stat().st_size - head.header_size) % SCID_RECORD_SIZE
    if rest:
        log.warning("%s: incomplete last record (%d of %d bytes; is Sierra Chart still writing the file?): "
                    "%d records used, 1 partial record skipped", path, rest, SCID_RECORD_SIZE, len(recs))
    check_scid_records(recs, str(path))
    return scid_to_events(recs, instrument, price_multiplier, quotes, size_multiplier=size_multiplier)


# ----------------------------------------------------------------------------------- writing


def events_to_scid_records(events: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0,
                           bid: np.ndarray | None = None, ask: np.ndarray | None = None, *,
                           size_multiplier: float = 1.0) -> np.ndarray:
    """Trades of ``events`` -> tick records (Open 0, High = ask, Low = bid, Close = price).

    Parameters
    ----------
    events : np.ndarray of EVENT_DTYPE
        Only ``KIND_TRADE`` events become records.
    instrument : Instrument
    price_multiplier : float
        Stored price = price / multiplier.
    bid, ask : np.ndarray of int64 ticks, optional, shape (number of trades,)
        Best bid/ask at each trade. Default: the last ``KIND_QUOTE`` of each side before the trade
        in ``events`` (0 = unknown: that field is then the trade price).
    size_multiplier : float
        TotalVolume = round(size x size_multiplier), at least 1 for a trade (1 for futures).

    Returns
    -------
    np.ndarray of SCID_RECORD_DTYPE
        NumTrades 1, TotalVolume = size (rounded), BidVolume/AskVolume = size on the side traded
        against. DateTime = ts floored to microseconds, made non-decreasing.
    """
    ev = np.asarray(events)
    is_trade = ev["kind"] == KIND_TRADE
    tr = ev[is_trade]
    n = len(tr)
    out = np.zeros(n, dtype=SCID_RECORD_DTYPE)
    if n == 0:
        return out
    if bid is None or ask is None:
        idx = np.arange(len(ev))
        tidx = idx[is_trade]
        res = []
        for side in (SIDE_BID, SIDE_ASK):
            q = (ev["kind"] == KIND_QUOTE) & (ev["side"] == side)
            last = np.maximum.accumulate(np.where(q, idx, -1))[tidx]
            px = np.where(last >= 0, ev["price"][np.maximum(last, 0)], 0)
            res.append(px)
        bid = res[0] if bid is None else bid
        ask = res[1] if ask is None else ask
    bid = np.asarray(bid, dtype=np.int64)
    ask = np.asarray(ask, dtype=np.int64)
    tick = instrument.tick_size / price_multiplier
    px = tr["price"]
    out["dt"] = np.maximum.accumulate(ns_to_sc_datetime(tr["ts"]))
    out["open"] = 0.0
    out["close"] = (px * tick).astype(np.float32)
    out["high"] = (np.where(ask > 0, ask, px) * tick).astype(np.float32)
    out["low"] = (np.where(bid > 0, bid, px) * tick).astype(np.float32)
    vol = np.maximum(np.rint(tr["size"] * np.float64(size_multiplier)), 1).astype(np.uint32)
    out["num_trades"] = 1
    out["total_volume"] = vol
    out["bid_volume"] = np.where(tr["side"] == SIDE_BID, vol, 0)
    out["ask_volume"] = np.where(tr["side"] == SIDE_ASK, vol, 0)
    return out


def best_bid_ask_at_trades(events: np.ndarray, state: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and ask (ticks, 0 = unknown) just before each trade of ``events``.

    Depth events build a price-level book (rules of :mod:`app.core.events`); when a source has
    no depth, the last ``KIND_QUOTE`` of each side is used. One pass over the events (a Python
    loop over depth events; the best level is recomputed only when a trade needs it and the book
    changed), for converters and the recorder, not for the live path.

    Parameters
    ----------
    events : np.ndarray of EVENT_DTYPE
    state : dict, optional
        Carries the book and last quotes from one call to the next (pass the same empty dict to
        successive batches of a stream).

    Returns
    -------
    (bid, ask) : two np.ndarray of int64, shape (number of trades,)
    """
    from app.core.events import KIND_DEPTH, OP_CLEAR, OP_SET

    if state is None:
        state = {}
    book = state.setdefault("book", {SIDE_BID: {}, SIDE_ASK: {}})
    quote = state.setdefault("quote", {SIDE_BID: 0, SIDE_ASK: 0})
    kinds = events["kind"].tolist()
    ntr = kinds.count(KIND_TRADE)
    bid = np.zeros(ntr, dtype=np.int64)
    ask = np.zeros(ntr, dtype=np.int64)
    sides, prices = events["side"].tolist(), events["price"].tolist()
    ops, sizes = events["op"].tolist(), events["size"].tolist()
    dirty = True
    best_b = best_a = 0
    k = 0
    for i, kind in enumerate(kinds):
        if kind == KIND_DEPTH:
            sd, op = sides[i], ops[i]
            if op == OP_CLEAR:
                for s_ in (SIDE_BID, SIDE_ASK):
                    if sd in (0, s_):
                        book[s_].clear()
            elif sd in book:
                if op == OP_SET and sizes[i] > 0:
                    book[sd][prices[i]] = sizes[i]
                else:
                    book[sd].pop(prices[i], None)
            dirty = True
        elif kind == KIND_QUOTE and sides[i] in quote:
            quote[sides[i]] = prices[i]
        elif kind == KIND_TRADE:
            if dirty:
                best_b = max(book[SIDE_BID]) if book[SIDE_BID] else 0
                best_a = min(book[SIDE_ASK]) if book[SIDE_ASK] else 0
                dirty = False
            bid[k] = best_b or quote[SIDE_BID]
            ask[k] = best_a or quote[SIDE_ASK]
            k += 1
    return bid, ask


class ScidWriter:
    """Append records to a ``.scid`` file (created with a standard header when new or empty).

    Every :meth:`append` writes whole records in one ``write`` and flushes, so a reader (Sierra
    Chart, :class:`app.feeds.follow.SierraFollower`) never sees a half header. A partial record
    left at the end of an existing file by a crash is cut off before appending.

    Parameters
    ----------
    path : path-like
    truncate : bool
        Start a new file even when one exists.
    size_multiplier : float
        Volumes stored as ``round(size * size_multiplier)`` (1 for futures).

    Raises
    ------
    ScidError
        If an existing file has a bad header.
    """

    def __init__(self, path: str | os.PathLike, truncate: bool = False, *, size_multiplier: float = 1.0):
        self.size_multiplier = float(size_multiplier)
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0 and not truncate
        self._f = open(self.path, "r+b" if exists else "wb")
        if exists:
            head = parse_scid_header(self._f.read(SCID_HEADER_SIZE), str(self.path))
            size = os.fstat(self._f.fileno()).st_size
            whole = head.header_size + (size - head.header_size) // SCID_RECORD_SIZE * SCID_RECORD_SIZE
            if whole != size:
                log.warning("%s: cutting a partial record (%d bytes) before appending", self.path, size - whole)
                self._f.truncate(whole)
            self._f.seek(whole)
        else:
            self._f.write(ScidHeader().to_bytes())
            self._f.flush()
        self.count = 0
        self._tob: dict = {}  # book/quote state for the bid/ask of appended trades

    def append(self, records: np.ndarray) -> None:
        """Append records (array of :data:`SCID_RECORD_DTYPE`)."""
        if records.dtype != SCID_RECORD_DTYPE:
            raise ValueError(f"records must have SCID_RECORD_DTYPE, got {records.dtype}")
        self._f.write(np.ascontiguousarray(records).tobytes())
        self._f.flush()
        self.count += len(records)

    def append_events(self, events: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0) -> int:
        """Append the trades of ``events`` as tick records; returns the number of records written.

        Bid/ask of each record come from the depth (or quotes) seen so far by this writer
        (:func:`best_bid_ask_at_trades` with state kept across calls).
        """
        bid, ask = best_bid_ask_at_trades(events, self._tob)
        recs = events_to_scid_records(events, instrument, price_multiplier, bid=bid, ask=ask,
                                      size_multiplier=self.size_multiplier)
        if len(recs):
            self.append(recs)
        return len(recs)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_scid(path: str | os.PathLike, records: np.ndarray) -> Path:
    """Write a complete ``.scid`` file (header + records), replacing any file at ``path``."""
    with ScidWriter(path, truncate=True) as w:
        w.append(records)
    return Path(path)
