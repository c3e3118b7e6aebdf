"""Position size and the suggested bracket of an elite signal.

Size: ``base_contracts x sizing factor of the VIX regime``, rounded half up, at least 1, at most
``max_contracts`` (profile ``[sizing]``; factors in ``[vix] sizing_factors``).

Bracket (ticks): the stop distance is ``stop_atr_mult x`` the average high-low range of the last
``atr_bars`` closed bars (the recent volatility), clipped to ``[min_stop_ticks, max_stop_ticks]``.
When the signal's reasons include a price-bound level on the signal's side (a bid wall, an
iceberg, absorption... below a long entry), the stop goes one tick beyond that level instead,
if that distance is still inside the clip range. The target is ``reward_risk x`` the stop
distance from the entry.
"""

from __future__ import annotations

import math

import numpy as np


def position_size(base_contracts: int, factor: float, max_contracts: int) -> int:
    """Contracts for a signal: ``clip(round_half_up(base x factor), 1, max_contracts)``.

    Raises
    ------
    ValueError
        If ``base_contracts < 1``, ``max_contracts < 1`` or ``factor`` is negative or not finite.
    """
    if base_contracts < 1 or max_contracts < 1:
        raise ValueError("base_contracts and max_contracts must be >= 1")
    if not math.isfinite(factor) or factor < 0:
        raise ValueError(f"sizing factor must be a finite number >= 0, got {factor!r}")
    return int(min(max_contracts, max(1, math.floor(base_contracts * factor + 0.5))))


def average_range(high: np.ndarray, low: np.ndarray, n: int) -> float:
    """Mean ``high - low`` (ticks) of the last ``n`` entries; 1.0 when there are none."""
    if n <= 0 or high.shape[0] == 0:
        return 1.0
    h = np.asarray(high[-n:], np.float64)
    lo = np.asarray(low[-n:], np.float64)
    return max(1.0, float(np.mean(h - lo)))


def bracket(side: int, entry: int, atr_ticks: float, levels: list[int], elite: dict) -> tuple[int, int]:
    """Stop and target prices (ticks) for a signal.

    Parameters
    ----------
    side : int
        +1 long, -1 short.
    entry : int
        Entry price, ticks.
    atr_ticks : float
        Average bar range, ticks.
    levels : list of int
        Prices (ticks) of the signal's price-bound reasons.
    elite : dict
        The profile's ``[elite]`` section (``stop_atr_mult``, ``min_stop_ticks``,
        ``max_stop_ticks``, ``reward_risk``).

    Returns
    -------
    (stop, target) : tuple of int
    """
    lo, hi = int(elite["min_stop_ticks"]), int(elite["max_stop_ticks"])
    dist = int(min(hi, max(lo, round(elite["stop_atr_mult"] * atr_ticks))))
    behind = [side * (entry - lv) + 1 for lv in levels if side * (entry - lv) >= 0]
    behind = [d for d in behind if lo <= d <= hi]
    if behind:
        dist = min(behind)
    target_dist = max(1, int(round(elite["reward_risk"] * dist)))
    return entry - side * dist, entry + side * target_dist
