"""DTC broker against the built-in server on the real ES sample: bracket, kill switch, reconnect."""

from __future__ import annotations

import asyncio

import numpy as np

from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.core.events import KIND_TRADE
from app.config.trading import TradingSettings
from app.trading.dtc_broker import DtcBroker
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.core.orders import OrderStatus, OrderType
from app.trading.orders import OrderRequest, OrderTicket
from app.trading.session import TradingSession


async def wait_until(pred, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


class Rig:
    """Server (driven by publish, no clock) + client + DTC broker + session."""

    backoff_s = 0.05

    def __init__(self, rec, **settings):
        self.rec, self.sym = rec, rec.instrument.symbol
        self.ev = rec.events
        self.i = 0
        self.settings = TradingSettings(mode="sim", account="Sim1", **settings)

    async def start(self, journal_path=None):
        self.server = DTCServer(self.rec, port=0, paused=True, loop_replay=False)
        await self.server.start()
        await self.connect(journal_path)
        return self

    async def connect(self, journal_path=None):
        self.client = DTCClient("127.0.0.1", self.server.port, trade_account="Sim1", heartbeat_s=5,
                                backoff_initial_s=self.backoff_s, backoff_max_s=self.backoff_s * 2,
                                request_timeout_s=3.0)
        self.broker = DtcBroker(self.client, [self.rec.instrument], "Sim1", own_client=True)
        self.s = TradingSession(self.broker, Journal(journal_path), self.settings, self.rec.instrument)
        await self.s.start()
        self.received = 0

        def on_events(batch):
            self.received += len(batch)
            self.s.on_market(self.sym, batch)

        await self.client.subscribe_market(self.sym, on_events=on_events, tick_size=self.rec.instrument.tick_size)

    async def publish(self, n, chunk=200):
        end = min(len(self.ev), self.i + n)
        while self.i < end:
            j = min(end, self.i + chunk)
            self.server.publish(self.sym, self.ev[self.i:j])
            self.i = j
            await asyncio.sleep(0)
        # let the client read what was sent (bounded)
        target = self.server.stats["events_replayed"]
        await asyncio.sleep(0.01)
        return target

    async def publish_until(self, pred, limit=None, chunk=100):
        stop = len(self.ev) if limit is None else min(len(self.ev), self.i + limit)
        while self.i < stop and not pred():
            await self.publish(chunk, chunk)
        return pred()

    def best(self):
        b = self.server.engine.books[self.sym]
        return b.best_bid(), b.best_ask()

    async def stop(self):
        await self.s.stop()
        await self.server.stop()


def target_first(events, start, entry, stop_off, target_off):
    tr = events[start:][events[start:]["kind"] == KIND_TRADE]["price"]
    through = np.flatnonzero(tr > entry + target_off)
    stopped = np.flatnonzero(tr <= entry - stop_off)
    return len(through) and (not len(stopped) or through[0] < stopped[0])


def test_dtc_bracket_target_fills_stop_cancelled_flat_journal_pnl(es_sample):
    async def go():
        r = await Rig(es_sample, stale_data_ms=60_000).start()
        await r.publish(3000)
        while not target_first(r.ev, r.i, r.best()[1], 8, 4):
            await r.publish(1000)
            assert r.i < len(r.ev) - 5000
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_ask is not None)
        ask = r.best()[1]
        t = OrderTicket(r.sym, 1, 1, OrderType.MARKET, None, ask - 8, ask + 4, ref_price=ask, source="signal")
        d = await r.s.confirm(t)
        assert d.allowed, d.message
        b = r.broker
        cids = sorted(b.orders, key=lambda c: int(c.rsplit("-", 1)[1]))
        entry, stop, target = (b.orders[c] for c in cids)
        await wait_until(lambda: entry.state == OrderStatus.FILLED and stop.state == OrderStatus.OPEN
                         and target.state == OrderStatus.OPEN)
        assert entry.server_order_id and stop.server_order_id and target.server_order_id
        # the server holds the same bracket: parent + OCO children linked to it
        so = {o.client_order_id: o for o in r.server.engine.orders.values()}
        assert so[stop.client_order_id].parent_id == so[entry.client_order_id].server_order_id
        assert so[stop.client_order_id].oco_id == so[target.client_order_id].server_order_id
        await wait_until(lambda: b.position_qty(r.sym) == 1)
        assert await r.publish_until(lambda: not b.working_orders())
        await wait_until(lambda: b.position_qty(r.sym) == 0)
        assert target.state == OrderStatus.FILLED and stop.state == OrderStatus.CANCELED
        assert await b.query_positions() == [] and await b.query_open_orders() == []
        rows = r.s.journal.query("SELECT * FROM fills ORDER BY id")
        assert [x["client_order_id"] for x in rows] == [entry.client_order_id, target.client_order_id]
        assert rows[0]["price"] == ask and rows[1]["price"] == ask + 4
        assert rows[1]["realized_usd"] == 4 * 12.5 == r.s.pnl.realized_usd  # gross, per fill
        comm = r.settings.commission_for(r.sym)
        assert [x["commission_usd"] for x in rows] == [comm, comm]  # net: settings' commission on DTC fills too
        assert r.s.pnl.net_realized_usd == 50.0 - 2 * comm
        assert abs(r.server.engine.realized_pnl() - r.s.pnl.realized_usd) < 1e-9  # this server charges none
        snap = r.s.snapshot()
        assert snap.position_qty == 0 and snap.realized_pnl_usd == 50.0 - 2 * comm and snap.trades_today == 1
        await r.stop()

    asyncio.run(go())


