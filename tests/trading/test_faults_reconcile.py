"""Fault tests (issue 12 items 4 and 5): the reconcile race and order roles after a restart.

Against the built-in DTC server (``app.sim.server.DTCServer`` on loopback, driven by ``publish``
with the real ES sample, so "a trade prints" is a real recorded trade) with :class:`DtcBroker`,
and the paper broker where it applies. The venue's own state (the server's matching engine) is
checked beside the app's picture and its journal.
"""

from __future__ import annotations

import asyncio

from app.config.trading import TradingSettings
from app.core.events import KIND_TRADE
from app.core.orders import OrderStatus, OrderType, TimeInForce
from app.dtc import adapter
from app.dtc import messages as M
from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.trading.dtc_broker import DtcBroker
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.trading.orders import ROLE_ENTRY, ROLE_STOP, ROLE_TARGET, OrderTicket
from app.trading.paper import PaperBroker
from app.trading.session import TradingSession

FINAL = ("filled", "canceled", "rejected")


async def wait_until(pred, timeout=5.0):
    """Poll ``pred`` every 5 ms up to ``timeout`` s (bounded; no fixed sleep)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


class History:
    """Every order event a broker emits, per ClientOrderID, in order."""

    def __init__(self):
        self.states: dict[str, list[str]] = {}

    def on_order(self, ev):
        self.states.setdefault(ev.client_order_id, []).append(ev.state.value)

    def reverted(self) -> dict[str, list[str]]:
        """Orders reported working again after a final state."""
        out = {}
        for cid, seq in self.states.items():
            finals = [i for i, s in enumerate(seq) if s in FINAL]
            if finals and any(s not in FINAL for s in seq[finals[0]:]):
                out[cid] = seq
        return out


def journal_reverted(journal, cids) -> dict[str, list[str]]:
    """Journaled order updates that show an order working again after a final state."""
    out = {}
    for cid in cids:
        seq = [r["state"] for r in journal.query("SELECT state FROM order_updates WHERE client_order_id=? ORDER BY id",
                                                 (cid,))]
        finals = [i for i, s in enumerate(seq) if s in FINAL]
        if not finals or any(s not in FINAL for s in seq[finals[0]:]):
            out[cid] = seq
    return out


def fill_side(events, start, bid, ask):
    """A side (+1 buy at the bid, -1 sell at the ask) that later real trades trade through."""
    tr = events[start:start + 60_000]
    tr = tr[tr["kind"] == KIND_TRADE]["price"]
    if len(tr) and tr.min() < bid - 1:
        return 1, int(bid)
    assert len(tr) and tr.max() > ask + 1, "the sample never trades through either side"
    return -1, int(ask)


class Rig:
    """Built-in server (paused: the test prints the market) + DTC client + DtcBroker + TradingSession."""

    def __init__(self, rec, **settings):
        self.rec, self.sym, self.ev = rec, rec.instrument.symbol, rec.events
        self.i = 0
        self.settings = TradingSettings(mode="sim", account="Sim1", **settings)
        self.server = None

    async def start(self, journal_path=None):
        self.server = DTCServer(self.rec, port=0, paused=True, loop_replay=False)
        await self.server.start()
        await self.connect(journal_path)
        return self

    async def connect(self, journal_path=None):
        self.client = DTCClient("127.0.0.1", self.server.port, trade_account="Sim1", heartbeat_s=5,
                                backoff_initial_s=0.05, backoff_max_s=0.1, request_timeout_s=3.0)
        self.broker = DtcBroker(self.client, [self.rec.instrument], "Sim1", own_client=True)
        self.history = History()
        self.broker.add_listener(self.history)
        self.s = TradingSession(self.broker, Journal(journal_path), self.settings, self.rec.instrument)
        await self.s.start()
        await self.client.subscribe_market(self.sym, on_events=lambda b: self.s.on_market(self.sym, b),
                                           tick_size=self.rec.instrument.tick_size)

    async def publish(self, n, chunk=200):
        end = min(len(self.ev), self.i + n)
        while self.i < end:
            j = min(end, self.i + chunk)
            self.server.publish(self.sym, self.ev[self.i:j])
            self.i = j
            await asyncio.sleep(0)

    async def publish_until(self, pred, limit=200_000, chunk=100):
        stop = min(len(self.ev), self.i + limit)
        while self.i < stop and not pred():
            await self.publish(chunk, chunk)
        return pred()

    def best(self):
        b = self.server.engine.books[self.sym]
        return b.best_bid(), b.best_ask()

    async def restart_app(self, journal_path=None):
        """The app stops (orders stay at the venue) and starts again on the same server."""
        await self.s.stop()
        self.s.journal.close()
        await self.connect(journal_path)

    async def stop(self):
        await self.s.stop()
        self.s.journal.close()
        await self.server.stop()


def server_state(server, cid):
    return next(o.status for o in server.engine.orders.values() if o.client_order_id == cid)


# --------------------------------------------------------------------------------------------
# item 4: the reconcile race


def test_dtc_reconcile_race_fill_during_positions_request_never_shows_filled_orders_working(es_sample, tmp_path):
    """Five resting orders; reconcile asks for open orders (all five open), then, while its
    positions request is held, real trades print and fill all five. Afterwards none of them is
    shown working again, in memory or in the journal, and the kill switch cancels none of them."""

    async def go():
        r = await Rig(es_sample, require_stop=False, max_contracts_per_order=5, max_position_contracts=10,
                      stale_data_ms=60_000).start(tmp_path / "j.sqlite3")
        await r.publish(4000)
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_bid is not None)
        side, price = fill_side(r.ev, r.i, *r.best())
        for _ in range(5):
            t = OrderTicket(r.sym, side, 1, OrderType.LIMIT, price, ref_price=price)
            d = await r.s.confirm(t)
            assert d.allowed, d.message
        b = r.broker
        cids = sorted(b.orders)
        await wait_until(lambda: all(b.orders[c].state == OrderStatus.OPEN for c in cids))
        assert all(server_state(r.server, c) == OrderStatus.OPEN for c in cids)

        real_positions = b.query_positions
        asked = []

        async def positions_held(timeout=2.0):
            # the open-orders answer (five open orders) has arrived; the market trades through them
            asked.append(sum(b.orders[c].state == OrderStatus.OPEN for c in cids))
            assert await r.publish_until(lambda: all(server_state(r.server, c) == OrderStatus.FILLED for c in cids))
            await wait_until(lambda: all(b.orders[c].state == OrderStatus.FILLED for c in cids))
            return await real_positions(timeout)

        b.query_positions = positions_held
        await r.s.reconcile()
        b.query_positions = real_positions
        assert asked == [5]
        # the venue: all five filled, position 5
        assert all(server_state(r.server, c) == OrderStatus.FILLED for c in cids)
        assert r.server.engine.position(r.sym).qty == 5 * side
        # the app: filled, never working again (memory, events, journal)
        assert {c: b.orders[c].state for c in cids} == {c: OrderStatus.FILLED for c in cids}
        assert not [o for o in b.working_orders() if o.client_order_id in cids]
        assert r.history.reverted() == {}
        assert journal_reverted(r.s.journal, cids) == {}
        states = r.s.journal.last_order_states()
        assert [states[c] for c in cids] == ["filled"] * 5
        # the kill switch then cancels nothing that filled, and flattens the 5
        b.wire_log = []
        res = await r.s.kill.engage("manual")
        assert res.state == KillState.VERIFIED_FLAT, res.describe()
        assert not [w for w in b.wire_log if w[1] == "cancel" and w[2] in cids]
        assert r.server.engine.position(r.sym).qty == 0
        await r.stop()

    asyncio.run(go())


def test_paper_reconcile_race_fill_during_positions_request_never_shows_filled_orders_working(es_sample, feeder_cls,
                                                                                              tmp_path):
    """The same race on the paper broker: the market fills the orders between its open-orders
    list and its positions list; reconcile must not bring the earlier list back."""

    async def go():
        st = TradingSettings(require_stop=False, max_contracts_per_order=5, max_position_contracts=10,
                             stale_data_ms=60_000)
        b = PaperBroker([es_sample.instrument], st.commission_per_contract_usd, st.slippage_ticks)
        hist = History()
        b.add_listener(hist)
        s = TradingSession(b, Journal(tmp_path / "p.sqlite3"), st, es_sample.instrument)
        await s.start()
        f = feeder_cls(s, es_sample, chunk=100)
        f.advance(4000)
        book = b.engine.books[es_sample.instrument.symbol]
        side, price = fill_side(es_sample.events, f.i, book.best_bid(), book.best_ask())
        for _ in range(5):
            assert (await s.confirm(OrderTicket(es_sample.instrument.symbol, side, 1, OrderType.LIMIT, price,
                                                ref_price=price))).allowed
        cids = sorted(b.orders)
        assert all(b.orders[c].state == OrderStatus.OPEN for c in cids)
        real_positions = b.query_positions

        async def positions_held(timeout=2.0):
            assert f.until(lambda: all(o.status == OrderStatus.FILLED for o in b.engine.orders.values()),
                           limit=200_000)
            return await real_positions(timeout)

        b.query_positions = positions_held
        orders, positions = await b.reconcile()
        b.query_positions = real_positions
        assert len(orders) == 5  # the venue's list said open when it was taken
        assert [p.qty for p in positions] == [5 * side]
        assert {c: b.orders[c].state for c in cids} == {c: OrderStatus.FILLED for c in cids}
        assert hist.reverted() == {}
        assert journal_reverted(s.journal, cids) == {}
        await s.stop()
        s.journal.close()

    asyncio.run(go())


def test_dtc_order_sent_while_reconcile_is_in_flight_is_not_marked_unknown(es_sample, tmp_path):
    """An order confirmed after the open-orders answer (while the positions request is held) is
    not in that answer, and must not be called missing: it stays working, in memory and in the
    journal, as it is at the venue."""

    async def go():
        r = await Rig(es_sample, require_stop=False, max_position_contracts=10,
                      stale_data_ms=60_000).start(tmp_path / "j.sqlite3")
        await r.publish(4000)
        await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_bid is not None)
        b = r.broker
        real_positions = b.query_positions
        bid = r.best()[0]

        async def positions_held(timeout=2.0):
            assert (await r.s.confirm(OrderTicket(r.sym, 1, 1, OrderType.LIMIT, bid - 40, ref_price=bid))).allowed
            await wait_until(lambda: [o.state for o in b.orders.values()] == [OrderStatus.OPEN])
            return await real_positions(timeout)

        b.query_positions = positions_held
        await r.s.reconcile()
        b.query_positions = real_positions
        (cid,) = b.orders
        assert server_state(r.server, cid) == OrderStatus.OPEN
        assert b.orders[cid].state == OrderStatus.OPEN
        assert r.s.journal.last_order_states()[cid] == "open"
        assert "unknown" not in r.history.states[cid]
        await r.stop()

    asyncio.run(go())


def test_a_snapshot_entry_never_reverts_a_final_state_but_a_fill_still_counts(es_sample):
    """Unit level: an open-orders entry arriving for an order already filled is dropped; a
    streamed report with a new fill for a final order is passed on with the final state."""
    from app.core.orders import OrderEvent
    from app.trading.orders import OrderRequest

    b = PaperBroker([es_sample.instrument])
    hist = History()
    b.add_listener(hist)
    req = OrderRequest("C-1", es_sample.instrument.symbol, "paper", 1, OrderType.LIMIT, 2, 100)
    b._track(req)
    b._apply_order_event(OrderEvent("C-1", "S1", OrderStatus.OPEN))
    b._apply_order_event(OrderEvent("C-1", "S1", OrderStatus.FILLED, filled_qty=2, fill_qty=2, exec_id="E1"))
    assert not b._apply_order_event(OrderEvent("C-1", "S1", OrderStatus.OPEN, reason="open_orders_request_response"),
                                    snapshot=True)
    assert not b._apply_order_event(OrderEvent("C-1", "S1", OrderStatus.PARTIALLY_FILLED))
    assert b.orders["C-1"].state == OrderStatus.FILLED
    assert b._apply_order_event(OrderEvent("C-1", "S1", OrderStatus.OPEN, fill_qty=1, exec_id="E2"))
    assert b.orders["C-1"].state == OrderStatus.FILLED
    assert hist.states["C-1"] == ["open", "filled", "filled"]
    # a fill reported for an order the venue had reported canceled is booked: the fill wins
    b._track(OrderRequest("C-2", es_sample.instrument.symbol, "paper", 1, OrderType.LIMIT, 1, 100))
    b._apply_order_event(OrderEvent("C-2", "S2", OrderStatus.CANCELED))
    assert not b._apply_order_event(OrderEvent("C-2", "S2", OrderStatus.OPEN), snapshot=True)
    assert b._apply_order_event(OrderEvent("C-2", "S2", OrderStatus.FILLED, filled_qty=1, fill_qty=1, exec_id="E3"))
    assert b.orders["C-2"].state == OrderStatus.FILLED
    assert hist.states["C-2"] == ["canceled", "filled"]


# --------------------------------------------------------------------------------------------
# item 5: roles after a restart


async def _five_long_brackets(r):
    """Position +5 with 10 working sell exits (5 stops, 5 targets), each bracket 1 contract."""
    await r.publish(4000)
    await wait_until(lambda: r.s.market.get(r.sym) and r.s.market[r.sym].best_ask is not None)
    for _ in range(5):
        ask = r.best()[1]
        t = OrderTicket(r.sym, 1, 1, OrderType.MARKET, None, ask - 30, ask + 30, ref_price=ask)
        d = await r.s.confirm(t)
        assert d.allowed, d.message
        await wait_until(lambda: r.broker.position_qty(r.sym) == len([o for o in r.broker.orders.values()
                                                                       if o.request.role == ROLE_ENTRY]))
    b = r.broker
    await wait_until(lambda: b.position_qty(r.sym) == 5 and len(b.working_orders()) == 10)
    exits = [o for o in r.server.engine.open_orders()]
    assert len(exits) == 10 and all(o.side == -1 for o in exits)
    assert r.server.engine.position(r.sym).qty == 5


def _buy_five_more(r) -> OrderTicket:
    """A market buy of 5 more contracts with a tight bracket (risk well inside the limits)."""
    ask = r.best()[1]
    return OrderTicket(r.sym, 1, 5, OrderType.MARKET, None, ask - 2, ask + 2, ref_price=ask)


def _assert_exit_roles(r) -> None:
    roles = sorted(o.request.role for o in r.broker.working_orders())
    assert roles == [ROLE_STOP] * 5 + [ROLE_TARGET] * 5, roles


def test_dtc_restart_with_adopted_bracket_exits_roles_from_the_journal_gate_refuses_extra_entry(es_sample, tmp_path):
    async def go():
        r = await Rig(es_sample, max_contracts_per_order=5, max_position_contracts=5, max_risk_per_trade_usd=10_000,
                      stale_data_ms=60_000).start(tmp_path / "j.sqlite3")
        await _five_long_brackets(r)
        before = {c: o.request.role for c, o in r.broker.orders.items() if o.state.working}
        await r.restart_app(tmp_path / "j.sqlite3")
        b = r.broker
        await wait_until(lambda: len(b.working_orders()) == 10 and b.position_qty(r.sym) == 5)
        await r.publish(200)
        received = r.server.stats["orders_received"]
        d = await r.s.confirm(_buy_five_more(r))
        assert not d.allowed and d.rule == "max_position_contracts", d.message
        assert d.context["position_qty"] == 5 and d.context["pending_qty"] == 0
        assert r.server.stats["orders_received"] == received  # the venue saw nothing
        assert r.server.engine.position(r.sym).qty == 5
        _assert_exit_roles(r)
        assert {c: o.request.role for c, o in b.orders.items() if o.state.working} == before
        for o in b.working_orders():  # the journal also gives each child its parent and its OCO sibling
            assert o.request.parent_id and o.request.oco_id in b.orders
        await r.stop()

    asyncio.run(go())


def test_dtc_restart_without_journal_roles_from_the_servers_parent_links_gate_refuses_extra_entry(es_sample, tmp_path):
    async def go():
        r = await Rig(es_sample, max_contracts_per_order=5, max_position_contracts=5, max_risk_per_trade_usd=10_000,
                      stale_data_ms=60_000).start(tmp_path / "a.sqlite3")
        await _five_long_brackets(r)
        await r.restart_app(tmp_path / "other-machine.sqlite3")  # a journal that knows none of them
        b = r.broker
        await wait_until(lambda: len(b.working_orders()) == 10 and b.position_qty(r.sym) == 5)
        await r.publish(200)
        received = r.server.stats["orders_received"]
        d = await r.s.confirm(_buy_five_more(r))
        assert not d.allowed and d.rule == "max_position_contracts", d.message
        assert r.server.stats["orders_received"] == received and r.server.engine.position(r.sym).qty == 5
        _assert_exit_roles(r)
        for o in b.working_orders():
            assert o.request.role == (ROLE_STOP if o.request.order_type == OrderType.STOP else ROLE_TARGET)
        await r.stop()

    asyncio.run(go())


def test_dtc_restart_oco_exit_pair_without_parent_is_recognised_by_its_oco_link(es_sample, tmp_path):
    """An OCO pair sent without a bracket parent (e.g. from Sierra Chart) after a buy of 5: after a
    restart it is adopted as an exit pair through ``OCOLinkedOrderServerOrderID``."""

    async def go():
        r = await Rig(es_sample, max_contracts_per_order=5, max_position_contracts=5, max_risk_per_trade_usd=10_000,
                      stale_data_ms=60_000).start(tmp_path / "a.sqlite3")
        await r.publish(4000)
        bid, ask = r.best()
        tick = es_sample.instrument.tick_size
        r.client.send(M.SubmitNewSingleOrder(Symbol=r.sym, TradeAccount="Sim1", ClientOrderID="X-entry",
                                             OrderType=adapter.order_type_to_dtc(OrderType.MARKET),
                                             BuySell=adapter.side_to_dtc(1), Quantity=5.0,
                                             TimeInForce=adapter.tif_to_dtc(TimeInForce.DAY)))
        await wait_until(lambda: r.server.engine.position(r.sym).qty == 5)
        r.client.send(M.SubmitNewOCOOrder(
            Symbol=r.sym, TradeAccount="Sim1",
            ClientOrderID_1="X-target", OrderType_1=adapter.order_type_to_dtc(OrderType.LIMIT),
            BuySell_1=adapter.side_to_dtc(-1), Price1_1=float(ask + 40) * tick, Quantity_1=5.0,
            ClientOrderID_2="X-stop", OrderType_2=adapter.order_type_to_dtc(OrderType.STOP),
            BuySell_2=adapter.side_to_dtc(-1), Price1_2=float(bid - 40) * tick, Quantity_2=5.0,
            TimeInForce=adapter.tif_to_dtc(TimeInForce.DAY)))
        await wait_until(lambda: len(r.server.engine.open_orders()) == 2)
        await r.restart_app(tmp_path / "b.sqlite3")
        b = r.broker
        await wait_until(lambda: len(b.working_orders()) == 2 and b.position_qty(r.sym) == 5)
        await r.publish(200)
        d = await r.s.confirm(_buy_five_more(r))
        assert not d.allowed and d.rule == "max_position_contracts", d.message
        roles = {o.client_order_id: o.request.role for o in b.working_orders()}
        assert roles == {"X-target": ROLE_TARGET, "X-stop": ROLE_STOP}
        assert b.orders["X-target"].request.oco_id == "X-stop" and b.orders["X-stop"].request.oco_id == "X-target"
        await r.stop()

    asyncio.run(go())


def test_gate_pending_exposure_counts_same_side_entries_only(es_sample, feeder_cls):
    """Working entries on the other side do not offset: with a resting buy of 3 and a resting
    sell of 3 (limit 5) a buy of 3 could reach +6 and is refused; exits never count."""

    async def go():
        st = TradingSettings(require_stop=False, max_contracts_per_order=3, max_position_contracts=5,
                             stale_data_ms=60_000)
        b = PaperBroker([es_sample.instrument], st.commission_per_contract_usd, st.slippage_ticks)
        s = TradingSession(b, Journal(None), st, es_sample.instrument)
        await s.start()
        f = feeder_cls(s, es_sample, chunk=100)
        f.advance(4000)
        sym = es_sample.instrument.symbol
        book = b.engine.books[sym]
        bid, ask = book.best_bid(), book.best_ask()
        assert (await s.confirm(OrderTicket(sym, 1, 3, OrderType.LIMIT, bid - 40, ref_price=bid))).allowed
        assert (await s.confirm(OrderTicket(sym, -1, 3, OrderType.LIMIT, ask + 40, ref_price=ask))).allowed
        d = s.preview(OrderTicket(sym, 1, 3, OrderType.LIMIT, bid - 41, ref_price=bid))
        assert not d.allowed and d.rule == "max_position_contracts", d.message
        assert d.context["pending_qty"] == 3
        d = s.preview(OrderTicket(sym, 1, 2, OrderType.LIMIT, bid - 41, ref_price=bid))
        assert d.allowed, d.message
        await s.stop()

    asyncio.run(go())

