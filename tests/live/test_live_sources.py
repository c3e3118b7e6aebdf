"""Market sources: the embedded replay server on its own thread and loop, the pipeline's fan-out
(market batches and frames), pause / speed through the source, errors of the server thread shown.

Headless (no Qt): the pipeline runs on a plain asyncio loop, as under qasync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

from app.core.events import EVENT_DTYPE, KIND_DEPTH, OP_SET, SIDE_ASK, SIDE_BID, Instrument
from app.feeds.recording import Recording
from app.live.pipeline import Pipeline, PipelineConfig
from app.live.sources import (PAUSE_FLOW, PAUSE_USER, DTCSource, EmbeddedReplaySource, MarketSource,
                              ReplayServerThread, make_source)
from app.live.sierra_source import SierraFilesSource


def _run(coro, timeout=240.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _until(pred, timeout: float, step: float = 0.01) -> bool:
    """Bounded polling (no fixed wait): True as soon as ``pred()`` holds."""
    t_end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t_end:
            return bool(pred())
        await asyncio.sleep(step)
    return True


def _tiny_recording(n_batches: int = 50, step_ms: int = 100) -> Recording:
    """A two-sided book that moves one tick per batch (timestamps ``step_ms`` apart)."""
    inst = Instrument("TEST", 0.25, 12.5)
    ev = np.zeros(2 * n_batches, dtype=EVENT_DTYPE)
    ev["ts"] = 1_700_000_000_000_000_000 + np.repeat(np.arange(n_batches, dtype=np.int64), 2) * step_ms * 1_000_000
    ev["kind"] = KIND_DEPTH
    ev["op"] = OP_SET
    ev["side"][0::2] = SIDE_BID
    ev["side"][1::2] = SIDE_ASK
    ev["price"][0::2] = 1000 + np.arange(n_batches)
    ev["price"][1::2] = 1001 + np.arange(n_batches)
    ev["size"] = 5
    return Recording(inst, ev)


def _new_threads(before):
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_make_source_picks_the_configured_source():
    assert isinstance(make_source(PipelineConfig(embedded=True)), EmbeddedReplaySource)
    assert isinstance(make_source(PipelineConfig(embedded=False)), DTCSource)
    s = make_source(PipelineConfig(embedded=False, data_source="sierra_files", symbol="ESZ5", tick_size=0.25))
    assert isinstance(s, SierraFilesSource) and isinstance(s, MarketSource)
    # only the replay can pause or change speed; live sources say so
    assert s.pause() is False and s.set_speed(5.0) is False and not s.pausable


def test_replay_server_runs_on_its_own_thread_and_loop_and_stops_cleanly():
    before = set(threading.enumerate())
    out = {}

    async def main():
        rt = ReplayServerThread(_tiny_recording(), speed=1.0, loop_replay=False, paused=True)
        port = await rt.start()
        out["port"] = port
        out["own_thread"] = rt.alive and rt.thread_ident != threading.get_ident()
        # the server's loop is not this loop
        out["loop"] = await rt.run(lambda s: _current_loop(), 5.0)
        out["caller_loop"] = asyncio.get_running_loop()
        # pause / resume / speed are applied on the server's loop
        rt.set_speed(7.0)
        rt.resume()
        st = await rt.run(lambda s: _stats(s), 5.0)
        out["resumed"] = (st["replay"]["TEST"]["paused"], st["replay"]["TEST"]["speed"])
        rt.pause()
        st = await rt.run(lambda s: _stats(s), 5.0)
        out["paused"] = st["replay"]["TEST"]["paused"]
        # a client can connect to the port while this loop stays free
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        await rt.stop()
        out["alive_after"] = rt.alive
        await rt.stop()  # idempotent

    _run(main(), 60)
    assert out["port"] > 0 and out["own_thread"]
    assert out["loop"] is not out["caller_loop"]
    assert out["resumed"] == (False, 7.0)
    assert out["paused"] is True
    assert not out["alive_after"]
    assert _new_threads(before) == []


async def _current_loop():
    return asyncio.get_running_loop()


async def _stats(server):
    return server.stats


def test_errors_of_the_server_thread_are_reported_not_swallowed():
    """An exception in a callback of the server's loop, and an ERROR the simulator logs on that
    thread, both reach ``on_error`` on the caller's loop; an ERROR logged by the simulator on
    another thread does not."""
    got: list[tuple[str, bool]] = []
    before = set(threading.enumerate())

    async def main():
        me = threading.get_ident()
        def on_error(text):
            got.append((text, threading.get_ident() == me))

        rt = ReplayServerThread(_tiny_recording(), on_error=on_error)
        await rt.start()

        def boom():
            raise ZeroDivisionError("boom on the server thread")

        rt._loop.call_soon_threadsafe(boom)  # an error inside the server's loop

        async def log_error(_server):
            logging.getLogger("app.sim.server").error("replay of %s failed", "TEST")

        await rt.run(log_error, 5.0)
        logging.getLogger("app.sim.server").error("an error of a server on the caller's thread")
        ok = await _until(lambda: len(got) >= 2, 5.0)
        await rt.stop()
        return ok

    assert _run(main(), 60)
    texts = [t for t, _ in got]
    assert any("ZeroDivisionError: boom on the server thread" in t for t in texts), texts
    assert any("replay of TEST failed" in t for t in texts), texts
    assert not any("caller's thread" in t for t in texts)
    assert all(on_caller for _, on_caller in got)  # delivered on the caller's loop thread
    assert _new_threads(before) == []


def test_a_server_that_cannot_start_raises_and_leaves_no_thread():
    before = set(threading.enumerate())

    async def main():
        rt = ReplayServerThread(_tiny_recording(), server_options={"encoding": 99})
        with pytest.raises(ValueError):
            await rt.start()
        await rt.stop()
        return await _until(lambda: not rt.alive, 5.0)

    assert _run(main(), 60)
    assert _new_threads(before) == []


def test_embedded_source_fans_out_every_batch_and_every_frame_once():
    """The pipeline on the embedded replay at maximum speed: every batch reaches each market
    listener once and in order, every published frame reaches each frame listener once, and
    every signal the engine publishes is in exactly one frame's ``new_signals``; the user's
    pause goes through the source and holds the replay on its thread."""
    before = set(threading.enumerate())
    out = {}

    async def main():
        pl = Pipeline(PipelineConfig(embedded=True, speed=0.0, loop_replay=False, profile="production",
                                     engine_options={"publish_interval_s": 0.02}))
        batches, frames, signal_ids = [], [], []
        pl.add_listener(batches.append)
        pl.add_listener(lambda b: None)

        def on_frame(f):
            frames.append(f)
            signal_ids.extend(s.id for s in f.new_signals)

        pl.add_frame_listener(on_frame)
        out["on_caller_thread"] = []
        pl.add_frame_listener(lambda f: out["on_caller_thread"].append(threading.get_ident() == me))
        me = threading.get_ident()
        await pl.start()
        src = pl.source
        out["server_thread"] = src.replay.thread_ident != me and src.replay.alive

        async def poller():  # the window's timer: lifts the flow control
            while True:
                pl.poll()
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(poller())
        await _until(lambda: pl.events_in > 5000, 120)
        # user pause: the replay stops on the server thread (flow control cannot lift it)
        src.pause()
        st = await src.replay.run(lambda s: _stats(s), 5.0)
        out["paused_on_server"] = all(v["paused"] for v in st["replay"].values())
        n = pl.events_in
        pl.throttled = True  # as if the flow control held it too: its release must not resume
        pl.poll()
        st = await src.replay.run(lambda s: _stats(s), 5.0)
        out["still_paused"] = all(v["paused"] for v in st["replay"].values()) and src.paused
        src.resume()
        out["done"] = await src.replay.wait_replay_done(180)
        n_total = int(sum(v.clock.events.shape[0] for v in src.replay.server.symbols.values()))
        await _until(lambda: pl.engine.backlog == 0, 60)
        task.cancel()
        out["n_paused_at"] = n
        await pl.stop()
        out["batches"] = batches
        out["events_in"] = pl.events_in
        out["n_total"] = n_total
        out["frames"] = frames
        out["published"] = pl.slot.published
        out["signal_ids"] = signal_ids
        out["all_signals"] = [s.id for s in pl.engine.all_signals]
        out["problems"] = [p for p in pl.problems if p[0] == "error"]

    _run(main(), 300)
    assert out["server_thread"]
    assert out["paused_on_server"] and out["still_paused"]
    assert out["done"]
    assert sum(len(b) for b in out["batches"]) == out["events_in"] >= out["n_total"]
    assert len(out["frames"]) == out["published"] > 0
    assert [f.events_total for f in out["frames"]] == sorted(f.events_total for f in out["frames"])
    assert all(out["on_caller_thread"]) and len(out["on_caller_thread"]) == out["published"]
    assert sorted(out["signal_ids"]) == sorted(out["all_signals"])
    assert len(set(out["signal_ids"])) == len(out["signal_ids"])
    assert out["problems"] == []
    assert _new_threads(before) == []


def test_a_failing_listener_is_reported_and_the_stream_goes_on():
    pl = Pipeline(PipelineConfig(embedded=False))
    seen = []

    def bad(batch):
        raise RuntimeError("listener bug")

    pl.add_listener(bad)
    pl.add_listener(seen.append)
    b = np.zeros(3, dtype=EVENT_DTYPE)
    for _ in range(3):
        pl._on_events(b)
    assert len(seen) == 3 and pl.events_in == 9
    errs = [t for lvl, t, _ in pl.problems if lvl == "error"]
    assert len(errs) == 1 and "listener bug" in errs[0]  # reported once, not per batch
    pl.remove_listener(bad)
    pl.remove_listener(bad)  # no error
    pl._on_events(b)
    assert len(seen) == 4


def test_flow_control_holds_only_pausable_sources():
    class Src(MarketSource):
        kind, pausable = "embedded", True

        def __init__(self):
            super().__init__()
            self.calls = []

        def pause(self, reason=PAUSE_USER):
            self.calls.append(("pause", reason))
            return True

        def resume(self, reason=PAUSE_USER):
            self.calls.append(("resume", reason))
            return True

    class Eng:
        backlog = 10

        def submit(self, b):
            pass

    pl = Pipeline(PipelineConfig(embedded=False))
    pl.source = Src()
    pl.engine = Eng()
    pl._on_events(np.zeros(1, dtype=EVENT_DTYPE))
    assert pl.source.calls == [("pause", PAUSE_FLOW)] and pl.throttle_count == 1
    Eng.backlog = 0
    pl.poll()
    assert pl.source.calls[-1] == ("resume", PAUSE_FLOW)
    live = Pipeline(PipelineConfig(embedded=False))
    live.engine = Eng()
    Eng.backlog = 10
    live._on_events(np.zeros(1, dtype=EVENT_DTYPE))  # a DTC source is never held
    assert live.throttle_count == 0


def test_stop_blocking_ends_the_server_thread_when_no_loop_runs():
    """A window closed after its event loop ended still stops the replay server's thread."""
    before = set(threading.enumerate())
    src = EmbeddedReplaySource(_tiny_recording(), speed=1.0, loop_replay=False)
    rt = ReplayServerThread(_tiny_recording(), speed=1.0, loop_replay=False, paused=True)
    src.replay = rt
    errors = []
    rt.on_error = errors.append

    async def start():
        return await rt.start()

    assert _run(start()) > 0  # the caller's loop has ended here; the server thread runs on
    assert rt.alive and _new_threads(before)
    src.stop_blocking(5.0)
    assert not rt.alive and not _new_threads(before) and errors == []
    assert src.state == "stopped"


