"""Issue 16, item 5: session context panes on the real ES hour.

- the volume profile beside the ladder: its POC row is the model's POC, its value area the
  model's, and its rows sit beside the ladder's rows (same pixel y per price);
- the cumulative delta pane under the heatmap: its last value is the session's cumulative delta
  (checked against the trades of the recording themselves), and its x axis is the heatmap's.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")


@pytest.fixture(scope="module")
def es_hour(shared_data):
    """The shipped real CME ES hour through the engine (Production profile): the last frame,
    the model, and the recording."""
    from app.core.events import chunks
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "production")
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    return eng.snapshot_frame(), eng.model, rec


def test_frame_carries_the_models_profile_and_delta(es_hour):
    frame, model, _ = es_hour
    poc, vah, val = model.volume_profile()
    assert poc > 0 and val <= poc <= vah
    assert (frame.poc, frame.vah, frame.val) == (poc, vah, val)
    assert frame.cum_delta == model.cum_delta


def test_profile_poc_row_is_the_models_poc_on_the_real_es_hour(qtbot, es_hour):
    from app.ui.profile_pane import ProfilePane

    frame, model, _ = es_hour
    poc, vah, val = model.volume_profile()
    pane = ProfilePane()
    qtbot.addWidget(pane)
    pane.resize(90, 700)
    pane.set_frame(frame)
    pane.set_view(poc * frame.tick_size - 11, poc * frame.tick_size + 11, 20.0, 660.0)  # 88 rows, 7.5 px
    pane.grab()  # paint: the group size is chosen there
    assert pane.rows_per_bar == 1
    assert pane.poc == poc and pane.row_kind(poc) == "poc"
    longest = pane.longest_bar()
    assert longest[0] == poc and longest[2] == "poc"
    # the bar drawn longest is the row with the most volume in the frame (independent of the model)
    vol = frame.session_volume
    assert int(frame.book_prices[int(np.argmax(vol))]) == poc
    # value area: the model's rows, holding at least 70 % of the session's volume
    kinds = {int(p): pane.row_kind(int(p)) for p in frame.book_prices}
    inside = [p for p, k in kinds.items() if k in ("value", "poc")]
    assert (min(inside), max(inside)) == (val, vah)
    sel = (frame.book_prices >= val) & (frame.book_prices <= vah)
    assert vol[sel].sum() >= 0.70 * vol.sum()
    # zoomed out: rows are summed into bars of several rows, and the POC's bar is still the POC's
    pane.set_view(poc * frame.tick_size - 200, poc * frame.tick_size + 200, 20.0, 660.0)  # 0.4 px rows
    pane.grab()
    g = pane.rows_per_bar
    assert g > 1
    bars = pane.bars()
    poc_bar = [b for b in bars if b[2] == "poc"]
    assert len(poc_bar) == 1 and poc_bar[0][0] <= poc < poc_bar[0][0] + g
    assert sum(b[1] for b in bars) == pytest.approx(float(vol.sum()))


def _window_with(qtbot, frame):
    from app.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    w.draw_frame(frame)
    w._sync_ladder()
    return w


def test_profile_rows_sit_beside_the_ladder_rows(qtbot, es_hour):
    frame, model, _ = es_hour
    w = _window_with(qtbot, frame)
    tick = frame.tick_size
    g_lad, g_pro = w.ladder, w.profile_pane
    for row in (frame.poc, frame.vah, frame.val, frame.best_bid):
        y_l = g_lad.mapToGlobal(g_lad.rect().topLeft()).y() + g_lad.price_to_y(row * tick)
        y_p = g_pro.mapToGlobal(g_pro.rect().topLeft()).y() + g_pro.price_to_y(row * tick)
        assert y_p == pytest.approx(y_l, abs=0.5)
    # the profile pane is beside the ladder (next to it in the same row of the window)
    assert w.top_splitter.indexOf(g_pro) + 1 == w.top_splitter.indexOf(g_lad)


def test_delta_pane_last_value_is_the_session_cumulative_delta(qtbot, es_hour):
    from app.core.events import KIND_TRADE, SIDE_ASK, SIDE_BID

    frame, model, rec = es_hour
    w = _window_with(qtbot, frame)
    last = w.delta_pane.last_value()
    assert last == pytest.approx(model.cum_delta)
    # the same figure from the recording's trades since the session open: lifted asks - hit bids
    ev = rec.events
    tr = ev[(ev["kind"] == KIND_TRADE) & (ev["ts"] >= frame.session_start_ns) & (ev["ts"] <= frame.ts)]
    want = float(tr["size"][tr["side"] == SIDE_ASK].sum() - tr["size"][tr["side"] == SIDE_BID].sum())
    assert want != 0 and last == pytest.approx(want)
    t, v = w.delta_pane.series()
    # the history from the session's bars: it starts at the session's first bar and ends now
    assert t[0] * 1e9 >= frame.session_start_ns and t[-1] * 1e9 == pytest.approx(frame.ts, abs=1e3)
    assert np.all(np.diff(t) > 0) and len(t) >= 30
    # the line at the start of the first bar is 0 when the session's first bar is in the frame
    b = frame.bars[frame.bars["ts"] >= frame.session_start_ns]
    assert v[0] == pytest.approx(model.cum_delta - float(b["delta"].sum()))


def test_delta_pane_shares_the_heatmaps_time_axis(qtbot, es_hour):
    frame, _, _ = es_hour
    w = _window_with(qtbot, frame)
    hm, dp = w.heatmap, w.delta_pane
    assert dp.linked_to() is hm.vb
    assert dp.vb.viewRange()[0] == pytest.approx(hm.vb.viewRange()[0])
    t1 = frame.ts / 1e9
    hm.vb.setXRange(t1 - 600, t1 - 60, padding=0)
    assert dp.vb.viewRange()[0] == pytest.approx([t1 - 600, t1 - 60])
    # and the same pixels: the two plot areas start and end at the same x on screen
    qtbot.wait(10)
    r_h = hm.mapToGlobal(hm.mapFromScene(hm.vb.sceneBoundingRect()).boundingRect().topLeft())
    r_d = dp.mapToGlobal(dp.mapFromScene(dp.vb.sceneBoundingRect()).boundingRect().topLeft())
    assert abs(r_h.x() - r_d.x()) <= 1
    assert abs(hm.vb.width() - dp.vb.width()) <= 1
    # the delta pane sits under the heatmap
    assert w.heat_splitter.indexOf(hm) == 0 and w.heat_splitter.indexOf(dp) == 1


def test_profile_bars_follow_the_ladders_row_group(qtbot, es_hour):
    """With 5 rows a ladder row, each profile bar sums the same 5 rows; in the window the
    profile groups exactly as the ladder, zoomed in and zoomed out."""
    from app.ui.profile_pane import ProfilePane

    frame, model, _ = es_hour
    pane = ProfilePane()
    qtbot.addWidget(pane)
    pane.resize(90, 700)
    pane.set_frame(frame)
    pane.set_view(frame.poc * frame.tick_size - 11, frame.poc * frame.tick_size + 11, 20.0, 660.0)
    pane.set_grouping(lambda row_px: 5)
    pane.grab()
    assert pane.rows_per_bar == 5
    bars = pane.bars()
    assert all(p0 % 5 == 0 for p0, _, _ in bars)
    prices, vol = frame.book_prices, frame.session_volume
    for p0, v, _ in bars[:10]:
        sel = (prices >= p0) & (prices < p0 + 5)
        assert v == pytest.approx(float(vol[sel].sum()))
    w = _window_with(qtbot, frame)
    tick = frame.tick_size
    for half in (6.0, 40.0, 150.0):  # rows of ~20 px, ~3 px, ~0.8 px
        w.heatmap.follow(False)
        w.heatmap.vb.setYRange(frame.poc * tick - half, frame.poc * tick + half, padding=0)
        w._sync_ladder()
        w.ladder.grab()
        w.profile_pane.grab()
        assert w.ladder.grouping >= 1
        assert w.profile_pane.rows_per_bar == w.ladder.grouping, half
