"""Issue 16, item 4: nothing clipped at 1366x768, nor at 1920x1080 at 150 % (1280x720 logical).

At 1366x768 the kill-switch label was cut ("VERIFIED FLAT (locked"), Unlock was clipped, the
risk panel needed scrolling and the status bar was truncated. Here, at both sizes and in every
kill-switch state, each QLabel and QPushButton of the risk / kill-switch panel shows its whole
text (``fontMetrics().horizontalAdvance(text) <= contentsRect().width()``, per line; a
word-wrapped label has the height its wrapped text needs), the risk panel needs no scroll bar,
and every figure of the status bar is either whole or elided with "..." (full text in its
tooltip), never cut by the window's edge.

The 150 % case runs in a subprocess: ``QT_SCALE_FACTOR=1.5`` on an offscreen screen of
1920x1080 device pixels (the offscreen platform's ``configfile``), where the window opens at
the screen's available size; fonts are in points, so they grow with the scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

ROOT = Path(__file__).resolve().parents[2]

#: a realistic, long-valued risk snapshot (a losing day, a locked gate, a long session start)
SNAPSHOT = dict(
    mode="sim", account="Sim1", connected=True, symbol="ESH4", position_qty=-3, avg_price=19241.0,
    open_pnl_usd=-1237.5, realized_pnl_usd=-1862.25, daily_loss_used_usd=3099.75,
    daily_loss_limit_usd=10000.0, trades_today=17, max_trades_per_day=20, consecutive_losses=3,
    max_consecutive_losses=4, working_orders=2, gate_state="open", kill_state="armed", kill_detail="",
    live_confirmed=False, tick_size=0.25, trading_day="2023-12-26", day_start_ns=0,
    day_start_local="2023-12-25 17:00 CST",
)

KILL_STATES = ("armed", "verified_flat", "failed")


def _line_fits(widget, text: str) -> bool:
    fm = widget.fontMetrics()
    room = widget.contentsRect().width()
    return all(fm.horizontalAdvance(line) <= room for line in text.split("\n"))


def measure(window) -> dict:
    """Every clipped text of the risk / kill-switch panel and of the status bar, per kill state.

    Returns ``{"size": [w, h], "problems": {state: [text, ...]}, "scroll": {state: bool}}``.
    """
    from PySide6 import QtCore, QtWidgets

    from app.trading.killswitch import KillState
    from app.ui.status import ElidedLabel
    from app.ui.trading_panel import TradingPanel

    app = QtWidgets.QApplication.instance()
    panel = window.findChild(TradingPanel)
    out = {"size": [window.width(), window.height()], "problems": {}, "scroll": {}}
    for state in KILL_STATES:
        snap = dict(SNAPSHOT, kill_state=state,
                    gate_state="open" if state == "armed" else "locked: kill switch: button",
                    position_qty=-3 if state != "verified_flat" else 0,
                    kill_detail="still open: position -3 ESH4; 1 working order" if state == "failed" else "")
        panel.update_from(types.SimpleNamespace(**snap), 2)
        if state == "failed":
            panel.set_kill_state(KillState.FAILED, snap["kill_detail"])
        for _ in range(3):
            app.processEvents()
        problems = []
        for w in panel.findChildren(QtWidgets.QLabel) + panel.findChildren(QtWidgets.QPushButton):
            if not w.isVisibleTo(window) or not w.text():
                continue
            text = w.text()
            if isinstance(w, QtWidgets.QLabel) and w.wordWrap():
                need = w.heightForWidth(w.width())
                if need > w.height() + 1:
                    problems.append(f"{w.objectName() or text!r}: needs {need} px high, has {w.height()}")
            elif not _line_fits(w, text):
                problems.append(f"{w.objectName() or text!r}: {w.fontMetrics().horizontalAdvance(text)} px "
                                f"of text in {w.contentsRect().width()} px")
            # inside the visible part of the window
            top_left = w.mapTo(window, QtCore.QPoint(0, 0))
            if not QtCore.QRect(QtCore.QPoint(0, 0), window.size()).contains(QtCore.QRect(top_left, w.size())):
                problems.append(f"{w.objectName() or text!r}: outside the window at {top_left.toTuple()}")
        sb = window.statusBar()
        for w in sb.findChildren(QtWidgets.QLabel):
            if not w.isVisibleTo(window) or not w.text():
                continue
            r = QtCore.QRect(w.mapTo(sb, QtCore.QPoint(0, 0)), w.size())
            if r.right() > sb.width():
                problems.append(f"status {w.text()!r}: cut at the window's edge")
            if isinstance(w, ElidedLabel):
                if w.is_elided() and not (w.shown_text().endswith(ElidedLabel.ELLIPSIS) and w.text() in w.toolTip()):
                    problems.append(f"status {w.text()!r}: cut without an ellipsis")
            elif not _line_fits(w, w.text()):
                problems.append(f"status {w.text()!r}: cut")
        out["problems"][state] = problems
        bar = window.trading_scroll.verticalScrollBar()
        out["scroll"][state] = bool(bar.isVisible() and bar.maximum() > 0)
    return out


def build_window(width: int | None = None, height: int | None = None, problems: bool = False):
    """A main window as after start-up: the embedded-replay banner, a trading panel, the status
    bar's figures (long ones) and a running recording; at ``width`` x ``height`` if given (else
    the size the window chooses on this screen); with the View > Problems dock open if
    ``problems`` (as after an error)."""
    from PySide6 import QtWidgets

    from app.ui.main_window import MainWindow
    from app.ui.trading_panel import TradingPanel

    w = MainWindow()
    w.trading_area.layout().addWidget(TradingPanel())
    w.mode_banner.setText("PAPER MODE - built-in DTC server replaying real recorded ESH4 market data of "
                          "2023-12-25 (UTC) at 10x. No real orders: fills are simulated locally.")
    w.health.set_source_state("replay server", "running")
    w.health.set_source_state("dtc 127.0.0.1:40123 ESH4", "streaming")
    w.health.set_figures(msgs_per_s=12345.0, decode_errors=0, analysis_ms=0.12, fps=59.9, events_per_s=23456.0,
                         market="ESH4 4810.00 / 4810.25  2023-12-25 23:59:59 UTC")
    w.recording_indicator.start(Path("/home/trader/.local/share/mia-elite/recordings/ESH4-20231225-230000.mrec"), 0.0)
    if width is not None:
        w.resize(width, height)
    if problems:
        w.report("error", "Kill switch NOT VERIFIED FLAT: still open: position -3 ESH4. Check Sierra Chart's "
                          "Trade Orders and Positions windows now.")
    w.show()
    for _ in range(5):
        QtWidgets.QApplication.instance().processEvents()
    return w


@pytest.mark.parametrize("problems", [False, True], ids=["", "problems-open"])
@pytest.mark.parametrize("size", [(1366, 768), (1280, 720)], ids=["1366x768", "1280x720-logical"])
def test_nothing_clipped_in_the_risk_panel_and_status_bar(qtbot, size, problems):
    w = build_window(*size, problems=problems)
    qtbot.addWidget(w)
    assert w.problems_dock.isVisible() == problems
    if problems:  # the Problems view is under the market side: the right column keeps its height
        assert w.problems_dock.geometry().right() < w.right_dock.geometry().left()
    got = measure(w)
    assert got["size"] == list(size)
    assert got["problems"] == {s: [] for s in KILL_STATES}
    assert got["scroll"] == {s: False for s in KILL_STATES}, "the risk panel needs scrolling"


def _run_on_screen(tmp_path, width: int, height: int, scale: float) -> dict:
    cfg = tmp_path / f"screen-{width}x{height}.json"
    cfg.write_text(json.dumps({"screens": [{"name": "s0", "x": 0, "y": 0, "width": width, "height": height,
                                            "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={cfg}", QT_SCALE_FACTOR=str(scale),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, __file__], env=env, cwd=str(ROOT), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("screen", [(1366, 768, 1.0), (1920, 1080, 1.5)], ids=["1366x768", "1920x1080@150%"])
def test_window_fits_the_screen_with_nothing_clipped_at_its_scale(tmp_path, screen):
    """A real screen size and scale (subprocess): the window opens within the screen's logical
    size, and nothing of the risk panel or the status bar is clipped."""
    width, height, scale = screen
    got = _run_on_screen(tmp_path, width, height, scale)
    lw, lh = round(width / scale), round(height / scale)
    assert got["screen"] == [lw, lh]
    assert got["size"][0] <= lw and got["size"][1] <= lh
    assert got["dpr"] == scale
    # fonts in points: at 150 % a text is 1.5 times as many device pixels high
    assert got["font_px"] == pytest.approx(got["font_logical_px"] * scale, rel=0.15)
    assert got["problems"] == {s: [] for s in KILL_STATES}
    assert got["scroll"] == {s: False for s in KILL_STATES}, "the risk panel needs scrolling"


if __name__ == "__main__":  # the subprocess of the scaled-screen test
    from PySide6 import QtGui

    from app.ui.main import make_app

    app = make_app()
    win = build_window(problems=True)
    res = measure(win)
    scr = app.primaryScreen()
    res["screen"] = [scr.availableGeometry().width(), scr.availableGeometry().height()]
    res["dpr"] = scr.devicePixelRatio()
    fm = QtGui.QFontMetricsF(win.font())
    res["font_logical_px"] = fm.height()
    res["font_px"] = fm.height() * win.devicePixelRatioF()
    print(json.dumps(res))
    win.close()
