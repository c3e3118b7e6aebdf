"""Logging set-up: a rotating file in the user log folder, and the console for the CLI.

Secrets (passwords) are never passed to a logger; :class:`RedactFilter` is a second line of
defence that masks ``Password`` values that reach a record anyway.
"""

from __future__ import annotations

import logging
import logging.handlers
import re

from app import paths

_FMT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_PW = re.compile(r'("?[Pp]assword"?\s*[:=]\s*)("[^"]*"|\S+)')


class RedactFilter(logging.Filter):
    """Masks ``Password`` fields in log messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "assword" in msg:
            record.msg = _PW.sub(r"\1***", msg)
            record.args = ()
        return True


_configured = False


def log_file():
    """Path of the app's log file."""
    return paths.log_dir() / "mia-elite.log"


def setup_logging(level: str = "INFO", console: bool = True) -> None:
    """Configure the root logger once: rotating file (5 x 2 MB) plus optional console."""
    global _configured
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if _configured:
        return
    _configured = True
    redact = RedactFilter()
    try:
        fh = logging.handlers.RotatingFileHandler(log_file(), maxBytes=2_000_000, backupCount=5, encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FMT))
        fh.addFilter(redact)
        root.addHandler(fh)
    except OSError as exc:  # read-only home: keep going with the console
        logging.getLogger(__name__).warning("cannot open log file: %s", exc)
    if console:
        ch = logging.StreamHandler()
        ch.setFormatter(logging.Formatter(_FMT))
        ch.addFilter(redact)
        root.addHandler(ch)
