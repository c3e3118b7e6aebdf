"""Acceptance tests: the real window against the built-in DTC server on the real ES sample.

One session (module fixture) starts ``MainWindow`` on a qasync loop exactly as ``mia-elite``
does (embedded ``DTCServer`` on port 0 replaying the shipped real CME ES hour at a fast speed,
``DTCClient`` on the same loop, ``AnalysisEngine`` worker thread, display timer), waits for data,
records what it needs, closes the window, and the tests below check the observations.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

SPEED = 2000.0


def pg_point(x, y):
    from PySide6 import QtCore

    return QtCore.QPointF(float(x), float(y))  # the hour in about 2 s of replay; the tests wait for the replay's end
TIMEOUT_S = 240.0  # a cold numba cache compiles the kernels before the first frame


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def session(qapp, tmp_path_factory):
    """Run the window once on the real sample; return what was observed."""
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    old_home = os.environ.get("MIA_ELITE_HOME")
    os.environ["MIA_ELITE_HOME"] = str(tmp_path_factory.mktemp("gui-home"))
    cap = _Capture()
    logging.getLogger().addHandler(cap)
    threads_before = set(threading.enumerate())
    obs: dict = {"batches": [], "signal_ids": set(), "published_new": []}
    window = MainWindow(PipelineConfig(embedded=True, speed=SPEED, profile="production", loop_replay=False), prefs=None)
    window.resize(1400, 900)

    async def wait_until(pred, timeout):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if pred():
                return True
            await asyncio.sleep(0.05)
        return pred()

    async def main():
        window.show()
        # watch every batch the client hands over, and every frame the engine publishes
        import app.live.pipeline as pmod

        orig_on_events = pmod.Pipeline._on_events
        orig_on_frame = pmod.Pipeline._on_frame

        def on_events(self, batch):
            obs["batches"].append(batch.copy())
            orig_on_events(self, batch)

        def on_frame(self, frame):
            for s in frame.signals:
                obs["signal_ids"].add(s.id)
            obs["published_new"].extend(s.id for s in frame.new_signals)
            orig_on_frame(self, frame)

        pmod.Pipeline._on_events = on_events
        pmod.Pipeline._on_frame = on_frame
        try:
            await window.start()
            pl = window.pipeline
            obs["started"] = await wait_until(lambda: window.frames_drawn > 0, TIMEOUT_S)
            # what the built-in server replays: the sample from its opening trade, headed by a
            # snapshot of the book at that point (app.sim.replay.start_at)
            n_events = sum(int(s.clock.events.shape[0]) for s in pl.source.replay.server.symbols.values())
            # the whole replay was sent, received, applied by the engine, and its last frame drawn
            obs["replay_done"] = await pl.source.replay.wait_replay_done(TIMEOUT_S)
            last_in = [-1]

            def settled():
                done = (pl.events_in == last_in[0] and window.last_frame is not None
                        and window.last_frame.events_total == pl.events_in and pl.slot.last is window.last_frame)
                last_in[0] = pl.events_in
                return done

            async def settled_twice():
                while not settled():
                    await asyncio.sleep(0.3)
                return True

            try:
                obs["replayed"] = await asyncio.wait_for(settled_twice(), TIMEOUT_S)
            except asyncio.TimeoutError:
                obs["replayed"] = False
            await asyncio.sleep(0.3)
            obs["frame"] = window.last_frame
            obs["n_events"] = n_events
            obs["heatmap_image"] = window.heatmap.image_data()
            obs["heatmap_band"] = window.heatmap.drawn_rows
            obs["ladder"] = (window.ladder.best_bid, window.ladder.best_ask)
            obs["gauge_regime"] = window.vix_gauge.regime
            obs["tape_rows"] = window.tape.model.rowCount()
            obs["tape_ids"] = [s.id for s in window.tape.model.signals]
            obs["bubbles"] = window.heatmap.bubble_count()
            obs["vix_history"] = pl.vix_history
            obs["profile"] = pl.profile
            obs["mode_banner"] = window.mode_banner.text()
            # the view follows the market by default; the ladder sits on the heatmap's price axis
            obs["following"] = window.heatmap.following
            obs["price_range"] = window.heatmap.price_range()
            f = window.last_frame
            window._sync_ladder()
            vb = window.heatmap.vb
            align = []
            for p in (f.best_bid, f.best_ask):
                price = p * f.tick_size
                scene_pt = vb.mapViewToScene(pg_point(window.heatmap.vb.viewRange()[0][0], price))
                viewport_pt = window.heatmap.mapFromScene(scene_pt)
                y_heat = window.ladder.mapFromGlobal(window.heatmap.viewport().mapToGlobal(viewport_pt)).y()
                align.append((y_heat, window.ladder.price_to_y(price)))
            obs["align"] = align
            # a click on a tape row shows that signal's markers and bracket on the heatmap
            if window.tape.model.rowCount():
                window.tape.select_row(0)
                obs["selected_marks"] = len(window.heatmap.selected_marks.data)
                obs["bracket_visible"] = window.heatmap.bracket_lines["entry"].isVisible()
                obs["selected_signal"] = window.tape.model.signal_at(0)
                obs["entry_line"] = window.heatmap.bracket_lines["entry"].value()
            obs["states"] = dict(pl.states)
            tr = window.trading
            obs["journal_ids"] = ([r[0] for r in tr.session.journal.query("SELECT signal_id FROM signals")]
                                  if tr is not None else None)
            obs["server_thread"] = pl.source.replay.thread_ident != threading.get_ident()
            obs["problems"] = list(window.problems.entries)
            obs["tasks_before_close"] = len(asyncio.all_tasks())
            closed = asyncio.get_running_loop().create_future()
            window.sigClosed.connect(lambda: closed.done() or closed.set_result(True))
            t0 = time.monotonic()
            window.close()
            await asyncio.wait_for(closed, 30)
            obs["close_s"] = time.monotonic() - t0
            await asyncio.sleep(0.2)
            me = asyncio.current_task()
            obs["tasks_after_close"] = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            obs["engine_thread_alive"] = any(
                t.is_alive() for t in threading.enumerate() if t not in threads_before
            )
            obs["new_threads"] = [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        finally:
            pmod.Pipeline._on_events = orig_on_events
            pmod.Pipeline._on_frame = orig_on_frame

    qapp.setQuitOnLastWindowClosed(False)  # as make_app() does: the loop, not Qt, ends the program
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            loop.run_until_complete(main())  # every wait inside is bounded
    finally:
        asyncio.set_event_loop(None)
        logging.getLogger().removeHandler(cap)
        if old_home is None:
            os.environ.pop("MIA_ELITE_HOME", None)
        else:
            os.environ["MIA_ELITE_HOME"] = old_home
    obs["log"] = cap.records
    window.deleteLater()
    return obs


def test_window_starts_in_paper_mode_and_replays_the_whole_sample(session):
    assert session["started"], "no frame was drawn"
    assert session["replay_done"], "the built-in server did not finish the replay"
    assert session["replayed"], "the engine did not apply every event the client received"
    assert session["frame"].events_total >= session["n_events"]  # the recording plus snapshot/quote events
    assert "PAPER MODE" in session["mode_banner"]
    assert "built-in DTC server" in session["mode_banner"]
    assert any(s == "streaming" for s in session["states"].values()), session["states"]


def test_heatmap_holds_real_liquidity(session):
    img = session["heatmap_image"]
    f = session["frame"]
    # the image is the frame's heatmap over the rows around the visible prices (a view of it)
    r0, r1 = session["heatmap_band"]
    assert img is not None and img.shape == (r1 - r0, f.heatmap.shape[1])
    assert img.dtype == np.float32
    assert (img > 0).sum() > 0.05 * img.size  # resting liquidity over price x time
    assert np.array_equal(img, f.heatmap[r0:r1])
    lo, hi = session["price_range"]
    rows, base = f.heatmap.shape[0], f.heatmap_base
    assert r0 <= max(0, math.floor(lo / f.tick_size) - base)  # every visible row is drawn
    assert r1 >= min(rows, math.ceil(hi / f.tick_size) - base + 1)
    assert session["bubbles"] > 0  # real trades drawn as bubbles


def test_ladder_inside_market_equals_the_book(session):
    """The ladder shows the engine's inside market, and that equals a book rebuilt independently
    (``app.market.refbook.ReferenceBook``) from exactly the events the client delivered."""
    from app.market.refbook import ReferenceBook

    f = session["frame"]
    assert session["ladder"] == (f.best_bid, f.best_ask)
    ev = np.concatenate(session["batches"])[: f.events_total]
    book = ReferenceBook()
    book.apply(ev)
    assert (book.best_bid(), book.best_ask()) == (f.best_bid, f.best_ask)
    assert f.best_bid < f.best_ask
    # the shipped sample ends at 4810.00 / 4810.25 (data README)
    assert (f.best_bid * f.tick_size, f.best_ask * f.tick_size) == (4810.00, 4810.25)


def test_vix_gauge_shows_the_regime_of_the_loaded_history(session):
    from app.analysis.vix import VixAnalyzer

    f = session["frame"]
    hist = session["vix_history"]
    assert hist is not None and len(hist) > 1000
    expected = VixAnalyzer(hist, session["profile"].section("vix")).state(f.ts)
    assert expected is not None
    assert session["gauge_regime"] == expected.regime
    assert f.vix is not None and f.vix.date == expected.date


def test_view_follows_price_and_ladder_shares_the_price_axis(session):
    f = session["frame"]
    lo, hi = session["price_range"]
    assert session["following"]
    assert lo < f.best_bid * f.tick_size <= f.best_ask * f.tick_size < hi
    for y_heatmap, y_ladder in session["align"]:
        assert abs(y_heatmap - y_ladder) <= 2.0, session["align"]


def test_clicking_a_signal_shows_its_markers_on_the_heatmap(session):
    s = session["selected_signal"]
    assert s is not None
    assert session["bracket_visible"]
    assert session["entry_line"] == pytest.approx(s.entry * session["frame"].tick_size)
    assert session["selected_marks"] == 1 + sum(1 for r in s.reasons if r.price > 0)


def test_tape_gets_a_row_per_signal_fired(session):
    fired = session["signal_ids"]
    assert fired, "the engine fired no elite signal on the real ES hour (production profile)"
    assert session["tape_rows"] >= 1
    assert set(session["tape_ids"]) <= fired
    # every signal of the final frame is on the tape
    assert {s.id for s in session["frame"].signals} <= set(session["tape_ids"])


def test_every_published_signal_is_journaled_once_from_the_engine_frames(session):
    """The trading panel journals from the pipeline's frame fan-out (not from a GUI timer):
    every signal the engine published is in the journal exactly once."""
    published = session["published_new"]
    assert published, "the engine published no signal"
    assert session["journal_ids"] is not None, "the trading panel was not attached"
    assert sorted(session["journal_ids"]) == sorted(published)
    assert len(set(published)) == len(published)


def test_the_replay_server_ran_off_the_gui_thread(session):
    assert session["server_thread"]


def test_close_stops_every_task_and_thread_without_error(session):
    assert session["tasks_after_close"] == [], session["tasks_after_close"]
    assert not session["engine_thread_alive"], session["new_threads"]
    errors = [r for r in session["log"] if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:300] for r in errors]
    assert not [p for p in session["problems"] if p[0] == "error"], session["problems"]
    assert session["close_s"] < 30
