"""Trading settings on the common schema: errors name ``trading.<key>``; two files, one TradingSettings."""

from __future__ import annotations

import pytest

from app.config import settings as S
from app.config.schema import ConfigError
from app.config.trading import TradingSettings, load_trading_settings, parse_hhmm, save_trading_settings


def test_settings_from_mapping_names_bad_keys():
    with pytest.raises(ValueError, match=r"trading\.max_lots is an unknown key; allowed keys: mode, account"):
        TradingSettings.from_mapping({"max_lots": 3})
    with pytest.raises(ValueError, match=r"trading\.max_trades_per_day = '3' is invalid; allowed: an integer in \[1, 100000\]"):
        TradingSettings.from_mapping({"max_trades_per_day": "3"})
    with pytest.raises(ValueError, match=r"trading\.trading_start = '8h30' is invalid; allowed: a time HH:MM"):
        TradingSettings.from_mapping({"trading_start": "8h30"})
    with pytest.raises(ConfigError, match=r"trading\.mode = 'yolo' is invalid; allowed: 'paper' \| 'sim' \| 'live'"):
        TradingSettings.from_mapping({"mode": "yolo"})
    s = TradingSettings.from_mapping({"daily_loss_limit_usd": 250, "mode": "sim"})
    assert s.daily_loss_limit_usd == 250.0 and isinstance(s.daily_loss_limit_usd, float) and s.mode == "sim"


def test_construction_checks_the_ranges_too():
    with pytest.raises(ConfigError, match=r"max_contracts_per_order = 0 is invalid; allowed: an integer in \[1, 10000\]"):
        TradingSettings(max_contracts_per_order=0)
    with pytest.raises(ConfigError, match=r"daily_loss_limit_usd = 0 is invalid; allowed: a number in \(0, 1000000000\]"):
        TradingSettings(daily_loss_limit_usd=0)
    with pytest.raises(ConfigError, match="trading_end"):
        TradingSettings(trading_end="24:00")
    assert parse_hhmm("08:30") == 510
    with pytest.raises(ConfigError, match="trading.trading_start"):
        parse_hhmm("8:3", "trading.trading_start")


def test_one_trading_settings_class_in_both_files(tmp_path):
    assert S.Settings().trading == TradingSettings()
    st = tmp_path / "settings.toml"
    st.write_text('[trading]\naccount = "Sim2"\nmax_trades_per_day = 7\n')
    tt = tmp_path / "trading.toml"
    s = load_trading_settings(tt, st)  # no trading.toml: settings.toml's [trading] table
    assert (s.account, s.max_trades_per_day) == ("Sim2", 7)
    tt.write_bytes(b"\xef\xbb\xbf[trading]\nmax_trades_per_day = 9\nmode = \"sim\"\n")  # BOM accepted
    s = load_trading_settings(tt, st)
    assert (s.account, s.max_trades_per_day, s.mode) == ("Sim2", 9, "sim")
    tt.write_text("max_position_contracts = 6\n")  # bare keys are the table itself
    assert load_trading_settings(tt, st).max_position_contracts == 6


def test_a_bad_value_names_the_file_it_is_in(tmp_path):
    st = tmp_path / "settings.toml"
    st.write_text("[trading]\nmax_trades_per_day = 0\n")
    with pytest.raises(ConfigError) as ei:
        load_trading_settings(tmp_path / "trading.toml", st)
    assert ei.value.where == str(st) and ei.value.key == "trading.max_trades_per_day"


def test_save_round_trip(tmp_path):
    s = TradingSettings(mode="sim", account="Sim1", slippage_ticks=1)
    p = save_trading_settings(s, tmp_path / "trading.toml")
    assert load_trading_settings(p, tmp_path / "settings.toml") == s
    assert [f.name for f in tmp_path.iterdir()] == ["trading.toml"]
