"""One instrument's market panel, and the panels of several instruments side by side (issue 17 item 3).

:class:`InstrumentPanel` holds what the window shows of one instrument::

    +------------------------------------------------------------+
    | header: SYMBOL  last price  source state (several panels)   |
    +--------------------------------------+-------+-------------+
    | DOM ladder heatmap (+ own orders)    |profile| DOM ladder  |
    +--------------------------------------+ (POC, | (+ own      |
    | cumulative delta (same time axis)    |  VA)  |  orders)    |
    +--------------------------------------+-------+-------------+

and draws one instrument's frames into it (:meth:`InstrumentPanel.draw_frame`); the ladder and
the profile pane stay on the heatmap's price axis (:meth:`InstrumentPanel.sync_ladder`). The
GUI computes no analytics.

:class:`PanelArea` lays several panels out as **tabs** (one visible), **split 2** (two side by
side) or **split 4** (a 2 x 2 grid); with fewer instruments than cells it shows what there is.
A split view shows the first 2 or 4 panels of :attr:`PanelArea.panels`; which instrument a
cell shows is chosen with :meth:`PanelArea.show_in_cell` (a right-click on a panel's header:
"Show in this cell"), which reorders the panels, so the tabs follow that order too.
With one panel it shows that panel alone, without a header (the window of one instrument looks
as before issue 17).

:class:`TimeLink` links the time axes of the visible panels' heatmaps (each delta pane is
linked to its own heatmap by ``setXLink``). A pan or zoom of one heatmap by the trader moves
the others to the same market time and stops their following, as it stops its own; "Follow"
(F) re-centres them all. Links are per visible panel and re-made on every layout change, so
they survive panels appearing and disappearing.

Market clock. The heatmap's x axis is the frame's recorded time (``frame.ts``, ``heatmap_t0``:
UNIX seconds, UTC), which the engine gives unchanged from the DTC messages: the built-in
server keeps every message's recorded time and paces the replay on a *market clock*
(:func:`app.sim.replay.market_timeline`). Recordings whose times overlap share their real
times, so the link offset is 0. Recordings of different dates are started together at the
first one's start; the link then maps each panel's recorded time to that market clock with the
offset of its recording's first event (:attr:`app.sim.replay.MarketTimeline.offsets`), so two
panels aligned at their starts show the same replay moment. Gaps over the timeline's max gap
(5 s) inside a recording are shortened by the server's pacing but not by this constant offset.
"""

from __future__ import annotations

import operator

from PySide6 import QtCore, QtGui, QtWidgets

from app.ui.delta_pane import DeltaPane
from app.ui.heatmap import HeatmapWidget
from app.ui.ladder import LadderWidget, price_decimals, row_grouping
from app.ui.orders_overlay import OrdersOverlay, OwnOrdersController
from app.ui.profile_pane import ProfilePane

#: Layouts of :class:`PanelArea`: (key, menu text, visible cells).
LAYOUTS = (("tabs", "Tabs", 1), ("split2", "Split 2", 2), ("split4", "Split 4", 4))
LAYOUT_KEYS = tuple(k for k, _t, _n in LAYOUTS)
LAYOUT_CELLS = {k: n for k, _t, n in LAYOUTS}


def named_splitter(name: str, orientation, widgets, stretch, sizes) -> QtWidgets.QSplitter:
    """A splitter named ``name`` (the key of its saved sizes) holding ``widgets`` with their
    stretch factors and initial ``sizes`` (pixels); no child can be collapsed to nothing."""
    sp = QtWidgets.QSplitter(orientation)
    sp.setObjectName(name)
    sp.setChildrenCollapsible(False)
    for i, (wdg, st) in enumerate(zip(widgets, stretch)):
        sp.addWidget(wdg)
        sp.setStretchFactor(i, st)
    sp.setSizes(sizes)
    return sp


