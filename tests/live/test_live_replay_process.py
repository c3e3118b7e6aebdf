"""The built-in replay server in a child process (:class:`app.live.replay_process.ReplayServerProcess`).

Checked on the client's side, the only side that matters to the window: the events a DTC client
receives from the child equal those it receives from the server on a thread (same recording, same
options); pause holds the stream in the child; a bad option raises the child's ``ValueError`` here;
a child whose parent's pipe closes ends by itself; nothing is left running after ``stop``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading

import numpy as np
import pytest

from app.core.events import FLAG_BATCH_END
from app.live.pipeline import PipelineConfig
from app.live.replay_process import ReplayServerProcess, _child_main
from app.live.sources import PAUSE_START, EmbeddedReplaySource, make_source
from tests.live.test_live_sources import _new_threads, _run, _tiny_recording, _until


def _paced_recording(n_batches: int, step_ms: int):
    """:func:`_tiny_recording` with every bid/ask pair one atomic batch (``FLAG_BATCH_END``), so
    the replay paces it (without the flag the whole recording is one segment, sent at once)."""
    rec = _tiny_recording(n_batches=n_batches, step_ms=step_ms)
    rec.events["flags"][1::2] |= FLAG_BATCH_END
    return rec


async def _stream(server_process: bool, rec, pause_after: int | None = None, speed: float = 0.0) -> dict:
    """Replay ``rec`` at ``speed`` (default maximum) through an :class:`EmbeddedReplaySource`, collect every
    event the client delivered; with ``pause_after``, pause once that many events arrived and
    count what still arrives while paused."""
    got: list[np.ndarray] = []
    out: dict = {}
    src = EmbeddedReplaySource(rec, speed=speed, loop_replay=False, server_process=server_process,
                               server_options={"start_at_open": False})  # TEST has no trading session
    assert await src.start(got.append)
    out["pid"] = src.replay.pid if server_process else os.getpid()
    out["pace_waits"] = src.pace_waits
    src.resume(PAUSE_START)  # as the pipeline does once its listeners are in place
    if pause_after is not None:
        await _until(lambda: sum(len(b) for b in got) >= pause_after, 60)
        src.pause()
        await asyncio.sleep(0.3)  # in-flight batches land
        n0 = sum(len(b) for b in got)
        await asyncio.sleep(0.5)
        out["while_paused"] = sum(len(b) for b in got) - n0
        out["paused_at"] = n0
        src.resume()
    out["done"] = await src.replay.wait_replay_done(120)
    n_total = sum(len(r.events) for r in src.recordings)
    await _until(lambda: sum(len(b) for b in got) >= n_total, 30)
    runner = src.replay
    await src.stop()
    out["alive_after"] = runner.alive
    out["errors"] = list(runner.errors)
    out["events"] = np.concatenate(got) if got else np.zeros(0)
    out["n_total"] = n_total
    return out


def test_the_child_serves_the_same_stream_as_the_thread():
    """Same recording, same options, at maximum speed: the client's events from the child
    process equal, field by field, those from the server thread (the first event included: the
    replay resumed after the subscription must not run ahead of the depth request, which about
    one pass in four did before ``confirm_subscribe``; eight passes here); the child is another
    process and is gone after stop."""
    before = set(threading.enumerate())
    rec = _paced_recording(n_batches=400, step_ms=50)
    thread = _run(_stream(False, rec), 120)
    assert thread["done"]
    assert thread["events"]["ts"][0] == rec.events["ts"][0]
    for _ in range(8):
        proc = _run(_stream(True, rec), 120)
        assert proc["pid"] != os.getpid() and isinstance(proc["pace_waits"], int)
        assert proc["done"]
        assert len(proc["events"]) == len(thread["events"]) >= proc["n_total"]
        for name in ("ts", "kind", "op", "side", "price", "size"):
            assert np.array_equal(proc["events"][name], thread["events"][name]), name
        assert not proc["alive_after"] and proc["errors"] == []
    assert _new_threads(before) == []


def test_pause_holds_the_stream_in_the_child():
    rec = _paced_recording(n_batches=1000, step_ms=50)  # 50 s of market time, 5 s at speed 10
    out = _run(_stream(True, rec, pause_after=200, speed=10.0), 180)
    assert out["paused_at"] < out["n_total"]  # paused before the end
    assert out["while_paused"] == 0
    assert out["done"] and len(out["events"]) >= out["n_total"]  # resumed to the end


def test_a_bad_option_raises_the_childs_error_here_and_leaves_nothing():
    before = set(threading.enumerate())

    async def main():
        rp = ReplayServerProcess(_tiny_recording(), server_options={"encoding": 99})
        with pytest.raises(ValueError):
            await rp.start()
        alive = rp.alive
        await rp.stop()
        return alive

    assert _run(main(), 120) is False
    assert _new_threads(before) == []


def test_stop_blocking_without_a_loop_and_controls_after_stop_say_false():
    rp = ReplayServerProcess(_tiny_recording(), speed=1.0)

    async def start():
        return await rp.start()

    assert _run(start()) > 0  # the caller's loop has ended; the child runs on
    assert rp.alive
    rp.stop_blocking(5.0)
    assert not rp.alive and rp.errors == []
    assert rp.pause() is False and rp.resume() is False and rp.set_speed(2.0) is False
    with pytest.raises(RuntimeError):
        _run(rp.run(lambda s: None, 1.0))


def test_a_child_whose_parent_end_of_the_pipe_closes_ends_by_itself():
    """The parent gone (as after ``kill -9``: the OS closes its end of the pipe): the child
    stops its server and exits, with no stop message."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    waits = ctx.RawValue("q", 0)
    options = {"speed": 1.0, "loop_replay": False, "paused": True, "server_options": {}, "log_level": 30}
    proc = ctx.Process(target=_child_main, args=(child, _tiny_recording(), options, waits), daemon=True)
    proc.start()
    child.close()
    try:
        assert parent.poll(60), "the child never reported"
        msg = parent.recv()
        assert msg[0] == "ready" and msg[1] > 0
        parent.close()  # the parent's end closes: the child reads EOF
        proc.join(30)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def test_the_setting_picks_the_runner():
    """``PipelineConfig.replay_process`` reaches the source; the window's default is the process."""
    from app.config.settings import ReplaySettings
    from app.ui.connection_dialog import config_from_prefs

    assert make_source(PipelineConfig(embedded=True, replay_process=True)).server_process is True
    assert make_source(PipelineConfig(embedded=True)).server_process is False
    assert ReplaySettings().process is True

    class Prefs:
        def __init__(self, value):
            self.value = value

        def get(self, key, default=None):
            return self.value if key == "replay.process" else default

        def saved(self, key):
            return False

    assert config_from_prefs(Prefs(True), PipelineConfig()).replay_process is True
    assert config_from_prefs(Prefs(False), PipelineConfig(replay_process=True)).replay_process is False


