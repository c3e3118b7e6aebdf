"""The risk gate: the only path from a confirmed ticket to a broker.

Rules are small classes with one method, ``check(ctx) -> Verdict`` (the vnpy style the design
card asks for). The gate runs every rule on an :class:`OrderContext` and allows the order only
when all pass; a refusal names the rule and the values that made it refuse. Orders whose intent
is ``reduce`` (flattening, kill switch) only face the rules that make sense for them: a locked
gate or a daily loss limit must never stop the trader from getting flat.

Every decision taken through :meth:`RiskGate.check` is journaled before the caller may send.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, replace
from typing import Iterable, NamedTuple, Sequence

from app.config.trading import MODE_LIVE, TradingSettings, parse_hhmm
from app.core.clock import SYSTEM_CLOCK, Clock
from app.trading.orders import INTENT_OPEN, INTENT_REDUCE, ROLE_ENTRY, WorkingOrder

try:  # zoneinfo needs the tzdata package on Windows
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover
    ZoneInfo = None  # type: ignore


@dataclass(frozen=True, slots=True)
class OrderContext:
    """Everything a rule may look at for one order decision.

    Attributes
    ----------
    symbol : str
    side : int
        +1 buy, -1 sell.
    qty : int
        Contracts of the order (the entry of a bracket).
    intent : str
        ``open`` (may add risk) or ``reduce`` (only reduces a position: flatten, kill switch).
    risk_usd : float or None
        Entry-to-stop loss if the stop fills, USD (None without a stop).
    position_qty : int
        Current signed position in ``symbol``, contracts.
    pending_qty : int
        Signed contracts of working entry orders on this order's side not filled yet (they may add
        to the position; see :func:`pending_entry_qty`).
    realized_pnl_usd, open_pnl_usd : float
        Today's realised P&L (after commissions) and the open P&L, USD.
    trades_today : int
        Opening tickets sent today.
    consecutive_losses : int
        Losing round trips in a row (reset by a winner).
    now_ns : int
        Wall time of the decision, ns UTC (0: the rules read their clock).
    last_data_ns : int
        Wall time the last market data arrived, ns UTC (0 = never), from the same clock as
        ``now_ns`` (the trading session's).
    mode : str
        ``paper``, ``sim`` or ``live``.
    live_confirmed : bool
        The trader typed the live confirmation this session.
    kill_locked : bool
        The kill switch holds the gate locked.
    account_contracts_other : int
        Contracts held or working in the account's **other** instruments (each symbol's
        ``abs(position)`` plus its unfilled entries, both sides: the worst case), for the
        account-wide contract limit (0 with one instrument).
    account_realized_pnl_usd, account_open_pnl_usd : float or None
        Today's realised P&L and open P&L summed over every instrument, USD (None: the same as
        ``realized_pnl_usd`` / ``open_pnl_usd``, one instrument).
    ticket_symbol : str
        The instrument the ticket belongs to (the one it was opened from); "" = not checked.
    tradable : bool
        ``symbol`` is one of the session's instruments.

    Notes
    -----
    ``realized_pnl_usd`` is this symbol's realised P&L of the day (with one instrument: the
    account's).
    """

    symbol: str
    side: int
    qty: int
    intent: str = INTENT_OPEN
    risk_usd: float | None = None
    position_qty: int = 0
    pending_qty: int = 0
    realized_pnl_usd: float = 0.0
    open_pnl_usd: float = 0.0
    trades_today: int = 0
    consecutive_losses: int = 0
    now_ns: int = 0
    last_data_ns: int = 0
    mode: str = "paper"
    live_confirmed: bool = False
    kill_locked: bool = False
    account_contracts_other: int = 0
    account_realized_pnl_usd: float | None = None
    account_open_pnl_usd: float | None = None
    ticket_symbol: str = ""
    tradable: bool = True

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


def pending_entry_qty(orders: Iterable[WorkingOrder], symbol: str, side: int) -> int:
    """Signed contracts that working orders may still add to the position in ``symbol`` on ``side``.

    Counts the unfilled remainder (``qty - filled_qty``) of working orders whose role is
    ``entry`` and whose side is ``side``. Exits (``stop``, ``target``, bracket children) and
    ``flatten`` orders only take a position down, so they never count, and entries on the other
    side never offset: either set may fill, so the worst case on ``side`` is what the
    :class:`MaxPositionContracts` rule must see. An order adopted after a restart whose role
    neither the journal nor the venue's parent/OCO links tell is an entry
    (:class:`app.trading.broker.Broker`), the conservative choice.

    Parameters
    ----------
    orders : iterable of WorkingOrder
        The broker's working orders.
    symbol : str
    side : int
        +1 buy, -1 sell: the side of the order being decided.

    Returns
    -------
    int
        Contracts, signed like ``side`` (0 when none).
    """
    side = 1 if side > 0 else -1
    n = sum(o.request.qty - o.filled_qty for o in orders
            if o.request.symbol == symbol and o.request.role == ROLE_ENTRY and o.request.side == side)
    return side * max(0, int(n))


class Verdict(NamedTuple):
    """One rule's answer. ``message`` names the rule's values when it refuses.

    A named tuple (not a dataclass): eleven are made per order, so construction cost counts.
    """

    allowed: bool
    rule: str
    message: str = ""
    values: dict = {}


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer for one order: allowed, or the first refusal (with all verdicts)."""

    allowed: bool
    rule: str  # "" when allowed, else the refusing rule
    message: str
    intent: str
    verdicts: tuple[Verdict, ...]
    context: dict

    @property
    def refusals(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not v.allowed)


