"""Fault injection on the kill switch and the order path (issue 12 items 1, 2, 3, 6 and the kill -9 loop).

Every test runs against a venue and checks the venue's own state: the built-in DTC server
(:class:`app.sim.server.DTCServer` on loopback, fed the real ES sample, with
:class:`~app.trading.dtc_broker.DtcBroker`) and, where it applies, the paper broker's fill
engine. The venue's position is sampled on every position change its engine reports (what the
server sends as POSITION_UPDATE): during a kill it must never change sign.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from app.config.trading import TradingSettings
from app.core.clock import ManualClock
from app.core.orders import OrderType
from app.dtc import messages as M
from app.dtc.client import DTCClient
from app.sim.account import PositionEvent
from app.sim.server import DTCServer
from app.trading.dtc_broker import DtcBroker
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.trading.orders import ROLE_FLATTEN, OrderRequest, OrderTicket
from app.trading.paper import PaperBroker
from app.trading.session import TradingSession

SYM = "ESH4"
#: limits wide enough for the scenarios (the gate is not what these tests look at)
LIMITS = dict(max_position_contracts=20, max_contracts_per_order=10, max_risk_per_trade_usd=10_000.0,
              max_trades_per_day=10_000, stale_data_ms=600_000, max_consecutive_losses=10_000,
              daily_loss_limit_usd=1e9)


async def wait_until(pred, timeout=5.0, what="condition"):
    """Poll ``pred`` on the loop up to ``timeout`` s of real time (bounded, no fixed sleep)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, f"{what} not reached within {timeout} s"
        await asyncio.sleep(0.005)


class Venue:
    """The venue's own picture: its fill engine, and every position it reported, in order."""

    def __init__(self, engine):
        self.engine = engine
        self.samples: list[float] = []
        engine.add_listener(self._on_event)

    def _on_event(self, ev) -> None:
        if isinstance(ev, PositionEvent) and ev.symbol == SYM:
            self.samples.append(ev.qty)

    @property
    def qty(self) -> int:
        return int(round(self.engine.position(SYM).qty))

    def open_orders(self) -> list:
        return self.engine.open_orders()

    def never_flipped(self, since: int = 0) -> bool:
        """True when no position sample from ``since`` on has the other sign of the first one."""
        s = self.samples[since:]
        if not s:
            return True
        signs = {(q > 0) - (q < 0) for q in s}
        return not (1 in signs and -1 in signs)


class DtcRig:
    """Built-in server (driven by ``publish``) + DTCClient + DtcBroker + TradingSession."""

    def __init__(self, rec, tmp_path, clock=None, **settings):
        self.rec, self.ev, self.i = rec, rec.events, 0
        self.tmp_path = tmp_path
        self.clock = clock
        kw = dict(mode="sim", account="Sim1", **LIMITS)
        kw.update(settings)
        self.settings = TradingSettings(**kw)

    async def start(self, via=None):
        """Start the server and connect; ``via(server_port) -> port`` puts something on the link."""
        self.server = DTCServer(self.rec, port=0, paused=True, loop_replay=False)
        await self.server.start()
        self.venue = Venue(self.server.engine)
        self.server.publish(SYM, self.ev[:3000])
        self.i = 3000
        await self.connect(await via(self.server.port) if via else self.server.port)
        return self

    async def publish(self, n: int) -> None:
        """Replay the next ``n`` events of the sample (the market moves)."""
        self.server.publish(SYM, self.ev[self.i:self.i + n])
        self.i += n

    async def connect(self, port):
        self.client = DTCClient("127.0.0.1", port, trade_account="Sim1", heartbeat_s=30, request_timeout_s=30.0)
        self.broker = DtcBroker(self.client, [self.rec.instrument], "Sim1", own_client=True)
        self.journal = Journal(self.tmp_path / "journal.sqlite3")
        kw = {"clock": self.clock} if self.clock is not None else {}
        self.s = TradingSession(self.broker, self.journal, self.settings, self.rec.instrument, **kw)
        await self.s.start()
        await self.client.subscribe_market(SYM, on_events=lambda b: self.s.on_market(SYM, b),
                                           tick_size=self.rec.instrument.tick_size)
        await self.publish(500)
        await wait_until(lambda: SYM in self.s.market and self.s.market[SYM].best_bid is not None, 5, "quotes")

    def best(self):
        b = self.server.engine.books[SYM]
        return b.best_bid(), b.best_ask()

    async def stop(self):
        await self.s.stop()
        self.journal.close()
        await self.server.stop()


