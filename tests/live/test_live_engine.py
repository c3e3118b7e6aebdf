"""The worker engine: clean start/stop, errors surfaced, market-time steps independent of how
the stream is cut, thread and synchronous paths agreeing, frames immutable copies."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.live.engine import AnalysisEngine
from app.analysis.frame import AnalysisFrame
from app.core.clock import ManualClock
from app.core.events import FLAG_BATCH_END, SIDE_ASK, SIDE_BID, OP_SET, Instrument, depth_events


@pytest.fixture(scope="module")
def es():
    from app.feeds.samples import load_default_sample

    return load_default_sample(use_cache=False)


class Recorder:
    """A stand-in analyzer facade that records what each step saw."""

    def __init__(self, fail_at=None):
        self.seen = []
        self.fail_at = fail_at

    def step(self, view):
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            self.seen.append(None)
            raise ZeroDivisionError("kernel blew up on purpose")
        self.seen.append((view.ts, view.best_bid, view.best_ask, float(view.bid.sum()),
                          float(view.hist_ask[:, -1].sum()), len(view.bars), view.poc))

        class R:
            patterns, new_signals, signals, outcomes, precision = [], [], (), {}, {}
            vix, orderflow, timings = None, {}, {}

        return R()


def _cuts(ev, every):
    ends = np.flatnonzero(ev["flags"] & FLAG_BATCH_END) + 1
    return [c for c in np.split(ev, ends[::every]) if len(c)]


def _wait(pred, timeout=20.0):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


def test_steps_are_in_market_time_and_independent_of_batch_cuts(es):
    runs = []
    for every in (2, 37, 10_000_000):
        rec = Recorder()
        eng = AnalysisEngine(es.instrument, "production", analyzers=rec)
        for c in _cuts(es.events, every):
            eng.process(c)
        eng.finish()
        runs.append(rec.seen)
    assert len(runs[0]) > 1000
    assert runs[0] == runs[1] == runs[2]
    # every step sees only events stamped before it (it runs at a 250 ms boundary)
    ts = [s[0] for s in runs[0]]
    assert all(b > a for a, b in zip(ts, ts[1:]))


def test_thread_and_synchronous_paths_see_the_same_steps(es):
    sync = Recorder()
    e1 = AnalysisEngine(es.instrument, "production", analyzers=sync)
    for c in _cuts(es.events, 50):
        e1.process(c)
    e1.finish()

    thr = Recorder()
    frames = []
    e2 = AnalysisEngine(es.instrument, "production", on_frame=frames.append, analyzers=thr)
    e2.start()
    assert _wait(lambda: e2.state == "running")
    rng = np.random.default_rng(3)
    ev = es.events
    i = 0
    while i < len(ev):  # random cuts, not aligned with anything
        j = min(len(ev), i + int(rng.integers(1, 5000)))
        e2.submit(ev[i:j])
        i = j
    assert _wait(lambda: e2.model.events_applied == len(ev))
    assert e2.stop(timeout=5)
    assert e2.state == "stopped"
    # the thread does not run the end-of-data step (the stream may continue); compare the rest
    assert thr.seen == sync.seen[: len(thr.seen)] and len(thr.seen) >= len(sync.seen) - 1
    assert frames and isinstance(frames[-1], AnalysisFrame)
    f = frames[-1]
    assert f.events_total == len(ev) and f.best_bid == 19240 and f.best_ask == 19241
    assert all(b.seq > a.seq for a, b in zip(frames, frames[1:]))


def test_start_stop_clean_and_idempotent():
    inst = Instrument("ES", 0.25, 12.5)
    eng = AnalysisEngine(inst, "production", analyzers=Recorder())
    assert eng.state == "idle"
    before = {t.name for t in threading.enumerate()}
    eng.start()
    with pytest.raises(RuntimeError, match="already started"):
        eng.start()
    assert _wait(lambda: eng.state == "running")
    assert eng.compile_seconds > 0
    assert eng.stop(timeout=5) and eng.state == "stopped"
    assert eng.stop(timeout=5)  # twice is fine
    assert "mia-analysis" not in {t.name for t in threading.enumerate()} - before
    eng.submit(depth_events([0], [100], [1.0], [SIDE_BID], OP_SET))
    assert eng.dropped_batches == 1
    idle = AnalysisEngine(inst, "production", analyzers=Recorder())
    assert idle.stop() and idle.state == "stopped"


def test_analyzer_exception_is_reported_with_traceback_and_the_engine_keeps_running(es):
    errors, frames = [], []
    rec = Recorder(fail_at=5)
    eng = AnalysisEngine(es.instrument, "production", on_frame=frames.append, on_error=errors.append,
                         analyzers=rec)
    eng.start()
    assert _wait(lambda: eng.state == "running")
    for c in _cuts(es.events[:20_000], 100):
        eng.submit(c)
    assert _wait(lambda: eng.model.events_applied == 20_000)
    assert eng.stop()
    assert len(errors) == 1
    assert "Traceback" in errors[0] and "ZeroDivisionError: kernel blew up on purpose" in errors[0]
    assert len(rec.seen) > 10  # steps continued after the failure
    # the error reaches exactly one frame (the first one built after it), then frames are clean
    with_error = [f for f in frames if f.error]
    assert len(with_error) == 1 and "ZeroDivisionError" in with_error[0].error
    assert with_error[0].timings["errors_new"] == 1 and with_error[0].timings["errors_total"] == 1
    later = [f for f in frames if f.seq > with_error[0].seq]
    assert all(f.error == "" and f.timings["errors_new"] == 0 for f in later)
    tail = eng.snapshot_frame()  # a frame after the last published one: nothing new
    assert tail.error == "" and tail.timings["errors_new"] == 0 and tail.timings["errors_total"] == 1
    assert eng.state == "stopped" and eng.errors == 1


def test_market_model_exception_stops_with_error_state(monkeypatch):
    inst = Instrument("ES", 0.25, 12.5)
    errors, frames = [], []
    eng = AnalysisEngine(inst, "production", on_frame=frames.append, on_error=errors.append,
                         analyzers=Recorder())

    def broken(batch):
        raise MemoryError("ring allocation failed (test)")

    monkeypatch.setattr(eng.model, "apply", broken)
    eng.start()
    assert _wait(lambda: eng.state == "running")
    eng.submit(depth_events([0], [100], [1.0], [SIDE_BID], OP_SET))
    assert _wait(lambda: eng.state == "error")
    assert any("MemoryError: ring allocation failed" in e and "engine stopped" in e for e in errors)
    assert "MemoryError" in frames[-1].error
    assert eng.stop(timeout=5)
    assert eng.state == "error"


def test_bad_batches_are_reported_not_fatal():
    inst = Instrument("ES", 0.25, 12.5)
    errors = []
    eng = AnalysisEngine(inst, "production", on_error=errors.append, analyzers=Recorder())
    eng.start()
    assert _wait(lambda: eng.state == "running")
    eng.submit(np.zeros(3))
    eng.submit(depth_events([0, 0], [100, 101], [1.0, 2.0], [SIDE_BID, SIDE_ASK], OP_SET))
    assert _wait(lambda: eng.model.events_applied == 2)
    assert eng.stop()
    assert eng.state == "stopped"
    assert any("not an EVENT_DTYPE array" in e for e in errors)
    with pytest.raises(TypeError):
        eng.process(np.zeros(2))


def test_frame_is_a_copy_and_carries_the_geometry(es):
    eng = AnalysisEngine(es.instrument, "scalping", analyzers=Recorder())
    eng.process(es.events[:30_000])
    f = eng.snapshot_frame()
    assert f.column_ns == 100_000_000 and f.heatmap.shape[0] == 400
    assert f.heatmap.dtype == np.float32 and f.heatmap.flags.c_contiguous
    assert not np.shares_memory(f.heatmap, eng.model.hbid)
    before = f.heatmap.copy()
    eng.process(es.events[30_000:40_000])
    np.testing.assert_array_equal(f.heatmap, before)  # later events do not touch a published frame
    assert f.book_prices[0] == f.heatmap_base and len(f.book_bid) == 400
    assert f.timings["compile_s"] >= 0 and f.events_total == 30_000


def test_time_going_backwards_in_a_batch_still_makes_progress():
    inst = Instrument("ES", 0.25, 12.5)
    rec = Recorder()
    eng = AnalysisEngine(inst, "production", analyzers=rec)
    iv = eng.analysis_interval_ns
    ts = np.array([5 * iv, 9 * iv + 1, 3 * iv, 2 * iv, 12 * iv, 11 * iv, 30 * iv])
    b = depth_events(ts, 100 + np.arange(7), np.ones(7), [SIDE_BID] * 7, OP_SET)
    eng.process(b)
    assert eng.model.events_applied == 7
    steps = [s[0] for s in rec.seen]
    assert len(steps) >= 2 and steps == sorted(steps)


class VixRecorder(Recorder):
    def __init__(self):
        super().__init__()
        self.live = []

    def set_live_vix(self, level):
        self.live.append((level, len(self.seen)))


def test_live_vix_reaches_the_analyzers_in_stream_order(es):
    rec = VixRecorder()
    eng = AnalysisEngine(es.instrument, "production", analyzers=rec)
    eng.set_live_vix(14.5)  # not started: applied at once
    assert rec.live == [(14.5, 0)]
    eng.start()
    assert _wait(lambda: eng.state == "running")
    ev = es.events
    eng.submit(ev[:30_000])
    eng.set_live_vix(22.0)
    eng.submit(None)  # a bad submission is reported, not fatal
    eng.submit(ev[30_000:])
    eng.set_live_vix(None)
    assert _wait(lambda: len(rec.live) == 3 and eng.model.events_applied == len(ev))
    assert eng.stop() and eng.state == "stopped"
    (_, s0), (v1, s1), (v2, s2) = rec.live
    assert v1 == 22.0 and v2 is None
    assert 0 < s1 < s2  # after the steps of the first 30,000 events, before the rest's
    assert eng.errors == 1 and "not an EVENT_DTYPE array" in eng.last_error


def test_clock_ticks_close_columns_and_run_due_steps_without_events():
    inst = Instrument("ES", 0.25, 12.5)
    rec = Recorder()
    eng = AnalysisEngine(inst, "production", analyzers=rec)
    col = eng.model.column_ns
    eng.process(depth_events([0, 0], [100, 101], [5.0, 6.0], [SIDE_BID, SIDE_ASK], OP_SET))
    eng.advance_to(10 * col + 1)
    assert eng.model.events_applied == 2  # the tick is not an event
    assert len(rec.seen) == 1  # the step due at the first boundary ran
    hb = eng.model.heatmap_window(12)[0]
    r = 100 - eng.model.heatmap_base
    assert hb[r, -11:].tolist() == [5.0] * 11  # columns 0..10 show the unchanged book
    eng.advance_to(5)  # the past: nothing
    assert eng.model.ts == 10 * col + 1


def test_frame_error_carries_only_errors_new_since_the_previous_frame():
    inst = Instrument("ES", 0.25, 12.5)
    eng = AnalysisEngine(inst, "production", analyzers=Recorder())
    f0 = eng.snapshot_frame()
    assert f0.error == "" and f0.timings["errors_new"] == 0 and f0.timings["errors_total"] == 0
    eng.submit("not an array")  # idle engine: queued, so report one directly the same way
    eng._bad_batch("x")
    eng._bad_batch(b"y")
    f1 = eng.snapshot_frame()
    assert "bytes" in f1.error  # the newest of the two
    assert f1.timings["errors_new"] == 2 and f1.timings["errors_total"] == 2
    f2 = eng.snapshot_frame()
    assert f2.error == "" and f2.timings["errors_new"] == 0 and f2.timings["errors_total"] == 2
    assert eng.errors == 2 and "bytes" in eng.last_error  # the engine keeps the newest text


class _WaitLog:
    """Wraps the engine's queue and records the timeout of every blocking ``get``."""

    def __init__(self, q):
        self.q = q
        self.timeouts = []

    def get(self, timeout=None):
        self.timeouts.append(timeout)
        return self.q.get(timeout=timeout)

    def __getattr__(self, name):
        return getattr(self.q, name)


