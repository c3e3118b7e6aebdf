"""The ladder's price column drawn from a cached pixmap paints what per-row text paints, on real
ES frames (the inside market moving every frame, its rows bold), through a pan, a zoom into
grouped rows and a resize; the pixmap is rendered again only when the rows or their placement
change, not per frame."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.analysis.frame import AnalysisFrame  # noqa: E402
from app.market.model import MarketModel  # noqa: E402
from app.ui.ladder import LadderWidget  # noqa: E402


def _frames(rec, parts=300, keep=60):
    m = MarketModel(rec.instrument, rows=200, column_ns=250_000_000, history_s=240, window_cols=240)
    for i, part in enumerate(np.array_split(rec.events, parts)):
        m.apply(part)
        if i >= parts - keep:
            yield AnalysisFrame(seq=i + 1, ts=m.ts, symbol=rec.instrument.symbol,
                                tick_size=rec.instrument.tick_size, **m.frame_parts())


def _diff(a, b) -> int:
    """Largest difference of one colour channel between two same-size images."""
    assert a.size() == b.size()
    pa = np.frombuffer(a.constBits(), np.uint8, a.sizeInBytes()).astype(int)
    pb = np.frombuffer(b.constBits(), np.uint8, b.sizeInBytes()).astype(int)
    return int(np.abs(pa - pb).max())


def test_cached_price_column_paints_what_per_row_text_paints(qtbot):
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    cached, direct = LadderWidget(), LadderWidget()
    direct.cache_prices = False
    for x in (cached, direct):
        qtbot.addWidget(x)
        x.resize(260, 600)
        x.show()
    frames = list(_frames(rec))
    f0 = frames[0]
    mid = 0.5 * (f0.best_bid + f0.best_ask) * f0.tick_size
    views = {0: (mid - 6.0, mid + 6.0), 25: (mid - 4.0, mid + 8.0), 40: (mid - 40.0, mid + 40.0)}
    lo, hi = views[0]
    insides = set()
    for i, f in enumerate(frames):
        lo, hi = views.get(i, (lo, hi))
        if i == 50:
            for x in (cached, direct):
                x.resize(300, 500)
        for x in (cached, direct):
            x.set_frame(f)
            x.set_view(lo, hi, 20.0, x.height() - 30.0)
        insides.add((f.best_bid, f.best_ask))
        a, b = cached.grab().toImage(), direct.grab().toImage()
        assert _diff(a, b) <= 2, i  # the same text (blending through the pixmap may round by 1-2)
        assert cached.painted == direct.painted, i
    assert len(insides) > 5  # the inside market moved: its bold rows were clipped out and redrawn
    assert any(r.rows > 1 for r in cached.painted)  # the zoom grouped rows
    # one render per placement (first view, pan, zoom, resize), a few more for the ladder's own
    # re-layout, never one per frame
    assert 4 <= cached.price_renders <= 12, cached.price_renders
