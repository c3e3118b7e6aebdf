"""The built-in DTC server's market data under hostile and slow clients (issue 13 items 2, 3, 4,
12, 13), in-process on loopback with the shipped real ES recording.

Each test runs the server in this process, drives it with raw sockets (a client that never
reads is a socket with a tiny ``SO_RCVBUF`` that never calls ``recv``), polls in bounded loops
and checks the server's own state (its fill engine's book, its connection table, its buffered
bytes) plus what a well-behaved second client received.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from app.core.clock import ManualClock
from app.core.events import KIND_DEPTH, KIND_TRADE, SIDE_ASK, SIDE_BID
from app.dtc import codec
from app.dtc import messages as M
from app.dtc.batch import message_to_events
from app.dtc.messages import Encoding, MessageType as T
from app.feeds.samples import load_default_sample
from app.market.refbook import ReferenceBook
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(120)

SYM = "ESH4"


@pytest.fixture(scope="module")
def rec():
    return load_default_sample()


async def until(pred, timeout: float = 20.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


class Peer:
    """A well-behaved client: asyncio socket + :class:`app.dtc.codec.Decoder`, reads all the time."""

    def __init__(self, encoding: Encoding = Encoding.BINARY, decode: bool = True):
        self.encoding = encoding
        self.decode = decode  # False: count the bytes only (keeps up with a maximum-speed replay)
        self.dec = codec.Decoder(Encoding.BINARY, follow_encoding_response=True)
        self.msgs: list = []
        self.nbytes = 0
        self.eof = False

    async def connect(self, port: int) -> "Peer":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.create_task(self._read())
        if self.encoding != Encoding.BINARY:
            self.writer.write(codec.encoding_request(self.encoding))
            assert await until(lambda: self.of(T.ENCODING_RESPONSE))
        return self

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.nbytes += len(data)
                if self.decode or not self.msgs:  # the logon response at least
                    self.msgs.extend(self.dec.feed(data))
        except (ConnectionError, asyncio.CancelledError):
            pass
        self.eof = True

    def send(self, msg) -> None:
        self.writer.write(codec.encode(msg, self.encoding))

    def of(self, *types) -> list:
        ts = {int(t) for t in types}
        return [m for m in self.msgs if int(m.TYPE) in ts]

    async def logon(self, integer_1: int = 0) -> None:
        self.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=0, ClientName="peer",
                                 Integer_1=integer_1))
        assert await until(lambda: self.of(T.LOGON_RESPONSE))

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def never_reading_socket(port: int) -> socket.socket:
    """A connected client socket with a tiny receive buffer that nobody ever reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 12)
    s.connect(("127.0.0.1", port))
    return s


def book_of(events) -> ReferenceBook:
    b = ReferenceBook()
    b.apply(events)
    return b


# --------------------------------------------------------------------------------------------
# item 2: out-of-range SymbolIDs are refused at the request; one client's encode failure never
# reaches another client or the fill engine
# --------------------------------------------------------------------------------------------


