"""Crash hook and dialog, start-up splash (offscreen, pytest-qt)."""

from __future__ import annotations

import logging
import sys
import types
import threading

import pytest

pytest.importorskip("pytestqt")

from app.logs import log_file  # noqa: E402
from app.ui import crash  # noqa: E402


@pytest.fixture
def hooks():
    yield
    crash.uninstall()


def _raise_and_hook(hook, message="boom in the ladder"):
    try:
        raise ValueError(message)
    except ValueError:
        hook(*sys.exc_info())


def test_cli_hook_logs_traceback_and_names_log_file(hooks, capsys):
    crash.install_cli_excepthook()
    crash.install_cli_excepthook()  # idempotent
    _raise_and_hook(sys.excepthook)
    err = capsys.readouterr().err
    assert "unexpected error: ValueError: boom in the ladder" in err
    assert str(log_file()) in err
    text = log_file().read_text(encoding="utf-8")
    assert "CRITICAL app.crash: unhandled exception" in text
    assert "Traceback (most recent call last)" in text and "_raise_and_hook" in text


def test_cli_hook_thread_exception(hooks, capsys):
    crash.install_cli_excepthook()

    def bad():
        raise RuntimeError("worker died")

    t = threading.Thread(target=bad, name="mia-test-worker")
    t.start()
    t.join(5)
    text = log_file().read_text(encoding="utf-8")
    assert "unhandled exception in thread mia-test-worker" in text and "RuntimeError: worker died" in text
    assert "worker died" in capsys.readouterr().err


@pytest.mark.qt_no_exception_capture
def test_gui_hook_offscreen_logs_without_dialog(qtbot, qapp, hooks):
    h = crash.install_excepthook(qapp)
    assert crash.install_excepthook(qapp) is h
    _raise_and_hook(sys.excepthook)
    qtbot.wait(50)
    assert h.count == 1 and h.dialog is None  # offscreen: nobody could click it
    assert "ValueError: boom in the ladder" in h.last_summary
    assert str(log_file()) in h.last_summary
    assert "Traceback (most recent call last)" in h.last_report and "_raise_and_hook" in h.last_report
    assert "boom in the ladder" in log_file().read_text(encoding="utf-8")


@pytest.mark.qt_no_exception_capture
def test_gui_hook_dialog_from_thread_and_copy(qtbot, qapp, hooks, monkeypatch):
    monkeypatch.setattr(crash, "_dialog_allowed", lambda: True)
    h = crash.install_excepthook(qapp)

    def bad():
        raise KeyError("depth level")

    t = threading.Thread(target=bad, name="mia-analysis")
    t.start()
    t.join(5)
    qtbot.waitUntil(lambda: h.dialog is not None, timeout=3000)
    dlg = h.dialog
    assert "KeyError: 'depth level'" in dlg.label.text()
    assert str(log_file()) in dlg.label.text()
    assert "thread: mia-analysis" in dlg.details.toPlainText()
    dlg.copy_button.click()
    clip = qapp.clipboard().text()
    if clip:  # the offscreen platform may have no clipboard
        assert clip == dlg.report
    # a second error while the dialog is open is counted in it, not a second dialog
    _raise_and_hook(sys.excepthook, "second")
    qtbot.waitUntil(lambda: dlg.more == 1, timeout=3000)
    assert h.dialog is dlg and h.count == 2
    dlg.close()
    qtbot.waitUntil(lambda: h.dialog is None, timeout=3000)


def test_summary_and_report_text():
    try:
        raise OSError("disk full")
    except OSError:
        et, ev, tb = sys.exc_info()
    s = crash.summary_text(et, ev)
    r = crash.report_text(et, ev, tb, "mia-journal")
    assert "OSError: disk full" in s and "log file" in s
    assert r.startswith("MIA Elite ") and "thread: mia-journal" in r and "OSError: disk full" in r


# ------------------------------------------------------------------------------------ splash
class _Engine:
    state = "compiling"
    compile_seconds = 0.0


class _Pipeline:
    def __init__(self):
        self.engine = None


