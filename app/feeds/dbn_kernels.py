"""Databento MBO orders -> price-level events in one numba pass, straight from the DBN bytes.

Two implementations with one contract:

* :func:`mbo_events_nb` (here): the numba kernel :func:`_mbo_events` (:data:`app.core.jit.kernel` preset: ``nogil``,
  cached); the path :func:`app.feeds.dbn.read_dbn_mbo` takes;
* :func:`app.feeds.dbn_kernels_ref.mbo_events_py`: the plain Python twin (dicts of orders and
  levels), written differently on purpose, the tests' independent check and the benchmarks'
  baseline.

Both take the DBN record bytes as 64-bit words and return the same events and counters; the
rules (actions, sides, batches, snapshot, time, prices) and their sources are in
:mod:`app.feeds.dbn`.

Input layout
------------
``words``: ``uint64`` 1-D, the records' bytes read as little-endian 64-bit words, 7 words per
56-byte MBO record (Databento DBN specification, ``MboMsg``: ``RecordHeader`` {length u8,
rtype u8, publisher_id u16, instrument_id u32, ts_event u64}, order_id u64, price i64 (1e-9),
size u32, flags u8, channel_id u8, action c_char, side c_char, ts_recv u64, ts_in_delta i32,
sequence u32; the same in DBN v1, v2 and v3). Word ``7 i + j`` of record ``i``:

=====  =========================================================================
``j``  content
=====  =========================================================================
0      length (bits 0-7), rtype (8-15), publisher_id (16-31), instrument_id (32-63)
1      ts_event, ns
2      order_id
3      price, int64 in units of 1e-9
4      size (bits 0-31), flags (32-39), channel_id (40-47), action (48-55), side (56-63)
5      ts_recv, ns (the time used)
6      ts_in_delta (bits 0-31), sequence (32-63)
=====  =========================================================================

The order table is an open-addressing hash on ``order_id`` (linear probing, Fibonacci hashing,
backward-shift deletion, doubled when half full); the price levels are a second table keyed on
``2 * tick + side``. Both grow with the number of live orders and levels, not with the file.

Counters (``int64`` array, index constants ``C_*``): records of the instrument, unknown cancels,
modifies taken as adds, trades without a price, prices off the tick grid, orders resting at the
end.
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
from app.core.jit import kernel

#: Words (8 bytes) per DBN MBO record (56 bytes).
WORDS_PER_RECORD = 7

#: Counter indices of the returned counters array.
C_RECORDS, C_UNKNOWN_CANCEL, C_MODIFY_AS_ADD, C_NO_PRICE_TRADES, C_OFF_GRID, C_RESTING = range(6)
N_COUNTERS = 6

# DBN record constants (Databento DBN: flags, sentinel "no price"); duplicated from
# app.feeds.dbn (which imports this module) as typed constants for numba.
_F_LAST = 0x80
_F_SNAPSHOT = 0x20
_UNDEF_PRICE = np.int64(np.iinfo(np.int64).max)
_ACT_A, _ACT_C, _ACT_M, _ACT_R, _ACT_T = ord("A"), ord("C"), ord("M"), ord("R"), ord("T")
_SIDE_B, _SIDE_A = ord("B"), ord("A")

_U32 = np.uint64(32)
_U48 = np.uint64(48)
_U56 = np.uint64(56)
_MASK8 = np.uint64(0xFF)
_MASK32 = np.uint64(0xFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (Knuth, TAOCP vol. 3, 6.4)


# ---------------------------------------------------------------------- open-addressing table
@kernel
def _slot_of(keys, used, shift, key):  # pragma: no cover - compiled
    """Slot holding ``key``, or the empty slot where it would go (linear probing)."""
    mask = keys.shape[0] - 1
    j = np.int64((key * _GOLDEN) >> shift)
    while used[j] and keys[j] != key:
        j = (j + 1) & mask
    return j


@kernel
def _delete_slot(keys, used, vals, shift, j):  # pragma: no cover - compiled
    """Empty slot ``j`` and shift later members of its probe run back (no tombstones;
    Knuth, TAOCP vol. 3, 6.4, Algorithm R)."""
    mask = keys.shape[0] - 1
    used[j] = 0
    i = j
    while True:
        i = (i + 1) & mask
        if not used[i]:
            return
        home = np.int64((keys[i] * _GOLDEN) >> shift)
        # move i to j unless its home lies cyclically in (j, i]
        if (j < i and (home <= j or home > i)) or (j > i and home <= j and home > i):
            keys[j] = keys[i]
            used[j] = 1
            for c in range(vals.shape[1]):
                vals[j, c] = vals[i, c]
            used[i] = 0
            j = i


@kernel
def _grown(keys, used, vals, shift):  # pragma: no cover - compiled
    """The table rehashed into twice the slots; returns (keys, used, vals, shift)."""
    cap = keys.shape[0] * 2
    nshift = shift - np.uint64(1)  # one bit more of hash
    nk = np.zeros(cap, np.uint64)
    nu = np.zeros(cap, np.uint8)
    nv = np.zeros((cap, vals.shape[1]), np.int64)
    for i in range(keys.shape[0]):
        if used[i]:
            j = _slot_of(nk, nu, nshift, keys[i])
            nk[j] = keys[i]
            nu[j] = 1
            for c in range(vals.shape[1]):
                nv[j, c] = vals[i, c]
    return nk, nu, nv, nshift


@kernel
def _put_event(out, k, t, price, size, norders, kind, side, op, flags):  # pragma: no cover - compiled
    e = out[k]
    e.ts = t
    e.price = price
    e.size = size
    e.num_orders = norders
    e.kind = kind
    e.side = side
    e.op = op
    e.flags = flags


@kernel
def _put_depth(out, k, t, side, tick, lsize, lcount, found, flags):  # pragma: no cover - compiled
    if found:
        _put_event(out, k, t, tick, np.float64(lsize), lcount, KIND_DEPTH, side, OP_SET, flags)
    else:
        _put_event(out, k, t, tick, 0.0, 0, KIND_DEPTH, side, OP_DELETE, flags)


def mbo_events_nb(words: np.ndarray, instrument_id: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Decode DBN MBO records and rebuild price-level depth events and trades, in one pass.

    Parameters
    ----------
    words : numpy.ndarray, shape (7 n,), dtype uint64
        The ``n`` records' bytes as 64-bit words (layout in the module docstring), file order.
    instrument_id : int
        Databento instrument id to keep; ``-1`` keeps every record (one instrument).
    scale : float
        DBN price units per tick: ``tick_size * 1e9`` (ES: 2.5e8).

    Returns
    -------
    events : numpy.ndarray, dtype :data:`~app.core.events.EVENT_DTYPE`
        Depth and trade events in record order (rules: :mod:`app.feeds.dbn`).
    counters : numpy.ndarray, shape (6,), dtype int64
        Indexed by the ``C_*`` constants.
    """
    n = words.shape[0] // WORDS_PER_RECORD
    # at most 2 events per record (a moved order leaves one level and joins another) plus the
    # snapshot (a clear and at most one level per record); np.zeros maps untouched pages lazily
    room = np.zeros(3 * n + 2, EVENT_DTYPE)
    k, counters = _mbo_events(np.ascontiguousarray(words, dtype=np.uint64), int(instrument_id), float(scale), room)
    return room[:k], counters


