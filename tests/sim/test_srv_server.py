"""Built-in DTC server on loopback with the real ES recording: logon, depth, orders, robustness.

The client here is deliberately minimal (a socket + :class:`app.dtc.codec.Decoder`) so these tests
exercise the server's wire behaviour without depending on the full client's policies.
"""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from app.core.clock import ManualClock
from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.sim.server import DTCServer
from app.feeds.dbn import read_dbn_mbo
from app.core.events import KIND_TRADE, SIDE_BID
from app.market.refbook import ReferenceBook
from srv_peers import RawClient, run_async, until  # noqa: F401 (shared with the other server tests)

pytestmark = pytest.mark.timeout(120)

ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
TICK = 0.25


@pytest.fixture(scope="module")
def es_rec(shared_data):
    return read_dbn_mbo(shared_data / ES_FILE)


def client_book(msgs, symbol_id):
    bids, asks = {}, {}
    for m in msgs:
        t = m.TYPE
        if t in (T.MARKET_DEPTH_SNAPSHOT_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT,
                 T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS):
            if m.SymbolID != symbol_id:
                continue
            if t == T.MARKET_DEPTH_SNAPSHOT_LEVEL and m.IsFirstMessageInBatch:
                bids.clear()
                asks.clear()
            if m.Side not in (1, 2):
                continue
            d = bids if m.Side == 1 else asks
            tick = round(m.Price / TICK)
            if t in (T.MARKET_DEPTH_SNAPSHOT_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT) or m.UpdateType == 1:
                d[tick] = float(m.Quantity)
            elif m.UpdateType == 2:
                d.pop(tick, None)
    return bids, asks


@pytest.mark.parametrize("encoding", [Encoding.BINARY, Encoding.JSON], ids=["binary", "json"])
@run_async
async def test_depth_replay_equals_reference_book(es_rec, encoding):
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        a = await RawClient(encoding).connect(srv.port)
        b = await RawClient(Encoding.JSON_COMPACT if encoding == Encoding.JSON else Encoding.BINARY).connect(srv.port)
        ra = await a.logon()
        assert ra.Result == 1 and ra.TradingIsSupported == 1 and ra.MarketDepthIsSupported == 1
        assert ra.BracketOrdersSupported == 1 and ra.OCOOrdersSupported == 1
        rb = await b.logon(integer_1=int(M.LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES))
        assert rb.Result == 1
        a.send(M.SecurityDefinitionForSymbolRequest(RequestID=5, Symbol="ESH4"))
        sd = await a.wait_for(lambda m: m.TYPE == T.SECURITY_DEFINITION_RESPONSE)
        assert sd.RequestID == 5 and sd.MinPriceIncrement == 0.25 and sd.CurrencyValuePerIncrement == 12.5
        a.send(M.MarketDataRequest(RequestAction=1, SymbolID=9, Symbol="NQZ5"))
        rej = await a.wait_for(lambda m: m.TYPE == T.MARKET_DATA_REJECT)
        assert rej.SymbolID == 9 and "NQZ5" in rej.RejectText
        a.send(M.MarketDepthRequest(RequestAction=1, SymbolID=7, Symbol="ESH4", NumLevels=0))
        b.send(M.MarketDepthRequest(RequestAction=1, SymbolID=3, Symbol="ESH4", NumLevels=0))
        a.send(M.MarketDataRequest(RequestAction=1, SymbolID=7, Symbol="ESH4"))
        first = await a.wait_for(lambda m: m.TYPE == T.MARKET_DEPTH_SNAPSHOT_LEVEL)
        assert first.IsFirstMessageInBatch == 1 and first.IsLastMessageInBatch == 1  # empty book
        await a.wait_for(lambda m: m.TYPE == T.MARKET_DATA_SNAPSHOT)
        await b.sync(1)
        srv.resume()
        assert await srv.wait_replay_done(90)
        await a.sync(2)
        await b.sync(2)

        ref = ReferenceBook()
        ref.apply(es_rec.events)
        for cl, sid, depth_t in ((a, 7, T.MARKET_DEPTH_UPDATE_LEVEL), (b, 3, T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS)):
            bids, asks = client_book(cl.msgs, sid)
            assert bids == ref.bids()
            assert asks == ref.asks()
            assert sorted(bids, reverse=True)[:10] == [t for t, _ in ref.levels(SIDE_BID, 10)]
            assert len(cl.of(depth_t)) > 60000
        # trades: one 112 (Sierra Chart's compact default, logon Integer_1 0) per recorded trade,
        # aggressor side carried as AtBidOrAsk
        trades = a.of(T.MARKET_DATA_UPDATE_TRADE_COMPACT)
        rec_tr = es_rec.events[es_rec.events["kind"] == KIND_TRADE]
        assert len(trades) == len(rec_tr)
        assert [t.AtBidOrAsk for t in trades[:500]] == rec_tr["side"][:500].tolist()
        assert trades[-1].Price == rec_tr["price"][-1] * TICK
        bidask = a.of(T.MARKET_DATA_UPDATE_BID_ASK_COMPACT)
        assert bidask and bidask[-1].BidPrice == 4810.0 and bidask[-1].AskPrice == 4810.25
        assert not b.of(T.MARKET_DATA_UPDATE_TRADE_COMPACT)  # b did not subscribe market data
        st = srv.stats
        assert st["depth_messages_out"] > 120000 and st["malformed_frames"] == 0
        await a.close()
        await b.close()
    finally:
        await srv.stop()