def test_out_of_range_symbol_ids_are_rejected_and_the_replay_goes_on(rec):
    trades = int(np.count_nonzero(rec.events["kind"] == KIND_TRADE))

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            bad = await Peer(Encoding.JSON).connect(srv.port)
            await bad.logon()
            for sid in (-1, 4294967296, -1e23):
                bad.writer.write(b'{"Type":101,"RequestAction":1,"SymbolID":%s,"Symbol":"ESH4"}\x00'
                                 % repr(sid).encode())
            bad.writer.write(b'{"Type":102,"RequestAction":1,"SymbolID":-1,"Symbol":"ESH4","NumLevels":0}\x00')
            assert await until(lambda: len(bad.of(T.MARKET_DATA_REJECT)) == 3 and bad.of(T.MARKET_DEPTH_REJECT))
            for r in bad.of(T.MARKET_DATA_REJECT, T.MARKET_DEPTH_REJECT):
                assert "SymbolID" in r.RejectText and "out of range" in r.RejectText
            assert not bad.of(T.MARKET_DATA_SNAPSHOT, T.MARKET_DEPTH_SNAPSHOT_LEVEL)
            good = await Peer().connect(srv.port)
            await good.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))
            good.send(M.MarketDataRequest(RequestAction=1, SymbolID=7, Symbol=SYM))
            good.send(M.MarketDepthRequest(RequestAction=1, SymbolID=7, Symbol=SYM))
            assert await until(lambda: all(c.depth_subs for c in srv.conns.values() if c.md_subs)
                               and any(c.md_subs for c in srv.conns.values()))
            srv.resume()
            assert await srv.wait_replay_done(60)
            assert await until(lambda: len(good.of(T.MARKET_DATA_UPDATE_TRADE)) == trades)
            # the venue's own state: every batch reached the fill engine
            eng = srv.engine
            ref = book_of(rec.events)
            assert eng.books[SYM].bids() == ref.bids() and eng.books[SYM].asks() == ref.asks()
            assert eng.last_trade[SYM] == int(rec.events["price"][rec.events["kind"] == KIND_TRADE][-1])
            st = srv.stats
            assert st["rejected_symbol_ids"] == 4
            assert st.get("publish_errors", 0) == 0 and st["encode_errors"] == 0
            assert not bad.eof  # the bad client stays connected, it just got its rejects
            await bad.close()
            await good.close()
        finally:
            await srv.stop()

    asyncio.run(main())


def test_an_encode_failure_for_one_connection_reaches_no_other_and_not_the_engine(rec):
    """Fault injection: one connection's subscription id is made unencodable behind the request
    check; the batch still reaches the other client and the engine, the faulty one is logged off."""
    ev = rec.events
    cut = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1  # a stretch with 51 trades

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            faulty = await Peer().connect(srv.port)
            await faulty.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))
            good = await Peer().connect(srv.port)
            await good.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))
            for p in (faulty, good):
                p.send(M.MarketDataRequest(RequestAction=1, SymbolID=1, Symbol=SYM))
            assert await until(lambda: sum(1 for c in srv.conns.values() if c.md_subs) == 2)
            conn = min(srv.conns.values(), key=lambda c: c.cid)
            conn.md_subs[SYM] = -5  # the injected fault
            for a in range(0, cut, 500):
                srv.publish(SYM, ev[a:min(a + 500, cut)])
            assert await until(lambda: len(good.of(T.MARKET_DATA_UPDATE_TRADE)) == 51)
            assert await until(lambda: faulty.eof)
            assert faulty.of(T.LOGOFF) and "encode" in faulty.of(T.LOGOFF)[0].Reason
            ref = book_of(ev[:cut])
            assert srv.engine.books[SYM].bids() == ref.bids() and srv.engine.books[SYM].asks() == ref.asks()
            assert srv.stats["encode_errors"] >= 1 and srv.stats.get("publish_errors", 0) == 0
            await good.close()
            await faulty.close()
        finally:
            await srv.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# item 3: a client that never reads never stalls the replay; it is conflated, then logged off
# --------------------------------------------------------------------------------------------


def _subscribe_bytes(symbol_id: int = 1, integer_1: int = int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES),
                     depth_requests: int = 1) -> bytes:
    enc = Encoding.BINARY
    out = codec.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=0, ClientName="slow",
                                      Integer_1=integer_1), enc)
    out += codec.encode(M.MarketDataRequest(RequestAction=1, SymbolID=symbol_id, Symbol=SYM), enc)
    out += codec.encode(M.MarketDepthRequest(RequestAction=1, SymbolID=symbol_id, Symbol=SYM), enc) * depth_requests
    return out


