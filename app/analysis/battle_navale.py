"""Battle Navale: five footprint-bar patterns and the "rouge sous verte" rule.

:func:`bn_scan` (numba) and its twin :func:`app.analysis.battle_navale_ref.bn_scan_np` evaluate
the **last closed bar** ``i`` (``K - 2`` when the newest bar is still open; the caller passes
``i``) against the bars before it.
``out`` is float64 :data:`BN_OUT_SHAPE` (9, 4), one row per detection slot (:data:`BN_SLOTS`),
columns ``[strength 0..1 (0 = none), price tick, value1, value2]``; row 7 holds the bases (the
signed gap, see below), row 8 the neutral gap the rule was calibrated to.

Bases (the "rouge sous verte" rule): the red base is the volume-weighted mean price of the bar's
volume traded at the bid (sellers, red), the green base that of volume traded at the ask (buyers,
green). ``gap = green - red`` in ticks. The **neutral** gap is calibrated from the instrument's
own bars: the median gap of the ``lookback_bars`` bars before ``i`` (0 when none has volume on
both sides). **Rouge sous verte** holds when ``gap >= neutral``; long patterns need it, short
patterns need ``gap <= neutral`` (when ``rsv_required``). (A fixed 1-tick neutral, "a trade at
the bid prints a tick below one at the ask", held on only 7 % of ES bars: the median ES gap is
0.44 ticks, because both sides trade at the same prices as the market moves.) Exact rules:
``docs/patterns.md``.
"""

from __future__ import annotations

import numpy as np

from app.core.jit import kernel

from app.analysis.kernel_util import median_inplace as _median
from app.analysis.kernel_util import n_hits as _n_hits

#: slot -> (pattern name, trading side)
BN_SLOTS = (
    ("long_down_up", 1),
    ("long_up_down", -1),
    ("color_down", -1),
    ("vikings", 1),
    ("vikings", -1),
    ("defenders", 1),
    ("defenders", -1),
)
BN_VALUES = {
    "long_down_up": ("range_ratio", "retrace"),
    "long_up_down": ("range_ratio", "retrace"),
    "color_down": ("delta_ratio", "close_change"),
    "vikings": ("volume_ratio", "delta_ratio"),
    "defenders": ("extreme_frac", "close_pos"),
}
#: Shape of the kernels' ``out``.
BN_OUT_SHAPE = (9, 4)
#: Defenders: the extreme rows may cover at most this fraction of the bar's rows.
DEF_MAX_ZONE = 1.0 / 3.0
B_LOOKBACK, B_LONG, B_COLOR, B_VIK_VOL, B_VIK_DELTA, B_DEF_ROWS, B_DEF_RATIO, B_MINVOL, B_RSV = range(9)


def bn_params(section: dict) -> np.ndarray:
    """Pack the ``[battle_navale]`` section into the kernel's float64 vector (9,)."""
    s = section
    return np.array(
        [s["lookback_bars"], s["long_bar_mult"], s["color_delta_ratio"], s["vikings_volume_mult"],
         s["vikings_delta_ratio"], s["defenders_rows"], s["defenders_ratio"], s["min_bar_volume"],
         1.0 if s["rsv_required"] else 0.0],
        dtype=np.float64,
    )


@kernel
def bar_bases(fp_buy_row, fp_sell_row, base):
    """Green (buy) and red (sell) volume-weighted base prices of one bar, ticks (nan if no volume)."""
    sb = 0.0
    ss = 0.0
    wb = 0.0
    ws = 0.0
    for r in range(fp_buy_row.shape[0]):
        vb = fp_buy_row[r]
        vs = fp_sell_row[r]
        sb += vb
        ss += vs
        wb += vb * r
        ws += vs * r
    g = base + wb / sb if sb > 0 else np.nan
    red = base + ws / ss if ss > 0 else np.nan
    return g, red


@kernel
def _bases_in(fp_buy, fp_sell, k, lo, hi, base):
    """:func:`bar_bases` of bar ``k`` read on its own price rows only (``lo..hi`` ticks, clipped to
    the grid): a bar's footprint lies within its range, so the result is the same, for a few rows
    instead of the whole grid."""
    R = fp_buy.shape[1]
    sb = 0.0
    ss = 0.0
    wb = 0.0
    ws = 0.0
    for r in range(max(0, lo - base), min(R, hi - base + 1)):
        vb = fp_buy[k, r]
        vs = fp_sell[k, r]
        sb += vb
        ss += vs
        wb += vb * r
        ws += vs * r
    g = base + wb / sb if sb > 0 else np.nan
    red = base + ws / ss if ss > 0 else np.nan
    return g, red


