"""Issue 17 item 3 (the tape): a Symbol column, an instrument filter and per-instrument statistics.

Real signals: the engine runs headless on the BTCUSDT and ETHUSDT captures of 2024-08-08 (the
real pair), each with its own research observer (the window's statistics) and its own block
of signal ids, as :class:`app.live.instruments.InstrumentsRuntime` gives them.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from app.ui.tape import PrecisionModel, SignalTape, SignalTapeModel  # noqa: E402

USER = 256  # QtCore.Qt.UserRole
FILES = (("BTCUSDT", "crypto/btcusdt_20240808.gz"), ("ETHUSDT", "crypto/ethusdt_20240808.gz"))
BLOCK = 10_000_000  # app.live.instruments.SIGNAL_ID_BLOCK

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def pair_frames(shared_data):
    """(symbol, engine, frames) per capture: a frame every 200 chunks and the last one."""
    from app.cli.analyze import load_any
    from app.core.events import chunks
    from app.live.engine import AnalysisEngine, resolve_profile
    from app.live.instruments import SIGNAL_ID_BLOCK
    from app.research.live import LiveResearch

    assert SIGNAL_ID_BLOCK == BLOCK
    out = []
    for k, (sym, rel) in enumerate(FILES):
        src = load_any(str(shared_data / rel))
        assert src.instrument.symbol == sym
        prof = resolve_profile("scalping", {"elite.min_elite_score": 0.3})  # signals on both captures
        obs = LiveResearch("scalping", threaded=False, draws=20)
        eng = AnalysisEngine(src.instrument, prof, observer=obs, first_signal_id=1 + k * BLOCK)
        frames = []
        for i, c in enumerate(chunks(src.events)):
            eng.process(c)
            if i % 200 == 199:
                frames.append(eng.snapshot_frame())
        eng.finish(end_of_data=True)
        frames.append(eng.snapshot_frame())
        out.append((sym, eng, frames))
    return out


def feed(tape, pair_frames):
    """Both instruments' frames, interleaved in market time (as the window's timer draws them)."""
    allf = sorted((f for _, _, fr in pair_frames for f in fr), key=lambda f: (f.ts, f.symbol))
    for f in allf:
        tape.update_from_frame(f)
    for _, _, fr in pair_frames:  # every instrument's newest frame last
        tape.update_from_frame(fr[-1])


def test_the_symbol_column_shows_each_signals_instrument_with_its_own_prices(qtbot, pair_frames):
    tape = SignalTape()
    qtbot.addWidget(tape)
    feed(tape, pair_frames)
    m: SignalTapeModel = tape.model
    want = [s for _, eng, _ in pair_frames for s in eng.all_signals]
    assert {s.symbol for s in want} == {"BTCUSDT", "ETHUSDT"}
    assert len(want) >= 4
    assert sorted(s.id for s in m.signals) == sorted(s.id for s in want)  # every signal once
    assert len({s.id for s in m.signals}) == len(m.signals)
    by_id = {s.id: (sym, eng) for sym, eng, _ in pair_frames for s in eng.all_signals}
    for row, s in enumerate(m.signals):
        sym, eng = by_id[s.id]
        assert m.data(m.index(row, m.COL_SYMBOL)) == sym == s.symbol
        assert (s.id > BLOCK) == (sym == "ETHUSDT")  # ids from each instrument's block
        tick, dec = (0.1, 1) if sym == "BTCUSDT" else (0.01, 2)
        assert m.data(m.index(row, 4)) == f"{s.entry * tick:.{dec}f}"  # its own tick and decimals
        assert m.outcome_at(row) == eng.outcomes[s.id]  # the outcome of its own id
    assert not tape.view.isColumnHidden(m.COL_SYMBOL)
    assert tape.view.horizontalHeader().visualIndex(m.COL_SYMBOL) == 1  # shown after the time
    assert [tape.symbol_filter.itemText(i) for i in range(tape.symbol_filter.count())] == [
        "All", "BTCUSDT", "ETHUSDT"]


def test_one_instrument_keeps_the_one_instrument_look(qtbot, pair_frames):
    tape = SignalTape()
    qtbot.addWidget(tape)
    sym, eng, frames = pair_frames[0]
    for f in frames:
        tape.update_from_frame(f)
    assert tape.model.rowCount() == len(eng.all_signals)
    assert tape.view.isColumnHidden(SignalTapeModel.COL_SYMBOL)
    assert tape.symbol_filter.isHidden() and tape.filter_label.isHidden()
    # the statistics are that instrument's, unlabelled, as before issue 17
    assert tape.precision_model.summary is frames[-1].session_stats
    assert tape.precision_model.rows[0]["label"] == "Scalping: all signals"
    tape.set_instruments([sym, "ETHUSDT"])  # the window configures a second instrument
    assert not tape.view.isColumnHidden(SignalTapeModel.COL_SYMBOL) and not tape.symbol_filter.isHidden()


def test_the_filter_shows_only_the_chosen_instruments_rows(qtbot, pair_frames):
    tape = SignalTape()
    qtbot.addWidget(tape)
    tape.set_instruments(["BTCUSDT", "ETHUSDT"])
    feed(tape, pair_frames)
    v = tape.view.model()
    n_all = tape.model.rowCount()
    assert v.rowCount() == n_all
    for sym, eng, _ in pair_frames:
        tape.set_filter(sym)
        assert tape.filter_symbol == sym and tape.symbol_filter.currentText() == sym
        ids = [v.signal_at(r).id for r in range(v.rowCount())]
        assert ids == [s.id for s in eng.all_signals]  # this instrument's rows, in order, and only them
        assert {v.data(v.index(r, SignalTapeModel.COL_SYMBOL)) for r in range(v.rowCount())} == {sym}
        assert tape.count_label.text() == f"{len(ids)} of {n_all} signals ({sym})"
        # a click on a filtered row selects the signal shown there (what a ticket is opened from)
        with qtbot.waitSignal(tape.sigSignalSelected) as blocker:
            tape.select_row(v.rowCount() - 1)
        assert blocker.args[0].id == eng.all_signals[-1].id
    tape.set_filter("All")
    assert v.rowCount() == n_all and tape.filter_symbol == ""
    with pytest.raises(ValueError, match="no instrument 'NQ'.*BTCUSDT, ETHUSDT"):
        tape.set_filter("NQ")
    assert v.rowCount() == n_all  # a bad filter changes nothing


def _final(o) -> bool:
    return o is not None and (o.complete or o.ended_early)


def test_the_statistics_follow_the_filter(qtbot, pair_frames):
    tape = SignalTape()
    qtbot.addWidget(tape)
    feed(tape, pair_frames)
    m: PrecisionModel = tape.precision_model
    per = {}
    for sym, eng, frames in pair_frames:
        tape.set_filter(sym)
        summ = frames[-1].session_stats
        assert summ is not None and summ["rows"]
        assert m.summary is summ  # the instrument's own statistics, as its engine computed them
        # counted independently: that instrument's signals with a final outcome
        final = sum(_final(eng.outcomes.get(s.id)) for s in eng.all_signals)
        assert m.data(m.index(0, 1), USER) == final == summ["measured"]
        assert m.data(m.index(0, 0)) == "Scalping: all signals"
        per[sym] = [PrecisionModel.values(r) for r in summ["rows"]]
        assert [tuple(m.data(m.index(r, c), USER) for c in range(m.columnCount())) for r in range(m.rowCount())] \
            == per[sym]
        assert f"{final} signal(s) measured" in tape.stats_label.text()
    tape.set_filter("")
    labels = [m.data(m.index(r, 0)) for r in range(m.rowCount())]
    want = [f"{sym}: {v[0]}" for sym, _, _ in pair_frames for v in per[sym]]
    assert labels == want  # every instrument's rows, each labelled with its symbol, none pooled
    got = [tuple(m.data(m.index(r, c), USER) for c in range(1, m.columnCount())) for r in range(m.rowCount())]
    assert got == [v[1:] for sym, _, _ in pair_frames for v in per[sym]]
    total = sum(f[-1].session_stats["measured"] for _, _, f in pair_frames)
    assert tape.stats_label.text().startswith(f"{total} signal(s) measured")
    assert "BTCUSDT" in tape.stats_label.text() and "ETHUSDT" in tape.stats_label.text()
    assert tape.statistics_of("ETHUSDT") is pair_frames[1][2][-1].session_stats


def test_a_restart_of_one_instrument_leaves_the_others_rows_taking_outcomes(qtbot, pair_frames):
    """Frame numbers starting again for one instrument start a new run of that instrument only."""
    from dataclasses import replace

    from app.sim.outcomes import SignalOutcome

    tape = SignalTape()
    qtbot.addWidget(tape)
    (a, ea, fa), (b, eb, fb) = pair_frames
    tape.update_from_frame(replace(fa[-1], seq=50, outcomes={}))
    tape.update_from_frame(replace(fb[-1], seq=40, outcomes={}))
    restarted = replace(fa[-1], seq=1, signals=(), outcomes={})
    tape.update_from_frame(restarted)  # BTCUSDT's engine restarted
    sb = eb.all_signals[0]
    oa = ea.all_signals[0]
    tape.update_from_frame(replace(fb[-1], seq=41, outcomes={sb.id: SignalOutcome(sb.id, first="stop")}))
    tape.update_from_frame(replace(restarted, seq=2, outcomes={oa.id: SignalOutcome(oa.id, first="target")}))
    m = tape.model
    row = {s.id: r for r, s in enumerate(m.signals)}
    assert m.outcome_at(row[sb.id]).first == "stop"  # ETHUSDT's rows still take their outcomes
    assert m.outcome_at(row[oa.id]) is None  # an outcome of the new BTCUSDT run is not the old row's
    assert m.data(m.index(row[sb.id], 11)) == "stop"
    assert QtCore.Qt.UserRole == USER
    assert m.rowCount() == len(ea.all_signals) + len(eb.all_signals)