class PaperRig:
    """PaperBroker session fed the real sample; the venue is the paper broker's own fill engine."""

    def __init__(self, rec, tmp_path, clock=None, feeder_cls=None, **settings):
        kw = dict(LIMITS)
        kw.update(settings)
        self.settings = TradingSettings(**kw)
        self.broker = PaperBroker([rec.instrument])
        self.venue = Venue(self.broker.engine)
        self.journal = Journal(tmp_path / "journal.sqlite3")
        ckw = {"clock": clock} if clock is not None else {}
        self.s = TradingSession(self.broker, self.journal, self.settings, rec.instrument, **ckw)
        self.feed = feeder_cls(self.s, rec)

    async def start(self):
        await self.s.start()
        self.feed.advance(4000)
        return self

    def best(self):
        b = self.broker.engine.books[SYM]
        return b.best_bid(), b.best_ask()

    async def stop(self):
        await self.s.stop()
        self.journal.close()


async def short_one_and_ten_working(rig) -> None:
    """Position -1 (market sell with its stop and target working) and 3 buy-limit brackets away from
    the market: 11 working orders at the venue."""
    s = rig.s
    bid, ask = rig.best()
    t = OrderTicket(SYM, -1, 1, OrderType.MARKET, None, bid + 40, bid - 40, ref_price=bid, source="test")
    assert (await s.confirm(t)).allowed
    for k in range(3):
        assert (await s.confirm(s.ticket_from_price(bid - 12 - k, +1))).allowed
    await wait_until(lambda: rig.venue.qty == -1 and len(rig.venue.open_orders()) == 11, 5, "position -1, 11 orders")
    await wait_until(lambda: s.position_qty(SYM) == -1 and len(s.broker.working_orders()) == 11
                     and all(o.server_order_id for o in s.broker.working_orders()), 5, "broker picture")


def flatten_orders_at_venue(rig) -> list:
    """The venue's orders that the app sent as flatten orders (journaled ones and this process's)."""
    cids = {r["client_order_id"] for r in rig.s.journal.query("SELECT client_order_id FROM orders WHERE role=?",
                                                                (ROLE_FLATTEN,))}
    cids |= {c for c, o in rig.s.broker.orders.items() if o.request.role == ROLE_FLATTEN}
    return [o for o in rig.venue.engine.orders.values() if o.client_order_id in cids]


# ---------------------------------------------------------------------------------------- item 1
async def _concurrent_kill(rig, clock):
    s = rig.s
    await short_one_and_ten_working(rig)
    first = len(rig.venue.samples)
    clock.advance(s.settings.stale_kill_s + 1)  # no market data since: the stale-data trigger holds
    assert s.check_triggers() == "stale_data"  # the automatic trigger starts the run
    manual = s.kill.trigger("manual")
    retry = asyncio.ensure_future(s.kill.retry())  # what the window's Retry button runs
    hotkey = asyncio.ensure_future(s.kill.engage("hotkey"))
    assert s.check_triggers() == ""  # a further automatic trigger joins (does not start a second run)
    results = await asyncio.wait_for(asyncio.gather(manual, retry, hotkey), 20)
    assert results[0] is results[1] is results[2], "every request must get the one run's result"
    res = results[0]
    assert res.state == KillState.VERIFIED_FLAT, res.describe()
    assert res.trigger == "stale_data" and res.flattens_sent == 1
    # the venue's own state: flat, nothing working, one flatten order, the position never changed sign
    assert rig.venue.qty == 0 and rig.venue.open_orders() == []
    flats = flatten_orders_at_venue(rig)
    assert len(flats) == 1 and flats[0].side == 1 and flats[0].qty == 1
    assert rig.venue.samples[first - 1] == -1 and rig.venue.samples[-1] == 0
    assert rig.venue.never_flipped(first - 1), rig.venue.samples
    ks = [r["state"] for r in s.journal.query("SELECT state FROM kill_switch ORDER BY id")]
    assert ks == ["engaged", "verified_flat"]


