"""The matching engine: the ONE fill model of MIA Elite (built-in DTC server and paper broker).

A plain library: no DTC, no asyncio, no Qt. It is fed the market as
:data:`app.core.events.EVENT_DTYPE` batches (:meth:`FillEngine.on_market`), accepts orders
(market, limit, stop, stop-limit, OCO pairs and brackets), fills them against the book and the
trades it has seen, keeps positions and P&L in USD, and reports everything as plain event records
(:class:`OrderReport`, :class:`~app.sim.account.PositionEvent`,
:class:`~app.sim.account.BalanceEvent`) to its listeners, in the order things happened. The
vocabulary (sides, order types, statuses, :class:`~app.core.orders.OrderSpec`,
:class:`~app.core.orders.Order`) is :mod:`app.core.orders`; positions and money are
:mod:`app.sim.account`; OCO and bracket linkage rules :mod:`app.sim.oco`. The DTC server turns them into ``ORDER_UPDATE`` / ``POSITION_UPDATE`` /
``ACCOUNT_BALANCE_UPDATE``; the paper broker into its own order state.

The fill model is written down in ``docs/fill-model.md``; in short:

* **Market** orders walk the opposite side of the current book best level first, taking each
  level's displayed size. When the visible book is exhausted the remainder fills at the last
  (worst) level walked. With an empty opposite side the order is rejected ("no liquidity").
  ``slippage_ticks`` is added against the trader on every market/stop fill.
* **Limit** orders that are marketable when they arrive (or when a stop-limit triggers) fill like
  a market order limited to their price; the rest rests. A resting limit fills at its own price
  (no price improvement) when a trade prints **through** it (strictly better: below a buy, above
  a sell): the whole remaining quantity; or **at** it: the displayed size that was at that price
  when the order started resting (``queue_ahead``) is consumed first by trades at that price, the
  overflow fills the order. ``queue_ahead`` also shrinks to the level's size when the level
  shrinks below it (cancellations ahead).
* **Stop** orders trigger on a trade at or through the stop price (buy stop: trade >= stop; sell
  stop: trade <= stop) and then fill as a market order (stop-limit: become a limit at ``price2``).
* **Brackets**: a parent with two OCO children (target, stop). Children are ``PENDING_CHILD``
  until the parent fills; their quantity follows the parent's filled quantity. OCO: a fill of one
  leg reduces the other so both keep the same remaining quantity (``PartialFillHandling.REDUCE``)
  or cancels it (``IMMEDIATE_CANCEL``); a full fill or a cancel of one leg cancels the other.
  Cancelling an unfilled parent cancels its children.

Prices are int64 **ticks** everywhere in this module (``Instrument.to_ticks``); average prices are
float ticks. Money is USD: ``ticks * tick_value * contracts``. Quantities are contracts (float,
whole numbers for futures). Times are ns since the epoch: the time of the last market event seen
(replay time), not the wall clock.
"""

from __future__ import annotations

import collections
import copy
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from app.core.events import KIND_DEPTH, KIND_TRADE, SIDE_ASK, SIDE_BID, Instrument
from app.core.orders import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    PartialFillHandling,
    Side,
    TimeInForce,
)
from app.market.refbook import ReferenceBook
from app.sim import oco
from app.sim.account import Account, BalanceEvent, Position, PositionEvent

log = logging.getLogger(__name__)


# report kinds (OrderReport.kind)
EV_ACCEPTED = "accepted"
EV_REJECTED = "rejected"
EV_UPDATED = "updated"  # status/quantity change without a fill (child activated, OCO reduced, stop triggered)
EV_PARTIALLY_FILLED = "partially_filled"
EV_FILLED = "filled"
EV_CANCELLED = "cancelled"
EV_CANCEL_REJECTED = "cancel_rejected"
EV_REPLACED = "replaced"
EV_REPLACE_REJECTED = "replace_rejected"
#: the kinds that refuse a request (they carry the request's handle, see OrderReport.request)
REJECTIONS = frozenset({EV_REJECTED, EV_CANCEL_REJECTED, EV_REPLACE_REJECTED})


@dataclass(frozen=True)
class OrderReport:
    """Something happened to an order (the engine's report; brokers and the server translate it).

    Attributes
    ----------
    kind : str
        One of ``accepted, rejected, updated, partially_filled, filled, cancelled,
        cancel_rejected, replaced, replace_rejected``.
    order : Order
        A copy of the order after the change (for rejections of unknown orders, a stub with
        ``server_order_id == ""``).
    ts : int
        ns since epoch (market time).
    fill_qty : float
        Contracts filled by this report (fills only).
    fill_price : int or None
        Ticks of this fill (fills only).
    text : str
        Reason (rejections) or detail.
    request : object or None
        On a rejection (:data:`REJECTIONS`): the ``request`` handle given to the engine call
        whose handling refused it (the DTC server passes the connection, so the refusal goes
        to the client that asked and to no other). None on every other report and on
        rejections caused by market data (a triggered stop with no liquidity).
    """

    kind: str
    order: Order
    ts: int
    fill_qty: float = 0.0
    fill_price: int | None = None
    text: str = ""
    request: Any = None


