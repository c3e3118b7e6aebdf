"""Trading with several instruments in the window (issue 17 items 3-4): one session, tickets bound to a panel.

:func:`attach_instruments_trading` fills ``window.trading_area`` with the same risk panel and
kill switch as :func:`app.ui.trading_panel.attach_trading`, but over **one**
:class:`~app.trading.session.TradingSession` that trades every instrument of the window's
:class:`~app.live.instruments.InstrumentsRuntime` (its broker knows every instrument; the
session prices each with its own tick size and value, applies the per-instrument and account
limits, and its kill switch cancels and flattens every instrument). The session hears every
instrument's market batches (paper fills, open P&L, stale data) and frames (signal journal).

Tickets. A double-click on a panel's ladder opens a limit ticket (Shift: a stop) **for that
panel's instrument** (:meth:`InstrumentsTradingController.open_price_ticket` with the panel's
symbol). The dialog is bound to that symbol (:class:`app.ui.trading_ticket.OrderTicketDialog`
``instrument=``: no field changes the symbol) and its confirmation goes to
``session.confirm(ticket, instrument=symbol)``, which refuses a ticket of another instrument
(rule ``ticket_instrument``, journaled). A ticket from the tape's signal belongs to the
signal's instrument.
"""

from __future__ import annotations

import logging

from PySide6 import QtCore

from app.ui.trading_panel import TradingController, TradingPanel

log = logging.getLogger(__name__)


class InstrumentsTradingController(TradingController):
    """A :class:`~app.ui.trading_panel.TradingController` whose tickets are bound to an instrument.

    Parameters
    ----------
    session : app.trading.session.TradingSession
        Trades every instrument (``session.instruments``).
    panel : TradingPanel
    report : callable(level, text), optional
    parent : QObject, optional

    Attributes
    ----------
    decisions : list of (str, GateDecision)
        (bound instrument, the session's decision) of every confirmed ticket, newest last.
    """

    def __init__(self, session, panel: TradingPanel, report=None, parent=None):
        super().__init__(session, panel, report, parent)
        self.decisions = []
        #: exchange ticks per price row of each instrument's latest frame
        self.row_ticks_of: dict[str, int] = {}
        self._more_followed = []  # (pipeline, market listener) of the instruments after the first

    def open_ticket(self, ticket, instrument: str = ""):
        """Show the ticket dialog bound to ``instrument`` (default the ticket's own symbol).

        Returns the dialog, or None (the reason shown) while :attr:`entry_blocked` is set.
        """
        return super().open_ticket(ticket, instrument=str(instrument or ticket.symbol))

    async def _confirmed(self, ticket, instrument: str = ""):
        return await self._confirm_for(ticket, instrument or ticket.symbol)

    def open_price_ticket(self, price_ticks: int, side: int, order_type: str = "limit", symbol: str = ""):
        """Ticket at a ladder price of ``symbol`` (its exchange ticks), bound to ``symbol``
        (default the session's first instrument)."""
        sym = symbol or self.session.instrument.symbol
        try:
            t = self.session.ticket_from_price(int(price_ticks), int(side), order_type=order_type, symbol=sym)
        except ValueError as exc:
            self.panel.problem_label.setText(f"Cannot open a {sym} ticket at {price_ticks}: {exc}")
            return None
        return self.open_ticket(t, instrument=sym)

    async def _confirm_for(self, ticket, instrument: str):
        d = await self.session.confirm(ticket, instrument=instrument)
        self.decisions.append((instrument, d))
        self.panel.problem_label.setText("" if d.allowed else f"Refused: {d.message}")
        self.refresh()
        return d

    def on_frame(self, frame) -> None:
        """As :meth:`TradingController.on_frame`, and keep each instrument's price rows
        (``frame.row_ticks``: exchange ticks per row differ between instruments)."""
        if frame is not None:
            self.row_ticks_of[str(frame.symbol)] = int(getattr(frame, "row_ticks", 1) or 1)
        super().on_frame(frame)

    def open_signal_ticket(self, signal):
        """Ticket from a tape signal, its rows converted with **its** instrument's row size."""
        if signal is not None:
            self.row_ticks = self.row_ticks_of.get(str(signal.symbol), 1)
        return super().open_signal_ticket(signal)

    def follow_more(self, pipeline, symbol: str) -> None:
        """Hear another instrument's market batches and frames too (after :meth:`follow` of the first)."""
        session = self.session

        def on_market(batch, _sym=symbol):
            session.on_market(_sym, batch)

        pipeline.add_listener(on_market)
        pipeline.add_frame_listener(self.on_frame)
        self._more_followed.append((pipeline, on_market))
        session.watch_market(symbol)

    def unfollow(self) -> None:
        super().unfollow()
        for pl, fn in getattr(self, "_more_followed", []):
            pl.remove_listener(fn)
            pl.remove_frame_listener(self.on_frame)
        self._more_followed = []


