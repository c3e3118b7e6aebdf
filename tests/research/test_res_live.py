"""The window's session statistics (``app.research.live``) are evaluate's figures for the same signals."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import KIND_TRADE
from app.research.evaluate import summarise
from app.research.live import session_summary


def test_the_windows_profile_row_equals_evaluates_profile_block(es_sessions, es_production_run):
    """Same signals, same outcomes, same costs: n, decided, target first, Wilson interval,
    breakeven and expectancy are the numbers ``mia-elite evaluate`` reports (the random
    baselines differ by design: the window draws from the session so far)."""
    from app.live.engine import resolve_profile

    s = es_sessions[0]
    run = es_production_run
    oc = resolve_profile("production").section("outcomes")
    comm, slip = float(oc["commission_per_contract_usd"]), int(oc["stop_slippage_ticks"])
    rep = summarise(es_sessions, [run], draws=20, commission_usd=comm, stop_slippage_ticks=slip)
    blk = rep["profiles"]["production"]
    t = s.events[s.events["kind"] == KIND_TRADE]
    live = session_summary("production", run.signals, run.outcomes, {x.id: 0 for x in run.signals},
                           t["ts"].astype(np.int64), t["price"].astype(np.int64), s.instrument,
                           decision_delay_s=float(oc["decision_delay_s"]), stop_slippage_ticks=slip,
                           commission_usd=comm, draws=20, ended=True)
    row = live["rows"][0]
    assert row["kind"] == "profile" and live["open"] == 0
    for k in ("n", "sessions", "decided", "target_first", "rate", "rate_ci", "breakeven_rate", "expectancy_ticks",
              "expectancy_usd", "total_usd"):
        assert row[k] == blk[k], k
    cited = {r["label"].removeprefix("signals citing "): r for r in live["rows"][1:]}
    assert set(cited) == set(blk["patterns"])
    for name, r in cited.items():
        for k in ("n", "decided", "target_first", "rate", "rate_ci", "expectancy_usd"):
            assert r[k] == blk["patterns"][name]["citing"][k], (name, k)
    assert 0 < row["p_value"] <= 1 and np.isfinite(row["baseline_usd"])


def test_open_signals_are_counted_not_measured(es_sessions, es_production_run):
    from app.sim.outcomes import SignalOutcome

    run = es_production_run
    s = es_sessions[0]
    t = s.events[s.events["kind"] == KIND_TRADE]
    oc = dict(run.outcomes)
    first = run.signals[0].id
    oc[first] = SignalOutcome(first)  # still open
    live = session_summary("production", run.signals, oc, {}, t["ts"].astype(np.int64),
                           t["price"].astype(np.int64), s.instrument, draws=5)
    assert live["open"] == 1 and live["measured"] == len(run.signals) - 1
    assert live["rows"] and live["rows"][0]["n"] == len(run.signals) - 1
    with pytest.raises(KeyError):
        live["rows"][0]["_usd"]
