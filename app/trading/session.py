"""The trading session: ``ticket -> RiskGate -> Broker``, the journal, P&L, the kill switch.

:class:`TradingSession` is the one object the UI (and tests, and the headless crash child)
drives. Every path to a broker goes through :meth:`TradingSession.confirm` (opening tickets),
:meth:`TradingSession.modify_order` (moving a working order: a confirmed modify ticket) or
:meth:`TradingSession.flatten_position` (reducing orders: flatten, kill switch); each asks the
:class:`~app.trading.risk.RiskGate` (decision journaled) and journals the orders or the request
(committed) before the broker writes anything. Cancels need no gate (they remove risk).

Listening to the broker, the session journals every order update, fill (with the realised P&L
it produced), position and balance report, keeps today's P&L / trade count / consecutive
losses, and fires the kill switch's automatic triggers (:meth:`TradingSession.check_triggers`).
At start it rebuilds today's figures and the kill-switch lock from the journal, then reconciles
with the venue.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from dataclasses import dataclass

from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import KIND_QUOTE, KIND_TRADE, SIDE_ASK, SIDE_BID, Instrument
from app.market.refbook import BookTop
from app.trading.broker import Broker
from app.config.trading import LIVE_CONFIRM_PHRASE, MODE_LIVE, TradingSettings
from app.trading.journal import Journal
from app.trading.killswitch import KillState, KillSwitch
from app.core.orders import Fill, OrderEvent, OrderStatus, OrderType, PositionSnapshot
from app.trading.orders import (
    INTENT_OPEN,
    INTENT_REDUCE,
    ROLE_ENTRY,
    ROLE_FLATTEN,
    ROLE_STOP,
    ROLE_TARGET,
    Bracket,
    OrderRequest,
    OrderTicket,
)
from app.trading.pnl import PnLTracker
from app.trading.risk import GateDecision, OrderContext, RiskGate, pending_entry_qty

from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the risk panel shows (all values as the session knows them now).

    Money in USD, prices in ticks (``avg_price`` float ticks), quantities in contracts. Realised
    P&L is net of the commission per contract of ``trading.toml`` (every broker); open P&L is
    marked at the last trade, before the exit's commission. ``trading_day`` (ISO date) started at
    ``day_start_ns`` (ns since the epoch), shown as ``day_start_local`` (``YYYY-MM-DD HH:MM`` and
    the zone abbreviation of the symbol's session calendar).
    """

    mode: str
    account: str
    connected: bool
    symbol: str
    position_qty: int
    avg_price: float
    open_pnl_usd: float
    realized_pnl_usd: float  # net of commissions
    daily_loss_used_usd: float  # max(0, -(realized + open))
    daily_loss_limit_usd: float
    trades_today: int
    max_trades_per_day: int
    consecutive_losses: int
    max_consecutive_losses: int
    working_orders: int
    gate_state: str  # "open" or "locked: <reason>"
    kill_state: str
    kill_detail: str
    live_confirmed: bool
    tick_size: float
    trading_day: str
    day_start_ns: int
    day_start_local: str
    symbol_realized_pnl_usd: float = 0.0  # this symbol's realised P&L today, net of commissions
    account_open_pnl_usd: float = 0.0  # open P&L summed over every instrument


@dataclass
class MarketState:
    """Last market data per symbol (ticks; wall time of arrival in ns, read from the session's clock).

    ``watch_since_ns``: when the session started hearing this symbol (:meth:`TradingSession.watch_market`,
    the subscription); the stale-data trigger counts from it until the first data arrives.
    """

    last_data_ns: int = 0
    watch_since_ns: int = 0
    last_trade: int | None = None
    best_bid: int | None = None
    best_ask: int | None = None


