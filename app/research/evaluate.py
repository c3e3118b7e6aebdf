"""Evaluate profiles over every trading session of some recordings (``mia-elite evaluate``).

Pipeline:

1. :func:`discover` walks the paths (files or folders) and :func:`load_path` reads each file:
   MIA recordings (``.mrec``, ``.mrec.zst``), Databento DBN MBO (``.dbn``, ``.dbn.zst``), Binance
   captures (``.gz``), Sierra Chart ``.scid`` (trades with bid/ask; ``.depth`` files of the same
   symbol beside it or under ``MarketDepthData/`` are merged in). A folder's file that no reader
   accepts (an instrument definition, an OHLCV file) is listed as skipped with the reason.
2. :func:`split_sessions` cuts each recording into trading sessions by the instrument's calendar
   (:func:`app.core.sessions.calendar_for`; none known = the whole recording is one session).
   Each session starts with the book as it stood at its open (:func:`book_at`), so a session
   can run on its own.
3. :func:`run_session` runs the analysis engine headless over one session and one profile
   (optionally without one pattern: :class:`app.research.ablation.AblatedAnalyzers`); the jobs
   run in a process pool (:func:`run_jobs`).
4. :func:`summarise` measures each profile: every signal through
   :func:`app.research.trades.trade_result`, statistics of :mod:`app.research.stats`, a random
   baseline (:func:`app.research.trades.random_baseline`), per-pattern rows (signals citing the
   pattern, and ablation), Benjamini-Hochberg over every p-value, a verdict line per profile.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.events import (EVENT_DTYPE, FLAG_SNAPSHOT, KIND_DEPTH, KIND_TRADE, OP_CLEAR, OP_SET,
                             Instrument, chunks)
from app.core.sessions import calendar_for
from app.research import stats
from app.research.trades import SessionTrades, baseline_rate, drift_ticks, measure, random_baseline, trade_result

#: commission per contract per side when none is configured (TradingSettings' default), USD
DEFAULT_COMMISSION_USD = 2.25
#: profiles evaluated when none is named
DEFAULT_PROFILES = ("scalping", "production", "development", "budget")
#: sessions with fewer trades are skipped (nothing to analyse: a pre-open snapshot, a holiday)
MIN_TRADES = 50
#: file endings read by :func:`load_path`
KNOWN_SUFFIXES = (".mrec", ".mrec.zst", ".dbn", ".dbn.zst", ".gz", ".scid")


@dataclass
class Source:
    """Events of one instrument from one file (or a ``.scid`` with its ``.depth`` files)."""

    instrument: Instrument
    events: np.ndarray
    source: str


@dataclass
class Session:
    """One trading session of one instrument, ready to run on its own.

    Attributes
    ----------
    sid : str
        ``<symbol> <trading day>`` (or ``<symbol> <file name>`` without a calendar); unique.
    instrument : Instrument
    events : np.ndarray of EVENT_DTYPE, shape (N,)
        The book at the open (snapshot events stamped at the first event), then the session's events.
    start_ns : int
        Session open, ns (the first event's time without a calendar).
    source : str
    """

    sid: str
    instrument: Instrument
    events: np.ndarray
    start_ns: int
    source: str

    def trades(self) -> SessionTrades:
        """The session's trades (ts ns, price ticks) for the baseline."""
        t = self.events[self.events["kind"] == KIND_TRADE]
        return SessionTrades(self.sid, int(self.start_ns), np.ascontiguousarray(t["ts"]),
                             np.ascontiguousarray(t["price"]), self.events)


# ----------------------------------------------------------------------------------------- input
def discover(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to read under ``paths``; returns ``(files, skipped)``.

    Folders are walked (sorted). ``.depth`` files are not listed on their own: they are read
    with the ``.scid`` of their symbol. ``skipped`` holds ``(path, reason)`` for files that have
    no reader.

    Raises
    ------
    FileNotFoundError
        A path that does not exist (``default`` is the shipped sample, not a path).
    """
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for spec in paths:
        if str(spec) == "default":
            files.append(Path("default"))
            continue
        p = Path(spec)
        if not p.exists():
            raise FileNotFoundError(f"evaluate: path not found: {p}")
        cands = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in cands:
            name = q.name.lower()
            if name.endswith(KNOWN_SUFFIXES):
                files.append(q)
            elif name.endswith(".depth"):
                continue  # read with its .scid
            elif p.is_dir():
                skipped.append((str(q), "no reader for this file type"))
            else:
                raise ValueError(f"evaluate: {q}: unknown file type (known: {', '.join(KNOWN_SUFFIXES)}, folders)")
    return files, skipped


def _depth_files(scid: Path, symbol: str) -> list[Path]:
    out = []
    for d in (scid.parent, scid.parent / "MarketDepthData"):
        if d.is_dir():
            out.extend(sorted(d.glob(f"{symbol}.*.depth")))
    return out


def load_path(path: Path, tick_size: float = 0.25, tick_value: float = 12.5, exchange: str = "CME") -> Source:
    """Read one file (see the module docstring).

    ``tick_size`` / ``tick_value`` / ``exchange`` apply to a Sierra ``.scid`` only (the file
    does not store them); the symbol is the file name's stem.

    Raises
    ------
    ValueError
        The file is not what its name says (the reader's message), or an unknown type.
    OSError
        It cannot be read.
    """
    name = path.name.lower()
    if str(path) == "default":
        from app.feeds.samples import load_default_sample

        r = load_default_sample()
        return Source(r.instrument, r.events, r.source)
    if name.endswith((".mrec", ".mrec.zst")):
        from app.feeds.recording import read_recording

        r = read_recording(path)
    elif name.endswith((".dbn", ".dbn.zst")):
        from app.feeds.dbn import read_dbn_mbo

        r = read_dbn_mbo(path)
    elif name.endswith(".gz"):
        from app.feeds.binance import read_binance_gz

        r = read_binance_gz(path)
    elif name.endswith(".scid"):
        from app.feeds.depthfile import read_depth_events
        from app.feeds.scid import read_scid_events

        sym = path.stem
        inst = Instrument(sym, float(tick_size), float(tick_value), exchange=exchange,
                          description=f"{sym} from Sierra Chart {path.name}")
        parts = [read_scid_events(path, inst, quotes=False)]
        depth = _depth_files(path, sym)
        parts.extend(read_depth_events(d, inst) for d in depth)
        ev = np.concatenate(parts) if len(parts) > 1 else parts[0]
        ev = ev[np.argsort(ev["ts"], kind="stable")]
        src = f"Sierra Chart {path.name}" + (f" + {len(depth)} .depth file(s)" if depth else " (no .depth)")
        return Source(inst, ev, src)
    else:
        raise ValueError(f"{path}: unknown file type (known: {', '.join(KNOWN_SUFFIXES)})")
    return Source(r.instrument, r.events, r.source)


def file_key(path: Path) -> str:
    """Identity of a file's content: size plus a SHA-256 of its first and last MiB (so the same
    recording named twice, e.g. the shipped sample and its copy in a data folder, counts once)."""
    import hashlib

    if str(path) == "default":
        from app.feeds.samples import default_sample_path

        path = default_sample_path()
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return h.hexdigest()


def book_at(depth: np.ndarray, ts: int) -> np.ndarray:
    """The book left by ``depth`` events, as snapshot events stamped ``ts``.

    Parameters
    ----------
    depth : np.ndarray of EVENT_DTYPE
        Depth events (``kind == KIND_DEPTH``) in arrival order.
    ts : int
        Time to stamp the snapshot with, ns.

    Returns
    -------
    np.ndarray of EVENT_DTYPE
        One ``OP_SET`` event per standing level (the last set of each side and price after the
        side's last clear, not deleted), flagged ``FLAG_SNAPSHOT``, the last one also
        ``FLAG_BATCH_END``; bids then asks.
    """
    d = depth[depth["kind"] == KIND_DEPTH]
    out = []
    for side in (1, 2):
        sel = np.flatnonzero((d["side"] == side) | ((d["op"] == OP_CLEAR) & (d["side"] == 0)))
        x = d[sel]
        clears = np.flatnonzero(x["op"] == OP_CLEAR)
        if clears.size:
            x = x[clears[-1] + 1:]
        x = x[x["side"] == side]
        if x.shape[0] == 0:
            continue
        rev = x[::-1]
        _, first = np.unique(rev["price"], return_index=True)
        last = rev[first]
        keep = last[(last["op"] == OP_SET) & (last["size"] > 0)]
        out.append(keep)
    if not out:
        return np.zeros(0, EVENT_DTYPE)
    snap = np.concatenate(out).copy()
    snap["ts"] = ts
    snap["op"] = OP_SET
    snap["flags"] = FLAG_SNAPSHOT
    if snap.shape[0]:
        snap["flags"][-1] |= 1  # FLAG_BATCH_END
    return snap


def split_sessions(src: Source, min_trades: int = MIN_TRADES) -> list[Session]:
    """Cut ``src`` into trading sessions (see the module docstring).

    Sessions with fewer than ``min_trades`` trades are dropped; the book they leave is carried
    into the next session's opening snapshot.
    """
    ev = src.events
    if ev.shape[0] == 0:
        return []
    sym = src.instrument.symbol
    cal = calendar_for(src.instrument.exchange)
    if cal is None:
        ntr = int(np.count_nonzero(ev["kind"] == KIND_TRADE))
        if ntr < min_trades:
            return []
        return [Session(f"{sym} {src.source.split()[-1] if src.source else 'data'}", src.instrument, ev,
                        int(ev["ts"][0]), src.source)]
    idx = cal.day_index(ev["ts"])
    bounds = np.flatnonzero(np.diff(idx)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [ev.shape[0]]])
    out = []
    for a, b in zip(starts, ends):
        part = ev[a:b]
        if np.count_nonzero(part["kind"] == KIND_TRADE) < min_trades:
            continue
        day = cal.trading_day(int(part["ts"][0]))
        snap = book_at(ev[:a], int(part["ts"][0])) if a > 0 else np.zeros(0, EVENT_DTYPE)
        # drop any snapshot/clear replay at the very start of the part: the rebuilt book covers it
        evs = np.concatenate([snap, part]) if snap.shape[0] else part
        out.append(Session(f"{sym} {day.isoformat()}", src.instrument, evs, cal.day_start_ns(day), src.source))
    return out


# ----------------------------------------------------------------------------------------- running
@dataclass
class Job:
    """One engine run: ``session`` with ``profile``, without the patterns in ``removed``."""

    session: Session
    profile: str
    removed: tuple = ()
    snapshots: str | None = None
    #: profile overrides (``outcomes.*``: the costs the evaluation books, the same for the
    #: signals and the random baseline)
    overrides: dict = field(default_factory=dict)


@dataclass
class RunResult:
    """What one :class:`Job` produced: the signals and their outcomes (by id)."""

    sid: str
    profile: str
    removed: tuple
    signals: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    steps: int = 0
    events: int = 0
    errors: int = 0
    last_error: str = ""
    candidates: int = 0


def run_session(job: Job) -> RunResult:
    """Run the analysis engine over one session, headless (a process-pool worker).

    The engine is fed ``chunks(events)`` as ``mia-elite analyze`` does, and told the data ended,
    so open outcomes are final (``ended_early``).
    """
    from app.live.engine import AnalysisEngine, resolve_profile

    s = job.session
    prof = resolve_profile(job.profile, job.overrides or None)
    kw = {}
    ana = None
    if job.removed or job.snapshots:
        from app.research.ablation import AblatedAnalyzers

        ana = AblatedAnalyzers(prof, s.instrument, removed=job.removed)
        kw["analyzers"] = ana
    rec = None
    if job.snapshots and ana is not None:
        from app.research.snapshots import SnapshotRecorder

        rec = SnapshotRecorder(job.snapshots, s.instrument, job.profile, s.sid)
        ana.candidate_hook = rec.on_candidates
    eng = AnalysisEngine(s.instrument, prof, **kw)
    for c in chunks(s.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    n_cand = 0
    if rec is not None:
        rec.close(s.events)
        n_cand = rec.rows
    return RunResult(s.sid, job.profile, tuple(job.removed), list(eng.all_signals), dict(eng.outcomes),
                     int(eng.steps), int(eng.model.events_applied), int(eng.errors), eng.last_error, n_cand)


def run_jobs(jobs_list: list[Job], workers: int = 1, progress: bool = True) -> list[RunResult]:
    """Run every job, in a process pool of ``workers`` processes when ``workers > 1``.

    Results come back in the order of ``jobs_list``. ``progress`` shows a tqdm bar on stderr
    (only on a terminal).
    """
    from tqdm import tqdm

    bar = tqdm(total=len(jobs_list), desc="evaluate", unit="run", disable=None if progress else True)
    out: list[RunResult | None] = [None] * len(jobs_list)
    try:
        if workers <= 1 or len(jobs_list) <= 1:
            for i, j in enumerate(jobs_list):
                out[i] = run_session(j)
                bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(run_session, j): i for i, j in enumerate(jobs_list)}
                for f in as_completed(futs):
                    out[futs[f]] = f.result()
                    bar.update(1)
    finally:
        bar.close()
    return out  # type: ignore[return-value]


def default_workers(n_jobs: int) -> int:
    """Pool size: the usable cores (``os.sched_getaffinity`` where known), at most ``n_jobs``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # Windows, macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_jobs))


# ----------------------------------------------------------------------------------------- measuring
def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).isoformat(timespec="seconds")


def _r(x, nd=4):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), nd)


