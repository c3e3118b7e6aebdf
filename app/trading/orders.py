"""Tickets, brackets and order requests: what the trader confirms and what the app sends.

The vocabulary (sides, order types, statuses, order events, fills, positions) is
:mod:`app.core.orders`; this module holds only what is genuinely trading-side: the ticket the
trader confirms, the order requests a bracket is made of, their roles inside the ticket, the
intents the risk gate checks, and the local picture of a working order.

Units: prices are int64 **ticks** (``price / tick_size``), quantities are whole contracts,
money is USD, times are int64 ns since the UNIX epoch UTC. Sides are the trading side of
:class:`app.core.orders.Side` (``+1`` buy / long, ``-1`` sell / short, the same convention as
:class:`app.analysis.frame.Signal`); the DTC ``BuySellEnum`` (1 buy, 2 sell) is converted only
in :mod:`app.dtc.adapter`.

Nothing here does I/O; brokers, the risk gate and the journal exchange these objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from app.core.orders import OrderStatus, OrderType, Side

#: entry types a ticket may have (a stop-limit entry needs two prices: orders only, no ticket)
TICKET_ORDER_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP)

# order roles inside a ticket
ROLE_ENTRY = "entry"
ROLE_STOP = "stop"
ROLE_TARGET = "target"
ROLE_FLATTEN = "flatten"
ROLES = (ROLE_ENTRY, ROLE_STOP, ROLE_TARGET, ROLE_FLATTEN)

# intents checked by the risk gate
INTENT_OPEN = "open"  # may add risk: every rule applies
INTENT_REDUCE = "reduce"  # only reduces an existing position (flatten, kill switch)


def now_ns() -> int:
    """Wall-clock time, int64 ns since the UNIX epoch (UTC)."""
    return time.time_ns()


def side_name(side: int) -> str:
    """``"BUY"`` for +1, ``"SELL"`` for -1.

    Raises
    ------
    ValueError
        If ``side`` is not +1 or -1.
    """
    try:
        return Side(side).name
    except ValueError:
        raise ValueError(f"side must be +1 or -1, got {side!r}") from None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order as it is sent (journaled first, then written to the broker).

    Attributes
    ----------
    client_order_id : str
        Unique across sessions and restarts (see :meth:`app.trading.journal.Journal.next_client_order_id`);
        at most 31 characters (DTC ``ORDER_ID_LENGTH`` 32 with its NUL).
    symbol, account : str
        Opaque symbol of the trade service and trade account (``Sim1``; empty for paper).
    side : Side or int
        +1 buy, -1 sell (trading side).
    order_type : OrderType or str
        ``market``, ``limit``, ``stop`` or ``stop_limit``.
    qty : int
        Contracts, > 0.
    price : int or None
        Limit or stop price in ticks (None for market orders).
    role : str
        ``entry``, ``stop``, ``target`` or ``flatten``.
    parent_id : str
        ClientOrderID of the bracket parent for ``stop``/``target`` children, else ``""``.
    oco_id : str
        ClientOrderID of the OCO sibling, else ``""``.
    ticket_id : int
        The journal id of the confirmed ticket (0 for kill-switch flattens).
    price2 : int or None
        Ticks: the limit of a ``stop_limit`` order (its ``price`` is the stop); None otherwise.

    Raises
    ------
    ValueError
        From the constructor, naming the field, when a value is out of its domain.
    """

    client_order_id: str
    symbol: str
    account: str
    side: int
    order_type: str
    qty: int
    price: int | None = None
    role: str = ROLE_ENTRY
    parent_id: str = ""
    oco_id: str = ""
    ticket_id: int = 0
    price2: int | None = None

    def __post_init__(self):
        if self.side not in (1, -1):
            raise ValueError(f"OrderRequest.side must be +1 or -1, got {self.side!r}")
        if self.order_type not in OrderType._value2member_map_:
            raise ValueError(f"OrderRequest.order_type must be one of {tuple(t.value for t in OrderType)}, "
                             f"got {self.order_type!r}")
        # the vocabulary's members, whatever the caller passed (+1 / "limit" / OrderType.LIMIT)
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))
        if int(self.qty) != self.qty or self.qty <= 0:
            raise ValueError(f"OrderRequest.qty must be a positive whole number of contracts, got {self.qty!r}")
        if self.order_type.needs_price and self.price is None:
            raise ValueError(f"OrderRequest.price is required for a {self.order_type} order")
        if self.order_type.needs_price2 and self.price2 is None:
            raise ValueError("OrderRequest.price2 (the limit) is required for a stop_limit order")
        if self.role not in ROLES:
            raise ValueError(f"OrderRequest.role must be one of {ROLES}, got {self.role!r}")
        if not self.client_order_id or len(self.client_order_id.encode()) > 31:
            raise ValueError(f"OrderRequest.client_order_id must be 1..31 bytes, got {self.client_order_id!r}")


