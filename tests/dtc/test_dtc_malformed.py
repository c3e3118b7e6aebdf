"""Hostile and malformed input on both sides of a DTC connection (issue 13, items 5, 10, 11).

Every malformed frame is counted with its reason and skipped; nothing a peer sends raises out of
the decoder, kills the connection, reaches the book or a file written by ``mia-elite record``.
The server side runs the built-in server in-process on loopback with the shipped real ES
sample; the client side runs :class:`app.dtc.client.DTCClient` against a small scripted server.
"""

from __future__ import annotations

import asyncio

import pytest

from app.dtc import client as CL
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T

pytestmark = pytest.mark.timeout(120)

TICK = 0.25
NESTED = b"[" * 20_000  # msgspec raises RecursionError for it, not DecodeError


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout=10.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


class ScriptedServer:
    """Negotiation and logon, then whatever the test writes (``writers[-1]``) or ``on_subscribe``
    sends when the client asks for market data / depth."""

    def __init__(self, *, grant=None, on_subscribe=None):
        self.grant = grant
        self.on_subscribe = on_subscribe
        self.writers: list = []
        self.received: list = []
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        dec = C.Decoder(Encoding.BINARY)
        enc = Encoding.BINARY
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for m in dec.feed(data):
                    self.received.append(m)
                    if m.TYPE == T.ENCODING_REQUEST:
                        granted = self.grant if self.grant is not None else m.Encoding
                        writer.write(C.encode(M.EncodingResponse(Encoding=granted), enc))
                        if granted in C.SUPPORTED_ENCODINGS:
                            enc = dec.encoding = Encoding(granted)
                    elif m.TYPE == T.LOGON_REQUEST:
                        writer.write(C.encode(M.LogonResponse(Result=1, ServerName="scripted"), enc))
                    elif m.TYPE in (T.MARKET_DATA_REQUEST, T.MARKET_DEPTH_REQUEST) and self.on_subscribe:
                        self.on_subscribe(writer, m, enc)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------- item 5: deeply nested JSON


def test_decoder_counts_deeply_nested_json_and_keeps_the_next_frame():
    hb = C.encode(M.Heartbeat(CurrentDateTime=7), Encoding.JSON)
    for enc in (Encoding.JSON, Encoding.JSON_COMPACT):
        d = C.Decoder(enc)
        out = d.feed(NESTED + b"\x00" + hb)  # the same read: the joined parse fails first
        assert out == [M.Heartbeat(CurrentDateTime=7)]
        assert d.errors == 1 and "RecursionError" in d.last_error
    with pytest.raises(ValueError, match="invalid JSON"):
        C.decode_frame(NESTED, Encoding.JSON)


def test_server_skips_deeply_nested_json_and_answers_the_logon_in_the_same_read():
    from app.feeds.samples import load_default_sample
    from app.sim.server import DTCServer

    async def main():
        srv = DTCServer(load_default_sample(), port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            logon = C.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10, ClientName="t"),
                             Encoding.JSON)
            # negotiation, the nested frame and the logon in one write (one read on the server)
            writer.write(C.encoding_request(Encoding.JSON) + NESTED + b"\x00" + logon)
            dec = C.Decoder(Encoding.BINARY, follow_encoding_response=True)
            got: list = []
            while not any(m.TYPE == T.LOGON_RESPONSE for m in got):
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, f"server closed the connection; stats {srv.stats}"
                got.extend(dec.feed(data))
            assert srv.stats["malformed_frames"] == 1
            writer.close()
        finally:
            await srv.stop()

    run(main())


def test_client_skips_deeply_nested_json_and_stays_connected():
    async def main():
        srv = await ScriptedServer().start()
        cl = CL.DTCClient("127.0.0.1", srv.port, encoding=Encoding.JSON, backoff_initial_s=0.05)
        updates: list = []
        cl.add_listener(T.ORDER_UPDATE, updates.append)
        try:
            await cl.connect()
            upd = C.encode(M.OrderUpdate(ClientOrderID="c1", ServerOrderID="S1", OrderStatus=4), Encoding.JSON)
            srv.writers[-1].write(NESTED + b"\x00" + upd)
            assert await until(lambda: updates, 10)
            assert updates[0].ClientOrderID == "c1"
            assert cl.decode_errors == 1 and cl.state == "connected" and srv.connections == 1
        finally:
            await cl.close()
            await srv.stop()

    run(main())
