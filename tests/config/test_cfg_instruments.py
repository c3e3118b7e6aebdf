"""Issue 17 item 1: instruments as a list (settings, command line, PipelineConfig)."""

from __future__ import annotations

import argparse

import pytest

from app.config.prefs import Prefs
from app.config.schema import ConfigError
from app.config.settings import InstrumentSettings, from_dict, load_settings, save_settings
from app.live.pipeline import InstrumentConfig, PipelineConfig, SourceChoiceError, parse_symbol_arg


def _args(argv):
    from app.cli import gui

    p = argparse.ArgumentParser()
    gui.add_arguments(p)
    return p.parse_args(argv)


TWO = {"instruments": [
    {"symbol": "ESZ25_FUT_CME", "exchange": "CME", "source": "sierra_files", "tick_size": 0.25,
     "tick_value": 12.5, "session": "cme_globex", "profile": "scalping"},
    {"symbol": "NQZ25_FUT_CME", "exchange": "CME", "source": "sierra_files", "tick_size": 0.25, "tick_value": 5.0},
]}


def test_instruments_table_loads_in_order_and_round_trips(tmp_path):
    s = from_dict(TWO)
    got = s.instrument_list()
    assert [(i.symbol, i.source, i.tick_size, i.tick_value, i.session, i.profile) for i in got] == [
        ("ESZ25_FUT_CME", "sierra_files", 0.25, 12.5, "cme_globex", "scalping"),
        ("NQZ25_FUT_CME", "sierra_files", 0.25, 5.0, "", "")]
    path = save_settings(s, tmp_path / "settings.toml")
    assert load_settings(path).instrument_list() == got


@pytest.mark.parametrize("entry, key, says", [
    ({"symbol": "ES", "session": "london"}, "instruments[1].session", "'cme_globex' | 'crypto_utc'"),
    ({"symbol": "ES", "profile": "fast"}, "instruments[1].profile", "'scalping'"),
    ({"symbol": "ES", "source": "files"}, "instruments[1].source", "'dtc' | 'sierra_files'"),
    ({"symbol": "ES", "source": "sierra_files"}, "instruments[1].tick_size", "> 0 for source 'sierra_files'"),
    ({"symbol": "ES", "tick_size": -1}, "instruments[1].tick_size", ">= 0"),
    ({"symbol": "ES", "tick": 0.25}, "instruments[1].tick", "allowed keys: symbol, exchange, source"),
    ({"exchange": "CME"}, "instruments[1].symbol", "a non-empty string"),
    ({"symbol": "BTCUSDT"}, "instruments[1].symbol", "not listed before"),
])
def test_bad_instrument_names_key_and_allowed_values(entry, key, says):
    raw = {"instruments": [{"symbol": "BTCUSDT"}, entry]}
    with pytest.raises(ConfigError) as ei:
        from_dict(raw, "settings.toml")
    text = str(ei.value)
    assert ei.value.key == key and says in text and text.startswith("settings.toml: ")
    assert "\n" not in text


def test_old_single_symbol_settings_load_as_a_list_of_one():
    old = {"symbols": {"map": {"ES": "ESZ25_FUT_CME"}, "source": {"ES": "sierra_files"}},
           "ui": {"connection.active_symbol": "ES",
                  "symbol_details": {"ES": {"exchange": "CME", "tick_size": 0.25, "tick_value": 12.5}}}}
    assert from_dict(old).instrument_list() == [InstrumentSettings(
        symbol="ESZ25_FUT_CME", exchange="CME", source="sierra_files", tick_size=0.25, tick_value=12.5)]
    assert from_dict({}).instrument_list() == []


