"""Callbacks at deadlines of an injected clock, run on one asyncio loop.

Timing that must follow an injected clock (the DTC client's and the built-in server's session
deadlines: logon, heartbeats, the silent-peer limit, held untimed market data; a held bracket
parent's wait) is expressed as deadlines in the monotonic nanoseconds of a
:class:`app.core.clock.Clock`. :class:`ClockTimers` runs each callback once the clock has
reached its deadline:

* with the system clock, one asyncio task sleeps (in real time) until the earliest deadline;
* with a clock that can be moved (:class:`app.core.clock.ManualClock`, anything with
  ``add_listener``), a move wakes it; a move made on the loop's thread runs the due callbacks
  before the clock's ``advance`` returns, so a test sees their effect at once.

A real-time wait never exceeds :data:`MAX_WAIT_S` before the clock is read again (a clock that
moves without telling is still followed).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
from typing import Callable

from app.core.clock import Clock

log = logging.getLogger(__name__)

__all__ = ["ClockTimers", "TimerHandle", "MAX_WAIT_S"]

#: Longest real-time wait of the timer task before it reads the clock again (s).
MAX_WAIT_S = 1.0


class TimerHandle:
    """A scheduled callback; :meth:`cancel` keeps it from running.

    Attributes
    ----------
    when_ns : int
        Deadline, monotonic ns of the timers' clock.
    """

    __slots__ = ("when_ns", "_fn", "_args", "cancelled")

    def __init__(self, when_ns: int, fn: Callable, args: tuple) -> None:
        self.when_ns = int(when_ns)
        self._fn = fn
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (no-op when it already ran)."""
        self.cancelled = True
        self._fn = self._args = None


class ClockTimers:
    """Deadline callbacks on one asyncio loop, timed by ``clock``.

    Parameters
    ----------
    clock : app.core.clock.Clock
        Whose ``monotonic_ns`` the deadlines are in.
    name : str
        Name of the asyncio task (shown in task dumps).

    Callbacks may be scheduled before :meth:`start` (they wait for it); they run on the loop's
    thread, one at a time, in deadline order; an exception in one is logged and does not stop
    the others.
    """

    def __init__(self, clock: Clock, name: str = "clock-timers") -> None:
        self.clock = clock
        self.name = name
        self._heap: list[tuple[int, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._running = False
        self._listening = False

    # ------------------------------------------------------------------ scheduling

    def call_at(self, when_ns: int, fn: Callable, *args) -> TimerHandle:
        """Run ``fn(*args)`` once the clock's monotonic reading reaches ``when_ns`` (ns).

        Returns
        -------
        TimerHandle
        """
        h = TimerHandle(when_ns, fn, args)
        first = not self._heap or h.when_ns < self._heap[0][0]
        heapq.heappush(self._heap, (h.when_ns, next(self._seq), h))
        if first and self._wake is not None:
            self._wake.set()
        return h

    def call_later(self, seconds: float, fn: Callable, *args) -> TimerHandle:
        """Run ``fn(*args)`` ``seconds`` (s of the clock) from now.

        Returns
        -------
        TimerHandle
        """
        return self.call_at(self.clock.monotonic_ns() + int(round(seconds * 1e9)), fn, *args)

    def run_due(self) -> None:
        """Run every callback whose deadline the clock has reached (including those the
        callbacks schedule for a time already reached)."""
        if self._running:
            return
        self._running = True
        try:
            heap = self._heap
            while heap:
                now = self.clock.monotonic_ns()
                when, _, h = heap[0]
                if when > now:
                    break
                heapq.heappop(heap)
                if h.cancelled:
                    continue
                fn, args = h._fn, h._args
                h.cancel()
                try:
                    fn(*args)
                except Exception:  # one bad callback must not stop the others
                    log.exception("timer callback %r failed", fn)
        finally:
            self._running = False

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the timer task on the running loop (and follow a movable clock).

        Raises
        ------
        RuntimeError
            Called outside a running asyncio loop.
        """
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        add = getattr(self.clock, "add_listener", None)
        if callable(add):
            add(self._on_clock)
            self._listening = True
        self._task = self._loop.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the timer task; callbacks still scheduled never run."""
        if self._listening:
            remove = getattr(self.clock, "remove_listener", None)
            if callable(remove):
                remove(self._on_clock)
            self._listening = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._heap.clear()
        self._wake = None
        self._loop = None

    def _on_clock(self) -> None:
        """The clock moved (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self.run_due()
            if self._wake is not None:
                self._wake.set()
        else:
            wake = self._wake
            if wake is not None:
                loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        while True:
            self.run_due()
            delay = MAX_WAIT_S
            if self._heap:
                left = (self._heap[0][0] - self.clock.monotonic_ns()) / 1e9
                delay = min(delay, max(left, 0.0) + 0.0005)
            wake.clear()
            handle = loop.call_later(delay, wake.set)
            try:
                await wake.wait()
            finally:
                handle.cancel()
