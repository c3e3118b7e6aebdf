"""The heatmap's time axis moves its drawn labels while the view scrolls
(:class:`app.ui.heatmap.ScrollingDateAxis`): the same pixels as pyqtgraph's own date axis laid
out at the new range, far fewer layouts, and a fresh layout on a zoom, a resize or a large
shift."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtGui  # noqa: E402

from app.ui.heatmap import ScrollingDateAxis, cache_axes  # noqa: E402

T0 = 1_723_100_005.0  # 2024-08-08 06:53:25 UTC, between ten-second ticks
SPAN = 100.0


def _plot(qtbot, axis):
    w = pg.PlotWidget(axisItems={"bottom": axis})
    cache_axes(w.plotItem)
    w.plotItem.hideAxis("left")
    w.setYRange(0.0, 1.0, padding=0)
    qtbot.addWidget(w)
    w.resize(700, 160)
    w.show()
    qtbot.waitExposed(w)
    return w


def _axis_image(w, axis, margin=24):
    """The axis strip of ``w``'s rendering, without ``margin`` px at each end (where ticks enter
    and leave): float64 grey levels, shape (height, width)."""
    img = w.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB32)
    r = axis.mapRectToScene(axis.mapRectFromParent(axis.geometry()))
    r = w.mapFromScene(r).boundingRect().intersected(img.rect())
    img = img.copy(r.left() + margin, r.top(), r.width() - 2 * margin, r.height())
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return a[:, : 4 * img.width()].reshape(img.height(), img.width(), 4)[..., :3].mean(axis=2).copy()


def _same_picture(a, b):
    """``a`` shows what ``b`` shows, at the same place: the labels' edges may differ by the
    anti-aliasing of a sub-pixel position (a few columns), never by a whole pixel of placement."""
    assert a.shape == b.shape and a.max() > 100  # labels were drawn
    def miss(lag):
        return np.abs(np.roll(a, lag, axis=1) - b)[:, 5:-5].mean()
    assert min(range(-3, 4), key=miss) == 0  # placed where a fresh layout puts the labels
    assert miss(0) < 0.25 * miss(1)  # and no nearer to a one-pixel misplacement
    assert np.count_nonzero(np.abs(a - b) > 40) <= 0.01 * a.size


def test_a_shifted_axis_paints_what_a_fresh_layout_paints(qtbot):
    scroll = ScrollingDateAxis(orientation="bottom", utcOffset=0)
    plain = pg.DateAxisItem(orientation="bottom", utcOffset=0)
    ws, wp = _plot(qtbot, scroll), _plot(qtbot, plain)
    ws.setXRange(T0, T0 + SPAN, padding=0)
    ws.grab()
    layouts = scroll.layouts
    width = scroll.geometry().width()
    assert abs(width - plain.geometry().width()) < 0.5
    for px in (3, 6, -2):  # whole pixels: the same sub-pixel placement as a fresh layout
        d = px * SPAN / width
        ws.setXRange(T0 + d, T0 + d + SPAN, padding=0)
        wp.setXRange(T0 + d, T0 + d + SPAN, padding=0)
        _same_picture(_axis_image(ws, scroll), _axis_image(wp, plain))
    assert scroll.layouts == layouts  # moved, never laid out again
    # a shift past max_shift_px, a zoom and a resize lay the labels out afresh
    big = 20 * SPAN / width
    ws.setXRange(T0 + big, T0 + big + SPAN, padding=0)
    wp.setXRange(T0 + big, T0 + big + SPAN, padding=0)
    _same_picture(_axis_image(ws, scroll), _axis_image(wp, plain))
    assert scroll.layouts == layouts + 1
    ws.setXRange(T0, T0 + 2 * SPAN, padding=0)
    wp.setXRange(T0, T0 + 2 * SPAN, padding=0)
    _same_picture(_axis_image(ws, scroll), _axis_image(wp, plain))
    assert scroll.layouts == layouts + 2
    ws.resize(640, 160)
    ws.grab()
    assert scroll.layouts == layouts + 3


def test_following_lays_the_axis_out_once_per_max_shift(qtbot):
    scroll = ScrollingDateAxis(orientation="bottom", utcOffset=0)
    w = _plot(qtbot, scroll)
    w.setXRange(T0, T0 + SPAN, padding=0)
    w.grab()
    n0 = scroll.layouts
    step = SPAN / scroll.geometry().width()  # one pixel a frame
    for k in range(1, 41):
        w.setXRange(T0 + k * step, T0 + k * step + SPAN, padding=0)
        w.grab()
    # 40 frames of 1 px: a layout each time the shift passes 8 px, not one per frame
    assert 4 <= scroll.layouts - n0 <= 6
