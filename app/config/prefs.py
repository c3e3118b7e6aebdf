"""The window's persisted state and connection fields, stored by :mod:`app.config.settings`.

:class:`Prefs` gives the window a flat ``{"dotted.key": value}`` view and maps each key to the
typed user settings (``settings.toml`` in the platform's config folder):

=============================  ==============================================================
window key                     stored as
=============================  ==============================================================
``connection.host/port/        ``[connection]`` host, port, encoding, username
encoding/username``
``connection.trade_account``   ``[trading] account``
``connection.sierra_data_dir``  ``[sierra] data_folder``
``connection.symbols``         ``[symbols.map]`` name -> data-service symbol, ``[symbols.source]``
                               name -> ``dtc``/``sierra_files``; exchange, tick size and tick
                               value per name in ``[ui.symbol_details]``
``replay.speed``               ``[replay] speed``
``profile``                    ``[analysis] profile`` (``analysis.overrides`` are read too)
``heatmap.contrast``           ``[display] contrast`` (upper cut-off quantile 0.5..1.0)
``alerts.sound``               ``[display] sound``
anything else                  the free-form ``[ui]`` table (geometry, splitters, options)
=============================  ==============================================================

Passwords never go here: they live in the OS keyring (:func:`get_password` /
:func:`set_password`, through the settings module's helpers).
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.config import settings as S

log = logging.getLogger(__name__)

_TYPED = {
    "connection.host": ("connection", "host"),
    "connection.port": ("connection", "port"),
    "connection.encoding": ("connection", "encoding"),
    "connection.username": ("connection", "username"),
    "connection.trade_account": ("trading", "account"),
    "connection.sierra_data_dir": ("sierra", "data_folder"),
    "replay.speed": ("replay", "speed"),
    "profile": ("analysis", "profile"),
    "heatmap.contrast": ("display", "contrast"),
    "alerts.sound": ("display", "sound"),
}

#: The window's encoding names -> the settings module's.
_ENC_TO_SETTINGS = {"compact_json": "json_compact"}
_ENC_FROM_SETTINGS = {"json_compact": "compact_json"}


class Prefs:
    """Flat key/value view of the user settings, persisted on :meth:`save`.

    Parameters
    ----------
    path : path, optional
        Settings file (default: the settings module's ``settings.toml``).

    Attributes
    ----------
    settings : app.config.settings.Settings
        The typed settings being edited.
    load_error : str
        Why the file could not be read ("" when it was fine); the defaults are used then.
    """

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.load_error = ""
        self.load()

    def load(self) -> None:
        """Read the settings file; a bad file is reported in :attr:`load_error`, never fatal."""
        self._raw_keys: set[str] = set()
        try:
            import tomllib

            raw = tomllib.loads((self.path or S.settings_path()).read_text(encoding="utf-8"))
            self._raw_keys = {f"{sec}.{k}" for sec, d in raw.items() if isinstance(d, dict) for k in d}
        except (OSError, ValueError):
            pass
        try:
            self.settings = S.load_settings(self.path)
        except (S.SettingsError, OSError, ValueError) as exc:
            self.load_error = str(exc)
            log.warning("settings not loaded, using defaults: %s", exc)
            self.settings = S.Settings()

    def saved(self, key: str) -> bool:
        """True when the settings file itself holds ``key`` (not just the schema default)."""
        if key in _TYPED:
            sec, name = _TYPED[key]
            return f"{sec}.{name}" in self._raw_keys
        return key in self.settings.ui

    # ------------------------------------------------------------------ access
    def get(self, key: str, default=None):
        """Value of ``key`` (see the module table) or ``default``."""
        st = self.settings
        if key in _TYPED:
            sec, name = _TYPED[key]
            v = getattr(getattr(st, sec), name)
            if key == "connection.encoding":
                v = _ENC_FROM_SETTINGS.get(v, v)
            return v
        if key == "connection.symbols":
            details = st.ui.get("symbol_details", {}) or {}
            rows = []
            for name, sym in st.symbols.map.items():
                d = details.get(name, {}) or {}
                rows.append({"name": name, "symbol": str(sym), "exchange": str(d.get("exchange", "")),
                             "tick_size": float(d.get("tick_size", 0.0) or 0.0),
                             "tick_value": float(d.get("tick_value", 0.0) or 0.0),
                             "source": st.symbols.data_source(name)})
            return rows or default
        if key == "analysis.overrides":
            return dict(st.analysis.overrides)
        return st.ui.get(key, default)

    def set(self, key: str, value) -> None:
        """Set ``key`` (``None`` removes a ``[ui]`` key)."""
        st = self.settings
        if key in _TYPED:
            sec, name = _TYPED[key]
            if key == "connection.encoding":
                value = _ENC_TO_SETTINGS.get(value, value)
            setattr(getattr(st, sec), name, value)
            return
        if key == "connection.symbols":
            st.symbols.map = {r["name"]: r["symbol"] for r in value}
            st.symbols.source = {r["name"]: r.get("source", "dtc") for r in value}
            st.ui["symbol_details"] = {
                r["name"]: {"exchange": r.get("exchange", ""), "tick_size": float(r.get("tick_size", 0.0) or 0.0),
                            "tick_value": float(r.get("tick_value", 0.0) or 0.0)}
                for r in value
            }
            return
        if value is None:
            st.ui.pop(key, None)
        else:
            st.ui[key] = value

    def save(self) -> Path:
        """Validate and write the settings (atomic); returns the file.

        Raises
        ------
        app.config.settings.SettingsError
            A value is out of range (the message names the key).
        """
        return S.save_settings(self.settings, self.path)


def get_password(host: str, port: int, username: str) -> str:
    """Password stored in the OS keyring for ``username`` at ``host`` ("" when none or no keyring)."""
    if not username:
        return ""
    return S.get_password(host, username) or ""


def set_password(host: str, port: int, username: str, password: str) -> bool:
    """Store the password in the OS keyring; False (logged without the secret) when it cannot."""
    if not username:
        return False
    try:
        S.set_password(host, username, password)
        return True
    except (S.PasswordStoreError, ValueError) as exc:
        log.warning("password not stored: %s", exc)
        return False
