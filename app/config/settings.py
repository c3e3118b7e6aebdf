"""User settings: one TOML file, ``app.paths.config_dir() / "settings.toml"``.

A typed schema with defaults (:class:`Settings` and its sections), validated on load and on
save: a bad value raises :class:`SettingsError` naming the dotted key, the value and what is
allowed. Unknown keys are logged and ignored (a newer version's file still loads). Saving is
atomic (a temporary file in the same folder, then ``os.replace``), so a crash never leaves a
half-written file.

Passwords are **never** stored here: :func:`get_password` / :func:`set_password` use the OS
keyring (``keyring`` package; Windows Credential Manager, macOS Keychain, Secret Service).

Example file::

    [connection]
    host = "127.0.0.1"
    port = 11099
    encoding = "binary"
    username = "trader"

    [trading]
    account = "Sim1"

    [symbols.map]          # display name -> the data service's symbol (opaque, never parsed)
    ES = "ESZ25_FUT_CME"

    [symbols.source]       # per display name: "dtc" or "sierra_files"
    ES = "sierra_files"

    [sierra]
    data_folder = "C:/SierraChart/Data"

    [analysis]
    profile = "production"
    [analysis.overrides]
    "elite.min_elite_score" = 0.75

    [replay]
    speed = 1.0

    [display]
    contrast = 0.98
    sound = true

    [ui]                   # window state (free-form: geometry, splitters, ...)
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from app import paths

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"
KEYRING_SERVICE = "MIA Elite DTC"

#: DTC encodings the client can speak (DTC ``EncodingEnum`` names, lower case).
ENCODINGS = ("binary", "binary_vls", "json", "json_compact", "protobuf")
#: Where a symbol's market data comes from.
DATA_SOURCES = ("dtc", "sierra_files")
PROFILE_NAMES = ("scalping", "production", "development", "budget")


class SettingsError(ValueError):
    """A settings value is invalid; the message names the dotted key and the allowed values."""


class PasswordStoreError(RuntimeError):
    """The OS keyring cannot store a password (the message says why and what to do)."""


# ---------------------------------------------------------------------------- schema
@dataclass
class ConnectionSettings:
    """DTC server connection (the password is in the OS keyring, not here)."""

    host: str = "127.0.0.1"
    port: int = 11099
    encoding: str = "binary"
    username: str = ""


@dataclass
class TradingSettings:
    """Trading account (``Sim1``-style accounts are Sierra Chart's simulated ones)."""

    account: str = ""


@dataclass
class SymbolSettings:
    """Symbol map (display name -> data-service symbol) and the data source per display name."""

    map: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def service_symbol(self, name: str) -> str:
        """The data service's symbol for a display name (the name itself when unmapped)."""
        return str(self.map.get(name, name))

    def data_source(self, name: str) -> str:
        """``dtc`` or ``sierra_files`` for a display name (default ``dtc``)."""
        return str(self.source.get(name, "dtc"))


@dataclass
class SierraSettings:
    """Sierra Chart installation: its ``Data`` folder (``.scid``, ``.depth``, ``.dly`` files)."""

    data_folder: str = ""


@dataclass
class AnalysisSettings:
    """Analysis profile name and the user's overrides of profile keys (dotted or nested)."""

    profile: str = "production"
    overrides: dict = field(default_factory=dict)


@dataclass
class ReplaySettings:
    """Replay speed: a multiple of real time (0 < speed <= 1000)."""

    speed: float = 1.0


@dataclass
class DisplaySettings:
    """Heatmap contrast (upper cut-off quantile of resting size, 0.5..1.0) and alert sound."""

    contrast: float = 0.98
    sound: bool = True


@dataclass
class Settings:
    """All user settings. Sections map to TOML tables of the same name."""

    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    trading: TradingSettings = field(default_factory=TradingSettings)
    symbols: SymbolSettings = field(default_factory=SymbolSettings)
    sierra: SierraSettings = field(default_factory=SierraSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    ui: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Nested plain dict (what is written to TOML)."""
        return asdict(self)

    def validate(self) -> "Settings":
        """Check every value; returns self.

        Raises
        ------
        SettingsError
            On the first bad value (names the dotted key and what is allowed).
        """
        from_dict(self.to_dict())
        return self


_SECTIONS = {
    "connection": ConnectionSettings,
    "trading": TradingSettings,
    "symbols": SymbolSettings,
    "sierra": SierraSettings,
    "analysis": AnalysisSettings,
    "replay": ReplaySettings,
    "display": DisplaySettings,
}


def _err(key: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"settings: {key} = {value!r} is invalid; allowed: {allowed}")


def _str(key, v, *, choices=None, allow_empty=True):
    if not isinstance(v, str):
        raise _err(key, v, "a string" if choices is None else " | ".join(repr(c) for c in choices))
    if choices is not None and v not in choices:
        raise _err(key, v, " | ".join(repr(c) for c in choices))
    if not allow_empty and not v.strip():
        raise _err(key, v, "a non-empty string")
    return v


def _int(key, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _err(key, v, f"an integer in [{lo}, {hi}]")
    return v


def _float(key, v, lo, hi, *, lo_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _err(key, v, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    v = float(v)
    if (v <= lo if lo_open else v < lo) or v > hi:
        raise _err(key, v, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return v


def _bool(key, v):
    if not isinstance(v, bool):
        raise _err(key, v, "true | false")
    return v


def _check_section(name: str, raw: dict) -> Any:
    cls = _SECTIONS[name]
    known = {f.name for f in fields(cls)}
    for k in raw:
        if k not in known:
            log.warning("settings: unknown key %s.%s ignored", name, k)
    d = {k: v for k, v in raw.items() if k in known}
    key = lambda k: f"{name}.{k}"  # noqa: E731
    if name == "connection":
        if "host" in d:
            _str(key("host"), d["host"], allow_empty=False)
        if "port" in d:
            _int(key("port"), d["port"], 1, 65535)
        if "encoding" in d:
            _str(key("encoding"), d["encoding"], choices=ENCODINGS)
        if "username" in d:
            _str(key("username"), d["username"])
    elif name == "trading":
        if "account" in d:
            _str(key("account"), d["account"])
    elif name == "symbols":
        for sub in ("map", "source"):
            if sub in d and not isinstance(d[sub], dict):
                raise _err(key(sub), d[sub], "a table of name = string")
        for n, sym in d.get("map", {}).items():
            _str(f"symbols.map.{n}", sym, allow_empty=False)
        for n, src in d.get("source", {}).items():
            _str(f"symbols.source.{n}", src, choices=DATA_SOURCES)
    elif name == "sierra":
        if "data_folder" in d:
            _str(key("data_folder"), d["data_folder"])
    elif name == "analysis":
        if "profile" in d:
            d["profile"] = _str(key("profile"), d["profile"], choices=PROFILE_NAMES).lower()
        if "overrides" in d:
            if not isinstance(d["overrides"], dict):
                raise _err(key("overrides"), d["overrides"], "a table of profile keys")
            _check_overrides(d.get("profile", "production"), d["overrides"])
    elif name == "replay":
        if "speed" in d:
            d["speed"] = _float(key("speed"), d["speed"], 0.0, 1000.0, lo_open=True)
    elif name == "display":
        if "contrast" in d:
            d["contrast"] = _float(key("contrast"), d["contrast"], 0.5, 1.0)
        if "sound" in d:
            _bool(key("sound"), d["sound"])
    return cls(**d)


def _check_overrides(profile: str, overrides: dict) -> None:
    """Validate profile overrides with the profile schema (errors name the profile key)."""
    try:
        from app.config.profiles import ProfileError, load_profile
    except ImportError:  # profiles module missing: keep the overrides unchecked
        return
    try:
        load_profile(profile, overrides)
    except ProfileError as exc:
        raise SettingsError(f"settings: analysis.overrides: {exc}") from exc


def from_dict(raw: dict) -> Settings:
    """Build validated :class:`Settings` from a nested dict (missing keys take their defaults).

    Raises
    ------
    SettingsError
        A value of the wrong type or out of range (names the dotted key and allowed values).
    """
    if not isinstance(raw, dict):
        raise SettingsError(f"settings: expected a table, got {type(raw).__name__}")
    kw: dict[str, Any] = {}
    for name, sect in raw.items():
        if name == "ui":
            if not isinstance(sect, dict):
                raise _err("ui", sect, "a table")
            kw["ui"] = dict(sect)
        elif name in _SECTIONS:
            if not isinstance(sect, dict):
                raise _err(name, sect, "a table")
            kw[name] = _check_section(name, sect)
        else:
            log.warning("settings: unknown section [%s] ignored", name)
    return Settings(**kw)


def settings_path() -> Path:
    """``config_dir()/settings.toml``."""
    return paths.config_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read the settings file; defaults when it does not exist.

    Raises
    ------
    SettingsError
        The file is not valid TOML (with the file and position) or holds a bad value.
    """
    p = Path(path) if path is not None else settings_path()
    if not p.exists():
        return Settings()
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {p} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {p} cannot be read: {exc}") from exc
    return from_dict(raw)


def _drop_none(d):
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, (list, tuple)):
        return [_drop_none(v) for v in d]
    return d


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Validate and write the settings atomically (temp file + ``os.replace``).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SettingsError
        A bad value (nothing is written).
    """
    settings.validate()
    p = Path(path) if path is not None else settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    data = tomli_w.dumps(_drop_none(settings.to_dict()))
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
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


# ---------------------------------------------------------------------------- passwords
def _account(host: str, user: str) -> str:
    return f"{user}@{host}"


def _no_backend_text(exc: BaseException) -> str:
    return (f"no usable OS keyring ({type(exc).__name__}: {exc}); the password is not saved and "
            "must be typed at each connection. On Linux install and unlock a Secret Service "
            "keyring (e.g. GNOME Keyring or KWallet).")


def get_password(host: str, user: str) -> str | None:
    """The DTC password stored for ``user`` at ``host`` (``None`` when none or no keyring).

    Never raises for a missing keyring backend: it logs a clear warning and returns ``None``.
    """
    if not user:
        return None
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, _account(host, user))
    except Exception as exc:  # keyring.errors.* or a broken backend
        log.warning("settings: %s", _no_backend_text(exc))
        return None


def set_password(host: str, user: str, password: str) -> None:
    """Store the DTC password for ``user`` at ``host`` in the OS keyring.

    Raises
    ------
    PasswordStoreError
        When no keyring backend can store it (the message says so; the secret is not in it).
    ValueError
        If ``user`` is empty.
    """
    if not user:
        raise ValueError("set_password: user must not be empty")
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, _account(host, user), password)
    except Exception as exc:
        raise PasswordStoreError(_no_backend_text(exc)) from None


def delete_password(host: str, user: str) -> bool:
    """Remove a stored password; True if one was removed (False when none or no keyring)."""
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, _account(host, user))
        return True
    except Exception:
        return False
