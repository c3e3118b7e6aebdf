"""Sierra Chart market depth files (``Data/MarketDepthData/<symbol>.<YYYY-MM-DD>.depth``).

Layout (little endian; Sierra Chart "Market Depth Data File Format", sierrachart.com
``doc/MarketDepthDataFileFormat.html``; ``shared/reference/market-data-formats.md`` 2.1):

* header ``s_MarketDepthFileHeader``, 64 bytes, ``<IIII48s``: FileTypeUniqueHeaderID
  0x44444353 (bytes ``"SCDD"``), HeaderSize (64), RecordSize (24), Version (1), 48 reserved bytes.
  At least 16 bytes (``MINIMAL_HEADER_SIZE``) identify the file;
* records ``s_MarketDepthFileRecord``, 24 bytes (:data:`DEPTH_RECORD_DTYPE`): DateTime int64
  (microseconds since 1899-12-30 UTC), Command uint8, Flags uint8 (0x01 = end of batch),
  NumOrders uint16, Price float32, Quantity uint32, Reserved uint32.

Commands -> events (:func:`depth_records_to_events`):

========================= ===================================================
``COMMAND_CLEAR_BOOK`` 1  ``OP_CLEAR`` side 0 (the whole book; a snapshot follows)
``ADD_BID_LEVEL`` 2       ``OP_SET`` bid (a price-level book: add and modify both
``MODIFY_BID_LEVEL`` 4    insert-or-update the level at Price with Quantity)
``ADD_ASK_LEVEL`` 3       ``OP_SET`` ask
``MODIFY_ASK_LEVEL`` 5
``DELETE_BID_LEVEL`` 6    ``OP_DELETE`` bid
``DELETE_ASK_LEVEL`` 7    ``OP_DELETE`` ask
``NO_COMMAND`` 0, others  dropped and counted; an end-of-batch flag on a dropped record moves
                          to the last kept event before it
========================= ===================================================

An add/modify with Quantity 0 becomes ``OP_DELETE`` (a level with no size is no level).
``FLAG_END_OF_BATCH`` becomes ``FLAG_BATCH_END``; every event of a batch that contains a clear gets
``FLAG_SNAPSHOT`` (Sierra's "Identifying Full Market Depth Data Snapshot": clear, all bid levels,
all ask levels, end of batch). Several batches may share one timestamp: file order is kept.
Prices are multiplied by the real-time price multiplier, then rounded to ticks.

Writing (:class:`DepthWriter`) is the inverse: ``OP_CLEAR`` side 0 -> CLEAR_BOOK, ``OP_SET`` ->
ADD when the level is new since the last clear, else MODIFY, ``OP_DELETE`` -> DELETE (of a level
that exists; a delete of an unknown level is still written). A one-side clear (side 1/2) has no
Sierra command: it is written as DELETE of every known level of that side.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.feeds.scid import ns_to_sc_datetime

log = logging.getLogger(__name__)

DEPTH_MAGIC = 0x44444353  # b"SCDD"
DEPTH_HEADER_SIZE = 64
DEPTH_RECORD_SIZE = 24
MINIMAL_HEADER_SIZE = 16
DEPTH_HEADER_STRUCT = struct.Struct("<IIII48s")

NO_COMMAND = 0
COMMAND_CLEAR_BOOK = 1
ADD_BID_LEVEL = 2
ADD_ASK_LEVEL = 3
MODIFY_BID_LEVEL = 4
MODIFY_ASK_LEVEL = 5
DELETE_BID_LEVEL = 6
DELETE_ASK_LEVEL = 7
FLAG_END_OF_BATCH = 0x01

#: One ``s_MarketDepthFileRecord`` (24 bytes).
DEPTH_RECORD_DTYPE = np.dtype(
    [
        ("dt", "<i8"),  # microseconds since 1899-12-30 UTC
        ("command", "u1"),
        ("flags", "u1"),
        ("num_orders", "<u2"),
        ("price", "<f4"),
        ("quantity", "<u4"),
        ("reserved", "<u4"),
    ]
)
assert DEPTH_RECORD_DTYPE.itemsize == DEPTH_RECORD_SIZE

class DepthFileError(ValueError):
    """A ``.depth`` file or buffer is not a valid Sierra Chart market depth file."""


@dataclass(frozen=True, slots=True)
class DepthHeader:
    """Decoded ``s_MarketDepthFileHeader`` (sizes in bytes)."""

    header_size: int = DEPTH_HEADER_SIZE
    record_size: int = DEPTH_RECORD_SIZE
    version: int = 1

    def to_bytes(self) -> bytes:
        """The 64-byte header."""
        return DEPTH_HEADER_STRUCT.pack(DEPTH_MAGIC, self.header_size, self.record_size,
                                        self.version, b"\x00" * 48)


def parse_depth_header(data: bytes, name: str = "<depth>") -> DepthHeader:
    """Decode and check a depth header.

    Raises
    ------
    DepthFileError
        Fewer than 16 bytes, wrong FileTypeUniqueHeaderID, HeaderSize < 16 or RecordSize != 24.
    """
    if len(data) < MINIMAL_HEADER_SIZE:
        raise DepthFileError(f"{name}: header truncated ({len(data)} < {MINIMAL_HEADER_SIZE} bytes)")
    magic, hsize, rsize, version = struct.unpack_from("<IIII", data, 0)
    if magic != DEPTH_MAGIC:
        raise DepthFileError(f"{name}: FileTypeUniqueHeaderID 0x{magic:08x}, expected 0x{DEPTH_MAGIC:08x} ('SCDD')")
    if hsize < MINIMAL_HEADER_SIZE:
        raise DepthFileError(f"{name}: HeaderSize {hsize} < {MINIMAL_HEADER_SIZE}")
    if rsize != DEPTH_RECORD_SIZE:
        raise DepthFileError(f"{name}: RecordSize {rsize}, this reader knows only {DEPTH_RECORD_SIZE}")
    return DepthHeader(hsize, rsize, version)


def depth_records_from_bytes(data, offset: int = 0) -> np.ndarray:
    """View the whole 24-byte records of ``data[offset:]`` (partial tail ignored; no copy)."""
    n = (len(data) - offset) // DEPTH_RECORD_SIZE
    return np.frombuffer(data, dtype=DEPTH_RECORD_DTYPE, count=max(n, 0), offset=offset)


def read_depth(path: str | os.PathLike) -> tuple[DepthHeader, np.ndarray]:
    """Read a ``.depth`` file: header and every whole record.

    Returns
    -------
    (DepthHeader, np.ndarray of DEPTH_RECORD_DTYPE, shape (n,))

    Raises
    ------
    FileNotFoundError, DepthFileError
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = parse_depth_header(f.read(DEPTH_HEADER_SIZE), str(path))
        size = os.fstat(f.fileno()).st_size
        n = max(0, (size - head.header_size) // DEPTH_RECORD_SIZE)
        f.seek(head.header_size)
        recs = np.fromfile(f, dtype=DEPTH_RECORD_DTYPE, count=n)
    rest = (size - head.header_size) % DEPTH_RECORD_SIZE if size > head.header_size else 0
    if rest:
        log.warning("%s: incomplete last record (%d of %d bytes; is Sierra Chart still writing the file?): "
                    "%d records used, 1 partial record skipped", path, rest, DEPTH_RECORD_SIZE, n)
    return head, recs


def check_depth_records(records: np.ndarray, name: str) -> None:
    """Refuse records that no Sierra Chart depth file holds (a damaged file, random bytes).

    A record is valid when its DateTime is between 1970 and 2100, its Command is 0..7, its Flags
    only the end-of-batch bit, and its Price finite and at most
    :data:`app.feeds.scid.MAX_RECORD_PRICE` in magnitude.

    Raises
    ------
    DepthFileError
        Names the file, the first bad record (1-based) and how many there are.
    """
    from app.feeds.scid import MAX_RECORD_PRICE, sc_datetime_ok

    if not len(records):
        return
    bad_time = ~sc_datetime_ok(records["dt"])
    bad_cmd = (records["command"] > DELETE_ASK_LEVEL) | ((records["flags"] & ~np.uint8(FLAG_END_OF_BATCH)) != 0)
    with np.errstate(invalid="ignore", over="ignore"):
        p = records["price"].astype(np.float64)
        bad_px = ~np.isfinite(p) | (np.abs(p) > MAX_RECORD_PRICE)
    bad = bad_time | bad_cmd | bad_px
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = ("its DateTime is not between 1970 and 2100" if bad_time[i] else
               f"unknown command {int(records['command'][i])} or flags {int(records['flags'][i]):#x}" if bad_cmd[i]
               else "its price is not a finite price")
        raise DepthFileError(f"{name}: record {i + 1} of {len(records)} is not a market depth record ({why}); "
                             f"{int(bad.sum())} such records: the file is damaged")


@dataclass
class DepthStats:
    """Counters of :func:`depth_records_to_events` (records)."""

    records: int = 0
    dropped: int = 0  # NO_COMMAND or unknown command
    zero_quantity_sets: int = 0
    extra: dict = field(default_factory=dict)


def depth_records_to_events(records: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0,
                            stats: DepthStats | None = None, *, size_multiplier: float = 1.0) -> np.ndarray:
    """Depth records -> depth events (one-pass numba kernel; rules in the module docstring).

    The plain-NumPy twin, :func:`app.feeds.sierra_kernels_ref.depth_records_to_events_numpy`,
    takes the same parameters and gives the same result (the tests hold both to the rules).
    Files with legacy float-days DateTime values are decoded by the twin.

    Parameters
    ----------
    records : np.ndarray of DEPTH_RECORD_DTYPE, shape (n,)
    instrument : Instrument
        Tick size for the price -> ticks conversion.
    price_multiplier : float
        Sierra's real-time price multiplier (stored * multiplier = price).
    stats : DepthStats, optional
        Updated in place (records, dropped, zero-quantity sets).
    size_multiplier : float
        Stored Quantity = size x size_multiplier (whole numbers); sizes are Quantity / it, in
        contracts (1 for futures; e.g. 1000 for BTC sizes with 0.001 steps).

    Returns
    -------
    np.ndarray of EVENT_DTYPE, shape (m,), m <= n, file order (ts ns UTC, price ticks).
    """
    from app.feeds.scid import _FLOAT_DAYS_THRESHOLD
    from app.feeds.sierra_kernels import depth_kernel

    n = len(records)
    if n == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    if (records["dt"] > _FLOAT_DAYS_THRESHOLD).any():
        from app.feeds.sierra_kernels_ref import depth_records_to_events_numpy

        return depth_records_to_events_numpy(records, instrument, price_multiplier, stats,
                                             size_multiplier=size_multiplier)
    out = np.zeros(n, dtype=EVENT_DTYPE)
    m, dropped, zero_sets = depth_kernel(
        records["dt"], records["command"], records["flags"], records["num_orders"], records["price"],
        records["quantity"], float(price_multiplier), float(instrument.tick_size), float(size_multiplier),
        out["ts"], out["price"], out["size"], out["num_orders"], out["kind"], out["side"], out["op"], out["flags"])
    if stats is not None:
        stats.records += n
        stats.dropped += int(dropped)
        stats.zero_quantity_sets += int(zero_sets)
    return out if m == n else out[:m]


def read_depth_events(path, instrument: Instrument, price_multiplier: float = 1.0, *,
                      size_multiplier: float = 1.0) -> np.ndarray:
    """:func:`read_depth` + :func:`check_depth_records` + :func:`depth_records_to_events` for one file.

    Raises
    ------
    FileNotFoundError
    DepthFileError
        A bad header, or a record that is not valid (:func:`check_depth_records`).
    """
    recs = read_depth(path)[1]
    check_depth_records(recs, str(path))
    return depth_records_to_events(recs, instrument, price_multiplier, size_multiplier=size_multiplier)


def depth_file_name(symbol: str, day: _dt.date) -> str:
    """``<symbol>.<YYYY-MM-DD>.depth`` (Sierra's per-symbol, per-UTC-day file name)."""
    return f"{symbol}.{day.isoformat()}.depth"


def depth_file_date(path: str | os.PathLike, symbol: str) -> _dt.date | None:
    """Date of a ``<symbol>.<YYYY-MM-DD>.depth`` file name, or None if it does not match."""
    name = Path(path).name
    prefix = symbol + "."
    if not (name.lower().startswith(prefix.lower()) and name.lower().endswith(".depth")):
        return None
    mid = name[len(prefix):-len(".depth")]
    try:
        return _dt.date.fromisoformat(mid)
    except ValueError:
        return None


def utc_day(ns: int) -> _dt.date:
    """UTC calendar day of a ns timestamp."""
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc).date()


