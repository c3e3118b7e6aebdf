"""Crash reporting: an unhandled exception is logged with its traceback and the user is told.

Two hooks, both idempotent:

:func:`install_cli_excepthook`
    No Qt. An unhandled exception (main thread or any ``threading.Thread``) is logged at
    CRITICAL with its traceback to the app's log file (:func:`app.logs.log_file`) and one line
    on stderr names the error and the log file. The console executable installs it first thing.
:func:`install_excepthook`
    The same logging, plus a dialog (:class:`CrashDialog`) that says what happened, points at
    the log file and offers "Copy to clipboard" (the full report: version, platform,
    traceback). Exceptions raised in other threads are handed to the GUI thread through a
    queued signal. One dialog at a time: errors that arrive while it is open are counted in it.
    With no screen (``QT_QPA_PLATFORM`` offscreen/minimal, as in ``--self-test`` and CI) or
    with ``MIA_ELITE_NO_CRASH_DIALOG=1`` the dialog is not shown (it would wait for a click
    nobody can give); the error is logged and printed as with the CLI hook.

Qt itself reports an exception raised in a slot or a virtual method through ``sys.excepthook``
(``PyErr_Print``), so those reach the dialog too. Exceptions inside asyncio tasks are not
"unhandled" in this sense: the window's ``spawn`` shows them in its problem list.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
import traceback

log = logging.getLogger("app.crash")

#: Environment variable that turns the crash dialog off (log + stderr only).
NO_DIALOG_ENV = "MIA_ELITE_NO_CRASH_DIALOG"

_state = {"cli": False, "handler": None, "orig_hook": None, "orig_thread_hook": None}


def _log_path() -> str:
    try:
        from app.logs import log_file

        return str(log_file())
    except Exception as exc:  # no log folder (read-only home): still report the crash
        return f"(log file unavailable: {exc})"


_crash_file_handlers: dict = {}


def _ensure_file_logging() -> None:
    """Make sure the crash record reaches the log file the user is pointed at.

    Normally :func:`app.logs.setup_logging` has put a handler on that file already; when no
    root handler writes to it (logging not set up yet, or the user folder changed), a file
    handler for it is added to the ``app.crash`` logger (once per path).
    """
    try:
        from app.logs import log_file

        path = os.path.abspath(str(log_file()))
    except Exception:  # no log folder: stderr is all there is
        return
    for h in logging.getLogger().handlers:
        if os.path.abspath(str(getattr(h, "baseFilename", ""))) == path:
            return
    if path in _crash_file_handlers:
        return
    try:
        fh = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    log.addHandler(fh)
    _crash_file_handlers[path] = fh


def report_text(exc_type, exc, tb, thread_name: str | None = None) -> str:
    """The full crash report (what the clipboard button copies).

    Parameters
    ----------
    exc_type, exc, tb
        As given to ``sys.excepthook``.
    thread_name : str, optional
        Name of the thread the exception was raised in (None = main thread).

    Returns
    -------
    str
        App version, Python version, platform, frozen or not, thread, log file path and the
        formatted traceback.
    """
    try:
        from app import __version__
    except Exception:  # pragma: no cover
        __version__ = "?"
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "source"
    lines = [
        f"MIA Elite {__version__} ({frozen}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"thread: {thread_name or 'main'}",
        f"log file: {_log_path()}",
        "",
        "".join(traceback.format_exception(exc_type, exc, tb)).rstrip(),
    ]
    return "\n".join(lines)


def summary_text(exc_type, exc) -> str:
    """One or two sentences for the dialog: what happened and where the details are."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{exc_type.__name__}: {msg}" if msg else exc_type.__name__
    return (
        "MIA Elite hit an unexpected error and may not work correctly from here on.\n\n"
        f"{what}\n\n"
        "The full report (with the traceback) was written to the log file:\n"
        f"{_log_path()}\n\n"
        "If the window misbehaves, use the kill switch or Sierra Chart to check your positions, "
        "then restart MIA Elite. Please send the log file with a note of what you were doing."
    )


def _log_exception(exc_type, exc, tb, thread_name: str | None) -> None:
    _ensure_file_logging()
    where = f" in thread {thread_name}" if thread_name else ""
    log.critical("unhandled exception%s", where, exc_info=(exc_type, exc, tb))
    for h in [*logging.getLogger().handlers, *log.handlers]:
        try:
            h.flush()
        except Exception:  # pragma: no cover
            pass


