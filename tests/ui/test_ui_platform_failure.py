"""A Qt platform plugin that cannot load leaves a readable line in the log (issue 16, item 1)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_platform_plugin_is_named_in_the_log_with_the_fix(tmp_path):
    env = dict(os.environ, MIA_ELITE_HOME=str(tmp_path), QT_QPA_PLATFORM="no-such-platform",
               PYTHONPATH=str(REPO))
    code = ("from app.logs import setup_logging, log_file; setup_logging(console=False); "
            "print(log_file(), flush=True); from app.ui.main import make_app; make_app()")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0  # Qt aborts: nothing the app can do about it
    log = Path(r.stdout.strip().splitlines()[0]).read_text(encoding="utf-8")
    assert "Qt stopped the program" in log and "no-such-platform" in log
    assert "apt install libegl1" in log and "libxcb-icccm4" in log and "libxcb-keysyms1" in log
