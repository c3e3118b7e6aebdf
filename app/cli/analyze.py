"""``mia-elite analyze RECORDING``: run a recording through the analysis engine, headless.

RECORDING is one of:

* ``default``: the shipped real CME ES sample (:func:`app.feeds.samples.load_default_sample`);
* a MIA recording, ``*.mrec`` or ``*.mrec.zst`` (:func:`app.feeds.recording.read_recording`);
* a Databento MBO file, ``*.dbn`` or ``*.dbn.zst`` (:func:`app.feeds.dbn.read_dbn_mbo`);
* a Binance capture, ``*.gz`` (one ``<recv_ns> <json>`` line per message, as in
  hftbacktest's ``btcusdt_20240808.gz``; :func:`app.feeds.binance.read_binance_gz`). Its
  symbol, market and tick size come from the stream; when the stream cannot tell, the command
  says so and asks for ``--symbol`` / ``--tick-size`` / ``--market``.

A file that cannot be read gives one line naming the file and the problem, and exit code 2.

The events go through the same :class:`~app.live.engine.AnalysisEngine` as the GUI, on its
synchronous path, cut at the recording's batch ends. Steps run in market time, so the output
depends only on the input and the profile: two runs print the same signals. ``--speed max``
(the default) runs as fast as possible; ``--speed N`` paces the replay at N x real time.

Output: each signal with its reasons (patterns and values), bracket, size and its outcome as the
paper fill model booked the bracket (``app/sim/outcomes.py``: entry after the profile's decision
delay, exit kind target / stop, entry and exit fills, ticks and net USD per contract after
commissions, MFE/MAE up to the exit, moves after 1/5/15 minutes), then a summary (events, events/s, signals, precision per pattern). ``--json`` prints one JSON
document instead; wall-clock figures are under its ``"timing"`` key only, everything else is
deterministic.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time


from app.core.events import chunks
from app.feeds.samples import load_any  # noqa: F401 (re-exported: callers import it from here)



def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    p.add_argument("recording", help="'default', a .mrec/.mrec.zst, a DBN .dbn/.dbn.zst, or a Binance .gz")
    p.add_argument("--profile", default="production",
                   help="analysis profile: scalping, production, development, budget (default production)")
    p.add_argument("--vix", metavar="FILE", default=None,
                   help="daily VIX history (CBOE VIX_History.csv); default: the shipped copy")
    p.add_argument("--vix3m", metavar="FILE", default=None, help="VIX3M history for the term structure")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--speed", default="max", help="'max' (default) or a multiple of real time, e.g. 10")
    p.add_argument("--twin", action="store_true", help="use the plain NumPy twins instead of numba")
    p.add_argument("--symbol", default=None,
                   help="symbol to read from a multi-symbol source (Binance .gz, DBN); default: from the file")
    p.add_argument("--tick-size", type=float, default=None,
                   help="price increment, when the source cannot tell it (Binance: from the stream by default)")
    p.add_argument("--market", default=None, choices=("USD-M", "COIN-M", "spot"),
                   help="Binance market, when the stream cannot tell it")
    p.add_argument("--pattern-stats", action="store_true",
                   help="per pattern, the share of analysis steps (bar patterns: closed bars) where it fires")
    p.add_argument("--snapshots", metavar="DIR", default=None,
                   help="write every candidate step's features and outcome to Parquet under DIR")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="on stderr: what the analyzers' first compile is doing and a progress bar of the "
                        "events (auto: the bar only on a terminal; never: silent)")


def _px(ticks: int, tick: float):
    """Ticks to a price rounded to 10 decimals (no float noise in the JSON); None when < 0."""
    return round(ticks * tick, 10) if ticks >= 0 else None


def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).isoformat(timespec="milliseconds")


def _hit_dict(h, tick: float) -> dict:
    return {
        "name": h.name,
        "family": h.family,
        "ts": int(h.ts),
        "price": round(h.price * tick, 10) if h.price else None,
        "side": int(h.side),
        "strength": round(float(h.strength), 6),
        "detail": h.detail,
        "values": {str(k): (round(float(v), 6) if isinstance(v, (int, float)) else str(v)) for k, v in h.values},
    }


def _outcome_dict(o, tick: float) -> dict | None:
    """An outcome as JSON: moves, MFE/MAE and ticks in ticks, fills as prices, net in USD."""
    if o is None:
        return None
    r = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
    px = lambda v: None if v is None else round(float(v) * tick, 10)  # noqa: E731
    return {"move_1m": r(o.move_1m), "move_5m": r(o.move_5m), "move_15m": r(o.move_15m),
            "mfe": r(o.mfe), "mae": r(o.mae), "first": o.first, "exit": o.first, "complete": bool(o.complete),
            "ended_early": bool(o.ended_early), "entry_fill": px(o.entry_price), "exit_fill": px(o.exit_price),
            "ticks": r(o.ticks), "net_usd": None if o.net_usd is None else round(float(o.net_usd), 2),
            "entry_error": o.entry_error}


def _signal_dict(s, outcome, tick: float, raw_tick: float) -> dict:
    """A signal as JSON: its prices are rows (``tick`` = the row's price step), its outcome's
    fills exchange ticks (``raw_tick``)."""
    return {
        "id": int(s.id),
        "ts": int(s.ts),
        "time": _iso(s.ts),
        "side": "long" if s.side > 0 else "short",
        "score": round(float(s.score), 6),
        "components": {str(k): round(float(v), 6) for k, v in s.components},
        "entry": round(s.entry * tick, 10),
        "stop": round(s.stop * tick, 10),
        "target": round(s.target * tick, 10),
        "size": int(s.size),
        "regime": s.regime,
        "reasons": [_hit_dict(h, tick) for h in s.reasons],
        "outcome": _outcome_dict(outcome, raw_tick),
    }


def analyze(recording, profile="production", vix_history=None, speed: float | None = None,
            use_numba: bool = True, pattern_stats: bool = False, snapshots: str | None = None,
            progress=None, progress_bar: bool = True) -> dict:
    """Run ``recording`` through the engine; returns the report dict (see the module docstring).

    Parameters
    ----------
    recording : Recording
    profile : str or Profile
    vix_history : VixHistory, optional (default: the analyzers' shipped history)
    speed : float or None
        None = as fast as possible; else pace at ``speed`` x real time.
    use_numba : bool
    pattern_stats : bool
        Add ``pattern_stats`` (pattern -> share 0..1 of the evaluations where its detector fired,
        before the re-fire filter) and ``pattern_stats_detail`` (pattern -> ``fires``, ``of``,
        ``basis``: ``"steps"``, or ``"bars"`` for bar patterns, which are evaluated once per
        closed bar); see :meth:`app.analysis.analyzers.Analyzers.pattern_stats`.
    snapshots : str, optional
        Folder for candidate snapshots (:mod:`app.research.snapshots`; the session id is the
        symbol and the recording's first UTC date).
    progress : text stream, optional
        Where to say what is happening (``sys.stderr`` from the command): a line before the
        kernels are compiled or loaded (a first run compiles them with numba, 10-20 s; later
        runs load them from the cache), one when they are ready, and with ``progress_bar`` a
        ``tqdm`` bar of the events. None: silent. The report does not depend on it.
    progress_bar : bool
        Show the events' progress bar on ``progress``.
    """
    from app.live.engine import AnalysisEngine

    inst = recording.instrument
    eng = AnalysisEngine(inst, profile, vix_history=vix_history, use_numba=use_numba)
    t_start = time.perf_counter()
    if progress is not None:
        if use_numba:
            from app.core.jit import CACHE_DIR

            print(f"analyze: compiling the analyzers (numba: 10-20 s on a first run, then loaded from the "
                  f"cache in {CACHE_DIR}) ...", file=progress, flush=True)
        else:
            print("analyze: preparing the NumPy twins of the analyzers ...", file=progress, flush=True)
    eng.warm_up()
    if progress is not None:
        print(f"analyze: analyzers ready in {eng.compile_seconds:.1f} s; {len(recording.events):,} events to run",
              file=progress, flush=True)
    bar = None
    if progress is not None and progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(recording.events), unit="ev", unit_scale=True, desc="analyze", file=progress,
                   mininterval=0.5, dynamic_ncols=True)
    t0 = time.perf_counter()
    ev = recording.events
    snap = None
    if snapshots:
        from app.research.snapshots import SnapshotRecorder

        day = _iso(int(ev["ts"][0]))[:10] if len(ev) else "empty"
        snap = SnapshotRecorder(snapshots, inst, getattr(eng.profile, "name", str(profile)), f"{inst.symbol} {day}")
        eng.analyzers.candidate_hook = snap.on_candidates
    m0 = int(ev["ts"][0]) if len(ev) else 0
    for c in chunks(ev):
        if speed:
            due = (int(c["ts"][0]) - m0) / 1e9 / speed
            lag = due - (time.perf_counter() - t0)
            if lag > 0:
                time.sleep(lag)
        eng.process(c)
        if bar is not None:
            bar.update(len(c))
    if bar is not None:
        bar.close()
    eng.finish(end_of_data=True)
    wall = time.perf_counter() - t0
    if snap is not None:
        snap.close(ev)
    tick = eng.model_instrument.tick_size  # the model's prices are rows of eng.row_ticks ticks
    outcomes = eng.outcomes
    precision = eng.precision
    sigs = [_signal_dict(s, outcomes.get(s.id), tick, inst.tick_size) for s in eng.all_signals]
    per_pattern = {str(k): {"decided": int(v[0]), "target_first": int(v[1]), "precision": round(float(v[2]), 6)}
                   for k, v in sorted(precision.items())}
    nets = [s["outcome"]["net_usd"] for s in sigs if s["outcome"] and s["outcome"]["net_usd"] is not None]
    counts: dict[str, int] = {}
    for s in eng.all_signals:
        for h in s.reasons:
            counts[h.name] = counts.get(h.name, 0) + 1
    frame = eng.snapshot_frame()
    rep = {
        "recording": {"symbol": inst.symbol, "tick_size": inst.tick_size, "row_ticks": int(eng.row_ticks),
                      "source": recording.source,
                      "start": _iso(recording.start_ns) if len(ev) else None,
                      "end": _iso(recording.end_ns) if len(ev) else None},
        "profile": getattr(eng.profile, "name", str(profile)),
        "events": int(eng.model.events_applied),
        "steps": int(eng.steps),
        "errors": int(eng.errors),
        "last_error": eng.last_error,
        "signals": sigs,
        "snapshot_rows": snap.rows if snap is not None else 0,
        "summary": {
            "signals": len(sigs),
            "long": sum(1 for s in sigs if s["side"] == "long"),
            "short": sum(1 for s in sigs if s["side"] == "short"),
            "signals_per_pattern": dict(sorted(counts.items())),
            "precision_per_pattern": per_pattern,
            "decided": len(nets),
            "net_usd": round(sum(nets), 2),
            "best_bid": _px(frame.best_bid, tick),
            "best_ask": _px(frame.best_ask, tick),
            "cum_delta": round(eng.model.cum_delta, 6),
            "poc": _px(eng.model.volume_profile()[0], tick),
        },
        "timing": {"wall_s": round(wall, 4), "events_per_s": round(len(ev) / wall, 1) if wall > 0 else None,
                   "compile_s": round(eng.compile_seconds, 4),
                   "total_s": round(time.perf_counter() - t_start, 4)},
    }
    if pattern_stats:
        st = eng.analyzers.pattern_stats()
        rep["pattern_stats"] = {k: round(v["share"], 6) for k, v in st.items()}
        rep["pattern_stats_detail"] = {k: {"fires": v["fires"], "of": v["of"], "basis": v["basis"]}
                                       for k, v in st.items()}
    return rep


def _print_text(rep: dict, out) -> None:
    r = rep["recording"]
    print(f"{r['symbol']}  {r['start']} .. {r['end']}  profile {rep['profile']}  rows of {r['row_ticks']} tick(s)",
          file=out)
    print(f"source: {r['source']}", file=out)
    for s in rep["signals"]:
        o = s["outcome"] or {}
        print(f"\n#{s['id']} {s['time']} {s['side'].upper()} score {s['score']:.3f} size {s['size']} "
              f"entry {s['entry']:g} stop {s['stop']:g} target {s['target']:g} regime {s['regime'] or '-'}",
              file=out)
        for h in s["reasons"]:
            print(f"    {h['family']}/{h['name']} {h['strength']:.2f}  {h['detail']}", file=out)
        fmt = lambda v: "-" if v is None else f"{v:+.1f}"  # noqa: E731
        if o.get("exit"):
            booked = (f"exit {o['exit']}: in {o['entry_fill']:g} out {o['exit_fill']:g}, {o['ticks']:+.1f} ticks,"
                      f" net {o['net_usd']:+.2f} USD")
        elif o.get("entry_error"):
            booked = f"no entry ({o['entry_error']})"
        elif o.get("entry_fill") is not None:
            booked = f"in {o['entry_fill']:g}, still open"
        else:
            booked = "not entered yet"
        print(f"    outcome: {booked}{' (data ended)' if o.get('ended_early') else ''}; MFE {fmt(o.get('mfe'))},"
              f" MAE {fmt(o.get('mae'))}; moves 1m {fmt(o.get('move_1m'))}  5m {fmt(o.get('move_5m'))}"
              f"  15m {fmt(o.get('move_15m'))} ticks", file=out)
    sm, tm = rep["summary"], rep["timing"]
    print("\nsummary", file=out)
    print(f"  events {rep['events']:,}  in {tm['wall_s']:.2f} s  = {tm['events_per_s'] or 0:,.0f} events/s"
          f"  (kernels ready in {tm['compile_s']:.2f} s)  steps {rep['steps']:,}", file=out)
    print(f"  signals {sm['signals']} ({sm['long']} long, {sm['short']} short); {sm['decided']} brackets decided,"
          f" net {sm['net_usd']:+.2f} USD per contract after commissions", file=out)
    if sm["precision_per_pattern"]:
        print("  precision per pattern (decided, target exits, precision):", file=out)
        for k, v in sm["precision_per_pattern"].items():
            print(f"    {k:<20} {v['decided']:>4} {v['target_first']:>4} {v['precision']:.2f}", file=out)
    if "pattern_stats" in rep:
        print("  pattern stats (share of evaluations where the detector fired, before the re-fire filter):",
              file=out)
        for k, share in rep["pattern_stats"].items():
            d = rep["pattern_stats_detail"][k]
            print(f"    {k:<20} {100 * share:6.2f} %  {d['fires']:>6} of {d['of']:>6} {d['basis']}", file=out)
    if rep["errors"]:
        print(f"  analyzer errors: {rep['errors']} (last below)\n{rep['last_error']}", file=out)


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 on a bad argument or unreadable input."""
    speed = None
    if str(args.speed).lower() != "max":
        try:
            speed = float(args.speed)
            if not speed > 0:
                raise ValueError
        except ValueError:
            print(f"analyze: --speed must be 'max' or a positive number, got {args.speed!r}", file=sys.stderr)
            return 2
    try:
        rec = load_any(args.recording, symbol=getattr(args, "symbol", None),
                       tick_size=getattr(args, "tick_size", None), market=getattr(args, "market", None))
        vix = None
        if args.vix:
            from app.feeds.vix_history import load_vix_history

            vix = load_vix_history(args.vix, args.vix3m)
        from app.live.engine import resolve_profile

        profile = resolve_profile(args.profile)
    except (OSError, ValueError) as exc:
        print(f"analyze: {exc}", file=sys.stderr)
        return 2
    mode = getattr(args, "progress", "auto")
    rep = analyze(rec, profile, vix_history=vix, speed=speed, use_numba=not args.twin,
                  pattern_stats=args.pattern_stats, snapshots=args.snapshots,
                  progress=None if mode == "never" else sys.stderr,
                  progress_bar=mode == "always" or (mode == "auto" and sys.stderr.isatty()))
    if args.snapshots:
        print(f"snapshots: {rep['snapshot_rows']} candidate rows under {args.snapshots}", file=sys.stderr)
    if args.json:
        json.dump(rep, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        _print_text(rep, sys.stdout)
    return 0
