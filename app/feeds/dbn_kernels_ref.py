"""Plain Python/NumPy twin of :func:`app.feeds.dbn_kernels.mbo_events_nb`.

Written differently on purpose: the record fields are cut out of the 64-bit words with
vectorised NumPy shifts, and the book is two Python dicts (orders by ``order_id``, levels by
price per side) walked in a Python loop. Same arguments, same results (events and counters),
same rules (:mod:`app.feeds.dbn`); the tests' independent check and the benchmarks' baseline.
"""

from __future__ import annotations

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
)
from app.feeds.dbn_kernels import (
    C_MODIFY_AS_ADD,
    C_NO_PRICE_TRADES,
    C_OFF_GRID,
    C_RECORDS,
    C_RESTING,
    C_UNKNOWN_CANCEL,
    N_COUNTERS,
    WORDS_PER_RECORD,
)

_F_LAST = 0x80
_F_SNAPSHOT = 0x20
_UNDEF_PRICE = np.iinfo(np.int64).max


def mbo_fields(words: np.ndarray, instrument_id: int = -1) -> dict[str, np.ndarray]:
    """Cut the MBO fields the book needs out of the records' 64-bit words (NumPy, vectorised).

    Parameters
    ----------
    words : numpy.ndarray, shape (7 n,), dtype uint64
        Layout: :mod:`app.feeds.dbn_kernels`.
    instrument_id : int
        Keep only this Databento instrument id; ``-1`` keeps every record.

    Returns
    -------
    dict of numpy.ndarray, each shape (m,)
        ``instrument_id`` (uint64), ``order_id`` (uint64), ``price`` (int64, 1e-9 units),
        ``size`` (int64, contracts), ``flags``, ``action``, ``side`` (int64 codes: the ASCII
        byte) and ``ts_recv`` (int64 ns).
    """
    w = np.asarray(words, dtype=np.uint64).reshape(-1, WORDS_PER_RECORD)
    inst = w[:, 0] >> np.uint64(32)
    if instrument_id >= 0:
        w = w[inst == np.uint64(instrument_id)]
        inst = w[:, 0] >> np.uint64(32)
    w4 = w[:, 4]
    return {
        "instrument_id": inst,
        "order_id": w[:, 2].copy(),
        "price": w[:, 3].view(np.int64).copy(),
        "size": (w4 & np.uint64(0xFFFFFFFF)).astype(np.int64),
        "flags": ((w4 >> np.uint64(32)) & np.uint64(0xFF)).astype(np.int64),
        "action": ((w4 >> np.uint64(48)) & np.uint64(0xFF)).astype(np.int64),
        "side": (w4 >> np.uint64(56)).astype(np.int64),
        "ts_recv": w[:, 5].view(np.int64).copy(),
    }


def mbo_events_py(words: np.ndarray, instrument_id: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Python twin of :func:`app.feeds.dbn_kernels.mbo_events_nb` (same parameters and returns).

    Parameters
    ----------
    words : numpy.ndarray, shape (7 n,), dtype uint64
        The records' bytes as 64-bit words, file order.
    instrument_id : int
        Instrument to keep; ``-1`` keeps every record.
    scale : float
        DBN price units per tick (``tick_size * 1e9``).

    Returns
    -------
    events : numpy.ndarray, dtype EVENT_DTYPE
    counters : numpy.ndarray, shape (6,), dtype int64
    """
    f = mbo_fields(words, instrument_id)
    n = len(f["price"])
    cnt = np.zeros(N_COUNTERS, np.int64)
    cnt[C_RECORDS] = n
    price_raw = f["price"]
    valid_price = price_raw != _UNDEF_PRICE
    ticks_f = np.where(valid_price, price_raw, 0) / scale
    ticks = np.rint(ticks_f).astype(np.int64)
    cnt[C_OFF_GRID] = int(np.count_nonzero(valid_price & (np.abs(ticks_f - ticks) > 1e-6)))
    ts_l = np.maximum.accumulate(f["ts_recv"]).tolist() if n else []
    actions = f["action"].tolist()
    sides = f["side"].tolist()
    flags = f["flags"].tolist()
    sizes = f["size"].tolist()
    oids = f["order_id"].tolist()
    tick_l = ticks.tolist()
    vp = valid_price.tolist()

    rows: list[list] = []  # [ts, price, size, num_orders, kind, side, op, flags]
    orders: dict[int, list] = {}  # order_id -> [side, tick, size]
    lv = {SIDE_BID: {}, SIDE_ASK: {}}  # tick -> [size, count]
    last_depth = -1
    open_batch = False
    side_code = {ord("B"): SIDE_BID, ord("A"): SIDE_ASK}
    trade_side = {ord("B"): SIDE_ASK, ord("A"): SIDE_BID}  # aggressor -> side traded against
    A, C, M, R, T = (ord(c) for c in "ACMRT")

    def emit_level(side, tick, t, emit):
        nonlocal last_depth, open_batch
        if not emit:
            return
        lev = lv[side].get(tick)
        if lev is None:
            rows.append([t, tick, 0.0, 0, KIND_DEPTH, side, OP_DELETE, 0])
        else:
            rows.append([t, tick, float(lev[0]), lev[1], KIND_DEPTH, side, OP_SET, 0])
        last_depth = len(rows) - 1
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
        rows.append([t, 0, 0.0, 0, KIND_DEPTH, SIDE_UNSET, OP_CLEAR, FLAG_SNAPSHOT])
        for side, rev in ((SIDE_BID, True), (SIDE_ASK, False)):
            for tick in sorted(lv[side], reverse=rev):
                s, c = lv[side][tick]
                rows.append([t, tick, float(s), c, KIND_DEPTH, side, OP_SET, FLAG_SNAPSHOT])
        rows[-1][7] |= FLAG_BATCH_END
        last_depth = len(rows) - 1
        open_batch = False

    in_snapshot = False
    snapshot_done = False
    for i in range(n):
        fl = flags[i]
        act = actions[i]
        t = ts_l[i]
        is_snap = bool(fl & _F_SNAPSHOT) and not snapshot_done
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
                cnt[C_UNKNOWN_CANCEL] += 1
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
                cnt[C_MODIFY_AS_ADD] += 1
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
                rows.append([t, 0, 0.0, 0, KIND_DEPTH, SIDE_UNSET, OP_CLEAR, 0])
                last_depth = len(rows) - 1
                open_batch = True
        elif act == T and emit:
            if not vp[i]:
                cnt[C_NO_PRICE_TRADES] += 1
            else:
                rows.append([t, tick_l[i], float(sizes[i]), 0, KIND_TRADE,
                             trade_side.get(sides[i], SIDE_UNSET), 0, 0])
        # F (fill) and N (none) do not change the book.
        if (fl & _F_LAST) and open_batch and emit:
            rows[last_depth][7] |= FLAG_BATCH_END
            open_batch = False
    if in_snapshot:
        emit_snapshot(ts_l[n - 1])
    if open_batch and last_depth >= 0:
        rows[last_depth][7] |= FLAG_BATCH_END
    cnt[C_RESTING] = len(orders)

    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    if rows:
        cols = list(zip(*rows))
        for name, col in zip(("ts", "price", "size", "num_orders", "kind", "side", "op", "flags"), cols):
            out[name] = col
    return out, cnt
