"""Signal outcomes as a paper fill would book them: each signal's bracket run on the one fill model.

A signal is a claim ("go long here, stop there, target there"). Its outcome is what paper mode
would have booked for it, so the tracker does not judge the signal against the tape with rules
of its own: it runs every bracket through a :class:`~app.sim.matching.FillEngine` (the engine of
the paper broker and of the built-in DTC server, ``docs/fill-model.md``) fed with the same market
events the analyzers saw.

For a signal at market time ``t`` with side ``s``, stop ``S`` and target ``T`` (ticks):

* **Decision delay**: a person confirms every order, so the bracket the signal's ticket sends
  (``TradingSession.ticket_from_signal``: a limit entry at the signal's entry price ``E``, a
  target limit at ``T``, a stop at ``S``, ``qty`` contracts, OCO children) is submitted
  ``delay`` after the signal: just before the first market event stamped later than
  ``t + delay`` (the book it meets is the book of that instant).
* **Entry**: the limit is marketable when the market is still at or better than ``E`` (it walks
  the book up to ``E``, no slippage on a limit); otherwise it rests and fills like any resting
  limit (a trade through it, or at it once the queue ahead has traded). An entry still unfilled
  when the last horizon (15 minutes after the decision) passes is cancelled: no trade.
* **Target**: a resting limit; it fills on a trade *through* it, or on trades *at* it once the
  displayed size that was ahead of it has traded (queue position). A touch alone does not fill.
* **Stop**: triggers on a trade at or through it, then fills as a market order from the trigger
  trade's price, plus ``stop_slippage_ticks`` against the trader (the fill engine's
  ``slippage_ticks``, which applies to market-type fills: here only the stop).
* **Result**: ``ticks = s x (exit - entry)`` per contract (average fill prices, float ticks) and
  ``net_usd = ticks x tick_value x qty - commission x (entry qty + exit qty)`` (USD per
  contract per side, as ``trading.toml``'s ``commission_per_contract_usd`` charges paper fills).
* **MFE / MAE** (ticks, >= 0): the best and worst ``s x (trade - entry)`` over the trades from
  the entry fill up to and including the trade that completed the exit, and the exit fill
  itself (a slipped stop is the worst moment); they stop there.
* **Moves** at 1, 5 and 15 minutes after the entry time ``t + delay``: ``s x (P - entry)`` with
  ``P`` the last trade at or before that horizon (the market after the decision, whether or
  not the bracket is still open). Without an entry fill they are measured from the signal's
  entry price.

The tracker knows nothing of the analyzers (``app/sim`` sits below ``app/analysis``): a signal
comes in as plain values (:meth:`OutcomeTracker.add`). The market layer feeds it with
:meth:`OutcomeTracker.on_market`; ``app.live.engine.AnalysisEngine`` owns one per instrument.
Per pattern, precision is ``target exits / decided`` over the signals whose reasons include it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from app.core.events import KIND_TRADE, Instrument
from app.core.orders import OrderType, Side
from app.sim.matching import EV_FILLED, EV_PARTIALLY_FILLED, EV_REJECTED, FillEngine, OrderReport

#: Horizons of the market moves after the entry time, ns (1, 5 and 15 minutes).
HORIZONS_NS = (60_000_000_000, 300_000_000_000, 900_000_000_000)

#: Events kept back from the fill engine while no bracket is working, at most (then handed over).
_BACKLOG_MAX = 200_000

#: Exit kinds (:attr:`SignalOutcome.first`): the bracket leg that closed the position.
EXIT_TARGET, EXIT_STOP = "target", "stop"


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    """What a signal's bracket booked (ticks in the signal's favour are positive).

    Attributes
    ----------
    signal_id : int
    move_1m, move_5m, move_15m : float or None
        Market move at 1, 5, 15 minutes after the entry time, ticks from the entry fill; ``None``
        until that horizon has passed in market time.
    mfe, mae : float
        Maximum favourable / adverse excursion from the entry fill to the exit, ticks (>= 0).
    first : str or None
        The exit kind: ``"target"`` or ``"stop"`` (the leg that filled first), ``None`` while the
        bracket is not entered or still open.
    complete : bool
        The exit is decided (or the entry found no liquidity) and every horizon has passed.
    ended_early : bool
        The data ended first.
    entry_price : float or None
        Average entry fill, float ticks (``None`` before the entry or when it was refused).
    entry_ts : int
        ns of the entry fill: the decision time ``signal + delay`` (0 before).
    exit_price : float or None
        Average exit fill, float ticks (``None`` while open).
    exit_ts : int
        ns of the fill that completed the exit (0 while open).
    ticks : float or None
        ``side x (exit - entry)`` per contract, after slippage; ``None`` while open.
    net_usd : float or None
        ``ticks x tick_value x qty - commission_per_contract x (entry + exit contracts)``, USD.
    entry_error : str
        Why there was no trade (the fill engine's refusal, or the entry limit not filled before
        the last horizon), else ``""``.
    """

    signal_id: int
    move_1m: float | None = None
    move_5m: float | None = None
    move_15m: float | None = None
    mfe: float = 0.0
    mae: float = 0.0
    first: str | None = None
    complete: bool = False
    ended_early: bool = False
    entry_price: float | None = None
    entry_ts: int = 0
    exit_price: float | None = None
    exit_ts: int = 0
    ticks: float | None = None
    net_usd: float | None = None
    entry_error: str = ""


class _Track:
    """One signal's bracket (mutable; the published record is ``out``)."""

    __slots__ = ("sid", "side", "entry", "stop", "target", "patterns", "due_ns", "ids", "entry_qty",
                 "exit_qty", "exit_px_qty", "exited", "refused", "live", "submitted", "out")

    def __init__(self, sid, side, entry, stop, target, patterns, due_ns):
        self.sid, self.side, self.entry = int(sid), int(side), int(entry)
        self.stop, self.target = int(stop), int(target)
        self.patterns = tuple(patterns)
        self.due_ns = int(due_ns)
        self.ids: dict[str, str] = {}  # server order id -> "entry" | "target" | "stop"
        self.entry_qty = 0.0
        self.exit_qty = 0.0
        self.exit_px_qty = 0.0  # sum of exit price x qty (average exit)
        self.exited = False
        self.refused = ""
        self.live = False  # entered and not yet exited: trades move MFE/MAE
        self.submitted = False
        self.out = SignalOutcome(signal_id=self.sid)


