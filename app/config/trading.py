"""Trading settings: risk limits, paper costs, bracket offsets, kill-switch timing.

One frozen dataclass, :class:`TradingSettings`, built from a plain mapping (the ``[trading]``
table of the settings TOML) with :meth:`TradingSettings.from_mapping`, which names any unknown
key or wrong type. Units are in the field names: ``_usd``, ``_ticks``, ``_s``, ``_ms``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

MODE_PAPER = "paper"
MODE_SIM = "sim"  # a Sierra Chart simulated account (Sim1 ...) over DTC
MODE_LIVE = "live"
MODES = (MODE_PAPER, MODE_SIM, MODE_LIVE)

#: the words the trader must type to enable live mode and to unlock the kill switch
LIVE_CONFIRM_PHRASE = "LIVE"
UNLOCK_CONFIRM_PHRASE = "UNLOCK"


@dataclass(frozen=True, slots=True)
class TradingSettings:
    """Every trading setting, with its unit.

    Attributes
    ----------
    mode : str
        ``paper`` (default), ``sim`` or ``live``.
    account : str
        DTC TradeAccount (``Sim1`` ...); ignored in paper mode.
    max_contracts_per_order, max_position_contracts : int
        Contracts.
    max_risk_per_trade_usd : float
        Entry-to-stop distance x tick value x contracts, USD.
    require_stop : bool
        Refuse an opening order without a protective stop (its risk is unbounded).
    daily_loss_limit_usd : float
        Realised + open loss of the day that locks trading (and fires the kill switch), USD > 0.
    max_trades_per_day : int
        Confirmed opening tickets per day.
    max_consecutive_losses : int
        Losing round trips in a row that lock trading.
    trading_start, trading_end : str
        ``HH:MM`` window in ``trading_timezone`` when opening orders are allowed (start == end: always).
    trading_timezone : str
        IANA zone name, e.g. ``America/Chicago``.
    stale_data_ms : int
        Market data older than this refuses opening orders (and arms the stale-data trigger).
    commission_per_contract_usd : float
        Paper broker commission per contract per side, USD.
    slippage_ticks : int
        Paper broker adverse slippage on market and stop fills, ticks.
    bracket_stop_ticks, bracket_target_ticks : int
        Offsets of a ladder-click ticket's stop and target from its entry, ticks.
    default_qty : int
        Contracts of a ladder-click ticket.
    kill_verify_timeout_s : float
        How long the kill switch waits for the broker to report flat before FAILED, s.
    disconnect_kill_s : float
        Connection lost with an open position or order for longer than this fires the kill switch, s.
    stale_kill_s : float
        Market data stale with an open position for longer than this fires the kill switch, s.
    """

    mode: str = MODE_PAPER
    account: str = "Sim1"
    max_contracts_per_order: int = 2
    max_position_contracts: int = 4
    max_risk_per_trade_usd: float = 500.0
    require_stop: bool = True
    daily_loss_limit_usd: float = 1000.0
    max_trades_per_day: int = 20
    max_consecutive_losses: int = 3
    trading_start: str = "00:00"
    trading_end: str = "00:00"
    trading_timezone: str = "America/Chicago"
    stale_data_ms: int = 5000
    commission_per_contract_usd: float = 2.25
    slippage_ticks: int = 0
    bracket_stop_ticks: int = 8
    bracket_target_ticks: int = 16
    default_qty: int = 1
    kill_verify_timeout_s: float = 5.0
    disconnect_kill_s: float = 10.0
    stale_kill_s: float = 30.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"trading.mode must be one of {MODES}, got {self.mode!r}")
        for name in ("max_contracts_per_order", "max_position_contracts", "max_trades_per_day",
                     "max_consecutive_losses", "default_qty"):
            if getattr(self, name) < 1:
                raise ValueError(f"trading.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("max_risk_per_trade_usd", "daily_loss_limit_usd", "kill_verify_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"trading.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("trading_start", "trading_end"):
            _parse_hhmm(getattr(self, name), name)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "TradingSettings":
        """Build from a mapping; unknown keys and wrong types raise ``ValueError`` naming the key."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        kw = {}
        for k, v in data.items():
            if k not in known:
                raise ValueError(f"unknown trading setting {k!r} (known: {', '.join(sorted(known))})")
            default = getattr(cls(), k)
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ValueError(f"trading.{k} must be true/false, got {v!r}")
            elif isinstance(default, int):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"trading.{k} must be an integer, got {v!r}")
            elif isinstance(default, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"trading.{k} must be a number, got {v!r}")
                v = float(v)
            elif isinstance(default, str) and not isinstance(v, str):
                raise ValueError(f"trading.{k} must be a string, got {v!r}")
            kw[k] = v
        return cls(**kw)

    def to_dict(self) -> dict:
        """Plain dict (for TOML and the journal)."""
        return asdict(self)


def _parse_hhmm(text: str, name: str = "time") -> int:
    """``"HH:MM"`` -> minutes after midnight; ``ValueError`` naming ``name`` when malformed."""
    try:
        h, m = text.split(":")
        h, m = int(h), int(m)
        if not (0 <= h < 24 and 0 <= m < 60):
            raise ValueError
    except (ValueError, AttributeError):
        raise ValueError(f"trading.{name} must be HH:MM, got {text!r}") from None
    return h * 60 + m


TRADING_FILE = "trading.toml"


def trading_settings_path():
    """``<config folder>/trading.toml`` (risk limits and paper costs; see :class:`TradingSettings`)."""
    from app import paths

    return paths.config_dir() / TRADING_FILE


def load_trading_settings(path=None) -> TradingSettings:
    """Read the trading settings file (defaults when it does not exist).

    The account falls back to ``[trading] account`` of the main settings file
    (:mod:`app.config.settings`) when this file does not set one.

    Raises
    ------
    ValueError
        A malformed file or a bad value (the message names the key and the file).
    """
    import tomllib
    from pathlib import Path

    p = Path(path) if path is not None else trading_settings_path()
    data: dict = {}
    if p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p}: not valid TOML: {exc}") from exc
        data = data.get("trading", data)
    if "account" not in data:
        try:
            from app.config.settings import load_settings

            acct = load_settings().trading.account
            if acct:
                data["account"] = acct
        except Exception:  # the main settings are someone else's concern; defaults are fine
            pass
    try:
        return TradingSettings.from_mapping(data)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc


def save_trading_settings(settings: TradingSettings, path=None):
    """Write ``settings`` atomically (temporary file + ``os.replace``); returns the path."""
    import os
    import tempfile
    from pathlib import Path

    import tomli_w

    p = Path(path) if path is not None else trading_settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump({"trading": settings.to_dict()}, f)
    os.replace(tmp, p)
    return p
