"""The server's market data: symbols, security definitions, subscriptions and the replay fan-out.

One :class:`Symbol` per recording, all on the server's one market clock (one
:class:`app.sim.replay.ReplayClock` over :func:`app.sim.replay.market_timeline`). The one
replay task hands out the merged batches in market-time order and publishes each batch's events
of one symbol together (:meth:`MarketDataMixin.publish`, each symbol in its recording's order) to
that symbol's subscribers, and feeds them to the matching engine.
Procedures: see :mod:`app.sim.server`.

End of a replay and loops (what a DTC client sees)
--------------------------------------------------
The end and the loops are those of the whole set of symbols: the set ends when its last event
is replayed (then each symbol's end is announced), and each loop or restart starts every symbol
again together (each symbol's new session announced).

* **End** (the default, no loop): every logged-on connection gets a GENERAL_LOG_MESSAGE (701)
  whose text starts with :data:`REPLAY_FINISHED` (``"replay finished: ESH4, 68,792 events,
  market time 2023-12-25 23:59:59 UTC"``) and every market-data subscriber a
  MARKET_DATA_SNAPSHOT (104) with ``TradingStatus = TRADING_STATUS_CLOSE``; later snapshots
  also say CLOSE. The connections stay open (orders, positions and balances still answer).
  :meth:`MarketDataMixin.restart_replay` starts the recording again (the window's Restart).
* **Each loop (or restart) is a new session on the wire**, sent before any event of the new
  pass, so the market clock a client sees never goes backwards without this reset: the
  simulated account's working orders are cancelled with reason ``"replay restarted"`` (ORDER_UPDATE
  ``ORDER_CANCELED``, ``InfoText``) and its position is closed at the last trade price before the
  restart (an ORDER_UPDATE fill with ClientOrderID ``replay-restart``, then POSITION_UPDATE)
  (:meth:`app.sim.matching.FillEngine.restart_session`); then a GENERAL_LOG_MESSAGE starting
  with :data:`REPLAY_RESTARTED`; every depth subscriber gets an empty MARKET_DEPTH_SNAPSHOT
  batch (a client clears its book: one 122/145 with ``Side`` 0, first and last in batch);
  every market-data subscriber a MARKET_DATA_SNAPSHOT with the session fields reset (no
  session open/high/low/volume, ``TradingStatus`` OPEN, ``TradingSessionDate`` of the new pass).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass, field

import numpy as np

from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    KIND_DEPTH,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.dtc import batch as B
from app.dtc import messages as M
from app.dtc.messages import Encoding
from app.feeds.recording import Recording
from app.market.refbook import BookTop
from app.sim.replay import ReplayClock
from app.sim.server.session import Conn, fit

log = logging.getLogger(__name__)


def _utc(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS UTC`` of a time in ns since the epoch."""
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

T = M.MessageType

#: GENERAL_LOG_MESSAGE text prefix at the end of a replay (no loop).
REPLAY_FINISHED = "replay finished"
#: GENERAL_LOG_MESSAGE text prefix when a replay starts again (loop or restart).
REPLAY_RESTARTED = "replay restarted"


