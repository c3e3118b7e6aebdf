"""Issue 13 items 17 and 18: a replay that ends cleanly, loops that are new sessions, and a
recording whose events all share one timestamp.

The server runs in-process on loopback (or as ``mia-elite serve`` in a subprocess for the
command-line checks); a minimal socket client records every message, and the assertions read the
server's own state (its fill engine, its replay clock) beside what the client saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from app.core.clock import ManualClock
from app.core.events import FLAG_BATCH_END
from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.feeds.dbn import read_dbn_mbo
from app.feeds.recording import Recording, write_recording
from app.sim import replay as R
from app.sim.server import DTCServer
from app.sim.server.market_data import REPLAY_FINISHED, REPLAY_RESTARTED

pytestmark = pytest.mark.timeout(120)

ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
SYM = "ESH4"


def run_async(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def until(pred, timeout: float = 20.0) -> bool:
    """Poll ``pred`` (bounded) for what a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


class Client:
    """Socket + decoder; keeps every decoded message in order."""

    def __init__(self):
        self.dec = codec.Decoder(Encoding.BINARY, follow_encoding_response=True)
        self.msgs: list = []

    async def connect(self, port: int) -> "Client":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    return
                self.msgs.extend(self.dec.feed(data))
        except (ConnectionError, asyncio.CancelledError):
            pass

    def send(self, msg) -> None:
        self.writer.write(codec.encode(msg, Encoding.BINARY))

    async def wait(self, pred, start: int = 0, timeout: float = 20.0):
        found = []

        def hit():
            for m in self.msgs[start:]:
                if pred(m):
                    found.append(m)
                    return True
            return False

        assert await until(hit, timeout), f"no matching message; last {self.msgs[-3:]!r}"
        return found[0]

    async def sync(self, rid: int) -> None:
        n = len(self.msgs)
        self.send(M.TradeAccountsRequest(RequestID=rid))
        await self.wait(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE and m.RequestID == rid, start=n)

    async def logon_and_subscribe(self) -> None:
        self.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=0, ClientName="t"))
        await self.wait(lambda m: m.TYPE == T.LOGON_RESPONSE)
        self.send(M.MarketDataRequest(RequestAction=1, SymbolID=7, Symbol=SYM))
        self.send(M.MarketDepthRequest(RequestAction=1, SymbolID=7, Symbol=SYM))
        await self.sync(1)

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def logs(self, prefix: str) -> list[int]:
        return [i for i, m in enumerate(self.msgs) if m.TYPE == T.GENERAL_LOG_MESSAGE and m.MessageText.startswith(prefix)]


@pytest.fixture(scope="module")
def es_rec(shared_data):
    return read_dbn_mbo(shared_data / ES_FILE)


@pytest.fixture(scope="module")
def short_rec(es_rec):
    """The real sample from its opening trade (book snapshot first), cut after about 3,000 events
    at an atomic-batch end: a pass that replays in well under a second at maximum speed."""
    r = R.start_at(es_rec, R.first_trade_index(es_rec.events))
    ends = R.segment_ends(r.events)
    cut = int(ends[np.searchsorted(ends, 3000)])
    return Recording(instrument=r.instrument, events=r.events[:cut].copy(), source="ES sample (first 3,000 events)")


@pytest.fixture(scope="module")
def flat_rec(es_rec):
    """A recording whose events all share one timestamp: the first atomic batch of the shipped
    sample (its book snapshot), as a real Databento file holding only the snapshot is."""
    ev = es_rec.events
    first_end = int(np.flatnonzero((ev["flags"] & FLAG_BATCH_END) != 0)[0]) + 1
    snap = ev[:first_end].copy()
    snap["ts"] = snap["ts"][0]
    assert len(snap) > 100 and len(np.unique(snap["ts"])) == 1
    return Recording(instrument=es_rec.instrument, events=snap, source="ES sample, first batch")


