"""Event times of DTC market data are market times, also for messages without a timestamp.

Messages without a timestamp (141 depth, 142 trades, 145 snapshot levels) and snapshots with
DateTime 0 used to be stamped with the wall clock, so a replay's market time jumped to today.
The client's decoder now stamps them with the last market time seen on the connection for the
symbol (module docstring of ``app.dtc.batch``, "Market clock"). Real data: the shipped CME ES
sample, replayed by the built-in server or encoded here message by message.
"""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
import pytest

import app.dtc.client as client_mod
from app.dtc import batch as B
from app.core.clock import ManualClock
from app.dtc.client import DTCClient
from app.dtc.messages import Encoding, LogonFlags
from app.sim.server import DTCServer
from app.core import events as ev
from app.market.refbook import ReferenceBook
from app.feeds.samples import load_default_sample


@pytest.fixture(scope="module")
def es_rec():
    return load_default_sample()


def _untimed_depth_timed_trades_stream(events: np.ndarray, tick: float, sid: int) -> bytes:
    """The recording's depth updates as 141 (no timestamp) and its trades as 146 (microseconds),
    in recording order (one run per stretch of the same kind)."""
    keep = (events["kind"] == ev.KIND_TRADE) | (
        (events["kind"] == ev.KIND_DEPTH) & np.isin(events["op"], [ev.OP_SET, ev.OP_DELETE]))
    e = events[keep]
    is_trade = e["kind"] == ev.KIND_TRADE
    cuts = np.flatnonzero(is_trade[1:] != is_trade[:-1]) + 1
    parts = []
    for run in np.split(e, cuts):
        if run["kind"][0] == ev.KIND_TRADE:
            parts.append(B.encode_trade_batch(run, tick, sid, Encoding.BINARY, msg_type=146))
        else:
            parts.append(B.encode_depth_batch(run, tick, sid, Encoding.BINARY, msg_type=141))
    return b"".join(parts)


