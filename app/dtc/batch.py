"""The batch path: runs of DTC depth/trade messages <-> :data:`~app.core.events.EVENT_DTYPE` arrays.

Decoding (:func:`decode_events`): the depth updates (106, 140, 141) and trades (107, 112, 137,
142, 146) are decoded by one numba pass straight from the bytes (:func:`_decode_fast`: frame
header, fields at their offsets, checks and conversions, one event written per frame). From the
first frame it leaves (a snapshot level, which inserts a clear event, or a value that breaks a
rule below, which must be reported) the column path takes the rest of the run: a small numba
kernel walks the frame headers, one numpy fancy index (or a zero-copy ``np.frombuffer`` view
when the run is one type at its native size) gathers each type's fixed-size records, and whole
columns are converted at once. Both give the same events; no Python object per message.

Encoding (:func:`encode_depth_batch`, :func:`encode_trade_batch`) fills a structured array with
the binary layout of the chosen message type and returns its bytes (binary), or formats the
JSON text of all rows in one pass (JSON, compact JSON).

Normalisation rules (one place; :func:`message_to_events` is the per-message reference the
tests compare the batch path with):

==============================  ===========================================================
DTC                             event
==============================  ===========================================================
106 / 140 / 141 depth update    ``kind=KIND_DEPTH``, ``op = UpdateType`` (1 set, 2 delete),
                                ``side = Side``; ``FLAG_BATCH_END`` when the message ends a
                                batch: always for 106 (no batch field), for 140/141 when
                                ``FinalUpdateInBatch`` is 1 (TRUE) or 0 (UNSET: the server
                                does not batch).
122 / 145 snapshot level        ``op=OP_SET``, ``FLAG_SNAPSHOT``; the first message of a
                                snapshot (122 ``IsFirstMessageInBatch``; 145
                                ``FinalUpdateInBatch == BEGIN_BATCH``) is preceded by an
                                ``OP_CLEAR`` event (``side=0``: the whole book); the last one
                                (122 ``IsLastMessageInBatch``; 145 ``FINAL_UPDATE_TRUE``)
                                carries ``FLAG_BATCH_END``. A level with ``Side`` 0 is empty
                                (Sierra's empty book is one 122 with both flags and no level):
                                it yields no level event; if it ends the batch and no clear
                                event carries the end flag, an ``OP_NONE`` event with
                                ``FLAG_BATCH_END`` does.
107 / 112 / 137 / 142 / 146     ``kind=KIND_TRADE``, ``side = AtBidOrAsk`` (2 = buyer
trades                          aggressor), ``size = Volume``.
==============================  ===========================================================

Prices: ``price_ticks = rint(price / tick_size)``; a price that is unset (DBL_MAX/FLT_MAX) or
not finite makes the frame malformed (below).

Malformed values (:func:`message_problem`; :class:`MarketStreamDecoder` counts each such frame
as a decode error with its reason and gives no event for it, so it never reaches a book or a
file): a SymbolID without a tick size (not subscribed); a depth update's Side other than 1/2 or
UpdateType other than 1/2; a snapshot level's Side other than 0/1/2; FinalUpdateInBatch above 3
(140/141/145); AtBidOrAsk other than 0/1/2; a price (of a used level) that is not finite or
whose ``|price / tick|`` reaches 9e15 (DBL_MAX included); a size that is negative or not
finite. Frames shorter than their required fields are refused by
:class:`app.dtc.codec.Decoder` (:data:`app.dtc.codec.REQUIRED_SIZE`). Times to int64 ns UTC: double seconds (106, 107, 122, 137) are
rounded to whole microseconds first (a double holds UNIX seconds to ~0.2 us); 140 ms x 1e6;
112 s x 1e9; 146 us x 1e3; messages without a timestamp (141, 142, 145) take
``recv_ts_ns``.

Market clock (:class:`MarketStreamDecoder` with ``market_clock=True``, what the DTC client
uses): an event is *untimed* when its message has no timestamp (141, 142, 145) or a zero one
(DTC leaves an unknown DateTime at 0; e.g. a 122 snapshot of a book that has not traded yet).
Untimed events are stamped with the last market time seen on the same stream (one connection)
for the same SymbolID, i.e. the ``ts`` of the latest timed depth or trade event before them in
arrival order (the wall clock would make a replay's market time jump to today). A
MARKET_DATA_SNAPSHOT (104) gives a SymbolID without a market time yet its first one (the later
of LastTradeDateTime and MarketDepthUpdateDateTime, when set). Before any
market time of that SymbolID is seen, its untimed events are held back (at most ``hold_s``
seconds of the decoder's monotonic clock and ``hold_max`` events) and released stamped with the first market time
that arrives; only when the hold runs out are they stamped with the wall clock (the time of
release), and from then on that SymbolID's untimed events take the wall clock (``recv_ts_ns``)
until a market time is seen.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Mapping

import numpy as np

from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType
from app.core import events as ev
from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.jit import kernel, unaligned_load

log = logging.getLogger(__name__)

T = MessageType

DEPTH_TYPES = (
    int(T.MARKET_DEPTH_UPDATE_LEVEL),
    int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS),
    int(T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP),
    int(T.MARKET_DEPTH_SNAPSHOT_LEVEL),
    int(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT),
)
TRADE_TYPES = (
    int(T.MARKET_DATA_UPDATE_TRADE),
    int(T.MARKET_DATA_UPDATE_TRADE_COMPACT),
    int(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR),
    int(T.MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP),
    int(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2),
)
#: message types the batch path handles
BATCH_TYPES = frozenset(DEPTH_TYPES + TRADE_TYPES)

_NP = {"B": "u1", "b": "i1", "H": "<u2", "h": "<i2", "I": "<u4", "i": "<i4", "Q": "<u8", "q": "<i8",
       "f": "<f4", "d": "<f8"}


def record_dtype(msg_type: int) -> np.dtype:
    """Numpy structured dtype with the exact binary layout of ``msg_type`` (Size/Type included).

    String fields are omitted (their bytes are covered by ``itemsize``).
    """
    spec = M.MESSAGE_CLASSES[int(msg_type)].SPEC
    names, formats, offsets = ["Size", "Type"], ["<u2", "<u2"], [0, 2]
    for f in spec.fields:
        if f.kind == "str":
            continue
        names.append(f.name)
        formats.append(_NP[f.code])
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": spec.size})


_REC = {t: record_dtype(t) for t in BATCH_TYPES}
#: minimum Size of each batchable type (shorter, older messages go the per-message path)
_NEED = np.zeros(65536, dtype=np.uint16)
for _t in BATCH_TYPES:
    _NEED[_t] = _REC[_t].itemsize


@kernel
def _scan(buf, start, stop, need, offs, types):  # pragma: no cover - compiled
    """Walk frame headers from ``start``; stop at the first frame that is incomplete, not
    batchable or shorter than its type's record. Returns (n_frames, end_offset)."""
    off = start
    n = 0
    cap = offs.shape[0]
    while off + 4 <= stop and n < cap:
        size = np.int64(buf[off]) | (np.int64(buf[off + 1]) << 8)
        typ = np.int64(buf[off + 2]) | (np.int64(buf[off + 3]) << 8)
        if size < 4 or off + size > stop:
            break
        nd = need[typ]
        if nd == 0 or size < nd:
            break
        offs[n] = off
        types[n] = typ
        n += 1
        off += size
    return n, off


