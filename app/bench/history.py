"""Benchmark of the whole-session heatmap history (``mia-elite bench history``).

Figures (one JSON line each, see :mod:`app.bench`):

* ``history.engine_rss``: resident memory of a fresh process holding a Production engine
  (250 ms columns, 400 rows, 15 min at full resolution, coarser tiers for 24 h) after a
  synthetic-length replay of real data: the shipped ES recording (its snapshot, then its live
  part looped with the times shifted, ``--hours`` of market time, 23 by default) fed straight
  into the engine (``AnalysisEngine.process``, analyzers included) at maximum speed. Baseline
  (same run, another fresh process): the old layout's memory, an engine keeping one hour at
  full resolution (``history_s=3600``, what the single ring held) after one hour of the same
  replay. Target: at most 400 MB.
* ``history.start_image_ms``: after that replay, with the engine on its worker thread, the
  wall time from asking for the history image of the session's first ten minutes (the
  heatmap widget scrolled there: :meth:`app.ui.heatmap.HeatmapWidget` asks the engine through
  ``request_history``) to the widget having drawn it (answer frame received, ``set_frame``,
  the widget rendered offscreen); best of 5. Target: under 100 ms.

* ``history.es_hour_rss``: resident memory of a fresh process after the shipped ES hour (the
  whole recording, its 22-hour pre-open stretch included) through a Production engine, stage
  by stage (:func:`es_hour_probe`: imports, recording, kernels, hour; the heatmap's and the
  book's arrays). Baseline: the same process with the engine's kernels loaded, before any
  market data. Target (issue 18 item 2): at most 200 MB. ``anon_mb``: the part of it not
  backed by a file (``RssAnon``; Windows: private bytes), the memory the process takes for
  itself; the rest is mapped files, mostly numba's LLVM library.

All run in a fresh interpreter (:func:`history_probe`, :func:`es_hour_probe`), so that the
figures are the engine's own, not this process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

NS = 1_000_000_000


def looped_es(hours: float, chunk: int = 4096):
    """The shipped ES recording stretched to ``hours`` of market time, in chunks.

    The snapshot (the records before the recording's one long gap) is moved to one second
    before the first live event; the live part is then repeated, each copy shifted by the live
    span plus one second, until ``hours`` are covered (the last copy cut there). Price-level
    events set absolute sizes, so a repeated copy rebuilds the same levels.

    Parameters
    ----------
    hours : float
        Market time to cover, hours (> 0).
    chunk : int
        Events per yielded batch (cut at exchange batch ends nearest to it).

    Yields
    ------
    np.ndarray
        EVENT_DTYPE batches in time order.

    Raises
    ------
    ValueError
        If ``hours`` is not positive.
    """
    import numpy as np

    from app.feeds.samples import load_default_sample

    if not hours > 0:
        raise ValueError(f"looped_es: hours must be > 0, got {hours}")
    ev = load_default_sample().events
    gaps = np.flatnonzero(np.diff(ev["ts"]) > 3600 * NS)
    k = int(gaps[0]) + 1 if gaps.size else 0
    snap, live = ev[:k].copy(), ev[k:]
    t_first = int(live["ts"][0])
    snap["ts"] = t_first - NS
    period = int(live["ts"][-1]) - t_first + NS
    end = t_first + int(hours * 3600 * NS)
    yield snap
    shift = 0
    while t_first + shift < end:
        part = live.copy()
        part["ts"] += shift
        part = part[part["ts"] < end]
        for i in range(0, len(part), chunk):
            yield part[i : i + chunk]
        shift += period


def history_probe(hours: float, history_s: float = 900.0, draw: bool = True) -> None:
    """Child-process body: replay ``hours`` through a Production engine, print one JSON line.

    Prints ``{"rss", "before", "hours", "events", "feed_s", "model_bytes", "image_ms", ...}``
    (bytes, seconds, milliseconds); ``image_ms`` only with ``draw`` (imports Qt, offscreen,
    after the memory figure was taken).

    Raises
    ------
    ImportError
        Without ``psutil``.
    """
    import threading

    import psutil

    from app.core.events import Instrument
    from app.live.engine import AnalysisEngine

    proc = psutil.Process()
    before = proc.memory_info().rss
    eng = AnalysisEngine(Instrument("ESH4", 0.25, 12.5), "production", history_s=history_s)
    eng.warm_up()
    n = 0
    t0 = time.perf_counter()
    for b in looped_es(hours):
        eng.process(b)
        n += len(b)
    eng.finish()
    eng.snapshot_frame()
    feed_s = time.perf_counter() - t0
    rss = proc.memory_info().rss
    m = eng.model
    out = {"rss": rss, "before": before, "hours": hours, "events": n, "feed_s": round(feed_s, 2),
           "model_bytes": int(m.ring.nbytes + m.store.nbytes + m.history.nbytes),
           "tiers": m.history.levels, "history_s": history_s}
    if draw:
        out["image_ms"] = _image_ms(eng, threading)
    print(json.dumps(out))


def es_hour_probe() -> None:
    """Child-process body of ``history.es_hour_rss``: the shipped ES hour through a Production
    engine (``AnalysisEngine(..., "production")``, analyzers included), one JSON line.

    Prints resident memory in bytes at each stage: ``start`` (interpreter, numpy, psutil),
    ``imports`` (the engine's modules and numba), ``recording`` (the sample read),
    ``kernels`` (the engine built and its kernels loaded: numba's CPU target set up), ``rss``
    (after the whole recording and a frame), and the engine's own arrays: ``heatmap_bytes``
    (ring + column store + tiered history), ``book_bytes`` (the tick-grid book and its
    per-column side arrays).

    Raises
    ------
    ImportError
        Without ``psutil``.
    """
    import psutil

    proc = psutil.Process()
    out = {"start": proc.memory_info().rss}
    from app.core.events import chunks
    from app.core.jit import CACHE_DIR  # noqa: F401  (numba, as the engine imports it)
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    out["imports"] = proc.memory_info().rss
    rec = load_default_sample()
    out["recording"] = proc.memory_info().rss
    eng = AnalysisEngine(rec.instrument, "production")
    eng.warm_up()
    out["kernels"] = proc.memory_info().rss
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish()
    eng.snapshot_frame()
    out["rss"] = proc.memory_info().rss
    out["anon"] = _anon_bytes(proc)
    m = eng.model
    out["heatmap_bytes"] = int(m.ring.nbytes + m.store.nbytes + m.history.nbytes)
    out["book_bytes"] = int(sum(getattr(m, k).nbytes for k in ("book", "hbid", "hask", "tbuy", "tsell")
                                if hasattr(getattr(m, k, None), "nbytes")))
    out["events"] = int(len(rec.events))
    out["modules"] = len(__import__("sys").modules)
    print(json.dumps(out))


def _anon_bytes(proc) -> int | None:
    """Private memory of the process, bytes: the resident pages not backed by a file (Linux
    ``RssAnon``), or the private commit on Windows (psutil ``private``); None elsewhere. The
    rest of RSS is mapped files (numba's LLVM library is most of it), which the system can drop
    and read again under pressure."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return getattr(proc.memory_info(), "private", None)


def bench_es_hour_rss(args):
    """Engine RSS after the shipped ES hour at Production settings, stage by stage."""
    cmd = [sys.executable, "-c", "from app.bench.history import es_hour_probe; es_hour_probe()"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=dict(os.environ))
    if p.returncode != 0:
        raise RuntimeError(f"child failed ({p.returncode}): {p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    mb = 1024 * 1024
    yield {"name": "history.es_hour_rss", "value": round(r["rss"] / mb, 1), "unit": "MB",
           "baseline": round(r["kernels"] / mb, 1), "ratio": round(r["rss"] / r["kernels"], 2),
           "target": "<= 200", "start_mb": round(r["start"] / mb, 1), "imports_mb": round(r["imports"] / mb, 1),
           "recording_mb": round(r["recording"] / mb, 1), "kernels_mb": round(r["kernels"] / mb, 1),
           "anon_mb": round(r["anon"] / mb, 1) if r.get("anon") else None,
           "heatmap_mb": round(r["heatmap_bytes"] / mb, 1), "book_mb": round(r["book_bytes"] / mb, 1),
           "events": r["events"], "modules": r["modules"],
           "note": "baseline = the same process with the engine built and its kernels loaded, before any "
                   "market data (MB = MiB)"}


def _image_ms(eng, threading) -> list:
    """Milliseconds from scrolling the widget to the session's start to the image drawn."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.ui.heatmap import HeatmapWidget
    from app.ui.main import make_app

    app = make_app()  # the window's QApplication (Qt is imported under app/ui only)
    got = threading.Event()
    box = {}

    def on_frame(f):
        box["f"] = f
        got.set()

    eng.on_frame = on_frame
    eng.start()
    while eng.state == "compiling":  # bounded poll of a worker attribute (warm cache)
        time.sleep(0.005)
    w = HeatmapWidget()
    w.resize(1600, 700)
    w.show()
    w.history_source = eng.request_history
    got.wait(5.0)
    w.set_frame(box["f"])
    app.processEvents()
    start = box["f"].history_start_ns / NS
    w.follow(False)  # as a mouse pan does
    times = []
    for rep in range(5):
        got.clear()
        # scrolled to the start: a new request each time (the widget forgets the last answer)
        span = 600.0 + 60.0 * rep
        w.clear_history()
        t0 = time.perf_counter()
        w.vb.setRange(xRange=(start, start + span), padding=0)
        rid = w.history_request_id
        if rid is None:
            raise RuntimeError("the widget asked for no history image")
        while True:
            if not got.wait(5.0):
                raise TimeoutError("no frame answered the history request within 5 s")
            f = box["f"]
            got.clear()
            if f.history is not None and f.history.request == rid:
                break
        w.set_frame(f)
        w.repaint()
        app.processEvents()
        times.append(round((time.perf_counter() - t0) * 1e3, 2))
        assert w.history_drawn == rid, "the widget did not draw the answer"
    eng.stop()
    w.close()
    return times


def _run_probe(hours: float, history_s: float, draw: bool, timeout: float = 3600.0) -> dict:
    cmd = [sys.executable, "-c",
           f"from app.bench.history import history_probe; history_probe({hours!r}, {history_s!r}, {draw!r})"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_history(args):
    """Engine RSS after a synthetic-length session, and the time to draw its start."""
    hours = float(getattr(args, "hours", None) or 23.0)
    if getattr(args, "quick", False) and getattr(args, "hours", None) is None:
        hours = 1.0
    base = _run_probe(min(hours, 1.0), 3600.0, False)
    r = _run_probe(hours, 900.0, True)
    mb = 1024 * 1024
    yield {"name": "history.engine_rss", "value": round(r["rss"] / mb, 1), "unit": "MB",
           "baseline": round(base["rss"] / mb, 1), "ratio": round(r["rss"] / base["rss"], 2),
           "target": "<= 400", "hours": hours, "events": r["events"], "feed_s": r["feed_s"],
           "heatmap_mb": round(r["model_bytes"] / mb, 1), "tiers": r["tiers"],
           "baseline_hours": base["hours"], "baseline_heatmap_mb": round(base["model_bytes"] / mb, 1),
           "note": "baseline = the old layout's hour at full resolution (history_s=3600) after one hour"}
    ms = r["image_ms"]
    yield {"name": "history.start_image_ms", "value": min(ms), "unit": "ms", "baseline": None,
           "ratio": None, "target": "< 100", "all_ms": ms, "hours": hours,
           "note": "scroll to the session's first 10 minutes: request through the engine thread, answer frame, draw"}


BENCHMARKS = {"history": bench_history, "history.es_hour_rss": bench_es_hour_rss}