def _print_stderr(exc_type, exc) -> None:
    err = sys.stderr
    if err is None:  # windowed executable on Windows: no console
        return
    try:
        err.write(f"mia-elite: unexpected error: {exc_type.__name__}: {exc}\n"
                  f"mia-elite: the traceback is in the log file {_log_path()}\n")
        err.flush()
    except Exception:  # pragma: no cover
        pass


def _is_exit(exc_type) -> bool:
    return exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit))


def install_cli_excepthook() -> None:
    """Log unhandled exceptions (main thread and threads) to the log file and name it on stderr.

    Idempotent. ``KeyboardInterrupt`` keeps Python's default behaviour. No Qt is imported.
    """
    if _state["cli"]:
        return
    _state["cli"] = True
    _state["orig_hook"] = sys.excepthook
    _state["orig_thread_hook"] = threading.excepthook

    def hook(exc_type, exc, tb):
        if _is_exit(exc_type):
            return sys.__excepthook__(exc_type, exc, tb)
        _log_exception(exc_type, exc, tb, None)
        _print_stderr(exc_type, exc)

    def thread_hook(args):
        if _is_exit(args.exc_type):
            return
        name = args.thread.name if args.thread is not None else "?"
        _log_exception(args.exc_type, args.exc_value, args.exc_traceback, name)
        _print_stderr(args.exc_type, args.exc_value)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def _dialog_allowed() -> bool:
    if os.environ.get(NO_DIALOG_ENV, "").strip() not in ("", "0"):
        return False
    try:
        from PySide6 import QtGui

        name = QtGui.QGuiApplication.platformName().lower()
    except Exception:
        name = os.environ.get("QT_QPA_PLATFORM", "").lower()
    return name not in ("offscreen", "minimal")


# ------------------------------------------------------------------------------------- Qt part
# Built on first use, so the console commands that only need the CLI hook never import Qt.
_qt_cache: dict = {}


