"""Snapshots on the real ES hour, and ``mia-elite learn``: walk-forward, model files, rollback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.research import learn
from app.research.snapshots import FEATURES, SCHEMA_VERSION, read_snapshots, write_rows


def test_snapshots_of_the_real_es_hour_hold_every_candidate_and_its_outcome(es_production_run, es_snapshot_dir):
    run = es_production_run
    files = sorted(es_snapshot_dir.rglob("*.parquet"))
    assert files and all(f.parent.name == "instrument=ESH4" and f.parent.parent.name == "date=2023-12-25"
                         for f in files)
    assert not list(es_snapshot_dir.rglob("*.tmp"))
    d = read_snapshots([es_snapshot_dir])
    n = len(d["ts"])
    assert n == run.candidates and n > len(run.signals)  # every scored step, not only the signals
    assert (d["schema_version"] == SCHEMA_VERSION).all()
    assert set(FEATURES) <= set(d)
    em = d["emitted"].astype(bool)
    assert em.sum() == len(run.signals)
    by_id = {s.id: s for s in run.signals}
    for sid, first, entry, stop, target in zip(d["signal_id"][em], d["first"][em], d["entry"][em],
                                               d["stop"][em], d["target"][em]):
        s = by_id[int(sid)]
        assert (s.entry, s.stop, s.target) == (entry, stop, target)  # the same bracket as the signal
        assert first == (run.outcomes[s.id].first or "")  # and the engine's outcome
    assert np.all((d["score"] >= 0) & (d["score"] <= 1))
    assert set(np.unique(d["phase"])) <= {"overnight", "open", "midday", "close"}


def test_a_newer_snapshot_schema_is_refused_by_name(tmp_path):
    row = {"schema_version": SCHEMA_VERSION + 1, "ts": 1}
    p = write_rows(tmp_path, "2024-01-02", "ES", [row])
    with pytest.raises(ValueError, match=f"{p.name}.*newer than"):
        read_snapshots([tmp_path])


def _synthetic(folder, sessions=6, per=80, seed=0, signal=2.0):
    """Snapshot rows whose outcome depends on p_wall (a learnable edge); session ids are named
    so that their alphabetical order is not their time order."""
    rng = np.random.default_rng(seed)
    names = [f"S{(7 * k) % sessions}" for k in range(sessions)]  # S0, S1, ... shuffled by time
    t0 = 1_700_000_000_000_000_000
    for k, name in enumerate(names):
        rows = []
        for i in range(per):
            wall = float(rng.uniform(0, 1))
            score = float(rng.uniform(0.5, 0.9))
            y = bool(rng.uniform() < 1 / (1 + np.exp(-signal * (wall - 0.5))))
            r = {f: 0.0 for f in FEATURES}
            r.update(schema_version=SCHEMA_VERSION, ts=t0 + k * 86_400 * 10**9 + i * 10**9, profile="production",
                     session=name, phase="overnight", decided=True, target_first=y, p_wall=wall, score=score,
                     side=1)
            rows.append(r)
        write_rows(folder, f"2024-01-{k + 1:02d}", "ES", rows, name)
    return names


def test_walk_forward_never_trains_on_a_later_session(tmp_path):
    names = _synthetic(tmp_path)
    X, y, sess, order, score = learn.design(read_snapshots([tmp_path]))
    assert order == names  # time order, not the ids' order
    pos = {s: i for i, s in enumerate(order)}
    wf = learn.walk_forward(X, y, sess, order, score, min_train=2)
    assert [f["test"] for f in wf["folds"]] == order[2:]
    for f in wf["folds"]:
        assert f["train"] and all(pos[t] < pos[f["test"]] for t in f["train"])
        assert f["train"] == order[:pos[f["test"]]]
    assert wf["model"]["n"] == 80 * (len(order) - 2)
    assert wf["model"]["auc"] > 0.6 > wf["elite_score"]["auc"]  # p_wall carries the edge, the score does not
    assert sum(c["n"] for c in wf["model"]["calibration"]) == wf["model"]["n"]


def test_model_file_round_trips_and_predicts_the_same(tmp_path):
    _synthetic(tmp_path / "snaps")
    m = learn.train([tmp_path / "snaps"])
    path, activated, reason = learn.save_model(m, tmp_path / "models")
    assert activated and reason.startswith("activated: first model") and path.name == "model-0001.json"
    back = learn.load_model(path)
    assert back == json.loads(json.dumps(dict(m, version=1)))
    assert back["features"] == learn.feature_names() and len(back["params"]["coef"]) == len(back["features"])
    assert back["training_sessions"] and back["data_hash"].startswith("sha256:")
    X, *_ = learn.design(read_snapshots([tmp_path / "snaps"]))
    assert np.allclose(learn.predict(back["params"], X), learn.predict(m["params"], X))
    assert learn.active_model(tmp_path / "models")["version"] == 1
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(learn.ModelError, match="bad.json"):
        learn.load_model(tmp_path / "bad.json")


def test_a_model_activates_only_if_it_beats_the_active_one_and_rollback_restores(tmp_path):
    models = tmp_path / "models"
    good = learn.train([tmp_path / "a"] if _synthetic(tmp_path / "a", signal=4.0) else [])
    weak = learn.train([tmp_path / "b"] if _synthetic(tmp_path / "b", signal=0.0, seed=5) else [])
    better = dict(good, scores=json.loads(json.dumps(good["scores"])))
    better["scores"]["walk_forward"]["model"]["auc"] = good["scores"]["walk_forward"]["model"]["auc"] + 0.01
    p1, a1, _ = learn.save_model(good, models)
    p2, a2, r2 = learn.save_model(weak, models)
    assert a1 and not a2 and "does not beat" in r2
    assert learn.read_registry(models)["active"] == p1.name
    p3, a3, _ = learn.save_model(better, models)
    assert a3 and learn.read_registry(models) == {"active": p3.name, "history": [p1.name]}
    assert learn.rollback(models) == p1.name
    assert learn.active_model(models)["version"] == 1
    with pytest.raises(learn.ModelError, match="no previous model"):
        learn.rollback(models)


def test_learn_cli_prints_walk_forward_figures_and_rolls_back(tmp_path, capsys):
    from app.cli import main

    _synthetic(tmp_path / "snaps")
    models = tmp_path / "models"
    assert main(["learn", str(tmp_path / "snaps"), "--models", str(models)]) == 0
    out = capsys.readouterr().out
    assert "out of sample:" in out and "elite score" in out and "AUC" in out and "activated" in out
    assert main(["learn", "--rollback", "--models", str(models)]) == 2
    assert "no previous model" in capsys.readouterr().err
    assert main(["learn", str(tmp_path / "nothing"), "--models", str(models)]) == 2
    assert capsys.readouterr().err.startswith("learn: snapshots not found")