def test_concurrent_trigger_retry_and_automatic_trigger_one_run_one_flatten_dtc(es_sample, tmp_path):
    async def go():
        clock = ManualClock()
        rig = await DtcRig(es_sample, tmp_path, clock=clock, stale_kill_s=5.0).start()
        try:
            await _concurrent_kill(rig, clock)
        finally:
            await rig.stop()

    asyncio.run(go())


def test_concurrent_trigger_retry_and_automatic_trigger_one_run_one_flatten_paper(es_sample, tmp_path, feeder_cls):
    async def go():
        clock = ManualClock()
        rig = await PaperRig(es_sample, tmp_path, clock=clock, feeder_cls=feeder_cls, stale_kill_s=5.0).start()
        try:
            await _concurrent_kill(rig, clock)
        finally:
            await rig.stop()

    asyncio.run(go())


def test_flatten_position_refuses_a_second_flatten_while_one_works(es_sample, tmp_path,
                                                                                  feeder_cls):
    """At most one flatten order per symbol in flight: flatten_position refuses a second one."""
    async def go():
        rig = await PaperRig(es_sample, tmp_path, feeder_cls=feeder_cls).start()
        s = rig.s
        bid, _ = rig.best()
        assert (await s.confirm(OrderTicket(SYM, -1, 2, OrderType.MARKET, None, bid + 12, bid - 40,
                                            ref_price=bid))).allowed
        assert rig.venue.qty == -2
        # a resting (unfillable) flatten stands in for one still travelling to the venue
        cid = s.journal.next_client_order_id()
        req = OrderRequest(cid, SYM, "paper", 1, OrderType.LIMIT, 2, bid - 200, "flatten")
        s.journal.record_orders([req], "paper", "paper")
        await rig.broker.submit_order(req)
        assert s.broker.orders[cid].state.working
        assert await s.flatten_position(SYM, reason="second") == ""
        assert "still working" in s.problems[-1]
        assert len(flatten_orders_at_venue(rig)) == 1
        await rig.stop()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------- item 2
class FullDisk:
    """The journal's connection on a full disk: every write raises SQLITE_FULL (reads still work)."""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT")

    def __init__(self, con):
        self.con = con

    def execute(self, sql, params=()):
        if sql.lstrip().split(None, 1)[0].upper() in self.WRITES:
            raise sqlite3.OperationalError("database or disk is full")
        return self.con.execute(sql, params)

    def cursor(self):
        return self.con.cursor()

    def close(self):
        self.con.close()


async def short_three_and_eight_working(rig) -> None:
    s = rig.s
    bid, _ = rig.best()
    assert (await s.confirm(OrderTicket(SYM, -1, 3, OrderType.MARKET, None, bid + 12, bid - 40, ref_price=bid,
                                        source="test"))).allowed
    for k in range(2):
        assert (await s.confirm(s.ticket_from_price(bid - 12 - k, +1))).allowed
    await wait_until(lambda: rig.venue.qty == -3 and len(rig.venue.open_orders()) == 8, 5, "position -3, 8 orders")
    await wait_until(lambda: s.position_qty(SYM) == -3 and len(s.broker.working_orders()) == 8
                     and all(o.server_order_id for o in s.broker.working_orders()), 5, "broker picture")


def fallback_statements(journal) -> list[tuple[str, list]]:
    out = []
    for line in journal.fallback_path.read_text().splitlines():
        if line.strip():
            out += [(sql, params) for sql, params in json.loads(line)["statements"]]
    return out


