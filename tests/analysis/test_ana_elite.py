"""Elite score, threshold, confluence, cooldown and hourly rate limit; sizing (outcomes: tests/sim/test_sim_outcomes.py)."""

import pytest

from app.analysis.elite import EliteGate, dom_component, regime_component, vix_component
from app.analysis.frame import PatternHit, VixState
from app.analysis.sizing import bracket, risk_size
from app.config.profiles import load_profile

T0 = 1_703_545_200_000_000_000
S = 1_000_000_000


def hit(name, side, strength, ts=T0, family="dom", price=1000):
    return PatternHit(name, family, ts, price, side, strength)


def vix(regime_index=2, mom=0.0, patterns=()):
    names = ("ultra_low", "low", "normal", "high", "extreme")
    return VixState("2023-12-22", 15.0, 0.5, mom, 0.9, names[regime_index], regime_index, 1.0, patterns=patterns)


def gate(**over):
    e = dict(load_profile("production").section("elite"))
    e.update(over)
    return EliteGate(e)


def test_components():
    assert vix_component(None) == 0.5
    assert vix_component(vix(1)) > vix_component(vix(4))  # extreme regime: worse
    d, reasons = dom_component(1, [hit("wall", 1, 0.5), hit("wall", 1, 0.8), hit("iceberg", 1, 0.5)])
    assert d == pytest.approx(1 - 0.2 * 0.5) and [r.name for r in reasons] == ["wall", "iceberg"]
    d2, _ = dom_component(1, [hit("wall", 1, 0.8), hit("iceberg", 1, 0.5), hit("ladder", -1, 1.0)])
    assert d2 == pytest.approx(d * 0.5)  # a strong opposite pattern halves it
    assert regime_component(1, 1.0, 1.0, 1) == 1.0 and regime_component(-1, 1.0, 1.0, 1) == 0.0


def test_score_is_the_weighted_sum():
    g = gate()
    hits = [hit("wall", 1, 0.8), hit("iceberg", 1, 0.6), hit("absorption", 1, 0.5)]
    sc, comps, reasons = g.score(1, vix(1), hits, 0.2, 0.1, 0)
    c = dict(comps)
    assert sc == pytest.approx(0.30 * c["vix"] + 0.45 * c["dom"] + 0.25 * c["regime"])
    assert len(reasons) == 3


def test_threshold_and_min_patterns():
    strong = [hit("wall", 1, 0.9), hit("iceberg", 1, 0.9), hit("absorption", 1, 0.9)]
    assert gate().candidates(T0, strong, strong, vix(1), 0.3, 0.3, 1)
    weak = [hit("wall", 1, 0.3), hit("iceberg", 1, 0.3), hit("absorption", 1, 0.3)]
    sc, _, _ = gate().score(1, vix(1), weak, -0.5, -0.5, 0)
    assert sc < 0.70
    assert not gate().candidates(T0, weak, weak, vix(1), -0.5, -0.5, 0)
    two = strong[:2]  # production needs 3 distinct patterns
    assert not gate().candidates(T0, two, two, vix(1), 0.3, 0.3, 1)
    assert gate(min_patterns=2).candidates(T0, two, two, vix(1), 0.3, 0.3, 1)


def test_trigger_needs_a_new_hit_on_that_side():
    strong = [hit("wall", 1, 0.9), hit("iceberg", 1, 0.9), hit("absorption", 1, 0.9)]
    assert not gate().candidates(T0, [hit("wall", -1, 0.5)], strong, vix(1), 0.3, 0.3, 1)


def test_hourly_rate_limit_and_cooldown():
    g = gate(max_signals_per_hour=2, cooldown_s=0.0)
    strong = [hit("wall", 1, 0.9), hit("iceberg", 1, 0.9), hit("absorption", 1, 0.9)]
    emitted = []
    for k in range(5):
        t = T0 + k * 60 * S
        for side, *_ in g.candidates(t, strong, strong, vix(1), 0.3, 0.3, 1):
            g.commit(t, side)
            emitted.append(t)
    assert len(emitted) == 2 and g.suppressed_rate == 3
    t = T0 + 3600 * S + 1  # the first one left the hour
    assert g.candidates(t, strong, strong, vix(1), 0.3, 0.3, 1)
    g2 = gate(cooldown_s=300.0)
    g2.commit(T0, 1)
    assert not g2.candidates(T0 + 299 * S, strong, strong, vix(1), 0.3, 0.3, 1)
    assert g2.candidates(T0 + 300 * S, strong, strong, vix(1), 0.3, 0.3, 1)


def test_sizing_and_bracket():
    e = load_profile("production").section("elite")  # stop 1 x ATR in [4, 6 x ATR], reward 2
    assert bracket(1, 1000, 6.0, [], e) == (994, 1012)
    assert bracket(1, 1000, 2.0, [], e) == (996, 1008)  # min stop 4
    assert bracket(1, 1000, 6.0, [995], e) == (994, 1012)  # a level 5 below: stop 6 below it
    assert bracket(1, 1000, 20.0, [995], e) == (994, 1012)  # the level tightens a wide ATR stop
    assert bracket(-1, 1000, 6.0, [1010], e) == (1011, 978)  # short: one tick above the level
    assert bracket(-1, 1000, 6.0, [1050], e) == (1006, 988)  # level beyond 6 x ATR: ATR stop


def test_risk_sizing_is_risk_over_stop_value_times_regime():
    """Old rule: base_contracts (1 in every profile) x factor, at least 1: every regime gave 1."""
    n, text = risk_size(150.0, 4, 12.5, 1.0, 5)
    assert n == 3 and text == "150 USD / (4 ticks x 12.50 USD) = 3.00 x regime 1.00 = 3.00 -> 3 contracts"
    assert risk_size(150.0, 4, 12.5, 0.5, 5)[0] == 1  # a high-VIX regime halves it
    assert risk_size(150.0, 4, 12.5, 0.25, 5)[0] == 0  # 0.75 of a contract: none
    n, text = risk_size(150.0, 40, 12.5, 1.0, 5)
    assert n == 0 and "the stop is too wide (one contract risks 500.00 USD)" in text
    n, text = risk_size(1000.0, 4, 12.5, 1.0, 5)
    assert n == 5 and "capped at max_contracts 5" in text
    # BTCUSDT (0.1 USD per tick per BTC): a 900-tick stop risks 90 USD per coin
    assert risk_size(150.0, 900, 0.1, 1.0, 5)[0] == 1
    for bad in (dict(risk_usd=float("nan")), dict(factor=-1.0), dict(stop_ticks=0), dict(tick_value=0.0)):
        kw = dict(risk_usd=150.0, stop_ticks=4, tick_value=12.5, factor=1.0, max_contracts=5) | bad
        with pytest.raises(ValueError):
            risk_size(**kw)


def test_score_both_equals_score_per_side():
    g = gate()
    hits = [hit("wall", 1, 0.8), hit("iceberg", 1, 0.6), hit("wall", 1, 0.3), hit("ladder", -1, 0.7),
            hit("absorption", -1, 0.5), hit("transition", 0, 0.9)]
    both = g.score_both(vix(1, mom=0.1), hits, 0.2, -0.1, 1)
    for side in (1, -1):
        sc, comps, reasons = g.score(side, vix(1, mom=0.1), hits, 0.2, -0.1, 1)
        assert both[side][0] == pytest.approx(sc) and both[side][1] == comps
        assert [r.name for r in both[side][2]] == [r.name for r in reasons]
