"""Issue 16, item 10 (the window's part): texts and small things.

- "Open P&L" showed as "Open PL" (the form layout made the label a buddy, so "&" was read as a
  shortcut marker);
- pausing left "replay server: running" and a frozen msgs/s in the status bar;
- Record had no visible recording indicator;
- the VIX gauge's "25" label was clipped at the top of the widget;
- Retry showed in the VERIFIED FLAT state of the kill switch.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402


def shown_text(label: QtWidgets.QLabel) -> str:
    """The text a QLabel puts on screen: with a buddy, Qt reads "&x" as a shortcut marker
    (drops the "&", underlines x) and "&&" as one "&"; without one the text is shown as is."""
    text = label.text()
    if label.buddy() is None or label.textFormat() == QtCore.Qt.RichText:
        return text
    return re.sub(r"&(.)", r"\1", text)


def test_open_pnl_and_realised_pnl_labels_show_the_ampersand(qtbot):
    from app.ui.trading_panel import ROWS, TradingPanel

    panel = TradingPanel()
    qtbot.addWidget(panel)
    form = panel.findChild(QtWidgets.QFormLayout)
    shown = {}
    for key, _ in ROWS:
        lab = form.labelForField(panel.values[key])
        shown[key] = shown_text(lab)
    assert shown["open_pnl"] == "Open P&L"
    assert shown["realized_pnl"] == "Realised P&L (net)"
    # every label of the panel as written in ROWS (none loses a character to a mnemonic)
    assert [shown[k] for k, _ in ROWS] == [label for _, label in ROWS]


def test_no_label_or_button_of_the_window_loses_an_ampersand(qtbot):
    """Every QLabel / QPushButton of the window whose text has a single "&" shows it (a menu's
    "&File" is a deliberate shortcut and is a QMenu title, not a label)."""
    from app.ui.main_window import MainWindow
    from app.ui.trading_panel import TradingPanel

    w = MainWindow()
    qtbot.addWidget(w)
    w.trading_area.layout().addWidget(TradingPanel())
    for lab in w.findChildren(QtWidgets.QLabel):
        if "&" in lab.text() and lab.textFormat() != QtCore.Qt.RichText:
            assert shown_text(lab) == lab.text(), lab.text()
    for b in w.findChildren(QtWidgets.QPushButton):
        assert "&" not in b.text().replace("&&", ""), b.text()


class _FakeSource:
    pausable = True

    def __init__(self):
        self.held = False

    def pause(self):
        self.held = True

    def resume(self):
        self.held = False

    def stop_blocking(self, timeout=5.0):
        pass


class _FakePipeline:
    """What the window's pause / record / status code asks of a pipeline."""

    def __init__(self, tmp_path: Path):
        self.source = _FakeSource()
        self.instrument = types.SimpleNamespace(symbol="ESH4")
        self.rate = 4321.0
        self.tmp = tmp_path
        self.recording = None
        self.engine = None
        self.on_problem = None

    def figures(self):
        return {"msgs_per_s": self.rate}

    def start_recording(self, path):
        self.recording = Path(path)
        return self.recording

    def stop_recording(self):
        self.recording = None
        return 12


def test_pause_shows_replay_server_paused_and_stops_the_msgs_rate(qtbot, tmp_path):
    from app.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    pl = _FakePipeline(tmp_path)
    w.pipeline = pl
    w.health.set_source_state("replay server", "running")
    w._tick_status()
    assert w.health.msgs_label.text() == "msgs/s 4,321"
    w.act_pause.trigger()  # the toolbar's Pause replay
    assert pl.source.held
    assert "replay server: paused" in w.health.sources_label.text()
    assert ("paused", "#e0b030", True) in w.health.sources_label.segments  # in amber, bold
    assert "running" not in w.health.sources_label.text()
    # the rate of before the pause does not stay on screen, and no later figure brings it back
    assert "4,321" not in w.health.msgs_label.text() and "paused" in w.health.msgs_label.text()
    w._tick_status()
    w.health.set_figures(msgs_per_s=4321.0)
    assert "paused" in w.health.msgs_label.text()
    w.act_pause.trigger()  # Resume
    assert not pl.source.held
    assert "replay server: running" in w.health.sources_label.text()
    pl.rate = 987.0
    w._tick_status()
    assert w.health.msgs_label.text() == "msgs/s 987"


