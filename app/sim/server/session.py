"""The server's session layer: connections, encoding negotiation, logon, heartbeats, sending.

One :class:`Conn` per TCP client. Every request is dispatched with its connection
(``handler(conn, message)``); whatever answers it (a rejection included) is sent to that
connection explicitly, never through server-wide state. Procedures: see :mod:`app.sim.server`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType

log = logging.getLogger(__name__)

#: Output buffer (bytes) above which the replay waits for a client to drain.
HIGH_WATER = 1 << 20
#: Output buffer (bytes) above which a client is disconnected as too slow.
MAX_BUFFER = 64 << 20

T = MessageType
ENCODINGS = (Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT)


def fit(text: str, n: int) -> str:
    """Fit ``text`` into a DTC ``char[n]`` field (at most n-1 UTF-8 bytes + NUL)."""
    b = str(text).encode("utf-8")[: n - 1]
    return b.decode("utf-8", "ignore")


@dataclass
class Conn:
    """One client connection and its protocol state.

    Attributes
    ----------
    cid : int
        Connection number (1, 2, ... in order of arrival).
    encoding : Encoding
        Encoding in force for what is sent and received.
    logged_on : bool
    heartbeat_s : float
        Client's heartbeat interval, seconds (0: none, no idle limit).
    integer_1 : int
        LOGON_REQUEST.Integer_1 flags (depth message types).
    md_subs, depth_subs : dict of str to int
        Symbol -> SymbolID of the market data / depth subscriptions.
    pending_parents : dict
        ClientOrderID -> ((OrderSpec, message), TimerHandle) of held bracket parents.
    """

    cid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    encoding: Encoding = Encoding.BINARY
    decoder: codec.Decoder = field(default_factory=lambda: codec.Decoder(Encoding.BINARY))
    logged_on: bool = False
    negotiated: bool = False
    first_bytes: bool = True
    heartbeat_s: float = 0.0
    client_name: str = ""
    integer_1: int = 0
    md_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    depth_subs: dict = field(default_factory=dict)  # symbol -> SymbolID
    pending_parents: dict = field(default_factory=dict)  # ClientOrderID -> (msg, TimerHandle)
    last_recv: float = field(default_factory=time.monotonic)
    closed: bool = False
    msgs_in: int = 0
    msgs_out: int = 0
    ignored_before_logon: int = 0
    hb_task: asyncio.Task | None = None

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
    """Connections of :class:`app.sim.server.DTCServer`: accept, decode, dispatch, send, close.

    Uses the server's ``conns``, ``_stats``, ``_handlers`` (message type -> bound handler
    ``(conn, message)``), ``fixed_encoding``, ``password``, ``server_name``, ``symbols`` and
    ``account``.
    """

    def _send(self, c: Conn, msg: M.Message) -> None:
        if c.closed:
            return
        try:
            data = codec.encode(msg, c.encoding)
        except (codec.EncodeError, ValueError) as exc:
            log.error("cannot encode %s for client %d: %s", type(msg).__name__, c.cid, exc)
            return
        self._write(c, data, 1)

    def _write(self, c: Conn, data: bytes, n_msgs: int) -> None:
        if c.closed or not data:
            return
        try:
            c.writer.write(data)
        except (ConnectionError, RuntimeError) as exc:
            log.info("client %d write failed: %s", c.cid, exc)
            c.closed = True
            return
        c.msgs_out += n_msgs
        self._stats["messages_out"] += n_msgs
        self._stats["bytes_out"] += len(data)

    def _broadcast(self, msg: M.Message) -> None:
        for c in list(self.conns.values()):
            if c.logged_on and not c.closed:
                self._send(c, msg)

    def _logoff(self, c: Conn, reason: str, do_not_reconnect: bool = False) -> None:
        self._send(c, M.Logoff(Reason=fit(reason, 96), DoNotReconnect=int(do_not_reconnect)))

    async def _close(self, c: Conn) -> None:
        if c.cid in self.conns:  # keep the counters of connections that are gone
            self._stats["malformed_frames"] += c.decoder.errors
            self._stats["unknown_types"] += c.decoder.unknown
            self.conns.pop(c.cid, None)
        c.closed = True
        if c.hb_task is not None:
            c.hb_task.cancel()
        for _msg, handle in c.pending_parents.values():
            handle.cancel()
        c.pending_parents.clear()
        try:
            c.writer.close()
            await asyncio.wait_for(c.writer.wait_closed(), 1.0)
        except (Exception, asyncio.TimeoutError):
            pass

    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        c = Conn(self._next_cid, reader, writer, str(peer))
        if self.fixed_encoding is not None:
            c.encoding = self.fixed_encoding
            c.decoder.encoding = self.fixed_encoding
            c.negotiated = True
            c.first_bytes = False
        self._next_cid += 1
        self.conns[c.cid] = c
        self._stats["clients_total"] += 1
        log.info("DTC client %d connected from %s", c.cid, peer)
        try:
            while not c.closed:
                if c.logged_on:  # heartbeat interval 0 / -1: no heartbeats, no idle limit
                    timeout = 2 * c.heartbeat_s + 1.0 if c.heartbeat_s > 0 else None
                else:
                    timeout = 120.0  # logon must come within 2 minutes
                try:
                    data = await asyncio.wait_for(reader.read(1 << 16), timeout)
                except asyncio.TimeoutError:
                    self._logoff(c, f"no message for {timeout:.0f} s (heartbeat timeout)")
                    break
                if not data:
                    break
                c.last_recv = time.monotonic()
                self._feed(c, data)
                if c.decoder.desynced:
                    self._logoff(c, f"unrecoverable framing error: {c.decoder.last_error}"[:95])
                    break
                if c.writer.transport.get_write_buffer_size() > HIGH_WATER:
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

    def _feed(self, c: Conn, data: bytes) -> None:
        if c.first_bytes:
            c.first_bytes = False
            if data[:1] == b"{":  # JSON without negotiation (observed Sierra Chart behaviour)
                c.encoding = Encoding.JSON
                c.decoder.encoding = Encoding.JSON
                c.negotiated = True
        while data:
            # an ENCODING_REQUEST switches the decoder for the bytes that follow it in the same read
            if c.encoding == Encoding.BINARY and not c.decoder.buffered() and len(data) >= 16 and data[2:4] == b"\x06\x00":
                size = int.from_bytes(data[0:2], "little")
                if 16 <= size <= len(data):
                    msgs = c.decoder.feed(data[:size])
                    data = data[size:]
                    for m in msgs:
                        self._dispatch(c, m)
                    continue
            msgs = c.decoder.feed(data)
            data = b""
            for m in msgs:
                self._dispatch(c, m)
                if c.closed:
                    return

    def _dispatch(self, c: Conn, m: M.Message) -> None:
        c.msgs_in += 1
        self._stats["messages_in"] += 1
        t = int(m.TYPE)
        try:
            if t == T.ENCODING_REQUEST:
                self._on_encoding_request(c, m)
            elif t == T.LOGON_REQUEST:
                self._on_logon(c, m)
            elif t == T.HEARTBEAT:
                pass
            elif t == T.LOGOFF:
                c.closed = True
                c.writer.close()
            elif not c.logged_on:
                c.ignored_before_logon += 1
                self._stats["ignored_before_logon"] += 1
            else:
                handler = self._handlers.get(t)
                if handler is None:
                    self._stats["unknown_types"] += 1
                else:
                    handler(c, m)  # the connection travels with the request
        except Exception:  # a bad request must not kill the connection or the server
            log.exception("DTC client %d: error handling %s", c.cid, type(m).__name__)

    def _on_encoding_request(self, c: Conn, m) -> None:
        want = int(m.Encoding)
        new = Encoding(want) if want in ENCODINGS else c.encoding
        if self.fixed_encoding is not None:
            new = self.fixed_encoding
        # the response goes out in the encoding in force before the change
        self._send(c, M.EncodingResponse(ProtocolVersion=M.PROTOCOL_VERSION, Encoding=int(new)))
        c.encoding = new
        c.decoder.encoding = new
        c.negotiated = True

    def _on_logon(self, c: Conn, m) -> None:
        if self.password is not None and m.Password != self.password:
            self._send(c, M.LogonResponse(Result=int(M.LogonStatus.LOGON_ERROR_NO_RECONNECT),
                                          ResultText="bad username or password", ServerName=fit(self.server_name, 60)))
            c.closed = True
            c.writer.close()
            return
        hb = int(m.HeartbeatIntervalInSeconds)
        c.heartbeat_s = float(min(max(hb, 1), 300)) if hb > 0 else 0.0
        c.client_name = m.ClientName
        c.integer_1 = int(m.Integer_1)
        c.logged_on = True
        self._send(
            c,
            M.LogonResponse(
                ProtocolVersion=M.PROTOCOL_VERSION,
                Result=int(M.LogonStatus.LOGON_SUCCESS),
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
            ),
        )
        if c.heartbeat_s > 0:
            c.hb_task = asyncio.create_task(self._heartbeats(c), name=f"dtc-hb-{c.cid}")

    async def _heartbeats(self, c: Conn) -> None:
        try:
            while not c.closed:
                await asyncio.sleep(c.heartbeat_s)
                self._send(c, M.Heartbeat(NumDroppedMessages=0, CurrentDateTime=int(time.time())))
        except asyncio.CancelledError:
            pass
