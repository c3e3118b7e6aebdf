"""The trading area of the main window: risk panel, kill switch, order tickets, hotkey.

:func:`attach_trading` is what the main window calls with its trading context; it builds the
:class:`~app.trading.session.TradingSession` (paper broker by default, the DTC broker for a
Sierra Chart simulated or live account), puts a :class:`TradingPanel` in
``window.trading_area``, feeds the session every market batch through the pipeline's fan-out
(:meth:`~app.live.pipeline.Pipeline.add_listener`, whatever the source: embedded replay, DTC or
Sierra Chart files), opens tickets from the signal tape (double-click, or the "Trade signal"
button) and from ladder double-clicks, installs the application-wide kill-switch hotkey
(**Ctrl+Shift+K**), and journals each signal the engine publishes (with its reasons and analyzer
values) and each decided outcome from the engine's frames
(:meth:`~app.live.pipeline.Pipeline.add_frame_listener`).

The kill switch button is always visible at the top of the panel; its state and what is
still open after a failed verification are shown beside it, with Retry and a typed Unlock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import traceback

from PySide6 import QtCore, QtGui, QtWidgets

from app.market.grouping import bracket_to_ticks
from app.config.trading import LIVE_CONFIRM_PHRASE, MODE_LIVE, UNLOCK_CONFIRM_PHRASE, load_trading_settings
from app.trading.killswitch import KillState

log = logging.getLogger(__name__)

KILL_HOTKEY = "Ctrl+Shift+K"

_KILL_STYLE = {
    KillState.ARMED: ("KILL SWITCH", "#c0392b"),
    KillState.ENGAGED: ("ENGAGED...", "#e67e22"),
    KillState.VERIFIED_FLAT: ("VERIFIED FLAT (locked)", "#7f8c8d"),
    KillState.FAILED: ("FAILED - not verified flat", "#8e0000"),
}

#: risk panel rows: (key, label)
ROWS = (
    ("mode", "Mode"),
    ("account", "Account"),
    ("position", "Position"),
    ("avg_price", "Avg price"),
    ("open_pnl", "Open P&L"),
    ("realized_pnl", "Realised P&L (net)"),
    ("daily_loss", "Daily loss used (net)"),
    ("day", "Trading day"),
    ("trades", "Trades today"),
    ("losses", "Consecutive losses"),
    ("working", "Working orders"),
    ("gate", "Risk gate"),
)


@dataclasses.dataclass(frozen=True)
class PositionLine:
    """One instrument's line of the risk panel (issue 17).

    ``qty`` signed contracts as the broker reports them; ``avg_price`` float ticks (0 when
    flat); ``open_pnl_usd`` marked at the last trade (before the exit's commission);
    ``day_pnl_usd`` today's realised P&L net of commissions plus the open P&L; ``tick_size``
    and ``price_decimals`` of the instrument (display); ``max_position`` and
    ``daily_loss_limit_usd`` the symbol's own limits (``trading.toml``).
    """

    symbol: str
    qty: int
    avg_price: float
    open_pnl_usd: float
    day_pnl_usd: float
    tick_size: float
    price_decimals: int
    max_position: int
    daily_loss_limit_usd: float


@dataclasses.dataclass(frozen=True)
class AccountLine:
    """The account total across instruments (issue 17).

    ``contracts``: every symbol's ``abs(position)`` plus its unfilled entry orders, as the
    account-wide contract limit counts them (:class:`app.trading.risk.AccountMaxContracts`);
    ``max_contracts`` that limit (0: none). ``open_pnl_usd`` summed over the positions;
    ``day_pnl_usd`` realised (net) plus open, as the account daily loss limit counts it
    (:class:`app.trading.risk.AccountDailyLossLimit`); ``loss_limit_usd`` that limit.
    """

    contracts: int
    max_contracts: int
    open_pnl_usd: float
    day_pnl_usd: float
    loss_limit_usd: float

    @property
    def contracts_left(self) -> int | None:
        """Contracts the account may still add (None: no account-wide limit)."""
        return None if self.max_contracts <= 0 else max(0, self.max_contracts - self.contracts)

    @property
    def loss_left_usd(self) -> float:
        """USD of loss left before the account daily loss limit locks trading (0 when reached)."""
        return max(0.0, self.loss_limit_usd + min(0.0, self.day_pnl_usd))


def position_lines(session) -> list[PositionLine]:
    """One :class:`PositionLine` per traded instrument (the session's order, first instrument
    first), then any other symbol the broker reports a position in.

    Parameters
    ----------
    session : app.trading.session.TradingSession
        Positions come from ``session.broker.positions`` (the broker's own reports).
    """
    from app.ui.ladder import price_decimals

    syms = list(session.instruments)
    syms += sorted(sym for sym, p in session.broker.positions.items() if p.qty and sym not in session.instruments)
    out = []
    for sym in syms:
        inst = session.instrument_of(sym)
        pos = session.broker.positions.get(sym)
        qty = int(pos.qty) if pos else 0
        opn = session.open_pnl_usd(sym)
        _per_order, max_pos, loss = session.settings.limits_for(sym)
        out.append(PositionLine(sym, qty, float(pos.avg_price) if pos and qty else 0.0, opn,
                                session.realized_by_symbol.get(sym, 0.0) + opn, float(inst.tick_size),
                                int(getattr(inst, "price_decimals", price_decimals(float(inst.tick_size)))),
                                int(max_pos), float(loss)))
    return out


def account_line(session) -> AccountLine:
    """The account total of ``session`` across every instrument (:class:`AccountLine`)."""
    from app.trading.orders import ROLE_ENTRY

    held = sum(abs(int(p.qty)) for p in session.broker.positions.values())
    working = sum(max(0, int(o.request.qty - o.filled_qty)) for o in session.broker.working_orders()
                  if o.request.role == ROLE_ENTRY)
    opn = session.account_open_pnl_usd()
    st = session.settings
    return AccountLine(int(held + working), int(st.account_max_contracts), opn,
                       float(session.pnl.net_realized_usd) + opn, float(st.account_loss_limit_usd))


def _usd(v: float) -> str:
    """USD with a sign and two decimals; a value that rounds to zero shows ``+0.00``, never ``-0.00``."""
    return f"{round(float(v), 2) + 0.0:+,.2f}"


class TradingPanel(QtWidgets.QWidget):
    """Kill switch button, live banner, risk panel values, action buttons (no logic inside).

    With more than one instrument (:meth:`update_accounts` given two lines or more) a table
    below the values shows one line per instrument (symbol, position, average price, open and
    day P&L in USD) and the account total, with the account limits' headroom; with one
    instrument it stays hidden and the panel looks as before.

    Signals
    -------
    sigKill(str)
        The kill switch button was clicked (``"button"``).
    sigRetry(), sigUnlock(str), sigLiveConfirm(str), sigTradeSignal(), sigFlatten()
    """

    #: columns of :attr:`positions_table`
    POSITION_HEADERS = ("Symbol", "Pos", "Avg price", "Open P&L", "Day P&L")

    sigKill = QtCore.Signal(str)
    sigRetry = QtCore.Signal()
    sigUnlock = QtCore.Signal(str)
    sigLiveConfirm = QtCore.Signal(str)
    sigTradeSignal = QtCore.Signal()
    sigFlatten = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("trading_panel")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(4)

        self.live_banner = QtWidgets.QLabel("LIVE TRADING - real orders on a real account")
        self.live_banner.setObjectName("live_banner")
        self.live_banner.setAlignment(QtCore.Qt.AlignCenter)
        self.live_banner.setWordWrap(True)
        self.live_banner.setStyleSheet("background: #c0392b; color: white; font-weight: bold; padding: 4px;")
        self.live_banner.hide()
        lay.addWidget(self.live_banner)

        live_row = QtWidgets.QHBoxLayout()
        self.live_edit = QtWidgets.QLineEdit()
        self.live_edit.setObjectName("live_confirm_edit")
        self.live_edit.setPlaceholderText(f"type {LIVE_CONFIRM_PHRASE} to allow live orders")
        self.live_button = QtWidgets.QPushButton("Enable live orders")
        self.live_button.clicked.connect(lambda: self.sigLiveConfirm.emit(self.live_edit.text()))
        live_row.addWidget(self.live_edit)
        live_row.addWidget(self.live_button)
        self.live_box = QtWidgets.QWidget()
        self.live_box.setLayout(live_row)
        self.live_box.hide()
        lay.addWidget(self.live_box)

        self.kill_button = QtWidgets.QPushButton(f"KILL SWITCH  ({KILL_HOTKEY})")
        self.kill_button.setObjectName("kill_switch")
        f = self.kill_button.font()
        f.setPointSizeF(f.pointSizeF() + 4)  # points: follows the screen's DPI and scaling
        f.setBold(True)
        self.kill_button.setFont(f)
        # room for two lines: a text too wide for the panel goes on two lines (see _fit_kill_text)
        self.kill_button.setMinimumHeight(2 * QtGui.QFontMetrics(f).height() + 12)
        self.kill_button.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        self._kill_text = ""
        self.kill_button.setToolTip("Lock trading, cancel every working order, flatten every position, "
                                    "then verify with the broker's own reports")
        self.kill_button.clicked.connect(lambda: self.sigKill.emit("button"))
        lay.addWidget(self.kill_button)
        self.journal_error = ""  # why the kill switch's last run could not be journaled
        self.kill_status = QtWidgets.QLabel("armed")
        self.kill_status.setObjectName("kill_status")
        self.kill_status.setWordWrap(True)
        lay.addWidget(self.kill_status)

        krow = QtWidgets.QHBoxLayout()
        self.retry_button = QtWidgets.QPushButton("Retry")
        self.retry_button.setObjectName("kill_retry")
        self.retry_button.clicked.connect(self.sigRetry.emit)
        self.unlock_edit = QtWidgets.QLineEdit()
        self.unlock_edit.setObjectName("unlock_edit")
        self.unlock_edit.setPlaceholderText(f"type {UNLOCK_CONFIRM_PHRASE}")
        self.unlock_button = QtWidgets.QPushButton("Unlock")
        self.unlock_button.setObjectName("kill_unlock")
        self.unlock_button.clicked.connect(lambda: self.sigUnlock.emit(self.unlock_edit.text()))
        krow.addWidget(self.retry_button)
        krow.addWidget(self.unlock_edit)
        krow.addWidget(self.unlock_button)
        self.unlock_box = QtWidgets.QWidget()
        self.unlock_box.setLayout(krow)
        self.unlock_box.hide()
        lay.addWidget(self.unlock_box)

        grid = QtWidgets.QFormLayout()
        grid.setVerticalSpacing(2)
        grid.setHorizontalSpacing(8)
        grid.setFieldGrowthPolicy(QtWidgets.QFormLayout.AllNonFixedFieldsGrow)
        self.values: dict[str, QtWidgets.QLabel] = {}
        self.row_labels: dict[str, QtWidgets.QLabel] = {}
        for key, label in ROWS:
            v = QtWidgets.QLabel("-")
            v.setObjectName(f"risk_{key}")
            v.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            v.setWordWrap(True)  # a long value wraps in a narrow panel instead of being cut
            self.values[key] = v
            # a QLabel of our own, with no buddy: addRow(str, ...) would make the label the
            # field's buddy, and Qt then reads "&" as a shortcut marker ("Open P&L" -> "Open PL")
            name = QtWidgets.QLabel(label)
            name.setTextFormat(QtCore.Qt.PlainText)
            name.setObjectName(f"risk_label_{key}")
            self.row_labels[key] = name
            grid.addRow(name, v)
        lay.addLayout(grid)

        #: one line per instrument and the account total (shown with two instruments or more)
        self.positions_table = QtWidgets.QTableWidget(0, len(self.POSITION_HEADERS))
        self.positions_table.setObjectName("positions_table")
        self.positions_table.setHorizontalHeaderLabels(self.POSITION_HEADERS)
        self.positions_table.verticalHeader().setVisible(False)
        self.positions_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.positions_table.setSelectionMode(QtWidgets.QAbstractItemView.NoSelection)
        # every column as wide as its text (the panel is narrow: no sideways scrolling for P&L)
        self.positions_table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        self.positions_table.horizontalHeader().setMinimumSectionSize(8)
        self.positions_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.positions_table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAsNeeded)
        for c, tip in enumerate(("Instrument", "Signed position, contracts (the broker's report)",
                                 "Average entry price", "Open P&L marked at the last trade, USD",
                                 "Today's realised P&L net of commissions plus the open P&L, USD")):
            self.positions_table.horizontalHeaderItem(c).setToolTip(tip)
        self.positions_table.setSizeAdjustPolicy(QtWidgets.QAbstractScrollArea.AdjustToContents)
        self.positions_table.hide()
        lay.addWidget(self.positions_table)
        self.account_headroom = QtWidgets.QLabel("")
        self.account_headroom.setObjectName("account_headroom")
        self.account_headroom.setWordWrap(True)
        self.account_headroom.hide()
        lay.addWidget(self.account_headroom)

        brow = QtWidgets.QHBoxLayout()
        self.trade_button = QtWidgets.QPushButton("Trade signal...")
        self.trade_button.setObjectName("trade_signal")
        self.trade_button.setToolTip("Open an order ticket for the signal selected in the tape (or double-click it)")
        self.trade_button.clicked.connect(self.sigTradeSignal.emit)
        self.flatten_button = QtWidgets.QPushButton("Flatten")
        self.flatten_button.setObjectName("flatten")
        self.flatten_button.setToolTip("Cancel this symbol's working orders and close its position (through the gate)")
        self.flatten_button.clicked.connect(self.sigFlatten.emit)
        brow.addWidget(self.trade_button)
        brow.addWidget(self.flatten_button)
        lay.addLayout(brow)
        self.problem_label = QtWidgets.QLabel("")
        self.problem_label.setObjectName("trading_problem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #c0392b;")
        lay.addWidget(self.problem_label)
        lay.addStretch(1)
        self.set_kill_state(KillState.ARMED, "")

    def set_kill_state(self, state: KillState, detail: str, journal_error: str | None = None) -> None:
        """Show the kill switch's state, what is still open (``detail``) and a journal failure.

        ``journal_error`` (why the run could not be journaled; ``None`` keeps the last one shown,
        ``""`` clears it) turns the state into e.g. ``ENGAGED, JOURNAL FAILED`` with the reason.
        """
        if journal_error is not None:
            self.journal_error = journal_error
        text, color = _KILL_STYLE.get(state, ("KILL SWITCH", "#c0392b"))
        if self.journal_error and state != KillState.ARMED:
            text += ", JOURNAL FAILED"
        self._kill_text = f"{text}  ({KILL_HOTKEY})" if state == KillState.ARMED else text
        self._fit_kill_text()
        self.kill_button.setStyleSheet(f"background: {color}; color: white;")
        label = state.value.upper().replace("_", " ")
        if self.journal_error and state != KillState.ARMED:
            label += ", JOURNAL FAILED"
            if "JOURNAL FAILED" not in detail:
                detail = f"{detail} | JOURNAL FAILED: {self.journal_error}" if detail else self.journal_error
        self.kill_status.setText(label + (f": {detail}" if detail else ""))
        self.unlock_box.setVisible(state in (KillState.VERIFIED_FLAT, KillState.FAILED))
        # Retry only where it means something: after a failed verification (never once flat)
        self.retry_button.setVisible(state == KillState.FAILED)
        self.retry_button.setEnabled(state == KillState.FAILED)

    def _fit_kill_text(self) -> None:
        """The kill button's text on one line, or on two (at the hotkey, or after a comma) when
        one line is wider than the button: never cut."""
        text = self._kill_text
        b = self.kill_button
        room = b.contentsRect().width() - 16  # the style's padding
        if QtGui.QFontMetrics(b.font()).horizontalAdvance(text) > room:
            if "  (" in text:
                text = text.replace("  (", "\n(", 1)
            elif ", " in text:
                text = text.replace(", ", ",\n", 1)
            elif " - " in text:
                text = text.replace(" - ", "\n", 1)
        if b.text() != text:
            b.setText(text)

    def resizeEvent(self, ev):  # noqa: N802 (Qt name)
        super().resizeEvent(ev)
        self._fit_kill_text()

    def update_from(self, snap, price_decimals: int = 2) -> None:
        """Show a :class:`~app.trading.session.RiskSnapshot`."""
        v = self.values
        v["mode"].setText(snap.mode.upper() + ("" if snap.connected else " (disconnected)"))
        v["account"].setText(snap.account)
        v["position"].setText(f"{snap.position_qty:+d} {snap.symbol}" if snap.position_qty else f"flat {snap.symbol}")
        v["avg_price"].setText(f"{snap.avg_price * snap.tick_size:.{price_decimals}f}" if snap.position_qty else "-")
        v["open_pnl"].setText(f"{snap.open_pnl_usd:+,.2f} USD")
        v["realized_pnl"].setText(f"{snap.realized_pnl_usd:+,.2f} USD")
        v["daily_loss"].setText(f"{snap.daily_loss_used_usd:,.2f} / {snap.daily_loss_limit_usd:,.2f} USD")
        v["day"].setText(f"{snap.trading_day}, started {snap.day_start_local}")
        v["trades"].setText(f"{snap.trades_today} / {snap.max_trades_per_day}")
        v["losses"].setText(f"{snap.consecutive_losses} / {snap.max_consecutive_losses}")
        v["working"].setText(str(snap.working_orders))
        v["gate"].setText(snap.gate_state.upper() if snap.gate_state == "open" else snap.gate_state)
        live = snap.mode == MODE_LIVE
        self.live_banner.setVisible(live)
        self.live_box.setVisible(live and not snap.live_confirmed)
        state = KillState(snap.kill_state)
        if state != KillState.ENGAGED:
            self.set_kill_state(state, snap.kill_detail if state == KillState.FAILED else "")


    def update_accounts(self, lines, account: AccountLine) -> None:
        """Show every instrument's :class:`PositionLine` and the :class:`AccountLine` total.

        One line or none: the table and the headroom stay hidden (the one-instrument panel)."""
        many = len(lines) > 1
        self.positions_table.setVisible(many)
        self.account_headroom.setVisible(many)
        if not many:
            return
        t = self.positions_table
        rows = [(ln.symbol, f"{ln.qty:+d}" if ln.qty else "flat",
                 f"{ln.avg_price * ln.tick_size:.{ln.price_decimals}f}" if ln.qty else "-",
                 _usd(ln.open_pnl_usd), _usd(ln.day_pnl_usd)) for ln in lines]
        rows.append(("Account", str(account.contracts), "", _usd(account.open_pnl_usd), _usd(account.day_pnl_usd)))
        if t.rowCount() != len(rows):
            t.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                item = t.item(r, c)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    item.setTextAlignment(QtCore.Qt.AlignCenter if c else QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter)
                    t.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
                if r == len(rows) - 1:
                    f = item.font()
                    if not f.bold():
                        f.setBold(True)
                        item.setFont(f)
        left = account.contracts_left
        contracts = (f"{account.contracts} contracts (no account limit)" if left is None else
                     f"{account.contracts} / {account.max_contracts} contracts ({left} left)")
        self.account_headroom.setText(
            f"Account: {contracts}; day loss {max(0.0, -account.day_pnl_usd):,.2f} / "
            f"{account.loss_limit_usd:,.2f} USD ({account.loss_left_usd:,.2f} left) across instruments")

    def position_texts(self) -> list[tuple[str, ...]]:
        """The cells of :attr:`positions_table`, row by row (the account total last)."""
        t = self.positions_table
        return [tuple((t.item(r, c).text() if t.item(r, c) else "") for c in range(t.columnCount()))
                for r in range(t.rowCount())]


class TradingController(QtCore.QObject):
    """Connects a :class:`TradingPanel`, order tickets and the hotkey to a :class:`TradingSession`.

    Parameters
    ----------
    session : app.trading.session.TradingSession
    panel : TradingPanel
    report : callable(level, text) or None
        Where problems go (the main window's banner); default: the log.
    """

    sigTicketOpened = QtCore.Signal(object)  # the OrderTicketDialog

    def __init__(self, session, panel: TradingPanel, report=None, parent=None):
        super().__init__(parent)
        self.session = session
        self.panel = panel
        self.report = report or (lambda level, text: log.warning("%s", text))
        self.selected_signal = None
        self.dialog = None
        self.hotkey = None
        self._tasks: set[asyncio.Task] = set()
        self._journaled_signals: set[int] = set()
        self._journaled_outcomes: set[int] = set()
        self.row_ticks = 1  # exchange ticks per price row of the latest frame (app.market.grouping)
        self._signal_patterns: dict[int, list[str]] = {}  # signal id -> pattern names (outcome rows)
        self._followed = (None, None)  # (pipeline, market listener) while following
        self._problems_seen = 0
        self._journal_failure_shown = ""
        #: why no ticket may be opened now ("" = tickets allowed), e.g. the window's data-collection mode
        self.entry_blocked = ""
        panel.sigKill.connect(self.kill)
        panel.sigRetry.connect(self.retry)
        panel.sigUnlock.connect(self.unlock)
        panel.sigLiveConfirm.connect(self.confirm_live)
        panel.sigTradeSignal.connect(lambda: self.open_signal_ticket(self.selected_signal))
        panel.sigFlatten.connect(self.flatten)
        session.kill.add_listener(self._on_kill)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.refresh)

    # ------------------------------------------------------------------ tasks
    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` on the asyncio loop; its exception is reported, never swallowed."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t):
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.report("error", "trading: " + "".join(traceback.format_exception(t.exception())))

        task.add_done_callback(done)
        return task

    async def start(self) -> None:
        await self.session.start()
        self.timer.start()
        self.refresh()

    async def shutdown(self) -> None:
        """Stop refreshing and stop the session (orders stay at the venue)."""
        self.timer.stop()
        self.unfollow()
        if self.dialog is not None:
            self.dialog.close()
        for t in list(self._tasks):
            if not t.done():
                try:
                    await asyncio.wait_for(asyncio.shield(t), 2.0)
                except Exception:
                    t.cancel()
        # detach from the window: a second attach (pipeline restart) must not find a second hotkey
        if self.hotkey is not None:
            self.hotkey.setEnabled(False)
            self.hotkey.deleteLater()
            self.hotkey = None
        for obj, filt in getattr(self, "_filters", []):
            obj.removeEventFilter(filt)
        for sig, slot in getattr(self, "_connections", []):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        self._filters, self._connections = [], []
        try:
            await self.session.stop()
        finally:
            if getattr(self, "owns_journal", False):
                self.session.journal.close()

    # ------------------------------------------------------------------ kill switch
    def install_hotkey(self, widget: QtWidgets.QWidget, sequence: str = KILL_HOTKEY) -> QtGui.QShortcut:
        """An application-wide shortcut (works from any window of the app) that fires the kill switch."""
        self.hotkey = QtGui.QShortcut(QtGui.QKeySequence(sequence), widget)
        self.hotkey.setContext(QtCore.Qt.ApplicationShortcut)
        self.hotkey.activated.connect(lambda: self.kill("hotkey"))
        return self.hotkey

    def kill(self, trigger: str = "button") -> asyncio.Task:
        """Engage the kill switch now (the gate locks before this returns), or join the run in progress.

        Returns the run's task (:meth:`app.trading.killswitch.KillSwitch.trigger`: one run at a time).
        """
        self.session.gate.lock(f"kill switch: {trigger}")  # lock at once, even before the task runs
        kill = self.session.kill
        self.panel.set_kill_state(KillState.ENGAGED, kill.trigger_name if kill.busy else trigger,
                                  kill.journal_error if kill.busy else "")
        task = kill.trigger(trigger)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def retry(self) -> asyncio.Task:
        """The Retry button: the same single-flight path as the kill button (joins a run in progress)."""
        return self.kill("retry")

    def unlock(self, typed: str) -> bool:
        ok = self.session.kill.unlock(typed)
        if ok:
            self.panel.unlock_edit.clear()
            self.panel.problem_label.setText("")
        else:
            self.panel.problem_label.setText(f"Unlock refused: type exactly {UNLOCK_CONFIRM_PHRASE} "
                                             "(and only once the kill switch has finished)")
        self.refresh()
        return ok

    def confirm_live(self, typed: str) -> bool:
        ok = self.session.confirm_live(typed)
        if not ok:
            self.panel.problem_label.setText(f"Live orders stay disabled: type exactly {LIVE_CONFIRM_PHRASE}")
        self.refresh()
        return ok

    def _on_kill(self, state, result) -> None:
        detail = result.describe() if result is not None else ""
        self.panel.set_kill_state(state, detail, self.session.kill.journal_error)
        if state == KillState.FAILED and result is not None:
            self.report("error", f"Kill switch {result.describe()}. Check Sierra Chart's Trade Orders and "
                                 "Positions windows now.")

    # ------------------------------------------------------------------ tickets
    def open_ticket(self, ticket, instrument: str = ""):
        """Show a ticket dialog for ``ticket`` (journaled as shown); returns the dialog, or None
        (with the reason shown) while :attr:`entry_blocked` is set.

        ``instrument`` binds the dialog to that symbol (it cannot submit another's ticket;
        :class:`~app.ui.instruments_trading.InstrumentsTradingController` always binds); its
        confirmation goes to :meth:`_confirmed`."""
        from app.ui.trading_ticket import OrderTicketDialog

        if self.entry_blocked:
            self.panel.problem_label.setText(self.entry_blocked)
            return None

        if self.dialog is not None:
            self.dialog.close()
        bound = str(instrument or "")
        kw = {"instrument": bound} if bound else {}
        dlg = OrderTicketDialog(self.session, ticket, self.panel.window(), **kw)
        dlg.setAttribute(QtCore.Qt.WA_DeleteOnClose, True)
        dlg.sigConfirmed.connect(lambda t, _b=bound: self.spawn(self._confirmed(t, _b)))
        dlg.sigCancelled.connect(self.session.cancel_ticket)
        dlg.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dlg
        dlg.open()
        dlg.raise_()
        dlg.activateWindow()
        self.sigTicketOpened.emit(dlg)
        return dlg

    async def _confirmed(self, ticket, instrument: str = ""):
        """A dialog's Confirm: :meth:`_confirm` (subclasses route a bound ``instrument``)."""
        return await self._confirm(ticket)

    def open_signal_ticket(self, signal):
        """Ticket prefilled from an :class:`~app.analysis.frame.Signal` (side, size, bracket)."""
        if signal is None:
            self.panel.problem_label.setText("Select a signal in the tape first.")
            return None
        try:
            self._journal_signal(signal)
            if self.row_ticks > 1:  # the frame's prices are rows of row_ticks exchange ticks
                e, st, tg = bracket_to_ticks(signal.side, signal.entry, signal.stop, signal.target, self.row_ticks)
                signal = dataclasses.replace(signal, entry=e, stop=st, target=tg)
            return self.open_ticket(self.session.ticket_from_signal(signal))
        except ValueError as exc:
            self.panel.problem_label.setText(f"Cannot trade signal #{signal.id}: {exc}")
            return None

    def open_price_ticket(self, price_ticks: int, side: int, order_type: str = "limit"):
        """Ticket for a limit (or, ``order_type="stop"``, a stop) entry at a ladder price (bracket offsets from the settings)."""
        try:
            return self.open_ticket(self.session.ticket_from_price(int(price_ticks), int(side), order_type=order_type))
        except ValueError as exc:
            self.panel.problem_label.setText(f"Cannot open a ticket at {price_ticks}: {exc}")
            return None

    async def _confirm(self, ticket):
        d = await self.session.confirm(ticket)
        if not d.allowed:
            self.panel.problem_label.setText(f"Refused: {d.message}")
        else:
            self.panel.problem_label.setText("")
        self.refresh()
        return d

    def flatten(self) -> None:
        async def go():
            s = self.session
            sym = s.instrument.symbol
            for o in list(s.broker.working_orders()):
                if o.request.symbol == sym and o.request.role != "flatten":
                    await s.cancel_order(o.client_order_id)
            await s.flatten_position(sym, reason="flatten button")

        self.spawn(go())

    # ------------------------------------------------------------------ frames
    def _journal_signal(self, sig) -> None:
        if sig.id in self._journaled_signals:
            return
        self._journaled_signals.add(sig.id)
        snap = {"reasons": [{"name": r.name, "values": list(r.values)} for r in sig.reasons]}
        self.session.record_signal(sig, snap)

    def follow(self, pipeline) -> None:
        """Hear ``pipeline``'s market data and frames (its fan-out) until :meth:`unfollow`.

        Every market batch goes to ``session.on_market`` (paper fills, open P&L, stale-data
        rule, which counts from this call until the first batch); every published frame to
        :meth:`on_frame` (signal and outcome journal).
        """
        self.unfollow()
        sym = self.session.instrument.symbol
        session = self.session

        def on_market(batch):
            session.on_market(sym, batch)

        pipeline.add_listener(on_market)
        pipeline.add_frame_listener(self.on_frame)
        self._followed = (pipeline, on_market)
        session.watch_market(sym)  # the stale-data trigger counts from here until the first data

    def unfollow(self) -> None:
        """Stop hearing the pipeline given to :meth:`follow` (no-op when none)."""
        pl, fn = self._followed
        self._followed = (None, None)
        if pl is not None:
            pl.remove_listener(fn)
            pl.remove_frame_listener(self.on_frame)

    def on_frame(self, frame) -> None:
        """Journal the signals (with an analyzer snapshot) and the decided outcomes of ``frame``.

        Called for every frame the engine publishes; a signal (``frame.new_signals`` and
        ``frame.signals``) and a complete outcome are journaled once, however many frames
        carry them.
        """
        if frame is None:
            return
        self.row_ticks = int(getattr(frame, "row_ticks", 1) or 1)
        fresh = [sig for sig in (*getattr(frame, "new_signals", ()), *frame.signals)
                 if sig.id not in self._journaled_signals]
        if fresh:
            snap = {"orderflow": dict(frame.orderflow), "best_bid": int(frame.best_bid),
                    "best_ask": int(frame.best_ask),
                    "vix": None if frame.vix is None else {"level": frame.vix.level, "regime": frame.vix.regime}}
            for sig in fresh:
                if sig.id not in self._journaled_signals:
                    self._journaled_signals.add(sig.id)
                    self._signal_patterns[sig.id] = [r.name for r in sig.reasons]
                    self.session.record_signal(sig, snap)
        if not frame.outcomes:
            return
        names = {s.id: [r.name for r in s.reasons] for s in frame.signals}
        for sid, out in frame.outcomes.items():
            if out.complete and sid not in self._journaled_outcomes:
                self._journaled_outcomes.add(sid)
                patterns = names.get(sid) or self._signal_patterns.get(sid, [])
                self.session.journal.record_signal_outcome(out, patterns)

    def refresh(self) -> None:
        """Show the session's figures, the kill switch (with any journal failure) and the newest problem."""
        s = self.session
        dec = int(getattr(s.instrument, "price_decimals", 2))
        self.panel.journal_error = s.kill.journal_error
        self.panel.update_from(s.snapshot(), dec)
        self.panel.update_accounts(position_lines(s), account_line(s))
        if len(s.problems) > self._problems_seen:
            self._problems_seen = len(s.problems)
            self.panel.problem_label.setText(s.problems[-1])
        failure = getattr(s.journal, "failure", "")
        if failure and failure != self._journal_failure_shown:
            self.panel.problem_label.setText(f"JOURNAL FAILED: {failure}; records go to {s.journal.fallback_path} "
                                             "and are written to the journal when it works again")
        self._journal_failure_shown = failure


class _LadderClicks(QtCore.QObject):
    """Double-click on the ladder: a limit ticket at that row (left half buys, right half sells); Shift: a stop."""

    def __init__(self, ladder, controller: TradingController):
        super().__init__(ladder)
        self.ladder, self.controller = ladder, controller

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        if ev.type() == QtCore.QEvent.MouseButtonDblClick:
            lad = self.ladder
            y = ev.position().y()
            span = lad._hi - lad._lo
            if lad._height > 0 and span > 0 and lad.tick > 0:
                price = lad._hi - (y - lad._top) / lad._height * span
                side = 1 if ev.position().x() < lad.width() / 2 else -1
                tick = self.controller.session.instrument.tick_size  # exchange ticks, not rows
                stop = bool(ev.modifiers() & QtCore.Qt.ShiftModifier)
                self.controller.open_price_ticket(int(round(price / tick)), side, "stop" if stop else "limit")
                return True
        return False


def _build_session(context, settings):
    """The window's trading session for its one instrument (:func:`app.ui.instruments_trading.build_session`)."""
    from app.ui.instruments_trading import build_session

    inst = getattr(context, "instrument", None)
    if inst is None:
        raise RuntimeError("no instrument: the market data source did not start, so trading is disabled")
    return build_session([inst], settings, getattr(context, "client", None), getattr(context, "trade_account", ""),
                         clock=getattr(context, "clock", None))


def attach_trading(window, context) -> TradingController:
    """Fill ``window.trading_area`` with the trading panel and start the trading session.

    Parameters
    ----------
    window : app.ui.main_window.MainWindow
        Needs ``trading_area``; uses ``tape``, ``ladder``, ``spawn`` and ``report`` when present.
    context : types.SimpleNamespace
        From ``window.trading_context()`` (``instrument``, ``client``, ``pipeline``,
        ``trade_account``, ``report``). Without a ``pipeline`` the session hears no market
        data (a warning says so).

    Returns
    -------
    TradingController
        Has ``shutdown()`` (async), ``session`` and ``panel``.
    """
    report = getattr(context, "report", None) or getattr(window, "report", None)
    try:
        settings = load_trading_settings()
    except ValueError as exc:
        from app.config.trading import TradingSettings

        if report:
            report("warning", f"Trading settings ignored (defaults used): {exc}")
        settings = TradingSettings()
    session = _build_session(context, settings)
    panel = TradingPanel()
    window.trading_area.layout().addWidget(panel)
    ctl = TradingController(session, panel, report, parent=window)
    ctl.install_hotkey(window)
    pipeline = getattr(context, "pipeline", None)
    if pipeline is not None:
        ctl.follow(pipeline)
    elif report:
        report("warning", "Trading: no market stream to follow; paper fills and stale-data checks are off")
    ctl.owns_journal = True
    ctl._connections, ctl._filters = [], []
    tape = getattr(window, "tape", None)
    if tape is not None:
        def on_selected(sig):
            ctl.selected_signal = sig

        tape.sigSignalSelected.connect(on_selected)
        ctl._connections.append((tape.sigSignalSelected, on_selected))
        view = getattr(tape, "view", None)
        model = getattr(tape, "model", None)
        if view is not None:
            def on_double(index):
                m = view.model()
                sig = m.signal_at(index.row()) if hasattr(m, "signal_at") else None
                if sig is None and model is not None and hasattr(model, "signal_at"):
                    sig = model.signal_at(index.row())
                ctl.open_signal_ticket(sig)

            view.doubleClicked.connect(on_double)
            ctl._connections.append((view.doubleClicked, on_double))
    ladder = getattr(window, "ladder", None)
    if ladder is not None:
        filt = _LadderClicks(ladder, ctl)
        ladder.installEventFilter(filt)
        ctl._filters.append((ladder, filt))
    spawn = getattr(window, "spawn", None) or ctl.spawn
    spawn(ctl.start())
    return ctl
