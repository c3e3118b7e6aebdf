"""Fixtures of the trading tests: the real ES sample, a market feeder for sessions, a manual clock."""

from __future__ import annotations

import pytest

from app.core.clock import ManualClock


@pytest.fixture(scope="session")
def es_sample():
    """The shipped real CME ES hour (ESH4 MBO -> depth + trades), converted once per test run."""
    from app.feeds.samples import load_default_sample

    return load_default_sample(use_cache=False)


class Feeder:
    """Feeds a session the real sample in chunks (bounded: never past the end of the data)."""

    def __init__(self, session, rec, start: int = 0, chunk: int = 200):
        self.s, self.ev, self.sym, self.i, self.chunk = session, rec.events, rec.instrument.symbol, start, chunk

    def advance(self, n: int) -> None:
        end = min(len(self.ev), self.i + n)
        while self.i < end:
            j = min(end, self.i + self.chunk)
            self.s.on_market(self.sym, self.ev[self.i:j])
            self.i = j

    def until(self, pred, limit: int | None = None) -> bool:
        """Feed until ``pred()`` is true; False when the data (or ``limit`` events) ran out."""
        stop = len(self.ev) if limit is None else min(len(self.ev), self.i + limit)
        while self.i < stop:
            if pred():
                return True
            self.advance(self.chunk)
        return bool(pred())


@pytest.fixture
def feeder_cls():
    return Feeder


@pytest.fixture
def manual_clock():
    """A :class:`~app.core.clock.ManualClock` (2024-01-02 14:30 UTC): time moves only when the test
    calls ``advance``, so no test sleeps to let time pass."""
    return ManualClock()