async def _kill_with_a_full_disk(rig, fallback_writable: bool) -> None:
    s, j = rig.s, rig.journal
    await short_three_and_eight_working(rig)
    first = len(rig.venue.samples)
    if not fallback_writable:
        j.fallback_path.mkdir()  # the fallback file cannot be created either (same full disk)
    real = j._db
    j._db = FullDisk(real)
    statuses = []
    s.kill.add_listener(lambda state, result: statuses.append(s.kill.status))
    task = s.kill.trigger("manual")  # must not raise
    res = await asyncio.wait_for(task, 15)
    # the venue: every order cancelled, flat, one flatten, never flipped
    assert res.state == KillState.VERIFIED_FLAT, res.describe()
    assert rig.venue.open_orders() == [] and rig.venue.qty == 0
    assert len(flatten_orders_at_venue(rig)) == 1 and rig.venue.never_flipped(first - 1)
    # shown: the state says JOURNAL FAILED, with the reason
    assert "ENGAGED, JOURNAL FAILED" in statuses
    assert s.kill.status == "VERIFIED FLAT, JOURNAL FAILED"
    assert "database or disk is full" in res.journal_error and "JOURNAL FAILED" in res.describe()
    assert "JOURNAL FAILED" in s.snapshot().kill_detail and "database or disk is full" in s.problems[-1] + \
        " ".join(s.problems)
    flatten_cid = next(c for c, o in s.broker.orders.items() if o.request.role == ROLE_FLATTEN)
    if fallback_writable:
        stmts = fallback_statements(j)
        ks = [p[1] for sql, p in stmts if sql.startswith("INSERT INTO kill_switch")]
        assert ks[:1] == ["engaged"] and ks[-1] == "verified_flat"
        assert any(sql.startswith("INSERT INTO orders") and flatten_cid in p for sql, p in stmts)
        assert any(sql.startswith("INSERT INTO order_updates") and flatten_cid in p for sql, p in stmts)
        size = j.fallback_path.stat().st_size
    else:
        assert "fallback file" in res.journal_error and j.pending > 0  # kept in memory
    # the disk has room again: the next write puts every pending record into the journal, in order
    j._db = real
    if not fallback_writable:
        j.fallback_path.rmdir()
    j.record_event("disk_freed", {})
    assert j.failure == "" and j.pending == 0
    ks = [r["state"] for r in j.query("SELECT state FROM kill_switch ORDER BY id")]
    assert ks == ["engaged", "verified_flat"]
    assert j.query("SELECT role FROM orders WHERE client_order_id=?", (flatten_cid,))[0]["role"] == ROLE_FLATTEN
    assert j.last_order_states()[flatten_cid] == "filled"
    assert [r["kind"] for r in j.query("SELECT kind FROM events ORDER BY id")][-1] == "disk_freed"
    if fallback_writable:
        assert j.fallback_path.stat().st_size == size  # append-only: kept as it was, marked replayed
        j.record_event("again", {})
        assert [r["state"] for r in j.query("SELECT state FROM kill_switch ORDER BY id")] == ks  # not twice


@pytest.mark.parametrize("fallback_writable", [True, False], ids=["fallback_file", "fallback_unwritable"])
def test_journal_raising_on_every_write_kill_switch_still_flattens_dtc(es_sample, tmp_path, fallback_writable):
    async def go():
        rig = await DtcRig(es_sample, tmp_path).start()
        try:
            await _kill_with_a_full_disk(rig, fallback_writable)
        finally:
            await rig.stop()

    asyncio.run(go())


@pytest.mark.parametrize("fallback_writable", [True, False], ids=["fallback_file", "fallback_unwritable"])
def test_journal_raising_on_every_write_kill_switch_still_flattens_paper(es_sample, tmp_path, feeder_cls,
                                                                         fallback_writable):
    async def go():
        rig = await PaperRig(es_sample, tmp_path, feeder_cls=feeder_cls).start()
        try:
            await _kill_with_a_full_disk(rig, fallback_writable)
        finally:
            await rig.stop()

    asyncio.run(go())


def test_fallback_records_left_by_a_dead_process_are_replayed_at_the_next_open(tmp_path):
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    real = j._db
    j._db = FullDisk(real)
    j.record_kill_switch("engaged", "manual", {"cancel": ["A"]})
    assert j.failure and j.fallback_path.exists()
    j._db = real
    real.close()  # the process dies before the disk has room again (nothing replayed)
    j2 = Journal(path)
    assert j2.pending == 1
    j2.record_event("session_start", {})
    assert j2.pending == 0 and [r["state"] for r in j2.query("SELECT state FROM kill_switch")] == ["engaged"]
    j2.close()
    j3 = Journal(path)
    j3.record_event("session_start", {})
    assert len(j3.query("SELECT state FROM kill_switch")) == 1  # replayed once only
    j3.close()