class OutcomeTracker:
    """Runs every signal's bracket on a :class:`~app.sim.matching.FillEngine` (rules: module docstring).

    Parameters
    ----------
    instrument : Instrument
        Symbol and tick value (USD per tick per contract).
    decision_delay_s : float
        Seconds between the signal and the order (a person confirms), >= 0.
    stop_slippage_ticks : int
        Ticks against the trader on the stop fill (the fill engine's ``slippage_ticks``), >= 0.
    commission_per_contract_usd : float
        USD per contract per side (paper mode charges 2.25).
    qty : float
        Contracts per bracket (the outcome is booked for this many; default 1).

    Attributes
    ----------
    outcomes : dict[int, SignalOutcome]
        Latest outcome per signal id.
    engine : FillEngine
        The fill engine the brackets run on (its account is the tracker's own, never a trader's).
    version : int
        Increases whenever an outcome changes (a cheap "anything new?" for the caller).

    Raises
    ------
    ValueError
        On a negative delay, slippage or commission, or ``qty <= 0``.
    """

    def __init__(self, instrument: Instrument, decision_delay_s: float = 2.0, stop_slippage_ticks: int = 1,
                 commission_per_contract_usd: float = 2.25, qty: float = 1.0):
        if not decision_delay_s >= 0:
            raise ValueError(f"outcome decision delay must be >= 0 s, got {decision_delay_s}")
        if int(stop_slippage_ticks) < 0:
            raise ValueError(f"outcome stop slippage must be >= 0 ticks, got {stop_slippage_ticks}")
        if not commission_per_contract_usd >= 0:
            raise ValueError(f"outcome commission must be >= 0 USD, got {commission_per_contract_usd}")
        if not qty > 0:
            raise ValueError(f"outcome quantity must be > 0 contracts, got {qty}")
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.tick_value = float(instrument.tick_value)
        self.delay_ns = int(round(decision_delay_s * 1e9))
        self.commission = float(commission_per_contract_usd)
        self.qty = float(qty)
        self.engine = FillEngine([instrument], account="outcomes", commission_per_contract=self.commission,
                                 slippage_ticks=int(stop_slippage_ticks), id_prefix="O")
        self.engine.add_listener(self._on_engine)
        self.outcomes: dict[int, SignalOutcome] = {}
        self.version = 0
        self._tracks: dict[int, _Track] = {}  # open (not complete) tracks
        self._by_order: dict[str, _Track] = {}
        self._pending: deque[_Track] = deque()  # not yet submitted, in due order
        self._working: dict[int, _Track] = {}  # submitted, not exited nor refused
        self._submitting: _Track | None = None
        self._backlog: list[np.ndarray] = []  # events not yet given to the fill engine (nothing working)
        self._backlog_n = 0
        self._patterns: dict[int, tuple] = {}
        self._last_ts = -1  # newest market event seen, ns
        self._last_px: float | None = None  # newest trade price seen, ticks
        self._precision: dict | None = {}

    # ------------------------------------------------------------------ input
    def add(self, signal_id: int, ts: int, side: int, entry: int, stop: int, target: int,
            patterns=()) -> None:
        """Follow a signal: its bracket is submitted ``decision_delay_s`` after ``ts``.

        Parameters
        ----------
        signal_id : int
            Unique id (the outcome's key).
        ts : int
            Signal time, ns (market time).
        side : int
            +1 long, -1 short.
        entry, stop, target : int
            The signal's bracket, ticks (``entry`` is the entry limit's price).
        patterns : iterable of str
            Names of the patterns behind the signal (for :meth:`precision`).

        Raises
        ------
        ValueError
            If ``side`` is not +1 / -1.
        """
        if side not in (1, -1):
            raise ValueError(f"signal side must be +1 or -1, got {side}")
        tr = _Track(signal_id, side, entry, stop, target, patterns, int(ts) + self.delay_ns)
        self._tracks[tr.sid] = tr
        self._patterns[tr.sid] = tr.patterns
        self.outcomes[tr.sid] = tr.out
        self._pending.append(tr)
        self._precision = None
        self.version += 1
        if self._last_ts > tr.due_ns:  # already past the decision time: submit now
            self._submit_due(self._last_ts)

    def on_market(self, events: np.ndarray) -> None:
        """Feed market events of the instrument (1-D ``EVENT_DTYPE``, time order).

        Brackets fall due between events (see the module docstring); fills, MFE/MAE and the
        horizons follow.
        """
        n = len(events)
        if n == 0:
            return
        ts = events["ts"]
        i = 0
        while i < n:
            j = n
            if self._pending:
                j = i + int(np.searchsorted(ts[i:], self._pending[0].due_ns, side="right"))
            if j > i:
                self._feed(events[i:j])
                i = j
            if i < n:
                self._submit_due(int(ts[i]))

    def _submit_due(self, next_ts: int) -> None:
        """Submit every pending bracket due before an event at ``next_ts``."""
        while self._pending and self._pending[0].due_ns < next_ts:
            self._flush()
            tr = self._pending.popleft()
            tr.submitted = True
            self._working[tr.sid] = tr
            side = Side.BUY if tr.side > 0 else Side.SELL
            self._submitting = tr  # the engine reports synchronously: _on_engine maps the new ids
            try:
                orders = self.engine.submit_bracket(self.symbol, side, self.qty, OrderType.LIMIT,
                                                    entry_price=tr.entry, stop_price=tr.stop,
                                                    target_price=tr.target)
            finally:
                self._submitting = None
            if not tr.ids:  # the whole bracket was refused before any order id existed
                tr.refused = orders[0].info or "bracket rejected"
            self._settle(tr)

    def _flush(self) -> None:
        """Hand the fill engine the events kept while nothing was working (its book catches up)."""
        if self._backlog:
            b = self._backlog[0] if len(self._backlog) == 1 else np.concatenate(self._backlog)
            self._backlog = []
            self._backlog_n = 0
            self.engine.on_market(self.symbol, b)

    def _feed(self, ev: np.ndarray) -> None:
        kinds = ev["kind"]
        tidx = np.flatnonzero(kinds == KIND_TRADE)
        if not self._working:  # nothing can fill: only the book matters, at the next submission
            self._backlog.append(ev)
            self._backlog_n += len(ev)
            if self._backlog_n >= _BACKLOG_MAX:
                self._flush()
        elif not len(tidx):
            self._flush()
            self.engine.on_market(self.symbol, ev)
        else:  # working brackets: one trade at a time, so MFE/MAE start and stop at the right trade
            self._flush()
            start = 0
            for j in tidx.tolist():
                self.engine.on_market(self.symbol, ev[start:j + 1])
                px = float(ev["price"][j])
                for tr in list(self._working.values()):
                    if tr.live:  # entered (on this trade or before)
                        out = tr.out
                        fav = tr.side * (px - out.entry_price)
                        if fav > out.mfe or -fav > out.mae:  # a new extreme (else nothing changes)
                            tr.out = replace(out, mfe=max(out.mfe, fav), mae=max(out.mae, -fav))
                    if tr.exited:
                        self._close(tr)
                start = j + 1
                if not self._working:
                    break
            if start < len(ev):
                self.engine.on_market(self.symbol, ev[start:])
        self._last_ts = max(self._last_ts, int(ev["ts"][-1]))
        self._horizons(ev, tidx)
        if len(tidx):
            self._last_px = float(ev["price"][tidx[-1]])

    # ------------------------------------------------------------------ fills
    def _on_engine(self, ev) -> None:
        if not isinstance(ev, OrderReport):
            return
        o = ev.order
        tr = self._by_order.get(o.server_order_id)
        if tr is None:
            tr = self._submitting
            if tr is None or not o.server_order_id:
                return
            # the bracket's reports arrive parent first, then the target limit, then the stop
            role = "entry" if not tr.ids else ("target" if o.order_type == OrderType.LIMIT else "stop")
            tr.ids[o.server_order_id] = role
            self._by_order[o.server_order_id] = tr
        role = tr.ids[o.server_order_id]
        if ev.kind == EV_REJECTED and role == "entry":
            tr.refused = ev.text or "entry rejected"
            return
        if ev.kind not in (EV_FILLED, EV_PARTIALLY_FILLED):
            return
        q, px = float(ev.fill_qty), float(ev.fill_price)
        if role == "entry":
            tr.entry_qty += q
            # the engine's clock is its last event; the order went in at the decision time
            tr.out = replace(tr.out, entry_price=float(o.avg_fill_price), entry_ts=max(int(ev.ts), tr.due_ns))
            tr.live = True
            return
        tr.exit_qty += q
        tr.exit_px_qty += px * q
        first = tr.out.first or role
        tr.out = replace(tr.out, first=first)
        if tr.exit_qty >= tr.entry_qty - 1e-9:
            ex = tr.exit_px_qty / tr.exit_qty
            ticks = tr.side * (ex - tr.out.entry_price)
            net = ticks * self.tick_value * tr.exit_qty - self.commission * (tr.entry_qty + tr.exit_qty)
            tr.out = replace(tr.out, exit_price=ex, exit_ts=max(int(ev.ts), tr.due_ns), ticks=ticks, net_usd=net,
                             mfe=max(tr.out.mfe, ticks), mae=max(tr.out.mae, -ticks))  # the exit fill counts
            tr.exited = True

    def _close(self, tr: _Track) -> None:
        tr.live = False
        self._working.pop(tr.sid, None)
        self._settle(tr)

    # ------------------------------------------------------------------ bookkeeping
    def _settle(self, tr: _Track) -> None:
        """Publish ``tr.out`` when it changed; drop the track once complete."""
        if tr.exited or tr.refused:  # nothing working any more (an exit at submission: no trade between)
            tr.live = False
            self._working.pop(tr.sid, None)
        o = tr.out
        if tr.refused and not o.entry_error:
            o = replace(o, entry_error=tr.refused)
        decided = tr.exited or bool(tr.refused)
        moves = (o.move_1m, o.move_5m, o.move_15m)
        complete = decided and all(m is not None for m in moves)
        if complete != o.complete:
            o = replace(o, complete=complete)
        tr.out = o
        if self.outcomes.get(tr.sid) != o:
            self.outcomes[tr.sid] = o
            self.version += 1
            self._precision = None
        if complete:
            self._tracks.pop(tr.sid, None)
            for sid in [k for k, v in self._by_order.items() if v is tr]:
                del self._by_order[sid]

    def _horizons(self, ev: np.ndarray, tidx: np.ndarray) -> None:
        """Fill in the moves whose horizon this batch passed (and publish every change)."""
        if not self._tracks:
            return
        t_ts = ev["ts"][tidx]
        t_px = ev["price"][tidx].astype(np.float64)
        newest = self._last_ts
        for tr in list(self._tracks.values()):
            if not tr.submitted:
                continue
            o = tr.out
            moves = [o.move_1m, o.move_5m, o.move_15m]
            ref = o.entry_price if o.entry_price is not None else float(tr.entry)
            entry_ns = tr.due_ns
            if o.entry_price is None and not tr.refused and newest > entry_ns + HORIZONS_NS[-1]:
                parent = next(k for k, v in tr.ids.items() if v == "entry")
                self.engine.cancel(parent)  # its children go with it
                tr.refused = "entry limit not filled before the last horizon (cancelled)"
            for h, hn in enumerate(HORIZONS_NS):
                if moves[h] is None and newest > entry_ns + hn:
                    k = int(np.searchsorted(t_ts, entry_ns + hn, side="right"))
                    p = float(t_px[k - 1]) if k > 0 else self._last_px  # the price before this batch
                    moves[h] = 0.0 if p is None else tr.side * (p - ref) + 0.0  # + 0.0: no -0.0
            if moves != [o.move_1m, o.move_5m, o.move_15m]:
                tr.out = replace(o, move_1m=moves[0], move_5m=moves[1], move_15m=moves[2])
            self._settle(tr)

    # ------------------------------------------------------------------ results
    def finish(self) -> None:
        """The data ended: every outcome not complete is marked ``ended_early``."""
        for tr in list(self._tracks.values()):
            o = replace(tr.out, ended_early=True)
            tr.out = o
            self.outcomes[tr.sid] = o
        self._tracks.clear()
        self._pending.clear()
        self._working.clear()
        self.engine.cancel_all()
        self.version += 1
        self._precision = None

    def new_session(self) -> None:
        """The market starts again at an earlier time (a replay restarted): the outcomes not
        complete are marked ``ended_early`` (:meth:`finish`), the finished ones stay, and the
        events kept for the fill engine and the newest market time are forgotten, so the new
        session's signals are followed on its own events."""
        self.finish()
        self._backlog = []
        self._backlog_n = 0
        self._by_order.clear()
        self._last_ts = -1
        self._last_px = None

    def precision(self) -> dict[str, tuple[int, int, float]]:
        """Per pattern name: ``(decided, target exits, precision 0..1)`` (cached until a change)."""
        if self._precision is not None:
            return self._precision
        acc: dict[str, list[int]] = {}
        for sid, o in self.outcomes.items():
            for name in set(self._patterns[sid]):
                a = acc.setdefault(name, [0, 0])
                if o.first is not None:
                    a[0] += 1
                    a[1] += o.first == EXIT_TARGET
        self._precision = {k: (d, w, (w / d if d else 0.0)) for k, (d, w) in sorted(acc.items())}
        return self._precision
