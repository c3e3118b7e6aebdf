"""DTC numbers <-> the trading vocabulary of :mod:`app.core.orders`: the ONE place they meet.

The DTC server of the simulator (:mod:`app.sim.server`) and the DTC broker
(:mod:`app.trading.dtc_broker`) convert every ``BuySellEnum``, ``OrderTypeEnum``,
``OrderStatusEnum``, ``TimeInForceEnum`` and ``PartialFillHandlingEnum`` number here and nowhere
else. This module imports :mod:`app.core` and the protocol's own messages only.

Sides: DTC writes buy as 1 and sell as 2; the vocabulary's :class:`~app.core.orders.Side` is
+1 / -1 (trading side, not the bid/ask book side).
"""

from __future__ import annotations

from app.core.orders import OrderStatus, OrderType, PartialFillHandling, Side, TimeInForce
from app.dtc import messages as M

_SIDE_TO_DTC = {Side.BUY: int(M.BuySell.BUY), Side.SELL: int(M.BuySell.SELL)}
_SIDE_FROM_DTC = {v: k for k, v in _SIDE_TO_DTC.items()}

_TYPE_TO_DTC = {
    OrderType.MARKET: int(M.OrderType.ORDER_TYPE_MARKET),
    OrderType.LIMIT: int(M.OrderType.ORDER_TYPE_LIMIT),
    OrderType.STOP: int(M.OrderType.ORDER_TYPE_STOP),
    OrderType.STOP_LIMIT: int(M.OrderType.ORDER_TYPE_STOP_LIMIT),
}
_TYPE_FROM_DTC = {v: k for k, v in _TYPE_TO_DTC.items()}

_S = M.OrderStatus
_STATUS_TO_DTC = {
    OrderStatus.SENT: int(_S.ORDER_STATUS_ORDER_SENT),
    OrderStatus.PENDING_OPEN: int(_S.ORDER_STATUS_PENDING_OPEN),
    OrderStatus.PENDING_CHILD: int(_S.ORDER_STATUS_PENDING_CHILD),
    OrderStatus.OPEN: int(_S.ORDER_STATUS_OPEN),
    OrderStatus.PENDING_CANCEL: int(_S.ORDER_STATUS_PENDING_CANCEL),
    OrderStatus.FILLED: int(_S.ORDER_STATUS_FILLED),
    OrderStatus.CANCELED: int(_S.ORDER_STATUS_CANCELED),
    OrderStatus.REJECTED: int(_S.ORDER_STATUS_REJECTED),
    OrderStatus.PARTIALLY_FILLED: int(_S.ORDER_STATUS_PARTIALLY_FILLED),
    OrderStatus.UNKNOWN: int(_S.ORDER_STATUS_UNSPECIFIED),
}
_STATUS_FROM_DTC = {v: k for k, v in _STATUS_TO_DTC.items() if k is not OrderStatus.UNKNOWN}
# a pending cancel-replace is still a working order waiting for the venue's answer
_STATUS_FROM_DTC[int(_S.ORDER_STATUS_PENDING_CANCEL_REPLACE)] = OrderStatus.PENDING_CANCEL

_TIF_TO_DTC = {
    TimeInForce.DAY: int(M.TimeInForce.TIF_DAY),
    TimeInForce.GTC: int(M.TimeInForce.TIF_GOOD_TILL_CANCELED),
    TimeInForce.GTD: int(M.TimeInForce.TIF_GOOD_TILL_DATE_TIME),
    TimeInForce.IOC: int(M.TimeInForce.TIF_IMMEDIATE_OR_CANCEL),
    TimeInForce.AON: int(M.TimeInForce.TIF_ALL_OR_NONE),
    TimeInForce.FOK: int(M.TimeInForce.TIF_FILL_OR_KILL),
}
_TIF_FROM_DTC = {v: k for k, v in _TIF_TO_DTC.items()}