@run_async
async def test_snapshot_of_running_book_and_float_snapshot(es_rec):
    """A late subscriber gets the current book as a 122 (or 145) batch equal to the server's book."""
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        n = len(es_rec.events) // 2
        srv.publish("ESH4", es_rec.events[:n])
        ref = ReferenceBook()
        ref.apply(es_rec.events[:n])
        c = await RawClient().connect(srv.port)
        await c.logon(integer_1=int(M.LogonFlags.SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT))
        c.send(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"))
        await c.sync(1)
        snap = c.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)
        assert snap[0].FinalUpdateInBatch == 3 and snap[-1].FinalUpdateInBatch == 1
        bids = {round(m.Price / TICK): float(m.Quantity) for m in snap if m.Side == 1}
        asks = {round(m.Price / TICK): float(m.Quantity) for m in snap if m.Side == 2}
        assert bids == ref.bids() and asks == ref.asks()
        assert [m.Level for m in snap if m.Side == 1][:3] == [1, 2, 3]
        await c.close()
    finally:
        await srv.stop()


def _bracket_plan(events, k):
    """From replay index k: entry at the best ask, a target 2 ticks above that a later trade
    prints through before any trade reaches the stop (chosen from the real data)."""
    ref = ReferenceBook()
    ref.apply(events[:k])
    entry = ref.best_ask()
    target = entry + 2
    tr_idx = np.flatnonzero(events["kind"][k:] == KIND_TRADE) + k
    prices = events["price"][tr_idx]
    hit = np.flatnonzero(prices > target)
    assert len(hit), "no trade through the target in the data"
    j = int(tr_idx[hit[0]])
    low = int(prices[: hit[0] + 1].min())
    stop = min(low, entry) - 4
    return entry, target, stop, j


