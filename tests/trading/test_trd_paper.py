"""Paper broker on the real ES sample: bracket OCO, P&L in the journal, kill switch, journal-first."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np

from app.analysis.frame import PatternHit, Signal
from app.core.events import KIND_TRADE
from app.config.trading import TradingSettings
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.core.orders import OrderSpec, OrderStatus, OrderType, Side
from app.trading.orders import OrderRequest, OrderTicket
from app.trading.paper import PaperBroker
from app.trading.session import TradingSession


async def wait_until(pred, timeout):
    """Poll ``pred`` every 10 ms up to ``timeout`` s (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


def make_session(rec, broker_cls=PaperBroker, journal_path=None, **kw):
    s = TradingSettings(**kw)
    b = broker_cls([rec.instrument], s.commission_per_contract_usd, s.slippage_ticks)
    return TradingSession(b, Journal(journal_path), s, rec.instrument)


def find_target_first(events, start, entry, stop_off, target_off, side=1):
    """Index (in the trades after ``start``) of the first trade through the target, or None if
    a trade at/through the stop comes first. Independent of the fill engine."""
    tr = events[start:][events[start:]["kind"] == KIND_TRADE]["price"]
    target, stop = entry + side * target_off, entry - side * stop_off
    through = np.flatnonzero((tr - target) * side > 0)
    stopped = np.flatnonzero((tr - stop) * side <= 0)
    if not len(through):
        return None
    if len(stopped) and stopped[0] < through[0]:
        return None
    return int(through[0])


def test_signal_bracket_target_fills_stop_cancelled_journal_has_pnl(es_sample, feeder_cls):
    ev = es_sample.events

    async def go():
        s = make_session(es_sample, stale_data_ms=60_000)
        await s.start()
        f = feeder_cls(s, es_sample, chunk=50)
        # find a start where a long bracket (stop 8, target 4 ticks) reaches its target first
        start = 3000
        while True:
            f.advance(start - f.i)
            ask = s.market["ESH4"].best_ask
            if find_target_first(ev, f.i, ask, 8, 4) is not None:
                break
            start += 1000
            assert start < len(ev) - 5000, "no target-first episode in the sample"
        ask = s.market["ESH4"].best_ask
        hit = PatternHit("wall", "dom", 0, ask - 2, 1, 0.9, "bid wall 420 lots", (("size", 420.0),))
        sig = Signal(7, int(ev["ts"][f.i - 1]), "ESH4", 1, 0.82, (("vix", 0.7), ("dom", 0.9), ("regime", 0.8)),
                     (hit,), ask, ask - 8, ask + 4, 1, "normal")
        s.record_signal(sig, {"imbalance": 0.31})
        t = s.ticket_from_signal(sig).with_(order_type=OrderType.MARKET, entry=None)
        assert t.side == 1 and t.qty == 1 and t.stop == ask - 8 and t.target == ask + 4
        d = await s.confirm(t)
        assert d.allowed, d.message
        b = s.broker
        entry, stop, target = (b.orders[c] for c in sorted(b.orders, key=lambda c: int(c.rsplit("-", 1)[1])))
        assert entry.state == OrderStatus.FILLED and entry.avg_fill_price == ask
        assert stop.state == OrderStatus.OPEN and target.state == OrderStatus.OPEN  # children active after the fill
        assert s.snapshot().position_qty == 1
        assert f.until(lambda: not b.working_orders(), limit=len(ev))
        assert target.state == OrderStatus.FILLED and stop.state == OrderStatus.CANCELED
        assert s.snapshot().position_qty == 0 and b.position_qty("ESH4") == 0
        rows = s.journal.query("SELECT * FROM fills ORDER BY id")
        assert [r["client_order_id"] for r in rows] == [entry.client_order_id, target.client_order_id]
        gross = (rows[1]["price"] - rows[0]["price"]) * 12.5
        assert rows[1]["price"] == ask + 4 and rows[1]["realized_usd"] == gross == 50.0
        comm = sum(r["commission_usd"] for r in rows)
        assert abs(s.pnl.net_realized_usd - (gross - comm)) < 1e-9
        assert abs(b.engine.realized_pnl() - (gross - comm)) < 1e-9  # same number as the fill engine
        # the journal tells the whole story
        assert s.journal.query("SELECT COUNT(*) FROM signals")[0][0] == 1
        assert s.journal.query("SELECT status FROM tickets")[0][0] == "confirmed"
        assert s.journal.query("SELECT allowed FROM gate_decisions")[0][0] == 1
        states = {r["client_order_id"]: r["state"] for r in s.journal.query(
            "SELECT * FROM order_updates WHERE id IN (SELECT MAX(id) FROM order_updates GROUP BY client_order_id)")}
        assert states == {entry.client_order_id: "filled", target.client_order_id: "filled",
                          stop.client_order_id: "canceled"}
        await s.stop()

    asyncio.run(go())


class SpyBroker(PaperBroker):
    """Checks, through a separate SQLite connection, that every order is committed before it is sent."""

    journal_path = None
    seen = []

    def _committed(self, cids):
        con = sqlite3.connect(str(self.journal_path))
        try:
            got = {r[0] for r in con.execute("SELECT client_order_id FROM orders")}
        finally:
            con.close()
        missing = set(cids) - got
        assert not missing, f"sent before journaled: {missing}"
        self.seen.extend(cids)

    async def submit_bracket(self, bracket):
        self._committed([o.client_order_id for o in bracket.orders])
        await super().submit_bracket(bracket)

    async def submit_order(self, order):
        self._committed([order.client_order_id])
        await super().submit_order(order)


def test_orders_are_committed_before_they_are_sent_and_kill_switch_verifies_flat(es_sample, feeder_cls):
    async def go():
        s = make_session(es_sample, broker_cls=SpyBroker, max_position_contracts=6)
        SpyBroker.journal_path = s.journal.path
        SpyBroker.seen = []
        await s.start()
        f = feeder_cls(s, es_sample)
        f.advance(4000)
        m = s.market["ESH4"]
        # two working brackets away from the market and one open position with its children
        t1 = s.ticket_from_price(m.best_bid - 12, +1)
        t2 = s.ticket_from_price(m.best_ask + 12, -1)
        t3 = OrderTicket("ESH4", 1, 2, OrderType.MARKET, None, m.best_ask - 16, m.best_ask + 40,
                         ref_price=m.best_ask, tick_value=12.5)
        for t in (t1, t2, t3):
            d = await s.confirm(t)
            assert d.allowed, d.message
        f.advance(200)
        b = s.broker
        assert b.position_qty("ESH4") == 2
        assert len(b.working_orders()) == 8  # 2 entries + 2x2 pending children + 2 active children of t3
        assert len(SpyBroker.seen) == 9
        res = await s.kill.engage("manual")
        assert res.state == KillState.VERIFIED_FLAT, res.describe()
        assert s.kill.state == KillState.VERIFIED_FLAT
        assert b.engine.open_orders() == [] and b.engine.position("ESH4").qty == 0
        assert len(SpyBroker.seen) == 10  # the flatten order was journaled first too
        assert res.cancels_sent >= 4 and res.flattens_sent == 1
        ks = [r["state"] for r in s.journal.query("SELECT state FROM kill_switch ORDER BY id")]
        assert ks == ["engaged", "verified_flat"]
        flat_dec = s.journal.query("SELECT intent, allowed FROM gate_decisions ORDER BY id DESC LIMIT 1")[0]
        assert flat_dec["intent"] == "reduce" and flat_dec["allowed"] == 1
        # locked: an opening ticket is refused until the typed unlock
        d = await s.confirm(s.ticket_from_price(m.best_bid - 12, +1))
        assert not d.allowed and d.rule == "kill_switch_engaged"
        assert not s.kill.unlock("unlock please")
        assert s.gate.locked
        assert s.kill.unlock("UNLOCK")
        assert not s.gate.locked and s.kill.state == KillState.ARMED
        d = await s.confirm(s.ticket_from_price(s.market["ESH4"].best_bid - 12, +1))
        assert d.allowed, d.message

    asyncio.run(go())


class DeafBroker(PaperBroker):
    """A venue that ignores cancels (to see the kill switch fail, report what is open, and retry)."""

    deaf = True

    async def cancel(self, client_order_id):
        if not self.deaf:
            await super().cancel(client_order_id)


def test_kill_switch_fails_with_what_is_open_then_retry_succeeds(es_sample, feeder_cls):
    async def go():
        s = make_session(es_sample, broker_cls=DeafBroker, kill_verify_timeout_s=0.3)
        await s.start()
        f = feeder_cls(s, es_sample)
        f.advance(4000)
        t = s.ticket_from_price(s.market["ESH4"].best_bid - 12, +1)
        assert (await s.confirm(t)).allowed
        res = await s.kill.engage("hotkey")
        assert res.state == KillState.FAILED
        assert len(res.open_orders) == 3 and "working orders" in res.describe()
        assert s.gate.locked and s.snapshot().kill_state == "failed"
        assert not s.kill.unlock("") and s.gate.locked
        s.broker.deaf = False
        res2 = await s.kill.retry()
        assert res2.state == KillState.VERIFIED_FLAT, res2.describe()
        assert [r[0] for r in s.journal.query("SELECT trigger FROM kill_switch ORDER BY id")] == \
            ["hotkey", "hotkey", "retry", "retry"]

    asyncio.run(go())


def test_automatic_triggers(es_sample, feeder_cls, tmp_path):
    async def go():
        # consecutive losses: rebuilt from journaled fills, and fires the switch
        s = make_session(es_sample, max_consecutive_losses=1, stale_data_ms=60_000)
        await s.start()
        f = feeder_cls(s, es_sample)
        f.advance(3000)
        ask = s.market["ESH4"].best_ask
        t = OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask)
        assert (await s.confirm(t)).allowed
        await s.flatten_position("ESH4", reason="test")  # sell at the bid: a loss after commissions
        for _ in range(100):
            if s.kill.state == KillState.VERIFIED_FLAT:
                break
            await asyncio.sleep(0.01)
        assert s.pnl.consecutive_losses == 1
        assert s.kill.state == KillState.VERIFIED_FLAT and s.kill.trigger_name == "consecutive_losses"
        # a restarted session on the same journal is still locked and knows the loss
        s2 = TradingSession(PaperBroker([es_sample.instrument]), Journal(s.journal.path), s.settings,
                            es_sample.instrument)
        await s2.start()
        assert s2.gate.locked and s2.pnl.consecutive_losses == 1 and s2.trades_today == 1
        assert abs(s2.pnl.net_realized_usd - s.pnl.net_realized_usd) < 1e-9

        # stale data with a position open: the session's monitor fires the switch by itself
        s3 = make_session(es_sample, journal_path=tmp_path / "j3.sqlite3", stale_kill_s=0.4)
        await s3.start()
        f3 = feeder_cls(s3, es_sample)
        f3.advance(3000)
        ask = s3.market["ESH4"].best_ask
        assert (await s3.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask))).allowed
        f3.advance(10)
        assert s3.check_triggers() == ""
        await wait_until(lambda: s3.kill.state == KillState.VERIFIED_FLAT, 3.0)
        assert s3.kill.trigger_name == "stale_data" and s3.broker.engine.position("ESH4").qty == 0

        # daily loss limit
        s4 = make_session(es_sample, journal_path=tmp_path / "j4.sqlite3", daily_loss_limit_usd=1.0,
                          max_consecutive_losses=5)
        await s4.start()
        f4 = feeder_cls(s4, es_sample)
        f4.advance(3000)
        ask = s4.market["ESH4"].best_ask
        assert (await s4.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask))).allowed
        # commission + spread already cost more than 1 USD
        await wait_until(lambda: s4.kill.state == KillState.VERIFIED_FLAT, 3.0)
        assert s4.kill.trigger_name == "daily_loss_limit"
        for x in (s, s2, s3, s4):
            await x.stop()

    asyncio.run(go())


