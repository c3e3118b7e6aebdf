"""Evaluation statistics: small, exact, and honest about sample size.

Every function takes plain numbers or numpy arrays and returns plain numbers, so the same
figures serve ``mia-elite evaluate``, its tests and (later) the window's precision table.

Sources
-------
* Wilson score interval: E. B. Wilson, "Probable inference, the law of succession, and
  statistical inference", JASA 22 (1927) 209-212; recommended over the Wald interval by Brown,
  Cai and DasGupta, "Interval estimation for a binomial proportion", Stat. Sci. 16 (2001).
* Block bootstrap: resampling whole sessions (the blocks) keeps the dependence between the
  signals of one session (Kunsch, "The jackknife and the bootstrap for general stationary
  observations", Ann. Stat. 17 (1989); Efron and Tibshirani, "An introduction to the bootstrap",
  1993, ch. 13 for the percentile interval).
* Benjamini-Hochberg step-up procedure: Benjamini and Hochberg, "Controlling the false discovery
  rate", JRSS B 57 (1995) 289-300.
* Sharpe ratio: W. F. Sharpe, "The Sharpe ratio", J. Portfolio Mgmt 21 (1994); annualised with
  sqrt(252) sessions a year and a zero risk-free rate (futures P&L is already excess return).
* Monte-Carlo p-value ``(1 + #{draws >= observed}) / (1 + draws)``: Davison and Hinkley,
  "Bootstrap methods and their application", 1997, eq. 4.11 (never 0 for a finite number of draws).
"""

from __future__ import annotations

import math

import numpy as np

#: fewest sessions for a session Sharpe ratio or a maximum drawdown to be reported: with fewer,
#: the standard error of an annualised Sharpe (about sqrt(252 / n)) exceeds 3.5 and the figure
#: says nothing (Lo, "The statistics of Sharpe ratios", FAJ 58 (2002): SE ~ sqrt((1 + SR^2/2)/n)).
MIN_SESSIONS_RISK = 20
#: sessions per year (annualisation of the Sharpe ratio)
SESSIONS_PER_YEAR = 252
#: default confidence level of every interval
CONFIDENCE = 0.95


def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence`` (0.95 -> 1.95996)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes : int
        Number of successes (e.g. signals whose target was touched first), 0 <= successes <= n.
    n : int
        Number of trials (decided signals).
    confidence : float
        Two-sided level, default 0.95.

    Returns
    -------
    (low, high) : tuple of float
        In [0, 1]; ``(0.0, 1.0)`` when ``n == 0`` (nothing is known).

    Raises
    ------
    ValueError
        ``successes`` outside ``[0, n]`` or ``n < 0``.

    Notes
    -----
    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``
    (Wilson 1927). 3 of 6 gives (0.188, 0.812) at 95 %.
    """
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def session_bootstrap_mean(values, sessions, draws: int = 2000, confidence: float = CONFIDENCE,
                           rng: np.random.Generator | int | None = 0) -> tuple[float, float, float]:
    """Mean per trade with a percentile interval from resampling whole sessions.

    Parameters
    ----------
    values : array_like, float, shape (N,)
        One value per trade (ticks or USD).
    sessions : array_like, shape (N,)
        Session label of each trade (any hashable values; trades with the same label are one
        block).
    draws : int
        Bootstrap resamples.
    confidence : float
        Two-sided level of the percentile interval.
    rng : numpy.random.Generator or int or None
        The generator (or its seed); the default seed 0 makes the report reproducible.

    Returns
    -------
    (mean, low, high) : tuple of float
        ``nan`` for all three when there are no trades. Each draw picks S sessions with
        replacement out of the S present and takes ``sum of their values / number of their
        trades`` (the mean per trade, the same estimator as the point value). With one session
        the interval collapses to the mean: one block cannot measure its own variability.

    Raises
    ------
    ValueError
        ``values`` and ``sessions`` differ in length, or ``draws < 1``.
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(sessions)
    if v.shape != s.shape or v.ndim != 1:
        raise ValueError(f"session_bootstrap_mean: values {v.shape} and sessions {s.shape} must be equal 1-D")
    if draws < 1:
        raise ValueError(f"session_bootstrap_mean: draws must be >= 1, got {draws}")
    if v.size == 0:
        return math.nan, math.nan, math.nan
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    _, inv = np.unique(s, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv).astype(np.float64)
    k = sums.shape[0]
    mean = float(v.mean())
    idx = gen.integers(0, k, size=(int(draws), k))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return mean, float(lo), float(hi)


def breakeven_rate(target_ticks: float, stop_ticks: float, tick_value: float, cost_usd: float = 0.0) -> float:
    """Target-first rate at which a bracket breaks even after costs.

    Parameters
    ----------
    target_ticks, stop_ticks : float
        Distances from entry to target and to stop, ticks (> 0).
    tick_value : float
        USD per tick per contract.
    cost_usd : float
        Round-trip cost per contract, USD (commission both sides plus expected slippage).

    Returns
    -------
    float
        ``p* = (stop x V + C) / ((target + stop) x V)`` from ``p (T V - C) = (1 - p)(S V + C)``;
        may exceed 1 when the costs eat the whole target (the bracket can never pay).

    Raises
    ------
    ValueError
        A non-positive distance or tick value.
    """
    if not (target_ticks > 0 and stop_ticks > 0 and tick_value > 0):
        raise ValueError(f"breakeven_rate: target {target_ticks}, stop {stop_ticks} ticks and tick value "
                         f"{tick_value} must be > 0")
    return (stop_ticks * tick_value + cost_usd) / ((target_ticks + stop_ticks) * tick_value)


