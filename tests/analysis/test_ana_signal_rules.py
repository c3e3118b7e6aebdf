"""Signals as claims (issue 14, items 8 and 9): VIX is daily context, never a reason, a trigger
or a direction; one signal per instant and instrument."""

from dataclasses import replace

import numpy as np
import pytest

from app.analysis.elite import EliteGate, vix_component
from app.analysis.frame import PatternHit, VixState
from app.config.profiles import load_profile

T0 = 1_703_545_200_000_000_000


def _vix(regime_index=2, mom=0.0, patterns=()):
    names = ("ultra_low", "low", "normal", "high", "extreme")
    return VixState("2023-12-22", 15.0, 0.5, mom, 0.9, names[regime_index], regime_index, 1.0, patterns=patterns)


def _gate(**over):
    e = dict(load_profile("production").section("elite"))
    e.update(over)
    return EliteGate(e)


def _hit(name, side, strength=0.9, family="dom"):
    return PatternHit(name, family, T0, 1000, side, strength)


@pytest.mark.parametrize("mom", [-0.4, 0.0, 0.4])
def test_vix_component_is_the_same_for_long_and_short(mom):
    """Old code leaned long while VIX fell and short while it rose (not supported by data)."""
    pats = (PatternHit("complacency", "vix", T0, 0, -1, 1.0), PatternHit("spike_reversal", "vix", T0, 0, 1, 1.0))
    vs = _vix(2, mom=mom, patterns=pats)
    both = _gate().score_both(vs, [_hit("wall", 1), _hit("wall", -1)], 0.0, 0.0, 0)
    assert dict(both[1][1])["vix"] == dict(both[-1][1])["vix"] == vix_component(vs)


def test_both_sides_at_one_instant_give_no_signal():
    long_ = [_hit("wall", 1), _hit("iceberg", 1), _hit("absorption", 1)]
    short = [_hit("wall", -1), _hit("iceberg", -1), _hit("absorption", -1)]
    g = _gate(min_patterns=2, min_elite_score=0.5)  # a permissive threshold, as Development's
    # each alone passes ...
    assert g.candidates(T0, long_, long_, _vix(1), 0.0, 0.0, 0)
    assert g.candidates(T0, short, short, _vix(1), 0.0, 0.0, 0)
    # ... both at once: conflicting evidence, neither is emitted, and it is counted
    assert g.candidates(T0, long_ + short, long_ + short, _vix(1), 0.0, 0.0, 0) == []
    assert g.suppressed_conflict == 1


@pytest.fixture(scope="module")
def es_runs(shared_data):
    """The shipped ES hour analysed twice on Production: the real VIX history, and the same
    history with the close before the session set to 10.5 (a complacency day)."""
    from app.feeds.samples import load_default_sample
    from app.feeds.vix_history import load_vix_history
    from app.live.engine import AnalysisEngine
    from app.core.events import chunks

    rec = load_default_sample()
    vh = load_vix_history()
    day = np.datetime64(int(rec.start_ns // 86_400_000_000_000), "D")
    i = int(np.searchsorted(vh.dates, day)) - 1  # the last close strictly before the session date
    close = vh.close.copy()
    close[i] = 10.5
    low = replace(vh, close=close)

    def run(hist):
        eng = AnalysisEngine(rec.instrument, "production", vix_history=hist)
        for c in chunks(rec.events):
            eng.process(c)
        eng.finish(end_of_data=True)
        return eng.all_signals

    return run(vh), run(low)


def test_every_signal_of_the_day_has_the_same_vix_component_whatever_its_side(es_runs):
    """Old code: every long 0.7521 and every short 0.8479 on one day, and one complacent close
    turned Production from 3 long / 3 short into 0 long / 5 short. Now the VIX part scales both
    sides alike (fewer or other signals may pass on a worse regime, never a side preference)."""
    for sigs in es_runs:
        assert sigs, "the shipped hour gives Production signals"
        assert len({dict(s.components)["vix"] for s in sigs}) == 1, [(s.side, s.components) for s in sigs]
    real, low = es_runs
    assert dict(low[0].components)["vix"] < dict(real[0].components)["vix"]  # ultra-low regime rates lower


def test_no_signal_cites_a_vix_pattern(es_runs):
    for sigs in es_runs:
        for s in sigs:
            assert all(r.family != "vix" for r in s.reasons), s.reasons
