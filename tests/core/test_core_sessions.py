"""Trading-session calendars (app.core.sessions): day boundaries, DST, weekends, phases."""

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.core.sessions import CME_GLOBEX, CRYPTO_UTC, SessionCalendar, calendar


def _ns(text: str, tz: str = "America/Chicago") -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()) * 10**9


def test_globex_day_starts_at_17_chicago_not_midnight():
    before, after = _ns("2024-03-05 16:59"), _ns("2024-03-05 17:00")
    assert CME_GLOBEX.trading_day(before) == dt.date(2024, 3, 5)
    assert CME_GLOBEX.trading_day(after) == dt.date(2024, 3, 6)
    # midnight Chicago is inside the overnight session: same trading day on both sides
    assert CME_GLOBEX.trading_day(_ns("2024-03-05 23:59")) == CME_GLOBEX.trading_day(_ns("2024-03-06 00:01"))
    assert CME_GLOBEX.session_start_ns(_ns("2024-03-06 03:00")) == after


def test_globex_across_daylight_saving_and_weekend():
    # US DST began 2024-03-10 02:00: Sunday's 17:00 open is 22:00 UTC, Friday's was 23:00 UTC
    assert CME_GLOBEX.day_start_ns(dt.date(2024, 3, 11)) == _ns("2024-03-10 22:00", "UTC")
    assert CME_GLOBEX.day_start_ns(dt.date(2024, 3, 8)) == _ns("2024-03-07 23:00", "UTC")
    assert not CME_GLOBEX.is_open(_ns("2024-03-09 12:00"))  # Saturday
    assert not CME_GLOBEX.is_open(_ns("2024-03-08 16:30"))  # Friday after the close
    assert CME_GLOBEX.is_open(_ns("2024-03-10 17:01"))  # Sunday evening opens Monday's day
    assert CME_GLOBEX.trading_day(_ns("2024-03-10 17:01")) == dt.date(2024, 3, 11)


def test_globex_phases():
    assert CME_GLOBEX.phase(_ns("2024-03-05 20:00")) == "overnight"
    assert CME_GLOBEX.phase(_ns("2024-03-06 08:31")) == "open"
    assert CME_GLOBEX.phase(_ns("2024-03-06 12:00")) == "midday"
    assert CME_GLOBEX.phase(_ns("2024-03-06 15:30")) == "close"
    assert CME_GLOBEX.phase(_ns("2024-03-06 16:30")) == "closed"


def test_crypto_day_is_utc_midnight_and_continuous():
    t = _ns("2024-08-08 23:59", "UTC")
    assert CRYPTO_UTC.trading_day(t) == dt.date(2024, 8, 8)
    assert CRYPTO_UTC.trading_day(t + 60 * 10**9) == dt.date(2024, 8, 9)
    assert CRYPTO_UTC.is_open(t) and CRYPTO_UTC.phase(t) == "session"


def test_day_index_counts_opens():
    ts = np.array([_ns("2024-03-05 16:30"), _ns("2024-03-05 17:30"), _ns("2024-03-05 23:00"),
                   _ns("2024-03-06 17:00")], dtype=np.int64)
    assert CME_GLOBEX.day_index(ts).tolist() == [0, 1, 1, 2]
    assert CME_GLOBEX.day_index(np.zeros(0, dtype=np.int64)).shape == (0,)


def test_bad_calendars_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="time zone"):
        SessionCalendar("x", "Mars/Olympus", "17:00", "16:00")
    with pytest.raises(ValueError, match="HH:MM"):
        SessionCalendar("x", "UTC", "5pm", "16:00")
    with pytest.raises(ValueError, match="known: cme_globex, crypto_utc"):
        calendar("lse")


@pytest.mark.parametrize("cal", [CME_GLOBEX, CRYPTO_UTC,
                                 SessionCalendar(name="odd", tz="Asia/Kolkata", open="09:15", close="15:30",
                                                 phases=(("09:15", "open"), ("11:00", "midday"), ("15:00", "close")))])
def test_the_phase_kept_for_a_minute_is_the_phase_computed_afresh(cal):
    """``phase`` keeps its last minute's answer; around every minute boundary of a week that
    spans a DST change and a weekend (and a zone 5.5 h off UTC), in order and out of order, it
    answers as the uncached computation does."""
    t0 = _ns("2024-03-08 00:00", "UTC")
    minutes = np.arange(0, 4 * 24 * 60, 7)
    times = np.concatenate([t0 + minutes * 60 * 10**9 + d for d in (-1, 0, 1, 30 * 10**9)])
    rng = np.random.default_rng(5)
    for order in (np.sort(times), rng.permutation(times)):
        got = [cal.phase(int(t)) for t in order]
        want = [cal._phase_at(int(t)) for t in order]
        assert got == want
    assert {"closed"} < set(want) or cal is CRYPTO_UTC