def max_drawdown(pnl) -> float:
    """Largest peak-to-trough fall of the cumulative sum of ``pnl`` (same unit, >= 0).

    ``pnl`` : array_like, float, shape (N,), e.g. session P&L in USD in time order; the curve
    starts at 0 before the first element.
    """
    x = np.asarray(pnl, dtype=np.float64)
    if x.size == 0:
        return 0.0
    eq = np.concatenate([[0.0], np.cumsum(x)])
    return float(np.max(np.maximum.accumulate(eq) - eq))


def session_risk(session_pnl, min_sessions: int = MIN_SESSIONS_RISK) -> dict:
    """Sharpe ratio and maximum drawdown over session P&L, only with enough sessions.

    Parameters
    ----------
    session_pnl : array_like, float, shape (S,)
        Net P&L of each session in time order (USD), sessions with no trade included as 0.
    min_sessions : int
        Fewest sessions for the figures (default :data:`MIN_SESSIONS_RISK` = 20).

    Returns
    -------
    dict
        ``sessions``, ``min_sessions``, ``sharpe`` (annualised ``mean / std x sqrt(252)``, std
        with ddof 1) and ``max_drawdown_usd``; both ``None`` below ``min_sessions`` or when the
        P&L does not vary, with ``note`` saying why.
    """
    x = np.asarray(session_pnl, dtype=np.float64)
    out = {"sessions": int(x.size), "min_sessions": int(min_sessions), "sharpe": None,
           "max_drawdown_usd": None, "note": ""}
    if x.size < min_sessions:
        out["note"] = f"needs >= {min_sessions} sessions, has {x.size}"
        return out
    out["max_drawdown_usd"] = round(max_drawdown(x), 2)
    sd = float(x.std(ddof=1))
    if sd > 0:
        out["sharpe"] = round(float(x.mean()) / sd * math.sqrt(SESSIONS_PER_YEAR), 3)
    else:
        out["note"] = "session P&L does not vary"
    return out


def benjamini_hochberg(p_values, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg false-discovery-rate control over many tests at once.

    Parameters
    ----------
    p_values : array_like, float, shape (m,)
        One p-value per test (profiles x patterns), in [0, 1]; ``nan`` entries are not tests.
    alpha : float
        The false discovery rate to control.

    Returns
    -------
    (rejected, adjusted) : (np.ndarray bool (m,), np.ndarray float64 (m,))
        ``rejected[i]`` is True when test i is a discovery: with the m' valid p-values sorted
        ``p(1) <= ... <= p(m')``, every test up to the largest k with ``p(k) <= k alpha / m'``.
        ``adjusted`` are the BH-adjusted p-values ``min_{j >= k} m' p(j) / j`` capped at 1
        (``nan`` where the input is nan); ``rejected == adjusted <= alpha``.

    Raises
    ------
    ValueError
        A p-value outside [0, 1] or ``alpha`` outside (0, 1).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if not 0 < alpha < 1:
        raise ValueError(f"benjamini_hochberg: alpha must be in (0, 1), got {alpha}")
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("benjamini_hochberg: p-values must be in [0, 1]")
    adj = np.full(p.shape, np.nan)
    rej = np.zeros(p.shape, dtype=bool)
    q = p[ok]
    m = q.size
    if m == 0:
        return rej, adj
    order = np.argsort(q, kind="stable")
    ranked = q[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    a = np.empty(m)
    a[order] = np.minimum(ranked, 1.0)
    adj[ok] = a
    rej[ok] = a <= alpha
    return rej, adj


def mc_p_value(observed: float, draws) -> float:
    """One-sided Monte-Carlo p-value of ``observed`` against baseline ``draws`` (shape (B,)):
    ``(1 + #{draws >= observed}) / (1 + B)``; ``nan`` when ``observed`` is nan or B = 0."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0 or not np.isfinite(observed):
        return math.nan
    return float((1 + np.count_nonzero(d >= observed - 1e-12)) / (1 + d.size))


def verdict(name: str, n: int, sessions: int, p_value: float, alpha: float = 0.05,
            adjusted: float | None = None) -> str:
    """The explicit verdict line of one profile (or pattern) against random entries.

    Parameters
    ----------
    name : str
        Profile (or ``profile/pattern``).
    n : int
        Trades measured; ``sessions`` the sessions they came from.
    p_value : float
        Against the matched random baseline (:func:`mc_p_value`); ``adjusted`` the
        Benjamini-Hochberg one, which decides when given.

    Returns
    -------
    str
        ``"<name>: not distinguishable from random entries at n = 6 (1 session), p = 0.105"``,
        ``"<name>: better than random entries at n = ..., p = ... (BH-adjusted ...)"`` or
        ``"<name>: no signals, nothing to measure"``.
    """
    if n == 0:
        return f"{name}: no signals, nothing to measure"
    ss = f"{sessions} session{'s' if sessions != 1 else ''}"
    decide = p_value if adjusted is None else adjusted
    tail = f"p = {p_value:.3f}" + ("" if adjusted is None else f", BH-adjusted {adjusted:.3f}")
    if not np.isfinite(decide) or decide > alpha:
        return f"{name}: not distinguishable from random entries at n = {n} ({ss}), {tail}"
    return f"{name}: better than random entries at n = {n} ({ss}), {tail}"
