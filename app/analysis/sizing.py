"""Position size and the suggested bracket of an elite signal.

Size (fixed-fractional risk, the usual futures sizing rule): ``floor(risk_per_trade_usd /
(stop ticks x tick value) x sizing factor of the VIX regime)``, at most ``max_contracts``
(profile ``[sizing]``; factors in ``[vix] sizing_factors``). It is 0, with the reason, when one
contract at that stop already risks more than the budget: the signal is shown, never sized up
to 1 behind the trader's back. The arithmetic is returned as text for the order ticket.

Bracket (ticks): the stop distance is ``stop_atr_mult x`` the average high-low range of the last
``atr_bars`` closed bars (the recent volatility), clipped to ``[min_stop_ticks, max_stop_atr x
that range]``: the ceiling follows the instrument's own volatility (a fixed 40 ticks was $10 on
ES and $4 on BTCUSDT, whose median one-minute range is about 900 ticks).
When the signal's reasons include a price-bound level on the signal's side (a bid wall, an
iceberg, absorption... below a long entry), the stop goes one tick beyond that level instead,
if that distance is still inside the clip range. The target is ``reward_risk x`` the stop
distance from the entry.
"""

from __future__ import annotations

import math

import numpy as np


def risk_size(risk_usd: float, stop_ticks: int, tick_value: float, factor: float,
              max_contracts: int) -> tuple[int, str]:
    """Contracts for a signal and the arithmetic behind them.

    ``n = min(max_contracts, floor(risk_usd / (stop_ticks x tick_value) x factor))``.

    Parameters
    ----------
    risk_usd : float
        Risk per trade, USD (profile ``sizing.risk_per_trade_usd``).
    stop_ticks : int
        Distance from entry to stop, ticks (>= 1).
    tick_value : float
        USD per tick per contract (ES 12.50).
    factor : float
        The VIX regime's sizing factor (>= 0).
    max_contracts : int
        Ceiling, contracts (>= 1).

    Returns
    -------
    (int, str)
        Contracts (0 when one contract at this stop risks more than ``risk_usd x factor``) and
        the text ``"150 USD / (4 ticks x 12.50 USD) = 3.00 x regime 1.00 = 3.00 -> 3 contracts"``.

    Raises
    ------
    ValueError
        A non-finite or negative ``risk_usd`` or ``factor``, ``stop_ticks < 1``, a non-positive
        ``tick_value`` or ``max_contracts < 1``.
    """
    if not (math.isfinite(risk_usd) and risk_usd >= 0):
        raise ValueError(f"risk per trade must be a finite number >= 0 USD, got {risk_usd!r}")
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"sizing factor must be a finite number >= 0, got {factor!r}")
    if int(stop_ticks) < 1 or not (math.isfinite(tick_value) and tick_value > 0) or int(max_contracts) < 1:
        raise ValueError(f"need stop_ticks >= 1, tick_value > 0, max_contracts >= 1; got {stop_ticks}, "
                         f"{tick_value}, {max_contracts}")
    per = int(stop_ticks) * float(tick_value)
    raw = float(risk_usd) / per
    n = int(min(int(max_contracts), math.floor(raw * factor + 1e-9)))
    text = (f"{risk_usd:.0f} USD / ({int(stop_ticks)} ticks x {tick_value:.2f} USD) = {raw:.2f} x regime "
            f"{factor:.2f} = {raw * factor:.2f} -> {n} contract{'' if n == 1 else 's'}")
    if n == 0:
        text += f": the stop is too wide (one contract risks {per:.2f} USD)"
    elif math.floor(raw * factor + 1e-9) > n:
        text += f" (capped at max_contracts {int(max_contracts)})"
    return n, text


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
        ``max_stop_atr``, ``reward_risk``).

    Returns
    -------
    (stop, target) : tuple of int
    """
    lo = int(elite["min_stop_ticks"])
    hi = max(lo, int(round(float(elite["max_stop_atr"]) * atr_ticks)))
    dist = int(min(hi, max(lo, round(elite["stop_atr_mult"] * atr_ticks))))
    behind = [side * (entry - lv) + 1 for lv in levels if side * (entry - lv) >= 0]
    behind = [d for d in behind if lo <= d <= hi]
    if behind:
        dist = min(behind)
    target_dist = max(1, int(round(elite["reward_risk"] * dist)))
    return entry - side * dist, entry + side * target_dist
