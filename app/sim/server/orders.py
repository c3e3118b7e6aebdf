"""The server's order entry: new orders, OCO pairs and brackets, cancels, replaces, flatten, fill reports.

Requests go to the matching engine (:mod:`app.sim.matching`) with their connection as the
``request`` handle; a rejection comes back carrying it and is sent to that connection only.
Every other trading update goes to every logged-on connection of the account it concerns
(Sierra Chart's "automatic trading data updates"; accounts: :class:`OrderEntryMixin`). DTC
numbers are converted by :mod:`app.dtc.adapter` only; prices go out as ``ticks * tick_size``.
Sequences: see :mod:`app.sim.server`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from app.core.events import KIND_TRADE
from app.core.orders import Order, OrderSpec, OrderStatus, OrderType, Side
from app.dtc import adapter
from app.dtc import messages as M
from app.sim.account import BalanceEvent, PositionEvent
from app.sim.matching import (
    EV_ACCEPTED,
    EV_CANCEL_REJECTED,
    EV_CANCELLED,
    EV_FILLED,
    EV_PARTIALLY_FILLED,
    EV_REJECTED,
    EV_REPLACE_REJECTED,
    EV_REPLACED,
    EV_UPDATED,
    REJECTIONS,
    OrderReport,
)
from app.sim.server.market_data import Symbol
from app.sim.server.session import Conn, fit

log = logging.getLogger(__name__)

T = M.MessageType
#: A held bracket parent (208 with IsParentOrder=1) is submitted alone after this many seconds
#: (of the server's clock) without its 201.
PARENT_WAIT_S = 5.0


def _px(v) -> float | None:
    """DTC price (float, maybe unset or not finite) -> None or the float itself."""
    if v is None or M.is_unset(v) or not math.isfinite(v):
        return None
    return v


def _given(v) -> float | None:
    """A DTC price field as the client meant it: None when unset (DBL_MAX / FLT_MAX sentinel,
    DTC's "unset"), else the float itself, NaN and infinities included (they are refused by
    :meth:`OrderEntryMixin._price_ticks`, never read as unset)."""
    if v is None:
        return None
    v = float(v)
    if math.isfinite(v) and M.is_unset(v):
        return None
    return v


class OrderEntryMixin:
    """Order entry of :class:`app.sim.server.DTCServer` (208, 201, 203, 204, 209) and the
    engine's reports turned into ORDER_UPDATE / POSITION_UPDATE / ACCOUNT_BALANCE_UPDATE.

    Uses the server's ``engine``, ``account``, ``accounts``, ``shared_account``, ``max_accounts``,
    ``_stats``, ``_timers`` (the held parent's wait), the market data part's ``_lookup``,
    the session's ``_send`` and the queries' ``_position_update`` / ``_balance``.

    **Accounts.** Each logon owns one engine account (:attr:`Conn.account`, chosen by
    :meth:`_account_of_logon`): its own per Username, or the one shared account. Every client
    sees it under the server's ``account`` name (``Sim1``), so a client configured for ``Sim1``
    works whatever its Username; a TradeAccount other than that name is unknown. A connection
    acts only on its account: orders of another account are "unknown ServerOrderID" to it,
    and trading updates go only to the connections of the account they concern.
    """

    #: message type -> handler method name
    HANDLES_ORDERS = {
        int(T.SUBMIT_NEW_SINGLE_ORDER): "_on_submit_single",
        int(T.SUBMIT_NEW_OCO_ORDER): "_on_submit_oco",
        int(T.CANCEL_ORDER): "_on_cancel",
        int(T.CANCEL_REPLACE_ORDER): "_on_cancel_replace",
        int(T.SUBMIT_FLATTEN_POSITION_ORDER): "_on_flatten",
    }

    def _account_of_logon(self, username: str) -> str:
        """The engine account a logon with ``username`` owns, created on first use.

        The empty Username, and every Username when the server runs with one shared account,
        own the server's ``account``; any other Username owns ``"<account>/<username>"``
        (an engine key; clients always see the ``account`` name).

        Raises
        ------
        ValueError
            If the Username does not fit DTC's ``char[32]`` or ``max_accounts`` accounts exist.
        """
        if self.shared_account:
            return self.account
        key = self.accounts.get(username)
        if key is not None:
            return key
        if len(username.encode("utf-8")) > 31:
            raise ValueError("username longer than 31 bytes (DTC Username is char[32])")
        if len(self.accounts) >= self.max_accounts:
            raise ValueError(f"too many accounts on this server (at most {self.max_accounts})")
        key = f"{self.account}/{username}"
        self.engine.add_account(key)
        self.accounts[username] = key
        return key

    def _account_ok(self, c: Conn, account: str) -> bool:
        """A request's TradeAccount names the connection's own account (or none)."""
        return bool(c.account) and (not account or account == self.account)

    def _to_account(self, account: str, msg: M.Message) -> None:
        """Send an unsolicited trading update to every logged-on connection that owns ``account``."""
        for c in list(self.conns.values()):
            if c.account == account and c.logged_on and not c.closed:
                self._send(c, msg)

    def _owned(self, c: Conn, server_order_id: str) -> Order | None:
        """The order ``server_order_id`` when it is the connection's account's, else None (another
        account's order is as unknown to it as an id never issued)."""
        o = self.engine.order(server_order_id) if server_order_id else None
        return o if o is not None and o.account == c.account else None

    def _reject_new(self, c: Conn, client_order_id: str, symbol: str, text: str, account: str = "") -> None:
        self._send(c, M.OrderUpdate(
            TotalNumMessages=1, MessageNumber=1, Symbol=fit(symbol, 64), ClientOrderID=fit(client_order_id, 32),
            OrderStatus=adapter.status_to_dtc(OrderStatus.REJECTED),
            OrderUpdateReason=int(M.OrderUpdateReason.NEW_ORDER_REJECTED),
            TradeAccount=fit(account or self.account, 32), InfoText=fit(text, 96)))

    def _reference_ticks(self, sym: Symbol) -> float | None:
        """The market price (float ticks) the price band is centred on: the engine's mark (last
        trade, else mid), else the recording's first trade (a paused start), else None."""
        ref = self.engine.mark(sym.inst.symbol)
        if ref is not None:
            return ref
        name = sym.inst.symbol
        if name not in self._first_trade:
            ev = sym.recording.events
            idx = np.flatnonzero(ev["kind"] == KIND_TRADE)
            self._first_trade[name] = float(ev["price"][idx[0]]) if len(idx) else None
        return self._first_trade[name]

    def _price_ticks(self, sym: Symbol, value, field: str, needed: bool) -> int | None:
        """A DTC price field -> ticks, or None when the order does not use it and it is unset or 0.

        A price is refused when it is not finite, not positive, its ticks overflow int64
        (:meth:`app.core.events.Instrument.to_ticks`), or it lies outside the band of
        ``price_band`` x the market price around the market (:meth:`_reference_ticks`), as an
        exchange's price banding refuses orders far from the market (CME "Price Banding"). A
        price the order type does not use is checked the same way unless it is unset or 0
        (binary clients leave unused fields at 0).

        Raises
        ------
        ValueError
            With the reason (names the field, the value and the allowed band).
        """
        v = _given(value)
        if v is None or (v == 0.0 and not needed):
            return None
        if not math.isfinite(v):
            raise ValueError(f"{field} {v} is not finite")
        if v <= 0.0:
            raise ValueError(f"{field} {v:g} must be a positive price")
        inst = sym.inst
        ticks = int(inst.to_ticks(v))  # raises on int64 overflow
        self._check_band(sym, ticks, field, v)
        return ticks

    def _check_band(self, sym: Symbol, ticks: int, field: str, value: float) -> None:
        """Refuse ``ticks`` (a price of ``value``) outside ``price_band`` x the market around it.

        Raises
        ------
        ValueError
            Naming the field, the value and the band (prices in price units).
        """
        tick = sym.inst.tick_size
        if ticks < 1:
            raise ValueError(f"{field}: price {value:g} must be positive")
        ref = self._reference_ticks(sym)
        if ref is None or ref <= 0:
            return
        lo, hi = math.ceil(ref * (1.0 - self.price_band)), math.floor(ref * (1.0 + self.price_band))
        if not lo <= ticks <= hi:
            raise ValueError(f"{field} {value:g} outside the band {max(lo, 1) * tick:g}..{hi * tick:g} "
                             f"(market {ref * tick:g} +-{self.price_band:.0%})")

    def _offset_price(self, sym: Symbol, parent_ticks: int, leg: OrderSpec, offset, field: str) -> int:
        """Ticks of a bracket exit placed ``offset`` (price units) from the parent's price.

        The target (limit) goes ``offset`` in the profitable direction, the stop the other way
        (DTC ``UseOffsets``, ``SUBMIT_NEW_OCO_ORDER``). The offset must be finite, positive and at
        least one tick; the resulting price must pass :meth:`_price_ticks`'s band.

        Raises
        ------
        ValueError
            With the reason (names the field and the value).
        """
        v = _given(offset)
        if v is None or not math.isfinite(v) or v <= 0.0:
            raise ValueError(f"{field} {offset!r} must be a finite positive offset")
        try:
            off_t = int(sym.inst.to_ticks(v))
        except ValueError:
            raise ValueError(f"{field} {v:g} is out of range") from None
        if off_t < 1:
            raise ValueError(f"{field} {v:g} is less than one tick ({sym.inst.tick_size:g})")
        up = (leg.side == Side.SELL) == (leg.order_type == OrderType.LIMIT)  # sell target / buy stop: above
        ticks = parent_ticks + off_t if up else parent_ticks - off_t
        self._check_band(sym, ticks, field, ticks * sym.inst.tick_size)
        return ticks

    def _spec(self, sym: Symbol, order_type, buy_sell, price1, price2, qty, coid, tif, account) -> OrderSpec:
        """An engine order from DTC fields (prices to ticks, numbers through :mod:`app.dtc.adapter`).

        Raises
        ------
        ValueError
            If the side or the order type is not one the simulator supports, or a price is refused
            by :meth:`_price_ticks` (the text says which and why).
        """
        inst = sym.inst
        otype = adapter.order_type_from_dtc(order_type)
        return OrderSpec(
            symbol=inst.symbol,
            side=adapter.side_from_dtc(buy_sell),
            qty=float(qty) if qty is not None and not M.is_unset(float(qty)) else 0.0,
            order_type=otype,
            price=self._price_ticks(sym, price1, "Price1", otype.needs_price),
            price2=self._price_ticks(sym, price2, "Price2", otype.needs_price2),
            client_order_id=coid,
            tif=adapter.tif_from_dtc(tif),
            account=account,
        )

    def _check_new(self, c: Conn, coid: str, symbol: str, account: str) -> Symbol | None:
        s = self._lookup(symbol)
        if s is None:
            self._reject_new(c, coid, symbol, f"unknown symbol {symbol!r}", account)
            return None
        if not self._account_ok(c, account):
            self._reject_new(c, coid, symbol, f"unknown trade account {account!r}; use {self.account!r}", account)
            return None
        return s

    def _dup_coid(self, c: Conn, coid: str) -> bool:
        """A non-final order of the connection's account has this ClientOrderID (O(1): the
        engine's index)."""
        return self.engine.find_open(coid, c.account) is not None

    def _on_submit_single(self, c: Conn, m) -> None:
        self._stats["orders_received"] += 1
        s = self._check_new(c, m.ClientOrderID, m.Symbol, m.TradeAccount)
        if s is None:
            return
        if self._dup_coid(c, m.ClientOrderID) or m.ClientOrderID in c.pending_parents:
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"duplicate ClientOrderID {m.ClientOrderID!r}", m.TradeAccount)
            return
        try:
            spec = self._spec(s, m.OrderType, m.BuySell, m.Price1, m.Price2, m.Quantity, m.ClientOrderID,
                              m.TimeInForce, c.account)
        except ValueError as exc:  # order type or side the simulator does not support
            self._reject_new(c, m.ClientOrderID, m.Symbol, str(exc), m.TradeAccount)
            return
        if m.IsParentOrder:
            if not m.ClientOrderID:
                self._reject_new(c, "", m.Symbol, "a bracket parent needs a ClientOrderID", m.TradeAccount)
                return
            cap = self.engine.max_open_orders
            if cap is not None and len(c.pending_parents) >= cap:  # held parents count as open orders
                self._reject_new(c, m.ClientOrderID, m.Symbol, f"too many bracket parents waiting (at most {cap})",
                                 m.TradeAccount)
                return
            handle = self._timers.call_later(PARENT_WAIT_S, self._parent_timeout, c, m.ClientOrderID)
            c.pending_parents[m.ClientOrderID] = ((spec, m), handle)
            return
        self.engine.submit(spec, request=c)

    def _parent_timeout(self, c: Conn, coid: str) -> None:
        item = c.pending_parents.pop(coid, None)
        if item is None or c.closed:
            return
        (spec, _m), _h = item
        log.warning("bracket parent %r: no SUBMIT_NEW_OCO_ORDER within %.0f s; submitted alone", coid, PARENT_WAIT_S)
        self.engine.submit(spec, request=c)

    def _on_submit_oco(self, c: Conn, m) -> None:
        self._stats["orders_received"] += 1
        ids = (m.ClientOrderID_1, m.ClientOrderID_2)
        parent_coid = m.ParentTriggerClientOrderID
        parent_item = c.pending_parents.pop(parent_coid, None) if parent_coid else None
        s = self._lookup(m.Symbol)
        err = None
        if s is None:
            err = f"unknown symbol {m.Symbol!r}"
        elif not self._account_ok(c, m.TradeAccount):
            err = f"unknown trade account {m.TradeAccount!r}; use {self.account!r}"
        elif parent_coid and parent_item is None:
            err = f"parent {parent_coid!r} not pending (send SUBMIT_NEW_SINGLE_ORDER with IsParentOrder=1 first)"
        elif any(self._dup_coid(c, x) for x in ids) or (ids[0] and ids[0] == ids[1]):
            err = "duplicate ClientOrderID"
        if err:
            if parent_item is not None:
                parent_item[1].cancel()
                self._reject_new(c, parent_coid, m.Symbol, err, m.TradeAccount)
            for coid in ids:
                self._reject_new(c, coid, m.Symbol, err, m.TradeAccount)
            return
        parent_spec = None
        if parent_item is not None:
            (parent_spec, _pm), handle = parent_item
            handle.cancel()
        offsets = parent_spec is not None and bool(m.UseOffsets)  # the legs' Price1 come from the offsets
        try:
            legs = [
                self._spec(s, m.OrderType_1, m.BuySell_1, None if offsets else m.Price1_1, m.Price2_1, m.Quantity_1,
                           ids[0], m.TimeInForce, c.account),
                self._spec(s, m.OrderType_2, m.BuySell_2, None if offsets else m.Price1_2, m.Price2_2, m.Quantity_2,
                           ids[1], m.TimeInForce, c.account),
            ]
        except ValueError as exc:  # accept or reject all
            for coid in ((parent_coid,) if parent_spec is not None else ()) + ids:
                self._reject_new(c, coid, m.Symbol, str(exc), m.TradeAccount)
            return
        if offsets:
            if parent_spec.price is None:
                for coid in (parent_coid, *ids):
                    self._reject_new(c, coid, m.Symbol, "UseOffsets needs the parent's Price1", m.TradeAccount)
                return
            try:
                for i, (leg, off) in enumerate(zip(legs, (m.OffsetFromParent1, m.OffsetFromParent2)), 1):
                    leg.price = self._offset_price(s, parent_spec.price, leg, off, f"OffsetFromParent{i}")
            except ValueError as exc:
                for coid in (parent_coid, *ids):
                    self._reject_new(c, coid, m.Symbol, str(exc), m.TradeAccount)
                return
        self.engine.submit_oco(legs[0], legs[1], parent=parent_spec,
                               partial_fill_handling=adapter.pfh_from_dtc(m.PartialFillHandling), request=c)

    def _refuse(self, c: Conn, m, reason, text: str, client_order_id: str = "") -> None:
        """ORDER_UPDATE status rejected with ``reason`` and ``text`` for a cancel or replace
        that is not acted on (sent to ``c`` only; ServerOrderID empty, as for an unknown order)."""
        self._send(c, M.OrderUpdate(
            TotalNumMessages=1, MessageNumber=1, ServerOrderID="", ClientOrderID=fit(client_order_id, 32),
            OrderStatus=adapter.status_to_dtc(OrderStatus.REJECTED), OrderUpdateReason=int(reason),
            TradeAccount=fit(m.TradeAccount or self.account, 32), InfoText=fit(text, 96)))

    def _on_cancel(self, c: Conn, m) -> None:
        sid = m.ServerOrderID
        R = M.OrderUpdateReason
        if not sid:
            self._refuse(c, m, R.ORDER_CANCEL_REJECTED, "CANCEL_ORDER needs the ServerOrderID", m.ClientOrderID)
            return
        o = self._owned(c, sid)
        if o is None or not self._account_ok(c, m.TradeAccount):
            self._refuse(c, m, R.ORDER_CANCEL_REJECTED, f"unknown ServerOrderID {sid!r}")
            return
        if not o.is_final:
            self._to_account(o.account, self._order_update(o, R.GENERAL_ORDER_UPDATE, status=OrderStatus.PENDING_CANCEL))
        self.engine.cancel(sid, request=c)

    def _on_cancel_replace(self, c: Conn, m) -> None:
        sid = m.ServerOrderID
        o = self._owned(c, sid)
        if o is None or not self._account_ok(c, m.TradeAccount):
            self._refuse(c, m, M.OrderUpdateReason.ORDER_CANCEL_REPLACE_REJECTED, f"unknown ServerOrderID {sid!r}")
            return
        s = self.symbols.get(o.symbol)
        price1 = price2 = None
        if s is not None and not o.is_final:
            try:
                if m.Price1IsSet:
                    price1 = self._price_ticks(s, m.Price1, "Price1", o.order_type.needs_price)
                if m.Price2IsSet:
                    price2 = self._price_ticks(s, m.Price2, "Price2", o.order_type.needs_price2)
            except ValueError as exc:
                self._send(c, self._order_update(o, M.OrderUpdateReason.ORDER_CANCEL_REPLACE_REJECTED, text=str(exc)))
                return
        q = _given(m.Quantity)
        qty = None if q is None or q == 0.0 else q  # 0 or unset: keep the quantity
        self.engine.replace(sid, qty=qty, price=price1, price2=price2, request=c)

    def _on_flatten(self, c: Conn, m) -> None:
        s = self._lookup(m.Symbol)
        if s is None:
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"unknown symbol {m.Symbol!r}", m.TradeAccount)
            return
        if not self._account_ok(c, m.TradeAccount):
            self._reject_new(c, m.ClientOrderID, m.Symbol, f"unknown trade account {m.TradeAccount!r}; use "
                             f"{self.account!r}", m.TradeAccount)
            return
        coid = m.ClientOrderID
        if self._dup_coid(c, coid) or coid in c.pending_parents:
            self._reject_new(c, coid, m.Symbol, f"duplicate ClientOrderID {coid!r}", m.TradeAccount)
            return
        # the flattening market order carries the request's ClientOrderID, so its ORDER_UPDATEs
        # echo it (DTC SUBMIT_FLATTEN_POSITION_ORDER.ClientOrderID); "flatten" when it has none
        if self.engine.flatten(s.inst.symbol, request=c, account=c.account, client_order_id=coid or "flatten") is None:
            self._reject_new(c, m.ClientOrderID, m.Symbol, "no position to flatten", m.TradeAccount)

    def _order_update(self, o: Order, reason, status: OrderStatus | None = None, request_id=0, total=1, number=1,
                      ev: OrderReport | None = None, text: str = "") -> M.Message:
        """ORDER_UPDATE (301) for ``o``: prices ``ticks * tick_size``, numbers via :mod:`app.dtc.adapter`.

        ``status`` overrides the order's own (PENDING_OPEN on acceptance, PENDING_CANCEL on a
        cancel request); ``ev`` adds the LastFill fields of a fill report.
        """
        inst = self.engine.instruments.get(o.symbol)
        tick = inst.tick_size if inst else 1.0
        kw = dict(
            RequestID=request_id, TotalNumMessages=total, MessageNumber=number,
            Symbol=fit(o.symbol, 64), Exchange=fit(inst.exchange if inst else "", 16),
            ServerOrderID=fit(o.server_order_id, 32), ClientOrderID=fit(o.client_order_id, 32),
            OrderStatus=adapter.status_to_dtc(status if status is not None else o.status),
            OrderUpdateReason=int(reason), OrderType=adapter.order_type_to_dtc(o.order_type),
            BuySell=adapter.side_to_dtc(o.side), TimeInForce=adapter.tif_to_dtc(o.tif), TradeAccount=fit(self.account, 32),
            OrderQuantity=float(o.qty), FilledQuantity=float(o.filled_qty), RemainingQuantity=float(o.remaining),
            ParentServerOrderID=fit(o.parent_id or "", 32), OCOLinkedOrderServerOrderID=fit(o.oco_id or "", 32),
            OrderReceivedDateTime=int(o.created_ns // 1_000_000),
            LatestTransactionDateTime=o.updated_ns / 1e9,
            InfoText=fit(text or o.info, 96),
        )
        if o.price is not None:
            kw["Price1"] = o.price * tick
        if o.price2 is not None:
            kw["Price2"] = o.price2 * tick
        if o.avg_fill_price is not None:
            kw["AverageFillPrice"] = o.avg_fill_price * tick
        if ev is not None and ev.fill_qty:
            kw.update(LastFillPrice=ev.fill_price * tick, LastFillQuantity=float(ev.fill_qty),
                      LastFillDateTime=int(ev.ts // 1_000_000), LastFillExecutionID=fit(o.last_fill_id, 64))
        return M.OrderUpdate(**kw)

    def _on_engine_event(self, ev) -> None:
        """Engine report -> DTC update, sent only to the connections of the account concerned
        (a refusal only to the connection whose request caused it)."""
        R = M.OrderUpdateReason
        if isinstance(ev, OrderReport):
            o = ev.order
            k = ev.kind
            acct = o.account
            if k == EV_ACCEPTED:
                if o.status == OrderStatus.PENDING_CHILD:
                    self._to_account(acct, self._order_update(o, R.NEW_ORDER_ACCEPTED, ev=ev))
                else:
                    self._to_account(acct, self._order_update(o, R.NEW_ORDER_ACCEPTED, status=OrderStatus.PENDING_OPEN,
                                                              ev=ev))
                    self._to_account(acct, self._order_update(o, R.GENERAL_ORDER_UPDATE, ev=ev))
            elif k in REJECTIONS:
                reason = {EV_REJECTED: R.NEW_ORDER_REJECTED, EV_CANCEL_REJECTED: R.ORDER_CANCEL_REJECTED,
                          EV_REPLACE_REJECTED: R.ORDER_CANCEL_REPLACE_REJECTED}[k]
                msg = self._order_update(o, reason, ev=ev, text=ev.text)
                if isinstance(ev.request, Conn):  # the refusal goes to whoever asked
                    self._send(ev.request, msg)
                else:  # caused by market data (a triggered stop): the account's clients hear it
                    self._to_account(acct, msg)
            elif k == EV_FILLED:
                self._to_account(acct, self._order_update(o, R.ORDER_FILLED, ev=ev))
            elif k == EV_PARTIALLY_FILLED:
                self._to_account(acct, self._order_update(o, R.ORDER_FILLED_PARTIALLY, ev=ev))
            elif k == EV_CANCELLED:
                self._to_account(acct, self._order_update(o, R.ORDER_CANCELED, ev=ev, text=ev.text))
            elif k == EV_REPLACED:
                self._to_account(acct, self._order_update(o, R.ORDER_CANCEL_REPLACE_COMPLETE, ev=ev))
            elif k == EV_UPDATED:
                self._to_account(acct, self._order_update(o, R.GENERAL_ORDER_UPDATE, ev=ev, text=ev.text))
        elif isinstance(ev, PositionEvent):
            self._to_account(ev.account, self._position_update(ev.symbol, ev.account))
        elif isinstance(ev, BalanceEvent):
            self._to_account(ev.account, self._balance(ev.account))
