"""Market data sources behind one interface: embedded replay, an external DTC server, Sierra files.

Every source hands batches of market events (:data:`app.core.events.EVENT_DTYPE` structured
arrays, shape ``(n,)``, prices in integer ticks, times in int64 ns UTC) to one ``deliver``
callable, always on the thread of the asyncio loop that called :meth:`MarketSource.start` (the
GUI thread under qasync). The :class:`~app.live.pipeline.Pipeline` is that callable's owner: it
feeds the engine and its market-data fan-out, so whatever the source, the engine, the paper
fills and the stale-data rule see the same stream.

Implementations:

* :class:`EmbeddedReplaySource`: the built-in :class:`app.sim.server.DTCServer` replaying a
  recording on **its own thread and asyncio loop** (:class:`ReplayServerThread`), plus the DTC
  client on the caller's loop connected to it over loopback TCP. Pause, resume and speed changes
  are marshalled to the server's loop with ``loop.call_soon_threadsafe``; its stop with
  ``asyncio.run_coroutine_threadsafe``. Errors of the server thread are reported, never
  swallowed.
* :class:`DTCSource`: an external DTC server (Sierra Chart, or ``mia-elite serve``).
* :class:`app.live.sierra_source.SierraFilesSource`: Sierra Chart's own ``.scid``/``.depth`` files.

:func:`make_source` picks one from a :class:`~app.live.pipeline.PipelineConfig`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

from app.core.events import Instrument

log = logging.getLogger(__name__)

#: ``deliver(batch)``: one batch of EVENT_DTYPE events, shape (n,), on the caller's loop thread.
Deliver = Callable[[np.ndarray], None]
#: ``on_problem(level, text, action)``: level "error" | "warning" | "info"; action "" or a UI action name.
ProblemFn = Callable[[str, str, str], None]
#: ``on_state(source_name, state)``.
StateFn = Callable[[str, str], None]

#: ``on_problem`` actions of a replay server's notices: the recording ended; it started again.
ACTION_REPLAY_FINISHED = "replay_finished"
ACTION_REPLAY_RESTARTED = "replay_restarted"

#: Sierra Chart's menu path of its DTC server settings, spelled one way in every message and in
#: the user guide (Sierra Chart documentation "DTC Protocol Server", ``doc/DTCServer.php``,
#: "Server Usage" step 1; ``shared/reference/dtc-protocol-notes.md`` section 5).
SC_DTC_SERVER_MENU = "Global Settings >> Sierra Chart Server Settings >> DTC Protocol Server"

#: Pause reasons: the user's Pause button, the pipeline's flow control, the start-up hold.
PAUSE_USER = "user"
PAUSE_FLOW = "flow"
PAUSE_START = "start"


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's state (for the status bar and tests).

    Attributes
    ----------
    kind : str
        ``"embedded"``, ``"dtc"`` or ``"sierra_files"``.
    name : str
        Display name (``"dtc 127.0.0.1:11099"``, ``"sierra files ESZ5"``).
    state : str
        ``"idle"``, ``"connecting"``, ``"streaming"``, ``"following"``, ``"rejected"``,
        ``"error"``, ``"stopped"``...
    paused : bool
        The user paused the replay (always False for live sources).
    speed : float or None
        Replay speed (1 = real time, ``<= 0`` maximum); None for live sources.
    """

    kind: str
    name: str
    state: str
    paused: bool = False
    speed: float | None = None


