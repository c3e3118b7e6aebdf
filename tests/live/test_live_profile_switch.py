"""A profile change applies to the running analysis without restarting the source (issue 16, item 6).

Old behaviour: choosing another profile stopped the pipeline and started a new one, so the
built-in server replayed the recording again from its start (the replay jumped back, a new
connection) and the tape mixed two runs. Now :meth:`Pipeline.set_profile` swaps the engine's
analyzers between two batches: the same source and connection go on, market time only moves
forward and the signal ids keep counting up.

Real data: the shipped real CME ES hour (ESH4, 2023-12-25) through the built-in DTC server,
headless (the pipeline on a plain asyncio loop, as under qasync).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from app.config.schema import ConfigError
from app.core.events import chunks
from app.feeds.samples import load_default_sample
from app.live.engine import AnalysisEngine
from app.live.pipeline import Pipeline, PipelineConfig


async def _until(pred, timeout: float, step: float = 0.02) -> bool:
    """Bounded polling (no fixed wait): True as soon as ``pred()`` holds."""
    t_end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t_end:
            return bool(pred())
        await asyncio.sleep(step)
    return True


async def _server_stats(pl: Pipeline) -> dict:
    async def stats(server):
        return server.stats

    return await pl.source.replay.run(stats, 10.0)


def test_profile_change_mid_replay_keeps_the_source_and_time_and_ids_go_on():
    out: dict = {}

    async def main():
        # 200x: the hour takes 18 s, so "mid-replay" is caught on the server's own clock; after
        # the change the rest goes at maximum speed
        cfg = PipelineConfig(embedded=True, speed=200.0, profile="production", loop_replay=False,
                             engine_options={"publish_interval_s": 0.02})
        pl = Pipeline(cfg)
        frames = []
        pl.add_frame_listener(frames.append)
        await pl.start()
        src, client, eng = pl.source, pl.client, pl.engine
        total = (await _server_stats(pl))["replay"]["ESH4"]["events"]
        pos = {"now": 0}

        async def mid() -> bool:
            pl.poll()  # lifts the flow control, as the window's timer does
            pos["now"] = (await _server_stats(pl))["replay"]["ESH4"]["position"]
            return pos["now"] >= total // 2 and len(eng.all_signals) > 0

        t_end = time.monotonic() + 300
        while not await mid() and time.monotonic() < t_end:
            await asyncio.sleep(0.05)
        out["half"] = pos["now"] >= total // 2
        src.pause()  # the user's pause: nothing in flight while "before" is read
        n_in, t_end = -1, time.monotonic() + 120
        while (n_in != pl.events_in or eng.backlog or eng.events_applied != pl.events_in) and time.monotonic() < t_end:
            n_in = pl.events_in
            await asyncio.sleep(0.2)
            pl.poll()
        st0 = await _server_stats(pl)
        out["pos_before"] = st0["replay"]["ESH4"]["position"]
        out["total"] = total
        out["clients_before"] = st0["clients_total"]
        out["ts_before"] = eng.model.ts
        out["ids_before"] = [s.id for s in eng.all_signals]
        out["n_before"] = len(eng.all_signals)
        out["frames_before"] = len(frames)

        def polled(pred):
            def f():
                pl.poll()
                return pred()
            return f

        pl.set_profile("scalping")
        src.set_speed(0.0)
        src.resume()
        out["swapped"] = await _until(lambda: eng.profile_changes == 1, 30)
        out["done"] = await _until(polled(lambda: src.replay_finished and eng.backlog == 0
                                          and eng.events_applied == pl.events_in), 240)
        await _until(lambda: eng.state == "running" and eng.backlog == 0, 10)
        st1 = await _server_stats(pl)
        out["pos_after"] = st1["replay"]["ESH4"]["position"]
        out["loops"] = st1["replay"]["ESH4"]["loops"]
        out["clients_after"] = st1["clients_total"]
        out["connections"] = st1["connections"]
        out["same"] = (pl.source is src, pl.client is client, pl.engine is eng)
        out["ids_after"] = [s.id for s in eng.all_signals[out["n_before"]:]]
        out["profile"] = (eng.profile.name, pl.profile.name, cfg.profile)
        out["column_ns"] = frames[-1].column_ns
        out["errors"] = (eng.errors, eng.last_error)
        await pl.stop()
        out["frame_ts"] = [f.ts for f in frames]
        out["frame_ids"] = [s.id for f in frames for s in f.new_signals]

    asyncio.run(asyncio.wait_for(main(), 600))
    assert out["half"] and out["swapped"] and out["done"], out
    assert out["errors"] == (0, "")
    # the venue's own state: the replay went on from where it was, on the one connection
    assert 0 < out["pos_before"] < out["total"]  # the change came mid-replay
    assert out["pos_after"] == out["total"] > out["pos_before"]
    assert out["loops"] == 0
    assert out["clients_before"] == out["clients_after"] == 1 and out["connections"] == 1
    assert out["same"] == (True, True, True)
    # market time never went back, in the engine and in every frame the window would draw
    assert out["ts_before"] > 0
    assert all(b >= a for a, b in zip(out["frame_ts"], out["frame_ts"][1:]))
    assert out["frame_ts"][-1] > out["ts_before"]
    # the new profile runs (scalping: 100 ms columns) and its signals come after every old one
    assert out["profile"] == ("scalping", "scalping", "scalping")
    assert out["column_ns"] == 100_000_000
    assert out["ids_before"] and out["ids_after"]
    assert min(out["ids_after"]) > max(out["ids_before"])
    assert out["frame_ids"] == sorted(set(out["frame_ids"]))  # each id once, always increasing


def test_engine_profile_swap_keeps_book_session_and_event_count():
    """Engine level, synchronous: a swap to a profile with other column and bar widths rebuilds
    the model from the book (same levels), carries the session's volume profile, cumulative
    delta and VWAP over, keeps the event count and the recent signals, and continues the ids."""
    from app.core.events import SIDE_ASK, SIDE_BID

    rec = load_default_sample()
    ev = rec.events
    half = len(ev) // 2
    eng = AnalysisEngine(rec.instrument, "production")
    for c in chunks(ev[:half]):
        eng.process(c)
    m0 = eng.model
    book0 = [m0.levels(s) for s in (SIDE_BID, SIDE_ASK)]
    vp0, cd0, vwap0, ts0 = m0.volume_profile(), m0.cum_delta, m0.vwap.vwap, m0.ts
    sig0 = list(eng.all_signals)
    eng.set_profile("scalping")
    m1 = eng.model
    assert m1 is not m0 and m1.column_ns == 100_000_000 and m1.bar_ns == 30_000_000_000
    for s, (p, sz, n) in zip((SIDE_BID, SIDE_ASK), book0):
        p1, sz1, n1 = m1.levels(s)
        assert np.array_equal(p1, p) and np.array_equal(sz1, sz) and np.array_equal(n1, n)
    assert m1.volume_profile() == vp0 and m1.cum_delta == cd0 and m1.vwap.vwap == vwap0 and m1.ts == ts0
    assert eng.events_applied == half
    f = eng.snapshot_frame()
    assert [s.id for s in f.signals][-len(sig0):] == [s.id for s in sig0][-len(f.signals):]
    for c in chunks(ev[half:]):
        eng.process(c)
    eng.finish(end_of_data=True)
    assert eng.events_applied == len(ev) and eng.errors == 0
    new = eng.all_signals[len(sig0):]
    assert new and min(s.id for s in new) > max(s.id for s in sig0)
    assert set(eng.outcomes) == {s.id for s in eng.all_signals}  # every signal still booked


def test_bad_profile_name_raises_and_changes_nothing():
    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "production")
    with pytest.raises(ConfigError, match="nosuch"):
        eng.set_profile("nosuch")
    assert eng.profile.name == "production" and eng.profile_changes == 0
    pl = Pipeline(PipelineConfig(embedded=True, profile="production"))
    with pytest.raises(ConfigError):
        pl.set_profile("nosuch")
    assert pl.config.profile == "production"


def test_profile_swap_before_any_depth_keeps_market_time():
    """A swap when the model has seen trades but no resting level (nothing to seed the new
    model's book with): market time stays where it was instead of going back to 0 (the window's
    clock and the tape read ``frame.ts``; the old code gave a frame at ts 0 after the swap)."""
    from app.core.events import KIND_TRADE

    rec = load_default_sample()
    ev = rec.events
    trades = ev[ev["kind"] == KIND_TRADE][:5].copy()
    eng = AnalysisEngine(rec.instrument, "production")
    eng.process(trades)
    ts0 = eng.model.ts
    assert ts0 == int(trades["ts"][-1])
    eng.set_profile("scalping")
    assert eng.model.ts == ts0
    assert eng.snapshot_frame().ts == ts0