def test_first_instrument_is_the_flat_fields():
    cfg = PipelineConfig(symbol="ESH4", tick_size=0.25, tick_value=12.5, exchange="CME")
    assert cfg.instruments == [InstrumentConfig("ESH4", "CME", 0.25, 12.5, "dtc", "", "")]
    cfg.set_instruments([InstrumentConfig("BTCUSDT", tick_size=0.1, profile="scalping"),
                         InstrumentConfig("ETHUSDT", tick_size=0.01)])
    assert (cfg.symbol, cfg.tick_size, cfg.profile) == ("BTCUSDT", 0.1, "scalping")
    assert [i.symbol for i in cfg.instruments] == ["BTCUSDT", "ETHUSDT"]
    one = cfg.instrument_config("ETHUSDT")
    assert (one.symbol, one.tick_size, one.more_instruments, one.profile) == ("ETHUSDT", 0.01, [], "scalping")
    with pytest.raises(ValueError, match="listed twice"):
        cfg.set_instruments([InstrumentConfig("A"), InstrumentConfig("A")])
    with pytest.raises(ValueError, match="data_source 'x'"):
        cfg.set_instruments([InstrumentConfig("A", data_source="x")])


def test_symbol_argument_with_profile():
    assert parse_symbol_arg("ESZ5") == InstrumentConfig("ESZ5")
    assert parse_symbol_arg("ESZ5:scalping") == InstrumentConfig("ESZ5", profile="scalping")
    with pytest.raises(SourceChoiceError, match="profile 'fast' is not one of"):
        parse_symbol_arg("ESZ5:fast")
    with pytest.raises(SourceChoiceError, match="the symbol is empty"):
        parse_symbol_arg(":scalping")


def test_repeated_symbol_and_recording_on_the_command_line(tmp_path):
    from app.ui.main import build_config

    pr = Prefs(tmp_path / "settings.toml")
    cfg = build_config(_args(["--recording", "a.mrec", "--recording", "b.mrec", "--symbol", "BTCUSDT",
                              "--symbol", "ETHUSDT:scalping", "--tick-size", "0.1"]), pr)
    assert cfg.embedded and cfg.recording == ["a.mrec", "b.mrec"]
    assert [(i.symbol, i.profile, i.tick_size) for i in cfg.instruments] == [
        ("BTCUSDT", "", 0.1), ("ETHUSDT", "scalping", 0.0)]
    with pytest.raises(SourceChoiceError, match="listed twice"):
        build_config(_args(["--symbol", "A", "--symbol", "A"]), pr)
    # one --recording stays a path, as before; no --symbol: the recording's symbol alone
    cfg = build_config(_args(["--recording", "a.mrec"]), pr)
    assert cfg.recording == "a.mrec" and len(cfg.instruments) == 1 and cfg.instruments[0].symbol == ""


def test_saved_instruments_reach_the_config_and_lend_details_to_symbol_args(tmp_path):
    from app.ui.main import build_config

    save_settings(from_dict(TWO), tmp_path / "settings.toml")
    pr = Prefs(tmp_path / "settings.toml")
    cfg = build_config(_args([]), pr)
    assert [(i.symbol, i.data_source, i.tick_value) for i in cfg.instruments] == [
        ("ESZ25_FUT_CME", "sierra_files", 12.5), ("NQZ25_FUT_CME", "sierra_files", 5.0)]
    assert cfg.profile == "scalping" and cfg.session == "cme_globex"
    cfg = build_config(_args(["--symbol", "NQZ25_FUT_CME:budget"]), pr)
    assert [(i.symbol, i.tick_value) for i in cfg.instruments] == [("NQZ25_FUT_CME", 5.0)]
    assert cfg.profile == "budget"


def test_several_recordings_are_loaded_as_analyze_loads_them(shared_data):
    from app.cli.gui import load_recordings

    recs = load_recordings([str(shared_data / "crypto/btcusdt_20240808.gz"),
                            str(shared_data / "crypto/ethusdt_20240808.gz")])
    assert [r.instrument.symbol for r in recs] == ["BTCUSDT", "ETHUSDT"]
    assert load_recordings(["x.mrec"]) == ["x.mrec"]


def test_bad_symbol_argument_exits_2_with_one_line(capsys):
    from app.cli import main

    rc = main(["--symbol", "ESZ5:fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1] == ("mia-elite: --symbol 'ESZ5:fast': profile 'fast' is not one of scalping, "
                                   "production, development, budget")