class MarketSource:
    """Interface of a market data source (see the module docstring).

    Parameters
    ----------
    on_problem : callable(level, text, action), optional
        Problems in plain language with what to do (default: the log).
    on_state : callable(name, state), optional
        State changes.

    Attributes
    ----------
    kind : str
        ``"embedded"``, ``"dtc"`` or ``"sierra_files"``.
    name : str
        Display name (set by :meth:`start`).
    state : str
        The current state (see :class:`SourceStatus`).
    instrument : Instrument or None
        Known after :meth:`start` (also when the symbol's data was refused but its tick size
        is configured, so trading over DTC still works).
    recording : app.feeds.recording.Recording or None
        What a replay source replays (None for live sources).
    client : app.dtc.client.DTCClient or None
        The DTC client of DTC-based sources (the DTC broker trades through it).
    pausable : bool
        True when :meth:`pause` / :meth:`resume` / :meth:`set_speed` act (replay sources).
    """

    kind = ""
    pausable = False

    def __init__(self, on_problem: ProblemFn | None = None, on_state: StateFn | None = None):
        self.on_problem = on_problem
        self.on_state = on_state
        self.name = ""
        self.state = "idle"
        self.instrument: Instrument | None = None
        self.recording = None
        self.client = None
        self.stopped = False

    # ------------------------------------------------------------------ reporting
    def _problem(self, level: str, text: str, action: str = "") -> None:
        if self.on_problem is not None:
            self.on_problem(level, text, action)
        else:
            (log.error if level == "error" else log.warning)("%s", text)

    def _set_state(self, state: str, name: str | None = None) -> None:
        name = self.name if name is None else name
        if name == self.name:
            self.state = state
        if self.on_state is not None:
            self.on_state(name, state)

    # ------------------------------------------------------------------ interface
    async def start(self, deliver: Deliver) -> bool:
        """Start delivering batches to ``deliver`` (on the calling loop's thread).

        Returns
        -------
        bool
            True when market data flows (or will flow); False when the source started but
            carries no data (a refused symbol, a missing folder: already reported).

        Raises
        ------
        OSError
            The source cannot be reached at all (reported first).
        """
        raise NotImplementedError

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering and release everything (threads, sockets, files); idempotent.

        Each wait is bounded by ``timeout`` seconds; a failure is reported, never raised.
        """
        raise NotImplementedError

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """Stop what runs on threads of this source's own when no asyncio loop runs any more
        (a window closed after its loop ended). Default: nothing (the source lives on the loop)."""

    def set_max_rate(self, events_per_s: float | None, reason: str = PAUSE_FLOW) -> bool:
        """Pace a replay at maximum speed to at most ``events_per_s`` events a second for
        ``reason`` (None lifts it; the slowest reason wins); False when the source cannot be
        paced (live data). See :meth:`app.live.pipeline.Pipeline._pace`."""
        return False

    @property
    def max_rate(self) -> float | None:
        """The pace in force (events/s), None without one."""
        return None

    @property
    def pace_waits(self) -> int | None:
        """How often the pace held the replay back so far (None: not known)."""
        return None

    def pause(self, reason: str = PAUSE_USER) -> bool:
        """Hold the stream for ``reason``; returns False when the source cannot pause (live data)."""
        return False

    def resume(self, reason: str = PAUSE_USER) -> bool:
        """Lift the hold ``reason``; the stream runs again once no reason holds. False: not pausable."""
        return False

    def set_speed(self, speed: float) -> bool:
        """Replay speed (1 = real time, ``<= 0`` maximum); False when the source is live."""
        return False

    @property
    def paused(self) -> bool:
        """True while the user's pause holds."""
        return False

    @property
    def status(self) -> SourceStatus:
        """The source's :class:`SourceStatus` now."""
        return SourceStatus(self.kind, self.name, self.state, self.paused, None)

    def describe(self) -> str:
        """Where the data comes from, for messages (``"the DTC server at host:port"``)."""
        return self.name