def test_clients_that_never_read_never_stall_the_replay_and_are_logged_off_after_the_timeout(rec):
    limit = 256 << 10
    clock = ManualClock()

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=True, paused=True, clock=clock,
                        send_buffer_limit=limit, slow_client_timeout_s=5.0)
        srv.symbols[SYM].clock.min_pass_ns = 0  # loops back to back: this manual clock stands still
        await srv.start()
        slow = []
        try:
            good = await Peer(decode=False).connect(srv.port)
            await good.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))
            good.send(M.MarketDataRequest(RequestAction=1, SymbolID=1, Symbol=SYM))
            good.send(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol=SYM))
            for _ in range(3):
                s = never_reading_socket(srv.port)
                s.sendall(_subscribe_bytes())
                slow.append(s)
            assert await until(lambda: sum(1 for c in srv.conns.values() if c.depth_subs) == 4)
            srv.resume()
            assert await until(lambda: sum(1 for c in srv.conns.values() if c.behind and c.cid > 1) == 3, 60)
            loops, got = srv.stats["replay"][SYM]["loops"], good.nbytes
            # the replay goes on at full speed while they are behind: two more passes of the hour
            assert await until(lambda: srv.stats["replay"][SYM]["loops"] >= loops + 2, 60)
            assert await until(lambda: good.nbytes > got + (4 << 20))
            st = srv.stats
            assert st["clients_behind"] >= 3 and st["slow_clients_conflated"] >= 3 and st["conflated_messages"] > 0
            # memory: what is queued for each slow client stays within the bound (+ one batch)
            for c in srv.conns.values():
                if c.cid > 1:
                    assert c.behind and srv._buffered(c) <= limit + (1 << 20)
            assert st["slow_clients_dropped"] == 0
            srv.pause()  # let the good client catch up if it fell behind at maximum speed
            assert await until(lambda: not srv.conns[1].behind)
            slow_conns = [c for c in srv.conns.values() if c.cid > 1]
            clock.advance(5.0)  # the others stayed behind for slow_client_timeout_s: logged off
            assert await until(lambda: srv.stats["slow_clients_dropped"] == 3 and len(srv.conns) == 1)
            for c in slow_conns:  # each was sent a LOGOFF with the reason (the server's session says so)
                assert c.session.closed is not None and c.session.closed.reason.startswith("too slow")
            srv.resume()
            got = good.nbytes
            assert await until(lambda: good.nbytes > got + (1 << 20))  # and the good one is still served
            assert not good.eof
            await good.close()
        finally:
            for s in slow:
                s.close()
            await srv.stop()

    asyncio.run(main())


def _client_book(msgs, tick: float) -> ReferenceBook:
    book = ReferenceBook()
    for m in msgs:
        e = message_to_events(m, tick)
        if len(e):
            book.apply(e[e["kind"] == KIND_DEPTH])
    return book


def test_a_client_that_falls_behind_gets_fresh_snapshots_when_it_catches_up(rec):
    clock = ManualClock()
    tick = rec.instrument.tick_size

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=True, paused=True, clock=clock,
                        send_buffer_limit=128 << 10, slow_client_timeout_s=60.0)
        srv.symbols[SYM].clock.min_pass_ns = 0  # loops back to back: this manual clock stands still
        await srv.start()
        loop = asyncio.get_running_loop()
        s = never_reading_socket(srv.port)
        try:
            s.sendall(_subscribe_bytes())
            s.setblocking(False)
            assert await until(lambda: any(c.depth_subs for c in srv.conns.values()))
            conn = next(iter(srv.conns.values()))
            srv.resume()
            assert await until(lambda: conn.behind, 60)
            srv.pause()
            dec = codec.Decoder(Encoding.BINARY)
            msgs: list = []

            async def read():
                while True:
                    data = await loop.sock_recv(s, 1 << 16)
                    if not data:
                        return
                    msgs.extend(dec.feed(data))

            reader = asyncio.create_task(read())
            assert await until(lambda: srv.stats["slow_clients_caught_up"] == 1, 60)
            assert not conn.behind
            srv.resume()  # normal updates again, then a marker to know everything before it arrived
            n = srv.stats["events_replayed"]
            assert await until(lambda: srv.stats["events_replayed"] > n + 20_000, 60)
            srv.pause()
            await loop.sock_sendall(s, codec.encode(M.SecurityDefinitionForSymbolRequest(RequestID=99, Symbol=SYM),
                                                    Encoding.BINARY))
            assert await until(lambda: any(int(m.TYPE) == T.SECURITY_DEFINITION_RESPONSE for m in msgs), 60)
            snaps = [m for m in msgs if int(m.TYPE) == T.MARKET_DEPTH_SNAPSHOT_LEVEL and m.IsFirstMessageInBatch]
            # a loop of the replay is a new session: an empty snapshot (the book cleared) and a
            # 104, announced by a GENERAL_LOG_MESSAGE "replay restarted: ..."
            restarts = sum(1 for m in msgs if int(m.TYPE) == T.GENERAL_LOG_MESSAGE
                           and m.MessageText.startswith("replay restarted"))
            assert len(snaps) == 2 + restarts  # the subscription's, and the fresh one after catching up
            assert len([m for m in msgs if int(m.TYPE) == T.MARKET_DATA_SNAPSHOT]) == 2 + restarts
            mine = _client_book(msgs, tick)
            eng = srv.engine.books[SYM]
            assert mine.bids() == eng.bids() and mine.asks() == eng.asks()
            reader.cancel()
        finally:
            s.close()
            await srv.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# item 4: repeated depth requests do not amplify into memory; caps; memory returns
