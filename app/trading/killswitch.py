"""The kill switch: lock, cancel everything, flatten everything, verify with the venue's reports.

State machine (design card section 5, issues 6 and 12)::

    ARMED --engage(trigger)--> ENGAGED --venue reports flat--> VERIFIED_FLAT --unlock("UNLOCK")--> ARMED
                                  |                                                ^
                                  +--timeout: still open--> FAILED --retry()-------+ (ENGAGED again)
                                                              |
                                                              +--unlock("UNLOCK")--> ARMED

One run at a time (issue 12 item 1): :meth:`KillSwitch.trigger`, :meth:`KillSwitch.engage`,
:meth:`KillSwitch.retry` and every automatic trigger start a run only when none is in
progress, otherwise they join it (the same asyncio task, the same :class:`KillResult`).

A run locks the risk gate first (no opening order passes from that instant), journals the
event with what it is about to cancel (committed before anything is sent), writes a cancel for
every working order, then reads the broker's **own** reports (DTC ``OPEN_ORDERS_REQUEST`` and
``CURRENT_POSITIONS_REQUEST``, written back to back). A position is flattened only once the
venue reports no working order but this switch's flatten orders, with the quantity the venue
reports then: no stop or target can fill after it, so the flatten cannot flip the position.
At most one flatten order per symbol is in flight; a new one is sent only when the venue
reported the previous one ended (filled in part, cancelled, rejected) *before* the read that
still shows a position. A still-working order gets a new cancel every 0.5 s. The run ends
VERIFIED_FLAT when the venue reports nothing working and every position zero, FAILED when
``kill_verify_timeout_s`` (counted from the click, as a whole) passes first; each read of the
venue may take what is left of it (a slow link answers late, issue 12 item 6), a failed read is
retried, and a FAILED result says which: still open at the venue (its latest report) or no
complete answer in time. The gate stays locked in every state except ARMED; unlocking needs
the typed phrase.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from enum import Enum

from app.core.clock import SYSTEM_CLOCK, Clock
from app.trading.broker import BrokerError
from app.config.trading import UNLOCK_CONFIRM_PHRASE
from app.core.orders import OrderStatus
from app.trading.orders import ROLE_FLATTEN

log = logging.getLogger(__name__)


class KillState(str, Enum):
    ARMED = "armed"
    ENGAGED = "engaged"
    VERIFIED_FLAT = "verified_flat"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class KillResult:
    """Outcome of one engage/retry.

    Attributes
    ----------
    state : KillState
        VERIFIED_FLAT or FAILED.
    trigger : str
        ``manual``, ``hotkey``, ``daily_loss_limit``, ``consecutive_losses``, ``connection_lost``,
        ``stale_data``, ``retry``.
    open_orders : tuple of str
        ``"<ClientOrderID> <state> <side> <qty> <symbol>"`` of orders the venue still reports.
    open_positions : tuple of str
        ``"<symbol> <qty>"`` of non-zero positions the venue still reports.
    cancels_sent, flattens_sent : int
    elapsed_s : float
    error : str
        Why the verification could not complete (e.g. not connected), else "".
    failure : str
        Why a FAILED run failed (issue 12 item 6): ``"still_open"`` (the venue's latest report
        shows the orders / positions listed), ``"no_answer"`` (the whole
        ``kill_verify_timeout_s`` passed without a complete report from the venue; ``error``
        says what the last request got), ``"error"`` (the switch itself failed; ``error``);
        ``""`` when verified flat.
    timeout_s : float
        The ``kill_verify_timeout_s`` the run had, s.
    journal_error : str
        Why the journal could not record this run (its records went to the fallback file, see
        :attr:`app.trading.journal.Journal.fallback_path`), else "". The run acted regardless.
    """

    state: KillState
    trigger: str
    open_orders: tuple = ()
    open_positions: tuple = ()
    cancels_sent: int = 0
    flattens_sent: int = 0
    elapsed_s: float = 0.0
    error: str = ""
    failure: str = ""
    timeout_s: float = 0.0
    journal_error: str = ""

    def describe(self) -> str:
        """One line for the trader."""
        journal = f" | JOURNAL FAILED: {self.journal_error}" if self.journal_error else ""
        if self.state == KillState.VERIFIED_FLAT:
            return (f"VERIFIED FLAT ({self.cancels_sent} cancels, {self.flattens_sent} flatten orders, "
                    f"{self.elapsed_s:.2f} s){journal}")
        parts = []
        if self.open_orders:
            parts.append("working orders: " + "; ".join(self.open_orders))
        if self.open_positions:
            parts.append("positions: " + "; ".join(self.open_positions))
        if self.error:
            parts.append(self.error)
        if self.failure == "no_answer":
            return (f"FAILED - no complete answer from the venue within {self.timeout_s:g} s "
                    f"(kill_verify_timeout_s): " + (" | ".join(parts) or "unknown") + journal)
        if self.failure == "error":
            return "FAILED - " + (" | ".join(parts) or "unknown") + journal
        return "FAILED - still open at the venue: " + (" | ".join(parts) or "unknown") + journal


@dataclass
class KillSwitch:
    """The kill switch of one :class:`~app.trading.session.TradingSession`.

    Use :meth:`engage` (async) or :meth:`trigger` (schedules it on the running loop).

    Parameters
    ----------
    session : TradingSession
        The session whose gate, broker and journal the switch uses.
    poll_s : float
        Real-time pause between two reads of the venue's reports while verifying, s.
    clock : app.core.clock.Clock
        Monotonic clock of the verification deadline (``kill_verify_timeout_s``), of the
        0.5 s re-send interval and of ``KillResult.elapsed_s`` (default the system clock;
        the session passes its own). With a :class:`~app.core.clock.ManualClock` the switch
        gives up only when the clock has passed the deadline, however long it really took.
    """

    session: object
    poll_s: float = 0.05
    clock: Clock = SYSTEM_CLOCK
    state: KillState = KillState.ARMED
    last_result: KillResult | None = None
    trigger_name: str = ""
    listeners: list = field(default_factory=list)
    _task: asyncio.Task | None = None
    _flatten_cid: dict = field(default_factory=dict)  # symbol -> ClientOrderID of the last flatten sent
    #: why the journal could not record the current (or last) run, "" when it could
    journal_error: str = ""

    # ----------------------------------------------------------------- observers
    def add_listener(self, fn) -> None:
        """``fn(state: KillState, result: KillResult | None)`` on every transition."""
        self.listeners.append(fn)

    def _set(self, state: KillState, result: KillResult | None = None) -> None:
        self.state = state
        if result is not None:
            self.last_result = result
        for fn in list(self.listeners):
            try:
                fn(state, result)
            except Exception:
                log.exception("kill switch listener failed")

    @property
    def locked(self) -> bool:
        """True in every state but ARMED."""
        return self.state != KillState.ARMED

    @property
    def busy(self) -> bool:
        """True while a run is in progress (a new request joins it)."""
        return self._task is not None and not self._task.done()

    @property
    def status(self) -> str:
        """The state as the trader reads it: ``ENGAGED``, ``VERIFIED FLAT``..., with
        ``", JOURNAL FAILED"`` appended while the run's records could not reach the journal."""
        text = self.state.value.upper().replace("_", " ")
        return text + ", JOURNAL FAILED" if self.journal_error else text

    def _journal(self, state: str, trigger: str, detail: dict) -> None:
        """Journal a transition; a journal failure is shown, never raised (the switch acts regardless)."""
        j = self.session.journal
        try:
            with j.best_effort():
                j.record_kill_switch(state, trigger, detail)
        except Exception as exc:  # the journal must never stop the kill switch
            self._journal_failed(f"{type(exc).__name__}: {exc}")
            return
        self._check_journal()

    def _check_journal(self) -> None:
        reason = self.session.journal.failure
        if reason:
            self._journal_failed(reason)

    def _journal_failed(self, reason: str) -> None:
        first = not self.journal_error
        self.journal_error = f"{reason} (records kept in {self.session.journal.fallback_path})" \
            if "fallback file" not in reason else reason
        if first:
            log.error("kill switch: the journal failed, the switch goes on: %s", self.journal_error)
            try:
                self.session.problem(f"kill switch {self.status}: {self.journal_error}")
            except Exception:
                log.exception("kill switch: cannot report the journal failure")
            self._set(self.state)

    # ----------------------------------------------------------------- actions
    def trigger(self, trigger: str = "manual") -> asyncio.Task:
        """Start a kill-switch run on the running loop, or join the one in progress.

        Single flight (issue 12 item 1): while a run is in progress every request (button,
        hotkey, Retry, automatic trigger) gets that run's task, so two requests never send two
        sets of cancels and flattens.

        Parameters
        ----------
        trigger : str
            Why (``manual``, ``hotkey``, ``retry``, ``stale_data`` ...); a joining request's
            name is only logged (the run keeps the name of the request that started it).

        Returns
        -------
        asyncio.Task
            Resolves to the run's :class:`KillResult` (it never raises).

        Raises
        ------
        RuntimeError
            If there is no running loop and the session has none either.
        """
        if self.busy:
            log.info("kill switch: %s joins the run in progress (%s)", trigger, self.trigger_name)
            return self._task
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = getattr(self.session, "loop", None)
            if loop is None:
                raise RuntimeError("the kill switch needs the asyncio loop of the trading session") from None
        self.trigger_name = trigger
        self._task = loop.create_task(self._run(trigger), name=f"kill-switch-{trigger}")
        return self._task

    async def engage(self, trigger: str = "manual") -> KillResult:
        """Lock the gate, cancel all, flatten all, verify against the venue; or await the run in progress.

        The run is shielded: cancelling the caller does not stop the kill switch. Never raises.
        """
        return await asyncio.shield(self.trigger(trigger))

    async def retry(self) -> KillResult:
        """Run the whole procedure again (from FAILED, or any locked state); joins a run in progress."""
        return await self.engage("retry")

    async def _run(self, trigger: str) -> KillResult:
        t0 = self.clock.monotonic_ns()
        try:
            # the venue's many acknowledgements share one fsync per loop turn (Journal.grouped_reports)
            with self.session.journal.grouped_reports():
                return await self._procedure(trigger, t0)
        except Exception as exc:  # a bug must not leave the switch "engaged" in silence
            log.exception("kill switch run failed")
            res = KillResult(KillState.FAILED, trigger, elapsed_s=(self.clock.monotonic_ns() - t0) / 1e9,
                             error=f"kill switch error: {type(exc).__name__}: {exc}", failure="error",
                             journal_error=self.journal_error)
            self._set(KillState.FAILED, res)
            return res

    def _is_flatten(self, ev) -> bool:
        wo = self.session.broker.orders.get(ev.client_order_id)
        return wo is not None and wo.request.role == ROLE_FLATTEN

    def _flatten_in_flight(self, symbol: str) -> bool:
        """True while this switch's last flatten order for ``symbol`` may still fill (local picture)."""
        cid = self._flatten_cid.get(symbol)
        wo = self.session.broker.orders.get(cid) if cid else None
        return wo is not None and wo.state.working

    async def _read_venue(self, deadline_ns: int) -> tuple[list, list]:
        """The venue's open orders and non-zero positions, both requests written back to back.

        On one ordered stream (DTC) the server answers both after everything written before
        them (the cancels, a flatten), so the pair is one round trip and the positions are read
        after the cancels were processed.
        """
        broker = self.session.broker
        # each request may take all that is left of the run's deadline (issue 12 item 6: a slow
        # link answers late, not never); at least 50 ms so a last read is still tried
        timeout = max(0.05, (deadline_ns - self.clock.monotonic_ns()) / 1e9)
        got = await asyncio.gather(broker.query_open_orders(timeout=timeout), broker.query_positions(timeout=timeout),
                                   return_exceptions=True)
        for g in got:
            if isinstance(g, BaseException):
                raise g
        return list(got[0]), [p for p in got[1] if p.qty]

    async def _cancel(self, ev_or_wo, sent: dict, counts: dict) -> None:
        """Cancel one order (by ClientOrderID when the broker knows its ServerOrderID, else by ServerOrderID)."""
        s = self.session
        cid = ev_or_wo.client_order_id
        sid = ev_or_wo.server_order_id
        key = sid or cid
        sent[key] = self.clock.monotonic_ns()
        try:
            wo = s.broker.orders.get(cid)
            if (wo is None or not wo.server_order_id) and sid:
                await s.cancel_by_server_id(sid, cid)
            else:
                await s.broker.cancel(cid)
            counts["cancels"] += 1
            self._check_journal()
        except Exception as exc:  # keep going: the other orders and the flatten must still be tried
            counts["error"] = f"cancel {cid or sid}: {exc}"
            log.warning("kill switch: %s", counts["error"])

    async def _procedure(self, trigger: str, t0: int) -> KillResult:
        s = self.session
        clock = self.clock
        broker = s.broker
        # 1. lock: from here on no opening order passes the gate
        s.gate.lock(f"kill switch: {trigger}")
        working = [o for o in broker.working_orders() if o.request.role != ROLE_FLATTEN]
        positions = {sym: p.qty for sym, p in broker.positions.items() if p.qty}
        # 2. journal before acting
        self.journal_error = ""
        self._set(KillState.ENGAGED)
        self._journal("engaged", trigger, {
            "cancel": [o.client_order_id for o in working],
            "positions": positions,
        })
        counts = {"cancels": 0, "flattens": 0, "error": ""}
        sent: dict[str, int] = {}  # ServerOrderID (or ClientOrderID) -> monotonic ns of its last cancel
        # 3. cancel every working order (parents first: their children go with them)
        for wo in sorted(working, key=lambda o: (o.request.parent_id != "", o.client_order_id)):
            await self._cancel(wo, sent, counts)
        # 4. read the venue; flatten only once it reports no working order but our flattens, from the
        #    position it reports then (nothing else can move it any more); verify; repeat until the deadline
        deadline = t0 + int(s.settings.kill_verify_timeout_s * 1e9)
        open_orders: list = []  # the venue's latest complete report
        open_pos: list = []
        answered = False  # the venue sent one complete report during this run
        read_error = ""
        while True:
            # a flatten whose end the venue had reported before this read may be replaced after it
            ended = {sym for sym in self._flatten_cid if not self._flatten_in_flight(sym)}
            try:
                open_orders, open_pos = await self._read_venue(deadline)
                read_error = ""
                answered = True
            except (BrokerError, asyncio.TimeoutError, ConnectionError, OSError) as exc:
                read_error = f"cannot read the venue's reports: {exc}"
            if not read_error and not open_orders and not open_pos:
                elapsed = (clock.monotonic_ns() - t0) / 1e9
                self._journal("verified_flat", trigger, {
                    "cancels": counts["cancels"], "flattens": counts["flattens"], "elapsed_s": elapsed})
                res = KillResult(KillState.VERIFIED_FLAT, trigger, (), (), counts["cancels"], counts["flattens"],
                                 elapsed, journal_error=self.journal_error)
                self._set(KillState.VERIFIED_FLAT, res)
                return res
            if clock.monotonic_ns() >= deadline:
                break
            acted = False
            if not read_error:
                others = [ev for ev in open_orders if not self._is_flatten(ev)]
                flattening = {ev.symbol for ev in open_orders if self._is_flatten(ev)}
                now = clock.monotonic_ns()
                for ev in others:  # cancels not acknowledged yet: ask again every 0.5 s
                    if ev.state == OrderStatus.PENDING_CANCEL:
                        continue
                    last = sent.get(ev.server_order_id or ev.client_order_id)
                    if last is None or now - last >= 500_000_000:
                        await self._cancel(ev, sent, counts)
                        acted = True
                if not others:
                    for p in open_pos:
                        if p.symbol in flattening or self._flatten_in_flight(p.symbol):
                            continue
                        if p.symbol in self._flatten_cid and p.symbol not in ended:
                            continue  # that flatten ended after the read was written: read again first
                        acted |= await self._flatten(p.symbol, p.qty, trigger, counts)
            if not acted:
                await asyncio.sleep(self.poll_s)
        still_open = answered and bool(open_orders or open_pos)
        error = read_error or counts["error"]
        if still_open and read_error:
            error = f"then {read_error}"
        res = KillResult(
            KillState.FAILED, trigger,
            tuple(f"{ev.client_order_id or ev.server_order_id} {ev.state.value} "
                  f"{'BUY' if ev.side > 0 else 'SELL'} {ev.qty} {ev.symbol}" for ev in open_orders),
            tuple(f"{p.symbol} {p.qty:+d}" for p in open_pos),
            counts["cancels"], counts["flattens"], (clock.monotonic_ns() - t0) / 1e9, error,
            failure="still_open" if still_open else "no_answer", timeout_s=float(s.settings.kill_verify_timeout_s))
        self._journal("failed", trigger, {"still_open": res.describe()})
        res = dataclasses.replace(res, journal_error=self.journal_error)
        self._set(KillState.FAILED, res)
        return res

    async def _flatten(self, symbol: str, qty: int, trigger: str, counts: dict) -> bool:
        """One reducing market order for the venue's position ``qty`` (contracts, signed); True when sent."""
        s = self.session
        try:
            cid = await s.flatten_position(symbol, qty, reason=f"kill switch: {trigger}")
        except Exception as exc:
            counts["error"] = f"flatten {symbol}: {exc}"
            log.warning("kill switch: %s", counts["error"])
            return False
        self._check_journal()
        if cid:
            self._flatten_cid[symbol] = cid
            counts["flattens"] += 1
            return True
        return False

    def unlock(self, confirmation: str) -> bool:
        """Unlock the gate when ``confirmation`` is exactly the unlock phrase (``UNLOCK``).

        Returns False (and stays locked) on a wrong phrase, while engaging, or when ARMED.
        """
        if self.state == KillState.ARMED or self.busy or self.state == KillState.ENGAGED:
            return False
        if confirmation.strip() != UNLOCK_CONFIRM_PHRASE:
            return False
        self.journal_error = ""
        self._journal("unlocked", "manual", {"previous": self.state.value})
        self.session.gate.unlock()
        self._set(KillState.ARMED)
        return True

    def restore(self, state: str, trigger: str) -> None:
        """Restart with the journaled state: a switch that was not unlocked stays locked."""
        if state in ("engaged", "verified_flat", "failed"):
            self.session.gate.lock(f"kill switch (restored): {trigger}")
            self.trigger_name = trigger
            # an interrupted engagement counts as FAILED: the trader must retry or unlock
            self._set(KillState.VERIFIED_FLAT if state == "verified_flat" else KillState.FAILED,
                      KillResult(KillState.FAILED, trigger, error="restored after restart; verify with retry",
                                 failure="error")
                      if state != "verified_flat" else None)
