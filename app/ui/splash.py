"""Start-up progress: the splash screen until the first frame with market data, then an
overlay in the main window while the analyzers compile.

On the first run numba compiles the analyzers' kernels (tens of seconds) and writes them to
the user cache folder (:data:`app.core.jit.CACHE_DIR`); later runs load them in about a
second. The engine compiles them on a thread of their own while the book already runs
(:meth:`app.live.engine.AnalysisEngine.start`), so market data is drawn at once. The splash
stays on top of every window (``WindowStaysOnTopHint``: without a window manager the main
window would hide it), says what is happening, counts the seconds, and follows the start-up
through the main window's state::

    starting -> connecting (no engine yet) -> waiting for market data (nothing drawn yet)
             -> first frame with market data: closed

(A window that draws only empty frames closes the splash :attr:`Splash.NO_DATA_CLOSE_S` after
its first one; the window's own overlay then says it waits for data.) In the main window,
:class:`StartupOverlay` covers the heatmap with "Waiting for market data..." until the first
frame with a book (instead of empty placeholder axes), then shows a badge "Compiling the
analyzers... N s" until ``frame.analysis_ready``.

It finds the main window by itself (the top-level widget with ``frames_drawn`` and
``pipeline``) or is told with :meth:`Splash.follow`. When the first frame has been drawn it
closes and logs one INFO line, which is also the start-up figure the bundle check reads::

    first frame drawn 2.84 s after process start (kernels 0.61 s, numba cache warm)

Everything is read by polling every 50 ms on the GUI thread (no cross-thread calls); the
engine's ``state`` and ``compile_seconds`` are plain attributes written by its worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

#: Marker of the first-frame log line (``packaging/bundle_figures.py`` parses it).
FIRST_FRAME_MARK = "first frame drawn"


def process_start_time() -> float:
    """Wall-clock time (``time.time()`` seconds) at which this process started.

    From the operating system (``psutil``); falls back to the import time of this module.
    """
    try:
        import psutil

        return float(psutil.Process(os.getpid()).create_time())
    except Exception:
        return _IMPORT_TIME


_IMPORT_TIME = time.time()


def numba_cache_is_warm(cache: str | os.PathLike | None = None) -> bool:
    """True when the numba cache folder already holds compiled kernels (``*.nbi`` index files).

    Parameters
    ----------
    cache : path, optional
        Default ``$NUMBA_CACHE_DIR``, else the folder :mod:`app.core.jit` sets up.
    """
    d = cache or os.environ.get("NUMBA_CACHE_DIR")
    if not d:
        try:
            from app.core.jit import CACHE_DIR

            d = CACHE_DIR
        except Exception:
            return False
    p = Path(d)
    try:
        return p.is_dir() and next(p.rglob("*.nbi"), None) is not None
    except OSError:
        return False


def _pixmap(width: int = 460, height: int = 170) -> QtGui.QPixmap:
    from app import __version__

    pm = QtGui.QPixmap(width, height)
    pm.fill(QtGui.QColor(26, 28, 38))
    p = QtGui.QPainter(pm)
    try:
        p.setRenderHint(QtGui.QPainter.Antialiasing, True)
        p.setPen(QtGui.QPen(QtGui.QColor(60, 110, 200), 2))
        p.drawRect(1, 1, width - 2, height - 2)
        try:
            from app.paths import resource_path

            icon = QtGui.QPixmap(str(resource_path("icons", "mia-elite.png")))
            if not icon.isNull():
                p.drawPixmap(20, 22, icon.scaled(72, 72, QtCore.Qt.KeepAspectRatio,
                                                 QtCore.Qt.SmoothTransformation))
        except FileNotFoundError:
            pass
        p.setPen(QtGui.QColor(225, 228, 235))
        f = QtGui.QFont()
        f.setPointSize(18)
        f.setBold(True)
        p.setFont(f)
        p.drawText(110, 52, "MIA Elite")
        f.setPointSize(9)
        f.setBold(False)
        p.setFont(f)
        p.setPen(QtGui.QColor(160, 166, 180))
        p.drawText(110, 76, f"version {__version__} - companion for Sierra Chart")
    finally:
        p.end()
    return pm


def warm_window_kernels() -> None:
    """Compile (or load) the numba kernels the window's threads call at once, with the types
    they call them with: the DTC batch decode of the GUI thread
    (:func:`app.dtc.batch.scan_run`) and pyqtgraph's image rescale of the heatmap
    (``pyqtgraph.functions_numba.rescale_and_lookup``: float32 image, 512-entry uint32 table,
    when pyqtgraph's ``useNumba`` is on; pyqtgraph compiles it in every process).

    The window hands it to the engine as ``precompile``, so these come before the analyzers'
    kernels on the compile thread (:meth:`app.live.engine.AnalysisEngine.start`); any thread.
    After :func:`start_window_warm_up` it first waits for the first frame
    (:func:`wait_first_frame`), and with it the analyzers' compile.
    """
    import numpy as np

    wait_first_frame()

    from app.dtc.batch import scan_run

    scan_run(b"\x00" * 16)
    import pyqtgraph as pg

    if pg.getConfigOption("useNumba"):
        from pyqtgraph import functions_numba

        functions_numba.rescale_and_lookup(np.zeros((2, 2), np.float32), 1.0, 0.0, np.zeros(512, np.uint32))


#: Set once the window drew its first frame with market data (:class:`Splash`), the moment the
#: start-up's deferred compiles begin (:func:`start_window_warm_up`).
FIRST_FRAME = threading.Event()
#: Longest wait of a deferred compile for :data:`FIRST_FRAME`, seconds (a source that never
#: delivers data must not keep the analysis off).
FIRST_FRAME_WAIT_S = 20.0
_defer = threading.Event()  # set by start_window_warm_up: compiles wait for the first frame


def wait_first_frame(timeout_s: float | None = None) -> bool:
    """Block until the first frame was drawn, when :func:`start_window_warm_up` asked for it.

    The start-up compiles (the engine's, through :func:`warm_window_kernels`, and the window's
    own) hold the interpreter lock most of the time they run: started at once, they slowed the
    GUI thread's way to the first frame about twofold (measured 15 s with them, cold cache,
    loaded machine). Returns at once when no warm-up was started (tests, headless use).

    Parameters
    ----------
    timeout_s : float, optional
        Longest wait, seconds (default :data:`FIRST_FRAME_WAIT_S`).

    Returns
    -------
    bool
        True when the first frame was drawn (or nothing was deferred), False on time-out.
    """
    if not _defer.is_set():
        return True
    return FIRST_FRAME.wait(FIRST_FRAME_WAIT_S if timeout_s is None else timeout_s)


def _pyqtgraph_rescale_warm_up() -> None:
    import numpy as np
    from pyqtgraph import functions_numba

    # the heatmap's types: float32 rows (C order), a 512-entry uint32 table, float scale/offset
    functions_numba.rescale_and_lookup(np.zeros((2, 2), np.float32), 1.0, 0.0, np.zeros(512, np.uint32))


def start_window_warm_up() -> threading.Event:
    """Let the window reach its first frame without waiting for numba, then compile (or load).

    Call it on the GUI thread before the window is built (``mia-elite gui`` does). From then on:

    * the DTC batch decode's kernels come after the first frame
      (:func:`app.dtc.batch.warm_up_in_background`): the client decodes message by message until
      they are ready (the same events);
    * pyqtgraph's image rescale (``pyqtgraph.functions_numba.rescale_and_lookup``, compiled in
      every process, 2 to 4 s on a loaded machine): when the heatmap turned pyqtgraph's
      ``useNumba`` on (:mod:`app.ui.heatmap` does at import), it is off until a daemon thread has
      compiled that kernel with the heatmap's argument types after the first frame, then on
      again; meanwhile pyqtgraph draws with its NumPy path (the same levels and table);
    * the engine's kernels wait for the first frame too (:func:`warm_window_kernels`, its
      first ``precompile`` step); the book runs on the NumPy twins meanwhile.

    Each wait ends after :data:`FIRST_FRAME_WAIT_S` at the latest. Returns an Event set when
    the pyqtgraph part is done (at once when ``useNumba`` is off), also after a failure
    (logged; ``useNumba`` then stays off).
    """
    from app.dtc.batch import warm_up_in_background

    _defer.set()
    warm_up_in_background(after=wait_first_frame)
    import pyqtgraph as pg

    import app.ui.heatmap  # noqa: F401  (sets the window's pyqtgraph options, useNumba among them)

    done = threading.Event()
    if not pg.getConfigOption("useNumba"):
        done.set()
        return done
    pg.setConfigOptions(useNumba=False)

    def run():
        try:
            wait_first_frame()
            _pyqtgraph_rescale_warm_up()
            pg.setConfigOptions(useNumba=True)
        except Exception:  # noqa: BLE001 - logged; the NumPy path keeps drawing
            log.exception("pyqtgraph numba warm-up failed; the heatmap keeps pyqtgraph's NumPy rescale")
        finally:
            done.set()

    threading.Thread(target=run, name="mia-window-warm-up", daemon=True).start()
    return done


def frame_has_data(frame) -> bool:
    """True when ``frame`` (an :class:`~app.analysis.frame.AnalysisFrame`) holds a book side:
    a best bid or a best ask (ticks >= 0)."""
    return frame is not None and (int(frame.best_bid) >= 0 or int(frame.best_ask) >= 0)


def startup_text(window, warm: bool, waited_s: float) -> tuple[str, str]:
    """What the start-up of ``window`` is doing: ``(mode, text)``.

    ``mode`` is ``"cover"`` (no market data drawn yet), ``"badge"`` (data drawn, the analysis
    not running yet) or ``""`` (nothing to say). Read from plain attributes of the window, its
    pipeline and engine (GUI thread).

    Parameters
    ----------
    window : MainWindow
    warm : bool
        The numba cache held compiled kernels at start-up (the text says "loading" instead of
        "compiling (first run)").
    waited_s : float
        Seconds since the start-up began, shown in the text.
    """
    pl = getattr(window, "pipeline", None)
    eng = getattr(pl, "engine", None) if pl is not None else None
    frame = getattr(window, "last_frame", None)
    compiling = eng is not None and not getattr(eng, "analysis_ready", True) and not getattr(
        eng, "compile_failed", False)
    what = (f"Loading the analyzers... {waited_s:.0f} s" if warm else
            f"Compiling the analyzers (first run only)... {waited_s:.0f} s")
    if not frame_has_data(frame):
        if eng is None:
            text = "Connecting to the data source..."
        else:
            text = "Waiting for market data..."
        if compiling:
            text += "\n" + what
        return "cover", text
    if compiling:
        return "badge", what + "  (the book is live; signals start when ready)"
    if eng is not None and getattr(eng, "compile_failed", False):
        return "badge", "Analysis off: the analyzers did not compile (View > Problems)"
    return "", ""


class StartupOverlay(QtWidgets.QLabel):
    """Start-up text over the main window's heatmap: a cover saying "Waiting for market data..."
    until the first frame with a book (no placeholder axes), then a badge "Compiling the
    analyzers... N s" until the analysis runs, then hidden (:func:`startup_text`).

    Polls the window every :attr:`POLL_MS` ms on the GUI thread (no cross-thread calls).

    Parameters
    ----------
    window : MainWindow
        The window followed (``pipeline``, ``last_frame``).
    parent : QWidget, optional
        The widget covered (default ``window.heatmap``).

    Attributes
    ----------
    mode : str
        ``"cover"``, ``"badge"`` or ``""`` (hidden).
    """

    POLL_MS = 250
    BADGE_H = 30

    def __init__(self, window, parent=None):
        super().__init__(parent if parent is not None else window.heatmap)
        self.window = window
        self.setObjectName("startup_overlay")
        self.setAlignment(QtCore.Qt.AlignCenter)
        self.setWordWrap(True)
        self.setAttribute(QtCore.Qt.WA_TransparentForMouseEvents, True)
        self.warm = numba_cache_is_warm()
        self.started = time.monotonic()
        self.mode = None
        self.parentWidget().installEventFilter(self)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()
        self.poll()

    def eventFilter(self, obj, ev):  # noqa: N802
        if obj is self.parentWidget() and ev.type() == QtCore.QEvent.Resize:
            self._place()
        return False

    def _place(self) -> None:
        r = self.parentWidget().rect()
        if self.mode == "cover":
            self.setGeometry(r)
        elif self.mode == "badge":
            w = min(r.width() - 20, 620)
            self.setGeometry((r.width() - w) // 2, 8, max(w, 100), self.BADGE_H)

    def poll(self) -> None:
        """Update the text and the placement from the window's state."""
        mode, text = startup_text(self.window, self.warm, time.monotonic() - self.started)
        if mode != self.mode:
            self.mode = mode
            if mode == "cover":
                self.setStyleSheet("#startup_overlay{background:#1a1c26;color:#c8ccd8;font-size:16px;}")
            elif mode == "badge":
                self.setStyleSheet("#startup_overlay{background:rgba(40,44,60,220);color:#ffe08a;"
                                   "border:1px solid #6b5a00;border-radius:4px;padding:2px 8px;}")
            self.setVisible(bool(mode))
            self._place()
            if mode:
                self.raise_()
        if text != self.text():
            self.setText(text)
        if not mode and self.window.last_frame is not None and getattr(self.window.last_frame, "analysis_ready", False):
            self._timer.stop()  # the start-up is over (a new pipeline makes a new one)