def test_latency_arrival_is_the_socket_read_of_a_dtc_source():
    """A batch of a DTC source "arrives" when the client's socket read returned (before its
    decoding and hand-over), on the pipeline's clock; without a client it arrives now."""
    from app.core.clock import ManualClock

    clock = ManualClock()
    pl = Pipeline(PipelineConfig(embedded=False), clock=clock)

    class Client:
        pass

    c = Client()
    c.clock = clock
    c.last_read_ns = clock.monotonic_ns()
    pl.source.client = c
    pl.latency.enabled = True
    b = np.zeros(2, dtype=EVENT_DTYPE)
    b["kind"] = KIND_DEPTH
    clock.advance(0.004)  # decoding took 4 ms
    pl._on_events(b)
    assert pl.latency.arrivals == [(2, c.last_read_ns)]
    pl.source.client = None
    pl._on_events(b)
    assert pl.latency.arrivals[-1] == (4, clock.monotonic_ns())


def test_embedded_source_calls_the_server_thread_only_when_its_held_state_changes():
    class Replay:
        def __init__(self):
            self.paused, self.calls = True, []

        def pause(self):
            self.paused = True
            self.calls.append("pause")

        def resume(self):
            self.paused = False
            self.calls.append("resume")

    src = EmbeddedReplaySource(speed=0.0)
    src.replay = Replay()
    src.pause(PAUSE_FLOW)  # already held by the start-up hold: nothing to send
    src.resume("start")  # the flow hold still holds it
    assert src.replay.calls == []
    src.resume(PAUSE_FLOW)
    src.pause(PAUSE_USER)
    src.pause(PAUSE_FLOW)
    src.resume(PAUSE_FLOW)
    assert src.replay.calls == ["resume", "pause"]


