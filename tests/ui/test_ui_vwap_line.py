"""The heatmap's session VWAP line has one point per heatmap column, not one per frame drawn.

At 60 frames/s the 4,096-point ring held 68 s of VWAP, less than the 100 s window of 1,000
columns of 100 ms, and each of five curves stroked 4,096 points each paint. Now the newest point
moves within its column and a new one starts with the next column; each band's two lines are
one path broken by a NaN, and every line is in one scene item (``HeatmapWidget.lines``), which
draws what it was given. On real ES frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from app.analysis.frame import AnalysisFrame  # noqa: E402
from app.market.model import MarketModel  # noqa: E402
from app.ui.heatmap import HeatmapWidget, _Ring  # noqa: E402

COLUMN_NS = 250_000_000


def _es_frame():
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    m = MarketModel(rec.instrument, rows=400, column_ns=COLUMN_NS, history_s=300, window_cols=1000)
    m.apply(rec.events[: rec.events.shape[0] // 2])
    return AnalysisFrame(seq=1, ts=m.ts, symbol=rec.instrument.symbol, tick_size=rec.instrument.tick_size,
                         cum_delta=m.cum_delta, vwap=m.vwap.vwap, vwap_sd=m.vwap.sd, **m.frame_parts())


def test_the_ring_keeps_one_point_per_step_and_ends_on_the_newest_value():
    r = _Ring(16)
    for k in range(10):  # every 30 ms, a step of 100 ms
        r.push(k * 0.03, float(k), 0.0, min_dt=0.1)
    t, a, _ = r.ordered()
    assert a[-1] == 9.0 and t[-1] == pytest.approx(0.27)  # the newest value is always drawn
    # one point per step, the step's newest: 0.09 (step 0), 0.18 (step 1), 0.27 (step 2)
    np.testing.assert_allclose(t, [0.09, 0.18, 0.27])
    np.testing.assert_allclose(a, [3.0, 6.0, 9.0])
    r.push(0.0, 1.0, 0.0, min_dt=0.1)  # time went back: starts again
    assert r.count == 1


def test_the_vwap_line_has_one_point_per_column_of_real_es_frames(qtbot):
    f0 = _es_frame()
    assert np.isfinite(f0.vwap) and np.isfinite(f0.vwap_sd) and f0.vwap_sd > 0
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(1000, 600)
    w.show()
    n_frames = 60
    step_ns = 16_666_667  # 60 frames/s, market time as fast as real time
    for k in range(n_frames):
        w.set_frame(dataclasses.replace(f0, seq=k + 1, ts=f0.ts + k * step_ns))
    t, v = w.lines.data("vwap")
    span_cols = n_frames * step_ns / COLUMN_NS  # 4 columns of market time
    assert t.shape[0] <= int(span_cols) + 2, t.shape  # not one point per frame (60)
    assert t[-1] == pytest.approx((f0.ts + (n_frames - 1) * step_ns) / 1e9)
    tick = float(f0.tick_size)
    assert v[-1] == pytest.approx(f0.vwap * tick)
    for k in (1, 2):
        bt, bv = w.lines.data(f"band{k}")
        n = t.shape[0]
        assert bt.shape[0] == 2 * n + 1 and np.isnan(bv[n])  # upper, a break, lower
        assert bv[n - 1] == pytest.approx((f0.vwap + k * f0.vwap_sd) * tick)
        assert bv[-1] == pytest.approx((f0.vwap - k * f0.vwap_sd) * tick)


def test_the_lines_item_draws_the_best_bid_and_ask_of_real_es_frames(qtbot):
    """The bid and ask lines end on the frame's best bid and ask (prices), and the item is
    painted: its pixels at the best bid's row have the bid line's colour."""
    from PySide6 import QtGui

    from app.ui.heatmap import BID_LINE_COLOR

    f0 = _es_frame()
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(1000, 600)
    w.show()
    for k in range(5):
        w.set_frame(dataclasses.replace(f0, seq=k + 1, ts=f0.ts + k * 300_000_000))
    tick = float(f0.tick_size)
    for name, best in (("bid", f0.best_bid), ("ask", f0.best_ask)):
        t, v = w.lines.data(name)
        assert t.shape == (5,) and v[-1] == pytest.approx(best * tick)
    assert w.lines.boundingRect().height() > 0
    with pytest.raises(KeyError, match="known: band2, band1, vwap, bid, ask"):
        w.lines.set_lines({"nope": (np.zeros(1), np.zeros(1))})
    # drawn: the bid line's colour appears in the row of the best bid, left of the newest column
    for it in (w.image, w.history_image, w.bubbles, w.bubbles_sell, w.markers):
        it.setVisible(False)  # only the lines on the dark background
    QtGui.QGuiApplication.processEvents()
    img = w.grab().toImage()
    t, v = w.lines.data("bid")
    pos = w.vb.mapViewToScene(QtCore.QPointF(float(t[-2]), float(v[-2])))
    pt = w.mapFromScene(pos)
    colours = {img.pixelColor(pt.x() + dx, pt.y() + dy).getRgb()[:3] for dx in range(-3, 4) for dy in range(-2, 3)}
    assert tuple(BID_LINE_COLOR) in colours, colours
