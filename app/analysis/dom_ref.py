"""Plain-NumPy twin of the six DOM detectors, :func:`app.analysis.dom.dom_scan`.

:func:`dom_scan_np` takes the kernel's arguments and fills the same ``out`` (float64 (12, 4)),
but recomputes every window from the heatmap history on each call (no running sums), so it is an
independent check of the kernel's incremental bookkeeping. Used by the tests (every detector
assertion runs on both), the benchmarks (baseline) and ``Analyzers(use_numba=False)``.
"""

from __future__ import annotations

import math

import numpy as np

from app.analysis.dom import (
    EPS,
    Q_ABS_COLS,
    Q_ABS_GIVE,
    Q_ABS_MINVOL,
    Q_ABS_RATIO,
    Q_DEPTH,
    Q_ICE_COLS,
    Q_ICE_MINVOL,
    Q_ICE_RATIO,
    Q_ICE_TYP,
    Q_LAD_GROWTH,
    Q_LAD_MIN,
    Q_LAD_STEP,
    Q_SPOOF_COLS,
    Q_SPOOF_DIST,
    Q_SPOOF_RATIO,
    Q_SPOOF_TRADED,
    Q_SQ_COLS,
    Q_SQ_IMB,
    Q_SQ_LEVELS,
    Q_SQ_SPREAD,
    Q_SQ_THIN,
    Q_WALL_MIN,
    Q_WALL_NB,
    Q_WALL_RATIO,
    N_DOM_SLOTS,
    SPOOF_GONE_FRAC,
)