class Rule:
    """Base of the risk rules. Subclasses set ``name`` and implement :meth:`check`.

    ``applies_to_reduce`` says whether the rule also judges position-reducing orders.
    """

    name = "rule"
    applies_to_reduce = False

    def check(self, ctx: OrderContext) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    def ok(self, **values) -> Verdict:
        return Verdict(True, self.name, "", values)

    def refuse(self, message: str, **values) -> Verdict:
        return Verdict(False, self.name, f"{self.name}: {message}", values)


class _PerSymbol:
    """A limit with per-symbol overrides (``[trading.instruments."<symbol>"]``)."""

    def __init__(self, limit, per_symbol: dict | None = None):
        self.limit = limit
        self.per_symbol = dict(per_symbol or {})

    def limit_for(self, symbol: str):
        return self.per_symbol.get(symbol, self.limit)


class MaxContractsPerOrder(_PerSymbol, Rule):
    """Refuse an order of more than ``limit`` contracts (``per_symbol[symbol]`` where given)."""

    name = "max_contracts_per_order"

    def __init__(self, limit: int, per_symbol: dict | None = None):
        super().__init__(int(limit), {k: int(v) for k, v in (per_symbol or {}).items()})

    def check(self, ctx):
        limit = self.limit_for(ctx.symbol)
        if ctx.qty > limit:
            return self.refuse(f"order of {ctx.qty} contracts exceeds the limit of {limit} ({ctx.symbol})",
                               qty=ctx.qty, limit=limit)
        return self.ok(qty=ctx.qty, limit=limit)


class MaxPositionContracts(_PerSymbol, Rule):
    """Refuse when position + working entries + this order could exceed ``limit`` contracts
    (``per_symbol[symbol]`` where given)."""

    name = "max_position_contracts"

    def __init__(self, limit: int, per_symbol: dict | None = None):
        super().__init__(int(limit), {k: int(v) for k, v in (per_symbol or {}).items()})

    def check(self, ctx):
        limit = self.limit_for(ctx.symbol)
        after = abs(ctx.position_qty + ctx.pending_qty + ctx.side * ctx.qty)
        if after > limit:
            return self.refuse(
                f"{ctx.symbol} position would reach {after} contracts (position {ctx.position_qty:+d}, working "
                f"{ctx.pending_qty:+d}, order {ctx.side * ctx.qty:+d}), limit {limit}",
                position_after=after, limit=limit)
        return self.ok(position_after=after, limit=limit)


class AccountMaxContracts(Rule):
    """Refuse when the account's contracts across instruments could exceed ``limit``: the other
    instruments' (``ctx.account_contracts_other``) plus this symbol's position, working entries
    and this order. ``limit`` 0 = no account-wide limit."""

    name = "account_max_contracts"

    def __init__(self, limit: int):
        self.limit = int(limit)

    def check(self, ctx):
        here = abs(ctx.position_qty + ctx.pending_qty + ctx.side * ctx.qty)
        total = int(ctx.account_contracts_other) + here
        if self.limit and total > self.limit:
            return self.refuse(f"the account would hold {total} contracts across instruments ({ctx.symbol} {here}, "
                               f"others {ctx.account_contracts_other}), limit {self.limit}",
                               account_contracts=total, limit=self.limit)
        return self.ok(account_contracts=total, limit=self.limit)


