"""User settings: one TOML file, ``app.paths.config_dir() / "settings.toml"``.

The schema is a tree of Structs on the common settings schema (:mod:`app.config.schema`): each
table is a :class:`~app.config.schema.Section` with its ranges and choices declared on the fields,
unknown keys are errors, and every problem is a :class:`~app.config.schema.ConfigError` naming
the dotted key, the value and what is allowed. The ``[trading]`` table is the one
:class:`~app.config.trading.TradingSettings`; the ``[ui]`` table holds the window's settings
(:class:`UiPrefs`). Saving goes through :func:`app.config.files.atomic_write`.

:func:`load_settings` raises on a bad file; :func:`read_settings` (what the window uses) never
does: it returns a :class:`~app.config.files.LoadResult` with the defaults, the problem and the
``settings.toml.bad-<UTC timestamp>`` copy, and the caller must not write the file back
(:class:`app.config.prefs.Prefs` does not).

Passwords are **never** stored here: :func:`get_password` / :func:`set_password` use the OS
keyring (``keyring`` package; Windows Credential Manager, macOS Keychain, Secret Service), one
entry per user, host and port.

Example file::

    [connection]
    host = "127.0.0.1"
    port = 11099
    encoding = "binary"
    username = "trader"

    [trading]              # any key of app.config.trading.TradingSettings
    account = "Sim1"
    mode = "paper"         # paper | sim | live (File > Connection > Trading mode; trading.toml wins)

    [symbols.map]          # display name -> the data service's symbol (opaque, never parsed)
    ES = "ESZ25_FUT_CME"

    [symbols.source]       # per display name: "dtc" or "sierra_files"
    ES = "sierra_files"

    [sierra]
    data_folder = "C:/SierraChart/Data"   # read by the "sierra_files" source (mia-elite --data-dir)

    [analysis]
    profile = "production"
    [analysis.overrides]
    "elite.min_elite_score" = 0.75

    [replay]
    speed = 1.0
    loop = false           # true: start the recording again at its end (a new session)
    process = true         # false: the built-in server on a thread of the window's process

    [display]
    contrast = 0.98
    sound = true

    [[instruments]]        # several instruments (issue 17); without it: the one symbol above
    symbol = "ESZ25_FUT_CME"
    exchange = "CME"
    source = "sierra_files"   # dtc | sierra_files
    tick_size = 0.25
    tick_value = 12.5
    session = "cme_globex"    # "" = from the exchange | cme_globex | crypto_utc
    profile = "production"    # "" = [analysis] profile
    [[instruments]]
    symbol = "NQZ25_FUT_CME"
    exchange = "CME"
    source = "sierra_files"
    tick_size = 0.25
    tick_value = 5.0

    [ui]                   # the window's settings (see UiPrefs)
    "connection.embedded" = false
    [ui.symbol_details.ES]
    exchange = "CME"
    tick_size = 0.25
    tick_value = 12.5
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import tomli_w

from app import paths
from app.config.files import LoadResult, atomic_write, load_with_result, read_toml
from app.config.profiles import ProfileName, load_profile
from app.config.schema import ConfigError, Section, decode, literal_values
from app.config.trading import TradingSettings
from app.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.toml"
KEYRING_SERVICE = "MIA Elite DTC"

#: DTC encodings the client can speak (DTC ``EncodingEnum`` names, lower case).
Encoding = Literal["binary", "binary_vls", "json", "json_compact", "protobuf"]
ENCODINGS = literal_values(Encoding)
#: Where a symbol's market data comes from.
DataSource = Literal["dtc", "sierra_files"]
DATA_SOURCES = literal_values(DataSource)

#: Most UTF-8 bytes of a DTC username or password: LOGON_REQUEST's ``char[32] Username`` /
#: ``Password`` less the NUL (``DTCProtocol.h``; the client checks the same limit).
LOGON_TEXT_MAX_BYTES = 31

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class PasswordStoreError(RuntimeError):
    """The OS keyring cannot store a password (the message says why and what to do)."""


# ---------------------------------------------------------------------------- schema
class ConnectionSettings(Section):
    """DTC server connection (the password is in the OS keyring, not here).

    Attributes
    ----------
    host : str
        Host name or address, not empty.
    port : int
        TCP port, 1..65535.
    encoding : str
        One of :data:`ENCODINGS`.
    username : str
        DTC logon name ("" = none), at most :data:`LOGON_TEXT_MAX_BYTES` UTF-8 bytes.
    tls : bool
        Connect with TLS (Sierra Chart's "Require TLS").
    tls_fingerprint : str
        SHA-256 fingerprint of the server's certificate, pinned on first connect ("" = none: the
        certificate must then verify against the system's authorities).

    Raises
    ------
    ConfigError
        ``username`` longer than :data:`LOGON_TEXT_MAX_BYTES` bytes.
    """

    host: _NonEmpty = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 11099
    encoding: Encoding = "binary"
    username: str = ""
    tls: bool = False
    tls_fingerprint: str = ""

    def check(self) -> None:
        """The username must fit LOGON_REQUEST.Username; a pinned fingerprint is a SHA-256 one.

        Raises
        ------
        ConfigError
            Names ``username`` and the byte limit, or ``tls_fingerprint`` and its form.
        """
        digits = "".join(ch for ch in self.tls_fingerprint if ch not in ": ")
        if digits and not re.fullmatch(r"[0-9A-Fa-f]{64}", digits):
            raise ConfigError("tls_fingerprint", "a SHA-256 certificate fingerprint: 64 hex digits, colons "
                              "allowed (AB:CD:...), or \"\" for none", self.tls_fingerprint)
        n = len(self.username.encode("utf-8"))
        if n > LOGON_TEXT_MAX_BYTES:
            raise ConfigError("username", f"at most {LOGON_TEXT_MAX_BYTES} bytes in UTF-8 (DTC LOGON_REQUEST "
                              f"Username is char[32]); this one has {n}", self.username)


class SymbolSettings(Section):
    """Symbol map (display name -> data-service symbol) and the data source per display name.

    Attributes
    ----------
    map : dict[str, str]
        Display name -> the data service's symbol (opaque, never parsed; not empty).
    source : dict[str, str]
        Display name -> ``"dtc"`` or ``"sierra_files"``.
    """

    map: dict[str, _NonEmpty] = {}
    source: dict[str, DataSource] = {}

    def service_symbol(self, name: str) -> str:
        """The data service's symbol for a display name (the name itself when unmapped)."""
        return str(self.map.get(name, name))

    def data_source(self, name: str) -> str:
        """``dtc`` or ``sierra_files`` for a display name (default ``dtc``)."""
        return str(self.source.get(name, "dtc"))


class SierraSettings(Section):
    """Sierra Chart installation: its ``Data`` folder (``.scid``, ``.depth``, ``.dly`` files)."""

    data_folder: str = ""


class AnalysisSettings(Section):
    """Analysis profile name and the user's overrides of profile keys (dotted or nested).

    Attributes
    ----------
    profile : str
        One of :data:`app.config.profiles.PROFILE_NAMES`.
    overrides : dict
        Profile keys and values, checked against the profile schema.
    """

    profile: ProfileName = "production"
    overrides: dict[str, Any] = {}

    def check(self) -> None:
        """The overrides must be valid keys and values of the profile.

        Raises
        ------
        ConfigError
            Names ``overrides.<profile key>`` and its range.
        """
        if self.overrides:
            try:
                load_profile(self.profile, self.overrides)
            except ConfigError as exc:
                raise exc.located("", "overrides") from None


class ReplaySettings(Section):
    """Replay speed: a multiple of real time (0 < speed <= 1000); ``loop``: start the recording
    again at its end, each pass a new session (default false: the replay stops at its end);
    ``process``: the built-in replay server runs in a process of its own (default true; false:
    on a thread of the window's process, which then shares its interpreter lock with it;
    :class:`app.live.replay_process.ReplayServerProcess`)."""

    speed: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 1.0
    loop: bool = False
    process: bool = True


class DisplaySettings(Section):
    """Heatmap contrast (upper cut-off quantile of resting size, 0.5..1.0) and alert sound."""

    contrast: Annotated[float, msgspec.Meta(ge=0.5, le=1.0)] = 0.98
    sound: bool = True


class SymbolDetail(Section):
    """What the window knows of a mapped symbol: exchange, tick size (price units) and tick value (USD)."""

    exchange: str = ""
    tick_size: _NonNegative = 0.0
    tick_value: _NonNegative = 0.0


class InstrumentSettings(Section):
    """One instrument of the window, an ``[[instruments]]`` entry (issue 17).

    Attributes
    ----------
    symbol : str
        The data service's symbol (opaque, never parsed; not empty, unique in the list).
    exchange : str
        Exchange as the data service names it ("" = unknown).
    source : str
        ``"dtc"`` (a SymbolID on the one DTC connection) or ``"sierra_files"`` (its own
        follower of Sierra Chart's files in ``[sierra] data_folder``).
    tick_size : float
        Price units per tick, >= 0 (0 = the source tells it; must be > 0 for ``sierra_files``,
        whose files do not carry it).
    tick_value : float
        USD per tick per contract, >= 0 (0 = the source tells it).
    session : str
        Session calendar: "" (from the exchange, :func:`app.core.sessions.calendar_for`) or a
        name of :data:`app.core.sessions.CALENDARS` (``cme_globex``, ``crypto_utc``).
    profile : str
        Analysis profile of this instrument: "" (the ``[analysis]`` profile) or one of
        :data:`app.config.profiles.PROFILE_NAMES`.

    Raises
    ------
    ConfigError
        An unknown session or profile (names the key and the allowed values), a
        ``sierra_files`` instrument without a tick size.
    """

    symbol: _NonEmpty
    exchange: str = ""
    source: DataSource = "dtc"
    tick_size: _NonNegative = 0.0
    tick_value: _NonNegative = 0.0
    session: str = ""
    profile: str = ""

    def check(self) -> None:
        """Session and profile names must be known; Sierra Chart files need the tick size.

        Raises
        ------
        ConfigError
            Names ``session``, ``profile`` or ``tick_size`` and what is allowed.
        """
        from app.config.profiles import PROFILE_NAMES
        from app.core.sessions import CALENDARS

        if self.session and self.session not in CALENDARS:
            raise ConfigError("session", "'' | " + " | ".join(repr(n) for n in sorted(CALENDARS)), self.session)
        if self.profile and self.profile not in PROFILE_NAMES:
            raise ConfigError("profile", "'' | " + " | ".join(repr(n) for n in PROFILE_NAMES), self.profile)
        if self.source == "sierra_files" and not self.tick_size > 0:
            raise ConfigError("tick_size", "a number > 0 for source 'sierra_files' (Sierra Chart's files do "
                              "not carry the tick size)", self.tick_size)


class UiPrefs(Section):
    """The window's settings, the ``[ui]`` table; keys are dotted names as the window uses them.

    Attributes
    ----------
    connection_embedded : bool
        ``"connection.embedded"``: use the built-in replay server (default true).
    connection_recording : str
        ``"connection.recording"``: the recording it replays ("" = the shipped sample).
    connection_active_symbol : str
        ``"connection.active_symbol"``: display name of the symbol shown.
    alerts_notify : bool
        ``"alerts.notify"``: desktop notification on each elite signal.
    symbol_details : dict[str, SymbolDetail]
        Per display name: exchange, tick size, tick value.
    window_geometry, window_state, splitters_* : str
        Window layout written by earlier versions (read as a fallback; now kept in
        ``window.toml``, see :mod:`app.config.prefs`).
    """

    connection_embedded: bool = msgspec.field(name="connection.embedded", default=True)
    connection_recording: str = msgspec.field(name="connection.recording", default="")
    connection_active_symbol: str = msgspec.field(name="connection.active_symbol", default="")
    alerts_notify: bool = msgspec.field(name="alerts.notify", default=False)
    symbol_details: dict[str, SymbolDetail] = {}
    window_geometry: str = msgspec.field(name="window.geometry", default="")
    window_state: str = msgspec.field(name="window.state", default="")
    splitters_main: str = msgspec.field(name="splitters.main_splitter", default="")
    splitters_top: str = msgspec.field(name="splitters.top_splitter", default="")
    splitters_right: str = msgspec.field(name="splitters.right_splitter", default="")
    splitters_tape: str = msgspec.field(name="splitters.tape_splitter", default="")


class Settings(Section):
    """All user settings. Sections map to TOML tables of the same name."""

    connection: ConnectionSettings = msgspec.field(default_factory=ConnectionSettings)
    trading: TradingSettings = msgspec.field(default_factory=TradingSettings)
    symbols: SymbolSettings = msgspec.field(default_factory=SymbolSettings)
    sierra: SierraSettings = msgspec.field(default_factory=SierraSettings)
    analysis: AnalysisSettings = msgspec.field(default_factory=AnalysisSettings)
    replay: ReplaySettings = msgspec.field(default_factory=ReplaySettings)
    display: DisplaySettings = msgspec.field(default_factory=DisplaySettings)
    ui: UiPrefs = msgspec.field(default_factory=UiPrefs)
    instruments: list[InstrumentSettings] = []

    def check(self) -> None:
        """Each instrument's symbol appears once.

        Raises
        ------
        ConfigError
            Names ``instruments[k].symbol`` of the second entry of a symbol.
        """
        seen: set[str] = set()
        for k, inst in enumerate(self.instruments):
            if inst.symbol in seen:
                raise ConfigError(f"instruments[{k}].symbol", "a symbol not listed before in [[instruments]]",
                                  inst.symbol)
            seen.add(inst.symbol)

    def instrument_list(self) -> list[InstrumentSettings]:
        """The window's instruments: ``[[instruments]]`` when given, else the single symbol of
        the settings before issue 17 as a list of one.

        The single symbol is ``[ui] "connection.active_symbol"`` (a display name, else the
        first name of ``[symbols.map]``), mapped through ``[symbols.map]``, with its
        ``[symbols.source]`` and its ``[ui.symbol_details]`` (exchange, tick size and value).

        Returns
        -------
        list of InstrumentSettings
            Empty when no symbol is configured at all (the embedded replay then shows its
            recording's symbol).
        """
        if self.instruments:
            return list(self.instruments)
        name = self.ui.connection_active_symbol or next(iter(self.symbols.map), "")
        if not name:
            return []
        d = self.ui.symbol_details.get(name, SymbolDetail())
        source = self.symbols.data_source(name)
        tick = float(d.tick_size)
        if source == "sierra_files" and not tick > 0:
            source = "dtc"  # the old settings allowed it; the tick size then comes from the server
        return [InstrumentSettings(symbol=self.symbols.service_symbol(name), exchange=d.exchange, source=source,
                                   tick_size=tick, tick_value=float(d.tick_value))]

    def to_dict(self) -> dict:
        """Nested plain dict (what is written to TOML)."""
        return msgspec.to_builtins(self)

    def validate(self) -> "Settings":
        """Check every value (also those assigned after construction); returns self.

        Raises
        ------
        ConfigError
            On the first bad value (names the dotted key and what is allowed).
        """
        from_dict(self.to_dict())
        return self


def from_dict(raw: dict, where: str = "settings") -> Settings:
    """Build validated :class:`Settings` from a nested dict (missing keys take their defaults).

    Parameters
    ----------
    raw : dict
        The parsed ``settings.toml``.
    where : str
        The file named in errors.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        An unknown key, a value of the wrong type or out of range (names the dotted key and the
        allowed values).
    """
    if not isinstance(raw, dict):
        raise ConfigError("", f"expected a table, got {type(raw).__name__}", kind="file", where=where)
    return decode(raw, Settings, where)


def settings_path() -> Path:
    """``config_dir()/settings.toml``."""
    return paths.config_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read the settings file; defaults when it does not exist.

    Raises
    ------
    ConfigError
        The file is unreadable or not valid TOML (names the file and position), or holds an
        unknown key or a bad value (names the key).
    """
    p = Path(path) if path is not None else settings_path()
    if not p.exists():
        return Settings()
    return from_dict(read_toml(p), str(p))


def read_settings(path: str | os.PathLike | None = None, clock: Clock = SYSTEM_CLOCK) -> LoadResult:
    """Read the settings file without raising (what the window uses).

    Parameters
    ----------
    path : path, optional
        Default :func:`settings_path`.
    clock : Clock
        For the timestamp of the bad file's copy.

    Returns
    -------
    LoadResult
        ``value`` is the :class:`Settings` (defaults when the file is missing or bad); a bad
        file sets ``error`` (names the key and what is allowed) and is copied to
        ``settings.toml.bad-<UTC timestamp>``; the file itself is left byte for byte.
    """
    p = Path(path) if path is not None else settings_path()
    return load_with_result(p, lambda raw: from_dict(raw, str(p)), Settings, clock=clock)


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Validate and write every setting (atomic: see :func:`app.config.files.atomic_write`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ConfigError
        A bad value (nothing is written).
    OSError
        The write failed (the old file is unchanged, no temporary file is left).
    """
    doc = settings.to_dict()
    from_dict(doc)
    p = Path(path) if path is not None else settings_path()
    return atomic_write(p, tomli_w.dumps(doc))


# ---------------------------------------------------------------------------- passwords
def _account(host: str, port: int, user: str) -> str:
    """The keyring entry's name: ``user@host:port`` (``user@[::1]:port`` for an IPv6 address)."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{user}@{h}:{int(port)}"


def _legacy_account(host: str, user: str) -> str:
    """The name earlier versions used, ``user@host`` without the port (read once, then moved)."""
    return f"{user}@{host}"


def _no_backend_text(exc: BaseException) -> str:
    return (f"no usable OS keyring ({type(exc).__name__}: {exc}); the password is not saved and "
            "must be typed at each connection. On Linux install and unlock a Secret Service "
            "keyring (e.g. GNOME Keyring or KWallet).")


def get_password(host: str, port: int, user: str) -> str | None:
    """The DTC password stored for ``user`` at ``host:port`` (``None`` when none or no keyring).

    The entry is keyed by host **and** port (service :data:`KEYRING_SERVICE`, name
    ``user@host:port``), so two servers on one host keep two passwords. An entry of an earlier
    version (``user@host``, no port) is read once: it is moved to this server's name and removed,
    so another port on that host does not inherit it.

    Never raises for a missing keyring backend: it logs a clear warning (never the secret) and
    returns ``None``.
    """
    if not user:
        return None
    try:
        import keyring

        name = _account(host, port, user)
        pw = keyring.get_password(KEYRING_SERVICE, name)
        if pw is not None:
            return pw
        old = _legacy_account(host, user)
        pw = keyring.get_password(KEYRING_SERVICE, old)
        if pw is None:
            return None
    except Exception as exc:  # keyring.errors.* or a broken backend
        log.warning("settings: %s", _no_backend_text(exc))
        return None
    try:
        keyring.set_password(KEYRING_SERVICE, name, pw)
        keyring.delete_password(KEYRING_SERVICE, old)
        log.info("settings: the saved password of %s moved to the entry %s (keyed by port)", old, name)
    except Exception as exc:  # the password still works for this connection
        log.warning("settings: the saved password of %s could not be moved to %s (%s)", old, name,
                    type(exc).__name__)
    return pw


def set_password(host: str, port: int, user: str, password: str) -> None:
    """Store the DTC password for ``user`` at ``host:port`` in the OS keyring (name ``user@host:port``).

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

        keyring.set_password(KEYRING_SERVICE, _account(host, port, user), password)
    except Exception as exc:
        raise PasswordStoreError(_no_backend_text(exc)) from None


def delete_password(host: str, port: int, user: str) -> bool:
    """Remove the password stored for ``user`` at ``host:port``; True if one was removed
    (False when none or no keyring)."""
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, _account(host, port, user))
        return True
    except Exception:
        return False
