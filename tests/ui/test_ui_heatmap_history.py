"""The heatmap over the whole session (issue 16 item 3): after the real ES hour the widget
scrolls back to the start and shows the book there, zooms out to the whole session and back,
jumps to a signal's time, and starts on the data (no empty pre-open stretch). The engine answers
the widget's history requests (synchronously here; through its worker thread in the last test)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.analysis.frame import PatternHit, Signal  # noqa: E402
from app.core.events import chunks  # noqa: E402
from app.live.engine import AnalysisEngine  # noqa: E402
from app.market.model import MarketModel  # noqa: E402
from app.ui.heatmap import HeatmapWidget  # noqa: E402

NS = 1_000_000_000


@pytest.fixture(scope="module")
def es():
    from app.feeds.samples import load_default_sample

    return load_default_sample()


@pytest.fixture(scope="module")
def es_engine(es):
    """A Production engine after the real ES recording (snapshot, then the live re-open)."""
    eng = AnalysisEngine(es.instrument, "production")
    for c in chunks(es.events):
        eng.process(c)
    eng.finish()
    return eng


def live_start(es) -> int:
    ts = es.events["ts"]
    k = int(np.flatnonzero(np.diff(ts) > 3600 * NS)[0]) + 1
    return int(ts[k])


def book_at(es, t_ns):
    """Best bid and ask (ticks) of the real book at ``t_ns``: a fresh model up to there."""
    m = MarketModel(es.instrument, rows=400, column_ns=250_000_000, history_s=60, window_cols=10)
    ev = es.events
    m.apply(ev[: int(np.searchsorted(ev["ts"], t_ns, side="right"))])
    return m.best_bid, m.best_ask


def widget(qtbot, eng):
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(1200, 600)
    w.show()
    w.history_source = eng.request_history
    w.set_frame(eng.snapshot_frame())
    return w


def look_at(w, eng, x0, x1, y=None):
    """Pan/zoom as a mouse would (following off), then draw the engine's next frame."""
    w.follow(False)
    if y is None:
        w.vb.setRange(xRange=(x0, x1), padding=0)
    else:
        w.vb.setRange(xRange=(x0, x1), yRange=y, padding=0)
    w.set_frame(eng.snapshot_frame())


def pixel(w, t_s, price_ticks, tick=0.25):
    """The history image's cell at a time (s) and a price (ticks), or None outside it."""
    img = w.history_image_data()
    r = w.history_image_rect()
    col = int((t_s - r.left()) / r.width() * img.shape[1])
    row = int(round((price_ticks * tick - r.top()) / r.height() * img.shape[0] - 0.5))
    if not (0 <= col < img.shape[1] and 0 <= row < img.shape[0]):
        return None
    return float(img[row, col])


def test_scrolling_to_the_start_of_the_real_es_hour_shows_the_book_there(qtbot, es, es_engine):
    eng = es_engine
    w = widget(qtbot, eng)
    t0 = live_start(es)
    f = eng.snapshot_frame()
    assert f.heatmap_t0 > t0 + 3600 * NS  # the start is far out of the newest window
    bb, ba = book_at(es, t0 + 300 * NS)
    mid = (bb + ba) / 2 * 0.25
    look_at(w, eng, t0 / NS, t0 / NS + 600, (mid - 5, mid + 5))
    assert w.history_drawn is not None and w.history_drawn == w.history_request_id
    img = w.history_image_data()
    assert img is not None and (img > 0).mean() > 0.3  # the book, not a blank background
    r = w.history_image_rect()
    assert r.left() <= t0 / NS and r.right() >= t0 / NS + 600
    # resting size at the real best bid and ask, five minutes in
    assert pixel(w, t0 / NS + 300, bb) > 0
    assert pixel(w, t0 / NS + 300, ba) > 0
    # fine enough to see it: one image column per few seconds at most
    assert r.width() / img.shape[1] <= 4.0