class TradingSession:
    """One trading session.

    Parameters
    ----------
    broker : Broker
        :class:`~app.trading.paper.PaperBroker` or :class:`~app.trading.dtc_broker.DtcBroker`.
    journal : Journal
    settings : TradingSettings
    instrument : Instrument
        The traded symbol (tick size and value for risk in USD); with several instruments, the
        first (the trading day and the risk panel's default follow its calendar).
    instruments : sequence of Instrument, optional
        Every other instrument the session trades (issue 17): each symbol's tick value prices
        its P&L and risk; a ticket belongs to the instrument it was opened from, and an order
        for a symbol not listed here (nor ``instrument``) is refused by the gate
        (:class:`~app.trading.risk.TicketInstrument`). Per-symbol and account-wide limits come
        from ``trading.toml`` (:meth:`TradingSettings.limits_for`).
    mode : str, optional
        Default ``settings.mode``.
    clock : app.core.clock.Clock, optional
        Where the session reads "now" (default the system clock): the arrival time of market
        data, the stale-data and disconnection triggers, the trading day, the time of every gate
        decision (its risk gate and kill switch share it). Tests pass a
        :class:`~app.core.clock.ManualClock`. The monitor's period (``monitor_interval_s``) is
        real time: each tick re-reads the clock.
    """

    def __init__(self, broker: Broker, journal: Journal, settings: TradingSettings, instrument: Instrument,
                 mode: str | None = None, clock: Clock = SYSTEM_CLOCK, instruments=()):
        self.clock = clock
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.instrument = instrument
        #: every traded instrument by symbol (``instrument`` first)
        self.instruments: dict[str, Instrument] = {instrument.symbol: instrument}
        for inst in instruments:
            self.instruments.setdefault(inst.symbol, inst)
        #: today's realised P&L net of commissions per symbol, USD
        self.realized_by_symbol: dict[str, float] = {}
        self._ticket_symbols: dict[int, str] = {}  # ticket id -> the instrument it was opened from
        self.mode = mode or settings.mode
        self.live_confirmed = False
        self.gate = RiskGate(settings, journal, clock=clock)
        self.pnl = self._new_pnl()
        self.kill = KillSwitch(self, clock=clock)
        self.market: dict[str, MarketState] = {}
        self._tops: dict[str, BookTop] = {}  # best prices of the broker's books, kept per batch
        self.trades_today = 0
        self.day = self._trading_day(self.clock.time_ns())
        self._disconnected_since: int = 0
        self._stale_since: int = 0
        self._reconcile_task: asyncio.Task | None = None
        self._monitor: asyncio.TimerHandle | None = None
        self.monitor_interval_s = 0.25
        self.loop: asyncio.AbstractEventLoop | None = None
        self.problems: list[str] = []  # messages for the trader (UI shows them)
        self.listeners: list = []  # fn() called after any change
        self.reconcile_count = 0
        self._started = False
        broker.add_listener(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore today's figures and the kill-switch lock from the journal, start the broker, reconcile."""
        self.restore_from_journal()
        self.journal.record_event("session_start", {"mode": self.mode, "broker": self.broker.name,
                                                    "account": self.broker.account, "session": self.journal.session})
        await self.broker.start()
        self._started = True
        if self.broker.connected and self.broker.name != "paper":
            await self.reconcile()
        elif self.broker.name == "paper":
            self._adopt_venue_position(list(self.broker.positions.values()))
        self.loop = asyncio.get_running_loop()
        self._monitor = self.loop.call_later(self.monitor_interval_s, self._monitor_tick)

    def _monitor_tick(self) -> None:
        """Check the automatic kill-switch triggers every ``monitor_interval_s`` (until :meth:`stop`)."""
        if not self._started or self.loop is None:
            return
        try:
            self.roll_day()
            self.check_triggers()
        except Exception:  # a bug here must be seen, and must not stop the monitor
            log.exception("kill-switch trigger check failed")
        self._monitor = self.loop.call_later(self.monitor_interval_s, self._monitor_tick)

    async def stop(self) -> None:
        """Stop the broker (orders stay at the venue) and journal the end of the session."""
        self._started = False
        if self._monitor is not None:
            self._monitor.cancel()
        if self._reconcile_task is not None and not self._reconcile_task.done():
            self._reconcile_task.cancel()
        try:
            await self.broker.stop()
        finally:
            self.journal.record_event("session_stop", {})

    def _new_pnl(self) -> PnLTracker:
        return PnLTracker({sym: i.tick_value for sym, i in self.instruments.items()},
                          default_tick_value=self.instrument.tick_value)

    def _book_fill(self, fill: Fill) -> float:
        """Book ``fill`` in the P&L and in its symbol's realised P&L; returns the gross realised USD."""
        realized = self.pnl.apply_fill(fill)
        sym = fill.symbol
        self.realized_by_symbol[sym] = self.realized_by_symbol.get(sym, 0.0) + realized - fill.commission_usd
        return realized

    def instrument_of(self, symbol: str) -> Instrument:
        """The traded instrument ``symbol`` (the first instrument for a symbol not traded: its
        tick size and value are the only ones known)."""
        return self.instruments.get(symbol, self.instrument)

    def _trading_day(self, t_ns: int) -> str:
        """ISO date of the trading day ``t_ns`` (ns) falls in, on the traded symbol's session calendar.

        The day starts at the calendar's open (CME Globex: 17:00 America/Chicago, the session
        start of CME Group's Globex equity-index futures; crypto: 00:00 UTC), not at midnight,
        and is named by the date on which it closes (see :mod:`app.core.sessions`). The calendar
        and its open come from ``trading.toml`` (:meth:`TradingSettings.session_calendar_for`).
        """
        return self.settings.session_calendar_for(self.instrument.symbol).trading_day(int(t_ns)).isoformat()

    def _day_start_ns(self) -> int:
        """ns since the epoch of the session open that started the current trading day (:attr:`day`)."""
        cal = self.settings.session_calendar_for(self.instrument.symbol)
        return int(cal.day_start_ns(_dt.date.fromisoformat(self.day)))

    def restore_from_journal(self) -> None:
        """Rebuild today's P&L, trade count, consecutive losses and kill-switch lock from the journal.

        Also hands the broker the journaled orders that are not final (:meth:`Broker.remember_orders`),
        so an order the venue still reports after a restart keeps its role (entry, stop, target,
        flatten), its bracket parent and its OCO sibling; the risk gate counts adopted exits as exits.
        """
        start = self._day_start_ns()
        self.pnl = self._new_pnl()
        self.realized_by_symbol = {}
        for r in self.journal.fills_since(start):
            self._book_fill(Fill(r["client_order_id"], r["server_order_id"], r["exec_id"], r["symbol"],
                                     int(r["side"]), int(r["qty"]), int(r["price"]), int(r["ts_ns"]),
                                     float(r["commission_usd"])))
        self.trades_today = int(self.journal.query(
            "SELECT COUNT(*) FROM orders WHERE wall_ns >= ? AND role = ?", (start, ROLE_ENTRY))[0][0])
        rows = self.journal.query("SELECT state, trigger FROM kill_switch ORDER BY id DESC LIMIT 1")
        if rows and rows[0]["state"] != "unlocked":
            self.kill.restore(rows[0]["state"], rows[0]["trigger"])
        states = self.journal.last_order_states()
        remembered = []
        for cid, r in self.journal.orders_by_client_id().items():
            if states.get(cid) in ("filled", "canceled", "rejected"):
                continue
            try:
                remembered.append(OrderRequest(cid, r["symbol"], r["account"], int(r["side"]), r["order_type"],
                                               int(r["qty"]), r["price"], r["role"], r["parent_id"], r["oco_id"],
                                               int(r["ticket_id"]), r["price2"]))
            except (ValueError, KeyError, IndexError) as exc:  # a row this version cannot read: say so
                log.warning("journal order %s cannot be restored: %s", cid, exc)
        self.broker.remember_orders(remembered)

    def roll_day(self, t_ns: int | None = None) -> bool:
        """Start a new trading day when the clock passed the next session open.

        The day boundary is the open of the traded symbol's session calendar (CME Globex:
        17:00 America/Chicago, configurable per symbol in ``trading.toml``), so the daily loss
        limit, the trades-today count and the consecutive losses restart there, not at
        midnight in the middle of the overnight session. Open positions are carried over.
        Journaled as ``new_day`` (with the open's time in ns). Returns True when it rolled.

        Parameters
        ----------
        t_ns : int, optional
            ns since the epoch (default the session's clock).
        """
        day = self._trading_day(self.clock.time_ns() if t_ns is None else t_ns)
        if day == self.day:
            return False
        old = self.pnl
        self.pnl = PnLTracker(dict(old.tick_values), old.default_tick_value)
        self.realized_by_symbol = {}
        for sym, b in old.books.items():
            if b.qty:
                nb = self.pnl.position(sym)
                nb.qty, nb.avg_price = b.qty, b.avg_price
        previous = self.day
        self.day = day
        self.journal.record_event("new_day", {"previous": previous, "day": day, "day_start_ns": self._day_start_ns(),
                                              "net_realized_usd": old.net_realized_usd, "trades": self.trades_today})
        self.trades_today = 0
        self._changed()
        return True

    def _changed(self) -> None:
        for fn in list(self.listeners):
            try:
                fn()
            except Exception:
                log.exception("session listener failed")

    def problem(self, text: str) -> None:
        """Record a message for the trader (the UI shows the newest)."""
        log.warning("%s", text)
        self.problems.append(text)
        del self.problems[:-50]
        self._changed()

    # ------------------------------------------------------------------ market data
    def on_market(self, symbol: str, events) -> None:
        """Feed a batch of :data:`~app.core.events.EVENT_DTYPE` events (paper fills, staleness, open P&L)."""
        if len(events) == 0:
            return
        m = self.market.setdefault(symbol, MarketState())
        m.last_data_ns = self.clock.time_ns()
        kinds = events["kind"]
        trades = events[kinds == KIND_TRADE]
        if len(trades):
            m.last_trade = int(trades["price"][-1])
        quotes = events[kinds == KIND_QUOTE]
        if len(quotes):
            bids = quotes[quotes["side"] == SIDE_BID]
            asks = quotes[quotes["side"] == SIDE_ASK]
            if len(bids):
                m.best_bid = int(bids["price"][-1])
            if len(asks):
                m.best_ask = int(asks["price"][-1])
        feed = getattr(self.broker, "on_market", None)
        if feed is not None:
            feed(symbol, events)
        book = getattr(getattr(self.broker, "engine", None), "books", {}).get(symbol)
        if book is not None:
            top = self._tops.get(symbol)
            if top is None:
                top = self._tops[symbol] = BookTop()
            m.best_bid, m.best_ask = top.update(book, events)

    def watch_market(self, symbol: str) -> None:
        """The session starts hearing ``symbol``'s market data (the subscription, or a new one).

        The stale-data trigger counts from the latest data, or from this call while no data
        arrived yet (issue 12 item 3): "no market data yet" is not stale data, so a session that
        restarts with an open position does not flatten it before the feed had ``stale_kill_s``
        to deliver.
        """
        m = self.market.setdefault(symbol, MarketState())
        m.watch_since_ns = self.clock.time_ns()

    def note_quote(self, symbol: str, best_bid: int | None, best_ask: int | None, last: int | None = None) -> None:
        """Record the latest quote (ticks) when the app sees the market without event batches."""
        m = self.market.setdefault(symbol, MarketState())
        m.last_data_ns = self.clock.time_ns()
        if best_bid is not None and best_bid >= 0:
            m.best_bid = int(best_bid)
        if best_ask is not None and best_ask >= 0:
            m.best_ask = int(best_ask)
        if last is not None:
            m.last_trade = int(last)

    def ref_price(self, symbol: str, side: int) -> int:
        """Price a market order would pay (ticks): best opposite quote, else last trade, else 0."""
        m = self.market.get(symbol)
        if m is None:
            return 0
        q = m.best_ask if side > 0 else m.best_bid
        if q is not None:
            return int(q)
        return int(m.last_trade or 0)

    # ------------------------------------------------------------------ tickets
    def ticket_from_signal(self, signal) -> OrderTicket:
        """A limit-entry bracket ticket from an :class:`~app.analysis.frame.Signal` (journaled as shown)."""
        sym = signal.symbol or self.instrument.symbol
        inst = self.instrument_of(sym)
        t = OrderTicket(symbol=sym, side=int(signal.side),
                        qty=max(1, int(signal.size)), order_type=OrderType.LIMIT, entry=int(signal.entry),
                        stop=int(signal.stop), target=int(signal.target),
                        ref_price=self.ref_price(sym, int(signal.side)),
                        source="signal", signal_id=int(signal.id), tick_size=inst.tick_size,
                        tick_value=inst.tick_value, account=self.broker.account,
                        sizing_note=str(getattr(signal, "sizing", "") or ""))
        return self._show(t)

    def ticket_from_price(self, price: int, side: int, qty: int | None = None,
                          order_type: str = OrderType.LIMIT, symbol: str | None = None) -> OrderTicket:
        """An entry ticket at a ladder price (ticks), bracket offsets from the settings.

        ``order_type`` is ``limit`` (a ladder double-click) or ``stop`` (Shift+double-click: a
        stop entry at that price, e.g. a breakout buy above the market). ``symbol``: the
        instrument whose ladder was clicked (default the first); the ticket belongs to it.
        """
        s = self.settings
        price = int(price)
        sym = symbol or self.instrument.symbol
        inst = self.instrument_of(sym)
        t = OrderTicket(symbol=sym, side=int(side), qty=int(qty or s.default_qty),
                        order_type=OrderType(order_type), entry=price, stop=price - side * s.bracket_stop_ticks,
                        target=price + side * s.bracket_target_ticks,
                        ref_price=self.ref_price(sym, side), source="ladder",
                        tick_size=inst.tick_size, tick_value=inst.tick_value,
                        account=self.broker.account)
        return self._show(t)

    def _show(self, t: OrderTicket) -> OrderTicket:
        t.validate()
        tid = self.journal.record_ticket(t, "shown", self.mode)
        self._ticket_symbols[int(tid)] = t.symbol  # the ticket belongs to this instrument from now on
        return t.with_(ticket_id=tid)

    def record_signal(self, signal, snapshot: dict | None = None) -> int:
        """Journal a signal with its reasons and an analyzer snapshot."""
        return self.journal.record_signal(signal, snapshot)

    def context_for(self, ticket: OrderTicket, intent: str = INTENT_OPEN, instrument: str = "") -> OrderContext:
        """The :class:`OrderContext` of ``ticket`` now.

        Parameters
        ----------
        ticket : OrderTicket
        intent : {"open", "reduce"}
        instrument : str, optional
            The instrument whose panel sends the ticket; with the instrument the ticket was
            opened from (:meth:`ticket_from_price` / :meth:`ticket_from_signal`), it must be
            the ticket's symbol (:class:`~app.trading.risk.TicketInstrument`).
        """
        sym = ticket.symbol
        working = self.broker.working_orders()
        pending = pending_entry_qty(working, sym, ticket.side)
        m = self.market.get(sym)
        owner = self._ticket_symbols.get(int(ticket.ticket_id or 0), "")
        if instrument and owner and instrument != owner:
            owner = f"{owner} (sent from {instrument})"
        owner = owner or instrument
        return OrderContext(
            symbol=sym, side=ticket.side, qty=int(ticket.qty), intent=intent, risk_usd=ticket.risk_usd,
            position_qty=self.position_qty(sym), pending_qty=int(pending),
            realized_pnl_usd=self.realized_by_symbol.get(sym, 0.0), open_pnl_usd=self.open_pnl_usd(sym),
            trades_today=self.trades_today, consecutive_losses=self.pnl.consecutive_losses,
            now_ns=self.clock.time_ns(),
            last_data_ns=m.last_data_ns if m else 0, mode=self.mode, live_confirmed=self.live_confirmed,
            kill_locked=self.gate.locked, account_contracts_other=self._contracts_other(sym, working),
            account_realized_pnl_usd=self.pnl.net_realized_usd, account_open_pnl_usd=self.account_open_pnl_usd(),
            ticket_symbol=owner, tradable=sym in self.instruments)

    def _contracts_other(self, symbol: str, working) -> int:
        """Contracts of every symbol but ``symbol``: ``abs(position)`` plus unfilled entries (both sides)."""
        total = 0
        for sym, p in self.broker.positions.items():
            if sym != symbol:
                total += abs(int(p.qty))
        for o in working:
            if o.request.symbol != symbol and o.request.role == ROLE_ENTRY:
                total += max(0, int(o.request.qty - o.filled_qty))
        return total

    def account_open_pnl_usd(self) -> float:
        """Open P&L summed over every symbol with a position, USD."""
        return float(sum(self.open_pnl_usd(sym) for sym, p in self.broker.positions.items() if p.qty))

    def preview(self, ticket: OrderTicket) -> GateDecision:
        """The gate's verdict for ``ticket`` now (not journaled; shown on the ticket)."""
        return self.gate.evaluate(self.context_for(ticket))

    def cancel_ticket(self, ticket: OrderTicket) -> None:
        """The trader closed the ticket without sending (journaled)."""
        if ticket.ticket_id:
            self.journal.record_ticket_status(ticket.ticket_id, "cancelled")

    def build_bracket(self, ticket: OrderTicket) -> Bracket:
        """Orders of a ticket with fresh ClientOrderIDs (not journaled, not sent)."""
        acct = self.broker.account
        nid = self.journal.next_client_order_id
        entry = OrderRequest(nid(), ticket.symbol, acct, ticket.side, ticket.order_type, int(ticket.qty),
                             None if ticket.order_type == OrderType.MARKET else int(ticket.entry), ROLE_ENTRY,
                             ticket_id=ticket.ticket_id)
        if ticket.stop is None:
            return Bracket(entry)
        sid, tid = nid(), nid()
        stop = OrderRequest(sid, ticket.symbol, acct, -ticket.side, OrderType.STOP, int(ticket.qty), int(ticket.stop),
                            ROLE_STOP, parent_id=entry.client_order_id, oco_id=tid, ticket_id=ticket.ticket_id)
        target = OrderRequest(tid, ticket.symbol, acct, -ticket.side, OrderType.LIMIT, int(ticket.qty), int(ticket.target),
                              ROLE_TARGET, parent_id=entry.client_order_id, oco_id=sid, ticket_id=ticket.ticket_id)
        return Bracket(entry, stop, target)

    async def confirm(self, ticket: OrderTicket, instrument: str = "") -> GateDecision:
        """The trader confirmed ``ticket``: gate (journaled), orders journaled, then sent.

        Returns the gate's decision; when refused nothing is sent (ticket journaled ``refused``).
        ``instrument``: the instrument whose panel sends it; a ticket goes only to the
        instrument it was opened from (else refused by rule ``ticket_instrument``).

        Raises
        ------
        ValueError
            If the ticket is inconsistent (names the field).
        app.trading.broker.BrokerError
            If the broker cannot write the orders (they stay journaled as sent; reconciliation
            marks them).
        """
        ticket.validate()
        if not ticket.ticket_id:
            ticket = self._show(ticket)
        bracket = None
        with self.journal.transaction():  # confirmation, decision and orders: one durable commit
            self.journal.record_ticket_status(ticket.ticket_id, "confirmed")
            decision = self.gate.check(self.context_for(ticket, instrument=instrument), ticket.ticket_id)
            if decision.allowed:
                bracket = self.build_bracket(ticket)
                self.journal.record_orders(bracket.orders, self.mode, self.broker.name)
            else:
                self.journal.record_ticket_status(ticket.ticket_id, "refused")
        if bracket is None:
            self._changed()
            return decision
        self.trades_today += 1
        try:
            await self.broker.submit_bracket(bracket)
        finally:
            self._changed()
        return decision

    def modify_context(self, client_order_id: str, price: int) -> OrderContext:
        """The gate's :class:`OrderContext` for moving working order ``client_order_id`` to ``price`` (ticks).

        A move may add risk, so it is an ``open`` intent and faces every rule. ``risk_usd`` is the
        loss if the protective stop fills after the move: for an entry, from the new entry price
        to its bracket stop; for a stop, from the position's average price (or, while its entry
        still works, the entry's price) to the new stop price (0 once the stop locks in a gain);
        for a target, that of its stop (unchanged by the move); None when there is no stop. The
        order's own ticket was counted already (a move opens no new trade), and a moved entry is
        not counted twice as working.

        Raises
        ------
        ValueError
            The order is not working, has no price (market), or a moved entry would cross its stop.
        """
        wo = self.broker.orders.get(client_order_id)
        if wo is None or not wo.state.working:
            raise ValueError(f"modify: order {client_order_id} is not working")
        req = wo.request
        if req.order_type == OrderType.MARKET or req.price is None:
            raise ValueError(f"modify: order {client_order_id} is a market order (no price to move)")
        price = int(price)
        remaining = max(1, int(req.qty) - int(wo.filled_qty))
        tv = self.instrument.tick_value
        working = [o for o in self.broker.working_orders() if o.request.symbol == req.symbol]

        def stop_of(entry_id):
            return next((o for o in working if o.request.parent_id == entry_id and o.request.role == ROLE_STOP), None)

        def stop_risk(stop_price, exit_side, qty):
            pos = self.broker.positions.get(req.symbol)
            parent = self.broker.orders.get(req.parent_id) if req.parent_id else None
            if parent is not None and parent.state.working and parent.request.price is not None:
                basis = float(parent.request.price)  # the entry has not filled yet
            elif pos is not None and pos.qty:
                basis = float(pos.avg_price)
            else:
                return None
            return max(0.0, (basis - stop_price) * -exit_side) * qty * tv

        risk = None
        if req.role == ROLE_ENTRY:
            st = stop_of(req.client_order_id)
            if st is not None:
                if (price - int(st.request.price)) * req.side <= 0:
                    raise ValueError(f"modify: entry {price} would cross its stop {st.request.price} "
                                     f"(side {int(req.side):+d})")
                risk = (price - int(st.request.price)) * req.side * remaining * tv
        elif req.role == ROLE_STOP:
            risk = stop_risk(price, req.side, remaining)
        elif req.role == ROLE_TARGET:
            st = self.broker.orders.get(req.oco_id)
            if st is not None and st.request.price is not None:
                risk = stop_risk(int(st.request.price), req.side, remaining)
        pending = pending_entry_qty(working, req.symbol, req.side)
        if req.role == ROLE_ENTRY:
            pending -= int(req.side) * remaining
        m = self.market.get(req.symbol)
        return OrderContext(
            symbol=req.symbol, side=int(req.side), qty=remaining, intent=INTENT_OPEN, risk_usd=risk,
            position_qty=self.position_qty(req.symbol), pending_qty=int(pending),
            realized_pnl_usd=self.pnl.net_realized_usd, open_pnl_usd=self.open_pnl_usd(req.symbol),
            trades_today=max(0, self.trades_today - 1), consecutive_losses=self.pnl.consecutive_losses,
            now_ns=self.clock.time_ns(), last_data_ns=m.last_data_ns if m else 0, mode=self.mode,
            live_confirmed=self.live_confirmed, kill_locked=self.gate.locked)

    def preview_modify(self, client_order_id: str, price: int) -> GateDecision:
        """The gate's verdict for moving an order to ``price`` (ticks) now (not journaled; the modify ticket).

        Raises
        ------
        ValueError
            As :meth:`modify_context`.
        """
        return self.gate.evaluate(self.modify_context(client_order_id, price))

    async def modify_order(self, client_order_id: str, price: int) -> GateDecision:
        """The trader confirmed moving a working order to ``price`` (ticks): gate, journal, then the broker.

        The request and the gate's decision are journaled in one commit before anything is
        written to the broker; when the gate refuses nothing is sent. The venue's replace report
        gives the order its new price (:meth:`app.trading.broker.Broker.modify`).

        Raises
        ------
        ValueError
            As :meth:`modify_context`.
        app.trading.broker.BrokerError
            The broker cannot modify orders or cannot write the request.
        """
        ctx = self.modify_context(client_order_id, price)
        wo = self.broker.orders[client_order_id]
        with self.journal.transaction():
            self.journal.record_event("modify_request", {"client_order_id": client_order_id,
                                                         "from": wo.request.price, "to": int(price)})
            decision = self.gate.check(ctx, wo.request.ticket_id)
        if decision.allowed:
            try:
                await self.broker.modify(client_order_id, int(price))
            finally:
                self._changed()
        else:
            self._changed()
        return decision

    async def cancel_order(self, client_order_id: str) -> None:
        """Cancel one working order (journaled as an event first)."""
        self.journal.record_event("cancel_request", {"client_order_id": client_order_id})
        await self.broker.cancel(client_order_id)

    async def cancel_by_server_id(self, server_order_id: str, client_order_id: str = "") -> None:
        """Cancel an order known only from the venue's report (after a restart)."""
        self.journal.record_event("cancel_request", {"client_order_id": client_order_id,
                                                     "server_order_id": server_order_id})
        fn = getattr(self.broker, "cancel_server_order", None)
        if fn is not None:
            await fn(server_order_id)
        else:
            await self.broker.cancel(client_order_id)

    async def flatten_position(self, symbol: str, qty: int | None = None, reason: str = "flatten") -> str:
        """Send one reducing market order for ``qty`` through the gate; returns its ClientOrderID.

        Parameters
        ----------
        symbol : str
        qty : int, optional
            Signed contracts to close (default: the position the broker last reported); the
            order is ``-sign(qty)`` for ``abs(qty)`` contracts. The kill switch passes the
            venue's own figure, read once the venue reports no other working order.
        reason : str
            Journaled with the order.

        Returns
        -------
        str
            The flatten order's ClientOrderID, or ``""`` when nothing was sent: nothing to
            flatten, the gate refused (decision journaled), or a flatten order for ``symbol`` is
            still working (at most one in flight per symbol: a second one could flip the
            position).
        """
        qty = self.position_qty(symbol) if qty is None else int(qty)
        if qty == 0:
            return ""
        busy = [o for o in self.broker.working_orders() if o.request.role == ROLE_FLATTEN and o.request.symbol == symbol]
        if busy:
            self.problem(f"flatten {symbol}: flatten order {busy[0].client_order_id} is still working; not sending another")
            return ""
        side = -1 if qty > 0 else 1
        inst = self.instrument_of(symbol)
        t = OrderTicket(symbol=symbol, side=side, qty=abs(qty), order_type=OrderType.MARKET,
                        ref_price=self.ref_price(symbol, side), source="flatten",
                        tick_size=inst.tick_size, tick_value=inst.tick_value)
        ctx = self.context_for(t, INTENT_REDUCE)
        ctx = OrderContext(**{**ctx.to_dict(), "position_qty": qty})
        order = OrderRequest(self.journal.next_client_order_id(), symbol, self.broker.account, side, OrderType.MARKET,
                             abs(qty), None, ROLE_FLATTEN)
        # decision, order and reason in one commit; a journal that cannot be written does not stop
        # a reducing order (its records go to the fallback file, Journal.failure says why)
        with self.journal.best_effort(), self.journal.transaction():
            decision = self.gate.check(ctx, 0)
            if decision.allowed:
                self.journal.record_orders([order], self.mode, self.broker.name)
                self.journal.record_event("flatten", {"symbol": symbol, "qty": qty, "reason": reason,
                                                      "client_order_id": order.client_order_id})
        if not decision.allowed:
            self.problem(f"flatten {symbol} refused: {decision.message}")
            return ""
        await self.broker.submit_order(order)
        return order.client_order_id

    # ------------------------------------------------------------------ modes
    def confirm_live(self, typed: str) -> bool:
        """Enable live orders when ``typed`` is exactly the live phrase (``LIVE``); journaled."""
        ok = self.mode == MODE_LIVE and typed.strip() == LIVE_CONFIRM_PHRASE
        self.journal.record_event("live_confirmation", {"accepted": ok})
        if ok:
            self.live_confirmed = True
            self._changed()
        return ok

    # ------------------------------------------------------------------ broker listener
    def on_order(self, ev: OrderEvent) -> None:
        self.journal.record_order_event(ev)
        if ev.fill_qty > 0 and ev.exec_id:
            wo = self.broker.orders.get(ev.client_order_id)
            side = ev.side or (wo.request.side if wo else 0)
            symbol = ev.symbol or (wo.request.symbol if wo else self.instrument.symbol)
            # paper execution ids restart with every engine: namespace them with the journal session
            exec_id = f"S{self.journal.session}:{ev.exec_id}" if self.broker.name == "paper" else ev.exec_id
            fill = Fill(ev.client_order_id, ev.server_order_id, exec_id, symbol, side, int(ev.fill_qty),
                        int(ev.fill_price), ev.ts_ns or self.clock.time_ns(),
                        commission_usd=self.settings.commission_for(symbol) * ev.fill_qty)  # net everywhere
            if not self.journal.has_fill(fill.exec_id):
                before = self.pnl.consecutive_losses, self.pnl.round_trips
                realized = self._book_fill(fill)
                self.journal.record_fill(fill, realized)
                if (self.pnl.consecutive_losses, self.pnl.round_trips) != before:
                    self.check_triggers()
        if ev.state == OrderStatus.REJECTED and ev.info:
            self.problem(f"order {ev.client_order_id} rejected: {ev.info}")
        self._changed()

    def on_position(self, pos: PositionSnapshot) -> None:
        self.journal.record_position(pos, "broker")
        self._changed()

    def on_balance(self, bal: dict) -> None:
        self._changed()

    def on_connection(self, up: bool) -> None:
        self.journal.record_event("connected" if up else "disconnected", {"broker": self.broker.name})
        if up:
            self._disconnected_since = 0
            if self._started and self.broker.name != "paper":
                loop = self.loop
                if loop is not None:
                    self._reconcile_task = loop.create_task(self.reconcile())
        else:
            self._disconnected_since = self.clock.time_ns()
        self._changed()

    async def reconcile(self) -> None:
        """Replace the local picture with the venue's reports; journal what differs.

        Journaled orders that are neither final nor reported as open by the venue are marked
        ``unknown`` (and never resent: a reconnect cannot duplicate an order). A position that
        differs from the one rebuilt from journaled fills is reported to the trader, and the
        venue's figure is taken.
        """
        try:
            orders, positions = await self.broker.reconcile()
        except Exception as exc:
            self.problem(f"reconciliation failed: {exc}")
            return
        self.reconcile_count += 1
        reported = {ev.client_order_id for ev in orders}
        states = self.journal.last_order_states()
        # the broker's picture decides for the orders it holds (one sent after the open-orders request
        # is not missing); the journal's own list covers the orders of earlier runs
        held = {cid for cid, wo in self.broker.orders.items() if wo.state.working}
        missing = [cid for cid, st in states.items()
                   if st not in ("filled", "canceled", "rejected", "unknown") and cid not in reported
                   and cid not in held]
        for cid in missing:
            self.journal.record_order_event(OrderEvent(cid, "", OrderStatus.UNKNOWN, reason="reconcile_missing",
                                                       info="journaled but not open at the venue"))
        for p in positions:
            self.journal.record_position(p, "reconcile")
        self._adopt_venue_position(positions)
        self.journal.record_event("reconciled", {"open_orders": sorted(reported), "positions":
                                                 {p.symbol: p.qty for p in positions}, "unknown": missing})
        if self.kill.state == KillState.FAILED and not self.kill.busy and (orders or any(p.qty for p in positions)):
            # the switch could not finish (e.g. the connection was down): finish it now
            self.kill.trigger("retry_after_reconnect")
        self._changed()

    def _adopt_venue_position(self, positions) -> None:
        """Take the venue's position of every traded instrument when the journal's fills say
        otherwise (told to the trader)."""
        for sym in self.instruments:
            self._adopt_symbol_position(sym, positions)

    def _adopt_symbol_position(self, sym: str, positions) -> None:
        vp = next((p for p in positions if p.symbol == sym), None)
        venue_qty = int(vp.qty) if vp else 0
        book = self.pnl.position(sym)
        if venue_qty != book.qty:
            where = "the paper account restarted flat" if self.broker.name == "paper" else "the venue reports it"
            self.problem(f"position {sym}: {venue_qty:+d} ({where}), the journal's fills give {book.qty:+d};"
                         " using the venue's figure")
            self.journal.record_event("position_adopted", {"symbol": sym, "venue": venue_qty, "journal": book.qty})
            book.qty = venue_qty
            book.avg_price = float(vp.avg_price) if vp and venue_qty else 0.0
            book.trip_pnl_usd = 0.0

    # ------------------------------------------------------------------ figures
    def position_qty(self, symbol: str) -> int:
        """Signed position as the broker last reported it."""
        return self.broker.position_qty(symbol)

    def open_pnl_usd(self, symbol: str) -> float:
        p = self.broker.positions.get(symbol)
        if p is None or p.qty == 0:
            return 0.0
        m = self.market.get(symbol)
        last = m.last_trade if m else None
        if last is None:
            return float(p.open_pnl_usd)
        return (last - p.avg_price) * p.qty * self.instrument_of(symbol).tick_value

    def snapshot(self, symbol: str | None = None) -> RiskSnapshot:
        """The risk panel's values."""
        sym = symbol or self.instrument.symbol
        pos = self.broker.positions.get(sym)
        open_pnl = self.open_pnl_usd(sym)
        realized = self.pnl.net_realized_usd
        kr = self.kill.last_result
        cal = self.settings.session_calendar_for(self.instrument.symbol)
        start_ns = self._day_start_ns()
        start_local = _dt.datetime.fromtimestamp(start_ns / 1e9, ZoneInfo(cal.tz)).strftime("%Y-%m-%d %H:%M %Z")
        return RiskSnapshot(
            mode=self.mode, account=self.broker.account, connected=self.broker.connected, symbol=sym,
            position_qty=int(pos.qty) if pos else 0, avg_price=float(pos.avg_price) if pos and pos.qty else 0.0,
            open_pnl_usd=open_pnl, realized_pnl_usd=realized,
            daily_loss_used_usd=max(0.0, -(realized + open_pnl)),
            daily_loss_limit_usd=self.settings.limits_for(sym)[2], trades_today=self.trades_today,
            max_trades_per_day=self.settings.max_trades_per_day, consecutive_losses=self.pnl.consecutive_losses,
            max_consecutive_losses=self.settings.max_consecutive_losses,
            working_orders=len(self.broker.working_orders()),
            gate_state=f"locked: {self.gate.lock_reason}" if self.gate.locked else "open",
            kill_state=self.kill.state.value, kill_detail=kr.describe() if kr else "",
            live_confirmed=self.live_confirmed, tick_size=self.instrument_of(sym).tick_size,
            trading_day=self.day, day_start_ns=start_ns, day_start_local=start_local,
            symbol_realized_pnl_usd=self.realized_by_symbol.get(sym, 0.0),
            account_open_pnl_usd=self.account_open_pnl_usd())

    # ------------------------------------------------------------------ automatic triggers
    def _loss_limit_reached(self) -> bool:
        """A symbol's realised + open loss of the day reached its limit, or the account's summed
        over every instrument reached the account limit (``trading.toml``)."""
        s = self.settings
        syms = set(self.instruments) | {p for p, q in self.broker.positions.items() if q.qty}
        for sym in syms:
            if self.realized_by_symbol.get(sym, 0.0) + min(0.0, self.open_pnl_usd(sym)) <= -s.limits_for(sym)[2]:
                return True
        return self.pnl.net_realized_usd + min(0.0, self.account_open_pnl_usd()) <= -s.account_loss_limit_usd

    def check_triggers(self, t_ns: int | None = None) -> str:
        """Fire the kill switch when an automatic trigger holds; returns the trigger name or "".

        Triggers: daily loss limit reached (realised + open; any symbol's own limit or the
        account's across instruments), consecutive-loss limit, connection
        lost with a position or working order for longer than ``disconnect_kill_s``, market data
        stale with a position open for longer than ``stale_kill_s``, counted from the latest data
        or, before any data, from the subscription (:meth:`watch_market`); with neither, the
        data is not stale (no clock to count from).

        While a kill-switch run is in progress the triggers are not checked (a request would
        only join that run).
        """
        if self.kill.state != KillState.ARMED or self.kill.busy:
            return ""
        t = self.clock.time_ns() if t_ns is None else t_ns
        s = self.settings
        held = [sym for sym, p in self.broker.positions.items() if p.qty]  # every instrument's position
        exposed = bool(held) or bool(self.broker.working_orders())
        trig = ""
        if self._loss_limit_reached():
            trig = "daily_loss_limit"
        elif self.pnl.consecutive_losses >= s.max_consecutive_losses:
            trig = "consecutive_losses"
        elif exposed and self._disconnected_since and t - self._disconnected_since > s.disconnect_kill_s * 1e9:
            trig = "connection_lost"
        elif self.broker.connected:
            for sym in held:  # the data of any instrument with a position gone stale
                m = self.market.get(sym)
                since = (m.last_data_ns or m.watch_since_ns) if m is not None else 0
                if since > 0 and t - since > s.stale_kill_s * 1e9:
                    trig = "stale_data"
                    break
        if trig:
            if self.loop is None:
                try:
                    self.loop = asyncio.get_running_loop()
                except RuntimeError:
                    return ""
            self.journal.record_event("auto_trigger", {"trigger": trig})
            self.kill.trigger(trig)
        return trig
