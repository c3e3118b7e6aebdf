"""Analyzer benchmarks for ``mia-elite bench analysis``: figures with a same-run baseline.

The input is real: the shipped ES sample hour (``app.feeds.samples``) replayed through the
market model with the Production profile; the views are taken from that replay (at its end for
the DOM figure, every few minutes for the frame figure). Speeds are printed, never asserted.

Figures (targets from issue 4; the seed system reported DOM 21,000/s and elite 5,700/s):

* ``analysis.dom_detectors``: all six DOM detectors on the current book (one call of
  :func:`app.analysis.dom.dom_scan`), analyses/s (target >= 200,000); baseline: its NumPy twin
  (:mod:`app.analysis.dom_ref`; every baseline here comes from the ``*_ref`` twin modules).
* ``analysis.dom_detectors_live``: the same kernel along the replay (each call sees the new
  columns, so the running window sums advance), timed around the kernel call only; baseline: the
  twin on every 50th step.
* ``analysis.frame_kernels``: a full frame of every family plus the elite score: DOM, order
  flow, advanced trades, Battle Navale and advanced bars kernels on the view, and the elite score
  of both sides (target >= 50,000/s); baseline: the same with the NumPy twins.
* ``analysis.analyzers_step``: :meth:`Analyzers.step` end to end in steady state (the last
  view again and again: DOM, VIX, order flow and advanced trade kernels every step, re-fire
  filter, elite gate; the bar families run only when a bar closes, as in the engine);
  baseline: the same facade on the NumPy twins.
* ``analysis.twin_ratio.<kernel>``: numba speed / NumPy-twin speed per hot kernel (target >= 10).
"""

from __future__ import annotations

import time

import numpy as np

SEED_DOM_PER_S = 21_000
SEED_ELITE_PER_S = 5_700
#: The instrument-relative DOM thresholds (app.analysis.dom.STAT_SLOTS order) that DomStats sets at
#: the end of the shipped ES hour with Production, so the kernel figures run every detector live.
ES_DOM_STATS = (72.0, 27.0, 2.24, 0.88, 0.4, 66.0)


_LAST_CPU: list = [0.0]


def _rate(fn, reps: int, rounds: int = 5) -> float:
    """Calls per second of ``fn()``: best of ``rounds`` timed loops of ``reps`` calls (wall clock).

    The CPU-time rate of the same best loop (``time.process_time``, which does not count time
    spent waiting for a core on a busy machine) is left in ``_LAST_CPU[0]``.
    """
    fn()  # warm (compile / cache load)
    best = float("inf")
    best_cpu = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        c0 = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    _LAST_CPU[0] = reps / best_cpu if best_cpu > 0 else float("inf")
    return reps / best if best > 0 else float("inf")


def _load() -> float:
    """1-minute load average (0 where unknown): the benchmarks share the machine."""
    try:
        import os

        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return 0.0


_CACHE: dict = {}


