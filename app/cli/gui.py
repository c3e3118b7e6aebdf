"""``mia-elite`` / ``mia-elite gui``: the desktop window (the only command that needs Qt).

The window itself lives in :mod:`app.ui.main`; it is imported only when this command runs, so
the other commands never load Qt.

Where the market data comes from (``--source``):

``builtin`` (default with no settings)
    the built-in DTC server replaying a recording (``--recording``, default the shipped ES hour
    alone); ``--recording A --recording B`` serves several, each under its own symbol, on one
    market clock.

Instruments: ``--symbol SYM[:PROFILE]``, repeatable (``--symbol BTCUSDT --symbol
ETHUSDT:scalping``); without it the settings' ``[[instruments]]`` (or the one saved symbol).
``dtc``
    an external DTC server (``--host``, ``--port``, ``--symbol``): Sierra Chart's own, or
    ``mia-elite serve``. Sierra Chart's DTC server refuses CME market data, so for ES use:
``sierra-files``
    Sierra Chart's data files: ``mia-elite --source sierra-files --data-dir C:\\SierraChart\\Data
    --symbol ESZ25_FUT_CME --tick-size 0.25 --tick-value 12.5`` (the tick size and value may
    come from the saved symbol map instead). The folder must hold ``<symbol>.scid``; depth comes
    from ``MarketDepthData/<symbol>.<date>.depth`` once "Record Market Depth Data" is on.
"""

from __future__ import annotations

import argparse
import sys

from app.live.pipeline import SOURCE_CHOICES, SourceChoiceError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the ``gui`` command: the window's (:func:`app.ui.main.add_arguments`) and the
    market data source (``--source``, ``--data-dir``)."""
    from app.ui.main import add_arguments as ui_add_arguments

    ui_add_arguments(p)
    p.add_argument("--source", choices=SOURCE_CHOICES, default=None,
                   help="market data: builtin (the replay server), dtc (--host/--port), or sierra-files "
                        "(Sierra Chart's Data folder: the route for CME symbols such as ES; default: saved)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="Sierra Chart's Data folder for --source sierra-files (default: saved, else "
                        r"C:\SierraChart\Data and the usual places); implies --source sierra-files")


def check_source(args: argparse.Namespace, prefs=None) -> str:
    """The problem with the chosen ``--source`` or ``--symbol`` ("" when it can start); ``prefs``
    default: the saved settings (:class:`app.config.prefs.Prefs`)."""
    if getattr(args, "source", None) is None and not getattr(args, "data_dir", None) \
            and not getattr(args, "symbol", None):
        return ""
    from app.config.prefs import Prefs
    from app.ui.main import build_config

    try:
        build_config(args, prefs if prefs is not None else Prefs())
    except SourceChoiceError as exc:
        return str(exc)
    return ""


def load_recordings(specs):
    """``--recording`` values for the built-in server: one stays a path (read by the server's
    source, as before); several are each loaded as ``mia-elite analyze`` loads a file (DBN,
    Binance capture, ``.mrec``: :func:`app.cli.analyze.load_any`), to be served together.

    Parameters
    ----------
    specs : list of str or None

    Returns
    -------
    list or None
        ``specs`` itself when it has at most one entry, else a list of
        :class:`~app.feeds.recording.Recording`.

    Raises
    ------
    OSError, ValueError
        A file that cannot be read (the loader's message names it).
    """
    if not specs or len(specs) < 2:
        return specs
    from app.cli.analyze import load_any

    return [s if not isinstance(s, str) else load_any(s) for s in specs]


def run(args: argparse.Namespace) -> int:
    """Open the window; returns the process exit code (2 when ``--source`` cannot work)."""
    problem = check_source(args)
    if problem:
        print(f"mia-elite: {problem}", file=sys.stderr)
        return 2
    try:
        args.recording = load_recordings(getattr(args, "recording", None))
    except (OSError, ValueError) as exc:
        print(f"mia-elite: --recording: {exc}", file=sys.stderr)
        return 2
    # the window's own kernels (DTC batch decode, pyqtgraph's image rescale) compile or load on
    # threads of their own; the GUI thread draws with the per-message / NumPy paths meanwhile
    from app.ui.splash import start_window_warm_up

    start_window_warm_up()
    from app.ui.main import run as ui_run

    return int(ui_run(args) or 0)
