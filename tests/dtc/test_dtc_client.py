"""DTCClient against a tiny scripted DTC server on loopback (the real server's tests are B's)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from app.dtc import batch as B
from app.dtc import client as CL
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.core import events as ev
from app.core.clock import ManualClock

TICK = 0.25


def _depth_snapshot():
    e = ev.depth_events(ts=np.full(6, 1_700_000_000_000_000_000), price=[19240, 19239, 19238, 19241, 19242, 19243],
                        size=[5.0, 7, 9, 4, 6, 8], side=[1, 1, 1, 2, 2, 2], op=1)
    return e


def _depth_updates(n=50):
    rng = np.random.default_rng(0)
    return ev.depth_events(ts=1_700_000_001_000_000_000 + np.arange(n) * 1_000_000,
                           price=np.where(np.arange(n) % 2 == 0, 19240 - rng.integers(0, 5, n), 19241 + rng.integers(0, 5, n)),
                           size=rng.integers(1, 30, n).astype(float), side=np.where(np.arange(n) % 2 == 0, 1, 2),
                           op=1, flags=ev.FLAG_BATCH_END)


class FakeServer:
    """Minimal DTC server: negotiation, logon, heartbeats, sec defs, subscriptions, requests, orders."""

    def __init__(self, *, grant=None, heartbeat=True, reject_symbols=("ESZ5-REJECT",), depth_type=140,
                 untimed_depth_only=False):
        self.grant = grant
        self.untimed_depth_only = untimed_depth_only
        self.send_heartbeats = heartbeat
        self.reject_symbols = set(reject_symbols)
        self.depth_type = depth_type
        self.received: list = []
        self.writers: list = []
        self.connections = 0
        self.subscribe_requests: list = []
        self.server = None
        self.port = 0
        self.silent = False

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()

    def drop_all(self):
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def _handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        dec = C.Decoder(Encoding.BINARY)
        enc = Encoding.BINARY

        def send(msg):
            writer.write(C.encode(msg, enc))

        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for m in dec.feed(data):
                    self.received.append(m)
                    t = m.TYPE
                    if self.silent:
                        continue
                    if t == T.ENCODING_REQUEST:
                        granted = self.grant if self.grant is not None else m.Encoding
                        writer.write(C.encode(M.EncodingResponse(Encoding=granted), enc))
                        enc = Encoding(granted)
                        dec.encoding = enc
                    elif t == T.LOGON_REQUEST:
                        ok = m.Password != "wrong"
                        send(M.LogonResponse(Result=1 if ok else 3, ResultText="ok" if ok else "bad password",
                                             ServerName="fake", SecurityDefinitionsSupported=1,
                                             TradingIsSupported=1))
                    elif t == T.SECURITY_DEFINITION_FOR_SYMBOL_REQUEST:
                        if m.Symbol == "NODEF":
                            send(M.SecurityDefinitionReject(RequestID=m.RequestID, RejectText="unknown symbol"))
                        else:
                            send(M.SecurityDefinitionResponse(RequestID=m.RequestID, Symbol=m.Symbol,
                                                              MinPriceIncrement=TICK, IsFinalMessage=1))
                    elif t == T.MARKET_DATA_REQUEST:
                        self.subscribe_requests.append((m.Symbol, m.SymbolID, m.RequestAction))
                        if m.Symbol in self.reject_symbols:
                            send(M.MarketDataReject(SymbolID=m.SymbolID, RejectText="CME data not available"))
                        elif m.RequestAction == 1:
                            send(M.MarketDataSnapshot(SymbolID=m.SymbolID, BidPrice=4810.0, AskPrice=4810.25))
                            send(M.MarketDataUpdateBidAsk(SymbolID=m.SymbolID, BidPrice=4810.0, BidQuantity=5,
                                                          AskPrice=4810.25, AskQuantity=7, DateTime=1_700_000_000))
                    elif t == T.MARKET_DEPTH_REQUEST and m.RequestAction == 1 and self.untimed_depth_only:
                        writer.write(B.encode_depth_batch(_depth_updates(), TICK, m.SymbolID, enc, msg_type=141))
                    elif t == T.MARKET_DEPTH_REQUEST and m.RequestAction == 1 and m.Symbol not in self.reject_symbols:
                        sid = m.SymbolID
                        writer.write(B.encode_depth_batch(_depth_snapshot(), TICK, sid, enc, msg_type=122))
                        writer.write(B.encode_depth_batch(_depth_updates(), TICK, sid, enc, msg_type=self.depth_type))
                        tr = ev.trade_events(ts=[1_700_000_002_000_000_000], price=[19241], size=[2.0], side=[2])
                        writer.write(B.encode_trade_batch(tr, TICK, sid, enc, msg_type=107))
                    elif t == T.HEARTBEAT:
                        if self.send_heartbeats:
                            send(M.Heartbeat(CurrentDateTime=int(time.time())))
                    elif t == T.TRADE_ACCOUNTS_REQUEST:
                        for i, a in enumerate(("Sim1", "Sim2")):
                            send(M.TradeAccountResponse(RequestID=m.RequestID, TotalNumberMessages=2,
                                                        MessageNumber=i + 1, TradeAccount=a))
                    elif t == T.CURRENT_POSITIONS_REQUEST:
                        send(M.PositionUpdate(RequestID=m.RequestID, TotalNumberMessages=1, MessageNumber=1,
                                              NoPositions=1, TradeAccount=m.TradeAccount))
                    elif t == T.OPEN_ORDERS_REQUEST:
                        for i in range(2):
                            send(M.OrderUpdate(RequestID=m.RequestID, TotalNumMessages=2, MessageNumber=i + 1,
                                               ServerOrderID=f"S{i}", ClientOrderID=f"c{i}", OrderStatus=4,
                                               OrderUpdateReason=1, TradeAccount=m.TradeAccount))
                    elif t == T.ACCOUNT_BALANCE_REQUEST:
                        send(M.AccountBalanceUpdate(RequestID=m.RequestID, TotalNumberMessages=1, MessageNumber=1,
                                                    TradeAccount=m.TradeAccount or "Sim1", CashBalance=50_000.0))
                    elif t == T.SUBMIT_NEW_SINGLE_ORDER:
                        send(M.OrderUpdate(TotalNumMessages=1, MessageNumber=1, Symbol=m.Symbol,
                                           ClientOrderID=m.ClientOrderID, ServerOrderID="S100", OrderStatus=2,
                                           OrderUpdateReason=2, TradeAccount=m.TradeAccount))
                    elif t == T.HISTORICAL_PRICE_DATA_REQUEST:
                        send(M.HistoricalPriceDataResponseHeader(RequestID=m.RequestID, RecordInterval=60))
                        for i in range(3):
                            send(M.HistoricalPriceDataRecordResponse(RequestID=m.RequestID,
                                                                     StartDateTime=(1_700_000_000 + 60 * i) * 10**6,
                                                                     OpenPrice=4800 + i, HighPrice=4801 + i,
                                                                     LowPrice=4799 + i, LastPrice=4800.5 + i,
                                                                     Volume=100 + i))
                        send(M.HistoricalPriceDataRecordResponse(RequestID=m.RequestID, IsFinalRecord=1))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout=5.0):
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


@pytest.mark.parametrize("enc", [Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT])
def test_connect_subscribe_and_requests(enc):
    async def main():
        srv = FakeServer()
        await srv.start()
        states = []
        cl = CL.DTCClient("127.0.0.1", srv.port, encoding=enc, heartbeat_s=5, trade_account="Sim1",
                          on_state=states.append)
        try:
            lr = await cl.connect()
            assert lr.Result == 1 and cl.negotiated_encoding == enc and cl.state == "connected"
            logon = [m for m in srv.received if m.TYPE == T.LOGON_REQUEST][0]
            assert logon.Integer_1 & 0x80  # float depth updates (140) asked for
            assert not logon.Integer_1 & 0x800  # 122 snapshots (explicit first/last flags) kept
            assert logon.HeartbeatIntervalInSeconds == 5 and logon.ClientName == "MIA Elite"
            batches = []
            sub = await cl.subscribe_market("ESZ5", depth=True, on_events=batches.append)
            assert sub.tick_size == TICK
            await until(lambda: sum(len(b) for b in batches) >= 6 + 1 + 50 + 1 + 2, 2.0)
            allev = np.concatenate(batches)
            depth = allev[allev["kind"] == ev.KIND_DEPTH]
            assert depth[0]["op"] == ev.OP_CLEAR  # snapshot starts with a clear
            snap = depth[1:7]
            assert np.array_equal(snap["price"], _depth_snapshot()["price"])
            assert snap[-1]["flags"] & ev.FLAG_BATCH_END
            upd = depth[7:]
            assert np.array_equal(upd["price"], _depth_updates()["price"])
            assert (upd["flags"] & ev.FLAG_BATCH_END).all()
            trades = allev[allev["kind"] == ev.KIND_TRADE]
            assert trades["price"].tolist() == [19241] and trades["side"].tolist() == [2]
            quotes = allev[allev["kind"] == ev.KIND_QUOTE]
            assert sorted(quotes["price"].tolist()) == [19240, 19241]
            assert (allev["symbol_id"] == sub.symbol_id).all()
            # requests
            assert await cl.trade_accounts() == ["Sim1", "Sim2"]
            assert await cl.positions() == []
            orders = await cl.open_orders()
            assert [o.ServerOrderID for o in orders] == ["S0", "S1"]
            bal = await cl.account_balance()
            assert bal.CashBalance == 50_000.0
            with pytest.raises(CL.RequestRejected, match="unknown symbol"):
                await cl.security_definition("NODEF")
            # an order and its update through a listener
            got = asyncio.get_running_loop().create_future()
            cl.add_listener(T.ORDER_UPDATE, lambda m: got.done() or got.set_result(m))
            cid = cl.submit_order(M.SubmitNewSingleOrder(Symbol="ESZ5", OrderType=1, BuySell=1, Quantity=1))
            upd_msg = await asyncio.wait_for(got, 5)
            assert upd_msg.ClientOrderID == cid and upd_msg.TradeAccount == "Sim1"
            assert cl.orders[cid].ServerOrderID == "S100"
            assert cl.messages_received > 60 and cl.decode_errors == 0
        finally:
            await cl.close()
            await srv.stop()
        assert states[:4] == ["connecting", "negotiating", "logging_on", "connected"]
        assert states[-1] == "closed"

    run(main())


def test_market_data_reject_is_typed_with_the_sierra_advice():
    async def main():
        srv = FakeServer()
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port, heartbeat_s=5)
        try:
            await cl.connect()
            with pytest.raises(CL.MarketDataRejected) as ei:
                await cl.subscribe_market("ESZ5-REJECT", depth=True)
            err = ei.value
            assert err.symbol == "ESZ5-REJECT" and err.text == "CME data not available"
            msg = str(err)
            assert "Sierra Chart" in msg and "Data/ESZ5-REJECT.scid" in msg and "MarketDepthData" in msg
            assert "Record Market Depth Data" in msg
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_logon_refused_raises():
    async def main():
        srv = FakeServer()
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port, password="wrong")
        try:
            with pytest.raises(CL.LogonError, match="bad password"):
                await cl.connect()
            assert cl.state == "disconnected"
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_connect_refused_raises_oserror():
    async def main():
        srv = FakeServer()
        await srv.start()
        port = srv.port
        await srv.stop()
        cl = CL.DTCClient("127.0.0.1", port, connect_timeout_s=3)
        with pytest.raises(OSError):
            await cl.connect()
        await cl.close()

    run(main())


def test_reconnect_and_resubscribe_after_drop():
    async def main():
        srv = FakeServer()
        await srv.start()
        states = []
        cl = CL.DTCClient("127.0.0.1", srv.port, heartbeat_s=5, backoff_initial_s=0.05, on_state=states.append)
        batches = []
        try:
            await cl.connect()
            sub = await cl.subscribe_market("ESZ5", on_events=batches.append)
            srv.drop_all()
            await until(lambda: srv.connections >= 2 and cl.state == "connected"
                        and len([r for r in srv.subscribe_requests if r[0] == "ESZ5"]) >= 2, 4.0)
            assert "reconnecting" in states and cl.state == "connected" and cl.reconnects == 1
            subs = [r for r in srv.subscribe_requests if r[0] == "ESZ5"]
            assert len(subs) == 2 and subs[0][1] == subs[1][1] == sub.symbol_id  # same SymbolID
            def n_clears():
                return sum(int((b["op"] == ev.OP_CLEAR).sum()) for b in batches)

            await until(lambda: n_clears() >= 2, 2.0)
            clears = n_clears()
            assert clears == 2  # the resubscription starts again from a snapshot
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_heartbeat_silence_triggers_reconnect():
    """The heartbeat and the silent-peer deadline follow the client's clock: a ManualClock
    moved by 2 x the interval resets the connection, 1.98 x does not."""
    async def main():
        srv = FakeServer(heartbeat=False)
        await srv.start()
        clock = ManualClock()
        cl = CL.DTCClient("127.0.0.1", srv.port, heartbeat_s=5, backoff_initial_s=0.05, clock=clock)
        try:
            await cl.connect()
            clock.advance(5.0)  # a heartbeat is due one interval after logon
            await until(lambda: any(m.TYPE == T.HEARTBEAT for m in srv.received))
            clock.advance(4.9)  # 9.9 s of silence: still alive
            assert cl.state == "connected" and srv.connections == 1
            clock.advance(0.1)  # 10 s = 2 x heartbeat: reset, reconnect after the backoff
            await until(lambda: srv.connections >= 2)
            hb_sent = sum(1 for m in srv.received if m.TYPE == T.HEARTBEAT)
            assert hb_sent >= 1  # the client sends heartbeats
            assert srv.connections >= 2  # silence of 2x interval made it reconnect
            assert [m.Reason for m in srv.received if m.TYPE == T.LOGOFF][:1] == \
                ["no data for 10.0 s (2 x heartbeat 5 s)"]
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_held_untimed_depth_is_released_when_the_clock_passes_the_hold():
    """Untimed depth (141) before any market time is held; with no further byte arriving, the
    client releases it as soon as its ManualClock passes ``untimed_hold_s``, stamped with the
    clock's wall time (handled before ``advance`` returns, on the event loop's thread)."""
    async def main():
        srv = FakeServer(untimed_depth_only=True)
        await srv.start()
        clock = ManualClock()
        cl = CL.DTCClient("127.0.0.1", srv.port, heartbeat_s=5, untimed_hold_s=2.0, clock=clock)
        batches = []
        try:
            await cl.connect()
            await cl.subscribe_market("ESZ5", on_events=batches.append)
            await cl.trade_accounts()  # answered after the depth bytes: they are in, and held
            depth = lambda: [b for b in batches if (b["kind"] == ev.KIND_DEPTH).any()]  # noqa: E731
            assert depth() == []
            clock.advance(1.99)
            assert depth() == []
            clock.advance(0.01)
            (arr,) = depth()
            assert len(arr) == 50 and (arr["ts"] == clock.time_ns()).all()
            assert np.array_equal(arr["price"], _depth_updates()["price"])
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_server_granting_another_encoding_is_followed():
    async def main():
        srv = FakeServer(grant=Encoding.JSON)
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port, encoding=Encoding.BINARY)
        try:
            await cl.connect()
            assert cl.negotiated_encoding == Encoding.JSON
            assert await cl.trade_accounts() == ["Sim1", "Sim2"]
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_historical_on_its_own_connection():
    async def main():
        srv = FakeServer()
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port)
        try:
            await cl.connect()
            bars = await cl.historical("ESZ5", interval=60, timeout=10)
            assert [b.OpenPrice for b in bars] == [4800, 4801, 4802]
            assert srv.connections == 2
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_garbage_from_server_is_counted_not_raised():
    async def main():
        srv = FakeServer()
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port, encoding=Encoding.JSON, backoff_initial_s=0.05)
        try:
            await cl.connect()
            w = srv.writers[-1]
            w.write(b'{"Type":3,"F":["bad"]}\x00{nonsense\x00')
            await until(lambda: cl.decode_errors >= 2, 2.0)
            assert cl.decode_errors == 2 and cl.state == "connected"
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_probe_prints_a_sane_book_and_exit_codes():
    import io

    from app.cli import probe

    async def main():
        srv = FakeServer()
        await srv.start()
        try:
            out = io.StringIO()
            code = await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=1.2, heartbeat_s=5, out=out)
            text = out.getvalue()
            assert code == 0, text
            # the fake book: bids 4810.00/4809.75/4809.50, asks 4810.25/... then updates around them
            line = [ln for ln in text.splitlines() if " levels " in ln][-1]
            bid = float(line.split(" bid ")[1].split(" x ")[0])
            ask = float(line.split(" ask ")[1].split(" x ")[0])
            assert 4800 < bid < ask < 4820 and "CROSSED" not in line
            assert "errors 0" in line and "summary:" in text
            out2 = io.StringIO()
            assert await probe.probe("127.0.0.1", srv.port, "ESZ5-REJECT", seconds=0.5, out=out2) == 2
            assert "Record Market Depth Data" in out2.getvalue()
        finally:
            await srv.stop()
        out3 = io.StringIO()
        assert await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=0.5, connect_timeout_s=2, out=out3) == 2

    run(main())


def test_probe_address_parsing():
    from app.cli.probe import parse_address

    assert parse_address("127.0.0.1:11099") == ("127.0.0.1", 11099)
    assert parse_address("[::1]:5000") == ("::1", 5000)
    for bad in ("localhost", "host:0", "host:abc", ":11099"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_no_security_definition_still_surfaces_the_market_data_reject():
    async def main():
        srv = FakeServer(reject_symbols=("NODEF",))
        await srv.start()
        cl = CL.DTCClient("127.0.0.1", srv.port, subscribe_timeout_s=2)
        try:
            await cl.connect()
            with pytest.raises(CL.MarketDataRejected):
                await cl.subscribe_market("NODEF")
            srv.reject_symbols.clear()
            with pytest.raises(ValueError, match="tick_size"):
                await cl.subscribe_market("NODEF")
            sub = await cl.subscribe_market("NODEF", tick_size=0.25)  # explicit tick works
            assert sub.tick_size == 0.25
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_handshake_deadline_follows_the_clock():
    """A server that never answers the ENCODING_REQUEST: connect raises TimeoutError once the
    client's clock has passed connect_timeout_s (and not before)."""
    async def main():
        srv = FakeServer()
        srv.silent = True
        await srv.start()
        clock = ManualClock()
        cl = CL.DTCClient("127.0.0.1", srv.port, connect_timeout_s=3, reconnect=False, clock=clock)
        try:
            task = asyncio.ensure_future(cl.connect())
            assert await until(lambda: any(m.TYPE == T.ENCODING_REQUEST for m in srv.received))
            clock.advance(2.9)
            await asyncio.sleep(0)  # let the connect task run: it must still wait
            assert not task.done() and cl.state == "negotiating"
            clock.advance(0.1)
            with pytest.raises(asyncio.TimeoutError, match="no ENCODING_RESPONSE within 3 s"):
                await asyncio.wait_for(task, 5)
            assert cl.state == "disconnected"
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_market_data_of_one_read_is_handed_over_as_one_batch_in_stream_order():
    """The depth/trade runs and BBO quotes decoded from one socket read reach ``on_events`` as
    one joined batch, in stream order; a non-market message (an order update) that follows
    them is dispatched only after they were handed over, so the relative order stays."""

    class Session:  # what DTCClient._process reads from the sans-I/O session
        messages = 0

        def __init__(self, items):
            self.items = items

        def events_received(self):
            items, self.items = self.items, []
            return items

        def data_to_send(self):
            return b""

        def next_deadline_ns(self):
            return None

    cl = CL.DTCClient("127.0.0.1", 1)
    seen = []
    sub = CL.Subscription("ESZ5", "", 7, TICK, on_events=lambda b: seen.append(("events", b.copy())))
    cl.subscriptions[7] = sub
    cl.add_listener(T.ORDER_UPDATE, lambda m: seen.append(("order", m.ClientOrderID)))

    def run_of(prices, ts):
        a = ev.empty(len(prices))
        a["kind"], a["symbol_id"], a["price"], a["ts"] = ev.KIND_DEPTH, 7, prices, ts
        return a

    quote = M.MarketDataUpdateBidAsk(SymbolID=7, BidPrice=100 * TICK, BidQuantity=3.0, AskPrice=101 * TICK,
                                     AskQuantity=4.0, DateTime=1_700_000_000)
    cl._process(Session([run_of([1, 2], 5), quote, run_of([3], 6),
                         M.OrderUpdate(ClientOrderID="c1"), run_of([4, 5], 7)]))
    assert [k for k, _ in seen] == ["events", "order", "events"]
    first = seen[0][1]
    assert first["price"].tolist() == [1, 2, 100, 101, 3]  # one batch, stream order kept
    assert first["kind"].tolist() == [ev.KIND_DEPTH] * 2 + [ev.KIND_QUOTE] * 2 + [ev.KIND_DEPTH]
    assert first["size"][2:4].tolist() == [3.0, 4.0] and first["side"][2:4].tolist() == [ev.SIDE_BID, ev.SIDE_ASK]
    assert (first["ts"][2:4] == 1_700_000_000 * 1_000_000_000).all()
    assert seen[2][1]["price"].tolist() == [4, 5]
    assert sub.events == 7
    # outside a read (no dispatch running) a batch is handed over at once
    cl._deliver(7, run_of([9], 8))
    assert seen[-1][1]["price"].tolist() == [9]