def _real_views(profile_name: str = "production"):
    """Replay the shipped ES hour; return (profile, instrument, views every ~5 min, last view, source)."""
    key = profile_name
    if key in _CACHE:
        return _CACHE[key]
    from app.analysis.analyzers import copy_view
    from app.config.profiles import load_profile
    from app.feeds.samples import load_default_sample
    from app.market.model import MarketModel

    p = load_profile(profile_name)
    rec = load_default_sample()
    m = MarketModel(rec.instrument, rows=p.get("engine.heatmap_rows"),
                    column_ns=p.get("engine.heatmap_column_ms") * 1_000_000,
                    bar_ns=p.get("engine.bar_seconds") * 1_000_000_000, window_cols=300)
    ev = rec.events
    ts = ev["ts"]
    step = 300 * 1_000_000_000
    views = []
    i = 0
    while i < len(ev):
        j = int(np.searchsorted(ts, (ts[i] // step + 1) * step, side="left"))
        m.apply(ev[i:j])
        i = j
        views.append(copy_view(m.view()))
    src = f"real {rec.instrument.symbol} hour (shipped sample), {len(ev)} events, {profile_name} profile"
    _CACHE[key] = (p, rec.instrument, views, views[-1], src)
    return _CACHE[key]


def _kernel_calls(p, v, numba_: bool):
    """Closures calling each hot kernel (numba or twin) on view ``v``."""
    from app.analysis import advanced as adv
    from app.analysis import advanced_ref, battle_navale_ref, dom_ref, orderflow_ref
    from app.analysis import battle_navale as bn
    from app.analysis import dom
    from app.analysis import orderflow as of

    dp = dom.dom_params(p.section("dom"), v.column_ns, stats=ES_DOM_STATS)
    bp = bn.bn_params(p.section("battle_navale"))
    ap = adv.adv_params(p.section("advanced"))
    t, b = v.trades, v.bars
    hb, ha, tb, tsl = v.hist_bid.T, v.hist_ask.T, v.traded_buy.T, v.traded_sell.T
    i = len(b) - 2
    o_dom, o_fl, o_at, o_bn, o_ab = np.zeros(dom.DOM_OUT_SHAPE), np.zeros(7), np.zeros((2, 5)), np.zeros(bn.BN_OUT_SHAPE), np.zeros((2, 5))
    f = (lambda a, b_: a) if numba_ else (lambda a, b_: b_)
    k_dom = f(dom.dom_scan, dom_ref.dom_scan_np)
    k_fl = f(of.flow_scan, orderflow_ref.flow_scan_np)
    k_at = f(adv.adv_trades_scan, advanced_ref.adv_trades_scan_np)
    k_bn = f(bn.bn_scan, battle_navale_ref.bn_scan_np)
    k_ab = f(adv.adv_bars_scan, advanced_ref.adv_bars_scan_np)
    bb, ba, base, now = int(v.best_bid), int(v.best_ask), int(v.base), int(v.ts)
    col0 = int(v.col_t0 // v.column_ns)
    sums, meta = dom.new_dom_state(v.rows)
    poc, vah, val = int(v.poc), int(v.vah), int(v.val)
    calls = {
        "dom_scan": lambda: k_dom(v.bid, v.ask, hb, ha, tb, tsl, bb, ba, base, col0, dp, sums, meta, o_dom),
        "flow_scan": lambda: k_fl(t, now - 60_000_000_000, 20.0, v.bid, v.ask, bb, ba, base, 10, o_fl),
        "adv_trades_scan": lambda: k_at(t, now, poc, vah, val, ap, o_at),
        "bn_scan": lambda: k_bn(b, v.fp_buy, v.fp_sell, base, i, bp, o_bn),
        "adv_bars_scan": lambda: k_ab(b, v.fp_buy, v.fp_sell, base, i, ap, o_ab),
    }
    return calls


def bench_dom(args):
    """All six DOM detectors on the current book: numba kernel vs its NumPy twin."""
    p, inst, views, v, src = _real_views()
    reps = 2_000 if args.quick else 20_000
    nb = _rate(_kernel_calls(p, v, True)["dom_scan"], reps)
    cpu = _LAST_CPU[0]
    npr = _rate(_kernel_calls(p, v, False)["dom_scan"], max(20, reps // 100))
    yield {"name": "analysis.dom_detectors", "value": round(nb), "unit": "analyses/s", "baseline": round(npr),
           "ratio": round(nb / npr, 1), "target": 200_000, "seed": SEED_DOM_PER_S,
           "vs_seed": round(nb / SEED_DOM_PER_S, 1), "cpu_time_per_s": round(cpu), "load": _load(), "input": src}


def bench_dom_live(args):
    """The DOM detectors along the replay itself: each call sees new columns (running sums advance),
    timed per call around the kernel only (the market model's work is not counted)."""
    from app.analysis import dom, dom_ref
    from app.config.profiles import load_profile
    from app.feeds.samples import load_default_sample
    from app.market.model import MarketModel

    p = load_profile("production")
    rec = load_default_sample()
    col_ns = p.get("engine.heatmap_column_ms") * 1_000_000
    m = MarketModel(rec.instrument, rows=p.get("engine.heatmap_rows"), column_ns=col_ns,
                    bar_ns=p.get("engine.bar_seconds") * 1_000_000_000, window_cols=300)
    dp = dom.dom_params(p.section("dom"), col_ns, stats=ES_DOM_STATS)
    sums, meta = dom.new_dom_state(m.rows)
    out = np.zeros(dom.DOM_OUT_SHAPE)
    ev, ts = rec.events, rec.events["ts"]
    step = p.get("engine.analysis_interval_ms") * 1_000_000
    limit = len(ev) // 4 if args.quick else len(ev)
    t_nb = t_np = 0.0
    n_nb = n_np = 0
    i = 0
    pc = time.perf_counter
    while i < limit:
        j = int(np.searchsorted(ts, (ts[i] // step + 1) * step, side="left"))
        m.apply(ev[i:j])
        i = j
        v = m.view()
        a = (v.bid, v.ask, v.hist_bid.T, v.hist_ask.T, v.traded_buy.T, v.traded_sell.T, int(v.best_bid),
             int(v.best_ask), int(v.base), int(v.col_t0 // col_ns), dp, sums, meta, out)
        t0 = pc()
        dom.dom_scan(*a)
        t_nb += pc() - t0
        n_nb += 1
        if n_nb % 50 == 0:
            t0 = pc()
            dom_ref.dom_scan_np(*a)
            t_np += pc() - t0
            n_np += 1
    nb = n_nb / t_nb if t_nb > 0 else 0.0
    npr = n_np / t_np if t_np > 0 else 0.0
    yield {"name": "analysis.dom_detectors_live", "value": round(nb), "unit": "analyses/s", "baseline": round(npr),
           "ratio": round(nb / npr, 1) if npr else None, "target": 200_000, "seed": SEED_DOM_PER_S,
           "calls": n_nb, "load": _load(),
           "input": f"real {rec.instrument.symbol} replay, production profile, one call per 250 ms step"}


def bench_frame(args):
    """Every family's kernels plus the elite score of both sides, on real views."""
    from app.analysis.elite import EliteGate
    from app.analysis.frame import PatternHit

    p, inst, views, v, src = _real_views()
    gate = EliteGate(p.section("elite"))
    from app.analysis.vix import VixAnalyzer
    from app.feeds.vix_history import load_vix_history

    vs = VixAnalyzer(load_vix_history(), p.section("vix")).state(v.ts)
    hits = [PatternHit("wall", "dom", v.ts, v.best_bid, 1, 0.6), PatternHit("iceberg", "dom", v.ts, v.best_ask, -1, 0.5),
            PatternHit("ladder", "dom", v.ts, v.best_bid, 1, 0.5)]

    def frame_fn(numba_):
        sets = [list(_kernel_calls(p, w, numba_).values()) for w in views[-4:]]
        state = {"k": 0}

        def run():
            calls = sets[state["k"] % len(sets)]
            state["k"] += 1
            for c in calls:
                c()
            gate.score_both(vs, hits, 0.1, 0.2, 0)
        return run

    reps = 1_000 if args.quick else 10_000
    nb = _rate(frame_fn(True), reps)
    cpu = _LAST_CPU[0]
    npr = _rate(frame_fn(False), max(10, reps // 100))
    yield {"name": "analysis.frame_kernels", "value": round(nb), "unit": "frames/s", "baseline": round(npr),
           "ratio": round(nb / npr, 1), "target": 50_000, "seed": SEED_ELITE_PER_S,
           "vs_seed": round(nb / SEED_ELITE_PER_S, 1), "cpu_time_per_s": round(cpu), "load": _load(), "input": src}


def bench_step(args):
    """Analyzers.step end to end on real views (numba facade vs NumPy-twin facade)."""
    from app.analysis.analyzers import Analyzers

    p, inst, views, v, src = _real_views()
    from app.feeds.vix_history import load_vix_history

    vh = load_vix_history()

    def step_fn(numba_):
        a = Analyzers(p, inst, vix_history=vh, use_numba=numba_)
        for w in views:  # bring the facade to the end of the hour (bars, transition state, signals)
            a.step(w)
        return lambda: a.step(v)  # steady state: the engine's step between two bar closes

    reps = 1_000 if args.quick else 10_000
    nb = _rate(step_fn(True), reps)
    cpu = _LAST_CPU[0]
    npr = _rate(step_fn(False), max(10, reps // 100))
    yield {"name": "analysis.analyzers_step", "value": round(nb), "unit": "steps/s", "baseline": round(npr),
           "ratio": round(nb / npr, 1), "target": 50_000, "seed": SEED_ELITE_PER_S, "cpu_time_per_s": round(cpu),
           "load": _load(), "input": src}


def bench_twins(args):
    """numba / NumPy twin speed ratio of each hot kernel on the real view (target >= 10x)."""
    from app.analysis import vix as V
    from app.analysis import vix_ref
    from app.feeds.vix_history import load_vix_history

    p, inst, views, v, src = _real_views()
    nbc, npc = _kernel_calls(p, v, True), _kernel_calls(p, v, False)
    reps = 1_000 if args.quick else 10_000
    for name in nbc:
        a = _rate(nbc[name], reps)
        b = _rate(npc[name], max(20, reps // 50))
        yield {"name": f"analysis.twin_ratio.{name}", "value": round(a / b, 1), "unit": "x",
               "baseline": 1.0, "ratio": round(a / b, 1), "target": 10, "numba_per_s": round(a),
               "numpy_per_s": round(b), "input": src}
    h = load_vix_history()
    sec = p.section("vix")
    prm, bands = V.vix_params(sec), np.asarray(sec["bands"])
    a = _rate(lambda: V.vix_series(h.close, h.vix3m, bands, prm), 3 if args.quick else 20)
    b = _rate(lambda: vix_ref.vix_series_np(h.close, h.vix3m, bands, prm), 1, rounds=2)
    yield {"name": "analysis.twin_ratio.vix_series", "value": round(a / b, 1), "unit": "x", "baseline": 1.0,
           "ratio": round(a / b, 1), "target": 10, "numba_per_s": round(a, 1), "numpy_per_s": round(b, 2),
           "input": f"real CBOE VIX history, {len(h)} sessions"}


BENCHMARKS = {
    "analysis.dom": bench_dom,
    "analysis.dom_live": bench_dom_live,
    "analysis.frame": bench_frame,
    "analysis.step": bench_step,
    "analysis.twins": bench_twins,
}
