"""The one numba helper (app.core.jit): where the compiled kernels go, that it is the only module
that sets numba up, and that the NumPy twins (``*_ref`` modules) stay off the production paths."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def _child(code: str, env: dict, timeout: float = 300) -> dict:
    """Run ``code`` in a fresh interpreter with ``env`` (NUMBA_CACHE_DIR removed unless given);
    return the JSON its last stdout line holds."""
    e = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    e.update(env)
    e["PYTHONPATH"] = str(APP.parent) + os.pathsep + e.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_REPORT = ("import json, os, numba, app.core.jit as j; print(json.dumps({'cache': str(j.CACHE_DIR), "
           "'env': os.environ.get('NUMBA_CACHE_DIR'), 'config': numba.config.CACHE_DIR}))")


def test_cache_goes_to_the_user_cache_folder_when_unset(tmp_path):
    r = _child(_REPORT, {"MIA_ELITE_HOME": str(tmp_path)})
    want = str(tmp_path / "cache" / "numba")
    assert r == {"cache": want, "env": want, "config": want}
    assert Path(want).is_dir()


def test_cache_is_set_even_when_numba_was_imported_first(tmp_path):
    r = _child("import numba\n" + _REPORT, {"MIA_ELITE_HOME": str(tmp_path)})
    assert r["config"] == r["cache"] == str(tmp_path / "cache" / "numba")


def test_a_cache_folder_chosen_before_wins(tmp_path):
    chosen = tmp_path / "chosen"
    r = _child(_REPORT, {"MIA_ELITE_HOME": str(tmp_path / "home"), "NUMBA_CACHE_DIR": str(chosen)})
    assert r == {"cache": str(chosen), "env": str(chosen), "config": str(chosen)}
    assert not (tmp_path / "home" / "cache" / "numba").exists()


def test_a_kernel_compiles_into_the_cache_folder(tmp_path):
    code = ("import json, numpy as np\n"
            "from app.analysis.kernel_util import n_hits\n"
            "out = np.zeros((3, 2)); out[[0, 2], 0] = 1.0\n"
            "print(json.dumps({'hits': int(n_hits(out, 3))}))")
    assert _child(code, {"MIA_ELITE_HOME": str(tmp_path)}) == {"hits": 2}
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "no cache index written"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _sets_the_cache_folder(path: Path) -> bool:
    """True when the module writes ``NUMBA_CACHE_DIR`` into the environment or numba's config."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                key = t.slice if isinstance(t, ast.Subscript) else None
                if isinstance(key, ast.Constant) and key.value == "NUMBA_CACHE_DIR":
                    return True
                if isinstance(t, ast.Attribute) and t.attr == "CACHE_DIR":
                    return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "NUMBA_CACHE_DIR"):
            return True
    return False


def test_only_core_jit_imports_numba_and_sets_up_its_cache():
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        if path == APP / "core" / "jit.py":
            assert _sets_the_cache_folder(path)  # the check below does see a set-up
            continue
        if any(n == "numba" or n.startswith("numba.") for n in _imports(path)):
            offenders.append(f"{path.relative_to(APP.parent)} imports numba")
        if _sets_the_cache_folder(path) or "numba_cache_setup" in path.read_text(encoding="utf-8"):
            offenders.append(f"{path.relative_to(APP.parent)} sets up the cache")
    assert offenders == []


def test_kernel_modules_take_the_preset_from_core_jit():
    kernel_modules = ["analysis/dom.py", "analysis/battle_navale.py", "analysis/advanced.py",
                      "analysis/orderflow.py", "analysis/vix.py", "analysis/kernel_util.py",
                      "market/kernels.py", "feeds/sierra_kernels.py", "feeds/dbn_kernels.py", "dtc/batch.py",
                      "analysis/relation.py"]
    for rel in kernel_modules:
        assert "app.core.jit" in _imports(APP / rel), rel