# --------------------------------------------------------------------------------------------


def test_a_flood_of_repeated_depth_requests_from_clients_that_never_read_stays_small(rec):
    """4 connections each write 682 MARKET_DEPTH_REQUESTs (64 KiB, one SymbolID) and never read
    (the issue's attack, with 4 of its 20 connections): each gets ONE snapshot, the server's
    allocations stay within a few MiB, the well-behaved client keeps its data, and the memory
    returns once they close."""
    import gc
    import tracemalloc

    ev = rec.events
    first_trade = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[0])
    flood = _subscribe_bytes(depth_requests=682)

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=True, paused=True)
        await srv.start()
        loop = asyncio.get_running_loop()
        socks = []
        try:
            srv.publish(SYM, ev[:first_trade])  # the book before the open: ~1,480 levels
            good = await Peer(decode=False).connect(srv.port)
            await good.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))
            good.send(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol=SYM))
            assert await until(lambda: any(c.depth_subs for c in srv.conns.values()))
            gc.collect()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            n_in = srv.stats["messages_in"]
            for _ in range(4):
                s = never_reading_socket(srv.port)
                socks.append(s)
                await loop.run_in_executor(None, s.sendall, flood)
            assert await until(lambda: srv.stats["messages_in"] >= n_in + 4 * 684, 60)
            peak = tracemalloc.get_traced_memory()[1] - base
            assert srv.stats["snapshot_requests_deferred"] >= 4 * 681
            assert peak < 8 << 20, f"{peak} bytes allocated for 4 x 682 depth requests"
            for c in srv.conns.values():
                assert srv._buffered(c) < 1 << 20
            got = good.nbytes
            srv.resume()
            assert await until(lambda: good.nbytes > got + (1 << 20))  # the good client is served
            srv.pause()
            for s in socks:
                s.close()
            socks.clear()
            assert await until(lambda: len(srv.conns) == 1)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0] - base
            assert after < 2 << 20, f"{after} bytes still allocated after the clients closed"
            await good.close()
        finally:
            tracemalloc.stop()
            for s in socks:
                s.close()
            await srv.stop()

    asyncio.run(main())


def test_a_repeated_subscription_gets_at_most_one_snapshot_per_interval(rec):
    clock = ManualClock()
    ev = rec.events

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, clock=clock, resnapshot_interval_s=1.0)
        await srv.start()
        try:
            srv.publish(SYM, ev[:5000])
            p = await Peer().connect(srv.port)
            await p.logon(int(M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES))

            def firsts():
                return len([m for m in p.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL) if m.IsFirstMessageInBatch])

            for _ in range(50):
                p.send(M.MarketDepthRequest(RequestAction=1, SymbolID=3, Symbol=SYM))
                p.send(M.MarketDataRequest(RequestAction=1, SymbolID=3, Symbol=SYM))
            p.send(M.SecurityDefinitionForSymbolRequest(RequestID=1, Symbol=SYM))  # marker
            assert await until(lambda: p.of(T.SECURITY_DEFINITION_RESPONSE))
            assert firsts() == 1 and len(p.of(T.MARKET_DATA_SNAPSHOT)) == 1
            assert srv.stats["snapshot_requests_deferred"] == 98
            srv.publish(SYM, ev[5000:6000])  # held back while the new snapshot is pending
            clock.advance(0.5)
            p.send(M.SecurityDefinitionForSymbolRequest(RequestID=2, Symbol=SYM))
            assert await until(lambda: len(p.of(T.SECURITY_DEFINITION_RESPONSE)) == 2)
            assert firsts() == 1 and not p.of(T.MARKET_DEPTH_UPDATE_LEVEL)
            clock.advance(0.5)  # the interval is over: ONE snapshot for the 49 repeats
            assert await until(lambda: firsts() == 2 and len(p.of(T.MARKET_DATA_SNAPSHOT)) == 2)
            clock.advance(5.0)
            p.send(M.SecurityDefinitionForSymbolRequest(RequestID=3, Symbol=SYM))
            assert await until(lambda: len(p.of(T.SECURITY_DEFINITION_RESPONSE)) == 3)
            assert firsts() == 2 and len(p.of(T.MARKET_DATA_SNAPSHOT)) == 2
            mine = _client_book(p.msgs, rec.instrument.tick_size)
            assert mine.bids() == srv.engine.books[SYM].bids() and mine.asks() == srv.engine.books[SYM].asks()
            await p.close()
        finally:
            await srv.stop()

    asyncio.run(main())


