"""Trading settings: risk limits, paper costs, bracket offsets, kill-switch timing.

One Struct, :class:`TradingSettings` (frozen), on the common schema (:mod:`app.config.schema`).
It is the ``[trading]`` table of ``trading.toml`` and also of ``settings.toml`` (where the
connection dialog keeps the account): :func:`load_trading_settings` reads ``settings.toml``'s
table first and lets ``trading.toml`` override it key by key. Units are in the field names:
``_usd``, ``_ticks``, ``_s``, ``_ms``; contracts otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import msgspec
import tomli_w

from app import paths
from app.config.files import atomic_write, read_toml
from app.config.schema import ConfigError, Section, decode, literal_values

MODE_PAPER = "paper"
MODE_SIM = "sim"  # a Sierra Chart simulated account (Sim1 ...) over DTC
MODE_LIVE = "live"
Mode = Literal["paper", "sim", "live"]
MODES = literal_values(Mode)

#: the words the trader must type to enable live mode and to unlock the kill switch
LIVE_CONFIRM_PHRASE = "LIVE"
UNLOCK_CONFIRM_PHRASE = "UNLOCK"

TRADING_FILE = "trading.toml"
SETTINGS_FILE = "settings.toml"

_HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                    extra={"allowed": "a time HH:MM from 00:00 to 23:59"})]
_Count = Annotated[int, msgspec.Meta(ge=1)]
_Positive = Annotated[float, msgspec.Meta(gt=0)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]
_Ticks = Annotated[int, msgspec.Meta(ge=0)]


class TradingSettings(Section, frozen=True, kw_only=True):
    """Every trading setting, with its unit (the ``[trading]`` table).

    Attributes
    ----------
    mode : {"paper", "sim", "live"}
        ``paper`` (default), ``sim`` or ``live``.
    account : str
        DTC TradeAccount (``Sim1`` ...); ignored in paper mode; ``""`` = none chosen.
    max_contracts_per_order, max_position_contracts : int
        Contracts, >= 1.
    max_risk_per_trade_usd : float
        Entry-to-stop distance x tick value x contracts, USD, > 0.
    require_stop : bool
        Refuse an opening order without a protective stop (its risk is unbounded).
    daily_loss_limit_usd : float
        Realised + open loss of the day that locks trading (and fires the kill switch), USD > 0.
    max_trades_per_day : int
        Confirmed opening tickets per day, >= 1.
    max_consecutive_losses : int
        Losing round trips in a row that lock trading, >= 1.
    trading_start, trading_end : str
        ``HH:MM`` window in ``trading_timezone`` when opening orders are allowed (start == end: always).
    trading_timezone : str
        IANA zone name, e.g. ``America/Chicago``.
    stale_data_ms : int
        Market data older than this refuses opening orders (and arms the stale-data trigger), ms >= 0.
    commission_per_contract_usd : float
        Paper broker commission per contract per side, USD >= 0.
    slippage_ticks : int
        Paper broker adverse slippage on market and stop fills, ticks >= 0.
    bracket_stop_ticks, bracket_target_ticks : int
        Offsets of a ladder-click ticket's stop and target from its entry, ticks >= 0.
    default_qty : int
        Contracts of a ladder-click ticket, >= 1.
    kill_verify_timeout_s : float
        How long the kill switch waits for the broker to report flat before FAILED, s > 0.
    disconnect_kill_s : float
        Connection lost with an open position or order for longer than this fires the kill switch, s >= 0.
    stale_kill_s : float
        Market data stale with an open position for longer than this fires the kill switch, s >= 0.

    Raises
    ------
    ConfigError
        On construction, a value outside its range (names the field; :meth:`from_mapping`
        names it ``trading.<key>`` with the file).
    """

    mode: Mode = MODE_PAPER
    account: str = ""
    max_contracts_per_order: _Count = 2
    max_position_contracts: _Count = 4
    max_risk_per_trade_usd: _Positive = 500.0
    require_stop: bool = True
    daily_loss_limit_usd: _Positive = 1000.0
    max_trades_per_day: _Count = 20
    max_consecutive_losses: _Count = 3
    trading_start: _HHMM = "00:00"
    trading_end: _HHMM = "00:00"
    trading_timezone: Annotated[str, msgspec.Meta(min_length=1)] = "America/Chicago"
    stale_data_ms: _Ticks = 5000
    commission_per_contract_usd: _NonNegative = 2.25
    slippage_ticks: _Ticks = 0
    bracket_stop_ticks: _Ticks = 8
    bracket_target_ticks: _Ticks = 16
    default_qty: _Count = 1
    kill_verify_timeout_s: _Positive = 5.0
    disconnect_kill_s: _NonNegative = 10.0
    stale_kill_s: _NonNegative = 30.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "") -> "TradingSettings":
        """Build from a ``[trading]`` table.

        Parameters
        ----------
        data : mapping or None
            ``{key: value}`` as read from TOML (``None``: all defaults).
        where : str
            The file named in errors.

        Returns
        -------
        TradingSettings

        Raises
        ------
        ConfigError
            An unknown key, a wrong type or a value out of range (names ``trading.<key>`` and
            what is allowed).
        """
        return decode(dict(data or {}), cls, where, prefix="trading")

    def to_dict(self) -> dict:
        """Plain ``{key: value}`` (for TOML and the journal)."""
        return msgspec.structs.asdict(self)


def parse_hhmm(text: str, key: str = "time") -> int:
    """``"HH:MM"`` -> minutes after midnight (0..1439).

    Raises
    ------
    ConfigError
        ``text`` is not a time ``HH:MM`` from 00:00 to 23:59 (names ``key``).
    """
    try:
        h, m = str(text).split(":")
        if len(h) != 2 or len(m) != 2:
            raise ValueError
        h, m = int(h), int(m)
        if not (0 <= h < 24 and 0 <= m < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(key, "a time HH:MM from 00:00 to 23:59", text) from None
    return h * 60 + m


def trading_settings_path() -> Path:
    """``<config folder>/trading.toml`` (risk limits and paper costs; see :class:`TradingSettings`)."""
    return paths.config_dir() / TRADING_FILE


def _table(raw: dict, where: str) -> dict:
    if "trading" not in raw:  # a file of bare keys is the table itself
        return raw
    t = raw["trading"]
    if not isinstance(t, dict):
        raise ConfigError("trading", "a table", t, where=where)
    others = [k for k in raw if k != "trading"]
    if others:
        raise ConfigError(others[0], "trading", kind="unknown", where=where)
    return t


def load_trading_settings(path: str | os.PathLike | None = None,
                          settings_file: str | os.PathLike | None = None) -> TradingSettings:
    """Read the trading settings (defaults for every key no file sets).

    The ``[trading]`` table of ``settings.toml`` (where the connection dialog keeps the account)
    is read first; ``trading.toml``'s ``[trading]`` table overrides it key by key.

    Parameters
    ----------
    path : path, optional
        ``trading.toml`` (default: :func:`trading_settings_path`).
    settings_file : path, optional
        ``settings.toml`` (default: beside the default ``trading.toml``).

    Returns
    -------
    TradingSettings

    Raises
    ------
    ConfigError
        Either file is unreadable or not TOML, or holds an unknown key or a bad value (the
        message names the file and ``trading.<key>``). ``settings.toml`` problems other than in
        its ``[trading]`` table are the window's concern and are not raised here.
    """
    p = Path(path) if path is not None else trading_settings_path()
    s = Path(settings_file) if settings_file is not None else paths.config_dir() / SETTINGS_FILE
    data: dict = {}
    if s.exists():
        try:
            base = read_toml(s).get("trading", {})
        except ConfigError:
            base = {}  # reported by the settings loader; the trading limits do not depend on it
        if isinstance(base, dict) and base:
            TradingSettings.from_mapping(base, str(s))  # its own problems name its own file
            data.update(base)
    if p.exists():
        data.update(_table(read_toml(p), str(p)))
    return TradingSettings.from_mapping(data, str(p))


def save_trading_settings(settings: TradingSettings, path: str | os.PathLike | None = None) -> Path:
    """Write ``settings`` as ``trading.toml``'s ``[trading]`` table (atomic, see :func:`atomic_write`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OSError
        The write failed (the old file is unchanged, no temporary file is left).
    """
    p = Path(path) if path is not None else trading_settings_path()
    return atomic_write(p, tomli_w.dumps({"trading": settings.to_dict()}))