def test_window_shows_journal_failed_and_retry_joins_the_run(qapp, qtbot, es_sample, tmp_path, feeder_cls):
    """The window: the kill switch button with the journal failing shows "ENGAGED, JOURNAL FAILED" and
    the reason; the Retry signal during a run joins it (one run, one flatten at the venue)."""
    qasync = pytest.importorskip("qasync")
    from PySide6 import QtCore, QtWidgets

    from app.ui.trading_panel import TradingController, TradingPanel

    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    rig = PaperRig(es_sample, tmp_path, feeder_cls=feeder_cls)
    win = QtWidgets.QMainWindow()
    panel = TradingPanel()
    win.setCentralWidget(panel)
    ctl = TradingController(rig.s, panel)
    win.show()

    def run(coro, timeout=10.0):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    try:
        run(ctl.start())
        rig.feed.advance(4000)
        run(short_three_and_eight_working(rig))
        j = rig.journal
        real, j._db = j._db, FullDisk(j._db)
        shown = []
        rig.s.kill.add_listener(lambda state, result: shown.append(panel.kill_status.text()))
        qtbot.mouseClick(panel.kill_button, QtCore.Qt.LeftButton)
        task = rig.s.kill._task
        assert task is not None and rig.s.kill.busy
        panel.sigRetry.emit()  # what the Retry button emits
        assert ctl.retry() is task  # joins: no second run
        res = run(asyncio.shield(task))
        assert res.state == KillState.VERIFIED_FLAT, res.describe()
        assert any(t.startswith("ENGAGED, JOURNAL FAILED") and "database or disk is full" in t for t in shown), shown
        ctl.refresh()
        assert panel.kill_status.text().startswith("VERIFIED FLAT, JOURNAL FAILED")
        assert "database or disk is full" in panel.kill_status.text()
        assert "JOURNAL FAILED" in panel.kill_button.text()
        assert rig.venue.qty == 0 and rig.venue.open_orders() == [] and len(flatten_orders_at_venue(rig)) == 1
        j._db = real
    finally:
        run(ctl.shutdown())
        rig.journal.close()
        win.close()
        loop.close()
        asyncio.set_event_loop(None)


# ---------------------------------------------------------------------------------------- item 3
def test_restart_with_an_open_position_and_no_market_data_does_not_flatten(es_sample, tmp_path):
    """Restart with +2 at the server and no market data for 2 s (stale_kill_s = 5): nothing is sent.
    From the subscription on, the stale rule counts with the configured limit."""
    async def go():
        rig = await DtcRig(es_sample, tmp_path, stale_kill_s=5.0).start()
        bid, ask = rig.best()
        assert (await rig.s.confirm(OrderTicket(SYM, 1, 2, OrderType.MARKET, None, ask - 40, ask + 40,
                                                ref_price=ask))).allowed
        await wait_until(lambda: rig.venue.qty == 2 and len(rig.venue.open_orders()) == 2, 5, "position +2")
        await rig.s.stop()  # the app goes away; the orders and the position stay at the server
        rig.journal.close()
        received = rig.server.stats["orders_received"]
        # restart: a new session on the same journal, no market data subscribed
        clock = ManualClock()
        client = DTCClient("127.0.0.1", rig.server.port, trade_account="Sim1", heartbeat_s=30, request_timeout_s=30.0)
        broker = DtcBroker(client, [es_sample.instrument], "Sim1", own_client=True)
        j = Journal(tmp_path / "journal.sqlite3")
        s = TradingSession(broker, j, rig.settings, es_sample.instrument, clock=clock)
        s.monitor_interval_s = 0.02
        ticks = []
        tick = s._monitor_tick
        s._monitor_tick = lambda: (ticks.append(clock.time_ns()), tick())
        await s.start()
        assert s.reconcile_count == 1 and s.position_qty(SYM) == 2
        clock.advance(2.0)  # longer than 1 s without any market data
        await wait_until(lambda: len(ticks) >= 5, 5, "monitor ticks")  # the session's own monitor ran
        assert s.check_triggers() == ""
        assert s.kill.state == KillState.ARMED and not s.gate.locked
        assert rig.venue.qty == 2 and len(rig.venue.open_orders()) == 2
        assert rig.server.stats["orders_received"] == received  # nothing sent
        assert j.query("SELECT COUNT(*) FROM events WHERE kind='auto_trigger'")[0][0] == 0
        # the subscription starts the stale clock: the configured limit, then the trigger
        s.watch_market(SYM)
        clock.advance(5.0)
        assert s.check_triggers() == ""
        clock.advance(ns=1)
        assert s.check_triggers() == "stale_data"
        await wait_until(lambda: s.kill.state == KillState.VERIFIED_FLAT, 10, "verified flat")
        assert rig.venue.qty == 0 and rig.venue.open_orders() == [] and rig.venue.never_flipped()
        await s.stop()
        j.close()
        await rig.server.stop()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------- item 6