EngineEvent = OrderReport | PositionEvent | BalanceEvent


class FillEngine:
    """Matching engine for any number of accounts and symbols, over one book per symbol.

    Parameters
    ----------
    instruments : iterable of Instrument
        Symbols the engine trades (tick value for P&L). More via :meth:`add_instrument`.
    account : str
        The default account's name (Sierra-style ``Sim1``); more accounts via
        :meth:`add_account`. Every account has its own orders, positions and money; all of
        them trade against the same book.
    starting_balance : float
        USD cash at start, of every account.
    commission_per_contract : float or mapping of str to float
        USD per contract per fill (entries and exits), one figure or per symbol
        (``app.sim.account.Account``).
    slippage_ticks : int
        Ticks added against the trader on every market and stop fill.
    id_prefix : str
        Prefix of server order ids (``"P"`` -> ``P1``, ``P2``...).
    history : int
        Terminal orders (filled, cancelled, rejected) kept in :attr:`orders` for lookups
        (a cancel of a filled order is answered "already FILLED"); older ones are forgotten,
        oldest first, so memory stays bounded however many orders are placed.
    max_open_orders : int or None
        Most non-final orders per account; a new order beyond it is rejected (None: no limit).
        Every trade is matched against the working orders of its symbol, so this bounds the
        work per trade.
    max_order_qty : float or None
        Largest quantity of one order, contracts (None: no limit).
    whole_contracts : bool
        Quantities must be whole contracts (futures; the DTC server sets it). Fractional
        quantities (crypto paper trading) are allowed when False.

    Attributes
    ----------
    books : dict of str to ReferenceBook
        The engine's own book per symbol (what market orders walk).
    orders : dict of str to Order
        Orders by server id (live objects: do not mutate): every non-final order and the last
        ``history`` terminal ones.
    ledger : Account
        Positions, P&L and balance of the default account (:mod:`app.sim.account`).
    accounts : dict of str to Account
        Every account by name, the default one included.

    Notes
    -----
    Listeners (``add_listener``) are called synchronously, in order, with :class:`OrderReport`,
    :class:`~app.sim.account.PositionEvent` and :class:`~app.sim.account.BalanceEvent` records.
    A listener that raises is logged and does not stop the engine.

    The order-entry calls (:meth:`submit`, :meth:`submit_oco`, :meth:`submit_bracket`,
    :meth:`cancel`, :meth:`replace`, :meth:`flatten`) take an optional ``request`` handle (any
    object: the DTC server passes the connection). A rejection produced while handling the call
    carries it (:attr:`OrderReport.request`), so it can be routed to whoever asked.
    """

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        account: str = "Sim1",
        starting_balance: float = 100_000.0,
        commission_per_contract: float | Mapping[str, float] = 0.0,
        slippage_ticks: int = 0,
        id_prefix: str = "",
        history: int = 10_000,
        max_open_orders: int | None = None,
        max_order_qty: float | None = None,
        whole_contracts: bool = False,
    ) -> None:
        self.max_order_qty = max_order_qty
        self.whole_contracts = bool(whole_contracts)
        self.account = account
        self.history = max(int(history), 0)
        self.max_open_orders = max_open_orders
        self.slippage_ticks = int(slippage_ticks)
        self.id_prefix = id_prefix
        self.instruments: dict[str, Instrument] = {}
        self.books: dict[str, ReferenceBook] = {}
        self.last_trade: dict[str, int] = {}
        self.orders: dict[str, Order] = {}
        self._working: dict[str, dict[str, Order]] = {}  # symbol -> id -> working order
        # every non-final order (working and pending children), per account, oldest first
        self._live: dict[str, dict[str, Order]] = {}
        self._coids: dict[tuple[str, str], Order] = {}  # (account, ClientOrderID) -> non-final order
        self._terminal: collections.deque[str] = collections.deque()  # ids of terminal orders kept, oldest first
        self._starting_balance = float(starting_balance)
        # one USD figure, or {symbol: USD} (Account validates either)
        self._commission = (dict(commission_per_contract) if isinstance(commission_per_contract, Mapping)
                            else float(commission_per_contract))
        self.accounts: dict[str, Account] = {}
        self.ledger = self.add_account(account)
        self.now_ns = 0
        self._ids = itertools.count(1)
        self._fill_ids = itertools.count(1)
        self._listeners: list[Callable[[EngineEvent], None]] = []
        for inst in instruments:
            self.add_instrument(inst)

    # ------------------------------------------------------------------ set-up
    def add_instrument(self, inst: Instrument) -> None:
        """Trade ``inst.symbol`` (creates its book and position)."""
        self.instruments[inst.symbol] = inst
        self.books.setdefault(inst.symbol, ReferenceBook())
        self._working.setdefault(inst.symbol, {})
        for acct in self.accounts.values():
            acct.add_instrument(inst)

    def add_account(self, name: str) -> Account:
        """The account called ``name``, created (flat, the starting balance, every instrument)
        when it does not exist yet."""
        acct = self.accounts.get(name)
        if acct is not None:
            return acct
        acct = Account(name, self._starting_balance, self._commission, self.mark)
        for inst in self.instruments.values():
            acct.add_instrument(inst)
        self.accounts[name] = acct
        return acct

    def ledger_of(self, account: str | None = None) -> Account:
        """The :class:`~app.sim.account.Account` called ``account`` (default: the engine's).

        Raises
        ------
        KeyError
            If there is no such account.
        """
        return self.ledger if account is None else self.accounts[account]

    def add_listener(self, fn: Callable[[EngineEvent], None]) -> None:
        """Call ``fn(event)`` for every engine event."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[EngineEvent], None]) -> None:
        """Stop calling ``fn`` (no error when absent)."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _emit(self, ev: EngineEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(ev)
            except Exception:  # a broken listener must not corrupt the engine
                log.exception("fill engine listener %r failed on %s", fn, type(ev).__name__)

    def _order_event(self, kind: str, o: Order, **kw) -> None:
        o.updated_ns = self.now_ns
        self._emit(OrderReport(kind=kind, order=copy.copy(o), ts=self.now_ns, **kw))

    # ------------------------------------------------------------------ queries
    def order(self, server_order_id: str) -> Order | None:
        """The order with this server id (live object; do not mutate), or None."""
        return self.orders.get(server_order_id)

    def open_orders(self, symbol: str | None = None, account: str | None = None) -> list[Order]:
        """Orders not final (working, pending child), oldest first per account, optionally of one
        symbol and/or one account. Costs O(non-final orders), never O(orders ever placed)."""
        books = self._live.values() if account is None else [self._live.get(account, {})]
        return [o for live in books for o in live.values() if symbol is None or o.symbol == symbol]

    def find_open(self, client_order_id: str, account: str | None = None) -> Order | None:
        """The non-final order of ``account`` (default: the engine's) with this ClientOrderID, or
        None (O(1); an empty ``client_order_id`` is never found)."""
        if not client_order_id:
            return None
        return self._coids.get((account or self.account, client_order_id))

    @property
    def positions(self) -> dict[str, Position]:
        """Position per symbol of the default account (live objects of :attr:`ledger`; do not
        mutate); other accounts: ``ledger_of(name).positions``."""
        return self.ledger.positions

    def position(self, symbol: str, account: str | None = None) -> Position:
        """Position of ``symbol`` in ``account`` (default: the engine's).

        Raises
        ------
        KeyError
            If the symbol is not traded by this engine or there is no such account.
        """
        return self.ledger_of(account).positions[symbol]

    def mark(self, symbol: str) -> float | None:
        """Mark price in float ticks: the last trade, else the book's mid, else None."""
        if symbol in self.last_trade:
            return float(self.last_trade[symbol])
        b = self.books.get(symbol)
        if b is None:
            return None
        bb, ba = b.best_bid(), b.best_ask()
        if bb is not None and ba is not None:
            return (bb + ba) / 2.0
        return None

    def open_pnl(self, symbol: str, account: str | None = None) -> float:
        """USD open P&L of ``symbol`` in ``account`` (default: the engine's) at :meth:`mark`
        (0 when flat or no mark).

        Raises
        ------
        KeyError
            If the symbol is not traded by this engine or there is no such account.
        """
        return self.ledger_of(account).open_pnl(symbol)

    def realized_pnl(self, account: str | None = None) -> float:
        """USD realised P&L of all symbols of ``account`` (default: the engine's), after commissions."""
        return self.ledger_of(account).realized_pnl()

    def cash_balance(self, account: str | None = None) -> float:
        """USD of ``account`` (default: the engine's): starting balance + realised P&L (commissions included)."""
        return self.ledger_of(account).cash_balance()

    def total_open_pnl(self, account: str | None = None) -> float:
        """USD open P&L over all symbols of ``account`` (default: the engine's)."""
        return self.ledger_of(account).total_open_pnl()

    # ------------------------------------------------------------------ market data
    def on_market(self, symbol: str, events: np.ndarray) -> None:
        """Feed one batch of market events for ``symbol``.

        Parameters
        ----------
        symbol : str
            Unknown symbols are ignored.
        events : numpy.ndarray
            Shape (n,), dtype :data:`app.core.events.EVENT_DTYPE`, time order. Depth events
            update the engine's book (``self.books[symbol]``); trades fill resting limit orders
            and trigger stops (rules in the module docstring).
        """
        book = self.books.get(symbol)
        if book is None or not len(events):
            return
        working = self._working[symbol]
        kinds = events["kind"]
        trade_idx = np.flatnonzero(kinds == KIND_TRADE)
        if not working:
            book.apply_batch(events)  # the outcome tracker hands over backlogs of 100k+ events
            self.now_ns = max(self.now_ns, int(events["ts"][-1]))
            if len(trade_idx):
                self.last_trade[symbol] = int(events["price"][trade_idx[-1]])
                for acct in self.accounts.values():
                    acct.track_extremes(symbol, events["price"][trade_idx])
            return
        start = 0
        for j in trade_idx.tolist():
            if j > start:
                self._apply_depth(symbol, book, events[start:j])
            t = events[j]
            self.now_ns = max(self.now_ns, int(t["ts"]))
            price = int(t["price"])
            self.last_trade[symbol] = price
            traded = np.array([price])
            for acct in self.accounts.values():
                acct.track_extremes(symbol, traded)
            self._on_trade(symbol, price, float(t["size"]))
            start = j + 1
        if start < len(events):
            self._apply_depth(symbol, book, events[start:])
        self.now_ns = max(self.now_ns, int(events["ts"][-1]))

    def _apply_depth(self, symbol: str, book: ReferenceBook, ev: np.ndarray) -> None:
        # one event at a time for the exchange batches a feed hands over (1 to a few hundred
        # events: 20 to 40 us a batch where apply()'s np.unique pass costs 120 to 250 us), one
        # numpy pass for long stretches (ReferenceBook.apply_batch; both give the same book)
        book.apply_batch(ev)
        self.now_ns = max(self.now_ns, int(ev["ts"][-1]))
        if not np.any(ev["kind"] == KIND_DEPTH):
            return
        for o in self._working[symbol].values():
            if o.order_type == OrderType.LIMIT or (o.order_type == OrderType.STOP_LIMIT and o.triggered):
                side = SIDE_BID if o.side == Side.BUY else SIDE_ASK
                o.queue_ahead = min(o.queue_ahead, book.size_at(side, o.price_limit))

    def _on_trade(self, symbol: str, price: int, size: float) -> None:
        # snapshot: fills change the working set
        for o in list(self._working[symbol].values()):
            if not o.is_working:
                continue
            if o.order_type == OrderType.STOP or (o.order_type == OrderType.STOP_LIMIT and not o.triggered):
                hit = price >= o.price if o.side == Side.BUY else price <= o.price
                if hit:
                    self._trigger(o, price)
                continue
            lim = o.price_limit
            if o.side == Side.BUY:
                through, at = price < lim, price == lim
            else:
                through, at = price > lim, price == lim
            if through:
                self._fill(o, o.remaining, lim)
            elif at:
                used = min(o.queue_ahead, size)
                o.queue_ahead -= used
                over = size - used
                if over > 0:
                    self._fill(o, min(over, o.remaining), lim)

    def _trigger(self, o: Order, trade_price: int | None = None, request: Any = None) -> None:
        o.triggered = True
        self._order_event(EV_UPDATED, o, text="stop triggered")
        if o.order_type == OrderType.STOP:
            self._fill_marketable(o, limit=None, start=trade_price, request=request)
        else:
            self._fill_marketable(o, limit=o.price2, start=trade_price, request=request)
            if o.is_working:
                self._start_resting(o)

    # ------------------------------------------------------------------ fills
    def _walk(self, o: Order, qty: float, limit: int | None, start: int | None = None) -> list[tuple[int, float]]:
        """Levels of the opposite side to take for ``qty`` (best first, up to ``limit``).

        ``start``: skip levels better than this price (buy: asks below it; sell: bids above
        it). A stop triggered by a trade at ``start`` uses it: in a sweep the trades print
        before the book updates, so the better levels are already gone.
        """
        book = self.books[o.symbol]
        side = SIDE_ASK if o.side == Side.BUY else SIDE_BID
        out = []
        left = qty
        for tick, size in book.levels(side):
            if start is not None and ((o.side == Side.BUY and tick < start) or (o.side == Side.SELL and tick > start)):
                continue
            if limit is not None and ((o.side == Side.BUY and tick > limit) or (o.side == Side.SELL and tick < limit)):
                break
            take = min(size, left)
            out.append((tick, take))
            left -= take
            if left <= 1e-9:
                return out
        if limit is None and out and left > 1e-9:
            tick, take = out[-1]
            out[-1] = (tick, take + left)  # remainder at the last (worst) level walked
        return out

    def _fill_marketable(self, o: Order, limit: int | None, start: int | None = None, request: Any = None) -> None:
        """Fill ``o`` against the book (market when ``limit`` is None); see :meth:`_walk`."""
        fills = self._walk(o, o.remaining, limit, start)
        if limit is None and not fills and start is not None:
            fills = [(start, o.remaining)]  # nothing left at or beyond the trigger trade: its price
        if limit is None and not fills:
            if o.filled_qty > 0:
                o.status = OrderStatus.CANCELED
                o.info = "no liquidity for the remainder"
                self._unwork(o)
                self._order_event(EV_CANCELLED, o, text=o.info)
            else:
                self._reject_live(o, "no liquidity on the opposite side of the book", request)
            return
        slip = self.slippage_ticks if limit is None else 0
        for tick, qty in fills:
            px = tick + slip if o.side == Side.BUY else tick - slip
            self._fill(o, qty, px, request)
            if o.is_final:
                break

    def _reject_live(self, o: Order, text: str, request: Any = None) -> None:
        o.status = OrderStatus.REJECTED
        o.info = text
        self._unwork(o)
        self._order_event(EV_REJECTED, o, text=text, request=request)
        for c in oco.open_children(o, self.orders):
            c.status = OrderStatus.CANCELED
            c.info = "parent rejected"
            self._unwork(c)
            self._order_event(EV_CANCELLED, c, text=c.info)

    def _unwork(self, o: Order) -> None:
        """``o`` became final: it leaves the working and live indexes and joins the bounded
        history of terminal orders (the oldest terminal order beyond ``history`` is forgotten)."""
        sid = o.server_order_id
        self._working.get(o.symbol, {}).pop(sid, None)
        if self._live.get(o.account, {}).pop(sid, None) is None:
            return  # not live (already retired)
        key = (o.account, o.client_order_id)
        if self._coids.get(key) is o:
            del self._coids[key]
        self._terminal.append(sid)
        while len(self._terminal) > self.history:
            old = self._terminal.popleft()
            gone = self.orders.get(old)
            if gone is not None and gone.is_final:
                del self.orders[old]

    def _fill(self, o: Order, qty: float, price: int, request: Any = None) -> None:
        qty = min(qty, o.remaining)
        if qty <= 1e-12:
            return
        prev = o.filled_qty
        o.filled_qty = prev + qty
        o.avg_fill_price = (
            float(price) if o.avg_fill_price is None else (o.avg_fill_price * prev + price * qty) / o.filled_qty
        )
        o.last_fill_price = int(price)
        o.last_fill_qty = qty
        o.last_fill_ns = self.now_ns
        o.last_fill_id = f"{self.id_prefix}F{next(self._fill_ids)}"
        done = o.filled_qty >= o.qty - 1e-9
        o.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        if done:
            self._unwork(o)
        self._order_event(EV_FILLED if done else EV_PARTIALLY_FILLED, o, fill_qty=qty, fill_price=int(price))
        pos, bal = self.accounts[o.account].book_fill(o.symbol, o.side, qty, int(price), self.now_ns)
        self._emit(pos)
        self._emit(bal)
        # bracket and OCO consequences
        if o.child_ids:
            self._activate_children(o, request)
        if o.oco_id:
            self._oco_after_fill(o)

    def _activate_children(self, parent: Order, request: Any = None) -> None:
        for cid in parent.child_ids:
            c = self.orders.get(cid)
            if c is None or c.is_final:
                continue
            new_qty = oco.child_qty(parent, c, self.orders)
            was_pending = c.status == OrderStatus.PENDING_CHILD
            if not was_pending and abs(new_qty - c.qty) < 1e-9:
                continue
            c.qty = new_qty
            if was_pending:
                c.status = OrderStatus.OPEN
                self._working[c.symbol][c.server_order_id] = c
                self._start_resting(c)
            self._order_event(EV_UPDATED, c, text="parent filled" if was_pending else "quantity follows parent fill")
        # a child that is already marketable fills now (e.g. stop through the market)
        for cid in parent.child_ids:
            c = self.orders.get(cid)
            if c is not None and c.is_working:
                self._check_marketable_on_entry(c, request)

    def _oco_after_fill(self, o: Order) -> None:
        other = oco.other_leg(o, self.orders)
        if other is None:
            return
        what = oco.after_leg_fill(o, other)
        if what is None:
            return
        action, new_qty = what
        if action == oco.CANCEL_OTHER:
            self._cancel_one(other, "OCO: other leg filled")
            return
        was_pending = other.status == OrderStatus.PENDING_CHILD
        other.qty = new_qty
        if not was_pending:
            self._order_event(EV_UPDATED, other, text="OCO: other leg partially filled")

    # ------------------------------------------------------------------ order entry
    def _new_id(self) -> str:
        return f"{self.id_prefix}{next(self._ids)}"

    def _validate(self, spec: OrderSpec) -> str | None:
        if spec.symbol not in self.instruments:
            return f"unknown symbol {spec.symbol!r}"
        try:
            Side(spec.side)
            OrderType(spec.order_type)
        except ValueError:
            return f"unsupported side {spec.side!r} or order type {spec.order_type!r}"
        err = self._qty_error(spec.qty)
        if err:
            return err
        if OrderType(spec.order_type).needs_price and spec.price is None:
            return f"{OrderType(spec.order_type).name} order needs price (Price1)"
        if OrderType(spec.order_type).needs_price2 and spec.price2 is None:
            return "STOP_LIMIT order needs price2 (Price2, the limit)"
        if spec.account and spec.account not in self.accounts:
            return f"unknown trade account {spec.account!r} (this engine's account is {self.account!r})"
        return None

    def _qty_error(self, qty: float) -> str | None:
        """The reason an order quantity (contracts) is refused, or None: it must be finite and
        > 0, a whole number of contracts when ``whole_contracts``, at most ``max_order_qty``."""
        if not (qty > 0) or not math.isfinite(qty):
            return f"quantity must be > 0, got {qty}"
        if self.whole_contracts and qty != math.floor(qty):
            return f"quantity must be a whole number of contracts, got {qty:g}"
        if self.max_order_qty is not None and qty > self.max_order_qty:
            return f"quantity {qty:g} above the maximum of {self.max_order_qty:g} contracts per order"
        return None

    def _room(self, spec: OrderSpec, n: int) -> str | None:
        """The reason ``n`` more non-final orders do not fit ``max_open_orders``, or None."""
        if self.max_open_orders is None:
            return None
        account = spec.account or self.account
        have = len(self._live.get(account, ()))
        if have + n > self.max_open_orders:
            return f"too many open orders on {account} ({have}; at most {self.max_open_orders})"
        return None

    def _make(self, spec: OrderSpec) -> Order:
        o = Order(
            server_order_id=self._new_id(),
            symbol=spec.symbol,
            side=Side(spec.side),
            order_type=OrderType(spec.order_type),
            qty=float(spec.qty),
            price=None if spec.price is None else int(spec.price),
            price2=None if spec.price2 is None else int(spec.price2),
            client_order_id=spec.client_order_id,
            tif=TimeInForce(spec.tif) if spec.tif in TimeInForce._value2member_map_ else TimeInForce.DAY,
            account=spec.account or self.account,
            created_ns=self.now_ns,
        )
        self.orders[o.server_order_id] = o
        self._live.setdefault(o.account, {})[o.server_order_id] = o
        if o.client_order_id:
            self._coids[(o.account, o.client_order_id)] = o
        return o

    def _reject_spec(self, spec: OrderSpec, text: str, request: Any = None) -> Order:
        o = Order(
            server_order_id="",
            symbol=spec.symbol,
            side=Side(spec.side) if spec.side in Side._value2member_map_ else Side.BUY,
            order_type=(OrderType(spec.order_type) if spec.order_type in OrderType._value2member_map_
                        else OrderType.MARKET),
            qty=float(spec.qty) if spec.qty == spec.qty else 0.0,
            price=spec.price,
            price2=spec.price2,
            client_order_id=spec.client_order_id,
            account=spec.account or self.account,
            status=OrderStatus.REJECTED,
            info=text,
            created_ns=self.now_ns,
        )
        self._order_event(EV_REJECTED, o, text=text, request=request)
        return o

    def _start_resting(self, o: Order) -> None:
        if o.order_type == OrderType.LIMIT or (o.order_type == OrderType.STOP_LIMIT and o.triggered):
            side = SIDE_BID if o.side == Side.BUY else SIDE_ASK
            o.queue_ahead = self.books[o.symbol].size_at(side, o.price_limit)

    def _check_marketable_on_entry(self, o: Order, request: Any = None) -> None:
        """Fill what can fill at once (market, marketable limit); IOC/FOK never rest."""
        if o.order_type == OrderType.MARKET:
            self._fill_marketable(o, limit=None, request=request)
            return
        if o.order_type == OrderType.LIMIT:
            if o.tif == TimeInForce.FOK:
                avail = sum(q for _t, q in self._walk(o, o.remaining, o.price))
                if avail < o.remaining - 1e-9:
                    self._cancel_one(o, "FOK: not enough size at the limit")
                    return
            self._fill_marketable(o, limit=o.price, request=request)
            if o.is_working and o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._cancel_one(o, "IOC: remainder cancelled")
            return
        # stops: triggered at once when the last trade is already through the stop
        last = self.last_trade.get(o.symbol)
        if last is not None and not o.triggered:
            if (o.side == Side.BUY and last >= o.price) or (o.side == Side.SELL and last <= o.price):
                self._trigger(o, request=request)

    def submit(self, spec: OrderSpec, request: Any = None) -> Order:
        """Submit a single order.

        Parameters
        ----------
        spec : OrderSpec
            Prices in ticks, quantity in contracts.
        request : object, optional
            Handle carried by any rejection this call produces (:attr:`OrderReport.request`).

        Returns
        -------
        Order
            The order (status REJECTED when refused; ``info`` says why).

        Notes
        -----
        Reports: ``accepted`` (status OPEN), then fills if marketable; or ``rejected``.
        """
        err = self._validate(spec) or self._room(spec, 1)
        if err:
            return self._reject_spec(spec, err, request)
        o = self._make(spec)
        o.status = OrderStatus.OPEN
        self._working[o.symbol][o.server_order_id] = o
        self._start_resting(o)
        self._order_event(EV_ACCEPTED, o)
        self._check_marketable_on_entry(o, request)
        return o

    def submit_oco(
        self,
        leg1: OrderSpec,
        leg2: OrderSpec,
        parent: OrderSpec | None = None,
        partial_fill_handling: PartialFillHandling = PartialFillHandling.REDUCE,
        request: Any = None,
    ) -> list[Order]:
        """Submit an OCO pair, optionally as the children of a bracket ``parent``.

        Parameters
        ----------
        leg1, leg2 : OrderSpec
        parent : OrderSpec, optional
        partial_fill_handling : PartialFillHandling
        request : object, optional
            Handle carried by any rejection this call produces.

        Returns
        -------
        list of Order
            ``[parent, leg1, leg2]`` when ``parent`` is given, else ``[leg1, leg2]``. All are
            rejected together when any one is invalid (DTC: "accept or reject all").

        Notes
        -----
        With a parent the legs must be on the opposite side of it; they start ``PENDING_CHILD``
        and become OPEN with the parent's filled quantity when it fills. Report order: parent
        accepted, leg1 accepted, leg2 accepted, then any fills.
        """
        specs = ([parent] if parent is not None else []) + [leg1, leg2]
        err = None
        for s in specs:
            err = self._validate(s)
            if err:
                break
        if err is None:
            err = oco.check_group(leg1, leg2, parent) or self._room(leg1, len(specs))
        if err:
            return [self._reject_spec(s, err, request) for s in specs]
        p = self._make(parent) if parent is not None else None
        a, b = self._make(leg1), self._make(leg2)
        oco.link(a, b, p, partial_fill_handling)
        if p is not None:
            p.status = OrderStatus.OPEN
            self._working[p.symbol][p.server_order_id] = p
            self._start_resting(p)
            for o in (p, a, b):
                self._order_event(EV_ACCEPTED, o)
            self._check_marketable_on_entry(p, request)
            return [p, a, b]
        for o in (a, b):
            o.status = OrderStatus.OPEN
            self._working[o.symbol][o.server_order_id] = o
            self._start_resting(o)
        for o in (a, b):
            self._order_event(EV_ACCEPTED, o)
        for o in (a, b):
            if o.is_working:
                self._check_marketable_on_entry(o, request)
        return [a, b]

    def submit_bracket(
        self,
        symbol: str,
        side: Side,
        qty: float,
        entry_type: OrderType = OrderType.MARKET,
        entry_price: int | None = None,
        stop_price: int | None = None,
        target_price: int | None = None,
        client_order_ids: tuple[str, str, str] = ("", "", ""),
        partial_fill_handling: PartialFillHandling = PartialFillHandling.REDUCE,
        request: Any = None,
    ) -> list[Order]:
        """Convenience bracket: entry (market/limit/stop) + target limit + stop, OCO children.

        Prices in ticks, quantity in contracts. Returns ``[parent, target, stop]`` (see
        :meth:`submit_oco`).

        Raises
        ------
        ValueError
            If ``side`` is not +1 / -1.
        """
        parent, target, stop = oco.bracket_specs(symbol, side, qty, entry_type, entry_price, stop_price,
                                                 target_price, client_order_ids)
        return self.submit_oco(target, stop, parent=parent, partial_fill_handling=partial_fill_handling,
                               request=request)

    def _cancel_one(self, o: Order, text: str) -> None:
        o.status = OrderStatus.CANCELED
        o.info = text
        self._unwork(o)
        self._order_event(EV_CANCELLED, o, text=text)

    def _stub(self, info: str = "") -> Order:
        return Order(server_order_id="", symbol="", side=Side.BUY, order_type=OrderType.MARKET, qty=0.0,
                     status=OrderStatus.REJECTED, account=self.account, info=info)

    def cancel(self, server_order_id: str, request: Any = None) -> bool:
        """Cancel by server order id; returns True when cancelled.

        Unknown id -> ``cancel_rejected`` report with status REJECTED; an already final order ->
        ``cancel_rejected`` with its own status (both carry ``request``). Cancelling an unfilled
        bracket parent cancels its children; cancelling an OCO leg cancels the other leg.
        """
        o = self.orders.get(server_order_id)
        if o is None:
            stub = self._stub(f"unknown ServerOrderID {server_order_id!r}")
            self._order_event(EV_CANCEL_REJECTED, stub, text=stub.info, request=request)
            return False
        if o.is_final:
            self._order_event(EV_CANCEL_REJECTED, o, text=f"order is already {o.status.name}", request=request)
            return False
        self._cancel_one(o, "cancelled by request")
        if o.child_ids and o.filled_qty <= 0:
            for c in oco.open_children(o, self.orders):
                self._cancel_one(c, "parent cancelled")
        other = oco.other_leg(o, self.orders)
        if other is not None:
            self._cancel_one(other, "OCO: other leg cancelled")
        return True

    def replace(self, server_order_id: str, qty: float | None = None, price: int | None = None,
                price2: int | None = None, request: Any = None) -> bool:
        """Cancel-replace: new total quantity (contracts, incl. filled) and/or prices (ticks).

        ``None`` keeps a value. A new quantity is checked like a new order's (> 0, whole
        contracts, the maximum) and must not be below the filled quantity.

        Losing queue priority: a new price or a larger quantity restarts ``queue_ahead``.
        Returns True when replaced; otherwise a ``replace_rejected`` report (carrying
        ``request``) explains why.
        """
        o = self.orders.get(server_order_id)
        if o is None or o.is_final:
            stub = o or self._stub()
            text = "unknown ServerOrderID" if o is None else f"order is already {o.status.name}"
            self._order_event(EV_REPLACE_REJECTED, stub, text=text, request=request)
            return False
        err = self._qty_error(qty) if qty is not None else None
        if err:
            self._order_event(EV_REPLACE_REJECTED, o, text=err, request=request)
            return False
        if qty is not None and qty < o.filled_qty:
            self._order_event(EV_REPLACE_REJECTED, o, text=f"new quantity {qty} < filled {o.filled_qty}",
                              request=request)
            return False
        requeue = False
        if qty is not None:
            requeue = qty > o.qty
            o.qty = float(qty)
        if price is not None and price != o.price:
            o.price = int(price)
            requeue = True
        if price2 is not None:
            o.price2 = int(price2)
        if o.filled_qty >= o.qty - 1e-9:
            o.status = OrderStatus.FILLED
            self._unwork(o)
        if requeue and o.is_working:
            self._start_resting(o)
        self._order_event(EV_REPLACED, o)
        if o.is_working:
            self._check_marketable_on_entry(o, request)
        return True

    def flatten(self, symbol: str, request: Any = None, account: str | None = None,
                client_order_id: str = "flatten") -> Order | None:
        """Send a market order that closes the position of ``symbol`` in ``account`` (default:
        the engine's); None when flat.

        Parameters
        ----------
        symbol : str
        request : object, optional
            Handle carried by any rejection this call produces.
        account : str, optional
        client_order_id : str
            ClientOrderID of the flattening order (the DTC server passes the one of the
            SUBMIT_FLATTEN_POSITION_ORDER, so its ORDER_UPDATEs echo it).

        Raises
        ------
        KeyError
            If there is no such account.
        """
        acct = self.ledger_of(account)
        p = acct.positions.get(symbol)
        if p is None or not p.qty:
            return None
        side = Side.SELL if p.qty > 0 else Side.BUY
        return self.submit(OrderSpec(symbol, side, abs(p.qty), OrderType.MARKET, client_order_id=client_order_id,
                                     account=acct.name), request=request)

    def cancel_all(self, symbol: str | None = None, account: str | None = None) -> int:
        """Cancel every non-final order (optionally of one symbol, of one account); returns how many."""
        n = 0
        for o in self.open_orders(symbol, account):
            if not o.is_final:
                self._cancel_one(o, "cancel all")
                n += 1
        return n

    def restart_session(self, symbol: str, text: str = "replay restarted",
                        client_order_id: str = "replay-restart") -> Order | None:
        """A new market session of ``symbol`` (a replay that starts again): nothing carries over.

        Every non-final order of ``symbol`` is cancelled with reason ``text``; an open position
        is closed by a market order (``client_order_id``, ``info`` = ``text``) filled at the last
        trade price before the restart (the mark: last trade, else the book's mid; no slippage,
        the book about to be cleared is not walked); then the book and the last trade are
        cleared, so the next session's first events build them afresh. Reports go to the
        listeners as usual (cancellations, then the fill, position and balance).

        Every account's position is closed (the server keeps one account per username).

        Returns
        -------
        Order or None
            The closing order (status FILLED) of the engine's own account (else of the first
            account that had a position), or None when every position was flat or no price was
            known (then the positions are left open and stay marked at their last price).
        """
        for o in list(self.orders.values()):
            if not o.is_final and o.symbol == symbol:
                self._cancel_one(o, text)
        closing = None
        mark = self.mark(symbol)
        for acct in list(self.accounts.values()):  # every account's position (one per username)
            p = acct.positions.get(symbol)
            if p is None or not p.qty or mark is None:
                continue
            side = Side.SELL if p.qty > 0 else Side.BUY
            o = self._make(OrderSpec(symbol, side, abs(p.qty), OrderType.MARKET,
                                     client_order_id=client_order_id, account=acct.name))
            o.status = OrderStatus.OPEN
            o.info = text
            self._order_event(EV_ACCEPTED, o, text=text)
            self._fill(o, o.remaining, int(round(mark)))
            if acct is self.ledger or closing is None:
                closing = o
        book = self.books.get(symbol)
        if book is not None:
            book.clear()
        self.last_trade.pop(symbol, None)
        return closing
