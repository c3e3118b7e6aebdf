"""A settings file that fails to load is never overwritten; a BOM is accepted; one atomic writer.

The window tests go through what ``mia-elite gui`` does: :class:`Prefs` loads the file,
``build_config`` turns it into the pipeline configuration, the :class:`MainWindow` is created,
shown and closed (``closeEvent`` saves the preferences).
"""

from __future__ import annotations

import argparse
import os
import re

import pytest

from app.config import files as F
from app.config import settings as S
from app.config.prefs import WINDOW_FILE, Prefs
from app.config.profiles import PROFILE_KEYS, PROFILE_NAMES, load_profile
from app.config.schema import ConfigError
from app.core.clock import ManualClock
from app.paths import resources_root

#: what a user's file holds after a few sessions (host, user, account, symbols, folder, profile)
USER_FILE = """\
# my settings
[connection]
host = "10.1.2.3"
port = 11098
encoding = "json"
username = "trader7"

[trading]
account = "Sim3"

[symbols.map]
ES = "ESZ25_FUT_CME"

[symbols.source]
ES = "sierra_files"

[sierra]
data_folder = "C:/SierraChart/Data"

[analysis]
profile = "scalping"

[display]
contrast = {contrast}
sound = false

[ui]
"connection.embedded" = false
"connection.active_symbol" = "ES"

[ui.symbol_details.ES]
exchange = "CME"
tick_size = 0.25
tick_value = 12.5
"""

GOOD = USER_FILE.format(contrast="0.9")
BAD_CASES = {
    "out_of_range": (USER_FILE.format(contrast="1.5"), "display.contrast", "a number in [0.5, 1]"),
    "syntax_error": (GOOD.replace('[sierra]', '[sierra'), "", "not valid TOML"),
    "unknown_key": (GOOD.replace('sound = false', 'sound = false\nvolume = 3'), "display.volume",
                    "allowed keys: contrast, sound"),
}
STAMP_NS = 1_764_590_400_000_000_000  # 2025-12-01 12:00:00 UTC
STAMP = "20251201T120000Z"


def _window_session(qtbot, prefs):
    """Build the config and the window as ``mia-elite gui`` does, show it, close it."""
    from app.ui import main as gui_main
    from app.ui.main_window import MainWindow

    parser = argparse.ArgumentParser()
    gui_main.add_arguments(parser)
    cfg = gui_main.build_config(parser.parse_args([]), prefs)
    w = MainWindow(cfg, prefs)
    qtbot.addWidget(w)
    w.show()
    banner = w.problem_banner.text
    logged = list(w.problems.entries)
    w.close()
    assert w._closed
    return cfg, banner, logged


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_a_bad_file_goes_through_a_window_session_unchanged(qtbot, tmp_path, case):
    text, key, allowed = BAD_CASES[case]
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    before = path.read_bytes()

    prefs = Prefs(path, clock=ManualClock(time_ns=STAMP_NS))
    err = prefs.load_result.error
    assert isinstance(err, ConfigError) and err.key == key
    assert allowed in prefs.load_error and str(path) in prefs.load_error
    assert prefs.get("heatmap.contrast") == 0.98 and not prefs.writable  # defaults for this session

    _, banner, logged = _window_session(qtbot, prefs)
    assert logged and logged[0][0] == "error" and allowed in logged[0][1]
    assert allowed in banner and (key in banner if key else "not valid TOML" in banner)
    assert "unchanged" in banner and f"settings.toml.bad-{STAMP}" in banner

    assert path.read_bytes() == before  # the user's file, byte for byte
    copies = sorted(tmp_path.glob("settings.toml.bad-*"))
    assert [c.name for c in copies] == [f"settings.toml.bad-{STAMP}"]
    assert copies[0].read_bytes() == before
    assert not list(tmp_path.glob(".settings.toml-*"))  # no temporary file left


