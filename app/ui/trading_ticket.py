"""The order ticket: what the trader checks and confirms before anything is sent.

It is prefilled from a signal (side, size, entry/stop/target bracket) or from a ladder click
(limit at that price, bracket offsets from the trading settings), shows risk and reward in
ticks and in USD (the instrument's tick value), and the risk gate's verdict, recomputed on
every edit (:meth:`app.trading.session.TradingSession.preview`, not journaled).

Keys: **Enter** or **Ctrl+Enter** confirms (only when the gate allows), **Escape** cancels.
The dialog is non-modal (``open()``), so the asyncio loop keeps running under qasync.

:class:`ModifyTicketDialog` is the same check for moving a working order (a drag on the
ladder): the new price prefilled, the risk after the move and the gate's verdict
(:meth:`app.trading.session.TradingSession.preview_modify`); nothing is sent before Confirm.

A refused ticket's Confirm button is disabled and looks it (grey, not the green of an allowed
one: :data:`CONFIRM_STYLE`).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.orders import OrderType
from app.trading.orders import OrderTicket

#: Confirm buttons: green when the gate allows, plainly grey when disabled (issue 16 item 10).
CONFIRM_STYLE = ("QPushButton{background:#1a8f3a;color:white;font-weight:bold;padding:4px 12px;"
                 "border:1px solid #0f5c24;border-radius:3px;}"
                 "QPushButton:disabled{background:#5a5d66;color:#b4b7bf;border:1px dashed #8a8d96;font-weight:normal;}")



class _GatedDialog(QtWidgets.QDialog):
    """What the order ticket and the modify ticket share: the risk and verdict labels, the
    Cancel / Confirm row, the gate's verdict enabling Confirm, and confirm-to-trade itself
    (:meth:`confirm` refreshes the verdict and sends only when the gate allows it now).

    Subclasses define ``refresh()`` (recompute the verdict), ``_send()`` (emit their own
    ``sigConfirmed``) and ``_cancelled()`` (emit their own ``sigCancelled``).
    """

    def _confirm_row(self, prefix: str, confirm_text: str) -> QtWidgets.QHBoxLayout:
        """Make the risk / verdict labels and the buttons (object names ``<prefix>_risk``,
        ``_verdict``, ``_confirm``, ``_cancel``; Confirm is the default button); returns the row."""
        self.risk_label = QtWidgets.QLabel()
        self.risk_label.setObjectName(f"{prefix}_risk")
        self.verdict_label = QtWidgets.QLabel()
        self.verdict_label.setObjectName(f"{prefix}_verdict")
        self.verdict_label.setWordWrap(True)
        self.confirm_button = QtWidgets.QPushButton(confirm_text)
        self.confirm_button.setObjectName(f"{prefix}_confirm")
        self.confirm_button.setDefault(True)
        self.confirm_button.setStyleSheet(CONFIRM_STYLE)
        self.cancel_button = QtWidgets.QPushButton("Cancel (Esc)")
        self.cancel_button.setObjectName(f"{prefix}_cancel")
        self.confirm_button.clicked.connect(self.confirm)
        self.cancel_button.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.confirm_button)
        return buttons

    def _verdict(self, ok: bool, text: str) -> None:
        self.verdict_label.setText(text)
        self.verdict_label.setStyleSheet(f"color: {'#1a8f3a' if ok else '#c0392b'}; font-weight: bold;")
        self.confirm_button.setEnabled(ok)

    def confirm(self) -> None:
        """Send (``sigConfirmed``) when the gate allows it now; otherwise nothing happens."""
        if self._done:
            return
        self.refresh()
        if not self.confirm_button.isEnabled():
            return
        self._done = True
        self._send()
        self.accept()

    def keyPressEvent(self, ev):  # noqa: N802 (Qt name)
        """Ctrl+Enter confirms even when a field has the focus (plain Enter: the default button)."""
        if ev.key() in (QtCore.Qt.Key_Return, QtCore.Qt.Key_Enter) and ev.modifiers() & QtCore.Qt.ControlModifier:
            self.confirm()
            ev.accept()
            return
        super().keyPressEvent(ev)

    def reject(self) -> None:  # Escape, Cancel, close button
        if not self._done:
            self._done = True
            self._cancelled()
        super().reject()


class OrderTicketDialog(_GatedDialog):
    """Order ticket for one :class:`~app.trading.orders.OrderTicket`.

    The ticket belongs to one instrument (issue 17): ``instrument`` (default the ticket's own
    symbol), shown in the title and the side line. No field of the dialog changes the symbol,
    prices are in that instrument's ticks and decimals (``session.instrument_of``), and a ticket
    whose symbol is not the bound instrument is never emitted (Confirm stays disabled with the
    reason); the session refuses it again (rule ``ticket_instrument``) when sent with
    ``confirm(ticket, instrument=dialog.instrument)``.

    Parameters
    ----------
    session : app.trading.session.TradingSession
    ticket : app.trading.orders.OrderTicket
    parent : QWidget, optional
    instrument : str, optional
        The symbol of the panel the ticket was opened from.

    Attributes
    ----------
    instrument : str
        The bound symbol.

    Signals
    -------
    sigConfirmed(object)
        The edited :class:`OrderTicket` the trader confirmed.
    sigCancelled(object)
        The ticket the trader dismissed (Escape / Cancel / close).
    """

    sigConfirmed = QtCore.Signal(object)
    sigCancelled = QtCore.Signal(object)

    def __init__(self, session, ticket: OrderTicket, parent=None, instrument: str = ""):
        super().__init__(parent)
        self.setObjectName("order_ticket")
        self.session = session
        self.base = ticket
        self.instrument = str(instrument or ticket.symbol)
        self._done = False
        inst = session.instrument_of(ticket.symbol) if hasattr(session, "instrument_of") else session.instrument
        self.tick = float(ticket.tick_size or inst.tick_size)
        self.decimals = int(getattr(inst, "price_decimals", 2))
        self.setWindowTitle(f"Order ticket - {ticket.symbol}")
        side_txt = "BUY / LONG" if ticket.side > 0 else "SELL / SHORT"
        self.side_label = QtWidgets.QLabel(f"{side_txt}  {ticket.symbol}")
        self.side_label.setObjectName("ticket_side")
        f = self.side_label.font()
        f.setPointSize(f.pointSize() + 4)
        f.setBold(True)
        self.side_label.setFont(f)
        self.side_label.setStyleSheet(f"color: {'#1a8f3a' if ticket.side > 0 else '#c0392b'};")
        src = ticket.source + (f" #{ticket.signal_id}" if ticket.signal_id else "")
        self.source_label = QtWidgets.QLabel(f"from {src} | mode {session.mode} | account {session.broker.account}")
        self.sizing_label = QtWidgets.QLabel(f"Size: {ticket.sizing_note}" if ticket.sizing_note else "")
        self.sizing_label.setObjectName("ticket_sizing")
        self.sizing_label.setWordWrap(True)
        self.sizing_label.setVisible(bool(ticket.sizing_note))

        self.qty = QtWidgets.QSpinBox()
        self.qty.setRange(1, 1000)
        self.qty.setValue(int(ticket.qty))
        self.type_box = QtWidgets.QComboBox()
        self.type_box.addItems([OrderType.LIMIT.value, OrderType.STOP.value, OrderType.MARKET.value])
        kind = ticket.order_type if ticket.order_type in (OrderType.LIMIT, OrderType.STOP, OrderType.MARKET) \
            else OrderType.LIMIT
        self.type_box.setCurrentText(str(kind))
        self.entry = self._price_box(ticket.entry if ticket.entry is not None else ticket.ref_price)
        self.stop = self._price_box(ticket.stop)
        self.target = self._price_box(ticket.target)

        form = QtWidgets.QFormLayout()
        form.addRow("Contracts", self.qty)
        form.addRow("Entry type", self.type_box)
        form.addRow("Entry", self.entry)
        form.addRow("Stop", self.stop)
        form.addRow("Target", self.target)

        buttons = self._confirm_row("ticket", "Confirm (Enter)")

        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.side_label)
        lay.addWidget(self.source_label)
        lay.addWidget(self.sizing_label)
        lay.addLayout(form)
        lay.addWidget(self.risk_label)
        lay.addWidget(self.verdict_label)
        lay.addLayout(buttons)

        for seq in ("Ctrl+Return", "Ctrl+Enter"):
            sc = QtGui.QShortcut(QtGui.QKeySequence(seq), self)
            sc.activated.connect(self.confirm)
        for w in (self.qty, self.entry, self.stop, self.target):
            w.valueChanged.connect(self.refresh)
        self.type_box.currentTextChanged.connect(self.refresh)
        self.decision = None
        self.refresh()

    def _price_box(self, ticks) -> QtWidgets.QDoubleSpinBox:
        b = QtWidgets.QDoubleSpinBox()
        b.setDecimals(self.decimals)
        b.setSingleStep(self.tick)
        b.setRange(-1e9, 1e9)
        b.setKeyboardTracking(False)
        if ticks is not None:
            b.setValue(float(ticks) * self.tick)
        return b

    def _ticks(self, box: QtWidgets.QDoubleSpinBox) -> int:
        return int(round(box.value() / self.tick))

    def ticket(self) -> OrderTicket:
        """The ticket as edited now (prices in ticks)."""
        kind = OrderType(self.type_box.currentText())
        market = kind == OrderType.MARKET
        return self.base.with_(qty=int(self.qty.value()), order_type=kind,
                               entry=None if market else self._ticks(self.entry),
                               stop=self._ticks(self.stop), target=self._ticks(self.target),
                               ref_price=self.session.ref_price(self.base.symbol, self.base.side) or self.base.ref_price)

    def refresh(self, *_):
        """Recompute risk/reward and the gate's verdict."""
        self.entry.setEnabled(self.type_box.currentText() != OrderType.MARKET)
        t = self.ticket()
        if t.symbol != self.instrument:
            self.risk_label.setText("")
            self._verdict(False, f"this ticket is for {t.symbol}, but it was opened from {self.instrument}: "
                                 "a ticket goes only to the instrument it was opened from")
            return
        try:
            t.validate()
        except ValueError as exc:
            self.risk_label.setText("")
            self._verdict(False, str(exc))
            return
        rr = (t.reward_ticks / t.risk_ticks) if t.risk_ticks else float("nan")
        self.risk_label.setText(
            f"Risk {t.risk_ticks} ticks = {t.risk_usd:,.2f} USD   |   Reward {t.reward_ticks} ticks = "
            f"{t.reward_usd:,.2f} USD   |   R:R {rr:.2f}")
        self.decision = self.session.preview(t)
        self._verdict(self.decision.allowed, "Risk gate: ALLOWED" if self.decision.allowed
                      else f"Risk gate: REFUSED - {self.decision.message}")

    def _send(self) -> None:
        t = self.ticket()
        if t.symbol != self.instrument:  # never emitted for another instrument (see the class docstring)
            return
        self.sigConfirmed.emit(t)

    def _cancelled(self) -> None:
        self.sigCancelled.emit(self.base)


