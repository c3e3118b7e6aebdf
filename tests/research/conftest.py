"""Shared fixtures of the research tests: the shipped real ES hour, as sessions and as one run."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def es_sessions():
    """The shipped ES sample (2023-12-25 23:00-24:00 UTC) cut into trading sessions (one)."""
    from app.research.evaluate import load_path, split_sessions
    from pathlib import Path

    return split_sessions(load_path(Path("default")))


@pytest.fixture(scope="session")
def es_production_run(es_sessions):
    """One engine run of the production profile over the ES session (a RunResult)."""
    from app.research.evaluate import Job, run_session

    return run_session(Job(es_sessions[0], "production"))
