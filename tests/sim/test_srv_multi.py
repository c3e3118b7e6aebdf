"""Issue 17 item 6: the built-in server replays several recordings at once, each under its own
symbol, on one market clock (real times when they overlap, aligned at their starts when their
dates differ); ``mia-elite serve A B ...`` takes any file ``analyze`` takes.

Real data: the BTCUSDT and ETHUSDT captures of 2024-08-08 (the same minutes) and the CME ES hour
of 2023-12-25. Assertions read the server's own state (its replay clock, its fill engine) and
what a socket client received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from app.cli.analyze import load_any
from app.core.clock import ManualClock
from app.dtc import messages as M
from app.dtc.messages import MessageType as T
from app.feeds.recording import Recording
from app.sim import replay as R
from app.sim.server import DTCServer
from app.sim.server.market_data import REPLAY_FINISHED, REPLAY_RESTARTED
from srv_peers import RawClient, run_async, until

pytestmark = pytest.mark.timeout(180)

BTC = "crypto/btcusdt_20240808.gz"
ETH = "crypto/ethusdt_20240808.gz"
ES = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


@pytest.fixture(scope="module")
def btc(shared_data):
    return load_any(str(shared_data / BTC))


@pytest.fixture(scope="module")
def eth(shared_data):
    return load_any(str(shared_data / ETH))


@pytest.fixture(scope="module")
def es(shared_data):
    r = load_any(str(shared_data / ES))
    return R.start_at(r, R.first_trade_index(r.events))


def head(rec: Recording, seconds: float) -> Recording:
    """The recording's first ``seconds`` (cut at an atomic-batch end)."""
    ev = rec.events
    ends = R.segment_ends(ev)
    t_cut = int(ev["ts"][0]) + int(seconds * 1e9)
    k = int(np.searchsorted(ev["ts"][ends - 1], t_cut, side="right"))
    cut = int(ends[max(k - 1, 0)])
    return Recording(instrument=rec.instrument, events=ev[:cut].copy(), source=f"{rec.source} (first {seconds:g} s)")


def later(rec: Recording, seconds: float) -> Recording:
    """The recording from ``seconds`` after its start, headed by a snapshot of the book then."""
    ev = rec.events
    ends = R.segment_ends(ev)
    t_from = int(ev["ts"][0]) + int(seconds * 1e9)
    k = int(np.searchsorted(ev["ts"][ends - 1], t_from, side="left"))
    return R.start_at(rec, int(ends[k]))


def member_events(tl: R.MarketTimeline, i: int) -> np.ndarray:
    return tl.events[tl.member == i]


# ------------------------------------------------------------------ the rule (timeline)
def test_one_recording_is_its_own_timeline(btc):
    tl = R.market_timeline([btc.events])
    assert tl.events is btc.events
    assert np.array_equal(tl.times_ns, btc.events["ts"])
    assert np.array_equal(tl.ends, R.segment_ends(btc.events))
    assert tl.offsets_ns == (0,) and tl.groups == (0,)


def test_overlapping_recordings_replay_on_their_real_times(btc, eth):
    late_eth = later(eth, 60.0)  # starts a minute after BTCUSDT, inside its minutes
    tl = R.market_timeline([btc.events, late_eth.events])
    assert tl.groups == (0, 0) and tl.offsets_ns == (0, 0)
    assert np.array_equal(tl.times_ns, tl.events["ts"])  # market time = recorded time
    # each symbol's events are its recording, whole and in order
    assert np.array_equal(member_events(tl, 0), btc.events)
    assert np.array_equal(member_events(tl, 1), late_eth.events)
    # segments in market-time order, never split: each segment ends on its recording's batch end
    starts = tl.times_ns[np.concatenate(([0], tl.ends[:-1]))]
    assert np.all(np.diff(starts) >= 0)
    for i, rec in enumerate((btc, late_eth)):
        own_ends = set((np.flatnonzero(tl.member == i)[R.segment_ends(rec.events) - 1] + 1).tolist())
        assert own_ends <= set(tl.ends.tolist())