def test_flow_control_holds_on_seconds_of_queued_work_not_only_batches():
    """Few batches can be a lot of work (a megabyte read off the socket at maximum speed): the
    replay is held while the engine has more than FLOW_HIGH_S seconds queued, and released only
    once that is down to FLOW_LOW_S, whatever the batch count."""
    class Src(MarketSource):
        kind, pausable = "embedded", True

        def __init__(self):
            super().__init__()
            self.calls = []

        def pause(self, reason=PAUSE_USER):
            self.calls.append(("pause", reason))
            return True

        def resume(self, reason=PAUSE_USER):
            self.calls.append(("resume", reason))
            return True

    class Eng:
        backlog = 1
        behind_s = 0.0

        def submit(self, b):
            pass

    pl = Pipeline(PipelineConfig(embedded=False))
    pl.source = Src()
    pl.engine = eng = Eng()
    pl._on_events(np.zeros(1, dtype=EVENT_DTYPE))
    assert pl.source.calls == []  # one batch, nothing much queued: not held
    eng.behind_s = pl.FLOW_HIGH_S * 3
    pl._on_events(np.zeros(1, dtype=EVENT_DTYPE))
    assert pl.source.calls == [("pause", PAUSE_FLOW)]
    eng.backlog, eng.behind_s = 0, pl.FLOW_HIGH_S  # no batch queued but the work is still there
    pl.poll()
    assert pl.source.calls == [("pause", PAUSE_FLOW)]
    eng.behind_s = pl.FLOW_LOW_S
    pl.poll()
    assert pl.source.calls[-1] == ("resume", PAUSE_FLOW)


