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