class MaxRiskPerTrade(Rule):
    """Refuse when entry-to-stop risk exceeds ``limit_usd`` (or there is no stop and one is required)."""

    name = "max_risk_per_trade"

    def __init__(self, limit_usd: float, require_stop: bool = True):
        self.limit_usd = float(limit_usd)
        self.require_stop = bool(require_stop)

    def check(self, ctx):
        if ctx.risk_usd is None:
            if self.require_stop:
                return self.refuse(f"no protective stop: risk is unbounded (limit {self.limit_usd:.2f} USD)",
                                   risk_usd=None, limit_usd=self.limit_usd)
            return self.ok(risk_usd=None, limit_usd=self.limit_usd)
        if ctx.risk_usd > self.limit_usd:
            return self.refuse(f"risk {ctx.risk_usd:.2f} USD exceeds the limit of {self.limit_usd:.2f} USD",
                               risk_usd=ctx.risk_usd, limit_usd=self.limit_usd)
        return self.ok(risk_usd=ctx.risk_usd, limit_usd=self.limit_usd)


class DailyLossLimit(_PerSymbol, Rule):
    """Refuse new risk in a symbol once its realised + open P&L of the day is at or below
    ``-limit_usd`` (``per_symbol[symbol]`` where given)."""

    name = "daily_loss_limit"

    def __init__(self, limit_usd: float, per_symbol: dict | None = None):
        super().__init__(float(limit_usd), {k: float(v) for k, v in (per_symbol or {}).items()})

    @property
    def limit_usd(self) -> float:
        return self.limit

    def check(self, ctx):
        limit = self.limit_for(ctx.symbol)
        pnl = ctx.realized_pnl_usd + min(0.0, ctx.open_pnl_usd)
        if pnl <= -limit:
            return self.refuse(f"day P&L {pnl:.2f} USD has reached the daily loss limit of {limit:.2f} USD",
                               day_pnl_usd=pnl, limit_usd=limit)
        return self.ok(day_pnl_usd=pnl, limit_usd=limit)


class AccountDailyLossLimit(Rule):
    """Refuse new risk once the realised + open P&L of the day summed over every instrument is
    at or below ``-limit_usd``."""

    name = "account_daily_loss_limit"

    def __init__(self, limit_usd: float):
        self.limit_usd = float(limit_usd)

    def check(self, ctx):
        real = ctx.realized_pnl_usd if ctx.account_realized_pnl_usd is None else ctx.account_realized_pnl_usd
        opn = ctx.open_pnl_usd if ctx.account_open_pnl_usd is None else ctx.account_open_pnl_usd
        pnl = real + min(0.0, opn)
        if pnl <= -self.limit_usd:
            return self.refuse(f"the account's day P&L {pnl:.2f} USD across instruments has reached the account "
                               f"daily loss limit of {self.limit_usd:.2f} USD", day_pnl_usd=pnl,
                               limit_usd=self.limit_usd)
        return self.ok(day_pnl_usd=pnl, limit_usd=self.limit_usd)


class TicketInstrument(Rule):
    """An order goes only to the instrument its ticket belongs to (the one it was opened from),
    and only to an instrument of the session."""

    name = "ticket_instrument"

    def check(self, ctx):
        if ctx.ticket_symbol and ctx.ticket_symbol != ctx.symbol:
            return self.refuse(f"the ticket belongs to {ctx.ticket_symbol}; it cannot send an order for {ctx.symbol}",
                               ticket_symbol=ctx.ticket_symbol, symbol=ctx.symbol)
        if not ctx.tradable:
            return self.refuse(f"{ctx.symbol} is not one of the session's instruments", symbol=ctx.symbol)
        return self.ok(symbol=ctx.symbol)


class MaxTradesPerDay(Rule):
    """Refuse once ``limit`` opening tickets were sent today."""

    name = "max_trades_per_day"

    def __init__(self, limit: int):
        self.limit = int(limit)

    def check(self, ctx):
        if ctx.trades_today >= self.limit:
            return self.refuse(f"{ctx.trades_today} trades today, limit {self.limit}",
                               trades_today=ctx.trades_today, limit=self.limit)
        return self.ok(trades_today=ctx.trades_today, limit=self.limit)


class ConsecutiveLosses(Rule):
    """Refuse after ``limit`` losing round trips in a row."""

    name = "consecutive_losses"

    def __init__(self, limit: int):
        self.limit = int(limit)

    def check(self, ctx):
        if ctx.consecutive_losses >= self.limit:
            return self.refuse(f"{ctx.consecutive_losses} losses in a row, limit {self.limit}",
                               consecutive_losses=ctx.consecutive_losses, limit=self.limit)
        return self.ok(consecutive_losses=ctx.consecutive_losses, limit=self.limit)


