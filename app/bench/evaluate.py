"""Benchmark of ``mia-elite evaluate``: sessions per second on the real ES hour.

The shipped ES session (2023-12-25 23:00-24:00 UTC, 64k events) is run ``k`` times through
:func:`app.research.evaluate.run_session` (production profile, no snapshots): once in this
process one after another (the baseline), once in a process pool of the usable cores. Each
worker process loads the numba cache on its first session, which is part of the cost. The
figures are the engine's throughput: evaluate adds no work per event.
"""

from __future__ import annotations

import time
from pathlib import Path


def bench_evaluate(args):
    """Yield ``evaluate.sessions_per_s`` (parallel, baseline single-process) and the events/s."""
    from app.research.evaluate import Job, default_workers, load_path, run_jobs, run_session, split_sessions

    sess = split_sessions(load_path(Path("default")))[0]
    workers = default_workers(64)
    k = 2 if getattr(args, "quick", False) else max(4, 2 * workers)
    jobs = [Job(sess, "production") for _ in range(k)]
    run_session(jobs[0])  # compile / load the kernels in this process first
    t0 = time.perf_counter()
    run_jobs(jobs, 1, progress=False)
    single = k / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    run_jobs(jobs, workers, progress=False)
    par = k / (time.perf_counter() - t0)
    n_ev = int(sess.events.shape[0])
    yield {"name": "evaluate.sessions_per_s", "value": round(par, 4), "unit": "sessions/s",
           "baseline": round(single, 4), "ratio": round(par / single, 3), "target": None,
           "workers": workers, "sessions": k, "events_per_session": n_ev}
    yield {"name": "evaluate.events_per_s", "value": round(par * n_ev, 1), "unit": "events/s",
           "baseline": round(single * n_ev, 1), "ratio": round(par / single, 3), "target": None}


BENCHMARKS = {"evaluate": bench_evaluate}