class DTCSource(MarketSource):
    """Market data of one symbol from a DTC server (Sierra Chart, ``mia-elite serve``, the built-in one).

    Parameters
    ----------
    host, port : str, int
        The server.
    symbol, exchange : str
        Data-service symbol (opaque, never parsed) and exchange.
    encoding : str
        ``"binary"``, ``"json"`` or ``"json_compact"`` (:mod:`app.dtc.encoding_names`).
    username, password, trade_account : str
        DTC logon (the password is only held in memory).
    tick_size, tick_value : float
        Used when the server does not tell them (0 = unknown; tick size in price units, tick
        value in USD per tick per contract).
    label : str, optional
        How messages name the server (default ``"host:port"``).
    client_options : dict, optional
        Extra keyword arguments of :class:`app.dtc.client.DTCClient`.
    on_problem, on_state
        See :class:`MarketSource`.

    Attributes
    ----------
    client : DTCClient or None
    subscription : the client's subscription or None
    subscribed : bool
    replay_finished : bool
        The server (a replay) said its recording ended and did not restart since.
    """

    kind = "dtc"

    def __init__(self, host: str, port: int, symbol: str, *, exchange: str = "", encoding: str = "binary",
                 username: str = "", password: str = "", trade_account: str = "", tick_size: float = 0.0,
                 tick_value: float = 0.0, label: str = "", client_options: dict | None = None,
                 on_problem: ProblemFn | None = None, on_state: StateFn | None = None):
        super().__init__(on_problem, on_state)
        self.host, self.port = host, int(port)
        self.symbol, self.exchange, self.encoding = symbol, exchange, encoding
        self.username, self.password, self.trade_account = username, password, trade_account
        self.tick_size, self.tick_value = float(tick_size), float(tick_value)
        self.label = label
        self.client_options = dict(client_options or {})
        self.name = f"dtc {host}:{self.port}"
        self.subscription = None
        self.subscribed = False
        self.replay_finished = False

    def describe(self) -> str:
        return self.label or f"{self.host}:{self.port}"

    def _on_client_state(self, state: str) -> None:
        prev = self.state
        self._set_state("streaming" if state == "connected" and self.subscribed else state)
        if self.stopped:
            return
        if prev in ("connected", "streaming") and state in ("disconnected", "reconnecting", "connecting"):
            self._problem(
                "warning",
                f"The connection to {self.describe()} dropped ({state}). The app reconnects by itself "
                "and resubscribes; if it does not come back, check that Sierra Chart (or the replay server) is "
                "running and that its DTC server is enabled on that port.",
            )

    def _make_instrument(self, sub) -> Instrument:
        d = getattr(sub, "definition", None)
        tick_value = self.tick_value
        desc = ""
        if d is not None:
            tick_value = float(getattr(d, "CurrencyValuePerIncrement", 0.0) or 0.0) or tick_value
            desc = str(getattr(d, "Description", "") or "")
        return Instrument(self.symbol, float(sub.tick_size), float(tick_value), self.exchange, desc)

    async def start(self, deliver: Deliver) -> bool:
        from app.dtc.client import DTCClient, MarketDataRejected

        self._set_state("connecting")
        self.client = DTCClient(self.host, self.port, encoding=self.encoding, username=self.username,
                                password=self.password, trade_account=self.trade_account,
                                on_state=self._on_client_state, **self.client_options)
        try:
            await self.client.connect()
        except Exception as exc:
            self._set_state("disconnected")
            self._problem(
                "error",
                f"Cannot connect to the DTC server at {self.host}:{self.port} ({exc}). Is Sierra Chart running "
                f"with its DTC server enabled ({SC_DTC_SERVER_MENU} >> Enable DTC Protocol Server) on this port? "
                "Change host/port in File > Connection.",
            )
            raise
        symbol = self.symbol
        if not symbol:
            self._set_state("no symbol")
            self._problem("error", "Connected, but no symbol is chosen: add it to the symbol map in "
                                   "File > Connection (the exact symbol of the data service, e.g. ESZ25_FUT_CME).")
            return False
        tick = self.tick_size if self.tick_size > 0 else None
        try:
            sub = await self.client.subscribe_market(symbol, self.exchange, depth=True, on_events=deliver,
                                                     tick_size=tick)
        except MarketDataRejected as exc:
            self._set_state("rejected")
            if self.tick_size > 0:  # trading over DTC still works for a symbol whose data is refused
                self.instrument = Instrument(symbol, self.tick_size, self.tick_value, self.exchange)
            self._problem("error", f"Symbol {symbol} rejected. {exc}", "use_sierra_files")
            return False
        except ValueError as exc:
            self._set_state("error")
            self._problem("error", f"Cannot subscribe to {symbol}: {exc}. Set its tick size in File > Connection.")
            return False
        self.subscription = sub
        self.subscribed = True
        from app.dtc.messages import MessageType

        self.client.add_listener(MessageType.GENERAL_LOG_MESSAGE, self._on_log_message)
        if self.instrument is None:
            self.instrument = self._make_instrument(sub)
        self._set_state("streaming")
        return True

    def _on_log_message(self, msg) -> None:
        """A replay server's end and restart notices (GENERAL_LOG_MESSAGE, see
        :mod:`app.sim.server.market_data`) become ``on_problem("info", text, action)`` with
        action :data:`ACTION_REPLAY_FINISHED` or :data:`ACTION_REPLAY_RESTARTED`. The client
        hands over every market batch decoded before the message first, so a listener that
        resets paper trading on a restart sees the old session's last trade, and nothing of
        the new one, before it runs."""
        from app.sim.server.market_data import REPLAY_FINISHED, REPLAY_RESTARTED

        text = str(getattr(msg, "MessageText", "") or "")
        if text.startswith(REPLAY_FINISHED):
            self.replay_finished = True
            self._problem("info", text, ACTION_REPLAY_FINISHED)
        elif text.startswith(REPLAY_RESTARTED):
            self.replay_finished = False
            self._problem("info", text, ACTION_REPLAY_RESTARTED)

    async def stop(self, timeout: float = 5.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.close(), timeout)
            except Exception as exc:  # report, keep stopping the rest
                self._problem("warning", f"closing the DTC client: {exc!r}")
            self._set_state("stopped")