def test_dtc_kill_switch_two_brackets_and_a_position_ends_verified_flat(es_sample):
    async def go():
        r = await Rig(es_sample, max_position_contracts=6).start()
        await r.publish(4000)
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_bid is not None)
        bid, ask = r.best()
        for t in (r.s.ticket_from_price(bid - 12, +1), r.s.ticket_from_price(ask + 12, -1),
                  OrderTicket(r.sym, 1, 2, OrderType.MARKET, None, ask - 16, ask + 40, ref_price=ask)):
            assert (await r.s.confirm(t)).allowed
        b = r.broker
        await wait_until(lambda: b.position_qty(r.sym) == 2 and all(o.server_order_id for o in b.orders.values()))
        await wait_until(lambda: len(b.working_orders()) == 8)
        assert len(r.server.engine.open_orders()) == 8
        b.wire_log = []
        res = await r.s.kill.engage("manual")
        assert res.state == KillState.VERIFIED_FLAT, res.describe()
        assert r.server.engine.open_orders() == [] and r.server.engine.position(r.sym).qty == 0
        assert [w[1] for w in b.wire_log][:1] == ["cancel"] and "submit" in [w[1] for w in b.wire_log]
        await wait_until(lambda: not b.working_orders() and b.position_qty(r.sym) == 0)
        d = await r.s.confirm(r.s.ticket_from_price(bid - 12, +1))
        assert not d.allowed and d.rule == "kill_switch_engaged"
        await r.stop()

    asyncio.run(go())


def test_dtc_connection_dropped_during_open_bracket_reconciles_without_duplicates(es_sample):
    async def go():
        r = await Rig(es_sample).start()
        await r.publish(4000)
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_ask is not None)
        bid, ask = r.best()
        assert (await r.s.confirm(OrderTicket(r.sym, 1, 1, OrderType.MARKET, None, ask - 12, ask + 12, ref_price=ask))).allowed
        assert (await r.s.confirm(r.s.ticket_from_price(bid - 20, +1))).allowed
        b = r.broker
        await wait_until(lambda: b.position_qty(r.sym) == 1 and len(b.working_orders()) == 5)
        before_ids = {c: o.server_order_id for c, o in b.orders.items()}
        n_server_orders = len(r.server.engine.orders)
        received = r.server.stats["orders_received"]
        assert r.s.reconcile_count == 1
        r.client.drop_connection_for_test()
        await wait_until(lambda: not r.client.connected, 2.0)
        await wait_until(lambda: r.client.connected and r.s.reconcile_count == 2, 5.0)
        # no order was sent again, nothing new at the server, the same orders are working
        assert r.server.stats["orders_received"] == received
        assert len(r.server.engine.orders) == n_server_orders
        assert {c: o.server_order_id for c, o in b.orders.items()} == before_ids
        assert len(b.working_orders()) == 5 and b.position_qty(r.sym) == 1
        ev = r.s.journal.query("SELECT kind FROM events ORDER BY id")
        kinds = [e[0] for e in ev]
        assert kinds.count("reconciled") == 2 and "disconnected" in kinds
        # the bracket still works after the reconnect: one child fills, the other is cancelled
        assert await r.publish_until(lambda: b.position_qty(r.sym) == 0)
        await wait_until(lambda: sum(o.state == OrderStatus.FILLED for o in b.orders.values()) == 2)
        states = sorted(o.state.value for o in b.orders.values())
        assert states.count("canceled") == 1 and states.count("filled") == 2
        await r.stop()

    asyncio.run(go())