@dataclass(frozen=True, slots=True)
class Bracket:
    """An entry with optional protective stop and target (the children are OCO).

    DTC procedure (notes 2.2 and 7): the entry goes as ``SUBMIT_NEW_SINGLE_ORDER`` with
    ``IsParentOrder = 1`` followed by one ``SUBMIT_NEW_OCO_ORDER`` whose
    ``ParentTriggerClientOrderID`` is the entry's ClientOrderID; the children stay
    ``PENDING_CHILD`` until the entry fills; the fill or cancel of one child cancels the other.
    """

    entry: OrderRequest
    stop: OrderRequest | None = None
    target: OrderRequest | None = None

    @property
    def orders(self) -> tuple[OrderRequest, ...]:
        """Entry first, then stop and target when present."""
        return tuple(o for o in (self.entry, self.stop, self.target) if o is not None)


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """What the trader sees and confirms (before any order exists).

    Attributes
    ----------
    symbol : str
    side : int
        +1 long, -1 short.
    qty : int
        Contracts.
    order_type : OrderType or str
        Entry type: ``market`` or ``limit`` (``stop`` allowed for breakout entries).
    entry : int or None
        Entry price in ticks (None for a market entry; then ``ref_price`` is used for risk).
    stop, target : int or None
        Protective stop and profit target, ticks (None = no such child).
    ref_price : int
        Reference price in ticks for risk of a market entry (last trade or best opposite quote).
    source : str
        ``signal``, ``ladder`` or ``manual``.
    signal_id : int
        The signal's id when ``source == "signal"``, else 0.
    tick_size, tick_value : float
        Price units per tick and USD per tick per contract.
    sizing_note : str
        How the suggested size was computed (a signal's risk arithmetic), shown in the ticket.
    """

    symbol: str
    side: int
    qty: int
    order_type: str = OrderType.LIMIT
    entry: int | None = None
    stop: int | None = None
    target: int | None = None
    ref_price: int = 0
    source: str = "manual"
    signal_id: int = 0
    tick_size: float = 0.25
    tick_value: float = 12.5
    account: str = ""
    ticket_id: int = 0  # set by the journal when first recorded
    sizing_note: str = ""

    def with_(self, **kw) -> "OrderTicket":
        """A copy with fields changed."""
        return replace(self, **kw)

    @property
    def entry_ref(self) -> int:
        """Entry price used for risk (ticks): ``entry``, or ``ref_price`` for a market entry."""
        return int(self.entry) if self.entry is not None else int(self.ref_price)

    @property
    def risk_ticks(self) -> int | None:
        """Ticks from entry to stop (>= 0), None without a stop."""
        if self.stop is None:
            return None
        return max(0, (self.entry_ref - int(self.stop)) * self.side)

    @property
    def reward_ticks(self) -> int | None:
        """Ticks from entry to target (>= 0), None without a target."""
        if self.target is None:
            return None
        return max(0, (int(self.target) - self.entry_ref) * self.side)

    @property
    def risk_usd(self) -> float | None:
        """``risk_ticks * tick_value * qty`` in USD, None without a stop."""
        r = self.risk_ticks
        return None if r is None else r * self.tick_value * self.qty

    @property
    def reward_usd(self) -> float | None:
        """``reward_ticks * tick_value * qty`` in USD, None without a target."""
        r = self.reward_ticks
        return None if r is None else r * self.tick_value * self.qty

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when the ticket is not a consistent bracket."""
        if self.side not in (1, -1):
            raise ValueError(f"ticket.side must be +1 or -1, got {self.side!r}")
        if int(self.qty) != self.qty or self.qty <= 0:
            raise ValueError(f"ticket.qty must be a positive whole number, got {self.qty!r}")
        if self.order_type not in TICKET_ORDER_TYPES:
            raise ValueError(f"ticket.order_type must be one of {tuple(t.value for t in TICKET_ORDER_TYPES)}, "
                             f"got {self.order_type!r}")
        if self.order_type != OrderType.MARKET and self.entry is None:
            raise ValueError(f"ticket.entry is required for a {self.order_type} entry")
        if (self.stop is None) != (self.target is None):
            raise ValueError("ticket.stop and ticket.target go together (a DTC bracket child pair is OCO)")
        ref = self.entry_ref
        if self.stop is not None and (ref - self.stop) * self.side <= 0:
            raise ValueError(f"ticket.stop {self.stop} must be on the losing side of entry {ref} (side {self.side:+d})")
        if self.target is not None and (self.target - ref) * self.side <= 0:
            raise ValueError(f"ticket.target {self.target} must be on the winning side of entry {ref} (side {self.side:+d})")


@dataclass(slots=True)
class WorkingOrder:
    """The local picture of one order, kept up to date from the broker's updates.

    Attributes
    ----------
    request : OrderRequest
        The order as sent, or as adopted from the venue's report after a restart (its ``role``,
        ``parent_id`` and ``oco_id`` then come from the journal or the venue's parent/OCO links).
    state : OrderStatus
        Latest state; once final (filled, canceled, rejected) it is never reverted (only a fill
        report may still turn a canceled or rejected order FILLED).
    server_order_id : str
    filled_qty : int
        Contracts.
    avg_fill_price : float
        Float ticks.
    info : str
        The venue's latest text.
    updated_ns : int
        Wall ns of the latest change.
    seq : int
        The broker's sequence number (:meth:`app.trading.broker.Broker._stamp`) of the send or the
        venue report applied last: venue reports are numbered in the order they arrive on the one
        connection, which is the order in which the venue produced them.
    """

    request: OrderRequest
    state: OrderStatus = OrderStatus.SENT
    server_order_id: str = ""
    filled_qty: int = 0
    avg_fill_price: float = 0.0  # ticks (may be fractional for averages)
    info: str = ""
    updated_ns: int = field(default_factory=now_ns)
    seq: int = 0

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id
