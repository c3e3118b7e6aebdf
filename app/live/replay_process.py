"""The built-in replay server in a child process (issue 17: one interpreter lock less).

:class:`ReplayServerProcess` has the interface of :class:`app.live.sources.ReplayServerThread`
(start, pause, resume, restart, speed, maximum-speed pace, stop, errors) but runs
:class:`app.sim.server.DTCServer` in a process of its own, started with the ``spawn`` method
(the one method Windows has; a PyInstaller bundle needs ``multiprocessing.freeze_support()``
first thing in its entry point, which ``packaging/entry_*.py`` call).

Why: in one process the replay server's thread (publish, its books, DTC encoding) takes the
interpreter lock that the GUI thread and the analysis engines need; with two instruments at
maximum speed it was about as busy as the GUI thread (issue 17's profile, stop 27). In a child
it runs on the other core and the window's process keeps the lock for itself. The client side
does not change: it connects to the child's port over loopback TCP as to any DTC server.

The control channel is one ``multiprocessing`` pipe of small tuples (the protocol is private to
this module):

* parent -> child: ``("pause",)``, ``("resume",)``, ``("restart",)``, ``("rate", events_per_s)``,
  ``("speed", speed)``, ``("done", request_id, timeout_s)``, ``("stop", grace_s)``;
* child -> parent: ``("ready", port, market_offsets_s)``, ``("failed", exception)``, ``("log", level, logger,
  text)``, ``("error", text)``, ``("done", request_id, bool)``, ``("stopped",)``.

The child's replay clock's :attr:`~app.sim.replay.ReplayClock.rate_waits` (read by the
pipeline's pace, :meth:`app.live.pipeline.Pipeline._pace`) is copied every
:data:`WAITS_PERIOD_S` into a shared 64-bit integer, so reading it costs no round trip.

Nothing is left behind: the child ends when told to stop, when the pipe closes (the parent
ended, even by ``kill -9``: the child's read of the pipe then fails) and, as a daemon process,
when the parent's interpreter exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import multiprocessing
import threading
import traceback
from typing import Callable

from app.live.sources import ReplayRunner

log = logging.getLogger(__name__)

#: How often the child copies its replay clock's ``rate_waits`` into shared memory, seconds.
WAITS_PERIOD_S = 0.01
#: Seconds the parent gives a child that did not end after its stop before terminating it.
KILL_AFTER_S = 2.0


# ---------------------------------------------------------------------------- the child
class _PipeLog(logging.Handler):
    """In the child: every record of the ``app`` loggers at or above the parent's level goes up
    the pipe (ERROR and above are also the server's errors)."""

    def __init__(self, send: Callable[[tuple], None], level: int):
        super().__init__(level)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self._send(("log", record.levelno, record.name, text))
        except Exception:  # a closed pipe: the parent is gone and the child is ending
            pass


def _child_main(conn, recordings, options: dict, waits) -> None:
    """The child process: build the server, report its port, obey the pipe until told to stop.

    ``options``: ``speed``, ``loop_replay``, ``paused``, ``server_options`` (``DTCServer``
    keywords) and ``log_level`` (the parent's ``app`` logger level).
    """
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        with lock:
            conn.send(msg)

    app_log = logging.getLogger("app")
    app_log.setLevel(int(options.get("log_level", logging.WARNING)))
    app_log.addHandler(_PipeLog(send, int(options.get("log_level", logging.WARNING))))
    app_log.propagate = False
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def on_loop_error(lp, context: dict) -> None:
        exc = context.get("exception")
        text = str(context.get("message", "error in the replay server's loop"))
        if exc is not None:
            text += "\n" + "".join(traceback.format_exception(exc))
        try:
            send(("error", text))
        except Exception:
            pass

    loop.set_exception_handler(on_loop_error)
    try:
        from app.sim.server import DTCServer

        server = DTCServer(recordings, host="127.0.0.1", port=0, speed=float(options["speed"]),
                           loop_replay=bool(options["loop_replay"]), paused=bool(options["paused"]),
                           **dict(options.get("server_options") or {}))
        loop.run_until_complete(server.start())
    except BaseException as exc:
        try:
            send(("failed", exc))
        except Exception:  # an exception that does not pickle: its text
            send(("failed", RuntimeError(f"{type(exc).__name__}: {exc}")))
        loop.close()
        return
    send(("ready", int(server.port), server.market_offsets_s()))
    stop_grace: list[float] = []
    stopping = asyncio.Event()

    async def done(req, timeout: float) -> None:
        ok = await server.wait_replay_done(timeout)
        send(("done", req, bool(ok)))

    def command(msg: tuple) -> None:
        what = msg[0]
        if what == "pause":
            server.pause()
        elif what == "resume":
            server.resume()
        elif what == "restart":
            server.restart_replay()
        elif what == "rate":
            server.set_max_rate(msg[1])
        elif what == "speed":
            server.set_speed(msg[1])
        elif what == "done":
            loop.create_task(done(msg[1], float(msg[2])))
        elif what == "stop":
            stop_grace.append(float(msg[1]))
            stopping.set()

    def read_pipe() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the parent is gone: stop
                msg = ("stop", 1.0)
            try:
                loop.call_soon_threadsafe(command, msg)
            except RuntimeError:  # the loop closed
                return
            if msg[0] == "stop":
                return

    async def copy_waits() -> None:
        while True:
            waits.value = int(server.replay.rate_waits)
            await asyncio.sleep(WAITS_PERIOD_S)

    async def main() -> None:
        copier = asyncio.ensure_future(copy_waits())
        await stopping.wait()
        copier.cancel()
        await asyncio.gather(copier, return_exceptions=True)
        await server.stop(stop_grace[0] if stop_grace else 1.0)

    threading.Thread(target=read_pipe, name="mia-replay-pipe", daemon=True).start()
    try:
        loop.run_until_complete(main())
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        try:
            send(("stopped",))
        except Exception:
            pass


# ---------------------------------------------------------------------------- the parent
class ReplayServerProcess(ReplayRunner):
    """The built-in :class:`app.sim.server.DTCServer` in a child process (see the module notes).

    Parameters
    ----------
    recording, speed, loop_replay, paused, server_options, on_error
        As :class:`app.live.sources.ReplayServerThread`. The recordings and ``server_options``
        are pickled to the child once, at start (the ES hour is 2.6 MB), so the options must
        pickle; ``on_error`` is called on the loop that called :meth:`start` for every error of
        the child: an exception in its loop, an ERROR logged by the simulator, a child that
        ended unasked, a failed stop.

    Attributes
    ----------
    server : None
        Always None: the server lives in the child (:class:`~app.live.sources.ReplayServerThread`
        has it).
    thread_ident : None
        No thread of this process runs the server.
    pid : int or None
        The child's process id (after :meth:`start`).
    port : int
        Listening port on 127.0.0.1 (after :meth:`start`).
    errors : list of str
        Every error reported (also when ``on_error`` is None).
    """

    server = None
    thread_ident = None

    def __init__(self, recording, *, speed: float = 1.0, loop_replay: bool = False, paused: bool = True,
                 server_options: dict | None = None, on_error: Callable[[str], None] | None = None):
        super().__init__(recording, speed=speed, loop_replay=loop_replay, paused=paused,
                         server_options=server_options, on_error=on_error)
        self.pid: int | None = None
        self._proc = None
        self._conn = None
        self._waits = None
        self._send_lock = threading.Lock()
        self._requests: dict[int, concurrent.futures.Future] = {}
        self._ids = itertools.count(1)
        self._stopping = False
        self._offsets: dict[str, float] = {}

    # ------------------------------------------------------------------ errors
    def _error(self, text: str) -> None:
        """Any thread: keep ``text`` and hand it to ``on_error`` on the caller's loop."""
        self.errors.append(text)
        cb, loop = self.on_error, self._caller_loop
        if cb is None:
            return
        if loop is None:
            cb(text)
            return
        try:
            loop.call_soon_threadsafe(cb, text)
        except RuntimeError:  # the caller's loop is closed: the log has it
            log.error("replay server process: %s", text)

    # ------------------------------------------------------------------ pipe
    def _send(self, *msg) -> bool:
        conn = self._conn
        if conn is None or self._exited.done():
            return False
        try:
            with self._send_lock:
                conn.send(msg)
        except (OSError, EOFError, ValueError):  # the child is gone, or the pipe closed
            return False
        return True

    def _read_pipe(self) -> None:
        """The reader thread: the child's messages, until it stops or its end of the pipe closes."""
        conn = self._conn
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            what = msg[0]
            if what == "ready":
                self.port = int(msg[1])
                self._offsets = dict(msg[2])
                self._ready.set_result(self.port)
            elif what == "failed":
                self._ready.set_exception(msg[1])
            elif what == "log":
                level, name, text = msg[1], msg[2], msg[3]
                logging.getLogger(name).log(level, "%s", text)
                if level >= logging.ERROR:
                    self._error(text)
            elif what == "error":
                log.error("replay server process: %s", msg[1])
                self._error(msg[1])
            elif what == "done":
                fut = self._requests.pop(msg[1], None)
                if fut is not None and not fut.done():
                    fut.set_result(bool(msg[2]))
            elif what == "stopped":
                break
        if not self._ready.done():
            self._ready.set_exception(RuntimeError("the built-in replay server's process ended before it listened"))
        elif not self._stopping:
            code = self._proc.exitcode if self._proc is not None else None
            self._error(f"the built-in replay server's process ended unexpectedly (exit code {code})")
        for fut in list(self._requests.values()):
            if not fut.done():
                fut.set_result(False)
        self._requests.clear()
        if not self._exited.done():
            self._exited.set_result(True)

    # ------------------------------------------------------------------ life
    async def start(self, timeout: float = 60.0) -> int:
        """Start the child, build the server in it and wait until it listens; returns the port.

        The child is launched on a worker thread (pickling the recordings and starting an
        interpreter take tens to hundreds of ms), so the caller's loop keeps running.

        Raises
        ------
        OSError
            The server cannot listen.
        TimeoutError
            The server did not listen within ``timeout`` seconds (the child is stopped).
        Exception
            Whatever ``DTCServer`` raised in the child (``ValueError`` for a bad recording or
            option).
        """
        if self._proc is not None:
            raise RuntimeError("the replay server process was already started")
        self._caller_loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._conn = parent
        self._waits = ctx.RawValue("q", 0)
        options = {"speed": self.speed, "loop_replay": self.loop_replay, "paused": self.paused,
                   "server_options": self.server_options,
                   "log_level": logging.getLogger("app").getEffectiveLevel()}
        self._proc = ctx.Process(target=_child_main, args=(child, self.recording, options, self._waits),
                                 name="mia-replay-server", daemon=True)
        try:
            await self._caller_loop.run_in_executor(None, self._proc.start)
        finally:
            child.close()  # the child has its own copy; a closed pipe then means the child is gone
        self.pid = self._proc.pid
        threading.Thread(target=self._read_pipe, name="mia-replay-process-pipe", daemon=True).start()
        try:
            port = await asyncio.wait_for(asyncio.wrap_future(self._ready), timeout)
            log.info("built-in replay server in process %d on 127.0.0.1:%d", self.pid, port)
            return port
        except asyncio.TimeoutError:
            await self.stop(5.0)
            raise TimeoutError(f"the built-in replay server did not start within {timeout:g} s") from None
        except BaseException:
            await self._caller_loop.run_in_executor(None, self._reap, 5.0)
            raise

    def _reap(self, timeout: float) -> bool:
        """Join the child (terminate, then kill, when it does not end); True when it ended by itself."""
        proc = self._proc
        if proc is None:
            return True
        proc.join(timeout)
        if proc.exitcode is not None:
            return True
        proc.terminate()
        proc.join(KILL_AFTER_S)
        if proc.exitcode is None:
            proc.kill()
            proc.join(KILL_AFTER_S)
        return False

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.is_alive()

    # ------------------------------------------------------------------ controls
    def pause(self) -> bool:
        """Pause the replay; False when the server is not running."""
        self.paused = True
        return self._send("pause")

    def resume(self) -> bool:
        """Resume the replay; False when the server is not running."""
        self.paused = False
        return self._send("resume")

    def restart_replay(self) -> bool:
        """Start the recording again as a new session
        (:meth:`app.sim.server.market_data.MarketDataMixin.restart_replay`); False when the
        server is not running."""
        return self._send("restart")

    def set_max_rate(self, events_per_s: float | None) -> bool:
        """The maximum-speed pace (events/s, None: none)."""
        return self._send("rate", None if events_per_s is None else float(events_per_s))

    def set_speed(self, speed: float) -> bool:
        """Replay speed (1 = real time, ``<= 0`` maximum)."""
        self.speed = float(speed)
        return self._send("speed", self.speed)

    def market_offsets_s(self) -> dict[str, float]:
        """The child's :meth:`app.sim.server.DTCServer.market_offsets_s`, sent when it listened
        ({} before)."""
        return dict(self._offsets)

    @property
    def pace_waits(self) -> int | None:
        """The child's replay clock's :attr:`~app.sim.replay.ReplayClock.rate_waits`, at most
        :data:`WAITS_PERIOD_S` old (None before :meth:`start`)."""
        return int(self._waits.value) if self._waits is not None else None

    async def run(self, coro_fn, timeout: float):
        """Not available: the server object lives in the child.

        Raises
        ------
        RuntimeError
            Always (use :class:`~app.live.sources.ReplayServerThread` to reach the server object).
        """
        raise RuntimeError("the built-in replay server runs in its own process; its object cannot be reached")

    async def wait_replay_done(self, timeout: float) -> bool:
        """True once every symbol's replay ended (only without ``loop_replay``); False on timeout
        or when the child is gone."""
        req = next(self._ids)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._requests[req] = fut
        if not self._send("done", req, float(timeout)):
            self._requests.pop(req, None)
            return False
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout + 5.0)
        except asyncio.TimeoutError:
            return False
        finally:
            self._requests.pop(req, None)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the server, let the child end (terminated when it does not); idempotent, bounded
        by about ``timeout + 2 * KILL_AFTER_S`` seconds. Failures go to ``on_error`` (never raised)."""
        if self._proc is None:
            return
        self._stopping = True
        self._send("stop", min(float(timeout), 2.0))
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._exited), timeout)
        except asyncio.TimeoutError:
            pass
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self._reap, 1.0):
            self._error(f"the built-in replay server's process did not end within {timeout:g} s and was terminated")
        self._close_pipe()

    def stop_blocking(self, timeout: float = 5.0) -> None:
        """:meth:`stop` from a thread with no running asyncio loop (blocks at most about
        ``timeout + 2 * KILL_AFTER_S`` seconds). Failures go to ``on_error`` (never raised)."""
        if self._proc is None:
            return
        self._stopping = True
        self._send("stop", min(float(timeout), 2.0))
        try:
            self._exited.result(timeout)
        except concurrent.futures.TimeoutError:
            pass
        if not self._reap(1.0):
            self._error(f"the built-in replay server's process did not end within {timeout:g} s and was terminated")
        self._close_pipe()

    def _close_pipe(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
