"""Advanced patterns: head fake, microstructure, transition, volume profile.

Two kernels, each with a plain NumPy twin (``*_np``, in :mod:`app.analysis.advanced_ref`):

* :func:`adv_trades_scan` on the recent trades: microstructure (a one-sided trade burst),
  volume-profile reaction (POC / value-area edges).
* :func:`adv_bars_scan` on the footprint bars: head fake on the last closed bar, and the
  efficiency ratios that drive the trend/range transition state machine (kept by the caller).

``out`` rows are ``[strength 0..1 (0 = none), price tick, side, value1, value2]``.
Exact rules: ``docs/patterns.md``. (The seed's gamma pin is gone: it needed user-typed gamma
levels that no setting, option or window ever supplied, so it could never fire; issue 14.)
"""

from __future__ import annotations

import numpy as np

from app.core.jit import kernel

from app.analysis.kernel_util import n_hits as _n_hits

SIDE_ASK = 2
SIDE_BID = 1

(A_M_WIN, A_M_MULT, A_M_MIN, A_M_SIDE, A_V_WIN, A_V_TOUCH, A_V_REACT, A_H_LB, A_H_VOL,
 A_T_BARS) = range(10)
ADV_TRADE_ROWS = ("microstructure", "volume_profile")
ADV_VALUES = {
    "microstructure": ("burst_ratio", "side_imbalance"),
    "volume_profile": ("level_kind", "move_ticks"),  # level_kind 0 = VAL, 1 = POC, 2 = VAH
    "head_fake": ("volume_beyond", "row_volume"),
    "transition": ("efficiency_ratio", "previous_er"),
}


def adv_params(section: dict) -> np.ndarray:
    """Pack ``[advanced]`` into the kernels' float64 vector (10,); seconds/ms become ns."""
    s = section
    return np.array(
        [s["micro_window_ms"] * 1e6, s["micro_burst_mult"], s["micro_min_trades"], s["micro_side_ratio"],
         s["vp_window_s"] * 1e9, s["vp_touch_ticks"], s["vp_reaction_ticks"], s["headfake_lookback_bars"],
         s["headfake_volume_mult"], s["transition_bars"]],
        dtype=np.float64,
    )


@kernel
def _first_at_or_after(t_ts, t0):
    lo = 0
    hi = t_ts.shape[0]
    while lo < hi:
        m = (lo + hi) // 2
        if t_ts[m] < t0:
            lo = m + 1
        else:
            hi = m
    return lo


@kernel
def adv_trades_scan(trades, t_now, poc, vah, val, params, out):
    """Microstructure and volume-profile reaction on the recent trades (numba).

    Parameters
    ----------
    trades : EVENT_DTYPE (T,)
        ``ts`` ns ascending, ``price`` ticks, ``size`` contracts, ``side`` (2 = buyer aggressor).
    t_now : int
        Market time, ns.
    poc, vah, val : int
        Volume profile, ticks (-1 = none).
    params : float64 (10,)
    out : float64 (2, 5)
        Overwritten with the detections.

    Returns
    -------
    int
        Number of detections (rows of ``out`` with strength > 0). Kernels return a count, not
        ``out``: boxing a returned array costs more than the scan.
    """
    t_ts = trades["ts"]
    t_price = trades["price"]
    t_size = trades["size"]
    t_side = trades["side"]
    out[:, :] = 0.0
    T = t_ts.shape[0]
    if T == 0:
        return 0
    last = t_price[T - 1]
    # ---- microstructure: one-sided trade burst
    jw = _first_at_or_after(t_ts, t_now - params[A_M_WIN])
    nw = T - jw
    if nw >= params[A_M_MIN] and jw >= 2:
        span = t_ts[jw - 1] - t_ts[0]
        if span > 0:
            expected = jw / span * params[A_M_WIN]
            b = 0.0
            s = 0.0
            for j in range(jw, T):
                if t_side[j] == SIDE_ASK:
                    b += t_size[j]
                elif t_side[j] == SIDE_BID:
                    s += t_size[j]
            imb = (b - s) / (b + s) if b + s > 0 else 0.0
            if nw >= params[A_M_MULT] * expected and abs(imb) >= params[A_M_SIDE] and params[A_M_SIDE] > 0:
                out[0, 0] = min(1.0, 0.25 * nw / (params[A_M_MULT] * expected) + 0.25 * abs(imb) / params[A_M_SIDE])
                out[0, 1] = last
                out[0, 2] = 1.0 if imb > 0 else -1.0
                out[0, 3] = nw / expected
                out[0, 4] = imb
    # ---- volume profile reaction
    if poc >= 0:
        jv = _first_at_or_after(t_ts, t_now - params[A_V_WIN])
        touch = params[A_V_TOUCH]
        react = params[A_V_REACT]
        for kind in range(3):
            L = val if kind == 0 else (poc if kind == 1 else vah)
            if L < 0:
                continue
            touched = False
            for j in range(jv, T):
                if abs(t_price[j] - L) <= touch:
                    touched = True
                    break
            if not touched:
                continue
            mv = last - L
            sd = 0.0
            if kind == 0 and mv >= react:
                sd = 1.0
            elif kind == 2 and -mv >= react:
                sd = -1.0
            elif kind == 1 and abs(mv) >= react:
                sd = 1.0 if mv > 0 else -1.0
            if sd != 0.0:
                st = min(1.0, 0.5 * abs(mv) / react)
                if st > out[1, 0]:
                    out[1, 0] = st
                    out[1, 1] = L
                    out[1, 2] = sd
                    out[1, 3] = kind
                    out[1, 4] = abs(mv)
    return _n_hits(out, 2)


