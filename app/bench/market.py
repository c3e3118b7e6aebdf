"""Benchmarks of the market model and the engine (``mia-elite bench market``).

Figures (one JSON line each, see :mod:`app.bench`):

* ``market.book_ring.es``: real ES events (the shipped CME hour after its snapshot) through
  the book and the heatmap ring at the finest profile interval (Scalping: 100 ms columns,
  400 rows), numba kernel vs the plain NumPy/Python twin (:mod:`app.market.kernels_ref`, through
  ``MarketModel(use_numba=False)``) in the same run; ``...es_250ms`` the
  same with Production's 250 ms columns. On this quiet hour (18 events per second of market
  time) closing the 36,000 columns costs more than the events. Also cut at every exchange
  batch end (``...es_batched``: one ``apply()`` per batch, the Python call overhead per batch
  dominates; the engine joins queued batches) and the real Binance BTCUSDT capture (``...btc``).
* ``market.engine_rss``: resident memory of a fresh process holding an engine (Scalping,
  100 ms columns, the engine's history: 15 min at full resolution, coarser tiers beyond) after
  the real ES hour went through it with the analyzers;
  baseline = the same process before the engine was built. ``rss_worst_mb``: the same after
  every page of the hot ring's traded-volume planes was written (a trade in every column).
* ``market.engine_start``: seconds from a fresh process's ``AnalysisEngine.start()`` to
  ``state == "running"`` with the warm numba cache; baseline = the same with an empty cache
  folder (the cold compile time).

The two engine figures run :func:`engine_rss_probe` / :func:`engine_start_probe` in a fresh
interpreter (``python -c "from app.bench.market import ...; ...()"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time


def _es():
    from app.feeds.samples import load_default_sample

    return load_default_sample()


def _btc():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crypto" / "btcusdt_20240808.gz"
    if not path.exists():
        return None
    try:
        from app.feeds.binance import read_binance_gz
    except ImportError:
        return None
    return read_binance_gz(path)


def _cuts(ev, every=1):
    import numpy as np

    from app.core.events import FLAG_BATCH_END

    ends = np.flatnonzero(ev["flags"] & FLAG_BATCH_END) + 1
    return [c for c in np.split(ev, ends[::every]) if len(c)]


def _time_model(rec, pieces, use_numba, reps, prime, column_ns=100_000_000):
    """Best-of-``reps`` seconds to apply ``pieces`` to a fresh model primed with ``prime``."""
    from app.market.model import MarketModel

    best = float("inf")
    for _ in range(reps):
        m = MarketModel(rec.instrument, rows=400, column_ns=column_ns, use_numba=use_numba)
        m.apply(prime)
        t0 = time.perf_counter()
        for p in pieces:
            m.apply(p)
        best = min(best, time.perf_counter() - t0)
    return best


def _fig(name, value, unit, baseline, target, **extra):
    ratio = (value / baseline) if baseline else None
    d = {"name": name, "value": round(value, 3), "unit": unit,
         "baseline": None if baseline is None else round(baseline, 3),
         "ratio": None if ratio is None else round(ratio, 2), "target": target}
    d.update(extra)
    return d


def bench_book_ring(args):
    """Events/s through book + heatmap ring, numba vs twin (see the module docstring)."""
    import numpy as np

    from app.market.model import MarketModel

    reps = 1 if getattr(args, "quick", False) else 3
    rec = _es()
    ev = rec.events
    # compile / load the kernels outside the timing
    MarketModel(rec.instrument, rows=20, column_ns=100_000_000, history_s=10, window_cols=10).apply(ev[:10])
    snap_end = int(np.flatnonzero(ev["flags"] & 2)[-1]) + 2  # snapshot + the first event after it
    prime, hour = ev[:snap_end], ev[snap_end:]
    n = len(hour)
    t_nb = _time_model(rec, [hour], True, reps, prime)
    t_py = _time_model(rec, [hour], False, 1, prime)
    yield _fig("market.book_ring.es", n / t_nb, "events/s", n / t_py, ">= 1,000,000",
               events=n, columns_ms=100, rows=400, note="whole hour in one batch (Scalping columns)")
    t_nb = _time_model(rec, [hour], True, reps, prime, 250_000_000)
    t_py = _time_model(rec, [hour], False, 1, prime, 250_000_000)
    yield _fig("market.book_ring.es_250ms", n / t_nb, "events/s", n / t_py, ">= 1,000,000",
               events=n, columns_ms=250, rows=400, note="whole hour in one batch (Production columns)")
    pieces = _cuts(hour)
    t_nb = _time_model(rec, pieces, True, reps, prime)
    t_py = _time_model(rec, pieces, False, 1, prime)
    yield _fig("market.book_ring.es_batched", n / t_nb, "events/s", n / t_py, ">= 1,000,000",
               events=n, batches=len(pieces), note="one apply() per exchange batch")
    btc = _btc()
    if btc is not None:
        bev = btc.events
        k = int(np.flatnonzero(bev["flags"] & 2)[-1]) + 2 if np.any(bev["flags"] & 2) else 1
        rest = bev[k:]
        t_nb = _time_model(btc, [rest], True, reps, bev[:k])
        t_py = _time_model(btc, [rest], False, 1, bev[:k])
        yield _fig("market.book_ring.btc", len(rest) / t_nb, "events/s", len(rest) / t_py, ">= 1,000,000",
                   events=len(rest))


def engine_rss_probe() -> None:
    """Child-process body of ``market.engine_rss``: print one JSON line of resident memory.

    Builds a Scalping engine on the shipped ES sample, runs the hour through it with the
    analyzers and prints ``{"rss", "rss_worst", "before", ...}`` (bytes): ``before`` ahead of
    building the engine, ``rss`` after the hour, ``rss_worst`` after every page of the
    traded-volume ring was written. Run in a fresh process (:func:`bench_engine_rss`).

    Raises
    ------
    ImportError
        Without ``psutil``.
    """
    import psutil

    from app.core.events import chunks
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    proc = psutil.Process()
    rec = load_default_sample()
    before = proc.memory_info().rss
    eng = AnalysisEngine(rec.instrument, "scalping")
    eng.warm_up()
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish()
    eng.snapshot_frame()
    m = eng.model
    rss = proc.memory_info().rss
    for a in (m.tbuy, m.tsell):  # worst case: a trade in every column (every page written)
        a[:, 0] += 0.0
    print(json.dumps({"rss": rss, "rss_worst": proc.memory_info().rss, "before": before,
                      "history_cols": m.history_cols, "rows": m.rows, "ring_bytes": int(m.hbid.nbytes * 4),
                      "cols_done": int(m.S[15]), "steps": eng.steps}))


def engine_start_probe(timeout_s: float = 600.0) -> None:
    """Child-process body of ``market.engine_start``: print one JSON line of start-up seconds.

    From this call (the child has imported only this module: numpy and the app come after the
    clock starts) to the engine's ``state == "running"``: ``start_s``, ``construct_s`` (the
    engine built) and ``compile_s`` (the engine's own compile or cache-load figure), seconds.
    The numba cache is the one of ``$NUMBA_CACHE_DIR`` (warm or an empty folder).

    Parameters
    ----------
    timeout_s : float
        Longest wait for the compile, seconds.

    Raises
    ------
    TimeoutError
        If the engine still compiles after ``timeout_s``.
    """
    t0 = time.perf_counter()
    from app.core.events import Instrument
    from app.live.engine import AnalysisEngine

    eng = AnalysisEngine(Instrument("ES", 0.25, 12.5), "scalping")
    t1 = time.perf_counter()
    eng.start()
    while eng.state == "compiling":  # bounded poll of a worker-thread attribute
        if time.perf_counter() - t1 > timeout_s:
            eng.stop()
            raise TimeoutError(f"engine still compiling after {timeout_s:.0f} s")
        time.sleep(0.005)
    t2 = time.perf_counter()
    ok = eng.stop()
    print(json.dumps({"start_s": t2 - t0, "construct_s": t1 - t0, "compile_s": eng.compile_seconds,
                      "state": eng.state, "stopped": ok}))


def _run_probe(probe: str, env=None, timeout=600):
    """Run ``app.bench.market.<probe>()`` in a fresh interpreter; return its last JSON line."""
    e = dict(os.environ)
    if env:
        e.update(env)
    cmd = [sys.executable, "-c", f"from app.bench.market import {probe}; {probe}()"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_engine_rss(args):
    """Resident memory after the ES hour at 100 ms columns (fresh process)."""
    r = _run_probe("engine_rss_probe")
    mb = 1024 * 1024
    yield _fig("market.engine_rss", r["rss"] / mb, "MB", r["before"] / mb, "<= 400",
               rss_worst_mb=round(r["rss_worst"] / mb, 1),
               history_cols=r["history_cols"], rows=r["rows"], ring_mb=round(r["ring_bytes"] / mb, 1),
               columns_written=r["cols_done"], steps=r["steps"],
               note="baseline = the same process before the engine was built")


def bench_engine_start(args):
    """Engine start with a warm numba cache vs cold (empty cache folder)."""
    from app.core.jit import CACHE_DIR

    warm_env = {"NUMBA_CACHE_DIR": str(CACHE_DIR)}
    _run_probe("engine_start_probe", warm_env)  # make sure the cache is filled
    reps = 1 if getattr(args, "quick", False) else 3
    warm = min((_run_probe("engine_start_probe", warm_env) for _ in range(reps)), key=lambda r: r["start_s"])
    with tempfile.TemporaryDirectory(prefix="mia-numba-cold-") as d:
        cold = _run_probe("engine_start_probe", {"NUMBA_CACHE_DIR": d})
    yield _fig("market.engine_start", warm["start_s"], "s", cold["start_s"], "<= 2 s warm",
               warm_compile_s=round(warm["compile_s"], 3), cold_compile_s=round(cold["compile_s"], 3),
               note="baseline = cold start with an empty numba cache (the first compile)")


BENCHMARKS = {
    "market.book_ring": bench_book_ring,
    "market.engine_rss": bench_engine_rss,
    "market.engine_start": bench_engine_start,
}