def test_zoom_to_the_whole_session_and_back(qtbot, es, es_engine):
    eng = es_engine
    w = widget(qtbot, eng)
    f = eng.snapshot_frame()
    start, end = f.history_start_ns / NS, f.ts / NS
    assert start > 0 and end - start > 20 * 3600  # the recording's snapshot is 22 h before its end
    # the wheel's limits: one minute to the whole session
    lim = w.vb.state["limits"]
    assert lim["xRange"][0] == 60.0 and lim["xRange"][1] >= end - start
    full = eng.model.history_window(f.history_start_ns, f.ts, 1000)  # every price of the session
    look_at(w, eng, start, end, (full.base * 0.25, (full.base + full.heatmap.shape[0]) * 0.25))
    img = w.history_image_data()
    r = w.history_image_rect()
    assert r.left() <= start + 60 and r.right() >= f.heatmap_t0 / NS
    assert img.shape[1] <= int(w.vb.width() * 1.5)  # no more columns than pixels asked for
    cols = (img > 0).any(axis=0)
    t_col = r.left() + (np.arange(cols.size) + 0.5) * r.width() / cols.size
    span = end - start
    assert cols[(t_col >= start) & (t_col < start + 0.1 * span)].any()  # the session's first tenth
    assert cols[(t_col >= end - 0.1 * span) & (t_col < end)].all()  # and its last
    # and back: the last minute is the live window (no request), then one minute at the start
    n_req = w.history_request_id
    look_at(w, eng, end - 60, end)
    assert w.history_request_id == n_req
    t0 = live_start(es) / NS
    look_at(w, eng, t0 + 60, t0 + 120)
    assert w.history_request_id != n_req and w.history_drawn == w.history_request_id
    r2 = w.history_image_rect()
    img2 = w.history_image_data()
    # two hours back the finest tier kept is 4 s (tier 2: 15 min at 250 ms, 1 h at 1 s, 4 h
    # at 4 s); the whole day was 64 s a column
    assert r2.width() / img2.shape[1] <= 4.0 < r.width() / img.shape[1] / 10
    assert (img2 > 0).any()


def test_a_selected_signal_jumps_to_its_time_and_shows_the_book_there(qtbot, es, es_engine):
    eng = es_engine
    w = widget(qtbot, eng)
    t = live_start(es) + 420 * NS
    bb, ba = book_at(es, t)
    hit = PatternHit("wall", "dom", t, bb, 1, 0.9)
    s = Signal(id=1, ts=t, symbol="ESH4", side=1, score=0.8, components=(), reasons=(hit,),
               entry=ba, stop=ba - 8, target=ba + 16, size=1)
    w.show_signal(s, 0.25)
    assert not w.following
    (x0, x1), _ = w.vb.viewRange()
    assert x0 < t / NS < x1
    w.set_frame(eng.snapshot_frame())
    assert w.history_drawn == w.history_request_id
    assert pixel(w, t / NS, bb) > 0 and pixel(w, t / NS, ba) > 0


def test_the_start_up_view_spans_the_data_that_exists(qtbot, es):
    eng = AnalysisEngine(es.instrument, "production")
    t0 = live_start(es)
    ev = es.events
    k = int(np.searchsorted(ev["ts"], t0 + 20 * NS))
    snap_end = int(np.flatnonzero(np.diff(ev["ts"]) > 3600 * NS)[0]) + 1
    part = ev[snap_end:k]  # the first 20 s of the re-open, no snapshot stretch before them
    eng.process(part)
    eng.finish()
    f = eng.snapshot_frame()
    w = HeatmapWidget()
    qtbot.addWidget(w)
    w.resize(1200, 600)
    w.set_frame(f)
    (x0, x1), _ = w.vb.viewRange()
    window_start = f.heatmap_t0 / NS
    assert window_start < f.history_start_ns / NS - 60  # the window would be mostly empty
    assert x0 >= f.history_start_ns / NS - 60.0  # the view starts at the data (one minute at least)
    assert x1 - x0 <= 70.0


def test_the_engine_thread_answers_a_history_request_in_a_frame(qtbot, es, es_engine):
    eng = AnalysisEngine(es.instrument, "production")
    got = threading.Event()
    frames = []

    def on_frame(f):
        frames.append(f)
        got.set()

    eng.on_frame = on_frame
    eng.start()
    try:
        for c in chunks(es.events):
            eng.submit(c)
        t_end = int(es.events["ts"][-1])
        for _ in range(1200):  # bounded wait until the worker has applied the recording
            got.wait(0.05)
            got.clear()
            if frames and frames[-1].ts >= t_end:
                break
        assert frames[-1].ts >= t_end
        t0 = live_start(es)
        rid = eng.request_history(t0, t0 + 600 * NS, 800)
        for _ in range(400):  # bounded wait for the answer frame
            got.wait(0.05)
            got.clear()
            if frames and frames[-1].history is not None and frames[-1].history.request == rid:
                break
        img = frames[-1].history
        assert img is not None and img.request == rid
        assert img.t0_ns <= t0 and img.heatmap.shape[1] <= 800 and (img.heatmap > 0).any()
    finally:
        eng.stop()
    with pytest.raises(ValueError, match="max_cols"):
        eng.request_history(0, 10, 0)


def test_a_new_engine_with_request_ids_from_1_again_is_drawn(qtbot, es, es_engine):
    """A restarted pipeline builds a new engine whose request ids start again at 1."""
    w = widget(qtbot, es_engine)
    t0 = live_start(es) / NS
    look_at(w, es_engine, t0, t0 + 300)
    assert w.history_drawn == w.history_request_id
    eng2 = AnalysisEngine(es.instrument, "production")
    for c in chunks(es.events):
        eng2.process(c)
    eng2.finish()
    w.history_source = eng2.request_history
    w.clear_history()
    look_at(w, eng2, t0 + 60, t0 + 400)
    assert w.history_request_id == 1 and w.history_drawn == 1
