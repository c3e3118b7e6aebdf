"""DTC over WebSocket on the server's listening port (issue 13 item 14), with the ``websockets``
client library: logon, depth, a market order and its ORDER_UPDATEs, on the shipped real ES sample.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect

from app.core.events import KIND_TRADE
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.feeds.samples import load_default_sample
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(120)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def rec():
    return load_default_sample()


class WsClient:
    """A web client: one DTC JSON message per WebSocket text message, NUL-terminated."""

    def __init__(self, ws):
        self.ws = ws
        self.dec = C.Decoder(Encoding.JSON)
        self.msgs: list = []
        self.raw: list[str] = []

    def send(self, msg, encoding=Encoding.JSON):
        return self.ws.send(C.encode(msg, encoding).decode("ascii"))

    async def wait_for(self, pred, timeout=10.0, start=0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        i = start
        while True:
            while i < len(self.msgs):
                if pred(self.msgs[i]):
                    return self.msgs[i]
                i += 1
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message; last {self.msgs[-3:]!r}")
            data = await asyncio.wait_for(self.ws.recv(), left)
            text = data if isinstance(data, str) else data.decode()
            self.raw.append(text)
            self.msgs.extend(self.dec.feed(text.encode()))


def test_websocket_logon_depth_and_a_market_order_with_its_order_updates(rec):
    ev = rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1  # the book in continuous trading

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            srv.publish("ESH4", ev[:k])
            async with connect(f"ws://127.0.0.1:{srv.port}/", max_size=None) as ws:
                c = WsClient(ws)
                await c.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10, ClientName="web"))
                lr = await c.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)
                assert lr.Result == 1 and lr.MarketDepthIsSupported == 1
                # every server message is one WebSocket text message ending in one NUL
                assert all(t.endswith("\x00") and t.count("\x00") == 1 for t in c.raw)
                assert json.loads(c.raw[0][:-1])["Type"] == T.LOGON_RESPONSE
                # depth: a snapshot of the published book, in compact JSON (Sierra Chart's WebSocket encoding)
                await c.send(M.MarketDepthRequest(RequestAction=1, SymbolID=7, Symbol="ESH4", NumLevels=10))
                last = await c.wait_for(lambda m: m.TYPE == T.MARKET_DEPTH_SNAPSHOT_LEVEL and m.IsLastMessageInBatch)
                levels = [m for m in c.msgs if m.TYPE == T.MARKET_DEPTH_SNAPSHOT_LEVEL]
                assert last.SymbolID == 7 and {m.Side for m in levels} == {1, 2}
                snap_raw = [t for t in c.raw if '"Type":122' in t]
                assert snap_raw and all('"F":[' in t for t in snap_raw)
                best_ask = min(m.Price for m in levels if m.Side == 2)
                # a market buy and its ORDER_UPDATEs
                n = len(c.msgs)
                await c.send(M.SubmitNewSingleOrder(Symbol="ESH4", TradeAccount="Sim1", ClientOrderID="W1",
                                                    OrderType=1, BuySell=1, Quantity=1, TimeInForce=1))
                srv.publish("ESH4", ev[k:k + 2000])
                fill = await c.wait_for(lambda m: m.TYPE == T.ORDER_UPDATE and m.ClientOrderID == "W1"
                                        and m.OrderStatus == M.OrderStatus.ORDER_STATUS_FILLED, start=n)
                ups = [m for m in c.msgs[n:] if m.TYPE == T.ORDER_UPDATE and m.ClientOrderID == "W1"]
                assert ups[0].OrderUpdateReason == M.OrderUpdateReason.NEW_ORDER_ACCEPTED
                assert fill.LastFillQuantity == 1 and abs(fill.LastFillPrice - best_ask) <= 4 * 0.25
                pos = await c.wait_for(lambda m: m.TYPE == T.POSITION_UPDATE and m.Quantity == 1, start=n)
                assert pos.Symbol == "ESH4"
                # the venue's own state: the engine holds the position
                assert srv.engine.position("ESH4").qty == 1
                assert srv.stats["malformed_frames"] == 0
        finally:
            await srv.stop()

    run(main())


def test_websocket_message_without_nul_ping_and_close(rec):
    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            async with connect(f"ws://127.0.0.1:{srv.port}/dtc") as ws:
                c = WsClient(ws)
                # a web client that forgot the NUL, and two DTC messages in one WebSocket message
                logon = C.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10), Encoding.JSON)
                await ws.send(logon[:-1].decode())
                await c.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)
                two = C.encode(M.TradeAccountsRequest(RequestID=1), Encoding.JSON) + C.encode(
                    M.SecurityDefinitionForSymbolRequest(RequestID=2, Symbol="ESH4"), Encoding.JSON)
                await ws.send(two.decode())
                await c.wait_for(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE and m.RequestID == 1)
                sd = await c.wait_for(lambda m: m.TYPE == T.SECURITY_DEFINITION_RESPONSE and m.RequestID == 2)
                assert sd.MinPriceIncrement == pytest.approx(0.25)
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)
            # the closing handshake ended the connection on the server too
            for _ in range(500):
                if not srv.conns:
                    break
                await asyncio.sleep(0.01)
            assert not srv.conns
            # a plain binary client on the same port still works
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(C.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10)))
            dec = C.Decoder(Encoding.BINARY)
            got: list = []
            while not got:
                data = await asyncio.wait_for(r.read(65536), 5)
                assert data
                got = [m for m in dec.feed(data) if m.TYPE == T.LOGON_RESPONSE]
            w.close()
        finally:
            await srv.stop()

    run(main())