def _commission_for(commission_usd, symbol: str) -> float:
    """USD per contract per side for ``symbol`` from one figure, a dict per symbol or a callable."""
    if callable(commission_usd):
        return float(commission_usd(symbol))
    if isinstance(commission_usd, Mapping):
        return float(commission_usd.get(symbol, DEFAULT_COMMISSION_USD))
    return float(commission_usd)


def _decision_delay(profile: str) -> float:
    """The profile's ``outcomes.decision_delay_s`` (the baseline waits as its signals do); the
    default 2 s for a name that is no profile (hand-built runs in tests)."""
    from app.config.profiles import PROFILE_NAMES
    from app.live.engine import resolve_profile

    if str(profile).strip().lower() not in PROFILE_NAMES:
        return 2.0
    return float(resolve_profile(profile).section("outcomes")["decision_delay_s"])


def summarise(sessions: list[Session], runs: list[RunResult], *, draws: int = 1000, seed: int = 0,
              commission_usd: float = 2.25, stop_slippage_ticks: float = 0.0, window_s: float = 1800.0,
              alpha: float = 0.05, boot_draws: int = 2000) -> dict:
    """Measure every profile of ``runs`` (see the module docstring); returns the report dict.

    Parameters
    ----------
    sessions : list of Session
        Every evaluated session (the baseline draws from all of them, per instrument).
    runs : list of RunResult
        Full runs (``removed == ()``) and ablation runs.
    draws : int
        Random-baseline draws per signal.
    seed : int
        Seed of the one ``numpy.random.Generator`` behind every random figure.
    commission_usd : float or dict
        Commission per contract per side, USD: one figure, or per symbol (symbols missing from
        the dict pay :data:`DEFAULT_COMMISSION_USD`).
    stop_slippage_ticks : float
        Adverse ticks on stop exits.
    window_s : float
        Time-of-day window of the baseline, s.
    alpha : float
        False discovery rate of the Benjamini-Hochberg correction.
    boot_draws : int
        Session-bootstrap resamples.

    Returns
    -------
    dict
        ``sessions``, ``settings``, ``profiles`` (per profile: the statistics, ``baseline``,
        ``p_value``, ``p_adjusted``, ``verdict``, ``patterns``, ``signals``, ``equity``,
        ``baseline_band``), ``verdicts`` and ``tests`` (every p-value with its BH adjustment).
    """
    rng = np.random.default_rng(seed)
    trades = {s.sid: s.trades() for s in sessions}
    inst_of = {s.sid: s.instrument for s in sessions}
    comm = dict(commission_usd) if isinstance(commission_usd, Mapping) else None
    costs = (float(DEFAULT_COMMISSION_USD if comm is not None else commission_usd), float(stop_slippage_ticks))
    full = [r for r in runs if not r.removed]
    abl = [r for r in runs if r.removed]
    profiles = list(dict.fromkeys(r.profile for r in full))
    symbols = list(dict.fromkeys(s.instrument.symbol for s in sessions))
    # one claim per profile and instrument: ticks and USD of ES and of BTC are not one sample
    groups = [(p, sym, p if len(symbols) == 1 else f"{p} [{sym}]") for p in profiles for sym in symbols]
    report: dict = {
        "sessions": [{"id": s.sid, "symbol": s.instrument.symbol, "source": s.source,
                      "start": _iso(int(s.events["ts"][0])), "end": _iso(int(s.events["ts"][-1])),
                      "events": int(s.events.shape[0]), "trades": int(trades[s.sid].ts.shape[0]),
                      "drift_ticks": _r(drift_ticks(trades[s.sid]), 2)} for s in sessions],
        "settings": {"draws": int(draws), "seed": int(seed),
                     "commission_usd": ({sym: comm.get(sym, costs[0]) for sym in
                                         dict.fromkeys(s.instrument.symbol for s in sessions)}
                                        if comm is not None else costs[0]),
                     "stop_slippage_ticks": costs[1], "window_s": float(window_s), "alpha": float(alpha),
                     "boot_draws": int(boot_draws), "min_sessions_risk": stats.MIN_SESSIONS_RISK,
                     "confidence": stats.CONFIDENCE},
        "profiles": {},
    }
    tests: list[tuple[str, float]] = []
    base_costs = costs
    for prof, gsym, gname in groups:
        costs = (float(comm.get(gsym, base_costs[0])), base_costs[1]) if comm is not None else base_costs
        pairs = []  # (signal, outcome, sid), time order
        for r in full:
            if r.profile == prof and inst_of[r.sid].symbol == gsym:
                pairs.extend((s, r.outcomes.get(s.id), r.sid) for s in r.signals)
        pairs.sort(key=lambda x: (x[0].ts, x[2]))
        sig_sids = [p[2] for p in pairs]
        g_sessions = [s for s in sessions if s.instrument.symbol == gsym]
        tick_value = float(g_sessions[0].instrument.tick_value)
        g_order = [s.sid for s in g_sessions]
        blk = measure([(s, o) for s, o, _ in pairs], sig_sids, tick_value, costs, boot_draws, rng)
        usd = blk.pop("_usd")
        sess_pnl = [float(usd[[i for i, x in enumerate(sig_sids) if x == sid]].sum()) for sid in g_order]
        blk["instrument"] = gsym
        blk["profile"] = prof
        blk["sessions_evaluated"] = len(g_order)
        blk["risk"] = stats.session_risk(sess_pnl)
        blk["session_pnl_usd"] = {sid: round(v, 2) for sid, v in zip(g_order, sess_pnl)}
        # the random baseline, per instrument (sessions of the same symbol)
        sym_sessions: dict[str, dict] = {}
        for s in sessions:
            sym_sessions.setdefault(s.instrument.symbol, {})[s.sid] = trades[s.sid]
        n = len(pairs)
        bnet = np.zeros((int(draws), n))
        brate = np.zeros((int(draws), n), bool)
        bdec = np.zeros((int(draws), n), bool)
        for sym, ss in sym_sessions.items():
            cols = [i for i, p in enumerate(pairs) if inst_of[p[2]].symbol == sym]
            if not cols:
                continue
            inst = inst_of[pairs[cols[0]][2]]
            c_sym = comm.get(sym, costs[0]) if comm is not None else costs[0]
            delay = _decision_delay(prof)
            bl = random_baseline([pairs[i][0] for i in cols], [pairs[i][2] for i in cols], ss, draws, rng,
                                 inst.tick_value, c_sym, costs[1], window_s, instrument=inst,
                                 decision_delay_s=delay)
            bnet[:, cols] = bl.net_usd
            brate[:, cols] = bl.target_first
            bdec[:, cols] = bl.decided
        obs = float(usd.mean()) if n else math.nan
        bmean = bnet.mean(axis=1) if n else np.zeros(0)
        p = stats.mc_p_value(obs, bmean)
        blk["baseline"] = {
            "draws": int(draws), "mean_usd": _r(float(bmean.mean()) if n else math.nan, 2),
            "band_usd": [_r(float(np.quantile(bmean, 0.05)), 2), _r(float(np.quantile(bmean, 0.95)), 2)] if n else None,
            "rate": _r(baseline_rate(brate, bdec)),
            "drift_aligned": _r(float(np.mean([np.sign(drift_ticks(trades[sid])) * s.side
                                               for s, _, sid in pairs])) if n else math.nan),
        }
        blk["p_value"] = _r(p)
        tests.append((gname, p))
        eq = np.cumsum(usd) if n else np.zeros(0)
        beq = np.cumsum(bnet, axis=1) if n else np.zeros((0, 0))
        blk["equity"] = [round(float(x), 2) for x in eq]
        blk["baseline_band"] = ([[round(float(x), 2) for x in np.quantile(beq, 0.05, axis=0)],
                                 [round(float(x), 2) for x in np.quantile(beq, 0.95, axis=0)]] if n else [[], []])
        # per pattern: signals citing it (labelled so), and ablation
        pats = sorted({h.name for s, _, _ in pairs for h in s.reasons})
        pat_rows = {}
        for name in pats:
            cols = [i for i, (s, _, _) in enumerate(pairs) if any(h.name == name for h in s.reasons)]
            sub = measure([(pairs[i][0], pairs[i][1]) for i in cols], [sig_sids[i] for i in cols], tick_value, costs,
                         boot_draws, rng)
            su = sub.pop("_usd")
            pp = stats.mc_p_value(float(su.mean()), bnet[:, cols].mean(axis=1))
            sub["p_value"] = _r(pp)
            tests.append((f"{gname}/{name}", pp))
            row = {"citing": sub}
            a_runs = [r for r in abl if r.profile == prof and r.removed == (name,) and inst_of[r.sid].symbol == gsym]
            if a_runs:
                a_pairs = [(s, r.outcomes.get(s.id)) for r in a_runs for s in r.signals]
                a_res = [trade_result(s, o, tick_value, *costs) for s, o in a_pairs]
                tot = float(sum(x.net_usd for x in a_res))
                row["ablation"] = {"n": len(a_res), "total_usd": round(tot, 2),
                                   "contribution_usd": round(float(usd.sum()) - tot, 2),
                                   "rate": _r(sum(x.target_first for x in a_res) / max(1, sum(x.decided for x in a_res))
                                              if any(x.decided for x in a_res) else math.nan)}
            pat_rows[name] = row
        blk["patterns"] = pat_rows
        blk["signals"] = [_signal_row(s, o, sid, inst_of[sid], costs) for s, o, sid in pairs]
        report["profiles"][gname] = blk
    names = [t[0] for t in tests]
    rej, adj = stats.benjamini_hochberg([t[1] for t in tests], alpha) if tests else (np.zeros(0, bool), np.zeros(0))
    report["tests"] = [{"name": nm, "p_value": _r(p), "p_adjusted": _r(a), "discovery": bool(r)}
                       for nm, (_, p), a, r in zip(names, tests, adj, rej)]
    adj_of = dict(zip(names, adj))
    verdicts = []
    for prof, blk in report["profiles"].items():
        blk["p_adjusted"] = _r(adj_of.get(prof, math.nan))
        for name, row in blk["patterns"].items():
            row["citing"]["p_adjusted"] = _r(adj_of.get(f"{prof}/{name}", math.nan))
        pv = blk["p_value"] if blk["p_value"] is not None else math.nan
        pa = blk["p_adjusted"] if blk["p_adjusted"] is not None else math.nan
        blk["verdict"] = stats.verdict(prof, blk["n"], blk["sessions"], pv, alpha, pa)
        verdicts.append(blk["verdict"])
    report["verdicts"] = verdicts
    return report


