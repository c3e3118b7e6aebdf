"""The plain Python/NumPy twin of the market model's kernels (:mod:`app.market.kernels`).

Same contract as :func:`~app.market.kernels.apply_events_nb`, :func:`~app.market.kernels.fill_live_nb`
and :func:`~app.market.kernels.value_area_nb` (arguments, state left behind, return values), with
different bookkeeping on purpose: the best prices are recomputed with ``np.flatnonzero`` when
needed instead of being tracked, and the traded columns are zeroed unconditionally instead of
lazily. Used by the tests as an independent check, by the benchmarks as the baseline and by
``MarketModel(use_numba=False)``; production code imports it only on that path.
"""

from __future__ import annotations

import numpy as np

from app.core.events import (
    KIND_DEPTH,
    KIND_QUOTE,
    KIND_TRADE,
    OP_CLEAR,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
)
from app.market.kernels import (
    F_CUMD,
    F_QAS,
    F_QBS,
    F_VOL,
    P_G,
    P_H,
    P_HOFF,
    P_R,
    P_SIZE,
    P_W,
    ST_ANCHOR,
    ST_BARS_FULL,
    ST_CHECK,
    ST_DONE,
    ST_FLUSH,
    S_BA,
    S_BAR,
    S_BB,
    S_CHECKED,
    S_COL,
    S_COLS_DONE,
    S_DROPPED,
    S_FLUSH,
    S_FLUSHTO,
    S_LASTPX,
    S_LASTTS,
    S_NBARS,
    S_NEV,
    S_NEXTW,
    S_NTRADES,
    S_QA,
    S_QB,
    S_SHI,
    S_SLO,
    anchor_index,
)


def _best(bid, ask):
    nzb = np.flatnonzero(bid > 0.0)
    nza = np.flatnonzero(ask > 0.0)
    return (int(nzb[-1]) if nzb.size else -1), (int(nza[0]) if nza.size else -1)


def apply_events_py(ev, start, P, S, F, book, ring, tdirty, sbase, bar_i, bar_f, fp, ovf):
    """Plain Python/NumPy twin of :func:`app.market.kernels.apply_events_nb` (same arguments,
    same result: ``(next event index, status, overflow count)``; layout in that module).

    It zeroes the traded columns unconditionally (``tdirty`` is accepted and left alone), which
    gives the same arrays as the kernel's lazy zeroing."""
    ts, price, size, norders = ev["ts"], ev["price"], ev["size"], ev["num_orders"]
    kind, side, op = ev["kind"], ev["side"], ev["op"]
    bid, ask, bidn, askn, sbuy, ssell = book
    hbid, hask, tbuy, tsell = ring
    fpb, fps = fp
    base, G, hoff, R, N, W, colns, barns, kcap, mr, mg, H = (int(x) for x in P[:P_SIZE])
    rows = np.arange(R)
    g = hoff + rows
    inside = (g >= 0) & (g < G)
    gi = g[inside]
    col = int(S[S_COL])
    nov = 0
    status = ST_DONE
    n = len(ts)
    i = int(start)

    def slots(p):
        return [p, H + p] if p < W else [p]

    while i < n:
        t = int(ts[i])
        k = int(kind[i])
        c = t // colns
        if col < 0:
            col = c
            S[S_FLUSH] = c
            for q in slots(c % H):
                tbuy[q] = 0.0
                tsell[q] = 0.0
        elif c > col:
            if int(S[S_CHECKED]) != c:
                bb, ba = _best(bid, ask)
                lp = int(S[S_LASTPX]) - base if S[S_LASTPX] >= 0 else -1
                a = anchor_index(bb, ba, lp)
                if a >= 0 and (a - hoff < mr or a - hoff >= R - mr or a < mg or a >= G - mg):
                    S[S_CHECKED] = c
                    status = ST_CHECK
                    break
            colb = np.zeros(R, np.float32)
            cola = np.zeros(R, np.float32)
            colb[inside] = bid[gi]
            cola[inside] = ask[gi]
            # close the open column, write the newest W columns of the gap, open c; stop where
            # a slot still holds a column for the history (resumed at S_NEXTW)
            nxt = int(S[S_NEXTW]) if S[S_NEXTW] >= 0 else col
            blocked = False
            while nxt <= c:
                if nxt == col + 1 and c - W > nxt:  # the model writes the older gap columns
                    if int(S[S_FLUSH]) <= col:
                        S[S_NEXTW], S[S_FLUSHTO] = nxt, col + 1
                        blocked = True
                        break
                    S[S_FLUSH] = c - W
                    nxt = c - W
                if nxt >= int(S[S_FLUSH]) + H:
                    S[S_NEXTW], S[S_FLUSHTO] = nxt, min(nxt, c - W + 1)
                    blocked = True
                    break
                if nxt < c:
                    sbase[nxt % H] = base + hoff
                    S[S_COLS_DONE] += 1
                for q in slots(nxt % H):
                    if nxt < c:
                        hbid[q] = colb
                        hask[q] = cola
                    if nxt != col:
                        tbuy[q] = 0.0
                        tsell[q] = 0.0
                nxt += 1
            if blocked:
                status = ST_FLUSH
                break
            S[S_NEXTW] = -1
            col = c
        px = int(price[i])
        s = int(side[i])
        if k == KIND_DEPTH:
            o = int(op[i])
            if o == OP_CLEAR:
                if s != SIDE_ASK:
                    bid[:] = 0.0
                    bidn[:] = 0.0
                if s != SIDE_BID:
                    ask[:] = 0.0
                    askn[:] = 0.0
                ovf[nov] = i
                nov += 1
            elif s in (SIDE_BID, SIDE_ASK):
                j = px - base
                if not 0 <= j < G:
                    if o == OP_SET and size[i] > 0.0 and (
                            (s == SIDE_BID and j >= G) or (s == SIDE_ASK and j < 0)):
                        status = ST_ANCHOR
                        break
                    ovf[nov] = i
                    nov += 1
                else:
                    sz, cnt = (bid, bidn) if s == SIDE_BID else (ask, askn)
                    if o == OP_SET and size[i] > 0.0:
                        sz[j] = size[i]
                        cnt[j] = norders[i]
                    else:
                        sz[j] = 0.0
                        cnt[j] = 0.0
        elif k == KIND_TRADE:
            q = float(size[i])
            b = t // barns
            if b > int(S[S_BAR]):
                if int(S[S_NBARS]) >= kcap:
                    status = ST_BARS_FULL
                    break
                kb = int(S[S_NBARS])
                S[S_NBARS] = kb + 1
                S[S_BAR] = b
                bar_i[kb] = (b * barns, px, px, px, px, 0)
                bar_f[kb] = 0.0
                fpb[kb] = 0.0
                fps[kb] = 0.0
            kb = int(S[S_NBARS]) - 1
            bar_i[kb, 2] = max(bar_i[kb, 2], px)
            bar_i[kb, 3] = min(bar_i[kb, 3], px)
            bar_i[kb, 4] = px
            bar_i[kb, 5] += 1
            bar_f[kb, 0] += q
            r = px - base - hoff
            sgn = 1.0 if s == SIDE_ASK else (-1.0 if s == SIDE_BID else 0.0)
            if sgn != 0.0:
                bar_f[kb, 1 if sgn > 0 else 2] += q
                bar_f[kb, 3] += sgn * q
                F[F_CUMD] += sgn * q
                if 0 <= r < R:  # float32 cells summed in float64, like the kernel
                    fp = fpb if sgn > 0 else fps
                    fp[kb, r] = float(fp[kb, r]) + q
                    tr = tbuy if sgn > 0 else tsell
                    for slot in slots(col % H):
                        tr[slot, r] = float(tr[slot, r]) + q
            F[F_VOL] += q
            j = px - base
            if 0 <= j < G:
                if sgn > 0:
                    sbuy[j] += q
                elif sgn < 0:
                    ssell[j] += q
                S[S_SLO] = min(int(S[S_SLO]), j)
                S[S_SHI] = max(int(S[S_SHI]), j)
            else:
                S[S_DROPPED] += 1
            S[S_LASTPX] = px
            S[S_NTRADES] += 1
        elif k == KIND_QUOTE:
            if s == SIDE_BID:
                S[S_QB] = px
                F[F_QBS] = size[i]
            elif s == SIDE_ASK:
                S[S_QA] = px
                F[F_QAS] = size[i]
        if t > S[S_LASTTS]:
            S[S_LASTTS] = t
        if k != 0:
            S[S_NEV] += 1
        i += 1
    S[S_BB], S[S_BA] = _best(bid, ask)
    S[S_COL] = col
    return i, status, nov


