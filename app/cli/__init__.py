"""Command-line entry point: ``mia-elite [COMMAND] ...`` and ``python -m app``.

With no command the desktop window starts on its embedded default (the built-in DTC
server replaying the shipped real CME ES sample, the app connected to it in paper mode).

Each sub-command lives in its own module, imported only when that command runs, so the
headless commands never import Qt. A command module provides two functions:

``add_arguments(parser: argparse.ArgumentParser) -> None``
    Declares the command's options.
``run(args: argparse.Namespace) -> int``
    Runs the command and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from app import __version__

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

#: command name -> (module path, one-line help). Order is the order shown by ``--help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "gui": ("app.cli.gui", "open the desktop window (default)"),
    "serve": ("app.cli.serve", "run the built-in DTC server replaying a recording (paper fills)"),
    "probe": ("app.cli.probe", "connect to a DTC server, subscribe, print a live market summary"),
    "analyze": ("app.cli.analyze", "run a recording through the analysis engine headless"),
    "record": ("app.cli.record", "record a live source to a replayable recording file"),
    "convert": ("app.cli.convert", "convert DBN / Binance / LOBSTER / Sierra files to a recording"),
    "bench": ("app.bench", "run the benchmarks and print one JSON line per figure"),
    "export": ("app.cli.export", "export the trading journal to Parquet or CSV"),
    "report": ("app.cli.report", "print the day's trades, P&L and signal outcomes"),
    "evaluate": ("app.cli.evaluate", "measure the profiles' signals over every session against random entries"),
    "learn": ("app.cli.learn", "train the signal-quality model walk-forward on snapshots"),
}


def _load(name: str):
    module_path = COMMANDS[name][0]
    try:
        return importlib.import_module(module_path)
    except ImportError as exc:  # a broken install must say what is missing
        raise SystemExit(f"mia-elite {name}: cannot load {module_path}: {exc}") from exc


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the top-level parser; only the chosen command's module is imported.

    With no command in ``argv`` the top-level parser also takes the window's options (the
    ``gui`` command's, under "window options"), so ``mia-elite --host H --port P --symbol S``
    opens the window, ``mia-elite --help`` lists those options and ``--self-test`` can take
    ``--recording``.
    """
    parser = argparse.ArgumentParser(
        prog="mia-elite",
        description="MIA Elite: DOM heatmap, analyzers and confirm-to-trade for Sierra Chart. "
                    "With no COMMAND the desktop window opens (the window options below apply).",
    )
    parser.add_argument("--version", action="version", version=f"mia-elite {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    parser.add_argument(
        "--self-test",
        type=float,
        nargs="?",
        const=20.0,
        default=None,
        metavar="SECONDS",
        help="start the window and the built-in server, run SECONDS (default 20), check and exit "
             "(with --recording: on that recording)",
    )
    chosen = next((a for a in argv if a in COMMANDS), None)
    if chosen is None:
        window = parser.add_argument_group("window options (no COMMAND: the desktop window; also `gui --help`)")
        _load("gui").add_arguments(window)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        # accepted after the command too (``mia-elite gui --log-level DEBUG``)
        p.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS)
        if name == chosen:
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit code.

    No command (only options, or nothing) opens the window: the ``gui`` command on the
    top-level options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from app.logs import setup_logging

    setup_logging(args.log_level, console=True)
    if args.self_test is not None:
        from app.ui import selftest

        return int(selftest.run(args))
    if args.command is None:
        args.command = "gui"  # no command: the window with the embedded default
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