class TradingHours(Rule):
    """Refuse outside ``start``..``end`` (``HH:MM``, local time of ``tz``; start == end: always open).

    A window whose end is before its start spans midnight (e.g. 17:00-16:00 for Globex).

    Parameters
    ----------
    start, end : str
        ``HH:MM`` local times of ``tz``.
    tz : str
        IANA time zone name.
    clock : app.core.clock.Clock
        Wall clock read when the context carries no ``now_ns`` (default the system clock).

    Raises
    ------
    ValueError
        A bad ``HH:MM`` text or an unknown time zone (names the setting).
    """

    name = "trading_hours"

    def __init__(self, start: str, end: str, tz: str = "America/Chicago", clock: Clock = SYSTEM_CLOCK):
        self.clock = clock
        self.start = parse_hhmm(start, "trading.trading_start")
        self.end = parse_hhmm(end, "trading.trading_end")
        self.start_text, self.end_text, self.tz_name = start, end, tz
        if ZoneInfo is None:  # pragma: no cover
            self.tz = _dt.timezone.utc
        else:
            try:
                self.tz = ZoneInfo(tz)
            except Exception as exc:
                raise ValueError(f"trading.trading_timezone: unknown time zone {tz!r}") from exc

    def check(self, ctx):
        if self.start == self.end:
            return self.ok(window="always")
        t = _dt.datetime.fromtimestamp((ctx.now_ns or self.clock.time_ns()) / 1e9, self.tz)
        m = t.hour * 60 + t.minute
        inside = self.start <= m < self.end if self.start < self.end else (m >= self.start or m < self.end)
        values = {"local_time": t.strftime("%H:%M"), "window": f"{self.start_text}-{self.end_text} {self.tz_name}"}
        if not inside:
            return self.refuse(f"{values['local_time']} is outside trading hours {values['window']}", **values)
        return self.ok(**values)


class StaleMarketData(Rule):
    """Refuse when the last market data is older than ``max_age_ms`` (or none arrived yet).

    The age is ``ctx.now_ns - ctx.last_data_ns`` (wall ns of one clock); an age equal to the
    limit still passes, one nanosecond more refuses.

    Parameters
    ----------
    max_age_ms : int
        Oldest market data allowed, ms.
    clock : app.core.clock.Clock
        Wall clock read when the context carries no ``now_ns`` (default the system clock).
    """

    name = "stale_market_data"

    def __init__(self, max_age_ms: int, clock: Clock = SYSTEM_CLOCK):
        self.max_age_ms = int(max_age_ms)
        self.clock = clock

    def check(self, ctx):
        if ctx.last_data_ns <= 0:
            return self.refuse("no market data received yet", age_ms=None, limit_ms=self.max_age_ms)
        age_ns = (ctx.now_ns or self.clock.time_ns()) - ctx.last_data_ns
        age_ms = age_ns / 1e6
        if age_ns > self.max_age_ms * 1_000_000:
            return self.refuse(f"market data is {age_ms:.0f} ms old, limit {self.max_age_ms} ms",
                               age_ms=round(age_ms, 1), limit_ms=self.max_age_ms)
        return self.ok(age_ms=round(age_ms, 1), limit_ms=self.max_age_ms)


class LiveModeNotConfirmed(Rule):
    """Refuse every live-mode order until the trader typed the live confirmation."""

    name = "live_mode_not_confirmed"
    applies_to_reduce = False  # flattening a live position is always allowed

    def check(self, ctx):
        if ctx.mode == MODE_LIVE and not ctx.live_confirmed:
            return self.refuse("live mode needs the typed confirmation first", mode=ctx.mode)
        return self.ok(mode=ctx.mode, live_confirmed=ctx.live_confirmed)


class KillSwitchEngaged(Rule):
    """Refuse every opening order while the kill switch holds the gate locked."""

    name = "kill_switch_engaged"

    def check(self, ctx):
        if ctx.kill_locked:
            return self.refuse("the kill switch is engaged; unlock it (with confirmation) to trade again",
                               kill_locked=True)
        return self.ok(kill_locked=False)