def fill_live_py(P, S, book, ring):
    """Twin of :func:`app.market.kernels.fill_live_nb`: write the current book into the open
    column's slot(s) of ``ring`` (float32 (4, H + W, R)); returns None."""
    bid, ask, hbid, hask = book[0], book[1], ring[0], ring[1]
    col = int(S[S_COL])
    if col < 0:
        return
    H, W, G, hoff, R = int(P[P_H]), int(P[P_W]), int(P[P_G]), int(P[P_HOFF]), int(P[P_R])
    g = hoff + np.arange(R)
    ok = (g >= 0) & (g < G)
    colb = np.zeros(R, np.float32)
    cola = np.zeros(R, np.float32)
    colb[ok] = bid[g[ok]]
    cola[ok] = ask[g[ok]]
    p = col % H
    for q in ([p, H + p] if p < W else [p]):
        hbid[q] = colb
        hask[q] = cola


def value_area_py(vol, lo, hi, fraction):
    """Twin of :func:`app.market.kernels.value_area_nb` (NumPy argmax + the same expansion rule).

    Parameters
    ----------
    vol : float64 (G,)
        Session volume per grid index, contracts.
    lo, hi : int
        Grid index range, inclusive.
    fraction : float
        Share of the volume the value area holds (0..1).

    Returns
    -------
    poc, val, vah : int
        Grid indices, ``(-1, -1, -1)`` when the range is empty or holds no volume.
    """
    if hi < lo:
        return -1, -1, -1
    seg = np.asarray(vol[lo : hi + 1], dtype=np.float64)
    total = float(seg.sum())
    if total <= 0.0:
        return -1, -1, -1
    poc = int(np.argmax(seg))
    a = b = poc
    acc = float(seg[poc])
    last = len(seg) - 1
    while acc < fraction * total and (a > 0 or b < last):
        up = float(seg[b + 1]) if b < last else -1.0
        dn = float(seg[a - 1]) if a > 0 else -1.0
        if up >= dn:
            b += 1
            acc += up
        else:
            a -= 1
            acc += dn
    return lo + poc, lo + a, lo + b