# ---------------------------------------------------------------------------------- item 17
@run_async
async def test_replay_stops_at_its_end_by_default_and_tells_the_client(short_rec):
    srv = DTCServer(short_rec, port=0, speed=0, paused=True,  # the defaults: no loop
                    resnapshot_interval_s=0.0)  # the late subscriber below gets its 104 at once
    await srv.start()
    c = Client()
    try:
        await c.connect(srv.port)
        await c.logon_and_subscribe()
        srv.resume()
        assert await srv.wait_replay_done(30.0), "the replay must end (no loop by default)"
        await c.sync(2)
        fin = c.logs(REPLAY_FINISHED)
        assert len(fin) == 1 and SYM in c.msgs[fin[0]].MessageText
        closed = [m for m in c.msgs[fin[0]:] if m.TYPE == T.MARKET_DATA_SNAPSHOT]
        assert closed and closed[-1].TradingStatus == M.TradingStatus.TRADING_STATUS_CLOSE
        # the venue's own state: one pass, every event once, and nothing more goes out
        st = srv.stats
        assert st["replay"][SYM]["loops"] == 0
        assert st["events_replayed"] == len(short_rec.events)
        n_depth = st["depth_messages_out"]
        await c.sync(3)
        assert srv.stats["depth_messages_out"] == n_depth
        # a new subscriber is told the market is closed
        c.send(M.MarketDataRequest(RequestAction=3, SymbolID=8, Symbol=SYM))  # snapshot only
        snap = await c.wait(lambda m: m.TYPE == T.MARKET_DATA_SNAPSHOT and m.SymbolID == 8)
        assert snap.TradingStatus == M.TradingStatus.TRADING_STATUS_CLOSE
        # Restart: the same recording again, as a new session, then finished again
        srv.replay_done.clear()
        srv.restart_replay()
        assert await srv.wait_replay_done(30.0)
        await c.sync(4)
        assert len(c.logs(REPLAY_RESTARTED)) == 1 and len(c.logs(REPLAY_FINISHED)) == 2
        assert srv.stats["events_replayed"] == 2 * len(short_rec.events)
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_each_loop_is_a_new_session_on_the_wire(short_rec):
    """Working orders are cancelled with reason "replay restarted", the position is closed at
    the last trade price before the restart, the book is cleared, and the market clock the
    client sees goes back only after that reset."""
    clock = ManualClock()
    srv = DTCServer(short_rec, port=0, speed=0, paused=True, loop_replay=True, clock=clock)
    await srv.start()
    c = Client()
    try:
        await c.connect(srv.port)
        await c.logon_and_subscribe()
        n = len(srv.symbols[SYM].clock.events)
        srv.resume()
        # pass 1 replays at maximum speed; the next pass waits for the minimum pass period
        assert await until(lambda: srv.stats["replay"][SYM]["position"] == n)
        await c.sync(2)
        last_tick = srv.symbols[SYM].last_trade[0]
        tick = short_rec.instrument.tick_size
        c.send(M.SubmitNewSingleOrder(Symbol=SYM, ClientOrderID="M1", OrderType=1, BuySell=1, Quantity=2))
        c.send(M.SubmitNewSingleOrder(Symbol=SYM, ClientOrderID="S1", OrderType=3, BuySell=2, Quantity=1,
                                      Price1=(last_tick - 40) * tick))
        c.send(M.SubmitNewSingleOrder(Symbol=SYM, ClientOrderID="L1", OrderType=2, BuySell=1, Quantity=1,
                                      Price1=(last_tick - 40) * tick))
        await c.sync(3)
        assert srv.engine.position(SYM).qty == 2
        assert len(srv.engine.open_orders(SYM)) == 2
        before = len(c.msgs)
        clock.advance(1.5)  # the minimum pass period: the loop starts pass 2
        await c.wait(lambda m: m.TYPE == T.GENERAL_LOG_MESSAGE and m.MessageText.startswith(REPLAY_RESTARTED),
                     start=before)
        assert await until(lambda: srv.stats["replay"][SYM]["loops"] == 1
                           and srv.stats["replay"][SYM]["position"] == n)
        srv.pause()
        await c.sync(4)
        # the venue's own state
        eng = srv.engine
        assert eng.open_orders(SYM) == []
        assert eng.position(SYM).qty == 0
        by_cid = {o.client_order_id: o for o in eng.orders.values()}
        assert by_cid["S1"].status.name == "CANCELED" and by_cid["S1"].info == "replay restarted"
        assert by_cid["L1"].status.name == "CANCELED" and by_cid["L1"].info == "replay restarted"
        closing = by_cid["replay-restart"]
        assert closing.status.name == "FILLED" and closing.filled_qty == 2 and closing.side.name == "SELL"
        assert closing.avg_fill_price == last_tick
        # the wire: cancellations and the closing fill, then the notice, then the book clear, all
        # before any event of the new pass
        notice = c.logs(REPLAY_RESTARTED)
        assert len(notice) == 1
        i = notice[0]
        assert f"{last_tick * tick:.2f}" in c.msgs[i].MessageText
        ups = [(k, m) for k, m in enumerate(c.msgs) if m.TYPE == T.ORDER_UPDATE and "replay restarted" in m.InfoText]
        assert {m.ClientOrderID for _k, m in ups} >= {"S1", "L1", "replay-restart"}
        assert all(k < i for k, _m in ups)
        clear = next(k for k, m in enumerate(c.msgs[i:], i) if m.TYPE == T.MARKET_DEPTH_SNAPSHOT_LEVEL)
        assert c.msgs[clear].Side == 0 and c.msgs[clear].IsFirstMessageInBatch and c.msgs[clear].IsLastMessageInBatch
        trades = [(k, m.DateTime) for k, m in enumerate(c.msgs)
                  if m.TYPE in (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_TRADE_COMPACT)]  # 112 by default
        old = [t for k, t in trades if k < i]
        new = [t for k, t in trades if k > clear]
        assert old and new
        assert all(a <= b for a, b in zip(old, old[1:])) and all(a <= b for a, b in zip(new, new[1:]))
        assert new[0] < old[-1]  # the clock went back, and only after the reset
        assert not [k for k, _t in trades if i < k < clear]
        await c.close()
    finally:
        await srv.stop()