class Splash(QtWidgets.QSplashScreen):
    """Splash screen that reports the start-up progress and closes at the first drawn frame.

    Parameters
    ----------
    timeout_s : float
        Close anyway after this many seconds (a start-up that never draws must not leave a
        splash on top of everything); the window's own problem list says why.
    start_time : float, optional
        ``time.time()`` origin of the start-up figure (default: the process start).

    Attributes
    ----------
    warm : bool
        The numba cache held compiled kernels when the splash appeared.
    first_frame_s : float or None
        Seconds from ``start_time`` to the first drawn frame (None until then).
    kernels_s : float or None
        The engine's ``compile_seconds`` (kernel compile or cache load), when known.
    message : str
        The progress text shown now.

    Signals
    -------
    sigFirstFrame(float)
        Emitted once with :attr:`first_frame_s`.
    """

    sigFirstFrame = QtCore.Signal(float)

    POLL_MS = 50
    #: s: a window that has drawn frames but no market data for this long closes the splash
    #: (its overlay says "Waiting for market data...")
    NO_DATA_CLOSE_S = 10.0

    def __init__(self, timeout_s: float = 900.0, start_time: float | None = None):
        # on top of every window: without a window manager the main window would cover it
        super().__init__(_pixmap(), QtCore.Qt.WindowStaysOnTopHint)
        self.start_time = process_start_time() if start_time is None else float(start_time)
        self.shown_at = time.time()
        self.timeout_s = float(timeout_s)
        self.warm = numba_cache_is_warm()
        self.first_frame_s: float | None = None
        self.kernels_s: float | None = None
        self.message = ""
        self._window = None
        self._done = False
        self._empty_since: float | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._set("Starting...")

    # ------------------------------------------------------------------ API
    def follow(self, window) -> None:
        """Follow ``window`` (a :class:`~app.ui.main_window.MainWindow`) instead of searching."""
        self._window = window

    def start(self) -> None:
        """Show the splash and start following the start-up."""
        self.show()
        self.raise_()
        QtWidgets.QApplication.processEvents()
        self._timer.start()

    @property
    def done(self) -> bool:
        """True once the splash has closed (first frame, timeout or window closed)."""
        return self._done

    # ------------------------------------------------------------------ polling
    def _find_window(self):
        if self._window is not None:
            return self._window
        for w in QtWidgets.QApplication.topLevelWidgets():
            if w is not self and hasattr(w, "frames_drawn") and hasattr(w, "pipeline"):
                self._window = w
                return w
        return None

    def _set(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.showMessage(text, QtCore.Qt.AlignLeft | QtCore.Qt.AlignBottom, QtGui.QColor(225, 228, 235))

    def poll(self) -> None:
        """Update the message from the window/engine state; close at the first frame."""
        if self._done:
            return
        now = time.time()
        waited = now - self.shown_at
        w = self._find_window()
        if w is not None and int(getattr(w, "frames_drawn", 0) or 0) > 0:
            if frame_has_data(getattr(w, "last_frame", None)):
                self._finish_first_frame(now, w)
                return
            self._empty_since = self._empty_since or now
            if now - self._empty_since > self.NO_DATA_CLOSE_S:
                log.info("start-up splash closed: frames drawn, no market data yet after %.0f s", waited)
                self._close(w)
                return
        if waited > self.timeout_s:
            log.warning("start-up splash closed after %.0f s without a drawn frame", waited)
            self._close()
            return
        if w is not None and getattr(w, "_closed", False):
            self._close()
            return
        pl = getattr(w, "pipeline", None) if w is not None else None
        eng = getattr(pl, "engine", None) if pl is not None else None
        state = getattr(eng, "state", None)
        if w is None:
            text = "Starting..."
        elif eng is None:
            text = "Connecting to the data source..."
        elif state == "compiling":
            what = "loading the analyzers" if self.warm else "compiling the analyzers (first run only)"
            text = f"Waiting for market data; {what}... {waited:.0f} s"
        elif state == "error":
            text = "The analysis engine failed to start; see the window for the reason."
        else:
            text = "Waiting for market data..."
        self._set(text)

    def _finish_first_frame(self, now: float, window) -> None:
        self.first_frame_s = now - self.start_time
        eng = getattr(getattr(window, "pipeline", None), "engine", None)
        ks = getattr(eng, "compile_seconds", None)
        self.kernels_s = float(ks) if ks is not None else None
        kern = f"kernels {self.kernels_s:.2f} s, " if self.kernels_s is not None else ""
        if eng is not None and not getattr(eng, "analysis_ready", True):
            kern = "analyzers still compiling, "
        log.info("%s %.2f s after process start (%snumba cache %s)", FIRST_FRAME_MARK,
                 self.first_frame_s, kern, "warm" if self.warm else "cold")
        FIRST_FRAME.set()
        self.sigFirstFrame.emit(self.first_frame_s)
        self._close(window)

    def _close(self, window=None) -> None:
        self._done = True
        self._timer.stop()
        if window is not None and window.isVisible():
            self.finish(window)
        else:
            self.close()


def show_splash(app, timeout_s: float = 900.0) -> Splash:
    """Show the start-up splash (idempotent: a second call returns the one already shown).

    Call right after the ``QApplication`` exists and before the main window is built (building
    it imports the plotting stack, which takes a moment); the splash then finds the window
    itself. It closes at the first drawn frame, logs the start-up time, and never blocks.

    Parameters
    ----------
    app : QApplication
    timeout_s : float
        Close anyway after this long without a drawn frame.

    Returns
    -------
    Splash
    """
    existing = getattr(app, "_mia_splash", None)
    if existing is not None:
        return existing
    s = Splash(timeout_s=timeout_s)
    app._mia_splash = s
    s.start()
    return s