def test_idle_worker_waits_only_until_the_next_publish_is_due(es):
    """A batch that arrives right after a publish is published when the interval since that
    publish has passed, without waiting for another batch or a fixed poll period: the worker's
    wait on the empty queue is the time left until the publish is due (the old loop polled every
    50 ms and so published up to 50 ms late). Driven by a ManualClock, so a busy machine changes
    nothing: time passes only when the test advances the clock."""
    clock = ManualClock()
    frames = []
    eng = AnalysisEngine(es.instrument, "production", on_frame=frames.append, analyzers=Recorder(),
                         publish_interval_s=0.3, clock=clock)
    log = _WaitLog(eng._q)
    eng._q = log
    eng.start()
    try:
        assert _wait(lambda: eng.state == "running" and len(frames) >= 1)
        cuts = _cuts(es.events[:5_000], 50)
        assert len(cuts) >= 2
        n0 = len(frames)
        for c in cuts:
            eng.submit(c)
        assert _wait(lambda: eng.model.events_applied == sum(len(c) for c in cuts))
        # the changed state waits the whole interval (the clock has not moved since the publish)
        assert _wait(lambda: log.timeouts and log.timeouts[-1] == pytest.approx(0.3))
        assert len(frames) == n0
        clock.advance(0.1)  # wakes the worker: now it waits for what is left, 0.2 s
        assert _wait(lambda: log.timeouts[-1] == pytest.approx(0.2))
        assert len(frames) == n0
        clock.advance(0.2)  # due: published without any further batch arriving
        assert _wait(lambda: len(frames) > n0)
        assert frames[-1].events_total == eng.model.events_applied
        assert len(frames) == n0 + 1
    finally:
        assert eng.stop()
    waits = [t for t in log.timeouts if t is not None]
    assert len(waits) == len(log.timeouts)  # never an unbounded wait
    # every wait is either the idle bound or exactly what was left of the interval
    assert all(any(t == pytest.approx(a) for a in (0.5, 0.3, 0.2)) for t in waits), waits


