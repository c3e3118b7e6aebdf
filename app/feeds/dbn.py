"""Databento DBN market-by-order (MBO) reader: CME ES orders -> price-level depth events + trades.

A DBN MBO file carries one record per order event (L3). MIA Elite's model and the DTC wire use
price levels (L2, DTC ``MARKET_DEPTH_UPDATE_LEVEL`` inserts/updates/deletes a level **by price**),
so this reader keeps the individual resting orders, aggregates them per price level and emits one
depth event each time a level's total changes:

* ``OP_SET`` with the level's new total size (contracts) and order count, or
* ``OP_DELETE`` when the last order at that price leaves.

Rules, with their sources
-------------------------
* Record layout and meaning of ``action`` / ``side`` / ``flags``: Databento MBO schema
  (https://databento.com/docs/schemas/mbo) and the ``databento-dbn`` package that decodes it.
  The file's metadata (dataset, symbol mappings) is read with ``databento_dbn.DBNDecoder``; the
  fixed 56-byte MBO records are then viewed as a numpy structured array (:data:`MBO_DTYPE`) so no
  Python object is built per record during parsing (the test suite cross-checks every field
  against ``databento_dbn``'s own record objects).
* Book building (Databento "Order tracking" example, https://databento.com/docs/examples/
  order-book/order-tracking): ``A`` add inserts an order; ``C`` cancel removes ``size`` from the
  order (fully or partially); ``M`` modify changes an order's price and/or size; ``R`` clears the
  book; ``T`` trade, ``F`` fill and ``N`` none **do not change the book** ("all fills will be
  accompanied by cancel actions that do update the book"). A modify of an order that is not in the
  book is treated as an add; a cancel of an unknown order is counted and skipped.
* Trades: the ``side`` of a ``T`` record is the side that **initiated** the trade: "Ask for a sell
  aggressor in a trade, Bid for a buy aggressor in a trade, or None" (Databento trades schema,
  https://databento.com/docs/schemas/trades). MIA Elite's trade ``side`` is the side traded
  against (:mod:`app.core.events`), so DBN ``'B'`` (buyer aggressor) becomes ``SIDE_ASK`` (the
  ask was lifted), ``'A'`` (seller aggressor) becomes ``SIDE_BID`` and ``'N'`` becomes
  ``SIDE_UNSET`` (for example the opening auction's uncross). ``F`` records carry the side of the
  *resting* order instead (checked on the ES file: ``T`` ``B`` is followed by ``F`` ``A``).
* Batches: Databento sets ``F_LAST`` (0x80) on the last record of one exchange event; the book is
  only consistent after it. The depth event emitted last before such a record gets
  ``FLAG_BATCH_END``.
* Snapshot: records flagged ``F_SNAPSHOT`` (0x20) at the start of the file are a book snapshot.
  They are applied silently, then the resulting book is emitted at once as ``OP_CLEAR`` (side 0)
  followed by one ``OP_SET`` per level, all flagged ``FLAG_SNAPSHOT``; the last carries
  ``FLAG_BATCH_END``.
* CME's pre-open book may be crossed (indicative auction prices); in the ES sample it crosses
  between 22:39 and 23:00 UTC and is uncrossed at every batch end from the opening trade on.
* Time: ``ts_recv`` (Databento's capture time, ns UTC; the order in which the file is written).
  It is made non-decreasing (running maximum) so replay never goes backwards; the snapshot is
  stamped with the ``ts_recv`` of its last record.
* Prices: DBN prices are int64 in units of 1e-9; ticks = ``price / (tick_size * 1e9)``, rounded
  (a price off the tick grid is counted in ``stats['off_grid_prices']``).

ES defaults: tick size 0.25 index points, tick value 12.50 USD (CME E-mini S&P 500 contract
specification: 50 USD x index, minimum fluctuation 0.25 = 12.50 USD).
"""

from __future__ import annotations

import logging
import os
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
    SIDE_UNSET,
    Instrument,
)
from app.feeds.recording import Recording

log = logging.getLogger(__name__)

#: DBN record flags (Databento "Flags" convention).
F_LAST = 0x80
F_TOB = 0x40
F_SNAPSHOT = 0x20
F_MBP = 0x10
F_BAD_TS_RECV = 0x08
F_MAYBE_BAD_BOOK = 0x04