def test_caps_on_connections_and_subscriptions_per_connection(rec):
    async def main():
        srv = DTCServer(rec, port=0, speed=0, paused=True, max_connections=2, max_subscriptions=1)
        await srv.start()
        try:
            a = await Peer().connect(srv.port)
            await a.logon()
            b = await Peer().connect(srv.port)
            await b.logon()
            c = await Peer().connect(srv.port)  # the third: refused
            assert await until(lambda: c.eof)
            assert c.of(T.LOGOFF) and "too many connections" in c.of(T.LOGOFF)[0].Reason
            assert srv.stats["connections_refused"] == 1 and len(srv.conns) == 2
            a.send(M.MarketDataRequest(RequestAction=1, SymbolID=1, Symbol=SYM))
            a.send(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol=SYM))  # the second: refused
            assert await until(lambda: a.of(T.MARKET_DEPTH_REJECT))
            assert "too many subscriptions" in a.of(T.MARKET_DEPTH_REJECT)[0].RejectText
            assert a.of(T.MARKET_DATA_SNAPSHOT) and srv.stats["subscriptions_refused"] == 1
            await b.close()
            assert await until(lambda: len(srv.conns) == 1)
            d = await Peer().connect(srv.port)  # room again
            await d.logon()
            for p in (a, d):
                await p.close()
        finally:
            await srv.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# item 12: Sierra Chart's defaults: compact market data unless the logon's Integer_1 says otherwise
# --------------------------------------------------------------------------------------------

F = M.LogonFlags
FLAG_CASES = [
    # Integer_1, trade type, bid/ask type, depth update type, depth snapshot type
    (0, T.MARKET_DATA_UPDATE_TRADE_COMPACT, T.MARKET_DATA_UPDATE_BID_ASK_COMPACT,
     T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL),
    (F.NO_COMPACT_MARKET_DATA_MESSAGES, T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_BID_ASK,
     T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL),
    (F.SUPPORT_MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2, T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2,
     T.MARKET_DATA_UPDATE_BID_ASK_COMPACT, T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL),
    (F.SUPPORT_MARKET_DATA_UPDATE_BIDASK_MICROSECOND_MESSAGE, T.MARKET_DATA_UPDATE_TRADE_COMPACT,
     T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS, T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL),
    (F.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES | F.SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT,
     T.MARKET_DATA_UPDATE_TRADE_COMPACT, T.MARKET_DATA_UPDATE_BID_ASK_COMPACT,
     T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS, T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT),
    (F.NO_COMPACT_MARKET_DATA_MESSAGES | F.SUPPORT_MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2
     | F.SUPPORT_MARKET_DATA_UPDATE_BIDASK_MICROSECOND_MESSAGE,
     T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2, T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS,
     T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL),
]
MD_TYPES = {int(t) for t in (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_TRADE_COMPACT,
                             T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2, T.MARKET_DATA_UPDATE_BID_ASK,
                             T.MARKET_DATA_UPDATE_BID_ASK_COMPACT, T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS,
                             T.MARKET_DEPTH_UPDATE_LEVEL, T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS,
                             T.MARKET_DEPTH_SNAPSHOT_LEVEL, T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)}