def _qt() -> dict:
    """Define the Qt classes once (first GUI use) and return them by name."""
    if _qt_cache:
        return _qt_cache
    from PySide6 import QtCore, QtGui, QtWidgets

    class CrashDialog(QtWidgets.QDialog):
        """Says what happened, where the log is, and copies the full report to the clipboard.

        Parameters
        ----------
        summary : str
            Text from :func:`summary_text`.
        report : str
            Text from :func:`report_text` (shown under "Details" and copied by the button).
        parent : QWidget, optional
        """

        def __init__(self, summary: str, report: str, parent=None):
            super().__init__(parent)
            self.setWindowTitle("MIA Elite - unexpected error")
            self.setAttribute(QtCore.Qt.WA_DeleteOnClose, True)
            self.report = report
            self.more = 0
            v = QtWidgets.QVBoxLayout(self)
            self.label = QtWidgets.QLabel(summary)
            self.label.setWordWrap(True)
            self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            v.addWidget(self.label)
            self.more_label = QtWidgets.QLabel("")
            self.more_label.hide()
            v.addWidget(self.more_label)
            self.details = QtWidgets.QPlainTextEdit(report)
            self.details.setReadOnly(True)
            self.details.setLineWrapMode(QtWidgets.QPlainTextEdit.NoWrap)
            self.details.setMinimumHeight(180)
            v.addWidget(self.details)
            row = QtWidgets.QHBoxLayout()
            self.copy_button = QtWidgets.QPushButton("Copy to clipboard")
            self.copy_button.clicked.connect(self.copy_report)
            self.folder_button = QtWidgets.QPushButton("Open log folder")
            self.folder_button.clicked.connect(self.open_log_folder)
            close = QtWidgets.QPushButton("Close")
            close.setDefault(True)
            close.clicked.connect(self.accept)
            row.addWidget(self.copy_button)
            row.addWidget(self.folder_button)
            row.addStretch(1)
            row.addWidget(close)
            v.addLayout(row)
            self.resize(720, 460)

        def copy_report(self) -> None:
            """Put the full report on the clipboard."""
            QtGui.QGuiApplication.clipboard().setText(self.report)
            self.copy_button.setText("Copied")

        def open_log_folder(self) -> None:
            """Open the log folder in the file manager."""
            try:
                from app.paths import log_dir

                QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(log_dir())))
            except Exception as exc:
                log.warning("cannot open the log folder: %s", exc)

        def add_more(self) -> None:
            """Count one more error that arrived while the dialog was open."""
            self.more += 1
            self.more_label.setText(f"{self.more} more unexpected error(s) since; all are in the log file.")
            self.more_label.show()


    class CrashHandler(QtCore.QObject):
        """Receives unhandled exceptions from any thread and shows them on the GUI thread.

        Attributes
        ----------
        dialog : CrashDialog or None
            The dialog on screen, if any.
        count : int
            Unhandled exceptions seen since installation.
        last_summary, last_report : str
            Texts of the newest one (also when no dialog could be shown).

        Signals
        -------
        sigCrash(str, str)
            (summary, report); emitted from the thread that raised, delivered on the GUI thread.
        """

        sigCrash = QtCore.Signal(str, str)

        def __init__(self, qapp):
            super().__init__()
            self.moveToThread(qapp.thread())
            self.dialog: CrashDialog | None = None
            self.count = 0
            self.last_summary = ""
            self.last_report = ""
            self.sigCrash.connect(self._show, QtCore.Qt.QueuedConnection)

        def handle(self, exc_type, exc, tb, thread_name: str | None = None) -> None:
            """Log the exception and queue the dialog (safe from any thread; never raises)."""
            try:
                _log_exception(exc_type, exc, tb, thread_name)
                self.count += 1
                self.last_summary = summary_text(exc_type, exc)
                self.last_report = report_text(exc_type, exc, tb, thread_name)
                if _dialog_allowed():
                    self.sigCrash.emit(self.last_summary, self.last_report)
                else:
                    _print_stderr(exc_type, exc)
            except Exception:  # the crash handler itself must never crash the app
                try:
                    sys.__excepthook__(exc_type, exc, tb)
                except Exception:  # pragma: no cover
                    pass

        def _show(self, summary: str, report: str) -> None:
            if self.dialog is not None:
                self.dialog.add_more()
                return
            parent = QtWidgets.QApplication.activeWindow()
            dlg = CrashDialog(summary, report, parent)
            dlg.finished.connect(self._closed)
            self.dialog = dlg
            dlg.show()  # not exec(): no nested event loop under the asyncio (qasync) loop
            dlg.raise_()

        def _closed(self, _result=None) -> None:
            self.dialog = None

    _qt_cache.update(CrashDialog=CrashDialog, CrashHandler=CrashHandler)
    return _qt_cache


def __getattr__(name):  # ``crash.CrashDialog`` / ``crash.CrashHandler`` (PEP 562)
    if name in ("CrashDialog", "CrashHandler"):
        return _qt()[name]
    raise AttributeError(name)


def install_excepthook(qapp):
    """Route unhandled exceptions (every thread) to the log file and a crash dialog.

    Call once, right after the ``QApplication`` exists. Idempotent: a second call returns the
    handler already installed.

    Parameters
    ----------
    qapp : QApplication

    Returns
    -------
    CrashHandler
    """
    h = _state["handler"]
    if h is not None:
        return h
    install_cli_excepthook()  # keeps the originals; the GUI hook replaces them below
    h = _qt()["CrashHandler"](qapp)
    _state["handler"] = h

    def hook(exc_type, exc, tb):
        if _is_exit(exc_type):
            return sys.__excepthook__(exc_type, exc, tb)
        h.handle(exc_type, exc, tb, None)

    def thread_hook(args):
        if _is_exit(args.exc_type):
            return
        h.handle(args.exc_type, args.exc_value, args.exc_traceback,
                 args.thread.name if args.thread is not None else "?")

    sys.excepthook = hook
    threading.excepthook = thread_hook
    return h


def uninstall() -> None:
    """Restore the hooks that were there before (tests)."""
    if _state["orig_hook"] is not None:
        sys.excepthook = _state["orig_hook"]
        threading.excepthook = _state["orig_thread_hook"]
    h = _state["handler"]
    if h is not None and h.dialog is not None:
        h.dialog.close()
    _state.update(cli=False, handler=None, orig_hook=None, orig_thread_hook=None)