class DelayLink:
    """A TCP proxy on loopback that delays every chunk by ``up_s`` (client -> server) and ``down_s``
    (server -> client), keeping the order of the bytes; the delays can change while it runs."""

    def __init__(self):
        self.up_s = self.down_s = 0.0
        self.delayed_chunks = 0
        self._tasks: set[asyncio.Task] = set()
        self._writers: list = []

    async def __call__(self, target_port: int) -> int:
        self.target_port = target_port
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _accept(self, c_reader, c_writer):
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [c_writer, s_writer]
        self._spawn(self._pipe(c_reader, s_writer, "up"))
        self._spawn(self._pipe(s_reader, c_writer, "down"))

    async def _pipe(self, reader, writer, direction):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the link's latency, not a test waiting for time to pass
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        self._spawn(deliver())
        while True:
            try:
                data = await reader.read(1 << 16)
            except (ConnectionError, OSError):
                data = b""
            delay = self.up_s if direction == "up" else self.down_s
            self.delayed_chunks += delay > 0
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def close(self):
        self.server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.mark.parametrize("up_s,down_s", [(1.0, 1.0), (0.0, 2.5)], ids=["1s_each_way", "2.5s_server_to_client"])
def test_slow_link_kill_switch_verifies_flat(es_sample, tmp_path, up_s, down_s):
    """Every request and report crosses a link 2 s or 2.5 s round trip: VERIFIED FLAT (the run's
    reads may take what is left of kill_verify_timeout_s = 10 s, not 2 s each)."""
    async def go():
        link = DelayLink()
        rig = await DtcRig(es_sample, tmp_path, kill_verify_timeout_s=10.0).start(via=link)
        try:
            await short_three_and_eight_working(rig)
            first = len(rig.venue.samples)
            link.up_s, link.down_s = up_s, down_s
            res = await asyncio.wait_for(rig.s.kill.engage("manual"), 30)
            assert res.state == KillState.VERIFIED_FLAT, res.describe()
            assert link.delayed_chunks >= 4  # cancels, reads and reports all crossed the slow link
            assert rig.venue.open_orders() == [] and rig.venue.qty == 0
            assert len(flatten_orders_at_venue(rig)) == 1 and rig.venue.never_flipped(first - 1)
            link.up_s = link.down_s = 0.0
        finally:
            await rig.stop()
            await link.close()

    asyncio.run(go())


def test_kill_switch_failed_says_no_answer_when_the_link_stalls(es_sample, tmp_path):
    async def go():
        link = DelayLink()
        rig = await DtcRig(es_sample, tmp_path, kill_verify_timeout_s=1.0).start(via=link)
        try:
            await short_three_and_eight_working(rig)
            link.down_s = 60.0  # nothing comes back within the run
            res = await asyncio.wait_for(rig.s.kill.engage("manual"), 30)
            assert res.state == KillState.FAILED and res.failure == "no_answer"
            assert res.describe().startswith("FAILED - no complete answer from the venue within 1 s")
            assert "OPEN_ORDERS_REQUEST" in res.describe() or "CURRENT_POSITIONS_REQUEST" in res.describe()
        finally:
            await link.close()
            await rig.stop()

    asyncio.run(go())


def test_kill_switch_failed_says_still_open_with_what_the_venue_reports(es_sample, tmp_path, feeder_cls):
    class DeafPaper(PaperBroker):
        async def cancel(self, client_order_id):  # the venue never cancels
            pass

    async def go():
        rig = PaperRig(es_sample, tmp_path, feeder_cls=feeder_cls, kill_verify_timeout_s=0.3)
        rig.broker.__class__ = DeafPaper
        await rig.start()
        await short_three_and_eight_working(rig)
        res = await rig.s.kill.engage("manual")
        assert res.state == KillState.FAILED and res.failure == "still_open"
        assert len(res.open_orders) == 8 and res.open_positions == (f"{SYM} -3",)
        assert res.describe().startswith("FAILED - still open at the venue: working orders: ")
        # no flatten while the venue still works orders that could fill against it: no flip
        assert flatten_orders_at_venue(rig) == [] and rig.venue.qty == -3
        await rig.stop()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------- kill -9 loop
