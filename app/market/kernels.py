"""The market model's hot loop: apply a batch of events to the book, the heatmap ring, the
session volume and the footprint bars, in one pass.

Two implementations with one contract:

* :func:`apply_events_nb` (here): numba, the :data:`app.core.jit.kernel` preset (``nogil``,
  cached; the engine's path);
* :func:`app.market.kernels_ref.apply_events_py`: the plain Python/NumPy twin, written
  differently on purpose (it does not track the best prices incrementally; it recomputes them
  with ``np.flatnonzero`` when it needs them), used by the tests as an independent check, by the
  benchmarks as the baseline and by ``MarketModel(use_numba=False)``.

Both take the same arguments and leave the same state; :class:`app.market.model.MarketModel`
owns the arrays and drives the kernel (re-anchoring, re-centring, overflow levels).

Layout of the arrays (all owned by the model)
---------------------------------------------
Events: ``ev``, a 1-D :data:`~app.core.events.EVENT_DTYPE` array (one argument instead of seven
column views: the call overhead per batch matters for small live batches).

Book grid, ``G`` ticks wide, index ``j`` is price ``P[P_BASE] + j`` ticks: ``book`` float64
``(6, G)``, rows ``bid, ask, bidn, askn, sbuy, ssell``: resting size (contracts), orders at the
level, and session volume traded at the ask (``sbuy``, buyer aggressor) / at the bid (``ssell``).

Heatmap hot ring, time-major, ``H`` slots (the window ``W`` plus one chunk of columns) plus a
``W``-column mirror (double write): ``ring`` float32 ``(4, H + W, R)``, planes ``hbid, hask,
tbuy, tsell``; ``tdirty`` uint8 ``(H,)`` marks slots whose traded volume is not all zero (the
kernel zeroes only those when a slot is reused); ``sbase`` int64 ``(H,)`` is the price (ticks)
of row 0 when the slot was written (the model re-centres only the newest window in place; older
columns are re-aligned when read); heatmap row ``r`` is grid index ``P[P_HOFF] + r``. Logical
column ``c`` (``ts // column_ns``) lives in slot ``c % H`` and, when that slot is ``< W``, also
in slot ``H + c % H``; so the ``W`` newest columns ending at ``c`` are the plain slice
``[s, s + W)`` with ``s = (c - W + 1) % H`` (no ``np.roll``). ``hbid/hask`` hold the resting
size at the end of the column; ``tbuy/tsell`` the volume traded during it.

The longer history lives outside the kernel (:mod:`app.market.history`, chunks allocated as
columns arrive): columns older than ``S[S_FLUSH]`` have been handed to it. Before the kernel
writes a slot that still holds a column the history has not taken, it stops with
:data:`ST_FLUSH`: the model hands the columns ``[S[S_FLUSH], S[S_FLUSHTO])`` over (all of
them are closed and older than the newest window, so no re-centre moves them any more), sets
``S[S_FLUSH] = S[S_FLUSHTO]`` and calls again from the same event (the advance resumes at
``S[S_NEXTW]``). Of a gap longer than the window the kernel writes only the newest ``W``
columns; it hands the closed column over first and moves ``S[S_FLUSH]`` past the others, which
the model writes to the history as a run of that column (the book unchanged, nothing traded).

Bars, a linear buffer of ``KCAP`` bars (the model compacts it when full):
``bar_i`` int64 ``(KCAP, 6)``: open time ns, open, high, low, close (ticks), trades;
``bar_f`` float64 ``(KCAP, 4)``: volume, buy volume, sell volume, delta (contracts);
``fp`` float32 ``(2, KCAP, R)``, planes ``fpb, fps``: footprint volume at the ask / at the bid per
heatmap row.

An event of kind 0 is a clock tick: it only moves time (closes the columns it passes).

Return value ``(i, status, n_ovf)``: the index of the next event to apply, a status, and how
many event indices were written to ``ovf`` (events the grid cannot hold, applied by the model to
its overflow levels, plus every ``OP_CLEAR``). Status :data:`ST_DONE` (all applied),
:data:`ST_CHECK` (a new column starts and the anchor is near an edge: re-centre, then call again
from ``i``), :data:`ST_ANCHOR` (event ``i`` sets a bid above or an ask below the grid: re-anchor
the grid around it, then call again from ``i``), :data:`ST_BARS_FULL` (compact the bars, call
again from ``i``), :data:`ST_FLUSH` (hand the old columns to the history, see above, call again
from ``i``).
"""