@kernel
def _mbo_events(words, instrument_id, scale, out):  # pragma: no cover - compiled
    """The kernel of :func:`mbo_events_nb`: writes the events into ``out`` (room for
    ``3 n + 2``); returns (events written, counters)."""
    n_all = words.shape[0] // WORDS_PER_RECORD
    cnt = np.zeros(N_COUNTERS, np.int64)
    k = 0
    # orders: key order_id; vals side, tick, size
    oshift = np.uint64(64 - 12)
    okeys = np.zeros(1 << 12, np.uint64)
    oused = np.zeros(1 << 12, np.uint8)
    ovals = np.zeros((1 << 12, 3), np.int64)
    norders = 0
    # levels: key 2 * tick + side; vals size, count
    lshift = np.uint64(64 - 11)
    lkeys = np.zeros(1 << 11, np.uint64)
    lused = np.zeros(1 << 11, np.uint8)
    lvals = np.zeros((1 << 11, 2), np.int64)
    nlevels = 0

    ts = np.int64(-(1 << 62))
    prev_ts = ts
    last_depth = -1
    open_batch = False
    in_snapshot = False
    snapshot_done = False
    have_rec = False
    for r in range(n_all):
        b = r * WORDS_PER_RECORD
        w0 = words[b]
        if instrument_id >= 0 and np.int64(w0 >> _U32) != instrument_id:
            continue
        cnt[C_RECORDS] += 1
        w4 = words[b + 4]
        fl = np.int64((w4 >> _U32) & _MASK8)
        act = np.int64((w4 >> _U48) & _MASK8)
        sraw = np.int64(w4 >> _U56)
        size = np.int64(w4 & _MASK32)
        oid = words[b + 2]
        price = np.int64(words[b + 3])
        tr = np.int64(words[b + 5])
        prev_ts = ts
        if tr > ts or not have_rec:
            ts = tr
        have_rec = True
        valid = price != _UNDEF_PRICE
        tick = np.int64(0)
        if valid:
            tf = price / scale
            tick = np.int64(np.rint(tf))
            if abs(tf - tick) > 1e-6:
                cnt[C_OFF_GRID] += 1
        is_snap = (fl & _F_SNAPSHOT) != 0 and not snapshot_done
        if in_snapshot and not is_snap:
            k, last_depth = _emit_snapshot(out, k, prev_ts, lkeys, lused, lvals, lshift, nlevels)
            open_batch = False
            in_snapshot = False
            snapshot_done = True
        if is_snap and not in_snapshot:
            in_snapshot = True
        emit = not in_snapshot
        sd = SIDE_BID if sraw == _SIDE_B else SIDE_ASK if sraw == _SIDE_A else 0

        if act == _ACT_A:
            if sd == 0 or not valid:
                continue  # skipped whole (as the twin: no batch-end handling either)
            j = _slot_of(okeys, oused, oshift, oid)
            if oused[j]:  # duplicate add: replace the order
                os_, ot, oz = ovals[j, 0], ovals[j, 1], ovals[j, 2]
                nlevels = _level_remove(lkeys, lused, lvals, lshift, os_, ot, oz, True, nlevels)
                if emit:
                    _emit_level(out, k, ts, os_, ot, lkeys, lused, lvals, lshift)
                    last_depth = k
                    k += 1
                    open_batch = True
            else:
                oused[j] = 1
                okeys[j] = oid
                norders += 1
            ovals[j, 0], ovals[j, 1], ovals[j, 2] = sd, tick, size
            if norders * 2 > okeys.shape[0]:
                okeys, oused, ovals, oshift = _grown(okeys, oused, ovals, oshift)
            nlevels = _level_add(lkeys, lused, lvals, lshift, sd, tick, size, nlevels)
            if nlevels * 2 > lkeys.shape[0]:
                lkeys, lused, lvals, lshift = _grown(lkeys, lused, lvals, lshift)
            if emit:
                _emit_level(out, k, ts, sd, tick, lkeys, lused, lvals, lshift)
                last_depth = k
                k += 1
                open_batch = True
        elif act == _ACT_C:
            j = _slot_of(okeys, oused, oshift, oid)
            if not oused[j]:
                cnt[C_UNKNOWN_CANCEL] += 1
            else:
                os_, ot = ovals[j, 0], ovals[j, 1]
                sz = min(size, ovals[j, 2])
                ovals[j, 2] -= sz
                whole = ovals[j, 2] <= 0
                if whole:
                    _delete_slot(okeys, oused, ovals, oshift, j)
                    norders -= 1
                nlevels = _level_remove(lkeys, lused, lvals, lshift, os_, ot, sz, whole, nlevels)
                if emit:
                    _emit_level(out, k, ts, os_, ot, lkeys, lused, lvals, lshift)
                    last_depth = k
                    k += 1
                    open_batch = True
        elif act == _ACT_M:
            if sd != 0 and valid:
                j = _slot_of(okeys, oused, oshift, oid)
                if not oused[j]:
                    cnt[C_MODIFY_AS_ADD] += 1
                    oused[j] = 1
                    okeys[j] = oid
                    norders += 1
                    ovals[j, 0], ovals[j, 1], ovals[j, 2] = sd, tick, size
                    if norders * 2 > okeys.shape[0]:
                        okeys, oused, ovals, oshift = _grown(okeys, oused, ovals, oshift)
                    nlevels = _level_add(lkeys, lused, lvals, lshift, sd, tick, size, nlevels)
                    if nlevels * 2 > lkeys.shape[0]:
                        lkeys, lused, lvals, lshift = _grown(lkeys, lused, lvals, lshift)
                    if emit:
                        _emit_level(out, k, ts, sd, tick, lkeys, lused, lvals, lshift)
                        last_depth = k
                        k += 1
                        open_batch = True
                elif ovals[j, 0] != sd or ovals[j, 1] != tick:  # moved: leave the old level
                    os_, ot, oz = ovals[j, 0], ovals[j, 1], ovals[j, 2]
                    nlevels = _level_remove(lkeys, lused, lvals, lshift, os_, ot, oz, True, nlevels)
                    if emit:
                        _emit_level(out, k, ts, os_, ot, lkeys, lused, lvals, lshift)
                        last_depth = k
                        k += 1
                    ovals[j, 0], ovals[j, 1], ovals[j, 2] = sd, tick, size
                    nlevels = _level_add(lkeys, lused, lvals, lshift, sd, tick, size, nlevels)
                    if nlevels * 2 > lkeys.shape[0]:
                        lkeys, lused, lvals, lshift = _grown(lkeys, lused, lvals, lshift)
                    if emit:
                        _emit_level(out, k, ts, sd, tick, lkeys, lused, lvals, lshift)
                        last_depth = k
                        k += 1
                        open_batch = True
                else:  # same level: the size changes in place
                    ot = ovals[j, 1]
                    delta = size - ovals[j, 2]
                    ovals[j, 2] = size
                    lj = _slot_of(lkeys, lused, lshift, np.uint64(2 * ot + sd))
                    if lused[lj]:
                        lvals[lj, 0] += delta
                        if size <= 0:
                            _delete_slot(okeys, oused, ovals, oshift, j)
                            norders -= 1
                            lvals[lj, 1] -= 1
                        if lvals[lj, 1] <= 0 or lvals[lj, 0] <= 0:
                            _delete_slot(lkeys, lused, lvals, lshift, lj)
                            nlevels -= 1
                    if emit:
                        _emit_level(out, k, ts, sd, ot, lkeys, lused, lvals, lshift)
                        last_depth = k
                        k += 1
                        open_batch = True
        elif act == _ACT_R:
            okeys[:] = 0
            oused[:] = 0
            norders = 0
            lkeys[:] = 0
            lused[:] = 0
            nlevels = 0
            if emit:
                _put_event(out, k, ts, 0, 0.0, 0, KIND_DEPTH, SIDE_UNSET, OP_CLEAR, 0)
                last_depth = k
                k += 1
                open_batch = True
        elif act == _ACT_T and emit:
            if not valid:
                cnt[C_NO_PRICE_TRADES] += 1
            else:
                # DBN side = aggressor -> MIA side = the side traded against
                tside = SIDE_ASK if sraw == _SIDE_B else SIDE_BID if sraw == _SIDE_A else SIDE_UNSET
                _put_event(out, k, ts, tick, np.float64(size), 0, KIND_TRADE, tside, 0, 0)
                k += 1
        # F (fill) and N (none) do not change the book.
        if (fl & _F_LAST) != 0 and open_batch and emit:
            out[last_depth].flags |= FLAG_BATCH_END
            open_batch = False
    if in_snapshot:
        k, last_depth = _emit_snapshot(out, k, ts, lkeys, lused, lvals, lshift, nlevels)
        open_batch = False
    if open_batch and last_depth >= 0:
        out[last_depth].flags |= FLAG_BATCH_END
    cnt[C_RESTING] = norders
    return k, cnt


