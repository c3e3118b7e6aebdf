"""Signal-quality model: regularised logistic regression on candidate snapshots, walk-forward.

Target: ``target_first`` of the decided candidates (:mod:`app.research.snapshots`). Features:
:data:`app.research.snapshots.FEATURES` (pattern strengths, score components, regime, spread,
depth, order flow, time of day, volatility), then the pair-relation features :data:`RELATION`
(``rel_corr``, ``rel_rs``, ``rel_z``, ``rel_flag``; issue 17, ``docs/relation.md``) **when the
training rows have them**, then one-hot session phases (:func:`feature_names`). The relation
features are used when at least one decided training row has a finite value of one of them
(:func:`relation_present`: a pair was analysed); data of single-instrument sessions (all NaN)
gives a model without them, as did every model written before they existed. Snapshot files
written before the ``rel_*`` columns existed read back without them: those rows count as NaN.
Model: L2-penalised logistic regression (scikit-learn ``LogisticRegression``, ``C`` the inverse
penalty) on features standardised with the training fold's mean and standard deviation; missing
values (NaN) are filled with the training fold's median. A column with no finite value in the
training fold (e.g. the relation of a fold made only of single-instrument sessions) is filled
with 0, left out of the fit and gets coefficient 0 (mean 0, scale 1), so it has no effect on
the probability whatever value it has later.

A model file records its feature list (``features``); :func:`model_probability` accepts either
list (:func:`feature_names` with or without the relation) and builds the inputs in the model's
own order (:func:`feature_matrix` ``features=``), so older model files keep loading and
predicting on rows that carry the relation, and relation models predict on rows without it
(NaN, filled with the training median).

Validation is walk-forward by session (:func:`walk_forward_splits`): sessions in time order, each
fold trains on every session before the test session and tests on that one, never the other way
round. Out-of-sample AUC (Mann-Whitney: the chance a random winner is ranked above a random
loser), Brier score (mean squared error of the probability; Brier, Mon. Weather Rev. 78 (1950))
and a calibration table are reported for the model and, the same way, for the elite score alone
(a one-feature logistic fit per fold).

Model files (JSON, :data:`MODEL_FORMAT`) live in ``app.paths.data_dir() / "models"``:
``model-NNNN.json`` (features, coefficients, fill values, scaler, training sessions, data hash,
walk-forward scores) and ``registry.json`` (``active`` and the ``history`` of previously active
files). A new model becomes active only when its walk-forward AUC beats the active one's; the
previous active model is kept for :func:`rollback`. Every file is written atomically
(:func:`app.config.files.atomic_write`). :func:`predict` needs only numpy, so the window can
score signals without scikit-learn.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from app.analysis.analyzers import RELATION_FEATURES
from app.research.snapshots import FEATURES

#: the pair-relation features a model may use (after :data:`FEATURES`), in order
RELATION = tuple(RELATION_FEATURES)
#: model file format (``format`` key)
MODEL_FORMAT = "mia-elite.signal-quality/1"
#: session phases one-hot encoded (``phase_<name>``)
PHASES = ("overnight", "open", "midday", "close", "session")
#: fewest training sessions in a walk-forward fold
MIN_TRAIN_SESSIONS = 2
#: calibration bins of the predicted probability
CAL_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class ModelError(ValueError):
    """A model file or the registry is missing, unreadable or of another format (names the file)."""


def feature_names(relation: bool = False) -> list[str]:
    """The model's input columns, in order: :data:`FEATURES`, then :data:`RELATION` if
    ``relation``, then the one-hot phases ``phase_<name>``."""
    return list(FEATURES) + (list(RELATION) if relation else []) + [f"phase_{p}" for p in PHASES]


def feature_matrix(cols, features=None) -> np.ndarray:
    """The model's inputs from snapshot columns (or a list of snapshot rows).

    Parameters
    ----------
    cols : dict of column -> array_like (N,), or list of row dicts
        At least :data:`app.research.snapshots.FEATURES` and ``phase``; the :data:`RELATION`
        columns when they are asked for, else they count as NaN (older snapshot files, rows of
        an instrument in no pair).
    features : list of str, optional
        The columns to build, in order (a model's ``features``); default :func:`feature_names`
        without the relation.

    Returns
    -------
    np.ndarray float64 (N, F)
        ``features`` columns: each feature as it is (NaN where unknown), ``phase_<name>`` 1.0 where
        ``phase`` is that name, else 0.0.

    Raises
    ------
    ValueError
        A column other than a relation feature is missing (named).
    """
    names = feature_names() if features is None else list(features)
    plain = [f for f in names if not f.startswith("phase_")]
    if isinstance(cols, list):
        cols = {k: [r.get(k) for r in cols] for k in (*plain, "phase")}  # a missing key -> NaN
    miss = [k for k in (*plain, "phase") if k not in cols and k not in RELATION]
    if miss:
        raise ValueError(f"feature_matrix: missing column(s) {', '.join(miss)}")
    phase = np.asarray(cols["phase"]).astype(str).reshape(-1)
    n = phase.shape[0]
    out = np.empty((n, len(names)), np.float64)
    for j, f in enumerate(names):
        if f.startswith("phase_"):
            out[:, j] = phase == f[len("phase_"):]
        elif f in cols:
            out[:, j] = np.asarray(cols[f], np.float64).reshape(-1)
        else:  # a relation column the rows do not have
            out[:, j] = np.nan
    return out


def model_features(model: dict) -> list[str]:
    """The feature list of a model file, checked against this program's.

    Returns
    -------
    list of str
        ``model["features"]``: :func:`feature_names` with or without the relation.

    Raises
    ------
    ModelError
        The model was trained on other features than this program computes, or its
        coefficients do not match its features.
    """
    feats = list(model.get("features", []))
    ok = feats in (feature_names(False), feature_names(True))
    try:
        ok = ok and len(model["params"]["coef"]) == len(feats)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise ModelError(f"model {model.get('version', '?')}: its features differ from this program's "
                         f"({len(feats)} vs {len(feature_names())} or {len(feature_names(True))}); "
                         "train it again")
    return feats


def model_probability(model: dict, rows) -> np.ndarray:
    """The model's probability of target first for snapshot rows (what the window shows).

    The inputs are the model's own ``features`` (:func:`model_features`): a model without the
    relation ignores the rows' ``rel_*``; a model with it reads them (NaN, so the training
    median, where a row lacks them).

    Parameters
    ----------
    model : dict
        A model file's content (:func:`load_model`).
    rows : list of dict or dict of columns
        Candidate rows (:func:`app.research.snapshots.candidate_rows`).

    Returns
    -------
    np.ndarray float64 (N,), 0..1

    Raises
    ------
    ModelError
        The model was trained on other features than this program computes.
    """
    return predict(model["params"], feature_matrix(rows, model_features(model)))


def _decided(cols, profile: str | None) -> np.ndarray:
    keep = np.asarray(cols["decided"], bool)
    if profile is not None:
        keep &= np.asarray(cols["profile"]).astype(str) == profile
    return keep


def relation_present(cols: dict[str, np.ndarray], profile: str | None = None) -> bool:
    """Whether a decided candidate (of ``profile``) has a finite :data:`RELATION` value, i.e.
    whether a model trained on ``cols`` uses the relation features (:func:`train`)."""
    if not any(k in cols for k in RELATION):
        return False
    keep = _decided(cols, profile)
    return any(np.isfinite(np.asarray(cols[k], np.float64)[keep]).any() for k in RELATION if k in cols)


def design(cols: dict[str, np.ndarray], profile: str | None = None, relation: bool | None = None):
    """Decided candidates as ``(X, y, sessions, session_order, score)``.

    Parameters
    ----------
    cols : dict of column -> array
        From :func:`app.research.snapshots.read_snapshots`.
    profile : str, optional
        Keep only the rows of this profile.
    relation : bool, optional
        Include the :data:`RELATION` columns; default :func:`relation_present`.

    Returns
    -------
    X : np.ndarray float64 (N, F)
        :func:`feature_names` ``(relation)`` columns (NaN where unknown, also a relation column
        the snapshots lack).
    y : np.ndarray int8 (N,)
        1 = target first.
    sessions : np.ndarray object (N,)
        Session id of each row.
    session_order : list of str
        Sessions sorted by their first candidate's time (the walk-forward order).
    score : np.ndarray float64 (N,)
        The elite score of each row.

    Raises
    ------
    ValueError
        A required column is missing.
    """
    need = set(FEATURES) | {"decided", "target_first", "session", "ts", "phase"}
    miss = sorted(need - set(cols))
    if miss:
        raise ValueError(f"snapshots lack the column(s) {', '.join(miss)}")
    if relation is None:
        relation = relation_present(cols, profile)
    keep = _decided(cols, profile)
    X = feature_matrix({k: np.asarray(cols[k])[keep] for k in (*FEATURES, *RELATION, "phase") if k in cols},
                       feature_names(relation))
    y = np.asarray(cols["target_first"], bool)[keep].astype(np.int8)
    sess = np.asarray(cols["session"]).astype(str)[keep].astype(object)
    ts = np.asarray(cols["ts"], np.int64)[keep]
    first: dict[str, int] = {}
    for s, t in zip(sess, ts):
        first[s] = min(first.get(s, t), t)
    order = sorted(first, key=lambda s: (first[s], s))
    return X, y, sess, order, np.asarray(cols["score"], np.float64)[keep]


def walk_forward_splits(session_order: list[str], min_train: int = MIN_TRAIN_SESSIONS):
    """Folds ``(train_sessions, test_session)``: train on every session before the test one.

    ``session_order`` is in time order; fold k tests session ``k`` (k >= ``min_train``) and
    trains on sessions ``0 .. k-1``.
    """
    return [(list(session_order[:k]), session_order[k]) for k in range(max(1, min_train), len(session_order))]


def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> dict:
    """L2 logistic regression on standardised features; returns the numpy parameters.

    A column without any finite value in ``X`` is filled with 0 (mean 0, scale 1), left out of
    the regression and gets coefficient 0: it cannot move the probability.

    Returns
    -------
    dict
        ``fill`` (training medians, F), ``mean`` / ``scale`` (F), ``coef`` (F), ``intercept``.

    Raises
    ------
    ValueError
        ``y`` has one class only.
    ImportError
        scikit-learn is not installed.
    """
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise ValueError("fit: the training rows have one outcome only (need targets and stops)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: median NaN, filled with 0
        fill = np.nanmedian(X, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    Xf = np.where(np.isnan(X), fill, X)
    mean = Xf.mean(axis=0)
    scale = Xf.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    use = np.isfinite(X).any(axis=0)
    if not use.any():
        use[:] = True  # nothing known at all: fit the constant columns (coefficients 0)
    m = LogisticRegression(C=float(C), max_iter=1000)
    m.fit(((Xf - mean) / scale)[:, use], y)
    coef = np.zeros(X.shape[1])
    coef[use] = m.coef_[0]
    return {"fill": fill.tolist(), "mean": mean.tolist(), "scale": scale.tolist(),
            "coef": coef.tolist(), "intercept": float(m.intercept_[0])}


def predict(params: dict, X: np.ndarray) -> np.ndarray:
    """Probability of target first, float64 (N,), from :func:`fit`'s parameters (numpy only)."""
    X = np.asarray(X, np.float64)
    fill = np.asarray(params["fill"])
    Xf = np.where(np.isnan(X), fill, X)
    z = ((Xf - np.asarray(params["mean"])) / np.asarray(params["scale"])) @ np.asarray(params["coef"])
    return 1.0 / (1.0 + np.exp(-(z + float(params["intercept"]))))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties count half); ``nan`` with one class."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    from scipy.stats import rankdata

    r = rankdata(p)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def calibration(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Per probability bin (:data:`CAL_EDGES`): ``bin``, ``n``, ``mean_p``, ``observed``."""
    out = []
    for lo, hi in zip(CAL_EDGES[:-1], CAL_EDGES[1:]):
        m = (p >= lo) & ((p < hi) if hi < 1.0 else (p <= hi))
        n = int(m.sum())
        out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": n, "mean_p": round(float(p[m].mean()), 4) if n else None,
                    "observed": round(float(y[m].mean()), 4) if n else None})
    return out


def _metrics(y, p) -> dict:
    return {"n": int(len(y)), "auc": None if math.isnan(a := auc(y, p)) else round(a, 4),
            "brier": round(float(np.mean((p - y) ** 2)), 4) if len(y) else None,
            "base_rate": round(float(np.mean(y)), 4) if len(y) else None, "calibration": calibration(y, p)}


def walk_forward(X, y, sessions, order, score, C: float = 1.0, min_train: int = MIN_TRAIN_SESSIONS) -> dict:
    """Walk-forward validation (see the module docstring).

    Returns
    -------
    dict
        ``folds`` (``train`` session ids, ``test`` session id, ``n_train``, ``n_test``, or
        ``skipped`` with the reason), ``model`` and ``elite_score`` metrics over every out-of-sample
        row (``n``, ``auc``, ``brier``, ``base_rate``, ``calibration``).
    """
    folds = []
    ys, pm, ps = [], [], []
    for train, test in walk_forward_splits(order, min_train):
        tr = np.isin(sessions, train)
        te = sessions == test
        f = {"train": train, "test": test, "n_train": int(tr.sum()), "n_test": int(te.sum())}
        if not te.any():
            f["skipped"] = "no decided candidates in the test session"
        else:
            try:
                prm = fit(X[tr], y[tr], C)
                prs = fit(score[tr, None], y[tr], C)
            except ValueError as exc:
                f["skipped"] = str(exc)
            else:
                ys.append(y[te])
                pm.append(predict(prm, X[te]))
                ps.append(predict(prs, score[te, None]))
        folds.append(f)
    yy = np.concatenate(ys) if ys else np.zeros(0)
    return {"folds": folds,
            "model": _metrics(yy, np.concatenate(pm) if pm else np.zeros(0)),
            "elite_score": _metrics(yy, np.concatenate(ps) if ps else np.zeros(0))}


def data_hash(X, y, sessions) -> str:
    """``sha256:`` of the training rows (features, outcomes, session ids)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.nan_to_num(X, nan=-1e300)).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update("\n".join(map(str, sessions)).encode())
    return "sha256:" + h.hexdigest()


