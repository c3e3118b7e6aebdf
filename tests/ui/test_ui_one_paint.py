"""One frame, one paint: the heatmap and the cumulative-delta pane settle their view (range
and transform) when a frame is drawn, not inside the paint (where pyqtgraph's deferred
transform update made every curve and scatter change geometry mid-paint and the scene paint
the whole view a second time for the same frame); on real ES frames in the real window."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtWidgets  # noqa: E402

from app.analysis.frame import AnalysisFrame  # noqa: E402
from app.market.model import MarketModel  # noqa: E402


class _PaintCounter(QtCore.QObject):
    def __init__(self):
        super().__init__()
        self.n = 0

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        if ev.type() == QtCore.QEvent.Paint:
            self.n += 1
        return False


def _frames(rec, parts=400):
    m = MarketModel(rec.instrument, rows=400, column_ns=250_000_000, history_s=300, window_cols=1000)
    for i, part in enumerate(np.array_split(rec.events, parts)):
        m.apply(part)
        if i >= parts - 40:
            yield AnalysisFrame(seq=i + 1, ts=m.ts, symbol=rec.instrument.symbol,
                                tick_size=rec.instrument.tick_size, cum_delta=m.cum_delta,
                                **m.frame_parts())


def test_each_frame_paints_the_heatmap_and_the_delta_pane_once(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    from app.feeds.samples import load_default_sample
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow

    rec = load_default_sample()
    w = MainWindow(PipelineConfig(embedded=True, recording=rec, speed=0.0), prefs=None)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    app = QtWidgets.QApplication.instance()
    frames = list(_frames(rec))
    for f in frames[:10]:  # layout settles
        w.draw_frame(f)
        app.processEvents()
    hm, dp = _PaintCounter(), _PaintCounter()
    w.heatmap.viewport().installEventFilter(hm)
    w.delta_pane.viewport().installEventFilter(dp)
    per_frame = []
    for f in frames[10:]:
        h0, d0 = hm.n, dp.n
        w.draw_frame(f)
        app.processEvents()
        per_frame.append((hm.n - h0, dp.n - d0))
    assert w.heatmap.vb.viewRange()[0][1] > frames[-1].heatmap_t0 / 1e9  # it followed the market
    assert per_frame == [(1, 1)] * len(per_frame)
    w._closed = True


def test_the_profile_pane_repaints_only_when_the_profile_changed(qtbot):
    from app.feeds.samples import load_default_sample
    from app.ui.profile_pane import ProfilePane

    rec = load_default_sample()
    pane = ProfilePane()
    qtbot.addWidget(pane)
    pane.resize(120, 600)
    pane.show()
    app = QtWidgets.QApplication.instance()
    frames = list(_frames(rec, parts=4000))  # cut finely: many frames trade nothing
    f0 = frames[0]
    mid = 0.5 * (f0.best_bid + f0.best_ask) * f0.tick_size
    pane.set_view(mid - 6.0, mid + 6.0, 20.0, 570.0)
    pane.set_frame(f0)
    app.processEvents()
    counter = _PaintCounter()
    pane.installEventFilter(counter)
    changed = 0
    for prev, f in zip(frames, frames[1:]):
        n = counter.n
        pane.set_frame(f)
        pane.set_frame(f)  # the same frame again: nothing new
        app.processEvents()
        new = not np.array_equal(prev.session_volume, f.session_volume) or (prev.poc, prev.vah) != (f.poc, f.vah)
        changed += new
        assert counter.n - n == (1 if new else 0)
        assert np.array_equal(pane.volume, f.session_volume)
    assert 0 < changed < len(frames) - 1  # some frames traded, some did not


def test_the_delta_pane_keeps_the_visible_line_in_range_without_moving_it_every_frame(qtbot, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    from app.feeds.samples import load_default_sample
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow

    rec = load_default_sample()
    w = MainWindow(PipelineConfig(embedded=True, recording=rec, speed=0.0), prefs=None)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    app = QtWidgets.QApplication.instance()
    frames = list(_frames(rec, parts=1200))
    dp = w.delta_pane
    fits0 = dp.y_fits
    for f in frames:
        w.draw_frame(f)
        app.processEvents()
        t, v = dp.series()
        (x0, x1), (y0, y1) = dp.vb.viewRange()
        vis = v[(t >= x0) & (t <= x1)]
        assert vis.size and y0 <= vis.min() and vis.max() <= y1  # the visible line is inside
        assert vis.max() - vis.min() <= y1 - y0
    assert dp.y_fits - fits0 < len(frames) // 2, dp.y_fits - fits0  # not moved on every frame
    w._closed = True


def test_the_delta_pane_draws_no_grid_and_sets_its_label_only_when_it_changes(qtbot):
    """The y grid was a translucent picture across the whole pane, painted with every frame
    (about 2 ms of each frame at 1600 px); the value label's text is laid out again only when
    the shown figure changes. Real ES frames."""
    from app.feeds.samples import load_default_sample
    from app.ui.delta_pane import DeltaPane

    dp = DeltaPane()
    qtbot.addWidget(dp)
    dp.resize(1600, 150)
    dp.show()
    assert dp.getAxis("left").grid is False and dp.getAxis("bottom").grid is False
    calls = []
    set_text = dp.last_label.setText
    dp.last_label.setText = lambda text, *a: (calls.append(text), set_text(text, *a))
    frames = list(_frames(load_default_sample(), parts=400))
    for f in frames:
        dp.set_frame(f)
        dp.set_frame(f)  # the same figure again: no new layout
    shown = [f"cum. delta {float(f.cum_delta):+,.0f}" for f in frames]
    distinct = [s for k, s in enumerate(shown) if k == 0 or s != shown[k - 1]]
    assert calls == distinct
    assert dp.last_label.textItem.toPlainText() == shown[-1]


def test_the_delta_pane_draws_the_visible_stretch_and_draws_again_after_a_pan(qtbot):
    """The line item gets the stretch of the series around the visible range (thinned to the
    pane's pixels), not the whole session each frame; a pan with no new frame (a paused replay)
    past that stretch draws the newly visible part. Real ES frames."""
    from app.feeds.samples import load_default_sample
    from app.ui.delta_pane import DeltaPane

    dp = DeltaPane()
    qtbot.addWidget(dp)
    dp.resize(400, 150)
    dp.show()
    frames = list(_frames(load_default_sample(), parts=1200))
    for f in frames:
        dp.set_frame(f)
    t, v = dp.series()
    span = 60.0  # one minute at the end of the series
    dp.vb.setXRange(t[-1] - span, t[-1], padding=0)
    dp.set_frame(frames[-1])
    dt, dv = dp.drawn_line()
    assert dt.size < t.size  # a stretch, not the series
    assert dt[0] <= t[-1] - span and dt[-1] == t[-1] and dv[-1] == v[-1]
    assert dt.size <= DeltaPane.DRAWN_PER_PX * 3 * dp.vb.width() + 2
    mid = 0.5 * (t[0] + t[-1])  # pan to the middle of the hour, no new frame
    dp.vb.setXRange(mid - span / 2, mid + span / 2, padding=0)
    dt, dv = dp.drawn_line()
    assert dt[0] <= mid - span / 2 and dt[-1] >= mid + span / 2
    inside = (t >= mid - span / 2) & (t <= mid + span / 2)
    np.testing.assert_allclose(np.interp(t[inside], dt, dv), v[inside])  # the series itself there
