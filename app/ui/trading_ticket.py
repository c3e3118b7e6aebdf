"""The order ticket: what the trader checks and confirms before anything is sent.

It is prefilled from a signal (side, size, entry/stop/target bracket) or from a ladder click
(limit at that price, bracket offsets from the trading settings), shows risk and reward in
ticks and in USD (the instrument's tick value), and the risk gate's verdict, recomputed on
every edit (:meth:`app.trading.session.TradingSession.preview`, not journaled).

Keys: **Enter** or **Ctrl+Enter** confirms (only when the gate allows), **Escape** cancels.
The dialog is non-modal (``open()``), so the asyncio loop keeps running under qasync.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.core.orders import OrderType
from app.trading.orders import OrderTicket


class OrderTicketDialog(QtWidgets.QDialog):
    """Order ticket for one :class:`~app.trading.orders.OrderTicket`.

    Signals
    -------
    sigConfirmed(object)
        The edited :class:`OrderTicket` the trader confirmed.
    sigCancelled(object)
        The ticket the trader dismissed (Escape / Cancel / close).
    """

    sigConfirmed = QtCore.Signal(object)
    sigCancelled = QtCore.Signal(object)

    def __init__(self, session, ticket: OrderTicket, parent=None):
        super().__init__(parent)
        self.setObjectName("order_ticket")
        self.session = session
        self.base = ticket
        self._done = False
        inst = session.instrument
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
        self.type_box.addItems([OrderType.LIMIT.value, OrderType.MARKET.value])
        kind = ticket.order_type if ticket.order_type in (OrderType.LIMIT, OrderType.MARKET) else OrderType.LIMIT
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

        self.risk_label = QtWidgets.QLabel()
        self.risk_label.setObjectName("ticket_risk")
        self.verdict_label = QtWidgets.QLabel()
        self.verdict_label.setObjectName("ticket_verdict")
        self.verdict_label.setWordWrap(True)
        self.confirm_button = QtWidgets.QPushButton("Confirm (Enter)")
        self.confirm_button.setObjectName("ticket_confirm")
        self.confirm_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel (Esc)")
        self.cancel_button.setObjectName("ticket_cancel")
        self.confirm_button.clicked.connect(self.confirm)
        self.cancel_button.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.confirm_button)

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
        market = self.type_box.currentText() == OrderType.MARKET
        return self.base.with_(qty=int(self.qty.value()), order_type=OrderType.MARKET if market else OrderType.LIMIT,
                               entry=None if market else self._ticks(self.entry),
                               stop=self._ticks(self.stop), target=self._ticks(self.target),
                               ref_price=self.session.ref_price(self.base.symbol, self.base.side) or self.base.ref_price)

    def refresh(self, *_):
        """Recompute risk/reward and the gate's verdict."""
        self.entry.setEnabled(self.type_box.currentText() != OrderType.MARKET)
        t = self.ticket()
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

    def _verdict(self, ok: bool, text: str) -> None:
        self.verdict_label.setText(text)
        self.verdict_label.setStyleSheet(f"color: {'#1a8f3a' if ok else '#c0392b'}; font-weight: bold;")
        self.confirm_button.setEnabled(ok)

    def confirm(self) -> None:
        """Send (emit ``sigConfirmed``) when the gate allows; otherwise nothing happens."""
        if self._done:
            return
        self.refresh()
        if not self.confirm_button.isEnabled():
            return
        self._done = True
        self.sigConfirmed.emit(self.ticket())
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
            self.sigCancelled.emit(self.base)
        super().reject()
