"""Check a built one-folder bundle and print its figures (one JSON line each, like ``mia-elite bench``).

Usage::

    python packaging/bundle_figures.py --bundle "dist/MIA Elite" [--seconds 15] [--quick]

Runs, with ``QT_QPA_PLATFORM=offscreen`` and a fresh user folder (``MIA_ELITE_HOME``) so the
numba cache starts empty:

1. the resources check: the shipped sample, every profile and the VIX histories are in the
   bundle (``_internal/resources``) and load through the bundle's own code
   (``mia-elite analyze default`` reads the sample, a profile and the VIX CSVs);
2. ``mia-elite --self-test SECONDS`` from the bundle, cold (empty numba cache): must pass;
3. the same warm (``--self-test 3``, twice; the faster start counts); then the windowed
   executable's own ``--self-test 3`` (it reads its modules from the console executable's
   archive, packaging/shared_pyz.py): must pass;
4. the same warm from source (``python -m app --self-test 3``), the same-run baseline of the
   start-up figure.

Figures (``name, value, unit, baseline, ratio, target``):

- ``bundle.size_mib``: the bundle's size on disk (``du -sk``, MiB as ``du -sh``; ``value_mb`` the
  same in MB), target <= 300 MB. Baseline: the previous bundle's size on disk as recorded in
  ``packaging/bundle_size_baseline.json`` (``--baseline-mib`` overrides); ``apparent_mib`` the
  sum of the file sizes.
- ``bundle.first_frame_warm_s``: seconds from process start to the first drawn frame, warm
  numba cache, target <= 5 s; baseline the same from source.
- ``bundle.first_frame_cold_s``: the same on the first run (the kernels compile); baseline the
  warm bundle figure.

What the bundle leaves out is checked against what the app loads (packaging/BUNDLE.md): the
first warm bundle run and the last source run write the modules and shared libraries they
loaded (``MIA_ELITE_LOADED_REPORT``, :func:`frozen_setup.write_loaded_report`). That source run
imports as the bundle would (:func:`emulate_bundle_imports`: the spec's ``excludes`` are
refused with ``ModuleNotFoundError`` and recorded, the QtOpenGL stand-in is installed), so the
check passes when every module it imported is in the bundle run too (the source-only start-up
modules of :data:`SOURCE_ONLY` aside). It prints the excluded modules the app asked for and ran
without, and the shipped shared libraries the bundle never loaded.

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
HERE = Path(__file__).resolve().parent
#: Modules a run from source imports that a frozen run has no counterpart for: the editable
#: install's finder, setuptools' distutils shim, site customisation, this script and its
#: helpers; the standard library's file-system resource readers (the frozen app reads its
#: resources through PyInstaller's reader); ``PySide6.support.deprecated``, which PySide6 6.11
#: ships empty (no ``fix_for_*`` function) and shiboken imports only when it is present.
SOURCE_ONLY = ("__editable__", "_distutils_hack", "sitecustomize", "usercustomize", "_virtualenv",
               "frozen_setup", "bundle_figures", "site", "_sitebuiltins", "runpy", "pkgutil", "zipimport",
               "importlib.readers", "importlib.resources.readers", "importlib.resources._itertools",
               "PySide6.support.deprecated")
_SHARED = (".so", ".pyd", ".dll", ".dylib")
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


def gui_executable(bundle: Path) -> Path | None:
    """The windowed executable of a bundle (``MIA Elite`` or ``MIA Elite.exe``), or None."""
    for name in ("MIA Elite", "MIA Elite.exe"):
        if (bundle / name).is_file():
            return bundle / name
    return None


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


def spec_excludes(spec: Path = HERE / "mia_elite.spec") -> list[str]:
    """The module names the spec excludes (its ``excludes`` list, read without running it)."""
    import ast

    tree = ast.parse(spec.read_text(encoding="utf-8"))
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "_QT_UNUSED":
                values[name] = ast.literal_eval(node.value)
            elif name == "excludes" and isinstance(node.value, ast.BinOp):
                values[name] = ([f"PySide6.{m}" for m in values.get("_QT_UNUSED", [])]
                                + list(ast.literal_eval(node.value.right)))
    return list(values.get("excludes", []))


class _Refuse:
    """Meta-path finder refusing ``names`` (and their submodules) as a bundle without them would;
    the refused names are kept in ``refused``."""

    def __init__(self, names) -> None:
        self.names = tuple(names)
        self.refused: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            self.refused.add(name)
            raise ModuleNotFoundError(f"No module named {name!r} (left out of the bundle)", name=name)
        return None


def emulate_bundle_imports(report: str | os.PathLike) -> _Refuse:
    """For a run from source: import as the bundle does, and write the loaded report at exit.

    Installs the QtOpenGL stand-in (:func:`frozen_setup.qtopengl_standin`), then a finder that
    refuses the spec's ``excludes`` (:func:`spec_excludes`); at exit the report of
    :func:`frozen_setup.write_loaded_report` is written to ``report`` with ``"refused"``: the
    excluded modules the run asked for.
    """
    import atexit

    import frozen_setup

    frozen_setup.qtopengl_standin(force=True)
    finder = _Refuse(spec_excludes())
    sys.meta_path.insert(0, finder)

    def done():
        frozen_setup.write_loaded_report(report)
        try:
            doc = json.loads(Path(report).read_text(encoding="utf-8"))
            doc["refused"] = sorted(finder.refused)
            Path(report).write_text(json.dumps(doc, indent=0), encoding="utf-8")
        except (OSError, ValueError):
            pass

    atexit.register(done)
    return finder


def _is_shared(name: str) -> bool:
    return name.lower().endswith(_SHARED) or ".so." in name


def compare_loaded(bundle_doc: dict, source_doc: dict, bundle: Path, excludes: list[str]) -> dict:
    """Compare what a bundle run and a source run loaded (reports of :func:`frozen_setup.write_loaded_report`).

    Returns a dict: ``unexplained`` (modules the source run imported and the bundle run did not,
    other than excluded ones and :data:`SOURCE_ONLY`; the check passes when empty), ``excluded``
    (such modules that the spec excludes on purpose), ``standins`` (modules the bundle replaced
    by a stand-in), ``loaded_mib`` / ``never_loaded_mib`` (shared libraries shipped in
    ``bundle`` that the bundle run mapped / did not map) and ``never_loaded`` (the largest of
    those, ``(relative path, MiB)``).
    """
    def names(doc):
        return {m.split(" ", 1)[0] for m in doc.get("modules", [])}

    in_bundle, in_source = names(bundle_doc), names(source_doc)
    standins = sorted(m.split(" ", 1)[0] for m in bundle_doc.get("modules", []) if m.endswith("(stand-in)"))
    missing = sorted(in_source - in_bundle)

    def excluded(m):
        return any(m == e or m.startswith(e + ".") for e in excludes)

    def source_only(m):
        return any(m == e or m.startswith((e + ".", e + "_")) or m.startswith(e) and e.endswith("__")
                   for e in SOURCE_ONLY)

    unexplained = [m for m in missing if not excluded(m) and not source_only(m)]
    root = os.path.realpath(bundle)
    loaded = {os.path.realpath(p) for p in bundle_doc.get("shared_objects", [])}
    shipped = []
    for r, _d, files in os.walk(bundle):
        for n in files:
            p = os.path.join(r, n)
            if _is_shared(n) and not os.path.islink(p):
                shipped.append((os.path.realpath(p), os.path.getsize(p)))
    used = [(p, s) for p, s in shipped if p in loaded]
    unused = sorted(((os.path.relpath(p, root), s / 2**20) for p, s in shipped if p not in loaded),
                    key=lambda t: -t[1])
    return {"unexplained": unexplained, "excluded": [m for m in missing if excluded(m)], "standins": standins,
            "loaded_mib": sum(s for _p, s in used) / 2**20, "loaded_files": len(used),
            "never_loaded_mib": sum(s for _p, s in unused), "never_loaded_files": len(unused),
            "never_loaded": unused[:12]}


def baseline_size(path: Path = HERE / "bundle_size_baseline.json") -> tuple[float | None, str]:
    """(previous on-disk MiB, what it was) from ``path``; (None, reason) when it cannot be read."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return float(doc["size_mib"]), str(doc.get("what", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"no baseline ({exc})"


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
    ap.add_argument("--baseline-mib", type=float, default=None,
                    help="previous bundle size on disk, MiB (default: packaging/bundle_size_baseline.json)")
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
    bundle_report = logs / "loaded-bundle.json"
    for i in range(1 if args.quick else 2):
        wenv = dict(env, MIA_ELITE_LOADED_REPORT=str(bundle_report)) if i == 0 else env
        rc_w, out, _ = _run([str(exe), "--self-test", "3"], wenv, 300, logs / f"selftest-warm{i}.log")
        v = first_frame_seconds(out)
        if rc_w == 0 and v is not None:
            warm_runs.append(v)
    warm = min(warm_runs) if warm_runs else None

    # 3b. the windowed executable, which imports its modules from the console one's archive
    #     (packaging/shared_pyz.py): its own self-test must pass too
    gui = gui_executable(bundle)
    if gui is not None:
        rc_g, out, wall = _run([str(gui), "--self-test", "3"], env, 300, logs / "selftest-gui.log")
        print(f"[{'PASS' if rc_g == 0 else 'FAIL'}] self-test of the windowed executable ({gui.name}, modules from "
              f"the console executable's archive): rc {rc_g}, {wall:.1f} s wall")
        ok &= rc_g == 0

    # 4. the same from source (baseline)
    src = None
    if not args.no_source:
        senv = dict(env)
        senv["MIA_ELITE_HOME"] = str(Path(tempfile.mkdtemp(prefix="mia-src-home-")))
        senv["PYTHONPATH"] = str(ROOT) + os.pathsep + senv.get("PYTHONPATH", "")
        source_report = logs / "loaded-source.json"
        code = (f"import sys, os; sys.path.insert(0, {str(HERE)!r}); import bundle_figures;"
                "r = os.environ.get('MIA_ELITE_LOADED_REPORT'); r and bundle_figures.emulate_bundle_imports(r);"
                "sys.path.pop(0)\n"
                "from app.ui import main as m; from app.ui.crash import install_excepthook;"
                "from app.ui.splash import show_splash; o = m.make_app\n"
                "def mk():\n    a = o(); install_excepthook(a); show_splash(a); return a\n"
                "m.make_app = mk\nfrom app.cli import main; sys.exit(main(['--self-test', '3']))")
        runs = []
        n_src = 2 if args.quick else 3
        for i in range(n_src):  # the first one fills the source cache
            rc_s, out, _ = _run([sys.executable, "-c", code], senv, 600, logs / f"source{i}.log")
            v = first_frame_seconds(out)
            if rc_s == 0 and v is not None and i > 0:
                runs.append(v)
        src = min(runs) if runs else None
        # one more, importing as the bundle does (the loaded-modules check; not a start-up figure)
        _run([sys.executable, "-c", code], dict(senv, MIA_ELITE_LOADED_REPORT=str(source_report)), 600,
             logs / "source-as-bundle.log")

    # 5. what the bundle left out against what the app loads
    if not args.no_source:
        try:
            src_doc = json.loads(source_report.read_text(encoding="utf-8"))
            cmp = compare_loaded(json.loads(bundle_report.read_text(encoding="utf-8")), src_doc, bundle,
                                 spec_excludes())
        except (OSError, ValueError) as exc:
            print(f"[FAIL] loaded-modules check: no report from the runs ({exc})")
            ok = False
        else:
            good = not cmp["unexplained"]
            print(f"[{'PASS' if good else 'FAIL'}] every module the source self-test imports is in the bundle run, "
                  f"or excluded on purpose: " + ("yes" if good else "missing " + ", ".join(cmp["unexplained"][:20]))
                  + "; left out, asked for by the app and done without: "
                  + (", ".join(sorted({m.split(".")[0] if not m.startswith("PySide6.") else m
                                       for m in src_doc.get("refused", [])})) or "none")
                  + f"; stand-ins: {', '.join(cmp['standins']) or 'none'}")
            ok &= good
            print(f"  shared libraries shipped: {cmp['loaded_files']} loaded by the self-test "
                  f"({cmp['loaded_mib']:.1f} MiB), {cmp['never_loaded_files']} never loaded "
                  f"({cmp['never_loaded_mib']:.1f} MiB; largest: "
                  + ", ".join(f"{n} {m:.1f}" for n, m in cmp["never_loaded"][:8]) + ")")

    disk_mb, apparent_mb = bundle_size(bundle)
    prev, prev_what = (args.baseline_mib, "given") if args.baseline_mib else baseline_size()
    figs = [
        _fig("bundle.size_mib", disk_mb, "MiB", prev, "<= 300 MB unpacked (286.1 MiB)",
             value_mb=round(disk_mb * 2**20 / 1e6, 1), apparent_mib=round(apparent_mb, 1),
             note=f"baseline = the previous bundle on disk ({prev_what})"),
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
