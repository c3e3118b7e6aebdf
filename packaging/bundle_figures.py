"""Check a built one-folder bundle and print its figures (one JSON line each, like ``mia-elite bench``).

Usage::

    python packaging/bundle_figures.py --bundle "dist/MIA Elite" [--seconds 15] [--quick]

Runs, with ``QT_QPA_PLATFORM=offscreen`` and a fresh user folder (``MIA_ELITE_HOME``) so the
numba cache starts empty:

1. the resources check: the shipped sample, every profile and the VIX histories are in the
   bundle (``_internal/resources``) and load through the bundle's own code
   (``mia-elite analyze default`` reads the sample, a profile and the VIX CSVs);
2. ``mia-elite --self-test SECONDS`` from the bundle, cold (empty numba cache): must pass;
3. the same warm (``--self-test 3``, twice; the faster start counts);
4. the same warm from source (``python -m app --self-test 3``), the same-run baseline of the
   start-up figure.

Figures (``name, value, unit, baseline, ratio, target``):

- ``bundle.size_mib``: the bundle's size on disk (``du -sk``, MiB as ``du -sh``), target <= 300 MB. Baseline: the
  apparent size of the files (sum of file sizes).
- ``bundle.first_frame_warm_s``: seconds from process start to the first drawn frame, warm
  numba cache, target <= 5 s; baseline the same from source.
- ``bundle.first_frame_cold_s``: the same on the first run (the kernels compile); baseline the
  warm bundle figure.

The start-up time is the one the splash screen logs ("first frame drawn N s after process
start", :data:`app.ui.splash.FIRST_FRAME_MARK`). Exit code 0 when the resources are there and
the cold self-test passed; targets are printed, not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FIRST = re.compile(r"first frame drawn ([0-9.]+) s after process start")
RESOURCES = [
    ("samples", "esh4-glbx-mdp3-20231225.mbo.dbn.zst"),
    ("profiles", "production.toml"),
    ("profiles", "scalping.toml"),
    ("profiles", "development.toml"),
    ("profiles", "budget.toml"),
    ("vix", "VIX_History.csv"),
    ("vix", "VIX3M_History.csv"),
    ("icons", "mia-elite.png"),
]


def cli_executable(bundle: Path) -> Path:
    """The console executable of a bundle (``mia-elite`` or ``mia-elite.exe``)."""
    for name in ("mia-elite", "mia-elite.exe"):
        if (bundle / name).is_file():
            return bundle / name
    raise FileNotFoundError(f"no mia-elite executable in {bundle}")


def bundle_size(bundle: Path) -> tuple[float, float]:
    """(on-disk MiB as ``du -sk`` counts, apparent MiB = sum of file sizes); symlinks not followed.

    MiB (2**20 bytes), the unit ``du -sh`` prints as "M".
    """
    apparent = 0
    blocks = 0
    for root, _dirs, names in os.walk(bundle):
        for n in names:
            st = os.lstat(os.path.join(root, n))
            apparent += st.st_size
            blocks += getattr(st, "st_blocks", (st.st_size + 511) // 512)
    disk = blocks * 512
    try:
        out = subprocess.run(["du", "-sk", str(bundle)], capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            disk = int(out.stdout.split()[0]) * 1024
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return disk / 2**20, apparent / 2**20


def largest_parts(bundle: Path, n: int = 12) -> list[tuple[str, float]]:
    """The ``n`` largest entries of the bundle's ``_internal`` folder (or of the bundle itself),
    ``(relative path, MiB)``, largest first (files and top-level folders, links not followed)."""
    root = bundle / "_internal" if (bundle / "_internal").is_dir() else bundle
    sizes = []
    for p in list(root.iterdir()) + [q for q in bundle.iterdir() if q.is_file()]:
        if p.is_symlink():
            continue
        total = p.stat().st_size if p.is_file() else sum(
            f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        sizes.append((str(p.relative_to(bundle)), total / 2**20))
    return sorted(sizes, key=lambda t: -t[1])[:n]


def first_frame_seconds(text: str) -> float | None:
    """The start-up figure from the log text (the first "first frame drawn N s" line), or None."""
    m = _FIRST.search(text)
    return float(m.group(1)) if m else None


def _run(cmd: list[str], env: dict, timeout: float, log_to: Path, stdout_only: bool = False):
    """Run ``cmd``; returns (exit code, output, wall seconds) and writes the output to ``log_to``."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        rc = r.returncode
        out = (r.stdout or "") if stdout_only else (r.stdout or "") + (r.stderr or "")
        if stdout_only:
            log_to.with_suffix(".stderr").write_text(r.stderr or "", encoding="utf-8")
    except subprocess.TimeoutExpired as exc:
        rc = 124
        out = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""))
        out += f"\n[bundle_figures] timed out after {timeout:.0f} s\n"
    wall = time.perf_counter() - t0
    log_to.write_text(out, encoding="utf-8")
    return rc, out, wall


def _json_doc(text: str):
    """The JSON document in ``text`` (from its first ``{`` line), or None."""
    i = text.find("\n{")
    i = 0 if text.startswith("{") else (i + 1 if i >= 0 else -1)
    if i < 0:
        return None
    try:
        return json.loads(text[i:])
    except ValueError:
        return None


def _fig(name, value, unit, baseline, target, **extra) -> dict:
    ratio = (value / baseline) if (value is not None and baseline) else None
    d = {"name": name, "value": None if value is None else round(value, 3), "unit": unit,
         "baseline": None if baseline is None else round(baseline, 3),
         "ratio": None if ratio is None else round(ratio, 3), "target": target}
    d.update(extra)
    return d


