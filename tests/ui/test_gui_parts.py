"""Non-drawing parts of the GUI: frame slot, latency matching, prefs, connection dialog, CLI options."""

from __future__ import annotations

import argparse
import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.live.pipeline import FrameSlot, LatencyTracker, PipelineConfig  # noqa: E402


def test_frame_slot_keeps_the_newest_and_counts_dropped():
    slot = FrameSlot()
    assert slot.take() is None

    def writer():
        for i in range(1000):
            slot.put(i)

    th = threading.Thread(target=writer)
    th.start()
    th.join()
    assert slot.take() == 999
    assert slot.take() is None
    assert slot.published == 1000 and slot.taken == 1 and slot.dropped == 999


def test_latency_tracker_matches_batches_to_the_first_frame_that_holds_them():
    lt = LatencyTracker()
    lt.enabled = True
    lt.arrived(10, True, 1_000_000)  # cum 10
    lt.arrived(5, False, 2_000_000)  # trades only: not a depth arrival
    lt.arrived(5, True, 3_000_000)  # cum 20
    lt.frame_published(12, 4_000_000)
    lt.frame_published(20, 6_000_000)
    lt.painted(12, 5_000_000)
    lt.painted(20, 9_000_000)
    paint, pub = lt.latencies_ms()
    np.testing.assert_allclose(paint, [4.0, 6.0])
    np.testing.assert_allclose(pub, [3.0, 3.0])
    lt.arrived(5, True, 10_000_000)  # never shown: left out
    paint, _ = lt.latencies_ms()
    assert paint.size == 2


def test_prefs_round_trip_through_the_settings_file(tmp_path):
    from app.config.settings import load_settings
    from app.config.prefs import Prefs

    path = tmp_path / "settings.toml"
    p = Prefs(path)
    p.set("window.geometry", "AAEC")
    p.set("heatmap.contrast", 0.9)
    p.set("connection.encoding", "json_compact")
    p.set("connection.symbols", [{"name": "ES", "symbol": "ESZ25_FUT_CME", "tick_size": 0.25, "source": "sierra_files"}])
    p.save()
    st = load_settings(path)  # the settings module reads what the window wrote
    assert st.display.contrast == 0.9 and st.symbols.map == {"ES": "ESZ25_FUT_CME"}
    assert st.symbols.data_source("ES") == "sierra_files" and st.connection.encoding == "json_compact"
    q = Prefs(path)
    assert q.get("heatmap.contrast") == 0.9 and q.get("window.geometry") == "AAEC"
    assert q.get("connection.encoding") == "json_compact"
    assert q.get("connection.symbols")[0]["tick_size"] == 0.25
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    b = Prefs(bad)
    assert b.load_error and b.get("heatmap.contrast") == 0.98  # defaults, and the reason kept
    b.set("heatmap.contrast", 0.9)
    assert b.save() is None and bad.read_text() == "this is = = not toml"  # a bad file is never overwritten


def test_connection_dialog_builds_config_and_saves_without_password(qtbot, tmp_path, monkeypatch):
    from app.config import prefs as prefs_mod
    from app.ui.connection_dialog import ConnectionDialog, config_from_prefs

    stored = {}
    monkeypatch.setattr("app.ui.connection_dialog.set_password",
                        lambda h, p, u, pw: stored.__setitem__((h, p, u), pw) or True)
    monkeypatch.setattr("app.ui.connection_dialog.get_password", lambda h, p, u: stored.get((h, p, u), ""))
    monkeypatch.setattr(prefs_mod, "get_password", lambda h, p, u: stored.get((h, p, u), ""))
    pr = prefs_mod.Prefs(tmp_path / "settings.toml")
    dlg = ConnectionDialog(PipelineConfig(), pr)
    qtbot.addWidget(dlg)
    dlg.embedded.setChecked(False)
    dlg.host.setText("127.0.0.1")
    dlg.port.setValue(11099)
    dlg.username.setText("trader")
    dlg.password.setText("s3cret-pw")
    dlg.trade_account.setText("Sim1")
    row = dlg.add_symbol_row({"name": "ES", "symbol": "ESZ25_FUT_CME", "exchange": "CME",
                              "tick_size": 0.25, "tick_value": 12.5, "source": "sierra_files"})
    dlg.symbols.selectRow(row)
    # Sierra Chart files are checked on OK (issue 16 item 8): a Data folder holding the symbol's .scid
    import numpy as np
    from app.feeds.scid import SCID_RECORD_DTYPE, write_scid
    (tmp_path / "Data").mkdir()
    write_scid(tmp_path / "Data" / "ESZ25_FUT_CME.scid", np.zeros(0, SCID_RECORD_DTYPE))
    dlg.sierra_dir.setText(str(tmp_path / "Data"))
    dlg.accept()
    cfg = dlg.result_config()
    assert (cfg.embedded, cfg.host, cfg.port, cfg.symbol, cfg.tick_size) == (False, "127.0.0.1", 11099, "ESZ25_FUT_CME", 0.25)
    assert cfg.data_source == "sierra_files" and cfg.trade_account == "Sim1"
    assert stored[("127.0.0.1", 11099, "trader")] == "s3cret-pw"
    text = (tmp_path / "settings.toml").read_text()
    assert "s3cret-pw" not in text and "ESZ25_FUT_CME" in text
    again = config_from_prefs(prefs_mod.Prefs(tmp_path / "settings.toml"))
    assert (again.symbol, again.embedded, again.password) == ("ESZ25_FUT_CME", False, "s3cret-pw")