@dataclass
class Symbol:
    """One replayed symbol: its instrument, recording, replay clock and session statistics.

    Attributes
    ----------
    clock : app.sim.replay.ReplayClock
        The server's one market clock (shared by every symbol).
    events : numpy.ndarray of EVENT_DTYPE
        The events this symbol replays (the recording, or from its opening trade).
    index : int
        The symbol's member index in the server's :class:`app.sim.replay.MarketTimeline`.
    offset_ns : int
        Market time of its first event minus its recorded time (0 on real time).
    group : int
        Its time group on the market clock (0 = starts first).
    book_bbo : tuple
        (best bid tick, size, best ask tick, size) last sent as 108.
    session_high, session_low, session_open : int or None
        Ticks.
    session_volume : float
        Contracts.
    last_trade : tuple or None
        (tick, size, ts ns).
    last_ts : int
        ns since the epoch of the latest replayed event (market time).
    finished : bool
        The replay reached its end (no loop) and was not restarted.
    passes : int
        Passes started (1 + loops and restarts).
    events_out : int
        Events the replay handed out for this symbol, every pass.
    views : dict
        ``NumLevels`` -> the top-N book (bids, asks; tick -> (size, orders)) as last sent to
        the depth subscriptions limited to N levels.
    """

    inst: Instrument
    recording: Recording
    clock: ReplayClock | None
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=EVENT_DTYPE))
    index: int = 0
    offset_ns: int = 0
    group: int = 0
    book_bbo: tuple = (None, 0.0, None, 0.0)
    top: BookTop = field(default_factory=BookTop)  # best bid/ask of the engine's book, per batch
    session_high: int | None = None
    session_low: int | None = None
    session_open: int | None = None
    session_volume: float = 0.0
    session_trades: int = 0
    last_trade: tuple | None = None  # (tick, size, ts)
    last_ts: int = 0
    finished: bool = False
    passes: int = 1
    events_out: int = 0
    #: NumLevels -> (bids, asks) of the top-N book last sent to depth subscriptions limited to
    #: N levels (each side: tick -> (size, num_orders)); only for the N in use
    views: dict = field(default_factory=dict)


