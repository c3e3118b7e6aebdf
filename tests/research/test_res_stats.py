"""Statistics of ``mia-elite evaluate``: known values, coverage, BH, planted edge on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.frame import Signal
from app.research import stats
from app.research.evaluate import RunResult, summarise
from app.research.trades import follow, trade_result


def test_wilson_interval_known_values():
    lo, hi = stats.wilson_interval(3, 6)
    assert (round(lo, 3), round(hi, 3)) == (0.188, 0.812)  # the "0.19-0.81"
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = stats.wilson_interval(10, 10)
    assert hi == 1.0 and 0.69 < lo < 0.73
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(7, 6)


def test_session_bootstrap_covers_a_known_mean_at_the_stated_rate():
    """Sessions with their own level (dependence inside a session) around a known mean 1.5:
    the 90 % session-block interval covers it in about 90 % of 400 seeded replications."""
    rng = np.random.default_rng(1234)
    true_mean, hits, reps = 1.5, 0, 400
    for _ in range(reps):
        n_sess = 40
        counts = rng.integers(1, 8, n_sess)
        level = rng.normal(0.0, 2.0, n_sess)  # session effect
        vals = np.concatenate([true_mean + level[i] + rng.normal(0, 1.0, c) for i, c in enumerate(counts)])
        sess = np.repeat(np.arange(n_sess), counts)
        m, lo, hi = stats.session_bootstrap_mean(vals, sess, draws=400, confidence=0.90, rng=rng)
        hits += lo <= true_mean <= hi
    cover = hits / reps
    assert 0.85 <= cover <= 0.95, cover  # binomial sd at 400 reps is 1.5 points


def test_bootstrap_ignoring_sessions_would_be_too_narrow():
    """The reason for blocks: a trade-level bootstrap on session-correlated data under-covers."""
    rng = np.random.default_rng(7)
    counts = np.full(30, 6)
    level = rng.normal(0, 2.0, 30)
    vals = np.concatenate([level[i] + rng.normal(0, 0.5, c) for i, c in enumerate(counts)])
    sess = np.repeat(np.arange(30), counts)
    _, lo_b, hi_b = stats.session_bootstrap_mean(vals, sess, draws=2000, rng=1)
    _, lo_t, hi_t = stats.session_bootstrap_mean(vals, np.arange(vals.size), draws=2000, rng=1)
    assert (hi_b - lo_b) > 1.8 * (hi_t - lo_t)


def test_bootstrap_is_seeded_and_checks_input():
    v, s = [1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1]
    assert stats.session_bootstrap_mean(v, s, rng=5) == stats.session_bootstrap_mean(v, s, rng=5)
    assert math.isnan(stats.session_bootstrap_mean([], [])[0])
    with pytest.raises(ValueError, match="must be equal"):
        stats.session_bootstrap_mean([1.0], [0, 1])


def test_breakeven_rate():
    assert stats.breakeven_rate(2, 1, 12.5) == pytest.approx(1 / 3)
    # ES, 8-tick target, 4-tick stop, 4.50 USD round trip: (50 + 4.5) / 150
    assert stats.breakeven_rate(8, 4, 12.5, 4.5) == pytest.approx(54.5 / 150)
    with pytest.raises(ValueError, match="must be > 0"):
        stats.breakeven_rate(0, 4, 12.5)


def test_benjamini_hochberg_on_known_p_values():
    p = [0.01, 0.04, 0.03, 0.005, 0.20]
    rej, adj = stats.benjamini_hochberg(p, 0.05)
    assert rej.tolist() == [True, True, True, True, False]
    assert np.allclose(adj, [0.025, 0.05, 0.05, 0.025, 0.20])
    # a step-up: 0.04 at rank 4 of 5 passes 0.04 <= 4 x 0.05 / 5 even though 0.03 is larger than 3 x 0.01
    rej, adj = stats.benjamini_hochberg([0.9, 0.02, 0.6, float("nan")], 0.05)
    assert rej.tolist() == [False, False, False, False] and math.isnan(adj[3])
    assert adj[1] == pytest.approx(0.06)
    with pytest.raises(ValueError, match="p-values"):
        stats.benjamini_hochberg([1.5])


def test_drawdown_sharpe_need_enough_sessions():
    assert stats.max_drawdown([10, -30, 5, -10, 50]) == 35.0
    few = stats.session_risk([1.0] * 5)
    assert few["sharpe"] is None and "needs >= 20 sessions, has 5" in few["note"]
    x = np.tile([100.0, -50.0], 15)
    r = stats.session_risk(x)
    assert r["max_drawdown_usd"] == 50.0
    assert r["sharpe"] == pytest.approx(25 / np.std(x, ddof=1) * math.sqrt(252), rel=1e-3)


def test_p_value_and_verdict_lines():
    assert stats.mc_p_value(5.0, [1.0, 2.0, 6.0]) == 0.5
    assert stats.mc_p_value(10.0, np.zeros(99)) == 0.01
    v = stats.verdict("production", 6, 1, 0.105)
    assert v == "production: not distinguishable from random entries at n = 6 (1 session), p = 0.105"
    assert "better than random" in stats.verdict("x", 300, 40, 0.001, adjusted=0.004)
    assert "not distinguishable" in stats.verdict("x", 300, 40, 0.001, adjusted=0.2)
    assert stats.verdict("budget", 0, 0, float("nan")) == "budget: no signals, nothing to measure"


# ------------------------------------------------------------------------------ real data
def test_trade_result_books_target_stop_and_costs():
    from app.sim.outcomes import SignalOutcome

    s = Signal(1, 0, "ES", 1, 0.8, (), (), entry=100, stop=96, target=108, size=1)
    # outcomes with an entry but no booked exit figures: the first-touch rules
    r = trade_result(s, SignalOutcome(1, first="target", entry_price=100.0), 12.5, 2.25)
    assert (r.ticks, r.net_usd, r.target_first) == (8.0, 95.5, True)
    r = trade_result(s, SignalOutcome(1, first="stop", entry_price=100.0), 12.5, 2.25, stop_slippage_ticks=1)
    assert (r.ticks, r.net_usd, r.decided) == (-5.0, -67.0, True)
    r = trade_result(s, SignalOutcome(1, move_1m=2.0, move_5m=-1.0, entry_price=100.0), 12.5)
    assert (r.ticks, r.decided) == (-1.0, False)

    class FillOutcome:  # an outcome that books its own fill (the paper fill model's)
        first, ticks, net_usd = "stop", -4.5, -60.75

    r = trade_result(s, FillOutcome(), 12.5, 2.25)
    assert (r.ticks, r.net_usd) == (-4.5, -60.75)


def test_follow_books_the_engine_outcomes_on_the_real_es_hour(es_sessions, es_production_run):
    """The baseline's outcome function is the engine's: the same signals followed by
    :func:`follow` on the session's events get the fills the engine booked on the paper fill
    model (exit kind, ticks, net USD: everything :func:`trade_result` reads)."""
    run = es_production_run
    assert len(run.signals) >= 3
    sess = es_sessions[0]
    got = follow(run.signals, sess.events, sess.instrument, 2.0, 1, 2.25)  # Production's [outcomes]
    for s in run.signals:
        a, b = run.outcomes[s.id], got[s.id]
        assert a.first == b.first, s.id
        assert (a.ticks, a.net_usd, a.exit_price) == (b.ticks, b.net_usd, b.exit_price), s.id


def _signals_at(times, sess, side=1, stop=4, target=4, first_id=1):
    tr = sess.trades()
    out = []
    for k, t in enumerate(times):
        j = int(np.searchsorted(tr.ts, t, side="right")) - 1
        e = int(tr.px[j])
        out.append(Signal(first_id + k, int(t), sess.instrument.symbol, side, 0.8, (), (), entry=e,
                          stop=e - side * stop, target=e + side * target, size=1))
    return out


def _runs(sigs, sess):
    return [RunResult(sess.sid, "planted", (), sigs, follow(sigs, sess.events, sess.instrument))]


def test_a_planted_edge_on_the_real_es_hour_is_significant_and_random_signals_are_not(es_sessions):
    """Signals placed with hindsight (only at moments whose target is touched first) on the
    real ES hour beat the matched random entries; signals at random moments do not, except at
    about the nominal rate."""
    sess = es_sessions[0]
    tr = sess.trades()
    rng = np.random.default_rng(42)
    t0, t1 = int(tr.ts[0]), int(tr.ts[-1]) - 20 * 60 * 10**9
    cand = np.sort(rng.integers(t0, t1, 300))
    planted = []
    for side, k in ((1, 13), (-1, 12)):  # the hour drifted up 39 ticks: plant on both sides
        probe = _signals_at(cand, sess, side=side, first_id=1000 * (side + 2))
        oc = follow(probe, sess.events, sess.instrument)
        winners = [s.ts for s in probe if oc[s.id].first == "target"][:k]
        assert len(winners) == k
        planted += _signals_at(winners, sess, side=side, first_id=len(planted) + 1)
    planted.sort(key=lambda s: s.ts)
    rep = summarise(es_sessions, _runs(planted, sess), draws=200, seed=3)
    blk = rep["profiles"]["planted"]
    assert blk["rate"] == 1.0 and blk["n"] == 25
    assert blk["p_value"] < 0.01
    assert blk["baseline"]["rate"] < 0.8
    assert "better than random entries at n = 25" in blk["verdict"]
    significant = 0
    for k in range(8):
        r = np.random.default_rng(100 + k)
        times = np.sort(r.integers(t0, t1, 25))
        sigs = _signals_at(times, sess, side=int(r.choice([-1, 1])))
        rep = summarise(es_sessions, _runs(sigs, sess), draws=100, seed=k)
        significant += rep["profiles"]["planted"]["p_value"] < 0.05
        assert rep["profiles"]["planted"]["n"] == 25
    assert significant <= 2


def test_an_entry_the_fill_model_never_filled_is_no_trade():
    """Not a time exit at the 15-minute move from the limit price (that booked +30 ticks for a
    4-tick bracket whose entry never filled)."""
    from app.sim.outcomes import SignalOutcome

    s = Signal(1, 0, "ES", 1, 0.8, (), (), entry=100, stop=96, target=104, size=1)
    o = SignalOutcome(1, move_1m=10.0, move_5m=20.0, move_15m=30.0, complete=True,
                      entry_error="entry limit not filled before the last horizon (cancelled)")
    r = trade_result(s, o, 12.5, 2.25)
    assert (r.ticks, r.net_usd, r.decided, r.target_first) == (0.0, 0.0, False, False)