def test_connection_dialog_refuses_a_bad_tick_size(qtbot):
    from app.ui.connection_dialog import ConnectionDialog

    dlg = ConnectionDialog(PipelineConfig(), None)
    qtbot.addWidget(dlg)
    dlg.embedded.setChecked(False)
    dlg.add_symbol_row({"name": "ES", "symbol": "ESH4"})
    dlg.symbols.item(0, 3).setText("abc")
    dlg.accept()
    assert "Tick size" in dlg.error_label.text() and "row 1" in dlg.error_label.text()


def test_gui_options_override_saved_settings(tmp_path):
    from app.ui import main as gui_main
    from app.config.prefs import Prefs

    p = argparse.ArgumentParser()
    gui_main.add_arguments(p)
    pr = Prefs(tmp_path / "settings.toml")
    cfg = gui_main.build_config(p.parse_args([]), pr)
    assert cfg.embedded and cfg.speed == 10.0  # nothing saved: the demo default
    pr.set("replay.speed", 5.0)
    pr.save()
    pr = Prefs(tmp_path / "settings.toml")
    cfg = gui_main.build_config(p.parse_args([]), pr)
    assert cfg.embedded and cfg.speed == 5.0
    cfg = gui_main.build_config(p.parse_args(["--host", "10.0.0.2", "--port", "11099", "--profile", "scalping"]), pr)
    assert (cfg.embedded, cfg.host, cfg.port, cfg.profile) == (False, "10.0.0.2", 11099, "scalping")


def test_qt_binding_keeps_none_alive_over_many_void_calls(qapp):
    """PySide6 6.12.0 under Python 3.11 decremented None's refcount on every void-returning call
    (the window died with 'Fatal Python error: none_dealloc' after a few seconds of painting).
    pyproject pins a binding without it; this catches a regression before the window crashes."""
    import sys

    from PySide6 import QtCore, QtGui, QtWidgets

    import gc

    label = QtWidgets.QLabel()
    img = QtGui.QImage(16, 16, QtGui.QImage.Format_ARGB32)
    p = QtGui.QPainter(img)
    rect, c1, c2 = QtCore.QRectF(0, 0, 4, 4), QtGui.QColor(1, 2, 3), QtGui.QColor(4, 5, 6)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = sys.getrefcount(None)
        for _ in range(2000):
            label.setText("x")
            p.fillRect(rect, c1)
            p.setPen(c2)
        after = sys.getrefcount(None)
    finally:
        if was_enabled:
            gc.enable()
        p.end()
    # the broken binding loses one reference per call (6000 here); unrelated frees lose a few
    assert after >= before - 600, f"None lost {before - after} references in 6000 void Qt calls"


def test_window_geometry_splitters_contrast_and_profile_persist(qtbot, tmp_path):
    from app.ui.main_window import MainWindow
    from app.config.prefs import Prefs

    path = tmp_path / "settings.toml"
    w = MainWindow(PipelineConfig(profile="scalping"), Prefs(path))
    qtbot.addWidget(w)
    w.resize(760, 640)  # inside the offscreen screen: restoreGeometry clamps to the screen
    w.show()
    w.main_splitter.setSizes([300, 200])
    w.top_splitter.setSizes([200, 240, 300])
    w.contrast_slider.setValue(900)
    sizes = w.main_splitter.sizes(), w.top_splitter.sizes()
    w.save_prefs()
    w2 = MainWindow(PipelineConfig(), Prefs(path))
    qtbot.addWidget(w2)
    w2.show()
    assert (w2.main_splitter.sizes(), w2.top_splitter.sizes()) == sizes
    assert w2.heatmap.contrast == 0.9 and w2.contrast_slider.value() == 900
    assert (w2.width(), w2.height()) == (760, 640)
    assert Prefs(path).get("profile") == "scalping"