def scan_run(data, start: int = 0, max_frames: int | None = None):
    """Frame offsets and types of the batchable run at the head of ``data[start:]``.

    Returns
    -------
    offsets : ndarray of int64, shape (n,)
        Byte offset of each frame in ``data``.
    types : ndarray of uint16, shape (n,)
    end : int
        Offset just past the last frame of the run.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    stop = buf.shape[0]
    cap = max_frames if max_frames is not None else max(1, (stop - start) // 19 + 1)
    offs = np.empty(cap, dtype=np.int64)
    types = np.empty(cap, dtype=np.uint16)
    n, end = _scan(buf, start, stop, _NEED, offs, types)
    return offs[:n], types[:n], int(end)


# --------------------------------------------------------------------------------------------
# One-pass decode (numba): the runs of depth updates and trades, straight from the bytes
# --------------------------------------------------------------------------------------------

_T106, _T140, _T141 = (int(T.MARKET_DEPTH_UPDATE_LEVEL), int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS),
                       int(T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP))
_T107, _T112, _T137, _T142, _T146 = (int(T.MARKET_DATA_UPDATE_TRADE), int(T.MARKET_DATA_UPDATE_TRADE_COMPACT),
                                     int(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR),
                                     int(T.MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP),
                                     int(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2))
#: types the one-pass kernel decodes (the snapshot levels 122/145, which insert clear events,
#: go the column path)
_FAST = np.zeros(65536, dtype=np.uint8)
for _t in (_T106, _T140, _T141, _T107, _T112, _T137, _T142, _T146):
    _FAST[_t] = 1
#: the shortest record among them (bytes): bounds the frames a buffer can hold
_FAST_MIN = min(int(_NEED[_t]) for _t in np.flatnonzero(_FAST))
# the offsets the kernel reads, from the message layouts (checked against them at import)
for _t, _fields in (
    (_T106, {"SymbolID": 4, "Side": 8, "Price": 16, "Quantity": 24, "UpdateType": 32, "DateTime": 40, "NumOrders": 48}),
    (_T140, {"SymbolID": 4, "DateTime": 8, "Price": 16, "Quantity": 20, "Side": 24, "UpdateType": 25,
             "NumOrders": 26, "FinalUpdateInBatch": 28}),
    (_T141, {"SymbolID": 4, "Price": 8, "Quantity": 12, "NumOrders": 16, "Side": 18, "UpdateType": 19,
             "FinalUpdateInBatch": 20}),
    (_T107, {"SymbolID": 4, "AtBidOrAsk": 8, "Price": 16, "Volume": 24, "DateTime": 32}),
    (_T112, {"Price": 4, "Volume": 8, "DateTime": 12, "SymbolID": 16, "AtBidOrAsk": 20}),
    (_T137, {"SymbolID": 4, "AtBidOrAsk": 8, "Price": 16, "Volume": 24, "DateTime": 32}),
    (_T142, {"SymbolID": 4, "Price": 8, "Volume": 12, "AtBidOrAsk": 16}),
    (_T146, {"SymbolID": 4, "Price": 8, "Volume": 12, "DateTime": 16, "AtBidOrAsk": 24}),
):
    for _name, _off in _fields.items():
        assert _REC[_t].fields[_name][1] == _off, (_t, _name)


# one unaligned machine load per field (the frames are packed: fields sit at any alignment)
_ld_u16 = unaligned_load("uint16")
_ld_u32 = unaligned_load("uint32")
_ld_i64 = unaligned_load("int64")
_ld_f32 = unaligned_load("float32")
_ld_f64 = unaligned_load("float64")


@kernel
def _sec_ns_scalar(x):  # pragma: no cover - compiled
    """Double seconds -> ns, rounded to whole microseconds (the column path's rule)."""
    us = np.rint(x * 1e6)
    if np.isfinite(us) and abs(us) < 9.0e15:
        return np.int64(us) * 1000
    return np.int64(0)


@kernel
def _decode_fast(buf, start, stop, need, fast, tk_keys, tk_vals, tk_default, recv_ts_ns, out):  # pragma: no cover
    """Decode the run at ``buf[start:stop]`` in one pass (types of ``fast``, clean values).

    ``out`` (EVENT_DTYPE) receives the events. Returns ``(events, n_frames, end, status)``
    (``events``: the filled head of ``out``): ``status`` 0 when the run itself ended at ``end``
    (incomplete frame, a type outside the batch path, a frame shorter than its record, as
    :func:`_scan`), 1 when the kernel stopped at a frame it leaves to the column path (a
    snapshot level or a value that breaks a rule), 2 when ``out`` is full (call again from
    ``end``).
    """
    last_sid = np.int64(-1)
    tk = tk_default
    off = start
    nk = tk_keys.shape[0]
    i = 0
    status = 0
    while off + 4 <= stop:
        if i == out.shape[0]:
            status = 2
            break
        size = np.int64(_ld_u16(buf, off))
        typ = np.int64(_ld_u16(buf, off + 2))
        if size < 4 or off + size > stop:
            break
        nd = need[typ]
        if nd == 0 or size < nd:
            break
        if fast[typ] == 0:
            status = 1
            break
        if typ == _T112:
            sid = np.int64(_ld_u32(buf, off + 16))
        else:
            sid = np.int64(_ld_u32(buf, off + 4))
        if sid != last_sid:
            last_sid = sid
            if nk:
                j = np.searchsorted(tk_keys, sid)
                tk = tk_vals[j] if j < nk and tk_keys[j] == sid else np.nan
        depth = typ == _T106 or typ == _T140 or typ == _T141
        nord = np.int64(0)
        flags = 0
        if typ == _T106:
            side = np.int64(_ld_u16(buf, off + 8))
            price = _ld_f64(buf, off + 16)
            qty = _ld_f64(buf, off + 24)
            op = np.int64(buf[off + 32])
            ts = _sec_ns_scalar(_ld_f64(buf, off + 40))
            nord = np.int64(_ld_u32(buf, off + 48))
            flags = ev.FLAG_BATCH_END
            fin = 0
        elif typ == _T140:
            ts = _ld_i64(buf, off + 8) * 1_000_000
            price = np.float64(_ld_f32(buf, off + 16))
            qty = np.float64(_ld_f32(buf, off + 20))
            side = np.int64(buf[off + 24])
            op = np.int64(buf[off + 25])
            nord = np.int64(_ld_u16(buf, off + 26))
            fin = np.int64(buf[off + 28])
        elif typ == _T141:
            ts = recv_ts_ns
            price = np.float64(_ld_f32(buf, off + 8))
            qty = np.float64(_ld_f32(buf, off + 12))
            nord = np.int64(_ld_u16(buf, off + 16))
            side = np.int64(np.int8(buf[off + 18]))
            op = np.int64(np.int8(buf[off + 19]))
            fin = np.int64(buf[off + 20])
        else:
            op = 0
            fin = 0
            if typ == _T107:
                side = np.int64(_ld_u16(buf, off + 8))
                price = _ld_f64(buf, off + 16)
                qty = _ld_f64(buf, off + 24)
                ts = _sec_ns_scalar(_ld_f64(buf, off + 32))
            elif typ == _T112:
                price = np.float64(_ld_f32(buf, off + 4))
                qty = np.float64(_ld_f32(buf, off + 8))
                ts = np.int64(_ld_u32(buf, off + 12)) * 1_000_000_000
                side = np.int64(_ld_u16(buf, off + 20))
            elif typ == _T137:
                side = np.int64(buf[off + 8])
                price = _ld_f64(buf, off + 16)
                qty = np.float64(_ld_u32(buf, off + 24))
                ts = _sec_ns_scalar(_ld_f64(buf, off + 32))
            elif typ == _T142:
                price = np.float64(_ld_f32(buf, off + 8))
                qty = np.float64(_ld_u32(buf, off + 12))
                side = np.int64(buf[off + 16])
                ts = recv_ts_ns
            else:  # 146
                price = np.float64(_ld_f32(buf, off + 8))
                qty = np.float64(_ld_u32(buf, off + 12))
                ts = _ld_i64(buf, off + 16) * 1000
                side = np.int64(buf[off + 24])
        # the rules (module docstring, "Malformed values"); a frame that breaks one is left
        # to the column path, which reports it
        q = price / tk
        clean = tk > 0 and np.isfinite(q) and abs(q) < 9.0e15 and abs(price) < 3.0e38
        clean = clean and np.isfinite(qty) and qty >= 0
        if depth:
            clean = clean and (side == 1 or side == 2) and (op == 1 or op == 2) and fin <= 3
            if typ != _T106 and (fin == 0 or fin == 1):
                flags = ev.FLAG_BATCH_END
        else:
            clean = clean and side >= 0 and side <= 2
        if not clean:
            status = 1
            break
        e = out[i]
        e.ts = ts
        e.price = np.int64(np.rint(q))
        e.size = qty
        e.num_orders = nord
        e.kind = ev.KIND_DEPTH if depth else ev.KIND_TRADE
        e.side = side
        e.op = op
        e.flags = flags
        e.symbol_id = sid
        e._pad = 0
        off += size
        i += 1
    return out[:i], i, off, status


def _ld_size(buf, pos: int) -> int:
    """The Size field (u16 little endian) of the frame at ``buf[pos]``."""
    return int(buf[pos]) | (int(buf[pos + 1]) << 8)


def _tick_table(tick_size):
    """(keys, values, default) of the kernel's tick lookup: sorted SymbolIDs and their tick
    sizes (a mapping), or no keys and the one tick size."""
    if isinstance(tick_size, Mapping):
        items = sorted((int(k), float(v) if v else np.nan) for k, v in tick_size.items())
        keys = np.array([k for k, _ in items], dtype=np.int64)
        vals = np.array([v for _, v in items], dtype=np.float64)
        return keys, vals, np.nan
    try:
        t = float(tick_size)
    except (TypeError, ValueError):
        t = np.nan
    # not > 0: every frame is left to the column path, which raises (as it always did)
    return _NO_KEYS, _NO_VALS, t if t > 0 else np.nan


_NO_KEYS = np.zeros(0, dtype=np.int64)
_NO_VALS = np.zeros(0, dtype=np.float64)

def _tick_array(tick_size, symbol_ids: np.ndarray) -> np.ndarray | float:
    if isinstance(tick_size, Mapping):
        out = np.full(symbol_ids.shape[0], np.nan)
        for sid in np.unique(symbol_ids):
            t = tick_size.get(int(sid))
            if t:
                out[symbol_ids == sid] = float(t)
        return out
    t = float(tick_size)
    if not t > 0:
        raise ValueError(f"tick_size must be > 0, got {tick_size!r}")
    return t


def _to_ticks(price, tick):
    p = np.asarray(price, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = p / tick
        ok = np.isfinite(q) & (np.abs(p) < 3.0e38) & (np.abs(q) < 9.0e15)
        ticks = np.where(ok, np.rint(np.where(ok, q, 0.0)), 0.0).astype(np.int64)
    return ticks, ok


def _sec_to_ns(x):
    with np.errstate(invalid="ignore", over="ignore"):
        us = np.rint(np.asarray(x, dtype=np.float64) * 1e6)
        us = np.where(np.isfinite(us) & (np.abs(us) < 9.0e15), us, 0.0)
    return us.astype(np.int64) * 1000


_UPDATE_TYPES = (int(T.MARKET_DEPTH_UPDATE_LEVEL), int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS),
                 int(T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP))
_FINAL_TYPES = (int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS), int(T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP),
                int(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT))


