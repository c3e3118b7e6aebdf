"""The window's tape and precision table (issue 15 items 2-4, issue 16 items 6 and 10): the
session statistics equal ``app.research`` on the same outcomes, on the real ES hour."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from app.core.events import KIND_TRADE, chunks  # noqa: E402
from app.research import stats  # noqa: E402
from app.research.live import LiveResearch, signal_baseline  # noqa: E402
from app.research.trades import trade_result  # noqa: E402
from app.ui.tape import PrecisionModel, SignalTape  # noqa: E402

USER = 256  # QtCore.Qt.UserRole


def run_es_hour(profile="scalping", frames=False, **kw):
    """The engine over the shipped ES hour with a research observer; returns (engine, observer,
    last frame, source). ``frames``: build a frame after every chunk, as the worker publishes."""
    from app.live.engine import AnalysisEngine
    from app.research.evaluate import load_path, split_sessions

    src = split_sessions(load_path(Path("default")))[0]  # the session evaluate runs on
    obs = LiveResearch(profile, threaded=False, **kw)
    eng = AnalysisEngine(src.instrument, profile, observer=obs)
    for c in chunks(src.events):
        eng.process(c)
        if frames:
            eng.snapshot_frame()
    eng.finish(end_of_data=True)
    return eng, obs, eng.snapshot_frame(), src


@pytest.fixture(scope="module")
def es_scalping():
    return run_es_hour()


def test_precision_table_equals_research_stats_on_the_real_es_hour(qtbot, es_scalping):
    eng, obs, frame, src = es_scalping
    tape = SignalTape()
    qtbot.addWidget(tape)
    tape.update_from_frame(frame)
    m: PrecisionModel = tape.precision_model
    sigs = eng.all_signals
    assert len(sigs) >= 5  # the scalping profile fires on this hour
    oc = eng.outcomes
    comm, slip, tv = eng.tracker.commission, eng.tracker.engine.slippage_ticks, src.instrument.tick_value
    delay = eng.tracker.delay_ns / 1e9
    res = [trade_result(s, oc[s.id], tv, comm, slip) for s in sigs]
    dec = sum(r.decided for r in res)
    wins = sum(r.target_first for r in res)
    lo, hi = stats.wilson_interval(wins, dec)
    be = np.mean([stats.breakeven_rate(abs(s.target - s.entry), abs(s.entry - s.stop) + slip, tv, 2 * comm)
                  for s in sigs])
    usd = np.array([r.net_usd for r in res])
    ticks = np.array([r.ticks for r in res])
    # the baseline: the same random entries (seeded by signal id) booked the same way
    tr = src.events[src.events["kind"] == KIND_TRADE]
    b = [signal_baseline(s, tr["ts"].astype(np.int64), tr["price"].astype(np.int64), src.instrument, obs.draws,
                         0, delay, slip, comm) for s in sigs]
    bm = np.column_stack([x[0] for x in b]).mean(axis=1)
    p = stats.mc_p_value(float(usd.mean()), bm)

    row0 = [m.data(m.index(0, c), USER) for c in range(m.columnCount())]
    assert row0[0] == "Scalping: all signals"
    assert row0[1] == len(sigs)
    assert row0[2] == pytest.approx(wins / dec, abs=1e-4)
    assert row0[3] == pytest.approx((lo, hi), abs=1e-4)
    assert row0[4] == pytest.approx(be, abs=1e-4)
    assert row0[5] == pytest.approx(ticks.mean(), abs=1e-4)
    assert row0[6] == pytest.approx(usd.mean(), abs=0.01)
    assert row0[8] == pytest.approx(bm.mean(), abs=1e-9)
    assert row0[9] == pytest.approx(p, abs=1e-12)
    assert m.data(m.index(0, 2)) == f"{wins}/{dec} = {100 * wins / dec:.0f}%"
    assert m.data(m.index(0, 3)) == f"{100 * lo:.0f}%-{100 * hi:.0f}%"
    # per pattern: clearly "signals citing", counted as evaluate counts them
    labels = [m.data(m.index(r, 0)) for r in range(1, m.rowCount())]
    names = sorted({h.name for s in sigs for h in s.reasons})
    assert labels == [f"signals citing {n}" for n in names]
    for r, name in enumerate(names, start=1):
        idx = [i for i, s in enumerate(sigs) if any(h.name == name for h in s.reasons)]
        assert m.data(m.index(r, 1), USER) == len(idx)
        pr = stats.mc_p_value(float(usd[idx].mean()), np.column_stack([b[i][0] for i in idx]).mean(axis=1))
        assert m.data(m.index(r, 9), USER) == pytest.approx(pr, abs=1e-12)
    assert "measured" in tape.stats_label.text()


def test_statistics_run_off_the_engine_thread_and_at_most_every_refresh(qtbot):
    """Threaded (as in the window): the summary is computed on a thread of its own, not again
    before ``refresh_s`` of the clock has passed, and equals the synchronous one."""
    from app.core.clock import ManualClock

    clock = ManualClock()
    eng, obs, frame, src = run_es_hour(draws=20)
    sync = frame.session_stats
    lr = LiveResearch("scalping", draws=20, clock=clock, refresh_s=5.0)
    lr.attach(eng)
    lr._ts, lr._px, lr._n = obs._ts, obs._px, obs._n  # the same session's trades
    lr._sessions = dict(obs._sessions)
    lr._ended = True
    assert lr.frame_fields(eng)["session_stats"] is None  # started, not finished yet
    t = lr._thread
    assert t is not None and t.name == "mia-session-stats"
    t.join(60)
    assert lr.frame_fields(eng)["session_stats"]["rows"] == sync["rows"]
    eng.tracker.version += 1  # an outcome changed, but the refresh period has not passed
    lr.frame_fields(eng)
    assert lr._thread is t
    clock.advance(5.0)
    lr.frame_fields(eng)
    assert lr._thread is not t
    lr._thread.join(60)


# ------------------------------------------------------------------ issue 16 items 6 and 10 (tape)
def _frame(seq, signals, outcomes):
    from app.analysis.frame import AnalysisFrame
    from app.market.bars import BAR_DTYPE

    z = np.zeros((1, 1), np.float32)
    return AnalysisFrame(seq=seq, ts=1, symbol="ESH4", tick_size=0.25, heatmap=z, heatmap_base=0, heatmap_t0=0,
                         column_ns=1, traded_buy=z, traded_sell=z, best_bid=-1, best_ask=-1,
                         book_prices=np.zeros(0, np.int64), book_bid=np.zeros(0), book_ask=np.zeros(0),
                         session_volume=np.zeros(0), bars=np.zeros(0, BAR_DTYPE), signals=tuple(signals),
                         outcomes=outcomes)


def _sig(i, ts, side=1, reasons=None):
    from app.analysis.frame import PatternHit, Signal

    hits = reasons or (PatternHit("wall", "dom", ts, 19210, side, 0.9),)
    return Signal(id=i, ts=ts, symbol="ESH4", side=side, score=0.8, components=(), reasons=tuple(hits),
                  entry=19221, stop=19213, target=19237, size=1)


def test_a_restart_never_overwrites_an_older_row(qtbot):
    """Issue 16.6: after a restart (frame numbers start again, signal ids too) the new signal
    gets its own row and its outcome never lands on the older row of the same id."""
    from app.sim.outcomes import SignalOutcome

    tape = SignalTape()
    qtbot.addWidget(tape)
    m = tape.model
    old = _sig(1, 100)
    tape.update_from_frame(_frame(5, [old], {1: SignalOutcome(1, first="target", move_1m=4.0)}))
    assert m.data(m.index(0, 11)) == "target"
    new = _sig(1, 900, side=-1)  # the restarted engine's signal #1
    tape.update_from_frame(_frame(1, [new], {1: SignalOutcome(1, first="stop", move_1m=-3.0)}))
    assert m.rowCount() == 2
    assert m.data(m.index(0, 11)) == "target" and m.data(m.index(0, 8)) == "+4"
    assert m.data(m.index(1, 1)) == "SHORT" and m.data(m.index(1, 11)) == "stop"
    # later outcomes of the new run keep to its row
    tape.update_from_frame(_frame(2, [new], {1: SignalOutcome(1, first="stop", move_1m=-3.0, move_5m=-6.0)}))
    assert m.data(m.index(0, 9)) == "" and m.data(m.index(1, 9)) == "-6"


def test_a_reused_id_without_a_restart_signal_gets_a_new_row(qtbot):
    """Ids restarting while the frame numbers go on (another source of ids): another signal with
    a known id is a new row, the older row keeps its outcome."""
    from app.sim.outcomes import SignalOutcome

    tape = SignalTape()
    qtbot.addWidget(tape)
    m = tape.model
    tape.update_from_frame(_frame(1, [_sig(7, 100)], {7: SignalOutcome(7, first="target")}))
    tape.update_from_frame(_frame(2, [_sig(7, 500)], {7: SignalOutcome(7, first="stop")}))
    assert m.rowCount() == 2
    assert [m.data(m.index(r, 11)) for r in (0, 1)] == ["target", "stop"]
    # the same signal seen again is the same row
    tape.update_from_frame(_frame(3, [_sig(7, 500)], {7: SignalOutcome(7, first="stop")}))
    assert m.rowCount() == 2


def test_a_move_that_rounds_to_zero_shows_0_not_minus_0(qtbot):
    from app.sim.outcomes import SignalOutcome

    tape = SignalTape()
    qtbot.addWidget(tape)
    m = tape.model
    tape.update_from_frame(_frame(1, [_sig(1, 100)], {1: SignalOutcome(1, move_1m=-0.4, move_5m=-0.6,
                                                                      move_15m=0.0)}))
    assert [m.data(m.index(0, c)) for c in (8, 9, 10)] == ["0", "-1", "0"]
    assert m.data(m.index(0, 8), 9) is None  # QtCore.Qt.ForegroundRole: "0" is neither green nor red


def test_the_reasons_column_counts_every_pattern_the_table_counts(qtbot):
    """Issue 16.10: four patterns behind a signal: three shown, "+1" for the fourth, every one in
    the tooltip; the precision table's "signals citing" rows name the same four."""
    from app.analysis.frame import PatternHit
    from app.research.live import session_summary
    from app.sim.outcomes import SignalOutcome

    hits = tuple(PatternHit(n, "dom", 100, 19210, 1, st) for n, st in
                 (("wall", 0.9), ("ladder", 0.7), ("iceberg", 0.6), ("absorption", 0.5)))
    s = _sig(1, 100, reasons=hits)
    tape = SignalTape()
    qtbot.addWidget(tape)
    m = tape.model
    tape.update_from_frame(_frame(1, [s], {}))
    text = m.data(m.index(0, 3))
    assert text == "wall 0.90, ladder 0.70, iceberg 0.60 +1"
    tip = m.data(m.index(0, 3), 3)  # QtCore.Qt.ToolTipRole
    assert all(h.name in tip for h in hits)
    ts = np.arange(100, 100 + 2000 * 10**9, 10**9, dtype=np.int64)
    px = np.full(ts.shape, 19221, np.int64)
    px[300:] = 19240  # the target trades through
    from app.core.events import Instrument

    oc = {1: SignalOutcome(1, first="target", complete=True, ticks=16.0, net_usd=195.5, entry_price=19221.0)}
    summ = session_summary("production", [s], oc, {1: 0}, ts, px, Instrument("ESH4", 0.25, 12.5), draws=5)
    cited = sorted(r["label"].removeprefix("signals citing ") for r in summ["rows"] if r["kind"] == "citing")
    shown = [part.split()[0] for part in text.split(" +")[0].split(", ")]
    extra = int(text.rsplit("+", 1)[1])
    assert set(shown) <= set(cited) and len(shown) + extra == len(cited) == 4


