"""trading.toml refuses unsafe values: every numeric key has both bounds, the zone must exist (issue 12 item 7)."""

from __future__ import annotations

import msgspec
import pytest

from app.config.schema import ConfigError, allowed_text
from app.config.trading import TradingSettings, load_trading_settings

# (TOML line, key, the allowed range the error must name)
UNSAFE = [
    ("daily_loss_limit_usd = inf", "daily_loss_limit_usd", "a number in (0, 1000000000]"),
    ("daily_loss_limit_usd = nan", "daily_loss_limit_usd", "a number in (0, 1000000000]"),
    ("max_risk_per_trade_usd = inf", "max_risk_per_trade_usd", "a number in (0, 1000000000]"),
    ("max_contracts_per_order = 9223372036854775807", "max_contracts_per_order", "an integer in [1, 10000]"),
    ("max_position_contracts = 9223372036854775807", "max_position_contracts", "an integer in [1, 10000]"),
    ("default_qty = 100000000", "default_qty", "an integer in [1, 10000]"),
    ("max_trades_per_day = 9223372036854775807", "max_trades_per_day", "an integer in [1, 100000]"),
    ("max_consecutive_losses = -1", "max_consecutive_losses", "an integer in [1, 100000]"),
    ("stale_data_ms = -1", "stale_data_ms", "an integer in [0, 3600000]"),
    ("stale_data_ms = 9223372036854775807", "stale_data_ms", "an integer in [0, 3600000]"),
    ("slippage_ticks = -100", "slippage_ticks", "an integer in [0, 10000]"),
    ("commission_per_contract_usd = -2.25", "commission_per_contract_usd", "a number in [0, 1000]"),
    ("commission_per_contract_usd = inf", "commission_per_contract_usd", "a number in [0, 1000]"),
    ("disconnect_kill_s = -10", "disconnect_kill_s", "a number in [0, 86400]"),
    ("disconnect_kill_s = inf", "disconnect_kill_s", "a number in [0, 86400]"),
    ("stale_kill_s = -inf", "stale_kill_s", "a number in [0, 86400]"),
    ("kill_verify_timeout_s = 0", "kill_verify_timeout_s", "a number in (0, 600]"),
    ("kill_verify_timeout_s = inf", "kill_verify_timeout_s", "a number in (0, 600]"),
    ("bracket_stop_ticks = 0", "bracket_stop_ticks", "an integer in [1, 10000]"),
    ("bracket_target_ticks = 0", "bracket_target_ticks", "an integer in [1, 10000]"),
    ('trading_timezone = "Mars/Olympus"', "trading_timezone", "an IANA time zone name"),
    ('trading_timezone = "../../etc/passwd"', "trading_timezone", "an IANA time zone name"),
    ('session_calendar = "moon"', "session_calendar", "'cme_globex' | 'crypto_utc'"),
    ('session_open = "17:60"', "session_open", "a time HH:MM from 00:00 to 23:59"),
    ('[instruments.ESH4]\ncommission_per_contract_usd = -1', "instruments.ESH4.commission_per_contract_usd",
     "a number in [0, 1000]"),
    ('[instruments.ESH4]\nsession_calendar = "lunar"', "instruments.ESH4.session_calendar",
     "'cme_globex' | 'crypto_utc'"),
]


@pytest.mark.parametrize(("line", "key", "allowed"), UNSAFE, ids=[u[0].split("=")[0].strip() + "=" +
                                                                  u[0].split("=")[-1].strip() for u in UNSAFE])
def test_trading_toml_refuses_an_unsafe_value_naming_the_key_and_the_range(tmp_path, line, key, allowed):
    p = tmp_path / "trading.toml"
    p.write_text("[trading]\n" + line.replace("[instruments.", "[trading.instruments.") + "\n")
    before = p.read_bytes()
    with pytest.raises(ConfigError) as ei:
        load_trading_settings(p, tmp_path / "settings.toml")
    e = ei.value
    assert e.key == f"trading.{key}" and e.where == str(p)
    assert allowed in e.allowed
    text = str(e)
    assert text.startswith(f"{p}: trading.{key} = ") and f"allowed: {allowed}" in text and "\n" not in text
    assert p.read_bytes() == before  # nothing lost


def test_the_settings_toml_trading_table_is_held_to_the_same_ranges(tmp_path):
    st = tmp_path / "settings.toml"
    st.write_text("[trading]\ndaily_loss_limit_usd = inf\n")
    with pytest.raises(ConfigError, match=r"trading\.daily_loss_limit_usd = inf is invalid; allowed: a number in"):
        load_trading_settings(tmp_path / "trading.toml", st)


def test_construction_in_code_is_checked_the_same_way():
    with pytest.raises(ConfigError, match="trading_timezone = 'Mars/Olympus'"):
        TradingSettings(trading_timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"daily_loss_limit_usd = inf is invalid"):
        TradingSettings(daily_loss_limit_usd=float("inf"))
    with pytest.raises(ConfigError, match=r"bracket_stop_ticks = 0 is invalid"):
        TradingSettings(bracket_stop_ticks=0)


def test_every_numeric_field_has_both_bounds():
    """A new numeric setting without an upper bound would accept inf or 2**63-1 again."""
    for f in msgspec.structs.fields(TradingSettings):
        info = msgspec.inspect.type_info(f.type)
        while isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        if isinstance(info, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
            assert (info.ge is not None or info.gt is not None) and (info.le is not None or info.lt is not None), \
                f"{f.name}: {allowed_text(f.type)}"


def test_safe_values_at_the_edges_load(tmp_path):
    p = tmp_path / "trading.toml"
    p.write_text("[trading]\ndaily_loss_limit_usd = 1000000000\nmax_contracts_per_order = 10000\n"
                 "stale_data_ms = 0\nstale_kill_s = 3600\ntrading_timezone = \"UTC\"\nbracket_stop_ticks = 1\n"
                 "[trading.instruments.ESH4]\ncommission_per_contract_usd = 0\n")
    s = load_trading_settings(p, tmp_path / "settings.toml")
    assert (s.daily_loss_limit_usd, s.max_contracts_per_order, s.stale_kill_s) == (1e9, 10000, 3600.0)
    assert s.commission_for("ESH4") == 0.0 and s.commission_for("NQH4") == s.commission_per_contract_usd