@pytest.mark.parametrize("encoding", [Encoding.BINARY, Encoding.JSON], ids=["binary", "json"])
@run_async
async def test_bracket_fills_with_sierra_sequence(es_rec, encoding):
    ev = es_rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1  # continuous trading
    entry, target, stop, j = _bracket_plan(ev, k)
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        srv.publish("ESH4", ev[:k])
        c = await RawClient(encoding).connect(srv.port)
        await c.logon()
        c.send(M.TradeAccountsRequest(RequestID=3))
        acct = await c.wait_for(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE)
        assert acct.TradeAccount == "Sim1" and acct.TotalNumberMessages == 1
        start = len(c.msgs)
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", TradeAccount="Sim1", ClientOrderID="P1", OrderType=1,
                                      BuySell=1, Quantity=1, Price1=entry * TICK, IsParentOrder=1,
                                      TimeInForce=1))
        c.send(M.SubmitNewOCOOrder(Symbol="ESH4", TradeAccount="Sim1",
                                   ClientOrderID_1="T1", OrderType_1=2, BuySell_1=2, Price1_1=target * TICK, Quantity_1=1,
                                   ClientOrderID_2="S1", OrderType_2=3, BuySell_2=2, Price1_2=stop * TICK, Quantity_2=1,
                                   ParentTriggerClientOrderID="P1", PartialFillHandling=1, TimeInForce=1))
        await c.wait_for(lambda m: m.TYPE == T.ACCOUNT_BALANCE_UPDATE, start=start)
        await c.sync(10)
        srv.publish("ESH4", ev[k:j + 1])
        await c.sync(11)
        seq = [m for m in c.msgs[start:] if m.TYPE in (T.ORDER_UPDATE, T.POSITION_UPDATE, T.ACCOUNT_BALANCE_UPDATE)]
        R, S = M.OrderUpdateReason, M.OrderStatus

        def row(m):
            if m.TYPE == T.ORDER_UPDATE:
                return ("OU", m.ClientOrderID, int(m.OrderUpdateReason), int(m.OrderStatus))
            if m.TYPE == T.POSITION_UPDATE:
                return ("POS", m.Quantity)
            return ("BAL",)

        assert [row(m) for m in seq] == [
            ("OU", "P1", R.NEW_ORDER_ACCEPTED, S.ORDER_STATUS_PENDING_OPEN),
            ("OU", "P1", R.GENERAL_ORDER_UPDATE, S.ORDER_STATUS_OPEN),
            ("OU", "T1", R.NEW_ORDER_ACCEPTED, S.ORDER_STATUS_PENDING_CHILD),
            ("OU", "S1", R.NEW_ORDER_ACCEPTED, S.ORDER_STATUS_PENDING_CHILD),
            ("OU", "P1", R.ORDER_FILLED, S.ORDER_STATUS_FILLED),
            ("POS", 1.0),
            ("BAL",),
            ("OU", "T1", R.GENERAL_ORDER_UPDATE, S.ORDER_STATUS_OPEN),
            ("OU", "S1", R.GENERAL_ORDER_UPDATE, S.ORDER_STATUS_OPEN),
            ("OU", "T1", R.ORDER_FILLED, S.ORDER_STATUS_FILLED),
            ("POS", 0.0),
            ("BAL",),
            ("OU", "S1", R.ORDER_CANCELED, S.ORDER_STATUS_CANCELED),
        ]
        parent_fill = seq[4]
        assert parent_fill.LastFillPrice == entry * TICK and parent_fill.LastFillQuantity == 1
        assert parent_fill.ServerOrderID and parent_fill.LastFillExecutionID
        t_accept = seq[2]
        assert t_accept.ParentServerOrderID == parent_fill.ServerOrderID
        assert t_accept.OCOLinkedOrderServerOrderID == seq[3].ServerOrderID
        assert seq[5].AveragePrice == entry * TICK and seq[5].Unsolicited == 1
        assert seq[9].LastFillPrice == target * TICK
        bal = seq[11]
        assert bal.CashBalance == pytest.approx(100_000 + 2 * 12.5)
        # solicited answers after the bracket: nothing open, flat
        n = len(c.msgs)
        c.send(M.OpenOrdersRequest(RequestID=21, RequestAllOrders=1))
        oo = await c.wait_for(lambda m: m.TYPE == T.ORDER_UPDATE and m.RequestID == 21, start=n)
        assert oo.NoOrders == 1 and oo.TotalNumMessages == 1 and oo.MessageNumber == 1
        c.send(M.CurrentPositionsRequest(RequestID=22))
        pos = await c.wait_for(lambda m: m.TYPE == T.POSITION_UPDATE and m.RequestID == 22, start=n)
        assert pos.NoPositions == 1
        c.send(M.AccountBalanceRequest(RequestID=23))
        b = await c.wait_for(lambda m: m.TYPE == T.ACCOUNT_BALANCE_UPDATE and m.RequestID == 23, start=n)
        assert b.Unsolicited == 0 and b.CashBalance == pytest.approx(100_025.0)
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_open_orders_positions_and_cancel(es_rec):
    ev = es_rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        srv.publish("ESH4", ev[:k])
        bb = srv.engine.books["ESH4"].best_bid()
        c = await RawClient().connect(srv.port)
        await c.logon()
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="M1", OrderType=1, BuySell=2, Quantity=2))
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="L1", OrderType=2, BuySell=1, Quantity=1,
                                      Price1=(bb - 10) * TICK))
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="L2", OrderType=2, BuySell=1, Quantity=1,
                                      Price1=(bb - 12) * TICK))
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="L1", OrderType=2, BuySell=1, Quantity=1,
                                      Price1=(bb - 12) * TICK))
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", TradeAccount="Live7", ClientOrderID="X", OrderType=1, BuySell=1, Quantity=1))
        await c.sync(1)
        rejects = [m for m in c.of(T.ORDER_UPDATE) if m.OrderUpdateReason == M.OrderUpdateReason.NEW_ORDER_REJECTED]
        assert [(m.ClientOrderID, "duplicate" in m.InfoText or "account" in m.InfoText) for m in rejects] == [("L1", True), ("X", True)]
        n = len(c.msgs)
        c.send(M.OpenOrdersRequest(RequestID=4, RequestAllOrders=1))
        await c.sync(2)
        oo = [m for m in c.msgs[n:] if m.TYPE == T.ORDER_UPDATE and m.RequestID == 4]
        assert [m.ClientOrderID for m in oo] == ["L1", "L2"]
        assert [(m.TotalNumMessages, m.MessageNumber) for m in oo] == [(2, 1), (2, 2)]
        assert all(m.OrderUpdateReason == M.OrderUpdateReason.OPEN_ORDERS_REQUEST_RESPONSE for m in oo)
        c.send(M.CurrentPositionsRequest(RequestID=5))
        pos = await c.wait_for(lambda m: m.TYPE == T.POSITION_UPDATE and m.RequestID == 5, start=n)
        assert pos.Quantity == -2.0 and pos.NoPositions == 0 and pos.TotalNumberMessages == 1
        # cancel by ServerOrderID: PENDING_CANCEL then CANCELED; unknown id: cancel rejected
        sid = oo[0].ServerOrderID
        n = len(c.msgs)
        c.send(M.CancelOrder(ServerOrderID=sid, ClientOrderID="L1"))
        c.send(M.CancelOrder(ServerOrderID="999999", ClientOrderID="??"))
        c.send(M.CancelOrder(ServerOrderID="", ClientOrderID="L2"))
        await c.sync(3)
        ou = [(m.ServerOrderID, int(m.OrderUpdateReason), int(m.OrderStatus)) for m in c.msgs[n:] if m.TYPE == T.ORDER_UPDATE]
        R, S = M.OrderUpdateReason, M.OrderStatus
        assert ou == [
            (sid, R.GENERAL_ORDER_UPDATE, S.ORDER_STATUS_PENDING_CANCEL),
            (sid, R.ORDER_CANCELED, S.ORDER_STATUS_CANCELED),
            ("", R.ORDER_CANCEL_REJECTED, S.ORDER_STATUS_REJECTED),
            ("", R.ORDER_CANCEL_REJECTED, S.ORDER_STATUS_REJECTED),
        ]
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_each_client_gets_only_its_own_rejections(es_rec):
    """Rejections made by the matching engine go to the connection whose request caused them
    (the connection travels with the request), never to the other logged-on clients."""
    ev = es_rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        srv.publish("ESH4", ev[:k])
        a = await RawClient().connect(srv.port)
        b = await RawClient().connect(srv.port)
        await a.logon()
        await b.logon()
        # interleaved: each request is refused by the engine, not by the server's own checks
        a.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="A1", OrderType=2, BuySell=1, Quantity=1,
                                      Price1=M.UNSET_DOUBLE))
        b.send(M.CancelOrder(ServerOrderID="424242", ClientOrderID="B-cancel"))
        b.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="B1", OrderType=1, BuySell=2, Quantity=0))
        a.send(M.CancelReplaceOrder(ServerOrderID="777", ClientOrderID="A-replace", Quantity=2))
        await a.sync(1)
        await b.sync(2)
        await a.sync(3)
        R = M.OrderUpdateReason
        refusals = (R.NEW_ORDER_REJECTED, R.ORDER_CANCEL_REJECTED, R.ORDER_CANCEL_REPLACE_REJECTED)

        def rejections(c):
            return [(m.ClientOrderID, int(m.OrderUpdateReason), m.InfoText.split(" ")[0])
                    for m in c.of(T.ORDER_UPDATE) if m.OrderUpdateReason in refusals]

        assert rejections(a) == [("A1", R.NEW_ORDER_REJECTED, "LIMIT"),
                                 ("", R.ORDER_CANCEL_REPLACE_REJECTED, "unknown")]
        assert rejections(b) == [("", R.ORDER_CANCEL_REJECTED, "unknown"),
                                 ("B1", R.NEW_ORDER_REJECTED, "quantity")]
        assert not srv.engine.open_orders()
        await a.close()
        await b.close()
    finally:
        await srv.stop()


