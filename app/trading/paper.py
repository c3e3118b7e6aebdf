"""The paper broker: local fills against the live or replayed market, with the ONE fill model.

It wraps :class:`app.sim.matching.FillEngine` (the same engine the built-in DTC server fills
with), feeds it the market batches the app receives (:meth:`PaperBroker.on_market`), and turns
its reports into the broker contract's :class:`~app.core.orders.OrderEvent` and
:class:`~app.core.orders.PositionSnapshot`. Engine and broker share the vocabulary of
:mod:`app.core.orders` (side, order type, status), so nothing is mapped on the way: a
stop-limit stays a stop-limit. Commission and slippage come from
:class:`~app.config.trading.TradingSettings` (``commission_per_contract_usd``, ``slippage_ticks``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from app.core.events import Instrument

from app.core.orders import OrderEvent, OrderSpec, OrderType, PositionSnapshot, Side
from app.sim.account import BalanceEvent, PositionEvent
from app.sim.matching import EV_FILLED, EV_PARTIALLY_FILLED, FillEngine, OrderReport
from app.trading.broker import Broker
from app.trading.orders import Bracket, OrderRequest

log = logging.getLogger(__name__)


def _spec(o: OrderRequest) -> OrderSpec:
    return OrderSpec(o.symbol, Side(o.side), float(o.qty), OrderType(o.order_type),
                     None if o.order_type == OrderType.MARKET else int(o.price),
                     None if o.price2 is None else int(o.price2), o.client_order_id)


class PaperBroker(Broker):
    """Paper trading on :class:`~app.sim.matching.FillEngine`.

    Parameters
    ----------
    instruments : iterable of Instrument
        Symbols to trade (tick value for P&L).
    commission_per_contract_usd : float or mapping of str to float
        USD per contract per fill: one figure for every symbol, or ``{symbol: USD}`` (then every
        instrument traded needs its entry; :class:`app.sim.account.Account` raises ``ValueError``
        naming a symbol without one).
    slippage_ticks : int
        Adverse ticks on market and stop fills.
    account : str
        Shown as the account (default ``paper``).
    starting_balance_usd : float

    Notes
    -----
    Engine events are delivered synchronously: by the time :meth:`submit_bracket` returns,
    acceptance (and any immediate fill) has been reported to the listeners.
    """

    name = "paper"

    def __init__(self, instruments=(), commission_per_contract_usd: float | Mapping[str, float] = 0.0,
                 slippage_ticks: int = 0,
                 account: str = "paper", starting_balance_usd: float = 100_000.0):
        super().__init__(account)
        self.engine = FillEngine(instruments, account=account, starting_balance=starting_balance_usd,
                                 commission_per_contract=commission_per_contract_usd,
                                 slippage_ticks=slippage_ticks, id_prefix="PB")
        self.engine.add_listener(self._on_engine)
        self._started = False

    def add_instrument(self, inst: Instrument) -> None:
        self.engine.add_instrument(inst)

    # ----------------------------------------------------------------- market
    def on_market(self, symbol: str, events: np.ndarray) -> None:
        """Feed a batch of :data:`~app.core.events.EVENT_DTYPE` events (fills resting orders)."""
        self.engine.on_market(symbol, events)

    def replay_restarted(self, text: str = "replay restarted") -> None:
        """The replayed market started again (a looping replay, or Restart after its end).

        For every symbol: working orders are cancelled with reason ``text`` and an open
        position is closed at the last trade price before the restart
        (:meth:`app.sim.matching.FillEngine.restart_session`); the reports reach the listeners
        (the trading session journals them) before the new session's first event is fed.
        """
        for symbol in list(self.engine.books):
            self.engine.restart_session(symbol, text)

    # ----------------------------------------------------------------- engine events
    def _on_engine(self, ev) -> None:
        if isinstance(ev, OrderReport):
            o = ev.order
            # a refused cancel or replace reports the order with its current status
            state = o.status
            fill = ev.kind in (EV_FILLED, EV_PARTIALLY_FILLED)
            self._apply_order_event(OrderEvent(
                client_order_id=o.client_order_id, server_order_id=o.server_order_id, state=state,
                symbol=o.symbol, side=o.side, price2=o.price2,
                order_type=o.order_type, qty=int(round(o.qty)), price=o.price,
                filled_qty=int(round(o.filled_qty)), avg_fill_price=float(o.avg_fill_price or 0.0),
                fill_qty=int(round(ev.fill_qty)) if fill else 0, fill_price=int(ev.fill_price) if fill else 0,
                exec_id=o.last_fill_id if fill else "", reason=ev.kind, info=ev.text or o.info,
                parent_server_id=o.parent_id or "", oco_server_id=o.oco_id or "", ts_ns=int(ev.ts)))
        elif isinstance(ev, PositionEvent):
            self._apply_position(PositionSnapshot(ev.symbol, ev.account, int(round(ev.qty)),
                                                  float(ev.avg_price or 0.0), float(ev.open_pnl)))
        elif isinstance(ev, BalanceEvent):
            self.balance = {"cash_balance": ev.cash_balance, "realized_pnl": ev.realized_pnl,
                            "open_pnl": ev.open_pnl, "commissions": ev.commissions, "currency": "USD"}
            self._emit("on_balance", self.balance)

    # ----------------------------------------------------------------- contract
    @property
    def connected(self) -> bool:
        return self._started

    async def start(self) -> None:
        self._started = True
        self._emit("on_connection", True)

    async def stop(self) -> None:
        self._started = False
        self._emit("on_connection", False)

    async def submit_bracket(self, bracket: Bracket) -> None:
        for o in bracket.orders:
            self._track(o)
        if bracket.stop is None and bracket.target is None:
            self._note_wire("submit", bracket.entry.client_order_id)
            self.engine.submit(_spec(bracket.entry))
            return
        if bracket.stop is None or bracket.target is None:
            # DTC brackets are an OCO pair: both children or none (OrderTicket.validate says so)
            raise ValueError("a bracket needs both stop and target (or neither)")
        self._note_wire("submit_bracket", bracket.entry.client_order_id)
        self.engine.submit_oco(_spec(bracket.target), _spec(bracket.stop), parent=_spec(bracket.entry))

    async def submit_order(self, order: OrderRequest) -> None:
        self._track(order)
        self._note_wire("submit", order.client_order_id)
        self.engine.submit(_spec(order))

    async def cancel(self, client_order_id: str) -> None:
        sid = self.server_id(client_order_id)
        self._note_wire("cancel", client_order_id)
        self.engine.cancel(sid)

    async def modify(self, client_order_id: str, price: int) -> None:
        """Move a working order to ``price`` (ticks) in the engine (:meth:`FillEngine.replace`).

        The engine reports synchronously: ``replaced`` (the local picture takes the new price)
        or ``replace_rejected`` with its reason.
        """
        sid = self.server_id(client_order_id)
        self._note_wire("modify", client_order_id)
        self.engine.replace(sid, price=int(price))

    async def query_open_orders(self, timeout: float = 2.0) -> list[OrderEvent]:
        """The engine's working orders.

        The engine reports every change synchronously, so the local picture already holds what
        this list says: it is a report, never applied again (a stale copy must not undo a fill).
        """
        out = []
        for o in self.engine.open_orders():
            ev = OrderEvent(
                client_order_id=o.client_order_id, server_order_id=o.server_order_id,
                state=o.status, symbol=o.symbol, side=o.side, order_type=o.order_type,
                qty=int(round(o.qty)), price=o.price, price2=o.price2, filled_qty=int(round(o.filled_qty)),
                reason="open_orders_request_response", parent_server_id=o.parent_id or "",
                oco_server_id=o.oco_id or "")
            out.append(ev)
        return out

    async def query_positions(self, timeout: float = 2.0) -> list[PositionSnapshot]:
        return [PositionSnapshot(p.symbol, p.account, int(round(p.qty)), float(p.avg_price or 0.0),
                                 self.engine.open_pnl(p.symbol))
                for p in self.engine.positions.values() if abs(p.qty) > 1e-9]
