"""Trade bubbles drawn from an atlas of circles (:class:`app.ui.heatmap.BubblesItem`) cover
the pixels pyqtgraph's ScatterPlotItem (the item they replace) covers for the same points,
sizes and brush, at the right places through a zoom; bad sizes are refused."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

import pyqtgraph as pg  # noqa: E402
from PySide6 import QtGui  # noqa: E402

from app.ui.heatmap import HeatmapWidget, BubblesItem  # noqa: E402

SIZES = HeatmapWidget.BUBBLE_SIZES


def _mask(w):
    img = w.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    a = a[:, : 4 * img.width()].reshape(img.height(), img.width(), 4)[..., :3].astype(int)
    return a[..., 1] > 60  # green on black


def _plot(qtbot, item):
    w = pg.PlotWidget(background=(0, 0, 0))
    w.addItem(item)
    w.setXRange(0.0, 100.0, padding=0)
    w.setYRange(0.0, 50.0, padding=0)
    qtbot.addWidget(w)
    w.resize(600, 400)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_bubbles_cover_what_a_scatter_plot_covers(qtbot):
    rng = np.random.default_rng(7)
    n = 120
    x, y = rng.uniform(2, 98, n), rng.uniform(2, 48, n)
    size = SIZES[rng.integers(0, SIZES.size, n)]
    brush = pg.mkBrush(40, 220, 90, 255)
    ours = BubblesItem(SIZES, brush)
    ours.set_bubbles(x, y, size)
    ref = pg.ScatterPlotItem(pxMode=True, pen=pg.mkPen(None), brush=brush)
    ref.setData(x=x, y=y, size=size)
    wo, wr = _plot(qtbot, ours), _plot(qtbot, ref)
    for zoom in (None, (0.5, 0.5)):
        if zoom:
            for w in (wo, wr):
                w.getViewBox().scaleBy(zoom)
        a, b = _mask(wo), _mask(wr)
        iou = (a & b).sum() / (a | b).sum()
        assert a.sum() > 1000 and iou > 0.9, iou
    np.testing.assert_array_equal(ours.data["x"], x)
    br = ours.boundingRect()  # the centres plus the largest radius
    assert br.left() < x.min() and br.right() > x.max() and br.top() < y.min() and br.bottom() > y.max()


def test_sizes_outside_the_atlas_and_ragged_arrays_are_refused():
    it = BubblesItem(SIZES, pg.mkBrush(255, 0, 0))
    with pytest.raises(ValueError, match="among"):
        it.set_bubbles([1.0], [2.0], [5.0])
    with pytest.raises(ValueError, match="differ in length"):
        it.set_bubbles([1.0, 2.0], [2.0], [4.0])
    it.set_bubbles([], [], [])
    assert it.data.shape == (0,) and it.boundingRect().isNull()
