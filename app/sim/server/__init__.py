"""The built-in DTC server: replays real recorded markets and fills orders like a simulated account.

The package is split by job: :mod:`.session` (connections driving the DTC session),
:mod:`app.core.timers` (deadlines on the injected clock),
:mod:`.market_data` (subscriptions, replay fan-out), :mod:`.orders` (order entry and fill
reports), :mod:`.queries` (open orders, positions, balances, trade accounts); this module
assembles them into :class:`DTCServer` and holds its life cycle.

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
  Chart behaviour, notes section 3). One whose first bytes are ``GET `` is a WebSocket upgrade:
  DTC JSON (compact unless the fixed encoding is JSON) over WebSocket on the same port, as Sierra
  Chart >= 1798 serves it (:mod:`.transport`). With ``tls`` the port speaks TLS only.
* **Logon**: LOGON_RESPONSE with the capability flags (trading, OCO, brackets, cancel-replace,
  security definitions, market depth, market data; no historical data on this port). Requests
  before a successful logon are ignored and counted. ``LOGON_REQUEST.Integer_1`` flags pick
  the market data messages as Sierra Chart does (DTCServer.php; reference notes section 5):
  trades 112 (compact, the default), 107 with 0x8 NO_COMPACT_MARKET_DATA_MESSAGES, 146 with
  0x80000; best bid/ask 117 (compact, the default), 108 with 0x8, 144 with 0x100000; depth
  updates 106, 140 (float, ms) with 0x80; depth snapshots 122, 145 with 0x800. With a
  ``password`` the logon must carry it. Each ``Username`` owns its own simulated account (shown
  to its clients as ``account``, ``Sim1``) unless the server runs with ``shared_account``.
* **Heartbeats**: sent at the client's ``HeartbeatIntervalInSeconds`` (clamped to 1..300 s; 0 or
  less: none); a client silent for more than 2x that interval + 1 s (any byte counts) gets a
  LOGOFF with the reason and is disconnected. The logon must be accepted within 120 s of the
  connection's start. Negotiation, logon and these deadlines are the shared sans-I/O
  :class:`app.dtc.session.DTCSession` (role server); :mod:`.session` drives it, and the
  server's injected ``clock`` times everything (:mod:`app.core.timers`).
* **Security definitions**: 506 -> 507 (MinPriceIncrement, PriceDisplayFormat,
  CurrencyValuePerIncrement, DisplayPriceMultiplier 1) or 509 for unknown symbols.
* **Market data**: 101 subscribe -> 104 snapshot, then a trade message (112/107/146) per trade
  and a bid/ask message (117/108/144) when the best bid/ask changed (checked once per replayed
  batch); unknown symbol, or a SymbolID that is not
  an integer 0..4294967295 (the field is a uint32; JSON can carry any number) -> 103
  MARKET_DATA_REJECT (121 for depth) with the reason. Market data that cannot be encoded for one
  connection logs that connection off (LOGOFF with the reason, ``encode_errors``); the other
  connections and the fill engine get the batch all the same.
  **Depth**: 102 -> a 122 (or 145) snapshot batch -> 106 (or 140) updates; unknown symbol ->
  121. ``NumLevels`` 0 (or less): the whole book, updates keeping the recording's batch
  boundaries. ``NumLevels`` N > 0: at most N levels a side, in the snapshot and in the updates:
  after each replayed batch the changes of the best-N book go out (deletes of the levels that
  left it first, then those that entered or changed; one batch), so levels enter and leave as
  the inside moves and the client holds exactly the server's best N a side. The Exchange field is ignored, as Sierra Chart does.
* **Replay** at real time x speed with pause / resume / maximum speed: every symbol on ONE
  market clock (:func:`app.sim.replay.market_timeline`: recordings whose times overlap replay
  on their real times, recordings of other dates start together; one
  :class:`app.sim.replay.ReplayClock` over the merged segments, one replay task publishing
  them in market-time order, each to its own symbol). Each symbol keeps its own book, trades,
  security definition, subscriptions (the client's SymbolID) and order matching; the end, the
  loops and :meth:`restart_replay` concern the whole set. A recording's ``OP_CLEAR`` (its
  snapshot) is sent as deletes of every level the clients hold, followed by the new levels, in
  one batch. By default the replay stops at its end and tells the clients; with
  ``loop_replay`` each pass is a new session on the wire (:mod:`.market_data`).
* **Orders** go to the matching engine (:mod:`app.sim.matching`, ``docs/fill-model.md``):
  208 (market, limit, stop, stop-limit; ``IsParentOrder=1`` waits for the 201 that names it in
  ``ParentTriggerClientOrderID``), 201 OCO pairs and bracket children (``UseOffsets``
  supported), 203 cancel by ``ServerOrderID`` only, 204 cancel-replace, 209 flatten. Updates
  follow Sierra Chart's sequences (notes section 7; observed Sim statuses 2 -> 4 -> 7): a new
  order gets ORDER_UPDATE ``NEW_ORDER_ACCEPTED`` / PENDING_OPEN then ``GENERAL_ORDER_UPDATE`` /
  OPEN (bracket children: ``NEW_ORDER_ACCEPTED`` / PENDING_CHILD), a fill gets
  ``ORDER_FILLED(_PARTIALLY)`` with the LastFill fields, then POSITION_UPDATE (Unsolicited=1),
  then ACCOUNT_BALANCE_UPDATE (Unsolicited=1); a requested cancel gets ``GENERAL_ORDER_UPDATE``
  / PENDING_CANCEL then ``ORDER_CANCELED``. Rejections go to the connection that sent the
  request only (the connection travels with the request into the engine and comes back on the
  rejection, :attr:`app.sim.matching.OrderReport.request`); every other trading update goes to
  every logged-on connection of the account it concerns (Sierra Chart's "automatic trading
  data updates"), and a connection acts only on its own account's orders. Refused: prices not
  finite, not positive or outside ``price_band`` around the market; quantities that are not
  whole contracts in 1..``max_order_qty``; bracket offsets that are not finite and positive;
  more than ``max_open_orders`` open orders per account. A flatten order carries the 209's
  ClientOrderID.
* **Solicited answers** (300 -> 301s, 305 -> 306s, 400 -> 401, 601 -> 600) carry
  RequestID/TotalNumMessages/MessageNumber; empty results are one message with NoOrders /
  NoPositions = 1; they are written in one piece, so no unsolicited update can interleave.
* **Slow and hostile clients** never stall the replay (the replay clock waits for nobody; at
  maximum speed, which has no clock, the replay waits at most 0.5 s after a batch for clients
  holding over 1 MiB to drain, and one that did not is behind and not waited for again): a
  connection whose output buffer passes ``send_buffer_limit`` is *behind*: its market data is
  conflated (not written; ``conflated_messages``), the server stops reading its requests, and
  once it has read what it was sent it gets a fresh 104 and depth snapshot of each subscription
  (``slow_clients_caught_up``). Behind for ``slow_client_timeout_s`` (server clock), or past 4x
  the bound, it gets a LOGOFF with the reason and is disconnected (``slow_clients_dropped``; a
  transport that does not drain is aborted 1 s later, so its memory returns). A subscription
  gets a full snapshot at most once per ``resnapshot_interval_s``: a repeated request within
  it waits for the rest of the interval (its data held back meanwhile; many merge into one;
  ``snapshot_requests_deferred``). At most ``max_connections`` connections (more get a LOGOFF
  and are closed: ``connections_refused``) and ``max_subscriptions`` subscriptions per
  connection (more get 103/121: ``subscriptions_refused``). The stats line carries these
  counters and ``clients_behind`` / ``buffered_bytes``.
* Malformed frames are counted and skipped (:class:`app.dtc.codec.Decoder`); a binary stream
  that cannot be resynchronised gets a LOGOFF with the reason and is closed. Nothing a client
  sends can stop the server.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Iterable

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.dtc.messages import Encoding
from app.feeds.recording import Recording
from app.sim.matching import FillEngine
from app.sim.replay import ReplayClock, first_trade_index, market_timeline, start_at
from app.sim.server.market_data import MarketDataMixin, Symbol
from app.sim.server.orders import OrderEntryMixin
from app.sim.server.queries import QueriesMixin
from app.sim.server.session import (
    ENCODINGS,
    MAX_CONNECTIONS,
    MAX_SUBSCRIPTIONS,
    RESNAPSHOT_INTERVAL_S,
    SEND_BUFFER_LIMIT,
    SLOW_CLIENT_TIMEOUT_S,
    STOP_GRACE_S,
    Conn,
    SessionMixin,
)
from app.sim.server.transport import server_ssl_context
from app.core.timers import ClockTimers

log = logging.getLogger(__name__)

#: Default listening port (Sierra Chart's conventional DTC port is 11099; this one differs).
DEFAULT_PORT = 11199
#: Sierra-style simulated account name.
DEFAULT_ACCOUNT = "Sim1"

__all__ = ["DTCServer", "DEFAULT_PORT", "DEFAULT_ACCOUNT"]


class DTCServer(SessionMixin, MarketDataMixin, OrderEntryMixin, QueriesMixin):
    """Asyncio DTC server replaying recordings, with paper fills.

    Parameters
    ----------
    recording_or_list : Recording or iterable of Recording
        What to replay; one symbol per recording (``recording.instrument.symbol``), all on one
        market clock (:func:`app.sim.replay.market_timeline`; see :attr:`timeline`).
    host : str
        Listening address (loopback only by default; no TLS, and authentication only by ``password``).
    port : int
        Listening port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    speed : float
        Replay rate: 1.0 real time, ``<= 0`` or ``inf`` maximum speed.
    loop_replay : bool
        Start the recording again after its end, each pass a new session (default False: the
        replay stops at its end and tells the clients; see :mod:`.market_data`).
    paused : bool
        Start with the replay paused (tests subscribe first, then :meth:`resume`).
    account : str
        The simulated trade account (``Sim1``).
    server_name : str
        LOGON_RESPONSE.ServerName.
    max_gap_s : float
        Longest pause between two replayed events, recording seconds.
    commission_per_contract, slippage_ticks, starting_balance
        Passed to :class:`app.sim.matching.FillEngine`.
    symbol_aliases : dict, optional
        Extra symbol strings accepted for a recording's symbol (``{"ESH24_FUT_CME": "ESH4"}``).
    password : str, optional
        When set, LOGON_REQUEST.Password must equal it (any Username).
    shared_account : bool
        Every logon trades the one ``account``. Default False: each LOGON_REQUEST.Username
        owns its own simulated account (the empty Username the ``account`` itself), shown to
        its clients as ``account``; a connection sees and acts on its own account only.
    max_accounts : int
        Most accounts (distinct Usernames); a logon beyond it is refused.
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
    send_buffer_limit : int
        Bytes a connection's transport may hold before the connection is behind (default
        :data:`~app.sim.server.session.SEND_BUFFER_LIMIT`, 16 MiB).
    slow_client_timeout_s : float or None
        Seconds of ``clock`` a connection may stay behind before it is logged off (default 10;
        None: never for being behind, still at 4x the buffer bound).
    max_connections : int
        Most open connections (default 64).
    max_subscriptions : int
        Most market data + depth subscriptions per connection (default 64).
    resnapshot_interval_s : float
        Shortest interval between two full snapshots of one subscription, s of ``clock``
        (default 1).
    clock : app.core.clock.Clock
        Source of the server's own timing (default the system clock): the replay's pace
        (:class:`app.sim.replay.ReplayClock`), each connection's logon deadline, heartbeats and
        idle limit, the wait of a held bracket parent, HEARTBEAT.CurrentDateTime, the slow-client
        deadline and the resnapshot interval. Tests pass a
        :class:`~app.core.clock.ManualClock` and move time by hand; socket I/O timeouts stay
        in real time.
    tls : (cert, key), optional
        PEM certificate and private key: the port serves TLS only (DTC and WebSocket inside it;
        :func:`app.sim.server.transport.server_ssl_context`).
    price_band : float
        Orders priced further than this fraction of the market price from the market are
        rejected (0.5: ES at 4800 accepts 2400..7200); the market is the last trade, else the
        book's mid, else the recording's first trade. Non-finite, non-positive and
        int64-overflowing prices are always rejected.
    order_history : int
        Terminal orders the engine remembers (for lookups by ServerOrderID); older ones are
        forgotten, so memory stays bounded (:class:`app.sim.matching.FillEngine` ``history``).
    max_open_orders : int
        Most non-final orders per account; more are rejected (the work per replayed trade grows
        with the working orders).
    max_order_qty : float
        Largest quantity of one order, contracts; every quantity must also be a positive whole
        number of contracts (futures), in new orders and in replaces.

    Raises
    ------
    ValueError
        No recording, two recordings for one symbol, an unsupported ``encoding``, a TLS
        certificate / key that cannot be used (names the file), ``price_band`` not a positive
        finite number, or a bound that is not positive.

    Attributes
    ----------
    engine : app.sim.matching.FillEngine
        The matching engine: one book per symbol, every account's orders and positions.
    accounts : dict of str to str
        LOGON_REQUEST.Username -> the engine account it owns (``engine.accounts`` key).
    replay_done : asyncio.Event
        Set when the replay of the whole set ended (only without ``loop_replay``); created by
        :meth:`start`.
    timeline : app.sim.replay.MarketTimeline
        The symbols' events merged on the market clock (member ``i`` = the ``i``-th symbol).
    replay : app.sim.replay.ReplayClock
        The one replay clock (pause, resume, speed, loops) of every symbol.
    """

    def __init__(
        self,
        recording_or_list: Recording | Iterable[Recording],
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        speed: float = 1.0,
        loop_replay: bool = False,
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
        clock: Clock = SYSTEM_CLOCK,
        tls: tuple | None = None,
        price_band: float = 0.5,
        order_history: int = 10_000,
        max_open_orders: int = 1_000,
        max_order_qty: float = 1_000,
        shared_account: bool = False,
        max_accounts: int = 100,
        send_buffer_limit: int = SEND_BUFFER_LIMIT,
        slow_client_timeout_s: float | None = SLOW_CLIENT_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
        resnapshot_interval_s: float = RESNAPSHOT_INTERVAL_S,
    ) -> None:
        recs = [recording_or_list] if isinstance(recording_or_list, Recording) else list(recording_or_list)
        if not recs:
            raise ValueError("DTCServer needs at least one recording")
        self.tls = tuple(tls) if tls else None
        self._ssl = server_ssl_context(*self.tls) if self.tls else None
        self.host = host
        self.clock = clock
        for name, value in (("send_buffer_limit", send_buffer_limit), ("max_connections", max_connections),
                            ("max_subscriptions", max_subscriptions)):
            if int(value) <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if slow_client_timeout_s is not None and not slow_client_timeout_s >= 0:
            raise ValueError(f"slow_client_timeout_s must be >= 0 or None, got {slow_client_timeout_s!r}")
        if not resnapshot_interval_s >= 0:
            raise ValueError(f"resnapshot_interval_s must be >= 0, got {resnapshot_interval_s!r}")
        self.send_buffer_limit = int(send_buffer_limit)
        self.slow_client_timeout_s = slow_client_timeout_s
        self.max_connections = int(max_connections)
        self.max_subscriptions = int(max_subscriptions)
        self.resnapshot_interval_s = float(resnapshot_interval_s)
        self._timers = ClockTimers(clock, name="dtc-server-timers")
        self._port = int(port)
        self.account = account
        self.server_name = server_name
        self.password = password
        self.shared_account = bool(shared_account)
        self.max_accounts = max(int(max_accounts), 1)
        self.loop_replay = loop_replay
        self.fixed_encoding = Encoding(int(encoding)) if encoding is not None else None
        if self.fixed_encoding is not None and self.fixed_encoding not in ENCODINGS:
            raise ValueError(f"encoding {self.fixed_encoding.name} not supported (binary, JSON, compact JSON)")
        if not (math.isfinite(price_band) and price_band > 0):
            raise ValueError(f"price_band must be a positive fraction of the market price, got {price_band!r}")
        self.price_band = float(price_band)
        self._first_trade: dict[str, float | None] = {}  # symbol -> the recording's first trade, ticks
        self._speed = speed
        self._paused = paused
        self.engine = FillEngine(
            [r.instrument for r in recs],
            account=account,
            starting_balance=starting_balance,
            commission_per_contract=commission_per_contract,
            slippage_ticks=slippage_ticks,
            history=order_history,
            max_open_orders=max_open_orders,
            max_order_qty=max_order_qty,
            whole_contracts=True,
        )
        self.engine.add_listener(self._on_engine_event)
        self.accounts: dict[str, str] = {"": account}  # Username -> engine account
        self.symbols: dict[str, Symbol] = {}
        for r in recs:
            sym = r.instrument.symbol
            if sym in self.symbols:
                raise ValueError(f"two recordings for symbol {sym!r}")
            replayed = r
            if start_at_open:
                first = first_trade_index(r.events)
                if first:
                    replayed = start_at(r, first)
            self.symbols[sym] = Symbol(r.instrument, r, None, events=replayed.events, index=len(self.symbols))
        #: every symbol's events on one market clock (:func:`app.sim.replay.market_timeline`)
        self.timeline = market_timeline([s.events for s in self.symbols.values()], max_gap_s=max_gap_s)
        #: the one replay clock of every symbol (also each :attr:`Symbol.clock`)
        self.replay = ReplayClock(self.timeline.events, speed=speed, max_gap_s=max_gap_s, max_batch=max_batch,
                                  loop=loop_replay, clock=clock, times_ns=self.timeline.times_ns,
                                  ends=self.timeline.ends)
        if paused:
            self.replay.pause()
        self._symbol_of = list(self.symbols.values())  # timeline member index -> Symbol
        for s in self._symbol_of:
            s.clock = self.replay
            s.offset_ns = self.timeline.offsets_ns[s.index]
            s.group = self.timeline.groups[s.index]
            # the replay's market clock starts at its first event: snapshots sent before any
            # event is replayed (a paused start) carry that time, not 0 (a client would
            # otherwise have to guess a time for them)
            if len(s.events):
                s.last_ts = int(s.events["ts"][0])
        self.aliases = {k: v for k, v in (symbol_aliases or {}).items() if v in self.symbols}
        self.conns: dict[int, Conn] = {}
        self._next_cid = 1
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task] = []
        self._client_tasks: set[asyncio.Task] = set()  # one per connection (_handle_client)
        self.replay_done: asyncio.Event | None = None
        self._replay_task: asyncio.Task | None = None
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
            "rejected_symbol_ids": 0,
            "encode_errors": 0,
            "slow_clients_conflated": 0,
            "slow_clients_caught_up": 0,
            "conflated_messages": 0,
            "connections_refused": 0,
            "subscriptions_refused": 0,
            "snapshot_requests_deferred": 0,
        }
        # message type -> bound handler(conn, message); each part names the types it serves
        self._handlers = {
            t: getattr(self, name)
            for table in (self.HANDLES_MARKET_DATA, self.HANDLES_ORDERS, self.HANDLES_QUERIES)
            for t, name in table.items()
        }

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
        self._timers.start()
        try:
            self._server = await asyncio.start_server(self._handle_client, self.host, self._port, ssl=self._ssl)
        except OSError as exc:
            await self._timers.stop()
            raise OSError(exc.errno, f"DTC server cannot listen on {self.host}:{self._port}: {exc.strerror}") from exc
        self._start_replay_task()
        log.info("DTC server listening on %s:%d (%s)", self.host, self.port, ", ".join(self.symbols))

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop replaying and listening, log every connection off and close it, within about
        ``2 * grace_s`` (real seconds) whatever the clients do.

        Each connection gets its LOGOFF ("server stopping"); transports that have not flushed
        and closed within ``grace_s`` (a client that does not read) are aborted; connection
        tasks still running after another ``grace_s`` are cancelled. Nothing raises and
        nothing is left running (the counters of closed connections stay in :attr:`stats`).
        """
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._server is not None:
            self._server.close()  # no new connections
        conns = list(self.conns.values())
        for c in conns:
            if not c.closed:
                self._logoff(c, "server stopping", do_not_reconnect=False)
            self._drop(c)

        async def closed(c: Conn) -> None:
            try:
                await c.writer.wait_closed()
            except Exception:  # reset by the peer, aborted: closed all the same
                pass

        waits = [asyncio.ensure_future(closed(c)) for c in conns]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=grace_s)
            for w in pending:
                w.cancel()
            for c in conns:  # what has not flushed by now never will: free it
                try:
                    c.writer.transport.abort()
                except (AttributeError, RuntimeError):
                    pass
        tasks = [t for t in self._client_tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), grace_s)
            except (asyncio.TimeoutError, Exception):
                pass
            self._server = None
        await self._timers.stop()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    def pause(self) -> None:
        """Pause the replay of every symbol (the one market clock)."""
        self._paused = True
        self.replay.pause()

    def resume(self) -> None:
        """Resume the replay of every symbol."""
        self._paused = False
        self.replay.resume()

    def set_max_rate(self, events_per_s: float | None) -> None:
        """At maximum speed, the most events a second the replay hands out, all symbols
        together (None: no limit; :meth:`app.sim.replay.ReplayClock.set_max_rate`)."""
        self.replay.set_max_rate(events_per_s)

    def set_speed(self, speed: float) -> None:
        """Replay rate for every symbol (1.0 real time, ``<= 0``/inf maximum)."""
        self._speed = speed
        self.replay.set_speed(speed)

    @property
    def stats(self) -> dict:
        """Counters: connections, messages/bytes out, malformed frames, replay progress..."""
        d = dict(self._stats)
        d["connections"] = sum(1 for c in self.conns.values() if not c.closed)
        d["clients_behind"] = sum(1 for c in self.conns.values() if c.behind and not c.closed)
        d["buffered_bytes"] = sum(self._buffered(c) for c in self.conns.values())
        d["malformed_frames"] += sum(c.session.errors for c in self.conns.values())
        d["unknown_types"] += sum(c.session.decoder.unknown for c in self.conns.values())
        clock = self.replay
        done = np.bincount(self.timeline.member[:clock.position], minlength=len(self.symbols))
        d["replay"] = {
            s: {"position": int(done[v.index]), "events": len(v.events), "loops": clock.loops,
                "paused": clock.paused, "speed": clock.speed if math.isfinite(clock.speed) else 0.0,
                "offset_s": v.offset_ns / 1e9}
            for s, v in self.symbols.items()
        }
        return d

    def market_offsets_s(self) -> dict[str, float]:
        """Seconds to add to each served symbol's recorded times to put it on the market clock:
        symbol -> :attr:`app.sim.replay.MarketTimeline.offsets_ns` / 1e9 (0 for the recordings
        of the first time group, i.e. overlapping ones; market start minus recorded start for
        recordings of other dates)."""
        return {str(sym): float(off) / 1e9 for sym, off in zip(self.symbols, self.timeline.offsets_ns)}

    async def wait_replay_done(self, timeout: float) -> bool:
        """Wait until every replay ended (no loop); False on timeout."""
        try:
            await asyncio.wait_for(self.replay_done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