def _problems(t: int, r: np.ndarray, tk) -> tuple[np.ndarray, list]:
    """Records of ``r`` (one market message type) whose values cannot be used, and per rule
    broken ``(count, reason of its first record)`` (a record counts once, under the first rule
    it breaks; ``[]`` when none). The rules (module docstring, "Malformed values"): a
    SymbolID without a tick size (not subscribed), a Side / UpdateType / FinalUpdateInBatch /
    AtBidOrAsk outside its enum, a price that is not finite or beyond the int64 tick range, a
    negative or non-finite size. An empty snapshot level (Side 0) is no problem."""
    n = r.shape[0]
    tka = np.broadcast_to(np.asarray(tk, dtype=np.float64), (n,))
    checks = [(~(tka > 0), "SymbolID {sid} is not subscribed (no tick size)")]
    depth = t in DEPTH_TYPES
    if depth:
        side = r["Side"].astype(np.int64)
        qty = r["Quantity"].astype(np.float64)
        if t in _UPDATE_TYPES:
            used = np.ones(n, dtype=bool)
            checks.append(((side < 1) | (side > 2), "Side {Side} is not 1 (bid) or 2 (ask)"))
            op = r["UpdateType"]
            checks.append(((op < 1) | (op > 2), "UpdateType {UpdateType} is not 1 (insert/update) or 2 (delete)"))
        else:
            used = side != 0  # Side 0: an empty level (an empty book's snapshot)
            checks.append(((side < 0) | (side > 2), "Side {Side} is not 0, 1 (bid) or 2 (ask)"))
        if t in _FINAL_TYPES:
            checks.append((r["FinalUpdateInBatch"].astype(np.int64) > 3,
                           "FinalUpdateInBatch {FinalUpdateInBatch} is not 0..3"))
    else:
        used = np.ones(n, dtype=bool)
        qty = r["Volume"].astype(np.float64)
        checks.append((r["AtBidOrAsk"].astype(np.int64) > 2, "AtBidOrAsk {AtBidOrAsk} is not 0, 1 or 2"))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        p = r["Price"].astype(np.float64)
        q = p / np.where(tka > 0, tka, 1.0)
        price_bad = ~(np.isfinite(q) & (np.abs(q) < 9.0e15))
        checks.append((used & price_bad, "Price {Price!r} is not a price in ticks"))
        checks.append((used & ~(np.isfinite(qty) & (qty >= 0)), "size {size!r} is not a non-negative number"))
    bad = np.zeros(n, dtype=bool)
    found = []
    for m, text in checks:
        m = m & ~bad
        if not m.any():
            continue
        bad |= m
        i = int(np.argmax(m))
        vals = {name: r[name][i].item() for name in r.dtype.names}
        vals["sid"] = int(r["SymbolID"][i])
        vals["size"] = float(qty[i])
        found.append((int(m.sum()), f"{M.MESSAGE_CLASSES[t].__name__} ({t}) SymbolID {vals['sid']}: "
                      + text.format(**vals)))
    return bad, found


def _convert(t: int, r: np.ndarray, tick, recv_ts_ns: int, problems: list | None = None):
    """Columns of the events of records ``r`` (one message type).

    Returns (events, valid, clear_before): events has one row per record. Records with
    unusable values (:func:`_problems`) are not valid and, with ``problems`` given, appended
    to it as ``(count, reason of the first)``.
    """
    n = r.shape[0]
    out = np.zeros(n, dtype=ev.EVENT_DTYPE)
    clear = None
    sid = r["SymbolID"].astype(np.uint32)
    tk = _tick_array(tick, sid)
    bad, found = _problems(t, r, tk)
    if found and problems is not None:
        problems.extend(found)
    out["symbol_id"] = sid
    if t in DEPTH_TYPES:
        out["kind"] = ev.KIND_DEPTH
        price, ok = _to_ticks(r["Price"], tk)
        out["price"] = price
        out["size"] = r["Quantity"]
        side = r["Side"].astype(np.int64)
        out["side"] = np.where((side >= 0) & (side <= 2), side, 0)
        out["num_orders"] = r["NumOrders"]
        if t == T.MARKET_DEPTH_UPDATE_LEVEL:
            out["ts"] = _sec_to_ns(r["DateTime"])
            out["op"] = r["UpdateType"]
            out["flags"] = ev.FLAG_BATCH_END
        elif t in (T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS, T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP):
            if t == T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS:
                out["ts"] = r["DateTime"].astype(np.int64) * 1_000_000
            else:
                out["ts"] = recv_ts_ns
            out["op"] = np.clip(r["UpdateType"].astype(np.int64), 0, 255)
            fin = r["FinalUpdateInBatch"]
            out["flags"] = np.where((fin == 0) | (fin == 1), ev.FLAG_BATCH_END, 0)
        else:  # snapshots
            out["op"] = ev.OP_SET
            if t == T.MARKET_DEPTH_SNAPSHOT_LEVEL:
                out["ts"] = _sec_to_ns(r["DateTime"])
                clear = r["IsFirstMessageInBatch"] != 0
                last = r["IsLastMessageInBatch"] != 0
            else:
                out["ts"] = recv_ts_ns
                fin = r["FinalUpdateInBatch"]
                clear = fin == M.FinalUpdateInBatch.FINAL_UPDATE_BEGIN_BATCH
                last = fin == M.FinalUpdateInBatch.FINAL_UPDATE_TRUE
            out["flags"] = ev.FLAG_SNAPSHOT | np.where(last, ev.FLAG_BATCH_END, 0)
            ok = ok & (out["side"] != 0)
            # an empty level that ends the batch without a clear to carry the flag: OP_NONE event
            marker = last & ~ok & ~clear
            out["op"][marker] = ev.OP_NONE
            out["side"][marker] = 0
            out["price"][marker] = 0
            out["size"][marker] = 0.0
            ok = ok | marker
        # unknown ops are dropped
        ok = ok & (out["op"] <= ev.OP_DELETE)
        if bad.any():
            ok &= ~bad
            if clear is not None:
                clear = clear & ~bad
    else:
        out["kind"] = ev.KIND_TRADE
        price, ok = _to_ticks(r["Price"], tk)
        out["price"] = price
        out["size"] = r["Volume"]
        side = r["AtBidOrAsk"].astype(np.int64)
        out["side"] = np.where((side >= 0) & (side <= 2), side, 0)
        if t in (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR):
            out["ts"] = _sec_to_ns(r["DateTime"])
        elif t == T.MARKET_DATA_UPDATE_TRADE_COMPACT:
            out["ts"] = r["DateTime"].astype(np.int64) * 1_000_000_000
        elif t == T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2:
            out["ts"] = r["DateTime"].astype(np.int64) * 1000
        else:
            out["ts"] = recv_ts_ns
        ok &= ~bad
    if clear is None:
        clear = np.zeros(n, dtype=bool)
    return out, ok, clear