from __future__ import annotations

from app.core.events import (
    KIND_DEPTH,
    KIND_QUOTE,
    KIND_TRADE,
    OP_CLEAR,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
)
from app.core.jit import kernel

# ---- parameter slots (int64 array P) ------------------------------------------------------
P_BASE = 0  # price (ticks) of grid index 0
P_G = 1  # grid width
P_HOFF = 2  # grid index of heatmap row 0
P_R = 3  # heatmap rows
P_N = 4  # tier-0 history columns (the model's store; not read by the kernel)
P_W = 5  # mirror width (window)
P_COLNS = 6  # column width, ns
P_BARNS = 7  # bar width, ns
P_KCAP = 8  # bar buffer capacity
P_MARGIN_R = 9  # heatmap re-centre margin, rows
P_MARGIN_G = 10  # grid re-anchor margin, ticks
P_H = 11  # slots of the hot ring the kernel writes (window + one chunk)
P_SIZE = 12

# ---- state slots (int64 array S) ----------------------------------------------------------
S_BB = 0  # grid index of the best bid, -1 when the grid's bid side is empty
S_BA = 1  # grid index of the best ask, -1 when empty
S_COL = 2  # open logical column (ts // column_ns), -1 before the first event
S_BAR = 3  # open bar number (ts // bar_ns), -1 before the first trade
S_NBARS = 4  # bars used in the buffer (the open bar is NBARS - 1)
S_SLO = 5  # lowest grid index with session volume (G when none)
S_SHI = 6  # highest grid index with session volume (-1 when none)
S_QB = 7  # last quote bid, ticks (-1 none)
S_QA = 8  # last quote ask, ticks (-1 none)
S_LASTTS = 9  # latest event time applied (running max), ns
S_LASTPX = 10  # last trade price, ticks (-1 none)
S_CHECKED = 11  # column for which the edge check already ran
S_NEV = 12  # events applied (kind 0 clock ticks not counted)
S_NTRADES = 13  # trades applied
S_DROPPED = 14  # trades outside the grid (session volume not counted)
S_COLS_DONE = 15  # columns closed so far (for re-centring only the used part of the ring)
S_FLUSH = 16  # oldest column the history has not taken yet (older ones left the hot ring)
S_FLUSHTO = 17  # with ST_FLUSH: the history may take the columns [S_FLUSH, S_FLUSHTO)
S_NEXTW = 18  # column a blocked advance resumes at (-1: no advance under way)
S_SIZE = 19

# ---- float state slots (float64 array F) --------------------------------------------------
F_CUMD = 0  # cumulative delta, contracts
F_QBS = 1  # last quote bid size
F_QAS = 2  # last quote ask size
F_VOL = 3  # session volume
F_SIZE = 4

ST_DONE = 0
ST_CHECK = 1
ST_ANCHOR = 2
ST_BARS_FULL = 3
ST_FLUSH = 4


def anchor_index(bb, ba, lastpx_idx):
    """Grid index the heatmap centres on: mid of the best prices, one side, or the last trade.

    Plain Python, compiled for the kernel (``_anchor``) and called as is by the twin.

    Parameters
    ----------
    bb, ba : int
        Grid indices of the best bid / best ask (-1 = side empty).
    lastpx_idx : int
        Grid index of the last trade price (-1 = none).

    Returns
    -------
    int
        Grid index, -1 when there is nothing to centre on.
    """
    if bb >= 0 and ba >= 0:
        return (bb + ba) // 2
    if bb >= 0:
        return bb
    if ba >= 0:
        return ba
    return lastpx_idx