def test_restart_with_a_lost_paper_position_adopts_the_venue_and_says_so(es_sample, feeder_cls, tmp_path):
    async def go():
        jp = tmp_path / "j.sqlite3"
        s = make_session(es_sample, journal_path=jp)
        await s.start()
        feeder_cls(s, es_sample).advance(3000)
        ask = s.market["ESH4"].best_ask
        assert (await s.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 8, ask + 8, ref_price=ask))).allowed
        assert s.pnl.position("ESH4").qty == 1
        # "crash": no stop(); a new process starts a fresh paper account on the same journal
        s2 = make_session(es_sample, journal_path=jp)
        await s2.start()
        assert s2.pnl.position("ESH4").qty == 0 and s2.trades_today == 1
        assert "paper account restarted flat" in s2.problems[-1]
        assert s2.journal.query("SELECT COUNT(*) FROM events WHERE kind='position_adopted'")[0][0] == 1
        await s2.stop()

    asyncio.run(go())


def test_new_trading_day_resets_the_daily_figures_and_keeps_the_position(es_sample, feeder_cls):
    async def go():
        s = make_session(es_sample, max_consecutive_losses=10)
        await s.start()
        feeder_cls(s, es_sample).advance(3000)
        ask = s.market["ESH4"].best_ask
        assert (await s.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 8, ask + 8, ref_price=ask))).allowed
        assert s.trades_today == 1 and s.pnl.commissions_usd > 0
        assert not s.roll_day()
        s.day = "2000-01-01"
        assert s.roll_day()
        assert s.trades_today == 0 and s.pnl.net_realized_usd == 0.0
        assert s.pnl.position("ESH4").qty == 1 and s.pnl.position("ESH4").avg_price == ask
        assert s.journal.query("SELECT COUNT(*) FROM events WHERE kind='new_day'")[0][0] == 1
        await s.stop()

    asyncio.run(go())