def _assemble(parts, n_frames):
    """Merge per-type conversions back into arrival order, inserting clear events."""
    counts = np.zeros(n_frames, dtype=np.int64)
    for idx, out, ok, clear in parts:
        counts[idx] = ok.astype(np.int64) + clear
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    res = np.zeros(total, dtype=ev.EVENT_DTYPE)
    for idx, out, ok, clear in parts:
        st = starts[idx]
        if clear.any():
            c = np.zeros(int(clear.sum()), dtype=ev.EVENT_DTYPE)
            src = out[clear]
            c["ts"] = src["ts"]
            c["symbol_id"] = src["symbol_id"]
            c["kind"] = ev.KIND_DEPTH
            c["op"] = ev.OP_CLEAR
            # the clear carries the end flag when the level itself is empty (empty book)
            c["flags"] = ev.FLAG_SNAPSHOT | np.where(~ok[clear], src["flags"] & ev.FLAG_BATCH_END, 0)
            res[st[clear]] = c
        res[st[ok] + clear[ok]] = out[ok]
    return res


def decode_events(data, tick_size, *, start: int = 0, recv_ts_ns: int = 0):
    """Decode the run of binary depth/trade messages at the head of ``data[start:]``.

    Parameters
    ----------
    data : bytes-like
        Binary DTC stream (frames with Size/Type headers).
    tick_size : float or Mapping[int, float]
        Price increment (price units per tick), one for all, or per SymbolID (events of a
        SymbolID missing from the mapping are dropped).
    start : int
        Byte offset to start at.
    recv_ts_ns : int
        Time stamp (ns UTC) for messages without one (141, 142, 145).

    Returns
    -------
    events : ndarray of EVENT_DTYPE, shape (m,)
        In arrival order (see the module docstring for the rules).
    end : int
        Offset just past the last decoded frame. ``end == start`` when the first frame is
        incomplete, not a batch type, or shorter than its record; decode it the other way.
    """
    events, end, _n = decode_run(data, tick_size, start=start, recv_ts_ns=recv_ts_ns)
    return events, end


def decode_run(data, tick_size, *, start: int = 0, recv_ts_ns: int = 0, problems: list | None = None,
               one_pass: bool = True):
    """As :func:`decode_events`, also returning the number of frames decoded: (events, end, n).

    ``problems``, when given, receives ``(count, reason)`` per message type and rule broken, for
    frames whose values cannot be used (module docstring, "Malformed values"); those frames give no
    event.

    With ``one_pass`` (default) the numba kernel :func:`_decode_fast` decodes the depth updates
    and trades straight from the bytes, one pass, and hands the rest of the run to the column
    path from the first frame it leaves (a snapshot level, a value that breaks a rule);
    ``one_pass=False`` runs the column path alone (the tests' reference; same results).
    """
    if not one_pass:
        return _decode_run_columns(data, tick_size, start=start, recv_ts_ns=recv_ts_ns, problems=problems)
    keys, vals, default = _tick_table(tick_size)
    buf = np.frombuffer(data, dtype=np.uint8)
    stop = buf.shape[0]
    parts, n, pos, status = [], 0, start, 2
    while status == 2:
        # room for as many frames as the bytes hold at the size of the first one (a run is
        # mostly one type); numpy allocates it (large arrays get huge pages, where the
        # kernel's own allocation would fault per 4 KiB); if smaller frames fill it, go on
        per = _ld_size(buf, pos) if pos + 2 <= stop else _FAST_MIN
        room = np.empty((stop - pos) // max(per, _FAST_MIN) + 1, dtype=ev.EVENT_DTYPE)
        out, k, pos, status = _decode_fast(buf, pos, stop, _NEED, _FAST, keys, vals, default, int(recv_ts_ns), room)
        if k:
            parts.append(out)
            n += k
    events = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, ev.EVENT_DTYPE)
    if status == 0:
        return events, (pos if n else start), n
    rest, end2, n2 = _decode_run_columns(data, tick_size, start=pos, recv_ts_ns=recv_ts_ns, problems=problems)
    if n == 0:
        return rest, (end2 if n2 else start), n2
    return np.concatenate([events, rest]), end2, n + n2


def _decode_run_columns(data, tick_size, *, start: int = 0, recv_ts_ns: int = 0, problems: list | None = None):
    """The column path of :func:`decode_run`: every batch type, whole columns at once."""
    offs, types, end = scan_run(data, start)
    n = offs.shape[0]
    if n == 0:
        return np.zeros(0, dtype=ev.EVENT_DTYPE), start, 0
    u8 = np.frombuffer(data, dtype=np.uint8)
    parts = []
    t0 = int(types[0])
    if (types == t0).all() and end - start == n * _REC[t0].itemsize:
        r = np.frombuffer(data, dtype=_REC[t0], count=n, offset=start)
        out, ok, clear = _convert(t0, r, tick_size, recv_ts_ns, problems)
        if not clear.any() and ok.all():
            return out, end, n
        parts.append((np.arange(n), out, ok, clear))
    else:
        for t in np.unique(types):
            t = int(t)
            idx = np.nonzero(types == t)[0]
            rec = _REC[t]
            rows = u8[offs[idx, None] + np.arange(rec.itemsize)]
            r = np.ascontiguousarray(rows).view(rec)[:, 0]
            out, ok, clear = _convert(t, r, tick_size, recv_ts_ns, problems)
            parts.append((idx, out, ok, clear))
    return _assemble(parts, n), end, n


def message_problem(msg, tick_size) -> str:
    """Why the values of one decoded market message cannot be used ("" when they can).

    The per-message twin of the batch path's rules (module docstring, "Malformed values"), in
    plain Python for the JSON encodings; the tests check that both give the same verdicts.

    Parameters
    ----------
    msg : Message
        A message of one of :data:`BATCH_TYPES` (other types: "").
    tick_size : float or Mapping[int, float]
        As :func:`decode_events`.
    """
    t = int(msg.TYPE)
    if t not in BATCH_TYPES:
        return ""
    sid = msg.SymbolID
    tick = tick_size.get(int(sid)) if isinstance(tick_size, Mapping) else tick_size
    head = f"{type(msg).__name__} ({t}) SymbolID {sid}: "
    if not (tick and tick > 0):
        return head + f"SymbolID {sid} is not subscribed (no tick size)"
    used = True
    if t in DEPTH_TYPES:
        side, qty = msg.Side, msg.Quantity
        if t in _UPDATE_TYPES:
            if side not in (1, 2):
                return head + f"Side {side} is not 1 (bid) or 2 (ask)"
            if msg.UpdateType not in (1, 2):
                return head + f"UpdateType {msg.UpdateType} is not 1 (insert/update) or 2 (delete)"
        else:
            if side not in (0, 1, 2):
                return head + f"Side {side} is not 0, 1 (bid) or 2 (ask)"
            used = side != 0
        if t in _FINAL_TYPES and not 0 <= msg.FinalUpdateInBatch <= 3:
            return head + f"FinalUpdateInBatch {msg.FinalUpdateInBatch} is not 0..3"
    else:
        qty = msg.Volume
        if msg.AtBidOrAsk not in (0, 1, 2):
            return head + f"AtBidOrAsk {msg.AtBidOrAsk} is not 0, 1 or 2"
    if used:
        price = float(msg.Price)
        q = price / tick
        if not (math.isfinite(q) and abs(q) < 9.0e15):
            return head + f"Price {price!r} is not a price in ticks"
        qty = float(qty)
        if not (math.isfinite(qty) and qty >= 0):
            return head + f"size {qty!r} is not a non-negative number"
    return ""


