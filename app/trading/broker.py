"""The broker interface: one contract, two implementations (paper and DTC).

A broker writes orders to its venue and reports what the venue says, through listeners:

* ``on_order(OrderEvent)``: every order update (accepted, pending child, open, fill, cancel,
  reject), normalised from DTC ``ORDER_UPDATE`` or from the paper fill engine;
* ``on_position(PositionSnapshot)``: the venue's position reports (DTC ``POSITION_UPDATE``);
* ``on_balance(dict)``: account balance (DTC ``ACCOUNT_BALANCE_UPDATE``: ``cash_balance`` ...);
* ``on_connection(bool)``: the link to the venue went up or down.

The broker keeps a local picture (``orders``, ``positions``) from those reports, and answers
:meth:`Broker.query_open_orders` / :meth:`Broker.query_positions` with the **venue's own**
reports (DTC ``OPEN_ORDERS_REQUEST`` / ``CURRENT_POSITIONS_REQUEST``); the kill switch verifies
flatness with these, never with the local picture.

**Order of events.** Snapshots (open-orders and positions answers) and streamed updates are
merged in the venue's own sequence: every report is applied to the local picture at the moment it
arrives (DTC: one TCP stream, so arrival order is the order in which the server produced them),
never later from a list fetched earlier. Each send and each applied report gets the next number of
the broker's sequence (:meth:`Broker._stamp`, kept in :attr:`WorkingOrder.seq`). A final order
state (filled, canceled, rejected) is never reverted by a later report: a snapshot entry for it is
dropped, and so is a streamed report without a fill; a streamed report with a fill is passed on
(so the fill is booked), keeping the final state unless it reports the order FILLED.

**Roles after a restart.** An order the venue reports that this process did not send is adopted
with its journaled role, parent and OCO sibling (:meth:`Broker.remember_orders`); without a
journal record, from the venue's links: a child of a bracket parent (DTC ``ParentServerOrderID``) is
a ``stop`` (stop, stop-limit) or a ``target`` (limit); an OCO pair (``OCOLinkedOrderServerOrderID``)
of one limit and one stop on the same side is an exit pair too; anything else is an ``entry`` (it may
add to the position, the conservative choice for the risk gate).

Nothing here decides whether an order may be sent: callers go through
:class:`app.trading.risk.RiskGate` and the journal first (:class:`app.trading.session.TradingSession`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Callable, Iterable

from app.core.orders import OrderEvent, OrderStatus, OrderType, PositionSnapshot
from app.trading.orders import (
    ROLE_ENTRY,
    ROLE_STOP,
    ROLE_TARGET,
    Bracket,
    OrderRequest,
    WorkingOrder,
    now_ns,
)

log = logging.getLogger(__name__)

#: ``OrderEvent.reason`` of a venue report that an order was moved: the paper engine's
#: ``replaced`` and DTC's ``ORDER_CANCEL_REPLACE_COMPLETE`` (OrderUpdateReason 7).
REPLACED_REASONS = frozenset({"replaced", "order_cancel_replace_complete"})


class BrokerError(RuntimeError):
    """A broker could not do what was asked (not connected, unknown order, timeout)."""


class Broker(ABC):
    """Base class: listeners and the local order/position picture.

    Attributes
    ----------
    name : str
        ``paper`` or ``dtc``.
    account : str
        Trade account (``Sim1`` ...; ``paper`` for the paper broker).
    orders : dict[str, WorkingOrder]
        Every order this broker sent or learned about at reconciliation, by ClientOrderID.
    positions : dict[str, PositionSnapshot]
        Latest position report per symbol.
    balance : dict
        Latest account balance report (``cash_balance``, ``available``, ``currency``).
    """

    name = "broker"

    def __init__(self, account: str = ""):
        self.account = account
        self.orders: dict[str, WorkingOrder] = {}
        self.positions: dict[str, PositionSnapshot] = {}
        self.balance: dict = {}
        self._by_server_id: dict[str, str] = {}
        self._listeners: list = []
        self._seq = 0
        self._position_seq: dict[str, int] = {}  # symbol -> sequence number of its last report
        self._journaled: dict[str, OrderRequest] = {}  # orders sent before a restart, by ClientOrderID
        self._adopted: set[str] = set()  # adopted without a journal record (roles from the venue's links)
        #: when a list: (time.perf_counter_ns(), what, ClientOrderID) of every message written (benchmarks)
        self.wire_log: list[tuple[int, str, str]] | None = None

    # ----------------------------------------------------------------- listeners
    def add_listener(self, listener) -> None:
        """Register an object with any of ``on_order``, ``on_position``, ``on_balance``, ``on_connection``."""
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, method: str, arg) -> None:
        for lst in list(self._listeners):
            fn: Callable | None = getattr(lst, method, None)
            if fn is None:
                continue
            try:
                fn(arg)
            except Exception:  # a listener bug must not break order processing
                log.exception("broker listener %s.%s failed", type(lst).__name__, method)

    def _note_wire(self, what: str, cid: str) -> None:
        if self.wire_log is not None:
            self.wire_log.append((time.perf_counter_ns(), what, cid))

    # ----------------------------------------------------------------- local picture
    def _stamp(self) -> int:
        """The next number of this broker's sequence of sends and venue reports (1, 2, ...)."""
        self._seq += 1
        return self._seq

    def _track(self, req: OrderRequest) -> WorkingOrder:
        wo = self.orders.get(req.client_order_id)
        if wo is None:
            wo = WorkingOrder(req, seq=self._stamp())
            self.orders[req.client_order_id] = wo
        return wo

    def remember_orders(self, requests: Iterable[OrderRequest]) -> None:
        """Orders this app journaled before a restart (not final there), by ClientOrderID.

        When the venue reports one of them, it is adopted with the journaled ``role``,
        ``parent_id``, ``oco_id`` and ``ticket_id`` (quantity and prices as the venue reports them).
        """
        for r in requests:
            self._journaled[r.client_order_id] = r

    def _adopt(self, ev: OrderEvent) -> WorkingOrder | None:
        """Track an order the venue reports that this process did not send (after a restart).

        Returns None when the report does not say enough to describe the order (no side,
        symbol or quantity, and no journal record).
        """
        cid = ev.client_order_id
        parent = self._by_server_id.get(ev.parent_server_id, "") if ev.parent_server_id else ""
        oco = self._by_server_id.get(ev.oco_server_id, "") if ev.oco_server_id else ""
        j = self._journaled.get(cid)
        try:
            if j is not None:
                req = replace(j, qty=ev.qty or j.qty, price=j.price if ev.price is None else ev.price,
                              price2=j.price2 if ev.price2 is None else ev.price2)
            elif ev.symbol and ev.side in (1, -1) and ev.qty > 0:
                order_type = OrderType(ev.order_type or OrderType.LIMIT)
                role = ROLE_ENTRY
                if ev.parent_server_id:  # a bracket child: an exit
                    role = _exit_role(order_type)
                req = OrderRequest(cid, ev.symbol, self.account, ev.side, order_type, ev.qty,
                                   ev.price if ev.price is not None else 0, role=role, parent_id=parent,
                                   oco_id=oco, price2=ev.price2)
            else:
                return None
        except ValueError as exc:
            log.warning("broker: cannot adopt order %s reported by the venue: %s", cid, exc)
            return None
        wo = self._track(req)
        if j is None:
            self._adopted.add(cid)
            if ev.oco_server_id and not ev.parent_server_id:
                self._exit_pair(wo, self.orders.get(oco))
        return wo

    def _exit_pair(self, wo: WorkingOrder, other: WorkingOrder | None) -> None:
        """Two adopted OCO legs, one limit and one stop on the same side, are exits (stop, target)."""
        if other is None or other.client_order_id not in self._adopted:
            return
        a, b = wo.request, other.request
        stops = (OrderType.STOP, OrderType.STOP_LIMIT)
        kinds = sorted((a.order_type in stops, b.order_type in stops))
        if a.side != b.side or kinds != [False, True] or OrderType.MARKET in (a.order_type, b.order_type):
            return
        wo.request = replace(a, role=_exit_role(a.order_type), oco_id=b.client_order_id)
        other.request = replace(b, role=_exit_role(b.order_type), oco_id=a.client_order_id)

    def _apply_order_event(self, ev: OrderEvent, snapshot: bool = False) -> bool:
        """Update the local picture with a venue report, then tell the listeners.

        Parameters
        ----------
        ev : OrderEvent
            The report, applied now: callers apply reports in the order the venue produced them.
        snapshot : bool
            True for an entry of an open-orders answer (DTC reason ``OPEN_ORDERS_REQUEST_RESPONSE``).

        Returns
        -------
        bool
            False when the report was dropped (a snapshot entry for an order already final, or a
            report that would change a final state and carries no fill); nothing is emitted then.
            A report with a fill for a final order is passed on with the final state, or FILLED
            when it says so.
        """
        wo = self.orders.get(ev.client_order_id)
        if wo is None and ev.server_order_id:
            cid = self._by_server_id.get(ev.server_order_id)
            wo = self.orders.get(cid) if cid else None
        if wo is None and ev.client_order_id:
            wo = self._adopt(ev)
        if wo is not None:
            if wo.state.final and ev.state != wo.state:
                # a final state is never reverted (a stale snapshot, a late duplicate)
                if snapshot or not ev.fill_qty:
                    log.info("broker: %s is %s; %s report %s ignored", wo.client_order_id, wo.state.value,
                             "snapshot" if snapshot else "streamed", ev.state.value)
                    return False
                if ev.state != OrderStatus.FILLED:  # a fill report that says FILLED is the venue's last word
                    ev = replace(ev, state=wo.state)
            if ev.server_order_id:
                wo.server_order_id = ev.server_order_id
                self._by_server_id[ev.server_order_id] = wo.client_order_id
            wo.state = ev.state
            if ev.reason in REPLACED_REASONS and ev.price is not None and not wo.state.final:
                # the venue moved the order (cancel-replace): its report gives the new price
                wo.request = replace(wo.request, price=int(ev.price),
                                     price2=wo.request.price2 if ev.price2 is None else int(ev.price2))
            wo.filled_qty = max(wo.filled_qty, ev.filled_qty)
            if ev.avg_fill_price:
                wo.avg_fill_price = ev.avg_fill_price
            wo.info = ev.info or wo.info
            wo.updated_ns = now_ns()
            wo.seq = self._stamp()
        self._emit("on_order", ev)
        return True

    def _apply_position(self, pos: PositionSnapshot) -> None:
        """Take a venue position report (applied in the order the venue produced it)."""
        self.positions[pos.symbol] = pos
        self._position_seq[pos.symbol] = self._stamp()
        self._emit("on_position", pos)

    def working_orders(self) -> list[WorkingOrder]:
        """Orders the local picture believes may still fill."""
        return [o for o in self.orders.values() if o.state.working]

    def position_qty(self, symbol: str) -> int:
        """Signed contracts of the last position report for ``symbol`` (0 if none)."""
        p = self.positions.get(symbol)
        return int(p.qty) if p else 0

    def server_id(self, client_order_id: str) -> str:
        wo = self.orders.get(client_order_id)
        return wo.server_order_id if wo else ""

    # ----------------------------------------------------------------- the contract
    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while orders can be written to the venue."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (or attach to the market stream) and reconcile."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect; working orders stay at the venue (nothing is cancelled implicitly)."""

    @abstractmethod
    async def submit_bracket(self, bracket: Bracket) -> None:
        """Write a bracket (entry, then its OCO children) to the venue. Journal it first."""

    @abstractmethod
    async def submit_order(self, order: OrderRequest) -> None:
        """Write one order (e.g. a flattening market order). Journal it first."""

    @abstractmethod
    async def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel an order (DTC: by its ServerOrderID)."""

    async def modify(self, client_order_id: str, price: int) -> None:
        """Ask the venue to move a working order to ``price`` (ticks; DTC ``CANCEL_REPLACE_ORDER``).

        The local picture takes the new price from the venue's replace report (reason in
        :data:`REPLACED_REASONS`), not from this request. Journal the request and the gate's
        decision first (:meth:`app.trading.session.TradingSession.modify_order`).

        Raises
        ------
        BrokerError
            This broker cannot modify orders (the default), or the request cannot be written.
        """
        raise BrokerError(f"{self.name} broker: modifying order {client_order_id} is not supported")

    @abstractmethod
    async def query_open_orders(self, timeout: float = 2.0) -> list[OrderEvent]:
        """The venue's own list of working orders (raises :class:`BrokerError` on timeout).

        Each entry is applied to the local picture at the point of the venue's sequence where the
        venue reported it (never reverting a final state), or the local picture already holds it
        (the paper engine reports synchronously): the returned list is a report to read, never
        one to apply later.
        """

    @abstractmethod
    async def query_positions(self, timeout: float = 2.0) -> list[PositionSnapshot]:
        """The venue's own non-zero positions (raises :class:`BrokerError` on timeout).

        Like :meth:`query_open_orders`, the answer has been applied to the local picture as it arrived.
        """

    async def reconcile(self, timeout: float = 3.0) -> tuple[list[OrderEvent], list[PositionSnapshot]]:
        """Bring the local picture in line with the venue's reports; return them.

        The answers are applied as they arrive (see the module's "order of events"), so a fill
        streamed while the positions request is in flight is never undone by the open-orders list
        fetched before it. Orders the local picture holds as working, last heard of before the
        open-orders request was sent and absent from its answer, are marked ``UNKNOWN`` (never
        resent; the caller decides what to tell the trader); an order sent after that request is
        not expected in it. A symbol absent from the positions answer is set flat unless a report
        for it arrived after reconciliation began.

        Raises
        ------
        BrokerError
            When a request times out or the link is down.
        """
        mark = self._stamp()  # everything stamped before this was sent or heard before the requests
        open_orders = await self.query_open_orders(timeout)
        positions = await self.query_positions(timeout)
        seen = set()
        for ev in open_orders:
            cid = ev.client_order_id or self._by_server_id.get(ev.server_order_id, "")
            seen.add(cid)
        for cid, wo in list(self.orders.items()):
            if wo.state.working and wo.seq < mark and cid not in seen:
                self._apply_order_event(OrderEvent(cid, wo.server_order_id, OrderStatus.UNKNOWN,
                                                   reason="reconcile_missing",
                                                   info="not reported by the venue at reconciliation"))
        live_symbols = {p.symbol for p in positions}
        for sym in list(self.positions):
            if sym not in live_symbols and self._position_seq.get(sym, 0) < mark:
                self._apply_position(PositionSnapshot(sym, self.account, 0, 0.0))
        return open_orders, positions


def _exit_role(order_type) -> str:
    """``stop`` for a stop or stop-limit exit, ``target`` for a limit exit."""
    return ROLE_STOP if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else ROLE_TARGET
