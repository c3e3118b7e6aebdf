"""The DTC broker: trades a Sierra Chart account (``Sim1``-style or live) over :class:`app.dtc.client.DTCClient`.

Procedures (``../shared/reference/dtc-protocol-notes.md`` sections 2.2 and 7):

* **Bracket**: the entry as ``SUBMIT_NEW_SINGLE_ORDER`` with ``IsParentOrder = 1``, immediately
  followed by one ``SUBMIT_NEW_OCO_ORDER`` (leg 1 the target limit, leg 2 the protective stop)
  whose ``ParentTriggerClientOrderID`` is the entry's ClientOrderID. The server answers with three
  ORDER_UPDATEs (accept or reject all); the children stay ``PENDING_CHILD`` until the parent fills.
* **Cancel** by ``ServerOrderID`` only (the ClientOrderID is echoed, never used to find the order).
* **Order state** from every ``ORDER_UPDATE`` (``OrderStatusEnum`` -> :class:`~app.core.orders.OrderStatus`,
  through :mod:`app.dtc.adapter` like every other DTC number: a stop-limit stays a stop-limit); a fill is
  an update with reason ``ORDER_FILLED`` / ``ORDER_FILLED_PARTIALLY`` and ``LastFillQuantity > 0``,
  identified by ``LastFillExecutionID``. A cancel rejection never changes the order's state unless
  it reports the order final (FILLED / CANCELED).
* **Positions** from ``POSITION_UPDATE`` (signed ``Quantity``), **balance** from
  ``ACCOUNT_BALANCE_UPDATE``.
* **Reconciliation** at every (re)connect: ``OPEN_ORDERS_REQUEST`` and ``CURRENT_POSITIONS_REQUEST``
  (driven by :class:`~app.trading.session.TradingSession`). Orders are never resent after a
  reconnect; the client itself only resubscribes market data. The answers (ORDER_UPDATE with
  reason ``OPEN_ORDERS_REQUEST_RESPONSE``, POSITION_UPDATE with a RequestID) come through the same
  listeners as the streamed updates, so they are applied in the order the server sent them; an
  answer entry never reverts an order already filled, canceled or rejected
  (:meth:`app.trading.broker.Broker._apply_order_event`). ``ParentServerOrderID`` and
  ``OCOLinkedOrderServerOrderID`` give adopted orders their exit roles after a restart.

Prices cross the wire as ``ticks * tick_size`` and come back as ``round(price / tick_size)``.
"""

from __future__ import annotations

import asyncio
import logging

from app.core.events import Instrument
from app.core.orders import OrderEvent, OrderStatus, OrderType, PartialFillHandling, PositionSnapshot, TimeInForce
from app.dtc import adapter
from app.dtc import messages as M
from app.trading.broker import Broker, BrokerError
from app.trading.orders import Bracket, OrderRequest

log = logging.getLogger(__name__)

_R = M.OrderUpdateReason


