"""The bundle ships numba's cache compiled for a generic x86-64 CPU (issue 18 item 5): a cache
built with ``NUMBA_CPU_NAME=generic`` in one place must load, without compiling, from a copy of
the app at another path and from another cache folder (as on a user's machine), and a process
without the generic setting compiles host-tuned kernels instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json
from app.dtc.batch import _scan, scan_run
scan_run(b"\\x00" * 16)
print(json.dumps({"hits": sum(_scan.stats.cache_hits.values()), "misses": sum(_scan.stats.cache_misses.values())}))
"""


def _copy_app(dst: Path) -> Path:
    shutil.copytree(ROOT / "app", dst / "app", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _probe(app_root: Path, cache: Path, home: Path, generic: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env.update(PYTHONPATH=str(app_root), NUMBA_CACHE_DIR=str(cache), MIA_ELITE_HOME=str(home))
    if generic:
        env["NUMBA_CPU_NAME"] = "generic"
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300,
                         env=env, cwd=str(home.parent))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_generic_cache_loads_from_another_install_path_and_folder(tmp_path):
    build = _copy_app(tmp_path / "build-machine")
    user = _copy_app(tmp_path / "user machine" / "Program Files" / "MIA Elite")
    home = tmp_path / "home"
    home.mkdir()
    assert _probe(build, tmp_path / "built-cache", home, generic=True) == {"hits": 0, "misses": 1}
    assert [p.name for p in (tmp_path / "built-cache").iterdir()] == ["app-dtc"]  # named by package
    shipped = tmp_path / "user machine" / "cache"
    shutil.copytree(tmp_path / "built-cache", shipped)
    assert _probe(user, shipped, home, generic=True) == {"hits": 1, "misses": 0}  # loaded, not compiled
    assert _probe(user, shipped, home, generic=False) == {"hits": 0, "misses": 1}  # host-tuned: compiled
