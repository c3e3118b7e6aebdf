"""Settings files on disk: reading TOML (a UTF-8 BOM accepted), one atomic writer, bad-file copies.

* :func:`read_toml` reads a file as UTF-8 with or without a byte-order mark (Windows Notepad
  writes one); a syntax error or an unreadable file raises :class:`~app.config.schema.ConfigError`
  naming the file.
* :func:`atomic_write` is the only way the app writes a settings file: a temporary file in the
  same folder, flushed and ``fsync``-ed, then renamed over the target with ``os.replace``. On any
  failure the temporary file is removed and the old file stays as it was.
* :func:`keep_bad_copy` keeps a file that failed to load as ``<name>.bad-<UTC timestamp>``
  (a copy: the original stays byte for byte).
* :func:`load_with_result` is the loader the window uses: it never raises for a bad file,
  it returns a :class:`LoadResult` that carries the problem and where the copy went.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from app.config.schema import ConfigError
from app.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["LoadResult", "atomic_write", "keep_bad_copy", "load_with_result", "read_toml"]


def read_toml(path: str | os.PathLike, where: str | None = None) -> dict:
    """Parse a TOML file; a leading UTF-8 byte-order mark is accepted.

    Parameters
    ----------
    path : path
        The file.
    where : str, optional
        How errors name the file (default: its path).

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    ConfigError
        ``kind="file"``: the file cannot be read, is not UTF-8 or is not valid TOML (the
        message names the file and the position).
    """
    p = Path(path)
    where = str(p) if where is None else where
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError("", f"cannot be read ({exc})", kind="file", where=where) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"is not UTF-8 text ({exc})", kind="file", where=where) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML ({exc})", kind="file", where=where) from exc


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    Parameters
    ----------
    path : path
        Target file; its folder is created when missing.
    data : str or bytes
        The content (``str`` is written as UTF-8, without a byte-order mark).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OSError
        The write, the fsync or the rename failed; the temporary file is removed and the target
        is unchanged.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}-", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def keep_bad_copy(path: str | os.PathLike, clock: Clock = SYSTEM_CLOCK) -> Path | None:
    """Copy a file that failed to load to ``<name>.bad-<UTC timestamp>`` beside it.

    The original is not touched. When a copy with the same bytes already exists (the app was
    started again on the same bad file) that copy is returned instead of making another one.

    Parameters
    ----------
    path : path
        The bad file.
    clock : Clock
        Source of the wall-clock time (ns since the epoch, UTC) in the copy's name.

    Returns
    -------
    Path or None
        The copy, or ``None`` when the file does not exist or cannot be copied (logged).
    """
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError:
        return None
    for old in sorted(p.parent.glob(p.name + ".bad-*")):
        try:
            if old.read_bytes() == content:
                return old
        except OSError:
            continue
    stamp = _dt.datetime.fromtimestamp(clock.time_ns() / 1e9, tz=_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = p.with_name(f"{p.name}.bad-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = p.with_name(f"{p.name}.bad-{stamp}-{n}")
    try:
        shutil.copy2(p, dest)
    except OSError as exc:
        log.warning("could not keep a copy of the bad file %s: %s", p, exc)
        return None
    return dest


@dataclass
class LoadResult(Generic[T]):
    """What loading a settings file gave: the value and, when it failed, the problem.

    Attributes
    ----------
    path : Path
        The file.
    value : T
        The loaded settings, or the defaults when the load failed.
    raw : dict
        The file's parsed document (``{}`` when missing or not parseable); savers merge the
        user's changes into it, so keys they do not change are written back as they were.
    exists : bool
        The file was there.
    error : ConfigError or None
        Why the load failed (names the key and what is allowed); ``None`` when it did not.
    kept_copy : Path or None
        Where the bad file was copied (``settings.toml.bad-<UTC timestamp>``).
    """

    path: Path
    value: Any
    raw: dict
    exists: bool
    error: ConfigError | None = None
    kept_copy: Path | None = None

    @property
    def ok(self) -> bool:
        """True when the file was missing (defaults) or loaded without a problem."""
        return self.error is None

    def problem_text(self) -> str:
        """One line for the window's problem strip ("" when all is well).

        Names the file, the key and what is allowed, says that the defaults are used for this
        session, that the file will not be overwritten, and where its copy is.
        """
        if self.error is None:
            return ""
        copy = f" (a copy is kept as {self.kept_copy.name})" if self.kept_copy is not None else ""
        return (f"Settings not loaded: {self.error}. Running on defaults; {self.path.name} is left "
                f"unchanged and will not be written until it loads{copy}.")


def load_with_result(path: str | os.PathLike, build: Callable[[dict], T], default: Callable[[], T], *,
                     clock: Clock = SYSTEM_CLOCK) -> LoadResult:
    """Load a settings file without raising: a bad file gives the defaults and the problem.

    Parameters
    ----------
    path : path
        The file; a missing file gives ``default()`` and no error.
    build : callable
        ``dict -> T``: checks the parsed document (raises :class:`ConfigError`).
    default : callable
        ``() -> T``: the defaults.
    clock : Clock
        For the bad copy's timestamp.

    Returns
    -------
    LoadResult
        ``error`` set and ``kept_copy`` made when the file is unreadable, not TOML or breaks
        the schema; the file itself is never modified.
    """
    p = Path(path)
    if not p.exists():
        return LoadResult(p, default(), {}, False)
    raw: dict = {}
    try:
        raw = read_toml(p)
        return LoadResult(p, build(raw), raw, True)
    except ConfigError as exc:
        kept = keep_bad_copy(p, clock)
        log.warning("%s (the file is kept unchanged; copy: %s)", exc, kept)
        return LoadResult(p, default(), raw, True, exc, kept)
