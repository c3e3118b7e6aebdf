"""The user guides say what the code does (issue 16, item 12): the default risk limits and trading
hours are the ``TradingSettings`` defaults, the Linux folders are platformdirs', Sierra Chart's
DTC server menu path is spelled one way in the guide and in every message of ``app/``, and the
Sierra Chart files walk-through and its warning are there.
"""

from __future__ import annotations

import re
import tomllib

import msgspec

from app import paths
from app.config.trading import TradingSettings
from app.live.sierra_source import SC_DATA_FOLDER_MENU, SC_RECORD_DEPTH_OPTION, SC_SYMBOL_SETTINGS_MENU
from app.live.sources import SC_DTC_SERVER_MENU


def _read(repo_root, name):
    return (repo_root / "docs" / name).read_text(encoding="utf-8")


def test_trading_guide_defaults_table_is_the_code(repo_root):
    text = _read(repo_root, "user-guide-trading.md")
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text, flags=re.M))
    want = {k: v for k, v in msgspec.to_builtins(TradingSettings()).items() if k != "instruments"}
    assert set(rows) == set(want)
    for key, shown in rows.items():
        assert tomllib.loads(f"v = {shown}")["v"] == want[key], key


def test_user_guide_default_limits_are_the_code(repo_root):
    t = TradingSettings()
    text = _read(repo_root, "user-guide.md")
    section = text[text.index("**The defaults**"):text.index("## 6.")]
    for needle in (f"at most {t.max_contracts_per_order} per order, {t.max_position_contracts} in position",
                   f"{t.max_risk_per_trade_usd:g} USD, and a stop is required",
                   f"{t.daily_loss_limit_usd:g} USD", f"{t.max_trades_per_day} / {t.max_consecutive_losses}",
                   f"`trading_start` = `trading_end` = `{t.trading_start}`, {t.trading_timezone}",
                   f"{t.stale_data_ms} ms", f"{t.stale_kill_s:g} s with a position", f"{t.disconnect_kill_s:g} s",
                   f"{t.commission_per_contract_usd:g} USD per contract per side",
                   f"stop {t.bracket_stop_ticks} ticks and target {t.bracket_target_ticks} ticks"):
        assert needle in section, needle
    assert t.trading_start == t.trading_end  # "always", as the guide says


def test_linux_folders_in_the_guide_are_platformdirs(repo_root, monkeypatch):
    from platformdirs.unix import Unix

    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    d = Unix(paths.APP_NAME, paths.APP_AUTHOR)
    text = _read(repo_root, "user-guide.md")
    for folder in (d.user_config_dir, d.user_data_dir, d.user_log_dir, d.user_cache_dir + "/numba"):
        assert "`" + folder.replace("/home/u", "~") + "`" in text, folder


def test_one_spelling_of_the_dtc_server_menu_path(repo_root):
    guide = _read(repo_root, "user-guide.md")
    assert SC_DTC_SERVER_MENU in guide
    canonical = "Global Settings >> Sierra Chart Server Settings"
    files = list((repo_root / "app").rglob("*.py")) + list((repo_root / "docs").glob("*.md"))
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "Data/Trade Service Settings > SC Server" not in text, f
        for m in re.finditer(r"Server Settings", text):
            before = text[max(0, m.start() - 40):m.end()]
            assert canonical in before or "SC_DTC_SERVER_MENU" in text[max(0, m.start() - 200):m.start()], (f, before)


def test_walk_through_and_warning_are_in_the_guide(repo_root):
    text = _read(repo_root, "user-guide.md")
    walk = text[text.index("### 2.5 Walk-through"):text.index("### 2.6")]
    for needle in (SC_SYMBOL_SETTINGS_MENU, SC_RECORD_DEPTH_OPTION, SC_DATA_FOLDER_MENU,
                   "| `ES` | `ESZ25_FUT_CME` | `CME` | `0.25` | `12.5` | *Sierra Chart data files* |",
                   "--source sierra-files --data-dir", r"C:\SierraChart\Data",
                   "only been tested on files MIA Elite", "Windows file sharing", "```powershell"):
        assert needle in walk, needle


# ------------------------------------------------------------------ issue 17: two instruments
def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def _two_instruments(repo_root) -> str:
    text = _read(repo_root, "user-guide.md")
    return text[text.index("### 2.7 Two instruments"):text.index("## 3. First run")]


def _sierra_folder(tmp_path):
    data = tmp_path / "SierraChart" / "Data"
    data.mkdir(parents=True)
    for sym in ("ESZ25_FUT_CME", "NQZ25_FUT_CME"):
        (data / f"{sym}.scid").write_bytes(b"")  # the check looks for the file; its records are not read
    return data


