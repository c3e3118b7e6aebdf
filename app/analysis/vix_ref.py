"""Plain-NumPy twins of the VIX kernels :func:`app.analysis.vix.vix_series` and
:func:`app.analysis.vix.vix_patterns` (same inputs, same outputs).

The tests run the VIX assertions on both implementations; the benchmarks time the kernels against
these; ``VixAnalyzer(use_numba=False)`` imports this module (nothing else in production does).
"""

from __future__ import annotations

import numpy as np

from app.analysis.vix import (
    P_BACKW,
    P_CALM_PCT,
    P_CHANGE_LB,
    P_CHANGE_STEPS,
    P_COMPL_LVL,
    P_COMPL_PCT,
    P_COMPL_TERM,
    P_MOM_STRESS,
    P_REV,
    P_SPIKE,
    P_SPIKE_LB,
    P_WINDOW,
)


def vix_series_np(close, vix3m, bands, params):
    """Plain NumPy twin of :func:`app.analysis.vix.vix_series` (same inputs, same outputs).

    Parameters
    ----------
    close, vix3m : float64 (n,)
        VIX and VIX3M closes (VIX3M nan = unknown).
    bands : float64 (4,)
    params : float64 (12,)

    Returns
    -------
    pct, mom, term : float64 (n,)
    regime : int64 (n,)
        0..4.
    """
    close = np.asarray(close, np.float64)
    n = close.size
    w = int(params[P_WINDOW])
    pct = np.full(n, 0.5)
    for i in range(n):
        win = close[max(0, i - w + 1): i + 1]
        if win.size >= 2:
            pct[i] = (np.count_nonzero(win <= close[i]) - 1) / (win.size - 1)
    mom = np.full(n, np.nan)
    mom[5:] = close[5:] / close[:-5] - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(vix3m > 0, close / np.where(vix3m > 0, vix3m, 1.0), np.nan)
    lvl = np.searchsorted(np.asarray(bands), close, side="right")
    with np.errstate(invalid="ignore"):
        up = (mom >= params[P_MOM_STRESS]) | (term >= params[P_BACKW])
        down = ~up & (pct <= params[P_CALM_PCT]) & (term < 1.0) & (mom <= 0.0)
    regime = np.clip(lvl + up.astype(np.int64) - down.astype(np.int64), 0, 4).astype(np.int64)
    return pct, mom, term, regime


def vix_patterns_np(close, pct, mom, term, regime, params):
    """Plain NumPy twin of :func:`app.analysis.vix.vix_patterns` (same inputs, same outputs).

    Returns
    -------
    spike_rev, complacency, change : float64 (n,)
    """
    close = np.asarray(close, np.float64)
    n = close.size
    lb = int(params[P_SPIKE_LB])
    cl = int(params[P_CHANGE_LB])
    spike, rev = params[P_SPIKE], params[P_REV]
    spike_rev = np.zeros(n)
    with np.errstate(invalid="ignore"):
        is_spike = mom >= spike
    for i in range(n):
        lo = max(0, i - lb + 1)
        hits = np.flatnonzero(is_spike[lo: i + 1])
        if hits.size:
            j0 = lo + hits[0]
            peak = close[j0: i + 1].max()
            if close[i] < peak:
                drop = 1.0 - close[i] / peak
                if drop >= rev:
                    spike_rev[i] = min(1.0, 0.5 * drop / rev) if rev > 0 else 1.0
    with np.errstate(invalid="ignore"):
        ok = (close <= params[P_COMPL_LVL]) & (pct <= params[P_COMPL_PCT]) & (term <= params[P_COMPL_TERM])
        a = 1.0 - close / params[P_COMPL_LVL]
        b = 1.0 - term / params[P_COMPL_TERM]
    compl = np.where(ok, np.minimum(1.0, 0.5 + 2.0 * a + 2.0 * b), 0.0)
    change = np.zeros(n)
    if n > cl:
        d = (regime[cl:] - regime[:-cl]).astype(np.float64)
        change[cl:] = np.where(np.abs(d) >= params[P_CHANGE_STEPS], d, 0.0)
    return spike_rev, compl, change
