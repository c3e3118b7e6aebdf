"""Several instruments at once: one market-data pipeline per instrument (issue 17 item 2).

:class:`InstrumentsRuntime` runs a window's instruments (:attr:`PipelineConfig.instruments
<app.live.pipeline.PipelineConfig.instruments>`) side by side. Each instrument has its own
:class:`~app.live.pipeline.Pipeline`: its own :class:`~app.live.engine.AnalysisEngine` on its
own worker thread (market model, analyzers, outcome statistics), its own
:class:`~app.live.pipeline.FrameSlot`, market-data fan-out and latency figures; its frames
carry its symbol (``frame.symbol``) and its signal ids come from its own block
(:data:`SIGNAL_ID_BLOCK`), so ids are unique across instruments. No Qt here::

    one DTC connection (embedded replay server or external) -- SymbolID 1 --> Pipeline ES  -> engine thread
                                                             -- SymbolID 2 --> Pipeline NQ  -> engine thread
    Sierra Chart files, one follower per symbol        ---------------------> Pipeline X   -> engine thread
    pair (A, B) trades  --> Relation (GUI thread) --> newest row on both A's and B's frames (frame.relation)
                                                  +--> both engines' analyzers (AnalysisEngine.set_relation:
                                                       the rel_* features of their steps and snapshots)

Sources. Every DTC-routed instrument (``data_source="dtc"``, or every instrument of the
embedded replay) shares **one** DTC connection: the first opens it (the source
:func:`app.live.sources.make_source` makes for it: the embedded server serving every
recording of ``config.recording``, or the external server), the others subscribe on the same
:class:`~app.dtc.client.DTCClient` (one SymbolID each; :class:`ConnectionShare`). Every
``sierra_files`` instrument has its own :class:`~app.live.sierra_source.SierraFilesSource`.

Replay flow control and pauses act on the one replay (one market clock): a pipeline whose
engine falls behind holds the shared replay under its own reason (``"flow:<symbol>"``), and the
replay starts only once every instrument's engine runs.

Threads, measured on this 2-core machine (shared with other work; ``python -m
app.bench.instruments`` and the report of issue 17 item 2): one worker thread per instrument,
running freely, is the default. Headless (the two captures fed straight to the engines) the
threads taking turns on one lock (``take_turns=True``) or one shared worker finished sooner
(1.8 s against 2.4 s, p99 batch-to-frame about 110 against 150 ms); through the real runtime
(loopback DTC, the decoding GUI thread and the server thread competing too) the free threads
gave BTCUSDT beside ETHUSDT 14-15 frames/s and a p99 of 150-210 ms against 10-12 frames/s and
205-370 ms taking turns (load average 2-3), so the runtime keeps them free; at a load average
of 4-6 (other work on the machine) the runtime figures of both overlapped (8-11 frames/s, p99
250-530 ms) and headless the shared worker led. ``take_turns`` stays for machines where the
opposite measures better.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import Instrument
from app.live.pipeline import Pipeline, PipelineConfig
from app.live.sources import (ACTION_REPLAY_RESTARTED, PAUSE_FLOW, PAUSE_START, MarketSource, SourceStatus,
                              make_source)

log = logging.getLogger(__name__)

#: A stream of the relation's pair whose market time goes back by more than this (ns) starts
#: a new session of the relation (a replay that looped without telling): 1 s, so the small
#: reorderings of a live feed never do.
RELATION_BACK_NS = 1_000_000_000

#: Signal ids of instrument ``k`` (0-based, in :attr:`PipelineConfig.instruments` order) start at
#: ``first_signal_id + k * SIGNAL_ID_BLOCK``: unique across instruments without a shared counter.
SIGNAL_ID_BLOCK = 10_000_000


class ConnectionShare(MarketSource):
    """One instrument's share of a DTC connection that several instruments use.

    The primary share starts ``base`` (a :class:`~app.live.sources.DTCSource` or
    :class:`~app.live.sources.EmbeddedReplaySource`, whose own subscription is this share's
    symbol); every other share subscribes its symbol on ``base.client``. Pause, resume, speed
    and restart act on ``base`` (the one replay); the flow-control hold is kept per symbol.

    Parameters
    ----------
    base : MarketSource
        The shared DTC-based source.
    symbol, exchange : str
        This share's data-service symbol (opaque) and exchange.
    tick_size, tick_value : float
        Used when the server does not tell them (0 = unknown).
    primary : bool
        True for the share that starts ``base``.
    on_problem, on_state
        See :class:`~app.live.sources.MarketSource`.

    Attributes
    ----------
    subscription : app.dtc.client.Subscription or None
        A non-primary share's subscription (after :meth:`start`).
    """

    def __init__(self, base: MarketSource, symbol: str, *, exchange: str = "", tick_size: float = 0.0,
                 tick_value: float = 0.0, primary: bool = False, on_problem=None, on_state=None):
        super().__init__(on_problem, on_state)
        self.base = base
        self.kind = base.kind
        self.pausable = base.pausable
        self.symbol, self.exchange = symbol, exchange
        self.tick_size, self.tick_value = float(tick_size), float(tick_value)
        self.primary = bool(primary)
        self.subscription = None
        self.name = base.name

    def describe(self) -> str:
        return self.base.describe()

    async def start(self, deliver) -> bool:
        """Start ``base`` (primary) or subscribe this symbol on its client.

        Returns
        -------
        bool
            True when this symbol streams; False after a reported refusal.

        Raises
        ------
        OSError
            The primary's connection cannot be made (reported by ``base`` first).
        """
        if self.primary:
            try:
                ok = await self.base.start(deliver)
            finally:
                self.client, self.recording, self.instrument = self.base.client, self.base.recording, self.base.instrument
                self.name = self.base.name
            return ok
        from app.dtc.client import MarketDataRejected

        client = self.base.client
        self.client, self.recording = client, getattr(self.base, "recording", None)
        if client is None:
            self._set_state("error")
            self._problem("error", f"{self.symbol}: the shared DTC connection is not open; nothing to subscribe on.")
            return False
        rec = self.base.recording_of(self.symbol) if hasattr(self.base, "recording_of") else None
        tick = self.tick_size if self.tick_size > 0 else (rec.instrument.tick_size if rec is not None else 0.0)
        try:
            sub = await client.subscribe_market(self.symbol, self.exchange, depth=True, on_events=deliver,
                                                tick_size=tick if tick > 0 else None)
        except MarketDataRejected as exc:
            self._set_state("rejected")
            if tick > 0:  # trading over DTC still works for a symbol whose data is refused
                self.instrument = Instrument(self.symbol, tick, self.tick_value, self.exchange)
            self._problem("error", f"Symbol {self.symbol} rejected. {exc}", "use_sierra_files")
            return False
        except ValueError as exc:
            self._set_state("error")
            self._problem("error", f"Cannot subscribe to {self.symbol}: {exc}. Set its tick size in [[instruments]].")
            return False
        self.subscription = sub
        if rec is not None:
            self.instrument = rec.instrument
        else:
            d = getattr(sub, "definition", None)
            value = float(getattr(d, "CurrencyValuePerIncrement", 0.0) or 0.0) or self.tick_value
            desc = str(getattr(d, "Description", "") or "")
            self.instrument = Instrument(self.symbol, float(sub.tick_size), value, self.exchange, desc)
        self._set_state("streaming")
        return True

    def _reason(self, reason: str) -> str:
        return f"{PAUSE_FLOW}:{self.symbol}" if reason == PAUSE_FLOW else reason

    def pause(self, reason: str = "user") -> bool:
        return self.base.pause(self._reason(reason))

    def resume(self, reason: str = "user") -> bool:
        """Lift a hold on the shared replay; the start-up hold is lifted by the runtime once
        every instrument's engine runs (:meth:`InstrumentsRuntime.start`), not here."""
        if reason == PAUSE_START:
            return True
        return self.base.resume(self._reason(reason))

    def set_speed(self, speed: float) -> bool:
        return self.base.set_speed(speed)

    def set_max_rate(self, events_per_s: float | None, reason: str = PAUSE_FLOW) -> bool:
        """This instrument's pace on the shared replay (its own reason: the slowest wins)."""
        fn = getattr(self.base, "set_max_rate", None)
        return bool(fn(events_per_s, f"{reason}:{self.symbol}")) if callable(fn) else False

    @property
    def max_rate(self) -> float | None:
        return getattr(self.base, "max_rate", None)

    @property
    def pace_waits(self) -> int | None:
        return getattr(self.base, "pace_waits", None)

    @property
    def speed(self) -> float:
        return float(getattr(self.base, "speed", 1.0))

    def restart(self) -> bool:
        """Restart the shared replay (every instrument's recording); False for a live source."""
        fn = getattr(self.base, "restart", None)
        return bool(fn()) if callable(fn) else False

    @property
    def replay_finished(self) -> bool:
        return bool(getattr(self.base, "replay_finished", False))

    @property
    def paused(self) -> bool:
        return self.base.paused

    @property
    def status(self) -> SourceStatus:
        st = self.base.status
        return SourceStatus(st.kind, st.name, st.state if self.primary else self.state, st.paused, st.speed)

    async def stop(self, timeout: float = 5.0) -> None:
        """The primary stops ``base`` (closing the connection of every share); others only mark stopped."""
        if self.stopped:
            return
        self.stopped = True
        if self.primary:
            await self.base.stop(timeout)
        self._set_state("stopped")

    def stop_blocking(self, timeout: float = 5.0) -> None:
        self.stopped = True
        if self.primary:
            self.base.stop_blocking(timeout)


