"""The elite score and the signal gate.

``elite = w_vix x VIX + w_dom x DOM/confluence + w_regime x regime`` (profile ``[elite]``
weights, 0.30 / 0.45 / 0.25), each component 0..1, computed for a candidate side ``s`` (+1 long,
-1 short):

* **VIX** (market-wide volatility context): ``0.6 x q[regime] + 0.4 x d`` where
  ``q = (0.8, 1.0, 0.9, 0.6, 0.3)`` rates how tradeable order-flow signals are in each regime
  (ultra_low..extreme) and ``d = 0.5 - 0.5 tanh(s x momentum_5d / 0.25)`` favours longs while VIX
  falls and shorts while it rises; an active spike reversal adds ``0.2 x strength`` to longs,
  complacency takes 0.1 from longs; clipped to 0..1. No VIX history: 0.5.
* **DOM/confluence**: the patterns (DOM, Battle Navale, advanced, VIX) seen in the last
  ``confluence_window_s`` with side ``s``, strongest per pattern name, combined as a noisy-OR
  ``S = 1 - prod(1 - strength)``; the opposite side's ``O`` likewise; ``DOM = S x (1 - 0.5 O)``.
* **Regime** (the intraday order-flow regime): ``0.5 + 0.3 s f + 0.2 s i + 0.2 s t`` clipped to
  0..1, with ``f = delta / volume`` over the order-flow window, ``i`` the book imbalance and ``t``
  the trend direction when the transition state is ``trend`` (else 0).

A signal is emitted for side ``s`` only when at least one pattern of side ``s`` was detected this
step (the trigger), at least ``min_patterns`` distinct patterns of side ``s`` are in the window,
the score is at least ``min_elite_score``, the last signal of that side is ``cooldown_s`` old,
and fewer than ``max_signals_per_hour`` signals were emitted in the last hour of market time.
"""

from __future__ import annotations

import math
from collections import deque
from operator import attrgetter

from app.analysis.frame import PatternHit, VixState

REGIME_QUALITY = (0.8, 1.0, 0.9, 0.6, 0.3)
_strength = attrgetter("strength")
HOUR_NS = 3_600_000_000_000


def vix_component(side: int, vix: VixState | None) -> float:
    """VIX component 0..1 for ``side`` (see the module docstring)."""
    if vix is None:
        return 0.5
    m = vix.momentum_5d if math.isfinite(vix.momentum_5d) else 0.0
    d = 0.5 - 0.5 * math.tanh(side * m / 0.25)
    v = 0.6 * REGIME_QUALITY[vix.regime_index] + 0.4 * d
    for p in vix.patterns:
        if p.name == "spike_reversal" and side > 0:
            v += 0.2 * p.strength
        elif p.name == "complacency" and side > 0:
            v -= 0.1
    return min(1.0, max(0.0, v))


def confluence(side: int, hits) -> tuple[float, list[PatternHit]]:
    """Noisy-OR of the strongest hit per pattern name on ``side``; returns (value, those hits).

    ``hits`` is an iterable of PatternHit; the returned hits are sorted strongest first.
    """
    best: dict[str, PatternHit] = {}
    for h in hits:
        if h.side == side and h.strength > 0:
            b = best.get(h.name)
            if b is None or h.strength > b.strength:
                best[h.name] = h
    prod = 1.0
    for h in best.values():
        prod *= 1.0 - min(1.0, h.strength)
    return 1.0 - prod, sorted(best.values(), key=lambda h: -h.strength)


def dom_component(side: int, hits) -> tuple[float, list[PatternHit]]:
    """DOM/confluence component 0..1 and the supporting hits (strongest first)."""
    s, reasons = confluence(side, hits)
    o, _ = confluence(-side, hits)
    return s * (1.0 - 0.5 * o), reasons


def regime_component(side: int, flow_ratio: float, imbalance: float, trend_dir: int) -> float:
    """Intraday regime component 0..1 (see the module docstring)."""
    v = 0.5 + 0.3 * side * flow_ratio + 0.2 * side * imbalance + 0.2 * side * trend_dir
    return min(1.0, max(0.0, v))


