"""Trade bubbles are rebuilt only when a frame's band traded something new or the band moved
(time column, rows, view); a skipped rebuild leaves exactly the bubbles a rebuild draws, on
real ES frames cut finely (many frames without a trade)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.analysis.frame import AnalysisFrame  # noqa: E402
from app.market.model import MarketModel  # noqa: E402
from app.ui.heatmap import HeatmapWidget  # noqa: E402
from PySide6 import QtGui  # noqa: E402


def _frames(rec, parts=4000, keep=150):
    m = MarketModel(rec.instrument, rows=200, column_ns=250_000_000, history_s=240, window_cols=240)
    for i, part in enumerate(np.array_split(rec.events, parts)):
        m.apply(part)
        if i >= parts - keep:
            yield AnalysisFrame(seq=i + 1, ts=m.ts, symbol=rec.instrument.symbol,
                                tick_size=rec.instrument.tick_size, **m.frame_parts())


def _bubbles(w):
    return w.bubble_data()


def test_bubbles_skip_unchanged_bands_and_equal_a_rebuild(qtbot):
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    frames = list(_frames(rec))
    n0 = w.bubble_updates
    for i, f in enumerate(frames):
        w.set_frame(f)
        if i % 3 == 0:
            w.set_frame(f)  # the same frame again (nothing new): never a rebuild
        drawn = _bubbles(w)
        w._bubble_key = None  # force the rebuild and compare
        n = w.bubble_updates
        w._draw_band(f)
        assert w.bubble_updates == n + 1
        np.testing.assert_array_equal(_bubbles(w), drawn, err_msg=str(i))
    rebuilt = w.bubble_updates - n0 - len(frames)  # minus the forced ones
    assert 0 < rebuilt < len(frames), rebuilt  # some frames traded, many did not
    assert _bubbles(w).shape[1] > 0


def test_buyers_and_sellers_bubbles_are_two_items_of_one_brush_each_at_the_traded_cells(qtbot):
    from app.feeds.samples import load_default_sample

    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    f = list(_frames(load_default_sample(), parts=400, keep=1))[-1]
    w.set_frame(f)
    r0, r1 = w.drawn_rows
    d = w.bubble_data()
    buy, sell = f.traded_buy[r0:r1], f.traded_sell[r0:r1]
    n_buy, n_sell = int((buy > 0).sum()), int((sell > 0).sum())
    assert 0 < n_buy + n_sell <= w.MAX_BUBBLES  # the cap does not cut this frame
    assert int(d[3].sum()) == n_buy and d.shape[1] == n_buy + n_sell
    tick = f.tick_size
    for it, arr, brush in ((w.bubbles, buy, w._buy_brush), (w.bubbles_sell, sell, w._sell_brush)):
        rows, _ = np.nonzero(arr)
        np.testing.assert_allclose(np.sort(it.data["y"]), np.sort((f.heatmap_base + r0 + rows) * tick))
        assert it.brush.color().name(QtGui.QColor.HexArgb) == brush.color().name(QtGui.QColor.HexArgb)