def test_engine_behind_s_counts_the_queued_events_at_the_measured_cost():
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "production")
    assert eng.behind_s == 0.0  # no cost measured yet
    eng._ns_per_event = 2_000.0
    eng.submit(np.zeros(5_000, dtype=EVENT_DTYPE))
    eng.submit(np.zeros(2_500, dtype=EVENT_DTYPE))
    assert eng.behind_s == pytest.approx(7_500 * 2e-6)


def test_maximum_speed_is_paced_by_how_late_the_newest_frame_is():
    """At maximum speed the pipeline keeps a pace for the replay (events/s) by the age of the
    oldest batch the newest frame does not contain yet: late -> cut (starting from the rate
    data came at), fresh while data flows -> raised (at most PACE_HEADROOM x the pace in force),
    no data (a pause) -> not raised, a paced speed (10x) -> lifted. Before, only the on/off flow
    control acted, and what the server had sent before a hold was applied first (ES at maximum
    speed: the newest frame 0.1 to 0.4 s behind the socket). On an injected clock."""
    import types

    from app.core.clock import ManualClock

    class Src(MarketSource):
        kind, pausable = "embedded", True

        def __init__(self):
            super().__init__()
            self.speed = 0.0
            self.rates = []
            self.waits = None

        def pause(self, reason=PAUSE_USER):
            return True

        def resume(self, reason=PAUSE_USER):
            return True

        def set_max_rate(self, eps, reason=PAUSE_FLOW):
            self.rates.append(eps)
            return True

        @property
        def max_rate(self):
            return self.rates[-1] if self.rates else None

        @property
        def pace_waits(self):
            return self.waits

    class Eng:
        backlog, behind_s, analysis_ready = 0, 0.0, True

        def submit(self, b):
            pass

    clock = ManualClock()
    pl = Pipeline(PipelineConfig(embedded=False), clock=clock)
    pl.source = src = Src()
    pl.engine = Eng()

    def frame(total):
        pl.slot.put(types.SimpleNamespace(events_total=total))

    # 1,000 events every 10 ms: 100,000 events/s, and the frames stay 50 ms behind
    for _ in range(10):
        pl._on_events(np.zeros(1_000, dtype=EVENT_DTYPE))
        clock.advance(0.01)
    frame(5_000)
    pl.poll()
    assert src.rates == [pytest.approx(0.8 * 100_000, rel=0.15)]  # cut from the arrival rate
    pl.poll()
    assert len(src.rates) == 1  # late, but the batches came before the cut: wait for its effect
    clock.advance(0.001)
    pl._on_events(np.zeros(1_000, dtype=EVENT_DTYPE))  # a batch after the cut ...
    frame(10_000)  # (the ones before it shown)
    clock.advance(0.05)  # ... late as well: the new pace is still too fast
    pl.poll()
    assert src.rates[-1] == pytest.approx(0.8 * src.rates[-2])  # cut again
    frame(11_000)  # the frame caught up: every batch shown
    pl._on_events(np.zeros(100, dtype=EVENT_DTYPE))
    frame(11_100)
    pl.poll()
    assert src.rates[-1] == pytest.approx(1.1 * src.rates[-2])  # fresh and flowing: raised
    for _ in range(20):
        pl.poll()  # data flowed within PACE_FLOW_NS: raised each poll, by at most 1.5x what holds
    assert all(b <= 1.5 * a + 1e-6 for a, b in zip(src.rates, src.rates[1:]))
    n = len(src.rates)
    src.waits = 7  # the source says how often the pace held the replay back ...
    pl.poll()
    n = len(src.rates)
    pl._on_events(np.zeros(100, dtype=EVENT_DTYPE))
    frame(11_200)
    pl.poll()
    assert len(src.rates) == n  # ... and it did not since: the pace does not bind, not raised
    src.waits = 8
    pl.poll()
    assert len(src.rates) == n + 1  # it did: raised
    n = len(src.rates)
    clock.advance(1.0)  # no data for a second (paused): not raised
    pl.poll()
    assert len(src.rates) == n
    src.speed = 10.0  # a paced replay: the pace is lifted
    pl.poll()
    assert src.rates[-1] is None and pl.pace_eps is None
