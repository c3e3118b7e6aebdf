"""Plain-NumPy twins of the Battle Navale kernels :func:`app.analysis.battle_navale.bar_bases` and
:func:`app.analysis.battle_navale.bn_scan` (same arguments, same ``out``).

Used by the tests (every Battle Navale assertion runs on both), the benchmarks (baseline) and
``Analyzers(use_numba=False)``; production code imports it only on that path.
"""

from __future__ import annotations

import numpy as np

from app.analysis.battle_navale import (
    B_COLOR,
    B_DEF_RATIO,
    B_DEF_ROWS,
    B_LONG,
    B_LOOKBACK,
    B_MINVOL,
    B_RSV,
    B_VIK_DELTA,
    B_VIK_VOL,
    DEF_MAX_ZONE,
)


def bar_bases_np(fp_buy_row, fp_sell_row, base):
    """NumPy twin of :func:`app.analysis.battle_navale.bar_bases`.

    Parameters
    ----------
    fp_buy_row, fp_sell_row : float32 (R,)
        One bar's footprint at the ask / at the bid, contracts per row.
    base : int
        Price of row 0, ticks.

    Returns
    -------
    green, red : float
        Volume-weighted base prices, ticks (nan when that side has no volume).
    """
    r = np.arange(fp_buy_row.shape[0], dtype=np.float64)
    b = fp_buy_row.astype(np.float64)
    s = fp_sell_row.astype(np.float64)
    g = base + (b * r).sum() / b.sum() if b.sum() > 0 else np.nan
    red = base + (s * r).sum() / s.sum() if s.sum() > 0 else np.nan
    return g, red


def bn_scan_np(bars, fp_buy, fp_sell, base, i, params, out):
    """Plain NumPy twin of :func:`app.analysis.battle_navale.bn_scan`.

    Parameters and ``out`` (float64 (9, 4), overwritten) are those of the kernel: bars
    BAR_DTYPE (K,), footprints float32 (K, R), ``base`` ticks, closed bar ``i``, ``params``
    float64 (9,).

    Returns
    -------
    int
        Number of detections among rows 0..6.
    """
    o, h, lo, c = bars["open"], bars["high"], bars["low"], bars["close"]
    vol, buy, sell = bars["volume"], bars["buy_volume"], bars["sell_volume"]
    out[:] = 0.0
    if i < 1 or i >= len(o):
        return 0
    p = params
    lb = int(p[B_LOOKBACK])
    j0 = max(0, i - lb)
    if i - j0 == 0:
        return 0
    avg_r = float(np.mean(h[j0:i] - lo[j0:i] + 1.0))
    avg_v = float(np.mean(vol[j0:i]))
    R = fp_buy.shape[1]
    gaps = []
    for j in range(j0, i):  # each lookback bar's gap from its own price rows (low..high)
        r0, r1 = max(0, lo[j] - base), min(R, h[j] - base + 1)
        r = np.arange(r0, r1, dtype=np.float64)
        b_, s_ = fp_buy[j, r0:r1].astype(np.float64), fp_sell[j, r0:r1].astype(np.float64)
        ok = b_.sum() > 0 and s_.sum() > 0
        gaps.append((base + (b_ * r).sum() / b_.sum()) - (base + (s_ * r).sum() / s_.sum()) if ok else np.nan)
    gaps = np.array(gaps, np.float64)
    gaps = gaps[np.isfinite(gaps)]
    neutral = float(np.median(gaps)) if gaps.size else 0.0
    out[8] = (neutral, gaps.size, 0.0, 0.0)
    g, red = bar_bases_np(fp_buy[i], fp_sell[i], base)
    gap = g - red
    gate = p[B_RSV] > 0
    long_ok = (not gate) or bool(gap >= neutral)
    short_ok = (not gate) or bool(gap <= neutral)
    out[7] = (gap, g, red, 1.0 if gap >= neutral else 0.0)
    if vol[i] < p[B_MINVOL]:
        return 0
    q = i - 1
    rng_p = float(h[q] - lo[q] + 1)
    mult = p[B_LONG]
    span = h[q] - lo[q]
    if rng_p >= mult * avg_r and vol[q] >= p[B_MINVOL] and span > 0:
        if c[q] < o[q] and c[i] > o[i] and long_ok:
            ret = (c[i] - lo[q]) / span
            if ret >= 0.5:
                out[0] = (min(1.0, 0.5 * rng_p / (mult * avg_r) + max(0.0, ret - 0.5)), lo[q], rng_p / avg_r, ret)
        if c[q] > o[q] and c[i] < o[i] and short_ok:
            ret = (h[q] - c[i]) / span
            if ret >= 0.5:
                out[1] = (min(1.0, 0.5 * rng_p / (mult * avg_r) + max(0.0, ret - 0.5)), h[q], rng_p / avg_r, ret)
    dr = (buy[i] - sell[i]) / vol[i] if vol[i] > 0 else 0.0
    v_lb, d_lb = vol[j0:i].astype(np.float64), (buy[j0:i] - sell[j0:i]).astype(np.float64)
    adr = np.abs(d_lb[v_lb > 0]) / v_lb[v_lb > 0]
    cthr = max(p[B_COLOR], float(np.median(adr))) if adr.size else p[B_COLOR]
    if c[i] > o[i] and -dr >= cthr and cthr > 0 and short_ok:
        out[2] = (min(1.0, 0.5 * (-dr) / cthr), c[i], dr, c[i] - o[i])
    if avg_v > 0 and vol[i] >= p[B_VIK_VOL] * avg_v and abs(dr) >= p[B_VIK_DELTA] and p[B_VIK_DELTA] > 0:
        s = min(1.0, 0.25 * vol[i] / (p[B_VIK_VOL] * avg_v) + 0.25 * abs(dr) / p[B_VIK_DELTA])
        if dr > 0 and c[i] > o[i] and long_ok:
            out[3] = (s, c[i], vol[i] / avg_v, dr)
        elif dr < 0 and c[i] < o[i] and short_ok:
            out[4] = (s, c[i], vol[i] / avg_v, dr)
    k = int(p[B_DEF_ROWS])
    span = h[i] - lo[i]
    R = fp_buy.shape[1]
    if (span + 1.0) * DEF_MAX_ZONE >= k and span + 1.0 >= avg_r and p[B_DEF_RATIO] > 0:
        mid = 0.5 * (h[i] + lo[i])
        if sell[i] > 0 and c[i] >= mid and long_ok:
            rows = lo[i] - base + np.arange(k)
            rows = rows[(rows >= 0) & (rows < R)]
            fr = float(fp_sell[i, rows].astype(np.float64).sum()) / sell[i]
            if fr >= p[B_DEF_RATIO]:
                out[5] = (min(1.0, 0.5 * fr / p[B_DEF_RATIO]), lo[i], fr, (c[i] - lo[i]) / span)
        if buy[i] > 0 and c[i] <= mid and short_ok:
            rows = h[i] - base - np.arange(k)
            rows = rows[(rows >= 0) & (rows < R)]
            fr = float(fp_buy[i, rows].astype(np.float64).sum()) / buy[i]
            if fr >= p[B_DEF_RATIO]:
                out[6] = (min(1.0, 0.5 * fr / p[B_DEF_RATIO]), h[i], fr, (h[i] - c[i]) / span)
    return int((out[:7, 0] > 0).sum())