def _fake_window(QtWidgets):
    class FakeWindow(QtWidgets.QWidget):
        def __init__(self):
            super().__init__()
            self.frames_drawn = 0
            self.pipeline = None
            self.last_frame = None
            self._closed = False

    return FakeWindow()


def test_splash_follows_startup_and_logs_first_frame(qtbot, qapp, tmp_path, monkeypatch, caplog):
    from PySide6 import QtWidgets

    from app.ui import splash as S

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "empty-cache"))
    s = S.Splash(start_time=S.time.time() - 1.0)
    qtbot.addWidget(s)
    assert not s.warm
    s.start()
    assert s.message == "Starting..."
    w = _fake_window(QtWidgets)
    qtbot.addWidget(w)
    s.follow(w)
    s.poll()
    assert s.message == "Waiting for market data..." or s.message.startswith("Connecting")
    w.pipeline = _Pipeline()
    s.poll()
    assert s.message.startswith("Connecting")
    w.pipeline.engine = _Engine()
    s.poll()
    assert "compiling the analyzers (first run only)" in s.message  # cold cache
    w.pipeline.engine.state = "running"
    w.pipeline.engine.compile_seconds = 12.5
    s.poll()
    assert s.message == "Waiting for market data..."
    w.frames_drawn = 1  # a frame without market data keeps the splash (issue 18 item 5)
    s.poll()
    assert not s.done
    with caplog.at_level(logging.INFO, logger="app.ui.splash"):
        w.last_frame = types.SimpleNamespace(best_bid=19239, best_ask=-1)
        s.poll()
    assert s.done and s.first_frame_s is not None and s.first_frame_s >= 1.0
    assert s.kernels_s == 12.5
    line = next(r.getMessage() for r in caplog.records if S.FIRST_FRAME_MARK in r.getMessage())
    assert "numba cache cold" in line and "kernels 12.50 s" in line
    # the bundle check reads this very line
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "packaging"))
    try:
        import bundle_figures
    finally:
        sys.path.pop(0)
    assert bundle_figures.first_frame_seconds("x INFO app.ui.splash: " + line) == pytest.approx(
        round(s.first_frame_s, 2), abs=0.006)


def test_splash_stays_on_top_and_closes_when_no_data_comes(qtbot, qapp, monkeypatch):
    from PySide6 import QtCore, QtWidgets

    from app.ui import splash as S

    s = S.Splash(start_time=S.time.time())
    qtbot.addWidget(s)
    assert s.windowFlags() & QtCore.Qt.WindowStaysOnTopHint  # seen even without a window manager
    s.start()
    w = _fake_window(QtWidgets)
    qtbot.addWidget(w)
    w.pipeline = _Pipeline()
    w.pipeline.engine = _Engine()
    s.follow(w)
    w.frames_drawn = 3  # empty frames only (a closed market)
    clock = [1000.0]
    monkeypatch.setattr(S.time, "time", lambda: clock[0])
    s.poll()
    assert not s.done
    clock[0] += S.Splash.NO_DATA_CLOSE_S + 1
    s.poll()
    assert s.done and s.first_frame_s is None  # no first-frame figure without data


def test_splash_warm_message_and_idempotent_show(qtbot, qapp, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from app.ui import splash as S

    cache = tmp_path / "cache" / "app"
    cache.mkdir(parents=True)
    (cache / "kernels._apply-1.py311.nbi").write_bytes(b"x")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    assert S.numba_cache_is_warm()
    s = S.show_splash(qapp)
    try:
        assert S.show_splash(qapp) is s
        assert s.warm
        w = _fake_window(QtWidgets)
        qtbot.addWidget(w)
        w.pipeline = _Pipeline()
        w.pipeline.engine = _Engine()
        s.follow(w)
        s.poll()
        assert "loading the analyzers" in s.message
        w._closed = True  # window closed before drawing: the splash goes too
        s.poll()
        assert s.done and s.first_frame_s is None
    finally:
        s.close()
        qapp._mia_splash = None