class MarketDataMixin:
    """Market data of :class:`app.sim.server.DTCServer` (506, 101, 102 and the replay).

    Uses the server's ``symbols``, ``aliases``, ``conns``, ``engine`` (its books),
    ``_stats``, ``replay_done`` and the session's ``_send`` / ``_write``.
    """

    #: message type -> handler method name
    HANDLES_MARKET_DATA = {
        int(T.SECURITY_DEFINITION_FOR_SYMBOL_REQUEST): "_on_security_definition",
        int(T.MARKET_DATA_REQUEST): "_on_market_data_request",
        int(T.MARKET_DEPTH_REQUEST): "_on_market_depth_request",
    }

    def _lookup(self, symbol: str) -> Symbol | None:
        s = self.symbols.get(symbol)
        if s is None and symbol in self.aliases:
            s = self.symbols.get(self.aliases[symbol])
        return s

    def _on_security_definition(self, c: Conn, m) -> None:
        s = self._lookup(m.Symbol)
        if s is None:
            self._send(c, M.SecurityDefinitionReject(RequestID=m.RequestID,
                                                     RejectText=fit(f"unknown symbol {m.Symbol!r}", 96)))
            return
        inst = s.inst
        self._send(
            c,
            M.SecurityDefinitionResponse(
                RequestID=m.RequestID,
                Symbol=fit(m.Symbol, 64),
                Exchange=fit(inst.exchange, 16),
                SecurityType=int(M.SecurityType.SECURITY_TYPE_FUTURES),
                Description=fit(inst.description or inst.symbol, 64),
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

    def _market_snapshot(self, s: Symbol, symbol_id: int) -> M.Message:
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
        kw["TradingStatus"] = int(M.TradingStatus.TRADING_STATUS_CLOSE if s.finished
                                  else M.TradingStatus.TRADING_STATUS_OPEN)
        if s.last_ts:
            kw["TradingSessionDate"] = int(s.last_ts // 86_400_000_000_000 * 86_400)  # the UTC day, s
        return M.MarketDataSnapshot(**kw)

    def _request_target(self, c: Conn, m, kind: str, reject) -> "Symbol | None":
        """Common start of MARKET_DATA_REQUEST and MARKET_DEPTH_REQUEST: an unsubscribe drops
        the SymbolID from the connection's ``kind`` ("md" or "depth") subscriptions; a SymbolID
        that does not fit the protocol's uint32, or an unknown symbol, is answered with
        ``reject`` (the 103 or 121 message class). Returns the symbol to serve, or None when
        the request is done."""
        subs = c.md_subs if kind == "md" else c.depth_subs
        if int(m.RequestAction) == M.RequestAction.UNSUBSCRIBE:
            for sym, sid in list(subs.items()):
                if sid == m.SymbolID:
                    del subs[sym]
                    c.awaiting.pop((kind, sym), None)
                    if kind == "depth":
                        c.depth_levels.pop(sym, None)
            return None
        sid = m.SymbolID
        if not isinstance(sid, int) or not 0 <= sid <= B.SYMBOL_ID_MAX:
            # JSON carries any number: an id the binary messages cannot hold would make every
            # later batch for this client fail to encode; refuse it here (the reject carries 0,
            # the only id sure to fit)
            self._stats["rejected_symbol_ids"] += 1
            self._send(c, reject(SymbolID=0, RejectText=fit(
                f"SymbolID {sid!r} out of range: must be an integer 0..{B.SYMBOL_ID_MAX}", 96)))
            return None
        s = self._lookup(m.Symbol)
        if s is None:
            self._send(c, reject(SymbolID=m.SymbolID, RejectText=fit(
                f"unknown symbol {m.Symbol!r}; this server replays {', '.join(self.symbols)}", 96)))
        return s

    def _id_conflict(self, c: Conn, m, sym: str, subs: dict, reject, what: str) -> bool:
        """DTC: one SymbolID per symbol while subscribed; a second id is rejected (True)."""
        if sym in subs and subs[sym] != m.SymbolID:
            self._send(c, reject(SymbolID=m.SymbolID, RejectText=fit(
                f"{sym} {what}already subscribed with SymbolID {subs[sym]}", 96)))
            return True
        return False

    def _subscriptions_full(self, c: Conn, m, sym: str, subs: dict, reject) -> bool:
        """A new subscription past ``max_subscriptions`` (market data + depth) is rejected (True)."""
        if sym in subs or len(c.md_subs) + len(c.depth_subs) < self.max_subscriptions:
            return False
        self._stats["subscriptions_refused"] += 1
        self._send(c, reject(SymbolID=m.SymbolID, RejectText=fit(
            f"too many subscriptions on this connection (at most {self.max_subscriptions})", 96)))
        return True

    def _on_market_data_request(self, c: Conn, m) -> None:
        s = self._request_target(c, m, "md", M.MarketDataReject)
        if s is None:
            return
        sym = s.inst.symbol
        if int(m.RequestAction) == M.RequestAction.SNAPSHOT:
            # a one-off snapshot: at most one per interval and symbol (more are not answered)
            if self._snapshot_due(c, ("md", sym)) > self.clock.monotonic_ns():
                self._stats["snapshot_requests_deferred"] += 1
                return
            c.snap_at[("md", sym)] = self.clock.monotonic_ns()
            self._send(c, self._market_snapshot(s, m.SymbolID))
            return
        if self._id_conflict(c, m, sym, c.md_subs, M.MarketDataReject, ""):
            return
        if self._subscriptions_full(c, m, sym, c.md_subs, M.MarketDataReject):
            return
        c.md_subs[sym] = int(m.SymbolID)
        self._want_snapshot(c, "md", sym)

    def _book_snapshot_events(self, sym: str) -> np.ndarray:
        return self.engine.books[sym].snapshot_events(self.symbols[sym].last_ts)

    def _on_market_depth_request(self, c: Conn, m) -> None:
        s = self._request_target(c, m, "depth", M.MarketDepthReject)
        if s is None:
            return
        sym = s.inst.symbol
        if self._id_conflict(c, m, sym, c.depth_subs, M.MarketDepthReject, "depth "):
            return
        if self._subscriptions_full(c, m, sym, c.depth_subs, M.MarketDepthReject):
            return
        c.depth_subs[sym] = int(m.SymbolID)
        n = m.NumLevels
        c.depth_levels[sym] = int(n) if isinstance(n, int) and n > 0 else 0  # 0 (or less): full depth
        self._want_snapshot(c, "depth", sym)

    # ------------------------------------------------------------------ full snapshots

    def _snapshot_due(self, c: Conn, key: tuple) -> int:
        """Earliest server-clock ns at which subscription ``key`` may get its next full snapshot."""
        last = c.snap_at.get(key)
        if last is None:
            return self.clock.monotonic_ns()
        return last + int(self.resnapshot_interval_s * 1e9)

    def _want_snapshot(self, c: Conn, kind: str, sym: str) -> None:
        """A (re)subscription wants a full snapshot: now, or when the resnapshot interval since
        the last one is over, or when a connection that is behind caught up. Until then the
        subscription's market data is held back (so what the client gets always starts from a
        snapshot). Repeated requests in between merge into the one pending snapshot."""
        key = (kind, sym)
        now = self.clock.monotonic_ns()
        due = max(now, self._snapshot_due(c, key))
        if c.behind or due > now:
            self._stats["snapshot_requests_deferred"] += 1
            c.awaiting[key] = due
            if not c.behind:
                self._arm_snapshot_timer(c)
            return
        c.awaiting.pop(key, None)
        self._snapshot_now(c, kind, sym)

    def _arm_snapshot_timer(self, c: Conn) -> None:
        if not c.awaiting:
            return
        due = min(c.awaiting.values())
        if c.snap_timer is not None and not c.snap_timer.cancelled and c.snap_timer.when_ns <= due:
            return
        if c.snap_timer is not None:
            c.snap_timer.cancel()
        c.snap_timer = self._timers.call_at(due, self._due_snapshots, c)

    def _due_snapshots(self, c: Conn) -> None:
        """Timer: send the deferred snapshots that are due (a connection behind waits for its
        catch-up instead)."""
        c.snap_timer = None
        if c.closed or c.behind:
            return
        now = self.clock.monotonic_ns()
        for key, due in list(c.awaiting.items()):
            if due <= now:
                del c.awaiting[key]
                self._snapshot_now(c, *key)
        self._arm_snapshot_timer(c)

    def _send_fresh_snapshots(self, c: Conn) -> None:
        """After a connection caught up: a full snapshot of each of its subscriptions."""
        c.awaiting.clear()
        if c.snap_timer is not None:
            c.snap_timer.cancel()
            c.snap_timer = None
        for sym in list(c.md_subs):
            self._snapshot_now(c, "md", sym)
        for sym in list(c.depth_subs):
            self._snapshot_now(c, "depth", sym)

    def _snapshot_now(self, c: Conn, kind: str, sym: str) -> None:
        """Send subscription ``(kind, sym)`` of ``c`` its full snapshot (104, or the depth
        snapshot batch 122/145) now."""
        subs = c.md_subs if kind == "md" else c.depth_subs
        if c.closed or sym not in subs:
            return
        s = self.symbols[sym]
        c.snap_at[(kind, sym)] = self.clock.monotonic_ns()
        if kind == "md":
            self._send(c, self._market_snapshot(s, subs[sym]))
            return
        n = c.depth_levels.get(sym, 0)
        ev = self._view_events(s, n) if n else self._book_snapshot_events(sym)
        try:
            data = B.encode_depth_batch(ev, s.inst.tick_size, subs[sym], c.encoding, msg_type=c.snapshot_type)
        except Exception as exc:  # this connection only
            self._encode_failed(c, exc)
            return
        self._write(c, data, max(len(ev), 1))

    def _start_replay_task(self) -> None:
        """Start the one replay task (on the running loop)."""
        if self.replay_done is not None:
            self.replay_done.clear()
        self._replay_task = asyncio.get_running_loop().create_task(self._replay(), name="dtc-replay")
        self._tasks.append(self._replay_task)

    async def _replay(self) -> None:
        """Replay the market clock's batches to the end of the set (or forever with loops), then
        announce every symbol's end.

        A batch (what is due at once; at maximum speed at most ``max_batch`` events) is published
        as one part per symbol, in the order the symbols first appear in it, each part in its
        recording's order (whole segments): publishing every alternating run of a two-symbol
        batch on its own cost 6x the time per event at maximum speed.
        """
        clock = self.replay
        member = self.timeline.member
        clock.on_restart = self._new_replay_sessions
        try:
            async for batch in clock.stream():
                end = clock.position  # the generator is suspended just after taking batch
                ids = member[end - len(batch):end]
                if len(self._symbol_of) == 1 or not (ids != ids[0]).any():
                    parts = [(int(ids[0]), batch)]
                else:  # one publish per symbol of the batch (not per run: runs alternate)
                    _u, first = np.unique(ids, return_index=True)
                    parts = [(int(ids[j]), batch[ids == ids[j]]) for j in np.sort(first)]
                for i, part in parts:
                    s = self._symbol_of[i]
                    s.events_out += len(part)
                    try:
                        self.publish(s.inst.symbol, part)
                    except Exception:  # one bad batch must not end the replay
                        self._stats["publish_errors"] = self._stats.get("publish_errors", 0) + 1
                        log.exception("replay of %s: batch at %d failed; skipped", s.inst.symbol, end)
                if clock.max_speed:
                    await self._pace()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replay failed")
        for s in self.symbols.values():
            self._replay_finished(s)
        if self.replay_done is not None:
            self.replay_done.set()

    def _replay_finished(self, s: Symbol) -> None:
        """Tell every client that the replay of ``s`` ended (see the module docstring)."""
        s.finished = True
        sym = s.inst.symbol
        when = _utc(s.last_ts)
        text = f"{REPLAY_FINISHED}: {sym}, {s.events_out:,} events, market time {when}"
        log.info("%s", text)
        self._broadcast(M.GeneralLogMessage(MessageText=fit(text, 128)))
        for c in list(self.conns.values()):
            if sym in c.md_subs and c.logged_on and not c.closed:
                self._send(c, self._market_snapshot(s, c.md_subs[sym]))

    def _new_replay_sessions(self) -> None:
        """A new pass of the whole set: a new session for every symbol."""
        for s in self.symbols.values():
            self._new_replay_session(s)

    def _new_replay_session(self, s: Symbol) -> None:
        """Reset ``s`` for a new pass: orders, position, book, statistics (module docstring).

        Runs on the server's loop before the new pass's first event is published.
        """
        sym = s.inst.symbol
        tick = s.inst.tick_size
        last = s.last_trade[0] * tick if s.last_trade is not None else None
        closing = self.engine.restart_session(sym, REPLAY_RESTARTED)
        s.passes += 1
        s.finished = False
        s.book_bbo = (None, 0.0, None, 0.0)
        s.session_high = s.session_low = s.session_open = None
        s.session_volume = 0.0
        s.session_trades = 0
        s.last_trade = None
        s.views.clear()  # the clients' books are cleared below: every top-N view starts empty
        ev = s.events
        s.last_ts = int(ev["ts"][0]) if len(ev) else s.last_ts
        what = (f"position closed at {closing.avg_fill_price * tick:.{s.inst.price_decimals}f}"
                if closing is not None else "flat")
        text = (f"{REPLAY_RESTARTED}: {sym} pass {s.passes} from {_utc(s.last_ts)}; book cleared, "
                f"orders cancelled, {what}")
        log.info("%s (last trade %s)", text, last)
        self._broadcast(M.GeneralLogMessage(MessageText=fit(text, 128)))
        empty = np.zeros(0, dtype=EVENT_DTYPE)
        for c in list(self.conns.values()):
            if c.closed or not c.logged_on:
                continue
            if sym in c.depth_subs:
                data = B.encode_depth_batch(empty, tick, c.depth_subs[sym], c.encoding, msg_type=c.snapshot_type)
                self._write(c, data, 1)
            if sym in c.md_subs:
                self._send(c, self._market_snapshot(s, c.md_subs[sym]))

    def restart_replay(self) -> None:
        """Start every symbol's recording again from its first event, as a new session.

        The whole set restarts together on the market clock: a replay that ended (no loop)
        starts a new replay task; one still running goes back to its start at once. Either way
        every symbol's new session is announced first (:meth:`_new_replay_session`). Call on
        the server's loop.
        """
        self._new_replay_sessions()
        self.replay.restart()
        if self._replay_task is None or self._replay_task.done():
            self._start_replay_task()

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
                    try:
                        self._send_market(s, np.concatenate([dels, seg]) if len(dels) else seg)
                    finally:
                        self.engine.on_market(symbol, seg)
                else:
                    self._publish_plain(s, seg)
        else:
            self._publish_plain(s, events)
        self._publish_views(s)
        self._after_batch(s, events)

    # ------------------------------------------------------------------ NumLevels

    def _top(self, sym: str, n: int) -> tuple[dict, dict]:
        """The best ``n`` levels of each side of the engine's book: (bids, asks), tick ->
        (size, num_orders)."""
        book = self.engine.books[sym]
        out = []
        for side in (SIDE_BID, SIDE_ASK):
            orders = book.num_orders(side)
            out.append({t: (q, orders.get(t, 0)) for t, q in book.levels(side, n)})
        return out[0], out[1]

    def _view(self, s: Symbol, n: int) -> tuple[dict, dict]:
        v = s.views.get(n)
        if v is None:
            v = s.views[n] = self._top(s.inst.symbol, n)
        return v

    def _view_events(self, s: Symbol, n: int) -> np.ndarray:
        """The top-``n`` view as snapshot events: bids best first, then asks best first."""
        bids, asks = self._view(s, n)
        b = sorted(bids, reverse=True)
        a = sorted(asks)
        ev = np.zeros(len(b) + len(a), dtype=EVENT_DTYPE)
        ev["kind"] = KIND_DEPTH
        ev["op"] = OP_SET
        ev["ts"] = s.last_ts
        ev["side"][:len(b)] = SIDE_BID
        ev["side"][len(b):] = SIDE_ASK
        ev["price"] = b + a
        ev["size"] = [bids[t][0] for t in b] + [asks[t][0] for t in a]
        ev["num_orders"] = [bids[t][1] for t in b] + [asks[t][1] for t in a]
        return ev

    def _publish_views(self, s: Symbol) -> None:
        """After a batch: for each ``NumLevels`` N in use, the changes of the top-N book since
        the last batch (deletes of the levels that left it first, then the levels that
        entered or changed), sent to the depth subscriptions limited to N levels. A client
        that applies them holds exactly the best N levels of each side (DTC
        MARKET_DEPTH_REQUEST.NumLevels: "the number of market depth levels to send")."""
        sym = s.inst.symbol
        limited = [c for c in self.conns.values()
                   if not c.closed and sym in c.depth_subs and c.depth_levels.get(sym, 0) > 0]
        used = {c.depth_levels[sym] for c in limited}
        for n in list(s.views):
            if n not in used:
                del s.views[n]
        for n in sorted(used):
            if n not in s.views:  # created by a snapshot; nothing sent relative to it yet
                self._view(s, n)
                continue
            old = s.views[n]
            new = s.views[n] = self._top(sym, n)
            dels, sets = [], []
            for side, o, w in ((SIDE_BID, old[0], new[0]), (SIDE_ASK, old[1], new[1])):
                dels += [(side, t, 0.0, 0) for t in o if t not in w]
                sets += [(side, t, q, no) for t, (q, no) in w.items() if o.get(t) != (q, no)]
            rows = dels + sets
            if not rows:
                continue
            ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
            ev["kind"] = KIND_DEPTH
            ev["ts"] = s.last_ts
            ev["side"], ev["price"], ev["size"], ev["num_orders"] = zip(*rows)
            ev["op"][:len(dels)] = OP_DELETE
            ev["op"][len(dels):] = OP_SET
            ev["flags"][-1] = FLAG_BATCH_END
            out: dict = {}
            for c in limited:
                if c.depth_levels[sym] != n or c.behind or ("depth", sym) in c.awaiting:
                    if c.behind:
                        self._stats["conflated_messages"] += len(ev)
                    continue
                key = (c.encoding, c.depth_type, c.depth_subs[sym])
                data = out.get(key)
                if data is None:
                    try:
                        data = out[key] = B.encode_depth_batch(ev, s.inst.tick_size, key[2], key[0], msg_type=key[1])
                    except Exception as exc:  # this connection only
                        self._encode_failed(c, exc)
                        continue
                self._write(c, data, len(ev))
                self._stats["depth_messages_out"] += len(ev)

    def _publish_plain(self, s: Symbol, events: np.ndarray) -> None:
        try:
            self._send_market(s, events)
        finally:  # the fill engine gets every batch, whatever happened on the wire
            self.engine.on_market(s.inst.symbol, events)

    def _send_market(self, s: Symbol, events: np.ndarray) -> None:
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
        behind = [c for c in conns if c.behind]
        if behind:  # conflated: they get fresh snapshots once they caught up
            self._stats["conflated_messages"] += sum(
                (len(dep) if sym in c.depth_subs and not c.depth_levels.get(sym, 0) else 0)
                + (len(trd) if sym in c.md_subs else 0) for c in behind)
            conns = [c for c in conns if not c.behind]
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
            dkey = (c.encoding, c.depth_type, c.depth_subs[sym]) if (
                sym in c.depth_subs and len(dep) and ("depth", sym) not in c.awaiting
                and not c.depth_levels.get(sym, 0)) else None  # NumLevels subscriptions: _publish_views
            tkey = (c.encoding, c.trade_type, c.md_subs[sym]) if (
                sym in c.md_subs and len(trd) and ("md", sym) not in c.awaiting) else None
            if dkey is None and tkey is None:
                continue
            akey = (dkey, tkey)
            out = assembled.get(akey)
            if out is None:
                try:
                    out = assembled[akey] = self._assemble(dep, trd, runs, tick, dkey, tkey, pieces_cache)
                except Exception as exc:  # this connection's encoding only: the others go on
                    self._encode_failed(c, exc)
                    continue
            data, nd, nt = out
            if data:
                self._write(c, data, nd + nt)
                self._stats["depth_messages_out"] += nd
                self._stats["trade_messages_out"] += nt

    def _assemble(self, dep, trd, runs, tick, dkey, tkey, pieces_cache) -> tuple[bytes, int, int]:
        """The bytes of one batch for one (depth key, trade key): (data, depth msgs, trade msgs)."""
        dparts = tparts = None
        if dkey is not None:
            dparts = pieces_cache.get(("d",) + dkey)
            if dparts is None:
                data = B.encode_depth_batch(dep, tick, dkey[2], dkey[0], msg_type=dkey[1])
                dparts = pieces_cache[("d",) + dkey] = self._splitter(data, len(dep), dkey[0])
        if tkey is not None:
            tparts = pieces_cache.get(("t",) + tkey)
            if tparts is None:
                data = B.encode_trade_batch(trd, tick, tkey[2], tkey[0], msg_type=tkey[1])
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
        return b"".join(chunks), nd, nt

    @staticmethod
    def _splitter(data: bytes, n: int, encoding: Encoding):
        """Function (i, j) -> bytes of messages i..j-1 of a batch-encoded run of ``n`` messages."""
        if encoding == Encoding.BINARY:
            size = len(data) // n if n else 0
            return lambda i, j: data[i * size:j * size]
        frames = data.split(b"\x00")[:n]
        return lambda i, j: b"".join(f + b"\x00" for f in frames[i:j])

    def _track_trades(self, s: Symbol, trades: np.ndarray) -> None:
        prices = trades["price"]
        hi, lo = int(prices.max()), int(prices.min())
        if s.session_open is None:
            s.session_open = int(prices[0])
        s.session_high = hi if s.session_high is None else max(s.session_high, hi)
        s.session_low = lo if s.session_low is None else min(s.session_low, lo)
        s.session_volume += float(trades["size"].sum())
        s.session_trades += len(trades)
        s.last_trade = (int(prices[-1]), float(trades["size"][-1]), int(trades["ts"][-1]))

    def _after_batch(self, s: Symbol, events: np.ndarray) -> None:
        """After ``events`` were applied to the engine's book: the best bid/ask message to every
        subscriber when the top changed (the levels the batch set keep :attr:`Symbol.top`
        without a scan of the book)."""
        sym = s.inst.symbol
        book = self.engine.books[sym]
        bb, ba = s.top.update(book, events)
        bbo = (bb, book.size_at(SIDE_BID, bb) if bb is not None else 0.0,
               ba, book.size_at(SIDE_ASK, ba) if ba is not None else 0.0)
        if bbo == s.book_bbo:
            return
        s.book_bbo = bbo
        tick = s.inst.tick_size
        msgs: dict = {}  # (type, SymbolID) -> message
        for c in list(self.conns.values()):
            if sym in c.md_subs and not c.closed and not c.behind and ("md", sym) not in c.awaiting:
                key = (c.bid_ask_type, c.md_subs[sym])
                msg = msgs.get(key)
                if msg is None:
                    try:
                        msg = msgs[key] = B.bid_ask_message(key[0], key[1], bb, bbo[1], ba, bbo[3], s.last_ts, tick)
                    except ValueError as exc:  # this connection only
                        self._encode_failed(c, exc)
                        continue
                self._send(c, msg)