# ------------------------------------------------------------------ issue 15 item 3: the model in the tape
def test_no_model_loaded_is_said_plainly(qtbot, tmp_path):
    from app.ui.tape import NO_MODEL

    tape = SignalTape()
    qtbot.addWidget(tape)
    obs = tape.research_observer("production", model_folder=tmp_path)
    assert obs.model is None
    m = tape.model
    assert tape.model_label.text() == NO_MODEL
    assert m.headerData(m.COL_MODEL, QtCore.Qt.Horizontal) == "P(model)"
    assert m.headerData(m.COL_MODEL, QtCore.Qt.Horizontal, QtCore.Qt.ToolTipRole) == NO_MODEL
    tape.update_from_frame(_frame(1, [_sig(1, 100)], {}))
    assert m.data(m.index(0, m.COL_MODEL)) == "no model"


def test_the_tape_shows_the_models_probability_as_learn_predicts_it(qtbot, tmp_path, es_sessions_ui):
    """A model trained on the ES hour's snapshots (relabelled into four 15-minute "sessions" so
    walk-forward has folds) is active; the window's engine computes each signal's probability on
    its own thread from the snapshot features; the tape shows exactly learn's predict on the
    features the snapshot writer wrote for the same signals."""
    from app.research import learn
    from app.research.evaluate import Job, run_session
    from app.research.snapshots import read_snapshots, write_rows

    snaps = tmp_path / "snaps"
    run = run_session(Job(es_sessions_ui[0], "scalping", (), str(snaps)))
    assert run.signals and run.candidates > 20
    cols = read_snapshots([snaps])
    t0 = int(cols["ts"].min())
    quarter = ((cols["ts"] - t0) // (15 * 60 * 10**9)).astype(int)
    rows = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()} for i in range(len(quarter))]
    for r, q in zip(rows, quarter):
        r["session"] = f"ES q{q}"
    relab = tmp_path / "relabelled"
    write_rows(relab, rows[0]["date"], "ESH4", rows, "q")
    model = learn.train([relab], profile="scalping")
    folder = tmp_path / "models"
    folder.mkdir()
    path, active, why = learn.save_model(model, folder)
    assert active, why
    tape = SignalTape()
    qtbot.addWidget(tape)
    obs = tape.research_observer("scalping", model_folder=folder)
    assert obs.model is not None and obs.model_name == path.name
    obs.threaded = False
    from app.live.engine import AnalysisEngine

    s = es_sessions_ui[0]
    eng = AnalysisEngine(s.instrument, "scalping", observer=obs)
    for c in chunks(s.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    frame = eng.snapshot_frame()
    tape.update_from_frame(frame)
    m = tape.model
    # learn's own predict on the snapshot writer's features of the same signals
    em = np.asarray(cols["emitted"], bool)
    X = learn.feature_matrix({k: np.asarray(cols[k])[em] for k in (*learn.FEATURES, "phase")})
    want = dict(zip(np.asarray(cols["signal_id"])[em].tolist(), learn.predict(model["params"], X).tolist()))
    assert [x.id for x in m.signals] == [x.id for x in run.signals] and set(want) == {x.id for x in run.signals}
    for row, sig in enumerate(m.signals):
        got = m.data(m.index(row, m.COL_MODEL), USER)
        assert got == pytest.approx(want[sig.id], abs=1e-12)
        assert m.data(m.index(row, m.COL_MODEL)) == f"{want[sig.id]:.2f}"
    assert path.name in tape.model_label.text() and path.name in m.headerData(m.COL_MODEL, QtCore.Qt.Horizontal, QtCore.Qt.ToolTipRole)


@pytest.fixture(scope="module")
def es_sessions_ui():
    from app.research.evaluate import load_path, split_sessions

    return split_sessions(load_path(Path("default")))


# ------------------------------------------------------------------ issue 15 item 2: live snapshots
def test_live_snapshots_equal_the_snapshot_writers_rows_on_the_real_es_hour(tmp_path, es_sessions_ui):
    """The window's observer writes, in batches, the same rows (features and booked outcomes) as
    ``evaluate``'s snapshot writer on the same session, with the same schema version."""
    from app.research.evaluate import Job, run_session
    from app.research.snapshots import SCHEMA_VERSION, read_snapshots

    ref_dir, live_dir = tmp_path / "ref", tmp_path / "live"
    run_session(Job(es_sessions_ui[0], "scalping", (), str(ref_dir)))
    ref = read_snapshots([ref_dir])
    eng, obs, frame, src = run_es_hour(frames=True, snapshots_dir=str(live_dir), batch_rows=25,
                                         flush_s=0.0)
    assert len(obs.snapshot_files) >= 2  # written in batches while it ran, not only at the end
    got = read_snapshots([live_dir])
    assert set(got["schema_version"].tolist()) == {SCHEMA_VERSION}
    assert len(got["ts"]) == len(ref["ts"]) == obs.snapshot_rows

    def table(c):
        keys = ("ts", "side", "score", "p_wall", "depth_bid10", "vol_ticks", "tod_min", "entry", "stop",
                "target", "emitted", "signal_id", "first", "decided", "exit_ticks", "net_usd")
        return sorted(zip(*(np.asarray(c[k]).tolist() for k in keys)))

    assert table(got) == table(ref)


def test_turning_collection_on_and_off_while_running(tmp_path):
    """set_collecting from another thread is applied at the engine's next frame; after off, no
    new candidate is recorded and the open ones are written once complete."""
    from app.live.engine import AnalysisEngine
    from app.research.evaluate import load_path

    src = load_path(Path("default"))
    obs = LiveResearch("scalping", threaded=False, flush_s=0.0)
    eng = AnalysisEngine(src.instrument, "scalping", observer=obs)
    parts = list(chunks(src.events))
    half = len(parts) // 2
    for c in parts[:half // 2]:
        eng.process(c)
    eng.snapshot_frame()
    assert obs._snap_tracker is None  # off: nothing recorded
    obs.set_collecting(str(tmp_path))
    eng.snapshot_frame()
    for c in parts[half // 2:half]:
        eng.process(c)
        eng.snapshot_frame()
    n_on = obs._snap_next - 1
    assert n_on > 0
    obs.set_collecting(None)
    eng.snapshot_frame()  # applied at the engine's next frame
    for c in parts[half:]:
        eng.process(c)
        eng.snapshot_frame()
    assert obs._snap_next - 1 == n_on  # no candidate recorded while off
    eng.finish(end_of_data=True)
    eng.snapshot_frame()
    obs.close()
    from app.research.snapshots import read_snapshots

    assert len(read_snapshots([tmp_path])["ts"]) == n_on


CHILD = r"""
import sys
import types
from pathlib import Path
from app.core.events import chunks
from app.live.engine import AnalysisEngine
from app.research.evaluate import load_path
from app.research.live import LiveResearch

src = load_path(Path("default"))
obs = LiveResearch("scalping", threaded=False, snapshots_dir=sys.argv[1], batch_rows=5, flush_s=0.0)
eng = AnalysisEngine(src.instrument, "scalping", observer=obs)
for _ in range(1000):  # loop the hour until killed
    for c in chunks(src.events, 2000):
        eng.process(c)
        eng.snapshot_frame()
        print("written", obs.snapshot_rows, flush=True)
    obs.attach(eng)
"""


def test_kill_9_while_writing_snapshots_loses_at_most_the_current_batch(tmp_path):
    """A child writes live snapshots; it is killed with SIGKILL while it writes; every row it
    reported written reads back, and no partial file is seen."""
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    from app.research.snapshots import read_snapshots, snapshot_files

    out = tmp_path / "snaps"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE, env=env, text=True)
    reported = 0
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and p.poll() is None:
            r, _, _ = select.select([p.stdout], [], [], 1.0)
            if r:
                line = p.stdout.readline()
                if line.startswith("written"):
                    reported = int(line.split()[1])
                    if reported >= 30:
                        break
        assert reported >= 30, "the child did not write snapshots in time"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
    assert p.returncode == -signal.SIGKILL
    files = snapshot_files([out])
    assert files and all(f.suffix == ".parquet" for f in files)
    rows = read_snapshots([out])
    assert len(rows["ts"]) >= reported  # everything reported written is there
    assert np.isin(rows["first"], ["target", "stop", ""]).all()


@pytest.mark.timeout(600)
def test_the_window_in_data_collection_mode_records_and_offers_no_trades(qapp):
    """The real window on the built-in replay of the ES hour, Data collection on: the trading
    panel opens no ticket (reason shown, kill switch enabled), the precision table fills with
    the session's statistics, and the snapshots are in the user data folder's snapshots/ at the
    end; turned off, tickets are offered again."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from qt_loop import close_window, run_on_qt, wait_until

    from app.live.pipeline import PipelineConfig
    from app.research.snapshots import SCHEMA_VERSION, read_snapshots
    from app.ui.data_collection import REASON, DataCollection
    from app.ui.main_window import MainWindow
    from app.ui.tape import NO_MODEL

    out: dict = {}

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=2000.0, profile="scalping"), prefs=None)
        w.data_collection.action.setChecked(True)
        w.show()
        await w.start()
        out["finished"] = await wait_until(lambda: "Replay finished" in w.replay_banner.text, 300)
        out["stats"] = await wait_until(lambda: w.last_frame is not None and w.last_frame.session_stats is not None
                                        and w.last_frame.session_stats["rows"], 120)
        out["observer_dir"] = w.pipeline.engine.observer.snapshots_dir
        ctl = w.trading
        out["trading"] = ctl is not None
        if ctl is not None:
            out["blocked"] = ctl.entry_blocked
            out["trade_button"] = ctl.panel.trade_button.isEnabled()
            out["kill_button"] = ctl.panel.kill_button.isEnabled()
            sig = w.tape.model.signal_at(0)
            out["ticket"] = ctl.open_signal_ticket(sig) if sig is not None else "no signal"
            out["problem"] = ctl.panel.problem_label.text()
            w.data_collection.action.setChecked(False)
            out["after_off"] = (ctl.entry_blocked, ctl.panel.trade_button.isEnabled())
        out["stats_rows"] = w.tape.precision_model.rowCount()
        out["model_label"] = w.tape.model_label.text()
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["finished"] and out["stats"]
    assert out["observer_dir"] == str(DataCollection.folder())
    assert out["trading"]
    assert out["blocked"] == REASON and out["trade_button"] is False and out["kill_button"] is True
    assert out["ticket"] is None and out["problem"] == REASON
    assert out["after_off"] == ("", True)
    assert out["stats_rows"] >= 1 and out["model_label"] == NO_MODEL
    rows = read_snapshots([DataCollection.folder()])
    assert len(rows["ts"]) > 0 and set(rows["schema_version"].tolist()) == {SCHEMA_VERSION}


def test_no_tape_or_statistics_header_is_cut_at_1366x768(qapp):
    """At a laptop's 1366x768 every column of the tape is at least as wide as its header's text
    (the Reasons column was squeezed to "easo" when P(model) arrived); the table scrolls
    sideways instead. The statistics table's columns fit their headers once rows arrive."""
    from app.ui.tape import SignalTape

    tape = SignalTape()
    tape.resize(1016, 180)  # the tape and the statistics beside the right column at 1366x768
    tape.show()
    qapp.processEvents()
    fm = tape.view.horizontalHeader().fontMetrics()
    assert tape.view.isColumnHidden(tape.model.COL_SYMBOL)  # one instrument: no Symbol column
    tape.set_instruments(["ESZ25_FUT_CME", "NQZ25_FUT_CME"])  # two (issue 17): it is shown, not cut
    qapp.processEvents()
    for col, text in enumerate(tape.model.HEADERS):
        assert tape.view.columnWidth(col) >= fm.horizontalAdvance(text), (col, text)
    summary = {"rows": [{"label": "production", "n": 3, "decided": 3, "target_first": 1, "rate": 1 / 3,
                         "rate_ci": [0.06, 0.79], "breakeven_rate": 0.36,
                         "expectancy_ticks": {"mean": 0.0}, "expectancy_usd": {"mean": -4.5},
                         "baseline_rate": 0.23, "baseline_usd": -7.9, "p_value": 0.53}],
               "open": 0, "measured": 3, "draws": 100}
    frame = types.SimpleNamespace(seq=1, signals=(), outcomes={}, tick_size=0.25, model_p={}, model_name="",
                                  session_stats=summary)
    tape.update_from_frame(frame)
    qapp.processEvents()
    pfm = tape.precision_view.horizontalHeader().fontMetrics()
    for col, text in enumerate(tape.precision_model.HEADERS):
        assert tape.precision_view.columnWidth(col) >= pfm.horizontalAdvance(text), (col, text)
    tape.close()
