"""Status and health: source states, rates, errors, and plain-language problem messages.

:class:`HealthBar` lives in the window's status bar (one label per figure, updated in place).
:class:`ProblemBanner` is a coloured strip under the mode banner that tells the user, in plain
text, what went wrong and what to do (a source dropped, a symbol was rejected, the analysis
engine raised). :class:`ProblemLog` keeps every problem with its time and full text (with the
traceback for engine errors): errors are shown, never swallowed.
"""

from __future__ import annotations

import datetime as _dt
import logging

from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

#: the recording indicator's dot and its colour
RECORDING_DOT = "\u25cf"
RECORDING_RED = "#ff3b3b"

STATE_COLORS = {
    "connected": "#3cc86e",
    "streaming": "#3cc86e",
    "logged_on": "#3cc86e",
    "connecting": "#e0b030",
    "reconnecting": "#e0b030",
    "logging_on": "#e0b030",
    "rejected": "#e85060",
    "disconnected": "#e85060",
    "error": "#e85060",
    "stopped": "#888888",
    "paused": "#e0b030",
}


class ElidedLabel(QtWidgets.QLabel):
    """A one-line label that ends in "..." when it is narrower than its text, instead of being
    cut; the full text is its tooltip. Its text may be coloured in parts (:meth:`set_segments`).

    ``text()`` is the full plain text; :meth:`shown_text` is what fits.
    """

    ELLIPSIS = "\u2026"

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.PlainText)
        self._segments: list[tuple[str, str, bool]] | None = None
        self.setSizePolicy(QtWidgets.QSizePolicy.Preferred, QtWidgets.QSizePolicy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        """Plain text (no colours)."""
        self._segments = None
        self._set_plain(text)

    def _set_plain(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
        self.updateGeometry()  # the size hint follows the text (bold parts included)
        self.update()

    def set_segments(self, segments) -> None:
        """Text in parts: ``[(text, colour "#rrggbb" or "", bold)]``, drawn one after another."""
        self._segments = [(str(t), str(c or ""), bool(b)) for t, c, b in segments]
        self._set_plain("".join(t for t, _, _ in self._segments))

    @property
    def segments(self) -> list[tuple[str, str, bool]]:
        """The parts of the text (one uncoloured part for plain text)."""
        return list(self._segments) if self._segments is not None else [(self.text(), "", False)]

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        m = self.contentsMargins()
        return QtCore.QSize(self.full_width() + m.left() + m.right() + 2, super().sizeHint().height())

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QtCore.QSize(fm.horizontalAdvance("MMM" + self.ELLIPSIS) + m.left() + m.right(),
                            super().minimumSizeHint().height())

    def is_elided(self) -> bool:
        """True when the text does not fit and ends in "..." on screen."""
        return self.full_width() > self.contentsRect().width()

    def full_width(self) -> int:
        """Pixels the whole text needs (bold parts in bold)."""
        return sum(self._metrics(b).horizontalAdvance(t) for t, _, b in self.segments)

    def shown_text(self) -> str:
        """The text on screen: all of it, or the part that fits followed by "..."."""
        return "".join(t for t, _, _ in self._layout())

    def _metrics(self, bold: bool) -> QtGui.QFontMetrics:
        if not bold:
            return self.fontMetrics()
        f = QtGui.QFont(self.font())
        f.setBold(True)
        return QtGui.QFontMetrics(f)

    def _layout(self) -> list[tuple[str, str, bool]]:
        room = self.contentsRect().width()
        out, x = [], 0
        for t, c, b in self.segments:
            fm = self._metrics(b)
            w = fm.horizontalAdvance(t)
            if x + w <= room:
                out.append((t, c, b))
                x += w
                continue
            out.append((fm.elidedText(t, QtCore.Qt.ElideRight, max(room - x, 0)) or self.ELLIPSIS, c, b))
            break
        return out

    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        try:
            r = self.contentsRect()
            x = r.left()
            default = self.palette().color(QtGui.QPalette.WindowText)
            for t, c, b in self._layout():
                f = QtGui.QFont(self.font())
                f.setBold(b)
                p.setFont(f)
                p.setPen(QtGui.QColor(c) if c else default)
                w = QtGui.QFontMetrics(f).horizontalAdvance(t)
                p.drawText(QtCore.QRect(x, r.top(), w + 1, r.height()), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, t)
                x += w
        finally:
            p.end()


class HealthBar(QtWidgets.QWidget):
    """Compact health figures for the status bar.

    Figures: connection state per source, messages/s, decode errors, analysis ms per frame,
    frames drawn per second, events applied per second, and the market (symbol, bid / ask,
    time). The sources and the market elide ("...", full text in the tooltip) when the bar is
    narrower than its text; the short figures keep their width.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.setSpacing(14)
        self.sources_label = ElidedLabel("sources: -")
        self.msgs_label = QtWidgets.QLabel("msgs/s -")
        self.errors_label = QtWidgets.QLabel("decode errors 0")
        self.analysis_label = QtWidgets.QLabel("analysis - ms")
        self.fps_label = QtWidgets.QLabel("frames/s -")
        self.events_label = QtWidgets.QLabel("events/s -")
        self.market_label = ElidedLabel("")
        for w in (self.msgs_label, self.errors_label, self.analysis_label, self.fps_label, self.events_label):
            w.setSizePolicy(QtWidgets.QSizePolicy.Fixed, QtWidgets.QSizePolicy.Preferred)
        lay.addWidget(self.sources_label)
        for w in (self.msgs_label, self.errors_label, self.analysis_label, self.fps_label, self.events_label):
            lay.addWidget(w)
        lay.addWidget(self.market_label)
        lay.addStretch(1)
        self.states: dict[str, str] = {}
        #: True while the user paused the replay: msgs/s shows "paused" instead of a stale rate
        self.paused = False

    def set_source_state(self, name: str, state: str) -> None:
        """Show ``state`` for source ``name`` (e.g. ``"dtc 127.0.0.1:11199"``, ``"connected"``)."""
        if self.states.get(name) == state:
            return
        self.states[name] = state
        parts = []
        for n, s in self.states.items():
            if parts:
                parts.append((" | ", "", False))
            parts.append((f"{n}: ", "", False))
            parts.append((s, STATE_COLORS.get(s, "#cccccc"), True))
        self.sources_label.set_segments(parts)

    def set_paused(self, paused: bool, source: str = "replay server") -> None:
        """Show the user's pause: ``source`` reads "paused" (``"running"`` again on resume) and
        the messages rate stops (no stale rate of before the pause stays on screen)."""
        self.paused = bool(paused)
        self.set_source_state(source, "paused" if paused else "running")
        if paused:
            self.msgs_label.setText("msgs/s - (paused)")

    def set_figures(self, *, msgs_per_s=None, decode_errors=None, analysis_ms=None, fps=None,
                    events_per_s=None, market=None) -> None:
        """Update the figures given (``None`` leaves one unchanged; msgs/s stays "paused"
        while :attr:`paused`)."""
        if msgs_per_s is not None and not self.paused:
            self.msgs_label.setText(f"msgs/s {msgs_per_s:,.0f}")
        if decode_errors is not None:
            self.errors_label.setText(f"decode errors {decode_errors}")
            self.errors_label.setStyleSheet("color:#e85060" if decode_errors else "")
        if analysis_ms is not None:
            self.analysis_label.setText(f"analysis {analysis_ms:.2f} ms/step")
        if fps is not None:
            self.fps_label.setText(f"frames/s {fps:.1f}")
        if events_per_s is not None:
            self.events_label.setText(f"events/s {events_per_s:,.0f}")
        if market is not None:
            self.market_label.setText(market)


class RecordingIndicator(ElidedLabel):
    """The status bar's recording indicator: a red dot, the elapsed time and the file name.

    Hidden while nothing is recorded. The elapsed time comes from the window's clock
    (:mod:`app.core.clock`), so tests drive it with a ``ManualClock``. With several files (one
    per instrument) it shows their count before the names (``REC 00:12  2 files: A.mrec,
    B.mrec``); the tool tip lists every path.

    Attributes
    ----------
    path : Path or None
        The (first) file being recorded.
    paths : list
        Every file being recorded.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("recording_indicator")
        self.path = None
        self.paths: list = []
        self._t0 = 0.0
        self.elapsed_s = 0.0
        self.hide()

    def start(self, path, now_s: float) -> None:
        """Recording to ``path`` (one path, or a list of paths: one per instrument) started at
        ``now_s`` (the clock's monotonic seconds)."""
        self.paths = list(path) if isinstance(path, (list, tuple)) else [path]
        self.path = self.paths[0] if self.paths else None
        self._t0 = float(now_s)
        self.tick(now_s)
        self.show()

    def tick(self, now_s: float) -> None:
        """Show the time elapsed until ``now_s`` (monotonic seconds)."""
        if self.path is None:
            return
        self.elapsed_s = max(float(now_s) - self._t0, 0.0)
        s = int(self.elapsed_s)
        h, m, sec = s // 3600, (s // 60) % 60, s % 60
        when = f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
        names = [getattr(p, "name", None) or str(p) for p in self.paths]
        what = names[0] if len(names) == 1 else f"{len(names)} files: {', '.join(names)}"
        self.set_segments([(RECORDING_DOT + " ", RECORDING_RED, False), ("REC ", RECORDING_RED, True),
                           (f"{when}  {what}", "", False)])
        where = str(self.path) if len(self.paths) == 1 else "\n".join(str(p) for p in self.paths)
        self.setToolTip(f"{self.text()}\nRecording the market event stream to {where}")

    def stop(self) -> None:
        """Recording stopped: hide."""
        self.path = None
        self.paths = []
        self.setText("")
        self.hide()


class ProblemBanner(QtWidgets.QFrame):
    """A strip that shows the current problem and what to do; hidden when all is well.

    Signals
    -------
    sigAction(str)
        The user clicked the banner's action button; the argument is the action key given to
        :meth:`show_problem` (e.g. ``"use_sierra_files"``).
    """

    sigAction = QtCore.Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("problem_banner")
        self.setStyleSheet("#problem_banner{background:#5a1d24;border:1px solid #e85060;}"
                           "QLabel{color:#ffe8ea;}")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QtWidgets.QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.action_button = QtWidgets.QPushButton("")
        self.action_button.setVisible(False)
        self.close_button = QtWidgets.QToolButton()
        self.close_button.setText("x")
        self.close_button.setToolTip("Hide this message (it stays in View > Problems)")
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(self.close_button)
        self._action = ""
        self.action_button.clicked.connect(lambda: self.sigAction.emit(self._action))
        self.close_button.clicked.connect(self.hide)
        self.hide()

    @property
    def text(self) -> str:
        """The message shown now (empty when hidden)."""
        return "" if self.isHidden() else self.label.text()

    def show_problem(self, text: str, action: str = "", action_label: str = "") -> None:
        """Show ``text``; with ``action``/``action_label`` a button emits :attr:`sigAction`."""
        self.label.setText(text)
        self._action = action
        self.action_button.setText(action_label)
        self.action_button.setVisible(bool(action))
        self.show()

    def clear_problem(self) -> None:
        """Hide the banner."""
        self.label.setText("")
        self.hide()


class ProblemLog(QtWidgets.QPlainTextEdit):
    """Every problem of the session with its UTC time and full text (tracebacks included)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(2000)
        f = QtGui.QFont("monospace")
        f.setStyleHint(QtGui.QFont.TypeWriter)
        self.setFont(f)
        self.entries: list[tuple[str, str]] = []

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        """Six lines high: the view opens under the market side without taking half of it."""
        fm = self.fontMetrics()
        return QtCore.QSize(60 * fm.averageCharWidth(), 6 * fm.lineSpacing() + 12)

    def add(self, level: str, text: str) -> None:
        """Append a problem (``level`` is ``"error"``, ``"warning"`` or ``"info"``)."""
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%H:%M:%S")
        self.entries.append((level, text))
        if len(self.entries) > 2000:
            del self.entries[:1000]
        self.appendPlainText(f"[{now}] {level.upper()}: {text}")


class ReplayEndBanner(QtWidgets.QFrame):
    """The strip shown when a replay reached its end: "replay finished", Restart and Load buttons.

    The built-in server stops at the end of its recording by default and says so
    (:mod:`app.sim.server.market_data`); the window shows this strip instead of a frozen clock.

    Signals
    -------
    sigRestart()
        Restart clicked: replay the same recording again from its start (a new session).
    sigLoad()
        Load clicked: choose another recording.
    """

    sigRestart = QtCore.Signal()
    sigLoad = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("replay_end_banner")
        self.setStyleSheet("#replay_end_banner{background:#1d3a5a;border:1px solid #5090e8;}"
                           "QLabel{color:#e8f0ff;}")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QtWidgets.QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.restart_button = QtWidgets.QPushButton("Restart")
        self.restart_button.setToolTip("Replay the same recording again from its start (a new session: "
                                       "working paper orders are cancelled, the position is closed)")
        self.load_button = QtWidgets.QPushButton("Load...")
        self.load_button.setToolTip("Replay another recording (.mrec, .mrec.zst)")
        lay.addWidget(self.label, 1)
        lay.addWidget(self.restart_button)
        lay.addWidget(self.load_button)
        self.restart_button.clicked.connect(self.sigRestart.emit)
        self.load_button.clicked.connect(self.sigLoad.emit)
        self.hide()

    @property
    def text(self) -> str:
        """The message shown now (empty when hidden)."""
        return "" if self.isHidden() else self.label.text()

    def show_finished(self, detail: str) -> None:
        """Show "Replay finished" with ``detail`` (the server's notice: symbol, events, market time)."""
        self.label.setText(f"Replay finished ({detail}). The market clock stopped at the end of the "
                           "recording: Restart it, or Load another one.")
        self.show()

    def clear(self) -> None:
        """Hide the strip (the replay runs again)."""
        self.label.setText("")
        self.hide()
