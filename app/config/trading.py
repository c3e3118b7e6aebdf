"""Trading settings: risk limits, paper costs, bracket offsets, kill-switch timing.

One Struct, :class:`TradingSettings` (frozen), on the common schema (:mod:`app.config.schema`).
It is the ``[trading]`` table of ``trading.toml`` and also of ``settings.toml`` (where the
connection dialog keeps the account): :func:`load_trading_settings` reads ``settings.toml``'s
table first and lets ``trading.toml`` override it key by key. Units are in the field names:
``_usd``, ``_ticks``, ``_s``, ``_ms``; contracts otherwise.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping
from zoneinfo import ZoneInfo

import msgspec
import tomli_w

from app import paths
from app.config.files import atomic_write, read_toml
from app.config.schema import ConfigError, Section, decode, literal_values
from app.core.sessions import CALENDARS, SessionCalendar, calendar

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
_OPEN = Annotated[str, msgspec.Meta(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9])?$",
                                    extra={"allowed": "a time HH:MM from 00:00 to 23:59, or \"\" for the calendar's"})]

# Every numeric field has a lower and an upper bound: TOML can write ``inf``, ``nan`` and
# integers up to 2**63-1, and a limit that can never be reached is no limit (issue 12 item 7).
#: most contracts any one limit may name
MAX_CONTRACTS = 10_000
#: most USD any money limit may name
MAX_USD = 1_000_000_000.0
#: most ticks of a slippage or a bracket offset
MAX_TICKS = 10_000
#: most USD of commission per contract per side
MAX_COMMISSION_USD = 1_000.0
#: longest kill-switch delay (disconnection, stale data), s
MAX_KILL_DELAY_S = 86_400.0
#: most trades per day and losses in a row a limit may name
MAX_COUNT = 100_000

_Contracts = Annotated[int, msgspec.Meta(ge=1, le=MAX_CONTRACTS)]
_Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
_Usd = Annotated[float, msgspec.Meta(gt=0, le=MAX_USD)]
_Commission = Annotated[float, msgspec.Meta(ge=0, le=MAX_COMMISSION_USD)]
_Offset = Annotated[int, msgspec.Meta(ge=1, le=MAX_TICKS)]
_Slippage = Annotated[int, msgspec.Meta(ge=0, le=MAX_TICKS)]
_DelayS = Annotated[float, msgspec.Meta(ge=0, le=MAX_KILL_DELAY_S)]

#: session calendars a symbol may name (:data:`app.core.sessions.CALENDARS`)
SessionName = Literal[tuple(CALENDARS)]  # type: ignore[valid-type]


def _check_zone(name: str, key: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``name`` is not an IANA time zone."""
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for a malformed key
        raise ConfigError(key, "an IANA time zone name such as America/Chicago or UTC", name) from None


@lru_cache(maxsize=64)
def _calendar(name: str, open_hhmm: str) -> SessionCalendar:
    """The calendar ``name`` with its open moved to ``open_hhmm`` (``""``: unchanged); cached."""
    base = calendar(name)
    if not open_hhmm or open_hhmm == base.open:
        return base
    # a moved open starts the day's only phase (the calendar's phases assume its own open)
    return replace(base, open=open_hhmm, phases=())


class InstrumentTradingSettings(Section, frozen=True, kw_only=True, omit_defaults=True):
    """Per-symbol trading terms, a ``[trading.instruments."<symbol>"]`` table.

    The table name is the symbol as the broker reports it (``ESH4``, ``ESZ25_FUT_CME``; never
    parsed). A key left out takes the ``[trading]`` table's value.

    Attributes
    ----------
    session_calendar : str or None
        Name of a calendar of :data:`app.core.sessions.CALENDARS` (``cme_globex``, ``crypto_utc``):
        the trading day (daily loss limit, trades today, consecutive losses) starts at its open.
    session_open : str or None
        ``HH:MM`` in the calendar's time zone that overrides its open (``""``: the calendar's).
    commission_per_contract_usd : float or None
        USD per contract per side (every fill: entries and exits), in [0, 1000].
    max_contracts_per_order, max_position_contracts : int or None
        This symbol's own limits, contracts in [1, 10000] (None: the ``[trading]`` values).
    daily_loss_limit_usd : float or None
        This symbol's own daily loss limit (its realised + open loss of the day), USD in
        (0, 1e9] (None: the ``[trading]`` value).

    Raises
    ------
    ConfigError
        On construction, a value outside its range (names the field).
    """

    session_calendar: SessionName | None = None
    session_open: _OPEN | None = None
    commission_per_contract_usd: _Commission | None = None
    max_contracts_per_order: _Contracts | None = None
    max_position_contracts: _Contracts | None = None
    daily_loss_limit_usd: _Usd | None = None


