"""Orders, brackets, tickets and positions: the trading model shared by every broker.

Units: prices are int64 **ticks** (``price / tick_size``), quantities are whole contracts,
money is USD, times are int64 ns since the UNIX epoch UTC. Sides are ``+1`` buy / long and
``-1`` sell / short (the same convention as :class:`app.analysis.frame.Signal`); the DTC
``BuySellEnum`` (1 buy, 2 sell) is converted only inside the DTC broker.

Nothing here does I/O; brokers, the risk gate and the journal exchange these objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import Enum

# order types (strings so that they journal and display as they are)
MARKET = "market"
LIMIT = "limit"
STOP = "stop"
ORDER_TYPES = (MARKET, LIMIT, STOP)

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
    """``"BUY"`` for +1, ``"SELL"`` for -1 (raises ``ValueError`` otherwise)."""
    if side == 1:
        return "BUY"
    if side == -1:
        return "SELL"
    raise ValueError(f"side must be +1 or -1, got {side!r}")


class OrderState(str, Enum):
    """Local order state, driven by the broker's order updates (DTC ``OrderStatusEnum``).

    ``SENT`` is client-side only (journaled and written on the wire, not acknowledged yet);
    ``PENDING_CHILD`` is a bracket child waiting for its parent's fill; ``UNKNOWN`` is an order
    the journal says was sent but the server did not report at reconciliation (never resent).
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
        """True once the order can never change again."""
        return self in (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED)


_WORKING = frozenset(
    {
        OrderState.SENT,
        OrderState.PENDING_OPEN,
        OrderState.PENDING_CHILD,
        OrderState.OPEN,
        OrderState.PARTIALLY_FILLED,
        OrderState.PENDING_CANCEL,
    }
)


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
    side : int
        +1 buy, -1 sell.
    order_type : str
        ``market``, ``limit`` or ``stop``.
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

    def __post_init__(self):
        if self.side not in (1, -1):
            raise ValueError(f"OrderRequest.side must be +1 or -1, got {self.side!r}")
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"OrderRequest.order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        if int(self.qty) != self.qty or self.qty <= 0:
            raise ValueError(f"OrderRequest.qty must be a positive whole number of contracts, got {self.qty!r}")
        if self.order_type != MARKET and self.price is None:
            raise ValueError(f"OrderRequest.price is required for a {self.order_type} order")
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
    order_type : str
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
    """

    symbol: str
    side: int
    qty: int
    order_type: str = LIMIT
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
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"ticket.order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        if self.order_type != MARKET and self.entry is None:
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
    """The local picture of one order, kept up to date from the broker's updates."""

    request: OrderRequest
    state: OrderState = OrderState.SENT
    server_order_id: str = ""
    filled_qty: int = 0
    avg_fill_price: float = 0.0  # ticks (may be fractional for averages)
    info: str = ""
    updated_ns: int = field(default_factory=now_ns)

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One order update from a broker (normalised from DTC ORDER_UPDATE or the paper engine).

    ``fill_qty``/``fill_price`` (ticks) are set only on the update that reports a new fill;
    ``exec_id`` identifies that fill (unique per account) so a fill is never counted twice.
    """

    client_order_id: str
    server_order_id: str
    state: OrderState
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


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A broker's report of one position (DTC POSITION_UPDATE or the paper engine)."""

    symbol: str
    account: str
    qty: int  # signed contracts, negative = short
    avg_price: float  # ticks
    open_pnl_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (journaled with the realised P&L it produced)."""

    client_order_id: str
    server_order_id: str
    exec_id: str
    symbol: str
    side: int
    qty: int
    price: int  # ticks
    ts_ns: int
    commission_usd: float = 0.0