class InstrumentPanel(QtWidgets.QWidget):
    """One instrument's heatmap, delta pane, profile pane, ladder and own-orders overlay.

    Parameters
    ----------
    symbol : str
        The instrument's symbol ("" until the source tells it: the embedded replay's first
        recording); frames of another symbol are refused by :meth:`draw_frame`.
    session_getter : callable() -> TradingSession or None
        The trading session whose orders and position of :attr:`symbol` are drawn.
    spawn, report : callable, optional
        The window's task runner and problem reporter (ladder gestures).
    splitter_names : tuple of two str
        Object names of the heatmap-column and chart-row splitters (the keys of their saved
        sizes); the first panel keeps the single-instrument names ``heat_column`` / ``chart_row``.

    Attributes
    ----------
    heatmap : HeatmapWidget
    delta_pane : DeltaPane
    profile_pane : ProfilePane
    ladder : LadderWidget
    own_orders : OwnOrdersController
        Draws :attr:`symbol`'s working orders and position on this panel only.
    heat_splitter, top_splitter : QtWidgets.QSplitter
    header : QtWidgets.QLabel
        Symbol, last price and source state (hidden when the window shows one panel).
    last_frame : AnalysisFrame or None
    market_offset_s : float
        Seconds added to this panel's recorded times to put them on the shared market clock
        (:class:`TimeLink`; 0 for overlapping recordings and live data).
    frames_drawn : int
    """

    def __init__(self, symbol: str = "", session_getter=None, spawn=None, report=None, parent=None,
                 splitter_names: tuple[str, str] = ("heat_column", "chart_row")):
        super().__init__(parent)
        self.setObjectName(f"panel_{symbol}" if symbol else "panel")
        self.symbol = str(symbol)
        self.last_frame = None
        self.frames_drawn = 0
        self.market_offset_s = 0.0
        self.source_state = ""
        #: in a split view: share the width on every resize (:meth:`fit_columns`)
        self.split_fit = False
        self._session_getter = session_getter or (lambda: None)
        self.header = QtWidgets.QLabel("")
        self.header.setObjectName("panel_header")
        self.header.setStyleSheet("#panel_header{background:#1b2030;color:#e6e9f2;font-weight:bold;padding:2px 6px;}")
        self.header.setTextFormat(QtCore.Qt.PlainText)
        # right-click: "Show in this cell" (PanelArea.header_menu), with several instruments
        self.header.setContextMenuPolicy(QtCore.Qt.CustomContextMenu)
        self.header.setToolTip("Right-click: choose the instrument this cell shows")

        self.heatmap = HeatmapWidget()
        self.delta_pane = DeltaPane()
        self.delta_pane.link_x(self.heatmap)
        self.profile_pane = ProfilePane()
        self.ladder = LadderWidget()
        # own working orders and position of this instrument on its ladder and heatmap (and the gestures)
        self.own_orders = OwnOrdersController(self.ladder, OrdersOverlay(self.heatmap), self._session_getter,
                                              spawn, report, self, symbol=lambda: self.symbol or None)
        # one profile bar per ladder row: the ladder's grouping, from the ladder's text height
        self.profile_pane.set_grouping(
            lambda row_px: row_grouping(row_px, self.ladder.text_height) if self.ladder.text_height > 0 else 0)
        fm = QtGui.QFontMetrics(self.font())
        self.heatmap.setMinimumSize(28 * fm.averageCharWidth(), 10 * fm.height())
        # the heatmap and the delta pane share x pixels too: the same left axis width
        axis_w = fm.horizontalAdvance("-00000.00") + fm.height() + 14
        for plot in (self.heatmap, self.delta_pane):
            plot.getAxis("left").setWidth(axis_w)

        splitter = named_splitter

        self.heat_splitter = splitter(splitter_names[0], QtCore.Qt.Vertical, (self.heatmap, self.delta_pane),
                                      (5, 1), [520, 110])
        self.top_splitter = splitter(splitter_names[1], QtCore.Qt.Horizontal,
                                     (self.heat_splitter, self.profile_pane, self.ladder), (5, 0, 1),
                                     [900, 90, 240])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.header)
        lay.addWidget(self.top_splitter, 1)
        self.header.hide()
        self.heatmap.sigViewChanged.connect(self.sync_ladder)

    # ------------------------------------------------------------------ drawing
    def draw_frame(self, frame) -> None:
        """Draw one frame of this instrument into every pane (GUI thread).

        Raises
        ------
        ValueError
            ``frame.symbol`` is another instrument's (nothing is drawn).
        """
        sym = str(getattr(frame, "symbol", "") or "")
        if self.symbol and sym and sym != self.symbol:
            raise ValueError(f"panel {self.symbol}: refused a frame of {sym}")
        if not self.symbol and sym:
            self.symbol = sym
            self.setObjectName(f"panel_{sym}")
        self.last_frame = frame
        self.heatmap.set_frame(frame)
        self.delta_pane.set_frame(frame)
        self.ladder.set_frame(frame)
        self.profile_pane.set_frame(frame)
        self.own_orders.refresh()
        self.sync_ladder()
        self.frames_drawn += 1
        if self.header.isVisible():
            self._update_header()

    def set_source_state(self, state: str) -> None:
        """The source's state for the header ("streaming", "rejected", ...)."""
        self.source_state = str(state)
        self._update_header()

    def _update_header(self) -> None:
        f = self.last_frame
        quote = ""
        if f is not None:
            tick = float(f.tick_size)
            dec = price_decimals(tick)
            bars = getattr(f, "bars", None)
            if bars is not None and len(bars) and "close" in (bars.dtype.names or ()):
                quote = f"last {float(bars['close'][-1]) * tick:.{dec}f}"  # bar prices are ticks
            bb = f"{f.best_bid * tick:.{dec}f}" if f.best_bid >= 0 else "-"
            ba = f"{f.best_ask * tick:.{dec}f}" if f.best_ask >= 0 else "-"
            quote = f"{quote}  {bb} / {ba}".strip()
        parts = [self.symbol or "(waiting for the source)", quote, self.source_state]
        self.header.setText("   ".join(p for p in parts if p))

    def sync_ladder(self) -> None:
        """Align the ladder's and the profile pane's rows with the heatmap's visible price range."""
        lo, hi = self.heatmap.price_range()
        r = self.heatmap.view_scene_rect()
        # mapFromScene gives viewport coordinates: map from the viewport, not the view's frame
        at = self.heatmap.viewport().mapToGlobal(r.topLeft().toPoint())
        for pane in (self.ladder, self.profile_pane):  # both beside the heatmap, on its price axis
            pane.set_view(lo, hi, float(pane.mapFromGlobal(at).y()), float(r.height()))

    def resizeEvent(self, ev):  # noqa: N802 (Qt name)
        super().resizeEvent(ev)
        if self.split_fit and ev.size().width() != ev.oldSize().width():
            self.fit_columns()
        QtCore.QTimer.singleShot(0, self.sync_ladder)

    def fit_columns(self) -> None:
        """Share this panel's width for a split view: the ladder keeps the width its four columns
        need (font metrics), the profile a narrow strip, the heatmap the rest (the single
        window's saved sizes are not touched: only split views call this)."""
        total = self.top_splitter.width()
        if total <= 0:
            return
        fm = QtGui.QFontMetrics(self.font())
        ladder = max(fm.horizontalAdvance("Volume Bid 00000.00 Ask ") + 24, int(0.24 * total))
        profile = max(fm.horizontalAdvance("VA 000 rows") + 8, int(0.07 * total))
        heat = max(total - ladder - profile, 1)
        self.top_splitter.setSizes([heat, profile, ladder])

    def follow(self, on: bool = True) -> None:
        """Follow the newest data (or stop following) on this panel's heatmap."""
        self.heatmap.follow(on)

    def show_signal(self, signal) -> bool:
        """Jump this panel's heatmap to ``signal`` (an :class:`~app.analysis.frame.Signal`);
        False (nothing moved) when the signal is another instrument's."""
        sym = str(getattr(signal, "symbol", "") or "")
        if signal is not None and self.symbol and sym and sym != self.symbol:
            return False
        tick = float(self.last_frame.tick_size) if self.last_frame is not None else None
        self.heatmap.show_signal(signal, tick)
        return True


