"""``mia-elite gui`` (the default command): open the desktop window on a qasync loop.

With no options the window starts the built-in DTC server replaying the shipped real CME ES
sample and connects to it in paper mode. ``--host/--port`` connect to an external DTC server
(Sierra Chart, or ``mia-elite serve``) instead. Saved settings (File > Connection) are used
when no option overrides them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from app.dtc.encoding_names import ENCODING_NAMES, encoding_option

log = logging.getLogger(__name__)

PROFILES = ("scalping", "production", "development", "budget")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the ``gui`` command."""
    p.add_argument("--speed", type=float, default=None,
                   help="replay speed of the built-in server (1 = real time; default: saved, else 10)")
    p.add_argument("--host", default=None, help="connect to this external DTC server instead of the built-in one")
    p.add_argument("--port", type=int, default=None, help="port of the external DTC server (with --host: default 11099)")
    p.add_argument("--encoding", choices=ENCODING_NAMES, type=encoding_option, default=None,
                   help="DTC encoding for an external server (default binary; the old spelling compact_json "
                        "is accepted)")
    p.add_argument("--tls", action="store_true", default=None, help="connect to the external server with TLS")
    p.add_argument("--tls-fingerprint", default=None, metavar="SHA256",
                   help="pinned SHA-256 fingerprint of the server's certificate (default: the saved one)")
    p.add_argument("--symbol", action="append", default=None, metavar="SYM[:PROFILE]",
                   help="data-service symbol to show, optionally with its analysis profile (ESZ5:scalping); "
                        "repeat for several instruments (--tick-size/--tick-value are the first one's)")
    p.add_argument("--tick-size", type=float, default=None, help="tick size of --symbol (price units)")
    p.add_argument("--tick-value", type=float, default=None, help="USD per tick per contract of --symbol")
    p.add_argument("--profile", choices=PROFILES, default=None, help="analysis profile (default: saved, else production)")
    p.add_argument("--recording", action="append", default=None,
                   help="a recording for the built-in server (default: the ES sample); repeat to serve several "
                        "at once, each under its own symbol, on one market clock")
    p.add_argument("--display-hz", type=float, default=60.0, help="redraw rate of the window (default 60)")
    p.add_argument("--screenshot", metavar="PATH", default=None, help="save a PNG of the window after --screenshot-after s")
    p.add_argument("--screenshot-after", type=float, default=20.0, metavar="SECONDS")
    p.add_argument("--quit-after", type=float, default=None, metavar="SECONDS", help="close the window after SECONDS")
    # screenshots only: a paper position with a working bracket after SECONDS (MainWindow.schedule_demo_position)
    p.add_argument("--demo-position", type=float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)


def build_config(args: argparse.Namespace, prefs):
    """The :class:`~app.live.pipeline.PipelineConfig` from saved settings overridden by ``args``.

    Instruments: the repeatable ``--symbol SYM[:PROFILE]`` (the first takes ``--tick-size`` /
    ``--tick-value``; every one takes exchange, tick size and value of its ``[[instruments]]``
    entry when the settings list it), else the settings' ``[[instruments]]``, else the one saved
    symbol. ``--recording`` repeated serves every recording through the one embedded server.

    Raises
    ------
    app.live.pipeline.SourceChoiceError
        A bad ``--symbol`` (empty, unknown profile, listed twice) or ``--source`` choice.
    """
    from app.ui.connection_dialog import config_from_prefs, symbols_from_prefs
    from app.live.pipeline import (PipelineConfig, SourceChoiceError, apply_source_choice,
                                   instruments_from_settings, parse_symbol_arg)

    cfg = config_from_prefs(prefs, PipelineConfig())
    saved = instruments_from_settings(getattr(getattr(prefs, "settings", None), "instruments", None) or [])
    if saved:
        cfg.set_instruments(saved)
    if getattr(args, "host", None) or getattr(args, "port", None):
        cfg.embedded = False
        cfg.host = args.host or "127.0.0.1"
        cfg.port = int(args.port or 11099)
    recs = getattr(args, "recording", None)
    if recs:
        cfg.embedded = True
        cfg.recording = recs[0] if len(recs) == 1 else list(recs)
    syms = getattr(args, "symbol", None)
    if syms:
        known = {i.symbol: i for i in saved}
        chosen = []
        for text in syms:
            inst = parse_symbol_arg(text)
            base = known.get(inst.symbol)
            if base is not None:
                inst = type(inst)(**{**vars(base), "profile": inst.profile or base.profile})
            chosen.append(inst)
        try:
            cfg.set_instruments(chosen)
        except ValueError as exc:
            raise SourceChoiceError(f"--symbol: {exc}") from None
    for name in ("speed", "encoding", "tick_size", "tick_value", "profile", "tls", "tls_fingerprint"):
        v = getattr(args, name, None)
        if v is not None:
            setattr(cfg, name, v)
    # --source / --data-dir (declared by app.cli.gui): raises SourceChoiceError naming the problem
    apply_source_choice(cfg, getattr(args, "source", None), getattr(args, "data_dir", None), symbols_from_prefs(prefs))
    return cfg