def _apply_events(ev, start, P, S, F, book, ring, tdirty, sbase, bar_i, bar_f, fp, ovf):
    ts = ev["ts"]
    price = ev["price"]
    size = ev["size"]
    norders = ev["num_orders"]
    kind = ev["kind"]
    side = ev["side"]
    op = ev["op"]
    bid = book[0]
    ask = book[1]
    bidn = book[2]
    askn = book[3]
    sbuy = book[4]
    ssell = book[5]
    hbid = ring[0]
    hask = ring[1]
    tbuy = ring[2]
    tsell = ring[3]
    fpb = fp[0]
    fps = fp[1]
    base = P[P_BASE]
    G = P[P_G]
    hoff = P[P_HOFF]
    R = P[P_R]
    W = P[P_W]
    H = P[P_H]
    colns = P[P_COLNS]
    barns = P[P_BARNS]
    kcap = P[P_KCAP]
    mr = P[P_MARGIN_R]
    mg = P[P_MARGIN_G]
    bb = S[S_BB]
    ba = S[S_BA]
    col = S[S_COL]
    nov = 0
    n = ts.shape[0]
    i = start
    status = ST_DONE
    while i < n:
        t = ts[i]
        k = kind[i]
        c = t // colns
        if col < 0:
            col = c
            S[S_FLUSH] = c
            p = c % H
            if tdirty[p]:
                tbuy[p, :] = 0.0
                tsell[p, :] = 0.0
                if p < W:
                    tbuy[H + p, :] = 0.0
                    tsell[H + p, :] = 0.0
                tdirty[p] = 0
        elif c > col:
            if S[S_CHECKED] != c:
                lp = S[S_LASTPX] - base if S[S_LASTPX] >= 0 else -1
                a = _anchor(bb, ba, lp)
                if a >= 0:
                    row = a - hoff
                    if row < mr or row >= R - mr or a < mg or a >= G - mg:
                        S[S_CHECKED] = c
                        status = ST_CHECK
                        break
            # close the open column, then the gap columns (the newest W of them; the model
            # writes older ones) with the (unchanged) book, then open column c; the model keeps the heatmap rows inside
            # the grid (0 <= hoff <= G - R). A slot that still holds a column the history has
            # not taken yet stops the advance (ST_FLUSH); the next call resumes at S_NEXTW.
            nxt = S[S_NEXTW]
            if nxt < 0:
                nxt = col
            blocked = False
            while nxt <= c:
                if nxt == col + 1 and c - W > nxt:  # a gap longer than the window
                    if S[S_FLUSH] <= col:  # hand the closed columns over first
                        S[S_NEXTW] = nxt
                        S[S_FLUSHTO] = col + 1
                        blocked = True
                        break
                    # the model writes the skipped columns [col + 1, c - W) as a run of the
                    # closed column (the book stood unchanged, nothing traded)
                    S[S_FLUSH] = c - W
                    nxt = c - W
                if nxt >= S[S_FLUSH] + H:
                    S[S_NEXTW] = nxt
                    fl = c - W + 1
                    if nxt < fl:
                        fl = nxt
                    S[S_FLUSHTO] = fl
                    blocked = True
                    break
                p = nxt % H
                if nxt < c:
                    sbase[p] = base + hoff
                    hb = hbid[p]
                    ha = hask[p]
                    for r in range(R):
                        hb[r] = bid[hoff + r]
                    for r in range(R):
                        ha[r] = ask[hoff + r]
                    if p < W:
                        hbid[H + p, :] = hb
                        hask[H + p, :] = ha
                    S[S_COLS_DONE] += 1
                if nxt != col and tdirty[p]:
                    tbuy[p, :] = 0.0
                    tsell[p, :] = 0.0
                    if p < W:
                        tbuy[H + p, :] = 0.0
                        tsell[H + p, :] = 0.0
                    tdirty[p] = 0
                nxt += 1
            if blocked:
                status = ST_FLUSH
                break
            S[S_NEXTW] = -1
            col = c
        px = price[i]
        s = side[i]
        if k == KIND_DEPTH:
            o = op[i]
            if o == OP_CLEAR:
                if s != SIDE_ASK:
                    for j in range(G):
                        bid[j] = 0.0
                        bidn[j] = 0.0
                    bb = -1
                if s != SIDE_BID:
                    for j in range(G):
                        ask[j] = 0.0
                        askn[j] = 0.0
                    ba = -1
                ovf[nov] = i
                nov += 1
            elif s == SIDE_BID or s == SIDE_ASK:
                j = px - base
                if j < 0 or j >= G:
                    if o == OP_SET and size[i] > 0.0 and (
                            (s == SIDE_BID and j >= G) or (s == SIDE_ASK and j < 0)):
                        status = ST_ANCHOR
                        break
                    ovf[nov] = i
                    nov += 1
                else:
                    q = size[i]
                    if s == SIDE_BID:
                        if o == OP_SET and q > 0.0:
                            bid[j] = q
                            bidn[j] = norders[i]
                            if j > bb:
                                bb = j
                        else:
                            bid[j] = 0.0
                            bidn[j] = 0.0
                            if j == bb:
                                bb = -1
                                jj = j - 1
                                while jj >= 0:
                                    if bid[jj] > 0.0:
                                        bb = jj
                                        break
                                    jj -= 1
                    else:
                        if o == OP_SET and q > 0.0:
                            ask[j] = q
                            askn[j] = norders[i]
                            if ba < 0 or j < ba:
                                ba = j
                        else:
                            ask[j] = 0.0
                            askn[j] = 0.0
                            if j == ba:
                                ba = -1
                                jj = j + 1
                                while jj < G:
                                    if ask[jj] > 0.0:
                                        ba = jj
                                        break
                                    jj += 1
        elif k == KIND_TRADE:
            q = size[i]
            b = t // barns
            if b != S[S_BAR] and b > S[S_BAR]:
                if S[S_NBARS] >= kcap:
                    status = ST_BARS_FULL
                    break
                kb = S[S_NBARS]
                S[S_NBARS] = kb + 1
                S[S_BAR] = b
                bar_i[kb, 0] = b * barns
                bar_i[kb, 1] = px
                bar_i[kb, 2] = px
                bar_i[kb, 3] = px
                bar_i[kb, 4] = px
                bar_i[kb, 5] = 0
                for m in range(4):
                    bar_f[kb, m] = 0.0
                for r in range(R):
                    fpb[kb, r] = 0.0
                    fps[kb, r] = 0.0
            kb = S[S_NBARS] - 1
            if px > bar_i[kb, 2]:
                bar_i[kb, 2] = px
            if px < bar_i[kb, 3]:
                bar_i[kb, 3] = px
            bar_i[kb, 4] = px
            bar_i[kb, 5] += 1
            bar_f[kb, 0] += q
            r = px - base - hoff
            p = col % H
            tdirty[p] = 1
            if s == SIDE_ASK:
                bar_f[kb, 1] += q
                bar_f[kb, 3] += q
                F[F_CUMD] += q
                if r >= 0 and r < R:
                    fpb[kb, r] += q
                    tbuy[p, r] += q
                    if p < W:
                        tbuy[H + p, r] += q
            elif s == SIDE_BID:
                bar_f[kb, 2] += q
                bar_f[kb, 3] -= q
                F[F_CUMD] -= q
                if r >= 0 and r < R:
                    fps[kb, r] += q
                    tsell[p, r] += q
                    if p < W:
                        tsell[H + p, r] += q
            F[F_VOL] += q
            j = px - base
            if j >= 0 and j < G:
                if s == SIDE_ASK:
                    sbuy[j] += q
                elif s == SIDE_BID:
                    ssell[j] += q
                if j < S[S_SLO]:
                    S[S_SLO] = j
                if j > S[S_SHI]:
                    S[S_SHI] = j
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
    S[S_BB] = bb
    S[S_BA] = ba
    S[S_COL] = col
    return i, status, nov


