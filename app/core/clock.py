"""Clocks: every piece of code that needs "now" takes one, so tests can drive time by hand.

Two readings, both int64 nanoseconds:

* :meth:`Clock.time_ns`: wall-clock time since the UNIX epoch, UTC (journal stamps, order
  times, the wall-clock fallback for untimed market data).
* :meth:`Clock.monotonic_ns`: a monotonic reading with an arbitrary origin, for durations and
  deadlines (hold timers, stale-data limits, publish intervals, replay pacing). Never compare it
  with a wall-clock or market time.

:class:`SystemClock` reads the operating system; :class:`ManualClock` only moves when a test
calls :meth:`ManualClock.advance` (or :meth:`ManualClock.set`), so a test never sleeps to make
time pass. Code that waits (a worker thread's queue wait, an asyncio timer) still waits on the
real clock; with a :class:`ManualClock` it should bound its real wait and re-read the clock,
or be woken by :meth:`ManualClock.add_listener` callbacks.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "ManualClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    """What code needs of a clock: a wall-clock and a monotonic reading, both int64 ns."""

    def time_ns(self) -> int:
        """Wall-clock time, ns since the UNIX epoch (UTC)."""
        ...

    def monotonic_ns(self) -> int:
        """Monotonic time, ns from an arbitrary origin (for durations and deadlines only)."""
        ...

    def monotonic(self) -> float:
        """:meth:`monotonic_ns` in seconds (float)."""
        ...


class SystemClock:
    """The operating system's clocks (``time.time_ns`` and ``time.monotonic_ns``)."""

    __slots__ = ()

    def time_ns(self) -> int:
        """Wall-clock time, ns since the UNIX epoch (UTC)."""
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """Monotonic time, ns (``time.monotonic_ns``)."""
        return time.monotonic_ns()

    def monotonic(self) -> float:
        """Monotonic time, s (``time.monotonic``)."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The one shared system clock: the default wherever a ``clock`` argument is omitted.
SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to: for deterministic tests.

    Parameters
    ----------
    time_ns : int
        Initial wall-clock reading, ns since the UNIX epoch (default 2024-01-02 14:30 UTC).
    monotonic_ns : int
        Initial monotonic reading, ns (default 1 000 s, so "0" never looks like "unset").

    Both readings advance together. Thread-safe: the readings may be taken from any thread.

    Raises
    ------
    ValueError
        From :meth:`advance` for a negative step (a clock never goes back).
    """

    def __init__(self, time_ns: int = 1_704_205_800_000_000_000, monotonic_ns: int = 1_000_000_000_000):
        self._lock = threading.Lock()
        self._wall = int(time_ns)
        self._mono = int(monotonic_ns)
        self._listeners: list[Callable[[], None]] = []

    def time_ns(self) -> int:
        """Wall-clock reading, ns since the UNIX epoch (UTC)."""
        with self._lock:
            return self._wall

    def monotonic_ns(self) -> int:
        """Monotonic reading, ns."""
        with self._lock:
            return self._mono

    def monotonic(self) -> float:
        """Monotonic reading, s."""
        return self.monotonic_ns() / 1e9

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        """Move both readings forward by ``seconds`` (float s) plus ``ns`` (int ns), then call
        every listener added with :meth:`add_listener` (outside the lock)."""
        step = int(round(seconds * 1e9)) + int(ns)
        if step < 0:
            raise ValueError(f"ManualClock.advance: step must be >= 0, got {step} ns")
        with self._lock:
            self._wall += step
            self._mono += step
            listeners = list(self._listeners)
        for fn in listeners:
            fn()

    def set(self, time_ns: int) -> None:
        """Set the wall-clock reading (ns since the epoch); the monotonic reading moves by the
        same amount when that is forward, and stays when it is backward (monotonic never goes back)."""
        with self._lock:
            step = int(time_ns) - self._wall
            self._wall = int(time_ns)
            if step > 0:
                self._mono += step
            listeners = list(self._listeners)
        for fn in listeners:
            fn()

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after every :meth:`advance` / :meth:`set` (to wake waiting code)."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        """Stop calling ``fn`` (no error when it was not added)."""
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def __repr__(self) -> str:
        return f"ManualClock(time_ns={self._wall}, monotonic_ns={self._mono})"
