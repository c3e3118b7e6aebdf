"""Where things live: the user's folders (``platformdirs``) and the app's own resources.

One helper, :func:`resource_path`, finds shipped resources both from a source checkout and
from a frozen (PyInstaller) bundle, where ``sys._MEIPASS`` is the bundle folder.
Set ``MIA_ELITE_HOME`` to redirect every user folder (tests and portable installs use it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "MIA Elite"
APP_AUTHOR = "MIA"


def _home_override() -> Path | None:
    home = os.environ.get("MIA_ELITE_HOME")
    return Path(home) if home else None


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def config_dir() -> Path:
    """Settings folder (created on first use)."""
    h = _home_override()
    return _ensure(h / "config" if h else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)))


def data_dir() -> Path:
    """User data folder: journal, recordings (created on first use)."""
    h = _home_override()
    return _ensure(h / "data" if h else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)))


def cache_dir() -> Path:
    """Cache folder: numba's compiled kernels (created on first use)."""
    h = _home_override()
    return _ensure(h / "cache" if h else Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)))


def log_dir() -> Path:
    """Log folder (created on first use)."""
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

