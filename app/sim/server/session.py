"""The server's session layer: connections, the sans-I/O DTC session per connection, sending.

One :class:`Conn` per TCP client, each with its :class:`app.dtc.session.DTCSession` (role
server), which does the encoding negotiation, the logon handshake, heartbeats and the deadlines
(logon within 120 s of the connection's start; a client silent for 2 x its heartbeat interval
+ 1 s is logged off). This module only moves bytes: it feeds the session what the socket read,
writes what the session has to send, decides the logon (password, capability flags) and wakes
the session at its next deadline through the server's :class:`~app.core.timers.ClockTimers`
(so the server's time comes from its injected clock).

Every request is dispatched with its connection (``handler(conn, message)``); whatever answers
it (a rejection included) is sent to that connection explicitly, never through server-wide
state. Procedures: see :mod:`app.sim.server`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field

from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType
from app.dtc.session import Closed, DTCSession, InvalidState, LogonRequested, Role
from app.core.timers import TimerHandle

log = logging.getLogger(__name__)

#: Output buffer (bytes) above which the replay waits for a client to drain.
HIGH_WATER = 1 << 20
#: Output buffer (bytes) above which a client is disconnected as too slow.
MAX_BUFFER = 64 << 20
#: Extra silence (s) allowed on top of 2 x the client's heartbeat interval.
IDLE_GRACE_S = 1.0

T = MessageType
ENCODINGS = (Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT)
#: Message types the DTC session handles itself (never dispatched to a handler).
SESSION_TYPES = frozenset(int(t) for t in (T.ENCODING_REQUEST, T.ENCODING_RESPONSE, T.LOGON_REQUEST,
                                           T.LOGON_RESPONSE, T.HEARTBEAT, T.LOGOFF))


def fit(text: str, n: int) -> str:
    """Fit ``text`` into a DTC ``char[n]`` field (at most n-1 UTF-8 bytes + NUL)."""
    b = str(text).encode("utf-8")[: n - 1]
    return b.decode("utf-8", "ignore")


@dataclass
class Conn:
    """One client connection: its transport, its DTC session and what it subscribed.

    Attributes
    ----------
    cid : int
        Connection number (1, 2, ... in order of arrival).
    session : app.dtc.session.DTCSession
        The connection's protocol state (role server).
    closed : bool
        The transport is closed or closing (nothing more is sent).
    client_name : str
        LOGON_REQUEST.ClientName (set at logon).
    integer_1 : int
        LOGON_REQUEST.Integer_1 flags (depth message types; set at logon).
    md_subs, depth_subs : dict of str to int
        Symbol -> SymbolID of the market data / depth subscriptions.
    pending_parents : dict
        ClientOrderID -> ((OrderSpec, message), TimerHandle) of held bracket parents.
    """

    cid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    session: DTCSession
    client_name: str = ""
    integer_1: int = 0
    md_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    depth_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    pending_parents: dict = field(default_factory=dict)  # ClientOrderID -> (msg, TimerHandle)
    closed: bool = False
    timer: TimerHandle | None = None  # wakes the session at its next deadline
    counted_out: int = 0  # session.messages_sent already added to the server's stats
    encode_errors: int = 0  # messages for this client that could not be encoded

    @property
    def encoding(self) -> Encoding:
        """Encoding in force for what is sent and received (the session's)."""
        return self.session.encoding

    @property
    def logged_on(self) -> bool:
        """Logged on and the session still open."""
        return self.session.is_open

    @property
    def heartbeat_s(self) -> float:
        """Heartbeat interval in force, s (0: none, no idle limit)."""
        return self.session.heartbeat_s

    @property
    def msgs_in(self) -> int:
        """Messages decoded from this client."""
        return self.session.messages

    @property
    def msgs_out(self) -> int:
        """Messages sent to this client."""
        return self.session.messages_sent

    @property
    def depth_type(self) -> int:
        """Depth update message type this client asked for (106, or 140 with flag 0x80)."""
        if self.integer_1 & M.LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES:
            return int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS)
        return int(T.MARKET_DEPTH_UPDATE_LEVEL)

    @property
    def snapshot_type(self) -> int:
        """Depth snapshot message type this client asked for (122, or 145 with flag 0x800)."""
        if self.integer_1 & M.LogonFlags.SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT:
            return int(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)
        return int(T.MARKET_DEPTH_SNAPSHOT_LEVEL)