def main(argv: list[str] | None = None) -> int:
    """Run the checks and print the figures; returns the exit code (see the module doc)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "dist" / "MIA Elite"), help="the one-folder bundle")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the cold self-test")
    ap.add_argument("--quick", action="store_true", help="one warm run each instead of two")
    ap.add_argument("--no-source", action="store_true", help="skip the from-source baseline run")
    ap.add_argument("--logs", default=None, help="folder for the runs' output (default: a temp folder)")
    args = ap.parse_args(argv)

    bundle = Path(args.bundle).resolve()
    exe = cli_executable(bundle)
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="mia-bundle-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="mia-bundle-home-"))
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", MIA_ELITE_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("NUMBA_CACHE_DIR", None)  # the app's own choice: <home>/cache/numba/cli
    ok = True

    # 1. resources in the bundle, and loaded by the bundle's code
    res_root = bundle / "_internal" / "resources"
    missing = [f"{a}/{b}" for a, b in RESOURCES if not (res_root / a / b).is_file()]
    print(f"[{'PASS' if not missing else 'FAIL'}] bundle resources present: "
          f"{'all ' + str(len(RESOURCES)) if not missing else 'missing ' + ', '.join(missing)}")
    ok &= not missing
    rc, out, wall = _run([str(exe), "analyze", "default", "--json"], env, 900, logs / "analyze.log",
                         stdout_only=True)
    rep = _json_doc(out)
    detail = f"rc {rc}, {wall:.1f} s (first run compiles the kernels)"
    analyzed = rc == 0 and rep is not None and rep.get("events", 0) > 0 and rep.get("errors") == 0
    if analyzed:
        regimes = sorted({s.get("regime") for s in rep.get("signals", []) if s.get("regime")})
        detail += (f"; {rep['recording']['symbol']} {rep['events']:,} events, profile {rep['profile']}, "
                   f"{len(rep.get('signals', []))} signals, VIX regimes {regimes or 'none'}")
        if not args.no_source:  # the frozen run must give exactly the source run's result
            senv = dict(env, MIA_ELITE_HOME=tempfile.mkdtemp(prefix="mia-src-home-"))
            r2 = subprocess.run([sys.executable, "-m", "app", "analyze", "default", "--json"], env=senv,
                                cwd=str(ROOT), capture_output=True, text=True, timeout=900)
            src_rep = _json_doc(r2.stdout)
            same = src_rep is not None and all(src_rep.get(k) == rep.get(k) for k in ("events", "steps", "summary"))
            analyzed &= same
            detail += "; same events/steps/summary as from source" if same else "; DIFFERS from the source run"
    print(f"[{'PASS' if analyzed else 'FAIL'}] analyze default (sample + profile + VIX) from the bundle: {detail}")
    ok &= analyzed
    # analyze filled the cache; a cold start needs an empty one
    shutil.rmtree(home / "cache", ignore_errors=True)

    # 2. cold self-test
    rc, out, wall = _run([str(exe), "--self-test", f"{args.seconds:g}"], env, args.seconds + 600,
                         logs / "selftest-cold.log")
    cold = first_frame_seconds(out)
    for line in out.splitlines():
        if line.startswith(("[PASS]", "[FAIL]", "self-test")):
            print("  " + line)
    print(f"[{'PASS' if rc == 0 else 'FAIL'}] self-test from the bundle (cold numba cache): rc {rc}, "
          f"{wall:.1f} s wall")
    ok &= rc == 0

    # 3. warm bundle start-up
    warm_runs = []
    for i in range(1 if args.quick else 2):
        rc_w, out, _ = _run([str(exe), "--self-test", "3"], env, 300, logs / f"selftest-warm{i}.log")
        v = first_frame_seconds(out)
        if rc_w == 0 and v is not None:
            warm_runs.append(v)
    warm = min(warm_runs) if warm_runs else None

    # 4. the same from source (baseline)
    src = None
    if not args.no_source:
        senv = dict(env)
        senv["MIA_ELITE_HOME"] = str(Path(tempfile.mkdtemp(prefix="mia-src-home-")))
        senv["PYTHONPATH"] = str(ROOT) + os.pathsep + senv.get("PYTHONPATH", "")
        code = ("import sys; from app.ui import main as m; from app.ui.crash import install_excepthook;"
                "from app.ui.splash import show_splash; o = m.make_app\n"
                "def mk():\n    a = o(); install_excepthook(a); show_splash(a); return a\n"
                "m.make_app = mk\nfrom app.cli import main; sys.exit(main(['--self-test', '3']))")
        runs = []
        for i in range(2 if args.quick else 3):  # the first one fills the source cache
            rc_s, out, _ = _run([sys.executable, "-c", code], senv, 600, logs / f"source{i}.log")
            v = first_frame_seconds(out)
            if rc_s == 0 and v is not None and i > 0:
                runs.append(v)
        src = min(runs) if runs else None

    disk_mb, apparent_mb = bundle_size(bundle)
    figs = [
        _fig("bundle.size_mib", disk_mb, "MiB", apparent_mb, "<= 300 MB unpacked",
             note="baseline = apparent size (sum of file sizes)"),
        _fig("bundle.first_frame_warm_s", warm, "s", src, "<= 5 s",
             runs=[round(v, 3) for v in warm_runs], note="baseline = the same start from source"),
        _fig("bundle.first_frame_cold_s", cold, "s", warm, "printed (first run compiles)",
             note="baseline = warm bundle start"),
    ]
    for f in figs:
        print(json.dumps(f))
    print("largest parts: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in largest_parts(bundle)))
    print(f"bundle check {'passed' if ok else 'FAILED'} (logs in {logs})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