class PanelLadderClicks(QtCore.QObject):
    """Double-click on a panel's ladder: a limit ticket of that panel's instrument at that row
    (left half buys, right half sells); Shift: a stop entry."""

    def __init__(self, panel, controller: InstrumentsTradingController):
        super().__init__(panel.ladder)
        self.panel, self.controller = panel, controller

    def price_at(self, y: float) -> float | None:
        """The ladder's price (price units) at widget pixel row ``y``; None before a frame."""
        lad = self.panel.ladder
        span = lad._hi - lad._lo
        if lad._height > 0 and span > 0 and lad.tick > 0:
            return lad._hi - (y - lad._top) / lad._height * span
        return None

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        if ev.type() == QtCore.QEvent.MouseButtonDblClick:
            price = self.price_at(ev.position().y())
            if price is None:
                return False
            sym = self.panel.symbol
            side = 1 if ev.position().x() < self.panel.ladder.width() / 2 else -1
            tick = self.controller.session.instrument_of(sym).tick_size  # exchange ticks, not rows
            stop = bool(ev.modifiers() & QtCore.Qt.ShiftModifier)
            self.controller.open_price_ticket(int(round(price / tick)), side, "stop" if stop else "limit", symbol=sym)
            return True
        return False


def build_session(instruments, settings, client=None, trade_account: str = "", clock=None):
    """One trading session over ``instruments`` (the first is the session's ``instrument``).

    Parameters
    ----------
    instruments : list of app.core.events.Instrument
        At least one, each with its tick size and tick value.
    settings : app.config.trading.TradingSettings
    client : app.dtc.client.DTCClient, optional
        The shared DTC connection (sim and live modes).
    trade_account : str
        The DTC TradeAccount when the settings name none (default "Sim1").
    clock : app.core.clock.Clock, optional
        Where the session reads "now" (the window's injected clock; default the system clock).

    Raises
    ------
    RuntimeError
        No instrument, or sim / live without a DTC connection.
    """
    from app.trading.journal import Journal
    from app.trading.session import TradingSession

    insts = [i for i in instruments if i is not None]
    if not insts:
        raise RuntimeError("no instrument: the market data sources did not start, so trading is disabled")
    mode = settings.mode
    if mode == "paper":
        from app.trading.paper import PaperBroker

        # each instrument its own commission per contract ([trading.instruments."SYM"], else the default)
        broker = PaperBroker(insts, {i.symbol: settings.commission_for(i.symbol) for i in insts},
                             settings.slippage_ticks)
    else:
        from app.trading.dtc_broker import DtcBroker

        if client is None:
            raise RuntimeError(f"{mode} mode needs the DTC connection, which is not available")
        broker = DtcBroker(client, insts, settings.account or trade_account or "Sim1")
    from app.core.clock import SYSTEM_CLOCK

    return TradingSession(broker, Journal(), settings, insts[0], mode, clock=clock or SYSTEM_CLOCK,
                          instruments=insts[1:])


def attach_instruments_trading(window, runtime, report=None) -> InstrumentsTradingController:
    """Fill ``window.trading_area`` with the risk panel over every instrument of ``runtime``.

    Parameters
    ----------
    window : app.ui.main_window.MainWindow
        Uses ``trading_area``, ``panels`` (each panel's ladder opens its own instrument's
        tickets), ``tape`` and ``spawn``.
    runtime : app.live.instruments.InstrumentsRuntime
        Started (its instruments known).

    Returns
    -------
    InstrumentsTradingController

    Raises
    ------
    RuntimeError
        See :func:`build_session`.
    """
    from app.config.trading import TradingSettings, load_trading_settings

    report = report or getattr(window, "report", None)
    try:
        settings = load_trading_settings()
    except ValueError as exc:
        if report:
            report("warning", f"Trading settings ignored (defaults used): {exc}")
        settings = TradingSettings()
    items = [r for r in runtime.instruments if r.instrument is not None]
    session = build_session([r.instrument for r in items], settings, runtime.client,
                            getattr(window.config, "trade_account", ""), clock=getattr(window, "clock", None))
    panel = TradingPanel()
    window.trading_area.layout().addWidget(panel)
    ctl = InstrumentsTradingController(session, panel, report, parent=window)
    ctl.install_hotkey(window)
    if items:
        ctl.follow(items[0].pipeline)
        for r in items[1:]:
            ctl.follow_more(r.pipeline, r.symbol)
    ctl.owns_journal = True
    ctl._connections, ctl._filters = [], []
    tape = window.tape

    def on_selected(sig):
        ctl.selected_signal = sig

    def on_double(index):
        m = tape.view.model()
        sig = m.signal_at(index.row()) if hasattr(m, "signal_at") else tape.model.signal_at(index.row())
        ctl.open_signal_ticket(sig)  # bound to the signal's own instrument (its ticket's symbol)

    tape.sigSignalSelected.connect(on_selected)
    tape.view.doubleClicked.connect(on_double)
    ctl._connections += [(tape.sigSignalSelected, on_selected), (tape.view.doubleClicked, on_double)]
    for p in window.panels:
        filt = PanelLadderClicks(p, ctl)
        p.ladder.installEventFilter(filt)
        ctl._filters.append((p.ladder, filt))
    window.spawn(ctl.start())
    return ctl