#: DBN ``rtype`` of an MBO record.
RTYPE_MBO = 0xA0
#: DBN's "no price" sentinel.
UNDEF_PRICE = np.iinfo(np.int64).max

#: Fixed layout of one DBN MBO record (56 bytes, little endian; identical in DBN v1, v2 and v3).
MBO_DTYPE = np.dtype(
    [
        ("length", "u1"),  # record length in 4-byte words (14)
        ("rtype", "u1"),  # 0xA0
        ("publisher_id", "<u2"),
        ("instrument_id", "<u4"),
        ("ts_event", "<u8"),
        ("order_id", "<u8"),
        ("price", "<i8"),  # 1e-9 units
        ("size", "<u4"),
        ("flags", "u1"),
        ("channel_id", "u1"),
        ("action", "S1"),
        ("side", "S1"),
        ("ts_recv", "<u8"),
        ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)
assert MBO_DTYPE.itemsize == 56

ES_TICK_SIZE = 0.25
ES_TICK_VALUE = 12.50


class DBNError(ValueError):
    """The file is not a DBN MBO file this reader can use (message names the problem)."""


def _read_bytes(path: Path) -> bytes:
    """The file's DBN bytes; a ``.zst`` file is decompressed frame by frame.

    Raises
    ------
    DBNError
        A ``.zst`` file that is not zstd (gzip, random bytes), or whose last frame is cut short
        (a partial download): the message names the file and how far it decompressed.
    """
    raw = path.read_bytes()
    if path.suffix != ".zst":
        return raw
    import zstandard

    if raw[:2] == b"\x1f\x8b":
        raise DBNError(f"{path}: gzip-compressed, not zstd (a .dbn.zst file is zstd)")
    parts, rest, frames = [], raw, 0
    while rest:
        dec = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(dec.decompress(rest))
        except zstandard.ZstdError as exc:
            where = "not a zstd-compressed file" if not frames else f"corrupt zstd data after frame {frames}"
            raise DBNError(f"{path}: {where} ({exc})") from None
        if not dec.eof:
            raise DBNError(f"{path}: truncated: the file ends inside zstd frame {frames + 1} "
                           f"({sum(map(len, parts)):,} bytes decompressed); download it again")
        frames += 1
        rest = dec.unused_data
    if not frames:
        raise DBNError(f"{path}: empty file")
    return b"".join(parts)


def _metadata(data: bytes, name: str):
    """Decode the DBN metadata with ``databento_dbn``; return (metadata, offset of first record)."""
    import databento_dbn

    if len(data) < 8 or data[:3] != b"DBN":
        raise DBNError(f"{name}: not a DBN stream (no 'DBN' magic)")
    meta_len = int.from_bytes(data[4:8], "little")
    start = 8 + meta_len
    if len(data) < start:
        raise DBNError(f"{name}: truncated DBN metadata ({len(data)} < {start} bytes)")
    dec = databento_dbn.DBNDecoder()
    dec.write(data[:start])
    try:
        first = dec.decode()
    except Exception as exc:  # the package raises its own error types
        raise DBNError(f"{name}: bad DBN metadata: {exc}") from exc
    meta = first[0] if first else None
    return meta, start


def mbo_records(path: str | os.PathLike) -> tuple[object, np.ndarray]:
    """Read a DBN MBO file (optionally ``.zst``) into a structured array.

    Parameters
    ----------
    path : path-like
        ``*.mbo.dbn`` or ``*.mbo.dbn.zst``.

    Returns
    -------
    metadata : databento_dbn.Metadata
        The file's metadata (dataset, schema, symbol mappings).
    records : numpy.ndarray, shape (n,), dtype :data:`MBO_DTYPE`
        Every record, in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DBNError
        If the file is not DBN (or not zstd for ``.zst``), is truncated (inside a zstd frame or
        a record), holds no record, its schema is not MBO, or it holds records other than MBO.
    """
    path = Path(path)
    data = _read_bytes(path)
    meta, start = _metadata(data, str(path))
    schema = str(getattr(meta, "schema", ""))
    if "mbo" not in schema.lower():
        raise DBNError(f"{path}: DBN schema is {schema!r}, expected MBO")
    body = memoryview(data)[start:]
    n = len(body) // MBO_DTYPE.itemsize
    rest = len(body) - n * MBO_DTYPE.itemsize
    recs = np.frombuffer(body, dtype=MBO_DTYPE, count=n)
    bad = (recs["length"] != MBO_DTYPE.itemsize // 4) | (recs["rtype"] != RTYPE_MBO)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DBNError(
            f"{path}: record {i} is not an MBO record (rtype={int(recs['rtype'][i]):#x}, "
            f"length={int(recs['length'][i]) * 4} bytes); mixed-schema files are not supported"
        )
    if rest:
        raise DBNError(f"{path}: truncated: the file ends inside record {n + 1} ({rest} of "
                       f"{MBO_DTYPE.itemsize} bytes; {n:,} whole records before it)")
    if n == 0:
        raise DBNError(f"{path}: holds no MBO records (only the metadata)")
    return meta, recs.copy()


def _symbol_for(meta, instrument_id: int) -> str:
    for m in getattr(meta, "mappings", None) or []:
        raw = getattr(m, "raw_symbol", None)
        for iv in getattr(m, "intervals", None) or []:
            if str(getattr(iv, "symbol", "")) == str(instrument_id) and raw:
                return str(raw)
    syms = list(getattr(meta, "symbols", None) or [])
    return str(syms[0]) if len(syms) == 1 else str(instrument_id)


def mbo_to_events(
    recs: np.ndarray, tick_size: float = ES_TICK_SIZE, stats: dict | None = None
) -> np.ndarray:
    """Turn MBO records of ONE instrument into price-level depth events and trades.

    Parameters
    ----------
    recs : numpy.ndarray, dtype :data:`MBO_DTYPE`
        Records of a single instrument, in file order.
    tick_size : float
        Price units per tick (ES: 0.25).
    stats : dict, optional
        Filled with counters (``records``, ``unknown_cancel``, ``modify_as_add``,
        ``off_grid_prices``, ``no_price_trades``, ``actions`` ...).

    Returns
    -------
    numpy.ndarray, dtype :data:`app.core.events.EVENT_DTYPE`
        Depth (``KIND_DEPTH``) and trade (``KIND_TRADE``) events in record order; see the module
        docstring for the rules.
    """
    st = stats if stats is not None else {}
    n = len(recs)
    scale = tick_size * 1e9
    price_raw = recs["price"]
    valid_price = price_raw != UNDEF_PRICE
    ticks_f = np.where(valid_price, price_raw, 0) / scale
    ticks = np.rint(ticks_f).astype(np.int64)
    st["off_grid_prices"] = int(np.count_nonzero(valid_price & (np.abs(ticks_f - ticks) > 1e-6)))
    ts = np.maximum.accumulate(recs["ts_recv"].astype(np.int64)) if n else np.zeros(0, np.int64)
    actions = recs["action"].tobytes()  # one byte per record
    sides = recs["side"].tobytes()
    flags = recs["flags"].tolist()
    sizes = recs["size"].tolist()
    oids = recs["order_id"].tolist()
    tick_l = ticks.tolist()
    ts_l = ts.tolist()
    vp = valid_price.tolist()

    # output columns
    o_ts: list[int] = []
    o_price: list[int] = []
    o_size: list[float] = []
    o_norders: list[int] = []
    o_kind: list[int] = []
    o_side: list[int] = []
    o_op: list[int] = []
    o_flags: list[int] = []

    orders: dict[int, list] = {}  # order_id -> [side(1/2), tick, size]
    lv = {SIDE_BID: {}, SIDE_ASK: {}}  # tick -> [size, count]
    last_depth = -1  # index in output of the last depth event
    open_batch = False
    unknown_cancel = modify_as_add = no_price_trades = 0
    side_code = {ord("B"): SIDE_BID, ord("A"): SIDE_ASK}
    # trades: DBN side = aggressor side -> MIA side = side traded against
    trade_side = {ord("B"): SIDE_ASK, ord("A"): SIDE_BID}
    A, C, M, R, T = ord("A"), ord("C"), ord("M"), ord("R"), ord("T")

    def emit_level(side, tick, t, emit):
        nonlocal last_depth, open_batch
        if not emit:
            return
        lev = lv[side].get(tick)
        o_ts.append(t)
        o_price.append(tick)
        o_kind.append(KIND_DEPTH)
        o_side.append(side)
        o_flags.append(0)
        if lev is None:
            o_size.append(0.0)
            o_norders.append(0)
            o_op.append(OP_DELETE)
        else:
            o_size.append(float(lev[0]))
            o_norders.append(lev[1])
            o_op.append(OP_SET)
        last_depth = len(o_ts) - 1
        open_batch = True

    def add(side, tick, size):
        lev = lv[side].get(tick)
        if lev is None:
            lv[side][tick] = [size, 1]
        else:
            lev[0] += size
            lev[1] += 1

    def remove(side, tick, size, whole):
        lev = lv[side].get(tick)
        if lev is None:
            return
        lev[0] -= size
        if whole:
            lev[1] -= 1
        if lev[1] <= 0 or lev[0] <= 0:
            del lv[side][tick]

    def emit_snapshot(t):
        nonlocal last_depth, open_batch
        o_ts.append(t)
        o_price.append(0)
        o_size.append(0.0)
        o_norders.append(0)
        o_kind.append(KIND_DEPTH)
        o_side.append(SIDE_UNSET)
        o_op.append(OP_CLEAR)
        o_flags.append(FLAG_SNAPSHOT)
        for side, rev in ((SIDE_BID, True), (SIDE_ASK, False)):
            for tick in sorted(lv[side], reverse=rev):
                s, c = lv[side][tick]
                o_ts.append(t)
                o_price.append(tick)
                o_size.append(float(s))
                o_norders.append(c)
                o_kind.append(KIND_DEPTH)
                o_side.append(side)
                o_op.append(OP_SET)
                o_flags.append(FLAG_SNAPSHOT)
        o_flags[-1] |= FLAG_BATCH_END
        last_depth = len(o_ts) - 1
        open_batch = False

    in_snapshot = False
    snapshot_done = False
    for i in range(n):
        fl = flags[i]
        act = actions[i]
        t = ts_l[i]
        is_snap = bool(fl & F_SNAPSHOT) and not snapshot_done
        if in_snapshot and not is_snap:
            emit_snapshot(ts_l[i - 1])
            in_snapshot = False
            snapshot_done = True
        if is_snap and not in_snapshot:
            in_snapshot = True
        emit = not in_snapshot
        if act == A:
            sd = side_code.get(sides[i])
            if sd is None or not vp[i]:
                continue
            oid = oids[i]
            old = orders.get(oid)
            if old is not None:  # duplicate add: replace the order
                remove(old[0], old[1], old[2], True)
                emit_level(old[0], old[1], t, emit)
            tick = tick_l[i]
            orders[oid] = [sd, tick, sizes[i]]
            add(sd, tick, sizes[i])
            emit_level(sd, tick, t, emit)
        elif act == C:
            o = orders.get(oids[i])
            if o is None:
                unknown_cancel += 1
            else:
                sz = min(sizes[i], o[2])
                o[2] -= sz
                whole = o[2] <= 0
                if whole:
                    del orders[oids[i]]
                remove(o[0], o[1], sz, whole)
                emit_level(o[0], o[1], t, emit)
        elif act == M:
            sd = side_code.get(sides[i])
            oid = oids[i]
            o = orders.get(oid)
            if sd is None or not vp[i]:
                pass
            elif o is None:
                modify_as_add += 1
                orders[oid] = [sd, tick_l[i], sizes[i]]
                add(sd, tick_l[i], sizes[i])
                emit_level(sd, tick_l[i], t, emit)
            elif o[0] != sd or o[1] != tick_l[i]:
                remove(o[0], o[1], o[2], True)
                emit_level(o[0], o[1], t, emit)
                o[0], o[1], o[2] = sd, tick_l[i], sizes[i]
                add(sd, tick_l[i], sizes[i])
                emit_level(sd, tick_l[i], t, emit)
            else:
                delta = sizes[i] - o[2]
                o[2] = sizes[i]
                lev = lv[sd].get(o[1])
                if lev is not None:
                    lev[0] += delta
                    if o[2] <= 0:
                        del orders[oid]
                        lev[1] -= 1
                    if lev[1] <= 0 or lev[0] <= 0:
                        del lv[sd][o[1]]
                emit_level(sd, o[1], t, emit)
        elif act == R:
            orders.clear()
            lv[SIDE_BID].clear()
            lv[SIDE_ASK].clear()
            if emit:
                o_ts.append(t)
                o_price.append(0)
                o_size.append(0.0)
                o_norders.append(0)
                o_kind.append(KIND_DEPTH)
                o_side.append(SIDE_UNSET)
                o_op.append(OP_CLEAR)
                o_flags.append(0)
                last_depth = len(o_ts) - 1
                open_batch = True
        elif act == T and emit:
            if not vp[i]:
                no_price_trades += 1
            else:
                o_ts.append(t)
                o_price.append(tick_l[i])
                o_size.append(float(sizes[i]))
                o_norders.append(0)
                o_kind.append(KIND_TRADE)
                o_side.append(trade_side.get(sides[i], SIDE_UNSET))
                o_op.append(0)
                o_flags.append(0)
        # F (fill) and N (none) do not change the book.
        if (fl & F_LAST) and open_batch and emit:
            o_flags[last_depth] |= FLAG_BATCH_END
            open_batch = False
    if in_snapshot:
        emit_snapshot(ts_l[n - 1])
    if open_batch and last_depth >= 0:
        o_flags[last_depth] |= FLAG_BATCH_END

    out = np.zeros(len(o_ts), dtype=EVENT_DTYPE)
    out["ts"] = o_ts
    out["price"] = o_price
    out["size"] = o_size
    out["num_orders"] = o_norders
    out["kind"] = o_kind
    out["side"] = o_side
    out["op"] = o_op
    out["flags"] = o_flags
    counts = {}
    for a in set(actions):
        counts[chr(a)] = actions.count(bytes([a]))
    st.update(
        records=n,
        events=len(out),
        unknown_cancel=unknown_cancel,
        modify_as_add=modify_as_add,
        no_price_trades=no_price_trades,
        actions=counts,
        resting_orders_at_end=len(orders),
    )
    return out


def read_dbn_mbo(
    path: str | os.PathLike,
    instrument_id: int | None = None,
    tick_size: float = ES_TICK_SIZE,
    tick_value: float = ES_TICK_VALUE,
    symbol: str | None = None,
) -> Recording:
    """Read a Databento DBN MBO file into a :class:`~app.feeds.recording.Recording`.

    Parameters
    ----------
    path : path-like
        ``*.mbo.dbn`` or ``*.mbo.dbn.zst``.
    instrument_id : int, optional
        Databento instrument id to keep. Default: the file's only instrument.
    tick_size : float
        Price units per tick (default ES 0.25).
    tick_value : float
        USD per tick per contract (default ES 12.50).
    symbol : str, optional
        Symbol to record; default the raw symbol from the file's mappings (``ESH4``).

    Returns
    -------
    Recording
        ``events``: depth and trade events (:data:`EVENT_DTYPE`) per the module docstring;
        ``extra["dbn"]``: the conversion counters and the DBN dataset/instrument id.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DBNError
        If the file is not a DBN MBO file, holds several instruments and ``instrument_id`` is
        not given, or ``instrument_id`` is not in it.
    """
    path = Path(path)
    meta, recs = mbo_records(path)
    ids = np.unique(recs["instrument_id"])
    if instrument_id is None:
        if len(ids) != 1:
            raise DBNError(
                f"{path}: holds instruments {ids.tolist()}; pass instrument_id to choose one"
            )
        instrument_id = int(ids[0])
    elif instrument_id not in ids:
        raise DBNError(f"{path}: instrument_id {instrument_id} not in file (has {ids.tolist()})")
    recs = recs[recs["instrument_id"] == instrument_id]
    stats: dict = {}
    events = mbo_to_events(recs, tick_size=tick_size, stats=stats)
    sym = symbol or _symbol_for(meta, instrument_id)
    dataset = str(getattr(meta, "dataset", ""))
    inst = Instrument(
        symbol=sym,
        tick_size=tick_size,
        tick_value=tick_value,
        exchange="CME",
        description=f"{sym} ({dataset} instrument {instrument_id}, Databento MBO)",
        price_decimals=2,
    )
    stats.update(dataset=dataset, instrument_id=int(instrument_id), file=path.name)
    return Recording(
        instrument=inst,
        events=events,
        source=f"Databento {dataset} MBO {path.name} (price levels rebuilt from orders)",
        extra={"dbn": stats},
    )
