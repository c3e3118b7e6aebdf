"""What handing the pair's relation to the analyzers costs (issue 17 item 5), through the runtime.

``python -m app.bench.relation_features [--data DIR] [--repeat N] [--profile P]`` replays the
BTCUSDT and ETHUSDT captures of 2024-08-08 through :class:`~app.live.instruments.InstrumentsRuntime`
(the built-in server at maximum speed, loopback DTC, one engine thread per instrument), in the
same run with the relation rows handed to both engines (``relation_features=True``, the
default: one control message per closed second in each engine's queue) and without
(``relation_features=False``, the baseline), alternating, ``N`` times each. It prints per
instrument frames/s and p50 / p99 batch-to-frame (socket read to published frame, ms), and the
wall time of the replay. The machine is shared: compare the two rows of one repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import numpy as np


async def _run(recs, profile: str, features: bool) -> dict:
    from app.live.instruments import InstrumentsRuntime
    from app.live.pipeline import PipelineConfig

    cfg = PipelineConfig(embedded=True, recording=list(recs), speed=0.0, profile=profile)
    rt = InstrumentsRuntime(cfg, record_latency=True, relation_features=features)
    await rt.start()
    t0 = time.perf_counter()
    src = rt.instruments[0].pipeline.source
    t_end = time.monotonic() + 600
    while not (src.replay_finished and all(r.engine.backlog == 0 for r in rt.instruments)) \
            and time.monotonic() < t_end:
        rt.poll()
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "rows": int(sum(len(r) for r in rt.relation_rows))}
    for r in rt.instruments:
        lat = r.pipeline.latency.latencies_ms()[1]
        ana = r.engine.analyzers
        out[r.symbol] = {"fps": r.pipeline.slot.published / wall,
                         "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                         "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                         "has_row": getattr(ana, "relation_row", None) is not None}
    await rt.stop()
    return out


def main(argv=None) -> int:
    """Print the table (see the module docstring); returns 0."""
    p = argparse.ArgumentParser(prog="python -m app.bench.relation_features")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--profile", default="production")
    a = p.parse_args(argv)
    from app.feeds.binance import read_binance_gz

    recs = [read_binance_gz(str(Path(a.data) / "crypto" / f)) for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")]
    print("relation rows to the analyzers (real runtime, BTCUSDT + ETHUSDT, built-in server at maximum speed)")
    for k in range(a.repeat):
        for features in (False, True) if k % 2 == 0 else (True, False):
            r = asyncio.run(_run(recs, a.profile, features))
            name = "features" if features else "baseline"
            cells = "  ".join(f"{sym} {r[sym]['fps']:5.1f} frames/s p50 {r[sym]['p50_ms']:6.1f} p99 {r[sym]['p99_ms']:7.1f} ms"
                              f"{' (row in force)' if r[sym]['has_row'] else ''}"
                              for sym in ("BTCUSDT", "ETHUSDT"))
            print(f"  {k + 1} {name:8s} wall {r['wall_s']:6.2f} s  {r['rows']} rows  {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