class ReduceOnly(Rule):
    """For ``reduce`` orders: the order must not be larger than the position it reduces."""

    name = "reduce_only"
    applies_to_reduce = True

    def check(self, ctx):
        if ctx.intent != INTENT_REDUCE:
            return self.ok()
        if ctx.position_qty == 0 or ctx.side * ctx.position_qty > 0 or ctx.qty > abs(ctx.position_qty):
            return self.refuse(f"a reducing order of {ctx.side * ctx.qty:+d} does not reduce position "
                               f"{ctx.position_qty:+d}", position_qty=ctx.position_qty, order=ctx.side * ctx.qty)
        return self.ok(position_qty=ctx.position_qty)


def default_rules(s: TradingSettings, clock: Clock = SYSTEM_CLOCK) -> list[Rule]:
    """The rule set for ``s``, in the order refusals are reported.

    ``clock`` is the wall clock the time rules (trading hours, stale data) read when an
    :class:`OrderContext` carries no ``now_ns``. Per-symbol limits come from
    ``[trading.instruments."<symbol>"]`` (:meth:`TradingSettings.limits_for`), the account-wide
    ones from ``account_max_contracts`` and ``account_daily_loss_limit_usd``.
    """
    per = {sym: s.limits_for(sym) for sym in s.instruments}
    return [
        KillSwitchEngaged(),
        LiveModeNotConfirmed(),
        TicketInstrument(),
        DailyLossLimit(s.daily_loss_limit_usd, {k: v[2] for k, v in per.items()}),
        AccountDailyLossLimit(s.account_loss_limit_usd),
        ConsecutiveLosses(s.max_consecutive_losses),
        MaxTradesPerDay(s.max_trades_per_day),
        TradingHours(s.trading_start, s.trading_end, s.trading_timezone, clock),
        StaleMarketData(s.stale_data_ms, clock),
        MaxContractsPerOrder(s.max_contracts_per_order, {k: v[0] for k, v in per.items()}),
        MaxPositionContracts(s.max_position_contracts, {k: v[1] for k, v in per.items()}),
        AccountMaxContracts(s.account_max_contracts),
        MaxRiskPerTrade(s.max_risk_per_trade_usd, s.require_stop),
        ReduceOnly(),
    ]


class RiskGate:
    """Runs the rules on every order; lockable by the kill switch; journals every decision.

    Parameters
    ----------
    settings : TradingSettings
    journal : app.trading.journal.Journal, optional
        Where :meth:`check` records each decision (before returning it).
    rules : sequence of Rule, optional
        Default :func:`default_rules` (on ``clock``).
    clock : app.core.clock.Clock, optional
        Wall clock of the default rules (default the system clock; the trading session passes
        its own).
    """

    def __init__(self, settings: TradingSettings, journal=None, rules: Sequence[Rule] | None = None,
                 clock: Clock = SYSTEM_CLOCK):
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self.rules = list(rules) if rules is not None else default_rules(settings, clock)
        self._locked = False
        self.lock_reason = ""
        self._mutex = threading.Lock()

    # ----------------------------------------------------------- kill switch lock
    @property
    def locked(self) -> bool:
        """True while the kill switch holds the gate (opening orders refused)."""
        return self._locked

    def lock(self, reason: str) -> None:
        """Refuse every opening order from now on (kill switch)."""
        with self._mutex:
            self._locked = True
            self.lock_reason = reason

    def unlock(self) -> None:
        """Allow opening orders again (only the kill switch calls this, after a typed confirmation)."""
        with self._mutex:
            self._locked = False
            self.lock_reason = ""

    # ----------------------------------------------------------- decisions
    def evaluate(self, ctx: OrderContext) -> GateDecision:
        """Run the rules without journaling (the ticket's preview)."""
        if self._locked and not ctx.kill_locked:
            ctx = replace(ctx, kill_locked=True)
        reduce = ctx.intent == INTENT_REDUCE
        verdicts = tuple(r.check(ctx) for r in self.rules if (r.applies_to_reduce or not reduce))
        refusals = [v for v in verdicts if not v.allowed]
        if refusals:
            first = refusals[0]
            return GateDecision(False, first.rule, first.message, ctx.intent, verdicts, ctx.to_dict())
        return GateDecision(True, "", "allowed", ctx.intent, verdicts, ctx.to_dict())

    def check(self, ctx: OrderContext, ticket_id: int = 0) -> GateDecision:
        """Run the rules and journal the decision (committed before this returns)."""
        d = self.evaluate(ctx)
        if self.journal is not None:
            ctx_values = dict(d.context)
            ctx_values["verdicts"] = [
                {"rule": v.rule, "allowed": v.allowed, "values": v.values} for v in d.verdicts
            ]
            self.journal.record_decision(ticket_id, replace(d, context=ctx_values))
        return d
