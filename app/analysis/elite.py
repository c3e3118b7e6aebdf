"""The elite score and the signal gate.

``elite = w_vix x VIX + w_dom x DOM/confluence + w_regime x regime`` (profile ``[elite]``
weights, 0.30 / 0.45 / 0.25), each component 0..1, computed for a candidate side ``s`` (+1 long,
-1 short):

* **VIX** (market-wide volatility context, the same for both sides): ``q[regime]`` with
  ``q = (0.8, 1.0, 0.9, 0.6, 0.3)`` rating how tradeable order-flow signals are in each regime
  (ultra_low..extreme). No VIX history: 0.5. From the daily CBOE closes it is a constant for the
  whole trading day: it scales every signal of the day alike and cannot rank signals within a
  session; it moves intraday only when a live VIX level is fed (``Analyzers.set_live_vix``).
  It used to lean long while VIX fell and short while it rose, and to add spike-reversal and
  complacency adjustments; those day-ahead directions were not supported on SPX 2009-2018
  (complacency was followed by +4 bp over 5 sessions against +20 bp on other days; a regime
  rise by +64 bp, issue 14), so VIX is context (regime, sizing), never a direction or a pattern.
* **DOM/confluence**: the intraday patterns (DOM, Battle Navale, advanced; never VIX) seen in the last
  ``confluence_window_s`` with side ``s``, strongest per pattern name, combined as a noisy-OR
  ``S = 1 - prod(1 - strength)``; the opposite side's ``O`` likewise; ``DOM = S x (1 - 0.5 O)``.
* **Regime** (the intraday order-flow regime): ``0.5 + 0.3 s f + 0.2 s i + 0.2 s t`` clipped to
  0..1, with ``f = delta / volume`` over the order-flow window, ``i`` the book imbalance and ``t``
  the trend direction when the transition state is ``trend`` (else 0).

A signal is emitted for side ``s`` only when at least one pattern of side ``s`` was detected this
step (the trigger), at least ``min_patterns`` distinct patterns of side ``s`` are in the window,
the score is at least ``min_elite_score``, the last signal of that side is ``cooldown_s`` old,
and fewer than ``max_signals_per_hour`` signals were emitted in the last hour of market time.
When both sides pass at the same instant the evidence conflicts and neither is emitted (one
signal per instant and instrument; counted in ``EliteGate.suppressed_conflict``).
"""

from __future__ import annotations

from collections import deque
from operator import attrgetter

from app.analysis.frame import PatternHit, VixState

REGIME_QUALITY = (0.8, 1.0, 0.9, 0.6, 0.3)
_strength = attrgetter("strength")
HOUR_NS = 3_600_000_000_000


def vix_component(vix: VixState | None) -> float:
    """VIX component 0..1, the same for either side (see the module docstring).

    Parameters
    ----------
    vix : VixState or None
        The regime picture at the signal's time; None (no history) gives 0.5.
    """
    if vix is None:
        return 0.5
    return float(REGIME_QUALITY[vix.regime_index])


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
        self.suppressed_conflict = 0  # instants at which both sides passed (neither emitted)
        self._vix_key = object()
        self._vix_val = 0.5

    def score(self, side, vix, hits, flow_ratio, imbalance, trend_dir):
        """``(score, components tuple, reasons)`` for ``side``."""
        v = vix_component(vix)
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
            self._vix_val = vix_component(vix)
        wv, wd, wr = self.w
        fr = float(flow_ratio)
        im = float(imbalance)
        out = {}
        v = self._vix_val
        for side, prod, oprod, rs in ((1, pp, pm, rp), (-1, pm, pp, rm)):
            d = (1.0 - prod) * (1.0 - 0.5 * (1.0 - oprod))
            r = regime_component(side, fr, im, trend_dir)
            rs.sort(key=_strength, reverse=True)  # stable: ties keep their order
            out[side] = (wv * v + wd * d + wr * r, (("vix", v), ("dom", d), ("regime", r)), rs)
        return out

    def candidates(self, ts, new_hits, window_hits, vix, flow_ratio, imbalance, trend_dir):
        """Sides that pass every rule this step: list of ``(side, score, components, reasons)``,
        at most one (both sides passing at once gives none).

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
        if len(out) > 1:  # long and short at one instant: conflicting evidence, no signal
            self.suppressed_conflict += 1
            return []
        return out

    def commit(self, ts: int, side: int) -> None:
        """Record an emitted signal (for the rate limit and the cooldown)."""
        self.emitted.append(ts)
        self.last_side_ts[side] = ts
