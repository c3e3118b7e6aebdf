"""The worker engine: market model + analyzers on one thread, publishing immutable frames.

Flow (DESIGN.md section 2)::

    submit(batch) --queue--> worker thread: MarketModel.apply -> Analyzers.step (every
    analysis interval of market time) -> AnalysisFrame (copies) -> on_frame(frame)
                                         OutcomeTracker.on_market <- the same events; each new
                                         signal's bracket booked on the paper fill model

Price rows
----------
The model works in rows of ``engine.row_ticks`` exchange ticks (``app.market.grouping``): every
batch goes through a :class:`~app.market.grouping.PriceGrouper` before the model, whose
instrument is :func:`~app.market.grouping.grouped_instrument` (:attr:`AnalysisEngine.model_instrument`).
With ``row_ticks = 0`` (automatic) the engine runs on one-tick rows and keeps a copy of the
stream until it has seen one minute of trades (or ``_HOLD_MAX_EVENTS`` events, or
:meth:`finish`), then picks the rows from them (:func:`~app.market.grouping.auto_row_ticks`).
When that is 1 (ES) nothing changes. Otherwise the model, the analyzers (signal ids continue)
and the outcome tracker are built again on the new rows and the kept events replayed through
them, exactly as if the rows had been known from the start (steps run in market time); what
the one-tick first minute produced is replaced (signals there need two bars: rare). Frames,
signals and patterns are in rows (``frame.tick_size`` is the row's price step,
``frame.row_ticks`` its ticks); outcomes are booked in exchange ticks on the raw stream.

Profile changes
---------------
:meth:`AnalysisEngine.set_profile` applies another profile to the running analysis between two
batches, in stream order (no restart of the source, no event replayed or lost, market time never
goes back): the analyzers are rebuilt on it with the signal ids continuing, the book stays, and a
change of heatmap column width, rows or bar width rebuilds the model from the current book (the
session's volume profile, cumulative delta and VWAP carried over; heatmap history, bars and the
recent-trades window restart at the change). The method's docstring lists what stays and what
restarts. A swap takes about 0.1 s of the worker's time with the shipped profiles.
First start (background compile)
--------------------------------
:meth:`AnalysisEngine.start` does not wait for numba: a second thread (``mia-compile``)
compiles or loads the kernels (:meth:`AnalysisEngine.warm_up`'s work, on throwaway instances)
while the worker already applies the stream to the market model on its NumPy twins
(:meth:`app.market.model.MarketModel.set_kernels`) and publishes frames with the book, heatmap
and bars but no analysis (``frame.analysis_ready`` False, ``state == "compiling"``). The events
of that time are kept (at most ``_HOLD_MAX_EVENTS``); once the kernels are ready the worker
switches the model to them, builds the analyzers and replays the kept events through a fresh
model, analyzers and outcome tracker, exactly as if the kernels had been ready from the start
(the same steps and signals as a warm start; the signals found in the replay are the next
frame's ``new_signals``). Past that many events the replay is skipped and the analysis starts
from the switch. A compile that fails is reported; the book keeps running on the twins and
the analysis stays off (``compile_failed``). The analyzers themselves are built on first need
(:meth:`warm_up`, the first step, or that switch), never in the constructor: building them
runs kernels (the VIX history), which compile on a first start.

Outcomes
--------
Every signal is followed by :class:`app.sim.outcomes.OutcomeTracker`, fed with the same events
as the model: its bracket enters ``outcomes.decision_delay_s`` after the signal and is filled by
the paper broker's fill engine with the profile's ``outcomes.stop_slippage_ticks`` and
``outcomes.commission_per_contract_usd`` (:attr:`AnalysisEngine.outcomes`, ``frame.outcomes``).

Timing rule
-----------
Analysis steps are scheduled in **market time** (the events' ``ts``), never wall time: a step
runs at every multiple of ``engine.analysis_interval_ms`` that the stream crosses, and sees
exactly the events stamped before it. Intervals with no event are skipped (nothing changed).
So a replay at maximum speed, a replay at 1x and the synchronous path give the same steps and
the same signals for the same input, whatever the batch sizes. Frames are published to the GUI
at most every ``publish_interval_s`` of the engine's monotonic clock (``clock``, the system
clock by default; the GUI shows the newest anyway) and at once when a step produced a signal.
A changed state is never held longer than that: when the queue runs dry the worker waits for
the next batch only until the next publish is due (last publish + ``publish_interval_s``), then
publishes; when that time has already passed it publishes at once.
Batches queued behind one another are applied in one go, but only as many events as the
engine's measured cost per event lets it apply before the next publish is due (at least
1,024, at most 32,768), so a fast replay still gets a frame per publish interval; a batch
longer than one interval's worth (one socket read of a fast replay holds thousands of events)
is applied in pieces of that size, cut at batch ends, with a frame between pieces when due.
(An idle worker with nothing new waits on the queue; :meth:`stop` wakes it.) The worker's
waits on the queue are real time; with a clock that has ``add_listener``
(:class:`~app.core.clock.ManualClock`) every move of the clock wakes the worker, which then
re-reads the clock, so a test decides exactly when a publish is due.

Errors
------
An exception in an analyzer step is caught, its traceback is sent to ``on_error`` and put in
the next ``AnalysisFrame.error``, and the engine keeps running (the market model is intact).
``AnalysisFrame.error`` carries only what is new since the previous frame: the newest error
text reported since then, else ``""`` (a consumer that shows it once per frame shows each error
once). ``frame.timings["errors_new"]`` counts the errors since the previous frame and
``frame.timings["errors_total"]`` all errors of the run (:attr:`AnalysisEngine.errors`);
:attr:`AnalysisEngine.last_error` keeps the newest text. An
exception in the market model (the book may be inconsistent) is reported the same way and
stops the worker with ``state == "error"``. Nothing is swallowed silently.

Threads: the worker owns every mutable array; ``submit`` only enqueues (O(1)); ``on_frame`` and
``on_error`` are called on the worker thread (a GUI hands them to its own thread).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
import traceback
from typing import Callable

import numpy as np

from app.analysis.frame import AnalysisFrame
from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import EVENT_DTYPE, FLAG_SNAPSHOT, KIND_TRADE, OP_CLEAR, Instrument, chunks
from app.core.sessions import calendar_for
from app.market.grouping import AUTO_WINDOW_NS, PriceGrouper, auto_row_ticks, bracket_to_ticks, grouped_instrument
from app.sim.outcomes import OutcomeTracker

log = logging.getLogger(__name__)

#: Market time going back by more than this (ns) at a book snapshot starts a new pass of the
#: market (a replay restarted; :meth:`AnalysisEngine._process`).
NEW_PASS_BACK_NS = 1_000_000_000

#: Engine keys and the defaults used when a profile lacks them.
ENGINE_DEFAULTS = {
    "engine.analysis_interval_ms": 250,
    "engine.heatmap_column_ms": 250,
    "engine.heatmap_rows": 400,
    "engine.bar_seconds": 60,
    "engine.row_ticks": 1,
    "outcomes.decision_delay_s": 2.0,
    "outcomes.stop_slippage_ticks": 1,
    "outcomes.commission_per_contract_usd": 2.25,
}

STATES = ("idle", "compiling", "running", "stopped", "error")

_STOP = object()
_NO_VIX = object()  # no live VIX level was set
_RELATION_KEPT = 4096  # relation rows (seconds) kept for analyzers built later
_WAKE = object()  # put on the queue when an injected clock moved: re-read it (ManualClock)

#: With automatic rows, the most events held before the rows are chosen anyway.
_HOLD_MAX_EVENTS = 2_000_000

#: Longest single wait on the queue when nothing is waiting to be published (s); a stop request
#: wakes the worker at once through the queue, so this only bounds a lost wake-up.
_IDLE_WAIT_S = 0.5

#: Queued batches are applied together, up to what the engine can apply before the next publish
#: is due (its measured cost per event, :meth:`AnalysisEngine._coalesce_limit`), within these
#: bounds (events). A fixed 32,768 made one iteration ~70 ms at maximum replay speed on ES, so
#: at most ~14 frames/s while a burst of data was applied.
_COALESCE_MIN = 1_024
_COALESCE_MAX = 32_768
#: A batch longer than what the engine applies in one publish interval is applied in pieces of
#: that size, at least this many events (:meth:`AnalysisEngine._apply_in_pieces`).
_PIECE_MIN = 128


def resolve_profile(profile, overrides: dict | None = None):
    """A profile object from a name, a profile object or ``None`` (``production``).

    Raises
    ------
    app.config.schema.ConfigError
        Unknown profile name or bad override (names the key and the allowed range).
    """
    if profile is None:
        profile = "production"
    if isinstance(profile, str):
        from app.config.profiles import load_profile

        return load_profile(profile, overrides)
    return profile


def _make_analyzers(profile, instrument, vix_history, use_numba=True, first_signal_id=1):
    from app.analysis.analyzers import Analyzers

    return Analyzers(profile, instrument, vix_history=vix_history, use_numba=use_numba,
                     first_signal_id=first_signal_id)


class AnalysisEngine:
    """Market model and analyzers on a worker thread (or synchronously).

    Parameters
    ----------
    instrument : Instrument
        Symbol, tick size and tick value.
    profile : Profile or str or None
        An analysis profile (``app.config.profiles.Profile``) or its name; ``None`` =
        ``production``. Its ``engine.*`` keys size the model and time the steps.
    on_frame : callable(AnalysisFrame) -> None, optional
        Receives every published frame (on the worker thread).
    vix_history : optional
        Daily VIX history handed to the analyzers (``app.feeds.vix_history.VixHistory``).
    on_error : callable(str) -> None, optional
        Receives error texts with their traceback (on the worker thread).
    use_numba : bool
        False runs the plain NumPy/Python twins of the model's kernels.
    history_s : float
        Seconds of full-resolution heatmap history (tier 0, default 15 minutes); older columns
        live on in the model's coarser tiers for the whole session
        (:meth:`app.market.model.MarketModel.history_window`).
    window_cols : int
        Heatmap columns in a frame and in the analyzers' view.
    publish_interval_s : float
        Minimum wall time between two frames (a signal publishes at once), s. A changed state
        is published at most this long after the previous frame (never later for lack of new
        batches).
    analyzers : object, optional
        Use this analyzer facade (``step(view) -> StepResult``) instead of building
        ``app.analysis.analyzers.Analyzers`` (tests).
    clock : app.core.clock.Clock, optional
        Monotonic clock of the publish timing and of ``events_per_s`` (default the system
        clock). Step and frame timings (``frame.timings``) stay CPU measurements
        (``time.perf_counter``).
    calendar : app.core.sessions.SessionCalendar, "auto" or None
        Trading sessions: the volume profile and the cumulative delta restart at each open.
        ``"auto"`` (default) picks it from ``instrument.exchange``
        (:func:`app.core.sessions.calendar_for`); None never resets.
    first_signal_id : int
        Id of the run's first signal (see ``Analyzers``): a live window passes the journal's next
        free id so ids are unique across restarts; default 1 (reproducible headless runs).
    observer : object, optional
        The window's research (``app.research.live.LiveResearch``; this floor does not import
        it): ``attach(engine)`` once the analyzers and tracker exist (again when they are
        rebuilt), ``on_market(raw)`` with the events the tracker gets, ``on_signals(engine,
        new)`` after the tracker added them, ``finish()`` at the end of the data, ``close()``
        on :meth:`stop`, and ``frame_fields(engine) -> dict`` whose keys go into every frame
        (``session_stats``, ``model_p``, ``model_name``), and ``on_analyzers(engine)`` each time
        the engine builds its analyzers (first need, profile change). Called on the worker thread.
    precompile : tuple of callables, optional
        Run first on the compile thread of :meth:`start` (no arguments; an error is logged):
        kernels other threads need at once, compiled before the analyzers' (see "First start").
    step_lock : threading.Lock, optional
        Held while the worker applies a batch and while it builds a frame: engines of several
        instruments sharing one lock take turns (no GIL contention between their Python
        parts), each on its own thread with its own queue (``app.live.instruments``; measured
        there). Default: no lock.

    Attributes
    ----------
    model : app.market.model.MarketModel
        The market state (owned by the worker while it runs).
    state : str
        ``idle``, ``compiling``, ``running``, ``stopped`` or ``error``.
    compile_seconds : float
        Time of the first kernel compile / cache load (:meth:`warm_up`).
    analysis_ready : bool
        False from :meth:`start` until the kernels are compiled (see "First start" above).
    compile_failed : bool
        The background compile raised (reported; the analysis stays off).
    steps : int
        Analysis steps run.
    all_signals : list of Signal
        Every signal of the run, in order (``analyze`` prints them).
    row_ticks : int
        Exchange ticks per model row (1 until chosen when automatic).
    model_instrument : Instrument
        The model's instrument: rows of ``row_ticks`` ticks.
    tracker : app.sim.outcomes.OutcomeTracker
        Books every signal's bracket on the paper fill model (see "Outcomes" above).
    errors : int
        Errors reported; ``last_error`` is the newest text with its traceback.
    analysis_interval_ns : int
        Step period in market time, ns.

    Examples
    --------
    Headless and deterministic (what ``mia-elite analyze`` does)::

        eng = AnalysisEngine(rec.instrument, "production")
        for chunk in chunks(rec.events):
            eng.process(chunk)
        eng.finish(end_of_data=True)
        frame = eng.snapshot_frame()

    Live: ``eng.start()``; the source calls ``eng.submit(batch)``; ``on_frame`` receives frames
    on the worker thread; ``eng.stop()`` joins it.
    """

    def __init__(
        self,
        instrument: Instrument,
        profile=None,
        on_frame: Callable[[AnalysisFrame], None] | None = None,
        vix_history=None,
        on_error: Callable[[str], None] | None = None,
        *,
        use_numba: bool = True,
        history_s: float = 900.0,
        window_cols: int = 1500,
        publish_interval_s: float = 0.05,
        analyzers=None,
        clock: Clock = SYSTEM_CLOCK,
        calendar="auto",
        first_signal_id: int = 1,
        observer=None,
        precompile: tuple = (),
        step_lock=None,
    ):
        from app.market.model import MarketModel  # imports numba kernels (cache set up there)

        self.instrument = instrument
        self.profile = resolve_profile(profile)
        self.on_frame = on_frame
        self.on_error = on_error
        g = self._pget
        self.analysis_interval_ns = int(g("engine.analysis_interval_ms")) * 1_000_000
        self._history_s = float(history_s)
        self._window_cols = int(window_cols)
        self._calendar = calendar_for(instrument.exchange) if calendar == "auto" else calendar
        self.use_numba = use_numba
        self._model_args = self._profile_model_args()
        rt = int(g("engine.row_ticks"))
        self.row_ticks = max(rt, 1)
        self._held: list | None = [] if rt == 0 else None  # automatic rows: batches held until chosen
        self._held_n = 0
        self._held_t0: int | None = None
        self.grouper = PriceGrouper(self.row_ticks)
        self.model_instrument = grouped_instrument(instrument, self.row_ticks)
        self.model = MarketModel(self.model_instrument, **self._model_args)
        self._vix_history = vix_history
        self._carried_signals: tuple = ()  # recent signals of the analyzers before a profile change
        self._events_offset = 0  # events applied by models replaced at a profile change
        self._relation_fresh = False  # reset_relation ran since the last new pass
        self._after_clear = False  # the last event applied cleared the book (OP_CLEAR)
        #: new passes of the market seen (market time went back at a snapshot: :meth:`_new_pass`)
        self.new_passes = 0
        self.profile_changes = 0
        self._own_analyzers = analyzers is None
        self._first_signal_id = first_signal_id
        # own analyzers are built on first need (_ensure_analyzers): building them runs kernels
        self.analyzers = analyzers
        self._live_vix = _NO_VIX  # the last intraday VIX level handed in (analyzers built later, profiles)
        # the newest relation rows handed in (for analyzers built later: first start, profiles)
        self._relation_kept: collections.deque = collections.deque(maxlen=_RELATION_KEPT)
        self._analysis_ready = True  # False from start() until the kernels run and the compile time is replayed
        self._analyzing = True  # False from start() until the kernels are compiled (steps are held)
        self._switched = True
        self._compile_held: list | None = None  # events applied while the kernels compile
        self._compile_held_n = 0
        self._compiled = threading.Event()
        self._compile_thread: threading.Thread | None = None
        self.compile_failed = False
        self._precompile = tuple(precompile)
        self.tracker = self._new_tracker()
        self._outcomes_version = -1
        self._outcomes_snap: dict = {}
        self._precision_snap: dict = {}
        self.clock = clock
        self.publish_interval_s = float(publish_interval_s)
        self._publish_interval_ns = int(round(self.publish_interval_s * 1e9))
        self.compile_seconds = 0.0
        self.errors = 0
        self.last_error = ""
        self._errors_framed = 0  # self.errors when the previous frame was built
        self.steps = 0
        self.all_signals: list = []
        self.dropped_batches = 0
        self._state = "idle"
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._next_step: int | None = None
        self._dirty_since_step = False
        self._last = None  # last StepResult
        self._recent_patterns: list = []
        self._pending_signals: list = []
        self._seq = 0
        self._timings: dict = {}
        self._rate_t0 = clock.monotonic_ns()
        self._rate_n0 = 0
        self._rate = 0.0
        self._last_publish_ns = 0
        self._ns_per_event = 0.0  # measured cost of applying one event (moving average), ns
        self._submitted_n = 0  # events submitted (written by the submitting thread only)
        self._taken_n = 0  # events the worker took off the queue (written by the worker only)
        self.observer = observer
        self._step_lock = step_lock if step_lock is not None else contextlib.nullcontext()
        if observer is not None:
            observer.attach(self)
        self._hist_lock = threading.Lock()
        self._hist_req = None  # the newest history request not answered yet (id, args)
        self._hist_ids = 0
        self._history = None  # the newest answer (HistoryImage), carried by every frame

    # ------------------------------------------------------------------ small helpers
    def _new_tracker(self) -> OutcomeTracker:
        g = self._pget
        return OutcomeTracker(self.instrument, float(g("outcomes.decision_delay_s")),
                              int(g("outcomes.stop_slippage_ticks")), float(g("outcomes.commission_per_contract_usd")))

    def _profile_model_args(self) -> dict:
        """The :class:`~app.market.model.MarketModel` keyword arguments of :attr:`profile`."""
        g = self._pget
        column_ns = int(g("engine.heatmap_column_ms")) * 1_000_000
        history_cols = int(np.ceil(self._history_s * 1e9 / column_ns))
        return dict(
            rows=int(g("engine.heatmap_rows")),
            column_ns=column_ns,
            history_s=self._history_s,
            window_cols=min(self._window_cols, history_cols),
            bar_ns=int(g("engine.bar_seconds")) * 1_000_000_000,
            use_numba=self.use_numba,
            calendar=self._calendar,
        )

    def _pget(self, key: str):
        try:
            v = self.profile.get(key)
        except (KeyError, AttributeError):
            v = None
        return ENGINE_DEFAULTS[key] if v is None else v

    @property
    def state(self) -> str:
        """``idle``, ``compiling``, ``running``, ``stopped`` or ``error``."""
        return self._state

    @property
    def analysis_ready(self) -> bool:
        """True once the analyzers run (always on the synchronous path; when started with
        :meth:`start`, once the background compile is done and the events held meanwhile have
        been analysed)."""
        return self._analysis_ready

    @property
    def backlog(self) -> int:
        """Batches waiting in the queue (approximate)."""
        return self._q.qsize()

    def _report(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        if self.errors <= 5 or self.errors % 1000 == 0:
            log.error("analysis engine error #%d:\n%s", self.errors, text)
        if self.on_error is not None:
            try:
                self.on_error(text)
            except Exception:  # an error handler that fails must not kill the worker
                log.exception("on_error callback failed")

    # ------------------------------------------------------------------ synchronous path
    def warm_up(self) -> float:
        """Compile (or load from the numba cache) every kernel, then build the analyzers;
        returns the seconds taken.

        Runs a few events through a small throwaway model, then one step of a throwaway
        analyzer set on its view (or the analyzers' own ``warm_up()`` when they have one).
        The time is :attr:`compile_seconds` and ``frame.timings["compile_s"]``.
        """
        seconds = self._compile_kernels()
        self._ensure_analyzers()
        return seconds

    def _ensure_analyzers(self):
        """The analyzers, built now when they are the engine's own and do not exist yet."""
        if self.analyzers is None and self._own_analyzers:
            self.analyzers = _make_analyzers(self.profile, self.model_instrument, self._vix_history,
                                             use_numba=self.use_numba, first_signal_id=self._first_signal_id)
            if self._live_vix is not _NO_VIX:
                self._control(("vix", self._live_vix))
            if self._relation_kept:
                self._give_relation(np.array(list(self._relation_kept)))
            if self.observer is not None:
                self.observer.on_analyzers(self)
        return self.analyzers

    def _compile_kernels(self) -> float:
        """The compile work of :meth:`warm_up` on throwaway instances (any thread); seconds."""
        from app.core.events import depth_events, trade_events
        from app.market.model import MarketModel

        t0 = time.perf_counter()
        m = MarketModel(self.instrument, rows=20, column_ns=1_000_000, history_s=0.05,
                        window_cols=10, bar_ns=5_000_000, max_bars=2, grid=256,
                        use_numba=self.use_numba)
        d = depth_events([0, 1, 2, 3_000_000], [1000, 1001, 1000, 1001], [5.0, 6.0, 0.0, 2.0],
                         [1, 2, 1, 2], [1, 1, 2, 1])
        tr = trade_events([4_000_000, 9_000_000], [1001, 1000], [1.0, 2.0], [2, 1])
        ev = np.concatenate([d, tr])
        ev.sort(order="ts", kind="stable")
        m.apply(ev)
        m.view()
        m.frame_parts()
        warm = getattr(self.analyzers, "warm_up", None)
        if callable(warm):
            warm()
        elif self._own_analyzers:
            # compile (or load) the analyzers' kernels on a throwaway instance: the real one's
            # state (re-fire memory, outcomes) must only ever see the real stream
            try:
                _make_analyzers(self.profile, self.instrument, self._vix_history,
                                use_numba=self.use_numba).step(m.view())
            except Exception:
                self._report("analyzer warm-up failed:\n" + traceback.format_exc())
        self.compile_seconds = time.perf_counter() - t0
        self._timings["compile_s"] = round(self.compile_seconds, 4)
        return self.compile_seconds

    def process(self, batch: np.ndarray) -> None:
        """Apply a batch (1-D :data:`EVENT_DTYPE`, time order) and run the analysis steps whose
        market time it crosses. Used by the worker thread and directly by headless callers.
        (Events whose time goes backwards are applied in arrival order; they never trigger a
        step for a time already passed.)

        Raises
        ------
        TypeError
            If ``batch`` is not an EVENT_DTYPE array.
        Exception
            Whatever the market model raises (analyzer errors are caught and reported).
        """
        if not isinstance(batch, np.ndarray) or batch.dtype != EVENT_DTYPE:
            raise TypeError(f"batch must be an EVENT_DTYPE array, got {getattr(batch, 'dtype', type(batch))}")
        if len(batch) == 0:
            return
        self._process(batch)
        if self._compile_held is not None:  # the kernels compile: keep the stream to replay it
            if self._compile_held_n + len(batch) <= _HOLD_MAX_EVENTS:
                self._compile_held.append(batch)
                self._compile_held_n += len(batch)
            else:
                log.warning("%s: more than %d events while the analyzers compiled; the analysis starts "
                            "from the end of the compile, not from the first event", self.instrument.symbol,
                            _HOLD_MAX_EVENTS)
                self._compile_held = None
        if self._held is not None:  # automatic rows not chosen yet: keep a copy of the stream
            self._held.append(batch)
            self._held_n += len(batch)
            tr = batch["ts"][batch["kind"] == KIND_TRADE]
            if len(tr) and self._held_t0 is None:
                self._held_t0 = int(tr[0])
            full = len(tr) > 0 and int(tr[-1]) >= self._held_t0 + AUTO_WINDOW_NS
            if full or self._held_n >= _HOLD_MAX_EVENTS:
                self._choose_rows()

    def _choose_rows(self) -> None:
        """Automatic rows: pick them from the kept events; on more than one tick, rebuild and replay."""
        held = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        self._held = None
        t = held[held["kind"] == KIND_TRADE]
        k = auto_row_ticks(t["ts"], t["price"])
        log.info("%s: %d exchange tick(s) per price row", self.instrument.symbol, k)
        if k == self.row_ticks:
            return
        self.row_ticks = k
        self._replay_kept(held)

    def _empty_model(self):
        """A market model of :attr:`profile`'s geometry with nothing applied (on the NumPy twins
        while the kernels still compile on another thread)."""
        from app.market.model import MarketModel

        model = MarketModel(self.model_instrument, **self._model_args)
        if not self._analyzing:
            model.set_kernels(False)
        return model

    def _rebuild(self) -> None:
        """A fresh model, analyzers (when built; signal ids continue) and outcome tracker on
        :attr:`row_ticks`, before a replay of kept events."""
        self.grouper = PriceGrouper(self.row_ticks)
        self.model_instrument = grouped_instrument(self.instrument, self.row_ticks)
        self.model = self._empty_model()
        if self._own_analyzers and self.analyzers is not None:
            next_id = getattr(self.analyzers, "_next_id", self._first_signal_id)  # ids are never reused
            self.analyzers = _make_analyzers(self.profile, self.model_instrument, self._vix_history,
                                             use_numba=self.use_numba, first_signal_id=next_id)
        self.tracker = self._new_tracker()
        if self.observer is not None:
            self.observer.attach(self)
        self._outcomes_version = -1
        self._next_step = None
        self._dirty_since_step = False
        self._last = None
        self.steps = 0
        self.all_signals = []
        self._pending_signals = []
        self._recent_patterns = []

    def _replay_kept(self, kept: np.ndarray, analyzers: bool = False) -> None:
        """Rebuild (:meth:`_rebuild`) and apply ``kept`` again: the newest events received, which
        the old model has applied already. The event count and :attr:`new_passes` stay what they
        were before: a restart of the replay inside ``kept`` was counted when it was first applied
        (counting it again put ``frame.events_total`` a whole pass ahead of the events received)."""
        events, passes = self.events_applied, self.new_passes
        self._rebuild()
        if analyzers:
            self._ensure_analyzers()
        self._process(kept)
        self._events_offset += events - self.events_applied
        self.new_passes = passes

    def _process(self, raw: np.ndarray) -> None:
        k = self._new_pass_at(raw)
        if k is not None:
            if k:
                self._process_part(raw[:k])
            self._new_pass(int(raw["ts"][k]))
            self._process(raw[k:])  # later passes in the same batch, if any
            return
        self._process_part(raw)

    def _new_pass_at(self, raw: np.ndarray) -> int | None:
        """Index of the first event of a new pass of the market in ``raw``, or None: market time
        goes back by more than :data:`NEW_PASS_BACK_NS` at a book snapshot (``OP_CLEAR`` or
        ``FLAG_SNAPSHOT``) or right after the book was cleared, as when a replay restarts (the
        built-in server's restart arrives as a clear stamped with the old pass's last time, then
        the new pass from its start). A smaller step back, or one away from a snapshot (a live
        feed's late event), is applied in arrival order as before."""
        ts = raw["ts"]
        before = np.empty(len(ts), np.int64)
        before[0] = self.model.ts if self.model.anchored else np.iinfo(np.int64).min // 2
        if len(ts) > 1:
            np.maximum.accumulate(ts[:-1], out=before[1:])
            before[1:] = np.maximum(before[1:], before[0])
        op = raw["op"]
        after_clear = np.empty(len(ts), bool)  # the event before it cleared the book
        after_clear[0] = self._after_clear
        after_clear[1:] = op[:-1] == OP_CLEAR
        back = np.flatnonzero((ts < before - NEW_PASS_BACK_NS)
                              & ((op == OP_CLEAR) | ((raw["flags"] & FLAG_SNAPSHOT) != 0) | after_clear))
        return int(back[0]) if back.size else None

    def _new_pass(self, ts_ns: int) -> None:
        """Market time went back at a snapshot (a replay restarted): a new session of the market.
        The market model starts empty (heatmap, bars, profile, VWAP: the new pass's own), the
        analysis clock starts at the new time (steps ran only past the old pass's time before),
        the outcome tracker ends the old pass's open outcomes (``ended_early``) and keeps the
        finished ones; the analyzers are built afresh (their rolling statistics and confluence
        windows held the old pass's later times: a second pass fired no signal); signal ids and
        the event count go on."""
        old = self.model
        log.info("%s: market time went back %.1f s at a book snapshot: a new session (the replay restarted); "
                 "market model, analysis clock and open outcomes start again", self.instrument.symbol,
                 (old.ts - ts_ns) / 1e9)
        self.model = self._empty_model()
        self._events_offset += old.events_applied
        self._next_step = None
        self._dirty_since_step = False
        self._history = None
        self.tracker.new_session()
        if not self._relation_fresh:  # no reset_relation since: the rows kept are the old pass's
            self._relation_kept.clear()
        self._relation_fresh = False
        if self._own_analyzers and self.analyzers is not None:  # None: still compiling, built later
            self._remake_analyzers()
        self._last = None
        self._recent_patterns = []
        self.new_passes += 1
        new_session = getattr(self.observer, "new_session", None)
        if callable(new_session):  # the research statistics start again with the pass
            new_session(self)

    def _process_part(self, raw: np.ndarray) -> None:
        self._after_clear = bool(raw["op"][-1] == OP_CLEAR)
        batch = self.grouper.apply(raw)  # rows for the model; the raw stream for the outcomes
        n = len(batch)
        ts = batch["ts"]
        iv = self.analysis_interval_ns
        i = 0
        t_book = 0.0
        while i < n:
            if self._next_step is None:
                self._next_step = (int(ts[i]) // iv + 1) * iv
            j = i + int(np.searchsorted(ts[i:], self._next_step, side="left"))
            if j == i and ts[i] < self._next_step:  # time went backwards in the batch
                j = i + 1
            if j > i:
                t0 = time.perf_counter()
                self.model.apply(batch[i:j])
                t_book += time.perf_counter() - t0
                self.tracker.on_market(raw[i:j])
                if self.observer is not None:
                    self.observer.on_market(raw[i:j])
                self._dirty_since_step = True
            if j >= n:
                break
            self._step(self._next_step)
            self._next_step = (int(ts[j]) // iv + 1) * iv
            i = j
        self._timings["book"] = round(t_book * 1e3, 4)

    def finish(self, end_of_data: bool = False) -> None:
        """Run a last analysis step over the events applied since the previous one.

        With ``end_of_data`` the outcome tracker is told the data ended (open signal outcomes are
        marked ``ended_early``), and :attr:`outcomes` / :attr:`precision` are final.
        """
        if self._held:  # automatic rows: decide with what there is
            self._choose_rows()
        if self._dirty_since_step and self._next_step is not None:
            self._step(self._next_step)
        if end_of_data:
            self.tracker.finish()
            if self.observer is not None:
                self.observer.finish()
            self._snap_outcomes()

    def _snap_outcomes(self) -> None:
        """Fresh copies of the outcomes and precision when the tracker changed (frames keep theirs)."""
        if self.tracker.version != self._outcomes_version:
            self._outcomes_version = self.tracker.version
            self._outcomes_snap = dict(self.tracker.outcomes)
            self._precision_snap = dict(self.tracker.precision())

    @property
    def outcomes(self) -> dict:
        """Latest :class:`~app.sim.outcomes.SignalOutcome` per signal id (a copy)."""
        return dict(self.tracker.outcomes)

    @property
    def precision(self) -> dict:
        """Per pattern ``(decided, target exits, precision)`` (from the outcome tracker)."""
        return dict(self.tracker.precision())

    def _step(self, step_ts: int) -> None:
        self._dirty_since_step = False
        if not self._analyzing:
            return  # the kernels compile (first start): the book runs, the steps are replayed when ready
        self.steps += 1
        if self._ensure_analyzers() is None:
            return
        t0 = time.perf_counter()
        try:
            view = self.model.view()
            res = self.analyzers.step(view)
        except Exception:
            self._report(traceback.format_exc())
            return
        self._last = res
        new = list(getattr(res, "new_signals", ()) or ())
        if new:
            self._pending_signals.extend(new)
            self.all_signals.extend(new)
            for s in new:  # rows -> exchange ticks: the edge of each row a trade must reach
                e, st, tg = bracket_to_ticks(s.side, s.entry, s.stop, s.target, self.row_ticks)
                self.tracker.add(s.id, s.ts, s.side, e, st, tg, [r.name for r in s.reasons])
            if self.observer is not None:
                self.observer.on_signals(self, new)
        pats = list(getattr(res, "patterns", ()) or ())
        if pats:
            self._recent_patterns.extend(pats)
            if len(self._recent_patterns) > 400:
                del self._recent_patterns[:-200]
        tm = dict(getattr(res, "timings", {}) or {})
        tm["step"] = round((time.perf_counter() - t0) * 1e3, 4)
        self._timings.update(tm)

    def snapshot_frame(self) -> AnalysisFrame:
        """Build an immutable :class:`AnalysisFrame` of the current state (copies only).

        Signals produced since the previous frame are its ``new_signals``; the newest error
        reported since the previous frame is its ``error`` (``""`` if none), with
        ``timings["errors_new"]`` (errors since the previous frame) and
        ``timings["errors_total"]`` (all errors so far).
        """
        t0 = time.perf_counter()
        parts = self.model.frame_parts()
        res = self._last
        self._seq += 1
        now = self.clock.monotonic_ns()
        n = self.events_applied
        if now - self._rate_t0 >= 500_000_000:
            self._rate = (n - self._rate_n0) * 1e9 / (now - self._rate_t0)
            self._rate_t0, self._rate_n0 = now, n
        new = tuple(self._pending_signals)
        self._pending_signals = []
        self._snap_outcomes()
        timings = dict(self._timings)
        timings["frame"] = round((time.perf_counter() - t0) * 1e3, 4)
        timings["compile_s"] = round(self.compile_seconds, 4)
        n_err = self.errors
        new_errors = n_err - self._errors_framed
        self._errors_framed = n_err
        timings["errors_new"] = new_errors
        timings["errors_total"] = n_err
        poc, vah, val = self.model.volume_profile()
        extra = {}
        if self.observer is not None:
            try:
                extra = self.observer.frame_fields(self)
            except Exception:
                self._report("research observer failed:\n" + traceback.format_exc())
        return AnalysisFrame(
            seq=self._seq,
            ts=self.model.ts,
            symbol=self.instrument.symbol,
            tick_size=self.model_instrument.tick_size,
            row_ticks=self.row_ticks,
            **extra,
            patterns=tuple(self._recent_patterns[-200:]),
            vix=getattr(res, "vix", None),
            orderflow=dict(getattr(res, "orderflow", {}) or {}),
            new_signals=new,
            signals=self._recent_signals(),
            outcomes=self._outcomes_snap,
            precision=self._precision_snap,
            timings=timings,
            events_total=n,
            events_per_s=float(self._rate),
            error=self.last_error if new_errors > 0 else "",
            vwap=self.model.vwap.vwap,
            vwap_sd=self.model.vwap.sd,
            session_phase=self.model.session_phase,
            session_start_ns=int(self.model.session_start_ns),
            poc=poc, vah=vah, val=val, cum_delta=self.model.cum_delta,
            history_start_ns=int(self.model.history_start_ns),
            history=self._history,
            analysis_ready=self._analysis_ready,
            **parts,
        )

    @property
    def events_applied(self) -> int:
        """Market events applied in this run (``frame.events_total``), across profile changes."""
        return self._events_offset + self.model.events_applied

    def _recent_signals(self) -> tuple:
        """The recent signals of a frame: those kept from before a profile change, then the
        analyzers' own (each id once, oldest first, at most ``elite.max_recent_signals``)."""
        own = tuple(getattr(self._last, "signals", ()) or ())
        if not self._carried_signals:
            return own
        seen = {s.id for s in self._carried_signals}
        out = self._carried_signals + tuple(s for s in own if s.id not in seen)
        keep = int(self._pget_or("elite.max_recent_signals", 200))
        return out[-keep:] if len(out) > keep else out

    def _pget_or(self, key: str, default):
        try:
            v = self.profile.get(key)
        except (KeyError, AttributeError):
            v = None
        return default if v is None else v

    @property
    def last_result(self):
        """The analyzers' last ``StepResult`` (``None`` before the first step)."""
        return self._last

    def set_live_vix(self, level: float | None) -> None:
        """An intraday VIX level (index points) from a live source; ``None`` = back to the daily
        close. Thread-safe: with the worker running it is queued behind the batches already
        submitted (applied in stream order); otherwise applied at once. Ignored when the
        analyzers have no ``set_live_vix``."""
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(("vix", level))
        else:
            self._control(("vix", level))

    def set_relation(self, rows) -> None:
        """The pair's newest relation rows (:data:`app.analysis.relation.RELATION_DTYPE`) for the
        analyzers' relation features (:meth:`app.analysis.analyzers.Analyzers.set_relation`:
        each step uses the newest row whose second ended by its market time). Thread-safe and
        ordered like :meth:`set_live_vix`; kept for analyzers built later (first start, a
        profile change). Ignored when the analyzers have no ``set_relation``."""
        rows = np.array(rows, copy=True).reshape(-1)
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(("relation", rows))
        else:
            self._control(("relation", rows))

    def reset_relation(self) -> None:
        """The pair's replay restarted: forget the relation rows kept, in stream order like
        :meth:`set_relation` (thread-safe); the analyzers built at the new pass
        (:meth:`_new_pass`) get the rows handed in after this call."""
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(("relation_reset", None))
        else:
            self._control(("relation_reset", None))

    def _give_relation(self, rows) -> None:
        fn = getattr(self.analyzers, "set_relation", None)
        if callable(fn):
            try:
                fn(rows)
            except Exception:
                self._report(traceback.format_exc())

    def request_publish(self) -> None:
        """Publish a frame soon although no event came (thread-safe): the research observer has a
        new result. Queued behind the batches already submitted; ignored unless running."""
        if self._thread is not None and self._state == "running":
            self._q.put(("publish", None))

    def advance_to(self, ts_ns: int) -> None:
        """Move market time to ``ts_ns`` without an event (a live source's clock when the market
        is quiet): the heatmap columns it passes are closed and due analysis steps run.
        Thread-safe and ordered like :meth:`set_live_vix`. A time not after the last event's
        does nothing."""
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(("clock", int(ts_ns)))
        else:
            self._control(("clock", int(ts_ns)))

    def set_profile(self, profile, overrides: dict | None = None) -> None:
        """Apply another analysis profile to the running analysis, without a restart.

        The change is queued behind the batches already submitted and applied between two
        batches on the worker thread (at once when the worker does not run), so no event is
        lost, replayed or seen twice, and market time never goes back.

        What stays: the order book, the row grouping (``engine.row_ticks`` of the new profile
        applies at the next start), the outcome tracker (every signal's bracket keeps being
        booked; its rules ``outcomes.*`` stay those of the start), the live VIX level, the
        recent signals (still in ``frame.signals``) and the signal ids, which keep counting
        up from the last one (never reused).

        What changes: the analyzers are built again on the new profile (their short memory
        restarts: the confluence window, the re-fire filter, DOM statistics); the next
        analysis step is at the next multiple of the new ``engine.analysis_interval_ms``.
        When the new profile has another ``engine.heatmap_column_ms``, ``engine.heatmap_rows``
        or ``engine.bar_seconds``, the market model is rebuilt in the new geometry from the
        current book (every resting level carried over as it is); the session's volume
        profile, cumulative delta and VWAP are carried over too, while the heatmap history,
        the footprint bars and the recent-trades window start again at the change (they are
        in the old column and bar widths). So after a change of bar width a new signal needs
        two new bars (its bracket needs one closed bar).

        Parameters
        ----------
        profile : Profile or str
            The new profile or its name (``app.config.profiles.load_profile``).
        overrides : dict, optional
            Per-key overrides of a named profile.

        Raises
        ------
        app.config.schema.ConfigError
            Unknown profile name or bad override (raised here, in the caller's thread; the
            running analysis is then left unchanged).
        """
        prof = resolve_profile(profile, overrides)
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(("profile", prof))
        else:
            self._control(("profile", prof))

    def _swap_profile(self, profile) -> None:
        """Worker side of :meth:`set_profile` (between two batches)."""
        self.profile = profile
        self.analysis_interval_ns = int(self._pget("engine.analysis_interval_ms")) * 1_000_000
        args = self._profile_model_args()
        rebuilt = args != self._model_args
        if rebuilt:
            self._model_args = args
            self._rebuild_model()
        if self._own_analyzers and self.analyzers is not None:  # None: still compiling, built later on it
            self._carried_signals = self._recent_signals()
            self._remake_analyzers()
        self._next_step = None  # the next step: the next multiple of the new interval
        self.profile_changes += 1
        log.info("analysis profile changed to %s%s", getattr(profile, "name", profile),
                 " (market model rebuilt from the book)" if rebuilt else "")

    def _remake_analyzers(self) -> None:
        """Fresh analyzers on :attr:`profile` (signal ids continue, never reused), given the live
        VIX, the relation rows kept and the research observer, as the old ones had them."""
        next_id = getattr(self.analyzers, "_next_id", self._first_signal_id)
        self.analyzers = _make_analyzers(self.profile, self.model_instrument, self._vix_history,
                                         use_numba=self.use_numba, first_signal_id=next_id)
        if self._live_vix is not _NO_VIX:
            self.analyzers.set_live_vix(self._live_vix)
        if self._relation_kept:
            self._give_relation(np.array(list(self._relation_kept)))
        if self.observer is not None:
            self.observer.on_analyzers(self)

    def _rebuild_model(self) -> None:
        """A market model in the profile's geometry, seeded from the current one: the book
        (one snapshot of every level, at the current market time), the session volume profile,
        cumulative delta and VWAP. Heatmap history, bars and recent trades start empty."""
        from app.core.events import FLAG_BATCH_END, OP_SET, SIDE_ASK, SIDE_BID, depth_events
        from app.market import kernels as K
        from app.market.model import MarketModel

        old = self.model
        new = MarketModel(self.model_instrument, **self._model_args)
        seeded = 0
        if old.anchored:
            bp, bs, bo = old.levels(SIDE_BID)
            ap, asz, ao = old.levels(SIDE_ASK)
            n = len(bp) + len(ap)
            if n:
                side = np.concatenate([np.full(len(bp), SIDE_BID, np.uint8), np.full(len(ap), SIDE_ASK, np.uint8)])
                snap = depth_events(np.full(n, old.ts, np.int64), np.concatenate([bp, ap]),
                                    np.concatenate([bs, asz]), side, OP_SET,
                                    num_orders=np.concatenate([bo, ao]).astype(np.uint32))
                snap["flags"][-1] |= FLAG_BATCH_END
                new.apply(snap)
                seeded = n
            # the session so far, by price (both grids are ``grid`` ticks wide, maybe not on the same base)
            lo, hi = int(old.S[K.S_SLO]), int(old.S[K.S_SHI])
            if new.anchored and hi >= lo:
                j = np.arange(lo, hi + 1)
                k = j + (old.base - new.base)
                ok = (k >= 0) & (k < new.grid)
                new.sbuy[k[ok]] = old.sbuy[j[ok]]
                new.ssell[k[ok]] = old.ssell[j[ok]]
                if ok.any():
                    new.S[K.S_SLO] = int(k[ok][0])
                    new.S[K.S_SHI] = int(k[ok][-1])
            new.F[K.F_CUMD] = old.F[K.F_CUMD]
            new.F[K.F_VOL] = old.F[K.F_VOL]
        new.vwap = old.vwap
        # market time never goes back: a model with nothing seeded (the book not anchored yet)
        # starts at the old one's time, not at 0
        new.S[K.S_LASTTS] = max(int(new.S[K.S_LASTTS]), int(old.S[K.S_LASTTS]))
        if not self._analyzing:
            new.set_kernels(False)  # the kernels are still compiling on another thread (as _rebuild)
        self._events_offset += old.events_applied - seeded
        self.model = new

    def request_history(self, t0_ns: int, t1_ns: int, max_cols: int, price_lo: int | None = None,
                        price_hi: int | None = None) -> int:
        """Ask for the heatmap of ``[t0_ns, t1_ns)`` (:meth:`MarketModel.history_window`).

        Thread-safe and O(1) on the caller's thread (the GUI's): the request replaces any
        unanswered one; the worker answers it before it applies the next batch and publishes
        a frame at once, whose ``history`` is the image (``history.request`` = the id returned
        here; ``None`` in ``history`` when the range holds no data keeps the previous image).
        Without a running worker the answer is computed now and carried by the next
        :meth:`snapshot_frame`.

        Parameters
        ----------
        t0_ns, t1_ns : int
            Time range, ns since the epoch UTC.
        max_cols : int
            Most columns of the image (the view's width in pixels).
        price_lo, price_hi : int, optional
            Price rows to keep, in the model's rows (``frame.tick_size`` units).

        Returns
        -------
        int
            The request's id (increasing).

        Raises
        ------
        ValueError
            If ``max_cols < 1`` or ``t1_ns <= t0_ns``.
        """
        if int(max_cols) < 1 or int(t1_ns) <= int(t0_ns):
            raise ValueError(f"request_history: need max_cols >= 1 and t1_ns > t0_ns, got "
                             f"max_cols={max_cols}, t0_ns={t0_ns}, t1_ns={t1_ns}")
        with self._hist_lock:
            self._hist_ids += 1
            rid = self._hist_ids
            self._hist_req = (rid, (int(t0_ns), int(t1_ns), int(max_cols), price_lo, price_hi))
        if self._thread is not None and self._state in ("compiling", "running"):
            self._q.put(_WAKE)
        else:
            self._answer_history()
        return rid

    def _answer_history(self) -> bool:
        """Answer the pending history request (worker thread); True when there was one."""
        with self._hist_lock:
            req, self._hist_req = self._hist_req, None
        if req is None:
            return False
        rid, (t0, t1, n, lo, hi) = req
        try:
            img = self.model.history_window(t0, t1, n, price_lo=lo, price_hi=hi, request=rid)
        except Exception:
            self._report("history request failed:\n" + traceback.format_exc())
            return True
        if img is not None:
            self._history = img
        return True

    def _control(self, item) -> None:
        kind, value = item
        if kind == "profile":
            try:
                self._swap_profile(value)
            except Exception:
                self._report("profile change failed:\n" + traceback.format_exc())
            return
        if kind == "clock":
            if value > self.model.ts and self.model.anchored:
                tick = np.zeros(1, EVENT_DTYPE)  # kind 0: a clock tick
                tick["ts"] = value
                try:
                    self.process(tick)
                except Exception:
                    self._report(traceback.format_exc())
            return
        if kind == "relation":
            self._relation_kept.extend(value)
            self._give_relation(value)
            return
        if kind == "relation_reset":  # the new pass's analyzers get only the rows given from now on
            self._relation_kept.clear()
            self._relation_fresh = True
            return
        if kind == "vix":
            self._live_vix = value  # kept for analyzers built later
        fn = getattr(self.analyzers, "set_live_vix", None) if kind == "vix" else None
        if callable(fn):
            try:
                fn(value)
            except Exception:
                self._report(traceback.format_exc())

    # ------------------------------------------------------------------ worker thread
    def submit(self, batch: np.ndarray) -> None:
        """Queue a batch for the worker (O(1); the array must not be modified afterwards)."""
        if self._state in ("stopped", "error"):
            self.dropped_batches += 1
            return
        if isinstance(batch, np.ndarray):
            self._submitted_n += len(batch)
        self._q.put(batch)

    @property
    def behind_s(self) -> float:
        """Seconds of work queued: events submitted and not yet taken by the worker times the
        measured cost per event (0.0 until a cost was measured). The pipeline's replay flow
        control holds a fast replay on it, so what reaches the screen is at most a few frames
        old (:attr:`app.live.pipeline.Pipeline.FLOW_HIGH_S`)."""
        return max(self._submitted_n - self._taken_n, 0) * self._ns_per_event / 1e9

    def start(self) -> None:
        """Start the worker thread and, beside it, the kernel compile (``state == "compiling"``
        until the kernels are ready; the book runs meanwhile: see "First start" above).

        Raises
        ------
        RuntimeError
            If the engine was already started.
        """
        if self._thread is not None:
            raise RuntimeError("AnalysisEngine.start: already started")
        self._state = "compiling"
        self._analysis_ready = False
        self._analyzing = False
        self._switched = False
        self._compile_held, self._compile_held_n = [], 0
        if self.use_numba:
            self.model.set_kernels(False)  # the NumPy twins until numba has compiled the kernels
        self._thread = threading.Thread(target=self._run, name="mia-analysis", daemon=True)
        self._compile_thread = threading.Thread(target=self._compile_in_background, name="mia-compile",
                                                daemon=True)
        self._thread.start()
        self._compile_thread.start()

    def _compile_in_background(self) -> None:
        """Compile thread: the ``precompile`` callables first, then the model's and the
        analyzers' kernels on throwaway instances; then wake the worker.

        numba compiles one function at a time under one process-wide lock, so a kernel another
        thread needs for the first time waits behind the compile in progress; ``precompile``
        lets the caller put the kernels it needs at once first (the window: its image rescale
        and the DTC decode, else the first market data waits for the analyzers: measured 34 s
        without data, then a heartbeat timeout).
        """
        for fn in self._precompile:
            try:
                fn()
            except Exception:  # that kernel compiles on first use instead
                log.exception("precompile step %r failed", fn)
        try:
            self._compile_kernels()
        except Exception:
            self.compile_failed = True
            self._report("kernel compilation failed; the book runs on the NumPy twins, the analysis is "
                         "off:\n" + traceback.format_exc())
        finally:
            self._compiled.set()
            self._q.put(_WAKE)

    def _switch_to_kernels(self) -> None:
        """Worker thread, once the compile thread is done: the model on the kernels, the
        analyzers built, the events of the compile time replayed (see "First start")."""
        self._switched = True
        held, self._compile_held = self._compile_held, None
        self._compile_held_n = 0
        if self.compile_failed:
            self._state = "running"
            log.error("analysis engine: kernels did not compile; the analysis is off")
            return
        self._analyzing = True
        if self.use_numba:
            self.model.set_kernels(True)
        if held:
            self._replay_kept(held[0] if len(held) == 1 else np.concatenate(held), analyzers=True)
        else:
            self._ensure_analyzers()
        # ready once the compile time's events are analysed, not before: at a fast replay that
        # catch-up is seconds of work (27 s of compile at maximum speed held 1.3 M events)
        self._analysis_ready = True
        self._state = "running"
        log.info("analysis engine ready (kernels in %.2f s; %d events replayed)", self.compile_seconds,
                 sum(len(b) for b in held or ()))

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the worker to finish and join it. Returns True when the thread has ended.

        Batches still queued are dropped. Safe to call twice or before :meth:`start`.
        """
        self._stop_evt.set()
        self._q.put(_STOP)
        t = self._thread
        if t is None:
            if self._state == "idle":
                self._state = "stopped"
            return True
        t.join(timeout)
        if t.is_alive():
            log.error("analysis worker did not stop within %.1f s", timeout)
            return False
        if self._state != "error":
            self._state = "stopped"
        if self.observer is not None:
            self.observer.close()
        return True

    def _publish(self) -> None:
        if self.on_frame is None:
            self._pending_signals = []
            return
        try:
            with self._step_lock:
                frame = self.snapshot_frame()
        except Exception:
            self._report(traceback.format_exc())
            return
        self._last_publish_ns = self.clock.monotonic_ns()
        try:
            self.on_frame(frame)
        except Exception:
            self._report("on_frame callback failed:\n" + traceback.format_exc())

    def _wake(self) -> None:
        """Clock listener: the clock moved, so the worker re-reads it (a due publish runs)."""
        self._q.put(_WAKE)

    def _publish_wait_s(self) -> float:
        """Seconds until the next publish is due on :attr:`clock` (<= 0: due now)."""
        return (self._last_publish_ns + self._publish_interval_ns - self.clock.monotonic_ns()) / 1e9

    def _run(self) -> None:
        listen = getattr(self.clock, "add_listener", None)
        if callable(listen):
            listen(self._wake)
        try:
            self._work()
        finally:
            unlisten = getattr(self.clock, "remove_listener", None)
            if callable(unlisten):
                unlisten(self._wake)

    def _work(self) -> None:
        self._publish()
        dirty = False
        while not self._stop_evt.is_set():
            if self._hist_req is not None and self._answer_history():
                self._publish()  # the answer goes out at once
                dirty = False
            if not self._switched and self._compiled.is_set():
                try:
                    self._switch_to_kernels()
                except Exception:
                    self._report("market model failed; engine stopped:\n" + traceback.format_exc())
                    self._publish()
                    self._state = "error"
                    return
                dirty = True
            wait = _IDLE_WAIT_S
            if dirty:
                # a changed state waits only until its publish is due, never a fixed poll period
                wait = self._publish_wait_s()
                if wait <= 0.0:
                    self._publish()
                    dirty = False
                    wait = _IDLE_WAIT_S
            try:
                item = self._q.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _STOP:
                break
            if item is _WAKE:
                continue  # the clock moved: the top of the loop re-reads it
            if isinstance(item, tuple):  # control message (live VIX, clock), in stream order
                self._control(item)
                dirty = True  # a clock tick closes columns and may step; a VIX level changes the gauge
                continue
            items = [item]
            total = len(item) if hasattr(item, "__len__") else 0
            ctrl = None
            limit = self._coalesce_limit()
            while total < limit:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._stop_evt.set()
                    break
                if nxt is _WAKE:
                    continue
                if isinstance(nxt, tuple):
                    ctrl = nxt  # apply after the batches queued before it
                    break
                items.append(nxt)
                total += len(nxt) if hasattr(nxt, "__len__") else 0
            try:
                bad = sum(len(b) for b in items if isinstance(b, np.ndarray) and b.dtype != EVENT_DTYPE)
                items = [b for b in items if isinstance(b, np.ndarray) and b.dtype == EVENT_DTYPE
                         or self._bad_batch(b)]
                self._taken_n += bad
                if items:
                    self._apply_in_pieces(items[0] if len(items) == 1 else np.concatenate(items))
            except Exception:
                self._report("market model failed; engine stopped:\n" + traceback.format_exc())
                self._publish()  # the error's frame goes out before the state says "error"
                self._state = "error"
                return
            if ctrl is not None:
                self._control(ctrl)
            dirty = True  # published below if due, else when due (top of the loop)
            if self._pending_signals or self._publish_wait_s() <= 0.0:
                self._publish()
                dirty = False
        if dirty:
            self._publish()
        self._state = "stopped"

    def _apply_in_pieces(self, batch: np.ndarray) -> None:
        """Worker thread: apply ``batch`` in pieces of what the engine applies in one publish
        interval (its measured cost per event; :func:`app.core.events.chunks` with
        ``whole_segments``: every cut at a batch end, so each frame shows a consistent book),
        publishing between pieces when a frame is due or a signal waits.

        One socket read of a fast replay hands over thousands of events (measured on ES at
        maximum speed: 2,100 events, 60 ms of analysis, in one call), so frames came at the pace
        of the reads, about 15 a second. :attr:`behind_s` counts what is not applied yet, the
        rest of this batch included, so the replay's flow control does not release the replay
        while a long batch is still being applied."""
        n = len(batch)
        if self._ns_per_event > 0.0:
            size = int(min(_COALESCE_MAX, max(_PIECE_MIN, self._publish_interval_ns / self._ns_per_event)))
        else:
            size = n
        for piece in (batch,) if size >= n else chunks(batch, size, whole_segments=True):
            t_apply = time.perf_counter_ns()
            try:
                with self._step_lock:
                    self.process(piece)
            finally:
                self._taken_n += len(piece)
            self._measure_cost(len(piece), time.perf_counter_ns() - t_apply)
            if len(piece) < n and (self._pending_signals or self._publish_wait_s() <= 0.0):
                self._publish()

    def _measure_cost(self, n_events: int, elapsed_ns: int) -> None:
        """Fold one application of ``n_events`` that took ``elapsed_ns`` (CPU-bound work,
        ``perf_counter``) into the moving average cost per event (batches under 256 events say
        little about it and are left out)."""
        if n_events < 256 or elapsed_ns <= 0:
            return
        c = elapsed_ns / n_events
        self._ns_per_event = c if self._ns_per_event <= 0.0 else 0.7 * self._ns_per_event + 0.3 * c

    def _coalesce_limit(self) -> int:
        """Most events to apply in the next iteration: what the measured cost per event fits
        before the next publish is due (:data:`_COALESCE_MIN` .. :data:`_COALESCE_MAX`)."""
        if self._ns_per_event <= 0.0:
            return _COALESCE_MAX
        left_ns = max(self._publish_wait_s() * 1e9, 0.0)
        return int(min(_COALESCE_MAX, max(_COALESCE_MIN, left_ns / self._ns_per_event)))

    def _bad_batch(self, b) -> bool:
        self._report(f"submit: dropped a batch that is not an EVENT_DTYPE array ({type(b).__name__} "
                     f"{getattr(b, 'dtype', '')})")
        return False
