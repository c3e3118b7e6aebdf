"""Start-up of the frozen executables (imported first by ``entry_gui.py`` / ``entry_cli.py``).

What it does, in order, before any app module that imports numba:

1. Windowed executable on Windows: ``sys.stdout``/``sys.stderr`` are ``None`` there; they are
   pointed at ``os.devnull`` so ``print`` and the console log handler cannot raise.
2. numba's on-disk cache goes to the user cache folder, one sub-folder per executable
   (``<cache>/numba/gui`` and ``<cache>/numba/cli``). numba stamps a frozen app's cache index
   with the running executable's size and modification time, so two executables sharing one
   folder would invalidate each other's kernels on every alternate start; with one folder each,
   each compiles once (and again only after an update replaces the executable).
   ``NUMBA_CACHE_DIR`` set by the user wins. The folder is handed on in ``NUMBA_CACHE_DIR``,
   which :mod:`app.core.jit` (the app's one numba helper) keeps when a kernel module imports it.
3. The CLI crash hook (:func:`app.ui.crash.install_cli_excepthook`): unhandled exceptions are
   logged with their traceback and the log file is named on stderr.
4. The window's start-up helpers: ``app.ui.main.make_app`` is wrapped so that the crash dialog
   (:func:`app.ui.crash.install_excepthook`) and the splash (:func:`app.ui.splash.show_splash`)
   are installed as soon as the ``QApplication`` exists. Both are idempotent, so this stays
   harmless once ``app/ui/main.py`` calls them itself.
"""

from __future__ import annotations

import os
import sys


def _null_streams() -> None:
    if sys.stdout is None or sys.stderr is None:
        null = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives for the process
        if sys.stdout is None:
            sys.stdout = null
        if sys.stderr is None:
            sys.stderr = null


def _numba_cache(kind: str) -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from app.paths import cache_dir

    d = cache_dir() / "numba" / kind
    d.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(d)


def _wire_window_helpers() -> None:
    import app.ui.main as ui_main

    orig = ui_main.make_app
    if getattr(orig, "_mia_wired", False):
        return

    def make_app():
        qapp = orig()
        from app.ui.crash import install_excepthook
        from app.ui.splash import show_splash

        install_excepthook(qapp)
        show_splash(qapp)
        return qapp

    make_app.__doc__ = orig.__doc__
    make_app._mia_wired = True
    ui_main.make_app = make_app


def setup(kind: str) -> None:
    """Prepare the frozen process; ``kind`` is ``"gui"`` or ``"cli"`` (names the numba cache)."""
    _null_streams()
    _numba_cache(kind)
    from app.ui.crash import install_cli_excepthook

    install_cli_excepthook()
    _wire_window_helpers()