def test_recordings_of_other_dates_start_together(es, btc):
    tl = R.market_timeline([es.events, btc.events], max_gap_s=5.0)
    assert tl.groups == (0, 1)  # ES 2023-12-25 first, BTCUSDT 2024-08-08 later
    t_es = tl.times_ns[tl.member == 0]
    t_btc = tl.times_ns[tl.member == 1]
    assert t_es[0] == t_btc[0] == es.events["ts"][0]
    assert tl.offsets_ns[0] == 0 and tl.offsets_ns[1] == int(es.events["ts"][0] - btc.events["ts"][0])
    # messages keep their recorded times; no gap over max_gap is left inside a group
    assert np.array_equal(member_events(tl, 1)["ts"], btc.events["ts"])
    for t in (t_es, t_btc):
        assert np.diff(t).max() <= 5_000_000_000
    # a group without long gaps keeps its spacing exactly
    raw = np.diff(btc.events["ts"])
    if raw.max() <= 5_000_000_000:
        assert np.array_equal(np.diff(t_btc), raw)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="at least one recording"):
        R.market_timeline([])


# ------------------------------------------------------------------ the server on one clock
@run_async
async def test_overlapping_recordings_are_paced_on_one_market_clock(btc, eth):
    """ETHUSDT starting a minute into BTCUSDT's capture sends nothing until that minute of
    market time; each replay clock anchored at its own start (the old server) sent both at once."""
    b = head(btc, 70.0)
    e = head(later(eth, 60.0), 10.0)
    clock = ManualClock()
    srv = DTCServer([b, e], port=0, speed=1.0, clock=clock)
    await srv.start()
    try:
        t0 = int(b.events["ts"][0])
        ends = R.segment_ends(b.events)
        seg_start = b.events["ts"][np.concatenate(([0], ends[:-1]))]

        async def advance_to(seconds: float) -> None:
            clock.advance(seconds - (clock.monotonic_ns() - mono0) / 1e9)
            due = int(ends[np.searchsorted(seg_start, t0 + int(seconds * 1e9), side="right") - 1])
            assert await until(lambda: srv.stats["replay"]["BTCUSDT"]["position"] >= due), srv.stats["replay"]

        mono0 = clock.monotonic_ns()
        # the replay anchors its market clock when its task starts: let it take the first batch
        assert await until(lambda: srv.stats["replay"]["BTCUSDT"]["position"] > 0)
        for s in (1.0, 20.0, 40.0, 59.0):
            await advance_to(s)
            assert srv.stats["replay"]["ETHUSDT"]["position"] == 0, f"ETHUSDT replayed before its time ({s} s)"
        assert int(e.events["ts"][0]) - t0 > 59 * 10**9
        await advance_to(62.0)
        assert await until(lambda: srv.stats["replay"]["ETHUSDT"]["position"] > 0)
        # the engine's books are the symbols' own (tick sizes differ: 0.1 and 0.01 USD)
        assert srv.engine.books["BTCUSDT"].best_bid() * 0.1 > 50_000
        assert 2_000 < srv.engine.books["ETHUSDT"].best_bid() * 0.01 < 5_000
    finally:
        await srv.stop()


@run_async
async def test_the_end_and_the_loop_are_the_whole_sets(btc, eth):
    short_b, long_e = head(btc, 2.0), head(eth, 6.0)
    srv = DTCServer([short_b, long_e], port=0, speed=0, paused=True, resnapshot_interval_s=0.0)
    await srv.start()
    c = RawClient()
    try:
        await c.connect(srv.port)
        await c.logon(heartbeat=0)
        for sid, sym in ((1, "BTCUSDT"), (2, "ETHUSDT")):
            c.send(M.MarketDataRequest(RequestAction=1, SymbolID=sid, Symbol=sym))
        await c.sync(1)
        srv.resume()
        assert await srv.wait_replay_done(60.0)
        await c.sync(2)
        fins = [m.MessageText for m in c.of(T.GENERAL_LOG_MESSAGE) if m.MessageText.startswith(REPLAY_FINISHED)]
        assert len(fins) == 2 and "BTCUSDT" in fins[0] and "ETHUSDT" in fins[1]
        # both ended together, after the last ETHUSDT event (the set's end), each with every event
        st = srv.stats
        assert st["replay"]["BTCUSDT"]["position"] == len(short_b.events)
        assert st["replay"]["ETHUSDT"]["position"] == len(long_e.events)
        assert st["events_replayed"] == len(short_b.events) + len(long_e.events)
        assert f"{len(short_b.events):,} events" in fins[0]
        # a restart starts the whole set again, each symbol's new session announced
        n = len(c.msgs)
        srv.restart_replay()
        assert await srv.wait_replay_done(60.0)
        await c.sync(3)
        restarts = [m.MessageText for m in c.msgs[n:]
                    if m.TYPE == T.GENERAL_LOG_MESSAGE and m.MessageText.startswith(REPLAY_RESTARTED)]
        assert len(restarts) == 2 and "BTCUSDT" in restarts[0] and "ETHUSDT" in restarts[1]
        assert srv.stats["events_replayed"] == 2 * (len(short_b.events) + len(long_e.events))
    finally:
        await c.close()
        await srv.stop()