def _signal_row(s, o, sid, inst: Instrument, costs) -> dict:
    r = trade_result(s, o, inst.tick_value, *costs)
    return {"id": int(s.id), "session": sid, "time": _iso(int(s.ts)), "side": "long" if s.side > 0 else "short",
            "score": round(float(s.score), 4), "entry": round(s.entry * inst.tick_size, 10),
            "stop": round(s.stop * inst.tick_size, 10), "target": round(s.target * inst.tick_size, 10),
            "first": getattr(o, "first", None), "ticks": round(r.ticks, 2), "net_usd": round(r.net_usd, 2),
            "patterns": [h.name for h in s.reasons]}


def evaluate(paths, profiles=DEFAULT_PROFILES, *, draws: int = 1000, workers: int | None = None,
             ablation: bool = True, seed: int = 0, commission_usd=DEFAULT_COMMISSION_USD,
             stop_slippage_ticks: float = 0.0,
             progress: bool = True, snapshots: str | None = None, tick_size: float = 0.25,
             tick_value: float = 12.5, exchange: str = "CME") -> dict:
    """Everything ``mia-elite evaluate`` does, as a function; returns the report dict.

    Runs every (session, profile) job, then, with ``ablation``, one more job per session and per
    pattern cited by the profile's signals (that pattern removed). ``workers`` None = the usable
    cores. ``commission_usd`` is one figure or a dict per symbol, or a callable
    ``symbol -> USD`` (e.g. ``TradingSettings.commission_for``). ``snapshots`` is a folder for candidate snapshots (:mod:`app.research.snapshots`).
    ``report["timing"]`` holds wall-clock figures; everything else is deterministic.

    Raises
    ------
    FileNotFoundError, ValueError
        A path that does not exist or a file of an unknown type named directly.
    """
    import time

    t0 = time.perf_counter()
    files, skipped = discover(paths)
    sessions: list[Session] = []
    seen_files: dict[str, Path] = {}
    for f in files:
        key = file_key(f)
        if key in seen_files:
            skipped.append((str(f), f"the same file as {seen_files[key]}"))
            continue
        seen_files[key] = f
        try:
            src = load_path(f, tick_size, tick_value, exchange)
        except (ValueError, OSError) as exc:
            skipped.append((str(f), str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            continue
        got = split_sessions(src)
        if src.events.shape[0] == 0:
            skipped.append((str(f), "no events read (a .scid of bars rather than tick records?)"))
        elif not got:
            skipped.append((str(f), f"fewer than {MIN_TRADES} trades in every session"))
        sessions.extend(got)
    seen: dict[str, int] = {}
    for s in sessions:  # unique ids (two files of one day)
        k = seen.get(s.sid, 0)
        seen[s.sid] = k + 1
        if k:
            s.sid = f"{s.sid} #{k + 1}"
    t_load = time.perf_counter() - t0
    def costs_of(s: Session) -> dict:  # the engine books outcomes with the evaluation's costs
        return {"outcomes.commission_per_contract_usd": float(_commission_for(commission_usd, s.instrument.symbol)),
                "outcomes.stop_slippage_ticks": int(round(float(stop_slippage_ticks)))}

    jobs = [Job(s, p, (), snapshots, costs_of(s)) for p in profiles for s in sessions]
    w = default_workers(len(jobs)) if workers is None else max(1, int(workers))
    t1 = time.perf_counter()
    runs = run_jobs(jobs, w, progress)
    if ablation:
        more = []
        for p in profiles:
            cited = sorted({h.name for r in runs if r.profile == p and not r.removed for s in r.signals for h in s.reasons})
            more.extend(Job(s, p, (name,), None, costs_of(s)) for name in cited for s in sessions)
        if more:
            runs = runs + run_jobs(more, default_workers(len(more)) if workers is None else w, progress)
    t_run = time.perf_counter() - t1
    if callable(commission_usd):
        commission_usd = {s.instrument.symbol: float(commission_usd(s.instrument.symbol)) for s in sessions}
    rep = summarise(sessions, runs, draws=draws, seed=seed, commission_usd=commission_usd,
                    stop_slippage_ticks=stop_slippage_ticks)
    rep["skipped"] = [{"path": p, "reason": r} for p, r in skipped]
    rep["engine"] = {"runs": len(runs), "errors": sum(r.errors for r in runs),
                     "last_error": next((r.last_error for r in runs if r.errors), ""),
                     "snapshot_rows": sum(r.candidates for r in runs)}
    rep["timing"] = {"load_s": round(t_load, 3), "run_s": round(t_run, 3), "workers": w,
                     "total_s": round(time.perf_counter() - t0, 3)}
    return rep
