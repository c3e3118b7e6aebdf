"""The trader's own working orders and position, on the heatmap and the ladder.

* :func:`own_orders` reads a :class:`~app.trading.session.TradingSession` into plain display
  records: one :class:`OwnOrder` per working order with a price (side, remaining contracts,
  type, price in price units) and the :class:`OwnPosition` (average price and open P&L in USD
  and in ticks per contract). Sierra Chart's Trading DOM, Bookmap and ATAS show the same.
* :class:`OrdersOverlay` draws them on the heatmap's plot: one horizontal line per working
  order (blue for buys, red for sells, dashed for stops, a label such as ``B 2 LMT``) and the
  average-price line (gold) labelled with the open P&L. The lines are pyqtgraph items added to
  the heatmap's plot from outside; they are created once (a pool that only grows when more
  orders work than ever before) and moved in place.
* :class:`OwnOrdersController` feeds both the ladder and the overlay from the session of the
  window's trading panel (each drawn frame and after every change the session reports), and
  turns the ladder's gestures into trading: a click on an order's cell cancels it (no
  confirmation: a cancel removes risk), a drag to another row opens the modify ticket
  (:class:`app.ui.trading_ticket.ModifyTicketDialog`), and nothing moves before Confirm.

Prices of the records are the orders' own prices (exchange ticks times the instrument's tick
size): the ladder and the heatmap place them by price, whatever ticks a row holds.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6 import QtCore

from app.core.orders import OrderStatus, OrderType

log = logging.getLogger(__name__)

#: Short type names shown with an order (Sierra Chart's Trading DOM spells them the same).
TYPE_ABBR = {OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STPLMT", OrderType.MARKET: "MKT"}

BUY_ORDER_COLOR = (70, 160, 255)
SELL_ORDER_COLOR = (255, 80, 90)
POSITION_COLOR = (255, 200, 60)
#: Where along its line (0 left .. 1 right) an order's label sits, cycling by price rank, so the
#: labels of orders a tick apart do not cover each other; the average-price label sits at 0.03.
LABEL_POSITIONS = (0.16, 0.36, 0.56)


@dataclass(frozen=True, slots=True)
class OwnOrder:
    """One working order as drawn.

    Attributes
    ----------
    client_order_id : str
    side : int
        +1 buy, -1 sell.
    qty : int
        Contracts still working (ordered minus filled).
    order_type : str
        ``limit``, ``stop`` or ``stop_limit`` (market orders have no price and are not drawn).
    price : float
        Price units (the stop price of a stop-limit).
    price_ticks : int
        The same price in exchange ticks.
    role : str
        ``entry``, ``stop``, ``target`` or ``flatten``.
    pending : bool
        A bracket child waiting for its entry's fill (``PENDING_CHILD``).
    """

    client_order_id: str
    side: int
    qty: int
    order_type: str
    price: float
    price_ticks: int
    role: str = "entry"
    pending: bool = False

    @property
    def label(self) -> str:
        """``"B 2 LMT"`` / ``"S 1 STP"``: side, contracts, type."""
        return f"{'B' if self.side > 0 else 'S'} {self.qty} {TYPE_ABBR.get(self.order_type, str(self.order_type))}"

    @property
    def is_stop(self) -> bool:
        """True for stop and stop-limit orders (drawn dashed)."""
        return self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)


@dataclass(frozen=True, slots=True)
class OwnPosition:
    """The open position as drawn.

    Attributes
    ----------
    qty : int
        Signed contracts (+ long, - short), never 0.
    avg_price : float
        Average entry price, price units.
    open_pnl_usd : float
        Open P&L marked at the last trade, USD (the trading session's figure).
    open_pnl_ticks : float
        The same per contract in ticks: ``open_pnl_usd / (tick_value * |qty|)``.
    """

    qty: int
    avg_price: float
    open_pnl_usd: float
    open_pnl_ticks: float

    @property
    def pnl_text(self) -> str:
        """``"+62.50 USD +5.0 t"``."""
        return f"{self.open_pnl_usd:+,.2f} USD {self.open_pnl_ticks:+.1f} t"

    @property
    def pnl_texts(self) -> tuple[str, ...]:
        """:attr:`pnl_text` and shorter spellings of it, longest first (a narrow cell takes the first that fits)."""
        return (self.pnl_text, f"{self.open_pnl_usd:+,.2f}$ {self.open_pnl_ticks:+.1f}t",
                f"{self.open_pnl_usd:+,.0f}$ {self.open_pnl_ticks:+.0f}t", f"{self.open_pnl_usd:+,.0f}$")

    def label(self, decimals: int = 2) -> str:
        """``"+1 @ 4810.25  +62.50 USD +5.0 t"``."""
        return f"{self.qty:+d} @ {self.avg_price:.{decimals}f}  {self.pnl_text}"


def own_orders(session, symbol: str | None = None) -> tuple[list[OwnOrder], OwnPosition | None]:
    """The working orders and the position of ``symbol`` (default the session's instrument).

    Parameters
    ----------
    session : app.trading.session.TradingSession or None
        None gives nothing.
    symbol : str, optional
        Priced with that instrument's tick size and value (``session.instrument_of``).

    Returns
    -------
    (orders, position)
        ``orders`` sorted by price (market orders left out); ``position`` None when flat.
    """
    if session is None:
        return [], None
    sym = symbol or session.instrument.symbol
    # prices in that instrument's own ticks (tick size and value per instrument, issue 17)
    inst = session.instrument_of(sym) if hasattr(session, "instrument_of") else session.instrument
    tick = float(inst.tick_size)
    out = []
    for wo in session.broker.working_orders():
        r = wo.request
        if r.symbol != sym or r.price is None or r.order_type == OrderType.MARKET:
            continue
        qty = int(r.qty) - int(wo.filled_qty)
        if qty <= 0:
            continue
        out.append(OwnOrder(wo.client_order_id, int(r.side), qty, OrderType(r.order_type), int(r.price) * tick,
                            int(r.price), r.role, wo.state == OrderStatus.PENDING_CHILD))
    out.sort(key=lambda o: (o.price, o.client_order_id))
    pos = session.broker.positions.get(sym)
    position = None
    if pos is not None and int(pos.qty) != 0:
        usd = float(session.open_pnl_usd(sym))
        ticks = usd / (float(inst.tick_value) * abs(int(pos.qty))) if inst.tick_value else 0.0
        position = OwnPosition(int(pos.qty), float(pos.avg_price) * tick, usd, ticks)
    return out, position


class OrdersOverlay:
    """Order and average-price lines on a pyqtgraph plot (the heatmap).

    Parameters
    ----------
    plot : pyqtgraph.PlotWidget or PlotItem
        Where the lines are added (``addItem``).

    Attributes
    ----------
    drawn : list of tuple
        What the last :meth:`set_orders` shows: ``(price, label, kind)`` with kind ``"buy"``,
        ``"sell"`` (``"-stop"`` appended for dashed stop lines) or ``"position"`` (for tests and
        screenshots; price units).
    """

    Z = 12

    def __init__(self, plot):
        self.plot = plot
        self._lines: list[pg.InfiniteLine] = []
        self._state: list[tuple | None] = []
        self._pens = {}
        for side, color in ((1, BUY_ORDER_COLOR), (-1, SELL_ORDER_COLOR)):
            for stop in (False, True):
                self._pens[(side, stop)] = pg.mkPen(color, width=1.5,
                                                    style=QtCore.Qt.DashLine if stop else QtCore.Qt.SolidLine)
        self._pos_pen = pg.mkPen(POSITION_COLOR, width=2)
        self.position_line = self._new_line()
        self.position_line.setPen(self._pos_pen)
        self._pos_state = None
        self.drawn: list[tuple[float, str, str]] = []

    def _new_line(self) -> pg.InfiniteLine:
        line = pg.InfiniteLine(angle=0, movable=False, label="",
                               labelOpts={"position": 0.03, "anchors": [(0, 1), (0, 1)], "color": (235, 235, 235),
                                          "fill": (0, 0, 0, 150)})
        line.setZValue(self.Z)
        line.setVisible(False)
        self.plot.addItem(line)
        return line

    def set_orders(self, orders: list[OwnOrder], position: OwnPosition | None, decimals: int = 2) -> None:
        """Show ``orders`` and ``position`` (see :func:`own_orders`); lines are moved, not re-created."""
        while len(self._lines) < len(orders):
            self._lines.append(self._new_line())
            self._state.append(None)
        drawn = []
        for i, line in enumerate(self._lines):
            if i >= len(orders):
                if self._state[i] is not None:
                    line.setVisible(False)
                    self._state[i] = None
                continue
            o = orders[i]
            text = f"{o.label} {o.price:.{decimals}f}" + (" (pending)" if o.pending else "")
            state = (o.price, text, o.side, o.is_stop, i % len(LABEL_POSITIONS))
            if state != self._state[i]:
                line.setPen(self._pens[(1 if o.side > 0 else -1, o.is_stop)])
                line.setValue(o.price)
                # neighbours (sorted by price) put their labels at different places along the line
                line.label.setPosition(LABEL_POSITIONS[i % len(LABEL_POSITIONS)])
                line.setVisible(True)  # before the text: a hidden label ignores new text
                line.label.setFormat(text.replace("{", "{{").replace("}", "}}"))
                self._state[i] = state
            drawn.append((o.price, o.label, ("buy" if o.side > 0 else "sell") + ("-stop" if o.is_stop else "")))
        if position is None:
            if self._pos_state is not None:
                self.position_line.setVisible(False)
                self._pos_state = None
        else:
            text = position.label(decimals)
            state = (position.avg_price, text)
            if state != self._pos_state:
                self.position_line.setValue(position.avg_price)
                self.position_line.setVisible(True)
                self.position_line.label.setFormat(text.replace("{", "{{").replace("}", "}}"))
                self._pos_state = state
            drawn.append((position.avg_price, text, "position"))
        self.drawn = drawn


class OwnOrdersController(QtCore.QObject):
    """Keeps the ladder's and the heatmap's own-order drawing current and acts on the ladder's gestures.

    Parameters
    ----------
    ladder : app.ui.ladder.LadderWidget
        Its ``sigCancelOrder`` and ``sigModifyOrder`` are connected here.
    overlay : OrdersOverlay
    session_getter : callable() -> TradingSession or None
        The session to show and trade through (the window's trading panel may be re-attached).
    spawn : callable(coroutine) -> asyncio.Task, optional
        Runs the cancel / modify coroutines with their errors reported (default: a task whose
        exception goes to ``report``).
    report : callable(level, text), optional
        Where failures go (the window's problem banner); default the log.
    symbol : str or callable() -> str or None, optional
        The instrument whose orders and position are drawn (a panel's instrument, issue 17);
        None or "" = the session's first instrument, as with one instrument.

    Attributes
    ----------
    dialog : ModifyTicketDialog or None
        The modify ticket on screen.
    """

    sigModifyTicketOpened = QtCore.Signal(object)

    def __init__(self, ladder, overlay: OrdersOverlay, session_getter, spawn=None, report=None, parent=None,
                 symbol=None):
        super().__init__(parent)
        self._symbol = symbol
        self.ladder, self.overlay = ladder, overlay
        self.session_getter = session_getter
        self.report = report or (lambda level, text: log.warning("%s", text))
        self._spawn = spawn
        self._session = None
        self.dialog = None
        ladder.sigCancelOrder.connect(self.cancel)
        ladder.sigModifyOrder.connect(self.open_modify_ticket)

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` (the window's ``spawn`` when given); an exception is reported."""
        if self._spawn is not None:
            return self._spawn(coro)
        task = asyncio.ensure_future(coro)

        def done(t):
            if not t.cancelled() and t.exception() is not None:
                self.report("error", "orders: " + "".join(traceback.format_exception(t.exception())))

        task.add_done_callback(done)
        return task

    def session(self):
        """The current trading session (listened to while it is current), or None."""
        s = self.session_getter()
        if s is not self._session:
            if self._session is not None and self.refresh in self._session.listeners:
                self._session.listeners.remove(self.refresh)
            self._session = s
            if s is not None:
                s.listeners.append(self.refresh)
        return s

    @property
    def symbol(self) -> str | None:
        """The instrument drawn (None: the session's first)."""
        sym = self._symbol() if callable(self._symbol) else self._symbol
        return sym or None

    def refresh(self) -> None:
        """Hand the session's working orders and position to the ladder and the overlay.

        Called for each drawn frame and by the session after every change; a call from another
        thread than the widgets' is skipped (the next frame shows the change).
        """
        if QtCore.QThread.currentThread() is not self.thread():
            return
        s = self.session()
        sym = self.symbol
        orders, pos = own_orders(s, sym)
        inst = (s.instrument_of(sym) if sym and hasattr(s, "instrument_of") else s.instrument) if s is not None else None
        tick = float(inst.tick_size) if inst is not None else 0.0
        dec = int(getattr(inst, "price_decimals", 2)) if inst is not None else 2
        self.ladder.set_orders(orders, pos, tick)
        self.overlay.set_orders(orders, pos, dec)

    def cancel(self, client_order_id: str):
        """Cancel one working order now (a click on its cell); returns the task (None without a session)."""
        s = self.session()
        if s is None:
            return None

        async def go():
            try:
                await s.cancel_order(client_order_id)
            finally:
                self.refresh()

        return self.spawn(go())

    def open_modify_ticket(self, client_order_id: str, price_ticks: int):
        """The modify ticket for moving ``client_order_id`` to ``price_ticks`` (exchange ticks).

        Nothing is sent until the trader confirms it (then :meth:`TradingSession.modify_order`,
        through the risk gate). Returns the dialog, or None when the order is no longer working.
        """
        from app.ui.trading_ticket import ModifyTicketDialog

        s = self.session()
        if s is None:
            return None
        wo = s.broker.orders.get(client_order_id)
        if wo is None or not wo.state.working:
            self.report("warning", f"order {client_order_id} is no longer working: nothing to move")
            return None
        if self.dialog is not None:
            self.dialog.close()
        dlg = ModifyTicketDialog(s, wo, int(price_ticks), self.ladder.window())
        dlg.setAttribute(QtCore.Qt.WA_DeleteOnClose, True)
        dlg.sigConfirmed.connect(lambda cid, px: self.spawn(self._modify(cid, px)))
        dlg.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dlg
        dlg.open()
        dlg.raise_()
        self.sigModifyTicketOpened.emit(dlg)
        return dlg

    async def _modify(self, client_order_id: str, price_ticks: int):
        s = self.session()
        try:
            d = await s.modify_order(client_order_id, price_ticks)
            if not d.allowed:
                self.report("warning", f"moving order {client_order_id} refused: {d.message}")
            return d
        finally:
            self.refresh()
