"""The live data path behind the window: source -> DTC client -> analysis engine -> newest frame.

Runs on the asyncio loop that qasync drives inside the Qt event loop (GUI thread), except the
analysis engine, which owns its worker thread. This module imports no Qt, so it can be used and
benchmarked headless::

    embedded DTCServer (port 0)  --TCP-->  DTCClient.on_events(batch)  --> engine.submit(batch)
                                                                               |
    window QTimer  <--  FrameSlot.take()  <--  engine on_frame(frame) (worker thread)

Per depth/trade batch the GUI thread does O(1) work here: count, remember the arrival time
(for the latency figure), hand the batch to the engine's queue. The engine publishes immutable
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
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from app.core.events import KIND_DEPTH, Instrument

log = logging.getLogger(__name__)

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
    symbol, exchange : str
        Data-service symbol to subscribe ("" = the recording's symbol).
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
        The embedded server starts the recording again at its end (the demo runs all day).
    engine_options : dict
        Extra keyword arguments of ``AnalysisEngine`` (``window_cols``, ``publish_interval_s``).
    server_options : dict
        Extra keyword arguments of the embedded ``DTCServer`` (``max_batch``, ``max_gap_s``).
    """

    embedded: bool = True
    recording: object = None
    speed: float = 10.0
    host: str = "127.0.0.1"
    port: int = 11099
    encoding: str = "binary"
    username: str = ""
    password: str = field(default="", repr=False)
    symbol: str = ""
    exchange: str = ""
    tick_size: float = 0.0
    tick_value: float = 0.0
    data_source: str = "dtc"
    sierra_data_dir: str = ""
    profile: str = "production"
    profile_overrides: dict = field(default_factory=dict)
    trade_account: str = ""
    loop_replay: bool = True
    engine_options: dict = field(default_factory=dict)
    server_options: dict = field(default_factory=dict)


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
    count is ``cum``. Times are ``time.perf_counter_ns()``. Recording is off unless
    :attr:`enabled` is set (then one tuple per batch and per frame is kept).
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
    """Owns the embedded server, the DTC client and the analysis engine for one window.

    Parameters
    ----------
    config : PipelineConfig
    on_problem : callable(level: str, text: str, action: str), optional
        Called on the GUI thread (asyncio loop) for every problem; engine errors raised on the
        worker thread are queued and delivered by :meth:`poll` (called by the window's timer).
    on_state : callable(source: str, state: str), optional
        Connection state changes per source.

    Attributes
    ----------
    slot : FrameSlot
    latency : LatencyTracker
    instrument : Instrument or None
    server, client, engine : objects of the other packages (None until started)
    problems : list of (level, text, action)
    """

    #: Replay flow control (embedded server only): pause above, resume at or below, batches queued.
    FLOW_HIGH = 4
    FLOW_LOW = 1

    def __init__(self, config: PipelineConfig, on_problem=None, on_state=None):
        self.config = config
        self.on_problem = on_problem
        self.on_state = on_state
        self.slot = FrameSlot()
        self.latency = LatencyTracker()
        self.instrument: Instrument | None = None
        self.recording = None
        self.vix_history = None
        self.profile = None
        self.server = None
        self.client = None
        self.engine = None
        self.file_source = None
        self.recorder = None  # RecordingWriter while the window records its event stream
        self.problems: list[tuple[str, str, str]] = []
        self._worker_problems = collections.deque()
        self.states: dict[str, str] = {}
        self.batches = 0
        self.events_in = 0
        self.started = False
        self.stopped = False
        self._tasks: set[asyncio.Task] = set()
        self.source_name = ""
        #: called on the worker thread after each published frame (the window wakes its drawing)
        self.on_frame_ready = None
        self.subscribed = False
        self.throttled = False
        self.throttle_count = 0
        self.engine_errors = 0
        self.user_paused = False
        self._pending_batches: list | None = []

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

        Also lifts the replay flow control: the embedded server is paused while the engine has
        more than :attr:`FLOW_HIGH` batches queued (a fast replay never runs ahead of what the
        analysis and the screen show) and resumed here once at most :attr:`FLOW_LOW` remain.

        Every engine error is counted; the first five are shown in full, later ones every
        hundredth with the running count (the engine itself logs them, so they are not logged
        twice here).
        """
        if self.throttled and (self.engine is None or self.engine.backlog <= self.FLOW_LOW):
            self.throttled = False
            if self.server is not None and not self.user_paused and not self.stopped:
                self.server.resume()
        while self._worker_problems:
            text = self._worker_problems.popleft()
            self.engine_errors += 1
            n = self.engine_errors
            if n <= 5 or n % 100 == 0:
                more = f" (error #{n} of this session)" if n > 1 else ""
                self._problem("error", f"Analysis engine error{more}:\n{text}", log_it=False)

    def config_host_port(self) -> str:
        if self.server is not None:
            return f"the built-in server 127.0.0.1:{self.server.port}"
        return f"{self.config.host}:{self.config.port}"

    # ------------------------------------------------------------------ start / stop
    async def start(self) -> None:
        """Start the embedded server (if any), the client, then the engine; subscribe.

        The embedded server starts paused and resumes once the client is subscribed, so the
        replay is seen from its first event. A refused subscription is reported (with what to
        do) and does not raise; a connection that cannot be made raises ``OSError`` after
        reporting it.
        """
        cfg = self.config
        self._load_profile_and_vix()
        if cfg.embedded:
            await self._start_embedded()
        elif cfg.data_source == "sierra_files":
            await self._start_sierra_files()
            self.started = True
            return
        sub = await self._start_client()
        if sub is None:
            self.started = True
            return
        self._make_instrument(sub)
        self._start_engine()
        pending, self._pending_batches = self._pending_batches, None
        for b in pending:
            self.engine.submit(b)
        if self.server is not None and not self.user_paused:
            self.server.resume()
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

    async def _start_embedded(self) -> None:
        cfg = self.config
        from app.sim.server import DTCServer
        from app.feeds.recording import Recording, read_recording

        if isinstance(cfg.recording, Recording):
            self.recording = cfg.recording
        elif cfg.recording:
            self.recording = read_recording(cfg.recording)
        else:
            from app.feeds.samples import load_default_sample

            self.recording = load_default_sample()
        speed = float(cfg.speed)
        # start at the opening trade: before it a recorded session may hold a pre-open book
        # (crossed in the ES sample until 23:00 UTC), not what a trader expects on first sight
        options = {"start_at_open": True, **(cfg.server_options or {})}
        self.server = DTCServer(self.recording, host="127.0.0.1", port=0, speed=speed,
                                loop_replay=bool(cfg.loop_replay), paused=True, **options)
        await self.server.start()
        self._set_state("replay server", "running")

    def _make_instrument(self, sub) -> None:
        cfg = self.config
        if self.recording is not None:
            self.instrument = self.recording.instrument
            return
        d = getattr(sub, "definition", None)
        tick_value = cfg.tick_value
        desc = ""
        if d is not None:
            tick_value = float(getattr(d, "CurrencyValuePerIncrement", 0.0) or 0.0) or tick_value
            desc = str(getattr(d, "Description", "") or "")
        self.instrument = Instrument(cfg.symbol, float(sub.tick_size), float(tick_value), cfg.exchange, desc)

    def _start_engine(self) -> None:
        from app.live.engine import AnalysisEngine

        self.engine = AnalysisEngine(
            self.instrument,
            self.profile,
            on_frame=self._on_frame,
            vix_history=self.vix_history,
            on_error=self._engine_error,
            **(self.config.engine_options or {}),
        )
        self.engine.start()

    def _on_client_state(self, state: str) -> None:
        prev = self.states.get(self.source_name)
        self._set_state(self.source_name, "streaming" if state == "connected" and self.subscribed else state)
        if self.stopped:
            return
        if prev in ("connected", "streaming") and state in ("disconnected", "reconnecting", "connecting"):
            self._problem(
                "warning",
                f"The connection to {self.config_host_port()} dropped ({state}). The app reconnects by itself "
                "and resubscribes; if it does not come back, check that Sierra Chart (or the replay server) is "
                "running and that its DTC server is enabled on that port.",
            )

    async def _start_client(self):
        cfg = self.config
        from app.dtc.client import DTCClient, MarketDataRejected

        host, port = ("127.0.0.1", self.server.port) if self.server is not None else (cfg.host, cfg.port)
        self.source_name = f"dtc {host}:{port}"
        self._set_state(self.source_name, "connecting")
        # The built-in server gets the timestamped depth messages (106/122): the compact float ones
        # (140/145) stamp snapshots with the receive clock, which is not a replay's market time.
        extra = {"depth_float": False} if self.server is not None else {}
        self.client = DTCClient(host, port, encoding=cfg.encoding, username=cfg.username, password=cfg.password,
                                trade_account=cfg.trade_account, on_state=self._on_client_state, **extra)
        try:
            await self.client.connect()
        except (OSError, Exception) as exc:
            self._set_state(self.source_name, "disconnected")
            self._problem(
                "error",
                f"Cannot connect to the DTC server at {host}:{port} ({exc}). Is Sierra Chart running with its "
                "DTC server enabled (Global Settings > Data/Trade Service Settings > SC Server Settings > "
                "DTC Protocol Server) on this port? Change host/port in File > Connection.",
            )
            raise
        symbol = cfg.symbol or (self.recording.instrument.symbol if self.recording is not None else "")
        if not symbol:
            self._set_state(self.source_name, "no symbol")
            self._problem("error", "Connected, but no symbol is chosen: add it to the symbol map in "
                                   "File > Connection (the exact symbol of the data service, e.g. ESZ25_FUT_CME).")
            return None
        tick = cfg.tick_size if cfg.tick_size > 0 else None
        try:
            sub = await self.client.subscribe_market(symbol, cfg.exchange, depth=True, on_events=self._on_events,
                                                     tick_size=tick)
        except MarketDataRejected as exc:
            self._set_state(self.source_name, "rejected")
            if cfg.tick_size > 0:  # trading over DTC still works for a symbol whose data is refused
                self.instrument = Instrument(symbol, float(cfg.tick_size), float(cfg.tick_value), cfg.exchange)
            self._problem("error", f"Symbol {symbol} rejected. {exc}", action="use_sierra_files")
            return None
        except ValueError as exc:
            self._set_state(self.source_name, "error")
            self._problem("error", f"Cannot subscribe to {symbol}: {exc}. Set its tick size in File > Connection.")
            return None
        self.subscribed = True
        self._set_state(self.source_name, "streaming")
        return sub

    async def _start_sierra_files(self) -> None:
        """Follow Sierra Chart's own files for the symbol (``.scid`` trades, ``.depth`` book).

        Used for symbols whose data Sierra Chart's DTC server refuses (CME, CBOE...). Missing
        folder or files are reported with the exact Sierra Chart setting to turn on.
        """
        from app.live.sierra_source import (explain_missing_depth, explain_missing_scid, files_for_symbol,
                                             find_sierra_data_dir, make_follower)

        cfg = self.config
        symbol = cfg.symbol
        self.source_name = f"sierra files {symbol}"
        self._set_state(self.source_name, "starting")
        data_dir = find_sierra_data_dir(cfg.sierra_data_dir or None)
        if data_dir is None:
            self._set_state(self.source_name, "error")
            self._problem("error", "Sierra Chart's Data folder was not found. Set it in File > Connection "
                                   "(Sierra Chart: Global Settings >> General Settings >> Data Files Folder).")
            return
        if not symbol or cfg.tick_size <= 0:
            self._set_state(self.source_name, "error")
            self._problem("error", "Set the symbol and its tick size in File > Connection > symbol map "
                                   "to read Sierra Chart's data files.")
            return
        files = files_for_symbol(data_dir, symbol)
        if files.latest_depth is None:
            self._problem("warning", explain_missing_depth(symbol, data_dir))
        if files.scid is None:
            self._problem("warning", explain_missing_scid(symbol, data_dir))
        self.instrument = Instrument(symbol, float(cfg.tick_size), float(cfg.tick_value), cfg.exchange)
        self._pending_batches = None
        self._start_engine()
        self.file_source = make_follower(data_dir, symbol, self.instrument, self._on_events)
        task = asyncio.ensure_future(self.file_source.run())
        self._tasks.add(task)

        def done(t):
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._set_state(self.source_name, "error")
                self._problem("error", f"Reading Sierra Chart's files stopped: {t.exception()!r}")

        task.add_done_callback(done)
        self._set_state(self.source_name, "following")

    def _on_frame(self, frame) -> None:
        """Engine callback (worker thread): keep the newest frame."""
        if self.latency.enabled:
            self.latency.frame_published(int(frame.events_total), time.perf_counter_ns())
        self.slot.put(frame)
        cb = self.on_frame_ready
        if cb is not None:
            cb()

    def _on_events(self, batch: np.ndarray) -> None:
        """Client callback (GUI thread, asyncio): O(1) per batch: count, stamp, submit."""
        t = time.perf_counter_ns()
        n = int(batch.shape[0])
        self.batches += 1
        self.events_in += n
        if self.latency.enabled:
            has_depth = bool((batch["kind"] == KIND_DEPTH).any()) if n else False
            self.latency.arrived(n, has_depth, t)
        else:
            self.latency.cum_events += n
        if self.recorder is not None:
            self._record(batch)
        eng = self.engine
        if eng is not None:
            eng.submit(batch)
            if self.server is not None and not self.throttled and eng.backlog > self.FLOW_HIGH:
                # the replay runs ahead of the analysis: hold it (resumed by poll())
                self.throttled = True
                self.throttle_count += 1
                self.server.pause()
        elif self._pending_batches is not None:
            self._pending_batches.append(batch)

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
        src = "built-in replay server" if self.server is not None else (
            "Sierra Chart data files" if self.file_source is not None else "DTC server")
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
            self.latency.painted(int(frame.events_total), time.perf_counter_ns())

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
        """Stop client, server and engine (each bounded by ``timeout`` seconds); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        self.stop_recording()
        if self.file_source is not None:
            self.file_source.stop()  # ends its run() loop at the next poll
        if self._tasks:
            done, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
            for t in pending:
                t.cancel()
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.close(), timeout)
            except Exception as exc:  # report, keep stopping the rest
                self._problem("warning", f"closing the DTC client: {exc!r}")
            self._set_state(self.source_name, "stopped")
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.stop(), timeout)
            except Exception as exc:
                self._problem("warning", f"stopping the built-in server: {exc!r}")
            self._set_state("replay server", "stopped")
        if self.engine is not None:
            ok = self.engine.stop(timeout)  # joins the worker (milliseconds: it polls its queue every 50 ms)
            if not ok:
                self._problem("error", f"the analysis worker did not stop within {timeout:g} s")
        self.poll()