#: Debian/Ubuntu packages the Qt "xcb" platform plugin needs (``ldd`` on PySide6's
#: ``plugins/platforms/libqxcb.so`` and ``lib/libQt6XcbQpa.so.6``; README lists the same).
XCB_PACKAGES = (
    "libegl1 libgl1 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 "
    "libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 "
    "libfreetype6 libdbus-1-3 libglib2.0-0"
)

_qt_log = logging.getLogger("qt")


def _qt_message(mode, context, message) -> None:
    """Qt's own messages into the app's log. A fatal one (Qt aborts the process right after,
    e.g. a platform plugin that cannot load) gets a readable line with the fix, and the log is
    flushed first, so the log file says why the window never came up."""
    from PySide6 import QtCore

    if mode == QtCore.QtMsgType.QtFatalMsg:
        _qt_log.critical("Qt stopped the program: %s", message)
        if "platform plugin" in message:
            _qt_log.critical("The window cannot start its display platform (QT_QPA_PLATFORM=%s). On "
                             "Debian/Ubuntu install: apt install %s; or run headless with "
                             "QT_QPA_PLATFORM=offscreen.", os.environ.get("QT_QPA_PLATFORM", "default"),
                             XCB_PACKAGES)
        for h in logging.getLogger().handlers:
            try:
                h.flush()
            except Exception:  # a broken handler must not hide the message from the others
                pass
    elif mode == QtCore.QtMsgType.QtCriticalMsg:
        _qt_log.error("%s", message)
    elif mode == QtCore.QtMsgType.QtWarningMsg:
        _qt_log.warning("%s", message)
    else:
        _qt_log.debug("%s", message)


def make_app():
    """The QApplication (created once) with the app's name and style.

    Qt's messages go to the app's log (``qt`` logger) from before the QApplication exists, so
    a platform plugin that fails to load leaves a readable line there (see :data:`XCB_PACKAGES`).
    """
    os.environ.setdefault("QT_API", "pyside6")
    from PySide6 import QtCore, QtGui, QtWidgets

    QtCore.qInstallMessageHandler(_qt_message)

    # The analysis worker runs Python between its nogil kernels; a 1 ms GIL switch interval
    # (default 5 ms) lets the GUI thread take the GIL back quickly, so drawing and socket reads
    # are not delayed behind it (measured by ``mia-elite bench gui``).
    sys.setswitchinterval(0.001)
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
    # the asyncio loop ends the program once the window has stopped everything (not Qt on close)
    app.setQuitOnLastWindowClosed(False)
    app.setApplicationName("MIA Elite")
    app.setOrganizationName("MIA")
    try:
        from app.paths import resource_path

        app.setWindowIcon(QtGui.QIcon(str(resource_path("icons", "mia-elite.png"))))
    except FileNotFoundError:
        pass
    app.setStyle("Fusion")
    pal = QtGui.QPalette()
    C = QtGui.QColor
    pal.setColor(QtGui.QPalette.Window, C(26, 28, 38))
    pal.setColor(QtGui.QPalette.WindowText, C(225, 228, 235))
    pal.setColor(QtGui.QPalette.Base, C(18, 20, 30))
    pal.setColor(QtGui.QPalette.AlternateBase, C(28, 31, 44))
    pal.setColor(QtGui.QPalette.Text, C(225, 228, 235))
    pal.setColor(QtGui.QPalette.Button, C(38, 41, 56))
    pal.setColor(QtGui.QPalette.ButtonText, C(225, 228, 235))
    pal.setColor(QtGui.QPalette.Highlight, C(60, 110, 200))
    pal.setColor(QtGui.QPalette.HighlightedText, C(255, 255, 255))
    pal.setColor(QtGui.QPalette.ToolTipBase, C(40, 44, 60))
    pal.setColor(QtGui.QPalette.ToolTipText, C(235, 235, 240))
    app.setPalette(pal)
    install_gui_thread_gc(app)
    return app