def train(paths, C: float = 1.0, profile: str | None = None, min_train: int = MIN_TRAIN_SESSIONS,
          now: _dt.datetime | None = None) -> dict:
    """Read snapshots, validate walk-forward, fit on every session; returns the model dict.

    The model's ``features`` include the relation when :func:`relation_present` (the decided
    rows of ``profile``); every walk-forward fold uses the same columns.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or bad snapshot files; no decided candidate; one outcome only.
    """
    from app.research.snapshots import read_snapshots

    cols = read_snapshots(paths)
    if not cols:
        raise ValueError("no snapshot rows under " + " ".join(map(str, paths)))
    relation = relation_present(cols, profile)
    X, y, sess, order, score = design(cols, profile, relation)
    if len(y) == 0:
        raise ValueError("no decided candidate in the snapshots (no outcome to learn from)")
    wf = walk_forward(X, y, sess, order, score, C, min_train)
    params = fit(X, y, C)
    return {
        "format": MODEL_FORMAT, "created": (now or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
        "features": feature_names(relation), "C": float(C), "profile": profile, "params": params,
        "training_sessions": order, "rows": int(len(y)), "data_hash": data_hash(X, y, sess),
        "scores": {"walk_forward": wf},
    }


# ----------------------------------------------------------------------------------------- files
def model_dir() -> Path:
    """``data_dir()/models`` (created)."""
    from app.paths import data_dir

    d = data_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _registry_path(folder: Path) -> Path:
    return folder / "registry.json"


def read_registry(folder: Path | None = None) -> dict:
    """``{"active": file name or None, "history": [older active file names]}``.

    Raises
    ------
    ModelError
        The registry exists but is not valid JSON of that shape.
    """
    p = _registry_path(folder or model_dir())
    if not p.exists():
        return {"active": None, "history": []}
    try:
        reg = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(reg.get("history", []), list):
            raise ValueError
    except (ValueError, AttributeError):
        raise ModelError(f"{p}: not a model registry (JSON with 'active' and 'history')") from None
    return {"active": reg.get("active"), "history": list(reg.get("history", []))}


def load_model(path: str | Path) -> dict:
    """Read a model file.

    Raises
    ------
    ModelError
        Missing, unreadable or not :data:`MODEL_FORMAT`.
    """
    p = Path(path)
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{p}: cannot read the model ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != MODEL_FORMAT:
        raise ModelError(f"{p}: not a {MODEL_FORMAT} model file")
    return m


def active_model(folder: Path | None = None) -> dict | None:
    """The active model, or None when none is registered."""
    folder = folder or model_dir()
    name = read_registry(folder)["active"]
    return load_model(folder / name) if name else None


def _wf_auc(m: dict | None) -> float:
    try:
        a = m["scores"]["walk_forward"]["model"]["auc"]
    except (KeyError, TypeError):
        return math.nan
    return math.nan if a is None else float(a)


def save_model(model: dict, folder: Path | None = None) -> tuple[Path, bool, str]:
    """Write ``model`` as the next ``model-NNNN.json``; activate it only if it beats the active one.

    Returns
    -------
    (path, activated, reason) : (Path, bool, str)
        ``reason`` says why (the two walk-forward AUCs).
    """
    from app.config.files import atomic_write

    folder = folder or model_dir()
    reg = read_registry(folder)
    nums = [int(p.stem.split("-")[1]) for p in folder.glob("model-*.json") if p.stem.split("-")[1].isdigit()]
    ver = max(nums, default=0) + 1
    model = dict(model, version=ver)
    path = folder / f"model-{ver:04d}.json"
    atomic_write(path, json.dumps(model, indent=1, sort_keys=True))
    new = _wf_auc(model)
    cur = active_model(folder) if reg["active"] else None
    old = _wf_auc(cur)
    if math.isnan(new):
        return path, False, "not activated: no walk-forward AUC (too few sessions or one outcome)"
    if cur is not None and not (new > old if not math.isnan(old) else True):
        return path, False, f"not activated: walk-forward AUC {new:.4f} does not beat the active model's {old:.4f}"
    if reg["active"]:
        reg["history"].append(reg["active"])
    reg["active"] = path.name
    atomic_write(_registry_path(folder), json.dumps(reg, indent=1))
    why = "first model" if cur is None else f"walk-forward AUC {new:.4f} beats {old:.4f}"
    return path, True, f"activated: {why}"


def rollback(folder: Path | None = None) -> str:
    """Make the previously active model active again; returns its file name.

    Raises
    ------
    ModelError
        No previous model to go back to.
    """
    from app.config.files import atomic_write

    folder = folder or model_dir()
    reg = read_registry(folder)
    if not reg["history"]:
        raise ModelError(f"{_registry_path(folder)}: no previous model to roll back to")
    prev = reg["history"].pop()
    load_model(folder / prev)  # it must still be readable
    reg["active"] = prev
    atomic_write(_registry_path(folder), json.dumps(reg, indent=1))
    return prev
