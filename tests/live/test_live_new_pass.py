"""A looped replay: each pass is a new session of the market (the built-in server replays the
recording again from its start, book cleared; README "Replay").

Before this, the engine kept its analysis clock at the old pass's time: a second pass of the
same recording ran no analysis step at all (its market time never passed the first pass's
end), its heatmap stayed on the first pass's last column, and the outcome tracker followed
the old pass's brackets on the new pass's prices. Checked on the shipped ES hour and the real
BTCUSDT capture, each fed twice to one engine and once to a fresh one."""

from __future__ import annotations

import numpy as np
import pytest

from app.cli.analyze import load_any
from app.core.events import FLAG_SNAPSHOT, OP_CLEAR, chunks
from app.feeds.samples import load_default_sample
from app.live.engine import AnalysisEngine

pytestmark = pytest.mark.timeout(600)


def _signals(eng):
    return [(int(s.ts), int(s.side), round(float(s.entry), 6), round(float(s.stop), 6)) for s in eng.all_signals]


@pytest.mark.parametrize("which", ["es", "btc"])
def test_the_second_pass_is_analysed_as_the_first_was(which, shared_data):
    rec = load_default_sample() if which == "es" else load_any(str(shared_data / "crypto/btcusdt_20240808.gz"))
    ev = rec.events if which == "es" else rec.events[: len(rec.events) // 3]
    # each pass from its book snapshot, as the server sends a restart (the capture's first
    # trades come before its first snapshot)
    ev = ev[int(np.flatnonzero((ev["op"] == OP_CLEAR) | ((ev["flags"] & FLAG_SNAPSHOT) != 0))[0]):]
    profile = "production" if which == "es" else "scalping"
    once = AnalysisEngine(rec.instrument, profile)
    for c in chunks(ev):
        once.process(c)
    twice = AnalysisEngine(rec.instrument, profile)
    for c in chunks(ev):
        twice.process(c)
    steps1, n1 = twice.steps, len(twice.all_signals)
    first_outcomes = dict(twice.outcomes)
    for c in chunks(ev):
        twice.process(c)
    assert twice.new_passes == 1
    assert twice.steps - steps1 == once.steps  # every step of the pass ran again
    # the same signals (new ids), on the new pass's own book and times
    assert _signals(twice)[n1:] == _signals(once) and len(once.all_signals) > 0
    assert [s.id for s in twice.all_signals] == sorted({s.id for s in twice.all_signals})
    # the model is the new pass's alone: heatmap window, book and profile equal a fresh run's
    f2, f1 = twice.snapshot_frame(), once.snapshot_frame()
    assert f2.heatmap_t0 == f1.heatmap_t0 and f2.best_bid == f1.best_bid and f2.best_ask == f1.best_ask
    np.testing.assert_array_equal(f2.heatmap, f1.heatmap)
    np.testing.assert_array_equal(f2.session_volume, f1.session_volume)
    assert twice.events_applied == 2 * once.events_applied
    # outcomes: the first pass's finished ones stay as they were; its open ones ended early
    for sid, o in first_outcomes.items():
        o2 = twice.outcomes[sid]
        if o.complete:
            assert o2 == o
        else:
            assert o2.ended_early


def test_a_late_event_or_a_step_back_without_a_snapshot_is_not_a_new_pass():
    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "production")
    ev = rec.events
    live = ev[ev["flags"] == 0][:3000]  # no snapshot flags, no clears among them
    eng.process(ev[:20000])
    late = live[:50].copy()
    late["ts"] = int(eng.model.ts) - 5 * 10**9  # five seconds late, no snapshot
    eng.process(late)
    assert eng.new_passes == 0


