"""numba kernels decoding Sierra Chart records into event columns in one pass.

Each kernel has a plain-NumPy twin in :mod:`app.feeds.sierra_kernels_ref` that defines the
rules and is held to the same tests: :func:`~app.feeds.sierra_kernels_ref.depth_records_to_events_numpy`
and :func:`~app.feeds.sierra_kernels_ref.scid_to_events_numpy`. The kernels read the record
fields as (strided) array views and write the event fields directly (no temporaries), compiled
with the :data:`app.core.jit.kernel` preset: ``nogil`` (the follower thread does not hold the GIL
while decoding) and cached in the user cache folder.
"""

from __future__ import annotations

import numpy as np

from app.core.jit import kernel

# constants repeated here as literals for numba (checked against app.core.events in the tests)
_KIND_DEPTH = 1
_KIND_TRADE = 2
_KIND_QUOTE = 3
_SIDE_BID = 1
_SIDE_ASK = 2
_OP_SET = 1
_OP_DELETE = 2
_OP_CLEAR = 3
_FLAG_BATCH_END = 1
_FLAG_SNAPSHOT = 2
_SC_EPOCH_OFFSET_US = 25569 * 86_400 * 1_000_000


@kernel
def depth_kernel(dt, cmd, flg, nord, px, qty, mult, tick, size_div, o_ts, o_price, o_size, o_nord, o_kind, o_side,
                 o_op, o_flags):  # pragma: no cover - compiled; the NumPy twin is the reference
    """Decode depth records into event columns; returns (kept, dropped, zero_quantity_sets)."""
    n = dt.shape[0]
    m = 0
    dropped = 0
    zero_sets = 0
    batch_start = 0
    has_clear = False
    for i in range(n):
        c = cmd[i]
        end = (flg[i] & 1) != 0
        if c < 1 or c > 7:
            dropped += 1
            if end and m > 0:
                o_flags[m - 1] |= _FLAG_BATCH_END
                if has_clear:
                    for j in range(batch_start, m):
                        o_flags[j] |= _FLAG_SNAPSHOT
                has_clear = False
                batch_start = m
            continue
        o_ts[m] = (dt[i] - _SC_EPOCH_OFFSET_US) * 1000
        q = qty[i]
        o_size[m] = q / size_div
        o_nord[m] = nord[i]
        o_kind[m] = _KIND_DEPTH
        if c == 1:
            o_op[m] = _OP_CLEAR
            o_side[m] = 0
            o_price[m] = 0
            has_clear = True
        else:
            if c == 2 or c == 4:
                o_side[m] = _SIDE_BID
            elif c == 3 or c == 5:
                o_side[m] = _SIDE_ASK
            elif c == 6:
                o_side[m] = _SIDE_BID
            else:
                o_side[m] = _SIDE_ASK
            if c <= 5:
                if q == 0:
                    o_op[m] = _OP_DELETE
                    zero_sets += 1
                else:
                    o_op[m] = _OP_SET
            else:
                o_op[m] = _OP_DELETE
            o_price[m] = np.int64(np.rint((np.float64(px[i]) * mult) / tick))
        o_flags[m] = _FLAG_BATCH_END if end else 0
        m += 1
        if end:
            if has_clear:
                for j in range(batch_start, m):
                    o_flags[j] |= _FLAG_SNAPSHOT
            has_clear = False
            batch_start = m
    if has_clear:  # an unfinished batch that holds a clear
        for j in range(batch_start, m):
            o_flags[j] |= _FLAG_SNAPSHOT
    return m, dropped, zero_sets


@kernel
def scid_kernel(dt, open_, high, low, close, tvol, bvol, avol, mult, tick, size_div, quotes, mark1, mark2,
                o_ts, o_price, o_size, o_kind, o_side):  # pragma: no cover - compiled
    """Decode scid tick records into quote/trade event columns; returns the number of events."""
    n = dt.shape[0]
    m = 0
    for i in range(n):
        o = open_[i]
        if not (o == 0 or o == mark1 or o == mark2):
            continue
        ts = (dt[i] - _SC_EPOCH_OFFSET_US) * 1000
        lo = np.float64(low[i]) * mult
        hi = np.float64(high[i]) * mult
        if quotes and lo > 0:
            o_ts[m] = ts
            o_price[m] = np.int64(np.rint(lo / tick))
            o_size[m] = 0.0
            o_kind[m] = _KIND_QUOTE
            o_side[m] = _SIDE_BID
            m += 1
        if quotes and hi > 0:
            o_ts[m] = ts
            o_price[m] = np.int64(np.rint(hi / tick))
            o_size[m] = 0.0
            o_kind[m] = _KIND_QUOTE
            o_side[m] = _SIDE_ASK
            m += 1
        v = tvol[i]
        if v > 0:
            c = close[i]
            bv = bvol[i]
            av = avol[i]
            if av > bv:
                s = _SIDE_ASK
            elif bv > av:
                s = _SIDE_BID
            elif low[i] > 0 and c <= low[i]:
                s = _SIDE_BID
            elif high[i] > 0 and c >= high[i]:
                s = _SIDE_ASK
            else:
                s = 0
            o_ts[m] = ts
            o_price[m] = np.int64(np.rint((np.float64(c) * mult) / tick))
            o_size[m] = v / size_div
            o_kind[m] = _KIND_TRADE
            o_side[m] = s
            m += 1
    return m