class DtcBroker(Broker):
    """Broker over a :class:`~app.dtc.client.DTCClient`.

    Parameters
    ----------
    client : app.dtc.client.DTCClient
        Connected or not; :meth:`start` connects it when needed. It may be shared with the
        market-data pipeline.
    instruments : iterable of Instrument
        Tick size per symbol (price conversion).
    account : str
        TradeAccount (``Sim1`` ...).
    own_client : bool
        Close the client in :meth:`stop` (only when this broker created it).
    """

    name = "dtc"

    def __init__(self, client, instruments=(), account: str = "Sim1", own_client: bool = False):
        super().__init__(account)
        self.client = client
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        self.own_client = own_client
        self._listening = False
        self._was_connected = False
        self.decode_skipped = 0

    def add_instrument(self, inst: Instrument) -> None:
        self.instruments[inst.symbol] = inst

    def _tick(self, symbol: str) -> float:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise BrokerError(f"no instrument (tick size) known for symbol {symbol!r}")
        return inst.tick_size

    def _to_ticks(self, symbol: str, price: float) -> int | None:
        if price is None or M.is_unset(float(price)):
            return None
        inst = self.instruments.get(symbol)
        if inst is None:
            return None
        return int(round(float(price) / inst.tick_size))

    # ----------------------------------------------------------------- connection
    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    async def start(self) -> None:
        """Register listeners and connect the client when it is not connected yet."""
        if not self._listening:
            self.client.add_listener(M.MessageType.ORDER_UPDATE, self._on_order_update)
            self.client.add_listener(M.MessageType.POSITION_UPDATE, self._on_position_update)
            self.client.add_listener(M.MessageType.ACCOUNT_BALANCE_UPDATE, self._on_balance_update)
            self.client.add_state_listener(self._on_state)
            self._listening = True
        if not self.client.connected:
            await self.client.connect()
        self._was_connected = self.client.connected

    async def stop(self) -> None:
        if self._listening:
            self.client.remove_listener(M.MessageType.ORDER_UPDATE, self._on_order_update)
            self.client.remove_listener(M.MessageType.POSITION_UPDATE, self._on_position_update)
            self.client.remove_listener(M.MessageType.ACCOUNT_BALANCE_UPDATE, self._on_balance_update)
            self.client.remove_state_listener(self._on_state)
            self._listening = False
        if self.own_client:
            await self.client.close()

    def _on_state(self, state: str) -> None:
        up = state == "connected"
        if up != self._was_connected:
            self._was_connected = up
            self._emit("on_connection", up)

    # ----------------------------------------------------------------- sending
    def _single(self, o: OrderRequest, parent: bool) -> M.Message:
        tick = self._tick(o.symbol)
        kw = dict(Symbol=o.symbol, TradeAccount=o.account or self.account, ClientOrderID=o.client_order_id,
                  OrderType=adapter.order_type_to_dtc(o.order_type), BuySell=adapter.side_to_dtc(o.side),
                  Quantity=float(o.qty), TimeInForce=adapter.tif_to_dtc(TimeInForce.DAY),
                  IsParentOrder=1 if parent else 0, FreeFormText=f"MIA {o.role}"[:47])
        if o.order_type != OrderType.MARKET:
            kw["Price1"] = float(o.price) * tick
        if o.price2 is not None:
            kw["Price2"] = float(o.price2) * tick
        return M.SubmitNewSingleOrder(**kw)

    def _send(self, msg, what: str, cid: str) -> None:
        try:
            self.client.send(msg)
        except Exception as exc:  # NotConnected, OSError
            raise BrokerError(f"{what} {cid}: {exc}") from exc
        self._note_wire(what, cid)

    async def submit_bracket(self, bracket: Bracket) -> None:
        for o in bracket.orders:
            self._track(o)
        e = bracket.entry
        if bracket.stop is None and bracket.target is None:
            self._send(self._single(e, parent=False), "submit", e.client_order_id)
            return
        if bracket.stop is None or bracket.target is None:
            raise ValueError("a bracket needs both stop and target (or neither)")
        tick = self._tick(e.symbol)
        tgt, stp = bracket.target, bracket.stop
        oco = M.SubmitNewOCOOrder(
            Symbol=e.symbol, TradeAccount=e.account or self.account,
            ClientOrderID_1=tgt.client_order_id, OrderType_1=adapter.order_type_to_dtc(OrderType.LIMIT),
            BuySell_1=adapter.side_to_dtc(tgt.side), Price1_1=float(tgt.price) * tick, Quantity_1=float(tgt.qty),
            ClientOrderID_2=stp.client_order_id, OrderType_2=adapter.order_type_to_dtc(OrderType.STOP),
            BuySell_2=adapter.side_to_dtc(stp.side), Price1_2=float(stp.price) * tick, Quantity_2=float(stp.qty),
            TimeInForce=adapter.tif_to_dtc(TimeInForce.DAY), ParentTriggerClientOrderID=e.client_order_id,
            PartialFillHandling=adapter.pfh_to_dtc(PartialFillHandling.REDUCE),
            FreeFormText="MIA bracket")
        parent = self._single(e, parent=True)
        self._send(parent, "submit_parent", e.client_order_id)
        self._send(oco, "submit_oco", tgt.client_order_id)

    async def submit_order(self, order: OrderRequest) -> None:
        self._track(order)
        self._send(self._single(order, parent=False), "submit", order.client_order_id)

    async def cancel(self, client_order_id: str) -> None:
        sid = self.server_id(client_order_id)
        if not sid:
            raise BrokerError(f"cancel {client_order_id}: no ServerOrderID known yet (the server identifies "
                              "orders only by it)")
        self._send(M.CancelOrder(ServerOrderID=sid, ClientOrderID=client_order_id, TradeAccount=self.account),
                   "cancel", client_order_id)

    async def modify(self, client_order_id: str, price: int) -> None:
        """``CANCEL_REPLACE_ORDER`` by ServerOrderID: new ``Price1`` (ticks * tick size), quantity unchanged.

        Raises
        ------
        BrokerError
            No ServerOrderID known yet, or the link is down.
        """
        wo = self.orders.get(client_order_id)
        sid = self.server_id(client_order_id)
        if wo is None or not sid:
            raise BrokerError(f"modify {client_order_id}: no ServerOrderID known yet (the server identifies "
                              "orders only by it)")
        tick = self._tick(wo.request.symbol)
        self._send(M.CancelReplaceOrder(ServerOrderID=sid, ClientOrderID=client_order_id,
                                        Price1=float(price) * tick, Price1IsSet=1, Price2=0.0, Price2IsSet=0,
                                        Quantity=0.0, TradeAccount=self.account), "modify", client_order_id)

    async def cancel_server_order(self, server_order_id: str) -> None:
        """Cancel an order known only by its ServerOrderID (e.g. reported at reconciliation)."""
        cid = self._by_server_id.get(server_order_id, "")
        self._send(M.CancelOrder(ServerOrderID=server_order_id, ClientOrderID=cid, TradeAccount=self.account),
                   "cancel", cid or server_order_id)

    # ----------------------------------------------------------------- venue reports
    async def query_open_orders(self, timeout: float = 2.0) -> list[OrderEvent]:
        """``OPEN_ORDERS_REQUEST``: the server's working orders (applied by the listener as they arrived).

        Raises
        ------
        BrokerError
            On timeout, a reject or a dropped link.
        """
        try:
            msgs = await asyncio.wait_for(self.client.open_orders(self.account), timeout)
        except Exception as exc:
            raise BrokerError(f"OPEN_ORDERS_REQUEST failed: {exc!r}") from exc
        out = []
        for m in msgs:
            ev = self._event(m)
            if ev is not None and ev.state.working:
                out.append(ev)
        return out

    async def query_positions(self, timeout: float = 2.0) -> list[PositionSnapshot]:
        """``CURRENT_POSITIONS_REQUEST``: the server's non-zero positions (applied by the listener).

        Raises
        ------
        BrokerError
            On timeout, a reject or a dropped link.
        """
        try:
            msgs = await asyncio.wait_for(self.client.positions(self.account), timeout)
        except Exception as exc:
            raise BrokerError(f"CURRENT_POSITIONS_REQUEST failed: {exc!r}") from exc
        return [p for p in (self._position(m) for m in msgs) if p is not None and p.qty != 0]

    # ----------------------------------------------------------------- decoding
    def _event(self, m) -> OrderEvent | None:
        if getattr(m, "NoOrders", 0) or not (m.ClientOrderID or m.ServerOrderID):
            return None
        status = int(m.OrderStatus)
        reason = int(m.OrderUpdateReason)
        cid = m.ClientOrderID or self._by_server_id.get(m.ServerOrderID, "")
        wo = self.orders.get(cid)
        state = adapter.status_from_dtc(status)
        if state is None or state == OrderStatus.SENT:
            # unset / unknown / client-side-only status: the order's state does not change
            self.decode_skipped += status not in (0, 1)
            state = wo.state if wo is not None else OrderStatus.UNKNOWN
        if reason in (_R.ORDER_CANCEL_REJECTED, _R.ORDER_CANCEL_REPLACE_REJECTED) and state not in (
                OrderStatus.FILLED, OrderStatus.CANCELED):
            state = wo.state if wo is not None else OrderStatus.UNKNOWN
        sym = m.Symbol
        fill_qty = 0
        fill_px = 0
        exec_id = ""
        if reason in (_R.ORDER_FILLED, _R.ORDER_FILLED_PARTIALLY) and not M.is_unset(float(m.LastFillQuantity)) \
                and m.LastFillQuantity > 0:
            fill_qty = int(round(m.LastFillQuantity))
            fill_px = self._to_ticks(sym, m.LastFillPrice) or 0
            # the venue's execution id, qualified by order and fill time: a replay server that restarts
            # its id counters must not make a new fill look like one already journaled
            exec_id = (f"{m.LastFillExecutionID or m.FilledQuantity}/{m.ServerOrderID}/"
                       f"{int(m.LastFillDateTime or 0)}")[:64]
        qty = 0 if M.is_unset(float(m.OrderQuantity)) else int(round(m.OrderQuantity))
        filled = 0 if M.is_unset(float(m.FilledQuantity)) else int(round(m.FilledQuantity))
        avg = 0.0
        if not M.is_unset(float(m.AverageFillPrice)) and sym in self.instruments:
            avg = float(m.AverageFillPrice) / self.instruments[sym].tick_size
        try:
            side = adapter.side_from_dtc(m.BuySell)
        except ValueError:  # unset: the venue did not say
            side = 0
        try:
            order_type = adapter.order_type_from_dtc(m.OrderType)
        except ValueError:  # unset or a type this app does not send
            order_type = ""
        try:
            reason_name = _R(reason).name.lower()
        except ValueError:
            reason_name = str(reason)
        return OrderEvent(
            client_order_id=cid,
            server_order_id=m.ServerOrderID, state=state, symbol=sym, side=side,
            order_type=order_type, qty=qty, price=self._to_ticks(sym, m.Price1),
            price2=self._to_ticks(sym, m.Price2) if order_type == OrderType.STOP_LIMIT else None,
            filled_qty=filled, avg_fill_price=avg, fill_qty=fill_qty, fill_price=fill_px, exec_id=exec_id,
            reason=reason_name, info=m.InfoText, parent_server_id=m.ParentServerOrderID,
            oco_server_id=m.OCOLinkedOrderServerOrderID,
            ts_ns=int(m.LastFillDateTime) * 1_000_000 if fill_qty and m.LastFillDateTime else 0)

    def _position(self, m) -> PositionSnapshot | None:
        if getattr(m, "NoPositions", 0) or not m.Symbol:
            return None
        if m.TradeAccount and self.account and m.TradeAccount != self.account:
            return None
        inst = self.instruments.get(m.Symbol)
        avg = float(m.AveragePrice) / inst.tick_size if inst and not M.is_unset(float(m.AveragePrice)) else 0.0
        opnl = 0.0 if M.is_unset(float(m.OpenProfitLoss)) else float(m.OpenProfitLoss)
        return PositionSnapshot(m.Symbol, m.TradeAccount or self.account, int(round(m.Quantity)), avg, opnl)

    def _on_order_update(self, m) -> None:
        if m.TradeAccount and self.account and m.TradeAccount != self.account:
            return
        try:
            ev = self._event(m)
        except Exception:  # a malformed update must not break the session
            self.decode_skipped += 1
            log.exception("dtc broker: cannot read ORDER_UPDATE %r", m)
            return
        if ev is not None:
            # an open-orders answer is applied here, at its place in the stream (not later by reconcile)
            self._apply_order_event(ev, snapshot=int(m.OrderUpdateReason) == _R.OPEN_ORDERS_REQUEST_RESPONSE)

    def _on_position_update(self, m) -> None:
        try:
            p = self._position(m)
        except Exception:
            self.decode_skipped += 1
            log.exception("dtc broker: cannot read POSITION_UPDATE %r", m)
            return
        if p is not None:
            self._apply_position(p)

    def _on_balance_update(self, m) -> None:
        if getattr(m, "NoAccountBalances", 0):
            return
        if m.TradeAccount and self.account and m.TradeAccount != self.account:
            return
        self.balance = {"cash_balance": float(m.CashBalance),
                        "available": float(m.BalanceAvailableForNewPositions),
                        "currency": m.AccountCurrency,
                        "open_pnl": float(getattr(m, "OpenPositionsProfitLoss", 0.0)),
                        "daily_pnl": float(getattr(m, "DailyProfitLoss", 0.0))}
        self._emit("on_balance", self.balance)