@run_async
async def test_malformed_frames_never_crash_and_heartbeats(es_rec):
    clock = ManualClock()
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True, clock=clock)
    await srv.start()
    try:
        # JSON connection: garbage frames are skipped, the connection keeps working
        j = await RawClient(Encoding.JSON).connect(srv.port)
        j.writer.write(b'{"Type":1,"Heartbeat\x00not json at all\x00[1,2]\x00{"Type":"x"}\x00')
        r = await j.logon(heartbeat=1)
        assert r.Result == 1
        clock.advance(1.0)  # one heartbeat interval of the server's clock
        await j.wait_for(lambda m: m.TYPE == T.HEARTBEAT, timeout=5)
        assert srv.stats["malformed_frames"] >= 3
        # binary: a Size < 4 cannot be resynchronised -> LOGOFF with the reason, connection closed
        bad = await RawClient().connect(srv.port)
        bad.writer.write(struct.pack("<HH", 2, 3) + b"\xff" * 40)
        lo = await bad.wait_for(lambda m: m.TYPE == T.LOGOFF, timeout=5)
        assert lo.Reason
        # unknown type and truncated frames: skipped; the server still answers
        ok = await RawClient().connect(srv.port)
        ok.writer.write(struct.pack("<HH", 8, 9999) + b"\x00" * 4)
        await ok.logon()
        ok.send(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="NOPE"))
        rej = await ok.wait_for(lambda m: m.TYPE == T.MARKET_DEPTH_REJECT)
        assert "NOPE" in rej.RejectText
        # requests before logon are ignored, not answered
        pre = await RawClient().connect(srv.port)
        pre.send(M.TradeAccountsRequest(RequestID=1))
        await pre.logon()
        await pre.sync(2)
        assert [m.RequestID for m in pre.of(T.TRADE_ACCOUNT_RESPONSE)] == [2]
        assert srv.stats["ignored_before_logon"] >= 1
        for cl in (j, ok, pre):
            await cl.close()
    finally:
        await srv.stop()