def dom_scan_np(bid, ask, hb, ha, tb, tsell, best_bid, best_ask, base, col0, params, sums, meta, out):
    """Plain NumPy twin of :func:`app.analysis.dom.dom_scan`.

    Same arguments and ``out`` (float64 :data:`~app.analysis.dom.DOM_OUT_SHAPE`, overwritten:
    detections, then the step's statistics rows) as the kernel: book float64 (R,) contracts,
    heatmap history float32 (C, R) time-major, prices in ticks, ``params`` float64 (24,). It recomputes every window from the history and neither reads nor writes
    ``sums``/``meta`` (pass None).

    Returns
    -------
    int
        Number of detections (rows of ``out`` with strength > 0).
    """
    hist_bid, hist_ask, traded_buy, traded_sell = hb.T, ha.T, tb.T, tsell.T
    out[:] = 0.0
    out[12, 1:] = np.nan
    out[13, 1:3] = np.nan
    R = bid.shape[0]
    C = hist_bid.shape[1]
    p = params
    depth = int(p[Q_DEPTH])
    bb = best_bid - base if best_bid >= 0 else -1
    ba = best_ask - base if best_ask >= 0 else -1

    def side_rows(touch, step, n):
        rows = touch + step * np.arange(n)
        return rows[(rows >= 0) & (rows < R)]

    for b in range(2):
        book, hist, hit, opp, touch, step = (
            (bid, hist_bid, traded_sell, traded_buy, bb, -1) if b == 0 else (ask, hist_ask, traded_buy, traded_sell, ba, 1)
        )
        if touch < 0 or touch >= R:
            continue
        out[13, 1 + b] = book[touch]
        nbrows = side_rows(touch, step, int(p[Q_WALL_NB]))
        nz = book[nbrows][book[nbrows] > 0]
        med = float(np.median(nz)) if nz.size else 0.0
        rows = side_rows(touch, step, depth)
        # iceberg
        w = min(C, int(p[Q_ICE_COLS]))
        vol = hit[rows, C - w:].astype(np.float64).sum(axis=1)
        closed = hist[rows, C - w: C - 1].astype(np.float64)
        n = (closed > 0).sum(axis=1)
        mean = np.where(n > 0, closed.sum(axis=1) / np.maximum(n, 1), 0.0)
        shown = book[rows] > 0
        if shown.any():
            out[13, 0] = max(out[13, 0], float(vol[shown].max()))  # traded_max
        dmax = np.maximum(np.maximum(book[rows], mean), p[Q_ICE_TYP])
        ok = (book[rows] > 0) & (vol > 0) & (vol > p[Q_ICE_MINVOL]) & (vol >= p[Q_ICE_RATIO] * dmax)
        if ok.any():
            s = np.where(ok, np.minimum(1.0, 0.5 * (vol / np.where(dmax > 0, dmax, 1)) / p[Q_ICE_RATIO]), 0.0)
            i = int(np.argmax(s))
            out[b] = (s[i], rows[i], vol[i], dmax[i])
        # wall
        if med > 0:
            sz = book[rows]
            ok = (sz >= p[Q_WALL_MIN]) & (sz >= p[Q_WALL_RATIO] * med)
            if ok.any():
                s = np.where(ok, np.minimum(1.0, 0.5 * (sz / med) / p[Q_WALL_RATIO]), 0.0)
                i = int(np.argmax(s))
                out[2 + b] = (s[i], rows[i], sz[i], med)
        # ladder
        minlev = int(p[Q_LAD_MIN])
        full = side_rows(touch, step, R)  # every row of the side, from the touch outwards
        sz = book[full]
        good = np.zeros(sz.size, bool)  # good[j]: level j+1 continues a run from level j
        if sz.size > 1:
            good[:-1] = (sz[1:] > 0) & (sz[1:] >= p[Q_LAD_STEP] * sz[:-1])
        lmin = (minlev - 1) * math.log(max(p[Q_LAD_STEP], 1.0 + EPS))
        best = 0.0
        for j in range(min(depth, sz.size)):
            if sz[j] <= 0:
                continue
            brk = np.flatnonzero(~good[j:])
            n = int(brk[0]) + 1 if brk.size else sz.size - j
            if n >= minlev:
                g = math.log(sz[j + n - 1] / sz[j])
                out[12, 0] = max(out[12, 0], g)
                if g > p[Q_LAD_GROWTH]:
                    s = min(1.0, 0.5 * g / max(p[Q_LAD_GROWTH], lmin))
                    if s > best:
                        best = s
                        out[4 + b] = (s, full[j], n, g)
        # spoofing
        if med > 0:
            w = min(C - 1, int(p[Q_SPOOF_COLS]))
            srows = side_rows(touch, step, int(p[Q_SPOOF_DIST]) + 1)
            peak = hist[srows, C - 1 - w: C - 1].max(axis=1) if w > 0 else np.zeros(srows.size)
            traded = hit[srows, C - 1 - w:].astype(np.float64).sum(axis=1)
            ok = (
                (peak >= p[Q_SPOOF_RATIO] * med) & (peak >= p[Q_WALL_MIN])
                & (book[srows] <= SPOOF_GONE_FRAC * peak) & (traded <= p[Q_SPOOF_TRADED] * peak)
            )
            if ok.any():
                s = np.where(ok, np.minimum(1.0, 0.5 * (peak / med) / p[Q_SPOOF_RATIO]), 0.0)
                i = int(np.argmax(s))
                out[6 + b] = (s[i], srows[i], peak[i], med)
        # absorption
        w = min(C, int(p[Q_ABS_COLS]))
        give = int(p[Q_ABS_GIVE])
        r_from, r_to = max(0, touch - depth), min(R, touch + depth + 1)  # both sides of the touch
        blk = hit[r_from:r_to, C - w:].astype(np.float64)
        per_row = blk.sum(axis=1)
        agg = float(per_row[per_row > EPS].sum())
        other = float(opp[r_from:r_to, C - w:].astype(np.float64).sum())
        out[13, 3] = max(out[13, 3], agg)  # aggression
        if agg > 0:
            hr = r_from + np.flatnonzero(per_row > EPS)
            lo_r, hi_r = int(hr.min()), int(hr.max())
            if agg > p[Q_ABS_MINVOL] and agg >= p[Q_ABS_RATIO] * other and hi_r - lo_r <= give:
                held = touch >= lo_r if b == 0 else touch <= hi_r
                if held:
                    rr = agg / (p[Q_ABS_RATIO] * other) if other > EPS else 2.0
                    mv = agg / p[Q_ABS_MINVOL] if p[Q_ABS_MINVOL] > 0 else 2.0
                    s = min(1.0, 0.25 * min(rr, 2.0) + 0.25 * min(mv, 2.0))
                    out[8 + b] = (s, lo_r if b == 0 else hi_r, agg, other)
    # squeeze
    if 0 <= bb < R and 0 <= ba < R:
        k = int(p[Q_SQ_LEVELS])
        w = min(C - 1, int(p[Q_SQ_COLS]))
        brows = side_rows(bb, -1, k)
        arows = side_rows(ba, 1, k)
        bnow, anow = float(bid[brows].sum()), float(ask[arows].sum())
        if w > 0:
            bavg = float(hist_bid[brows, C - 1 - w: C - 1].astype(np.float64).sum()) / w
            aavg = float(hist_ask[arows, C - 1 - w: C - 1].astype(np.float64).sum()) / w
        else:
            bavg = aavg = 0.0
        tot = bnow + anow
        out[12, 1] = anow / aavg if aavg > 0 else np.nan
        out[12, 2] = bnow / bavg if bavg > 0 else np.nan
        out[12, 3] = (bnow - anow) / tot if tot > 0 else np.nan
        if tot > 0 and ba - bb <= p[Q_SQ_SPREAD]:
            imb = (bnow - anow) / tot
            thr = p[Q_SQ_IMB]
            for b, thin, avg, sim, row in ((0, anow, aavg, imb, ba), (1, bnow, bavg, -imb, bb)):
                if avg > 0 and thin <= p[Q_SQ_THIN] * avg and sim >= thr and sim > 0:
                    tr = thin / avg
                    q = p[Q_SQ_THIN] / tr if tr > 0 else 4.0
                    s = min(1.0, 0.25 * (sim / thr if thr > 0 else 2.0) + 0.25 * min(q, 4.0))
                    out[10 + b] = (s, row, sim, tr)
    return int((out[:N_DOM_SLOTS, 0] > 0).sum())