# ---------------------------------------------------------------------------------- item 18
@run_async
async def test_zero_duration_recording_loops_with_a_minimum_period_and_awaits(flat_rec):
    """``stream()`` never runs pass after pass without awaiting: the second pass of a
    zero-duration recording waits for the minimum pass period of the injected clock."""
    clock = ManualClock()
    rc = R.ReplayClock(flat_rec, speed=1.0, loop=True, clock=clock, min_pass_s=1.0)
    ticks = [0]

    async def other_task():
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    bystander = asyncio.create_task(other_task())
    agen = rc.stream()
    try:
        first = await asyncio.wait_for(agen.__anext__(), 5.0)
        assert len(first) == len(flat_rec.events)
        seen = ticks[0]
        nxt = asyncio.ensure_future(agen.__anext__())
        assert not await until(lambda: nxt.done(), timeout=0.3)  # no second pass before the period
        assert ticks[0] > seen  # and the loop kept running other tasks meanwhile
        clock.advance(1.0)
        second = await asyncio.wait_for(nxt, 5.0)
        assert len(second) == len(flat_rec.events) and rc.loops == 1
    finally:
        bystander.cancel()
        await agen.aclose()


@run_async
async def test_zero_duration_recording_replays_once_without_loop(flat_rec):
    srv = DTCServer(flat_rec, port=0, speed=1.0, paused=True)
    await srv.start()
    c = Client()
    try:
        await c.connect(srv.port)
        await c.logon_and_subscribe()
        srv.resume()
        assert await srv.wait_replay_done(20.0)
        await c.sync(2)
        assert srv.stats["events_replayed"] == len(flat_rec.events)
        assert len(c.logs(REPLAY_FINISHED)) == 1
        await c.close()
    finally:
        await srv.stop()


def _encoding_response_within(port: int, timeout: float) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(codec.encoding_request(Encoding.BINARY))
        dec = codec.Decoder(Encoding.BINARY, follow_encoding_response=True)
        s.settimeout(timeout)
        got = []
        while not got:
            data = s.recv(4096)
            if not data:
                return False
            got = [m for m in dec.feed(data) if m.TYPE == T.ENCODING_RESPONSE]
        return True


def _start_serve(repo_root, path, *extra):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    p = subprocess.Popen([sys.executable, "-m", "app", "serve", str(path), "--port", "0", "--speed", "1", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo_root, env=env)
    first = p.stdout.readline()
    assert first.startswith("MIA Elite DTC server on 127.0.0.1:"), first + p.stderr.read()[-2000:]
    port = int(first.split("127.0.0.1:")[1].split(":")[0])
    return p, port


@pytest.mark.parametrize("loop", [False, True], ids=["once", "loop"])
def test_serve_stays_responsive_on_a_zero_duration_recording(repo_root, tmp_path, flat_rec, loop):
    """``mia-elite serve`` on it answers ENCODING_RESPONSE, honours ``--seconds`` and SIGINT."""
    path = write_recording(tmp_path / "snapshot-only.mrec", flat_rec)
    extra = ["--loop"] if loop else []
    p, port = _start_serve(repo_root, path, "--seconds", "3", *extra)
    try:
        assert _encoding_response_within(port, 10.0)
        out, err = p.communicate(timeout=30)  # --seconds 3: it exits by itself
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-2000:]
    stats = json.loads(out.strip().splitlines()[-1])["stats"]
    if loop:  # at most one pass per second of the minimum pass period, plus the first
        assert len(flat_rec.events) <= stats["events_replayed"] <= 5 * len(flat_rec.events)
    else:
        assert stats["events_replayed"] == len(flat_rec.events)
    # SIGINT ends it (no --seconds)
    p, port = _start_serve(repo_root, path, *extra)
    try:
        assert _encoding_response_within(port, 10.0)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-2000:]


