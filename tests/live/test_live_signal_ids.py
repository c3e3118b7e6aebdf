"""Signal ids are unique across restarts and profile changes (issue 14, item 15).

Old behaviour: every pipeline start numbered signals from 1, and ``mia-elite report`` joins
outcomes on ``signal_id``, so after a restart a winning signal took a later signal's outcome.
"""

import datetime as dt

from app.cli.report import build_report
from app.core.events import chunks
from app.live.engine import AnalysisEngine
from app.trading.journal import Journal


def _run(rec, profile, journal):
    """One 'window session': an engine seeded from the journal, journaling as the panel does."""
    eng = AnalysisEngine(rec.instrument, profile, first_signal_id=journal.next_signal_id())
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    for s in eng.all_signals:
        journal.record_signal(s, {})
    for sid, out in eng.outcomes.items():
        names = [r.name for r in next(s for s in eng.all_signals if s.id == sid).reasons]
        journal.record_signal_outcome(out, names)
    return eng


def test_ids_never_repeat_across_restarts_and_report_joins_each_outcome_to_its_signal(shared_data, tmp_path):
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    j = Journal(tmp_path / "journal.sqlite3")
    try:
        runs = [_run(rec, "development", j), _run(rec, "production", j), _run(rec, "development", j)]
        ids = [s.id for e in runs for s in e.all_signals]
        assert len(ids) > 20 and len(set(ids)) == len(ids)
        assert runs[1].all_signals[0].id == runs[0].all_signals[-1].id + 1
        # what the report must say: each run's own outcomes, pattern by pattern
        want: dict[str, list[int]] = {}
        for e in runs:
            for s in e.all_signals:
                o = e.outcomes[s.id]
                for n in {r.name for r in s.reasons}:
                    w = want.setdefault(n, [0, 0])
                    if o.first in ("target", "stop"):
                        w[0] += 1
                        w[1] += o.first == "target"
    finally:
        j.close()
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()  # the rows carry today's wall time
    rep = build_report(tmp_path / "journal.sqlite3", day, tz_name="UTC")
    got = {n: [p["decided"], p["target_first"]] for n, p in rep["patterns"].items()}
    assert got == want


def test_peek_next_signal_id_reads_the_file_and_tolerates_a_missing_one(tmp_path):
    assert Journal.peek_next_signal_id(tmp_path / "none.sqlite3") == 1
    j = Journal(tmp_path / "j.sqlite3")
    try:
        from app.analysis.frame import Signal

        j.record_signal(Signal(41, 1, "ES", 1, 0.8, (), (), 1000, 996, 1008, 1), {})
        assert j.next_signal_id() == 42
    finally:
        j.close()
    assert Journal.peek_next_signal_id(tmp_path / "j.sqlite3") == 42