# ----------------------------------------------------------------------------------- writing


class _LevelEncoder:
    """Events -> depth records, keeping the set of known levels (ADD vs MODIFY)."""

    def __init__(self, size_multiplier: float = 1.0) -> None:
        self.known = {SIDE_BID: set(), SIDE_ASK: set()}
        self.size_multiplier = float(size_multiplier)
        self.clamped = 0  # sizes > 0 that rounded to quantity 0 (stored as 1)

    def _qty(self, size: float) -> int:
        q = int(round(size * self.size_multiplier))
        if q <= 0:
            self.clamped += 1
            if self.clamped == 1:
                log.warning("depth size %g x size multiplier %g rounds to 0; stored as 1 (use a larger "
                            "size multiplier for fractional sizes)", size, self.size_multiplier)
            return 1
        return min(q, 2**32 - 1)

    def encode(self, events: np.ndarray, instrument: Instrument, price_multiplier: float) -> np.ndarray:
        ev = events[events["kind"] == KIND_DEPTH]
        rows: list[tuple] = []
        tick = instrument.tick_size / price_multiplier
        dts = ns_to_sc_datetime(ev["ts"]).tolist()
        ops, sides, prices = ev["op"].tolist(), ev["side"].tolist(), ev["price"].tolist()
        sizes, norders, flags = ev["size"].tolist(), ev["num_orders"].tolist(), ev["flags"].tolist()
        known = self.known
        for i in range(len(ops)):
            op, sd, p = ops[i], sides[i], prices[i]
            fl = FLAG_END_OF_BATCH if flags[i] & FLAG_BATCH_END else 0
            if op == OP_CLEAR:
                if sd in (SIDE_BID, SIDE_ASK):
                    lv = sorted(known[sd])
                    cmd = DELETE_BID_LEVEL if sd == SIDE_BID else DELETE_ASK_LEVEL
                    for j, q in enumerate(lv):
                        rows.append((dts[i], cmd, fl if j == len(lv) - 1 else 0, 0, q * tick, 0))
                    if not lv and fl and rows:
                        rows[-1] = rows[-1][:2] + (rows[-1][2] | fl,) + rows[-1][3:]
                    known[sd].clear()
                else:
                    known[SIDE_BID].clear()
                    known[SIDE_ASK].clear()
                    rows.append((dts[i], COMMAND_CLEAR_BOOK, fl, 0, 0.0, 0))
                continue
            if sd not in (SIDE_BID, SIDE_ASK):
                continue
            lv = known[sd]
            if op == OP_SET and sizes[i] > 0:
                if p in lv:
                    cmd = MODIFY_BID_LEVEL if sd == SIDE_BID else MODIFY_ASK_LEVEL
                else:
                    cmd = ADD_BID_LEVEL if sd == SIDE_BID else ADD_ASK_LEVEL
                    lv.add(p)
                rows.append((dts[i], cmd, fl, min(norders[i], 65535), p * tick, self._qty(sizes[i])))
            elif op in (OP_SET, OP_DELETE):
                lv.discard(p)
                cmd = DELETE_BID_LEVEL if sd == SIDE_BID else DELETE_ASK_LEVEL
                rows.append((dts[i], cmd, fl, 0, p * tick, 0))
        out = np.zeros(len(rows), dtype=DEPTH_RECORD_DTYPE)
        if rows:
            cols = list(zip(*rows))
            out["dt"] = np.maximum.accumulate(np.asarray(cols[0], dtype=np.int64))
            out["command"] = cols[1]
            out["flags"] = cols[2]
            out["num_orders"] = cols[3]
            out["price"] = np.asarray(cols[4], dtype=np.float64).astype(np.float32)
            out["quantity"] = np.asarray(cols[5], dtype=np.int64).clip(0, 2**32 - 1)
        return out