def test_production_paths_leave_the_ref_modules_unloaded(tmp_path):
    code = """
import json, sys
import numpy as np
from app.analysis.analyzers import Analyzers
from app.config.profiles import load_profile
from app.core.events import chunks
from app.feeds.depthfile import depth_records_to_events, events_to_depth_records
from app.feeds.samples import load_default_sample
from app.feeds.scid import best_bid_ask_at_trades, events_to_scid_records, scid_to_events
from app.market.model import MarketModel
import app.dtc.batch, app.live.engine, app.feeds.follow

rec = load_default_sample()
ev = rec.events[:20000]
m = MarketModel(rec.instrument, rows=100, column_ns=250_000_000, history_s=60, window_cols=100)
a = Analyzers(load_profile("development"), rec.instrument)
for c in chunks(ev):
    m.apply(c)
a.step(m.view())
depth_records_to_events(events_to_depth_records(ev, rec.instrument), rec.instrument)
bid, ask = best_bid_ask_at_trades(ev)
scid_to_events(events_to_scid_records(ev, rec.instrument, bid=bid, ask=ask), rec.instrument)
before = sorted(n for n in sys.modules if n.startswith("app.") and n.endswith("_ref"))
MarketModel(rec.instrument, rows=10, column_ns=250_000_000, history_s=10, window_cols=10, use_numba=False)
Analyzers(load_profile("development"), rec.instrument, vix_history=False, use_numba=False)
after = sorted(n for n in sys.modules if n.startswith("app.") and n.endswith("_ref"))
print(json.dumps({"before": before, "after": after}))
"""
    r = _child(code, {"MIA_ELITE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"]})
    assert r["before"] == []
    assert r["after"] == ["app.analysis.advanced_ref", "app.analysis.battle_navale_ref", "app.analysis.dom_ref",
                          "app.analysis.orderflow_ref", "app.market.kernels_ref"]


@pytest.mark.parametrize("probe", ["engine_start_probe"])
def test_bench_market_probes_are_real_functions(probe, tmp_path):
    """``market.engine_start`` runs a module function in the child, not code held in a string."""
    from app.bench import market

    assert callable(getattr(market, probe))
    assert not [n for n in vars(market) if n.endswith("_CODE")]
    r = market._run_probe(probe, {"MIA_ELITE_HOME": str(tmp_path), "PYTHONPATH": str(APP.parent)})
    assert r["state"] != "compiling" and r["start_s"] >= r["construct_s"] > 0


def test_kernel_is_cached_says_whether_a_compile_is_ahead(tmp_path):
    # a fresh cache folder: the DTC decode kernel is not in it until it ran once
    code = """
import json
from app.core.jit import kernel_is_cached
from app.dtc import batch
before = kernel_is_cached(batch._scan)
batch.scan_run(b"\\x00" * 16)
print(json.dumps({"before": before, "after": kernel_is_cached(batch._scan),
                  "plain_function": kernel_is_cached(batch.scan_run)}))
"""
    r = _child(code, {"MIA_ELITE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert r == {"before": False, "after": True, "plain_function": False}


def test_numba_target_set_up_leaves_scipy_linalg_unloaded(tmp_path):
    # numba's BLAS probe would import scipy.linalg (24 MiB resident); kernels still run, and
    # scipy.linalg still imports when something else asks for it
    code = """
import json, sys
import numpy as np
from app.market.model import MarketModel
from app.core.events import Instrument, depth_events
m = MarketModel(Instrument("ES", 0.25, 12.5), rows=20, column_ns=1_000_000, history_s=0.05, window_cols=10)
m.apply(depth_events([0, 1], [1000, 1001], [5.0, 6.0], [1, 2], [1, 1]))
probe_ran = "numba.np.arraymath" in sys.modules
loaded = "scipy.linalg" in sys.modules
import scipy.linalg
print(json.dumps({"probe_ran": probe_ran, "scipy_linalg": loaded, "later": float(scipy.linalg.norm(np.ones(4)))}))
"""
    r = _child(code, {"MIA_ELITE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"]})
    assert r == {"probe_ran": True, "scipy_linalg": False, "later": 2.0}