def test_publish_interval_follows_the_injected_clock():
    """Synchronous view of the same rule: a publish is due exactly ``publish_interval_s`` of the
    engine's clock after the previous one, whatever real time passed."""
    clock = ManualClock()
    inst = Instrument("ES", 0.25, 12.5)
    frames = []
    eng = AnalysisEngine(inst, "production", on_frame=frames.append, analyzers=Recorder(),
                         publish_interval_s=0.05, clock=clock)
    eng._publish()
    assert len(frames) == 1 and eng._publish_wait_s() == pytest.approx(0.05)
    clock.advance(ns=49_999_999)
    assert eng._publish_wait_s() > 0
    clock.advance(ns=1)
    assert eng._publish_wait_s() == 0.0


class _LeapClock(ManualClock):
    """An injected clock that moves a second at every reading: a publish is always due, so the
    worker publishes wherever it may (deterministic: no real time is read)."""

    def monotonic_ns(self) -> int:
        self.advance(1.0)
        return super().monotonic_ns()


def test_a_long_batch_is_applied_in_pieces_with_frames_between_them_at_batch_ends(es):
    """One socket read of a fast replay hands over thousands of events; the worker applies them
    in pieces of what it applies in one publish interval, publishing between pieces, each frame
    at a batch end (a consistent book), and counts the rest of the batch as work still queued
    (the replay's flow control). Before, the whole batch was applied first: one frame per read
    (ES at maximum speed: 2,100 events, 60 ms, about 15 frames/s), and ``behind_s`` said 0 while
    it was applied. The end state is the synchronous path's."""
    ev = es.events[:20_000]
    frames, behind = [], []
    eng = AnalysisEngine(es.instrument, "production", analyzers=Recorder(), publish_interval_s=0.01,
                         clock=_LeapClock())

    def on_frame(f):
        frames.append(f)
        behind.append(eng.behind_s)

    eng.on_frame = on_frame
    eng.start()
    try:
        assert _wait(lambda: eng.state == "running" and eng.analysis_ready and len(frames) >= 1)
        eng._ns_per_event = 10_000.0  # 10 us an event: pieces of 1,000 events in 10 ms
        n0 = len(frames)
        eng.submit(ev)
        assert _wait(lambda: eng.model.events_applied == len(ev))
        assert _wait(lambda: eng.backlog == 0 and eng.behind_s == 0.0)
    finally:
        assert eng.stop()
    during = [(f.events_total, b) for f, b in zip(frames[n0:], behind[n0:]) if 0 < f.events_total < len(ev)]
    assert len(during) >= 10, len(during)  # about one frame a piece (20 pieces)
    ends = set((np.flatnonzero(ev["flags"] & FLAG_BATCH_END) + 1).tolist())
    assert all(n in ends for n, _ in during), [n for n, _ in during if n not in ends]  # each at a batch end
    assert all(b > 0.0 for _n, b in during)  # the rest of the batch counts as queued work
    sync = AnalysisEngine(es.instrument, "production", analyzers=Recorder())
    sync.process(ev)
    assert eng.steps == sync.steps and eng.model.ts == sync.model.ts
    f, g = eng.snapshot_frame(), sync.snapshot_frame()
    assert (f.best_bid, f.best_ask) == (g.best_bid, g.best_ask)
    np.testing.assert_array_equal(f.heatmap, g.heatmap)