CHILD = Path(__file__).with_name("faults_child.py")
TRIALS = 10


class SubmitLog:
    """Counts every SUBMIT the server receives, by ClientOrderID (the venue's view of "sent twice")."""

    def __init__(self, server):
        self.counts: Counter = Counter()
        h = server._handlers
        single, oco = h[int(M.MessageType.SUBMIT_NEW_SINGLE_ORDER)], h[int(M.MessageType.SUBMIT_NEW_OCO_ORDER)]

        def on_single(c, m):
            self.counts[m.ClientOrderID] += 1
            single(c, m)

        def on_oco(c, m):
            self.counts[m.ClientOrderID_1] += 1
            self.counts[m.ClientOrderID_2] += 1
            oco(c, m)

        h[int(M.MessageType.SUBMIT_NEW_SINGLE_ORDER)] = on_single
        h[int(M.MessageType.SUBMIT_NEW_OCO_ORDER)] = on_oco


async def _trial(server, venue, submits, journal_path, repo_root, rnd: random.Random, ev, i: int, trial: int):
    """One child, killed with SIGKILL at a random point; returns (next event index, what the child said)."""
    seed = rnd.randrange(1 << 30)
    kill_at = rnd.choice([None, rnd.randint(1, 8)])  # after that many SENT lines: KILL (None: no kill)
    freeze = kill_at is not None and rnd.random() < 0.6  # also stop the market: the stale trigger fires too
    crash_after = rnd.randint(1, 6)  # lines after the kill request (without a kill: SENT lines - 2)
    crash_delay = rnd.uniform(0.0, 0.03)  # s after that line: lands anywhere in the run
    where = f"trial {trial} (seed {seed}, kill_at {kill_at}, freeze {freeze}, crash_after {crash_after})"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(server.port), str(journal_path), str(seed), cwd=str(repo_root),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 40
    sent = 0
    after_kill = None
    frozen = False
    try:
        while True:
            assert loop.time() < end, f"{where}: child too slow: {lines[-5:]}"
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 0.05)
            except asyncio.TimeoutError:
                line = None
            if line == b"":
                err = await proc.stderr.read()
                raise AssertionError(f"{where}: child ended early: {lines[-10:]} {err.decode()[-3000:]}")
            if line:
                text = line.decode().strip()
                lines.append(text)
                if text.startswith("SENT"):
                    sent += 1
                    if kill_at is not None and sent == kill_at and after_kill is None:
                        frozen = freeze
                        proc.stdin.write(b"KILL\n")
                        await proc.stdin.drain()
                        after_kill = 0
                elif after_kill is not None:
                    after_kill += 1
                done = after_kill is not None and (after_kill >= crash_after or text.split()[0] in
                                                   ("KILL_DONE", "REFUSED"))  # the child waits from there on
                done |= kill_at is None and sent >= crash_after + 2
                if done:
                    await asyncio.sleep(crash_delay)  # a random point: mid-run, mid-write, between messages
                    break
            if not frozen and i + 50 < len(ev):  # the market moves while the child trades
                server.publish(SYM, ev[i:i + 50])
                i += 50
        os.kill(proc.pid, signal.SIGKILL)
        rc = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert rc == -signal.SIGKILL, where
    return i, lines, where


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_minus_9_loop_journal_intact_nothing_lost_nothing_twice_restart_verifies_flat(es_sample, tmp_path,
                                                                                           repo_root):
    """>= 10 trials on one server and one journal: a trading child (which may be running its kill switch,
    with the stale-data trigger racing the manual one) is killed with SIGKILL at a random point; then the
    journal passes integrity_check, every order the child reported sent (or the venue holds) is
    journaled, no ClientOrderID reached the venue twice, and a restarted session's kill switch verifies
    flat against the server without the position ever going short (the child only buys)."""
    rnd = random.Random(20261201)
    journal_path = tmp_path / "journal.sqlite3"
    ev = es_sample.events

    async def go():
        server = DTCServer(es_sample, port=0, paused=True, loop_replay=False)
        await server.start()
        venue = Venue(server.engine)
        submits = SubmitLog(server)
        server.publish(SYM, ev[:3000])
        i = 3000
        settings = TradingSettings(mode="sim", account="Sim1", kill_verify_timeout_s=10.0, stale_kill_s=3600.0,
                                   **{k: v for k, v in LIMITS.items()})
        sessions = set()
        try:
            for trial in range(TRIALS):
                flats_before = len([o for o in server.engine.orders.values()
                                    if o.client_order_id and o.order_type == OrderType.MARKET and o.side == -1])
                i, lines, where = await _trial(server, venue, submits, journal_path, repo_root, rnd, ev, i, trial)
                # 1. the journal file is intact
                con = sqlite3.connect(str(journal_path))
                try:
                    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", where
                    journaled = {r[0] for r in con.execute("SELECT client_order_id FROM orders")}
                    cancels = [r[0] for r in con.execute("SELECT detail FROM events WHERE kind='cancel_request'")]
                finally:
                    con.close()
                # 2. nothing acknowledged is missing: every order the child reported sent, every order the
                #    venue holds, every cancel the child reported
                reported = {c for x in lines if x.startswith("SENT") for c in x.split()[2:]}
                assert reported <= journaled, (where, reported - journaled)
                at_venue = {o.client_order_id for o in server.engine.orders.values() if o.client_order_id}
                assert at_venue <= journaled, (where, at_venue - journaled)
                for x in lines:
                    if x.startswith("CANCEL"):
                        assert any(x.split()[1] in d for d in cancels), (where, x)
                # 3. no order reached the venue twice
                twice = {c: n for c, n in submits.counts.items() if n > 1}
                assert not twice, (where, twice)
                # 4. restart: the kill switch verifies flat against the server
                client = DTCClient("127.0.0.1", server.port, trade_account="Sim1", heartbeat_s=30,
                                   request_timeout_s=10.0)
                broker = DtcBroker(client, [es_sample.instrument], "Sim1", own_client=True)
                j = Journal(journal_path)
                s = TradingSession(broker, j, settings, es_sample.instrument)
                await s.start()
                assert j.session not in sessions
                sessions.add(j.session)
                res = await asyncio.wait_for(s.kill.engage("manual"), 30)
                assert res.state == KillState.VERIFIED_FLAT, (where, res.describe())
                assert server.engine.open_orders() == [] and venue.qty == 0, where
                assert all(q >= 0 for q in venue.samples), (where, "the position went short", venue.samples[-20:])
                flats = [o for o in server.engine.orders.values()
                         if o.client_order_id and o.order_type == OrderType.MARKET and o.side == -1]
                assert len(flats) - flats_before <= 2, (where, "more than one flatten per kill run")
                assert s.kill.unlock("UNLOCK"), where  # the next child starts unlocked
                await s.stop()
                j.close()
                assert not any(n > 1 for n in submits.counts.values()), where
        finally:
            await server.stop()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------- report grouping
