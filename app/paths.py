"""Where things live: the user's folders (``platformdirs``) and the app's own resources.

One helper, :func:`resource_path`, finds shipped resources both from a source checkout and
from a frozen (PyInstaller) bundle, where ``sys._MEIPASS`` is the bundle folder.
Set ``MIA_ELITE_HOME`` to redirect every user folder (tests and portable installs use it).

Privacy: the journal (orders, fills, account names), the log and the settings are the trader's
business. On POSIX (Linux, macOS) the app's folders are created (and kept) ``0700`` and its
private files ``0600`` (:func:`private_dir`, :func:`private_file`), whatever the umask, so other
local users cannot read them. On Windows nothing is needed: the folders live in the user's
profile (``%APPDATA%``, ``%LOCALAPPDATA%``), whose access-control list already grants access only
to that user, SYSTEM and the administrators, and new files inherit it; POSIX modes mean nothing
there (``os.chmod`` only sets the read-only flag), so these helpers leave Windows files alone.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import platformdirs

APP_NAME = "MIA Elite"
APP_AUTHOR = "MIA"


def _home_override() -> Path | None:
    home = os.environ.get("MIA_ELITE_HOME")
    return Path(home) if home else None


#: mode of the app's folders on POSIX (owner only)
PRIVATE_DIR_MODE = 0o700
#: mode of the app's private files on POSIX (owner read/write)
PRIVATE_FILE_MODE = 0o600

_POSIX = os.name == "posix"


def _restrict(p: Path, mode: int) -> None:
    """chmod ``p`` to ``mode`` when it is ours and looser (POSIX only; another owner's file is left)."""
    if not _POSIX:
        return
    st = p.stat()
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != mode:
        os.chmod(p, mode)


def private_dir(p: str | os.PathLike, restrict_existing: bool = True) -> Path:
    """Create folder ``p`` and its missing parents ``0700`` (POSIX), whatever the umask.

    Parameters
    ----------
    p : path
    restrict_existing : bool
        Also chmod ``p`` itself to ``0700`` when it exists already (the app's own folders, made
        ``0755`` by earlier versions). Folders that existed before are otherwise left as they are
        (a journal given in a shared folder does not change that folder).

    Returns
    -------
    Path

    Raises
    ------
    OSError
        The folder cannot be created.
    """
    p = Path(p)
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # created meanwhile by another process
            continue
        _restrict(d, PRIVATE_DIR_MODE)  # mkdir's mode is reduced by the umask; never widened
    if restrict_existing and not missing:
        _restrict(p, PRIVATE_DIR_MODE)
    return p


def private_file(p: str | os.PathLike) -> Path:
    """Create file ``p`` empty ``0600`` when missing, else chmod it ``0600`` (POSIX; no-op on Windows).

    Files that a program derives from it with the same mode (SQLite's ``-wal`` and ``-shm``
    take the database file's mode) are then private too.

    Returns
    -------
    Path

    Raises
    ------
    OSError
        The file cannot be created or its mode changed (not ours, read-only folder).
    """
    p = Path(p)
    if not _POSIX:
        return p
    if not p.exists():
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        except FileExistsError:  # created meanwhile
            pass
    _restrict(p, PRIVATE_FILE_MODE)
    return p


def _ensure(p: Path) -> Path:
    return private_dir(p)


def config_dir() -> Path:
    """Settings folder (created on first use, ``0700`` on POSIX)."""
    h = _home_override()
    return _ensure(h / "config" if h else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)))


def data_dir() -> Path:
    """User data folder: journal, recordings (created on first use, ``0700`` on POSIX)."""
    h = _home_override()
    return _ensure(h / "data" if h else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)))


def cache_dir() -> Path:
    """Cache folder: numba's compiled kernels (created on first use, ``0700`` on POSIX)."""
    h = _home_override()
    return _ensure(h / "cache" if h else Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)))


def log_dir() -> Path:
    """Log folder (created on first use, ``0700`` on POSIX)."""
    h = _home_override()
    return _ensure(h / "logs" if h else Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)))


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def resources_root() -> Path:
    """The ``resources/`` folder, from source or frozen."""
    if is_frozen():
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("samples", "es.mrec.zst")``.

    Raises
    ------
    FileNotFoundError
        If the resource is not there (names the path looked at).
    """
    p = resources_root().joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"resource not found: {p}")
    return p

