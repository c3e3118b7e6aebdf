"""Several instruments: worker model and isolation figures (issue 17 item 2), headless.

``python -m app.bench.instruments [--data DIR] [--repeat N]`` prints two tables:

1. **Worker model**: the BTCUSDT and ETHUSDT captures (same minutes) merged on their market
   times, cut into batches of :data:`BATCH` events and fed as fast as the analysis takes them
   (a producer that holds while more than ``Pipeline.FLOW_HIGH`` batches wait: the pipeline's
   replay flow control) to (a) one :class:`~app.live.engine.AnalysisEngine` thread per
   instrument, (b) the same threads taking turns (``AnalysisEngine(step_lock=...)``: one shared
   lock held while a batch is applied or a frame built), (c) one shared worker thread that runs
   both engines (``process`` and ``snapshot_frame`` at the publish interval, at once on a
   signal). Figures: wall seconds,
   frames/s per instrument, p99 batch-to-frame ms per instrument.
2. **Isolation**: the real runtime (:class:`~app.live.instruments.InstrumentsRuntime`: the
   built-in server at maximum speed, loopback DTC) with BTCUSDT alone and with ETHUSDT beside
   it (free threads, then taking turns): BTCUSDT's frames/s and p99 batch-to-frame (socket read
   to published frame), ms.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import threading
import time
from pathlib import Path

import numpy as np

from app.core.events import KIND_DEPTH

#: Events per fed batch in the worker-model table (about a DTC server batch).
BATCH = 500
FLOW_HIGH = 4


def _merged_batches(recs) -> list[tuple[int, np.ndarray]]:
    """(instrument index, batch) in market-time order over every recording."""
    out = []
    for k, r in enumerate(recs):
        ev = r.events
        for i in range(0, len(ev), BATCH):
            b = ev[i:i + BATCH]
            out.append((int(b["ts"][-1]), k, b))
    out.sort(key=lambda x: (x[0], x[1]))
    return [(k, b) for _, k, b in out]


class _Marks:
    """Arrival of each depth batch and publish of each frame, per instrument (ns)."""

    def __init__(self, n: int):
        from app.live.pipeline import LatencyTracker

        self.trackers = [LatencyTracker() for _ in range(n)]
        for t in self.trackers:
            t.enabled = True
        self.frames = [0] * n
        self.lock = threading.Lock()

    def arrived(self, k: int, b: np.ndarray) -> None:
        self.trackers[k].arrived(len(b), bool((b["kind"] == KIND_DEPTH).any()), time.perf_counter_ns())

    def frame(self, k: int, f) -> None:
        with self.lock:
            self.frames[k] += 1
            self.trackers[k].frame_published(int(f.events_total), time.perf_counter_ns())

    def p99(self, k: int) -> float:
        lat = self.trackers[k].latencies_ms()[1]
        return float(np.percentile(lat, 99)) if len(lat) else float("nan")


def worker_model(recs, mode: str, profile: str = "production") -> dict:
    """Feed the merged recordings to engine threads (``mode="threads"``) or one shared worker
    (``mode="shared"``); returns wall s, frames/s and p99 batch-to-frame ms per instrument."""
    from app.live.engine import AnalysisEngine

    n = len(recs)
    marks = _Marks(n)
    batches = _merged_batches(recs)
    total = [int(len(r.events)) for r in recs]
    if mode in ("threads", "turns"):
        lock = threading.Lock() if mode == "turns" else None
        engines = [AnalysisEngine(r.instrument, profile, on_frame=lambda f, k=k: marks.frame(k, f), step_lock=lock)
                   for k, r in enumerate(recs)]
        for e in engines:
            e.start()
        while any(e.state == "compiling" for e in engines):
            time.sleep(0.01)
        t0 = time.perf_counter()
        for k, b in batches:
            while sum(e.backlog for e in engines) > FLOW_HIGH:
                time.sleep(0.0005)
            marks.arrived(k, b)
            engines[k].submit(b)
        while any(e.events_applied < total[k] for k, e in enumerate(engines)):
            time.sleep(0.001)
        wall = time.perf_counter() - t0
        for e in engines:
            e.stop()
    else:
        engines = [AnalysisEngine(r.instrument, profile) for r in recs]
        for e in engines:
            e.warm_up()
        q: queue.SimpleQueue = queue.SimpleQueue()
        interval = engines[0].publish_interval_s
        done = threading.Event()

        def run():
            last = [0.0] * n
            nsig = [0] * n
            while True:
                item = q.get()
                if item is None:
                    break
                k, b = item
                e = engines[k]
                e.process(b)
                now = time.perf_counter()
                if len(e.all_signals) > nsig[k] or now - last[k] >= interval:
                    nsig[k] = len(e.all_signals)
                    last[k] = now
                    marks.frame(k, e.snapshot_frame())
            for k, e in enumerate(engines):
                marks.frame(k, e.snapshot_frame())
            done.set()

        th = threading.Thread(target=run, name="mia-analysis-shared", daemon=True)
        th.start()
        t0 = time.perf_counter()
        for k, b in batches:
            while q.qsize() > FLOW_HIGH:
                time.sleep(0.0005)
            marks.arrived(k, b)
            q.put((k, b))
        q.put(None)
        done.wait()
        wall = time.perf_counter() - t0
    return {"mode": mode, "wall_s": wall,
            "fps": [marks.frames[k] / wall for k in range(n)],
            "p99_ms": [marks.p99(k) for k in range(n)]}


async def _isolation_run(recs, profile: str, take_turns: bool = False) -> dict:
    from app.live.instruments import InstrumentsRuntime
    from app.live.pipeline import PipelineConfig

    cfg = PipelineConfig(embedded=True, recording=list(recs), speed=0.0, profile=profile)
    rt = InstrumentsRuntime(cfg, record_latency=True, take_turns=take_turns)
    await rt.start()
    t0 = time.perf_counter()
    src = rt.instruments[0].pipeline.source
    t_end = time.monotonic() + 600
    while not (src.replay_finished and all(r.engine.backlog == 0 for r in rt.instruments)) \
            and time.monotonic() < t_end:
        rt.poll()
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    out = {}
    for r in rt.instruments:
        lat = r.pipeline.latency.latencies_ms()[1]
        out[r.symbol] = {"fps": r.pipeline.slot.published / wall, "frames": r.pipeline.slot.published,
                         "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                         "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan")}
    out["wall_s"] = wall
    await rt.stop()
    return out


def isolation(recs, profile: str = "production") -> dict:
    """BTCUSDT alone and with ETHUSDT through the real runtime (free threads, the default), and
    the pair with the threads taking turns: ``{"alone": ..., "pair": ..., "pair_turns": ...}``."""
    return {"alone": asyncio.run(_isolation_run(recs[:1], profile)),
            "pair": asyncio.run(_isolation_run(recs, profile)),
            "pair_turns": asyncio.run(_isolation_run(recs, profile, take_turns=True))}


def main(argv=None) -> int:
    """Print both tables (see the module docstring); returns 0."""
    p = argparse.ArgumentParser(prog="python -m app.bench.instruments")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--profile", default="production")
    a = p.parse_args(argv)
    from app.feeds.binance import read_binance_gz

    recs = [read_binance_gz(str(Path(a.data) / "crypto" / f)) for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")]
    print("worker model (BTCUSDT + ETHUSDT, headless, fed as fast as analysed)")
    for _ in range(a.repeat):
        for mode in ("threads", "turns", "shared"):
            r = worker_model(recs, mode, a.profile)
            print(f"  {mode:8s} wall {r['wall_s']:6.2f} s  frames/s {r['fps'][0]:6.1f} / {r['fps'][1]:6.1f}  "
                  f"p99 batch-to-frame {r['p99_ms'][0]:7.1f} / {r['p99_ms'][1]:7.1f} ms")
    print("isolation (real runtime, built-in server at maximum speed): BTCUSDT")
    for _ in range(a.repeat):
        r = isolation(recs, a.profile)
        for name in ("alone", "pair", "pair_turns"):
            b = r[name]["BTCUSDT"]
            print(f"  {name:10s} wall {r[name]['wall_s']:6.2f} s  frames/s {b['fps']:6.1f}  "
                  f"p50 {b['p50_ms']:6.1f} ms  p99 batch-to-frame {b['p99_ms']:7.1f} ms")
        e = r["pair"]["ETHUSDT"]
        print(f"  (ETHUSDT beside it: frames/s {e['fps']:6.1f}, p99 {e['p99_ms']:7.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