@contextlib.asynccontextmanager
async def _pumped(es_rec, n, **clock_kw):
    """A ReplayClock over the first ``n`` events of the ES sample at maximum speed on a
    ManualClock, streamed by a task that counts what it hands out; yields (clock, replay clock,
    out, events) with ``out[0]`` the events out so far (stopped and closed on exit)."""
    ev = es_rec.events[:n]
    rec = Recording(instrument=es_rec.instrument, events=ev, source=f"ES sample, first {n:,} events")
    clock = ManualClock()
    rc = R.ReplayClock(rec, speed=0, clock=clock, max_batch=256, **clock_kw)
    agen = rc.stream()
    out = [0]

    async def pump():
        async for b in agen:
            out[0] += len(b)

    task = asyncio.ensure_future(pump())
    try:
        yield clock, rc, out, ev
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await agen.aclose()


@run_async
async def test_a_short_pass_at_maximum_speed_is_spread_over_the_minimum_period(es_rec):
    """At maximum speed with loop, a pass that would last less than ``min_pass_s`` is paced
    evenly over it (events against time), not sent at once and followed by a still wait: on
    the injected clock, about half the events of the pass are out at half the period."""
    async with _pumped(es_rec, 20_000, loop=True, min_pass_s=1.0) as (clock, rc, out, ev):
        assert await until(lambda: out[0] > 0, timeout=5.0)
        await asyncio.sleep(0.2)  # real time passes, the injected clock does not
        first = out[0]
        snapshot = int(np.flatnonzero((ev["flags"] & FLAG_BATCH_END) != 0)[0]) + 1  # one segment
        assert first <= snapshot + 256, (first, snapshot)  # no burst: what is due at t=0, one batch
        clock.advance(0.5)
        assert await until(lambda: out[0] >= 9_500, timeout=5.0)
        await asyncio.sleep(0.1)
        assert 9_500 <= out[0] <= 10_600, out[0]  # half the pass at half the period
        clock.advance(0.5)
        assert await until(lambda: out[0] >= 20_000, timeout=5.0)


@run_async
async def test_a_pause_at_maximum_speed_holds_the_pass_schedule_and_resume_sends_no_burst(es_rec):
    """The pipeline's flow control pauses a maximum-speed replay while the engine is behind.
    Resuming goes on at the pass's even rate from where it stood: what was due during the
    pause is not sent at once (before, a 0.5 s hold released half the pass in one burst, and
    the engine met seconds of queued work; bench gui ES latency p99 3.3 s)."""
    async with _pumped(es_rec, 20_000, loop=True, min_pass_s=1.0) as (clock, rc, out, ev):
        assert await until(lambda: out[0] > 0, timeout=5.0)
        clock.advance(0.25)
        assert await until(lambda: out[0] >= 4_700, timeout=5.0)
        await asyncio.sleep(0.1)
        at_pause = out[0]
        assert at_pause <= 5_600, at_pause  # a quarter of the pass
        rc.pause()
        clock.advance(0.5)  # held for half a period
        await asyncio.sleep(0.1)
        assert out[0] == at_pause  # nothing while paused
        rc.resume()
        await asyncio.sleep(0.2)  # real time passes, the injected clock does not
        assert out[0] - at_pause <= 2 * 256 + 300, (at_pause, out[0])  # no burst
        clock.advance(0.25)  # a quarter period after the resume: half the pass is out
        assert await until(lambda: out[0] >= 9_500, timeout=5.0)
        await asyncio.sleep(0.1)
        assert out[0] <= 10_600, out[0]


@run_async
async def test_a_maximum_rate_paces_a_maximum_speed_replay_and_a_change_sends_no_burst(es_rec):
    """``set_max_rate`` (the window's pace for its engine): at maximum speed no more than the
    rate's events are out at any time of the injected clock (plus the batch in hand), and a
    new rate carries the old one's schedule over (no burst)."""
    async with _pumped(es_rec, 40_000, loop=False) as (clock, rc, out, ev):
        rc.set_max_rate(10_000)
        assert await until(lambda: out[0] > 0, timeout=5.0)
        await asyncio.sleep(0.2)  # real time passes, the injected clock does not
        snapshot = int(np.flatnonzero((ev["flags"] & FLAG_BATCH_END) != 0)[0]) + 1
        assert out[0] <= snapshot + 256  # the first segment, not the recording
        for step in range(1, 6):
            clock.advance(0.1)  # 1,000 events a step
            await asyncio.sleep(0.05)
            assert out[0] <= snapshot + 10_000 * 0.1 * step + 2 * 256, (step, out[0])
        assert out[0] >= 10_000 * 0.5 - 512
        assert rc.rate_waits > 0  # the pace held it back (what the pipeline raises the pace on)
        rc.set_max_rate(1_000)  # slower: the next batch is no earlier than it was due
        at = out[0]
        await asyncio.sleep(0.1)
        assert out[0] - at <= 2 * 256
        rc.set_max_rate(None)  # no limit: the rest at once
        assert await until(lambda: out[0] == len(ev), timeout=10.0)
