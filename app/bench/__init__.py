"""``mia-elite bench``: run the benchmarks and print one JSON line per figure.

Each area registers its benchmarks in a module listed in :data:`BENCH_MODULES`; a module
exposes ``BENCHMARKS: dict[str, Callable[[argparse.Namespace], Iterable[dict]]]``. Each yielded
dict is one figure: ``{"name": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": ...,
"target": ...}``; the baseline is a plain reference measured in the same run. Speed is never
asserted; it is printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

BENCH_MODULES = [
    "app.bench.dtc",
    "app.bench.dtc_server",
    "app.bench.market",
    "app.bench.analysis",
    "app.bench.feeds",
    "app.bench.trading",
    "app.bench.evaluate",
    "app.bench.peers",
    "app.bench.cpu",
    "app.bench.history",
    "app.ui.bench_gui",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("groups", nargs="*", help="benchmark names or prefixes to run (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for CI smoke runs)")
    p.add_argument("--list", action="store_true", help="list benchmark names and exit")
    p.add_argument("--symbols", default=None, metavar="N,N,...",
                   help="`bench gui`: the window with 1, 2 and/or 4 instruments at maximum speed in the split view "
                        "(1 = the ES hour, 2 = BTCUSDT + ETHUSDT, 4 = ES + BTCUSDT + ETHUSDT + ETHUSDT.2), "
                        "e.g. --symbols 1,2,4")
    p.add_argument("--replay-server", choices=("process", "thread"), default="process",
                   help="`bench gui`: the built-in replay server in its own process (default, as the window runs "
                        "it) or on a thread of the window's process (the earlier design, for a baseline)")
    p.add_argument("--hours", type=float, default=None,
                   help="market hours of the synthetic replay of `bench history` (default 23; 1 with --quick)")


def _collect():
    out = {}
    for mod in BENCH_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue  # that area has no benchmarks yet
            raise
        for name, fn in getattr(m, "BENCHMARKS", {}).items():
            out[name] = fn
    return out


def run(args: argparse.Namespace) -> int:
    benches = _collect()
    if args.list:
        for n in benches:
            print(n)
        return 0
    chosen = [n for n in benches if not args.groups or any(n.startswith(g) for g in args.groups)]
    if not chosen:
        print(f"no benchmark matches {args.groups}; known: {', '.join(benches)}", file=sys.stderr)
        return 2
    failed = 0
    for name in chosen:
        t0 = time.perf_counter()
        try:
            for fig in benches[name](args):
                fig.setdefault("bench", name)
                print(json.dumps(fig), flush=True)
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print(json.dumps({"bench": name, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        print(json.dumps({"bench": name, "wall_s": round(time.perf_counter() - t0, 3)}), file=sys.stderr)
    return 1 if failed else 0
