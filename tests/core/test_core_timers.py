"""ClockTimers: callbacks at deadlines of an injected clock, on the server's event loop."""

from __future__ import annotations

import asyncio
import threading

from app.core.clock import SYSTEM_CLOCK, ManualClock
from app.core.timers import ClockTimers


def test_manual_clock_runs_due_callbacks_in_order_inside_advance():
    async def main():
        clock = ManualClock()
        t = ClockTimers(clock)
        t.start()
        got = []
        try:
            t.call_later(2.0, got.append, "b")
            t.call_later(1.0, got.append, "a")
            dropped = t.call_later(1.5, got.append, "cancelled")
            t.call_at(clock.monotonic_ns() + 3_000_000_000, lambda: t.call_later(0.0, got.append, "chained"))
            dropped.cancel()
            clock.advance(0.999)
            assert got == []
            clock.advance(0.001)  # on the loop's thread: run before advance returns
            assert got == ["a"]
            clock.advance(5.0)
            assert got == ["a", "b", "chained"]
        finally:
            await t.stop()

    asyncio.run(main())


def test_a_failing_callback_does_not_stop_the_others():
    async def main():
        clock = ManualClock()
        t = ClockTimers(clock)
        t.start()
        got = []
        try:
            t.call_later(1.0, lambda: 1 / 0)
            t.call_later(1.0, got.append, "after")
            clock.advance(1.0)
            assert got == ["after"]
        finally:
            await t.stop()

    asyncio.run(main())


def test_a_move_from_another_thread_wakes_the_loop():
    async def main():
        clock = ManualClock()
        t = ClockTimers(clock)
        t.start()
        fired = asyncio.Event()
        try:
            t.call_later(10.0, fired.set)
            th = threading.Thread(target=clock.advance, args=(10.0,))
            th.start()
            th.join()
            await asyncio.wait_for(fired.wait(), 5.0)  # long before a real 10 s
        finally:
            await t.stop()

    asyncio.run(main())


def test_system_clock_deadline_in_real_time():
    async def main():
        t = ClockTimers(SYSTEM_CLOCK)
        t.start()
        fired = asyncio.Event()
        try:
            t0 = SYSTEM_CLOCK.monotonic_ns()
            t.call_later(0.02, fired.set)
            await asyncio.wait_for(fired.wait(), 5.0)
            assert SYSTEM_CLOCK.monotonic_ns() - t0 >= 20_000_000
        finally:
            await t.stop()

    asyncio.run(main())


def test_stop_drops_pending_callbacks():
    async def main():
        clock = ManualClock()
        t = ClockTimers(clock)
        t.start()
        got = []
        t.call_later(1.0, got.append, "x")
        await t.stop()
        clock.advance(2.0)
        assert got == []

    asyncio.run(main())