def _fill_live(P, S, book, ring):
    bid = book[0]
    ask = book[1]
    hbid = ring[0]
    hask = ring[1]
    col = S[S_COL]
    if col < 0:
        return
    H = P[P_H]
    W = P[P_W]
    hoff = P[P_HOFF]
    p = col % H
    hb = hbid[p]
    ha = hask[p]
    for r in range(P[P_R]):
        hb[r] = bid[hoff + r]
    for r in range(P[P_R]):
        ha[r] = ask[hoff + r]
    if p < W:
        hbid[H + p, :] = hb
        hask[H + p, :] = ha


def _value_area(vol, lo, hi, fraction):
    """POC and value area over ``vol[lo:hi+1]``; returns grid indices (poc, val, vah)."""
    if hi < lo:
        return -1, -1, -1
    poc = lo
    total = 0.0
    for j in range(lo, hi + 1):
        total += vol[j]
        if vol[j] > vol[poc]:
            poc = j
    if total <= 0.0:
        return -1, -1, -1
    a = poc
    b = poc
    acc = vol[poc]
    goal = fraction * total
    while acc < goal and (a > lo or b < hi):
        up = vol[b + 1] if b < hi else -1.0
        dn = vol[a - 1] if a > lo else -1.0
        if up >= dn:
            b += 1
            acc += up
        else:
            a -= 1
            acc += dn
    return poc, a, b


_anchor = kernel(anchor_index)
apply_events_nb = kernel(_apply_events)
fill_live_nb = kernel(_fill_live)
value_area_nb = kernel(_value_area)
