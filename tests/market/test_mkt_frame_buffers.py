"""Frame planes in reused buffers (issue 18 item 3: the engine's per-frame copy of the
heatmap window was about 60 % of its thread at 10x ES).

:meth:`MarketModel.frame_parts` writes a frame's heatmap and traded planes into a buffer of
an earlier frame once nothing refers to it, and copies only the open column when the window
has not moved since that buffer was filled. Checked on the real recordings: every frame equals
a copy made from :meth:`MarketModel.heatmap_window` at that moment, and a frame still held is
never written again."""

from __future__ import annotations

import numpy as np
import pytest

from app.market.model import MarketModel

MS = 1_000_000


def _expected(m):
    hb, ha, tb, ts, t0 = m.heatmap_window()
    return (hb + ha).astype(np.float32), np.array(tb), np.array(ts), t0


@pytest.mark.parametrize("which", ["es", "btc"])
def test_every_frame_equals_a_fresh_copy_and_a_held_frame_never_changes(which, es_recording, btc_recording,
                                                                         cut):
    rec = es_recording if which == "es" else btc_recording
    m = MarketModel(rec.instrument, rows=120, column_ns=250 * MS, history_s=120.0, window_cols=200)
    parts = cut(rec.events, 3 if which == "es" else 1)[:6000]
    held = []  # (frame parts, their values when made): a consumer that keeps some frames
    last = None
    for i, c in enumerate(parts):
        m.apply(c)
        if which == "es" and i % 2:  # several exchange batches per frame, as at a fast replay
            continue
        f = m.frame_parts()
        heat, tb, ts, t0 = _expected(m)
        assert f["heatmap_t0"] == t0
        np.testing.assert_array_equal(f["heatmap"], heat)
        np.testing.assert_array_equal(f["traded_buy"], tb)
        np.testing.assert_array_equal(f["traded_sell"], ts)
        assert f["heatmap"].flags.c_contiguous and f["traded_buy"].flags.c_contiguous
        if i % 14 == 0:
            held.append((f, f["heatmap"].copy(), f["traded_buy"].copy(), f["traded_sell"].copy()))
            if len(held) > 3:
                held.pop(0)
        if last is not None:  # the previous frame is still referred to: not its buffer
            assert not np.shares_memory(f["heatmap"], last["heatmap"])
        for g, h0, b0, s0 in held:
            np.testing.assert_array_equal(g["heatmap"], h0)
            np.testing.assert_array_equal(g["traded_buy"], b0)
            np.testing.assert_array_equal(g["traded_sell"], s0)
        last = f
    whole, column_only = m.frame_copies
    assert whole > 0 and column_only > 0  # both paths ran on the real stream
    assert m.recentres > 0 or which == "es"


def test_a_view_of_a_frame_keeps_its_buffer_from_being_written(es_recording):
    m = MarketModel(es_recording.instrument, rows=40, column_ns=250 * MS, history_s=60.0, window_cols=100)
    m.apply(es_recording.events[:5000])
    band = m.frame_parts()["heatmap"][5:20]  # as the heatmap widget keeps the rows it draws
    kept = band.copy()
    for k in range(5000, 9000, 50):
        m.apply(es_recording.events[k : k + 50])
        f = m.frame_parts()
        assert not np.shares_memory(f["heatmap"], band)
    np.testing.assert_array_equal(band, kept)