_PFH_TO_DTC = {
    PartialFillHandling.REDUCE: int(M.PartialFillHandling.PARTIAL_FILL_HANDLING_REDUCE_QUANTITY),
    PartialFillHandling.IMMEDIATE_CANCEL: int(M.PartialFillHandling.PARTIAL_FILL_HANDLING_IMMEDIATE_CANCEL),
}
_PFH_FROM_DTC = {v: k for k, v in _PFH_TO_DTC.items()}


def side_to_dtc(side: int) -> int:
    """Trading side (+1 / -1) -> DTC ``BuySellEnum`` (1 buy, 2 sell).

    Raises
    ------
    ValueError
        If ``side`` is not +1 or -1.
    """
    return _SIDE_TO_DTC[Side(side)]


def side_from_dtc(buy_sell: int) -> Side:
    """DTC ``BuySellEnum`` (1 buy, 2 sell) -> :class:`Side`.

    Raises
    ------
    ValueError
        If the number is not 1 or 2 (0 is DTC's "unset").
    """
    try:
        return _SIDE_FROM_DTC[int(buy_sell)]
    except KeyError:
        raise ValueError(f"unsupported side {int(buy_sell)} (DTC BuySell: 1 buy, 2 sell)") from None


def order_type_to_dtc(order_type: str) -> int:
    """:class:`OrderType` (or its value) -> DTC ``OrderTypeEnum`` (1 market .. 4 stop-limit).

    Raises
    ------
    ValueError
        If ``order_type`` is not one of the vocabulary's order types.
    """
    return _TYPE_TO_DTC[OrderType(order_type)]


def order_type_from_dtc(number: int) -> OrderType:
    """DTC ``OrderTypeEnum`` -> :class:`OrderType` (1 market, 2 limit, 3 stop, 4 stop-limit).

    Raises
    ------
    ValueError
        For any other number (unset, market-if-touched, ...), naming it.
    """
    try:
        return _TYPE_FROM_DTC[int(number)]
    except KeyError:
        raise ValueError(f"order type {int(number)} not supported (market, limit, stop, stop-limit)") from None


def status_to_dtc(status: str) -> int:
    """:class:`OrderStatus` -> DTC ``OrderStatusEnum`` (``UNKNOWN`` -> 0, unspecified).

    Raises
    ------
    ValueError
        If ``status`` is not one of the vocabulary's statuses.
    """
    return _STATUS_TO_DTC[OrderStatus(status)]


def status_from_dtc(number: int) -> OrderStatus | None:
    """DTC ``OrderStatusEnum`` -> :class:`OrderStatus`; None for 0 (unspecified) or unknown numbers.

    Both pending cancel (6) and pending cancel-replace (5) read as ``PENDING_CANCEL``.
    """
    return _STATUS_FROM_DTC.get(int(number))


def tif_to_dtc(tif: str) -> int:
    """:class:`TimeInForce` -> DTC ``TimeInForceEnum``.

    Raises
    ------
    ValueError
        If ``tif`` is not one of the vocabulary's values.
    """
    return _TIF_TO_DTC[TimeInForce(tif)]


def tif_from_dtc(number: int) -> TimeInForce:
    """DTC ``TimeInForceEnum`` -> :class:`TimeInForce`; unset (0) or unknown numbers read as DAY."""
    return _TIF_FROM_DTC.get(int(number), TimeInForce.DAY)


def pfh_to_dtc(handling: str) -> int:
    """:class:`PartialFillHandling` -> DTC ``PartialFillHandlingEnum``.

    Raises
    ------
    ValueError
        If ``handling`` is not one of the vocabulary's values.
    """
    return _PFH_TO_DTC[PartialFillHandling(handling)]


def pfh_from_dtc(number: int) -> PartialFillHandling:
    """DTC ``PartialFillHandlingEnum`` -> :class:`PartialFillHandling`; unset or unknown read as REDUCE."""
    return _PFH_FROM_DTC.get(int(number), PartialFillHandling.REDUCE)
