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

Nothing here decides whether an order may be sent: callers go through
:class:`app.trading.risk.RiskGate` and the journal first (:class:`app.trading.session.TradingSession`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Callable

from app.core.orders import OrderEvent, OrderStatus, OrderType, PositionSnapshot
from app.trading.orders import Bracket, OrderRequest, WorkingOrder, now_ns

log = logging.getLogger(__name__)


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
    def _track(self, req: OrderRequest) -> WorkingOrder:
        wo = self.orders.get(req.client_order_id)
        if wo is None:
            wo = WorkingOrder(req)
            self.orders[req.client_order_id] = wo
        return wo

    def _apply_order_event(self, ev: OrderEvent) -> None:
        """Update the local picture with a venue report, then tell the listeners."""
        wo = self.orders.get(ev.client_order_id)
        if wo is None and ev.server_order_id:
            cid = self._by_server_id.get(ev.server_order_id)
            wo = self.orders.get(cid) if cid else None
        if wo is None and ev.client_order_id and ev.symbol and ev.side in (1, -1) and ev.qty > 0:
            # an order we did not send in this process (reconciliation after a restart)
            try:
                req = OrderRequest(ev.client_order_id, ev.symbol, self.account, ev.side,
                                   ev.order_type or OrderType.LIMIT, ev.qty, ev.price if ev.price is not None else 0,
                                   price2=ev.price2)
            except ValueError:
                req = None
            if req is not None:
                wo = self._track(req)
        if wo is not None:
            if ev.server_order_id:
                wo.server_order_id = ev.server_order_id
                self._by_server_id[ev.server_order_id] = wo.client_order_id
            wo.state = ev.state
            wo.filled_qty = max(wo.filled_qty, ev.filled_qty)
            if ev.avg_fill_price:
                wo.avg_fill_price = ev.avg_fill_price
            wo.info = ev.info or wo.info
            wo.updated_ns = now_ns()
        self._emit("on_order", ev)

    def _apply_position(self, pos: PositionSnapshot) -> None:
        self.positions[pos.symbol] = pos
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

    @abstractmethod
    async def query_open_orders(self, timeout: float = 2.0) -> list[OrderEvent]:
        """The venue's own list of working orders (raises :class:`BrokerError` on timeout)."""

    @abstractmethod
    async def query_positions(self, timeout: float = 2.0) -> list[PositionSnapshot]:
        """The venue's own non-zero positions (raises :class:`BrokerError` on timeout)."""

    async def reconcile(self, timeout: float = 3.0) -> tuple[list[OrderEvent], list[PositionSnapshot]]:
        """Replace the local picture with the venue's reports; return them.

        Orders the local picture holds as working but the venue does not report are marked
        ``UNKNOWN`` (never resent); the caller decides what to tell the trader.
        """
        open_orders = await self.query_open_orders(timeout)
        positions = await self.query_positions(timeout)
        seen = set()
        for ev in open_orders:
            self._apply_order_event(ev)
            cid = ev.client_order_id or self._by_server_id.get(ev.server_order_id, "")
            seen.add(cid)
        for cid, wo in self.orders.items():
            if wo.state.working and cid not in seen:
                self._apply_order_event(OrderEvent(cid, wo.server_order_id, OrderStatus.UNKNOWN,
                                                   reason="reconcile_missing",
                                                   info="not reported by the venue at reconciliation"))
        live_symbols = {p.symbol for p in positions}
        for sym in list(self.positions):
            if sym not in live_symbols:
                self._apply_position(PositionSnapshot(sym, self.account, 0, 0.0))
        for p in positions:
            self._apply_position(p)
        return open_orders, positions