@kernel
def _level_add(lkeys, lused, lvals, lshift, side, tick, size, nlevels):  # pragma: no cover - compiled
    j = _slot_of(lkeys, lused, lshift, np.uint64(2 * tick + side))
    if lused[j]:
        lvals[j, 0] += size
        lvals[j, 1] += 1
        return nlevels
    lused[j] = 1
    lkeys[j] = np.uint64(2 * tick + side)
    lvals[j, 0] = size
    lvals[j, 1] = 1
    return nlevels + 1


@kernel
def _level_remove(lkeys, lused, lvals, lshift, side, tick, size, whole, nlevels):  # pragma: no cover - compiled
    j = _slot_of(lkeys, lused, lshift, np.uint64(2 * tick + side))
    if not lused[j]:
        return nlevels
    lvals[j, 0] -= size
    if whole:
        lvals[j, 1] -= 1
    if lvals[j, 1] <= 0 or lvals[j, 0] <= 0:
        _delete_slot(lkeys, lused, lvals, lshift, j)
        return nlevels - 1
    return nlevels


@kernel
def _emit_level(out, k, t, side, tick, lkeys, lused, lvals, lshift):  # pragma: no cover - compiled
    j = _slot_of(lkeys, lused, lshift, np.uint64(2 * tick + side))
    found = lused[j] != 0
    _put_depth(out, k, t, side, tick, lvals[j, 0], lvals[j, 1], found, 0)