class _ServerThreadErrors(logging.Handler):
    """Forwards ERROR records logged on the server thread (``app.sim`` loggers) to the owner."""

    def __init__(self, owner: "ReplayServerThread"):
        super().__init__(logging.ERROR)
        self.owner = owner

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.owner.thread_ident:
            return
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.owner._error(text)


class ReplayRunner:
    """What the two runners of the built-in server share: its settings, port, errors
    (:class:`ReplayServerThread`; :class:`app.live.replay_process.ReplayServerProcess`).

    Parameters are those of :class:`ReplayServerThread`.
    """

    def __init__(self, recording, *, speed: float = 1.0, loop_replay: bool = False, paused: bool = True,
                 server_options: dict | None = None, on_error: Callable[[str], None] | None = None):
        self.recording = recording
        self.speed = float(speed)
        self.loop_replay = bool(loop_replay)
        self.paused = bool(paused)
        self.server_options = dict(server_options or {})
        self.on_error = on_error
        self.port = 0
        self.errors: list[str] = []
        self._caller_loop: asyncio.AbstractEventLoop | None = None
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._exited: concurrent.futures.Future = concurrent.futures.Future()


class ReplayServerThread(ReplayRunner):
    """The built-in :class:`app.sim.server.DTCServer` on its own thread with its own asyncio loop.

    Only the server's public API is used; every call into it runs on the server's loop
    (``call_soon_threadsafe`` / ``run_coroutine_threadsafe``). The thread exits after
    :meth:`stop` (no thread is left behind).

    Parameters
    ----------
    recording : app.feeds.recording.Recording
        What to replay.
    speed : float
        Replay speed (1 = real time, ``<= 0`` maximum).
    loop_replay : bool
        Start again at the end of the recording, each pass a new session (default False).
    paused : bool
        Start with the replay paused (:meth:`resume` starts it).
    server_options : dict, optional
        Extra keyword arguments of ``DTCServer`` (``max_batch``, ``max_gap_s``, ``start_at_open``...).
    on_error : callable(text), optional
        Called on the loop that called :meth:`start` for every error of the server thread:
        an exception in its loop, an ERROR logged by the simulator on that thread, a failed stop.

    Attributes
    ----------
    server : DTCServer or None
        Created on the server thread. Read only its immutable attributes from other threads.
    port : int
        Listening port on 127.0.0.1 (after :meth:`start`).
    errors : list of str
        Every error reported (also when ``on_error`` is None).
    """

    def __init__(self, recording, *, speed: float = 1.0, loop_replay: bool = False, paused: bool = True,
                 server_options: dict | None = None, on_error: Callable[[str], None] | None = None):
        super().__init__(recording, speed=speed, loop_replay=loop_replay, paused=paused,
                         server_options=server_options, on_error=on_error)
        self.server = None
        self.thread_ident: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ errors
    def _error(self, text: str) -> None:
        """Any thread: keep ``text`` and hand it to ``on_error`` on the caller's loop."""
        self.errors.append(text)
        cb, loop = self.on_error, self._caller_loop
        if cb is None:
            return
        if loop is None or threading.get_ident() != self.thread_ident:
            cb(text)
            return
        try:
            loop.call_soon_threadsafe(cb, text)
        except RuntimeError:  # the caller's loop is closed: the log has it
            log.error("replay server thread: %s", text)

    def _on_loop_error(self, loop, context: dict) -> None:
        loop.default_exception_handler(context)  # logged (asyncio logger) as usual
        exc = context.get("exception")
        text = str(context.get("message", "error in the replay server's loop"))
        if exc is not None:
            text += "\n" + "".join(traceback.format_exception(exc))
        self._error(text)

    # ------------------------------------------------------------------ thread
    def _main(self) -> None:
        self.thread_ident = threading.get_ident()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._on_loop_error)
        handler = _ServerThreadErrors(self)
        sim_log = logging.getLogger("app.sim")
        sim_log.addHandler(handler)
        self._loop = loop
        try:
            try:
                from app.sim.server import DTCServer

                self.server = DTCServer(self.recording, host="127.0.0.1", port=0, speed=self.speed,
                                        loop_replay=self.loop_replay, paused=self.paused, **self.server_options)
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                self._ready.set_exception(exc)
                return
            self.port = int(self.server.port)
            self._ready.set_result(self.port)
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception as exc:
                self._error(f"closing the replay server's loop: {exc!r}")
            finally:
                sim_log.removeHandler(handler)
                asyncio.set_event_loop(None)
                loop.close()
                self._exited.set_result(True)

    async def start(self, timeout: float = 60.0) -> int:
        """Start the thread, build the server on it and wait until it listens; returns the port.

        Raises
        ------
        OSError
            The server cannot listen.
        TimeoutError
            The server did not listen within ``timeout`` seconds (the thread is stopped).
        Exception
            Whatever ``DTCServer`` raised on its thread (``ValueError`` for a bad recording).
        """
        if self._thread is not None:
            raise RuntimeError("the replay server thread was already started")
        self._caller_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="mia-replay-server", daemon=True)
        self._thread.start()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._ready), timeout)
        except asyncio.TimeoutError:
            await self.stop(5.0)
            raise TimeoutError(f"the built-in replay server did not start within {timeout:g} s") from None

    def _call(self, fn, *args) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed() or self.server is None:
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def pause(self) -> bool:
        """Pause the replay (runs on the server's loop); False when the server is not running."""
        self.paused = True
        return self._call(self.server.pause) if self.server is not None else False

    def resume(self) -> bool:
        """Resume the replay (runs on the server's loop); False when the server is not running."""
        self.paused = False
        return self._call(self.server.resume) if self.server is not None else False

    def restart_replay(self) -> bool:
        """Start the recording again as a new session (on the server's loop,
        :meth:`app.sim.server.market_data.MarketDataMixin.restart_replay`); False when the
        server is not running."""
        return self._call(self.server.restart_replay) if self.server is not None else False

    def set_max_rate(self, events_per_s: float | None) -> bool:
        """The maximum-speed pace (events/s, None: none), set on the server's loop."""
        return self._call(self.server.set_max_rate, events_per_s) if self.server is not None else False

    def set_speed(self, speed: float) -> bool:
        """Replay speed (1 = real time, ``<= 0`` maximum), set on the server's loop."""
        self.speed = float(speed)
        return self._call(self.server.set_speed, self.speed) if self.server is not None else False

    def market_offsets_s(self) -> dict[str, float]:
        """:meth:`app.sim.server.DTCServer.market_offsets_s` ({} before the server exists; fixed
        once it is built, so read across threads)."""
        return self.server.market_offsets_s() if self.server is not None else {}

    @property
    def pace_waits(self) -> int | None:
        """The server's replay clock's :attr:`~app.sim.replay.ReplayClock.rate_waits` (read
        across threads: an int; None before the server exists)."""
        clock = getattr(self.server, "replay", None)
        return int(getattr(clock, "rate_waits", 0)) if clock is not None else None

    async def run(self, coro_fn, timeout: float):
        """Run ``coro_fn(server)`` on the server's loop and await its result here (bounded).

        Raises
        ------
        RuntimeError
            The server is not running.
        asyncio.TimeoutError
            No result within ``timeout`` seconds (the coroutine is cancelled).
        """
        loop = self._loop
        if loop is None or loop.is_closed() or self.server is None:
            raise RuntimeError("the built-in replay server is not running")
        fut = asyncio.run_coroutine_threadsafe(coro_fn(self.server), loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            fut.cancel()
            raise

    async def wait_replay_done(self, timeout: float) -> bool:
        """True once every symbol's replay ended (only without ``loop_replay``); False on timeout."""
        try:
            return await self.run(lambda s: s.wait_replay_done(timeout), timeout + 5.0)
        except asyncio.TimeoutError:
            return False

    @property
    def alive(self) -> bool:
        """True while the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (on its loop), end the loop and the thread; idempotent, bounded.

        A server that fails to stop, or a thread that does not end within ``timeout``, is
        reported through ``on_error`` (never raised).
        """
        th = self._thread
        if th is None or self._exited.done():
            return
        loop = self._loop
        if self.server is not None and loop is not None and not loop.is_closed():
            try:
                await self.run(lambda s: s.stop(), timeout)
            except asyncio.TimeoutError:
                self._error(f"the built-in replay server did not stop within {timeout:g} s")
            except Exception as exc:
                self._error(f"stopping the built-in replay server: {exc!r}")
        if loop is not None:
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._exited), timeout)
        except asyncio.TimeoutError:
            self._error(f"the replay server thread did not end within {timeout:g} s")
            return
        th.join(1.0)

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """Stop the server and end its thread from a thread with no running asyncio loop.

        For a window closed when its event loop is already gone: :meth:`stop` needs a loop to
        await on; this blocks the calling thread for at most about ``2 * timeout`` seconds.
        Failures are reported through ``on_error`` (never raised).
        """
        th = self._thread
        if th is None or not th.is_alive():
            return
        loop = self._loop
        if self.server is not None and loop is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout)
            except concurrent.futures.TimeoutError:
                self._error(f"the built-in replay server did not stop within {timeout:g} s")
            except Exception as exc:
                self._error(f"stopping the built-in replay server: {exc!r}")
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        th.join(timeout)
        if th.is_alive():
            self._error(f"the replay server thread did not end within {timeout:g} s")


