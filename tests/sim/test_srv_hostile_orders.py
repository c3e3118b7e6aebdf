"""The built-in server's order path under hostile clients (issue 13 items 1, 6, 7, 8, 16).

Each test runs the server in-process on loopback with the real CME ES recording, replayed up to
continuous trading (``publish``) so there is a market, and talks to it with a minimal client
(a socket and :class:`app.dtc.codec.Decoder`). What a test asserts is the server's own state
(its matching engine's orders and positions), not only what the client was told. Waits are
bounded round trips (``sync``), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import math
import sys

import numpy as np
import pytest

from app.core.events import KIND_TRADE, OP_SET, SIDE_ASK, SIDE_BID, Instrument, depth_events, trade_events
from app.core.orders import OrderSpec, OrderStatus, OrderType, Side
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.feeds.dbn import read_dbn_mbo
from app.sim.matching import FillEngine
from app.sim.server import DTCServer
from srv_peers import RawClient, run_async

pytestmark = pytest.mark.timeout(120)

ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
TICK = 0.25
ES_INST = Instrument("ESH4", TICK, 12.5)
R = M.OrderUpdateReason
S = M.OrderStatus


@pytest.fixture(scope="module")
def es_rec(shared_data):
    return read_dbn_mbo(shared_data / ES_FILE)


def trading_index(events, n: int = 50) -> int:
    """Index just after the n-th trade: continuous trading, a two-sided book."""
    return int(np.flatnonzero(events["kind"] == KIND_TRADE)[n]) + 1


class Client(RawClient):
    """The shared minimal client, with logon credentials, numbered round trips and the
    ORDER_UPDATE lookups these tests use."""

    def __init__(self, encoding=Encoding.BINARY):
        super().__init__(encoding)
        self._rid = 1000

    async def logon(self, username="", password="", heartbeat=30):
        self.send(M.LogonRequest(ProtocolVersion=8, Username=username, Password=password,
                                 HeartbeatIntervalInSeconds=heartbeat, ClientName="hostile-test"))
        return await self.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)

    async def sync(self):
        """Round trip: everything the server sent before the answer has arrived."""
        self._rid += 1
        rid, n = self._rid, len(self.msgs)
        self.send(M.TradeAccountsRequest(RequestID=rid))
        await self.wait_for(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE and m.RequestID == rid, start=n)

    def updates(self, start=0, coid=None):
        return [m for m in self.msgs[start:] if m.TYPE == T.ORDER_UPDATE and (coid is None or m.ClientOrderID == coid)]

    @staticmethod
    def pending_parents_left(srv) -> int:
        """Bracket parents the server still holds for any connection."""
        return sum(len(cn.pending_parents) for cn in srv.conns.values())

    def rejection(self, coid, start=0):
        """The NEW_ORDER_REJECTED update of ``coid`` (exactly one), with its reason."""
        rej = [m for m in self.updates(start, coid) if m.OrderUpdateReason == R.NEW_ORDER_REJECTED]
        assert len(rej) == 1, [(m.OrderUpdateReason, m.OrderStatus, m.InfoText) for m in self.updates(start, coid)]
        assert rej[0].OrderStatus == S.ORDER_STATUS_REJECTED and rej[0].InfoText
        return rej[0]


def order(coid, order_type=1, side=1, qty=1.0, price1=0.0, price2=0.0, **kw):
    return M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID=coid, OrderType=order_type, BuySell=side,
                                  Quantity=qty, Price1=price1, Price2=price2, TimeInForce=1, **kw)


async def started(rec, **kw) -> tuple[DTCServer, int]:
    """A paused server replayed up to continuous trading; returns it and the replay index."""
    srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, **kw)
    await srv.start()
    k = trading_index(rec.events)
    srv.publish("ESH4", rec.events[:k])
    return srv, k


# ---------------------------------------------------------------------------- item 1
@run_async
async def test_huge_and_non_finite_prices_are_rejected_and_never_fill(es_rec):
    """A stop buy at 3e18 wrapped to -2.3e18 ticks, "triggered" and filled at market; a sell limit
    at 2.4e18 filled at market. Now every such price is rejected with a reason and the server
    holds no order and no position, even after the market trades on."""
    srv, k = await started(es_rec)
    try:
        book = srv.engine.books["ESH4"]
        bid, ask = book.best_bid(), book.best_ask()
        c = await Client().connect(srv.port)
        await c.logon()
        c.send(order("STOP-3e18", order_type=3, side=1, price1=3e18))
        c.send(order("LMT-2.4e18", order_type=2, side=2, price1=2.4e18))
        c.send(order("LMT-1e30", order_type=2, side=1, price1=1e30))
        c.send(order("LMT-1e300", order_type=2, side=1, price1=1e300))  # >= FLT_MAX: DTC's "unset"
        c.send(order("LMT-nan", order_type=2, side=1, price1=math.nan))
        c.send(order("STP-inf", order_type=3, side=2, price1=-math.inf))
        c.send(order("STPLMT-nan2", order_type=4, side=1, price1=(ask + 4) * TICK, price2=math.nan))
        c.send(order("LMT-far", order_type=2, side=1, price1=bid * TICK * 0.3))  # 70 % under the market
        c.send(order("LMT-above", order_type=2, side=2, price1=ask * TICK * 1.7))
        c.send(order("MKT-junk-price", order_type=1, side=1, price1=3e18))  # an unused price is checked too
        c.send(order("LMT-ok", order_type=2, side=1, price1=(bid - 8) * TICK))
        await c.sync()
        for coid, why in (("STOP-3e18", "out of range"), ("LMT-2.4e18", "out of range"), ("LMT-1e30", "out of range"),
                          ("LMT-1e300", "needs price"),
                          ("LMT-nan", "not finite"), ("STP-inf", "not finite"), ("STPLMT-nan2", "not finite"),
                          ("LMT-far", "outside the band"), ("LMT-above", "outside the band"),
                          ("MKT-junk-price", "out of range")):
            assert why in c.rejection(coid).InfoText, coid
        # the venue's own state: only the sane order is working, nothing filled
        assert [o.client_order_id for o in srv.engine.open_orders()] == ["LMT-ok"]
        assert srv.engine.position("ESH4").qty == 0
        srv.publish("ESH4", es_rec.events[k:k + 200_000])
        await c.sync()
        assert srv.engine.position("ESH4").qty == 0
        assert not [m for m in c.updates() if m.OrderUpdateReason in (R.ORDER_FILLED, R.ORDER_FILLED_PARTIALLY)
                    and m.ClientOrderID != "LMT-ok"]
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_a_replace_to_a_huge_price_is_rejected_and_the_order_keeps_its_price(es_rec):
    srv, _k = await started(es_rec)
    try:
        bid = srv.engine.books["ESH4"].best_bid()
        c = await Client().connect(srv.port)
        await c.logon()
        c.send(order("L", order_type=2, side=1, price1=(bid - 8) * TICK))
        await c.sync()
        (o,) = srv.engine.open_orders()
        n = len(c.msgs)
        c.send(M.CancelReplaceOrder(ServerOrderID=o.server_order_id, ClientOrderID="L", Price1=3e18, Price2IsSet=0,
                                    Quantity=1))
        await c.sync()
        (rej,) = [m for m in c.updates(n) if m.OrderUpdateReason == R.ORDER_CANCEL_REPLACE_REJECTED]
        assert "out of range" in rej.InfoText
        assert srv.engine.order(o.server_order_id).price == bid - 8 and srv.engine.order(o.server_order_id).is_working
        await c.close()
    finally:
        await srv.stop()


# ---------------------------------------------------------------------------- item 6
class LineCounter:
    """Counts the Python lines the server executes while handling chosen requests (a measure of
    work that does not depend on the machine's speed or load)."""

    def __init__(self, srv: DTCServer, msg_type: int, probe_prefix: str):
        self.counts: list[int] = []
        self._inner = srv._handlers[msg_type]
        self._prefix = probe_prefix
        srv._handlers[msg_type] = self._handle

    def _handle(self, c, m):
        if not m.ClientOrderID.startswith(self._prefix):
            return self._inner(c, m)
        n = 0

        def trace(frame, event, arg):
            nonlocal n
            if event == "line":
                n += 1
            return trace

        sys.settrace(trace)
        try:
            return self._inner(c, m)
        finally:
            sys.settrace(None)
            self.counts.append(n)


@run_async
async def test_order_handling_stays_flat_and_terminal_orders_leave_every_index(es_rec):
    """Acknowledging 2,000 orders took 0.6 s at the start and 3.4 s after 38,000 orders, and memory
    never returned. Now the work to handle one order (counted in executed lines) is the same after
    3,000 orders as after 10, terminal orders leave the working index, and the engine keeps only
    a bounded history of them."""
    srv, _k = await started(es_rec, order_history=500)
    try:
        counter = LineCounter(srv, int(T.SUBMIT_NEW_SINGLE_ORDER), "probe")
        c = await Client().connect(srv.port)
        await c.logon()

        async def round_trip(tag: str) -> None:
            # a buy and a sell at market (flat again), then a limit far below the market cancelled
            c.send(order(f"{tag}-b", side=1))
            c.send(order(f"{tag}-s", side=2))
            await c.sync()

        async def probe(i: int) -> None:
            c.send(order(f"probe{i}-b", side=1))
            c.send(order(f"probe{i}-s", side=2))
            await c.sync()

        for i in range(10):
            await round_trip(f"warm{i}")
        await probe(0)

        async def many(n_pairs: int, tag: str) -> None:
            for batch in range(n_pairs // 100):
                for i in range(100):
                    c.send(order(f"{tag}{batch}-{i}-b", side=1))
                    c.send(order(f"{tag}{batch}-{i}-s", side=2))
                await c.sync()
                c.msgs.clear()  # the client keeps no history either

        await many(800, "a")
        await probe(1)
        await many(800, "z")
        await probe(2)
        early, mid, late = counter.counts[0:2], counter.counts[2:4], counter.counts[4:6]
        eng = srv.engine
        assert srv.stats["orders_received"] == 2 * (10 + 1 + 800 + 1 + 800 + 1)
        assert eng.position("ESH4").qty == 0
        # the same work per order, to the line, after 1,600 and after 3,200 more orders; against
        # the first 20 orders only the constant upkeep of a full history (a few lines) is added
        assert mid == late, (mid, late)
        assert all(0 <= b - a <= 20 for a, b in zip(early, late)), (early, late)
        # terminal orders are in no index; the history is bounded
        assert eng.open_orders() == [] and not eng._working["ESH4"] and not eng._coids
        assert len(eng.orders) == 500
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_resting_orders_per_account_are_capped(es_rec):
    """Every replayed trade is matched against the working orders, so their number is bounded."""
    srv, _k = await started(es_rec, max_open_orders=5)
    try:
        bid = srv.engine.books["ESH4"].best_bid()
        c = await Client().connect(srv.port)
        await c.logon()
        for i in range(7):
            c.send(order(f"L{i}", order_type=2, side=1, price1=(bid - 10 - i) * TICK))
        await c.sync()
        assert "too many open orders" in c.rejection("L5").InfoText
        assert "too many open orders" in c.rejection("L6").InfoText
        assert len(srv.engine.open_orders()) == 5
        c.send(M.CancelOrder(ServerOrderID=srv.engine.open_orders()[0].server_order_id))
        c.send(order("L7", order_type=2, side=1, price1=(bid - 20) * TICK))
        await c.sync()
        assert [o.client_order_id for o in srv.engine.open_orders()] == ["L1", "L2", "L3", "L4", "L7"]
        # bracket parents held for their OCO are capped the same way
        for i in range(6):
            c.send(order(f"P{i}", order_type=2, side=1, price1=(bid - 30) * TICK, IsParentOrder=1))
        await c.sync()
        assert "too many bracket parents" in c.rejection("P5").InfoText
        assert c.pending_parents_left(srv) == 5
        await c.close()
    finally:
        await srv.stop()


# ---------------------------------------------------------------------------- item 7
@run_async
async def test_quantities_are_positive_whole_contracts_up_to_the_maximum(es_rec):
    """1e-12 contracts was accepted and worked forever, 0.5 filled (position 0.5), 1e9 filled."""
    srv, k = await started(es_rec, max_order_qty=5)
    try:
        bid = srv.engine.books["ESH4"].best_bid()
        c = await Client().connect(srv.port)
        await c.logon()
        bad = {"tiny": 1e-12, "half": 0.5, "billion": 1e9, "six": 6.0, "neg": -1.0, "nan": math.nan,
               "inf": math.inf, "zero": 0.0}
        for coid, q in bad.items():
            c.send(order(coid, side=1, qty=q))
        c.send(order("L-half", order_type=2, side=1, qty=2.5, price1=(bid - 8) * TICK))
        c.send(order("five", side=1, qty=5))  # the maximum itself is fine
        await c.sync()
        for coid in (*bad, "L-half"):
            text = c.rejection(coid).InfoText
            assert "quantity" in text, (coid, text)
        assert "whole number" in c.rejection("half").InfoText and "maximum of 5" in c.rejection("six").InfoText
        eng = srv.engine
        assert eng.position("ESH4").qty == 5 and eng.open_orders() == []
        # a replace to a fractional or too large quantity is refused; the order keeps its own
        c.send(order("L", order_type=2, side=1, qty=2, price1=(bid - 8) * TICK))
        await c.sync()
        (o,) = eng.open_orders()
        n = len(c.msgs)
        for q in (0.5, 6.0, -3.0):
            c.send(M.CancelReplaceOrder(ServerOrderID=o.server_order_id, ClientOrderID="L", Quantity=q,
                                        Price1IsSet=0, Price2IsSet=0))
        await c.sync()
        rej = [m.InfoText for m in c.updates(n) if m.OrderUpdateReason == R.ORDER_CANCEL_REPLACE_REJECTED]
        assert len(rej) == 3 and all("quantity" in t for t in rej), rej
        assert eng.order(o.server_order_id).qty == 2
        # the market trades on: nothing fractional ever fills
        srv.publish("ESH4", es_rec.events[k:k + 100_000])
        await c.sync()
        assert eng.position("ESH4").qty == float(int(eng.position("ESH4").qty))
        await c.close()
    finally:
        await srv.stop()


@pytest.mark.parametrize("offset", [1e300, math.inf, math.nan, -2.0, 0.0, 1e30, 1e-9, 3000.0],
                         ids=["1e300", "inf", "nan", "negative", "zero", "1e30", "below-a-tick", "beyond-band"])
@run_async
async def test_bracket_offsets_must_be_finite_and_positive(es_rec, offset):
    """Offsets of 1e300 or inf became 0: the stop and the target at the entry. Now the bracket is
    rejected as a whole (parent and both children) and the server holds nothing."""
    srv, _k = await started(es_rec)
    try:
        bid = srv.engine.books["ESH4"].best_bid()
        c = await Client().connect(srv.port)
        await c.logon()
        c.send(order("P", order_type=2, side=1, qty=1, price1=(bid - 4) * TICK, IsParentOrder=1))
        c.send(M.SubmitNewOCOOrder(Symbol="ESH4", ClientOrderID_1="TGT", OrderType_1=2, BuySell_1=2, Quantity_1=1,
                                   ClientOrderID_2="STP", OrderType_2=3, BuySell_2=2, Quantity_2=1,
                                   ParentTriggerClientOrderID="P", UseOffsets=1,
                                   OffsetFromParent1=2.0, OffsetFromParent2=offset))
        await c.sync()
        for coid in ("P", "TGT", "STP"):
            assert "OffsetFromParent2" in c.rejection(coid).InfoText
        assert srv.engine.open_orders() == [] and not c.pending_parents_left(srv)
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_negative_and_zero_prices_are_refused(es_rec):
    srv, _k = await started(es_rec)
    try:
        c = await Client().connect(srv.port)
        await c.logon()
        c.send(order("neg-limit", order_type=2, side=1, price1=-4800.0))
        c.send(order("zero-limit", order_type=2, side=1, price1=0.0))
        c.send(order("neg-stop", order_type=3, side=2, price1=-1.0))
        c.send(order("neg-stoplimit", order_type=4, side=2, price1=4700.0, price2=-4700.0))
        await c.sync()
        for coid in ("neg-limit", "zero-limit", "neg-stop", "neg-stoplimit"):
            assert "positive" in c.rejection(coid).InfoText, coid
        assert srv.engine.open_orders() == []
        await c.close()
    finally:
        await srv.stop()


# ---------------------------------------------------------------------------- item 8
def _own_updates(c: Client, start=0):
    return {m.ClientOrderID for m in c.updates(start) if m.ClientOrderID}


@run_async
async def test_each_username_has_its_own_account_and_cannot_touch_another(es_rec):
    """Any client could list, cancel (ServerOrderIDs are sequential) and flatten another's orders.
    Now bob sees none of alice's orders, and his cancel, replace and flatten leave the server's
    state of alice's account exactly as it was."""
    srv, _k = await started(es_rec)
    try:
        eng = srv.engine
        bid = eng.books["ESH4"].best_bid()
        alice = await Client().connect(srv.port)
        bob = await Client().connect(srv.port)
        assert (await alice.logon("alice")).Result == 1
        assert (await bob.logon("bob")).Result == 1
        alice.send(order("A-LMT", order_type=2, side=1, price1=(bid - 8) * TICK))
        alice.send(order("A-MKT", side=1, qty=2))
        await alice.sync()
        a_sid = next(m.ServerOrderID for m in alice.updates(coid="A-LMT") if m.ServerOrderID)
        n_bob = len(bob.msgs)
        # bob: list, cancel and replace by every id issued so far, flatten, name alice's account
        bob.send(M.OpenOrdersRequest(RequestID=7, RequestAllOrders=1))
        bob.send(M.OpenOrdersRequest(RequestID=8, RequestAllOrders=0, ServerOrderID=a_sid))
        bob.send(M.CurrentPositionsRequest(RequestID=9))
        for sid in range(1, 6):
            bob.send(M.CancelOrder(ServerOrderID=str(sid), ClientOrderID=f"B-cancel-{sid}"))
            bob.send(M.CancelReplaceOrder(ServerOrderID=str(sid), ClientOrderID=f"B-repl-{sid}",
                                          Price1=(bid - 1) * TICK, Quantity=5))
        bob.send(M.SubmitFlattenPositionOrder(Symbol="ESH4", ClientOrderID="B-flat"))
        bob.send(order("B-as-alice", side=2, TradeAccount="Sim1/alice"))
        bob.send(M.AccountBalanceRequest(RequestID=10))
        await bob.sync()
        got = bob.msgs[n_bob:]
        oo = [m for m in got if m.TYPE == T.ORDER_UPDATE and m.RequestID in (7, 8)]
        assert [(m.RequestID, m.NoOrders) for m in oo] == [(7, 1), (8, 1)]
        (pos,) = [m for m in got if m.TYPE == T.POSITION_UPDATE and m.RequestID == 9]
        assert pos.NoPositions == 1
        (bal,) = [m for m in got if m.TYPE == T.ACCOUNT_BALANCE_UPDATE and m.RequestID == 10]
        assert bal.CashBalance == 100_000.0
        refused = [m for m in got if m.TYPE == T.ORDER_UPDATE and m.RequestID == 0]
        assert all(m.OrderStatus == S.ORDER_STATUS_REJECTED and m.ServerOrderID == "" for m in refused)
        assert sum("unknown ServerOrderID" in m.InfoText for m in refused) == 10
        assert "no position" in bob.rejection("B-flat").InfoText
        assert "unknown trade account" in bob.rejection("B-as-alice").InfoText
        assert not {"A-LMT", "A-MKT"} & _own_updates(bob)  # never told about alice's orders
        # the server's own state of alice's account is untouched
        a_acct = srv.accounts["alice"]
        (a_lmt,) = eng.open_orders(account=a_acct)
        assert [o.client_order_id for o in eng.open_orders(account=a_acct)] == ["A-LMT"]
        assert eng.order(a_lmt.server_order_id).price == bid - 8 and eng.order(a_lmt.server_order_id).qty == 1
        assert eng.position("ESH4", a_acct).qty == 2
        assert eng.position("ESH4", srv.accounts["bob"]).qty == 0
        # both see their account under the one name Sim1
        for cl in (alice, bob):
            n = len(cl.msgs)
            cl.send(M.TradeAccountsRequest(RequestID=77))
            acct = await cl.wait_for(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE and m.RequestID == 77, start=n)
            assert acct.TradeAccount == "Sim1"
        # a second connection of alice owns the same account: it sees and cancels her order
        alice2 = await Client().connect(srv.port)
        await alice2.logon("alice")
        n = len(alice2.msgs)
        alice2.send(M.OpenOrdersRequest(RequestID=5, RequestAllOrders=1))
        await alice2.sync()
        assert [m.ClientOrderID for m in alice2.msgs[n:] if m.TYPE == T.ORDER_UPDATE and m.RequestID == 5] == ["A-LMT"]
        alice2.send(M.CancelOrder(ServerOrderID=a_lmt.server_order_id, ClientOrderID="A-LMT"))
        await alice2.sync()
        await alice.sync()
        assert eng.open_orders(account=a_acct) == []
        assert any(m.ClientOrderID == "A-LMT" and m.OrderUpdateReason == R.ORDER_CANCELED for m in alice.updates())
        assert "A-LMT" not in _own_updates(bob)
        for cl in (alice, alice2, bob):
            await cl.close()
    finally:
        await srv.stop()


@run_async
async def test_a_password_makes_logon_require_it(es_rec):
    srv, _k = await started(es_rec, password="s3cret")
    try:
        bad = await Client().connect(srv.port)
        r = await bad.logon("mallory", "guess")
        assert r.Result == M.LogonStatus.LOGON_ERROR_NO_RECONNECT
        await asyncio.wait_for(bad._task, 10)
        assert bad.closed and "mallory" not in srv.accounts
        none = await Client().connect(srv.port)
        assert (await none.logon("mallory", "")).Result == M.LogonStatus.LOGON_ERROR_NO_RECONNECT
        ok = await Client().connect(srv.port)
        assert (await ok.logon("alice", "s3cret")).Result == 1
        ok.send(order("A1", side=1))
        await ok.sync()
        assert srv.engine.position("ESH4", srv.accounts["alice"]).qty == 1
        for cl in (bad, none, ok):
            await cl.close()
    finally:
        await srv.stop()


@run_async
async def test_one_shared_account_when_asked(es_rec):
    srv, _k = await started(es_rec, shared_account=True)
    try:
        a = await Client().connect(srv.port)
        b = await Client().connect(srv.port)
        await a.logon("alice")
        await b.logon("bob")
        a.send(order("A1", side=1))
        await a.sync()
        await b.sync()
        assert "A1" in _own_updates(b)  # one account: both hear its updates
        b.send(M.SubmitFlattenPositionOrder(Symbol="ESH4", ClientOrderID="B-flat"))
        await b.sync()
        assert srv.engine.position("ESH4").qty == 0 and set(srv.engine.accounts) == {"Sim1"}
        await a.close()
        await b.close()
    finally:
        await srv.stop()


def test_serve_options_for_access(monkeypatch):
    import argparse

    from app.cli import serve

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    monkeypatch.delenv(serve.PASSWORD_ENV, raising=False)
    args = p.parse_args([])
    assert args.host == "127.0.0.1"  # the bind stays loopback by default
    assert serve.access_options(args) == {"password": None, "shared_account": False, "max_order_qty": 1000.0}
    args = p.parse_args(["--password", "pw", "--shared-account", "--max-order-qty", "5"])
    assert serve.access_options(args) == {"password": "pw", "shared_account": True, "max_order_qty": 5.0}
    monkeypatch.setenv(serve.PASSWORD_ENV, "from-env")
    assert serve.access_options(p.parse_args([]))["password"] == "from-env"
    for bad in (["--password", ""], ["--password", "x" * 32], ["--max-order-qty", "0.5"]):
        with pytest.raises(ValueError, match="--(password|max-order-qty)"):
            serve.access_options(p.parse_args(bad))


# ---------------------------------------------------------------------------- item 16
@pytest.mark.parametrize("encoding", [Encoding.BINARY, Encoding.JSON], ids=["binary", "json"])
@run_async
async def test_the_flatten_order_updates_echo_the_requests_client_order_id(es_rec, encoding):
    """The engine wrote "flatten" as the ClientOrderID of the flattening order, so a client could
    not match the ORDER_UPDATEs to its SUBMIT_FLATTEN_POSITION_ORDER."""
    srv, _k = await started(es_rec)
    try:
        c = await Client(encoding).connect(srv.port)
        await c.logon("carol")
        c.send(order("BUY3", side=1, qty=3))
        await c.sync()
        n = len(c.msgs)
        c.send(M.SubmitFlattenPositionOrder(Symbol="ESH4", TradeAccount="Sim1", ClientOrderID="FLAT-7"))
        await c.sync()
        ups = c.updates(n)
        assert ups and {m.ClientOrderID for m in ups} == {"FLAT-7"}
        seq = [(int(m.OrderUpdateReason), int(m.OrderStatus)) for m in ups]
        assert seq == [(R.NEW_ORDER_ACCEPTED, S.ORDER_STATUS_PENDING_OPEN), (R.GENERAL_ORDER_UPDATE, S.ORDER_STATUS_OPEN),
                       (R.ORDER_FILLED, S.ORDER_STATUS_FILLED)]
        assert ups[-1].BuySell == 2 and ups[-1].FilledQuantity == 3
        acct = srv.accounts["carol"]
        assert srv.engine.position("ESH4", acct).qty == 0
        (flat,) = [o for o in srv.engine.orders.values() if o.client_order_id == "FLAT-7"]
        assert flat.account == acct and flat.status == OrderStatus.FILLED
        await c.close()
    finally:
        await srv.stop()


# ---------------------------------------------------------------------------- the engine underneath
def _engine(**kw) -> FillEngine:
    e = FillEngine([ES_INST], account="Sim1", **kw)
    rows = [(100, 5.0, SIDE_BID), (99, 10.0, SIDE_BID), (101, 3.0, SIDE_ASK), (102, 40.0, SIDE_ASK)]
    e.on_market("ESH4", depth_events([1] * 4, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], OP_SET))
    return e


def test_engine_accounts_trade_one_book_with_their_own_orders_positions_and_money():
    e = _engine()
    e.add_account("Sim1/bob")
    e.submit(OrderSpec("ESH4", Side.BUY, 2, OrderType.MARKET, client_order_id="A"))
    e.submit(OrderSpec("ESH4", Side.BUY, 1, OrderType.LIMIT, 95, client_order_id="A-L"))
    e.submit(OrderSpec("ESH4", Side.SELL, 1, OrderType.MARKET, client_order_id="B", account="Sim1/bob"))
    e.submit(OrderSpec("ESH4", Side.SELL, 1, OrderType.LIMIT, 110, client_order_id="A-L", account="Sim1/bob"))
    assert e.position("ESH4").qty == 2 and e.position("ESH4", "Sim1/bob").qty == -1
    assert e.find_open("A-L").account == "Sim1" and e.find_open("A-L", "Sim1/bob").price == 110
    assert [o.client_order_id for o in e.open_orders(account="Sim1/bob")] == ["A-L"]
    assert len(e.open_orders()) == 2
    assert e.flatten("ESH4", account="Sim1/bob", client_order_id="BF").client_order_id == "BF"
    assert e.position("ESH4", "Sim1/bob").qty == 0 and e.position("ESH4").qty == 2
    assert e.cancel_all(account="Sim1/bob") == 1 and [o.client_order_id for o in e.open_orders()] == ["A-L"]
    e.on_market("ESH4", trade_events([3], [105], [1.0], [SIDE_ASK]))
    assert e.open_pnl("ESH4") == pytest.approx((105 - 101) * 2 * 12.5)
    assert e.realized_pnl("Sim1/bob") == pytest.approx((100 - 101) * 12.5)  # sold 100, bought back 101
    rej = e.submit(OrderSpec("ESH4", Side.BUY, 1, OrderType.MARKET, account="Sim1/nobody"))
    assert rej.status == OrderStatus.REJECTED and "unknown trade account" in rej.info


def test_engine_history_is_bounded_and_brackets_still_work_after_eviction():
    e = _engine(history=3)
    parent, target, stop = e.submit_bracket("ESH4", Side.BUY, 1, OrderType.LIMIT, 100, 95, 104,
                                            client_order_ids=("P", "T", "S"))
    for i in range(20):
        e.submit(OrderSpec("ESH4", Side.BUY if i % 2 == 0 else Side.SELL, 1, OrderType.MARKET))
    assert len(e.orders) == 3 + 3  # the bracket (not final) and the last three terminal orders
    e.on_market("ESH4", trade_events([3], [99], [10.0], [SIDE_BID]))  # the entry fills
    assert e.order(target.server_order_id).is_working and e.order(stop.server_order_id).is_working
    e.on_market("ESH4", trade_events([4], [105], [10.0], [SIDE_ASK]))  # the target fills, the stop goes
    assert e.position("ESH4").qty == 0 and e.open_orders() == []
    assert len(e.orders) == 3 and not e._coids and not e._working["ESH4"]


def test_a_replay_restart_closes_every_accounts_position_and_cancels_every_order():
    """A loop of the replay is a new session for every username's account, not only the first."""
    e = _engine()
    e.add_account("Sim1/bob")
    e.submit(OrderSpec("ESH4", Side.BUY, 2, OrderType.MARKET, client_order_id="A"))
    e.submit(OrderSpec("ESH4", Side.SELL, 1, OrderType.MARKET, client_order_id="B", account="Sim1/bob"))
    e.submit(OrderSpec("ESH4", Side.SELL, 1, OrderType.LIMIT, 110, client_order_id="B-L", account="Sim1/bob"))
    e.restart_session("ESH4")
    assert e.position("ESH4").qty == 0 and e.position("ESH4", "Sim1/bob").qty == 0
    assert e.open_orders() == [] and e.open_orders(account="Sim1/bob") == []