class DepthWriter:
    """Append depth records to one ``.depth`` file (header written when the file is new/empty).

    Quantities are stored as ``round(size * size_multiplier)`` (uint32; a size > 0 that rounds
    to 0 is stored as 1 and counted in ``clamped``).

    Each :meth:`append` is one ``write`` of whole records, flushed: a follower sees whole batches
    as soon as they are written (batch boundaries via the end-of-batch flag).

    Parameters
    ----------
    path : path-like
    truncate : bool
        Start a new file even when one exists.
    size_multiplier : float
        See above (1 for futures).
    """

    def __init__(self, path: str | os.PathLike, truncate: bool = False, *, size_multiplier: float = 1.0):
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0 and not truncate
        self._f = open(self.path, "r+b" if exists else "wb")
        if exists:
            head = parse_depth_header(self._f.read(DEPTH_HEADER_SIZE), str(self.path))
            size = os.fstat(self._f.fileno()).st_size
            whole = head.header_size + (size - head.header_size) // DEPTH_RECORD_SIZE * DEPTH_RECORD_SIZE
            if whole != size:
                log.warning("%s: cutting a partial record before appending", self.path)
                self._f.truncate(whole)
            self._f.seek(whole)
        else:
            self._f.write(DepthHeader().to_bytes())
            self._f.flush()
        self._enc = _LevelEncoder(size_multiplier)
        self.count = 0

    @property
    def clamped(self) -> int:
        """Sizes > 0 stored as quantity 1 because they rounded to 0."""
        return self._enc.clamped

    def append_records(self, records: np.ndarray) -> None:
        """Append raw records (array of :data:`DEPTH_RECORD_DTYPE`)."""
        if records.dtype != DEPTH_RECORD_DTYPE:
            raise ValueError(f"records must have DEPTH_RECORD_DTYPE, got {records.dtype}")
        self._f.write(np.ascontiguousarray(records).tobytes())
        self._f.flush()
        self.count += len(records)

    def append_events(self, events: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0) -> int:
        """Encode the depth events of ``events`` and append them; returns records written."""
        recs = self._enc.encode(events, instrument, price_multiplier)
        if len(recs):
            self.append_records(recs)
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