def test_a_child_killed_under_the_window_is_reported_on_the_callers_loop():
    """``kill -9`` of the child: ``on_error`` says so on the caller's loop thread, waits for the
    end of the replay answer False, and stop still returns."""
    got: list[tuple[str, bool]] = []

    async def main():
        me = threading.get_ident()
        rp = ReplayServerProcess(_tiny_recording(), on_error=lambda t: got.append((t, threading.get_ident() == me)))
        await rp.start()
        os.kill(rp.pid, signal.SIGKILL)
        ok = await _until(lambda: bool(got), 30)
        done = await rp.wait_replay_done(1.0)
        await rp.stop()
        return ok, done, rp.alive

    ok, done, alive = _run(main(), 60)
    assert ok and done is False and alive is False
    assert any("ended unexpectedly" in t for t, _ in got), got
    assert all(on_caller for _, on_caller in got)


def test_the_childs_log_records_go_up_the_pipe():
    """``_PipeLog``: a record at or above the parent's level becomes a ("log", level, logger,
    text) message with its traceback; one below it does not."""
    import logging

    from app.live.replay_process import _PipeLog

    sent: list[tuple] = []
    lg = logging.getLogger("app.sim.test_pipe_log")
    h = _PipeLog(sent.append, logging.WARNING)
    lg.addHandler(h)
    try:
        lg.info("not sent")
        try:
            raise KeyError("k")
        except KeyError:
            lg.error("replay of %s failed", "TEST", exc_info=True)
    finally:
        lg.removeHandler(h)
    assert len(sent) == 1
    what, level, name, text = sent[0]
    assert (what, level, name) == ("log", logging.ERROR, "app.sim.test_pipe_log")
    assert text.startswith("replay of TEST failed") and "KeyError: 'k'" in text


def test_the_market_offsets_come_back_from_the_child(shared_data):
    """The real ES hour (2023-12-25) beside the real BTCUSDT capture (2024-08-08): the child's
    server aligns them at their starts and the window (which links the panels' time axes with
    these offsets) gets the same offsets as from a server it holds."""
    from app.cli.analyze import load_any
    from app.feeds.samples import load_default_sample
    from app.sim.server import DTCServer
    from app.ui.instrument_panel import market_offsets

    recs = [load_default_sample(), load_any(str(shared_data / "crypto/btcusdt_20240808.gz"))]
    here = DTCServer(recs, host="127.0.0.1", port=0, speed=0.0, paused=True).market_offsets_s()

    async def main():
        rp = ReplayServerProcess(recs)
        before = market_offsets(rp)
        await rp.start()
        try:
            return before, market_offsets(rp)
        finally:
            await rp.stop()

    before, got = _run(main(), 120)
    assert before == {}
    assert got == here and len(got) == 2 and got["BTCUSDT"] < -1e7