@run_async
async def test_looping_set_restarts_together(btc, eth):
    short_b, long_e = head(btc, 1.0), head(eth, 3.0)
    srv = DTCServer([short_b, long_e], port=0, speed=0, loop_replay=True, paused=True)
    srv.replay.min_pass_ns = 0
    await srv.start()
    try:
        srv.resume()
        assert await until(lambda: srv.replay.loops >= 2)
        srv.pause()
        st = srv.stats["replay"]
        assert st["BTCUSDT"]["loops"] == st["ETHUSDT"]["loops"] == srv.replay.loops
        passes = {s.inst.symbol: s.passes for s in srv.symbols.values()}
        assert passes["BTCUSDT"] == passes["ETHUSDT"] >= 3
        # BTCUSDT (the shorter) was replayed once per pass, not as often as it could alone
        done = srv.symbols["BTCUSDT"].events_out
        assert done <= passes["BTCUSDT"] * len(short_b.events)
    finally:
        await srv.stop()


def test_serve_takes_binance_captures_and_prints_the_clock_rule(shared_data, repo_root):
    """``mia-elite serve A B``: both Binance captures (the old serve refused a .gz as "not a MIA
    recording"), each under its own symbol and SymbolID with its own security definition."""
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    p = subprocess.Popen([sys.executable, "-m", "app", "serve", str(shared_data / BTC), str(shared_data / ETH),
                          "--port", "0", "--speed", "1", "--paused", "--seconds", "120"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo_root, env=env)
    try:
        first = p.stdout.readline()
        assert "BTCUSDT (" in first and "ETHUSDT (" in first, first + p.stderr.read() if p.poll() else first
        rule = p.stdout.readline()
        assert rule.startswith("market clock: ") and R.ALIGNMENT_RULE in rule
        assert "BTCUSDT from 2024-08-08 23:54:15 UTC (group 0, real time)" in rule
        assert "ETHUSDT from 2024-08-08 23:54:15 UTC (group 0, real time)" in rule
        port = int(first.split(" on 127.0.0.1:")[1].split(":")[0])

        async def ask():
            c = RawClient()
            await c.connect(port)
            try:
                await c.logon(heartbeat=0)
                for rid, sym in ((11, "BTCUSDT"), (12, "ETHUSDT")):
                    c.send(M.SecurityDefinitionForSymbolRequest(RequestID=rid, Symbol=sym))
                out = {}
                for rid in (11, 12):
                    d = await c.wait_for(lambda m, r=rid: m.TYPE == T.SECURITY_DEFINITION_RESPONSE and m.RequestID == r)
                    out[d.Symbol] = d.MinPriceIncrement
                return out
            finally:
                await c.close()

        defs = asyncio.run(ask())
        assert defs["BTCUSDT"] == pytest.approx(0.1) and defs["ETHUSDT"] == pytest.approx(0.01)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        p.stdout.close()
        p.stderr.close()


def test_serve_names_the_way_out_for_a_capture_of_several_symbols(shared_data, tmp_path):
    """A real capture holding both symbols: serve (one symbol per file, no --symbol) says how to
    split it instead of pointing at an option it does not have."""
    import gzip

    from app.cli.serve import load_recording

    lines = []
    for f in (BTC, ETH):
        lines += gzip.decompress((shared_data / f).read_bytes()).decode().splitlines()[1:2000]
    both = tmp_path / "both.gz"
    both.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(ValueError, match=r"several symbols .*serve has no --symbol: .*mia-elite convert .*--symbol"):
        load_recording(both)


def test_the_window_source_takes_one_binance_capture_as_it_takes_several(shared_data):
    """``mia-elite --recording btcusdt_20240808.gz`` (one file, not a ``.mrec``): the built-in
    server's source loads it as ``analyze`` does (the old code read every single path as a MIA
    recording and refused it with "not a MIA recording")."""
    from app.live.sources import EmbeddedReplaySource

    path = str(shared_data / "crypto" / "btcusdt_20240808.gz")
    for arg in (path, [path]):
        recs = EmbeddedReplaySource(arg).load_recordings()
        assert [r.instrument.symbol for r in recs] == ["BTCUSDT"]
        assert len(recs[0].events) > 100_000
