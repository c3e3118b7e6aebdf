"""The window's tape and precision table (issue 15 items 2-4, issue 16 items 6 and 10): the
session statistics equal ``app.research`` on the same outcomes, on the real ES hour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.core.events import KIND_TRADE, chunks  # noqa: E402
from app.research import stats  # noqa: E402
from app.research.live import LiveResearch, signal_baseline  # noqa: E402
from app.research.trades import trade_result  # noqa: E402
from app.ui.tape import PrecisionModel, SignalTape  # noqa: E402

USER = 256  # QtCore.Qt.UserRole


def run_es_hour(profile="scalping", **kw):
    """The engine over the shipped ES hour with a research observer; returns (engine, observer, frame)."""
    from app.live.engine import AnalysisEngine
    from app.research.evaluate import load_path

    src = load_path(Path("default"))
    obs = LiveResearch(profile, threaded=False, **kw)
    eng = AnalysisEngine(src.instrument, profile, observer=obs)
    for c in chunks(src.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    return eng, obs, eng.snapshot_frame(), src


@pytest.fixture(scope="module")
def es_scalping():
    return run_es_hour()


def test_precision_table_equals_research_stats_on_the_real_es_hour(qtbot, es_scalping):
    eng, obs, frame, src = es_scalping
    tape = SignalTape()
    qtbot.addWidget(tape)
    tape.update_from_frame(frame)
    m: PrecisionModel = tape.precision_model
    sigs = eng.all_signals
    assert len(sigs) >= 5  # the scalping profile fires on this hour
    oc = eng.outcomes
    comm, slip, tv = eng.tracker.commission, eng.tracker.engine.slippage_ticks, src.instrument.tick_value
    delay = eng.tracker.delay_ns / 1e9
    res = [trade_result(s, oc[s.id], tv, comm, slip) for s in sigs]
    dec = sum(r.decided for r in res)
    wins = sum(r.target_first for r in res)
    lo, hi = stats.wilson_interval(wins, dec)
    be = np.mean([stats.breakeven_rate(abs(s.target - s.entry), abs(s.entry - s.stop) + slip, tv, 2 * comm)
                  for s in sigs])
    usd = np.array([r.net_usd for r in res])
    ticks = np.array([r.ticks for r in res])
    # the baseline: the same random entries (seeded by signal id) booked the same way
    tr = src.events[src.events["kind"] == KIND_TRADE]
    b = [signal_baseline(s, tr["ts"].astype(np.int64), tr["price"].astype(np.int64), src.instrument, obs.draws,
                         0, delay, slip, comm) for s in sigs]
    bm = np.column_stack([x[0] for x in b]).mean(axis=1)
    p = stats.mc_p_value(float(usd.mean()), bm)

    row0 = [m.data(m.index(0, c), USER) for c in range(m.columnCount())]
    assert row0[0] == "Scalping: all signals"
    assert row0[1] == len(sigs)
    assert row0[2] == pytest.approx(wins / dec, abs=1e-4)
    assert row0[3] == pytest.approx((lo, hi), abs=1e-4)
    assert row0[4] == pytest.approx(be, abs=1e-4)
    assert row0[5] == pytest.approx(ticks.mean(), abs=1e-4)
    assert row0[6] == pytest.approx(usd.mean(), abs=0.01)
    assert row0[8] == pytest.approx(bm.mean(), abs=1e-9)
    assert row0[9] == pytest.approx(p, abs=1e-12)
    assert m.data(m.index(0, 2)) == f"{wins}/{dec} = {100 * wins / dec:.0f}%"
    assert m.data(m.index(0, 3)) == f"{100 * lo:.0f}%-{100 * hi:.0f}%"
    # per pattern: clearly "signals citing", counted as evaluate counts them
    labels = [m.data(m.index(r, 0)) for r in range(1, m.rowCount())]
    names = sorted({h.name for s in sigs for h in s.reasons})
    assert labels == [f"signals citing {n}" for n in names]
    for r, name in enumerate(names, start=1):
        idx = [i for i, s in enumerate(sigs) if any(h.name == name for h in s.reasons)]
        assert m.data(m.index(r, 1), USER) == len(idx)
        pr = stats.mc_p_value(float(usd[idx].mean()), np.column_stack([b[i][0] for i in idx]).mean(axis=1))
        assert m.data(m.index(r, 9), USER) == pytest.approx(pr, abs=1e-12)
    assert "measured" in tape.stats_label.text()


def test_statistics_run_off_the_engine_thread_and_at_most_every_refresh(qtbot):
    """Threaded (as in the window): the summary is computed on a thread of its own, not again
    before ``refresh_s`` of the clock has passed, and equals the synchronous one."""
    from app.core.clock import ManualClock

    clock = ManualClock()
    eng, obs, frame, src = run_es_hour(draws=20)
    sync = frame.session_stats
    lr = LiveResearch("scalping", draws=20, clock=clock, refresh_s=5.0)
    lr.attach(eng)
    lr._ts, lr._px, lr._n = obs._ts, obs._px, obs._n  # the same session's trades
    lr._sessions = dict(obs._sessions)
    lr._ended = True
    assert lr.frame_fields(eng)["session_stats"] is None  # started, not finished yet
    t = lr._thread
    assert t is not None and t.name == "mia-session-stats"
    t.join(60)
    assert lr.frame_fields(eng)["session_stats"]["rows"] == sync["rows"]
    eng.tracker.version += 1  # an outcome changed, but the refresh period has not passed
    lr.frame_fields(eng)
    assert lr._thread is t
    clock.advance(5.0)
    lr.frame_fields(eng)
    assert lr._thread is not t
    lr._thread.join(60)