def market_offsets(server) -> dict[str, float]:
    """Seconds to add to each served symbol's recorded times to put it on the server's market clock.

    Parameters
    ----------
    server : app.sim.server.DTCServer, its runner or None
        The server (:meth:`app.sim.server.DTCServer.market_offsets_s`), or the thread or
        process it runs in (:class:`app.live.sources.ReplayServerThread`,
        :class:`app.live.replay_process.ReplayServerProcess`: the same method).

    Returns
    -------
    dict
        Symbol -> offset, seconds (:attr:`app.sim.replay.MarketTimeline.offsets_ns` / 1e9: 0 for
        the recordings of the first time group, i.e. overlapping ones; market start minus recorded
        start for recordings of other dates); {} without a server (live data: real times).
    """
    offsets = getattr(server, "market_offsets_s", None)
    return dict(offsets()) if callable(offsets) else {}


class TimeLink(QtCore.QObject):
    """Links the time (x) ranges of several panels' heatmaps on the market clock.

    A manual pan or zoom of one linked heatmap (``sigRangeChangedManually``) sets every other
    linked heatmap to the same market-time range (``x + offset_src - offset_dst``, seconds:
    :attr:`InstrumentPanel.market_offset_s`) and switches their following off. Programmatic
    range changes (following) are not propagated, so following panels never fight.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: list[InstrumentPanel] = []
        self._slots = []
        self._busy = False

    def set_panels(self, panels) -> None:
        """Link exactly ``panels`` (the visible ones); the previous links are removed."""
        for vb, fn in self._slots:
            try:
                vb.sigRangeChangedManually.disconnect(fn)
            except (RuntimeError, TypeError):
                pass
        self._slots = []
        self.panels = list(panels)
        for p in self.panels:
            def fn(*_a, _p=p):
                self._moved(_p)
            p.heatmap.vb.sigRangeChangedManually.connect(fn)
            self._slots.append((p.heatmap.vb, fn))

    def _moved(self, src: InstrumentPanel) -> None:
        if self._busy or len(self.panels) < 2:
            return
        self._busy = True
        try:
            (x0, x1), _ = src.heatmap.vb.viewRange()
            for p in self.panels:
                if p is src:
                    continue
                shift = src.market_offset_s - p.market_offset_s
                if p.heatmap.following:
                    p.heatmap.follow(False)
                p.heatmap.vb.setXRange(x0 + shift, x1 + shift, padding=0)
        finally:
            self._busy = False

    def market_range(self, panel: InstrumentPanel) -> tuple[float, float]:
        """``panel``'s visible time range on the market clock, seconds."""
        (x0, x1), _ = panel.heatmap.vb.viewRange()
        return x0 + panel.market_offset_s, x1 + panel.market_offset_s