def test_the_session_statistics_start_again_with_a_new_pass():
    """The research observer (the window's precision table) is told of a new pass: pass 2's
    statistics measure pass 2's signals on pass 2's trades, as many signals as a fresh run.
    Before, the old pass's trades stayed in front of the new ones (the "session so far" went
    back in time and grew with every pass) and every pass's signals were measured again."""
    from app.core.events import KIND_TRADE
    from app.market.grouping import bracket_to_ticks
    from app.research.live import LiveResearch, session_summary

    rec = load_default_sample()
    ev = rec.events
    ev = ev[int(np.flatnonzero((ev["op"] == OP_CLEAR) | ((ev["flags"] & FLAG_SNAPSHOT) != 0))[0]):]

    def run(passes):
        obs = LiveResearch("scalping", threaded=False, refresh_s=0.0)  # every frame's statistics are fresh
        eng = AnalysisEngine(rec.instrument, "scalping", observer=obs)
        for _ in range(passes):
            for c in chunks(ev):
                eng.process(c)
            eng.snapshot_frame()
        eng.finish(end_of_data=True)
        return eng, obs, eng.snapshot_frame()

    once, _o1, f1 = run(1)
    twice, obs2, f2 = run(2)
    assert twice.new_passes == 1 and len(once.all_signals) >= 5
    assert len(twice.all_signals) == 2 * len(once.all_signals)
    s1, s2 = f1.session_stats, f2.session_stats
    assert s2["measured"] + s2["open"] == len(once.all_signals)  # pass 2's signals only
    assert s2["measured"] == s1["measured"] == len(once.all_signals)  # the data ended: all final
    # pass 2's statistics are session_summary on pass 2's own signals and trades
    pass2 = twice.all_signals[len(twice.all_signals) - len(once.all_signals):]
    k = twice.row_ticks
    from dataclasses import replace

    sigs = [replace(s, **dict(zip(("entry", "stop", "target"), bracket_to_ticks(s.side, s.entry, s.stop, s.target, k))))
            for s in pass2]
    tr = ev[ev["kind"] == KIND_TRADE]
    want = session_summary("scalping", sigs, dict(twice.outcomes), {s.id: obs2._sessions[s.id] for s in pass2},
                           tr["ts"].astype(np.int64), tr["price"].astype(np.int64), rec.instrument,
                           decision_delay_s=obs2.delay_s, stop_slippage_ticks=obs2.slip,
                           commission_usd=obs2.commission, draws=obs2.draws, ended=True)
    assert s2["measured"] == want["measured"] and len(s2["rows"]) == len(want["rows"])
    for a, b in zip(s2["rows"], want["rows"]):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9, nan_ok=True), key
            else:
                assert a[key] == b[key], key


def test_the_event_count_stays_true_when_the_compile_time_held_a_new_pass():
    """The events of the compile time are replayed on the kernels (engine "First start"); when
    they hold a restart of the replay, the new pass was counted once while they were applied on
    the NumPy twins. Before the fix the replay counted it again, so ``events_total`` ran ahead
    of the events received by a whole pass (``bench gui`` then matched depth batches to frames
    painted before they arrived: negative socket-to-paint latencies on a cold kernel cache)."""
    import threading
    import time

    rec = load_default_sample()
    ev = rec.events[int(np.flatnonzero(rec.events["op"] == OP_CLEAR)[0]):]
    gate = threading.Event()
    frames = []
    eng = AnalysisEngine(rec.instrument, "production", on_frame=frames.append, precompile=(gate.wait,))
    eng.start()
    try:
        for _ in range(2):  # two passes while the kernels "compile"
            for c in chunks(ev):
                eng.submit(c)
        t_end = time.monotonic() + 60
        while eng.events_applied < 2 * len(ev) and time.monotonic() < t_end:
            time.sleep(0.01)
        assert eng.events_applied == 2 * len(ev) and not eng.analysis_ready
        gate.set()
        while not eng.analysis_ready and time.monotonic() < t_end + 240:
            time.sleep(0.05)
        assert eng.analysis_ready and eng.new_passes == 1
        assert eng.events_applied == 2 * len(ev)
        assert eng.snapshot_frame().events_total == 2 * len(ev)
    finally:
        gate.set()
        eng.stop()
