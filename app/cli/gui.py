"""``mia-elite`` / ``mia-elite gui``: the desktop window (the only command that needs Qt).

The window itself lives in :mod:`app.ui.main`; it is imported only when this command runs, so
the other commands never load Qt.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the ``gui`` command (declared by :func:`app.ui.main.add_arguments`)."""
    from app.ui.main import add_arguments as ui_add_arguments

    ui_add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Open the window; returns the process exit code."""
    from app.ui.main import run as ui_run

    return int(ui_run(args) or 0)
