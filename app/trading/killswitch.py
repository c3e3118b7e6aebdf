"""The kill switch: lock, cancel everything, flatten everything, verify with the venue's reports.

State machine (design card section 5, issue 6)::

    ARMED --engage(trigger)--> ENGAGED --venue reports flat--> VERIFIED_FLAT --unlock("UNLOCK")--> ARMED
                                  |                                                ^
                                  +--timeout: still open--> FAILED --retry()-------+ (ENGAGED again)
                                                              |
                                                              +--unlock("UNLOCK")--> ARMED

``engage`` locks the risk gate first (no opening order passes from that instant), journals the
event with what it is about to cancel and flatten (committed before anything is sent), writes a
cancel for every working order and a reducing market order for every position, then polls the
broker's **own** reports (DTC ``OPEN_ORDERS_REQUEST`` / ``CURRENT_POSITIONS_REQUEST``) until
there is no working order and every position is zero, or ``kill_verify_timeout_s`` passes.
A position that is still open while no flattening order works (e.g. a stop filled in the
race with the first flatten) gets a new flatten; a still-working order gets a new cancel.
The gate stays locked in every state except ARMED; unlocking needs the typed phrase.
"""

from __future__ import annotations

import asyncio
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
    """

    state: KillState
    trigger: str
    open_orders: tuple = ()
    open_positions: tuple = ()
    cancels_sent: int = 0
    flattens_sent: int = 0
    elapsed_s: float = 0.0
    error: str = ""

    def describe(self) -> str:
        """One line for the trader."""
        if self.state == KillState.VERIFIED_FLAT:
            return (f"VERIFIED FLAT ({self.cancels_sent} cancels, {self.flattens_sent} flatten orders, "
                    f"{self.elapsed_s:.2f} s)")
        parts = []
        if self.open_orders:
            parts.append("working orders: " + "; ".join(self.open_orders))
        if self.open_positions:
            parts.append("positions: " + "; ".join(self.open_positions))
        if self.error:
            parts.append(self.error)
        return "FAILED - still open: " + (" | ".join(parts) or "unknown")


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
        return self._task is not None and not self._task.done()

    # ----------------------------------------------------------------- actions
    def trigger(self, trigger: str = "manual") -> asyncio.Task:
        """Start :meth:`engage` on the running loop (returns the task; a running one is reused)."""
        if self.busy:
            return self._task
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = getattr(self.session, "loop", None)
            if loop is None:
                raise RuntimeError("the kill switch needs the asyncio loop of the trading session") from None
        self._task = loop.create_task(self.engage(trigger))
        return self._task

    async def engage(self, trigger: str = "manual") -> KillResult:
        """Lock the gate, cancel all, flatten all, verify against the venue. Never raises."""
        s = self.session
        t0 = self.clock.monotonic_ns()
        # 1. lock: from here on no opening order passes the gate
        s.gate.lock(f"kill switch: {trigger}")
        self.trigger_name = trigger
        broker = s.broker
        working = [o for o in broker.working_orders()]
        positions = {sym: p.qty for sym, p in broker.positions.items() if p.qty}
        # 2. journal before acting
        s.journal.record_kill_switch("engaged", trigger, {
            "cancel": [o.client_order_id for o in working],
            "flatten": positions,
        })
        self._set(KillState.ENGAGED)
        cancels = flattens = 0
        error = ""
        # 3. cancel every working order (parents first: their children go with them)
        order = sorted(working, key=lambda o: (o.request.parent_id != "", o.client_order_id))
        for wo in order:
            if wo.request.role == ROLE_FLATTEN:
                continue  # never cancel our own flattening orders
            try:
                await broker.cancel(wo.client_order_id)
                cancels += 1
            except Exception as exc:  # keep going: flatten must still be tried
                error = f"cancel {wo.client_order_id}: {exc}"
                log.warning("kill switch: %s", error)
        # 4. flatten every position
        for sym, qty in positions.items():
            try:
                if await s.flatten_position(sym, qty, reason=f"kill switch: {trigger}"):
                    flattens += 1
            except Exception as exc:
                error = f"flatten {sym}: {exc}"
                log.warning("kill switch: %s", error)
        # 5. verify against the venue's own reports
        clock = self.clock
        deadline = clock.monotonic_ns() + int(s.settings.kill_verify_timeout_s * 1e9)
        open_orders: list = []
        open_pos: list = []
        last_resend = clock.monotonic_ns()

        def query_timeout() -> float:  # s: what is left of the deadline, within 0.2 .. 2 s
            return min(2.0, max(0.2, (deadline - clock.monotonic_ns()) / 1e9))

        while True:
            try:
                open_orders = await broker.query_open_orders(timeout=query_timeout())
                open_pos = [p for p in await broker.query_positions(timeout=query_timeout()) if p.qty]
                error = ""
            except (BrokerError, asyncio.TimeoutError, ConnectionError, OSError) as exc:
                error = f"cannot read the venue's reports: {exc}"
            if not error and not open_orders and not open_pos:
                res = KillResult(KillState.VERIFIED_FLAT, trigger, (), (), cancels, flattens,
                                 (self.clock.monotonic_ns() - t0) / 1e9)
                s.journal.record_kill_switch("verified_flat", trigger, {"cancels": cancels, "flattens": flattens,
                                                                         "elapsed_s": res.elapsed_s})
                self._set(KillState.VERIFIED_FLAT, res)
                return res
            if clock.monotonic_ns() >= deadline:
                break
            if not error and clock.monotonic_ns() - last_resend >= 500_000_000:
                last_resend = clock.monotonic_ns()
                flatten_working = any(
                    (wo := broker.orders.get(ev.client_order_id)) is not None and wo.request.role == ROLE_FLATTEN
                    for ev in open_orders)
                for ev in open_orders:
                    wo = broker.orders.get(ev.client_order_id)
                    if wo is not None and wo.request.role == ROLE_FLATTEN:
                        continue
                    if ev.state in (OrderStatus.PENDING_CANCEL,):
                        continue
                    try:
                        if wo is None and ev.server_order_id:
                            await s.cancel_by_server_id(ev.server_order_id, ev.client_order_id)
                        else:
                            await broker.cancel(ev.client_order_id)
                        cancels += 1
                    except Exception as exc:
                        error = f"cancel {ev.client_order_id}: {exc}"
                if not flatten_working:
                    for p in open_pos:
                        try:
                            if await s.flatten_position(p.symbol, p.qty, reason=f"kill switch re-flatten: {trigger}"):
                                flattens += 1
                        except Exception as exc:
                            error = f"flatten {p.symbol}: {exc}"
            await asyncio.sleep(self.poll_s)
        res = KillResult(
            KillState.FAILED, trigger,
            tuple(f"{ev.client_order_id or ev.server_order_id} {ev.state.value} "
                  f"{'BUY' if ev.side > 0 else 'SELL'} {ev.qty} {ev.symbol}" for ev in open_orders),
            tuple(f"{p.symbol} {p.qty:+d}" for p in open_pos),
            cancels, flattens, (self.clock.monotonic_ns() - t0) / 1e9, error)
        s.journal.record_kill_switch("failed", trigger, {"still_open": res.describe()})
        self._set(KillState.FAILED, res)
        return res

    async def retry(self) -> KillResult:
        """Run the whole procedure again (from FAILED, or any locked state)."""
        return await self.engage("retry")

    def unlock(self, confirmation: str) -> bool:
        """Unlock the gate when ``confirmation`` is exactly the unlock phrase (``UNLOCK``).

        Returns False (and stays locked) on a wrong phrase, while engaging, or when ARMED.
        """
        if self.state == KillState.ARMED or self.busy or self.state == KillState.ENGAGED:
            return False
        if confirmation.strip() != UNLOCK_CONFIRM_PHRASE:
            return False
        self.session.journal.record_kill_switch("unlocked", "manual", {"previous": self.state.value})
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
                      KillResult(KillState.FAILED, trigger, error="restored after restart; verify with retry")
                      if state != "verified_flat" else None)
