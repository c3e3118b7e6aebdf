"""The sans-I/O DTC session: a client-role and a server-role session talking through bytes only.

No sockets, no event loop, no sleeping: a :class:`~app.core.clock.ManualClock` drives every
deadline (heartbeats, a silent peer, the handshake, the hold of untimed market data).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.core import events as ev
from app.core.clock import ManualClock
from app.dtc import batch as B
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T
from app.dtc.session import (
    MAX_HEARTBEAT_S,
    CloseCause,
    Closed,
    DTCSession,
    EncodingSelected,
    FrameTooLarge,
    InvalidState,
    LoggedOn,
    LogonRefused,
    LogonRequested,
    Role,
    State,
)

ENCODINGS = [Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT]
TICK = 0.25


def _logon(hb=5, **kw):
    return M.LogonRequest(Username="u", HeartbeatIntervalInSeconds=hb, ClientName="test", **kw)


def _kinds(items):
    return [type(i).__name__ for i in items]


class Pair:
    """A client and a server session on one ManualClock; ``pump`` moves bytes both ways."""

    def __init__(self, encoding=Encoding.BINARY, *, hb=5.0, server_kw=None, client_kw=None, split=None):
        self.clock = ManualClock()
        self.client = DTCSession(Role.CLIENT, clock=self.clock, encoding=encoding, heartbeat_s=hb,
                                 **(client_kw or {}))
        self.server = DTCSession(Role.SERVER, clock=self.clock, **(server_kw or {}))
        self.split = split  # random.Random: cut every transfer into random pieces
        self.at_client: list = []
        self.at_server: list = []

    def _feed(self, session, data):
        if self.split is None or not data:
            session.receive_data(data)
            return
        pos = 0
        while pos < len(data):
            n = self.split.randint(1, 40)
            session.receive_data(data[pos:pos + n])
            pos += n

    def pump(self, *, accept=True, response=None):
        """Move bytes until both sides are quiet; the server accepts a logon when asked to."""
        for _ in range(20):
            moved = False
            data = self.client.data_to_send()
            if data:
                moved = True
                self._feed(self.server, data)
            for e in self.server.events_received():
                self.at_server.append(e)
                if isinstance(e, LogonRequested) and accept:
                    self.server.accept_logon(response or M.LogonResponse(ServerName="sim", TradingIsSupported=1))
                    moved = True
            data = self.server.data_to_send()
            if data:
                moved = True
                self._feed(self.client, data)
            got = self.client.events_received()
            self.at_client.extend(got)
            moved = moved or bool(got)
            if not moved:
                return
        raise AssertionError("sessions did not settle")

    def connect(self, **kw):
        self.client.initiate(_logon(hb=int(self.client.heartbeat_s), **kw))
        self.pump()


@pytest.mark.parametrize("enc", ENCODINGS)
def test_handshake_heartbeats_and_requests_in_each_encoding(enc):
    p = Pair(enc, split=random.Random(int(enc)))
    p.connect()
    c, s = p.client, p.server
    assert c.state is State.OPEN and s.state is State.OPEN
    assert c.encoding == s.encoding == enc
    # events in order, right after the message that caused them
    assert _kinds(p.at_client) == ["EncodingResponse", "EncodingSelected", "LogonResponse", "LoggedOn"]
    assert p.at_client[1] == EncodingSelected(enc, enc)
    assert isinstance(p.at_client[3], LoggedOn) and p.at_client[3].response is c.logon_response
    assert _kinds(p.at_server) == ["EncodingRequest", "EncodingSelected", "LogonRequest", "LogonRequested",
                                   "LoggedOn"]
    assert p.at_server[3].request.ClientName == "test" and s.logon_request.HeartbeatIntervalInSeconds == 5
    lr = c.logon_response
    assert lr.Result == M.LogonStatus.LOGON_SUCCESS and lr.ServerName == "sim" and lr.ProtocolVersion == 8
    assert s.heartbeat_s == 5.0
    # application messages both ways, in the negotiated encoding
    p.at_client.clear()
    p.at_server.clear()
    c.send(M.TradeAccountsRequest(RequestID=7))
    p.pump()
    assert _kinds(p.at_server) == ["TradeAccountsRequest"] and p.at_server[0].RequestID == 7
    s.send(M.TradeAccountResponse(RequestID=7, TotalNumberMessages=1, MessageNumber=1, TradeAccount="Sim1"))
    p.pump()
    assert [m.TradeAccount for m in p.at_client] == ["Sim1"]
    # heartbeats: both sides, one interval after logon, then every interval
    p.at_client.clear()
    p.at_server.clear()
    assert c.heartbeat_due_ns == s.heartbeat_due_ns == p.clock.monotonic_ns() + 5 * 10**9
    p.clock.advance(4.9)
    c.handle_timeouts()
    s.handle_timeouts()
    p.pump()
    assert p.at_client == [] and p.at_server == []
    for _ in range(3):
        p.clock.advance(5.0)
        c.handle_timeouts()
        s.handle_timeouts()
        p.pump()
    assert _kinds(p.at_client) == _kinds(p.at_server) == ["Heartbeat"] * 3
    assert p.at_server[0].CurrentDateTime == p.clock.time_ns() // 10**9 - 10
    assert c.state is State.OPEN and s.state is State.OPEN and c.errors == s.errors == 0


@pytest.mark.parametrize("enc", ENCODINGS)
def test_silent_peer_is_lost_after_twice_the_heartbeat_interval(enc):
    p = Pair(enc)
    p.connect()
    c = p.client
    t0 = p.clock.monotonic_ns()
    assert c.peer_deadline_ns == t0 + 10 * 10**9
    p.clock.advance(6.0)  # the server stays silent; the client keeps sending heartbeats
    c.handle_timeouts()
    assert c.state is State.OPEN and c.data_to_send()  # its heartbeat
    p.clock.advance(3.9)
    c.handle_timeouts()
    assert c.state is State.OPEN
    p.clock.advance(0.1)  # 10 s of silence = 2 x 5 s
    c.handle_timeouts()
    assert c.state is State.CLOSED and c.close_expected()
    (closed,) = c.events_received()
    assert closed.cause is CloseCause.HEARTBEAT_TIMEOUT and "10.0 s" in closed.reason
    # it tells the server why, then has nothing more to say
    p.server.receive_data(c.data_to_send())
    got = p.server.events_received()
    assert _kinds(got) == ["Logoff", "Closed"] and got[1].cause is CloseCause.PEER_LOGOFF
    assert "heartbeat" in got[0].Reason
    c.handle_timeouts()
    assert c.data_to_send() == b"" and c.events_received() == [] and c.next_deadline_ns() is None
    with pytest.raises(InvalidState):
        c.send(M.Heartbeat())


def test_any_byte_counts_as_liveness_and_the_server_grace():
    p = Pair(server_kw={"peer_timeout_grace_s": 1.0})
    p.connect()
    s = p.server
    for _ in range(5):  # a client that only ever sends a request every 9 s stays alive
        p.clock.advance(9.0)
        p.client.send(M.TradeAccountsRequest(RequestID=1))
        p.client.data_to_send()  # the client's heartbeats are dropped on the floor here
        s.receive_data(C.encode(M.TradeAccountsRequest(RequestID=2), Encoding.BINARY))
        s.handle_timeouts()
        assert s.state is State.OPEN
    t = p.clock.monotonic_ns()
    assert s.peer_deadline_ns == t + 11 * 10**9  # 2 x 5 s + 1 s grace
    p.clock.advance(10.999)
    s.handle_timeouts()
    assert s.state is State.OPEN
    p.clock.advance(0.001)
    s.handle_timeouts()
    assert s.closed.cause is CloseCause.HEARTBEAT_TIMEOUT


def test_server_heartbeat_interval_is_clamped_and_zero_means_none():
    p = Pair()
    p.client.initiate(_logon(hb=100_000))
    p.pump()
    assert p.server.heartbeat_s == MAX_HEARTBEAT_S
    q = Pair()
    q.client.initiate(_logon(hb=-1))  # e.g. a historical-data connection
    q.pump()
    assert q.server.heartbeat_s == 0.0 and q.server.next_deadline_ns() is None
    q.clock.advance(10_000)
    q.server.handle_timeouts()
    assert q.server.state is State.OPEN and q.server.data_to_send() == b""


@pytest.mark.parametrize("enc", ENCODINGS)
def test_server_switches_encoding_inside_one_read(enc):
    """The ENCODING_REQUEST and the LOGON_REQUEST (already in the new encoding) and a request
    arrive in one read; the response to the encoding request goes out in binary."""
    s = DTCSession(Role.SERVER, clock=ManualClock())
    data = (C.encode(M.EncodingRequest(ProtocolVersion=8, Encoding=int(enc)), Encoding.BINARY)
            + C.encode(_logon(), enc) + C.encode(M.TradeAccountsRequest(RequestID=3), enc))
    s.receive_data(data)
    got = s.events_received()
    assert _kinds(got) == ["EncodingRequest", "EncodingSelected", "LogonRequest", "LogonRequested"]
    out = s.data_to_send()
    resp = C.decode_frame(out, Encoding.BINARY)
    assert resp.TYPE == T.ENCODING_RESPONSE and resp.Encoding == int(enc)
    # the request that came with the logon waits for the decision, then comes out
    s.accept_logon(M.LogonResponse(ServerName="sim"))
    got = s.events_received()
    assert _kinds(got) == ["LoggedOn", "TradeAccountsRequest"] and got[1].RequestID == 3
    dec = C.Decoder(enc)
    (lr,) = dec.feed(s.data_to_send())
    assert lr.TYPE == T.LOGON_RESPONSE and lr.Result == 1 and dec.errors == 0
    assert s.ignored_before_logon == 0 and s.errors == 0


def test_server_requests_before_logon_are_ignored_and_counted():
    s = DTCSession(Role.SERVER, clock=ManualClock())
    s.receive_data(C.encode(M.TradeAccountsRequest(RequestID=1), Encoding.BINARY)
                   + C.encode(M.Heartbeat(), Encoding.BINARY))
    assert _kinds(s.events_received()) == ["Heartbeat"] and s.ignored_before_logon == 1
    with pytest.raises(InvalidState):
        s.accept_logon()
    with pytest.raises(InvalidState):
        s.send(M.Heartbeat())


def test_server_json_without_negotiation_and_fixed_encoding():
    s = DTCSession(Role.SERVER, clock=ManualClock())
    s.receive_data(C.encode(_logon(), Encoding.JSON))
    got = s.events_received()
    assert got[0] == EncodingSelected(Encoding.JSON, Encoding.JSON) and _kinds(got)[1:] == ["LogonRequest",
                                                                                             "LogonRequested"]
    s.accept_logon()
    assert s.data_to_send().startswith(b'{"Type":2,')
    # a server fixed to compact JSON answers any ENCODING_REQUEST with it (in compact JSON)
    f = DTCSession(Role.SERVER, clock=ManualClock(), encoding=Encoding.JSON_COMPACT, fixed_encoding=True)
    f.receive_data(C.encode(M.EncodingRequest(ProtocolVersion=8, Encoding=0), Encoding.JSON_COMPACT))
    got = f.events_received()
    assert got[1] == EncodingSelected(Encoding.JSON_COMPACT, 0)
    (resp,) = C.Decoder(Encoding.JSON_COMPACT).feed(f.data_to_send())
    assert resp.Encoding == int(Encoding.JSON_COMPACT)


def test_server_grants_its_current_encoding_for_an_unsupported_one():
    s = DTCSession(Role.SERVER, clock=ManualClock())
    s.receive_data(C.encode(M.EncodingRequest(ProtocolVersion=8, Encoding=4), Encoding.BINARY)  # protobuf
                   + C.encode(_logon(), Encoding.BINARY))
    got = s.events_received()
    assert got[1] == EncodingSelected(Encoding.BINARY, 4) and isinstance(got[-1], LogonRequested)
    (resp,) = C.Decoder(Encoding.BINARY).feed(s.data_to_send())
    assert resp.Encoding == 0 and s.encoding == Encoding.BINARY and s.errors == 0


def test_refused_logon_closes_both_sides():
    p = Pair(Encoding.JSON)
    p.client.initiate(_logon())
    p.pump(accept=False)
    assert isinstance(p.at_server[-1], LogonRequested)
    p.server.refuse_logon("bad username or password", server_name="sim")
    assert p.server.closed == Closed(CloseCause.LOGON_REFUSED, "bad username or password", True)
    p.pump()
    assert _kinds(p.at_client)[-3:] == ["LogonResponse", "LogonRefused", "Closed"]
    refused, closed = p.at_client[-2:]
    assert isinstance(refused, LogonRefused) and refused.result == M.LogonStatus.LOGON_ERROR_NO_RECONNECT
    assert refused.text == "bad username or password"
    assert closed.cause is CloseCause.LOGON_REFUSED and closed.do_not_reconnect
    with pytest.raises(InvalidState):
        DTCSession(Role.SERVER).refuse_logon("x")  # no logon waiting for a decision


def test_handshake_deadlines():
    clock = ManualClock()
    c = DTCSession(Role.CLIENT, clock=clock, heartbeat_s=5, handshake_timeout_s=3)
    c.initiate(_logon())
    assert c.handshake_deadline_ns == clock.monotonic_ns() + 3 * 10**9
    clock.advance(2.999)
    c.handle_timeouts()
    assert c.state is State.NEGOTIATING
    clock.advance(0.001)
    c.handle_timeouts()
    assert c.closed == Closed(CloseCause.HANDSHAKE_TIMEOUT, "no ENCODING_RESPONSE within 3 s")
    # the server gives a client SERVER_LOGON_TIMEOUT_S (120 s) from the start to log on
    s = DTCSession(Role.SERVER, clock=clock)
    clock.advance(119)
    s.receive_data(C.encode(M.EncodingRequest(ProtocolVersion=8, Encoding=2), Encoding.BINARY))
    s.handle_timeouts()
    assert s.state is State.LOGGING_ON
    clock.advance(1)
    s.handle_timeouts()
    assert s.closed.cause is CloseCause.HANDSHAKE_TIMEOUT
    assert C.Decoder(Encoding.JSON).feed(s.data_to_send())[-1].TYPE == T.LOGOFF


def test_unsupported_encoding_in_the_response_is_a_protocol_error():
    c = DTCSession(Role.CLIENT, clock=ManualClock(), heartbeat_s=5)
    c.initiate(_logon())
    c.data_to_send()
    c.receive_data(C.encode(M.EncodingResponse(ProtocolVersion=8, Encoding=4), Encoding.BINARY))
    got = c.events_received()
    assert _kinds(got) == ["EncodingResponse", "Closed"] and got[1].cause is CloseCause.PROTOCOL_ERROR
    assert "unsupported encoding 4" in got[1].reason


def test_logoff_both_ways_and_eof():
    p = Pair(Encoding.JSON_COMPACT)
    p.connect()
    p.at_server.clear()
    p.client.logoff("done for today " + "x" * 200, do_not_reconnect=True)
    assert p.client.closed.cause is CloseCause.LOCAL
    p.pump()
    logoff, closed = p.at_server
    assert logoff.TYPE == T.LOGOFF and len(logoff.Reason.encode()) == 95 and logoff.DoNotReconnect == 1
    assert closed.cause is CloseCause.PEER_LOGOFF and closed.do_not_reconnect
    p.client.logoff("again")  # a no-op once closed
    assert p.client.data_to_send() == b""
    q = Pair()
    q.connect()
    q.client.receive_eof()
    (closed,) = q.client.events_received()
    assert closed == Closed(CloseCause.EOF, "closed by server")
    q.client.receive_data(C.encode(M.Heartbeat(), Encoding.BINARY))  # ignored once closed
    assert q.client.events_received() == []


def test_binary_desync_closes_with_a_logoff():
    p = Pair()
    p.connect()
    p.server.receive_data(b"\x02\x00\x03\x00garbage")  # Size 2 < 4: cannot resynchronise
    got = p.server.events_received()
    assert _kinds(got) == ["Closed"] and got[0].cause is CloseCause.DESYNC
    assert "Size 2" in got[0].reason and p.server.errors == 1
    (logoff,) = C.Decoder(Encoding.BINARY).feed(p.server.data_to_send())
    assert logoff.TYPE == T.LOGOFF and "resynchronised" in logoff.Reason


def test_frame_limit_and_send_states():
    clock = ManualClock()
    c = DTCSession(Role.CLIENT, clock=clock, encoding=Encoding.JSON, heartbeat_s=5, max_frame=64)
    with pytest.raises(InvalidState):
        c.send(M.TradeAccountsRequest(RequestID=1))  # before logon: the encoding is not settled
    with pytest.raises(InvalidState):
        DTCSession(Role.SERVER).initiate(_logon())
    with pytest.raises(FrameTooLarge):  # the JSON LOGON_REQUEST is longer than 64 bytes: said at once
        c.initiate(_logon())
    assert c.logon_request is None and c.data_to_send() == b""
    c.max_frame = None
    c.initiate(_logon())
    with pytest.raises(InvalidState):
        c.initiate(_logon())
    # a server granting an encoding the logon does not fit in: a protocol error, never an exception
    c.max_frame = 100
    c.data_to_send()
    c.receive_data(C.encode(M.EncodingResponse(ProtocolVersion=8, Encoding=2), Encoding.BINARY))
    assert c.state is State.CLOSED and c.closed.cause is CloseCause.PROTOCOL_ERROR
    for bad in ({"heartbeat_s": 0}, {"handshake_timeout_s": -1}, {"max_frame": 8}, {"encoding": 4}):
        with pytest.raises(ValueError):
            DTCSession(Role.CLIENT, **bad)
    with pytest.raises(ValueError):
        DTCSession(Role.SERVER, tick_sizes={})


def test_sent_frames_over_the_limit_raise():
    p = Pair(Encoding.JSON, client_kw={"max_frame": 600}, server_kw={"max_frame": 600})
    p.connect()
    p.server.send(M.OrderUpdate(Symbol="ESZ5", ClientOrderID="c1"))
    long = M.OrderUpdate(Symbol="E" * 60, TradeAccount="A" * 30, ClientOrderID="C" * 30, InfoText="I" * 90,
                         ServerOrderID="S" * 30, ParentServerOrderID="P" * 30, ExchangeOrderID="X" * 30)
    with pytest.raises(FrameTooLarge, match="frame limit of 601 bytes"):
        p.server.send(long)
    p.pump()
    assert [m.ClientOrderID for m in p.at_client[-1:]] == ["c1"]
    # what the peer receives over its limit is dropped and counted, never raised
    p.client.receive_data(C.encode(long, Encoding.JSON))
    assert p.client.events_received() == [] and p.client.errors == 1 and p.client.state is State.OPEN


def test_client_market_decoder_hold_is_a_session_deadline():
    """Untimed depth (141) before any market time is held; the session's deadline releases it
    with the clock's wall time when the ManualClock passes the hold."""
    p = Pair(Encoding.BINARY, client_kw={"tick_sizes": {3: TICK}, "market_clock": True, "hold_s": 2.0})
    p.connect()
    c = p.client
    p.at_client.clear()
    dep = ev.depth_events(ts=np.zeros(4, dtype=np.int64), price=[100, 101, 102, 103], size=[1.0, 2, 3, 4],
                          side=[1, 1, 2, 2], op=1)
    p.server.send_encoded(B.encode_depth_batch(dep, TICK, 3, Encoding.BINARY, msg_type=141), messages=4)
    p.pump()
    assert p.at_client == [] and c.decoder.held == 4
    assert c.hold_deadline_ns == c.next_deadline_ns() == p.clock.monotonic_ns() + 2 * 10**9
    p.clock.advance(1.999)
    c.handle_timeouts()
    assert c.events_received() == []
    p.clock.advance(0.001)
    c.handle_timeouts()
    (arr,) = c.events_received()
    assert isinstance(arr, np.ndarray) and len(arr) == 4 and (arr["ts"] == p.clock.time_ns()).all()
    assert c.decoder.held == 0 and c.hold_deadline_ns is None


def test_server_message_order_and_limits_of_held_requests(monkeypatch):
    from app.dtc import session as S

    monkeypatch.setattr(S, "MAX_HELD_BEFORE_LOGON", 3)
    s = DTCSession(Role.SERVER, clock=ManualClock())
    s.receive_data(C.encode(_logon(), Encoding.BINARY)
                   + b"".join(C.encode(M.TradeAccountsRequest(RequestID=i), Encoding.BINARY) for i in range(5)))
    assert _kinds(s.events_received()) == ["LogonRequest", "LogonRequested"]
    s.accept_logon()
    got = s.events_received()
    assert [m.RequestID for m in got[1:]] == [0, 1, 2] and s.dropped_before_logon == 2