def test_connection_lost_with_a_position_fires_the_kill_switch_which_finishes_after_reconnect(es_sample):
    async def go():
        rig = Rig(es_sample, disconnect_kill_s=0.1, kill_verify_timeout_s=0.3)
        rig.backoff_s = 1.5  # stay disconnected long enough for the trigger
        r = await rig.start()
        await r.publish(4000)
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_ask is not None)
        bid, ask = r.best()
        assert (await r.s.confirm(OrderTicket(r.sym, 1, 1, OrderType.MARKET, None, ask - 20, ask + 20, ref_price=ask))).allowed
        b = r.broker
        await wait_until(lambda: b.position_qty(r.sym) == 1 and len(b.working_orders()) == 2)
        r.client.drop_connection_for_test()
        await wait_until(lambda: r.s.kill.state == KillState.FAILED, 3.0)
        assert r.s.kill.trigger_name == "connection_lost" and r.s.gate.locked
        assert "cannot read the venue's reports" in r.s.kill.last_result.describe()
        assert r.server.engine.position(r.sym).qty == 1  # nothing could be done while disconnected
        # back online: reconciliation, then the switch finishes its job by itself
        await wait_until(lambda: r.s.kill.state == KillState.VERIFIED_FLAT, 8.0)
        assert r.s.kill.trigger_name == "retry_after_reconnect"
        assert r.server.engine.position(r.sym).qty == 0 and r.server.engine.open_orders() == []
        await r.stop()

    asyncio.run(go())


def test_malformed_or_unknown_order_updates_are_counted_and_change_nothing(es_sample):
    from app.dtc import messages as M

    async def go():
        r = await Rig(es_sample).start()
        await r.publish(3000)
        bid, _ = r.best()
        assert (await r.s.confirm(r.s.ticket_from_price(bid - 10, +1))).allowed
        b = r.broker
        await wait_until(lambda: len(b.working_orders()) == 3 and all(o.server_order_id for o in b.orders.values()))
        entry = next(o for o in b.orders.values() if o.request.role == "entry")
        before = b.decode_skipped
        b._on_order_update(M.OrderUpdate(ClientOrderID=entry.client_order_id, ServerOrderID=entry.server_order_id,
                                         OrderStatus=99, OrderUpdateReason=3, TradeAccount="Sim1"))
        assert entry.state == OrderStatus.OPEN and b.decode_skipped == before + 1
        # a cancel rejection for an unknown ServerOrderID does not turn our order into REJECTED
        b._on_order_update(M.OrderUpdate(ClientOrderID=entry.client_order_id, OrderStatus=9,
                                         OrderUpdateReason=int(M.OrderUpdateReason.ORDER_CANCEL_REJECTED),
                                         TradeAccount="Sim1", InfoText="unknown ServerOrderID"))
        assert entry.state == OrderStatus.OPEN
        # another account's update is ignored
        b._on_order_update(M.OrderUpdate(ClientOrderID=entry.client_order_id, ServerOrderID=entry.server_order_id,
                                         OrderStatus=8, OrderUpdateReason=6, TradeAccount="Sim9"))
        assert entry.state == OrderStatus.OPEN
        await r.stop()

    asyncio.run(go())


def test_stop_limit_stays_a_stop_limit_through_the_dtc_broker_and_the_server(es_sample, tmp_path):
    """OrderType 4 on the wire both ways: the server's engine holds a stop-limit with its Price2,
    and the broker reads the ORDER_UPDATEs back as a stop-limit (it used to read them as a stop)."""
    async def go():
        r = Rig(es_sample)
        r.server = DTCServer(r.rec, port=0, paused=True, loop_replay=False)
        await r.server.start()
        client = DTCClient("127.0.0.1", r.server.port, trade_account="Sim1", heartbeat_s=5, request_timeout_s=3.0)
        b = DtcBroker(client, [r.rec.instrument], "Sim1", own_client=True)
        seen = []

        class Listener:
            on_order = staticmethod(seen.append)

        b.add_listener(Listener)
        await b.start()
        r.server.publish(r.sym, r.ev[:3000])
        bid = r.best()[0]
        req = OrderRequest("SL1", r.sym, "Sim1", -1, OrderType.STOP_LIMIT, 1, bid - 20, price2=bid - 22)
        j = Journal(tmp_path / "journal.sqlite3")
        j.record_orders([req], "sim", b.name)
        await b.submit_order(req)
        await wait_until(lambda: b.orders["SL1"].state == OrderStatus.OPEN)
        (so,) = r.server.engine.open_orders()
        assert so.order_type == OrderType.STOP_LIMIT and (so.price, so.price2) == (bid - 20, bid - 22)
        ev = [e for e in seen if e.client_order_id == "SL1"][-1]
        assert ev.order_type == OrderType.STOP_LIMIT and (ev.price, ev.price2) == (bid - 20, bid - 22)
        j.record_order_event(ev)
        (open_ev,) = await b.query_open_orders()
        assert open_ev.order_type == OrderType.STOP_LIMIT and open_ev.price2 == bid - 22
        row = j.query("SELECT order_type, price, price2 FROM orders WHERE client_order_id='SL1'")[0]
        assert (row["order_type"], row["price"], row["price2"]) == ("stop_limit", bid - 20, bid - 22)
        assert j.last_order_states()["SL1"] == "open"
        j.close()
        await b.stop()
        await r.server.stop()

    asyncio.run(go())
