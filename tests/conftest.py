"""Shared pytest set-up: offscreen Qt, an isolated user home, and the real data folder."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One numba cache for the whole run (the per-test MIA_ELITE_HOME would otherwise give every
# test process a cold compile of the kernels).
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "mia-elite-test-numba"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _gc_on_the_main_thread():
    """Reference cycles are collected on the main (GUI) thread, after each test, never by a
    worker thread in the middle of one.

    The window does the same (:func:`app.ui.main.install_gui_thread_gc`): a Qt object left in a
    cycle by one test and collected later by an engine or server thread of another is destroyed
    off the GUI thread, which Qt does not allow (the suite died with a segmentation fault and no
    Python traceback in the GUI tests, at a different test each time).
    """
    gc.disable()
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own MIA_ELITE_HOME (settings, journal, logs); numba's cache is shared."""
    home = tmp_path_factory.mktemp("mia-home")
    monkeypatch.setenv("MIA_ELITE_HOME", str(home))
    yield home


def _shared(sub: str) -> Path:
    """``../shared/<sub>`` beside the repository (or under ``$MIA_ELITE_SHARED`` when set: a git
    worktree elsewhere, e.g. ``MIA_ELITE_SHARED=/path/to/shared``).

    When it is missing, the test is skipped with the reason, except under ``CI=true``, where a
    missing ``../shared`` fails the run (CI checks out ``../shared`` beside the repo; a silent skip
    there would hide every real-data test).
    """
    base = os.environ.get("MIA_ELITE_SHARED", "")
    path = (Path(base) if base else ROOT.parent / "shared") / sub
    if not path.is_dir():
        msg = f"{path} not found: check out ../shared beside the repository to run the real-data tests"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: its absence fails the run)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the real recorded market data (skip, or fail under ``CI=true``, when missing)."""
    return _shared("data")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``: the DTC protocol notes and struct offsets (skip, or fail under ``CI=true``)."""
    return _shared("reference")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return ROOT
