"""The built-in DTC server: replays real recorded markets and fills orders like a simulated account.

Sierra Chart's own DTC server refuses CME market data, so MIA Elite brings its own server for the
demo, for paper practice and for every integration test. It speaks the real protocol (binary,
JSON and compact JSON, via :mod:`app.dtc.codec` / :mod:`app.dtc.batch`) on 127.0.0.1, default
port :data:`DEFAULT_PORT` (not Sierra Chart's 11099, so both can run side by side), to several
clients at once, in the same asyncio loop as the GUI or standalone (``mia-elite serve``).

Procedures (reference notes ``dtc-protocol-notes.md`` sections 3, 4, 7; Sierra Chart
``DTCMessageDocumentation.php``):

* **Encoding**: the first message may be a binary ENCODING_REQUEST; the ENCODING_RESPONSE goes
  out in the encoding in force before the change (binary), everything after in the new one
  (binary, JSON, compact JSON; any other request is answered with the current encoding). A
  connection whose first byte is ``{`` is taken as JSON without negotiation (observed Sierra
  Chart behaviour, notes section 3).
* **Logon**: LOGON_RESPONSE with the capability flags (trading, OCO, brackets, cancel-replace,
  security definitions, market depth, market data; no historical data on this port). Requests
  before a successful logon are ignored and counted. ``LOGON_REQUEST.Integer_1`` flags: 0x80
  -> depth updates as 140 (float, ms), 0x800 -> depth snapshots as 145.
* **Heartbeats**: sent at the client's ``HeartbeatIntervalInSeconds``; a client silent for more
  than 2x that interval (any message counts) is disconnected.
* **Security definitions**: 506 -> 507 (MinPriceIncrement, PriceDisplayFormat,
  CurrencyValuePerIncrement, DisplayPriceMultiplier 1) or 509 for unknown symbols.
* **Market data**: 101 subscribe -> 104 snapshot, then 107 per trade and 108 when the best
  bid/ask changed (checked once per replayed batch); unknown symbol -> 103 MARKET_DATA_REJECT.
  **Depth**: 102 -> a 122 (or 145) snapshot batch of the whole book (``NumLevels`` is ignored:
  full depth) -> 106 (or 140) updates keeping the recording's batch boundaries; unknown symbol
  -> 121. The Exchange field is ignored, as Sierra Chart does.
* **Replay** at real time x speed with pause / resume / maximum speed
  (:class:`app.sim.replay.ReplayClock`, one per symbol). A recording's ``OP_CLEAR`` (its
  snapshot, or a loop back to the start) is sent as deletes of every level the clients hold,
  followed by the new levels, in one batch.
* **Orders** go to the paper fill engine (:mod:`app.sim.fills`, ``docs/fill-model.md``):
  208 (market, limit, stop, stop-limit; ``IsParentOrder=1`` waits for the 201 that names it in
  ``ParentTriggerClientOrderID``), 201 OCO pairs and bracket children (``UseOffsets``
  supported), 203 cancel by ``ServerOrderID`` only, 204 cancel-replace, 209 flatten. Updates
  follow Sierra Chart's sequences (notes section 7; observed Sim statuses 2 -> 4 -> 7): a new
  order gets ORDER_UPDATE ``NEW_ORDER_ACCEPTED`` / PENDING_OPEN then ``GENERAL_ORDER_UPDATE`` /
  OPEN (bracket children: ``NEW_ORDER_ACCEPTED`` / PENDING_CHILD), a fill gets
  ``ORDER_FILLED(_PARTIALLY)`` with the LastFill fields, then POSITION_UPDATE (Unsolicited=1),
  then ACCOUNT_BALANCE_UPDATE (Unsolicited=1); a requested cancel gets ``GENERAL_ORDER_UPDATE``
  / PENDING_CANCEL then ``ORDER_CANCELED``. Rejections go to the connection that sent the
  request only; every other trading update goes to every logged-on connection (Sierra Chart's
  "automatic trading data updates").
* **Solicited answers** (300 -> 301s, 305 -> 306s, 400 -> 401, 601 -> 600) carry
  RequestID/TotalNumMessages/MessageNumber; empty results are one message with NoOrders /
  NoPositions = 1; they are written in one piece, so no unsolicited update can interleave.
* Malformed frames are counted and skipped (:class:`app.dtc.codec.Decoder`); a binary stream
  that cannot be resynchronised gets a LOGOFF with the reason and is closed. Nothing a client
  sends can stop the server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from app.dtc import batch as B
from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType
from app.core.events import (
    EVENT_DTYPE,
    KIND_DEPTH,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.feeds.recording import Recording
from app.sim.replay import ReplayClock, first_trade_index, start_at
from app.sim import fills as F

log = logging.getLogger(__name__)

#: Default listening port (Sierra Chart's conventional DTC port is 11099; this one differs).
DEFAULT_PORT = 11199
#: Sierra-style simulated account name.
DEFAULT_ACCOUNT = "Sim1"
#: A held bracket parent (208 with IsParentOrder=1) is submitted alone after this many seconds
#: without its 201.
PARENT_WAIT_S = 5.0
#: Output buffer (bytes) above which the replay waits for a client to drain.
HIGH_WATER = 1 << 20
#: Output buffer (bytes) above which a client is disconnected as too slow.
MAX_BUFFER = 64 << 20

T = MessageType
UNSET = M.UNSET_DOUBLE
_ENCODINGS = (Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT)


def _s(text: str, n: int) -> str:
    """Fit ``text`` into a char[n] field (n-1 bytes + NUL)."""
    b = str(text).encode("utf-8")[: n - 1]
    return b.decode("utf-8", "ignore")


def _px(v) -> int | None:
    """DTC price (float, maybe unset) -> None or the float itself."""
    if v is None or M.is_unset(v) or not math.isfinite(v):
        return None
    return v


@dataclass
class _Symbol:
    inst: Instrument
    recording: Recording
    clock: ReplayClock
    book_bbo: tuple = (None, 0.0, None, 0.0)
    session_high: int | None = None
    session_low: int | None = None
    session_open: int | None = None
    session_volume: float = 0.0
    session_trades: int = 0
    last_trade: tuple | None = None  # (tick, size, ts)
    last_ts: int = 0


@dataclass
class _Conn:
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
        if self.integer_1 & M.LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES:
            return int(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS)
        return int(T.MARKET_DEPTH_UPDATE_LEVEL)

    @property
    def snapshot_type(self) -> int:
        if self.integer_1 & M.LogonFlags.SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT:
            return int(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT)
        return int(T.MARKET_DEPTH_SNAPSHOT_LEVEL)


class DTCServer:
    """Asyncio DTC server replaying recordings, with paper fills.

    Parameters
    ----------
    recording_or_list : Recording or iterable of Recording
        What to replay; one symbol per recording (``recording.instrument.symbol``).
    host : str
        Listening address (loopback only by default; the server has no authentication).
    port : int
        Listening port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    speed : float
        Replay rate: 1.0 real time, ``<= 0`` or ``inf`` maximum speed.
    loop_replay : bool
        Start the recording again after its end.
    paused : bool
        Start with the replay paused (tests subscribe first, then :meth:`resume`).
    account : str
        The simulated trade account (``Sim1``).
    server_name : str
        LOGON_RESPONSE.ServerName.
    max_gap_s : float
        Longest pause between two replayed events, recording seconds.
    commission_per_contract, slippage_ticks, starting_balance
        Passed to :class:`app.sim.fills.FillEngine`.
    symbol_aliases : dict, optional
        Extra symbol strings accepted for a recording's symbol (``{"ESH24_FUT_CME": "ESH4"}``).
    password : str, optional
        When set, LOGON_REQUEST.Password must equal it.
    max_batch : int
        Most events per replayed batch at maximum speed (batches never split a depth batch).
    encoding : Encoding, optional
        None (default) = automatic: connections start in binary and may negotiate. A fixed
        encoding (Sierra Chart's "Encoding" setting) is used from the first byte and an
        ENCODING_REQUEST for another one is answered with the fixed one.
    start_at_open : bool
        Replay each recording from its first trade (the session's opening trade), headed by a
        snapshot of the book at that point (:func:`app.sim.replay.start_at`). CME's pre-open
        book may be crossed; ``mia-elite serve`` starts at the open by default. Default False:
        the whole recording (the integration tests compare against the whole file).

    Attributes
    ----------
    engine : app.sim.fills.FillEngine
        The paper account (shared by every connection).
    replay_done : asyncio.Event
        Set when every symbol's replay ended (only without ``loop_replay``); created by
        :meth:`start`.
    """

    def __init__(
        self,
        recording_or_list: Recording | Iterable[Recording],
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        speed: float = 1.0,
        loop_replay: bool = True,
        paused: bool = False,
        account: str = DEFAULT_ACCOUNT,
        server_name: str = "MIA Elite replay server",
        max_gap_s: float = 5.0,
        commission_per_contract: float = 0.0,
        slippage_ticks: int = 0,
        starting_balance: float = 100_000.0,
        symbol_aliases: dict | None = None,
        password: str | None = None,
        max_batch: int = 4096,
        encoding: Encoding | None = None,
        start_at_open: bool = False,
    ) -> None:
        recs = [recording_or_list] if isinstance(recording_or_list, Recording) else list(recording_or_list)
        if not recs:
            raise ValueError("DTCServer needs at least one recording")
        self.host = host
        self._port = int(port)
        self.account = account
        self.server_name = server_name
        self.password = password
        self.loop_replay = loop_replay
        self.fixed_encoding = Encoding(int(encoding)) if encoding is not None else None
        if self.fixed_encoding is not None and self.fixed_encoding not in _ENCODINGS:
            raise ValueError(f"encoding {self.fixed_encoding.name} not supported (binary, JSON, compact JSON)")
        self._speed = speed
        self._paused = paused
        self.engine = F.FillEngine(
            [r.instrument for r in recs],
            account=account,
            starting_balance=starting_balance,
            commission_per_contract=commission_per_contract,
            slippage_ticks=slippage_ticks,
        )
        self.engine.add_listener(self._on_engine_event)
        self.symbols: dict[str, _Symbol] = {}
        for r in recs:
            sym = r.instrument.symbol
            if sym in self.symbols:
                raise ValueError(f"two recordings for symbol {sym!r}")
            replayed = r
            if start_at_open:
                first = first_trade_index(r.events)
                if first:
                    replayed = start_at(r, first)
            clock = ReplayClock(replayed, speed=speed, max_gap_s=max_gap_s, max_batch=max_batch, loop=loop_replay)
            if paused:
                clock.pause()
            self.symbols[sym] = _Symbol(r.instrument, r, clock)
            # the replay's market clock starts at its first event: snapshots sent before any
            # event is replayed (a paused start) carry that time, not 0 (a client would
            # otherwise have to guess a time for them)
            if len(replayed.events):
                self.symbols[sym].last_ts = int(replayed.events["ts"][0])
        self.aliases = {k: v for k, v in (symbol_aliases or {}).items() if v in self.symbols}
        self.conns: dict[int, _Conn] = {}
        self._next_cid = 1
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task] = []
        self._origin: _Conn | None = None  # connection whose request is being handled
        self.replay_done: asyncio.Event | None = None
        self._done_count = 0
        self._stats = {
            "clients_total": 0,
            "messages_in": 0,
            "messages_out": 0,
            "bytes_out": 0,
            "depth_messages_out": 0,
            "trade_messages_out": 0,
            "malformed_frames": 0,
            "unknown_types": 0,
            "ignored_before_logon": 0,
            "events_replayed": 0,
            "orders_received": 0,
            "slow_clients_dropped": 0,
        }

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The actual listening port (after :meth:`start`; useful with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    async def start(self) -> None:
        """Listen and start the replay tasks.

        Raises
        ------
        OSError
            If the address is in use (the message names host and port).
        """
        self.replay_done = asyncio.Event()
        try:
            self._server = await asyncio.start_server(self._handle_client, self.host, self._port)
        except OSError as exc:
            raise OSError(exc.errno, f"DTC server cannot listen on {self.host}:{self._port}: {exc.strerror}") from exc
        for sym in self.symbols.values():
            self._tasks.append(asyncio.create_task(self._replay(sym), name=f"dtc-replay-{sym.inst.symbol}"))
        log.info("DTC server listening on %s:%d (%s)", self.host, self.port, ", ".join(self.symbols))

    async def stop(self) -> None:
        """Stop replaying, close every connection (LOGOFF first) and stop listening."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for c in list(self.conns.values()):
            self._logoff(c, "server stopping", do_not_reconnect=False)
            await self._close(c)
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._server = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    def pause(self) -> None:
        """Pause the replay of every symbol."""
        self._paused = True
        for s in self.symbols.values():
            s.clock.pause()

    def resume(self) -> None:
        """Resume the replay of every symbol."""
        self._paused = False
        for s in self.symbols.values():
            s.clock.resume()

    def set_speed(self, speed: float) -> None:
        """Replay rate for every symbol (1.0 real time, ``<= 0``/inf maximum)."""
        self._speed = speed
        for s in self.symbols.values():
            s.clock.set_speed(speed)

    @property
    def stats(self) -> dict:
        """Counters: connections, messages/bytes out, malformed frames, replay progress..."""
        d = dict(self._stats)
        d["connections"] = sum(1 for c in self.conns.values() if not c.closed)
        d["malformed_frames"] += sum(c.decoder.errors for c in self.conns.values())
        d["unknown_types"] += sum(c.decoder.unknown for c in self.conns.values())
        d["replay"] = {
            s: {"position": v.clock.position, "events": len(v.clock.events), "loops": v.clock.loops,
                "paused": v.clock.paused,
                "speed": v.clock.speed if math.isfinite(v.clock.speed) else 0.0}
            for s, v in self.symbols.items()
        }
        return d

    async def wait_replay_done(self, timeout: float) -> bool:
        """Wait until every replay ended (no loop); False on timeout."""
        try:
            await asyncio.wait_for(self.replay_done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # ------------------------------------------------------------------ sending
    def _send(self, c: _Conn, msg: M.Message) -> None:
        if c.closed:
            return
        try:
            data = codec.encode(msg, c.encoding)
        except (codec.EncodeError, ValueError) as exc:
            log.error("cannot encode %s for client %d: %s", type(msg).__name__, c.cid, exc)
            return
        self._write(c, data, 1)

    def _write(self, c: _Conn, data: bytes, n_msgs: int) -> None:
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

    def _logoff(self, c: _Conn, reason: str, do_not_reconnect: bool = False) -> None:
        self._send(c, M.Logoff(Reason=_s(reason, 96), DoNotReconnect=int(do_not_reconnect)))

    async def _close(self, c: _Conn) -> None:
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

    # ------------------------------------------------------------------ connections
    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        c = _Conn(self._next_cid, reader, writer, str(peer))
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

    def _feed(self, c: _Conn, data: bytes) -> None:
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

    def _dispatch(self, c: _Conn, m: M.Message) -> None:
        c.msgs_in += 1
        self._stats["messages_in"] += 1
        t = int(m.TYPE)
        self._origin = c
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
                handler = self._HANDLERS.get(t)
                if handler is None:
                    self._stats["unknown_types"] += 1
                else:
                    handler(self, c, m)
        except Exception:  # a bad request must not kill the connection or the server
            log.exception("DTC client %d: error handling %s", c.cid, type(m).__name__)
        finally:
            self._origin = None

    def _on_encoding_request(self, c: _Conn, m) -> None:
        want = int(m.Encoding)
        new = Encoding(want) if want in _ENCODINGS else c.encoding
        if self.fixed_encoding is not None:
            new = self.fixed_encoding
        # the response goes out in the encoding in force before the change
        self._send(c, M.EncodingResponse(ProtocolVersion=M.PROTOCOL_VERSION, Encoding=int(new)))
        c.encoding = new
        c.decoder.encoding = new
        c.negotiated = True

    def _on_logon(self, c: _Conn, m) -> None:
        if self.password is not None and m.Password != self.password:
            self._send(c, M.LogonResponse(Result=int(M.LogonStatus.LOGON_ERROR_NO_RECONNECT),
                                          ResultText="bad username or password", ServerName=_s(self.server_name, 60)))
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
                ResultText=_s(f"logged on; replaying {', '.join(self.symbols)}; account {self.account}", 96),
                ServerName=_s(self.server_name, 60),
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

    async def _heartbeats(self, c: _Conn) -> None:
        try:
            while not c.closed:
                await asyncio.sleep(c.heartbeat_s)
                self._send(c, M.Heartbeat(NumDroppedMessages=0, CurrentDateTime=int(time.time())))
        except asyncio.CancelledError:
            pass

    # ------------------------------------------------------------------ symbols / market data
    def _lookup(self, symbol: str) -> _Symbol | None:
        s = self.symbols.get(symbol)
        if s is None and symbol in self.aliases:
            s = self.symbols.get(self.aliases[symbol])
        return s

    def _on_security_definition(self, c: _Conn, m) -> None:
        s = self._lookup(m.Symbol)
        if s is None:
            self._send(c, M.SecurityDefinitionReject(RequestID=m.RequestID,
                                                     RejectText=_s(f"unknown symbol {m.Symbol!r}", 96)))
            return
        inst = s.inst
        self._send(
            c,
            M.SecurityDefinitionResponse(
                RequestID=m.RequestID,
                Symbol=_s(m.Symbol, 64),
                Exchange=_s(inst.exchange, 16),
                SecurityType=int(M.SecurityType.SECURITY_TYPE_FUTURES),
                Description=_s(inst.description or inst.symbol, 64),
                MinPriceIncrement=float(inst.tick_size),
                PriceDisplayFormat=int(inst.price_decimals),
                CurrencyValuePerIncrement=float(inst.tick_value),
                IsFinalMessage=1,
                HasMarketDepthData=1,
                DisplayPriceMultiplier=1.0,
                Currency="USD",
                ContractSize=float(inst.tick_value / inst.tick_size) if inst.tick_size else 0.0,
            ),
        )

    def _market_snapshot(self, s: _Symbol, symbol_id: int) -> M.Message:
        book = self.engine.books[s.inst.symbol]
        tick = s.inst.tick_size
        bb, ba = book.best_bid(), book.best_ask()
        kw = dict(SymbolID=symbol_id)
        if bb is not None:
            kw.update(BidPrice=bb * tick, BidQuantity=book.size_at(SIDE_BID, bb))
        if ba is not None:
            kw.update(AskPrice=ba * tick, AskQuantity=book.size_at(SIDE_ASK, ba))
        if s.last_trade is not None:
            kw.update(LastTradePrice=s.last_trade[0] * tick, LastTradeVolume=float(s.last_trade[1]),
                      LastTradeDateTime=s.last_trade[2] / 1e9)
        if s.session_high is not None:
            kw.update(SessionHighPrice=s.session_high * tick, SessionLowPrice=s.session_low * tick,
                      SessionOpenPrice=s.session_open * tick, SessionVolume=s.session_volume,
                      SessionNumTrades=s.session_trades)
        if s.last_ts:
            kw.update(BidAskDateTime=s.last_ts / 1e9, MarketDepthUpdateDateTime=s.last_ts / 1e9)
        kw["TradingStatus"] = int(M.TradingStatus.TRADING_STATUS_OPEN)
        return M.MarketDataSnapshot(**kw)

    def _request_target(self, c: _Conn, m, subs: dict, reject) -> "_Symbol | None":
        """Common start of MARKET_DATA_REQUEST and MARKET_DEPTH_REQUEST: an unsubscribe drops
        the SymbolID from ``subs``; an unknown symbol is answered with ``reject`` (the 103 or
        121 message class). Returns the symbol to serve, or None when the request is done."""
        if int(m.RequestAction) == M.RequestAction.UNSUBSCRIBE:
            for sym, sid in list(subs.items()):
                if sid == m.SymbolID:
                    del subs[sym]
            return None
        s = self._lookup(m.Symbol)
        if s is None:
            self._send(c, reject(SymbolID=m.SymbolID, RejectText=_s(
                f"unknown symbol {m.Symbol!r}; this server replays {', '.join(self.symbols)}", 96)))
        return s

    def _id_conflict(self, c: _Conn, m, sym: str, subs: dict, reject, what: str) -> bool:
        """DTC: one SymbolID per symbol while subscribed; a second id is rejected (True)."""
        if sym in subs and subs[sym] != m.SymbolID:
            self._send(c, reject(SymbolID=m.SymbolID, RejectText=_s(
                f"{sym} {what}already subscribed with SymbolID {subs[sym]}", 96)))
            return True
        return False

    def _on_market_data_request(self, c: _Conn, m) -> None:
        s = self._request_target(c, m, c.md_subs, M.MarketDataReject)
        if s is None:
            return
        sym = s.inst.symbol
        if int(m.RequestAction) == M.RequestAction.SNAPSHOT:
            self._send(c, self._market_snapshot(s, m.SymbolID))
            return
        if self._id_conflict(c, m, sym, c.md_subs, M.MarketDataReject, ""):
            return
        c.md_subs[sym] = int(m.SymbolID)
        self._send(c, self._market_snapshot(s, m.SymbolID))

    def _book_snapshot_events(self, sym: str) -> np.ndarray:
        return self.engine.books[sym].snapshot_events(self.symbols[sym].last_ts)

    def _on_market_depth_request(self, c: _Conn, m) -> None:
        s = self._request_target(c, m, c.depth_subs, M.MarketDepthReject)
        if s is None:
            return
        sym = s.inst.symbol
        if self._id_conflict(c, m, sym, c.depth_subs, M.MarketDepthReject, "depth "):
            return
        ev = self._book_snapshot_events(sym)
        data = B.encode_depth_batch(ev, s.inst.tick_size, int(m.SymbolID), c.encoding, msg_type=c.snapshot_type)
        self._write(c, data, max(len(ev), 1))
        c.depth_subs[sym] = int(m.SymbolID)

    # ------------------------------------------------------------------ replay
    async def _replay(self, s: _Symbol) -> None:
        try:
            async for batch in s.clock.stream():
                try:
                    self.publish(s.inst.symbol, batch)
                except Exception:  # one bad batch must not end the replay
                    self._stats["publish_errors"] = self._stats.get("publish_errors", 0) + 1
                    log.exception("replay of %s: batch at %d failed; skipped", s.inst.symbol, s.clock.position)
                await self._backpressure()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replay of %s failed", s.inst.symbol)
        self._done_count += 1
        if self._done_count >= len(self.symbols) and self.replay_done is not None:
            self.replay_done.set()

    async def _backpressure(self) -> None:
        for c in list(self.conns.values()):
            if c.closed:
                continue
            size = c.writer.transport.get_write_buffer_size()
            if size > MAX_BUFFER:
                log.warning("DTC client %d too slow (%d bytes queued): disconnecting", c.cid, size)
                self._stats["slow_clients_dropped"] += 1
                c.closed = True
                c.writer.close()
            elif size > HIGH_WATER:
                try:
                    await asyncio.wait_for(c.writer.drain(), 5.0)
                except (asyncio.TimeoutError, ConnectionError):
                    pass

    def _clear_to_deletes(self, sym: str, side: int) -> np.ndarray:
        book = self.engine.books[sym]
        sides = (SIDE_BID, SIDE_ASK) if side not in (SIDE_BID, SIDE_ASK) else (side,)
        ticks, sds = [], []
        for sd in sides:
            for t, _q in book.levels(sd):
                ticks.append(t)
                sds.append(sd)
        ev = np.zeros(len(ticks), dtype=EVENT_DTYPE)
        ev["kind"] = KIND_DEPTH
        ev["op"] = OP_DELETE
        ev["price"] = ticks
        ev["side"] = sds
        ev["ts"] = self.symbols[sym].last_ts
        return ev

    def publish(self, symbol: str, events: np.ndarray) -> None:
        """Send one batch of recorded events to the subscribers of ``symbol`` and feed the engine.

        Public so tests and benchmarks can drive the server without the clock. ``OP_CLEAR``
        events become deletes of the current levels (see the module docstring).
        """
        s = self.symbols[symbol]
        if not len(events):
            return
        self._stats["events_replayed"] += len(events)
        clear_idx = np.flatnonzero((events["kind"] == KIND_DEPTH) & (events["op"] == OP_CLEAR)).tolist()
        if clear_idx:
            # each clear starts a segment: deletes of every current level, then the segment's
            # own events (the new levels) in ONE send, so 140's FinalUpdateInBatch spans both;
            # the engine gets the clear with what follows it (its queue estimates see the new book)
            bounds = [0, *clear_idx, len(events)]
            for a, b in zip(bounds[:-1], bounds[1:]):
                if b <= a:
                    continue
                seg = events[a:b]
                if a in clear_idx:
                    dels = self._clear_to_deletes(symbol, int(events["side"][a]))
                    self._send_market(s, np.concatenate([dels, seg]) if len(dels) else seg)
                    self.engine.on_market(symbol, seg)
                else:
                    self._publish_plain(s, seg)
        else:
            self._publish_plain(s, events)
        self._after_batch(s)

    def _publish_plain(self, s: _Symbol, events: np.ndarray) -> None:
        self._send_market(s, events)
        self.engine.on_market(s.inst.symbol, events)

    def _send_market(self, s: _Symbol, events: np.ndarray) -> None:
        """Send depth and trade messages in recorded order, one write per connection.

        Depth events and trades are each encoded in ONE batch call per distinct (encoding,
        message type, SymbolID) and the bytes are cut per run of equal kind (binary frames have
        a fixed size; JSON frames end with a NUL), so the wire order equals the recording's.
        """
        sym = s.inst.symbol
        if not len(events):
            return
        kinds = events["kind"]
        ops = events["op"]
        is_trade = kinds == KIND_TRADE
        is_depth = (kinds == KIND_DEPTH) & ((ops == 1) | (ops == OP_DELETE))
        if is_trade.any():
            self._track_trades(s, events[is_trade])
        s.last_ts = max(s.last_ts, int(events["ts"][-1]))
        conns = [c for c in self.conns.values()
                 if not c.closed and (sym in c.depth_subs or sym in c.md_subs)]
        if not conns:
            return
        keep = is_trade | is_depth
        ev = events[keep]
        if not len(ev):
            return
        it = is_trade[keep]
        dep = ev[~it]
        trd = ev[it]
        # runs of equal kind, and how many depth / trade messages precede each run
        change = np.flatnonzero(it[1:] != it[:-1]) + 1
        bounds = [0, *change.tolist(), len(ev)]
        n_tr_before = np.concatenate(([0], np.cumsum(it))).tolist()
        runs = [(bool(it[a]), a - n_tr_before[a], b - n_tr_before[b], n_tr_before[a], n_tr_before[b])
                for a, b in zip(bounds[:-1], bounds[1:])]
        tick = s.inst.tick_size
        pieces_cache: dict = {}
        assembled: dict = {}
        for c in conns:
            dkey = (c.encoding, c.depth_type, c.depth_subs[sym]) if sym in c.depth_subs and len(dep) else None
            tkey = (c.encoding, c.md_subs[sym]) if sym in c.md_subs and len(trd) else None
            akey = (dkey, tkey)
            out = assembled.get(akey)
            if out is None:
                dparts = tparts = None
                if dkey is not None:
                    dparts = pieces_cache.get(("d",) + dkey)
                    if dparts is None:
                        data = B.encode_depth_batch(dep, tick, dkey[2], dkey[0], msg_type=dkey[1])
                        dparts = pieces_cache[("d",) + dkey] = self._splitter(data, len(dep), dkey[0])
                if tkey is not None:
                    tparts = pieces_cache.get(("t",) + tkey)
                    if tparts is None:
                        data = B.encode_trade_batch(trd, tick, tkey[1], tkey[0])
                        tparts = pieces_cache[("t",) + tkey] = self._splitter(data, len(trd), tkey[0])
                chunks = []
                nd = nt = 0
                for is_t, d0, d1, t0, t1 in runs:
                    if is_t:
                        if tparts is not None:
                            chunks.append(tparts(t0, t1))
                            nt += t1 - t0
                    elif dparts is not None:
                        chunks.append(dparts(d0, d1))
                        nd += d1 - d0
                out = assembled[akey] = (b"".join(chunks), nd, nt)
            data, nd, nt = out
            if data:
                self._write(c, data, nd + nt)
                self._stats["depth_messages_out"] += nd
                self._stats["trade_messages_out"] += nt

    @staticmethod
    def _splitter(data: bytes, n: int, encoding: Encoding):
        """Function (i, j) -> bytes of messages i..j-1 of a batch-encoded run of ``n`` messages."""
        if encoding == Encoding.BINARY:
            size = len(data) // n if n else 0
            return lambda i, j: data[i * size:j * size]
        frames = data.split(b"\x00")[:n]
        return lambda i, j: b"".join(f + b"\x00" for f in frames[i:j])

    def _track_trades(self, s: _Symbol, trades: np.ndarray) -> None:
        prices = trades["price"]
        hi, lo = int(prices.max()), int(prices.min())
        if s.session_open is None:
            s.session_open = int(prices[0])
        s.session_high = hi if s.session_high is None else max(s.session_high, hi)
        s.session_low = lo if s.session_low is None else min(s.session_low, lo)
        s.session_volume += float(trades["size"].sum())
        s.session_trades += len(trades)
        s.last_trade = (int(prices[-1]), float(trades["size"][-1]), int(trades["ts"][-1]))

    def _after_batch(self, s: _Symbol) -> None:
        sym = s.inst.symbol
        book = self.engine.books[sym]
        bb, ba = book.best_bid(), book.best_ask()
        bbo = (bb, book.size_at(SIDE_BID, bb) if bb is not None else 0.0,
               ba, book.size_at(SIDE_ASK, ba) if ba is not None else 0.0)
        if bbo == s.book_bbo:
            return
        s.book_bbo = bbo
        tick = s.inst.tick_size
        for c in self.conns.values():
            if sym in c.md_subs and not c.closed:
                self._send(c, M.MarketDataUpdateBidAsk(
                    SymbolID=c.md_subs[sym],
                    BidPrice=bb * tick if bb is not None else UNSET,
                    BidQuantity=float(bbo[1]),
                    AskPrice=ba * tick if ba is not None else UNSET,
                    AskQuantity=float(bbo[3]),
                    DateTime=int(s.last_ts // 1_000_000_000),
                ))

    # ------------------------------------------------------------------ trading: requests
    def _account_ok(self, c: _Conn, account: str) -> bool:
        return not account or account == self.account

    def _reject_new(self, c: _Conn, client_order_id: str, symbol: str, text: str, account: str = "") -> None:
        self._send(c, M.OrderUpdate(
            TotalNumMessages=1, MessageNumber=1, Symbol=_s(symbol, 64), ClientOrderID=_s(client_order_id, 32),
            OrderStatus=int(M.OrderStatus.ORDER_STATUS_REJECTED),
            OrderUpdateReason=int(M.OrderUpdateReason.NEW_ORDER_REJECTED),
            TradeAccount=_s(account or self.account, 32), InfoText=_s(text, 96)))

    def _spec(self, sym: _Symbol, order_type, buy_sell, price1, price2, qty, coid, tif, account) -> F.OrderSpec:
        inst = sym.inst
        p1, p2 = _px(price1), _px(price2)
        return F.OrderSpec(
            symbol=inst.symbol,
            side=int(buy_sell),
            qty=float(qty) if qty is not None and not M.is_unset(float(qty)) else 0.0,
            order_type=int(order_type),
            price=int(inst.to_ticks(p1)) if p1 is not None else None,
            price2=int(inst.to_ticks(p2)) if p2 is not None else None,
            client_order_id=coid,
            tif=int(tif) if int(tif) else int(F.TimeInForce.DAY),
            account=account or self.account,
        )

    def _check_new(self, c: _Conn, coid: str, symbol: str, account: str) -> _Symbol | None:
        s = self._lookup(symbol)
        if s is None:
            self._reject_new(c, coid, symbol, f"unknown symbol {symbol!r}", account)
            return None
        if not self._account_ok(c, account):
            self._reject_new(c, coid, symbol, f"unknown trade account {account!r}; use {self.account!r}", account)
            return None
        return s

    def _dup_coid(self, coid: str) -> bool:
        return bool(coid) and any(o.client_order_id == coid and not o.is_final for o in self.engine.orders.values())

    def _on_submit_single(self, c: _Conn, m) -> None:
        self._stats["orders_received"] += 1
        s = self._check_new(c, m.ClientOrderID, m.Symbol, m.TradeAccount)
        if s is None:
            return
        if self._dup_coid(m.ClientOrderID) or m.ClientOrderID in c.pending_parents:
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"duplicate ClientOrderID {m.ClientOrderID!r}", m.TradeAccount)
            return
        if int(m.OrderType) not in (1, 2, 3, 4):
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"order type {int(m.OrderType)} not supported "
                             "(market, limit, stop, stop-limit)", m.TradeAccount)
            return
        spec = self._spec(s, m.OrderType, m.BuySell, m.Price1, m.Price2, m.Quantity, m.ClientOrderID,
                          m.TimeInForce, m.TradeAccount)
        if m.IsParentOrder:
            if not m.ClientOrderID:
                self._reject_new(c, "", m.Symbol, "a bracket parent needs a ClientOrderID", m.TradeAccount)
                return
            loop = asyncio.get_running_loop()
            handle = loop.call_later(PARENT_WAIT_S, self._parent_timeout, c, m.ClientOrderID)
            c.pending_parents[m.ClientOrderID] = ((spec, m), handle)
            return
        self.engine.submit(spec)

    def _parent_timeout(self, c: _Conn, coid: str) -> None:
        item = c.pending_parents.pop(coid, None)
        if item is None or c.closed:
            return
        (spec, _m), _h = item
        log.warning("bracket parent %r: no SUBMIT_NEW_OCO_ORDER within %.0f s; submitted alone", coid, PARENT_WAIT_S)
        self._origin = c
        try:
            self.engine.submit(spec)
        finally:
            self._origin = None

    def _on_submit_oco(self, c: _Conn, m) -> None:
        self._stats["orders_received"] += 1
        ids = (m.ClientOrderID_1, m.ClientOrderID_2)
        parent_coid = m.ParentTriggerClientOrderID
        parent_item = c.pending_parents.pop(parent_coid, None) if parent_coid else None
        s = self._lookup(m.Symbol)
        err = None
        if s is None:
            err = f"unknown symbol {m.Symbol!r}"
        elif not self._account_ok(c, m.TradeAccount):
            err = f"unknown trade account {m.TradeAccount!r}; use {self.account!r}"
        elif parent_coid and parent_item is None:
            err = f"parent {parent_coid!r} not pending (send SUBMIT_NEW_SINGLE_ORDER with IsParentOrder=1 first)"
        elif any(self._dup_coid(x) for x in ids) or (ids[0] and ids[0] == ids[1]):
            err = "duplicate ClientOrderID"
        if err:
            if parent_item is not None:
                parent_item[1].cancel()
                self._reject_new(c, parent_coid, m.Symbol, err, m.TradeAccount)
            for coid in ids:
                self._reject_new(c, coid, m.Symbol, err, m.TradeAccount)
            return
        parent_spec = None
        if parent_item is not None:
            (parent_spec, _pm), handle = parent_item
            handle.cancel()
        legs = [
            self._spec(s, m.OrderType_1, m.BuySell_1, m.Price1_1, m.Price2_1, m.Quantity_1, ids[0], m.TimeInForce, m.TradeAccount),
            self._spec(s, m.OrderType_2, m.BuySell_2, m.Price1_2, m.Price2_2, m.Quantity_2, ids[1], m.TimeInForce, m.TradeAccount),
        ]
        if parent_spec is not None and m.UseOffsets:
            if parent_spec.price is None:
                for coid in (parent_coid, *ids):
                    self._reject_new(c, coid, m.Symbol, "UseOffsets needs the parent's Price1", m.TradeAccount)
                return
            offs = (m.OffsetFromParent1, m.OffsetFromParent2)
            for leg, off in zip(legs, offs):
                off_t = int(s.inst.to_ticks(abs(float(off)))) if _px(off) is not None else 0
                exit_sell = leg.side == F.Side.SELL
                if leg.order_type == F.OrderType.LIMIT:
                    leg.price = parent_spec.price + (off_t if exit_sell else -off_t)
                else:
                    leg.price = parent_spec.price - (off_t if exit_sell else -off_t)
        pfh = int(m.PartialFillHandling) or 1
        self.engine.submit_oco(legs[0], legs[1], parent=parent_spec,
                               partial_fill_handling=F.PartialFillHandling(pfh if pfh in (1, 2) else 1))

    def _on_cancel(self, c: _Conn, m) -> None:
        sid = m.ServerOrderID
        o = self.engine.order(sid) if sid else None
        if o is not None and not o.is_final:
            self._broadcast(self._order_update(o, M.OrderUpdateReason.GENERAL_ORDER_UPDATE,
                                               status=M.OrderStatus.ORDER_STATUS_PENDING_CANCEL))
        if not sid:
            self._send(c, M.OrderUpdate(
                TotalNumMessages=1, MessageNumber=1, ClientOrderID=_s(m.ClientOrderID, 32),
                OrderStatus=int(M.OrderStatus.ORDER_STATUS_REJECTED),
                OrderUpdateReason=int(M.OrderUpdateReason.ORDER_CANCEL_REJECTED),
                TradeAccount=_s(m.TradeAccount or self.account, 32),
                InfoText="CANCEL_ORDER needs the ServerOrderID"))
            return
        self.engine.cancel(sid)

    def _on_cancel_replace(self, c: _Conn, m) -> None:
        sid = m.ServerOrderID
        o = self.engine.order(sid)
        inst = self.engine.instruments.get(o.symbol) if o is not None else None
        price1 = price2 = None
        if inst is not None:
            if m.Price1IsSet and _px(m.Price1) is not None:
                price1 = int(inst.to_ticks(m.Price1))
            if m.Price2IsSet and _px(m.Price2) is not None:
                price2 = int(inst.to_ticks(m.Price2))
        qty = float(m.Quantity) if _px(m.Quantity) is not None and m.Quantity > 0 else None
        self.engine.replace(sid, qty=qty, price=price1, price2=price2)

    def _on_flatten(self, c: _Conn, m) -> None:
        s = self._lookup(m.Symbol)
        if s is None:
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"unknown symbol {m.Symbol!r}", m.TradeAccount)
            return
        if self.engine.flatten(s.inst.symbol) is None:
            self._reject_new(c, m.ClientOrderID, m.Symbol, "no position to flatten", m.TradeAccount)

    def _on_open_orders(self, c: _Conn, m) -> None:
        orders = self.engine.open_orders()
        if not m.RequestAllOrders and m.ServerOrderID:
            orders = [o for o in orders if o.server_order_id == m.ServerOrderID]
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.OpenOrdersReject(RequestID=m.RequestID, RejectText=_s(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        reason = M.OrderUpdateReason.OPEN_ORDERS_REQUEST_RESPONSE
        if not orders:
            self._send(c, M.OrderUpdate(RequestID=m.RequestID, TotalNumMessages=1, MessageNumber=1, NoOrders=1,
                                        OrderUpdateReason=int(reason), TradeAccount=_s(self.account, 32)))
            return
        chunks = []
        for i, o in enumerate(orders, 1):
            msg = self._order_update(o, reason, request_id=m.RequestID, total=len(orders), number=i)
            chunks.append(codec.encode(msg, c.encoding))
        self._write(c, b"".join(chunks), len(chunks))

    def _position_update(self, sym: str, request_id=0, total=1, number=1, unsolicited=1) -> M.Message:
        p = self.engine.position(sym)
        inst = self.engine.instruments[sym]
        tick = inst.tick_size
        return M.PositionUpdate(
            RequestID=request_id, TotalNumberMessages=total, MessageNumber=number,
            Symbol=_s(sym, 64), Exchange=_s(inst.exchange, 16), Quantity=float(p.qty),
            AveragePrice=(p.avg_price * tick) if p.avg_price is not None else 0.0,
            TradeAccount=_s(self.account, 32), NoPositions=0, Unsolicited=unsolicited,
            EntryDateTime=int(p.entry_ns // 1_000_000_000) if p.qty else 0,
            OpenProfitLoss=float(self.engine.open_pnl(sym)),
            HighPriceDuringPosition=(p.high * tick) if (p.qty and p.high is not None) else 0.0,
            LowPriceDuringPosition=(p.low * tick) if (p.qty and p.low is not None) else 0.0,
        )

    def _on_positions(self, c: _Conn, m) -> None:
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.CurrentPositionsReject(RequestID=m.RequestID, RejectText=_s(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        syms = [s for s, p in self.engine.positions.items() if p.qty]
        if not syms:
            self._send(c, M.PositionUpdate(RequestID=m.RequestID, TotalNumberMessages=1, MessageNumber=1,
                                           NoPositions=1, Unsolicited=0, TradeAccount=_s(self.account, 32)))
            return
        data = b"".join(codec.encode(self._position_update(s, m.RequestID, len(syms), i, 0), c.encoding)
                        for i, s in enumerate(syms, 1))
        self._write(c, data, len(syms))

    def _on_trade_accounts(self, c: _Conn, m) -> None:
        self._send(c, M.TradeAccountResponse(TotalNumberMessages=1, MessageNumber=1,
                                             TradeAccount=_s(self.account, 32), RequestID=m.RequestID))

    def _balance(self, request_id=0, unsolicited=1) -> M.Message:
        e = self.engine
        open_pnl = e.total_open_pnl()
        return M.AccountBalanceUpdate(
            RequestID=request_id, CashBalance=float(e.cash_balance()),
            BalanceAvailableForNewPositions=float(e.cash_balance() + open_pnl),
            AccountCurrency="USD", TradeAccount=_s(self.account, 32), SecuritiesValue=0.0, MarginRequirement=0.0,
            TotalNumberMessages=1, MessageNumber=1, NoAccountBalances=0, Unsolicited=unsolicited,
            OpenPositionsProfitLoss=float(open_pnl), DailyProfitLoss=float(e.realized_pnl() + open_pnl),
            TransactionDateTime=int(e.now_ns // 1000),
        )

    def _on_balance(self, c: _Conn, m) -> None:
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.AccountBalanceReject(RequestID=m.RequestID, RejectText=_s(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        self._send(c, self._balance(m.RequestID, unsolicited=0))

    def _on_historical(self, c: _Conn, m) -> None:
        self._send(c, M.HistoricalPriceDataReject(
            RequestID=m.RequestID,
            RejectText="historical data is not served by the MIA Elite replay server",
            RejectReasonCode=int(M.HistoricalPriceDataRejectReasonCode.HPDR_UNABLE_TO_SERVE_DATA_DO_NOT_RETRY)))

    _HANDLERS = {
        int(T.SECURITY_DEFINITION_FOR_SYMBOL_REQUEST): _on_security_definition,
        int(T.MARKET_DATA_REQUEST): _on_market_data_request,
        int(T.MARKET_DEPTH_REQUEST): _on_market_depth_request,
        int(T.SUBMIT_NEW_SINGLE_ORDER): _on_submit_single,
        int(T.SUBMIT_NEW_OCO_ORDER): _on_submit_oco,
        int(T.CANCEL_ORDER): _on_cancel,
        int(T.CANCEL_REPLACE_ORDER): _on_cancel_replace,
        int(T.SUBMIT_FLATTEN_POSITION_ORDER): _on_flatten,
        int(T.OPEN_ORDERS_REQUEST): _on_open_orders,
        int(T.CURRENT_POSITIONS_REQUEST): _on_positions,
        int(T.TRADE_ACCOUNTS_REQUEST): _on_trade_accounts,
        int(T.ACCOUNT_BALANCE_REQUEST): _on_balance,
        int(T.HISTORICAL_PRICE_DATA_REQUEST): _on_historical,
    }

    # ------------------------------------------------------------------ trading: engine events
    def _order_update(self, o: F.Order, reason, status=None, request_id=0, total=1, number=1,
                      ev: F.OrderEvent | None = None, text: str = "") -> M.Message:
        inst = self.engine.instruments.get(o.symbol)
        tick = inst.tick_size if inst else 1.0
        kw = dict(
            RequestID=request_id, TotalNumMessages=total, MessageNumber=number,
            Symbol=_s(o.symbol, 64), Exchange=_s(inst.exchange if inst else "", 16),
            ServerOrderID=_s(o.server_order_id, 32), ClientOrderID=_s(o.client_order_id, 32),
            OrderStatus=int(status if status is not None else o.status),
            OrderUpdateReason=int(reason), OrderType=int(o.order_type), BuySell=int(o.side),
            TimeInForce=int(o.tif), TradeAccount=_s(o.account or self.account, 32),
            OrderQuantity=float(o.qty), FilledQuantity=float(o.filled_qty), RemainingQuantity=float(o.remaining),
            ParentServerOrderID=_s(o.parent_id or "", 32), OCOLinkedOrderServerOrderID=_s(o.oco_id or "", 32),
            OrderReceivedDateTime=int(o.created_ns // 1_000_000),
            LatestTransactionDateTime=o.updated_ns / 1e9,
            InfoText=_s(text or o.info, 96),
        )
        if o.price is not None:
            kw["Price1"] = o.price * tick
        if o.price2 is not None:
            kw["Price2"] = o.price2 * tick
        if o.avg_fill_price is not None:
            kw["AverageFillPrice"] = o.avg_fill_price * tick
        if ev is not None and ev.fill_qty:
            kw.update(LastFillPrice=ev.fill_price * tick, LastFillQuantity=float(ev.fill_qty),
                      LastFillDateTime=int(ev.ts // 1_000_000), LastFillExecutionID=_s(o.last_fill_id, 64))
        return M.OrderUpdate(**kw)

    def _broadcast(self, msg: M.Message) -> None:
        for c in list(self.conns.values()):
            if c.logged_on and not c.closed:
                self._send(c, msg)

    def _on_engine_event(self, ev) -> None:
        R = M.OrderUpdateReason
        S = M.OrderStatus
        if isinstance(ev, F.OrderEvent):
            o = ev.order
            k = ev.kind
            if k == F.EV_ACCEPTED:
                if o.status == F.OrderStatus.PENDING_CHILD:
                    self._broadcast(self._order_update(o, R.NEW_ORDER_ACCEPTED, ev=ev))
                else:
                    self._broadcast(self._order_update(o, R.NEW_ORDER_ACCEPTED, status=S.ORDER_STATUS_PENDING_OPEN, ev=ev))
                    self._broadcast(self._order_update(o, R.GENERAL_ORDER_UPDATE, ev=ev))
            elif k in (F.EV_REJECTED, F.EV_CANCEL_REJECTED, F.EV_REPLACE_REJECTED):
                reason = {F.EV_REJECTED: R.NEW_ORDER_REJECTED, F.EV_CANCEL_REJECTED: R.ORDER_CANCEL_REJECTED,
                          F.EV_REPLACE_REJECTED: R.ORDER_CANCEL_REPLACE_REJECTED}[k]
                msg = self._order_update(o, reason, ev=ev, text=ev.text)
                if self._origin is not None:
                    self._send(self._origin, msg)
                else:
                    self._broadcast(msg)
            elif k == F.EV_FILLED:
                self._broadcast(self._order_update(o, R.ORDER_FILLED, ev=ev))
            elif k == F.EV_PARTIALLY_FILLED:
                self._broadcast(self._order_update(o, R.ORDER_FILLED_PARTIALLY, ev=ev))
            elif k == F.EV_CANCELLED:
                self._broadcast(self._order_update(o, R.ORDER_CANCELED, ev=ev, text=ev.text))
            elif k == F.EV_REPLACED:
                self._broadcast(self._order_update(o, R.ORDER_CANCEL_REPLACE_COMPLETE, ev=ev))
            elif k == F.EV_UPDATED:
                self._broadcast(self._order_update(o, R.GENERAL_ORDER_UPDATE, ev=ev, text=ev.text))
        elif isinstance(ev, F.PositionEvent):
            self._broadcast(self._position_update(ev.symbol))
        elif isinstance(ev, F.BalanceEvent):
            self._broadcast(self._balance())