def message_to_events(msg, tick_size, recv_ts_ns: int = 0) -> np.ndarray:
    """Per-message reference of the batch rules: one decoded message -> its events.

    Non-market messages give an empty array. Used by the client for JSON encodings and by the
    tests as the reference the batch path must equal.
    """
    t = int(msg.TYPE)
    if t not in BATCH_TYPES:
        return np.zeros(0, dtype=ev.EVENT_DTYPE)
    if isinstance(tick_size, Mapping):
        tick = tick_size.get(int(msg.SymbolID))
        if not tick:
            return np.zeros(0, dtype=ev.EVENT_DTYPE)
    else:
        tick = float(tick_size)

    def ticks(p):
        p = float(p)
        if not np.isfinite(p) or abs(p) >= 3.0e38 or abs(p / tick) >= 9.0e15:
            return None
        return int(np.rint(p / tick))

    def sec_ns(x):
        us = np.rint(float(x) * 1e6)
        return int(us) * 1000 if np.isfinite(us) and abs(us) < 9.0e15 else 0

    rows = []
    sid = int(msg.SymbolID)
    if t in DEPTH_TYPES:
        side = int(msg.Side)
        side = side if 0 <= side <= 2 else 0
        p = ticks(msg.Price)
        nord = int(msg.NumOrders)
        if t == T.MARKET_DEPTH_UPDATE_LEVEL:
            ts, op, fl = sec_ns(msg.DateTime), int(msg.UpdateType), ev.FLAG_BATCH_END
        elif t in (T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS, T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP):
            ts = int(msg.DateTime) * 1_000_000 if t == T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS else recv_ts_ns
            op = min(max(int(msg.UpdateType), 0), 255)
            fl = ev.FLAG_BATCH_END if int(msg.FinalUpdateInBatch) in (0, 1) else 0
        else:
            op = ev.OP_SET
            if t == T.MARKET_DEPTH_SNAPSHOT_LEVEL:
                ts, first, last = sec_ns(msg.DateTime), bool(msg.IsFirstMessageInBatch), bool(msg.IsLastMessageInBatch)
            else:
                ts = recv_ts_ns
                first = int(msg.FinalUpdateInBatch) == 3
                last = int(msg.FinalUpdateInBatch) == 1
            fl = ev.FLAG_SNAPSHOT | (ev.FLAG_BATCH_END if last else 0)
            valid = p is not None and side != 0
            if first:
                rows.append((ts, 0, 0.0, 0, ev.KIND_DEPTH, 0, ev.OP_CLEAR,
                             ev.FLAG_SNAPSHOT | (ev.FLAG_BATCH_END if (last and not valid) else 0), sid))
            if valid:
                rows.append((ts, p, float(msg.Quantity), nord, ev.KIND_DEPTH, side, op, fl, sid))
            elif last and not first:
                rows.append((ts, 0, 0.0, nord, ev.KIND_DEPTH, 0, ev.OP_NONE, fl, sid))
            return _rows(rows)
        if p is not None and op <= ev.OP_DELETE:
            rows.append((ts, p, float(msg.Quantity), nord, ev.KIND_DEPTH, side, op, fl, sid))
        return _rows(rows)
    side = int(msg.AtBidOrAsk)
    side = side if 0 <= side <= 2 else 0
    p = ticks(msg.Price)
    if t in (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR):
        ts = sec_ns(msg.DateTime)
    elif t == T.MARKET_DATA_UPDATE_TRADE_COMPACT:
        ts = int(msg.DateTime) * 1_000_000_000
    elif t == T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2:
        ts = int(msg.DateTime) * 1000
    else:
        ts = recv_ts_ns
    if p is not None:
        rows.append((ts, p, float(msg.Volume), 0, ev.KIND_TRADE, side, ev.OP_NONE, 0, sid))
    return _rows(rows)


def _rows(rows):
    out = np.zeros(len(rows), dtype=ev.EVENT_DTYPE)
    for i, (ts, p, sz, no, kind, side, op, fl, sid) in enumerate(rows):
        out[i] = (ts, p, sz, no, kind, side, op, fl, sid, 0)
    return out


# --------------------------------------------------------------------------------------------
# Encoders (server side)
# --------------------------------------------------------------------------------------------


def _levels(side: np.ndarray) -> np.ndarray:
    lv = np.zeros(side.shape[0], dtype=np.int64)
    for s in (ev.SIDE_BID, ev.SIDE_ASK):
        m = side == s
        lv[m] = np.arange(1, int(m.sum()) + 1)
    return lv


def _depth_records(events, tick_size: float, symbol_id: int, msg_type: int) -> np.ndarray:
    e = np.asarray(events)
    t = int(msg_type)
    if t not in DEPTH_TYPES:
        raise ValueError(f"msg_type {t} is not a depth message type {DEPTH_TYPES}")
    snapshot = t in (T.MARKET_DEPTH_SNAPSHOT_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)
    # OP_CLEAR / OP_NONE cannot be expressed as a level update (a server sends a snapshot instead)
    keep = (e["op"] == ev.OP_SET) if snapshot else ((e["op"] == ev.OP_SET) | (e["op"] == ev.OP_DELETE))
    e = e[keep]
    n = e.shape[0]
    rec = _REC[t]
    if t == T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT:
        # BEGIN ... TRUE needs two messages: add empty ones (Side 0) to short snapshots
        extra = max(0, 2 - n)
    else:
        extra = 1 if (snapshot and n == 0) else 0
    r = np.zeros(n + extra, dtype=rec)
    r["Size"] = rec.itemsize
    r["Type"] = t
    r["SymbolID"] = symbol_id
    tick = float(tick_size)
    price = e["price"].astype(np.float64) * tick
    ts = e["ts"]
    side = e["side"]
    fin = None
    if t == T.MARKET_DEPTH_UPDATE_LEVEL:
        r["Side"] = side
        r["Price"] = price
        r["Quantity"] = e["size"]
        r["UpdateType"] = e["op"]
        r["DateTime"] = ts / 1e9
        r["NumOrders"] = e["num_orders"]
    elif t in (T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS, T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP):
        if t == T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS:
            r["DateTime"] = ts // 1_000_000
        r["Price"] = price
        r["Quantity"] = e["size"]
        r["Side"] = side
        r["UpdateType"] = e["op"]
        r["NumOrders"] = np.minimum(e["num_orders"], 0xFFFF)
        end = (e["flags"] & ev.FLAG_BATCH_END) != 0
        prev_end = np.ones(n, dtype=bool)
        prev_end[1:] = end[:-1]
        fin = np.where(end, 1, np.where(prev_end, 3, 2))
        r["FinalUpdateInBatch"] = fin
    elif t == T.MARKET_DEPTH_SNAPSHOT_LEVEL:
        if n == 0:  # empty book: one message, both flags, no level
            r["IsFirstMessageInBatch"] = 1
            r["IsLastMessageInBatch"] = 1
            return r
        r["Side"] = side
        r["Price"] = price
        r["Quantity"] = e["size"]
        r["Level"] = _levels(side)
        r["IsFirstMessageInBatch"][0] = 1
        r["IsLastMessageInBatch"][-1] = 1
        r["DateTime"] = ts / 1e9
        r["NumOrders"] = e["num_orders"]
    else:  # 145
        r["Price"][:n] = price
        r["Quantity"][:n] = e["size"]
        r["NumOrders"][:n] = e["num_orders"]
        r["Level"][:n] = _levels(side)
        r["Side"][:n] = side
        fin = np.full(n + extra, 2)
        fin[0] = 3
        fin[-1] = 1
        r["FinalUpdateInBatch"] = fin
    return r


