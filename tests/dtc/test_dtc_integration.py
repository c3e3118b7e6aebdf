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
from app.dtc.server import DTCServer
from app.feeds.events import KIND_DEPTH, KIND_TRADE
from app.feeds.refbook import ReferenceBook
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