@dataclasses.dataclass
class InstrumentRuntime:
    """One instrument of an :class:`InstrumentsRuntime`.

    Attributes
    ----------
    index : int
        Position in the configured instruments.
    symbol : str
        As configured ("" for the embedded replay's first recording until started).
    config : PipelineConfig
        This instrument's own config (:meth:`PipelineConfig.instrument_config`).
    pipeline : Pipeline
        Its source share, engine, frame slot, fan-out and latency figures.
    """

    index: int
    symbol: str
    config: PipelineConfig
    pipeline: Pipeline

    @property
    def instrument(self) -> Instrument | None:
        """The instrument as the source told it (after start)."""
        return self.pipeline.instrument

    @property
    def slot(self):
        """Newest frame of this instrument (:class:`~app.live.pipeline.FrameSlot`)."""
        return self.pipeline.slot

    @property
    def engine(self):
        """Its :class:`~app.live.engine.AnalysisEngine` (None until the source streams)."""
        return self.pipeline.engine


class InstrumentsRuntime:
    """The window's instruments side by side (see the module docstring).

    Parameters
    ----------
    config : PipelineConfig
        Its :attr:`~PipelineConfig.instruments` (at least one) and the shared connection
        (embedded replay with ``recording`` a list of recordings, or an external DTC server,
        or Sierra Chart's data folder).
    on_problem : callable(level, text, action), optional
        Every problem of every instrument, its text headed by the symbol (``"ETHUSDT: ..."``)
        when it comes from one instrument's pipeline.
    on_state : callable(source, state), optional
    clock : Clock
        Monotonic clock of the latency stamps.
    first_signal_id : int
        First signal id of the first instrument (:data:`SIGNAL_ID_BLOCK` per instrument).
    relation_pair : tuple of two str, optional
        Symbols of the pair whose :class:`~app.analysis.relation.Relation` is computed (default
        the first two instruments; none with one instrument).
    relation_params : app.analysis.relation.RelationParams, optional
    relation_features : bool
        Hand every new relation row to both instruments' engines (default True: the analyzers'
        ``rel_*`` features and snapshot columns); False only for the benchmark's baseline
        (``python -m app.bench.relation_features``).
    take_turns : bool
        The instruments' engine threads take turns (one shared ``step_lock``, see
        :class:`~app.live.engine.AnalysisEngine`). Default False: they run freely, what measured
        better through the runtime on 2 cores (module docstring).
    record_latency : bool
        Turn on every pipeline's :class:`~app.live.pipeline.LatencyTracker` from the first
        batch (benchmarks: batch-to-frame per instrument).

    Attributes
    ----------
    instruments : list of InstrumentRuntime
    relation : app.analysis.relation.Relation or None
        Created at the pair's first batch (its calendar: the first instrument's session, else
        its exchange's, :func:`app.core.sessions.calendar_for`).
    relation_pair : tuple of two str or None
        The pair's symbols (A, B) once started with two or more instruments.
    relation_row : numpy.void or None
        Newest closed second of the pair (RELATION_DTYPE), also set on both instruments'
        frames as ``frame.relation``.
    relation_rows : list of numpy.ndarray
        Every RELATION_DTYPE block produced, in order (``np.concatenate`` for the series).
    problems : list of (level, text, action)

    Raises
    ------
    ValueError
        ``config.engine_options["observer"]`` with several instruments: each engine needs its
        own research observer (``engine_options["observer_factory"]``, see
        :class:`~app.live.pipeline.PipelineConfig`).
    """

    def __init__(self, config: PipelineConfig, on_problem=None, on_state=None, clock: Clock = SYSTEM_CLOCK,
                 first_signal_id: int = 1, relation_pair: tuple[str, str] | None = None, relation_params=None,
                 record_latency: bool = False, take_turns: bool = False, relation_features: bool = True):
        self.config = config
        self.on_problem = on_problem
        self.on_state = on_state
        self.clock = clock
        self.problems: list[tuple[str, str, str]] = []
        self.relation = None
        self.relation_row = None
        self.relation_rows: list[np.ndarray] = []
        self._relation_params = relation_params
        self._relation_features = bool(relation_features)
        self.relation_pair: tuple[str, str] | None = None
        self._rel_pending: list[list] = [[], []]  # trades (ts, px) of A and B not yet handed over
        self._rel_reach = [-1, -1]  # newest event time of A's and B's streams, ns
        #: times the relation started again (a replay restart, or a stream's time went back)
        self.relation_resets = 0
        self._pair_arg = relation_pair
        self.started = False
        self.stopped = False
        self._hub: MarketSource | None = None
        self.instruments: list[InstrumentRuntime] = []
        self._listeners: list = []
        self._frame_listeners: list = []
        self._first_signal_id = int(first_signal_id)
        self._record_latency = bool(record_latency)
        self._step_lock = threading.Lock() if take_turns else None
        items = config.instruments
        if config.embedded and len(items) == 1 and not items[0].symbol and isinstance(config.recording, (list, tuple)):
            items = None  # one instrument per served recording: known once the recordings are loaded
        self._items = items
        several = items is None and len(config.recording) > 1 or items is not None and len(items) > 1
        if several and (config.engine_options or {}).get("observer") is not None:
            raise ValueError("engine_options['observer']: one research observer cannot serve several "
                             "instruments' engines (it keeps one stream of trades); pass "
                             "engine_options['observer_factory'] instead")

    # ------------------------------------------------------------------ building
    def _problem_of(self, symbol: str):
        def report(level: str, text: str, action: str = "") -> None:
            self._problem(level, f"{symbol}: {text}" if symbol else text, action)
        return report

    def _problem(self, level: str, text: str, action: str = "") -> None:
        self.problems.append((level, text, action))
        if self.on_problem is not None:
            self.on_problem(level, text, action)
        if action == ACTION_REPLAY_RESTARTED:  # one market clock: every recording starts again
            self._reset_relation()

    def _reset_relation(self) -> None:
        """A new session of the pair (the replay restarted, or market time went back): the
        relation starts again from nothing, its series with it, and both engines forget the
        rows they hold (:meth:`app.live.engine.AnalysisEngine.reset_relation`)."""
        self.relation = None
        self.relation_row = None
        self.relation_rows = []
        self._rel_pending = [[], []]
        self._rel_reach = [-1, -1]
        self.relation_resets += 1
        for r in self.instruments:
            eng = r.engine if r.symbol in (self.relation_pair or ()) else None
            if eng is not None and hasattr(eng, "reset_relation"):
                eng.reset_relation()

    def _state(self, source: str, state: str) -> None:
        if self.on_state is not None:
            self.on_state(source, state)

    def _build(self) -> None:
        cfg = self.config
        if cfg.embedded:
            self._hub = make_source(cfg, on_problem=self._problem, on_state=self._state)
        items = self._items
        if items is None:
            recs = self._hub.load_recordings()
            items = [dataclasses.replace(cfg.instruments[0], symbol=r.instrument.symbol) for r in recs]
            cfg = dataclasses.replace(cfg)
            cfg.set_instruments(items)
            self.config = cfg
            items = cfg.instruments
        primary_done = False
        for k, item in enumerate(items):
            sub = self.config.instrument_config(item.symbol)
            opts = dict(sub.engine_options or {})
            opts["first_signal_id"] = int(opts.get("first_signal_id", self._first_signal_id)) + k * SIGNAL_ID_BLOCK
            if self._step_lock is not None:
                opts.setdefault("step_lock", self._step_lock)
            sub.engine_options = opts
            report = self._problem_of(item.symbol)
            if item.data_source == "sierra_files":
                src_cfg = dataclasses.replace(sub, embedded=False)
                source = make_source(src_cfg, on_problem=report, on_state=self._state)
            else:
                if self._hub is None:
                    self._hub = make_source(dataclasses.replace(sub, embedded=False, data_source="dtc"),
                                            on_problem=self._problem, on_state=self._state)
                    primary = True
                else:
                    primary = not primary_done and cfg.embedded
                if primary:
                    if cfg.embedded:  # the embedded source's own subscription is this instrument's
                        self._hub.client_kwargs.update(symbol=item.symbol, exchange=item.exchange,
                                                       tick_size=item.tick_size, tick_value=item.tick_value)
                    primary_done = True
                source = ConnectionShare(self._hub, item.symbol, exchange=item.exchange, tick_size=item.tick_size,
                                         tick_value=item.tick_value, primary=primary, on_problem=report,
                                         on_state=self._state)
            pl = Pipeline(sub, on_problem=report, on_state=self._state, clock=self.clock, source=source)
            pl.latency.enabled = self._record_latency
            rt = InstrumentRuntime(k, item.symbol, sub, pl)
            self.instruments.append(rt)
            for fn in self._listeners:
                self._attach(rt, fn)
            for fn in self._frame_listeners:
                pl.add_frame_listener(fn)

    def _wire_relation(self) -> None:
        if len(self.instruments) < 2:
            return
        pair = self._pair_arg or (self.instruments[0].symbol, self.instruments[1].symbol)
        a, b = self.by_symbol(pair[0]), self.by_symbol(pair[1])
        self.relation_pair = (a.symbol, b.symbol)
        a.pipeline.add_listener(lambda batch: self._relation_in(0, batch))
        b.pipeline.add_listener(lambda batch: self._relation_in(1, batch))
        for r in (a, b):
            r.pipeline.frame_transform = self._with_relation

    def _relation_in(self, side: int, batch: np.ndarray) -> None:
        """A batch of one of the pair (GUI thread): keep its trades; hand the relation both
        streams' trades **cut at one market time**, the time both streams have reached (each
        stream is in time order, so every trade before it has arrived), so the rows equal one
        call on the whole streams (``docs/relation.md``, "Closing")."""
        if not len(batch):
            return
        from app.analysis.relation import Relation

        if int(batch["ts"].min()) < self._rel_reach[side] - RELATION_BACK_NS:
            # a new session without a restart notice (another server's replay looped): start
            # again rather than refuse every later batch as "trade times go backwards"
            log.warning("relation %s/%s: %s's market time went back %.1f s; the relation starts again",
                        *self.relation_pair, self.relation_pair[side],
                        (self._rel_reach[side] - int(batch["ts"].min())) / 1e9)
            self._reset_relation()
        if self.relation is None:
            self.relation = Relation(self._relation_params, calendar=self._relation_calendar())
        ts, px = Relation.trades_of(batch)
        if len(ts):
            self._rel_pending[side].append((ts, px))
        self._rel_reach[side] = max(self._rel_reach[side], int(batch["ts"].max()))
        cut = min(self._rel_reach)
        if cut < 0:
            return
        parts = []
        for k in (0, 1):
            pend = self._rel_pending[k]
            t = np.concatenate([p[0] for p in pend]) if pend else np.zeros(0, np.int64)
            p = np.concatenate([p[1] for p in pend]) if pend else np.zeros(0)
            n = int(np.searchsorted(t, cut, side="left"))  # trades before the cut
            parts += [t[:n], p[:n]]
            self._rel_pending[k] = [(t[n:], p[n:])] if n < len(t) else []
        if len(parts[0]) or len(parts[2]):
            rows = self.relation.update(*parts)
            if len(rows):
                self.relation_rows.append(rows)
                self.relation_row = rows[-1].copy()
                for sym in (self.relation_pair if self._relation_features else ()):  # the analyzers' features
                    eng = self.by_symbol(sym).engine
                    if eng is not None and hasattr(eng, "set_relation"):
                        eng.set_relation(rows)

    def _relation_calendar(self):
        from app.core.sessions import calendar, calendar_for

        first = self.by_symbol(self.relation_pair[0])
        return (calendar(first.config.session) if first.config.session
                else calendar_for(first.instrument.exchange if first.instrument is not None else ""))

    def _with_relation(self, frame):
        row = self.relation_row
        return frame if row is None else dataclasses.replace(frame, relation=row)

    # ------------------------------------------------------------------ fan-out
    def add_listener(self, fn) -> None:
        """Call ``fn(symbol, batch)`` for every market batch of every instrument (GUI thread),
        from the first batch on when registered before :meth:`start` (trading: paper fills and
        open P&L per instrument). Errors are reported as by :meth:`Pipeline.add_listener`."""
        self._listeners.append(fn)
        for r in self.instruments:
            self._attach(r, fn)

    @staticmethod
    def _attach(r: "InstrumentRuntime", fn) -> None:
        def per_batch(batch, _sym=r, _fn=fn):
            _fn(_sym.symbol, batch)
        per_batch.__qualname__ = getattr(fn, "__qualname__", "listener")
        r.pipeline.add_listener(per_batch)

    def add_frame_listener(self, fn) -> None:
        """Call ``fn(frame)`` for every frame of every instrument (``frame.symbol`` says whose),
        in each instrument's publish order, on the GUI thread (:meth:`Pipeline.add_frame_listener`)."""
        self._frame_listeners.append(fn)
        for r in self.instruments:
            r.pipeline.add_frame_listener(fn)

    # ------------------------------------------------------------------ access
    def by_symbol(self, symbol: str) -> InstrumentRuntime:
        """The instrument called ``symbol``.

        Raises
        ------
        KeyError
            No such instrument (names it and the known ones).
        """
        for r in self.instruments:
            if r.symbol == symbol:
                return r
        raise KeyError(f"no instrument {symbol!r}; known: {', '.join(r.symbol for r in self.instruments)}")

    @property
    def symbols(self) -> list[str]:
        """Symbols in configured order."""
        return [r.symbol for r in self.instruments]

    @property
    def client(self):
        """The shared DTC client (the DTC broker trades every instrument through it), or None."""
        return self._hub.client if self._hub is not None else None

    # ------------------------------------------------------------------ run
    async def start(self) -> None:
        """Build and start every instrument's pipeline (the shared connection first), then let
        the replay run. A refused symbol is reported and the others go on.

        Raises
        ------
        OSError
            The shared connection cannot be made (reported first).
        ValueError
            A bad instrument list (:meth:`PipelineConfig.set_instruments`) or a recording that
            cannot be read.
        """
        self._build()
        for r in self.instruments:  # the primary share first: it opens the connection
            if not isinstance(r.pipeline.source, ConnectionShare) or r.pipeline.source.primary:
                await r.pipeline.start()
        for r in self.instruments:
            if not r.pipeline.started:
                await r.pipeline.start()
            if not r.symbol and r.instrument is not None:
                r.symbol = r.instrument.symbol
        self._wire_relation()
        if self._hub is not None:
            self._hub.resume(PAUSE_START)
        self.started = True

    def poll(self) -> None:
        """Deliver each pipeline's queued worker problems and lift replay holds (the window's timer)."""
        for r in self.instruments:
            r.pipeline.poll()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop every pipeline (the shared connection last); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        for r in sorted(self.instruments, key=lambda r: getattr(r.pipeline.source, "primary", False)):
            await r.pipeline.stop(timeout)

