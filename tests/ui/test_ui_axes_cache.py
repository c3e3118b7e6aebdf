"""The heatmap's axes drawn from Qt's per-item pixmap (``cache_axes``) paint the same pixels as
the axes painted directly, on real ES frames, through a pan and a zoom (which redraw them)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.analysis.frame import AnalysisFrame  # noqa: E402
from app.market.model import MarketModel  # noqa: E402
from app.ui.heatmap import HeatmapWidget, cache_axes  # noqa: E402


def _frames(rec, parts=300):
    m = MarketModel(rec.instrument, rows=200, column_ns=250_000_000, history_s=240, window_cols=240)
    for i, part in enumerate(np.array_split(rec.events, parts)):
        m.apply(part)
        yield AnalysisFrame(seq=i + 1, ts=m.ts, symbol=rec.instrument.symbol,
                            tick_size=rec.instrument.tick_size, **m.frame_parts())


def test_cached_axes_paint_what_direct_axes_paint(qtbot):
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    cached, direct = HeatmapWidget(), HeatmapWidget()
    cache_axes(direct.plotItem, False)
    for x in (cached, direct):
        qtbot.addWidget(x)
        x.resize(900, 500)
        x.show()
    frames = list(_frames(rec))[-40:]
    for i, f in enumerate(frames):
        for x in (cached, direct):
            x.set_frame(f)
            if i == 20:
                x.vb.setRange(yRange=(4780.0, 4795.0), padding=0)  # a pan: new tick labels
            if i == 30:
                x.vb.scaleBy((2.0, 2.0))  # a zoom
        if i % 5 == 0 or i in (20, 30):
            assert cached.grab().toImage() == direct.grab().toImage(), i
