"""Replay clock (batch boundaries, pause/resume/speed, gap compression) and ``mia-elite serve``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from app.core.clock import ManualClock
from app.sim import replay as R
from app.feeds.dbn import read_dbn_mbo
from app.core.events import FLAG_BATCH_END, OP_SET, SIDE_BID, Instrument, depth_events
from app.feeds.recording import Recording, write_recording

ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


@pytest.fixture(scope="module")
def es_rec(shared_data):
    return read_dbn_mbo(shared_data / ES_FILE)


def test_batches_keep_depth_batch_boundaries(es_rec):
    clock = R.ReplayClock(es_rec, speed=0, max_batch=500)
    batches = list(clock.iter_batches())
    assert np.array_equal(np.concatenate(batches), es_rec.events)
    ends = set(R.segment_ends(es_rec.events).tolist())
    pos = 0
    for b in batches:
        pos += len(b)
        assert pos in ends  # every batch ends where an atomic depth batch ends
        assert b[-1]["flags"] & FLAG_BATCH_END or pos == len(es_rec.events)
    # whole segments: a batch exceeds max_batch only when one segment alone does
    seg_len = np.diff(np.concatenate(([0], R.segment_ends(es_rec.events))))
    assert max(len(b) for b in batches) <= max(500, int(seg_len.max()))
    assert clock.done and clock.progress == 1.0


def _events(ts_s):
    ts = (np.asarray(ts_s) * 1e9).astype(np.int64)
    ev = depth_events(ts, np.arange(len(ts)) + 100, 1.0, SIDE_BID, OP_SET, flags=FLAG_BATCH_END)
    return Recording(Instrument("X", 1.0, 1.0), ev)


def test_real_time_pause_speed_and_gap():
    wall = ManualClock()
    rec = _events([0.0, 1.0, 2.0, 1000.0])
    clock = R.ReplayClock(rec, speed=2.0, max_gap_s=5.0, clock=wall)
    t0 = int(rec.events["ts"][0])
    got = []

    async def run():
        agen = clock.stream()

        async def nxt():
            return await asyncio.wait_for(agen.__anext__(), 1.0)

        got.append(await nxt())  # ts 0 is due at once
        assert clock.replay_time_ns() == t0
        wall.advance(ns=400_000_000)  # 0.4 s wall x2 = 0.8 s replay: ts 1.0 not due yet
        assert clock.replay_time_ns() == t0 + 800_000_000
        wall.advance(ns=100_000_000)  # 1.0 s replay
        got.append(await nxt())
        clock.pause()
        frozen = clock.replay_time_ns()
        wall.advance(ns=10_000_000_000)
        assert clock.replay_time_ns() == frozen
        clock.resume()
        clock.set_speed(1.0)
        wall.advance(ns=1_000_000_000)  # +1 s replay -> ts 2.0 due
        got.append(await nxt())
        # the 998 s gap is shortened to max_gap (5 s): after 5 s of wall time at x1 it is due
        task = asyncio.ensure_future(nxt())
        for _ in range(20):  # let the stream run: it waits for the clock, not for real time
            await asyncio.sleep(0)
        assert not task.done()
        wall.advance(ns=5_000_000_000)
        got.append(await task)
        with pytest.raises(StopAsyncIteration):
            await nxt()

    asyncio.run(run())
    assert [int(b["ts"][0]) for b in got] == rec.events["ts"].tolist()


def test_loop_restarts():
    rec = _events([0.0, 0.5])
    clock = R.ReplayClock(rec, speed=0, loop=True)

    async def run():
        out = []
        async for b in clock.stream():
            out.append(b)
            if len(out) == 3:
                break
        return out

    out = asyncio.run(run())
    # maximum speed: each pass is one batch (both segments fit max_batch); 3 batches = 2 restarts
    assert clock.loops == 2
    for b in out:
        assert np.array_equal(b, rec.events)


def test_load_recording_formats(tmp_path, shared_data, es_rec):
    from app.cli.serve import load_recording

    p = write_recording(tmp_path / "es.mrec", es_rec)
    a = load_recording(p)
    b = load_recording(shared_data / ES_FILE)
    assert np.array_equal(a.events, b.events)
    with pytest.raises(FileNotFoundError):
        load_recording(tmp_path / "missing.mrec")


@pytest.mark.timeout(60)
def test_serve_command_runs_and_reports(repo_root):
    out = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "0", "--speed", "0", "--seconds", "2.5"],
        capture_output=True, text=True, timeout=50, cwd=repo_root,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("MIA Elite DTC server on 127.0.0.1:") and "ESH4" in lines[0]
    stats = json.loads(lines[-1])["stats"]
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    # by default the replay starts at the opening trade, headed by the book at that moment
    assert stats["events_replayed"] == len(R.start_at(rec, R.first_trade_index(rec.events)).events)
    bad = subprocess.run([sys.executable, "-m", "app", "serve", "nope.mrec", "--seconds", "1"],
                         capture_output=True, text=True, timeout=50, cwd=repo_root)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_start_at_open_keeps_final_book(es_rec):
    from app.core.events import FLAG_SNAPSHOT, KIND_TRADE, OP_CLEAR
    from app.market.refbook import ReferenceBook

    i = R.first_trade_index(es_rec.events)
    assert es_rec.events["kind"][i] == KIND_TRADE and not np.any(es_rec.events["kind"][:i] == KIND_TRADE)
    cut = R.start_at(es_rec, i)
    head = cut.events[(cut.events["flags"] & FLAG_SNAPSHOT) != 0]
    assert head[0]["op"] == OP_CLEAR and head[-1]["flags"] & FLAG_BATCH_END
    assert np.array_equal(cut.events[len(head):], es_rec.events[i:])
    a, b = ReferenceBook(), ReferenceBook()
    a.apply(es_rec.events)
    b.apply(cut.events)
    assert a == b
    # the book at the head is the pre-open book just before the opening trade
    pre = ReferenceBook()
    pre.apply(es_rec.events[:i])
    h = ReferenceBook()
    h.apply(head)
    assert h == pre and len(h) > 1000
    with pytest.raises(IndexError):
        R.start_at(es_rec, len(es_rec.events) + 1)