@kernel
def _heapsort(a, n):  # pragma: no cover - compiled
    """Sort ``a[:n]`` ascending in place (heapsort, Williams 1964; a hand loop compiles in a
    fraction of the time numba's ``np.sort`` takes)."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(a, start, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, 0, end)


@kernel
def _sift_down(a, root, n):  # pragma: no cover - compiled
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and a[child + 1] > a[child]:
            child += 1
        if a[root] >= a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child


@kernel
def _emit_snapshot(out, k, t, lkeys, lused, lvals, lshift, nlevels):  # pragma: no cover - compiled
    """OP_CLEAR then every level (bids high to low, asks low to high), all FLAG_SNAPSHOT, the
    last FLAG_BATCH_END. Returns (k, index of the last event)."""
    _put_event(out, k, t, 0, 0.0, 0, KIND_DEPTH, SIDE_UNSET, OP_CLEAR, FLAG_SNAPSHOT)
    k += 1
    for side in range(SIDE_BID, SIDE_ASK + 1):
        ticks = np.empty(nlevels, np.int64)
        m = 0
        for j in range(lkeys.shape[0]):
            if lused[j] and np.int64(lkeys[j] & np.uint64(1)) == (side & 1):
                ticks[m] = (np.int64(lkeys[j]) - side) // 2
                m += 1
        _heapsort(ticks, m)
        for q in range(m):
            tick = ticks[m - 1 - q] if side == SIDE_BID else ticks[q]
            j = _slot_of(lkeys, lused, lshift, np.uint64(2 * tick + side))
            _put_depth(out, k, t, side, tick, lvals[j, 0], lvals[j, 1], True, FLAG_SNAPSHOT)
            k += 1
    out[k - 1].flags |= FLAG_BATCH_END
    return k, k - 1