def _trade_records(events, tick_size: float, symbol_id: int, msg_type: int) -> np.ndarray:
    e = np.asarray(events)
    t = int(msg_type)
    if t not in TRADE_TYPES:
        raise ValueError(f"msg_type {t} is not a trade message type {TRADE_TYPES}")
    rec = _REC[t]
    r = np.zeros(e.shape[0], dtype=rec)
    r["Size"] = rec.itemsize
    r["Type"] = t
    r["SymbolID"] = symbol_id
    r["Price"] = e["price"].astype(np.float64) * float(tick_size)
    r["Volume"] = e["size"]
    r["AtBidOrAsk"] = e["side"]
    ts = e["ts"]
    if t in (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR):
        r["DateTime"] = ts / 1e9
    elif t == T.MARKET_DATA_UPDATE_TRADE_COMPACT:
        r["DateTime"] = ts // 1_000_000_000
    elif t == T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2:
        r["DateTime"] = ts // 1000
    return r


def _records_to_json(r: np.ndarray, msg_type: int, encoding: Encoding, sierra_compact_order: bool = True) -> bytes:
    from app.dtc.codec import COMPACT_TYPES, SIERRA_COMPACT_ORDER

    t = int(msg_type)
    spec = M.MESSAGE_CLASSES[t].SPEC
    kinds = {f.name: f.kind for f in spec.fields}
    compact = encoding == Encoding.JSON_COMPACT and t in COMPACT_TYPES
    if compact:
        order = SIERRA_COMPACT_ORDER.get(t) if sierra_compact_order and t in SIERRA_COMPACT_ORDER else spec.field_names
        tmpl = '{"Type":%d,"F":[' % t + ",".join(["%s"] * len(order)) + "]}\x00"
    else:
        order = spec.field_names
        tmpl = '{"Type":%d,' % t + ",".join(f'"{n}":%s' for n in order) + "}\x00"
    cols = []
    for name in order:
        c = r[name]
        if kinds[name] == "float":
            cols.append(list(map(float.__repr__, c.astype(np.float64).tolist())))
        else:
            cols.append(list(map(str, c.tolist())))
    text = "".join(tmpl % row for row in zip(*cols))
    return text.encode("ascii")


def _check_encoding(encoding) -> Encoding:
    enc = Encoding(int(encoding))
    if enc not in (Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT):
        raise ValueError(f"encoding {enc.name} is not supported")
    return enc


#: Largest SymbolID: the field is a uint32_t in every market data message (DTCProtocol.h).
SYMBOL_ID_MAX = 0xFFFFFFFF


def _check_symbol_id(symbol_id) -> int:
    sid = int(symbol_id)
    if not 0 <= sid <= SYMBOL_ID_MAX:
        raise ValueError(f"SymbolID {sid} does not fit uint32 (0..{SYMBOL_ID_MAX})")
    return sid


def encode_depth_batch(events: np.ndarray, tick_size: float, symbol_id: int, encoding: Encoding = Encoding.BINARY,
                       msg_type: int = MessageType.MARKET_DEPTH_UPDATE_LEVEL, *,
                       sierra_compact_order: bool = True) -> bytes:
    """Encode depth events as a run of DTC depth messages (server side).

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE, shape (n,)
        Depth events of one symbol (``price`` in ticks, ``ts`` ns UTC).
    tick_size : float
        Price units per tick.
    symbol_id : int
        The SymbolID the client chose for the subscription.
    encoding : Encoding
        BINARY, JSON or JSON_COMPACT.
    msg_type : int
        106 (default), 140, 141 (updates: ``OP_SET``/``OP_DELETE`` events; ``OP_CLEAR`` cannot be
        expressed and is skipped, send a snapshot instead; 140/141 ``FinalUpdateInBatch`` from
        ``FLAG_BATCH_END``: 1 at a batch end, 3 at a batch start, 2 inside), or the snapshots
        122 / 145 (``OP_SET`` events only, bids then asks best first: ``Level`` is the 1-based
        rank within its side in the given order; 122 ``IsFirst``/``IsLast`` flags; an empty
        book is one 122 with both flags; 145 uses BEGIN ... TRUE and adds an empty terminator
        message when it has fewer than two levels).

    Returns
    -------
    bytes
        The concatenated frames.

    Raises
    ------
    ValueError
        ``symbol_id`` outside 0..4294967295 (uint32), an unsupported encoding or a
        ``msg_type`` that is not a depth message.
    """
    enc = _check_encoding(encoding)
    r = _depth_records(events, tick_size, _check_symbol_id(symbol_id), int(msg_type))
    if enc == Encoding.BINARY:
        return r.tobytes()
    return _records_to_json(r, int(msg_type), enc, sierra_compact_order)


def encode_trade_batch(events: np.ndarray, tick_size: float, symbol_id: int, encoding: Encoding = Encoding.BINARY,
                       msg_type: int = MessageType.MARKET_DATA_UPDATE_TRADE, *,
                       sierra_compact_order: bool = True) -> bytes:
    """Encode trade events as a run of DTC trade messages (107 default, 112, 137, 142, 146).

    ``side`` becomes ``AtBidOrAsk`` (2 = at ask = buyer aggressor), ``size`` the Volume (112
    float, 137/142/146 uint32: fractional sizes are truncated), ``ts`` the type's time unit.
    See :func:`encode_depth_batch` for the other parameters and the errors raised.
    """
    enc = _check_encoding(encoding)
    r = _trade_records(events, tick_size, _check_symbol_id(symbol_id), int(msg_type))
    if enc == Encoding.BINARY:
        return r.tobytes()
    return _records_to_json(r, int(msg_type), enc, sierra_compact_order)


#: the best bid/ask messages a server may send (Sierra Chart picks one per connection from the
#: logon's ``Integer_1``): 108 (double prices, s), 117 compact (float, s), 144 (float, us)
BID_ASK_TYPES = (
    int(T.MARKET_DATA_UPDATE_BID_ASK),
    int(T.MARKET_DATA_UPDATE_BID_ASK_COMPACT),
    int(T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS),
)