def test_grouped_reports_commit_together_in_call_order_and_survive_a_failing_block(tmp_path):
    """Journal.grouped_reports (the kill switch's acknowledgements): the venue's reports commit with the
    next record, in call order; a block that raises undoes only its own rows; alone they commit soon."""
    from app.core.orders import OrderEvent, OrderStatus

    path = tmp_path / "journal.sqlite3"

    def committed(sql):  # what another process would read
        con = sqlite3.connect(str(path))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    async def go():
        j = Journal(path)
        with j.grouped_reports():
            for k in range(3):
                j.record_order_event(OrderEvent(f"C{k}", f"S{k}", OrderStatus.CANCELED))
            assert committed("SELECT COUNT(*) FROM order_updates") == [(0,)]  # not yet
            with pytest.raises(RuntimeError):
                with j.transaction():
                    j.record_event("doomed", {})
                    raise RuntimeError("the block fails")
            assert committed("SELECT COUNT(*) FROM order_updates") == [(3,)]  # the reports survived it
            assert committed("SELECT COUNT(*) FROM events WHERE kind='doomed'") == [(0,)]
            j.record_order_event(OrderEvent("C3", "S3", OrderStatus.CANCELED))
            with j.transaction():
                j.record_event("flatten", {})
            assert committed("SELECT COUNT(*) FROM order_updates") == [(4,)]  # committed with the block
            assert ("flatten",) in committed("SELECT kind FROM events")
            j.record_order_event(OrderEvent("C4", "S4", OrderStatus.CANCELED))
            await wait_until(lambda: committed("SELECT COUNT(*) FROM order_updates") == [(5,)], 5, "group commit")
        j.close()

    asyncio.run(go())
