"""Snapshots on the real ES hour, and ``mia-elite learn``: walk-forward, model files, rollback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.research import learn
from app.research.snapshots import FEATURES, RELATION_FEATURES, SCHEMA_VERSION, read_snapshots, write_rows


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


def _synthetic(folder, sessions=6, per=80, seed=0, signal=2.0, rel=None, rel_signal=3.0, old_first=False):
    """Snapshot rows whose outcome depends on p_wall (a learnable edge); session ids are named
    so that their alphabetical order is not their time order.

    ``rel``: None, no ``rel_*`` columns (files written before they existed); ``"nan"``, the
    columns all NaN (single-instrument sessions); ``"edge"``, finite values with ``rel_corr``
    carrying an edge of its own (``rel_signal``). ``old_first``: the first session's file has no
    ``rel_*`` columns whatever ``rel`` says."""
    rng = np.random.default_rng(seed)
    names = [f"S{(7 * k) % sessions}" for k in range(sessions)]  # S0, S1, ... shuffled by time
    t0 = 1_700_000_000_000_000_000
    for k, name in enumerate(names):
        rows = []
        for i in range(per):
            wall = float(rng.uniform(0, 1))
            score = float(rng.uniform(0.5, 0.9))
            corr = float(rng.uniform(-1, 1))
            edge = signal * (wall - 0.5) + (rel_signal * corr if rel == "edge" else 0.0)
            y = bool(rng.uniform() < 1 / (1 + np.exp(-edge)))
            r = {f: 0.0 for f in FEATURES}
            r.update(schema_version=SCHEMA_VERSION, ts=t0 + k * 86_400 * 10**9 + i * 10**9, profile="production",
                     session=name, phase="overnight", decided=True, target_first=y, p_wall=wall, score=score,
                     side=1)
            if rel == "nan":
                r.update(dict.fromkeys(RELATION_FEATURES, float("nan")))
            elif rel == "edge":
                r.update(rel_corr=corr, rel_rs=float(rng.normal(0, 0.01)), rel_z=float(rng.normal()),
                         rel_flag=float(rng.choice([-1.0, 0.0, 1.0])))
            if old_first and k == 0:
                for f in RELATION_FEATURES:
                    r.pop(f, None)
            rows.append(r)
        write_rows(folder, f"2024-01-{k + 1:02d}", "ES", rows, name)
    return names


def _row(**kw):
    """One candidate row as :func:`app.research.snapshots.candidate_rows` gives it (the features
    that matter here; the rest 0), ``rel_*`` NaN unless given."""
    r = {f: 0.0 for f in FEATURES}
    r.update(dict.fromkeys(RELATION_FEATURES, float("nan")), phase="overnight", side=1, score=0.7, p_wall=0.5)
    r.update(kw)
    return r


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


OLD_FEATURES = [*FEATURES, *(f"phase_{p}" for p in learn.PHASES)]  # every model file before issue 17


def test_a_model_trained_on_the_pair_relation_uses_it(tmp_path):
    names = _synthetic(tmp_path / "snaps", rel="edge", old_first=True)
    cols = read_snapshots([tmp_path / "snaps"])
    first = cols["session"] == names[0]  # a file from before the rel_* columns: read back as NaN
    assert first.any() and all(np.isnan(cols[k][first].astype(float)).all() for k in RELATION_FEATURES)
    assert learn.relation_present(cols)
    m = learn.train([tmp_path / "snaps"])
    assert m["features"] == learn.feature_names(relation=True) != OLD_FEATURES
    assert m["features"][len(FEATURES):len(FEATURES) + 4] == list(RELATION_FEATURES)
    prm = m["params"]
    assert len(prm["coef"]) == len(m["features"]) and np.isfinite(prm["coef"]).all()
    assert prm["coef"][m["features"].index("rel_corr")] > 0.5  # rel_corr carries an edge: learned
    path, activated, _ = learn.save_model(m, tmp_path / "models")
    back = learn.load_model(path)
    lo, hi = learn.model_probability(back, [_row(rel_corr=-0.8, rel_rs=0.0, rel_z=0.0, rel_flag=0.0),
                                            _row(rel_corr=0.8, rel_rs=0.0, rel_z=0.0, rel_flag=0.0)])
    assert hi > lo + 0.3  # the probability moves with rel_corr: it is an input
    # a row without the relation (an instrument in no pair, an older snapshot) gets the training medians
    fill = dict(zip(m["features"], prm["fill"]))
    bare = _row()
    for k in RELATION_FEATURES:
        del bare[k]
    want = learn.model_probability(back, [_row(**{k: fill[k] for k in RELATION_FEATURES})])
    assert np.allclose(learn.model_probability(back, [bare]), want)
    assert np.allclose(learn.model_probability(back, {k: np.array([v]) for k, v in bare.items()}), want)
    assert m["scores"]["walk_forward"]["model"]["auc"] > 0.7


def test_an_older_model_file_without_the_relation_still_loads_and_predicts(tmp_path):
    # a model file as written before the relation existed: its own feature list, no rel_*
    n = len(OLD_FEATURES)
    coef = [0.0] * n
    coef[OLD_FEATURES.index("p_wall")] = 2.0
    old = {"format": learn.MODEL_FORMAT, "version": 7, "features": OLD_FEATURES, "C": 1.0, "profile": None,
           "params": {"fill": [0.0] * n, "mean": [0.0] * n, "scale": [1.0] * n, "coef": coef, "intercept": -1.0},
           "training_sessions": ["S0", "S1", "S2"], "rows": 240, "data_hash": "sha256:0",
           "scores": {"walk_forward": {"model": {"auc": 0.6}}}}
    f = tmp_path / "model-0007.json"
    f.write_text(json.dumps(old))
    back = learn.load_model(f)
    assert learn.model_features(back) == OLD_FEATURES == learn.feature_names(relation=False)
    rows = [_row(p_wall=0.25, rel_corr=c, rel_rs=0.01, rel_z=2.0, rel_flag=1.0) for c in (-0.9, 0.0, 0.9)]
    assert learn.feature_matrix(rows, back["features"]).shape == (3, n)  # the model's own columns
    p = learn.model_probability(back, rows)
    assert np.allclose(p, 1 / (1 + np.exp(-(2.0 * 0.25 - 1.0))))  # the rel_* values play no part
    # next to it in the registry, a model trained on the relation predicts on the same rows
    _synthetic(tmp_path / "snaps", rel="edge")
    new = learn.train([tmp_path / "snaps"])
    assert len(learn.model_features(new)) == n + len(RELATION_FEATURES)
    assert np.isfinite(learn.model_probability(new, rows)).all()
    bad = dict(back, features=[*OLD_FEATURES[:-1], "rel_corr"])
    with pytest.raises(learn.ModelError, match="features differ"):
        learn.model_probability(bad, rows)


def test_all_nan_relation_trains_a_model_without_it(tmp_path):
    _synthetic(tmp_path / "snaps", rel="nan")  # single-instrument sessions: rel_* recorded, all NaN
    cols = read_snapshots([tmp_path / "snaps"])
    assert set(RELATION_FEATURES) <= set(cols) and not learn.relation_present(cols)
    m = learn.train([tmp_path / "snaps"])
    assert m["features"] == learn.feature_names(relation=False) == OLD_FEATURES
    assert all(np.isfinite(m["params"][k]).all() for k in ("fill", "mean", "scale", "coef"))
    a, b = learn.model_probability(m, [_row(rel_corr=-0.9), _row(rel_corr=0.9)])
    assert a == b
    # a walk-forward fold whose training sessions have no relation while the test session has:
    # the empty columns are filled with 0 and get coefficient 0, the rest is unchanged
    X, y, sess, order, score = learn.design(cols, relation=True)
    rel = [learn.feature_names(True).index(k) for k in RELATION_FEATURES]
    assert X.shape[1] == len(learn.feature_names(True)) and np.isnan(X[:, rel]).all()
    prm = learn.fit(X, y)
    assert all(np.isfinite(prm[k]).all() for k in ("fill", "mean", "scale", "coef"))
    assert [prm["coef"][j] for j in rel] == [0.0] * 4 and [prm["fill"][j] for j in rel] == [0.0] * 4
    assert [prm["scale"][j] for j in rel] == [1.0] * 4
    X2 = X.copy()
    X2[:, rel] = np.random.default_rng(1).normal(size=(X.shape[0], 4))
    assert np.allclose(learn.predict(prm, X2), learn.predict(prm, X))
    base = learn.fit(np.delete(X, rel, axis=1), y)
    assert np.allclose(learn.predict(prm, X), learn.predict(base, np.delete(X, rel, axis=1)))
