"""The one trading vocabulary: sides, order types, statuses, orders, order events, fills, positions.

Every part of MIA Elite that speaks about orders uses these names: the matching engine of the
exchange simulator (:mod:`app.sim.matching`), the DTC server (:mod:`app.sim.server`), the paper
broker (:mod:`app.trading.paper`), the DTC broker (:mod:`app.trading.dtc_broker`), the trading
session and the journal. Nothing here does I/O or knows a wire format.

Conventions
-----------
* **Trading side** (:class:`Side`): ``BUY = +1`` (long), ``SELL = -1`` (short), the same sign as
  :attr:`app.analysis.frame.Signal.side` and a signed position quantity. It is **not** the book
  side of :mod:`app.core.events` (``SIDE_BID`` / ``SIDE_ASK``, where resting liquidity sits, and
  the aggressor side of a trade). A buy order takes the asks and rests on the bid.
* **DTC numbers** (``BuySellEnum`` 1 buy / 2 sell, ``OrderTypeEnum``, ``OrderStatusEnum``,
  ``TimeInForceEnum``, ``PartialFillHandlingEnum``) are converted to and from this vocabulary in
  exactly one place, :mod:`app.dtc.adapter`.
* Order types, statuses, time in force and partial-fill handling are string enums
  (:class:`enum.StrEnum`): they compare equal to, journal as and display as their lower-case value
  (``"market"``, ``"stop_limit"``, ``"partially_filled"``...).

Units: prices are int64 **ticks** (``price / tick_size``), average prices float ticks, quantities
contracts, money USD, times int64 ns since the UNIX epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Side(IntEnum):
    """Trading side of an order or a fill: ``BUY = +1``, ``SELL = -1``.

    Distinct from the book side (bid/ask, :data:`app.core.events.SIDE_BID` /
    :data:`~app.core.events.SIDE_ASK`) of market events. DTC's ``BuySellEnum`` (1 buy, 2 sell)
    maps to it only in :mod:`app.dtc.adapter`.
    """

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> "Side":
        """The other side (the exit side of a position opened on this one)."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """Order type; stop-limit is its own type (a stop that becomes a limit at ``price2``)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    @property
    def needs_price(self) -> bool:
        """True for every type but MARKET (limit price, or the stop's trigger price)."""
        return self is not OrderType.MARKET

    @property
    def needs_price2(self) -> bool:
        """True for STOP_LIMIT (``price2`` is the limit after the stop triggers)."""
        return self is OrderType.STOP_LIMIT