def test_untimed_depth_takes_the_last_trade_time_of_the_stream(es_rec):
    tick = es_rec.instrument.tick_size
    src = es_rec.events[:30_000]
    data = _untimed_depth_timed_trades_stream(src, tick, 7)
    t0, t1 = int(src["ts"].min()), int(src["ts"].max())
    rng = random.Random(11)

    def decode(**kw):
        sd = B.MarketStreamDecoder(Encoding.BINARY, {7: tick}, **kw)
        out, pos = [], 0
        while pos < len(data):
            n = rng.randint(1, 5000)
            out += [a for a in sd.feed(data[pos:pos + n], time.time_ns()) if isinstance(a, np.ndarray)]
            pos += n
        return np.concatenate(out), sd

    got, sd = decode(market_clock=True)
    assert sd.held == 0 and sd.decoder.errors == 0
    trades = got["kind"] == ev.KIND_TRADE
    depth = got["kind"] == ev.KIND_DEPTH
    assert trades.sum() == (src["kind"] == ev.KIND_TRADE).sum() > 100 and depth.sum() > 10_000
    # reference, computed by walking the stream: a depth update takes the time of the latest
    # trade before it; those before the first trade take the first trade's time
    first_trade_ts = int(got["ts"][np.argmax(trades)])
    want = np.empty(len(got), dtype=np.int64)
    last = first_trade_ts
    for i, (k, t) in enumerate(zip(got["kind"].tolist(), got["ts"].tolist())):
        if k == ev.KIND_TRADE:
            last = t
        want[i] = last
    assert np.array_equal(got["ts"], want)
    assert got["ts"].min() >= t0 and got["ts"].max() <= t1
    # the trades keep their own (microsecond) times
    assert np.array_equal(got["ts"][trades], src["ts"][src["kind"] == ev.KIND_TRADE] // 1000 * 1000)
    assert sd.market_time(7) == int(got["ts"][-1])

    # without the market clock the same stream is stamped with the wall clock (today)
    raw, _ = decode()
    assert (raw["ts"][raw["kind"] == ev.KIND_DEPTH] > t1 + 86_400 * 10**9).all()


def test_untimed_events_before_any_market_time_fall_back_to_the_wall_clock_after_the_hold(es_rec):
    tick = es_rec.instrument.tick_size
    dep = es_rec.events[(es_rec.events["kind"] == ev.KIND_DEPTH) & (es_rec.events["op"] == ev.OP_SET)][:50]
    data = B.encode_depth_batch(dep, tick, 3, Encoding.BINARY, msg_type=141)
    clock = ManualClock()
    sd = B.MarketStreamDecoder(Encoding.BINARY, {3: tick}, market_clock=True, hold_s=0.05, clock=clock)
    assert sd.feed(data, clock.time_ns()) == [] and sd.held == 50 and sd.held_due is not None
    assert sd.held_due_ns == clock.monotonic_ns() + 50_000_000
    clock.advance(0.049)
    assert sd.expire_held() == [] and sd.held == 50  # the hold has not run out yet
    clock.advance(0.011)
    now = clock.time_ns()
    (out,) = sd.expire_held(now)
    assert len(out) == 50 and (out["ts"] == now).all() and sd.held == 0
    # still no market time: further untimed events take the receive time at once
    later = sd.feed(data, now + 5)
    assert len(later) == 1 and (later[0]["ts"] == now + 5).all()
    # a timed trade gives the symbol its market time; untimed events follow it again
    tr = es_rec.events[es_rec.events["kind"] == ev.KIND_TRADE][:1]
    items = sd.feed(B.encode_trade_batch(tr, tick, 3, Encoding.BINARY, msg_type=146) + data, now + 9)
    got = np.concatenate(items)
    assert (got["ts"] == int(tr["ts"][0]) // 1000 * 1000).all() and len(got) == 51


def _run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("snapshot", [122, 145])
def test_float_replay_through_the_server_keeps_event_times_in_the_recording(es_rec, monkeypatch, snapshot):
    """depth_float=True replay (140 depth, 146 trades; snapshots 122 with DateTime 0 before the
    replay has started, or 145 without any timestamp) with a dropped connection mid-stream: every
    delivered event, the snapshots after connect and after reconnect included, lies in the
    recording's time range, and the book still equals the recording's."""
    if snapshot == 145:  # ask the server for the timestamp-less float snapshots too
        monkeypatch.setattr(client_mod, "FLOAT_FLAGS",
                            client_mod.FLOAT_FLAGS | LogonFlags.SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)
    t0, t1 = int(es_rec.events["ts"].min()), int(es_rec.events["ts"].max())
    ref = ReferenceBook()
    ref.apply(es_rec.events)

    async def main():
        srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        got = []
        book = ReferenceBook()
        state = {"n": 0, "dropped": False}

        def on_events(batch):
            got.append(batch.copy())
            book.apply(batch)
            state["n"] += batch.shape[0]
            if not state["dropped"] and state["n"] > 5000:
                state["dropped"] = True
                for c in list(srv.conns.values()):
                    c.writer.transport.abort()

        cl = DTCClient("127.0.0.1", srv.port, depth_float=True, heartbeat_s=5, backoff_initial_s=0.05)
        try:
            await cl.connect()
            await cl.subscribe_market(es_rec.instrument.symbol, on_events=on_events)
            srv.resume()
            for _ in range(400):
                if state["dropped"] and cl.reconnects >= 1 and cl.state == "connected":
                    break
                await asyncio.sleep(0.025)
            assert cl.reconnects == 1
            assert await srv.wait_replay_done(60)
            for _ in range(3):  # answers come after every byte sent before them
                await cl.trade_accounts()
            assert cl.decode_errors == 0
        finally:
            await cl.close()
            await srv.stop()
        return np.concatenate(got), book

    got, book = _run(main())
    snap = (got["flags"] & ev.FLAG_SNAPSHOT) != 0
    assert ((got["op"] == ev.OP_CLEAR) & snap).sum() == 2  # connect and reconnect snapshots
    assert got["ts"].min() >= t0 and got["ts"].max() <= t1, (got["ts"].min(), got["ts"].max())
    assert book.bids() == ref.bids() and book.asks() == ref.asks()
