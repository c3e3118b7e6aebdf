"""The injectable clocks (app.core.clock)."""

import threading

import pytest

from app.core.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock


def test_manual_clock_moves_only_when_told():
    c = ManualClock(time_ns=10, monotonic_ns=20)
    assert (c.time_ns(), c.monotonic_ns()) == (10, 20)
    assert (c.time_ns(), c.monotonic_ns()) == (10, 20)
    c.advance(1.5)
    assert (c.time_ns(), c.monotonic_ns()) == (10 + 1_500_000_000, 20 + 1_500_000_000)
    c.advance(ns=7)
    assert c.monotonic_ns() == 20 + 1_500_000_007
    assert c.monotonic() == pytest.approx((20 + 1_500_000_007) / 1e9)


def test_manual_clock_never_goes_back():
    c = ManualClock(time_ns=1000, monotonic_ns=5000)
    with pytest.raises(ValueError):
        c.advance(-1.0)
    c.set(500)  # wall clock set back (a time sync): monotonic stays
    assert (c.time_ns(), c.monotonic_ns()) == (500, 5000)
    c.set(800)
    assert (c.time_ns(), c.monotonic_ns()) == (800, 5300)


def test_manual_clock_listeners_are_called_after_each_step():
    c = ManualClock()
    seen = []
    fn = lambda: seen.append(c.monotonic_ns())  # noqa: E731
    c.add_listener(fn)
    c.advance(1.0)
    c.advance(ns=1)
    c.remove_listener(fn)
    c.advance(1.0)
    assert len(seen) == 2 and seen[1] - seen[0] == 1


def test_both_clocks_satisfy_the_protocol_and_system_clock_moves():
    assert isinstance(SYSTEM_CLOCK, Clock) and isinstance(ManualClock(), Clock)
    assert isinstance(SYSTEM_CLOCK, SystemClock)
    a = SYSTEM_CLOCK.monotonic_ns()
    ev = threading.Event()
    ev.wait(0.002)  # a bounded wait on the real clock, then the reading must have moved
    assert SYSTEM_CLOCK.monotonic_ns() > a
    assert SYSTEM_CLOCK.time_ns() > 1_600_000_000 * 10**9
