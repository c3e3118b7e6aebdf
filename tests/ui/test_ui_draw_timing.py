"""When the window draws a published frame: at once, or exactly one display period after the
last draw (a one-shot timer for the rest of the period), never at the periodic timer's phase.

The gate reads the window's injected clock (:class:`app.core.clock.ManualClock` here), so the
test decides how old the last draw is; only the one-shot timer itself is Qt's (12 ms, waited
for as a signal).
"""

from __future__ import annotations

import types

import pytest

pytest.importorskip("PySide6")


class _Slot:
    """The newest frame only, as :class:`app.live.pipeline.FrameSlot` keeps it."""

    def __init__(self):
        self.frame = None

    def put(self, frame):
        self.frame = frame

    def take(self):
        f, self.frame = self.frame, None
        return f


class _Pipeline:
    """What the window's timer path asks of a pipeline: ``poll`` and ``slot.take``."""

    def __init__(self):
        self.slot = _Slot()
        self.engine = None
        self.source = None

    def poll(self):
        pass


def _window(qtbot):
    from app.core.clock import ManualClock
    from app.ui.main_window import MainWindow

    clock = ManualClock()
    w = MainWindow(clock=clock, display_hz=60.0)
    qtbot.addWidget(w)
    pl = _Pipeline()
    w.pipeline = pl
    drawn = []
    w.draw_frame = drawn.append  # what is drawn, and when, is all this test looks at
    w.timer.setInterval(60_000)  # the periodic timer is running but never fires in the test
    w.timer.start()
    return w, pl, clock, drawn


def test_a_frame_published_early_in_the_period_is_drawn_when_the_period_ends(qtbot):
    w, pl, clock, drawn = _window(qtbot)
    a, b, c = (types.SimpleNamespace(symbol="", name=n) for n in "abc")
    pl.slot.put(a)
    w._on_frame_ready()
    assert drawn == [a]  # no draw yet: at once
    clock.advance(0.005)  # 5 ms after that draw, a new frame
    pl.slot.put(b)
    w._on_frame_ready()
    assert drawn == [a]  # too soon for a 60 Hz display
    assert w._draw_soon.isActive()
    assert w._draw_soon.interval() == 12  # the rest of the 16.7 ms period, rounded up to ms
    pl.slot.put(c)  # another frame before the timer: the same timer takes the newest
    w._on_frame_ready()
    assert w._draw_soon.interval() == 12
    clock.advance(0.012)
    with qtbot.waitSignal(w._draw_soon.timeout, timeout=2000):
        pass
    assert drawn == [a, c]  # the newest when the period ended
    assert not w._draw_soon.isActive()


def test_a_frame_a_full_period_after_the_last_draw_is_drawn_at_once(qtbot):
    w, pl, clock, drawn = _window(qtbot)
    a, b = (types.SimpleNamespace(symbol="", name=n) for n in "ab")
    pl.slot.put(a)
    w._on_frame_ready()
    clock.advance(1.0 / 60.0)
    pl.slot.put(b)
    w._on_frame_ready()
    assert drawn == [a, b]
    assert not w._draw_soon.isActive()


def test_no_frame_is_drawn_once_the_window_stopped_its_timer(qtbot):
    w, pl, clock, drawn = _window(qtbot)
    w.timer.stop()
    pl.slot.put(types.SimpleNamespace(symbol="", name="a"))
    w._on_frame_ready()
    assert drawn == [] and not w._draw_soon.isActive()