def events_to_depth_records(events: np.ndarray, instrument: Instrument, price_multiplier: float = 1.0, *,
                            size_multiplier: float = 1.0) -> np.ndarray:
    """Depth events -> depth records for a fresh file (rules in the module docstring)."""
    return _LevelEncoder(size_multiplier).encode(events, instrument, price_multiplier)


def write_depth(path: str | os.PathLike, records: np.ndarray) -> Path:
    """Write a complete ``.depth`` file (header + records), replacing any file at ``path``."""
    with DepthWriter(path, truncate=True) as w:
        w.append_records(records)
    return Path(path)


class DepthDayWriter:
    """Write depth events into Sierra's per-UTC-day files ``<dir>/<symbol>.<date>.depth``.

    A new file starts at the first batch whose first event falls on a new UTC day (a batch is never
    split across files). The new day's file begins with a full snapshot batch (CLEAR_BOOK + every
    level) built from the levels this writer knows, as Sierra Chart starts its day files with a
    snapshot, so each file can be read on its own.

    Parameters
    ----------
    folder : path-like
        The ``MarketDepthData`` folder (created if missing).
    symbol : str
    instrument : Instrument
    price_multiplier : float
    """

    def __init__(self, folder, symbol: str, instrument: Instrument, price_multiplier: float = 1.0, *,
                 size_multiplier: float = 1.0):
        self.size_multiplier = size_multiplier
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.symbol = symbol
        self.instrument = instrument
        self.mult = price_multiplier
        self._w: DepthWriter | None = None
        self._day: _dt.date | None = None
        self._book = {SIDE_BID: {}, SIDE_ASK: {}}  # tick -> (size, orders)
        self.files: list[Path] = []
        self._pending_start = True  # at a batch start

    def _track(self, ev: np.ndarray) -> None:
        for op, sd, p, s, no in zip(ev["op"].tolist(), ev["side"].tolist(), ev["price"].tolist(),
                                    ev["size"].tolist(), ev["num_orders"].tolist()):
            if op == OP_CLEAR:
                for k in (SIDE_BID, SIDE_ASK):
                    if sd in (0, k):
                        self._book[k].clear()
            elif sd in (SIDE_BID, SIDE_ASK):
                if op == OP_SET and s > 0:
                    self._book[sd][p] = (s, no)
                else:
                    self._book[sd].pop(p, None)

    def _open_day(self, day: _dt.date, ts: int) -> None:
        if self._w is not None:
            self._w.close()
        path = self.folder / depth_file_name(self.symbol, day)
        self._w = DepthWriter(path, truncate=True, size_multiplier=self.size_multiplier)
        self._day = day
        self.files.append(path)
        if self._book[SIDE_BID] or self._book[SIDE_ASK]:
            bids = sorted(self._book[SIDE_BID].items(), reverse=True)
            asks = sorted(self._book[SIDE_ASK].items())
            n = 1 + len(bids) + len(asks)
            snap = np.zeros(n, dtype=EVENT_DTYPE)
            snap["ts"] = ts
            snap["kind"] = KIND_DEPTH
            snap["op"][0] = OP_CLEAR
            snap["op"][1:] = OP_SET
            snap["side"][1:1 + len(bids)] = SIDE_BID
            snap["side"][1 + len(bids):] = SIDE_ASK
            lv = bids + asks
            snap["price"][1:] = [k for k, _ in lv]
            snap["size"][1:] = [v[0] for _, v in lv]
            snap["num_orders"][1:] = [v[1] for _, v in lv]
            snap["flags"] = FLAG_SNAPSHOT
            snap["flags"][-1] |= FLAG_BATCH_END
            self._w.append_events(snap, self.instrument, self.mult)

    def append_events(self, events: np.ndarray) -> int:
        """Append the depth events of ``events`` (may hold several batches); returns records written."""
        ev = events[events["kind"] == KIND_DEPTH]
        if not len(ev):
            return 0
        ends = np.flatnonzero(ev["flags"] & FLAG_BATCH_END)
        cuts = np.concatenate(([0], ends + 1))
        if cuts[-1] != len(ev):
            cuts = np.append(cuts, len(ev))
        written = 0
        for a, b in zip(cuts[:-1], cuts[1:]):
            chunk = ev[a:b]
            if self._pending_start:
                day = utc_day(int(chunk["ts"][0]))
                if day != self._day:
                    self._open_day(day, int(chunk["ts"][0]))
            written += self._w.append_events(chunk, self.instrument, self.mult)
            self._track(chunk)
            self._pending_start = bool(chunk["flags"][-1] & FLAG_BATCH_END)
        return written

    def close(self) -> None:
        """Close the current file."""
        if self._w is not None:
            self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
