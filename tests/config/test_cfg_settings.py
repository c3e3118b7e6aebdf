"""User settings: defaults, round trip, validation naming the key, atomic save, keyring."""

from __future__ import annotations

import os

import keyring
import keyring.backend
import keyring.errors
import pytest
from memory_keyring import MemoryKeyring

from app.config import settings as S


def test_defaults_when_no_file(tmp_path):
    s = S.load_settings(tmp_path / "none.toml")
    assert s.connection.host == "127.0.0.1" and s.connection.port == 11099
    assert s.connection.encoding == "binary" and s.analysis.profile == "production"
    assert s.display.sound is True and s.replay.speed == 1.0
    assert s.symbols.data_source("ES") == "dtc" and s.symbols.service_symbol("ES") == "ES"


def test_default_path_is_in_the_user_config_folder(_isolated_home):
    p = S.save_settings(S.Settings())
    assert p == S.settings_path()
    assert str(p).startswith(str(_isolated_home)) and p.name == "settings.toml"
    assert S.load_settings() == S.Settings()


def test_round_trip_every_section(tmp_path):
    s = S.Settings()
    s.connection.host = "10.0.0.5"
    s.connection.port = 11098
    s.connection.encoding = "json"
    s.connection.username = "trader"
    s.symbols.map = {"ES": "ESZ25_FUT_CME", "NQ": "NQZ5"}
    s.symbols.source = {"ES": "sierra_files", "NQ": "dtc"}
    s.sierra.data_folder = "C:/SierraChart/Data"
    s.analysis.profile = "scalping"
    s.analysis.overrides = {"elite": {"min_elite_score": 0.8}, "dom.wall_ratio": 5.0}
    s.replay.speed = 10.0
    s.display.contrast = 0.95
    s.display.sound = False
    s.trading = S.TradingSettings(account="Sim1", max_contracts_per_order=3)
    s.ui.connection_embedded = False
    s.ui.symbol_details = {"ES": S.SymbolDetail(exchange="CME", tick_size=0.25, tick_value=12.5)}
    path = S.save_settings(s, tmp_path / "settings.toml")
    back = S.load_settings(path)
    assert back == s
    assert back.symbols.service_symbol("ES") == "ESZ25_FUT_CME"
    assert back.symbols.data_source("ES") == "sierra_files"
    assert "password" not in path.read_text().lower()


@pytest.mark.parametrize(
    "toml, key, allowed",
    [
        ('[connection]\nport = 70000\n', "connection.port", "[1, 65535]"),
        ('[connection]\nport = "11099"\n', "connection.port", "an integer"),
        ('[connection]\nencoding = "xml"\n', "connection.encoding", "'binary'"),
        ('[symbols.source]\nES = "ftp"\n', "symbols.source.ES", "'sierra_files'"),
        ('[analysis]\nprofile = "yolo"\n', "analysis.profile", "'production'"),
        ('[replay]\nspeed = 0\n', "replay.speed", "(0, 1000]"),
        ('[display]\ncontrast = 2.0\n', "display.contrast", "[0.5, 1]"),
        ('[display]\nsound = "yes"\n', "display.sound", "true | false"),
    ],
)
def test_bad_value_names_the_key_and_the_allowed_values(tmp_path, toml, key, allowed):
    p = tmp_path / "settings.toml"
    p.write_text(toml)
    with pytest.raises(S.ConfigError) as ei:
        S.load_settings(p)
    assert key in str(ei.value) and allowed in str(ei.value)


def test_bad_profile_override_names_the_profile_key(tmp_path):
    p = tmp_path / "settings.toml"
    p.write_text('[analysis]\nprofile = "production"\n[analysis.overrides]\n"elite.min_elite_score" = 7.0\n')
    with pytest.raises(S.ConfigError, match="elite.min_elite_score"):
        S.load_settings(p)


def test_invalid_toml_names_the_file(tmp_path):
    p = tmp_path / "settings.toml"
    p.write_text("[connection\nhost = 1")
    with pytest.raises(S.ConfigError, match="not valid TOML") as ei:
        S.load_settings(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize(
    "toml, key, allowed",
    [
        ('[connection]\nhost = "h"\nfuture_option = 1\n', "connection.future_option", "host, port, encoding"),
        ('[newsection]\na = 1\n', "newsection", "connection, trading, symbols"),
        ('[trading]\nmax_lots = 3\n', "trading.max_lots", "max_contracts_per_order"),
        ('[ui]\n"window.size" = 3\n', 'ui."window.size"', '"window.geometry"'[1:-1]),
    ],
)
def test_an_unknown_key_is_an_error_naming_it_and_the_known_keys(tmp_path, toml, key, allowed):
    """One policy for every settings file: an unknown key is reported, never dropped silently."""
    p = tmp_path / "settings.toml"
    p.write_text(toml)
    with pytest.raises(S.ConfigError) as ei:
        S.load_settings(p)
    assert ei.value.kind == "unknown" and ei.value.key == key
    assert f"{key} is an unknown key" in str(ei.value) and allowed in str(ei.value)


def test_save_is_atomic_and_refuses_bad_values(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    good = S.Settings()
    good.connection.username = "first"
    S.save_settings(good, path)
    bad = S.Settings()
    bad.connection.port = 0
    with pytest.raises(S.ConfigError, match="connection.port"):
        S.save_settings(bad, path)
    assert S.load_settings(path).connection.username == "first"

    # a crash during the write leaves the old file and no temp file behind
    second = S.Settings()
    second.connection.username = "second"

    def boom(src, dst):
        raise OSError("disk full (test)")

    monkeypatch.setattr(S.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        S.save_settings(second, path)
    monkeypatch.undo()
    assert S.load_settings(path).connection.username == "first"
    assert os.listdir(tmp_path) == ["settings.toml"]


class _NoKeyring(keyring.backend.KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        raise keyring.errors.NoKeyringError("No recommended backend was available (test)")

    def set_password(self, service, username, password):
        raise keyring.errors.NoKeyringError("No recommended backend was available (test)")

    def delete_password(self, service, username):
        raise keyring.errors.NoKeyringError("none")


@pytest.fixture
def restore_keyring():
    old = keyring.get_keyring()
    yield
    keyring.set_keyring(old)


def test_password_in_the_keyring_not_in_the_file(tmp_path, restore_keyring):
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    S.set_password("127.0.0.1", 11099, "trader", "s3cret")
    assert S.get_password("127.0.0.1", 11099, "trader") == "s3cret"
    assert kr.store == {(S.KEYRING_SERVICE, "trader@127.0.0.1:11099"): "s3cret"}
    assert S.get_password("127.0.0.1", 11099, "other") is None
    assert S.delete_password("127.0.0.1", 11099, "trader") is True
    assert S.get_password("127.0.0.1", 11099, "trader") is None
    with pytest.raises(ValueError):
        S.set_password("h", 1, "", "x")


def test_no_keyring_backend_fails_soft_with_a_clear_message(restore_keyring, caplog):
    keyring.set_keyring(_NoKeyring())
    assert S.get_password("h", 1, "trader") is None
    assert "no usable OS keyring" in caplog.text
    with pytest.raises(S.PasswordStoreError, match="not saved") as ei:
        S.set_password("h", 1, "trader", "s3cret")
    assert "s3cret" not in str(ei.value) and "s3cret" not in caplog.text