class SessionMixin:
    """Connections of :class:`app.sim.server.DTCServer`: accept, drive the session, dispatch,
    send, close.

    Uses the server's ``conns``, ``_stats``, ``_handlers`` (message type -> bound handler
    ``(conn, message)``), ``_timers``, ``clock``, ``fixed_encoding``, ``password``,
    ``server_name``, ``symbols`` and ``account``.
    """

    # ------------------------------------------------------------------ sending

    def _send(self, c: Conn, msg: M.Message) -> None:
        """Send one message to ``c`` in its encoding (dropped, counted in ``encode_errors`` and
        logged once per connection, when it cannot be encoded; dropped when the connection is
        not logged on)."""
        if c.closed:
            return
        try:
            c.session.send(msg)
        except InvalidState as exc:
            log.error("cannot send %s to client %d: %s", type(msg).__name__, c.cid, exc)
            return
        except (ValueError, OverflowError, TypeError, struct.error) as exc:  # EncodeError is a ValueError
            self._stats["encode_errors"] += 1
            c.encode_errors += 1
            if c.encode_errors == 1:
                log.error("cannot encode %s for client %d: %s (further ones counted only)",
                          type(msg).__name__, c.cid, exc)
            return
        self._flush(c)

    def _encode_failed(self, c: Conn, exc: Exception) -> None:
        """Market data for ``c`` could not be encoded: count it, log it, log the client off
        with the reason (it would miss data from now on). Other connections are not touched."""
        self._stats["encode_errors"] += 1
        c.encode_errors += 1
        log.error("cannot encode market data for client %d: %s; logging it off", c.cid, exc)
        self._logoff(c, fit(f"server cannot encode market data for this connection: {exc}", 96))

    def _write(self, c: Conn, data: bytes, n_msgs: int) -> None:
        """Send bytes already encoded in ``c.encoding`` (``n_msgs`` messages)."""
        if c.closed or not data:
            return
        try:
            c.session.send_encoded(data, n_msgs)
        except InvalidState as exc:
            log.error("cannot send to client %d: %s", c.cid, exc)
            return
        self._flush(c)

    def _flush(self, c: Conn) -> None:
        """Write what the session has to send and count it."""
        data = c.session.data_to_send()
        sent = c.session.messages_sent
        n, c.counted_out = sent - c.counted_out, sent
        if c.closed or not data:
            return
        try:
            c.writer.write(data)
        except (ConnectionError, RuntimeError) as exc:
            log.info("client %d write failed: %s", c.cid, exc)
            c.closed = True
            return
        self._stats["messages_out"] += n
        self._stats["bytes_out"] += len(data)

    def _broadcast(self, msg: M.Message) -> None:
        for c in list(self.conns.values()):
            if c.logged_on and not c.closed:
                self._send(c, msg)

    def _logoff(self, c: Conn, reason: str, do_not_reconnect: bool = False) -> None:
        """LOGOFF with ``reason`` (cut to ``char[96]``), then the transport closes."""
        c.session.logoff(reason, do_not_reconnect)
        self._after_step(c)

    def _drop(self, c: Conn) -> None:
        """Close the transport now (what was written still goes out first)."""
        if c.closed:
            return
        c.closed = True
        try:
            c.writer.close()
        except (ConnectionError, RuntimeError):
            pass

    async def _close(self, c: Conn) -> None:
        if c.cid in self.conns:  # keep the counters of connections that are gone
            self._stats["malformed_frames"] += c.session.errors
            self._stats["unknown_types"] += c.session.decoder.unknown
            self.conns.pop(c.cid, None)
        c.closed = True
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None
        for _msg, handle in c.pending_parents.values():
            handle.cancel()
        c.pending_parents.clear()
        try:
            c.writer.close()
            await asyncio.wait_for(c.writer.wait_closed(), 1.0)
        except (Exception, asyncio.TimeoutError):
            pass

    # ------------------------------------------------------------------ receiving

    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        fixed = self.fixed_encoding
        session = DTCSession(Role.SERVER, clock=self.clock, encoding=fixed if fixed is not None else Encoding.BINARY,
                             fixed_encoding=fixed is not None, peer_timeout_grace_s=IDLE_GRACE_S)
        c = Conn(self._next_cid, reader, writer, str(peer), session)
        self._next_cid += 1
        self.conns[c.cid] = c
        self._stats["clients_total"] += 1
        log.info("DTC client %d connected from %s", c.cid, peer)
        self._after_step(c)  # the logon deadline
        try:
            while not c.closed:
                data = await reader.read(1 << 16)
                if not data:
                    session.receive_eof()
                    self._after_step(c)
                    break
                self._receive(c, data)
                if c.closed:
                    break
                if writer.transport.get_write_buffer_size() > HIGH_WATER:
                    try:
                        await asyncio.wait_for(writer.drain(), 10.0)
                    except (asyncio.TimeoutError, ConnectionError):
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one client take the server down
            log.exception("DTC client %d: unexpected error; closing it", c.cid)
        finally:
            log.info("DTC client %d disconnected (%d in, %d out)", c.cid, c.msgs_in, c.msgs_out)
            await self._close(c)

    def _receive(self, c: Conn, data: bytes) -> None:
        """Feed bytes read from ``c`` to its session and act on what it decoded."""
        s = c.session
        n_in, n_ign = s.messages, s.ignored_before_logon + s.dropped_before_logon
        s.receive_data(data)
        self._stats["messages_in"] += s.messages - n_in
        self._stats["ignored_before_logon"] += s.ignored_before_logon + s.dropped_before_logon - n_ign
        self._after_step(c)

    def _after_step(self, c: Conn) -> None:
        """Dispatch what the session decoded, write what it has to send, close the transport
        once the session closed, else make sure it is woken at its next deadline."""
        s = c.session
        while True:
            items = s.events_received()
            if not items:
                break
            for it in items:
                if isinstance(it, M.Message):
                    if int(it.TYPE) not in SESSION_TYPES:
                        self._dispatch(c, it)
                elif isinstance(it, LogonRequested):
                    self._on_logon(c, it.request)
                elif isinstance(it, Closed):
                    log.info("DTC client %d: session closed (%s: %s)", c.cid, it.cause.value, it.reason)
        self._flush(c)
        if s.close_expected():
            self._drop(c)
            return
        due = s.next_deadline_ns()
        if due is not None and (c.timer is None or c.timer.cancelled or due < c.timer.when_ns):
            if c.timer is not None:
                c.timer.cancel()
            c.timer = self._timers.call_at(due, self._on_deadline, c)

    def _on_deadline(self, c: Conn) -> None:
        """Timer callback: let the session act on its deadlines (a later one is rescheduled)."""
        c.timer = None
        if c.closed:
            return
        c.session.handle_timeouts()
        self._after_step(c)

    def _dispatch(self, c: Conn, m: M.Message) -> None:
        if c.closed:
            return
        handler = self._handlers.get(int(m.TYPE))
        if handler is None:
            self._stats["unknown_types"] += 1
            return
        try:
            handler(c, m)  # the connection travels with the request
        except Exception:  # a bad request must not kill the connection or the server
            log.exception("DTC client %d: error handling %s", c.cid, type(m).__name__)

    def _on_logon(self, c: Conn, m) -> None:
        """Decide a LOGON_REQUEST: the password, then the capability flags."""
        if self.password is not None and m.Password != self.password:
            c.session.refuse_logon("bad username or password", result=M.LogonStatus.LOGON_ERROR_NO_RECONNECT,
                                   server_name=self.server_name)
            return
        c.client_name = m.ClientName
        c.integer_1 = int(m.Integer_1)
        c.session.accept_logon(
            M.LogonResponse(
                ResultText=fit(f"logged on; replaying {', '.join(self.symbols)}; account {self.account}", 96),
                ServerName=fit(self.server_name, 60),
                MarketDepthUpdatesBestBidAndAsk=0,
                TradingIsSupported=1,
                OCOOrdersSupported=1,
                OrderCancelReplaceSupported=1,
                SymbolExchangeDelimiter="-",
                SecurityDefinitionsSupported=1,
                HistoricalPriceDataSupported=0,
                ResubscribeWhenMarketDataFeedAvailable=0,
                MarketDepthIsSupported=1,
                OneHistoricalPriceDataRequestPerConnection=0,
                BracketOrdersSupported=1,
                UsesMultiplePositionsPerSymbolAndTradeAccount=0,
                MarketDataSupported=1,
            )
        )
