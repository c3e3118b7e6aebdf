"""Slow-client buffering: a client that stops reading falls behind once its output buffer passes
the server's ``send_buffer_limit`` and is dropped when it stays behind longer than
``slow_client_timeout_s`` (here 0); the replay goes on for the others."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding
from app.feeds.samples import load_default_sample
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(90)


async def until(pred, timeout: float = 30.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


def _subscribe(writer) -> None:
    writer.write(codec.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=0, ClientName="t"),
                              Encoding.BINARY))
    writer.write(codec.encode(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"), Encoding.BINARY))


def test_a_client_that_stops_reading_is_dropped_and_the_others_are_served():
    rec = load_default_sample()

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=True, paused=True, send_buffer_limit=1 << 20,
                        slow_client_timeout_s=0.0)
        await srv.start()
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
            s.connect(("127.0.0.1", srv.port))
            s.setblocking(False)
            _slow_r, slow_w = await asyncio.open_connection(sock=s)  # never read
            good_r, good_w = await asyncio.open_connection("127.0.0.1", srv.port)
            _subscribe(slow_w)
            _subscribe(good_w)
            got = [0]

            async def read():
                while True:
                    data = await good_r.read(1 << 16)
                    if not data:
                        return
                    got[0] += len(data)

            reader = asyncio.create_task(read())
            assert await until(lambda: sum(1 for c in srv.conns.values() if c.depth_subs) == 2)
            srv.resume()
            assert await until(lambda: srv.stats["slow_clients_dropped"] == 1)
            assert srv.stats["connections"] == 1
            after = got[0]
            assert await until(lambda: got[0] > after + (1 << 20))  # the replay goes on for the reader
            reader.cancel()
            slow_w.close()
            good_w.close()
        finally:
            await srv.stop()

    asyncio.run(main())