def test_a_bom_file_is_loaded_and_a_window_session_leaves_it_unchanged(qtbot, tmp_path):
    path = tmp_path / "settings.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    before = path.read_bytes()

    prefs = Prefs(path)
    assert prefs.load_error == "" and prefs.problems() == []
    cfg, banner, logged = _window_session(qtbot, prefs)
    assert (cfg.host, cfg.port, cfg.encoding, cfg.username) == ("10.1.2.3", 11098, "json", "trader7")
    assert (cfg.trade_account, cfg.sierra_data_dir, cfg.profile) == ("Sim3", "C:/SierraChart/Data", "scalping")
    assert (cfg.embedded, cfg.symbol, cfg.data_source, cfg.tick_size) == (False, "ESZ25_FUT_CME", "sierra_files", 0.25)
    assert banner == "" and logged == []

    assert path.read_bytes() == before  # nothing the user changed: nothing written
    assert not list(tmp_path.glob("settings.toml.bad-*"))
    assert (tmp_path / WINDOW_FILE).exists()  # the layout went to its own file


def test_a_change_is_merged_into_the_users_document(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(GOOD, encoding="utf-8")
    prefs = Prefs(path)
    prefs.set("connection.host", "10.1.2.3")  # the same value: not a change
    assert prefs.save() == path and path.read_text(encoding="utf-8") == GOOD
    prefs.set("heatmap.contrast", 0.8)
    prefs.save()
    back = S.load_settings(path)
    assert back.display.contrast == 0.8
    assert (back.connection.host, back.connection.username, back.trading.account) == ("10.1.2.3", "trader7", "Sim3")
    assert back.symbols.map == {"ES": "ESZ25_FUT_CME"} and back.sierra.data_folder == "C:/SierraChart/Data"
    text = path.read_text(encoding="utf-8")
    assert "port = 11098" in text and "replay" not in text  # defaults are not written for untouched keys


def test_a_failed_load_refuses_even_a_user_change(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(BAD_CASES["out_of_range"][0], encoding="utf-8")
    before = path.read_bytes()
    prefs = Prefs(path)
    prefs.set("connection.host", "192.168.0.9")
    assert prefs.save() is None
    assert path.read_bytes() == before
    assert len(list(tmp_path.glob("settings.toml.bad-*"))) == 1
    Prefs(path)  # started again on the same bad file: the same copy, not another one
    assert len(list(tmp_path.glob("settings.toml.bad-*"))) == 1


def test_a_bad_change_is_refused_naming_the_key_and_nothing_is_written(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(GOOD, encoding="utf-8")
    prefs = Prefs(path)
    prefs.set("heatmap.contrast", 1.5)
    with pytest.raises(ConfigError, match=re.escape("display.contrast = 1.5 is invalid; allowed: a number in [0.5, 1]")):
        prefs.save()
    assert path.read_text(encoding="utf-8") == GOOD


def test_syntax_error_and_unreadable_text_name_the_file(tmp_path):
    p = tmp_path / "settings.toml"
    p.write_text("[connection\nhost = 1")
    with pytest.raises(ConfigError, match="not valid TOML") as ei:
        S.load_settings(p)
    assert ei.value.kind == "file" and str(p) in str(ei.value)
    p.write_bytes(b'[connection]\nhost = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        S.load_settings(p)


def test_unknown_key_in_trading_toml_is_reported(tmp_path):
    from app.config.trading import load_trading_settings

    t = tmp_path / "trading.toml"
    t.write_text("[trading]\nmax_contracts_per_order = 3\nmax_lots = 3\n")
    with pytest.raises(ConfigError, match=r"trading\.max_lots is an unknown key") as ei:
        load_trading_settings(t, tmp_path / "settings.toml")
    assert str(t) in str(ei.value)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_each_profile_file_loads_complete(name):
    p = load_profile(name)
    assert p.name == name and set(p.values) == set(PROFILE_KEYS)


def test_every_shipped_profile_file_is_a_known_profile():
    shipped = sorted(f.stem for f in (resources_root() / "profiles").glob("*.toml"))
    assert shipped == sorted(PROFILE_NAMES)


def test_atomic_writer_leaves_no_temporary_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "settings.toml"
    target.write_text("old = 1\n")

    def boom(src, dst):
        raise OSError("rename refused (test)")

    monkeypatch.setattr(F.os, "replace", boom)
    with pytest.raises(OSError, match="rename refused"):
        F.atomic_write(target, "new = 2\n")
    monkeypatch.undo()
    assert target.read_text() == "old = 1\n"
    assert os.listdir(tmp_path) == ["settings.toml"]


def test_atomic_writer_leaves_no_temporary_file_when_the_fsync_fails(tmp_path, monkeypatch):
    target = tmp_path / "trading.toml"

    def boom(fd):
        raise OSError("disk full (test)")

    monkeypatch.setattr(F.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        F.atomic_write(target, b"[trading]\n")
    assert os.listdir(tmp_path) == []


def test_prefs_save_goes_through_the_atomic_writer(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_text(GOOD, encoding="utf-8")
    prefs = Prefs(path)
    prefs.set("connection.username", "other")
    monkeypatch.setattr(F.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("no (test)")))
    with pytest.raises(OSError):
        prefs.save()
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == GOOD and sorted(os.listdir(tmp_path)) == ["settings.toml"]


PREVIOUS_VERSION_FILE = """\
[connection]
host = "127.0.0.1"
port = 11099
encoding = "binary"
username = ""

[trading]
account = "Sim1"

[symbols.map]
ES = "ESZ5"

[symbols.source]
ES = "sierra_files"

[sierra]
data_folder = ""

[analysis]
profile = "scalping"

[analysis.overrides]

[replay]
speed = 10.0

[display]
contrast = 0.9
sound = false

[ui]
"window.geometry" = "AAEC"
"window.state" = "AAB"
"splitters.main_splitter" = "x"
"splitters.tape_splitter" = "y"
"alerts.notify" = true
"connection.embedded" = false
"connection.recording" = ""
"connection.active_symbol" = "ES"

[ui.symbol_details.ES]
exchange = ""
tick_size = 0.25
tick_value = 0.0
"""


def test_a_file_written_by_the_previous_version_loads(tmp_path):
    """Every key the previous version wrote (window layout in [ui] included) is in the schema."""
    path = tmp_path / "settings.toml"
    path.write_text(PREVIOUS_VERSION_FILE, encoding="utf-8")
    prefs = Prefs(path)
    assert prefs.problems() == []
    assert prefs.get("window.geometry") == "AAEC" and prefs.get("splitters.tape_splitter") == "y"
    assert prefs.get("connection.symbols")[0]["tick_size"] == 0.25 and prefs.get("alerts.notify") is True
    prefs.set("window.geometry", "BBBB")  # the layout now goes to window.toml
    prefs.save()
    assert path.read_text(encoding="utf-8") == PREVIOUS_VERSION_FILE
    assert Prefs(path).get("window.geometry") == "BBBB"


def test_the_settings_problem_stays_in_the_strip_after_a_pipeline_restart(qapp, tmp_path):
    """A profile or connection change restarts the pipeline and clears the strip; a settings file
    that failed to load must still be named there afterwards (it is still not being saved)."""
    import asyncio

    import qasync

    from app.feeds.samples import load_default_sample
    from app.live.pipeline import PipelineConfig
    from app.sim.server import DTCServer
    from app.ui.main_window import MainWindow

    text, key, allowed = BAD_CASES["out_of_range"]
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    prefs = Prefs(path, clock=ManualClock(time_ns=STAMP_NS))
    out = {}

    async def main():
        rec = load_default_sample()
        server = DTCServer(rec, host="127.0.0.1", port=0, speed=1.0, paused=True)
        await server.start()
        try:
            cfg = PipelineConfig(embedded=False, host="127.0.0.1", port=server.port, symbol=rec.instrument.symbol,
                                 tick_size=0.25, tick_value=12.5)
            w = MainWindow(cfg, prefs)
            w.show()
            await w.start()
            out["before"] = w.problem_banner.text
            await w.restart_pipeline()
            out["after"] = w.problem_banner.text
            closed = asyncio.get_running_loop().create_future()
            w.sigClosed.connect(lambda: closed.done() or closed.set_result(True))
            w.close()
            await asyncio.wait_for(closed, 30)
        finally:
            await server.stop()

    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        asyncio.set_event_loop(None)
    assert key in out["before"] and allowed in out["before"]
    assert key in out["after"] and allowed in out["after"]