def test_record_shows_a_red_dot_the_elapsed_time_and_the_file(qtbot, tmp_path, monkeypatch):
    from app.core.clock import ManualClock
    from app.ui.main_window import MainWindow

    clock = ManualClock()
    w = MainWindow(clock=clock)
    qtbot.addWidget(w)
    w.show()
    pl = _FakePipeline(tmp_path)
    w.pipeline = pl
    ind = w.recording_indicator
    assert not ind.isVisible()
    w.act_record.trigger()  # start
    assert pl.recording is not None
    assert ind.isVisible()
    assert ind.segments[0] == ("\u25cf ", "#ff3b3b", False)  # the red dot
    assert pl.recording.name in ind.text() and str(pl.recording) in ind.toolTip()
    assert "00:00" in ind.text()
    clock.advance(65.0)
    w._tick_status()
    assert "01:05" in ind.text()
    clock.advance(3600.0)
    w._tick_status()
    assert "1:01:05" in ind.text()
    w.act_record.trigger()  # stop
    assert not ind.isVisible() and pl.recording is None


@pytest.mark.parametrize("size", [(240, 230), (300, 260), (360, 320), (420, 240)])
def test_vix_gauge_band_labels_are_inside_the_widget_and_below_the_title(qtbot, size):
    from app.analysis.frame import VixState
    from app.ui.vix_gauge import VixGauge

    g = VixGauge()
    qtbot.addWidget(g)
    g.resize(*size)
    g.set_state(VixState("2023-12-22", 13.03, 0.2, -0.05, 0.85, "low", 1, 1.0))
    geo = g.geometry_of_dial()
    _, small, _ = g.fonts()
    fm = QtGui.QFontMetricsF(small)
    box = QtCore.QRectF(0, 0, *size)
    texts = [t for t, _ in geo["labels"]]
    assert texts == ["12", "16", "25", "35"]
    for text, r in geo["labels"]:
        assert box.contains(r), (text, r, size)
        assert r.top() >= geo["title"].bottom(), (text, r)
        assert fm.horizontalAdvance(text) <= r.width() and fm.height() <= r.height() + 0.5
    # "25" sits at the top of the dial (dial 0..50): the one that was cut off
    top = min(geo["labels"], key=lambda tr: tr[1].top())
    assert top[0] == "25"
    # the picture has the label's pixels: something other than the background in its box
    img = g.grab().toImage()
    r = top[1].toRect()
    bg = img.pixelColor(1, img.height() - 2)
    assert any(img.pixelColor(x, y) != bg for x in range(r.left(), r.right()) for y in range(r.top(), r.bottom()))


def test_retry_is_hidden_when_verified_flat_and_shown_when_failed(qtbot):
    from app.trading.killswitch import KillState
    from app.ui.trading_panel import TradingPanel

    panel = TradingPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_kill_state(KillState.VERIFIED_FLAT, "")
    assert panel.unlock_button.isVisible()
    assert not panel.retry_button.isVisible()
    panel.set_kill_state(KillState.FAILED, "position +1 ESH4 still open")
    assert panel.retry_button.isVisible() and panel.retry_button.isEnabled()
    panel.set_kill_state(KillState.ARMED, "")
    assert not panel.unlock_box.isVisible()


def test_pause_on_the_real_replay_shows_paused_and_the_server_stops(qapp):
    """The built-in replay of the real ES sample: Pause holds the server's own replay clock
    (the venue's state), the status bar says "replay server: paused" with no stale msgs/s; Resume
    lets the server send again and the status bar shows it running with a live rate."""
    from qt_loop import close_window, run_on_qt, wait_until

    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow

    out: dict = {}

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=2.0, profile="production", loop_replay=False), prefs=None)
        w.show()
        await w.start()
        try:
            out["drawn"] = await wait_until(lambda: w.frames_drawn > 0, 120)
            clocks = [s.clock for s in w.pipeline.source.replay.server.symbols.values()]
            out["running_label"] = w.health.sources_label.text()
            w.act_pause.trigger()
            out["server_paused"] = await wait_until(lambda: all(c.paused for c in clocks), 20)
            w._tick_status()
            out["paused_label"] = w.health.sources_label.text()
            out["paused_msgs"] = w.health.msgs_label.text()
            sent = sum(c.events_out for c in clocks)
            w.act_pause.trigger()  # Resume
            out["server_resumed"] = await wait_until(
                lambda: not any(c.paused for c in clocks) and sum(c.events_out for c in clocks) > sent, 60)
            await wait_until(lambda: (w.pipeline.figures().get("msgs_per_s") or 0) > 0, 30)
            w._tick_status()
            out["resumed_label"] = w.health.sources_label.text()
            out["resumed_msgs"] = w.health.msgs_label.text()
        finally:
            await close_window(w)

    run_on_qt(qapp, main)
    assert out["drawn"]
    assert "replay server: running" in out["running_label"]
    assert out["server_paused"], "the replay server's clock was not paused"
    assert "replay server: paused" in out["paused_label"] and "replay server: running" not in out["paused_label"]
    assert out["paused_msgs"] == "msgs/s - (paused)"
    assert out["server_resumed"]
    assert "replay server: running" in out["resumed_label"]
    assert out["resumed_msgs"].startswith("msgs/s ") and "paused" not in out["resumed_msgs"]
