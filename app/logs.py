"""Logging set-up: a rotating file in the user log folder, and the console for the CLI.

Secrets (passwords) are never passed to a logger; :class:`RedactFilter` is a second line of
defence that masks the whole value of a ``Password`` (or similar) field that reaches a record
anyway, quoted or not (:func:`redact`).

A native crash (a segfault in Qt, numba or a driver) kills the process without a Python
traceback; :func:`setup_logging` therefore also enables :mod:`faulthandler` on the log file, so
such a crash leaves "Fatal Python error" and every thread's stack in ``mia-elite.log``.

The log names accounts, symbols and orders, so on POSIX ``mia-elite.log`` and its backups are
created ``0600`` in a ``0700`` folder (:func:`app.paths.private_file`), whatever the umask; on
Windows the per-user profile folder the log lives in already restricts access to the user.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import re
import sys

from app import paths

_FMT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: a secret's key (``Password``, ``"password"``, ``'passwd'``, ``api_key``...), then ``=`` or ``:``
_KEY = r"""(?P<key>(?<![A-Za-z0-9_])["']?(?:[A-Za-z_]*pass(?:word|wd|phrase)|secret|api[_-]?key)["']?\s*[:=]\s*)"""
#: its value: a quoted string (either quote, backslash escapes, optional b/r/u prefix; an unclosed
#: quote runs to the end of the line) or, unquoted, the rest of the line (a secret may hold spaces,
#: commas and quotes, so no shorter end is safe)
_VALUE = r"""(?P<value>[bBrRuU]?(?:"(?:\\.|[^"\\\n])*(?:"|$)|'(?:\\.|[^'\\\n])*(?:'|$))|[^\r\n]+)"""
_PW = re.compile(_KEY + _VALUE, re.IGNORECASE | re.MULTILINE)


def redact(text: str) -> str:
    """``text`` with the whole value of every password-like field replaced by ``***``.

    A field is a key such as ``Password``, ``"password"``, ``'passwd'``, ``passphrase``,
    ``secret`` or ``api_key`` (any case), then ``=`` or ``:``; its value is a quoted string
    (single or double quotes, with backslash escapes, as ``repr`` and JSON write them) or, when
    unquoted, everything to the end of the line. ``Password='Pa ss"w:rd=S3cr3t!'`` becomes
    ``Password=***``.
    """
    return _PW.sub(r"\g<key>***", text)


class RedactFilter(logging.Filter):
    """Masks the values of password-like fields (see :func:`redact`) in a record's message and
    in the text of its exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg = clean
            record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_configured = False


class _StderrHandler(logging.StreamHandler):
    """Console handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler()`` keeps the stream it was created with; when that stream is later
    replaced and closed (a test runner's capture, a GUI that redirects stderr), every record then
    fails with "I/O operation on closed file".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 (logging's attribute)
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _FaultLoggingFileHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file, with :mod:`faulthandler` pointed at its current stream.

    On rollover the stream changes, so faulthandler is re-enabled on the new file (it writes to a
    file descriptor, and the old one would point at the renamed backup).
    """

    def _open(self):
        paths.private_file(self.baseFilename)  # also after each rollover: the new file is 0600
        return super()._open()

    def _enable_faults(self) -> None:
        if self.stream is not None:
            faulthandler.enable(file=self.stream, all_threads=True)

    def doRollover(self) -> None:  # noqa: N802 (logging's name)
        super().doRollover()
        self._enable_faults()


def log_file():
    """Path of the app's log file, created empty ``0600`` when missing (POSIX), in its ``0700`` folder.

    Whoever then opens it for appending (the rotating handler, the crash reporter's fallback
    handler) keeps that mode.

    Raises
    ------
    OSError
        The folder or the file cannot be created (read-only home).
    """
    p = paths.log_dir() / "mia-elite.log"
    paths.private_file(p)
    return p


def setup_logging(level: str = "INFO", console: bool = True) -> None:
    """Configure the root logger once: rotating file (5 x 2 MB) plus optional console.

    Also enables :mod:`faulthandler` on the log file (all threads), so a native crash leaves a
    trace there; when the file cannot be opened, faulthandler writes to stderr instead.
    """
    global _configured
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if _configured:
        return
    _configured = True
    redact = RedactFilter()
    try:
        path = log_file()
        for old in path.parent.glob(path.name + ".*"):  # backups of earlier versions were 0644
            paths.private_file(old)
        fh = _FaultLoggingFileHandler(path, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FMT))
        fh.addFilter(redact)
        root.addHandler(fh)
        fh._enable_faults()  # a native crash leaves its stacks in this file
    except OSError as exc:  # read-only home: keep going with the console
        logging.getLogger(__name__).warning("cannot open log file: %s", exc)
        if not faulthandler.is_enabled():
            faulthandler.enable(all_threads=True)
    if console:
        ch = _StderrHandler()
        ch.setFormatter(logging.Formatter(_FMT))
        ch.addFilter(redact)
        root.addHandler(ch)
