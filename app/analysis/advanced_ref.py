"""Plain-NumPy twins of the advanced-pattern kernels :func:`app.analysis.advanced.adv_trades_scan`
and :func:`app.analysis.advanced.adv_bars_scan` (same arguments, same ``out``).

Used by the tests (every advanced-pattern assertion runs on both), the benchmarks (baseline) and
``Analyzers(use_numba=False)``; production code imports it only on that path.
"""

from __future__ import annotations

import numpy as np

from app.analysis.advanced import (
    A_H_LB,
    A_H_VOL,
    A_M_MIN,
    A_M_MULT,
    A_M_SIDE,
    A_M_WIN,
    A_T_BARS,
    A_V_REACT,
    A_V_TOUCH,
    A_V_WIN,
    SIDE_ASK,
    SIDE_BID,
)


def adv_trades_scan_np(trades, t_now, poc, vah, val, params, out):
    """Plain NumPy twin of :func:`app.analysis.advanced.adv_trades_scan`.

    Parameters and ``out`` (float64 (2, 5), overwritten) are those of the kernel: trades
    EVENT_DTYPE (T,) ns ascending, ``t_now`` ns, ``poc``/``vah``/``val`` ticks (-1 = none),
    ``params`` float64 (10,).

    Returns
    -------
    int
        Number of detections (rows of ``out`` with strength > 0).
    """
    t_ts, t_price, t_size, t_side = trades["ts"], trades["price"], trades["size"], trades["side"]
    out[:] = 0.0
    T = t_ts.shape[0]
    if T == 0:
        return 0
    p = params
    last = int(t_price[-1])
    jw = int(np.searchsorted(t_ts, t_now - p[A_M_WIN], side="left"))
    nw = T - jw
    if nw >= p[A_M_MIN] and jw >= 2:
        span = t_ts[jw - 1] - t_ts[0]
        if span > 0:
            expected = jw / span * p[A_M_WIN]
            sd = t_side[jw:]
            sz = np.asarray(t_size[jw:], np.float64)
            b, s = float(sz[sd == SIDE_ASK].sum()), float(sz[sd == SIDE_BID].sum())
            imb = (b - s) / (b + s) if b + s > 0 else 0.0
            if nw >= p[A_M_MULT] * expected and abs(imb) >= p[A_M_SIDE] and p[A_M_SIDE] > 0:
                out[0] = (min(1.0, 0.25 * nw / (p[A_M_MULT] * expected) + 0.25 * abs(imb) / p[A_M_SIDE]), last,
                          1.0 if imb > 0 else -1.0, nw / expected, imb)
    if poc >= 0:
        jv = int(np.searchsorted(t_ts, t_now - p[A_V_WIN], side="left"))
        w = t_price[jv:]
        react = p[A_V_REACT]
        for kind, L in enumerate((val, poc, vah)):
            if L < 0 or not np.any(np.abs(w - L) <= p[A_V_TOUCH]):
                continue
            mv = last - L
            sd = 0.0
            if kind == 0 and mv >= react:
                sd = 1.0
            elif kind == 2 and -mv >= react:
                sd = -1.0
            elif kind == 1 and abs(mv) >= react:
                sd = float(np.sign(mv))
            if sd != 0.0:
                st = min(1.0, 0.5 * abs(mv) / react)
                if st > out[1, 0]:
                    out[1] = (st, L, sd, kind, abs(mv))
    return int((out[:, 0] > 0).sum())


def _er_np(c, i, n):
    if i - n < 0:
        return -1.0
    path = float(np.abs(np.diff(c[i - n: i + 1])).sum())
    return abs(float(c[i] - c[i - n])) / path if path > 0 else 0.0


def adv_bars_scan_np(bars, fp_buy, fp_sell, base, i, params, out):
    """Plain NumPy twin of :func:`app.analysis.advanced.adv_bars_scan`.

    Parameters and ``out`` (float64 (2, 5), overwritten) are those of the kernel: bars
    BAR_DTYPE (K,) in ticks and contracts, footprints float32 (K, R), ``base`` ticks, closed bar
    ``i``, ``params`` float64 (14,).

    Returns
    -------
    int
        1 when a head fake was found, else 0.
    """
    o, h, lo, c, vol = bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"]
    out[:] = 0.0
    K = len(o)
    if i < 1 or i >= K:
        out[1, :2] = -1.0
        return 0
    p = params
    j0 = max(0, i - int(p[A_H_LB]))
    R = fp_buy.shape[1]
    if i - j0 >= 2:
        H, L = int(h[j0:i].max()), int(lo[j0:i].min())
        sr = float((h[j0:i] - lo[j0:i] + 1.0).sum())
        row_vol = float(vol[j0:i].sum()) / sr if sr > 0 else 0.0
        need = p[A_H_VOL] * row_vol
        both = fp_buy[i].astype(np.float64) + fp_sell[i].astype(np.float64)
        if h[i] > H and c[i] <= H:
            rows = np.arange(H + 1 - base, h[i] - base + 1)
            vb = float(both[rows[(rows >= 0) & (rows < R)]].sum())
            if vb > 0 and vb >= need:
                out[0] = (min(1.0, 0.5 * vb / need) if need > 0 else 1.0, H, -1.0, vb, row_vol)
        if lo[i] < L and c[i] >= L:
            rows = np.arange(lo[i] - base, L - base)
            vb = float(both[rows[(rows >= 0) & (rows < R)]].sum())
            if vb > 0 and vb >= need:
                s = min(1.0, 0.5 * vb / need) if need > 0 else 1.0
                if s > out[0, 0]:
                    out[0] = (s, L, 1.0, vb, row_vol)
    n = int(p[A_T_BARS])
    out[1, 0] = _er_np(c, i, n)
    out[1, 1] = _er_np(c, i - 1, n)
    if i - n >= 0:
        out[1, 2] = float(np.sign(c[i] - c[i - n]))
    return 1 if out[0, 0] > 0 else 0
