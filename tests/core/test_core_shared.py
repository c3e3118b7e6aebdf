"""Tests that need ../shared skip with a reason when it is absent, and fail under CI=true."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
def test_needs_real_data(shared_data):
    assert shared_data.is_dir()
"""


@pytest.mark.parametrize("ci,expect", [("", "1 skipped"), ("true", "1 error")])
def test_missing_shared_folder_skips_locally_and_fails_under_ci(tmp_path, repo_root, ci, expect):
    tree = tmp_path / "clone" / "tests"  # tmp_path/clone has no ../shared beside it
    tree.mkdir(parents=True)
    shutil.copy(repo_root / "tests" / "conftest.py", tree / "conftest.py")
    (tree / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, CI=ci, PYTHONPATH=str(repo_root))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tree)],
                       cwd=tree.parent, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert expect in out, out
    assert "check out ../shared beside the repository" in out, out
    assert not (Path(tree.parent.parent) / "shared").exists()
