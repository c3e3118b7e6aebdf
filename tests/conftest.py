"""Shared pytest set-up: offscreen Qt, an isolated user home, and the real data folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One numba cache for the whole run (the per-test MIA_ELITE_HOME would otherwise give every
# test process a cold compile of the kernels).
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "mia-elite-test-numba"))

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own MIA_ELITE_HOME (settings, journal, logs); numba's cache is shared."""
    home = tmp_path_factory.mktemp("mia-home")
    monkeypatch.setenv("MIA_ELITE_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the real recorded market data (fails clearly when it is missing)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found: {SHARED_DATA} (check out ../shared beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return ROOT