@kernel
def bn_scan(bars, fp_buy, fp_sell, base, i, params, out):
    """Battle Navale patterns on closed bar ``i`` (numba).

    Parameters
    ----------
    bars : BAR_DTYPE (K,)
        Footprint bars: open/high/low/close in ticks; volume, buy_volume (at the ask),
        sell_volume (at the bid) in contracts.
    fp_buy, fp_sell : float32 (K, R)
        Footprint per bar per row (row 0 = ``base`` ticks).
    i : int
        Bar evaluated (needs ``i >= 1``).
    params : float64 (9,)
    out : float64 :data:`BN_OUT_SHAPE`
        Rows 0..6 per :data:`BN_SLOTS`; row 7 = ``[gap, green, red, rsv_holds]``; row 8 =
        ``[neutral gap, bars it was measured on, 0, 0]`` (gaps in ticks).

    Returns
    -------
    int
        Number of detections among rows 0..6.
    """
    o = bars["open"]
    h = bars["high"]
    lo = bars["low"]
    c = bars["close"]
    vol = bars["volume"]
    buy = bars["buy_volume"]
    sell = bars["sell_volume"]
    out[:, :] = 0.0
    if i < 1 or i >= o.shape[0]:
        return 0
    lb = int(params[B_LOOKBACK])
    j0 = max(0, i - lb)
    n = 0
    sr = 0.0
    sv = 0.0
    m = i - j0
    buf = np.empty(2 * m)  # lookback gaps in [0, m), |delta| / volume in [m, 2m)
    ng = 0
    na = 0
    for j in range(j0, i):
        sr += h[j] - lo[j] + 1.0
        sv += vol[j]
        n += 1
        gj, rj = _bases_in(fp_buy, fp_sell, j, lo[j], h[j], base)
        if gj == gj and rj == rj:
            buf[ng] = gj - rj
            ng += 1
        if vol[j] > 0:
            buf[m + na] = abs(buy[j] - sell[j]) / vol[j]
            na += 1
    if n == 0:
        return 0
    avg_r = sr / n
    avg_v = sv / n
    neutral = _median(buf, 0, ng) if ng > 0 else 0.0
    out[8, 0] = neutral
    out[8, 1] = ng
    g, red = _bases_in(fp_buy, fp_sell, i, lo[i], h[i], base)
    gap = g - red
    out[7, 0] = gap
    out[7, 1] = g
    out[7, 2] = red
    gate = params[B_RSV] > 0
    long_ok = (not gate) or (gap >= neutral)
    short_ok = (not gate) or (gap <= neutral)
    out[7, 3] = 1.0 if gap >= neutral else 0.0
    if vol[i] < params[B_MINVOL]:
        return 0
    p = i - 1
    rng_p = h[p] - lo[p] + 1.0
    mult = params[B_LONG]
    # long down up / long up down: a long bar, then a bar retracing at least half of it
    if rng_p >= mult * avg_r and vol[p] >= params[B_MINVOL]:
        span = h[p] - lo[p]
        if span > 0:
            if c[p] < o[p] and c[i] > o[i] and long_ok:
                ret = (c[i] - lo[p]) / span
                if ret >= 0.5:
                    s = min(1.0, 0.5 * rng_p / (mult * avg_r) + max(0.0, ret - 0.5))
                    out[0, 0] = s
                    out[0, 1] = lo[p]
                    out[0, 2] = rng_p / avg_r
                    out[0, 3] = ret
            if c[p] > o[p] and c[i] < o[i] and short_ok:
                ret = (h[p] - c[i]) / span
                if ret >= 0.5:
                    s = min(1.0, 0.5 * rng_p / (mult * avg_r) + max(0.0, ret - 0.5))
                    out[1, 0] = s
                    out[1, 1] = h[p]
                    out[1, 2] = rng_p / avg_r
                    out[1, 3] = ret
    dr = (buy[i] - sell[i]) / vol[i] if vol[i] > 0 else 0.0
    # color down: an up bar (price green) whose delta is red, at least as strongly as a usual bar's
    cthr = params[B_COLOR]
    if na > 0:
        cthr = max(cthr, _median(buf, m, na))
    if c[i] > o[i] and -dr >= cthr and cthr > 0 and short_ok:
        out[2, 0] = min(1.0, 0.5 * (-dr) / cthr)
        out[2, 1] = c[i]
        out[2, 2] = dr
        out[2, 3] = c[i] - o[i]
    # vikings: a high-volume bar of one-sided aggression closing its way
    if avg_v > 0 and vol[i] >= params[B_VIK_VOL] * avg_v and abs(dr) >= params[B_VIK_DELTA] and params[B_VIK_DELTA] > 0:
        s = min(1.0, 0.25 * vol[i] / (params[B_VIK_VOL] * avg_v) + 0.25 * abs(dr) / params[B_VIK_DELTA])
        if dr > 0 and c[i] > o[i] and long_ok:
            out[3, 0] = s
            out[3, 1] = c[i]
            out[3, 2] = vol[i] / avg_v
            out[3, 3] = dr
        elif dr < 0 and c[i] < o[i] and short_ok:
            out[4, 0] = s
            out[4, 1] = c[i]
            out[4, 2] = vol[i] / avg_v
            out[4, 3] = dr
    # defenders: aggression concentrated at an extreme, close back in the other half
    k = int(params[B_DEF_ROWS])
    span = h[i] - lo[i]
    R = fp_buy.shape[1]
    rows = span + 1.0  # the bar's price rows; narrow bars are refused (their extremes are the bar)
    if rows * DEF_MAX_ZONE >= k and rows >= avg_r and params[B_DEF_RATIO] > 0:
        mid = 0.5 * (h[i] + lo[i])
        if sell[i] > 0 and c[i] >= mid and long_ok:
            e = 0.0
            for t in range(k):
                r = lo[i] - base + t
                if 0 <= r < R:
                    e += fp_sell[i, r]
            fr = e / sell[i]
            if fr >= params[B_DEF_RATIO]:
                out[5, 0] = min(1.0, 0.5 * fr / params[B_DEF_RATIO])
                out[5, 1] = lo[i]
                out[5, 2] = fr
                out[5, 3] = (c[i] - lo[i]) / span
        if buy[i] > 0 and c[i] <= mid and short_ok:
            e = 0.0
            for t in range(k):
                r = h[i] - base - t
                if 0 <= r < R:
                    e += fp_buy[i, r]
            fr = e / buy[i]
            if fr >= params[B_DEF_RATIO]:
                out[6, 0] = min(1.0, 0.5 * fr / params[B_DEF_RATIO])
                out[6, 1] = h[i]
                out[6, 2] = fr
                out[6, 3] = (h[i] - c[i]) / span
    return _n_hits(out, 7)


