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


def _frames(rec, parts=4000, keep=150):
    m = MarketModel(rec.instrument, rows=200, column_ns=250_000_000, history_s=240, window_cols=240)
    for i, part in enumerate(np.array_split(rec.events, parts)):
        m.apply(part)
        if i >= parts - keep:
            yield AnalysisFrame(seq=i + 1, ts=m.ts, symbol=rec.instrument.symbol,
                                tick_size=rec.instrument.tick_size, **m.frame_parts())


def _bubbles(w):
    d = w.bubbles.data
    return np.stack([d["x"], d["y"], d["size"]]) if len(d) else np.zeros((3, 0))


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
