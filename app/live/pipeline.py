"""The live data path behind the window: market source -> analysis engine -> newest frame.

Runs on the asyncio loop that qasync drives inside the Qt event loop (GUI thread), except the
analysis engine, which owns its worker thread, and the embedded replay server, which runs on
its own thread and loop (:mod:`app.live.sources`). This module imports no Qt, so it can be used
and benchmarked headless::

    MarketSource (embedded replay / DTC / Sierra files)
        --> Pipeline._on_events(batch) --> engine.submit(batch)
                                       --> listeners (add_listener: trading)       |
    window QTimer  <--  FrameSlot.take()  <--  engine on_frame(frame) (worker thread)
    frame listeners (add_frame_listener: the signal journal)  <--  every frame, GUI thread

Per depth/trade batch the GUI thread does O(1) work here: count, remember the arrival time
(for the latency figure), hand the batch to the engine's queue and to the listeners. The engine publishes immutable
:class:`~app.analysis.frame.AnalysisFrame` objects; :class:`FrameSlot` keeps only the newest
(latest wins; stale frames are dropped, counted in :attr:`FrameSlot.dropped`).

Problems (a symbol rejected by the server, a dropped connection, an engine exception) are
reported through ``on_problem(level, text, action)`` in plain language with what to do, and
also kept in :attr:`Pipeline.problems`; nothing is swallowed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import KIND_DEPTH, Instrument
from app.live.sources import PAUSE_FLOW, PAUSE_START

log = logging.getLogger(__name__)


class SourceChoiceError(ValueError):
    """A ``--source`` (or ``--symbol``) choice that cannot work; the one-line message names what is wrong."""


@dataclass
class InstrumentConfig:
    """One instrument of a window: where its market data comes from and how it is analysed.

    Attributes
    ----------
    symbol : str
        Data-service symbol (opaque, never parsed; "" = the recording's symbol, first
        instrument of the embedded replay only).
    exchange : str
        Exchange as the data service names it ("" = unknown).
    tick_size : float
        Price units per tick (0 = the source tells it: DTC security definition, recording).
    tick_value : float
        USD per tick per contract (0 = the source tells it).
    data_source : {"dtc", "sierra_files"}
        ``"dtc"``: a SymbolID on the window's one DTC connection (the embedded replay server
        or an external server); ``"sierra_files"``: its own follower of Sierra Chart's
        ``<symbol>.scid`` / ``.depth`` files in :attr:`PipelineConfig.sierra_data_dir`.
    session : str
        Session calendar name (:data:`app.core.sessions.CALENDARS`; "" = from the exchange,
        :func:`app.core.sessions.calendar_for`).
    profile : str
        Analysis profile of this instrument ("" = the window's :attr:`PipelineConfig.profile`).
    """

    symbol: str = ""
    exchange: str = ""
    tick_size: float = 0.0
    tick_value: float = 0.0
    data_source: str = "dtc"
    session: str = ""
    profile: str = ""


@dataclass
class PipelineConfig:
    """How the window gets its market data.

    Attributes
    ----------
    embedded : bool
        True: start the built-in DTC server replaying ``recording`` (or the shipped real ES
        sample) on 127.0.0.1, an OS-chosen port, and connect to it. False: connect to
        ``host:port`` (a Sierra Chart DTC server or ``mia-elite serve``).
    recording : str, Recording or None
        Path of a ``.mrec`` recording (or a loaded :class:`~app.feeds.recording.Recording`) for
        the embedded server; None = the shipped ES sample.
    speed : float
        Replay speed of the embedded server (1 = real time).
    host, port, encoding, username, password
        DTC connection (password only held in memory; it comes from the OS keyring).
    tls, tls_fingerprint : bool, str
        DTC over TLS and the pinned SHA-256 fingerprint of the server's certificate
        (:class:`app.dtc.client.DTCClient`).
    recording : str, Recording, None or list
        Also a list of paths / recordings: the one embedded server replays them all on one
        market clock, each under its own symbol (:class:`app.sim.server.DTCServer`); the
        instruments then name those symbols.
    symbol, exchange : str
        Data-service symbol to subscribe ("" = the recording's symbol). These flat fields
        (``symbol`` .. ``sierra_data_dir`` and ``session``) are the **first** instrument
        (:attr:`instruments` ``[0]``), as the single-instrument window uses them.
    session : str
        Session calendar of the first instrument ("" = from its exchange).
    more_instruments : list of InstrumentConfig
        The instruments after the first (empty: one instrument, as before issue 17).
    tick_size, tick_value : float
        Used when the source does not tell them (0 = unknown).
    data_source : str
        ``"dtc"`` or ``"sierra_files"``.
    sierra_data_dir : str
        Sierra Chart ``Data`` folder (for ``data_source="sierra_files"``).
    profile : str
        Analysis profile name.
    profile_overrides : dict
        Per-key overrides of the profile (validated by the profile loader).
    trade_account : str
        DTC trade account (trading panel); empty = paper.
    loop_replay : bool
        The embedded server starts the recording again at its end, each pass a new session
        (default False: the replay stops at its end and the window offers Restart / Load).
    engine_options : dict
        Extra keyword arguments of ``AnalysisEngine`` (``window_cols``, ``publish_interval_s``).
        ``observer_factory`` (a callable of no argument) is not one: each engine this config
        starts gets its own ``observer=observer_factory()`` (an observer keeps one instrument's
        stream; several instruments' engines must not share one).
    server_options : dict
        Extra keyword arguments of the embedded ``DTCServer`` (``max_batch``, ``max_gap_s``).
    replay_process : bool
        The embedded server runs in a child process, not a thread of the window's process
        (:class:`app.live.replay_process.ReplayServerProcess`; default False here, where tests
        reach the server object; the window's setting ``[replay] process``, read by
        :func:`app.ui.connection_dialog.config_from_prefs`, defaults to True).
    """

    embedded: bool = True
    recording: object = None
    speed: float = 10.0
    host: str = "127.0.0.1"
    port: int = 11099
    encoding: str = "binary"
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    tls_fingerprint: str = ""
    symbol: str = ""
    exchange: str = ""
    tick_size: float = 0.0
    tick_value: float = 0.0
    data_source: str = "dtc"
    sierra_data_dir: str = ""
    profile: str = "production"
    profile_overrides: dict = field(default_factory=dict)
    trade_account: str = ""
    loop_replay: bool = False
    engine_options: dict = field(default_factory=dict)
    server_options: dict = field(default_factory=dict)
    replay_process: bool = False
    session: str = ""
    more_instruments: list = field(default_factory=list)

    @property
    def instruments(self) -> list[InstrumentConfig]:
        """Every instrument, the first made of the flat fields (a new list of new objects:
        change them with :meth:`set_instruments`).

        Returns
        -------
        list of InstrumentConfig
            At least one; ``instruments[0].symbol`` may be "" (the recording's symbol).
        """
        first = InstrumentConfig(self.symbol, self.exchange, float(self.tick_size), float(self.tick_value),
                                 self.data_source, self.session, "")
        return [first, *(InstrumentConfig(**vars(i)) for i in self.more_instruments)]

    def set_instruments(self, instruments: list[InstrumentConfig]) -> "PipelineConfig":
        """Make ``instruments`` the window's instruments (the first into the flat fields).

        The first instrument's ``profile`` (when set) becomes :attr:`profile`. Returns self.

        Raises
        ------
        ValueError
            An empty list, two instruments with one symbol, a ``data_source`` other than
            ``"dtc"`` / ``"sierra_files"``, or a negative tick size or value (the message names
            the instrument).
        """
        items = list(instruments)
        if not items:
            raise ValueError("instruments: at least one instrument is needed")
        seen: set[str] = set()
        for k, i in enumerate(items):
            if i.data_source not in ("dtc", "sierra_files"):
                raise ValueError(f"instruments[{k}] {i.symbol!r}: data_source {i.data_source!r} is not "
                                 "one of 'dtc', 'sierra_files'")
            if i.tick_size < 0 or i.tick_value < 0:
                raise ValueError(f"instruments[{k}] {i.symbol!r}: tick size and tick value must be >= 0")
            if i.symbol in seen or (k and not i.symbol):
                raise ValueError(f"instruments[{k}]: symbol {i.symbol!r} is " +
                                 ("listed twice" if i.symbol else "empty (only the first may take the recording's)"))
            seen.add(i.symbol)
        first = items[0]
        self.symbol, self.exchange = first.symbol, first.exchange
        self.tick_size, self.tick_value = float(first.tick_size), float(first.tick_value)
        self.data_source, self.session = first.data_source, first.session
        if first.profile:
            self.profile = first.profile
        self.more_instruments = [InstrumentConfig(**vars(i)) for i in items[1:]]
        return self

    def instrument_config(self, symbol: str) -> "PipelineConfig":
        """A copy of this config for one instrument (its fields in the flat ones, no others):
        what a per-instrument :class:`Pipeline` runs on.

        Raises
        ------
        KeyError
            ``symbol`` is not one of :attr:`instruments`.
        """
        import copy

        for i in self.instruments:
            if i.symbol == symbol:
                cfg = copy.copy(self)
                cfg.profile_overrides = dict(self.profile_overrides)
                cfg.more_instruments = []
                cfg.symbol, cfg.exchange, cfg.tick_size, cfg.tick_value = i.symbol, i.exchange, i.tick_size, i.tick_value
                cfg.data_source, cfg.session = i.data_source, i.session
                if i.profile:
                    cfg.profile = i.profile
                return cfg
        raise KeyError(f"no instrument {symbol!r} in this config")


def parse_symbol_arg(text: str, profiles=None) -> InstrumentConfig:
    """One ``--symbol`` value: ``SYM`` or ``SYM:profile`` (the text after the last ``:``).

    Parameters
    ----------
    text : str
        The argument.
    profiles : iterable of str, optional
        Allowed profile names (default :data:`app.config.profiles.PROFILE_NAMES`).

    Returns
    -------
    InstrumentConfig
        ``symbol`` and ``profile`` set ("" profile = the window's).

    Raises
    ------
    SourceChoiceError
        An empty symbol or an unknown profile (names both and the allowed profiles).
    """
    if profiles is None:
        from app.config.profiles import PROFILE_NAMES as profiles
    sym, sep, prof = str(text).rpartition(":")
    if not sep:
        sym, prof = str(text), ""
    sym = sym.strip()
    if not sym:
        raise SourceChoiceError(f"--symbol {text!r}: the symbol is empty")
    if prof and prof not in tuple(profiles):
        raise SourceChoiceError(f"--symbol {text!r}: profile {prof!r} is not one of {', '.join(profiles)}")
    return InstrumentConfig(symbol=sym, profile=prof)


def instruments_from_settings(rows) -> list[InstrumentConfig]:
    """``[[instruments]]`` entries (:class:`app.config.settings.InstrumentSettings`) as
    :class:`InstrumentConfig` objects, in order (their ``source`` is the ``data_source``)."""
    return [InstrumentConfig(symbol=r.symbol, exchange=r.exchange, tick_size=float(r.tick_size),
                             tick_value=float(r.tick_value), data_source=r.source, session=r.session,
                             profile=r.profile) for r in rows]


#: ``mia-elite --source`` choices: the built-in replay server, an external DTC server, Sierra
#: Chart's own data files (the route for CME symbols such as ES, whose data Sierra Chart's DTC
#: server refuses).
SOURCE_CHOICES = ("builtin", "dtc", "sierra-files")


def _details_from_symbol_map(target, symbols) -> None:
    """Fill ``target.tick_size`` (and tick value, exchange where empty) from the saved symbol-map
    row of ``target.symbol`` when it has no tick size yet; ``target`` is a ``PipelineConfig`` or
    an ``InstrumentConfig``."""
    if target.tick_size > 0:
        return
    for row in symbols or ():
        if row.get("symbol") == target.symbol and float(row.get("tick_size", 0) or 0) > 0:
            target.tick_size = float(row["tick_size"])
            target.tick_value = target.tick_value or float(row.get("tick_value", 0) or 0)
            target.exchange = target.exchange or str(row.get("exchange", ""))
            return


def apply_source_choice(cfg: PipelineConfig, source: str | None, data_dir: str | None = None,
                        symbols: list[dict] | None = None) -> PipelineConfig:
    """Set ``cfg``'s market data source from the command line (``--source``, ``--data-dir``).

    Parameters
    ----------
    cfg : PipelineConfig
        Modified in place (and returned); its ``symbol``, ``tick_size``, ``tick_value`` and
        ``exchange`` are those already chosen (saved settings overridden by ``--symbol``,
        ``--tick-size``, ``--tick-value``).
    source : {"builtin", "dtc", "sierra-files"} or None
        None keeps the configured source, unless ``data_dir`` is given (then ``sierra-files``).
    data_dir : str, optional
        Sierra Chart's Data folder (or its installation folder).
    symbols : list of dict, optional
        The saved symbol map (rows with ``symbol, exchange, tick_size, tick_value``): a symbol
        found there lends its tick size and value when none was given.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    SourceChoiceError
        An unknown choice, or Sierra Chart files that cannot be read: no symbol, no positive
        tick size, no Data folder, no ``<symbol>.scid`` in it
        (:func:`app.live.sierra_source.sierra_files_problem`).
    """
    if source is None:
        if not data_dir:
            return cfg
        source = "sierra-files"
    if source not in SOURCE_CHOICES:
        raise SourceChoiceError(f"--source {source!r} is not one of {', '.join(SOURCE_CHOICES)}")
    if source == "builtin":
        cfg.embedded = True
        return cfg
    cfg.embedded = False
    if source == "dtc":
        cfg.data_source = "dtc"
        for inst in cfg.more_instruments:
            inst.data_source = "dtc"
        return cfg
    from app.live.sierra_source import sierra_files_problem

    cfg.data_source = "sierra_files"
    if data_dir:
        cfg.sierra_data_dir = str(data_dir)
    _details_from_symbol_map(cfg, symbols)
    problem = sierra_files_problem(cfg.sierra_data_dir, cfg.symbol, cfg.tick_size)
    if problem:
        if not cfg.symbol:
            problem += " Pass --symbol."
        elif not cfg.tick_size > 0:
            problem += " Pass --tick-size (and --tick-value, USD per tick per contract)."
        raise SourceChoiceError(f"--source sierra-files: {problem}")
    for inst in cfg.more_instruments:  # every further instrument follows its own files too
        inst.data_source = "sierra_files"
        _details_from_symbol_map(inst, symbols)
        problem = sierra_files_problem(cfg.sierra_data_dir, inst.symbol, inst.tick_size)
        if problem:
            if not inst.tick_size > 0:
                problem += f" Give {inst.symbol}'s tick size in [[instruments]] or the symbol map."
            raise SourceChoiceError(f"--source sierra-files: {problem}")
    return cfg


class FrameSlot:
    """Thread-safe newest-frame slot (the worker writes, the GUI timer reads).

    Attributes
    ----------
    published : int
        Frames put since start.
    taken : int
        Frames handed to the GUI.
    dropped : int
        Frames replaced before the GUI took them (stale, never drawn).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._frame = None
        self.published = 0
        self.taken = 0
        self.dropped = 0
        self.last = None

    def put(self, frame) -> None:
        """Store ``frame`` as the newest (any thread)."""
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.last = frame
            self.published += 1

    def take(self):
        """The newest frame not taken yet, or None."""
        with self._lock:
            f, self._frame = self._frame, None
            if f is not None:
                self.taken += 1
            return f


class LatencyTracker:
    """Arrival time of each depth batch, matched to the frames that contain it (benchmarks).

    The client hands batches in arrival order; the engine's ``events_total`` counts events
    applied, so a frame with ``events_total >= cum`` contains every batch whose cumulative event
    count is ``cum``. Times are ns of the pipeline's monotonic clock (:attr:`Pipeline.clock`):
    a batch of a DTC source arrives when the socket read that brought it returned (before
    decoding: "socket to paint"); a frame is painted when the heatmap's paint ended. Recording
    is off unless :attr:`enabled` is set (then one tuple per batch and per frame is kept).
    """

    def __init__(self):
        self.cum_events = 0
        self.enabled = False
        self.arrivals: list[tuple[int, int]] = []  # (cumulative events incl. this depth batch, t)
        self.published: list[tuple[int, int]] = []  # (events_total, t) when the engine published
        self.painted_at: list[tuple[int, int]] = []  # (events_total, t) when the frame was painted

    def arrived(self, n_events: int, has_depth: bool, t_ns: int) -> None:
        self.cum_events += n_events
        if self.enabled and has_depth:
            self.arrivals.append((self.cum_events, t_ns))

    def frame_published(self, events_total: int, t_ns: int) -> None:
        if self.enabled:
            self.published.append((events_total, t_ns))

    def painted(self, events_total: int, t_ns: int) -> None:
        """A frame containing ``events_total`` applied events was painted at ``t_ns``."""
        if self.enabled:
            self.painted_at.append((events_total, t_ns))

    @staticmethod
    def _match(arrivals: np.ndarray, marks: list) -> np.ndarray:
        if not marks or arrivals.size == 0:
            return np.zeros(0)
        m = np.asarray(marks, dtype=np.int64)
        # frames in time order; a later frame never holds fewer events, so keep the running max
        m = m[np.argsort(m[:, 1], kind="stable")]
        ev = np.maximum.accumulate(m[:, 0])
        idx = np.searchsorted(ev, arrivals[:, 0], side="left")
        ok = idx < ev.size
        return (m[idx[ok], 1] - arrivals[ok, 1]).astype(np.float64)

    def latencies_ms(self) -> tuple[np.ndarray, np.ndarray]:
        """``(arrival->painted, arrival->published)`` per depth batch, ms (batches never shown are left out)."""
        a = np.asarray(self.arrivals, dtype=np.int64).reshape(-1, 2)
        return self._match(a, self.painted_at) / 1e6, self._match(a, self.published) / 1e6

    def reset(self) -> None:
        self.arrivals.clear()
        self.published.clear()
        self.painted_at.clear()


class Pipeline:
    """Owns the market source, the analysis engine and the market-data fan-out for one window.

    Parameters
    ----------
    config : PipelineConfig
    on_problem : callable(level: str, text: str, action: str), optional
        Called on the GUI thread (asyncio loop) for every problem; engine errors raised on the
        worker thread are queued and delivered by :meth:`poll` (called by the window's timer).
    on_state : callable(source: str, state: str), optional
        Connection state changes per source.
    clock : app.core.clock.Clock, optional
        Monotonic clock of the latency stamps (:class:`LatencyTracker`, ns); a DTC client on
        the same clock lends its socket-read time (default the system clock).
    source : app.live.sources.MarketSource, optional
        Use this source instead of :func:`app.live.sources.make_source` of ``config`` (the
        multi-instrument runtime hands each instrument's pipeline a share of one connection,
        :mod:`app.live.instruments`).

    Attributes
    ----------
    source : app.live.sources.MarketSource
        Where the market data comes from (embedded replay, DTC server or Sierra Chart files);
        pause, resume and replay speed go through it.
    slot : FrameSlot
    latency : LatencyTracker
    instrument : Instrument or None
    recording : Recording or None
        What the embedded replay replays (after :meth:`start`).
    engine : AnalysisEngine or None
        None until the source streams.
    problems : list of (level, text, action)

    Notes
    -----
    The market-data fan-out: :meth:`add_listener` registers ``fn(batch)``, called on the GUI
    thread for every batch of every source, after the batch was handed to the engine (trading
    uses it for paper fills, open P&L and the stale-data rule). :meth:`add_frame_listener`
    registers ``fn(frame)``, called on the GUI thread for every frame the engine publishes, in
    order, none skipped (the signal journal uses it; the drawing takes only the newest frame
    from :attr:`slot`).
    """

    #: Replay flow control (pausable sources only): pause above, resume at or below, batches queued.
    FLOW_HIGH = 4
    FLOW_LOW = 1
    #: ... and above / at or below this much queued work (s, :attr:`AnalysisEngine.behind_s`):
    #: two frames and one frame at 60 Hz, so a saturated engine shows data a few frames old
    #: instead of applying a queue of batches of a megabyte each first.
    FLOW_HIGH_S = 2.0 / 60.0
    FLOW_LOW_S = 1.0 / 60.0
    #: Maximum-speed pacing (:meth:`_pace`): above this age of the oldest batch the newest frame
    #: does not contain yet (s), the replay's pace is cut by PACE_DOWN; below PACE_LOW_S it is
    #: raised by PACE_UP (only while data flows, at most PACE_HEADROOM times the pace in force).
    PACE_HIGH_S = 2.0 / 60.0
    PACE_LOW_S = 1.0 / 60.0
    PACE_DOWN = 0.8
    PACE_UP = 1.1
    PACE_HEADROOM = 1.5
    PACE_MIN_EPS = 200.0
    PACE_FLOW_NS = 500_000_000  # "data flows": a batch came within this long (ns)
    #: A failing listener is reported on its first failure and every this many after.
    LISTENER_REPORT_EVERY = 100

    def __init__(self, config: PipelineConfig, on_problem=None, on_state=None, clock: Clock = SYSTEM_CLOCK,
                 source=None):
        from app.live.sources import make_source

        self.clock = clock
        self.config = config
        self.on_problem = on_problem
        self.on_state = on_state
        self.slot = FrameSlot()
        self.latency = LatencyTracker()
        self.instrument: Instrument | None = None
        self.recording = None
        self.vix_history = None
        self.profile = None
        self.engine = None
        self.recorder = None  # RecordingWriter while the window records its event stream
        self.problems: list[tuple[str, str, str]] = []
        self._worker_problems = collections.deque()
        self.states: dict[str, str] = {}
        self.batches = 0
        self.events_in = 0
        self.started = False
        self.stopped = False
        #: called on the worker thread after each published frame (the window wakes its drawing)
        self.on_frame_ready = None
        #: ``fn(frame) -> frame`` applied on the worker thread to every frame before it is kept
        #: and fanned out (the multi-instrument runtime adds the pair's relation row)
        self.frame_transform = None
        self.throttled = False
        self.throttle_count = 0
        self.pace_eps: float | None = None  # this pipeline's maximum-speed pace (events/s)
        self.pace_changes = 0
        self._pace_marks: collections.deque = collections.deque(maxlen=8192)  # (events_in incl. a batch, arrival ns)
        self._pace_seen = 0  # events_in at the previous poll
        self._pace_flow_ns = 0  # when events_in last moved (clock ns)
        self._pace_cut_ns = -1  # when the pace was last cut (clock ns)
        self._pace_waits: int | None = None  # the source's pace_waits at the previous poll
        self.engine_errors = 0
        self._pending_batches: list | None = []
        self._listeners: list = []
        self._frame_listeners: list = []
        self._listener_errors: dict[int, int] = {}
        self._frames_out: collections.deque = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.source = source if source is not None else make_source(config, on_problem=self._problem,
                                                                    on_state=self._set_state)

    # ------------------------------------------------------------------ fan-out
    def add_listener(self, fn) -> None:
        """Call ``fn(batch)`` for every market batch (EVENT_DTYPE, shape (n,)) on the GUI thread.

        Every source feeds it (embedded replay, DTC, Sierra Chart files). ``fn`` must be quick;
        an exception in it is reported (first and every :attr:`LISTENER_REPORT_EVERY`-th) and
        does not stop the market data nor the other listeners.
        """
        if fn not in self._listeners:
            self._listeners.append(fn)

    def remove_listener(self, fn) -> None:
        """Stop calling ``fn`` (no error when it was not registered)."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    def add_frame_listener(self, fn) -> None:
        """Call ``fn(frame)`` for every published :class:`~app.analysis.frame.AnalysisFrame`.

        Called on the thread of the asyncio loop that ran :meth:`start` (or that runs this call;
        the GUI thread), in publish order, every frame once (unlike :attr:`slot`, which keeps only the newest), so
        each frame's ``new_signals`` reach ``fn`` exactly once. Errors are reported as for
        :meth:`add_listener`.
        """
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # start() sets it
        if fn not in self._frame_listeners:
            self._frame_listeners.append(fn)

    def remove_frame_listener(self, fn) -> None:
        """Stop calling ``fn`` (no error when it was not registered)."""
        if fn in self._frame_listeners:
            self._frame_listeners.remove(fn)

    def _call_listener(self, fn, arg) -> None:
        try:
            fn(arg)
        except Exception:
            n = self._listener_errors.get(id(fn), 0) + 1
            self._listener_errors[id(fn)] = n
            if n == 1 or n % self.LISTENER_REPORT_EVERY == 0:
                more = f" (failure #{n})" if n > 1 else ""
                self._problem("error", f"A market data listener {getattr(fn, '__qualname__', fn)!s} failed{more}:\n"
                                       f"{traceback.format_exc()}")

    def _drain_frames(self) -> None:
        """Hand queued frames to the frame listeners (GUI thread)."""
        q = self._frames_out
        while q:
            frame = q.popleft()
            for fn in list(self._frame_listeners):
                self._call_listener(fn, frame)

    # ------------------------------------------------------------------ problems
    def _problem(self, level: str, text: str, action: str = "", log_it: bool = True) -> None:
        self.problems.append((level, text, action))
        if len(self.problems) > 1000:
            del self.problems[:500]
        if log_it:
            (log.error if level == "error" else log.warning)("%s", text)
        if self.on_problem is not None:
            self.on_problem(level, text, action)

    def _set_state(self, source: str, state: str) -> None:
        if self.states.get(source) != state:
            self.states[source] = state
            if self.on_state is not None:
                self.on_state(source, state)

    def _engine_error(self, exc_or_text) -> None:
        """Engine ``on_error`` callback (worker thread): queue for the GUI thread."""
        if isinstance(exc_or_text, BaseException):
            text = "".join(traceback.format_exception(exc_or_text))
        else:
            text = str(exc_or_text)
        self._worker_problems.append(text)

    def poll(self) -> None:
        """Deliver problems queued by the worker thread (GUI thread; called by the window timer).

        Also lifts the replay flow control: a pausable source (the embedded replay) is held
        while the engine has more than :attr:`FLOW_HIGH` batches or :attr:`FLOW_HIGH_S` seconds
        of work queued (a fast replay never runs ahead of what the analysis and the screen
        show) and released here once at most :attr:`FLOW_LOW` batches and :attr:`FLOW_LOW_S`
        seconds remain (the user's own pause still holds it).

        Every engine error is counted; the first five are shown in full, later ones every
        hundredth with the running count (the engine itself logs them, so they are not logged
        twice here).
        """
        self._pace()
        eng = self.engine
        if self.throttled and (eng is None or (eng.backlog <= self.FLOW_LOW
                                               and getattr(eng, "behind_s", 0.0) <= self.FLOW_LOW_S)):
            self.throttled = False
            if not self.stopped:
                self.source.resume(PAUSE_FLOW)
        while self._worker_problems:
            text = self._worker_problems.popleft()
            self.engine_errors += 1
            n = self.engine_errors
            if n <= 5 or n % 100 == 0:
                more = f" (error #{n} of this session)" if n > 1 else ""
                self._problem("error", f"Analysis engine error{more}:\n{text}", log_it=False)

    def _pace(self) -> None:
        """Pace a maximum-speed replay to what the engine applies (GUI thread, from :meth:`poll`).

        The flow control above holds the replay once the engine is behind, but what the server
        sent before the hold took effect is still applied first: on ES at maximum speed the
        engine applies ~30,000 events a second and the replay sends 65,000, and the newest frame
        was 100 to 400 ms behind the socket. So while the replay runs at maximum speed, the
        pipeline keeps a pace (events per second, :meth:`app.sim.replay.ReplayClock.set_max_rate`)
        by the age of the oldest batch the newest frame does not contain yet: above
        :attr:`PACE_HIGH_S` the pace is cut by :attr:`PACE_DOWN`, below :attr:`PACE_LOW_S`
        raised by :attr:`PACE_UP` (additive-increase would be slower to find a fast engine; this
        is the multiplicative form of TCP's congestion window). As TCP cuts once a round trip,
        the pace is cut again only for a late batch that came after the last cut: one stall of
        the engine (a new pass, a statistics run) costs one cut, not one per poll while the
        batches queued before it drain. The pace starts from the rate data came at when the
        first batch was late. It rises only while data flows (not during a pause: no batch
        within :attr:`PACE_FLOW_NS`), only while the pace is what holds the replay back (the
        source's ``pace_waits`` moved since the last poll: on two crypto captures the server's
        own thread was the limit, and a pace that never bound grew without end), and to at
        most :attr:`PACE_HEADROOM` times the pace in force on the shared replay (another
        instrument's pipeline may hold it lower). At a paced speed (1x, 10x)
        the pace is lifted. Live sources are not paced."""
        src = self.source
        if self.stopped or not src.pausable:
            return
        marks = self._pace_marks
        speed = float(getattr(src, "speed", 1.0) or 0.0)
        eng = self.engine
        if speed > 0.0 or eng is None or not eng.analysis_ready:  # the recording's own pace / starting
            marks.clear()
            if self.pace_eps is not None:
                self.pace_eps = None
                src.set_max_rate(None)
            return
        last = self.slot.last
        applied = int(last.events_total) if last is not None else 0
        while marks and marks[0][0] <= applied:
            marks.popleft()
        now = self.clock.monotonic_ns()
        stale_s = (now - marks[0][1]) / 1e9 if marks else 0.0
        if self.events_in != self._pace_seen:
            self._pace_seen = self.events_in
            self._pace_flow_ns = now
        flowed = now - self._pace_flow_ns <= self.PACE_FLOW_NS  # data came lately (not paused)
        waits = src.pace_waits
        bound = waits is None or waits != self._pace_waits  # the pace held the replay back lately
        self._pace_waits = waits
        rate = self.pace_eps
        if stale_s > self.PACE_HIGH_S:
            if marks[0][1] <= self._pace_cut_ns:
                return  # came before the last cut: wait to see what the new pace does
            if rate is None:
                rate = self._arrival_rate()
                if rate is None:
                    return
            new = max(self.PACE_MIN_EPS, rate * self.PACE_DOWN)
            self._pace_cut_ns = now
        elif stale_s < self.PACE_LOW_S and rate is not None and flowed and bound:
            new = rate * self.PACE_UP
            held = src.max_rate
            if held:
                new = min(new, held * self.PACE_HEADROOM)
            if new <= rate:
                return
        else:
            return
        self.pace_eps = new
        self.pace_changes += 1
        src.set_max_rate(new)

    def _arrival_rate(self) -> float | None:
        """Events per second over the batches still waiting for a frame (None: too few)."""
        m = self._pace_marks
        if len(m) < 2 or m[-1][1] <= m[0][1]:
            return None
        return (m[-1][0] - m[0][0]) * 1e9 / (m[-1][1] - m[0][1])

    # ------------------------------------------------------------------ start / stop
    async def start(self) -> None:
        """Start the source, then the engine; lift the source's start-up hold.

        The embedded replay starts paused and runs once the engine runs, so the replay is seen
        from its first event. A refused subscription or a missing folder is reported (with what
        to do) and does not raise; a connection that cannot be made raises ``OSError`` after
        reporting it.
        """
        self._loop = asyncio.get_running_loop()
        self._load_profile_and_vix()
        src = self.source
        try:
            ok = await src.start(self._on_events)
        finally:
            self.recording = src.recording
            self.instrument = src.instrument
        if not ok:
            self.started = True
            return
        self._start_engine()
        pending, self._pending_batches = self._pending_batches, None
        for b in pending:
            self.engine.submit(b)
        src.resume(PAUSE_START)
        self.started = True

    def _load_profile_and_vix(self) -> None:
        cfg = self.config
        from app.config.profiles import load_profile

        self.profile = load_profile(cfg.profile, cfg.profile_overrides or None)
        try:
            from app.feeds.vix_history import load_vix_history

            self.vix_history = load_vix_history()
        except (ImportError, OSError, ValueError) as exc:
            self._problem("warning", f"VIX history could not be loaded ({exc}); the VIX gauge stays empty.")

    def set_profile(self, name: str, overrides: dict | None = None) -> None:
        """Apply the analysis profile ``name`` to the running analysis, without restarting the
        source: the replay or the connection goes on, the engine swaps its analyzers between two
        batches (:meth:`app.live.engine.AnalysisEngine.set_profile` says what stays and what
        restarts) and signal ids keep counting up. Before the engine runs, the profile is the
        one it will start with.

        Parameters
        ----------
        name : str
            Profile name (``scalping``, ``production``, ``development``, ``budget`` or a user's).
        overrides : dict, optional
            Per-key overrides (default: ``config.profile_overrides``).

        Raises
        ------
        app.config.schema.ConfigError
            Unknown profile or bad override; nothing is changed then.
        """
        from app.config.profiles import load_profile

        ov = self.config.profile_overrides if overrides is None else overrides
        prof = load_profile(name, ov or None)
        self.config.profile = name
        if overrides is not None:
            self.config.profile_overrides = dict(overrides)
        self.profile = prof
        if self.engine is not None:
            self.engine.set_profile(prof)
        log.info("analysis profile: %s (applied to the running analysis)", name)

    def _start_engine(self) -> None:
        from app.live.engine import AnalysisEngine

        options = dict(self.config.engine_options or {})
        factory = options.pop("observer_factory", None)
        if factory is not None and options.get("observer") is None:
            options["observer"] = factory()  # this engine's own (see PipelineConfig.engine_options)
        if self.config.session and "calendar" not in options:
            from app.core.sessions import calendar

            options["calendar"] = calendar(self.config.session)
        self.engine = AnalysisEngine(
            self.instrument,
            self.profile,
            on_frame=self._on_frame,
            vix_history=self.vix_history,
            on_error=self._engine_error,
            **options,
        )
        self.engine.start()

    @property
    def client(self):
        """The DTC client of a DTC-based source (the DTC broker trades through it), else None."""
        return self.source.client

    def _on_frame(self, frame) -> None:
        """Engine callback (worker thread): keep the newest frame; queue it for the frame listeners."""
        if self.latency.enabled:
            self.latency.frame_published(int(frame.events_total), self.clock.monotonic_ns())
        if self.frame_transform is not None:
            frame = self.frame_transform(frame)
        self.slot.put(frame)
        if self._frame_listeners and self._loop is not None:
            self._frames_out.append(frame)
            try:
                self._loop.call_soon_threadsafe(self._drain_frames)
            except RuntimeError:  # the loop is closed: stop() drains what is left
                pass
        cb = self.on_frame_ready
        if cb is not None:
            cb()

    def _arrival_ns(self) -> int:
        """When the batch being handed over was read off the socket (a DTC source's client on
        this pipeline's clock: :attr:`app.dtc.client.DTCClient.last_read_ns`), else now."""
        c = self.source.client
        if c is not None and getattr(c, "clock", None) is self.clock:
            t = int(getattr(c, "last_read_ns", 0) or 0)
            if t > 0:
                return t
        return self.clock.monotonic_ns()

    def _on_events(self, batch: np.ndarray) -> None:
        """Source callback (GUI thread, asyncio): O(1) per batch: count, stamp, submit, fan out."""
        n = int(batch.shape[0])
        self.batches += 1
        self.events_in += n
        arrival = self._arrival_ns() if self.source.pausable or self.latency.enabled else 0
        if self.source.pausable:
            self._pace_marks.append((self.events_in, arrival))
        if self.latency.enabled:
            has_depth = bool((batch["kind"] == KIND_DEPTH).any()) if n else False
            self.latency.arrived(n, has_depth, arrival)
        else:
            self.latency.cum_events += n
        if self.recorder is not None:
            self._record(batch)
        eng = self.engine
        if eng is not None:
            eng.submit(batch)
            if self.source.pausable and not self.throttled and (
                    eng.backlog > self.FLOW_HIGH or getattr(eng, "behind_s", 0.0) > self.FLOW_HIGH_S):
                # the replay runs ahead of the analysis: hold it (released by poll())
                self.throttled = True
                self.throttle_count += 1
                self.source.pause(PAUSE_FLOW)
        elif self._pending_batches is not None:
            self._pending_batches.append(batch)
        for fn in self._listeners:
            self._call_listener(fn, batch)

    def start_recording(self, path) -> "Path":
        """Record the normalised event stream of the current source (DTC or Sierra files) to a
        ``.mrec`` recording (:class:`app.feeds.recording.RecordingWriter`) that ``mia-elite
        serve`` and ``mia-elite analyze`` replay. A recording already running is closed first.

        Raises
        ------
        RuntimeError
            No market source has started yet (the instrument is unknown).
        OSError
            The file cannot be created.
        """
        from app.feeds.recording import RecordingWriter

        if self.instrument is None:
            raise RuntimeError("no market source has started yet: nothing to record")
        self.stop_recording()
        src = {"embedded": "built-in replay server", "sierra_files": "Sierra Chart data files"}.get(
            self.source.kind, "DTC server")
        self.recorder = RecordingWriter(path, self.instrument,
                                        source=f"recorded by the MIA Elite window from the {src}")
        log.info("recording %s to %s", self.instrument.symbol, self.recorder.path)
        return self.recorder.path

    def stop_recording(self) -> int | None:
        """Close the running recording; returns the events written (``None`` if none ran)."""
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        rec.close()
        log.info("recording closed: %s (%d events)", rec.path, rec.count)
        return rec.count

    def _record(self, batch: np.ndarray) -> None:
        try:
            self.recorder.append(batch)
        except OSError as exc:  # a full disk must not stop the market data
            self._problem("error", f"recording stopped: {exc}", "free disk space, then record again")
            self.stop_recording()

    def frame_painted(self, frame) -> None:
        """Tell the latency tracker that ``frame`` is on screen now."""
        if self.latency.enabled:
            self.latency.painted(int(frame.events_total), self.clock.monotonic_ns())

    def figures(self) -> dict:
        """Health figures: ``msgs_per_s``, ``decode_errors``, ``messages_received``, ``state``."""
        c = self.client
        out = {"batches": self.batches, "events_in": self.events_in}
        if c is not None:
            for k in ("msgs_per_s", "decode_errors", "messages_received"):
                v = getattr(c, k, None)
                if callable(v):
                    v = v()
                if v is not None:
                    out[k] = v
        return out

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the source and the engine (each bounded by ``timeout`` seconds); idempotent.

        Frames published before the engine stopped still reach the frame listeners.
        """
        if self.stopped:
            return
        self.stopped = True
        self.stop_recording()
        try:
            await self.source.stop(timeout)
        except Exception as exc:  # report, keep stopping the rest
            self._problem("warning", f"stopping the market source: {exc!r}")
        if self.engine is not None:
            ok = self.engine.stop(timeout)  # joins the worker (milliseconds: it polls its queue every 50 ms)
            if not ok:
                self._problem("error", f"the analysis worker did not stop within {timeout:g} s")
        self._drain_frames()
        self.poll()
