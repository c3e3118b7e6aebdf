"""VIX regimes, VIX patterns and the regime's sizing factor (definitions: ``docs/patterns.md``).

The daily series are computed once for the whole history by two kernels, each with a plain
NumPy twin (``*_np``, in :mod:`app.analysis.vix_ref`; the tests run on both):

* :func:`vix_series` -> per session: 1-year percentile, 5-session momentum, term structure
  VIX/VIX3M and the regime index 0..4 (``ultra_low``, ``low``, ``normal``, ``high``,
  ``extreme``).
* :func:`vix_patterns` -> per session: strengths of spike reversal, complacency and the signed
  regime change.

:class:`VixAnalyzer` then answers "the VIX state as of market time ``ts``" by a binary search
(the last session strictly before the UTC date of ``ts``), with an optional live level.
"""

from __future__ import annotations

import math

import numpy as np

from app.core.jit import kernel

from app.analysis.frame import PatternHit, VixState

REGIMES = ("ultra_low", "low", "normal", "high", "extreme")

# indices into the parameter vector of the kernels
P_WINDOW, P_MOM_STRESS, P_BACKW, P_CALM_PCT, P_SPIKE, P_SPIKE_LB, P_REV, P_COMPL_LVL, P_COMPL_PCT, \
    P_COMPL_TERM, P_CHANGE_LB, P_CHANGE_STEPS = range(12)
N_PARAMS = 12


def vix_params(section: dict) -> np.ndarray:
    """Pack the ``[vix]`` profile section into the kernels' float64 parameter vector (12,)."""
    s = section
    return np.array(
        [
            s["percentile_window"], s["momentum_stress"], s["backwardation"], s["calm_percentile"],
            s["spike_threshold"], s["spike_lookback"], s["reversal_pct"], s["complacency_level"],
            s["complacency_percentile"], s["complacency_term"], s["change_lookback"], s["change_steps"],
        ],
        dtype=np.float64,
    )


# ----------------------------------------------------------------------------------------------
# kernel 1: percentile, momentum, term structure, regime
# ----------------------------------------------------------------------------------------------
@kernel
def vix_series(close, vix3m, bands, params):
    """Per-session VIX features and regime (numba).

    Parameters
    ----------
    close : float64 (n,)
        VIX closes.
    vix3m : float64 (n,)
        VIX3M closes (nan = unknown).
    bands : float64 (4,)
        Upper VIX bounds of ultra_low, low, normal, high.
    params : float64 (12,)
        See :func:`vix_params`.

    Returns
    -------
    pct, mom, term : float64 (n,)
        Percentile 0..1 in the trailing window (today included), ``close/close[-5] - 1`` (nan for
        the first 5), VIX/VIX3M (nan when unknown).
    regime : int64 (n,)
        0..4.
    """
    n = close.shape[0]
    w = int(params[P_WINDOW])
    pct = np.empty(n)
    mom = np.empty(n)
    term = np.empty(n)
    regime = np.empty(n, np.int64)
    for i in range(n):
        lo = i - w + 1
        if lo < 0:
            lo = 0
        m = i - lo + 1
        if m < 2:
            pct[i] = 0.5
        else:
            c = 0
            for j in range(lo, i + 1):
                if close[j] <= close[i]:
                    c += 1
            pct[i] = (c - 1) / (m - 1)
        mom[i] = close[i] / close[i - 5] - 1.0 if i >= 5 else np.nan
        term[i] = close[i] / vix3m[i] if vix3m[i] > 0 else np.nan
        lvl = 0
        for b in range(4):
            if close[i] >= bands[b]:
                lvl = b + 1
        up = (mom[i] >= params[P_MOM_STRESS]) or (term[i] >= params[P_BACKW])
        down = (not up) and pct[i] <= params[P_CALM_PCT] and term[i] < 1.0 and mom[i] <= 0.0
        r = lvl + (1 if up else 0) - (1 if down else 0)
        regime[i] = min(4, max(0, r))
    return pct, mom, term, regime


# ----------------------------------------------------------------------------------------------
# kernel 2: patterns per session
# ----------------------------------------------------------------------------------------------
@kernel
def vix_patterns(close, pct, mom, term, regime, params):
    """Per-session VIX pattern strengths (numba).

    Returns
    -------
    spike_rev : float64 (n,)
        Spike-reversal strength 0..1 (0 = not active).
    complacency : float64 (n,)
        Complacency strength 0..1.
    change : float64 (n,)
        Signed regime-change steps (``regime[i] - regime[i - change_lookback]`` when its size is
        at least ``change_steps``, else 0).
    """
    n = close.shape[0]
    lb = int(params[P_SPIKE_LB])
    cl = int(params[P_CHANGE_LB])
    steps = params[P_CHANGE_STEPS]
    spike = params[P_SPIKE]
    rev = params[P_REV]
    spike_rev = np.zeros(n)
    compl = np.zeros(n)
    change = np.zeros(n)
    for i in range(n):
        # spike reversal: a spike day j in the window, then a fall from the peak since j
        lo = i - lb + 1
        if lo < 0:
            lo = 0
        j0 = -1
        for j in range(lo, i + 1):
            if mom[j] >= spike:
                j0 = j
                break
        if j0 >= 0:
            peak = close[j0]
            for j in range(j0, i + 1):
                if close[j] > peak:
                    peak = close[j]
            if close[i] < peak:
                drop = 1.0 - close[i] / peak
                if drop >= rev and rev > 0:
                    spike_rev[i] = min(1.0, 0.5 * drop / rev)
                elif drop >= rev:
                    spike_rev[i] = 1.0
        # complacency
        if (
            close[i] <= params[P_COMPL_LVL]
            and pct[i] <= params[P_COMPL_PCT]
            and term[i] <= params[P_COMPL_TERM]
        ):
            a = 1.0 - close[i] / params[P_COMPL_LVL]
            b = 1.0 - term[i] / params[P_COMPL_TERM]
            compl[i] = min(1.0, 0.5 + 2.0 * a + 2.0 * b)
        # regime change
        if i >= cl:
            d = regime[i] - regime[i - cl]
            if abs(d) >= steps:
                change[i] = d
    return spike_rev, compl, change