def _window_config(argv, settings_path):
    """What ``mia-elite ARGV`` would run on, without opening the window (the parser, the source
    check and the config the window is built from)."""
    from app.cli import build_parser
    from app.cli.gui import check_source
    from app.config.prefs import Prefs
    from app.ui.main import build_config

    args = build_parser(argv).parse_args(argv)
    prefs = Prefs(settings_path)
    assert prefs.load_error == ""
    problem = check_source(args, prefs)
    return args, problem, (None if problem else build_config(args, prefs))


def test_the_two_instrument_settings_of_the_guide_load_and_list_es_and_nq(repo_root, tmp_path):
    from app.config.trading import load_trading_settings

    walk = _two_instruments(repo_root)
    settings_toml, trading_toml = _blocks(walk, "toml")
    data = _sierra_folder(tmp_path)
    path = tmp_path / "settings.toml"
    assert 'data_folder = "C:/SierraChart/Data"' in settings_toml
    path.write_text(settings_toml.replace("C:/SierraChart/Data", data.as_posix()), encoding="utf-8")
    _args, problem, cfg = _window_config([], path)  # `mia-elite` alone
    assert problem == ""
    got = [(i.symbol, i.exchange, i.data_source, i.tick_size, i.tick_value) for i in cfg.instruments]
    assert got == [("ESZ25_FUT_CME", "CME", "sierra_files", 0.25, 12.5), ("NQZ25_FUT_CME", "CME", "sierra_files", 0.25, 5.0)]
    st = tomllib.loads(settings_toml)
    assert st["symbols"]["map"] == {"ES": "ESZ25_FUT_CME", "NQ": "NQZ25_FUT_CME"}
    tp = tmp_path / "trading.toml"
    tp.write_text(trading_toml, encoding="utf-8")
    t = load_trading_settings(tp)
    assert (t.account_max_contracts, t.account_loss_limit_usd) == (3, 1500.0)
    # (max per order, max position, daily loss)
    assert t.limits_for("NQZ25_FUT_CME")[1:] == (1, 600.0)
    assert t.limits_for("ESZ25_FUT_CME")[1:] == (2, 1000.0)
    for needle in (SC_SYMBOL_SETTINGS_MENU, SC_RECORD_DEPTH_OPTION, "NQZ25_FUT_CME.<YYYY-MM-DD>.depth",
                   "Symbol", "Instrument", "Account", "relation pane", "kill switch"):
        assert needle in walk, needle


def test_the_two_instrument_commands_of_the_guide_parse_and_choose_es_and_nq(repo_root, tmp_path):
    walk = _two_instruments(repo_root)
    settings_toml = _blocks(walk, "toml")[0]
    data = _sierra_folder(tmp_path)
    path = tmp_path / "settings.toml"
    path.write_text(settings_toml.replace("C:/SierraChart/Data", data.as_posix()), encoding="utf-8")
    lines = [ln for lang in ("bash", "powershell") for b in _blocks(walk, lang) for ln in b.splitlines()
             if ln.startswith("mia-elite ")]
    assert len(lines) == 2
    for line in lines:
        argv = line.split()[1:]
        argv[argv.index("--data-dir") + 1] = str(data)  # the guide's folder, here
        args, problem, cfg = _window_config(argv, path)
        assert problem == "", line
        assert [(i.symbol, i.tick_value, i.profile) for i in cfg.instruments] == [
            ("ESZ25_FUT_CME", 12.5, ""), ("NQZ25_FUT_CME", 5.0, "scalping")], line
    # what the guide says ends with one line: a symbol given twice, a second one without a tick size
    argv = ["--data-dir", str(data), "--symbol", "ESZ25_FUT_CME", "--symbol", "ESZ25_FUT_CME"]
    assert _window_config(argv, path)[1]
    bare = tmp_path / "bare.toml"
    bare.write_text("", encoding="utf-8")
    argv = ["--data-dir", str(data), "--symbol", "ESZ25_FUT_CME", "--tick-size", "0.25", "--symbol", "NQZ25_FUT_CME"]
    problem = _window_config(argv, bare)[1]
    assert problem.startswith("--source sierra-files: NQZ25_FUT_CME: the tick size must be positive"), problem
    assert "mia-elite: --source sierra-files: NQZ25_FUT_CME: the tick size must be positive" in walk


def test_the_crypto_pair_command_of_the_guide_parses_and_its_files_are_the_shipped_pair(repo_root, shared_data):
    from app.cli import build_parser

    text = _read(repo_root, "user-guide.md")
    line = next(ln for b in _blocks(text, "bash") for ln in b.splitlines() if "btcusdt_20240808.gz" in ln)
    args = build_parser(line.split()[1:]).parse_args(line.split()[1:])
    assert [p.split("/")[-1] for p in args.recording] == ["btcusdt_20240808.gz", "ethusdt_20240808.gz"]
    for p in args.recording:
        assert p.startswith("../shared/data/") and (shared_data / p.removeprefix("../shared/data/")).is_file()
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert line in readme  # the README gives the same command
