"""The server's own timing follows its injected clock: logon deadline, heartbeats, the silent-
client limit and a held bracket parent's wait (driven by a ManualClock, no sleeping).

Bytes still travel over a real loopback socket, so reads wait (bounded) for them to arrive;
the deadlines themselves fall due inside ``clock.advance`` (the server's timers run on the
event loop's thread before it returns)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.core.clock import ManualClock
from app.core.events import KIND_TRADE
from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.feeds.samples import load_default_sample
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def rec():
    return load_default_sample()


class Peer:
    """A bare binary client: socket + decoder, every decoded message kept."""

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.dec = codec.Decoder(Encoding.BINARY)
        self.msgs = []
        self.eof = False
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.msgs.extend(self.dec.feed(data))
        except ConnectionError:
            pass
        self.eof = True

    def count(self, msg_type) -> int:
        return sum(m.TYPE == msg_type for m in self.msgs)

    def send(self, msg):
        self.writer.write(codec.encode(msg, Encoding.BINARY))

    async def first(self, msg_type, start=0, timeout=10.0):
        """The first message of ``msg_type`` from index ``start`` (bounded wait for the socket)."""
        for _ in range(int(timeout / 0.01)):
            for m in self.msgs[start:]:
                if m.TYPE == msg_type:
                    return m
            if self.eof:
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f"no message of type {int(msg_type)}; got {[int(m.TYPE) for m in self.msgs]}")

    async def sync(self, rid):
        """Round trip: the server handled everything sent before (and counts it as liveness)."""
        n = len(self.msgs)
        self.send(M.TradeAccountsRequest(RequestID=rid))
        while True:
            m = await self.first(T.TRADE_ACCOUNT_RESPONSE, n)
            if m.RequestID == rid:
                return
            n = self.msgs.index(m) + 1

    async def closed(self, timeout=10.0) -> bool:
        try:
            await asyncio.wait_for(self._task, timeout)
        except asyncio.TimeoutError:
            return False
        return self.eof

    async def close(self):
        self.writer.close()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def until(pred, timeout: float = 10.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


async def _served(srv: DTCServer, n: int) -> None:
    assert await until(lambda: len(srv.conns) >= n), "the server did not accept the connection"


def test_logon_must_come_within_120_s_of_the_connection_start(rec):
    async def main():
        clock = ManualClock()
        srv = DTCServer(rec, port=0, paused=True, loop_replay=False, clock=clock)
        await srv.start()
        try:
            p = await Peer().open(srv.port)
            await _served(srv, 1)
            (conn,) = srv.conns.values()
            # requests before a logon are ignored, and their bytes do not move the logon deadline
            p.send(M.TradeAccountsRequest(RequestID=1))
            assert await until(lambda: srv.stats["ignored_before_logon"] == 1)
            clock.advance(60.0)
            p.send(M.TradeAccountsRequest(RequestID=2))
            assert await until(lambda: srv.stats["ignored_before_logon"] == 2)
            clock.advance(59.9)
            assert not conn.closed
            clock.advance(0.1)
            assert conn.closed
            lo = await p.first(T.LOGOFF)
            assert "logon" in lo.Reason and "120" in lo.Reason
            assert await p.closed()
            assert not [m for m in p.msgs if m.TYPE == T.TRADE_ACCOUNT_RESPONSE]
        finally:
            await srv.stop()

    asyncio.run(main())


def test_idle_limit_is_two_intervals_plus_one_second_of_silence(rec):
    async def main():
        clock = ManualClock()
        srv = DTCServer(rec, port=0, paused=True, loop_replay=False, clock=clock)
        await srv.start()
        try:
            p = await Peer().open(srv.port)
            p.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=4, ClientName="t"))
            assert (await p.first(T.LOGON_RESPONSE)).Result == 1
            (conn,) = srv.conns.values()
            assert conn.heartbeat_s == 4.0
            # heartbeats every 4 s of the server's clock, stamped with its wall time
            for k in range(1, 3):
                clock.advance(4.0)
                assert await until(lambda: p.count(T.HEARTBEAT) >= k)
                hbs = [m for m in p.msgs if m.TYPE == T.HEARTBEAT]
                assert len(hbs) == k
                assert hbs[-1].CurrentDateTime == clock.time_ns() // 1_000_000_000
            # any byte received counts: a round trip restarts the 2 x 4 + 1 = 9 s limit
            await p.sync(1)
            clock.advance(8.9)
            assert conn.logged_on and not conn.closed
            clock.advance(0.1)
            assert conn.closed
            lo = await p.first(T.LOGOFF)
            assert "heartbeat" in lo.Reason
            assert await p.closed()
        finally:
            await srv.stop()

    asyncio.run(main())


def test_held_bracket_parent_goes_alone_after_five_seconds_of_the_clock(rec):
    ev = rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1

    async def main():
        clock = ManualClock()
        srv = DTCServer(rec, port=0, paused=True, loop_replay=False, clock=clock)
        await srv.start()
        try:
            srv.publish("ESH4", ev[:k])
            bid = srv.engine.books["ESH4"].best_bid()
            p = await Peer().open(srv.port)
            p.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=0, ClientName="t"))
            assert (await p.first(T.LOGON_RESPONSE)).Result == 1
            p.send(M.SubmitNewSingleOrder(Symbol="ESH4", ClientOrderID="P", OrderType=2, BuySell=1, Quantity=1,
                                          Price1=(bid - 20) * 0.25, IsParentOrder=1))
            await p.sync(1)
            (conn,) = srv.conns.values()
            assert "P" in conn.pending_parents and not srv.engine.orders
            clock.advance(4.9)
            assert "P" in conn.pending_parents and not srv.engine.orders
            clock.advance(0.1)  # no SUBMIT_NEW_OCO_ORDER named it: submitted alone
            assert not conn.pending_parents
            assert [o.client_order_id for o in srv.engine.open_orders()] == ["P"]
            acc = await p.first(T.ORDER_UPDATE)
            assert acc.ClientOrderID == "P" and acc.OrderUpdateReason == M.OrderUpdateReason.NEW_ORDER_ACCEPTED
            assert conn.logged_on  # heartbeat interval 0: no idle limit, however long the silence
            clock.advance(3600.0)
            assert not conn.closed
            await p.close()
        finally:
            await srv.stop()

    asyncio.run(main())
