"""The window's persisted state and connection settings, on top of the app's settings module.

:class:`Prefs` is a flat ``{"dotted.key": value}`` view used by the window (geometry and
splitter states as base64 strings, heatmap contrast, profile, alert options, replay speed,
connection fields, the symbol map). It stores them through :mod:`app.config.settings`
(``load_settings()`` / ``save_settings()``) under the settings' ``ui`` table when that module
is present, else in ``<config_dir>/ui-state.toml``. Passwords never go here: they live in the
OS keyring (:func:`get_password` / :func:`set_password`).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import tomli_w

from app import paths

log = logging.getLogger(__name__)

KEYRING_SERVICE = "MIA Elite DTC"


def _settings_module():
    try:
        from app.config import settings as s  # helper C's module
    except ImportError:
        return None
    if hasattr(s, "load_settings") and hasattr(s, "save_settings"):
        return s
    return None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "symbols":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _nest(flat: dict) -> dict:
    out: dict = {}
    for k, v in flat.items():
        parts = k.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


class Prefs:
    """Flat key/value UI state, persisted on :meth:`save`.

    Parameters
    ----------
    path : path, optional
        Fallback TOML file (default ``<config_dir>/ui-state.toml``), used when the settings
        module is missing or cannot store a ``ui`` table.
    """

    def __init__(self, path=None):
        self._mod = _settings_module()
        self.path = Path(path) if path else paths.config_dir() / "ui-state.toml"
        self.values: dict = {}
        self.load()

    def load(self) -> None:
        """Read the stored values (a damaged file is logged and ignored, never fatal)."""
        self.values = {}
        if self.path.exists():
            try:
                self.values.update(_flatten(tomllib.loads(self.path.read_text(encoding="utf-8"))))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                log.warning("ignoring unreadable UI state %s: %s", self.path, exc)

    def get(self, key: str, default=None):
        """Value of ``key`` or ``default``."""
        return self.values.get(key, default)

    def set(self, key: str, value) -> None:
        """Set ``key`` (``None`` removes it; TOML has no null)."""
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value

    def save(self) -> Path:
        """Write the values (atomic replace); returns the file written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(_nest(self.values)), encoding="utf-8")
        tmp.replace(self.path)
        return self.path


def get_password(host: str, port: int, username: str) -> str:
    """Password stored in the OS keyring for ``username@host:port`` ("" when none or no keyring)."""
    if not username:
        return ""
    mod = _settings_module()
    fn = getattr(mod, "get_password", None) if mod else None
    try:
        if fn is not None:
            return fn(f"{host}:{port}", username) or ""
        import keyring

        return keyring.get_password(KEYRING_SERVICE, f"{username}@{host}:{port}") or ""
    except Exception as exc:  # no keyring backend: the user types it each time
        log.warning("OS keyring unavailable: %s", type(exc).__name__)
        return ""


def set_password(host: str, port: int, username: str, password: str) -> bool:
    """Store the password in the OS keyring; False (and a log line without the secret) on failure."""
    if not username:
        return False
    mod = _settings_module()
    fn = getattr(mod, "set_password", None) if mod else None
    try:
        if fn is not None:
            fn(f"{host}:{port}", username, password)
        else:
            import keyring

            keyring.set_password(KEYRING_SERVICE, f"{username}@{host}:{port}", password)
        return True
    except Exception as exc:
        log.warning("could not store the password in the OS keyring: %s", type(exc).__name__)
        return False
