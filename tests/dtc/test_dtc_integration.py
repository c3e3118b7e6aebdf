"""DTCClient against the built-in DTCServer replaying the real CME ES hour (loopback).

The client's book, rebuilt only from the event batches it delivers, must equal the book rebuilt
directly from the recording, also when the server drops the connection mid-stream (the client
reconnects, resubscribes with the same SymbolID and starts again from a snapshot).
"""

from __future__ import annotations

import asyncio

import pytest

from app.dtc.client import DTCClient
from app.dtc.messages import Encoding
from app.sim.server import DTCServer
from app.core.events import KIND_DEPTH, KIND_TRADE
from app.market.refbook import ReferenceBook
from app.feeds.samples import load_default_sample


@pytest.fixture(scope="module")
def es_rec():
    return load_default_sample()


@pytest.fixture(scope="module")
def ref_book(es_rec):
    ref = ReferenceBook()
    ref.apply(es_rec.events)
    return ref


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _settle(client: DTCClient, server: DTCServer, timeout: float = 60.0) -> None:
    """Wait for the replay to end, then for the client to have read everything before an answer."""
    assert await server.wait_replay_done(timeout)
    for _ in range(3):  # a request's answer comes after every byte sent before it (TCP order)
        await client.trade_accounts()


@pytest.mark.parametrize("encoding,depth_float", [(Encoding.BINARY, True), (Encoding.BINARY, False),
                                                  (Encoding.JSON_COMPACT, True)])
def test_client_book_equals_file_book(es_rec, ref_book, encoding, depth_float):
    async def main():
        srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        book = ReferenceBook()
        counts = {"trades": 0, "depth": 0}

        def on_events(batch):
            book.apply(batch)
            counts["trades"] += int((batch["kind"] == KIND_TRADE).sum())
            counts["depth"] += int((batch["kind"] == KIND_DEPTH).sum())

        cl = DTCClient("127.0.0.1", srv.port, encoding=encoding, depth_float=depth_float, heartbeat_s=5)
        try:
            await cl.connect()
            sub = await cl.subscribe_market(es_rec.instrument.symbol, on_events=on_events)
            assert sub.tick_size == es_rec.instrument.tick_size
            srv.resume()
            await _settle(cl, srv)
            assert book.bids() == ref_book.bids()
            assert book.asks() == ref_book.asks()
            assert counts["trades"] == int((es_rec.events["kind"] == KIND_TRADE).sum())
            assert cl.decode_errors == 0 and cl.messages_received > 60_000
        finally:
            await cl.close()
            await srv.stop()

    run(main())


@pytest.mark.parametrize("how", ["connections-aborted", "server-restarted"])
def test_reconnect_and_resubscribe_when_server_drops_mid_stream(es_rec, ref_book, how):
    async def main():
        srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        port = srv.port
        state = {"events": 0, "dropped": False, "srv": srv}
        book = ReferenceBook()
        states = []
        restarted = asyncio.Event()

        async def restart():
            await state["srv"].stop()
            new = DTCServer(es_rec, port=port, speed=0, loop_replay=False)
            await new.start()
            state["srv"] = new
            restarted.set()

        def on_events(batch):
            book.apply(batch)
            state["events"] += batch.shape[0]
            if not state["dropped"] and state["events"] > 5000:
                state["dropped"] = True
                if how == "connections-aborted":
                    for c in list(srv.conns.values()):
                        c.writer.transport.abort()
                else:
                    asyncio.get_running_loop().create_task(restart())

        cl = DTCClient("127.0.0.1", port, heartbeat_s=5, backoff_initial_s=0.05, on_state=states.append)
        try:
            await cl.connect()
            sub = await cl.subscribe_market(es_rec.instrument.symbol, on_events=on_events)
            srv.resume()
            for _ in range(400):
                if state["dropped"] and cl.reconnects >= 1 and cl.state == "connected":
                    break
                await asyncio.sleep(0.025)
            assert state["dropped"] and "reconnecting" in states
            assert cl.reconnects == 1 and cl.state == "connected"
            if how == "server-restarted":
                await asyncio.wait_for(restarted.wait(), 10)
            live = state["srv"]
            # the answer comes after the server handled the resubscription sent before it (the
            # check used to race the server's read of it)
            await cl.trade_accounts()
            # resubscribed with the same SymbolID on the new connection
            conns = list(live.conns.values())
            assert conns and all(c.depth_subs.get(es_rec.instrument.symbol) == sub.symbol_id for c in conns)
            await _settle(cl, live)
            assert book.bids() == ref_book.bids()
            assert book.asks() == ref_book.asks()
            assert cl.decode_errors == 0
        finally:
            await cl.close()
            await state["srv"].stop()

    run(main())