class TradingSettings(Section, frozen=True, kw_only=True):
    """Every trading setting, with its unit (the ``[trading]`` table).

    Attributes
    ----------
    mode : {"paper", "sim", "live"}
        ``paper`` (default), ``sim`` or ``live``.
    account : str
        DTC TradeAccount (``Sim1`` ...); ignored in paper mode; ``""`` = none chosen.
    max_contracts_per_order, max_position_contracts : int
        Contracts, in [1, 10000].
    max_risk_per_trade_usd : float
        Entry-to-stop distance x tick value x contracts, USD, in (0, 1e9].
    require_stop : bool
        Refuse an opening order without a protective stop (its risk is unbounded).
    daily_loss_limit_usd : float
        Net realised + open loss of the trading day that locks trading (and fires the kill
        switch), USD in (0, 1e9].
    max_trades_per_day : int
        Confirmed opening tickets per trading day, in [1, 100000].
    max_consecutive_losses : int
        Losing round trips in a row that lock trading, in [1, 100000].
    trading_start, trading_end : str
        ``HH:MM`` window in ``trading_timezone`` when opening orders are allowed (start == end: always).
    trading_timezone : str
        IANA zone name of the trading window, e.g. ``America/Chicago`` (checked against the
        time-zone database).
    stale_data_ms : int
        Market data older than this refuses opening orders (and arms the stale-data trigger),
        ms in [0, 3600000].
    commission_per_contract_usd : float
        Commission per contract per side, USD in [0, 1000], for symbols whose
        :attr:`instruments` table does not set one. Every P&L the app shows is net of it
        (paper, sim and live alike).
    slippage_ticks : int
        Paper broker adverse slippage on market and stop fills, ticks in [0, 10000].
    bracket_stop_ticks, bracket_target_ticks : int
        Offsets of a ladder-click ticket's stop and target from its entry, ticks in [1, 10000]
        (0 would put the stop at the entry: a bracket with no room).
    default_qty : int
        Contracts of a ladder-click ticket, in [1, 10000].
    kill_verify_timeout_s : float
        How long the kill switch waits for the broker to report flat before FAILED, s in (0, 600].
    disconnect_kill_s : float
        Connection lost with an open position or order for longer than this fires the kill
        switch, s in [0, 86400].
    stale_kill_s : float
        Market data stale with an open position for longer than this fires the kill switch,
        s in [0, 86400].
    session_calendar : str
        Session calendar of symbols whose :attr:`instruments` table names none (default
        ``cme_globex``: the trading day starts 17:00 America/Chicago).
    session_open : str
        ``HH:MM`` overriding that calendar's open, or ``""`` (the calendar's own).
    instruments : dict[str, InstrumentTradingSettings]
        Per-symbol session calendar, open, commission and limits (``[trading.instruments."ESH4"]``).
    account_max_contracts : int
        Contracts across every instrument of the account (sum of each symbol's position plus its
        working entries, the order included), in [1, 10000]; 0 (default) = no account-wide
        limit beyond each symbol's.
    account_daily_loss_limit_usd : float
        Realised + open loss of the trading day summed over every instrument that locks trading
        and fires the kill switch, USD in [0, 1e9]; 0 (default) = ``daily_loss_limit_usd``
        (with one instrument: the same limit as before).

    Raises
    ------
    ConfigError
        On construction, a value outside its range (names the field; :meth:`from_mapping`
        names it ``trading.<key>`` with the file).
    """

    mode: Mode = MODE_PAPER
    account: str = ""
    max_contracts_per_order: _Contracts = 2
    max_position_contracts: _Contracts = 4
    max_risk_per_trade_usd: _Usd = 500.0
    require_stop: bool = True
    daily_loss_limit_usd: _Usd = 1000.0
    max_trades_per_day: _Count = 20
    max_consecutive_losses: _Count = 3
    trading_start: _HHMM = "00:00"
    trading_end: _HHMM = "00:00"
    trading_timezone: Annotated[str, msgspec.Meta(min_length=1)] = "America/Chicago"
    stale_data_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 5000
    commission_per_contract_usd: _Commission = 2.25
    slippage_ticks: _Slippage = 0
    bracket_stop_ticks: _Offset = 8
    bracket_target_ticks: _Offset = 16
    default_qty: _Contracts = 1
    kill_verify_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 5.0
    disconnect_kill_s: _DelayS = 10.0
    stale_kill_s: _DelayS = 30.0
    session_calendar: SessionName = "cme_globex"
    session_open: _OPEN = ""
    instruments: dict[str, InstrumentTradingSettings] = {}
    account_max_contracts: Annotated[int, msgspec.Meta(ge=0, le=MAX_CONTRACTS)] = 0
    account_daily_loss_limit_usd: Annotated[float, msgspec.Meta(ge=0, le=MAX_USD)] = 0.0

    def check(self) -> None:
        """Cross-field rules: the time zone exists.

        Raises
        ------
        ConfigError
            ``trading_timezone`` is not in the time-zone database (names it and what is allowed).
        """
        _check_zone(self.trading_timezone, "trading_timezone")

    def _terms(self, symbol: str) -> InstrumentTradingSettings | None:
        return self.instruments.get(symbol)

    def session_calendar_for(self, symbol: str) -> SessionCalendar:
        """The session calendar of ``symbol`` (its table's, else this table's, with any open override).

        Parameters
        ----------
        symbol : str
            The symbol as the broker reports it (an :attr:`instruments` key; never parsed).

        Returns
        -------
        app.core.sessions.SessionCalendar
            Its trading day starts at ``open`` in ``tz``.
        """
        t = self._terms(symbol)
        name = t.session_calendar if t is not None and t.session_calendar is not None else self.session_calendar
        if t is not None and t.session_open is not None:
            open_hhmm = t.session_open
        elif t is not None and t.session_calendar is not None:
            open_hhmm = ""  # a symbol that names its own calendar takes that calendar's open
        else:
            open_hhmm = self.session_open
        return _calendar(name, open_hhmm)

    def limits_for(self, symbol: str) -> tuple[int, int, float]:
        """``(max_contracts_per_order, max_position_contracts, daily_loss_limit_usd)`` of
        ``symbol``: its ``[trading.instruments]`` table's where set, else this table's."""
        t = self._terms(symbol)

        def pick(name):
            v = getattr(t, name) if t is not None else None
            return getattr(self, name) if v is None else v
        return (int(pick("max_contracts_per_order")), int(pick("max_position_contracts")),
                float(pick("daily_loss_limit_usd")))

    @property
    def account_loss_limit_usd(self) -> float:
        """The account-wide daily loss limit in force, USD (:attr:`account_daily_loss_limit_usd`,
        else :attr:`daily_loss_limit_usd`)."""
        return float(self.account_daily_loss_limit_usd or self.daily_loss_limit_usd)

    def commission_for(self, symbol: str) -> float:
        """Commission of ``symbol``, USD per contract per side (its table's, else this table's)."""
        t = self._terms(symbol)
        if t is not None and t.commission_per_contract_usd is not None:
            return float(t.commission_per_contract_usd)
        return float(self.commission_per_contract_usd)

    def commissions(self) -> dict[str, float]:
        """``{symbol: USD per contract per side}`` of every :attr:`instruments` table that sets one."""
        return {sym: float(t.commission_per_contract_usd) for sym, t in self.instruments.items()
                if t.commission_per_contract_usd is not None}

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
        return msgspec.to_builtins(self)


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
