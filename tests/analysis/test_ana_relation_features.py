"""Issue 17 item 5: the pair's relation as the analyzers' features and as snapshot columns.

BTCUSDT's analysis (the real capture of 2024-08-08) is handed the relation rows of the real
BTCUSDT/ETHUSDT pair (the relation kernel on both captures' trades); every candidate step's
``rel_*`` features must equal the kernel's row in force at that step's market time (the newest
second that had ended), the snapshots written in data-collection mode must carry them and read
back equal, and without a pair they are NaN while every other result stays the same.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis.analyzers import RELATION_FEATURES
from app.analysis.relation import NS_PER_S, RELATION_DTYPE, Relation
from app.cli.analyze import load_any
from app.core.events import chunks
from app.live.engine import AnalysisEngine, resolve_profile
from app.research.live import LiveResearch
from app.research.snapshots import read_snapshots

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz"))]


@pytest.fixture(scope="module")
def rel_rows(pair):
    a, b = pair
    rows = Relation().update_events(a.events, b.events)
    assert rows.dtype == RELATION_DTYPE and len(rows) > 300 and np.isfinite(rows["corr"]).sum() > 250
    return rows


def run(rec, folder, relation=None):
    """BTCUSDT's engine headless in data-collection mode; candidate features kept as the analyzers
    give them to the snapshot writer."""
    prof = resolve_profile("scalping", {"elite.min_elite_score": 0.3})
    obs = LiveResearch("scalping", threaded=False, draws=5, snapshots_dir=str(folder), batch_rows=50)
    eng = AnalysisEngine(rec.instrument, prof, observer=obs)
    if relation is not None:
        eng.set_relation(relation)  # before the analyzers exist: kept and given when they are built
    seen = []
    for c in chunks(rec.events):
        eng.process(c)
        ana = eng.analyzers
        if ana is not None and ana.candidate_hook is not None and not getattr(ana, "_b2_wrapped", False):
            hook = ana.candidate_hook

            def spy(a, view, *rest, _hook=hook):
                seen.append((int(view.ts), a.relation_features))
                _hook(a, view, *rest)

            ana.candidate_hook = spy
            ana._b2_wrapped = True
        eng.snapshot_frame()
    eng.finish(end_of_data=True)
    obs.close()
    return eng, obs, seen


def in_force(rows, ts):
    """The kernel's row whose second ended last at or before ``ts`` (None before the first)."""
    k = int(np.searchsorted(rows["ts"] + NS_PER_S, ts, side="right")) - 1
    return rows[k] if k >= 0 else None


@pytest.fixture(scope="module")
def with_pair(pair, rel_rows, tmp_path_factory):
    return run(pair[0], tmp_path_factory.mktemp("snap-pair"), rel_rows)


@pytest.fixture(scope="module")
def alone(pair, tmp_path_factory):
    return run(pair[0], tmp_path_factory.mktemp("snap-alone"))


def test_the_features_are_the_relation_kernels_row_at_each_steps_time(with_pair, rel_rows):
    eng, obs, seen = with_pair
    assert len(seen) >= 20
    finite = 0
    for ts, feat in seen:
        assert set(feat) == set(RELATION_FEATURES)
        row = in_force(rel_rows, ts)
        if row is None:
            assert all(np.isnan(v) for v in feat.values())
            continue
        want = {"rel_corr": row["corr"], "rel_rs": row["rs"], "rel_z": row["z"], "rel_flag": row["flag"]}
        for k, v in want.items():
            np.testing.assert_equal(feat[k], float(v), err_msg=f"{k} at {ts}")
        finite += np.isfinite(feat["rel_corr"])
    assert finite >= 10  # most steps come after the first full 60-s window
    res = eng.last_result
    assert res.features == eng.analyzers.relation_features  # the step's result carries them too


def test_the_snapshots_record_the_relation_and_read_back(with_pair, alone, rel_rows):
    eng, obs, _ = with_pair
    assert obs.snapshot_rows > 0 and not obs.error
    cols = read_snapshots([obs.snapshots_dir])
    assert len(cols["ts"]) == obs.snapshot_rows
    for i, ts in enumerate(cols["ts"]):
        row = in_force(rel_rows, int(ts))
        want = (np.nan,) * 4 if row is None else (row["corr"], row["rs"], row["z"], float(row["flag"]))
        got = tuple(cols[k][i] for k in RELATION_FEATURES)
        np.testing.assert_equal(got, tuple(float(w) for w in want))
        assert cols["rel_corr"].dtype == np.float64 and cols["rel_flag"].dtype == np.float64
    assert np.isfinite(cols["rel_corr"]).sum() >= 10
    # without a pair: the same candidates, every other column the same, the relation NaN
    e2, o2, seen2 = alone
    c2 = read_snapshots([o2.snapshots_dir])
    assert all(np.isnan(c2[k]).all() for k in RELATION_FEATURES)
    order, order2 = np.argsort(cols["ts"], kind="stable"), np.argsort(c2["ts"], kind="stable")
    for k in cols:
        if k in RELATION_FEATURES:
            continue
        a, b = cols[k][order], c2[k][order2]
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            assert list(a) == list(b), k
    assert [(s.ts, s.side, s.entry, s.stop, s.target, s.score) for s in eng.all_signals] == \
        [(s.ts, s.side, s.entry, s.stop, s.target, s.score) for s in e2.all_signals]
    assert all(np.isnan(v) for _, f in seen2 for v in f.values())


def test_bad_relation_rows_are_refused_plainly():
    from app.analysis.analyzers import Analyzers
    from app.config.profiles import load_profile
    from app.core.events import Instrument

    ana = Analyzers(load_profile("scalping"), Instrument("BTCUSDT", 0.1, 0.1), vix_history=False)
    with pytest.raises(ValueError, match="RELATION_DTYPE"):
        ana.set_relation(np.zeros(3))
    assert all(np.isnan(v) for v in ana.relation_features.values())


def test_after_a_replay_restart_the_new_pass_gets_its_own_rows(pair, rel_rows):
    """A looped replay starts the pair again at earlier market times: the runtime resets the
    relation (``AnalysisEngine.reset_relation``) and hands the new pass's rows before the new
    pass's first step. Those rows must be in force in the new pass (they were refused as not
    newer than the old pass's, then dropped when market time went back: no relation at all)."""
    rec = pair[0]
    eng = AnalysisEngine(rec.instrument, resolve_profile("scalping"))
    eng.set_relation(rel_rows)
    parts = list(chunks(rec.events))
    half = len(parts) // 2
    for c in parts[:half]:
        eng.process(c)
    old = eng.analyzers.relation_row
    assert old is not None
    eng.reset_relation()  # the restart notice, then the new pass's rows and batches
    eng.set_relation(rel_rows[rel_rows["ts"] < rel_rows["ts"][0] + 60 * NS_PER_S])
    for c in parts[: half // 2]:
        eng.process(c)
    row = eng.analyzers.relation_row
    ts = int(eng.model.ts)
    assert row is not None, "the new pass has no relation row"
    assert int(row["ts"]) < int(old["ts"]) and int(row["ts"]) + NS_PER_S <= ts
    assert ts - int(row["ts"]) <= 5 * NS_PER_S or int(row["ts"]) == int(rel_rows["ts"][rel_rows["ts"] < rel_rows["ts"][0] + 60 * NS_PER_S][-1])