@pytest.mark.parametrize("encoding", [Encoding.BINARY, Encoding.JSON_COMPACT], ids=["binary", "compact"])
@pytest.mark.parametrize("flags,trade_t,bidask_t,depth_t,snap_t", FLAG_CASES,
                         ids=["default", "0x8", "0x80000", "0x100000", "0x80+0x800", "0x8+0x80000+0x100000"])
def test_market_data_message_types_follow_the_logon_flags_as_sierra_chart(rec, encoding, flags, trade_t, bidask_t,
                                                                          depth_t, snap_t):
    ev = rec.events
    a, b = 2000, 12000  # a book, then 10,000 events with their trades
    trades = ev[a:b][ev["kind"][a:b] == KIND_TRADE]
    tick = rec.instrument.tick_size

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            srv.publish(SYM, ev[:a])
            p = await Peer(encoding).connect(srv.port)
            await p.logon(int(flags))
            p.send(M.MarketDataRequest(RequestAction=1, SymbolID=5, Symbol=SYM))
            p.send(M.MarketDepthRequest(RequestAction=1, SymbolID=5, Symbol=SYM))
            assert await until(lambda: p.of(snap_t) and p.of(T.MARKET_DATA_SNAPSHOT))
            for i in range(a, b, 1000):
                srv.publish(SYM, ev[i:i + 1000])
            p.send(M.SecurityDefinitionForSymbolRequest(RequestID=1, Symbol=SYM))
            assert await until(lambda: p.of(T.SECURITY_DEFINITION_RESPONSE))
            kinds = {int(m.TYPE) for m in p.msgs} & MD_TYPES
            assert kinds == {int(trade_t), int(bidask_t), int(depth_t), int(snap_t)}
            got = [message_to_events(m, tick) for m in p.of(trade_t)]
            got = np.concatenate(got)
            assert len(got) == len(trades)
            assert got["price"].tolist() == trades["price"].tolist()
            assert got["side"].tolist() == trades["side"].tolist()
            if trade_t == T.MARKET_DATA_UPDATE_TRADE_COMPACT:  # whole seconds
                assert got["ts"].tolist() == (trades["ts"] // 10**9 * 10**9).tolist()
            elif trade_t == T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2:  # microseconds
                assert got["ts"].tolist() == (trades["ts"] // 1000 * 1000).tolist()
            last = p.of(bidask_t)[-1]
            book = srv.engine.books[SYM]
            assert (round(last.BidPrice / tick), round(last.AskPrice / tick)) == (book.best_bid(), book.best_ask())
            assert last.SymbolID == 5
            if bidask_t == T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS:
                assert last.DateTime == srv.symbols[SYM].last_ts // 1000
            else:
                assert last.DateTime == srv.symbols[SYM].last_ts // 10**9
            mine = _client_book(p.msgs, tick)
            assert mine.bids() == book.bids() and mine.asks() == book.asks()
            await p.close()
        finally:
            await srv.stop()

    asyncio.run(main())


@pytest.mark.parametrize("depth_float", [True, False], ids=["float", "double"])
def test_the_apps_client_asks_for_what_it_decodes(rec, depth_float):
    """The app's DTCClient asks for 140/144 (float) or 106/108, trades as 107 in both cases (0x8:
    never the whole-second compact 112, nor 146 whose uint32 Volume truncates fractional
    sizes), and gets every trade with its price and side."""
    from app.dtc.client import DTCClient

    ev = rec.events
    a, b = 2000, 12000
    trades = ev[a:b][ev["kind"][a:b] == KIND_TRADE]

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        cl = DTCClient("127.0.0.1", srv.port, heartbeat_s=5, depth_float=depth_float, reconnect=False)
        try:
            srv.publish(SYM, ev[:a])
            await cl.connect()
            got = []
            await cl.subscribe_market(SYM, depth=True, on_events=got.append)
            conn = next(iter(srv.conns.values()))
            want = ((T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS)
                    if depth_float else (T.MARKET_DATA_UPDATE_TRADE, T.MARKET_DATA_UPDATE_BID_ASK))
            assert (conn.trade_type, conn.bid_ask_type) == tuple(int(t) for t in want)
            for i in range(a, b, 1000):
                srv.publish(SYM, ev[i:i + 1000])

            def n_trades():
                return sum(int(np.count_nonzero(g["kind"] == KIND_TRADE)) for g in got)

            assert await until(lambda: n_trades() == len(trades))
            allev = np.concatenate(got)
            tr = allev[allev["kind"] == KIND_TRADE]
            assert tr["price"].tolist() == trades["price"].tolist() and tr["side"].tolist() == trades["side"].tolist()
        finally:
            await cl.close()
            await srv.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# item 13: MARKET_DEPTH_REQUEST.NumLevels is honoured in the snapshot and in the updates
# --------------------------------------------------------------------------------------------


def _top(book: ReferenceBook, n: int) -> tuple[dict, dict]:
    return (dict(book.levels(SIDE_BID, n)), dict(book.levels(SIDE_ASK, n)))


@pytest.mark.parametrize("encoding,flags", [(Encoding.BINARY, 0),
                                            (Encoding.JSON, int(F.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES))],
                         ids=["binary-106", "json-140"])
def test_num_levels_is_honoured_as_the_inside_moves(rec, encoding, flags):
    ev = rec.events
    first = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[0])
    end = first + 30_000
    tick = rec.instrument.tick_size
    depth_t = T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS if flags else T.MARKET_DEPTH_UPDATE_LEVEL

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            srv.publish(SYM, ev[:first])  # the pre-open book: ~1,480 levels
            assert len(srv.engine.books[SYM].bids()) > 100
            lim = await Peer(encoding).connect(srv.port)
            await lim.logon(flags)
            full = await Peer().connect(srv.port)
            await full.logon()
            lim.send(M.MarketDepthRequest(RequestAction=1, SymbolID=2, Symbol=SYM, NumLevels=10))
            full.send(M.MarketDepthRequest(RequestAction=1, SymbolID=2, Symbol=SYM, NumLevels=0))
            assert await until(lambda: lim.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL) and full.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL))
            snap = lim.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL)
            assert len(snap) == 20 and snap[0].IsFirstMessageInBatch and snap[-1].IsLastMessageInBatch
            assert _top(_client_book(snap, tick), 99) == _top(srv.engine.books[SYM], 10)
            for i in range(first, end, 500):
                srv.publish(SYM, ev[i:min(i + 500, end)])
            for p in (lim, full):
                p.send(M.SecurityDefinitionForSymbolRequest(RequestID=1, Symbol=SYM))
            assert await until(lambda: lim.of(T.SECURITY_DEFINITION_RESPONSE) and full.of(T.SECURITY_DEFINITION_RESPONSE))
            # apply the limited client's stream one message at a time: never more than 10 a side
            book = ReferenceBook()
            bests, entered, left = set(), 0, 0
            seen = set(_client_book(snap, tick).bids()) | set(_client_book(snap, tick).asks())
            for m in lim.of(T.MARKET_DEPTH_SNAPSHOT_LEVEL, depth_t):
                e = message_to_events(m, tick)
                book.apply_sequential(e)
                assert len(book.bids()) <= 10 and len(book.asks()) <= 10
                if int(m.TYPE) == depth_t:
                    if int(m.UpdateType) == 2:
                        left += 1
                    elif int(e["price"][0]) not in seen:
                        entered += 1
                        seen.add(int(e["price"][0]))
                    bests.add(book.best_bid())
            eng = srv.engine.books[SYM]
            assert _top(book, 99) == _top(eng, 10)  # exactly the server's best 10 a side, sizes too
            assert entered > 10 and left > 10 and len(bests) > 3  # the inside moved, levels came and went
            assert len(lim.of(depth_t)) * 5 < len(full.of(T.MARKET_DEPTH_UPDATE_LEVEL))
            mine = _client_book(full.msgs, tick)  # the full-depth client still gets everything
            assert mine.bids() == eng.bids() and mine.asks() == eng.asks()
            await lim.close()
            await full.close()
        finally:
            await srv.stop()

    asyncio.run(main())