def install_gui_thread_gc(app, interval_s: float = 1.0):
    """Collect reference cycles on the GUI thread only, from a Qt timer every ``interval_s`` s.

    Python's cyclic garbage collector runs on whichever thread happens to allocate when a
    generation's threshold is passed: in the window that is often the analysis engine, the
    replay server or a kernel-compile thread. A Qt object (a widget, a painter, a pyqtgraph item)
    that ends in a reference cycle is then destroyed on that thread, which Qt does not allow; it
    corrupts memory and the process dies later with a segmentation fault and no Python traceback.
    So automatic collection is switched off and pyqtgraph's
    :class:`pyqtgraph.util.garbage_collector.GarbageCollector` collects on the GUI thread
    instead (the pattern pyqtgraph documents for threaded Qt programs). Idempotent: the one
    collector is kept on ``app`` (``app.gui_thread_gc``) and returned.
    """
    import gc

    gc.disable()  # also when the collector exists already (something switched collection back on)
    gcol = getattr(app, "gui_thread_gc", None)
    if gcol is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        gcol = GarbageCollector(interval=float(interval_s))
        app.gui_thread_gc = gcol
    return gcol


async def run_window(window, *, screenshot=None, screenshot_after=20.0, quit_after=None, on_started=None) -> None:
    """Show ``window``, start its pipeline and wait until it is closed (and fully stopped)."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    window.sigClosed.connect(lambda: closed.done() or closed.set_result(True))
    window.show()
    await window.start()
    if on_started is not None:
        on_started(window)
    if screenshot:
        def grab():
            ok = window.grab().save(str(screenshot))
            log.info("screenshot %s: %s", screenshot, "saved" if ok else "FAILED")
        loop.call_later(float(screenshot_after), grab)
    if quit_after is not None:
        loop.call_later(float(quit_after), window.close)
    await closed


def run(args: argparse.Namespace) -> int:
    """Open the window; returns 0 when it was closed normally."""
    import qasync

    from app.ui.main_window import MainWindow
    from app.config.prefs import Prefs

    from app.ui.crash import install_excepthook
    from app.ui.splash import show_splash

    app = make_app()
    install_excepthook(app)  # unhandled errors: logged, and a dialog that points at the log
    splash = show_splash(app)  # progress while the analyzers compile on a first run
    prefs = Prefs()
    cfg = build_config(args, prefs)
    window = MainWindow(cfg, prefs, display_hz=getattr(args, "display_hz", 60.0))
    splash.follow(window)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            loop.run_until_complete(
                run_window(
                    window,
                    screenshot=getattr(args, "screenshot", None),
                    screenshot_after=getattr(args, "screenshot_after", 20.0),
                    quit_after=getattr(args, "quit_after", None),
                    on_started=(None if getattr(args, "demo_position", None) is None
                                else lambda w: w.schedule_demo_position(args.demo_position)),
                )
            )
    finally:
        asyncio.set_event_loop(None)
    return 0