def test_client_trading_round_trip_with_the_server(es_rec):
    """Orders through DTCClient: accept, open orders, cancel by ServerOrderID, bracket, positions."""
    from app.dtc import messages as M
    from app.dtc.messages import MessageType as T

    async def main():
        srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        cl = DTCClient("127.0.0.1", srv.port, heartbeat_s=5, trade_account="Sim1")
        updates, positions = [], []
        cl.add_listener(T.ORDER_UPDATE, updates.append)
        cl.add_listener(T.POSITION_UPDATE, positions.append)

        async def until(pred, timeout=10.0):
            for _ in range(int(timeout / 0.02)):
                if pred():
                    return True
                await asyncio.sleep(0.02)
            return False

        try:
            await cl.connect()
            sym = es_rec.instrument.symbol
            book = ReferenceBook()
            await cl.subscribe_market(sym, on_events=book.apply)
            srv.resume()
            await _settle(cl, srv)
            assert await cl.trade_accounts() == ["Sim1"]
            best_bid = max(book.bids()) * 0.25
            # a resting limit far below the market
            cid = cl.submit_order(M.SubmitNewSingleOrder(Symbol=sym, OrderType=M.OrderType.ORDER_TYPE_LIMIT,
                                                         BuySell=M.BuySell.BUY, Price1=best_bid - 20, Quantity=1,
                                                         TimeInForce=M.TimeInForce.TIF_DAY))
            assert await until(lambda: cid in cl.orders and cl.orders[cid].OrderStatus == M.OrderStatus.ORDER_STATUS_OPEN)
            open_ = await cl.open_orders()
            assert [o.ClientOrderID for o in open_] == [cid]
            cl.cancel_order(cl.orders[cid].ServerOrderID, cid)
            assert await until(lambda: cl.orders[cid].OrderStatus == M.OrderStatus.ORDER_STATUS_CANCELED)
            assert await cl.open_orders() == [] and await cl.positions() == []
            # a market bracket: parent fills against the final book, children start working
            parent = cl.submit_order(M.SubmitNewSingleOrder(Symbol=sym, OrderType=M.OrderType.ORDER_TYPE_MARKET,
                                                            BuySell=M.BuySell.BUY, Quantity=1, IsParentOrder=1,
                                                            Price1=best_bid, TimeInForce=M.TimeInForce.TIF_DAY))
            target, stop = cl.submit_oco(M.SubmitNewOCOOrder(
                Symbol=sym, OrderType_1=M.OrderType.ORDER_TYPE_LIMIT, BuySell_1=M.BuySell.SELL,
                Price1_1=best_bid + 10, Quantity_1=1, OrderType_2=M.OrderType.ORDER_TYPE_STOP,
                BuySell_2=M.BuySell.SELL, Price1_2=best_bid - 10, Quantity_2=1, ParentTriggerClientOrderID=parent,
                PartialFillHandling=1, TimeInForce=M.TimeInForce.TIF_DAY))
            assert await until(lambda: parent in cl.orders and cl.orders[parent].OrderStatus == M.OrderStatus.ORDER_STATUS_FILLED)
            assert await until(lambda: all(c in cl.orders and cl.orders[c].OrderStatus == M.OrderStatus.ORDER_STATUS_OPEN
                                           for c in (target, stop)))
            assert await until(lambda: any(p.Quantity == 1 for p in positions))
            pos = await cl.positions()
            assert len(pos) == 1 and pos[0].Quantity == 1.0 and pos[0].Symbol == sym
            # move the target: cancel/replace by ServerOrderID
            cl.cancel_replace(cl.orders[target].ServerOrderID, price1=best_bid + 12)
            assert await until(lambda: cl.orders[target].Price1 == best_bid + 12)
            bal = await cl.account_balance()
            assert bal is not None and bal.TradeAccount == "Sim1"
        finally:
            await cl.close()
            await srv.stop()

    run(main())


def test_historical_reject_from_the_server_is_typed(es_rec):
    from app.dtc.client import HistoricalDataRejected

    async def main():
        srv = DTCServer(es_rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        cl = DTCClient("127.0.0.1", srv.port, heartbeat_s=5)
        try:
            await cl.connect()
            with pytest.raises(HistoricalDataRejected) as ei:
                await cl.historical(es_rec.instrument.symbol, interval=60, timeout=10)
            assert ei.value.reason_code == 2 and "not served" in str(ei.value)
            assert cl.state == "connected"  # the historical connection is separate
        finally:
            await cl.close()
            await srv.stop()

    run(main())