@kernel
def _er(c, i, n):
    if i - n < 0:
        return -1.0
    path = 0.0
    for j in range(i - n + 1, i + 1):
        path += abs(c[j] - c[j - 1])
    if path <= 0:
        return 0.0
    return abs(c[i] - c[i - n]) / path


@kernel
def adv_bars_scan(bars, fp_buy, fp_sell, base, i, params, out):
    """Head fake on closed bar ``i`` and the efficiency ratios for the transition state (numba).

    Parameters
    ----------
    bars : BAR_DTYPE (K,)
        Bars: open/high/low/close ticks, volume contracts.
    fp_buy, fp_sell : float32 (K, R)
    base : int
        Price of footprint row 0, ticks.
    i : int
        Closed bar evaluated.
    out : float64 (2, 5)
        Row 0: head fake ``[strength, level, side, volume_beyond, row_volume]``; row 1:
        ``[er(i), er(i - 1), direction of c[i] - c[i - n], 0, 0]`` (er = -1 when too few bars).

    Returns
    -------
    int
        1 when a head fake was found, else 0.
    """
    o = bars["open"]
    h = bars["high"]
    lo = bars["low"]
    c = bars["close"]
    vol = bars["volume"]
    out[:, :] = 0.0
    K = o.shape[0]
    if i < 1 or i >= K:
        out[1, 0] = -1.0
        out[1, 1] = -1.0
        return 0
    lb = int(params[A_H_LB])
    j0 = max(0, i - lb)
    R = fp_buy.shape[1]
    if i - j0 >= 2:
        H = h[j0]
        L = lo[j0]
        sr = 0.0
        sv = 0.0
        for j in range(j0, i):
            if h[j] > H:
                H = h[j]
            if lo[j] < L:
                L = lo[j]
            sr += h[j] - lo[j] + 1.0
            sv += vol[j]
        row_vol = sv / sr if sr > 0 else 0.0
        need = params[A_H_VOL] * row_vol
        if h[i] > H and c[i] <= H:
            vb = 0.0
            for r in range(H + 1 - base, h[i] - base + 1):
                if 0 <= r < R:
                    vb += fp_buy[i, r] + fp_sell[i, r]
            if vb > 0 and vb >= need:
                out[0, 0] = min(1.0, 0.5 * vb / need) if need > 0 else 1.0
                out[0, 1] = H
                out[0, 2] = -1.0
                out[0, 3] = vb
                out[0, 4] = row_vol
        if lo[i] < L and c[i] >= L:
            vb = 0.0
            for r in range(lo[i] - base, L - base):
                if 0 <= r < R:
                    vb += fp_buy[i, r] + fp_sell[i, r]
            if vb > 0 and vb >= need:
                s = min(1.0, 0.5 * vb / need) if need > 0 else 1.0
                if s > out[0, 0]:
                    out[0, 0] = s
                    out[0, 1] = L
                    out[0, 2] = 1.0
                    out[0, 3] = vb
                    out[0, 4] = row_vol
    n = int(params[A_T_BARS])
    out[1, 0] = _er(c, i, n)
    out[1, 1] = _er(c, i - 1, n)
    if i - n >= 0:
        d = c[i] - c[i - n]
        out[1, 2] = 1.0 if d > 0 else (-1.0 if d < 0 else 0.0)
    return 1 if out[0, 0] > 0 else 0