class EliteGate:
    """Scores candidate sides and applies threshold, confluence, cooldown and hourly rate limit.

    Parameters
    ----------
    elite : dict
        The profile's ``[elite]`` section.
    """

    def __init__(self, elite: dict):
        self.e = dict(elite)
        self.w = (float(elite["weight_vix"]), float(elite["weight_dom"]), float(elite["weight_regime"]))
        self.emitted: deque[int] = deque()  # ts of signals in the last hour
        self.last_side_ts = {1: None, -1: None}
        self.suppressed_rate = 0  # candidates above threshold refused by the hourly limit
        self._vix_key = object()
        self._vix_val = (0.5, 0.5)

    def score(self, side, vix, hits, flow_ratio, imbalance, trend_dir):
        """``(score, components tuple, reasons)`` for ``side``."""
        v = vix_component(side, vix)
        d, reasons = dom_component(side, hits)
        r = regime_component(side, flow_ratio, imbalance, trend_dir)
        sc = self.w[0] * v + self.w[1] * d + self.w[2] * r
        return float(sc), (("vix", float(v)), ("dom", float(d)), ("regime", float(r))), reasons

    def score_both(self, vix, hits, flow_ratio, imbalance, trend_dir):
        """Scores of both sides in one pass over ``hits``: ``{side: (score, components, reasons)}``.

        Same numbers as :meth:`score` for each side.
        """
        best: dict = {}
        for h in hits:
            if h.side != 0 and h.strength > 0:
                k = (h.side, h.name)
                b = best.get(k)
                if b is None or h.strength > b.strength:
                    best[k] = h
        pp = pm = 1.0
        rp: list = []
        rm: list = []
        for (side, _), h in best.items():
            if side > 0:
                pp *= 1.0 - min(1.0, h.strength)
                rp.append(h)
            else:
                pm *= 1.0 - min(1.0, h.strength)
                rm.append(h)
        if vix is not self._vix_key:  # the VIX part changes once a day: cache it per VixState
            self._vix_key = vix
            self._vix_val = (vix_component(1, vix), vix_component(-1, vix))
        wv, wd, wr = self.w
        fr = float(flow_ratio)
        im = float(imbalance)
        out = {}
        for side, prod, oprod, rs, v in ((1, pp, pm, rp, self._vix_val[0]), (-1, pm, pp, rm, self._vix_val[1])):
            d = (1.0 - prod) * (1.0 - 0.5 * (1.0 - oprod))
            r = regime_component(side, fr, im, trend_dir)
            rs.sort(key=_strength, reverse=True)  # stable: ties keep their order
            out[side] = (wv * v + wd * d + wr * r, (("vix", v), ("dom", d), ("regime", r)), rs)
        return out

    def candidates(self, ts, new_hits, window_hits, vix, flow_ratio, imbalance, trend_dir):
        """Sides that pass every rule this step: list of ``(side, score, components, reasons)``.

        The caller must call :meth:`commit` for each signal it actually emits.
        """
        out = []
        while self.emitted and self.emitted[0] <= ts - HOUR_NS:
            self.emitted.popleft()
        sides = [side for side in (1, -1) if any(h.side == side for h in new_hits)]
        if not sides:
            return out
        both = self.score_both(vix, window_hits, flow_ratio, imbalance, trend_dir)
        for side in sides:
            sc, comps, reasons = both[side]
            if len(reasons) < int(self.e["min_patterns"]) or sc < float(self.e["min_elite_score"]):
                continue
            last = self.last_side_ts[side]
            if last is not None and ts - last < float(self.e["cooldown_s"]) * 1e9:
                continue
            if len(self.emitted) + len(out) >= int(self.e["max_signals_per_hour"]):
                self.suppressed_rate += 1
                continue
            out.append((side, sc, comps, reasons))
        return out

    def commit(self, ts: int, side: int) -> None:
        """Record an emitted signal (for the rate limit and the cooldown)."""
        self.emitted.append(ts)
        self.last_side_ts[side] = ts