class EmbeddedReplaySource(MarketSource):
    """The built-in DTC server replaying a recording (own thread) and the DTC client connected to it.

    Parameters
    ----------
    recording : str, Recording, list or None
        A path of any file ``mia-elite analyze`` reads (``.mrec``, DBN, a Binance ``.gz`` capture:
        :func:`app.feeds.samples.load_any`), a loaded :class:`~app.feeds.recording.Recording`, or None for the
        shipped real ES sample (alone). A list of ``.mrec`` paths or recordings (``mia-elite gui
        --recording`` loads any file ``analyze`` reads into recordings first): the one server replays them all on one
        market clock, each under its own symbol; the client side subscribes to the first (the
        multi-instrument runtime, :mod:`app.live.instruments`, subscribes to the others on the
        same connection).
    speed : float
        Replay speed (1 = real time, ``<= 0`` maximum).
    loop_replay : bool
        Start again at the end of the recording, each pass a new session (default False: the
        replay stops at its end; the client side reports it with action
        :data:`ACTION_REPLAY_FINISHED`, and :meth:`restart` starts it again).
    server_options : dict, optional
        Extra ``DTCServer`` keyword arguments (``start_at_open`` defaults to True here: a
        recorded session's pre-open book may be crossed, not what a trader expects first).
    server_process : bool
        Run the server in a child process (:class:`~app.live.replay_process.ReplayServerProcess`)
        instead of a thread of this one (:class:`ReplayServerThread`, the default): the window's
        process then keeps the interpreter lock for the client, the engines and the GUI.
    client : dict, optional
        Keyword arguments of the client side's :class:`DTCSource` (``symbol``, default the
        recording's; ``exchange``, ``encoding``, ``username``, ``password``, ``trade_account``,
        ``tick_size``, ``tick_value``).
    on_problem, on_state
        See :class:`MarketSource`.

    Attributes
    ----------
    replay : ReplayServerThread, ReplayServerProcess or None
        The server's thread or process (after :meth:`start`).
    dtc : DTCSource or None
        The client side.
    recordings : list of Recording
        Every recording served (after :meth:`start`; :attr:`recording` is the first).

    Notes
    -----
    The server starts paused (hold ``"start"``); the pipeline lifts that hold with
    ``resume("start")`` once the engine runs, so the replay is seen from its first event. The
    replay runs while no hold (``"user"``, ``"flow"``, ``"start"``) is set.
    """

    kind = "embedded"
    pausable = True

    def __init__(self, recording=None, *, speed: float = 10.0, loop_replay: bool = False,
                 server_options: dict | None = None, client: dict | None = None, server_process: bool = False,
                 on_problem: ProblemFn | None = None, on_state: StateFn | None = None):
        super().__init__(on_problem, on_state)
        self._recording_arg = recording
        self.server_process = bool(server_process)
        self.speed = float(speed)
        self.loop_replay = bool(loop_replay)
        self.server_options = dict(server_options or {})
        self.client_kwargs = dict(client or {})
        self.replay: ReplayServerThread | None = None
        self.dtc: DTCSource | None = None
        self._holds: set[str] = {PAUSE_START}
        self._rates: dict[str, float] = {}  # set_max_rate: reason -> events/s
        self._rate_sent: float | None = None
        self.recordings: list = []
        self.name = "replay server"

    def load_recordings(self) -> list:
        """Load what the server is to replay (once; :meth:`start` calls it) and return every
        recording (:attr:`recordings`; :attr:`recording` is the first).

        Raises
        ------
        OSError, ValueError
            A file that cannot be read, or an empty list.
        """
        if not self.recordings:
            self.recording = self._load_recording()
        return self.recordings

    def _load_recording(self):
        # any file ``mia-elite analyze`` reads (``.mrec``, DBN, Binance ``.gz``), one or several
        from app.feeds.samples import load_any
        from app.feeds.recording import Recording

        r = self._recording_arg
        if isinstance(r, (list, tuple)):
            if not r:
                raise ValueError("the built-in server was given an empty list of recordings")
            self.recordings = [x if isinstance(x, Recording) else load_any(str(x)) for x in r]
            return self.recordings[0]
        if isinstance(r, Recording):
            rec = r
        elif r:
            rec = load_any(str(r))
        else:
            from app.feeds.samples import load_default_sample

            rec = load_default_sample()
        self.recordings = [rec]
        return rec

    def recording_of(self, symbol: str):
        """The served recording whose instrument is ``symbol`` (None when none is)."""
        return next((r for r in self.recordings if r.instrument.symbol == symbol), None)

    def _server_error(self, text: str) -> None:
        self._problem("error", f"The built-in replay server failed:\n{text}")

    def describe(self) -> str:
        port = self.replay.port if self.replay is not None else 0
        return f"the built-in server 127.0.0.1:{port}"

    async def start(self, deliver: Deliver) -> bool:
        self.load_recordings()
        options = {"start_at_open": True, **self.server_options}
        if self.server_process:
            from app.live.replay_process import ReplayServerProcess as runner
        else:
            runner = ReplayServerThread
        self.replay = runner(self.recordings, speed=self.speed, loop_replay=self.loop_replay,
                             paused=True, server_options=options, on_error=self._server_error)
        try:
            port = await self.replay.start()
        except Exception as exc:
            self._set_state("error", "replay server")
            self._problem("error", f"The built-in replay server could not start: {exc}")
            raise
        self._set_state("running", "replay server")
        # the timestamped depth messages (106/122): the compact float ones (140/145) stamp
        # snapshots with the receive clock, which is not a replay's market time; each
        # subscription confirmed by a round trip, so the replay resumed after it cannot run
        # ahead of the depth request (DTCClient's confirm_subscribe)
        kw = dict(self.client_kwargs)
        symbol = kw.pop("symbol", "") or self.recording.instrument.symbol
        self.dtc = DTCSource("127.0.0.1", port, symbol, label=self.describe(),
                             client_options={"depth_float": False, "confirm_subscribe": True},
                             on_problem=self.on_problem,
                             on_state=self.on_state, **kw)
        self.name = self.dtc.name
        ok = await self.dtc.start(deliver)
        self.client = self.dtc.client
        # streaming: the recording knows its instrument exactly (tick value, description)
        rec = self.recording_of(symbol) or self.recording
        self.instrument = rec.instrument if ok else self.dtc.instrument
        return ok

    def _apply(self) -> None:
        """Pause or resume the server when the holds changed its state (one cross-thread call
        per change, none when another hold already keeps it paused)."""
        if self.replay is None:
            return
        held = bool(self._holds)
        if held == self.replay.paused:
            return
        if held:
            self.replay.pause()
        else:
            self.replay.resume()

    def pause(self, reason: str = PAUSE_USER) -> bool:
        self._holds.add(reason)
        self._apply()
        return True

    def resume(self, reason: str = PAUSE_USER) -> bool:
        self._holds.discard(reason)
        if not self.stopped:
            self._apply()
        return True

    def set_speed(self, speed: float) -> bool:
        self.speed = float(speed)
        if self.replay is not None:
            self.replay.set_speed(self.speed)
        return True

    def set_max_rate(self, events_per_s: float | None, reason: str = PAUSE_FLOW) -> bool:
        """One pace per reason (each instrument's pipeline on a shared replay has its own); the
        server gets the lowest, one cross-thread call per change."""
        if events_per_s and events_per_s > 0:
            self._rates[reason] = float(events_per_s)
        else:
            self._rates.pop(reason, None)
        rate = min(self._rates.values()) if self._rates else None
        if rate == self._rate_sent or self.replay is None:
            return self.replay is not None
        self._rate_sent = rate
        return self.replay.set_max_rate(rate)

    @property
    def max_rate(self) -> float | None:
        return self._rate_sent

    @property
    def pace_waits(self) -> int | None:
        """The server's replay clock's :attr:`~app.sim.replay.ReplayClock.rate_waits`
        (:attr:`ReplayServerThread.pace_waits`, :attr:`~app.live.replay_process.ReplayServerProcess.pace_waits`)."""
        return self.replay.pace_waits if self.replay is not None else None

    def restart(self) -> bool:
        """Start the recording again from its first event, as a new session (after its end or
        during it); the client side then reports :data:`ACTION_REPLAY_RESTARTED`. False when
        the server is not running."""
        return self.replay.restart_replay() if self.replay is not None and not self.stopped else False

    @property
    def replay_finished(self) -> bool:
        """True once the server said the recording ended (and it was not restarted since)."""
        return bool(self.dtc is not None and self.dtc.replay_finished)

    @property
    def paused(self) -> bool:
        return PAUSE_USER in self._holds

    @property
    def status(self) -> SourceStatus:
        state = self.dtc.state if self.dtc is not None else self.state
        return SourceStatus(self.kind, self.name, state, self.paused, self.speed)

    async def stop(self, timeout: float = 5.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.dtc is not None:
            await self.dtc.stop(timeout)
        if self.replay is not None:
            await self.replay.stop(timeout)
            self._set_state("stopped", "replay server")

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """Stop the replay server thread without a running asyncio loop (see
        :meth:`ReplayServerThread.stop_blocking`); the DTC client, which lives on the caller's
        loop, goes with that loop."""
        self.stopped = True
        if self.replay is not None:
            self.replay.stop_blocking(timeout)
            self._set_state("stopped", "replay server")


def make_source(config, on_problem: ProblemFn | None = None, on_state: StateFn | None = None) -> MarketSource:
    """The :class:`MarketSource` a :class:`~app.live.pipeline.PipelineConfig` asks for.

    ``config.embedded`` -> :class:`EmbeddedReplaySource`; else ``data_source == "sierra_files"``
    -> :class:`~app.live.sierra_source.SierraFilesSource`; else (``"dtc"``) :class:`DTCSource`.
    """
    if config.embedded:
        client = dict(symbol=config.symbol, exchange=config.exchange, encoding=config.encoding,
                      username=config.username, password=config.password, trade_account=config.trade_account,
                      tick_size=config.tick_size, tick_value=config.tick_value)
        return EmbeddedReplaySource(config.recording, speed=float(config.speed),
                                    loop_replay=bool(config.loop_replay), server_options=config.server_options,
                                    client=client, server_process=bool(config.replay_process),
                                    on_problem=on_problem, on_state=on_state)
    if config.data_source == "sierra_files":
        from app.live.sierra_source import SierraFilesSource

        return SierraFilesSource(config.sierra_data_dir, config.symbol, tick_size=config.tick_size,
                                 tick_value=config.tick_value, exchange=config.exchange,
                                 on_problem=on_problem, on_state=on_state)
    return DTCSource(config.host, config.port, config.symbol, exchange=config.exchange, encoding=config.encoding,
                     username=config.username, password=config.password, trade_account=config.trade_account,
                     tick_size=config.tick_size, tick_value=config.tick_value, on_problem=on_problem,
                     on_state=on_state,
                     client_options={"tls": bool(config.tls), "tls_fingerprint": config.tls_fingerprint})