class ModifyTicketDialog(_GatedDialog):
    """Ticket for moving one working order to a new price (from a drag on the ladder).

    Parameters
    ----------
    session : app.trading.session.TradingSession
    order : app.trading.orders.WorkingOrder
        The order to move (its price in ticks).
    price_ticks : int
        The new price prefilled, exchange ticks.

    Signals
    -------
    sigConfirmed(str, int)
        The trader confirmed: ClientOrderID and the new price (ticks). Only emitted while the
        gate allows the move (:meth:`TradingSession.preview_modify`).
    sigCancelled(str)
        Dismissed (Escape / Cancel / close): nothing is sent.
    """

    sigConfirmed = QtCore.Signal(str, int)
    sigCancelled = QtCore.Signal(str)

    def __init__(self, session, order, price_ticks: int, parent=None):
        super().__init__(parent)
        self.setObjectName("modify_ticket")
        self.session = session
        self.order = order
        self.client_order_id = order.client_order_id
        self._done = False
        inst = session.instrument
        self.tick = float(inst.tick_size)
        self.decimals = int(getattr(inst, "price_decimals", 2))
        r = order.request
        self.setWindowTitle(f"Modify order - {r.symbol}")
        kind = {OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STPLMT"}.get(r.order_type, str(r.order_type))
        side_txt = "BUY" if r.side > 0 else "SELL"
        self.title_label = QtWidgets.QLabel(f"MOVE {side_txt} {int(r.qty) - int(order.filled_qty)} {kind}  {r.symbol}  "
                                            f"({r.role})")
        self.title_label.setObjectName("modify_title")
        f = self.title_label.font()
        f.setPointSize(f.pointSize() + 3)
        f.setBold(True)
        self.title_label.setFont(f)
        self.title_label.setStyleSheet(f"color: {'#1a8f3a' if r.side > 0 else '#c0392b'};")
        self.from_label = QtWidgets.QLabel(f"{float(r.price) * self.tick:.{self.decimals}f}")
        self.from_label.setObjectName("modify_from")
        self.price = QtWidgets.QDoubleSpinBox()
        self.price.setObjectName("modify_price")
        self.price.setDecimals(self.decimals)
        self.price.setSingleStep(self.tick)
        self.price.setRange(-1e9, 1e9)
        self.price.setKeyboardTracking(False)
        self.price.setValue(int(price_ticks) * self.tick)
        form = QtWidgets.QFormLayout()
        form.addRow("From", self.from_label)
        form.addRow("To", self.price)
        buttons = self._confirm_row("modify", "Confirm move (Enter)")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.title_label)
        lay.addLayout(form)
        lay.addWidget(self.risk_label)
        lay.addWidget(self.verdict_label)
        lay.addLayout(buttons)
        for seq in ("Ctrl+Return", "Ctrl+Enter"):
            sc = QtGui.QShortcut(QtGui.QKeySequence(seq), self)
            sc.activated.connect(self.confirm)
        self.price.valueChanged.connect(self.refresh)
        self.decision = None
        self.refresh()

    def price_ticks(self) -> int:
        """The new price as edited now, exchange ticks."""
        return int(round(self.price.value() / self.tick))

    def refresh(self, *_):
        """Recompute the risk after the move and the gate's verdict."""
        try:
            ctx = self.session.modify_context(self.client_order_id, self.price_ticks())
        except ValueError as exc:
            self.decision = None
            self.risk_label.setText("")
            self._verdict(False, str(exc))
            return
        risk = ctx.risk_usd
        self.risk_label.setText("Risk after the move: no protective stop" if risk is None
                                else f"Risk after the move: {risk:,.2f} USD")
        self.decision = self.session.gate.evaluate(ctx)
        self._verdict(self.decision.allowed, "Risk gate: ALLOWED" if self.decision.allowed
                      else f"Risk gate: REFUSED - {self.decision.message}")

    def _send(self) -> None:
        self.sigConfirmed.emit(self.client_order_id, self.price_ticks())

    def _cancelled(self) -> None:
        self.sigCancelled.emit(self.client_order_id)
