"""The server's session layer: connections, the sans-I/O DTC session per connection, sending.

One :class:`Conn` per TCP client (or WebSocket client on the same port, or either inside TLS:
:mod:`.transport`), each with its :class:`app.dtc.session.DTCSession` (role server), which does
the encoding negotiation, the logon handshake, heartbeats and the deadlines (logon within 120 s
of the connection's start; a client silent for 2 x its heartbeat interval + 1 s is logged off).
This module only moves bytes: it feeds the session what the socket read, writes what the session
has to send, decides the logon (password, capability flags) and wakes the session at its next
deadline through the server's :class:`~app.core.timers.ClockTimers`
(so the server's time comes from its injected clock).

Every request is dispatched with its connection (``handler(conn, message)``); whatever answers
it (a rejection included) is sent to that connection explicitly, never through server-wide
state. Procedures: see :mod:`app.sim.server`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import struct
from dataclasses import dataclass, field

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType
from app.dtc.session import Closed, DTCSession, InvalidState, LogonRequested, Role
from app.core.timers import TimerHandle
from app.sim.server.transport import WebSocketStream, maybe_websocket, websocket_encoding

log = logging.getLogger(__name__)

#: Default bound (bytes) of a connection's output buffer (what the transport holds beyond the
#: kernel's socket buffer). Above it the connection is *behind*: its market data is conflated
#: (not written) until it has read what it was sent, then it gets fresh snapshots.
SEND_BUFFER_LIMIT = 16 << 20
#: A connection whose buffer passes this many times the bound is disconnected at once (what
#: still reaches a connection that is behind: order updates, answers to its requests).
HARD_LIMIT_FACTOR = 4
#: Maximum-speed replay only (no clock to keep): after a batch the replay waits, at most
#: :data:`PACE_WAIT_S` real seconds, for the connections holding more than this many bytes
#: to drain, so clients that keep up are not flooded; one that has not drained by then falls
#: behind (conflated) and is not waited for again. At real-time speeds nobody is waited for.
PACE_HIGH_WATER = 1 << 20
PACE_WAIT_S = 0.5
#: A connection that is behind has caught up when its transport holds at most this many bytes.
CAUGHT_UP_BYTES = 64 << 10
#: Default time (s of the server's clock) a connection may stay behind before it is logged off.
SLOW_CLIENT_TIMEOUT_S = 10.0
#: Real seconds a closed transport gets to flush (the LOGOFF) before it is aborted, so a client
#: that never reads cannot keep its buffer alive.
DROP_GRACE_S = 1.0
#: Real seconds :meth:`DTCServer.stop` gives the transports to flush their LOGOFF (and again
#: the connection tasks to end) before it aborts (cancels) them.
STOP_GRACE_S = 0.25
#: Default caps: open connections, subscriptions (market data + depth) per connection.
MAX_CONNECTIONS = 64
MAX_SUBSCRIPTIONS = 64
#: Default shortest interval (s of the server's clock) between two full snapshots of one
#: subscription of one connection (a repeated request waits for the rest of it).
RESNAPSHOT_INTERVAL_S = 1.0
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
    username : str
        LOGON_REQUEST.Username (set at logon).
    account : str
        The engine account this logon owns (set at logon; "" before): every order, position,
        balance and query of the connection is this account's (:mod:`.orders`).
    integer_1 : int
        LOGON_REQUEST.Integer_1 flags (depth message types; set at logon).
    md_subs, depth_subs : dict of str to int
        Symbol -> SymbolID of the market data / depth subscriptions.
    depth_levels : dict of str to int
        Symbol -> ``MARKET_DEPTH_REQUEST.NumLevels`` of the depth subscription (0: full depth).
    behind : bool
        Its output buffer passed the server's ``send_buffer_limit``: no market data is written
        to it until it caught up (then fresh snapshots); logged off after
        ``slow_client_timeout_s`` behind.
    awaiting : dict
        ``("md" | "depth", symbol)`` -> server-clock ns at which the subscription's next full
        snapshot is due; its market data is held back until then.
    pending_parents : dict
        ClientOrderID -> ((OrderSpec, message), TimerHandle) of held bracket parents.
    """

    cid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    session: DTCSession
    client_name: str = ""
    username: str = ""
    account: str = ""  # the engine account the logon owns ("" = not logged on)
    integer_1: int = 0
    md_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    depth_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    pending_parents: dict = field(default_factory=dict)  # ClientOrderID -> (msg, TimerHandle)
    closed: bool = False
    timer: TimerHandle | None = None  # wakes the session at its next deadline
    counted_out: int = 0  # session.messages_sent already added to the server's stats
    encode_errors: int = 0  # messages for this client that could not be encoded
    bytes_out: int = 0  # bytes written to its transport
    depth_levels: dict = field(default_factory=dict)  # symbol -> NumLevels asked for (0: all)
    behind: bool = False  # output buffer over the bound: market data conflated
    behind_since_ns: int = 0  # server clock (monotonic ns) when it fell behind
    dropping: bool = False  # being logged off as too slow
    slow_timer: TimerHandle | None = None  # logs it off when it stays behind too long
    catch_up_task: asyncio.Task | None = None  # waits for the buffer to drain
    snap_at: dict = field(default_factory=dict)  # ("md"|"depth", symbol) -> ns of the last full snapshot
    awaiting: dict = field(default_factory=dict)  # ("md"|"depth", symbol) -> ns its snapshot is due
    snap_timer: TimerHandle | None = None  # sends the deferred snapshots

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
    def trade_type(self) -> int:
        """Trade message type for this client, as Sierra Chart picks it from ``Integer_1``
        (DTCServer.php, reference notes section 5): 146 with 0x80000, else 107 with 0x8
        (NO_COMPACT_MARKET_DATA_MESSAGES), else 112 (compact, the default)."""
        f = self.integer_1
        if f & M.LogonFlags.SUPPORT_MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2:
            return int(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2)
        if f & M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES:
            return int(T.MARKET_DATA_UPDATE_TRADE)
        return int(T.MARKET_DATA_UPDATE_TRADE_COMPACT)

    @property
    def bid_ask_type(self) -> int:
        """Best bid/ask message type for this client: 144 with 0x100000, else 108 with 0x8,
        else 117 (compact, the default)."""
        f = self.integer_1
        if f & M.LogonFlags.SUPPORT_MARKET_DATA_UPDATE_BIDASK_MICROSECOND_MESSAGE:
            return int(T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS)
        if f & M.LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES:
            return int(T.MARKET_DATA_UPDATE_BID_ASK)
        return int(T.MARKET_DATA_UPDATE_BID_ASK_COMPACT)

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
    ``server_name``, ``symbols``, ``account``, the bounds ``send_buffer_limit``,
    ``slow_client_timeout_s``, ``max_connections`` and the market data's
    ``_send_fresh_snapshots``.
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
        """Write what the session has to send, count it, and watch the connection's buffer
        (:meth:`_check_buffer`)."""
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
        c.bytes_out += len(data)
        self._check_buffer(c)

    @staticmethod
    def _buffered(c: Conn) -> int:
        """Bytes written to ``c`` that its transport still holds (0 when it cannot tell)."""
        try:
            return int(c.writer.transport.get_write_buffer_size())
        except (AttributeError, RuntimeError):
            return 0

    def _check_buffer(self, c: Conn) -> None:
        """Over ``send_buffer_limit`` the connection falls behind (conflated market data, a
        deadline to catch up); over ``HARD_LIMIT_FACTOR`` times it, it is logged off at once.
        Nothing here waits: the replay never waits for a client."""
        if c.closed or c.dropping:
            return
        size = self._buffered(c)
        limit = self.send_buffer_limit
        if size <= limit:
            return
        if size > limit * HARD_LIMIT_FACTOR:
            self._drop_slow(c, f"too slow: {size} bytes unread (limit {limit * HARD_LIMIT_FACTOR})")
        elif not c.behind:
            self._fall_behind(c, size)

    def _fall_behind(self, c: Conn, size: int) -> None:
        c.behind = True
        c.behind_since_ns = self.clock.monotonic_ns()
        self._stats["slow_clients_conflated"] += 1
        log.warning("DTC client %d is behind (%d bytes unread): market data conflated until it catches up",
                    c.cid, size)
        if self.slow_client_timeout_s is not None:
            c.slow_timer = self._timers.call_later(self.slow_client_timeout_s, self._too_slow, c)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop (cannot happen in the server): no catch-up
            return
        c.catch_up_task = loop.create_task(self._catch_up(c), name=f"dtc-catch-up-{c.cid}")

    def _too_slow(self, c: Conn) -> None:
        """Timer: ``c`` stayed behind for ``slow_client_timeout_s``."""
        c.slow_timer = None
        if c.closed or not c.behind:
            return
        secs = (self.clock.monotonic_ns() - c.behind_since_ns) / 1e9
        self._drop_slow(c, f"too slow: {self._buffered(c)} bytes unread for {secs:.0f} s")

    def _drop_slow(self, c: Conn, reason: str) -> None:
        """Log ``c`` off as too slow (LOGOFF with ``reason``; its transport is aborted after
        :data:`DROP_GRACE_S` if it does not read it)."""
        c.dropping = True
        self._stats["slow_clients_dropped"] += 1
        log.warning("DTC client %d %s: disconnecting", c.cid, reason)
        self._logoff(c, reason)
        self._drop(c)

    async def _pace(self) -> None:
        """Maximum-speed replay: wait (at most :data:`PACE_WAIT_S`) for the connections that are
        not behind and hold more than :data:`PACE_HIGH_WATER` bytes to drain; those that did not
        fall behind. Bounded, so a client that never reads costs the others one wait."""
        full = [c for c in self.conns.values()
                if not c.closed and not c.behind and self._buffered(c) > PACE_HIGH_WATER]
        if not full:
            return

        async def drained(c: Conn) -> None:
            try:
                await c.writer.drain()
            except Exception:  # reset, aborted: nothing to wait for
                pass

        waits = [asyncio.ensure_future(drained(c)) for c in full]
        _done, pending = await asyncio.wait(waits, timeout=PACE_WAIT_S)
        for w in pending:
            w.cancel()
        for c in full:
            size = self._buffered(c)
            if not c.closed and not c.behind and size > PACE_HIGH_WATER:
                self._fall_behind(c, size)

    async def _catch_up(self, c: Conn) -> None:
        """Wait until ``c`` read what it was sent, then end its conflation with fresh snapshots."""
        w = c.writer
        try:
            while not c.closed and self._buffered(c) > CAUGHT_UP_BYTES:
                before = self._buffered(c)
                await w.drain()
                if self._buffered(c) >= before:  # the transport did not pause (odd limits)
                    await asyncio.sleep(0.01)
        except Exception:  # reset by the peer, aborted: nothing to catch up
            return
        finally:
            c.catch_up_task = None
        if c.closed:
            return
        c.behind = False
        if c.slow_timer is not None:
            c.slow_timer.cancel()
            c.slow_timer = None
        self._stats["slow_clients_caught_up"] += 1
        log.info("DTC client %d caught up: fresh snapshots", c.cid)
        self._send_fresh_snapshots(c)

    def _broadcast(self, msg: M.Message) -> None:
        for c in list(self.conns.values()):
            if c.logged_on and not c.closed:
                self._send(c, msg)

    def _logoff(self, c: Conn, reason: str, do_not_reconnect: bool = False) -> None:
        """LOGOFF with ``reason`` (cut to ``char[96]``), then the transport closes."""
        c.session.logoff(reason, do_not_reconnect)
        self._after_step(c)

    def _drop(self, c: Conn) -> None:
        """Close the transport now: what was written still goes out first, for at most
        :data:`DROP_GRACE_S` (then the transport is aborted, its buffer freed)."""
        if c.closed:
            return
        c.closed = True
        try:
            c.writer.close()
        except (ConnectionError, RuntimeError):
            pass
        if self._buffered(c):
            try:
                asyncio.get_running_loop().call_later(DROP_GRACE_S, c.writer.transport.abort)
            except (RuntimeError, AttributeError):
                pass

    async def _close(self, c: Conn) -> None:
        if c.cid in self.conns:  # keep the counters of connections that are gone
            self._stats["malformed_frames"] += c.session.errors
            self._stats["unknown_types"] += c.session.decoder.unknown
            self.conns.pop(c.cid, None)
        c.closed = True
        for name in ("timer", "slow_timer", "snap_timer"):
            handle = getattr(c, name)
            if handle is not None:
                handle.cancel()
                setattr(c, name, None)
        if c.catch_up_task is not None:
            c.catch_up_task.cancel()
            c.catch_up_task = None
        c.awaiting.clear()
        for _msg, handle in c.pending_parents.values():
            handle.cancel()
        c.pending_parents.clear()
        try:
            c.writer.close()
            await asyncio.wait_for(c.writer.wait_closed(), 1.0)
        except (Exception, asyncio.TimeoutError):
            # not flushed within 1 s (a peer that does not read): free the buffer
            try:
                c.writer.transport.abort()
            except (AttributeError, RuntimeError):
                pass

    # ------------------------------------------------------------------ receiving

    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection's task (asyncio's ``client_connected_cb``): read, feed the session,
        close. It never ends with an exception, not even when cancelled: asyncio's done
        callback of this task calls ``task.exception()``, which on a cancelled task prints a
        ``CancelledError`` traceback (Python 3.11 ``asyncio.streams``)."""
        task = asyncio.current_task()
        self._client_tasks.add(task)
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            pass  # the server is stopping: the connection was closed by _serve_connection
        finally:
            self._client_tasks.discard(task)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        fixed = self.fixed_encoding
        if sum(1 for c in self.conns.values() if not c.closed) >= self.max_connections:
            self._refuse_connection(writer, peer)
            return
        session = self._new_session(fixed if fixed is not None else Encoding.BINARY, fixed is not None)
        c = Conn(self._next_cid, reader, writer, str(peer), session)
        self._next_cid += 1
        self.conns[c.cid] = c
        self._stats["clients_total"] += 1
        log.info("DTC client %d connected from %s", c.cid, peer)
        self._after_step(c)  # the logon deadline
        try:
            sniff = True  # the first read may be a WebSocket upgrade (transport.maybe_websocket)
            while not c.closed:
                data = await reader.read(1 << 16)
                if sniff:
                    sniff = False
                    data = await maybe_websocket(reader, writer, data, lambda ws: self._use_websocket(c, ws))
                    if c.reader is not reader:
                        reader, writer = c.reader, c.writer
                        continue
                if not data:
                    c.session.receive_eof()
                    self._after_step(c)
                    break
                self._receive(c, data)
                if c.closed:
                    break
                if c.behind:  # read no more of its requests until it reads what it was sent
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one client take the server down
            log.exception("DTC client %d: unexpected error; closing it", c.cid)
        finally:
            log.info("DTC client %d disconnected (%d in, %d out)", c.cid, c.msgs_in, c.msgs_out)
            try:
                await self._close(c)
            except asyncio.CancelledError:
                c.writer.transport.abort()
                raise

    def _refuse_connection(self, writer: asyncio.StreamWriter, peer) -> None:
        """Over ``max_connections``: a LOGOFF with the reason (binary, or the fixed encoding),
        then the transport closes."""
        self._stats["connections_refused"] += 1
        log.warning("DTC client from %s refused: %d connections open (the cap)", peer, self.max_connections)
        enc = self.fixed_encoding if self.fixed_encoding is not None else Encoding.BINARY
        try:
            writer.write(codec.encode(M.Logoff(Reason=fit(f"too many connections (at most {self.max_connections})",
                                                          96)), enc))
            writer.close()
            asyncio.get_running_loop().call_later(DROP_GRACE_S, writer.transport.abort)
        except (ConnectionError, RuntimeError):
            pass

    def _new_session(self, encoding: Encoding, fixed: bool) -> DTCSession:
        """A server-side DTC session for a new connection."""
        return DTCSession(Role.SERVER, clock=self.clock, encoding=encoding, fixed_encoding=fixed,
                          peer_timeout_grace_s=IDLE_GRACE_S)

    def _use_websocket(self, c: Conn, ws: WebSocketStream) -> None:
        """``c`` turned out to be a WebSocket: its stream and a JSON session (nothing was fed to
        the first one yet) replace the TCP ones (:mod:`.transport`)."""
        c.reader = c.writer = ws
        c.session = self._new_session(websocket_encoding(self.fixed_encoding), True)
        log.info("DTC client %d: WebSocket (%s)", c.cid, c.session.encoding.name)

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
        """Decide a LOGON_REQUEST: the password, the account the username owns, then the
        capability flags.

        With a server ``password`` the request's Password must equal it (compared in constant
        time). The Username picks the account (:meth:`_account_of_logon`: its own, or the one
        shared account); a refusal is LOGON_ERROR_NO_RECONNECT with the reason.
        """
        if self.password is not None and not hmac.compare_digest(str(m.Password).encode("utf-8"),
                                                                 self.password.encode("utf-8")):
            c.session.refuse_logon("bad username or password", result=M.LogonStatus.LOGON_ERROR_NO_RECONNECT,
                                   server_name=self.server_name)
            return
        try:
            account = self._account_of_logon(str(m.Username))
        except ValueError as exc:
            c.session.refuse_logon(fit(str(exc), 96), result=M.LogonStatus.LOGON_ERROR_NO_RECONNECT,
                                   server_name=self.server_name)
            return
        c.username = str(m.Username)
        c.account = account
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
