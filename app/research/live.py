"""The window's research: session statistics, the model's probability, live snapshots.

:class:`LiveResearch` is the analysis engine's ``observer`` (``AnalysisEngine(observer=...)``):
the engine calls it on its worker thread with the raw events, the new signals and at every
published frame, and puts what :meth:`LiveResearch.frame_fields` returns into the frame
(``frame.session_stats``, ``frame.model_p``, ``frame.model_name``). It does three things:

* **Session statistics** (:func:`session_summary`): the figures of ``mia-elite evaluate`` for
  the session so far, per profile and per pattern ("signals citing this pattern"), computed
  with the same functions (:func:`app.research.trades.measure`: Wilson interval, breakeven
  rate, session-bootstrap expectancy; :func:`app.research.stats.mc_p_value`). Only signals whose
  outcome is final (complete, or the data ended) are measured; the others are counted as
  ``open``. They are computed on a background thread of their own, at most every
  ``refresh_s`` seconds of the engine's clock and only when an outcome changed, so neither the
  GUI thread nor the analysis waits for them; the frame carries the newest finished summary.
* **Random baseline** (:func:`signal_baseline`): for each measured signal, ``draws`` random
  entries with the same side and bracket distances at times drawn uniformly from the session
  so far at the signal's time (first trade .. signal), entered at the last trade price then,
  followed by the same outcome tracker (the paper fill model) on the session's trades and
  booked by :func:`app.research.trades.trade_result`. The window keeps only the trades (time,
  price) of the session, not the book (memory), so a random target fills on a trade at its
  price with no queue ahead: if anything the baseline is a little easier to beat than the
  signals' own bookings, never harder. A signal's draws are fixed (seeded by its id) and
  cached once all of them are complete.
* **Model probability and snapshots**: as the analyzers' ``candidate_hook`` it computes each
  candidate's feature row with :func:`app.research.snapshots.candidate_rows` (the snapshot
  writer's own function); with a model loaded, the row of each emitted signal goes through
  :func:`app.research.learn.model_probability` (``frame.model_p``: signal id -> 0..1). With
  ``snapshots_dir`` (data-collection mode) every candidate's bracket is booked on an outcome
  tracker of its own, fed with the same events, and rows whose outcome is complete are written
  in batches (:func:`app.research.snapshots.write_partitioned`, one new file per batch, written
  to a temporary name and renamed): a crash loses at most the rows not yet written (the current
  batch and the candidates still open).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import KIND_TRADE, Instrument
from app.research import stats
from app.research.trades import baseline_rate, follow, matched_entries, measure, trade_result, trades_only

log = logging.getLogger(__name__)

#: random entries per signal in the window (evaluate uses 1000 over every session)
LIVE_DRAWS = 100
#: least seconds between two statistics runs
REFRESH_S = 5.0
#: candidate rows with a final outcome written per snapshot file (at most; also every FLUSH_S)
BATCH_ROWS = 200
#: least seconds between two snapshot files
FLUSH_S = 30.0


def _final(o) -> bool:
    return o is not None and (bool(o.complete) or bool(o.ended_early))


def signal_baseline(sig, ts: np.ndarray, px: np.ndarray, instrument: Instrument, draws: int, seed: int,
                    decision_delay_s: float, stop_slippage_ticks: int, commission_usd: float):
    """Random entries matched to one signal, drawn from the session so far (module docstring).

    Parameters
    ----------
    sig : Signal
        Entry / stop / target in exchange ticks.
    ts, px : np.ndarray int64 (M,)
        The session's trades so far: times (ns, ascending) and prices (ticks).
    instrument : Instrument
    draws : int
        Random entries (>= 1).
    seed : int
        With ``sig.id``, seeds the draws (the same signal always gets the same times).
    decision_delay_s, stop_slippage_ticks, commission_usd
        The profile's ``[outcomes]`` (s, ticks, USD per contract per side).

    Returns
    -------
    (net_usd, ticks, target_first, decided, complete)
        Arrays of shape (draws,) (float64, float64, bool, bool) and whether every entry's
        outcome is complete.
    """
    rng = np.random.default_rng([int(seed), int(sig.id)])
    t0 = int(ts[0])
    t1 = max(t0, min(int(sig.ts), int(ts[-1])))
    times = rng.integers(t0, t1 + 1, size=int(draws))
    fakes = matched_entries(sig, times, ts, px, 1)
    oc = follow(fakes, trades_only(ts, px), instrument, decision_delay_s, int(stop_slippage_ticks), commission_usd)
    res = [trade_result(f, oc.get(f.id), instrument.tick_value, commission_usd, stop_slippage_ticks) for f in fakes]
    done = all(oc[f.id].complete for f in fakes)
    return (np.array([r.net_usd for r in res]), np.array([r.ticks for r in res]),
            np.array([r.target_first for r in res], bool), np.array([r.decided for r in res], bool), done)


def session_summary(profile: str, signals, outcomes: dict, sessions_of: dict, ts: np.ndarray, px: np.ndarray,
                    instrument: Instrument, *, decision_delay_s: float = 2.0, stop_slippage_ticks: int = 1,
                    commission_usd: float = 2.25, draws: int = LIVE_DRAWS, seed: int = 0, boot_draws: int = 500,
                    cache: dict | None = None, ended: bool = False, cancel: threading.Event | None = None) -> dict:
    """The window's precision table for the session so far.

    Parameters
    ----------
    profile : str
        Profile name (the first row's label).
    signals : sequence of Signal
        The session's signals in time order, **brackets in exchange ticks**.
    outcomes : dict
        Signal id -> SignalOutcome (the engine's tracker).
    sessions_of : dict
        Signal id -> session label (the open, ns), the bootstrap's blocks.
    ts, px : np.ndarray int64 (M,)
        The session's trades so far (ns, ticks).
    instrument : Instrument
    decision_delay_s, stop_slippage_ticks, commission_usd
        The profile's ``[outcomes]`` (the costs the signals were booked with).
    draws : int
        Random entries per signal.
    seed : int
        Seeds the bootstrap and the random entries.
    boot_draws : int
        Session-bootstrap resamples.
    cache : dict, optional
        Signal id -> baseline arrays kept between calls (complete baselines are reused).
    ended : bool
        The data ended: every baseline is final.
    cancel : threading.Event, optional
        Set: stop between two signals' baselines and return what is measured so far without
        rows (the window is closing).

    Returns
    -------
    dict
        ``profile``, ``measured`` (signals with a final outcome), ``open`` (the others),
        ``draws``, and ``rows``: the profile row (``kind == "profile"``) then one per pattern
        (``kind == "citing"``, label ``"signals citing <pattern>"``), each with the keys of
        :func:`app.research.trades.measure` (without ``_usd``) plus ``baseline_rate`` (target-first
        rate of the random entries, :func:`app.research.trades.baseline_rate`),
        ``baseline_usd`` (their mean net USD per trade) and ``p_value``
        (:func:`app.research.stats.mc_p_value` of the mean net USD against the draws' means).
    """
    cache = {} if cache is None else cache
    done = [s for s in signals if _final(outcomes.get(s.id))]
    out = {"profile": profile, "measured": len(done), "open": len(signals) - len(done), "draws": int(draws),
           "rows": []}
    if not done or ts.shape[0] == 0:
        return out
    cols_b = []
    for s in done:
        if cancel is not None and cancel.is_set():
            return out
        got = cache.get(s.id)
        if got is None or not got[4]:
            got = signal_baseline(s, ts, px, instrument, draws, seed, decision_delay_s, stop_slippage_ticks,
                                  commission_usd)
            if ended:
                got = (*got[:4], True)
            cache[s.id] = got
        cols_b.append(got)
    bnet = np.column_stack([g[0] for g in cols_b])
    btf = np.column_stack([g[2] for g in cols_b])
    bdec = np.column_stack([g[3] for g in cols_b])
    rng = np.random.default_rng(seed)
    costs = (float(commission_usd), float(stop_slippage_ticks))
    tv = float(instrument.tick_value)

    def row(label, kind, idx):
        blk = measure([(done[i], outcomes.get(done[i].id)) for i in idx], [sessions_of.get(done[i].id, 0) for i in idx],
                      tv, costs, boot_draws, rng)
        usd = blk.pop("_usd")
        bm = bnet[:, idx].mean(axis=1)
        blk.update(label=label, kind=kind, baseline_rate=baseline_rate(btf[:, idx], bdec[:, idx]),
                   baseline_usd=float(bm.mean()), p_value=stats.mc_p_value(float(usd.mean()), bm))
        return blk

    out["rows"].append(row(f"{profile.capitalize()}: all signals", "profile", list(range(len(done)))))
    names = sorted({h.name for s in done for h in s.reasons})
    for name in names:
        idx = [i for i, s in enumerate(done) if any(h.name == name for h in s.reasons)]
        out["rows"].append(row(f"signals citing {name}", "citing", idx))
    return out


class LiveResearch:
    """The engine observer behind the window's precision table, model column and snapshots.

    Parameters
    ----------
    profile : str
        Profile name (labels, snapshot rows).
    model : dict, optional
        An active signal-quality model (:func:`app.research.learn.active_model`); None: the tape
        says no model is loaded.
    model_name : str
        Its file name, shown in the header tooltip.
    snapshots_dir : str or Path, optional
        Data-collection mode: write candidate snapshots under this folder.
    draws : int
        Random entries per signal.
    refresh_s : float
        Least seconds of ``clock`` between two statistics runs.
    clock : app.core.clock.Clock
        Monotonic clock of the refresh and flush timing.
    threaded : bool
        True (the window): statistics on a background thread; False: computed in
        :meth:`frame_fields` (headless tests, deterministic).
    seed : int
        Seeds the random entries and the bootstrap.

    Attributes
    ----------
    summary : dict or None
        The newest finished :func:`session_summary`.
    model_p : dict
        Signal id -> the model's probability of target first.
    snapshot_rows : int
        Candidate rows written so far; ``snapshot_files`` the files.
    error : str
        The last failure of a statistics run or a snapshot write ("" none); logged, never raised
        into the engine.
    """

    def __init__(self, profile: str, *, model: dict | None = None, model_name: str = "", snapshots_dir=None,
                 draws: int = LIVE_DRAWS, refresh_s: float = REFRESH_S, clock: Clock = SYSTEM_CLOCK,
                 threaded: bool = True, seed: int = 0, batch_rows: int = BATCH_ROWS, flush_s: float = FLUSH_S):
        self.profile = str(profile)
        self.model = model
        self.model_name = str(model_name) if model is not None else ""
        self.snapshots_dir = snapshots_dir
        self.draws = int(draws)
        self.refresh_ns = int(refresh_s * 1e9)
        self.flush_ns = int(flush_s * 1e9)
        self.batch_rows = int(batch_rows)
        self.clock = clock
        self.threaded = bool(threaded)
        self.seed = int(seed)
        self.summary: dict | None = None
        self.model_p: dict[int, float] = {}
        self.snapshot_rows = 0
        self.snapshot_files: list = []
        self.error = ""
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._cache: dict = {}
        self._asked_version = -1
        self._asked_ns = None
        self._ended = False
        self._engine = None
        self._nudge: threading.Timer | None = None
        self._collect_req = None  # (folder or None,) asked by the GUI thread, applied on the engine's
        self._write_dir = snapshots_dir  # where booked rows go (kept after collection is turned off)
        self._first_id = 0  # signals with a lower id belong to an earlier pass (new_session)
        self._reset_stream()

    # ------------------------------------------------------------------ engine hooks
    def _reset_stream(self) -> None:
        self._ts = np.zeros(4096, np.int64)
        self._px = np.zeros(4096, np.int64)
        self._n = 0
        self._sessions: dict[int, int] = {}
        self._cache = {}
        self._snap_rows: dict[int, tuple] = {}  # pseudo id -> (row, signal)
        self._snap_done: list[dict] = []
        self._snap_next = 1
        self._snap_tracker = None
        self._last_flush_ns = None

    def attach(self, engine) -> None:
        """Called by the engine once its analyzers and tracker exist (and again when it rebuilds
        them, e.g. automatic price rows: what this observer kept of the stream is dropped, the
        engine replays it)."""
        self._engine = engine
        self._reset_stream()
        tr = engine.tracker
        self.instrument = engine.instrument
        self.delay_s = tr.delay_ns / 1e9
        self.slip = int(tr.engine.slippage_ticks)
        self.commission = float(tr.commission)
        self._row_ticks = 1
        self.on_analyzers(engine)

    def on_analyzers(self, engine) -> None:
        """Become the analyzers' candidate hook when a model or a snapshot folder needs the rows.

        Called by :meth:`attach` and by the engine each time it builds its analyzers (they are
        built on first need, after a first start's background compile or a profile change)."""
        from app.research.snapshots import row_ticks_of

        ana = engine.analyzers
        if ana is not None and hasattr(ana, "candidate_hook") and (self.model is not None or self.snapshots_dir):
            ana.candidate_hook = self._on_candidates
            self._row_ticks = row_ticks_of(ana, engine.instrument) if hasattr(ana, "instrument") else 1
        if self.snapshots_dir and self._snap_tracker is None:
            from app.sim.outcomes import OutcomeTracker

            self._snap_tracker = OutcomeTracker(engine.instrument, self.delay_s, self.slip, self.commission)

    def set_collecting(self, folder) -> None:
        """Data-collection mode on (snapshots under ``folder``) or off (``None``); thread-safe
        (applied by the engine's thread at its next frame). Turned on mid-stream, the candidates'
        fill model starts from the events it sees from then on; turned off, no new candidate is
        recorded and the ones still open are written once their outcome is complete."""
        self._collect_req = (folder,)

    def _apply_collect(self, engine) -> None:
        req, self._collect_req = self._collect_req, None
        if req is None:
            return
        folder = req[0]
        self.snapshots_dir = folder
        if folder:
            self._write_dir = folder
            self.on_analyzers(engine)

    def new_session(self, engine) -> None:
        """The engine saw a new pass of the market (a replay restarted at earlier times,
        :meth:`app.live.engine.AnalysisEngine._new_pass`): the statistics start again with it.

        The trades kept for the random baseline are the new pass's alone (before, the old
        pass's trades stayed in front of them, so the "session so far" went back in time and
        grew with every pass: at maximum replay speed the baseline followed tens of passes of
        trades in Python on every refresh, and held the GIL the analysis needs). Only signals
        from this pass on are measured: a looped recording's later passes repeat the first
        one's signals, and counting them again would count one sample several times. Data
        collection books its open candidates as they stand (``ended_early``) and writes them;
        the candidates of the new pass are followed on its own events."""
        if self._snap_tracker is not None:
            self._snap_tracker.new_session()
            self._collect_snapshots(final=True)
            self._flush_snapshots()
        snap_tracker, snap_next = self._snap_tracker, self._snap_next
        self._reset_stream()
        self._snap_tracker, self._snap_next = snap_tracker, snap_next  # pseudo ids never reused
        self._first_id = max((int(x.id) for x in engine.all_signals), default=-1) + 1
        self._asked_version = -1
        self._asked_ns = None
        self._ended = False
        with self._lock:
            self.summary = None

    def on_market(self, raw: np.ndarray) -> None:
        """Raw events (exchange ticks) as the engine's outcome tracker gets them."""
        t = raw[raw["kind"] == KIND_TRADE]
        k = t.shape[0]
        if k:
            if self._n + k > self._ts.shape[0]:
                cap = max(2 * self._ts.shape[0], self._n + k)
                ts, px = np.zeros(cap, np.int64), np.zeros(cap, np.int64)
                ts[:self._n], px[:self._n] = self._ts[:self._n], self._px[:self._n]
                self._ts, self._px = ts, px  # a summary still running keeps the old arrays
            self._ts[self._n:self._n + k] = t["ts"]
            self._px[self._n:self._n + k] = t["price"]
            self._n += k
        if self._snap_tracker is not None:
            self._snap_tracker.on_market(raw)

    def on_signals(self, engine, signals) -> None:
        """New signals (the engine has added them to its tracker): remember their session."""
        s0 = int(getattr(engine.model, "session_start_ns", -1))
        for s in signals:
            self._sessions[int(s.id)] = s0

    def _on_candidates(self, ana, view, window, vs, fo, new_signals) -> None:
        from app.research.snapshots import candidate_rows

        try:
            rows = candidate_rows(ana, view, window, vs, fo, new_signals, self.instrument.symbol, self.profile,
                                  self._session_label(int(getattr(view, "session_start_ns", -1))))
            if self.model is not None:
                em = [r for r in rows if r["signal_id"] >= 0]
                if em:
                    from app.research.learn import model_probability

                    for r, p in zip(em, model_probability(self.model, em)):
                        self.model_p[int(r["signal_id"])] = float(p)
            if self._snap_tracker is not None and self.snapshots_dir:
                from app.research.snapshots import candidate_signal

                for r in rows:
                    sig = candidate_signal(r, self._row_ticks, self._snap_next)
                    self._snap_rows[self._snap_next] = (r, sig)
                    self._snap_tracker.add(sig.id, sig.ts, sig.side, sig.entry, sig.stop, sig.target)
                    self._snap_next += 1
        except Exception as exc:  # research must never stop the analysis: shown, logged
            self.error = f"candidate features failed: {exc}"
            log.exception("live research: candidate hook")

    def _session_label(self, start_ns: int) -> str:
        """``<symbol> live <session open, ISO UTC>`` (``<symbol> live`` without a calendar)."""
        import datetime as _dt

        if start_ns < 0:
            return f"{self.instrument.symbol} live"
        when = _dt.datetime.fromtimestamp(start_ns / 1e9, _dt.timezone.utc).isoformat(timespec="minutes")
        return f"{self.instrument.symbol} live {when}"

    def finish(self) -> None:
        """The data ended: open candidates are booked as they stand and written."""
        self._ended = True
        if self._snap_tracker is not None:
            self._snap_tracker.finish()
            self._collect_snapshots(final=True)
            self._flush_snapshots()

    def close(self) -> None:
        """Write what is left (data collection) and wait for a statistics run (bounded)."""
        if self._snap_tracker is not None:
            self._snap_tracker.finish()
            self._collect_snapshots(final=True)
            self._flush_snapshots()
            self._snap_tracker = None
        self._closing.set()
        nudge, self._nudge = self._nudge, None
        if nudge is not None:
            nudge.cancel()
            nudge.join(5.0)
        t = self._thread
        if t is not None:
            t.join(10.0)

    # ------------------------------------------------------------------ snapshots
    def _collect_snapshots(self, final: bool = False) -> None:
        from app.research.snapshots import book_row

        oc = self._snap_tracker.outcomes
        for pid in list(self._snap_rows):
            o = oc.get(pid)
            if final or (o is not None and o.complete):
                r, sig = self._snap_rows.pop(pid)
                book_row(r, sig, o, self.instrument.tick_value, self.commission)
                self._snap_done.append(r)

    def _flush_snapshots(self) -> None:
        if not self._snap_done:
            return
        from app.research.snapshots import write_partitioned

        rows, self._snap_done = self._snap_done, []
        try:
            files = write_partitioned(self._write_dir, self.instrument.symbol, rows, f"{self.profile}-live")
        except Exception as exc:  # a full disk must be seen, and the analysis goes on
            self.error = f"snapshots not written to {self._write_dir}: {exc}"
            log.error("live research: %s", self.error)
            return
        self.snapshot_files.extend(files)
        self.snapshot_rows += len(rows)

    # ------------------------------------------------------------------ frames
    def frame_fields(self, engine) -> dict:
        """The frame's research fields; starts a statistics run / writes snapshots when due."""
        now = self.clock.monotonic_ns()
        if self._collect_req is not None:
            self._apply_collect(engine)
        if self._snap_tracker is not None:
            self._collect_snapshots()
            if self._last_flush_ns is None:
                self._last_flush_ns = now
            if len(self._snap_done) >= self.batch_rows or (self._snap_done and now - self._last_flush_ns >= self.flush_ns):
                self._flush_snapshots()
                self._last_flush_ns = now
            if not self.snapshots_dir and not self._snap_rows:  # turned off and nothing open
                self._flush_snapshots()
                self._snap_tracker = None
        ver = engine.tracker.version
        due = self._asked_ns is None or now - self._asked_ns >= self.refresh_ns
        if ver != self._asked_version and self._n:
            if due and not self._busy:
                self._asked_version, self._asked_ns = ver, now
                self._start_summary(engine)
            elif not self._busy and self.threaded and self._nudge is None and not self._closing.is_set():
                # changed, not yet due: a frame is asked for when it is (no new event may come,
                # e.g. at the end of a replay), so the table never stays behind
                wait = max(0.0, (self._asked_ns + self.refresh_ns - now) / 1e9)
                self._nudge = threading.Timer(wait, self._publish_soon)
                self._nudge.daemon = True
                self._nudge.start()
        return {"session_stats": self.summary, "model_p": dict(self.model_p), "model_name": self.model_name}

    def _start_summary(self, engine) -> None:
        from app.market.grouping import bracket_to_ticks

        k = engine.row_ticks
        sigs = []
        for s in engine.all_signals:
            if s.id < self._first_id:  # an earlier pass of a looped replay (new_session)
                continue
            e, st, tg = bracket_to_ticks(s.side, s.entry, s.stop, s.target, k)
            sigs.append(replace(s, entry=e, stop=st, target=tg))
        args = (self.profile, sigs, dict(engine.tracker.outcomes), dict(self._sessions),
                self._ts[:self._n], self._px[:self._n], self.instrument)
        kw = dict(decision_delay_s=self.delay_s, stop_slippage_ticks=self.slip, commission_usd=self.commission,
                  draws=self.draws, seed=self.seed, cache=self._cache, ended=self._ended, cancel=self._closing)
        if not self.threaded:
            self._run_summary(args, kw)
            return
        self._busy = True
        self._thread = threading.Thread(target=self._run_summary, args=(args, kw), name="mia-session-stats",
                                        daemon=True)
        self._thread.start()

    def _run_summary(self, args, kw) -> None:
        try:
            s = session_summary(*args, **kw)
            if self._closing.is_set():
                return
            with self._lock:
                self.summary = s
        except Exception as exc:
            self.error = f"session statistics failed: {exc}"
            log.exception("live research: session statistics")
        finally:
            self._busy = False
            if self.threaded and not self._closing.is_set():
                self._publish_soon()

    def _publish_soon(self) -> None:
        """Ask the engine for a frame (its thread then takes the new summary or starts one)."""
        self._nudge = None
        fn = getattr(self._engine, "request_publish", None)
        if callable(fn):
            fn()

