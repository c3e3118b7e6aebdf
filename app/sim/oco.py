"""OCO pairs and brackets: how linked orders follow each other (rules only, no state of their own).

The matching engine (:mod:`app.sim.matching`) owns the orders; these functions say what a
fill, a cancel or a rejection of one order means for the orders linked to it, and the engine
applies the answer (status changes, reports). Rules (``docs/fill-model.md``, "Brackets and OCO"):

* A **bracket** is a parent with two OCO children (target, stop) on the opposite side. The
  children are ``PENDING_CHILD`` until the parent fills; their quantity then follows the
  parent's filled quantity minus what the pair already closed.
* **OCO**: a full fill of one leg cancels the other; a partial fill reduces the other leg so both
  keep the same remaining quantity (``PartialFillHandling.REDUCE``) or cancels it
  (``IMMEDIATE_CANCEL``). Cancelling one leg cancels the other.
* Cancelling a parent that has not filled cancels its children; a rejected parent cancels them.

Quantities are contracts (float).
"""

from __future__ import annotations

from typing import Mapping

from app.core.orders import Order, OrderSpec, OrderStatus, OrderType, PartialFillHandling, Side

#: What :func:`after_leg_fill` answers.
CANCEL_OTHER = "cancel"
REDUCE_OTHER = "reduce"


def check_group(leg1: OrderSpec, leg2: OrderSpec, parent: OrderSpec | None) -> str | None:
    """The reason an OCO pair (optionally a bracket's children) is invalid as a group, or None.

    Single-order checks (symbol known, quantity, prices) are the engine's; this checks that
    both legs trade one symbol, that it is the parent's, and that bracket children are on the
    opposite side of the parent.
    """
    if leg1.symbol != leg2.symbol:
        return "OCO legs must be on the same symbol"
    if parent is not None:
        if leg1.symbol != parent.symbol:
            return "bracket children must be on the parent's symbol"
        if Side(leg1.side) == Side(parent.side) or Side(leg2.side) == Side(parent.side):
            return "bracket children must be on the opposite side of the parent"
    return None


def link(a: Order, b: Order, parent: Order | None, handling: PartialFillHandling) -> None:
    """Link ``a`` and ``b`` as an OCO pair, as the children of ``parent`` when given.

    With a parent the legs start ``PENDING_CHILD``; the parent's status is not changed.
    """
    a.oco_id, b.oco_id = b.server_order_id, a.server_order_id
    a.partial_fill_handling = b.partial_fill_handling = PartialFillHandling(handling)
    if parent is not None:
        parent.child_ids = [a.server_order_id, b.server_order_id]
        a.parent_id = b.parent_id = parent.server_order_id
        a.status = b.status = OrderStatus.PENDING_CHILD


def bracket_specs(symbol: str, side: Side, qty: float, entry_type: OrderType, entry_price: int | None,
                  stop_price: int | None, target_price: int | None,
                  client_order_ids: tuple[str, str, str]) -> tuple[OrderSpec, OrderSpec, OrderSpec]:
    """Parent, target (limit) and stop specs of a bracket (prices in ticks).

    Returns
    -------
    (OrderSpec, OrderSpec, OrderSpec)
        ``(parent, target, stop)``; the exits are on ``side.opposite``.

    Raises
    ------
    ValueError
        If ``side`` is not +1 / -1.
    """
    side = Side(side)
    exit_side = side.opposite
    parent = OrderSpec(symbol, side, qty, entry_type, entry_price, None, client_order_ids[0])
    target = OrderSpec(symbol, exit_side, qty, OrderType.LIMIT, target_price, None, client_order_ids[1])
    stop = OrderSpec(symbol, exit_side, qty, OrderType.STOP, stop_price, None, client_order_ids[2])
    return parent, target, stop


def child_qty(parent: Order, child: Order, orders: Mapping[str, Order]) -> float:
    """Total quantity ``child`` must have after a fill of ``parent`` (contracts).

    Its own filled quantity plus what the parent filled and the pair has not closed yet.
    """
    closed = sum(orders[x].filled_qty for x in parent.child_ids if x in orders)
    return child.filled_qty + max(parent.filled_qty - closed, 0.0)


def after_leg_fill(leg: Order, other: Order) -> tuple[str, float] | None:
    """What a fill of OCO ``leg`` does to ``other`` (not final).

    Returns
    -------
    tuple or None
        ``(CANCEL_OTHER, 0.0)``, ``(REDUCE_OTHER, new total quantity)`` or None (nothing).
    """
    if leg.status == OrderStatus.FILLED or leg.partial_fill_handling == PartialFillHandling.IMMEDIATE_CANCEL:
        return CANCEL_OTHER, 0.0
    new_qty = other.filled_qty + leg.remaining
    if other.status == OrderStatus.PENDING_CHILD or abs(new_qty - other.qty) > 1e-9:
        return REDUCE_OTHER, new_qty
    return None


def open_children(parent: Order, orders: Mapping[str, Order]) -> list[Order]:
    """The children of ``parent`` that are not final (to cancel with it)."""
    out = []
    for cid in parent.child_ids:
        c = orders.get(cid)
        if c is not None and not c.is_final:
            out.append(c)
    return out


def other_leg(o: Order, orders: Mapping[str, Order]) -> Order | None:
    """The other leg of ``o``'s OCO pair when it is not final, else None."""
    other = orders.get(o.oco_id) if o.oco_id else None
    if other is None or other.is_final:
        return None
    return other