# ----------------------------------------------------------------------------------------------
class VixAnalyzer:
    """VIX state as of a market time, from a :class:`~app.feeds.vix_history.VixHistory`.

    Parameters
    ----------
    history : VixHistory
    section : dict
        The profile's ``[vix]`` section (``bands``, ``sizing_factors``, thresholds).
    use_numba : bool
        Use the numba kernels (default) or their NumPy twins.
    """

    def __init__(self, history, section: dict, use_numba: bool = True):
        self.history = history
        self.section = dict(section)
        self.bands = tuple(float(b) for b in section["bands"])
        self.sizing = tuple(float(f) for f in section["sizing_factors"])
        self.params = vix_params(section)
        b = np.asarray(self.bands, np.float64)
        if use_numba:
            f1, f2 = vix_series, vix_patterns
        else:
            from app.analysis.vix_ref import vix_patterns_np, vix_series_np

            f1, f2 = vix_series_np, vix_patterns_np
        self.pct, self.mom, self.term, self.regime = f1(history.close, history.vix3m, b, self.params)
        self.spike_rev, self.compl, self.change = f2(
            history.close, self.pct, self.mom, self.term, self.regime, self.params
        )
        self._cache: dict[int, VixState] = {}

    def regime_name(self, i: int) -> str:
        """Regime name of session ``i``."""
        return REGIMES[int(self.regime[i])]

    def state_at_index(self, i: int, ts: int = 0) -> VixState:
        """VixState of session ``i`` (cached)."""
        st = self._cache.get(i)
        if st is not None:
            return st
        h = self.history
        date = str(h.dates[i])
        pats = []
        if self.spike_rev[i] > 0:
            pats.append(PatternHit("spike_reversal", "vix", ts, 0, 1, float(self.spike_rev[i]),
                                   f"VIX {h.close[i]:.2f} fell {100 * self._drop(i):.0f}% from its spike peak",
                                   (("vix", float(h.close[i])), ("drop", self._drop(i)))))
        if self.compl[i] > 0:
            pats.append(PatternHit("complacency", "vix", ts, 0, -1, float(self.compl[i]),
                                   f"VIX {h.close[i]:.2f}, percentile {self.pct[i]:.2f}, VIX/VIX3M {self.term[i]:.2f}",
                                   (("vix", float(h.close[i])), ("percentile", float(self.pct[i])),
                                    ("term", float(self.term[i])))))
        if self.change[i] != 0:
            d = int(self.change[i])
            cl = int(self.params[P_CHANGE_LB])
            prev = REGIMES[int(self.regime[i - cl])]
            pats.append(PatternHit("regime_change", "vix", ts, 0, -1 if d > 0 else 1, min(1.0, abs(d) / 4.0 + 0.25),
                                   f"regime {prev} -> {REGIMES[int(self.regime[i])]} in {cl} sessions",
                                   (("steps", float(d)),)))
        r = int(self.regime[i])
        st = VixState(
            date=date, level=float(h.close[i]), percentile=float(self.pct[i]),
            momentum_5d=float(self.mom[i]), term_structure=float(self.term[i]),
            regime=REGIMES[r], regime_index=r, sizing_factor=self.sizing[r],
            bands=self.bands, patterns=tuple(pats),
        )
        self._cache[i] = st
        return st

    def _drop(self, i: int) -> float:
        lb = int(self.params[P_SPIKE_LB])
        peak = float(np.max(self.history.close[max(0, i - lb + 1): i + 1]))
        return 1.0 - float(self.history.close[i]) / peak

    def index_for(self, ts: int) -> int:
        """Session index for market time ``ts`` ns (-1 if the history starts later)."""
        return self.history.index_before(ts)

    def state(self, ts: int, live_level: float | None = None) -> VixState | None:
        """VixState as of market time ``ts`` (ns), or None when no session precedes it.

        ``live_level`` (an intraday VIX value from a live source) replaces the level and
        re-derives level band, percentile and momentum for display; the patterns stay those of
        the last close.
        """
        i = self.index_for(ts)
        if i < 0:
            return None
        st = self.state_at_index(i, ts)
        if live_level is None or not math.isfinite(live_level) or live_level <= 0:
            return st
        h = self.history
        w = int(self.params[P_WINDOW])
        win = h.close[max(0, i - w + 2): i + 1]
        pct = float(np.count_nonzero(win <= live_level)) / max(1, win.size)
        mom = live_level / h.close[i - 4] - 1.0 if i >= 4 else float("nan")
        v3 = h.vix3m[i]
        term = live_level / v3 if v3 > 0 else float("nan")
        lvl = int(np.searchsorted(np.asarray(self.bands), live_level, side="right"))
        up = mom >= self.params[P_MOM_STRESS] or term >= self.params[P_BACKW]
        down = (not up) and pct <= self.params[P_CALM_PCT] and term < 1.0 and mom <= 0
        r = min(4, max(0, lvl + int(up) - int(down)))
        return VixState(date=st.date, level=float(live_level), percentile=pct, momentum_5d=float(mom),
                        term_structure=float(term), regime=REGIMES[r], regime_index=r,
                        sizing_factor=self.sizing[r], bands=self.bands, patterns=st.patterns)
