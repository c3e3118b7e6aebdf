"""``mia-elite learn SNAPSHOTS...``: train the signal-quality model walk-forward by session.

SNAPSHOTS are Parquet files or folders written by ``mia-elite evaluate --snapshots DIR``
(:mod:`app.research.snapshots`). The command fits a regularised logistic regression predicting
"target first" (:mod:`app.research.learn`), validates it walk-forward (train on earlier
sessions, test on the next), prints out-of-sample AUC, Brier score and a calibration table
beside the same figures for the elite score alone, and saves a versioned model file under the
user data folder. The new model becomes active only when its walk-forward AUC beats the active
model's; ``--rollback`` makes the previous active model active again. scikit-learn is not in the
Windows bundle: without it the command says so in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOTS", help="snapshot Parquet files or folders")
    p.add_argument("--C", type=float, default=1.0, dest="C",
                   help="inverse L2 penalty of the logistic regression (default 1.0)")
    p.add_argument("--profile", default=None, help="use only the candidates of this profile")
    p.add_argument("--min-train", type=int, default=2, metavar="N",
                   help="fewest earlier sessions a walk-forward fold trains on (default 2)")
    p.add_argument("--models", metavar="DIR", default=None, help="model folder (default: the user data folder's)")
    p.add_argument("--rollback", action="store_true", help="make the previously active model active again")
    p.add_argument("--json", action="store_true", help="print the model file's content as JSON")


def _row(name: str, m: dict) -> str:
    f = lambda v, nd=3: "-" if v is None else f"{v:.{nd}f}"  # noqa: E731
    return f"  {name:<12} n {m['n']:>6}  AUC {f(m['auc'])}  Brier {f(m['brier'])}  base rate {f(m['base_rate'])}"


def print_text(model: dict, path, activated: bool, reason: str, out) -> None:
    """The walk-forward figures, the calibration tables and what happened to the model file."""
    wf = model["scores"]["walk_forward"]
    done = [f for f in wf["folds"] if "skipped" not in f]
    print(f"{model['rows']} decided candidates from {len(model['training_sessions'])} session(s); "
          f"walk-forward folds {len(done)} of {len(wf['folds'])} (train on earlier sessions, test on the next)",
          file=out)
    for f in wf["folds"]:
        tail = f"skipped: {f['skipped']}" if "skipped" in f else f"{f['n_train']} train rows, {f['n_test']} test rows"
        print(f"    test {f['test']} <- train {len(f['train'])} session(s) up to {f['train'][-1]}: {tail}", file=out)
    print("out of sample:", file=out)
    print(_row("model", wf["model"]), file=out)
    print(_row("elite score", wf["elite_score"]), file=out)
    print("calibration (bin: n, mean predicted, observed)   model | elite score", file=out)
    for a, b in zip(wf["model"]["calibration"], wf["elite_score"]["calibration"]):
        g = lambda c: f"{c['n']:>5} {c['mean_p'] if c['mean_p'] is not None else '-':>7} " \
                      f"{c['observed'] if c['observed'] is not None else '-':>7}"  # noqa: E731
        print(f"  {a['bin']}: {g(a)} | {g(b)}", file=out)
    print(f"model file: {path} ({reason})", file=out)


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 on bad input, a missing library or a refused rollback."""
    from app.research import learn

    folder = Path(args.models) if args.models else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if args.rollback:
        try:
            name = learn.rollback(folder)
        except learn.ModelError as exc:
            print(f"learn: {exc}", file=sys.stderr)
            return 2
        print(f"active model: {name} (rolled back)")
        return 0
    if not args.snapshots:
        print("learn: name the snapshot files or folders (or --rollback)", file=sys.stderr)
        return 2
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("learn: scikit-learn is not installed: `mia-elite learn` needs it "
              "(pip install 'mia-elite[research]'; it is not in the Windows bundle)", file=sys.stderr)
        return 2
    if args.min_train < 1 or not args.C > 0:
        print("learn: --min-train must be >= 1 and --C > 0", file=sys.stderr)
        return 2
    try:
        model = learn.train(args.snapshots, C=args.C, profile=args.profile, min_train=args.min_train)
        path, activated, reason = learn.save_model(model, folder)
    except (OSError, ValueError) as exc:
        print(f"learn: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(learn.load_model(path), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        print(f"model file: {path} ({reason})", file=sys.stderr)
    else:
        print_text(model, path, activated, reason, sys.stdout)
    return 0