class PanelArea(QtWidgets.QWidget):
    """Several :class:`InstrumentPanel` as tabs, split 2 or split 4 (see the module docstring).

    Signals
    -------
    sigVisibleChanged()
        The visible panels changed (layout or tab).

    Attributes
    ----------
    panels : list of InstrumentPanel
    layout_key : str
        One of :data:`LAYOUT_KEYS`.
    time_link : TimeLink
    """

    sigVisibleChanged = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_area")
        self.panels: list[InstrumentPanel] = []
        self.layout_key = "tabs"
        self.time_link = TimeLink(self)
        self._lay = QtWidgets.QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(0)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setObjectName("panel_tabs")
        self.tabs.setDocumentMode(True)
        self.tabs.currentChanged.connect(self._on_tab)
        self.grid_host = QtWidgets.QWidget()
        self.grid_host.setObjectName("panel_grid")
        self.grid = QtWidgets.QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(4)
        self._holder = None  # what the layout shows now
        self._relayouting = False

    def set_panels(self, panels) -> None:
        """Show ``panels`` (in order) in the current layout."""
        self.panels = list(panels)
        for p in self.panels:
            if getattr(p, "_header_menu_of", None) is not self:  # wired once per panel and area
                p._header_menu_of = self
                p.header.customContextMenuRequested.connect(lambda pos, _p=p: self._on_header_menu(_p, pos))
        self._relayout()

    def set_layout_key(self, key: str) -> None:
        """Switch to ``key`` ("tabs", "split2", "split4").

        Raises
        ------
        ValueError
            An unknown layout (names the known ones).
        """
        if key not in LAYOUT_KEYS:
            raise ValueError(f"layout {key!r} is unknown; known: {', '.join(LAYOUT_KEYS)}")
        self.layout_key = key
        self._relayout()

    def visible_panels(self) -> list[InstrumentPanel]:
        """The panels on screen now, cell by cell (tabs: the current one; split: the first 2 or 4
        of :attr:`panels`, whose order :meth:`show_in_cell` changes)."""
        if len(self.panels) <= 1:
            return list(self.panels)
        if self.layout_key == "tabs":
            i = self.tabs.currentIndex()
            return [self.panels[i]] if 0 <= i < len(self.panels) else []
        return self.panels[:self.cell_count()]

    def cell_count(self) -> int:
        """The cells on screen: 1 in tabs (the current tab), 2 or 4 in a split view, never more
        than there are panels (0 without panels)."""
        if len(self.panels) <= 1:
            return len(self.panels)
        return min(LAYOUT_CELLS[self.layout_key], len(self.panels))

    def cell_of(self, panel: InstrumentPanel) -> int | None:
        """The cell showing ``panel`` now (0-based), None when it is out of view."""
        vis = self.visible_panels()
        return vis.index(panel) if panel in vis else None

    def _panel_arg(self, panel_or_symbol) -> InstrumentPanel:
        if isinstance(panel_or_symbol, InstrumentPanel):
            if panel_or_symbol in self.panels:
                return panel_or_symbol
            what = f"panel {panel_or_symbol.symbol or '?'!r} is not in this area"
        else:
            sym = str(panel_or_symbol)
            for p in self.panels:
                if p.symbol == sym:
                    return p
            what = f"no panel of {sym!r}"
        known = ", ".join(p.symbol or "?" for p in self.panels) or "none"
        raise ValueError(f"{what}; known symbols: {known}")

    def show_in_cell(self, cell: int, panel_or_symbol) -> None:
        """Show a panel (one of :attr:`panels`, or its symbol) in cell ``cell`` (0-based: split 2
        left then right, split 4 row by row; tabs: 0, the current tab).

        In a split view the panel changes places with the one in that cell (which goes where the
        chosen panel was: out of view, or in the chosen panel's former cell); every other panel
        keeps its place. This reorders :attr:`panels`, and the tabs follow that order: back in
        tabs, the tabs read as the cells did, then the panels out of view. In tabs the order is
        kept and the panel's tab becomes the current one. The visible panels change at once:
        :attr:`sigVisibleChanged` (the time link, and the window draws the newest frame a panel
        out of view kept).

        Raises
        ------
        ValueError
            ``panel_or_symbol`` is not one of the panels (names the known symbols), or ``cell``
            is not a cell on screen (names the cells of the layout).
        """
        panel = self._panel_arg(panel_or_symbol)
        n = self.cell_count()
        try:
            k = None if isinstance(cell, bool) else operator.index(cell)
        except TypeError:
            k = None
        if k is None or not 0 <= k < n:
            cells = ", ".join(str(k) for k in range(n)) or "none"
            raise ValueError(f"cell {cell!r} is not on screen; cells of {self.layout_key} with "
                             f"{len(self.panels)} panel(s): {cells}")
        if len(self.panels) <= 1:
            return
        if self.layout_key == "tabs":
            self.tabs.setCurrentIndex(self.tabs.indexOf(panel))
            return
        i, j = k, self.panels.index(panel)
        if i == j:
            return
        self.panels[i], self.panels[j] = self.panels[j], self.panels[i]
        self._relayout()

    def header_menu(self, panel: InstrumentPanel) -> QtWidgets.QMenu | None:
        """The menu of ``panel``'s header: "Show in this cell", then every other instrument (a
        visible one says its cell: they change places); None with one panel or when ``panel``
        is out of view. The caller owns the menu."""
        cell = self.cell_of(panel)
        if len(self.panels) <= 1 or cell is None:
            return None
        menu = QtWidgets.QMenu(self)
        menu.setObjectName("panel_header_menu")
        title = menu.addAction("Show in this cell")
        title.setEnabled(False)
        f = title.font()
        f.setBold(True)
        title.setFont(f)
        menu.addSeparator()
        for p in self.panels:
            if p is panel:
                continue
            where = self.cell_of(p)
            text = (p.symbol or "?") + (f"  (in cell {where + 1}: swap)" if where is not None else "")
            act = menu.addAction(text)
            act.setData(p.symbol)
            act.triggered.connect(lambda _on=False, _p=p, _c=cell: self.show_in_cell(_c, _p))
        return menu

    def fill_cells_menu(self, menu: QtWidgets.QMenu) -> None:
        """Fill ``menu`` (the window's "Show in cell" menu) with one sub-menu per cell on screen
        ("Cell 1: SYMBOL"), each listing the instruments it can show (:meth:`show_in_cell`)."""
        menu.clear()
        vis = self.visible_panels()
        for cell, shown in enumerate(vis if len(self.panels) > 1 else []):
            sub = menu.addMenu(f"Cell {cell + 1}: {shown.symbol or '?'}")
            for p in self.panels:
                if p is shown:
                    continue
                act = sub.addAction(p.symbol or "?")
                act.triggered.connect(lambda _on=False, _p=p, _c=cell: self.show_in_cell(_c, _p))
        if menu.isEmpty():
            menu.addAction("(one instrument)").setEnabled(False)

    @staticmethod
    def exec_menu(menu: QtWidgets.QMenu, at) -> None:
        """Run ``menu`` at global position ``at`` (modal; replaced by tests, which cannot click a
        modal menu)."""
        menu.exec(at)

    def _on_header_menu(self, panel: InstrumentPanel, pos) -> None:
        menu = self.header_menu(panel)
        if menu is not None:
            self.exec_menu(menu, panel.header.mapToGlobal(pos))
            menu.deleteLater()

    def _detach_all(self) -> None:
        for p in self.panels:
            p.setParent(None)
        while self.tabs.count():
            self.tabs.removeTab(0)
        while self.grid.count():
            self.grid.takeAt(0)
        if self._holder is not None:
            self._lay.removeWidget(self._holder)
            self._holder.setParent(None)
            self._holder = None

    def _relayout(self) -> None:
        self._relayouting = True
        try:
            current = self.tabs.currentIndex()
            self._detach_all()
            many = len(self.panels) > 1
            for p in self.panels:
                p.header.setVisible(many)
                if many:
                    p._update_header()
            if not many:
                holder = self.panels[0] if self.panels else None
            elif self.layout_key == "tabs":
                for p in self.panels:
                    self.tabs.addTab(p, p.symbol or "?")
                self.tabs.setCurrentIndex(min(max(current, 0), len(self.panels) - 1))
                holder = self.tabs
            else:
                n = 2 if self.layout_key == "split2" else 4
                cols = 2
                for k, p in enumerate(self.panels[:n]):
                    self.grid.addWidget(p, k // cols if n == 4 else 0, k % cols if n == 4 else k)
                for p in self.panels[n:]:
                    p.hide()
                for p in self.panels[:n]:
                    p.show()
                holder = self.grid_host
            if holder is not None:
                self._lay.addWidget(holder, 1)
                holder.show()
                self._holder = holder
        finally:
            self._relayouting = False
        self._visible_changed()

    def _on_tab(self, _i: int) -> None:
        if not self._relayouting:
            self._visible_changed()

    def _visible_changed(self) -> None:
        vis = self.visible_panels()
        self.time_link.set_panels(vis)
        split = len(self.panels) > 1 and self.layout_key != "tabs"
        for p in self.panels:
            p.split_fit = split
        for p in vis:
            if split:  # after the layout has given the panels their widths (and on every resize)
                QtCore.QTimer.singleShot(0, p.fit_columns)
            QtCore.QTimer.singleShot(0, p.sync_ladder)
        self.sigVisibleChanged.emit()

    def retitle(self) -> None:
        """Tab titles from the panels' symbols (known once the sources start)."""
        for k, p in enumerate(self.panels):
            i = self.tabs.indexOf(p)
            if i >= 0:
                self.tabs.setTabText(i, p.symbol or "?")