@run_async
async def test_real_time_replay_pause_and_speed(es_rec):
    """At real time x speed the replay advances with the server's clock; pause stops it."""
    clock = ManualClock()
    srv = DTCServer(es_rec, port=0, speed=50.0, loop_replay=True, max_gap_s=0.5, paused=True, clock=clock)
    await srv.start()
    try:
        c = await RawClient().connect(srv.port)
        await c.logon(integer_1=int(M.LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES))
        c.send(M.MarketDepthRequest(RequestAction=1, SymbolID=4, Symbol="ESH4"))
        await c.sync(1)

        def pos():
            return srv.stats["replay"]["ESH4"]["position"]

        srv.resume()
        for _ in range(3):  # each move of the clock (0.6 s x 50 = 30 s of recording) replays more
            before = pos()
            clock.advance(0.6)
            assert await until(lambda: pos() > before)
        assert pos() > 0  # the snapshot (and the first events) went out
        srv.pause()
        p2 = pos()
        t2 = srv.symbols["ESH4"].clock.replay_time_ns()
        clock.advance(5.0)
        await c.sync(11)  # a round trip: the replay task had its turns on the loop
        assert pos() == p2
        assert srv.symbols["ESH4"].clock.replay_time_ns() == t2
        srv.set_speed(0)  # maximum: no clock needed
        srv.resume()
        assert await until(lambda: srv.stats["replay"]["ESH4"]["loops"] >= 1, timeout=60)
        # after looping back (clear -> deletes of every level -> the recording's snapshot) the
        # client's book still equals the server's, level by level
        srv.pause()
        await c.sync(2)
        bids, asks = client_book(c.msgs, 4)
        book = srv.engine.books["ESH4"]
        assert book.best_bid() is not None
        assert bids == book.bids() and asks == book.asks()
        # 140 batches: every BEGIN (3) is closed by a TRUE (1) before the next BEGIN
        fin = [m.FinalUpdateInBatch for m in c.of(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS)]
        opened = False
        for f in fin:
            if f == 3:
                assert not opened
                opened = True
            elif f == 1:
                opened = False
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_heartbeat_timeout_fixed_encoding_and_password(es_rec):
    clock = ManualClock()
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True, encoding=Encoding.JSON, password="pw",
                    clock=clock)
    await srv.start()
    try:
        # fixed JSON encoding: JSON from the first byte; a request for binary is answered "JSON"
        c = RawClient(Encoding.JSON)
        c.reader, c.writer = await asyncio.open_connection("127.0.0.1", srv.port)
        c.dec.encoding = Encoding.JSON
        c._task = asyncio.create_task(c._read())
        c.send(M.EncodingRequest(Encoding=int(Encoding.BINARY)))
        er = await c.wait_for(lambda m: m.TYPE == T.ENCODING_RESPONSE)
        assert er.Encoding == Encoding.JSON
        c.send(M.LogonRequest(HeartbeatIntervalInSeconds=1, Password="pw", ClientName="t"))
        r = await c.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)
        assert r.Result == 1
        (conn,) = srv.conns.values()
        # the server's heartbeats follow its clock and carry its wall time (s)
        clock.advance(1.0)
        hb = await c.wait_for(lambda m: m.TYPE == T.HEARTBEAT)
        assert hb.CurrentDateTime == clock.time_ns() // 1_000_000_000
        # a silent client (no heartbeats) is dropped after 2 x 1 s (+1 s slack) with a LOGOFF
        clock.advance(1.9)  # 2.9 s of silence: still served
        assert conn.logged_on and not conn.closed
        clock.advance(0.1)
        assert conn.closed
        lo = await c.wait_for(lambda m: m.TYPE == T.LOGOFF, timeout=8)
        assert "heartbeat" in lo.Reason
        # wrong password: LOGON_ERROR_NO_RECONNECT and closed
        w = RawClient(Encoding.JSON)
        w.reader, w.writer = await asyncio.open_connection("127.0.0.1", srv.port)
        w.dec.encoding = Encoding.JSON
        w._task = asyncio.create_task(w._read())
        w.send(M.LogonRequest(HeartbeatIntervalInSeconds=10, Password="nope"))
        r2 = await w.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)
        assert r2.Result == M.LogonStatus.LOGON_ERROR_NO_RECONNECT
        await asyncio.wait_for(w._task, 5)
        assert w.closed
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_bracket_with_offsets_and_stop_exit(es_rec):
    """A short bracket with UseOffsets: the stop (above) fills before the target when the data says so."""
    ev = es_rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1
    ref = ReferenceBook()
    ref.apply(ev[:k])
    entry = ref.best_bid()  # market sell fills at the best bid
    tr_idx = np.flatnonzero(ev["kind"][k:] == KIND_TRADE) + k
    prices = ev["price"][tr_idx]
    # stop 2 ticks above the entry must be reached before the target far below
    hit = np.flatnonzero(prices >= entry + 2)
    assert len(hit)
    j = int(tr_idx[hit[0]])
    target_off = int(entry - prices[: hit[0] + 1].min()) + 4
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        srv.publish("ESH4", ev[:k])
        c = await RawClient().connect(srv.port)
        await c.logon()
        start = len(c.msgs)
        c.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="P", OrderType=1, BuySell=2, Quantity=2,
                                      Price1=entry * TICK, IsParentOrder=1))
        c.send(M.SubmitNewOCOOrder(Symbol="ESH4", ClientOrderID_1="TGT", OrderType_1=2, BuySell_1=1, Quantity_1=2,
                                   ClientOrderID_2="STP", OrderType_2=3, BuySell_2=1, Quantity_2=2,
                                   ParentTriggerClientOrderID="P", UseOffsets=1,
                                   OffsetFromParent1=target_off * TICK, OffsetFromParent2=2 * TICK))
        await c.sync(1)
        accepted = {m.ClientOrderID: m for m in c.msgs[start:] if m.TYPE == T.ORDER_UPDATE
                    and m.OrderUpdateReason == M.OrderUpdateReason.NEW_ORDER_ACCEPTED}
        assert accepted["TGT"].Price1 == (entry - target_off) * TICK
        assert accepted["STP"].Price1 == (entry + 2) * TICK
        srv.publish("ESH4", ev[k:j + 1])
        await c.sync(2)
        fills = [(m.ClientOrderID, int(m.OrderStatus)) for m in c.msgs[start:] if m.TYPE == T.ORDER_UPDATE
                 and m.OrderUpdateReason in (M.OrderUpdateReason.ORDER_FILLED, M.OrderUpdateReason.ORDER_CANCELED)]
        assert fills[0] == ("P", M.OrderStatus.ORDER_STATUS_FILLED)
        assert ("STP", M.OrderStatus.ORDER_STATUS_FILLED) in fills
        assert fills[-1] == ("TGT", M.OrderStatus.ORDER_STATUS_CANCELED)
        pos = [m for m in c.msgs[start:] if m.TYPE == T.POSITION_UPDATE]
        assert pos[0].Quantity == -2 and pos[-1].Quantity == 0
        assert srv.engine.position("ESH4").realized_pnl < 0  # a stop-out loses money
        await c.close()
    finally:
        await srv.stop()


@run_async
async def test_pipelined_negotiation_and_json_autodetect(es_rec):
    srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
    await srv.start()
    try:
        # binary ENCODING_REQUEST immediately followed by a JSON LOGON_REQUEST in the same write
        c = RawClient(Encoding.JSON)
        c.reader, c.writer = await asyncio.open_connection("127.0.0.1", srv.port)
        c._task = asyncio.create_task(c._read())
        c.writer.write(codec.encoding_request(Encoding.JSON)
                       + codec.encode(M.LogonRequest(HeartbeatIntervalInSeconds=10), Encoding.JSON))
        er = await c.wait_for(lambda m: m.TYPE == T.ENCODING_RESPONSE)
        assert er.Encoding == Encoding.JSON
        assert (await c.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)).Result == 1
        # no negotiation at all: a connection starting with '{' is JSON
        d = RawClient(Encoding.JSON)
        d.reader, d.writer = await asyncio.open_connection("127.0.0.1", srv.port)
        d.dec.encoding = Encoding.JSON
        d._task = asyncio.create_task(d._read())
        d.send(M.LogonRequest(HeartbeatIntervalInSeconds=10))
        assert (await d.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)).Result == 1
        await c.close()
        await d.close()
    finally:
        await srv.stop()