def test_stop_limit_stays_a_stop_limit_through_the_paper_broker_and_the_journal(es_sample, tmp_path):
    """A stop-limit is its own order type end to end (it used to come back as a plain stop)."""
    sym = es_sample.instrument.symbol

    async def go():
        b = PaperBroker([es_sample.instrument])
        seen = []

        class Listener:
            on_order = staticmethod(seen.append)

        b.add_listener(Listener)
        await b.start()
        b.on_market(sym, es_sample.events[:3000])
        bid = b.engine.books[sym].best_bid()
        req = OrderRequest("SL1", sym, "paper", -1, OrderType.STOP_LIMIT, 1, bid - 20, price2=bid - 22)
        j = Journal(tmp_path / "journal.sqlite3")
        j.record_orders([req], "paper", b.name)
        await b.submit_order(req)
        ev = seen[-1]
        assert ev.state == OrderStatus.OPEN
        assert ev.order_type == OrderType.STOP_LIMIT and ev.price == bid - 20 and ev.price2 == bid - 22
        engine_order = b.engine.order(ev.server_order_id)
        assert engine_order.order_type == OrderType.STOP_LIMIT and engine_order.price2 == bid - 22
        j.record_order_event(ev)
        (open_ev,) = await b.query_open_orders()
        assert open_ev.order_type == OrderType.STOP_LIMIT and open_ev.price2 == bid - 22
        row = j.query("SELECT order_type, price, price2 FROM orders WHERE client_order_id='SL1'")[0]
        assert (row["order_type"], row["price"], row["price2"]) == ("stop_limit", bid - 20, bid - 22)
        assert j.last_order_states()["SL1"] == "open"
        # an order the broker did not send (found at reconciliation) is tracked as what it is
        b.engine.submit(OrderSpec(sym, Side.SELL, 1, OrderType.STOP_LIMIT, bid - 30, bid - 31, "EXT1"))
        ext = b.orders["EXT1"].request
        assert (ext.order_type, ext.price, ext.price2) == (OrderType.STOP_LIMIT, bid - 30, bid - 31)
        j.close()
        await b.stop()

    asyncio.run(go())
