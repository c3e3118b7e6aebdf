"""Shared fixtures of the research tests: the shipped real ES hour, as sessions and as one run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def es_sessions():
    """The shipped ES sample (2023-12-25 23:00-24:00 UTC) cut into trading sessions (one)."""
    from app.research.evaluate import load_path, split_sessions

    return split_sessions(load_path(Path("default")))


@pytest.fixture(scope="session")
def es_snapshot_dir(tmp_path_factory):
    """Folder of the candidate snapshots written by :func:`es_production_run`."""
    return tmp_path_factory.mktemp("snapshots")


@pytest.fixture(scope="session")
def es_production_run(es_sessions, es_snapshot_dir):
    """One engine run of the production profile over the ES session (a RunResult), writing its
    candidate snapshots to ``es_snapshot_dir``."""
    from app.research.evaluate import Job, run_session

    return run_session(Job(es_sessions[0], "production", (), str(es_snapshot_dir)))