class OrderStatus(StrEnum):
    """Status of an order, on the venue (simulator, Sierra Chart) and in the local picture.

    ``SENT`` is client-side only (journaled and written on the wire, not acknowledged yet);
    ``PENDING_CHILD`` is a bracket child waiting for its parent's fill; ``PENDING_CANCEL`` a
    cancel (or cancel-replace) asked for and not confirmed yet; ``UNKNOWN`` an order the journal
    says was sent but the venue did not report at reconciliation (never resent).
    """

    SENT = "sent"
    PENDING_OPEN = "pending_open"
    PENDING_CHILD = "pending_child"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def working(self) -> bool:
        """True while the order may still fill (not filled, canceled, rejected or unknown)."""
        return self in _WORKING

    @property
    def final(self) -> bool:
        """True once the order can never change again (FILLED, CANCELED, REJECTED)."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})
_WORKING = frozenset(
    {
        OrderStatus.SENT,
        OrderStatus.PENDING_OPEN,
        OrderStatus.PENDING_CHILD,
        OrderStatus.OPEN,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)


class TimeInForce(StrEnum):
    """Time in force: DAY and GTC (and GTD, AON) rest; IOC and FOK never rest."""

    DAY = "day"
    GTC = "gtc"
    GTD = "gtd"
    IOC = "ioc"
    AON = "aon"
    FOK = "fok"


class PartialFillHandling(StrEnum):
    """What a partial fill of one OCO leg does to the other leg.

    ``REDUCE``: the other leg's quantity is reduced so both keep the same remaining quantity;
    ``IMMEDIATE_CANCEL``: the other leg is cancelled at the first fill.
    """

    REDUCE = "reduce"
    IMMEDIATE_CANCEL = "immediate_cancel"


@dataclass
class OrderSpec:
    """What a trader asks a venue (the matching engine) for.

    Attributes
    ----------
    symbol : str
    side : Side
        Trading side (+1 buy, -1 sell).
    qty : float
        Contracts (> 0).
    order_type : OrderType
    price : int or None
        Ticks. LIMIT: the limit; STOP / STOP_LIMIT: the stop (trigger) price.
    price2 : int or None
        Ticks. STOP_LIMIT: the limit after triggering.
    client_order_id : str
    tif : TimeInForce
    account : str
        Empty = the venue's account.
    """

    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    price: int | None = None
    price2: int | None = None
    client_order_id: str = ""
    tif: TimeInForce = TimeInForce.DAY
    account: str = ""


@dataclass
class Order:
    """An order as the venue (the matching engine) tracks it; reports carry copies.

    Attributes
    ----------
    server_order_id : str
        The venue's id (``""`` for a rejected request that never became an order).
    symbol, account, client_order_id : str
    side : Side
    order_type : OrderType
    qty : float
        Total contracts (filled included).
    price, price2 : int or None
        Ticks (see :class:`OrderSpec`).
    tif : TimeInForce
    status : OrderStatus
    filled_qty : float
        Contracts filled so far.
    avg_fill_price : float or None
        Float ticks.
    last_fill_price : int or None
        Ticks of the latest fill; ``last_fill_qty`` its contracts, ``last_fill_ns`` its time
        (ns), ``last_fill_id`` its execution id.
    parent_id : str or None
        Server id of the bracket parent (children only).
    oco_id : str or None
        Server id of the other OCO leg.
    child_ids : list of str
        Server ids of the bracket children (parents only).
    partial_fill_handling : PartialFillHandling
    triggered : bool
        A STOP / STOP_LIMIT whose stop price was reached.
    queue_ahead : float
        Contracts displayed ahead of a resting limit at its price.
    created_ns, updated_ns : int
        ns since the epoch, market time.
    info : str
        Last reason (rejection, cancel).
    """

    server_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: float
    price: int | None = None
    price2: int | None = None
    client_order_id: str = ""
    tif: TimeInForce = TimeInForce.DAY
    account: str = ""
    status: OrderStatus = OrderStatus.PENDING_OPEN
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    last_fill_price: int | None = None
    last_fill_qty: float = 0.0
    last_fill_ns: int = 0
    last_fill_id: str = ""
    parent_id: str | None = None
    oco_id: str | None = None
    child_ids: list = field(default_factory=list)
    partial_fill_handling: PartialFillHandling = PartialFillHandling.REDUCE
    triggered: bool = False
    queue_ahead: float = 0.0
    created_ns: int = 0
    updated_ns: int = 0
    info: str = ""

    @property
    def remaining(self) -> float:
        """Contracts still to fill (0 for final orders)."""
        if self.status in FINAL_STATUSES:
            return 0.0
        return max(self.qty - self.filled_qty, 0.0)

    @property
    def price_limit(self) -> int:
        """Ticks a resting order fills at: ``price`` (LIMIT) or ``price2`` (triggered STOP_LIMIT)."""
        if self.order_type == OrderType.STOP_LIMIT:
            return int(self.price2)
        return int(self.price)

    @property
    def is_working(self) -> bool:
        """OPEN or PARTIALLY_FILLED (can fill now)."""
        return self.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)

    @property
    def is_final(self) -> bool:
        """FILLED, CANCELED or REJECTED."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One order update as a broker reports it (from a DTC ORDER_UPDATE or the paper engine).

    Attributes
    ----------
    client_order_id, server_order_id : str
    state : OrderStatus
        The order's status after this update.
    symbol : str
    side : Side or int
        +1 buy, -1 sell; 0 when the venue did not say.
    order_type : OrderType or str
        ``""`` when the venue did not say.
    qty : int
        Total contracts.
    price, price2 : int or None
        Ticks (``price2``: the limit of a stop-limit).
    filled_qty : int
        Contracts filled so far.
    avg_fill_price : float
        Float ticks (0 before any fill).
    fill_qty, fill_price : int
        Contracts and ticks of the new fill this update reports (0 otherwise).
    exec_id : str
        Identifies that fill (unique per account), so a fill is never counted twice.
    reason, info : str
        Why the update was sent, and the venue's text.
    parent_server_id : str
        Server id of the bracket parent, else ``""``.
    ts_ns : int
        Fill time, ns since the epoch (0 when unknown).
    oco_server_id : str
        Server id of the other leg of an OCO pair (DTC ``OCOLinkedOrderServerOrderID``), else ``""``.
    """

    client_order_id: str
    server_order_id: str
    state: OrderStatus
    symbol: str = ""
    side: int = 0
    order_type: str = ""
    qty: int = 0
    price: int | None = None
    filled_qty: int = 0
    avg_fill_price: float = 0.0
    fill_qty: int = 0
    fill_price: int = 0
    exec_id: str = ""
    reason: str = ""
    info: str = ""
    parent_server_id: str = ""
    ts_ns: int = 0
    price2: int | None = None
    oco_server_id: str = ""


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A venue's report of one position (DTC POSITION_UPDATE or the paper engine).

    Attributes
    ----------
    symbol, account : str
    qty : int
        Signed contracts, negative = short.
    avg_price : float
        Float ticks (0 when flat).
    open_pnl_usd : float
        USD.
    """

    symbol: str
    account: str
    qty: int
    avg_price: float
    open_pnl_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (journaled with the realised P&L it produced).

    Attributes
    ----------
    client_order_id, server_order_id, exec_id, symbol : str
    side : Side or int
        +1 buy, -1 sell.
    qty : int
        Contracts.
    price : int
        Ticks.
    ts_ns : int
        ns since the epoch.
    commission_usd : float
    """

    client_order_id: str
    server_order_id: str
    exec_id: str
    symbol: str
    side: int
    qty: int
    price: int
    ts_ns: int
    commission_usd: float = 0.0