def bid_ask_message(msg_type: int, symbol_id: int, bid_tick: int | None, bid_size: float, ask_tick: int | None,
                    ask_size: float, ts_ns: int, tick_size: float) -> M.Message:
    """The best bid/ask as one DTC message of ``msg_type`` (server side).

    Parameters
    ----------
    msg_type : int
        108 MARKET_DATA_UPDATE_BID_ASK (prices double, DateTime uint32 s), 117
        MARKET_DATA_UPDATE_BID_ASK_COMPACT (float, uint32 s) or 144
        MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS (float, int64 us); layouts from
        DTCProtocol.h (``dtc-struct-offsets.txt``).
    symbol_id : int
        The subscription's SymbolID (uint32).
    bid_tick, ask_tick : int or None
        Best prices in ticks; None (an empty side) is sent as DTC's unset value of the field's
        width (DBL_MAX for 108, FLT_MAX for 117/144) with quantity 0.
    bid_size, ask_size : float
        Contracts at the best prices.
    ts_ns : int
        Market time, ns UTC.
    tick_size : float
        Price units per tick.

    Returns
    -------
    app.dtc.messages.Message

    Raises
    ------
    ValueError
        ``msg_type`` is not one of :data:`BID_ASK_TYPES`, or ``symbol_id`` does not fit uint32.
    """
    t = int(msg_type)
    sid = _check_symbol_id(symbol_id)
    tick = float(tick_size)
    if t == T.MARKET_DATA_UPDATE_BID_ASK:
        unset, when = M.UNSET_DOUBLE, int(ts_ns // 1_000_000_000)
    elif t == T.MARKET_DATA_UPDATE_BID_ASK_COMPACT:
        unset, when = M.UNSET_FLOAT, int(ts_ns // 1_000_000_000)
    elif t == T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS:
        unset, when = M.UNSET_FLOAT, int(ts_ns // 1000)
    else:
        raise ValueError(f"msg_type {t} is not a bid/ask message type {BID_ASK_TYPES}")
    return M.MESSAGE_CLASSES[t](
        SymbolID=sid,
        BidPrice=bid_tick * tick if bid_tick is not None else unset,
        BidQuantity=float(bid_size) if bid_tick is not None else 0.0,
        AskPrice=ask_tick * tick if ask_tick is not None else unset,
        AskQuantity=float(ask_size) if ask_tick is not None else 0.0,
        DateTime=when,
    )


#: ``_held_since`` value of a hold that is due at once (``hold_max`` exceeded)
_DUE_NOW = -(1 << 62)


# ------------------------------------------------------------------ background warm-up
_warm: threading.Event | None = None  # set when a started warm-up is done; None: none was started
_warm_lock = threading.Lock()


def warm_up_in_background(after=None) -> threading.Event:
    """Compile (or load from numba's cache) the batch path's kernels on a daemon thread.

    With an empty numba cache the kernels (:func:`_decode_fast`, :func:`_scan`) take seconds
    to compile (8 s on this project's loaded 2-core machine), and the first binary market data
    would wait for them on the GUI thread. Once this was called, every
    :class:`MarketStreamDecoder` decodes binary market data message by message
    (:func:`message_to_events`, the batch path's reference: the same events, no numba) until
    the kernels are ready (:func:`batch_path_ready`), then takes the batch path. Without this
    call nothing changes (the batch path compiles on its first use). Idempotent.

    Parameters
    ----------
    after : callable, optional
        Called (and waited for) on the warm-up thread before the compile starts: the window
        passes :func:`app.ui.splash.wait_first_frame`, so the compile does not slow its way
        to the first frame.

    Returns
    -------
    threading.Event
        Set when the warm-up has finished (also when it failed: the error is logged and the
        batch path then compiles on first use, as without a warm-up).
    """
    global _warm
    with _warm_lock:
        if _warm is not None:
            return _warm
        done = _warm = threading.Event()

    def run():
        try:
            if after is not None:
                after()
            warm_up()
        except Exception:  # noqa: BLE001 - logged; the batch path compiles on first use instead
            log.exception("dtc batch decode warm-up failed")
        finally:
            done.set()

    threading.Thread(target=run, name="mia-dtc-warm-up", daemon=True).start()
    return done


def batch_path_ready() -> bool:
    """False while a background warm-up (:func:`warm_up_in_background`) is still running."""
    w = _warm
    return w is None or w.is_set()


def warm_up() -> int:
    """Run the batch path once on a small stream of depth updates and trades, both ways (the
    one-pass kernel and the column path), so that every kernel is compiled or loaded with the
    argument types the client uses (``bytes``, a SymbolID -> tick size ``dict``). Returns the
    number of events decoded (10: five each way)."""
    d = ev.depth_events([1_000_000_000, 1_000_000_000, 2_000_000_000], [4000, 4001, 4000], [3.0, 4.0, 0.0],
                        [ev.SIDE_BID, ev.SIDE_ASK, ev.SIDE_BID], [ev.OP_SET, ev.OP_SET, ev.OP_DELETE])
    t = ev.trade_events([3_000_000_000], [4001], [1.0], [ev.SIDE_ASK])
    data = (encode_depth_batch(d, 0.25, 1) + encode_trade_batch(t, 0.25, 1)
            + encode_depth_batch(d[:1], 0.25, 1, msg_type=T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS))
    ticks = {1: 0.25}
    a, _end, _n = decode_run(data, ticks, recv_ts_ns=0)
    b, _end, _n = decode_run(data, ticks, recv_ts_ns=0, one_pass=False)
    return int(a.shape[0] + b.shape[0])


class MarketStreamDecoder:
    """Client-side stream decoder: depth/trade runs as event arrays, everything else as messages.

    Binary streams use the batch path (:func:`decode_events`); JSON streams decode each message
    (:class:`app.dtc.codec.Decoder`) and convert market messages with :func:`message_to_events`.

    Parameters
    ----------
    encoding : Encoding
        Initial encoding (settable, as :class:`~app.dtc.codec.Decoder`).
    tick_sizes : dict[int, float]
        SymbolID -> tick size, maintained by the owner (events of unknown SymbolIDs are
        dropped and counted in :attr:`dropped`).

    market_clock : bool
        Stamp untimed events with the stream's market time (module docstring, "Market clock");
        False (default) stamps them with ``recv_ts_ns`` as :func:`decode_events` does.
    hold_s : float
        With ``market_clock``: longest wall time (s) untimed events of a SymbolID are held back
        waiting for its first market time; ``<= 0`` never holds (wall clock at once).
    hold_max : int
        With ``market_clock``: most events held back per SymbolID before they are released
        with the wall clock.
    follow_encoding_response : bool
        Switch the decoding encoding on a received ENCODING_RESPONSE (client side; see
        :class:`app.dtc.codec.Decoder`).
    max_frame : int, optional
        Largest frame in bytes (see :class:`app.dtc.codec.Decoder`).
    clock : Clock
        Source of the hold timer (:meth:`~app.core.clock.Clock.monotonic_ns`) and of the
        wall-clock stamp when none is passed (:meth:`~app.core.clock.Clock.time_ns`); default
        :data:`~app.core.clock.SYSTEM_CLOCK`. Tests pass a :class:`~app.core.clock.ManualClock`.

    ``feed(data, recv_ts_ns)`` returns a list whose items are either a message object or an
    ``EVENT_DTYPE`` array (one run), in arrival order (with ``market_clock``: per SymbolID;
    held events come out later, before that SymbolID's next events, and arrays hold one
    SymbolID each). With ``market_clock`` the owner calls :meth:`expire_held` once
    :attr:`held_due_ns` (the clock's monotonic ns) has passed, as the DTC session does from its
    deadlines (:meth:`app.dtc.session.DTCSession.handle_timeouts`).

    Attributes
    ----------
    market_ts : dict[int, int]
        SymbolID -> last market time seen on this stream, ns UTC (``market_clock`` only).
    held : int
        Events currently held back (``market_clock`` only).
    """

    def __init__(self, encoding: Encoding = Encoding.BINARY, tick_sizes: dict | None = None, *,
                 follow_encoding_response: bool = True, market_clock: bool = False,
                 hold_s: float = 2.0, hold_max: int = 200_000, max_frame: int | None = None,
                 clock: Clock = SYSTEM_CLOCK):
        from app.dtc.codec import Decoder

        self.clock = clock
        self.tick_sizes: dict[int, float] = tick_sizes if tick_sizes is not None else {}
        self.decoder = Decoder(encoding, follow_encoding_response=follow_encoding_response, max_frame=max_frame)
        self._buf = bytearray()
        self.market_messages = 0
        self.batch_frames = 0
        self.dropped = 0
        self.market_clock = bool(market_clock)
        self.hold_s = float(hold_s)
        self._hold_ns = int(round(self.hold_s * 1e9))
        self.hold_max = int(hold_max)
        self.market_ts: dict[int, int] = {}
        self.held = 0
        self._held: dict[int, list] = {}  # SymbolID -> held arrays (all untimed), arrival order
        self._held_since: dict[int, int] = {}  # SymbolID -> clock monotonic ns of its first held array
        self._wall_fallback: set[int] = set()  # SymbolIDs whose hold ran out (wall clock until timed)

    @property
    def messages(self) -> int:
        """Messages decoded so far (batch frames plus per-message decodes)."""
        return self.batch_frames + self.decoder.messages

    @property
    def encoding(self) -> Encoding:
        return self.decoder.encoding

    @encoding.setter
    def encoding(self, value) -> None:
        if self._buf:
            pending = bytes(self._buf)
            self._buf = bytearray()
            self.decoder.encoding = value
            self.decoder._pending = pending + self.decoder._pending
        else:
            self.decoder.encoding = value

    @property
    def errors(self) -> int:
        """Malformed frames and messages with unusable values (counted, skipped)."""
        return self.decoder.errors

    def error(self, reason: str, count: int = 1) -> None:
        """Count ``count`` malformed frames or unusable messages with the first one's ``reason``
        (see :meth:`app.dtc.codec.Decoder.error`)."""
        self.decoder.error(reason, count)

    @property
    def last_error(self) -> str:
        return self.decoder.last_error

    @property
    def desynced(self) -> int:
        return self.decoder.desynced

    @property
    def unknown(self) -> int:
        return self.decoder.unknown

    def feed(self, data: bytes, recv_ts_ns: int = 0) -> list:
        """Decode received bytes; see the class docstring. Never raises for bad input.

        Parameters
        ----------
        data : bytes
            Bytes as read off the socket (any cut).
        recv_ts_ns : int
            Wall-clock receive time, ns UTC: the stamp of untimed events without
            ``market_clock``, and with it only when no market time can be had (see the class).
        """
        if not self.market_clock:
            return self._feed(data, recv_ts_ns)
        items = self._feed(data, 0)  # untimed events come out with ts 0: stamped here
        out = []
        for it in items:
            if isinstance(it, np.ndarray):
                out.extend(self._stamp(it, recv_ts_ns))
            else:
                out.append(it)
                if int(it.TYPE) == T.MARKET_DATA_SNAPSHOT:
                    out.extend(self._seed_from_snapshot(it))
        if self._held:
            out.extend(self.expire_held(recv_ts_ns))
        return out

    def market_time(self, symbol_id: int, default: int | None = None) -> int | None:
        """Last market time (ns UTC) seen on this stream for ``symbol_id``, else ``default``."""
        return self.market_ts.get(int(symbol_id), default)

    @property
    def held_due_ns(self) -> int | None:
        """The clock's monotonic time (int ns) at which the oldest hold runs out; ``None`` when
        nothing is held."""
        if not self._held_since:
            return None
        return min(self._held_since.values()) + self._hold_ns

    @property
    def held_due(self) -> float | None:
        """:attr:`held_due_ns` in seconds (float); ``None`` when nothing is held."""
        due = self.held_due_ns
        return None if due is None else due / 1e9

    def expire_held(self, now_ns: int | None = None, *, force: bool = False) -> list:
        """Release the held events whose hold ran out (all of them with ``force``).

        Parameters
        ----------
        now_ns : int, optional
            Wall clock, ns UTC, the stamp of the released events (default: the decoder's
            clock, :meth:`~app.core.clock.Clock.time_ns`).
        force : bool
            Release every held event, due or not.

        Returns
        -------
        list of ndarray of EVENT_DTYPE
            One array per SymbolID released (an empty list when none was due).
        """
        if not self._held:
            return []
        mono = self.clock.monotonic_ns()
        if now_ns is None or now_ns <= 0:
            now_ns = self.clock.time_ns()
        out = []
        for sid in list(self._held):
            if force or mono - self._held_since[sid] >= self._hold_ns:
                arrs = self._held.pop(sid)
                self._held_since.pop(sid, None)
                e = arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
                self.held -= e.shape[0]
                e["ts"] = now_ns
                self._wall_fallback.add(sid)
                out.append(e)
        return out

    def _seed_from_snapshot(self, msg) -> list:
        """A MARKET_DATA_SNAPSHOT (104) of a SymbolID with no market time yet gives it one: the
        later of its LastTradeDateTime and MarketDepthUpdateDateTime (double seconds; 0 or
        unset = unknown). Returns the held events it releases, stamped with it."""
        sid = int(msg.SymbolID)
        if sid in self.market_ts:
            return []
        best = 0
        for name in ("LastTradeDateTime", "MarketDepthUpdateDateTime"):
            try:
                v = float(getattr(msg, name, 0.0) or 0.0)
            except (TypeError, ValueError):
                continue
            if np.isfinite(v) and 0.0 < v < 1.0e11 and not M.is_unset(v):
                best = max(best, int(round(v * 1e6)) * 1000)
        if best <= 0:
            return []
        self.market_ts[sid] = best
        self._wall_fallback.discard(sid)
        held = self._held.pop(sid, None)
        self._held_since.pop(sid, None)
        if not held:
            return []
        h = held[0] if len(held) == 1 else np.concatenate(held)
        self.held -= h.shape[0]
        h["ts"] = best
        return [h]

    def _stamp(self, events: np.ndarray, recv_ts_ns: int) -> list:
        """Market-clock stamping of one decoded array: arrays of one SymbolID, held ones first."""
        if events.shape[0] == 0:
            return []
        sids = events["symbol_id"]
        first = int(sids[0])
        if (sids == first).all():
            return self._stamp_one(first, events, recv_ts_ns)
        out = []
        for sid in np.unique(sids):
            out.extend(self._stamp_one(int(sid), events[sids == sid], recv_ts_ns))
        return out

    def _stamp_one(self, sid: int, e: np.ndarray, recv_ts_ns: int) -> list:
        ts = e["ts"]
        timed = ts > 0
        last = self.market_ts.get(sid)
        out = []
        if last is None:
            if not timed.any():
                if sid in self._wall_fallback or self.hold_s <= 0:
                    ts[:] = recv_ts_ns if recv_ts_ns > 0 else self.clock.time_ns()
                    return [e]
                self._held.setdefault(sid, []).append(e)
                self._held_since.setdefault(sid, self.clock.monotonic_ns())
                self.held += e.shape[0]
                if sum(a.shape[0] for a in self._held[sid]) > self.hold_max:
                    self._held_since[sid] = _DUE_NOW  # released with the wall clock at once
                    return self.expire_held(recv_ts_ns)
                return []
            # the first market time of this SymbolID: the held events and the untimed ones
            # before it in this array take it (nothing earlier was delivered)
            last = int(ts[int(np.argmax(timed))])
            held = self._held.pop(sid, None)
            self._held_since.pop(sid, None)
            self._wall_fallback.discard(sid)
            if held:
                h = held[0] if len(held) == 1 else np.concatenate(held)
                self.held -= h.shape[0]
                h["ts"] = last
                out.append(h)
        if not timed.all():
            idx = np.where(timed, np.arange(ts.shape[0]), -1)
            np.maximum.accumulate(idx, out=idx)
            e["ts"] = np.where(idx >= 0, ts[np.maximum(idx, 0)], last)
        self.market_ts[sid] = int(e["ts"][-1])
        out.append(e)
        return out

    def _feed(self, data: bytes, recv_ts_ns: int) -> list:
        if self.decoder.encoding != Encoding.BINARY or self.decoder.buffered() or not batch_path_ready():
            # (while the kernels warm up the message decoder holds any cut frame, so the batch
            # path takes over only once it has none buffered)
            return self._feed_messages(data, recv_ts_ns)
        buf = self._buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        view = bytes(buf) if n else b""
        while pos + 4 <= n:
            problems: list = []
            try:
                events, end, nfr = decode_run(view, self.tick_sizes, start=pos, recv_ts_ns=recv_ts_ns,
                                              problems=problems)
            except Exception as exc:  # noqa: BLE001 - never escape; fall back per message
                log.warning("batch decode failed (%s); per-message path", exc)
                end, events, nfr = pos, None, 0
                problems = []
            for count, reason in problems:
                self.error(reason, count)
                self.dropped += count
            if end > pos:
                self.market_messages += nfr
                self.batch_frames += nfr
                if events is not None and events.shape[0]:
                    out.append(events)
                pos = end
                continue
            # one non-batch frame (or an incomplete one): hand it to the message decoder
            size = view[pos] | (view[pos + 1] << 8)
            if size < 4 or pos + size > n:
                if size < 4:
                    # let the message decoder count the error and drop the buffer
                    rest = view[pos:]
                    pos = n
                    out.extend(self._feed_messages(rest, recv_ts_ns))
                break
            frame = view[pos:pos + size]
            pos += size
            items = self._feed_messages(frame, recv_ts_ns)
            out.extend(items)
            if self.decoder.encoding != Encoding.BINARY:
                # negotiation switched: the rest is in the new encoding
                rest = view[pos:]
                pos = n
                out.extend(self._feed_messages(rest, recv_ts_ns))
                break
        del buf[:pos]
        return out

    def _feed_messages(self, data, recv_ts_ns):
        out = []
        run = []
        for m in self.decoder.feed(data):
            if int(m.TYPE) in BATCH_TYPES:
                self.market_messages += 1
                try:
                    reason = message_problem(m, self.tick_sizes)
                    e = None if reason else message_to_events(m, self.tick_sizes, recv_ts_ns)
                except (OverflowError, ValueError, TypeError) as exc:  # e.g. JSON numbers out of range
                    reason = f"{type(m).__name__}: values out of range: {exc}"
                if reason:
                    self.error(reason)
                    self.dropped += 1
                    continue
                if e.shape[0]:
                    run.append(e)
                else:
                    self.dropped += 1
                continue
            if run:
                out.append(np.concatenate(run))
                run = []
            out.append(m)
        if run:
            out.append(np.concatenate(run))
        return out
