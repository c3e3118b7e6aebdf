"""Widget unit tests on hand-built AnalysisFrames (the acceptance tests on real data are in
``test_gui_window.py``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")


from app.market.bars import BAR_DTYPE  # noqa: E402
from app.analysis.frame import AnalysisFrame, PatternHit, Signal, VixState  # noqa: E402
from app.sim.outcomes import SignalOutcome  # noqa: E402
from app.ui.heatmap import HeatmapWidget, cutoff_level, heatmap_lut, level_sample  # noqa: E402
from app.ui.ladder import LadderWidget, price_decimals  # noqa: E402
from app.ui.tape import SignalTape, SignalTapeModel  # noqa: E402
from app.ui.vix_gauge import VixGauge  # noqa: E402

NS = 1_000_000_000
T0 = 1_703_545_200 * NS  # 2023-12-25 23:00 UTC


def make_frame(seq=1, rows=40, cols=60, base=19200, bid=19220, ask=19221, signals=(), outcomes=None,
               patterns=(), vix=None, precision=None):
    hm = np.zeros((rows, cols), dtype=np.float32)
    hm[: bid - base + 1, :] = 5.0
    hm[ask - base:, :] = 7.0
    hm[10, 20:40] = 300.0  # a wall
    tb = np.zeros_like(hm)
    ts = np.zeros_like(hm)
    tb[ask - base, cols - 3] = 12
    ts[bid - base, cols - 2] = 4
    prices = np.arange(base, base + rows, dtype=np.int64)
    b = np.where(prices <= bid, 10.0, 0.0)
    a = np.where(prices >= ask, 12.0, 0.0)
    vol = np.zeros(rows)
    vol[bid - base] = 50
    return AnalysisFrame(
        seq=seq, ts=T0 + cols * NS // 4, symbol="ESH4", tick_size=0.25, heatmap=hm, heatmap_base=base,
        heatmap_t0=T0, column_ns=NS // 4, traded_buy=tb, traded_sell=ts, best_bid=bid, best_ask=ask,
        book_prices=prices, book_bid=b, book_ask=a, session_volume=vol, bars=np.zeros(0, BAR_DTYPE),
        patterns=tuple(patterns), vix=vix, signals=tuple(signals), new_signals=tuple(signals),
        outcomes=outcomes or {}, precision=precision or {}, timings={"total": 0.5},
    )


def hit(name="wall", price=19210, side=1):
    return PatternHit(name, "dom", T0 + 5 * NS, price, side, 0.9, detail=f"{name} detail 300 vs median 10")


def sig(i, side=1):
    return Signal(id=i, ts=T0 + i * NS, symbol="ESH4", side=side, score=0.8,
                  components=(("vix", 0.7), ("dom", 0.9), ("regime", 0.6)), reasons=(hit(),),
                  entry=19221, stop=19213, target=19237, size=2, regime="low")


def test_lut_and_scale_helpers():
    lut = heatmap_lut()
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert lut[0, :3].sum() < lut[-1, :3].sum()
    d = np.zeros((10, 10), np.float32)
    assert level_sample(d).size == 0 and cutoff_level(level_sample(d), 0.98) == 1.0
    d[0, :5] = [1, 2, 3, 4, 100]
    smp = level_sample(d)
    assert sorted(smp.tolist()) == [1, 2, 3, 4, 100]
    assert cutoff_level(smp, 0.5) == 3.0 and cutoff_level(smp, 1.0) == 100.0
    assert cutoff_level(smp, 0.1) == 3.0  # clamped to the 0.5..1.0 range of the settings
    assert price_decimals(0.25) == 2 and price_decimals(1.0) == 0 and price_decimals(0.1) == 1


def test_heatmap_draws_in_place_and_contrast_changes_levels_only(qtbot):
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(800, 500)
    w.show()
    image_item, bubbles = w.image, w.bubbles
    n_items = len(w.plotItem.items)
    f1 = make_frame(seq=1, patterns=(hit(),), signals=(sig(1),))
    w.set_frame(f1)
    assert w.image is image_item and w.bubbles is bubbles
    assert np.shares_memory(w.image_data(), f1.heatmap)  # a view of the immutable frame array, no copy
    assert w.bubble_count() == 2
    assert w.marker_count() == 1
    # the image sits on the real price axis: row 0 at heatmap_base * tick
    r = w.image.mapRectToParent(w.image.boundingRect())
    assert r.bottom() == pytest.approx((19200 - 0.5) * 0.25) or r.top() == pytest.approx((19200 - 0.5) * 0.25)
    lv = w.levels
    assert lv[1] == pytest.approx(7.0)  # default 0.98 quantile: the ordinary levels, not the wall
    w.set_contrast(1.0)
    assert w.levels[1] == pytest.approx(300.0)  # the wall is the largest size
    w.set_contrast(0.5)
    assert w.levels[1] < 300.0
    assert np.shares_memory(w.image_data(), f1.heatmap)
    w.set_frame(make_frame(seq=2))
    assert len(w.plotItem.items) == n_items  # nothing created per frame
    # following: view centred on the mid; a manual pan stops following; follow() returns
    lo, hi = w.price_range()
    assert lo < 19220.5 * 0.25 < hi
    w.vb.sigRangeChangedManually.emit([True, True])
    assert not w.following
    w.follow(True)
    assert w.following


def test_heatmap_show_signal_sets_bracket_and_stops_following(qtbot):
    w = HeatmapWidget()
    qtbot.addWidget(w)
    s = sig(3, side=-1)
    w.set_frame(make_frame(signals=(s,)))
    w.show_signal(s)
    assert w.bracket_lines["stop"].isVisible()
    assert w.bracket_lines["entry"].value() == pytest.approx(19221 * 0.25)
    assert len(w.selected_marks.data) == 2
    assert not w.following
    w.show_signal(None)
    assert not w.bracket_lines["stop"].isVisible()


def test_ladder_paints_visible_rows_and_inside_market(qtbot):
    lad = LadderWidget()
    qtbot.addWidget(lad)
    lad.resize(260, 600)
    lad.show()
    f = make_frame()
    lad.set_frame(f)
    lad.set_view(19200 * 0.25, 19240 * 0.25, 20, 560)
    img = lad.grab().toImage()  # renders through paintEvent
    assert (lad.best_bid, lad.best_ask) == (19220, 19221)
    assert 35 <= lad.rows_painted <= 40
    y_bid, y_ask = lad.price_to_y(19220 * 0.25), lad.price_to_y(19221 * 0.25)
    assert y_ask < y_bid  # higher price higher up
    # the inside market rows are highlighted (bid row blue-ish background at the far left)
    c = img.pixelColor(3, int(y_bid))
    assert c.blue() > c.red()


def test_vix_gauge_shows_state(qtbot):
    g = VixGauge()
    qtbot.addWidget(g)
    assert g.regime == ""
    st = VixState("2023-12-22", 13.0, 0.1, -0.05, 0.85, "low", 1, 1.2,
                  patterns=(PatternHit("complacency", "vix", T0, 0, -1, 0.7, "VIX percentile 10%"),))
    g.set_state(st)
    assert g.regime == "low"
    assert "LOW" in g.summary_text() and "x1.20" in g.summary_text()
    a_low, a_hi = g.value_to_angle(12.0), g.value_to_angle(16.0)
    assert a_hi < g.value_to_angle(13.0) < a_low
    g.resize(300, 260)
    assert not g.grab().isNull()


def test_vix_gauge_says_the_analysis_compiles_instead_of_no_history(qtbot):
    g = VixGauge()
    qtbot.addWidget(g)
    g.resize(300, 260)
    g.set_state(None, analysis_ready=False)  # first start: the analyzers compile
    assert "compiling" in g.summary_text() and "no history" not in g.summary_text()
    while_compiling = g.grab().toImage()
    g.set_state(None, analysis_ready=True)  # compiled, and still no VIX state: no history
    assert g.summary_text() == "VIX: no history loaded"
    assert g.grab().toImage() != while_compiling  # the dial's text changed too


def test_tape_appends_rows_fills_outcomes_and_selects(qtbot):
    tape = SignalTape()
    qtbot.addWidget(tape)
    f1 = make_frame(signals=(sig(1),))
    with qtbot.waitSignal(tape.sigNewSignals):
        assert tape.update_from_frame(f1) == 1
    m: SignalTapeModel = tape.model
    assert m.rowCount() == 1
    assert m.data(m.index(0, 1)) == "LONG"
    assert m.data(m.index(0, 4)) == "4805.25"
    assert m.data(m.index(0, 8)) == ""
    f2 = make_frame(signals=(sig(1), sig(2, -1)), outcomes={1: SignalOutcome(1, move_1m=3.0, first="target")},
                    precision={"wall": (1, 1, 1.0)})
    changed = []
    m.dataChanged.connect(lambda a, b: changed.append(a.row()))
    assert tape.update_from_frame(f2) == 1
    assert m.rowCount() == 2 and changed == [0]
    assert m.data(m.index(0, 8)) == "+3" and m.data(m.index(0, 11)) == "target"
    assert tape.precision_model.rowCount() == 0  # frame.precision is no longer shown: session_stats is (issue 15.4)
    # the engine's recent list moving on does not drop rows
    tape.update_from_frame(make_frame(signals=(sig(2, -1),)))
    assert m.rowCount() == 2
    with qtbot.waitSignal(tape.sigSignalSelected) as blocker:
        tape.select_row(1)
    assert blocker.args[0].id == 2


def test_display_table_gives_every_cell_the_colour_of_the_256_entry_palette(qtbot):
    """The image item draws through :func:`display_lut` (512 RGB entries, a 32-bit image Qt
    draws fast); every cell gets exactly the colour the 256-entry palette gives it."""
    import pyqtgraph as pg

    from app.ui.heatmap import display_lut

    rng = np.random.default_rng(3)
    data = (rng.gamma(1.5, 20.0, size=(60, 90))).astype(np.float32)
    data[0, :5] = [0.0, 1e-7, 50.0, 1e6, 49.999]
    levels = (0.0, 50.0)
    lut = heatmap_lut()
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(display_lut(lut))
    item.setImage(data, autoLevels=False, levels=levels)
    item.render()
    q = item.qimage
    assert q.format() == q.Format.Format_RGBX8888
    got = np.frombuffer(q.constBits(), np.uint8).reshape(60, q.bytesPerLine() // 4, 4)[:, :90, :3]
    idx = np.clip((data.astype(np.float64) - levels[0]) * (256 / (levels[1] - levels[0])), 0, 255).astype(int)
    np.testing.assert_array_equal(got, lut[idx][..., :3])
    w = HeatmapWidget()
    qtbot.addWidget(w)
    assert w.image.lut.shape == (512, 3)


def test_heatmap_draws_the_rows_around_the_view_and_a_pan_redraws_them(qtbot):
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(800, 500)
    w.show()
    f = make_frame(rows=400, cols=60, base=19000, bid=19200, ask=19201)
    w.set_frame(f)
    r0, r1 = w.drawn_rows
    assert 0 < r0 < 200 < r1 < 400  # only the band around the visible 44 ticks
    assert np.shares_memory(w.image_data(), f.heatmap) and w.image_data().shape == (r1 - r0, 60)
    lo, hi = w.price_range()
    assert r0 <= lo / 0.25 - 19000 and hi / 0.25 - 19000 <= r1
    assert w.levels[1] == pytest.approx(cutoff_level(level_sample(f.heatmap), w.contrast))  # whole heatmap
    # pan far below the band: the rows shown now are drawn from the same frame
    w.vb.setRange(yRange=(19020 * 0.25, 19060 * 0.25), padding=0)
    n0, n1 = w.drawn_rows
    assert n0 <= 20 and n1 >= 60 and (n0, n1) != (r0, r1)
    np.testing.assert_array_equal(w.image_data(), f.heatmap[n0:n1])
    top = w.image.mapRectToParent(w.image.boundingRect())
    assert min(top.top(), top.bottom()) == pytest.approx((19000 + n0 - 0.5) * 0.25)
