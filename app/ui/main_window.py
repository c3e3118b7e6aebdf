"""The MIA Elite main window.

Layout (splitters persist with the settings)::

    +----------------------------------------------------------+---------------+
    | PAPER MODE banner                                         | VIX gauge     |
    | problem banner (only when something is wrong, with what to do)            |
    | replay-finished banner with Restart / Load (only at the end of a replay)  |
    +--------------------------------------+-------+-----------+               |
    | DOM ladder heatmap                   |profile| DOM ladder+---------------+
    |                                      | (POC, |           | trading_area  |
    +--------------------------------------+  VA)  |           | (risk panel,  |
    | cumulative delta (same time axis)    |       |           |  kill switch) |
    +--------------------------------------+-------+-----------+               |
    | elite signal tape                    | precision summary  |               |
    +--------------------------------------+--------------------+               |
    | View > Problems (bottom dock, under the market side only)  |               |
    +----------------------------------------------------------+---------------+
    | status bar: sources, msgs/s, ... (elided) | recording indicator          |

The right column (``right_dock``: a fixed dock widget without a title bar that owns both right
corners) takes the full height beside everything else, so the risk panel needs no scrolling at
1366x768 or at 1920x1080 at 150 %, also with the Problems view open. Splitters:
``main_splitter`` (the chart row over the tape), ``top_splitter`` (heatmap column | profile |
ladder), ``heat_splitter`` (heatmap over the delta pane), ``right_splitter`` (VIX gauge over
the trading area). Fonts are in points (they follow the screen's DPI and ``QT_SCALE_FACTOR``);
minimum sizes come from font metrics. The window opens at most at the screen's available size.

Several instruments (issue 17): the market side is a
:class:`~app.ui.instrument_panel.PanelArea` of one
:class:`~app.ui.instrument_panel.InstrumentPanel` per instrument (heatmap, delta pane, profile,
ladder, own orders), as tabs or a split view of 2 or 4 with linked time axes (View >
Instruments, toolbar "Layout", kept in ``window.toml``); with one instrument it is that one
panel, without a header, exactly the layout above (``window.heatmap``, ``window.ladder``,
``top_splitter``, ... are the first panel's). With more than one instrument the window runs an
:class:`~app.live.instruments.InstrumentsRuntime` (:attr:`MainWindow.runtime`) and one trading
session over all of them (:mod:`app.ui.instruments_trading`). ``docs/instruments.md``.

``window.trading_area`` is an empty ``QWidget`` with a ``QVBoxLayout``; the trading issue's
``app.ui.trading_panel.attach_trading(window, context)`` fills it (a placeholder is shown when
that module is absent).

Drawing: a ``QTimer`` at display rate takes the newest frame from the pipeline's
:class:`~app.live.pipeline.FrameSlot` (stale frames are dropped) and updates every widget in
place. The GUI computes no analytics.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import math
import time
import traceback
import types

from PySide6 import QtCore, QtGui, QtWidgets

from app.ui.splash import StartupOverlay, warm_window_kernels
from app.ui.instrument_panel import LAYOUT_KEYS, LAYOUTS, InstrumentPanel, PanelArea, market_offsets, named_splitter
from app.ui.ladder import price_decimals
from app.live.pipeline import Pipeline, PipelineConfig
from app.live.sources import ACTION_REPLAY_FINISHED, ACTION_REPLAY_RESTARTED
from app.core.clock import SYSTEM_CLOCK
from app.ui.status import HealthBar, ProblemBanner, ProblemLog, RecordingIndicator, ReplayEndBanner
from app.ui.relation_pane import RelationPane
from app.ui.tape import SignalTape
from app.ui.vix_gauge import VixGauge

log = logging.getLogger(__name__)

PROFILES = ("scalping", "production", "development", "budget")
SPEEDS = (1.0, 2.0, 5.0, 10.0, 30.0, 100.0)


def _b64(data: QtCore.QByteArray) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _unb64(text: str) -> QtCore.QByteArray:
    try:
        return QtCore.QByteArray(base64.b64decode(text.encode("ascii")))
    except Exception:
        return QtCore.QByteArray()


def warm_relation_kernel() -> None:
    """Compile (or load) the pair relation's numba kernel (:func:`app.analysis.relation.relation_scan`)
    with the types the runtime calls it with, on the engine's compile thread: the runtime runs it
    on the GUI thread at the pair's first batches, where a cold compile (about 20 s on this
    2-core machine) blocked the window and its DTC heartbeats until the server dropped the
    connection. Any thread; three seconds of two synthetic price paths."""
    import numpy as np

    from app.analysis.relation import Relation

    ts = (np.arange(6, dtype=np.int64) + 1_700_000_000) * 500_000_000
    Relation().update(ts, np.linspace(100.0, 101.0, 6), ts, np.linspace(50.0, 50.5, 6))


class _FrameNotifier(QtCore.QObject):
    """Carries "a new frame is ready" from the worker thread to the GUI thread (queued signal)."""

    sigFrame = QtCore.Signal()


class MainWindow(QtWidgets.QMainWindow):
    """The desktop window.

    Parameters
    ----------
    config : PipelineConfig
        Where the data comes from (embedded replay by default).
    prefs : app.config.prefs.Prefs, optional
        UI state storage (geometry, splitters, contrast, profile, options); None = not persisted.
    display_hz : float
        Redraw timer rate (the newest frame is drawn; frames in between are skipped).
    clock : app.core.clock.Clock
        Wall and monotonic time of the window's own figures (the recording's elapsed time).

    Signals
    -------
    sigClosed()
        Emitted after the pipeline has stopped and the window is closed.
    """

    sigClosed = QtCore.Signal()

    def __init__(self, config: PipelineConfig | None = None, prefs=None, display_hz: float = 60.0,
                 clock=SYSTEM_CLOCK):
        super().__init__()
        self.clock = clock
        self.config = config or PipelineConfig()
        self.prefs = prefs
        self.setWindowTitle("MIA Elite")
        self.resize(self._initial_size())
        self.pipeline: Pipeline | None = None  # one instrument's, or the first instrument's of the runtime
        self.runtime = None  # InstrumentsRuntime with several instruments (issue 17), else None
        self.recording_path = None  # the .mrec being (or last) recorded by the Record button (the first one)
        self.recording_paths: list = []  # every instrument's .mrec of that recording (one per symbol)
        self._recording: list = []  # (pipeline, path) of each file being recorded now
        self.last_frame = None
        self.frames_drawn = 0
        self.draw_ms = collections.deque(maxlen=600)
        self._fps_times = collections.deque(maxlen=240)
        self._closing = False
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self.sound_on = False
        self.notify_on = False
        self.trading = None
        self.trading_error = ""

        self._build_ui()
        self._build_actions()
        self._restore_prefs()
        # "waiting for market data" over the heatmap, then "compiling the analyzers" (first start)
        self.startup_overlay = StartupOverlay(self)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.setInterval(max(1, int(round(1000.0 / display_hz))))
        self.timer.timeout.connect(self._on_timer)
        # a published frame is drawn at once when the last draw is at least one display period
        # old, else exactly when it becomes that old (a one-shot timer for the rest of the
        # period): never at the periodic timer's phase, up to a whole period later
        self._min_draw_s = 1.0 / display_hz
        self._last_draw_t = -math.inf  # self.clock.monotonic() of the last draw
        self._draw_soon = QtCore.QTimer(self)
        self._draw_soon.setSingleShot(True)
        self._draw_soon.setTimerType(QtCore.Qt.PreciseTimer)
        self._draw_soon.timeout.connect(self._on_timer)
        self._notifier = _FrameNotifier()
        self._notifier.sigFrame.connect(self._on_frame_ready, QtCore.Qt.QueuedConnection)
        # once a second, frames or not: the recording's elapsed time, and msgs/s that falls to
        # the real rate when no frame comes (a paused or silent source)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.setInterval(1000)
        self.status_timer.timeout.connect(self._tick_status)
        self.status_timer.start()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        v.setContentsMargins(4, 4, 4, 0)
        v.setSpacing(3)
        self.mode_banner = QtWidgets.QLabel("")
        self.mode_banner.setObjectName("mode_banner")
        self.mode_banner.setAlignment(QtCore.Qt.AlignCenter)
        self.mode_banner.setWordWrap(True)
        self.mode_banner.setStyleSheet(
            "#mode_banner{background:#6b5a00;color:#fff6c0;font-weight:bold;padding:4px;border-radius:3px;}"
        )
        v.addWidget(self.mode_banner)
        self.problem_banner = ProblemBanner()
        self.problem_banner.sigAction.connect(self._on_problem_action)
        v.addWidget(self.problem_banner)
        self.replay_banner = ReplayEndBanner()
        self.replay_banner.sigRestart.connect(self.restart_replay)
        self.replay_banner.sigLoad.connect(lambda: self.load_recording())
        v.addWidget(self.replay_banner)

        # the market side: one InstrumentPanel per instrument (heatmap, delta, profile, ladder,
        # own orders) in a PanelArea (tabs / split 2 / split 4); the first panel's widgets are
        # also the window's own attributes (heatmap, ladder, ...), as with one instrument
        self.panel_area = PanelArea()
        self.panels: list[InstrumentPanel] = []
        self._add_panel("")
        self.panel_area.set_panels(self.panels)
        self.panel_area.sigVisibleChanged.connect(self._on_visible_panels)
        self.vix_gauge = VixGauge()
        self.trading_area = QtWidgets.QWidget()
        self.trading_area.setObjectName("trading_area")
        self.trading_area.setLayout(QtWidgets.QVBoxLayout())
        self.trading_area.layout().setContentsMargins(0, 0, 0, 0)
        self.tape = SignalTape()
        # minimum sizes from the font (points follow the DPI and the scale): splitters never squeeze
        # a pane below what it needs to be read
        fm0 = QtGui.QFontMetrics(self.font())
        self.tape.setMinimumHeight(5 * fm0.height())

        splitter = named_splitter

        # object names are the keys of the saved sizes (a changed structure gets a new name);
        # the first panel's splitters keep the names "heat_column" and "chart_row"
        self.main_splitter = splitter("main_splitter", QtCore.Qt.Vertical, (self.panel_area, self.tape),
                                      (4, 1), [680, 200])
        trading_scroll = QtWidgets.QScrollArea()
        trading_scroll.setObjectName("trading_scroll")
        trading_scroll.setWidgetResizable(True)
        trading_scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        trading_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        trading_scroll.setWidget(self.trading_area)
        self.trading_scroll = trading_scroll
        # the pair's relation (issue 17 item 5): shown only when the runtime has a pair
        self.relation_pane = RelationPane()
        self.relation_pane.setObjectName("relation_pane")
        self.relation_pane.setMinimumHeight(6 * fm0.height())
        self.relation_pane.hide()
        self._relation_fed = 0  # blocks of runtime.relation_rows already drawn
        self.right_splitter = splitter("right_splitter", QtCore.Qt.Vertical,
                                       (self.vix_gauge, self.relation_pane, trading_scroll),
                                       (0, 0, 1), [220, 160, 600])
        v.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)
        # the right column: a dock that owns both right corners, so it runs the full height
        # beside the banners, the market side and the Problems view (bottom dock)
        self.right_dock = QtWidgets.QDockWidget("Trading", self)
        self.right_dock.setObjectName("right_dock")
        self.right_dock.setFeatures(QtWidgets.QDockWidget.NoDockWidgetFeatures)
        self.right_dock.setTitleBarWidget(QtWidgets.QWidget())  # no title bar: a fixed column
        self.right_dock.setWidget(self.right_splitter)
        self.addDockWidget(QtCore.Qt.RightDockWidgetArea, self.right_dock)
        self.setCorner(QtCore.Qt.TopRightCorner, QtCore.Qt.RightDockWidgetArea)
        self.setCorner(QtCore.Qt.BottomRightCorner, QtCore.Qt.RightDockWidgetArea)
        self.resizeDocks([self.right_dock], [340], QtCore.Qt.Horizontal)

        self.health = HealthBar()
        self.statusBar().addWidget(self.health, 1)
        self.recording_indicator = RecordingIndicator()
        self.statusBar().addPermanentWidget(self.recording_indicator)

        self.problems = ProblemLog()
        self.problems_dock = QtWidgets.QDockWidget("Problems", self)
        self.problems_dock.setObjectName("problems_dock")
        self.problems_dock.setWidget(self.problems)
        self.addDockWidget(QtCore.Qt.BottomDockWidgetArea, self.problems_dock)
        self.problems_dock.hide()

        self._banner_level = ""
        self.tape.sigSignalSelected.connect(self._on_signal_selected)
        self.tape.sigNewSignals.connect(self._on_new_signals)

    def _build_actions(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        self.act_connection = QtGui.QAction("Connection...", self)
        self.act_connection.triggered.connect(self.open_connection_dialog)
        self.act_follow = QtGui.QAction("Follow price (F)", self)
        self.act_follow.setCheckable(True)
        self.act_follow.setChecked(True)
        self.act_follow.setShortcut(QtGui.QKeySequence("F"))
        self.act_follow.setShortcutContext(QtCore.Qt.WindowShortcut)
        self.act_follow.triggered.connect(lambda: self.follow_all(True))
        self.addAction(self.act_follow)
        tb.addAction(self.act_connection)
        tb.addSeparator()
        tb.addAction(self.act_follow)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Contrast "))
        self.contrast_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.contrast_slider.setRange(500, 1000)  # upper cut-off quantile x 1000
        self.contrast_slider.setValue(980)
        self.contrast_slider.setFixedWidth(140)
        self.contrast_slider.setToolTip("Heatmap contrast: the resting size shown brightest is this quantile of "
                                        "all sizes (changes the colour levels only)")
        self.contrast_slider.valueChanged.connect(lambda v: self._set_contrast(v / 1000.0))
        tb.addWidget(self.contrast_slider)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Profile "))
        self.profile_combo = QtWidgets.QComboBox()
        self.profile_combo.addItems([p.capitalize() for p in PROFILES])
        self.profile_combo.setCurrentIndex(PROFILES.index(self.config.profile) if self.config.profile in PROFILES else 1)
        self.profile_combo.setToolTip("Analysis profile (applied to the running analysis; the data source goes on)")
        self.profile_combo.activated.connect(self._on_profile_chosen)
        tb.addWidget(self.profile_combo)
        tb.addSeparator()
        self.speed_label = QtWidgets.QLabel(" Replay speed ")
        tb.addWidget(self.speed_label)
        self.speed_combo = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed_combo.addItem(f"{s:g}x", s)
        self._select_speed(self.config.speed)
        self.speed_combo.activated.connect(self._on_speed_chosen)
        tb.addWidget(self.speed_combo)
        self.act_pause = QtGui.QAction("Pause replay", self)
        self.act_pause.setCheckable(True)
        self.act_pause.triggered.connect(self._on_pause)
        tb.addAction(self.act_pause)
        self.act_record = QtGui.QAction("Record", self)
        self.act_record.setCheckable(True)
        self.act_record.setToolTip("Record the market event stream to a .mrec file in the user data "
                                   "folder (replay it with mia-elite serve / analyze)")
        self.act_record.toggled.connect(self._on_record)
        tb.addAction(self.act_record)
        from app.ui.data_collection import DataCollection

        self.data_collection = DataCollection(self)  # snapshots, no trades offered (issue 15 item 2)
        tb.addAction(self.data_collection.action)
        tb.addSeparator()
        self.act_sound = QtGui.QAction("Sound", self)
        self.act_sound.setCheckable(True)
        self.act_sound.setToolTip("Beep on each new elite signal")
        self.act_sound.toggled.connect(lambda on: setattr(self, "sound_on", on))
        self.act_notify = QtGui.QAction("Notify", self)
        self.act_notify.setCheckable(True)
        self.act_notify.setToolTip("Desktop notification on each new elite signal")
        self.act_notify.toggled.connect(lambda on: setattr(self, "notify_on", on))
        tb.addAction(self.act_sound)
        tb.addAction(self.act_notify)
        embedded = self.config.embedded
        for w in (self.speed_label, self.speed_combo):
            w.setVisible(embedded)
        self.act_pause.setVisible(embedded)

        m = self.menuBar().addMenu("&File")
        m.addAction(self.act_connection)
        act_quit = QtGui.QAction("&Quit", self)
        act_quit.setShortcut(QtGui.QKeySequence.Quit)
        act_quit.triggered.connect(self.close)
        m.addAction(act_quit)
        vm = self.menuBar().addMenu("&View")
        vm.addAction(self.act_follow)
        vm.addAction(self.problems_dock.toggleViewAction())
        # several instruments: tabs, split 2 or split 4 (View menu and toolbar combo, kept in the prefs)
        vm.addSeparator()
        self.layout_actions = {}
        group = QtGui.QActionGroup(self)
        group.setExclusive(True)
        self.layout_combo = QtWidgets.QComboBox()
        self.layout_combo.setObjectName("layout_combo")
        self.layout_combo.setToolTip("How the instruments' panels are laid out: one tab each, or 2 or 4 side by side "
                                     "(their time axes are linked)")
        for key, text, _n in LAYOUTS:
            act = QtGui.QAction(f"Instruments: {text}", self)
            act.setCheckable(True)
            act.setData(key)
            act.triggered.connect(lambda _on, k=key: self.set_panel_layout(k))
            group.addAction(act)
            vm.addAction(act)
            self.layout_actions[key] = act
            self.layout_combo.addItem(text, key)
        self.layout_combo.activated.connect(lambda i: self.set_panel_layout(self.layout_combo.itemData(i)))
        # which instrument each cell of a split view shows (also: right-click on a panel's header)
        self.cells_menu = vm.addMenu("Instruments: show in cell")
        self.cells_menu.setObjectName("cells_menu")
        self.cells_menu.aboutToShow.connect(lambda: self.panel_area.fill_cells_menu(self.cells_menu))
        tb.addSeparator()
        self.layout_label = QtWidgets.QLabel(" Layout ")
        self.act_layout_label = tb.addWidget(self.layout_label)
        self.act_layout_combo = tb.addWidget(self.layout_combo)
        self.set_panel_layout("split2")
        self._show_layout_control()

    def _select_speed(self, speed: float) -> None:
        idx = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - float(speed)))
        if abs(SPEEDS[idx] - float(speed)) > 1e-9:
            self.speed_combo.addItem(f"{float(speed):g}x", float(speed))
            idx = self.speed_combo.count() - 1
        self.speed_combo.setCurrentIndex(idx)

    def _mode_text(self) -> str:
        c = self.config
        if c.embedded:
            rec = self.pipeline.recording if self.pipeline is not None else None
            what = "the shipped real CME ES sample"
            if self.runtime is not None and len(self.runtime.instruments) > 1:
                days = []
                for r in self.runtime.instruments:
                    rr = self.runtime_recording(r)
                    if rr is not None:
                        day = QtCore.QDateTime.fromMSecsSinceEpoch(rr.end_ns // 1_000_000, QtCore.QTimeZone.utc())
                        days.append(f"{r.symbol} of {day.toString('yyyy-MM-dd')}")
                what = f"real recorded market data ({', '.join(days) or 'several recordings'}, UTC) on one market clock"
            elif rec is not None:
                day = QtCore.QDateTime.fromMSecsSinceEpoch(rec.end_ns // 1_000_000, QtCore.QTimeZone.utc())
                what = f"real recorded {rec.instrument.symbol} market data of {day.toString('yyyy-MM-dd')} (UTC)"
            return (f"PAPER MODE - built-in DTC server replaying {what} at {c.speed:g}x. "
                    "No real orders: fills are simulated locally.")
        acct = f", trade account {c.trade_account}" if c.trade_account else ""
        if c.data_source == "sierra_files":
            return (f"PAPER MODE - market data of {c.symbol} from Sierra Chart's data files"
                    f"{' in ' + c.sierra_data_dir if c.sierra_data_dir else ''}. Orders are filled locally, never sent.")
        return (f"PAPER MODE - market data from the DTC server {c.host}:{c.port}{acct}. "
                "Orders are filled locally, never sent.")

    def runtime_recording(self, r):
        """The recording the built-in server replays for instrument ``r`` (None when unknown)."""
        src = r.pipeline.source
        base = getattr(src, "base", src)
        fn = getattr(base, "recording_of", None)
        rec = fn(r.symbol) if callable(fn) else None
        return rec if rec is not None else getattr(r.pipeline, "recording", None)

    def _splitters(self) -> tuple[QtWidgets.QSplitter, ...]:
        """Every splitter whose sizes persist (by object name)."""
        return (self.main_splitter, self.top_splitter, self.heat_splitter, self.right_splitter,
                self.tape.splitter)

    # ------------------------------------------------------------------ panels
    def _add_panel(self, symbol: str) -> InstrumentPanel:
        """A new :class:`InstrumentPanel` for ``symbol`` (the first one's widgets are the window's)."""
        k = len(self.panels)
        names = ("heat_column", "chart_row") if k == 0 else (f"heat_column_{k}", f"chart_row_{k}")
        panel = InstrumentPanel(symbol, lambda: getattr(self.trading, "session", None), self.spawn, self.report,
                                splitter_names=names)
        panel.heatmap.history_source = lambda *a, _p=panel: self._request_history(*a, panel=_p)
        panel.heatmap.on_painted = lambda _p=panel: self._on_heatmap_painted(_p)
        panel.heatmap.sigFollowChanged.connect(self._on_follow_changed)
        panel._unpainted = None
        panel.pipeline = None
        if k == 0:
            self.heatmap, self.delta_pane = panel.heatmap, panel.delta_pane
            self.profile_pane, self.ladder = panel.profile_pane, panel.ladder
            self.own_orders = panel.own_orders
            self.heat_splitter, self.top_splitter = panel.heat_splitter, panel.top_splitter
        else:
            panel.heatmap.set_contrast(self.panels[0].heatmap.contrast)
        self.panels.append(panel)
        return panel

    def panel_of(self, symbol: str) -> InstrumentPanel:
        """The panel of ``symbol`` (the first panel for a frame of one instrument or of no symbol)."""
        if len(self.panels) == 1:
            return self.panels[0]
        for p in self.panels:
            if p.symbol == symbol:
                return p
        raise KeyError(f"no panel for {symbol!r}; panels: {', '.join(p.symbol for p in self.panels)}")

    def set_panel_layout(self, key: str) -> None:
        """Lay the panels out as ``"tabs"``, ``"split2"`` or ``"split4"`` (kept in the prefs).

        Raises
        ------
        ValueError
            An unknown layout.
        """
        self.panel_area.set_layout_key(str(key))
        act = self.layout_actions.get(key) if hasattr(self, "layout_actions") else None
        if act is not None:
            act.setChecked(True)
        if hasattr(self, "layout_combo"):
            self.layout_combo.setCurrentIndex(LAYOUT_KEYS.index(key))

    def _show_layout_control(self) -> None:
        many = len(self.panels) > 1
        for a in (*self.layout_actions.values(), self.act_layout_label, self.act_layout_combo,
                  self.cells_menu.menuAction()):
            a.setVisible(many)

    def _on_visible_panels(self) -> None:
        """A panel that comes into view draws its newest frame at once (hidden panels are not drawn)."""
        for p in self.panel_area.visible_panels():
            pending = getattr(p, "_pending", None)
            if pending is not None:
                p._pending = None
                self._draw_panel(p, pending)

    def follow_all(self, on: bool = True) -> None:
        """Follow the newest data (F) on every panel."""
        for p in self.panels:
            p.follow(on)

    def _set_contrast(self, value: float) -> None:
        for p in self.panels:
            p.heatmap.set_contrast(value)

    @staticmethod
    def _initial_size() -> QtCore.QSize:
        """1580 x 960, or the primary screen's available size when that is smaller (1366 x 768,
        or 1280 x 720 logical pixels for 1920 x 1080 at 150 %)."""
        want = QtCore.QSize(1580, 960)
        screen = QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            return want
        return want.boundedTo(screen.availableGeometry().size())

    # ------------------------------------------------------------------ prefs
    def _restore_prefs(self) -> None:
        p = self.prefs
        if p is None:
            return
        for text in p.problems():  # a settings file that failed to load: named key, kept unchanged
            self.report("error", text)
        geo = p.get("window.geometry", "")
        if geo:
            self.restoreGeometry(_unb64(geo))
        st = p.get("window.state", "")
        if st:
            self.restoreState(_unb64(st))
        for sp in self._splitters():
            val = p.get(f"splitters.{sp.objectName()}", "")
            if val:
                sp.restoreState(_unb64(val))
        contrast = float(p.get("heatmap.contrast", 0.98))
        self.contrast_slider.setValue(int(round(contrast * 1000)))
        self._set_contrast(contrast)
        key = str(p.get("window.layout", "split2"))
        self.set_panel_layout(key if key in LAYOUT_KEYS else "split2")
        self.act_sound.setChecked(bool(p.get("alerts.sound", False)))
        self.act_notify.setChecked(bool(p.get("alerts.notify", False)))

    def save_prefs(self) -> None:
        """Write geometry, splitters, contrast, profile and alert options to the settings.

        Only changed values are written (:meth:`app.config.prefs.Prefs.save`); a settings file
        that failed to load is not written at all (its problem is in the problem strip).
        """
        p = self.prefs
        if p is None:
            return
        p.set("window.geometry", _b64(self.saveGeometry()))
        p.set("window.state", _b64(self.saveState()))
        for sp in self._splitters():
            p.set(f"splitters.{sp.objectName()}", _b64(sp.saveState()))
        p.set("heatmap.contrast", float(self.heatmap.contrast))
        p.set("window.layout", self.panel_area.layout_key)
        p.set("profile", self.config.profile)
        p.set("alerts.sound", bool(self.sound_on))
        p.set("alerts.notify", bool(self.notify_on))
        speed = float(self.config.speed)
        chosen = p.saved("replay.speed") or speed != PipelineConfig().speed  # not the untouched demo default
        if self.config.embedded and 0 < speed <= 1000 and chosen:
            p.set("replay.speed", speed)
        try:
            p.save()
        except Exception as exc:
            self.report("warning", f"Settings could not be saved: {exc}")

    # ------------------------------------------------------------------ pipeline
    async def start(self) -> None:
        """Start the data pipeline and the display timer; attach the trading panel.

        Problems are reported in the window; a failed start leaves the window open with the
        reason shown (and re-raises nothing).
        """
        self.mode_banner.setText(self._mode_text())
        if self.act_record.isChecked():  # a new pipeline starts without a recording
            self.act_record.setChecked(False)
        await self._start_source()
        self.mode_banner.setText(self._mode_text())
        self._attach_trading()

    async def _detach_trading(self) -> None:
        tr, self.trading = self.trading, None
        if tr is not None:
            closer = getattr(tr, "shutdown", None)
            if closer is not None:
                try:
                    res = closer()
                    if asyncio.iscoroutine(res):
                        await asyncio.wait_for(res, 5.0)
                except Exception as exc:
                    self.report("warning", f"closing the trading panel: {exc!r}")
        lay = self.trading_area.layout()
        while lay.count():
            item = lay.takeAt(0)
            w = item.widget()
            if w is not None:
                w.setParent(None)
                w.deleteLater()

    def _trading_placeholder(self, text: str) -> None:
        lab = QtWidgets.QLabel(text)
        lab.setWordWrap(True)
        lab.setAlignment(QtCore.Qt.AlignCenter)
        lab.setObjectName("trading_placeholder")
        self.trading_area.layout().addWidget(lab)

    def _attach_trading(self) -> None:
        try:
            from app.ui import trading_panel  # owned by the trading issue
        except ImportError as exc:
            self.trading_error = str(exc)
            self._trading_placeholder("Trading panel (order ticket, risk panel, kill switch)\nnot available in this build.")
            return
        if self.pipeline is None or self.pipeline.instrument is None:
            self.trading_error = "no instrument: the market data source did not start"
            self._trading_placeholder("Trading is off: the market data source did not start "
                                      "(see the message above and View > Problems).")
            return
        ctx = self.trading_context()
        try:
            if self.runtime is not None and len(self.runtime.instruments) > 1:
                # one session over every instrument; each panel's ladder opens its own instrument's tickets
                from app.ui.instruments_trading import attach_instruments_trading

                self.trading = attach_instruments_trading(self, self.runtime, self.report)
            else:
                self.trading = trading_panel.attach_trading(self, ctx)
            self.data_collection.apply_trading()
        except Exception as exc:
            self.trading_error = f"{exc!r}"
            self.report("error", f"The trading panel failed to start: {exc}\n{traceback.format_exc()}")

    def trading_context(self) -> types.SimpleNamespace:
        """What the trading panel gets: mode, pipeline pieces, settings and a problem reporter.

        Attributes: ``mode`` ("paper"), ``config`` (PipelineConfig), ``pipeline`` (its
        ``add_listener`` / ``add_frame_listener`` fan-out feeds trading), ``client``, ``source``
        (the :class:`~app.live.sources.MarketSource`), ``instrument``, ``trade_account``,
        ``prefs``, ``latest_frame()`` (the last drawn AnalysisFrame or None),
        ``report(level, text)``, ``loop`` (the asyncio loop), ``clock`` (the window's injected
        :class:`~app.core.clock.Clock`: the trading session reads "now" from it, so the
        stale-data rule and the day roll follow the clock a test gives).
        """
        pl = self.pipeline
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
        return types.SimpleNamespace(
            mode="paper",
            config=self.config,
            pipeline=pl,
            client=getattr(pl, "client", None),
            source=getattr(pl, "source", None),
            instrument=getattr(pl, "instrument", None),
            trade_account=self.config.trade_account,
            prefs=self.prefs,
            latest_frame=lambda: self.last_frame,
            report=self.report,
            loop=loop,
            clock=self.clock,
        )

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` as a task whose exception is reported in the window (never swallowed)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t):
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                self.report("error", "".join(traceback.format_exception(exc)))

        task.add_done_callback(done)
        return task

    def report(self, level: str, text: str, action: str = "") -> None:
        """Show a problem: banner (errors and warnings), Problems log, and the log file.

        The replay server's notices come here too: action ``"replay_finished"`` shows the
        replay-finished strip (Restart / Load); ``"replay_restarted"`` hides it and starts a new
        paper-trading session (:meth:`_on_replay_restarted`).
        """
        if action == ACTION_REPLAY_FINISHED:
            detail = text.split(":", 1)[1].strip() if ":" in text else text
            self.replay_banner.show_finished(detail)
        elif action == ACTION_REPLAY_RESTARTED:
            self.replay_banner.clear()
            self._on_replay_restarted(text)
        self.problems.add(level, text)
        showing_error = not self.problem_banner.isHidden() and self._banner_level == "error"
        if level == "error" or (level == "warning" and not showing_error):
            # a warning never hides an error still on screen (both stay in View > Problems)
            first = text.strip().splitlines()[0] if text.strip() else text
            label = "Use Sierra Chart data files..." if action == "use_sierra_files" else ""
            self.problem_banner.show_problem(first, action, label)
            self._banner_level = level
            if level == "error":
                self.problems_dock.show()
        if self.pipeline is None or self.pipeline.on_problem != self.report:  # else the pipeline logged it
            (log.error if level == "error" else log.warning)("%s", text)

    def _on_replay_restarted(self, text: str) -> None:
        """The replay started again: journal it, then cancel the working paper orders and close
        the paper position at the last price before the restart
        (:meth:`app.trading.paper.PaperBroker.replay_restarted`). Runs before the new
        session's first market batch reaches the paper broker (the DTC client hands over the
        market data decoded before the notice first)."""
        session = getattr(self.trading, "session", None)
        broker = getattr(session, "broker", None)
        hook = getattr(broker, "replay_restarted", None)
        if hook is None:
            return
        try:
            session.journal.record_event("replay_restarted", {"notice": text})
            hook("replay restarted")
        except Exception as exc:
            self.report("error", f"resetting paper trading after the replay restarted: {exc}\n{traceback.format_exc()}")

    def restart_replay(self) -> None:
        """Replay the same recording again from its start, as a new session (Restart button)."""
        src = self.pipeline.source if self.pipeline is not None else None
        restart = getattr(src, "restart", None)
        if restart is None or not restart():
            self.report("warning", "The replay cannot be restarted: the built-in replay server is not running.")

    def load_recording(self, path: str | None = None) -> None:
        """Replay another recording (Load button): ``path``, or one chosen in a file dialog."""
        if path is None:
            from app import paths

            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Load a recording", str(paths.data_dir() / "recordings"),
                "Recordings (*.mrec *.mrec.zst);;All files (*)")
            if not path:
                return
        self.config.embedded = True
        self.config.recording = str(path)
        self.replay_banner.clear()
        self.spawn(self.restart_pipeline())

    def _on_problem_action(self, action: str) -> None:
        if action == "use_sierra_files":
            self.open_connection_dialog(source="sierra_files")

    # ------------------------------------------------------------------ drawing
    def next_signal_id(self) -> int:
        """First signal id for a new pipeline: past every id in the journal (the attached
        trading session's, else the journal file) and every id this window has shown, so ids
        stay unique across restarts and profile changes (issue 14, item 15)."""
        from app.trading.journal import Journal

        journal = getattr(getattr(self.trading, "session", None), "journal", None)
        try:
            nxt = journal.next_signal_id() if journal is not None else Journal.peek_next_signal_id()
        except Exception as exc:  # the journal reports its own problems; ids must still be fresh
            log.warning("next signal id from the journal: %s", exc)
            nxt = 1
        shown = max((s.id for s in self.tape.model.signals), default=0)
        return max(int(nxt), int(shown) + 1, int(getattr(self, "_signal_id_floor", 1)))

    def _new_pipeline(self) -> Pipeline:
        first = self.next_signal_id()
        self._signal_id_floor = first
        opts = {k: v for k, v in (self.config.engine_options or {}).items() if k != "observer_factory"}
        self.config.engine_options = {**opts, "first_signal_id": first,
                                      "observer": self.data_collection.observer(),
                                      "precompile": (warm_window_kernels,)}
        pl = Pipeline(self.config, on_problem=self.report, on_state=self.health.set_source_state)
        pl.on_frame_ready = self._notifier.sigFrame.emit  # thread-safe: queued to the GUI thread
        return pl

    def several_instruments(self) -> bool:
        """True when :attr:`config` has more than one instrument (``[[instruments]]``, repeated
        ``--symbol``) or the built-in server replays several recordings (repeated ``--recording``):
        the window then runs an :class:`~app.live.instruments.InstrumentsRuntime`, one panel each."""
        c = self.config
        if len(c.instruments) > 1:
            return True
        rec = c.recording
        return bool(c.embedded and isinstance(rec, (list, tuple)) and len(rec) > 1)

    def _new_runtime(self):
        from app.live.instruments import InstrumentsRuntime

        first = self.next_signal_id()
        self._signal_id_floor = first
        # each instrument's engine its own research observer (one keeps one stream of trades)
        opts = {k: v for k, v in (self.config.engine_options or {}).items() if k != "observer"}
        self.config.engine_options = {**opts, "first_signal_id": first,
                                      "observer_factory": self.data_collection.observer,
                                      "precompile": (warm_window_kernels,)}
        opts = self.config.engine_options
        opts["precompile"] = (*opts["precompile"], warm_relation_kernel)
        return InstrumentsRuntime(self.config, on_problem=self.report, on_state=self._on_source_state,
                                  first_signal_id=first)

    def _on_source_state(self, source, state) -> None:
        """A source's state: the status bar, and the header of that instrument's panel."""
        self.health.set_source_state(source, state)
        sym = getattr(source, "symbol", "")
        for p in self.panels:
            if sym and p.symbol == sym:
                p.set_source_state(state)

    async def _start_source(self) -> None:
        """Make and start the pipeline (one instrument) or the runtime (several); a failed start
        is reported and leaves the window open."""
        if self.several_instruments():
            self.runtime = self._new_runtime()
            self.pipeline = None
            self.timer.start()
            try:
                await self.runtime.start()
            except Exception as exc:
                self.report("error", f"Start-up failed: {exc}\n{traceback.format_exc()}")
            self._adopt_runtime()
            return
        self.runtime = None
        self._keep_panels(1)
        self.pipeline = self._new_pipeline()
        self.panels[0].pipeline = self.pipeline
        self.timer.start()
        try:
            await self.pipeline.start()
        except Exception as exc:
            self.report("error", f"Start-up failed: {exc}\n{traceback.format_exc()}")

    async def _stop_source(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        elif self.pipeline is not None:
            await self.pipeline.stop()

    def _keep_panels(self, n: int) -> None:
        """Drop the panels after the first ``n`` (a restart with fewer instruments)."""
        n = max(1, int(n))
        if len(self.panels) <= n:
            return
        gone, self.panels = self.panels[n:], self.panels[:n]
        self.panel_area.set_panels(self.panels)
        for p in gone:
            p.setParent(None)
            p.deleteLater()
        self._show_layout_control()

    def _adopt_runtime(self) -> None:
        """One panel per started instrument, each bound to its pipeline; offsets of the market clock."""
        rt = self.runtime
        items = list(rt.instruments) if rt is not None else []
        if not items:
            return
        self.pipeline = items[0].pipeline  # the status bar, pause / speed (the one replay), trading
        self._keep_panels(len(items))
        for k, r in enumerate(items):
            panel = self.panels[k] if k < len(self.panels) else self._add_panel(r.symbol)
            panel.symbol = r.symbol
            panel.setObjectName(f"panel_{r.symbol}")
            panel.pipeline = r.pipeline
            r.pipeline.on_frame_ready = self._notifier.sigFrame.emit
        offsets = self.market_offsets_s()
        for p in self.panels:
            p.market_offset_s = offsets.get(p.symbol, 0.0)
        self.panel_area.set_panels(self.panels)
        self._show_layout_control()
        self.tape.set_instruments([r.symbol for r in items])
        self._adopt_relation()

    def _adopt_relation(self) -> None:
        """Show the relation pane for the runtime's pair (A, B), its time axis on A's heatmap
        (A's panel is the first of the two), or hide it without a pair."""
        rt = self.runtime
        pair = getattr(rt, "relation_pair", None) if rt is not None else None
        if pair is None and rt is not None and len(rt.instruments) >= 2:
            pair = tuple(getattr(rt.config, "relation_pair", None) or ()) or (rt.instruments[0].symbol,
                                                                              rt.instruments[1].symbol)
        if not pair:
            self.relation_pane.hide()
            return
        self.relation_pane.set_pair(tuple(pair))
        self._relation_fed = 0
        panel = self.panel_of(pair[0])
        self.relation_pane.link_x(panel.heatmap.getPlotItem())
        self.relation_pane.show()

    def _feed_relation(self) -> None:
        """Draw the relation rows the runtime made since the last call (GUI thread)."""
        rt = self.runtime
        if rt is None or not self.relation_pane.isVisible():
            return
        blocks = rt.relation_rows
        if len(blocks) < self._relation_fed:  # a new runtime
            self._relation_fed = 0
        for rows in blocks[self._relation_fed:]:
            self.relation_pane.extend(rows)
        self._relation_fed = len(blocks)

    def market_offsets_s(self) -> dict[str, float]:
        """Seconds to add to each instrument's recorded times to put it on the built-in server's
        market clock (:attr:`app.sim.replay.MarketTimeline.offsets_ns`: 0 for recordings that
        overlap in time; recordings of other dates are aligned at their starts); {} for live data."""
        pl = self.pipeline
        base = getattr(getattr(pl, "source", None), "base", getattr(pl, "source", None))
        return market_offsets(getattr(base, "replay", None))

    def _on_frame_ready(self) -> None:
        """A frame was published: draw it now if the last draw is a display period old (on
        :attr:`clock`), else start the one-shot timer for the rest of that period."""
        if not self.timer.isActive():
            return  # not started, or stopped: nothing is drawn
        wait_s = self._last_draw_t + self._min_draw_s - self.clock.monotonic()
        if wait_s <= 0.0:
            self._on_timer()
        elif not self._draw_soon.isActive():
            self._draw_soon.start(max(1, math.ceil(wait_s * 1e3)))

    def _on_timer(self) -> None:
        rt = self.runtime
        try:
            if rt is not None:
                rt.poll()
                pairs = [(self.panels[k], r.slot.take()) for k, r in enumerate(rt.instruments)
                         if k < len(self.panels) and r.pipeline.on_frame_ready is not None]
            elif self.pipeline is not None:
                self.pipeline.poll()
                pairs = [(self.panels[0], self.pipeline.slot.take())]
            else:
                return
            if rt is not None:
                self._feed_relation()
            for panel, frame in pairs:
                if frame is None:
                    continue
                self._last_draw_t = self.clock.monotonic()
                self.draw_frame(frame)
                panel._unpainted = frame
        except Exception as exc:  # a drawing bug must be visible, and must not kill the timer
            self.report("error", f"Drawing failed: {exc}\n{traceback.format_exc()}")

    def _request_history(self, t0_ns, t1_ns, max_cols, price_lo=None, price_hi=None, panel=None):
        """A heatmap's history requests go to its instrument's running engine (None without one)."""
        pl = getattr(panel, "pipeline", None) if panel is not None and self.runtime is not None else self.pipeline
        eng = pl.engine if pl is not None else None
        if eng is None:
            return None
        return eng.request_history(t0_ns, t1_ns, max_cols, price_lo, price_hi)

    def draw_frame(self, frame) -> None:
        """Update every widget in place from ``frame`` (GUI thread): its instrument's panel
        (:meth:`panel_of` ``frame.symbol``; a panel out of view keeps the frame and draws it
        when shown), the tape and, for the first instrument, the VIX gauge."""
        t0 = time.perf_counter()
        panel = self.panel_of(getattr(frame, "symbol", ""))
        if panel is self.panels[0]:
            self.last_frame = frame
            self.vix_gauge.set_state(frame.vix, getattr(frame, "analysis_ready", True))
        if len(self.panels) > 1 and panel not in self.panel_area.visible_panels():
            panel._pending = frame
        else:
            self._draw_panel(panel, frame)
        self._feed_tape(frame)
        # analyzer errors reach the window through the engine's on_error callback (the pipeline
        # shows the first five and every hundredth); frame.error carries the same text
        self.frames_drawn += 1
        now = time.perf_counter()
        self._fps_times.append(now)
        self.draw_ms.append((now - t0) * 1e3)
        if panel is self.panels[0] and panel.frames_drawn % 10 == 1:
            self._update_health(frame)

    def _feed_tape(self, frame) -> None:
        """Every instrument's frames go to the one tape. The tape keeps each instrument's own
        newest frame number (:meth:`SignalTape.update_from_frame`), so the engines' interleaved
        numbers never look like a restart, and a restart of one instrument's engine starts a new
        run of that instrument's rows only."""
        self.tape.update_from_frame(frame)

    def _draw_panel(self, panel: InstrumentPanel, frame) -> None:
        panel.draw_frame(frame)
        if not hasattr(panel, "_fps_times"):
            panel._fps_times = collections.deque(maxlen=240)
        panel._fps_times.append(time.perf_counter())

    def _on_heatmap_painted(self, panel=None) -> None:
        panel = panel or self.panels[0]
        f, panel._unpainted = panel._unpainted, None
        pl = panel.pipeline if self.runtime is not None else self.pipeline
        if f is not None and pl is not None:
            pl.frame_painted(f)

    def fps(self) -> float:
        """Frames drawn per second over the last few seconds (the first panel's)."""
        ts = getattr(self.panels[0], "_fps_times", ())
        if len(ts) < 2:
            return 0.0
        span = ts[-1] - ts[0]
        return (len(ts) - 1) / span if span > 0 else 0.0

    def _update_health(self, frame) -> None:
        figs = self.pipeline.figures() if self.pipeline else {}
        tick = float(frame.tick_size)
        dec = price_decimals(tick)
        bb = f"{frame.best_bid * tick:.{dec}f}" if frame.best_bid >= 0 else "-"
        ba = f"{frame.best_ask * tick:.{dec}f}" if frame.best_ask >= 0 else "-"
        when = QtCore.QDateTime.fromMSecsSinceEpoch(int(frame.ts // 1_000_000), QtCore.QTimeZone.utc())
        self.health.set_figures(
            msgs_per_s=figs.get("msgs_per_s"),
            decode_errors=figs.get("decode_errors"),
            analysis_ms=frame.timings.get("total", frame.timings.get("step")),
            fps=self.fps(),
            events_per_s=frame.events_per_s,
            market=f"{frame.symbol} {bb} / {ba}  {when.toString('yyyy-MM-dd HH:mm:ss')} UTC",
        )

    def _sync_ladder(self) -> None:
        for p in self.panels:
            p.sync_ladder()

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        QtCore.QTimer.singleShot(0, self._sync_ladder)

    def _on_follow_changed(self, on: bool) -> None:
        self.act_follow.setChecked(on)

    def _on_signal_selected(self, signal) -> None:
        """Jump to a signal chosen in the tape on its instrument's panel, shown first: its tab,
        or in a split view where it is out of view, in the first cell
        (:meth:`PanelArea.show_in_cell`)."""
        sym = str(getattr(signal, "symbol", "") or "")
        try:
            panel = self.panel_of(sym)
        except KeyError:
            panel = self.panels[0]
        if len(self.panels) > 1 and panel not in self.panel_area.visible_panels():
            self.panel_area.show_in_cell(0, panel)
        panel.show_signal(signal)

    def _on_new_signals(self, signals) -> None:
        if not signals:
            return
        if self.sound_on:
            QtWidgets.QApplication.beep()
        if self.notify_on:
            s = signals[-1]
            text = f"{'LONG' if s.side > 0 else 'SHORT'} {s.symbol} score {s.score:.2f}: {s.top_reasons(2)}"
            tray = getattr(self, "_tray", None)
            if tray is None and QtWidgets.QSystemTrayIcon.isSystemTrayAvailable():
                self._tray = tray = QtWidgets.QSystemTrayIcon(self.windowIcon(), self)
                tray.show()
            if tray is not None:
                tray.showMessage("MIA Elite signal", text)
            else:
                self.statusBar().showMessage(f"New signal: {text}", 8000)

    # ------------------------------------------------------------------ controls
    def _on_speed_chosen(self, idx: int) -> None:
        speed = float(self.speed_combo.itemData(idx))
        self.config.speed = speed
        if self.pipeline is not None:
            self.pipeline.source.set_speed(speed)  # marshalled to the replay server's own thread
        self.mode_banner.setText(self._mode_text())

    def _record_targets(self) -> list:
        """``(symbol, pipeline)`` of every instrument Record records: each instrument of the
        runtime (several instruments), else the one pipeline (symbol "")."""
        rt = self.runtime
        if rt is not None and rt.instruments:
            return [(r.symbol, r.pipeline) for r in rt.instruments]
        return [("", self.pipeline)] if self.pipeline is not None else []

    def _on_record(self, on: bool) -> None:
        """Start or stop recording the event stream of every instrument (``recordings/`` in the data
        folder): one ``SYMBOL-YYYYmmdd-HHMMSS.mrec`` per instrument, all with the same time stamp
        (:attr:`recording_paths`; :attr:`recording_path` is the first; ``_2``, ``_3``, ... is added
        to a name that exists already, so no file is overwritten). Stopping closes them all and
        reports each file's event count.

        An instrument whose source has not started yet (its instrument is unknown) is skipped with
        a warning; with none started nothing is recorded (a warning, Record unchecked). A file that
        cannot be started (disk, permissions) stops and removes the ones already started, so
        nothing records half the instruments; the error names the symbol.
        """
        if not on:
            self.recording_indicator.stop()
            active, self._recording = getattr(self, "_recording", []), []
            for pl, path in active:
                n = pl.stop_recording()
                if n is not None:
                    self.report("info", f"recording closed: {n:,} events in {path}")
            return
        import datetime as _dt

        from app import paths

        targets = self._record_targets()
        ready = [(sym, pl) for sym, pl in targets if pl is not None and pl.instrument is not None]
        if not ready:
            self.report("warning", "nothing to record yet: no market source has started")
            self.act_record.setChecked(False)
            return
        for sym, pl in targets:
            if pl is None or pl.instrument is None:
                self.report("warning", f"{sym or 'an instrument'} is not recorded: its market source has not "
                                       "started yet (record again once it streams)")
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = paths.data_dir() / "recordings"
        started: list = []
        used: set[str] = set()
        for _sym, pl in ready:
            name = pl.instrument.symbol
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            base, k = f"{safe}-{stamp}", 2
            stem = base
            # never over an existing file (Record again within the second) nor another instrument's
            # (two of one file-safe name): those are not this recording's to overwrite or remove
            while stem in used or (folder / f"{stem}.mrec").exists():
                stem, k = f"{base}_{k}", k + 1
            used.add(stem)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                started.append((pl, pl.start_recording(folder / f"{stem}.mrec")))
            except (OSError, RuntimeError) as exc:
                for other, path in started:  # nothing half-recorded: the others stop again
                    other.stop_recording()
                    try:
                        path.unlink(missing_ok=True)
                    except OSError:
                        pass
                also = (f" (the recordings of {', '.join(p.instrument.symbol for p, _ in started)} were "
                        "stopped and removed)") if started else ""
                self.report("error", f"cannot record {name}: {exc}{also}")
                self.act_record.setChecked(False)
                return
        self._recording = started
        self.recording_paths = [path for _pl, path in started]
        self.recording_path = self.recording_paths[0]
        self.recording_indicator.start(self.recording_paths, self.clock.monotonic())
        if len(started) == 1:
            self.report("info", f"recording to {self.recording_path}")
        else:
            self.report("info", f"recording {len(started)} instruments to "
                                f"{', '.join(str(p) for p in self.recording_paths)}")

    def _tick_status(self) -> None:
        """Once a second: the recording's elapsed time; msgs/s without a frame (paused: stopped)."""
        self.recording_indicator.tick(self.clock.monotonic())
        pl = self.pipeline
        if pl is not None and not self.health.paused:
            try:
                rate = pl.figures().get("msgs_per_s")
            except Exception:  # figures are best effort; a source being replaced has none
                rate = None
            if rate is not None:
                self.health.set_figures(msgs_per_s=rate)
        ts = self._fps_times
        if ts and time.perf_counter() - ts[-1] > 2.0:  # no frame for 2 s: the rates are 0, not the last ones
            self.health.set_figures(fps=0.0, events_per_s=0.0)

    def _on_pause(self, paused: bool) -> None:
        src = self.pipeline.source if self.pipeline else None
        if src is None or not src.pausable:
            return
        if paused:
            src.pause()
        else:
            src.resume()
        self.act_pause.setText("Resume replay" if paused else "Pause replay")
        self.health.set_paused(paused)

    def _on_profile_chosen(self, idx: int) -> None:
        """Apply the chosen profile to the running analysis (the source keeps running:
        :meth:`app.live.pipeline.Pipeline.set_profile`); with no pipeline it is the next one's."""
        from app.config.schema import ConfigError

        name = PROFILES[idx]
        if name == self.config.profile:
            return
        pl = self.pipeline
        if pl is None or pl.stopped:
            self.config.profile = name
            return
        try:
            pl.set_profile(name)
        except ConfigError as exc:
            self.report("error", f"Profile {name} could not be loaded: {exc}")
            old = self.config.profile
            self.profile_combo.setCurrentIndex(PROFILES.index(old) if old in PROFILES else 1)
            return
        self.config.profile = name

    async def restart_pipeline(self) -> None:
        """Stop and start the pipeline with the current :attr:`config` (a connection change; a profile
        change does not restart: :meth:`_on_profile_chosen`)."""
        self.timer.stop()
        self._draw_soon.stop()
        if self.act_record.isChecked():  # the recording ends with its pipeline (and says so)
            self.act_record.setChecked(False)
        if self.act_pause.isChecked():  # a new source starts running
            self.act_pause.setChecked(False)
            self.act_pause.setText("Pause replay")
            self.health.paused = False
        await self._detach_trading()
        await self._stop_source()
        self.problem_banner.clear_problem()
        self.replay_banner.clear()
        if self.prefs is not None:  # a settings file that failed to load stays named in the strip
            for text in self.prefs.problems():
                self.problem_banner.show_problem(text)
        for sp in (self.speed_label, self.speed_combo):
            sp.setVisible(self.config.embedded)
        self.act_pause.setVisible(self.config.embedded)
        self.mode_banner.setText(self._mode_text())
        await self._start_source()
        self.mode_banner.setText(self._mode_text())
        self._attach_trading()

    def schedule_demo_position(self, after_s: float, stop_ticks: int = 12, target_ticks: int = 16) -> None:
        """Screenshots and demos only (``mia-elite --demo-position SECONDS``, paper mode): after
        ``after_s`` seconds buy 1 contract at the market with a stop ``stop_ticks`` below and a
        target ``target_ticks`` above the ask, through the trading session's gate as a
        confirmed ticket would (an open position and a working bracket to look at)."""
        QtCore.QTimer.singleShot(int(max(after_s, 0.0) * 1000),
                                 lambda: self.spawn(self._demo_position(int(stop_ticks), int(target_ticks))))

    async def _demo_position(self, stop_ticks: int, target_ticks: int) -> None:
        from app.core.orders import OrderType
        from app.trading.orders import OrderTicket

        session = getattr(self.trading, "session", None)
        if session is None or session.mode != "paper":
            self.report("warning", "demo position: only in paper mode with the trading panel running")
            return
        sym = session.instrument.symbol
        for _ in range(600):  # the first market data can come a while after start-up (compiling)
            m = session.market.get(sym)
            if m is not None and m.best_ask >= 0:
                break
            await asyncio.sleep(0.2)
        else:
            self.report("warning", "demo position: no market data within 120 s")
            return
        ask = int(m.best_ask)
        t = OrderTicket(sym, 1, 1, OrderType.MARKET, None, ask - stop_ticks, ask + target_ticks, ref_price=ask,
                        tick_size=session.instrument.tick_size, tick_value=session.instrument.tick_value)
        d = await session.confirm(t)
        self.report("info", f"demo position: {d.message or 'sent'}")

    def open_connection_dialog(self, source: str | None = None) -> None:
        """Show the connection dialog; on OK restart the pipeline with the new settings."""
        from app.ui.connection_dialog import ConnectionDialog

        dlg = ConnectionDialog(self.config, self.prefs, self, focus_source=source,
                               instrument=getattr(self.pipeline, "instrument", None))
        if dlg.exec() == QtWidgets.QDialog.Accepted:
            self.config = dlg.result_config()
            self.spawn(self.restart_pipeline())

    # ------------------------------------------------------------------ closing
    async def shutdown(self) -> None:
        """Stop the timer, the trading panel, every task and the pipeline (bounded waits)."""
        self.timer.stop()
        self._draw_soon.stop()
        await self._detach_trading()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        await self._stop_source()

    def closeEvent(self, ev):  # noqa: N802
        if self._closed:
            ev.accept()
            return
        if self._closing:
            ev.ignore()
            return
        self._closing = True
        self.save_prefs()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # no asyncio loop runs (never started, or the loop is gone): stop what can be stopped now
            self.timer.stop()
            self._draw_soon.stop()
            pipelines = ([r.pipeline for r in self.runtime.instruments] if self.runtime is not None
                         else [self.pipeline] if self.pipeline is not None else [])
            for pl in pipelines:
                if pl.engine is not None:
                    pl.engine.stop(2.0)
            for pl in reversed(pipelines):  # the shared connection's primary share last
                if pl.source is not None:
                    pl.source.stop_blocking(2.0)  # the replay server's thread, if any
            self._closed = True
            ev.accept()
            self.sigClosed.emit()
            return
        ev.ignore()

        async def _go():
            try:
                await self.shutdown()
            finally:
                self._closed = True
                self.close()
                self.sigClosed.emit()

        task = asyncio.ensure_future(_go())
        self._close_task = task
