"""Trading-session calendars: when an instrument's trading day starts, and its phase.

A trading day is the span from one session open to the next. CME Globex equity-index futures
(ES, NQ, MES...) open at 17:00 America/Chicago and close at 16:00 the next day, with the daily
maintenance break 16:00-17:00 and no session from Friday 16:00 to Sunday 17:00 (CME Group,
"Trading hours", Globex equity index futures). A session that opens on Sunday 17:00 belongs to
Monday's trading day; its daily loss limit, trade count, volume profile, cumulative delta and VWAP
all start at that open. Crypto venues (Binance) trade continuously; their day starts at 00:00 UTC,
the boundary Binance uses for its daily statistics.

All times are int nanoseconds since the Unix epoch (UTC). Local times are ``HH:MM`` strings of the
calendar's IANA time zone, and daylight-saving changes are handled by :mod:`zoneinfo` (on Windows
the ``tzdata`` package supplies the database).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np

_DAY_MIN = 24 * 60


def _minutes(hhmm: str, what: str) -> int:
    """``HH:MM`` to minutes after midnight.

    Raises
    ------
    ValueError
        When ``hhmm`` is not ``HH:MM`` with 0 <= HH <= 23 and 0 <= MM <= 59 (names ``what``).
    """
    try:
        h, m = str(hhmm).split(":")
        h, m = int(h), int(m)
    except ValueError:
        raise ValueError(f"{what}: {hhmm!r} is not HH:MM") from None
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{what}: {hhmm!r} is not a time of day (00:00..23:59)")
    return h * 60 + m


@dataclass(frozen=True)
class SessionCalendar:
    """One instrument's trading sessions.

    Attributes
    ----------
    name : str
        Key of :data:`CALENDARS` (``cme_globex``, ``crypto_utc``).
    tz : str
        IANA time zone of ``open``, ``close`` and the phase times.
    open : str
        ``HH:MM`` local time at which a trading day starts.
    close : str
        ``HH:MM`` local time at which it ends; at or before ``open`` means the next calendar day;
        equal to ``open`` means a continuous 24-hour session.
    weekdays : tuple of int
        Weekdays (Monday 0 .. Sunday 6) of the trading days that have a session. A trading day is
        named by the local date on which it closes (CME: Sunday 17:00 opens Monday's day).
    phases : tuple of (str, str)
        ``(HH:MM local, phase name)`` in the order they occur after ``open``; the first must be at
        ``open``. A phase lasts until the next one starts or the session closes.

    Raises
    ------
    ValueError
        On construction: a bad time, an unknown time zone, or a first phase not at ``open``.
    """

    name: str
    tz: str
    open: str
    close: str
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    phases: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except Exception:
            raise ValueError(f"session calendar {self.name!r}: unknown time zone {self.tz!r}") from None
        o = _minutes(self.open, f"{self.name}.open")
        _minutes(self.close, f"{self.name}.close")
        if self.phases and _minutes(self.phases[0][0], f"{self.name}.phases") != o:
            raise ValueError(f"session calendar {self.name!r}: the first phase must start at the open {self.open}")

    # -- derived constants ------------------------------------------------------------------
    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @cached_property
    def _open_min(self) -> int:
        return _minutes(self.open, "open")

    @cached_property
    def length_min(self) -> int:
        """Session length in minutes (1440 for a continuous session)."""
        n = (_minutes(self.close, "close") - self._open_min) % _DAY_MIN
        return n or _DAY_MIN

    @cached_property
    def _phase_offsets(self) -> list[tuple[int, str]]:
        return [((_minutes(t, "phase") - self._open_min) % _DAY_MIN, name) for t, name in self.phases]

    # -- scalar queries ----------------------------------------------------------------------
    def _local(self, t_ns: int) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(int(t_ns) / 1e9, self._zone)

    def trading_day(self, t_ns: int) -> _dt.date:
        """The trading day that ``t_ns`` falls in: the local date of the next close.

        Between the close and the next open (the daily break) it is already the next day's date,
        so every instant has exactly one trading day and each day starts at an open.
        """
        wall = self._local(t_ns).replace(tzinfo=None) - _dt.timedelta(minutes=self._open_min)
        return wall.date() + _dt.timedelta(days=self._days_back)

    @cached_property
    def _days_back(self) -> int:
        """1 when a trading day opens on the calendar day before it is named (an evening open)."""
        return 1 if self._open_min + self.length_min > _DAY_MIN else 0

    def day_start_ns(self, day: _dt.date) -> int:
        """Nanoseconds of the open of trading day ``day`` (a local date)."""
        h, mi = divmod(self._open_min, 60)
        start_date = day - _dt.timedelta(days=self._days_back)
        loc = _dt.datetime(start_date.year, start_date.month, start_date.day, h, mi, tzinfo=self._zone)
        return int(loc.timestamp()) * 1_000_000_000

    def session_start_ns(self, t_ns: int) -> int:
        """Nanoseconds of the open of the trading day containing ``t_ns`` (at or before it)."""
        return self.day_start_ns(self.trading_day(t_ns))

    def is_open(self, t_ns: int) -> bool:
        """True when a session is trading at ``t_ns`` (not in the daily break, not a weekend)."""
        if self.trading_day(t_ns).weekday() not in self.weekdays:
            return False
        return (int(t_ns) - self.session_start_ns(t_ns)) < self.length_min * 60_000_000_000

    @cached_property
    def _phase_memo(self) -> list:
        return [(None, "")]  # [(UTC minute, phase)]: one store, so threads sharing it read a pair

    def phase(self, t_ns: int) -> str:
        """Phase name at ``t_ns`` (from :attr:`phases`), ``"closed"`` outside a session, or
        ``"session"`` when the calendar names no phases.

        Every boundary (open, close, phase starts) falls on a whole local minute, and time
        zones are whole minutes off UTC, so the phase is the same through a UTC minute: the
        last minute's answer is kept (the engine asks at every analysis step; the time-zone
        arithmetic was a tenth of its time on the ES hour)."""
        minute = int(t_ns) // 60_000_000_000
        memo = self._phase_memo[0]
        if memo[0] == minute:
            return memo[1]
        name = self._phase_at(t_ns)
        self._phase_memo[0] = (minute, name)
        return name

    def _phase_at(self, t_ns: int) -> str:
        if not self.is_open(t_ns):
            return "closed"
        if not self._phase_offsets:
            return "session"
        m = (int(t_ns) - self.session_start_ns(t_ns)) // 60_000_000_000
        name = self._phase_offsets[0][1]
        for off, nm in self._phase_offsets:
            if off <= m:
                name = nm
        return name

    # -- array queries -----------------------------------------------------------------------
    def day_starts_between(self, t0_ns: int, t1_ns: int) -> np.ndarray:
        """Opens of every trading day that overlaps ``[t0_ns, t1_ns]``, int64 ns, shape (K,),
        ascending; the first is at or before ``t0_ns``."""
        day = self.trading_day(t0_ns)
        out = [self.day_start_ns(day)]
        while True:
            day = day + _dt.timedelta(days=1)
            s = self.day_start_ns(day)
            if s > t1_ns:
                break
            out.append(s)
        return np.asarray(out, dtype=np.int64)

    def day_index(self, ts_ns: np.ndarray) -> np.ndarray:
        """Trading-day number of each timestamp, int64, shape (N,) like ``ts_ns`` (int64 ns,
        ascending): 0 for the first timestamp's day, +1 at each later open, so a change marks a
        reset point for session statistics (profile, delta, VWAP)."""
        ts = np.asarray(ts_ns, dtype=np.int64)
        if ts.size == 0:
            return np.zeros(0, dtype=np.int64)
        starts = self.day_starts_between(int(ts[0]), int(ts[-1]))
        return (np.searchsorted(starts, ts, side="right") - 1).astype(np.int64)


#: CME Globex equity-index futures: 17:00-16:00 America/Chicago, Sunday to Friday. Phases follow
#: the regular trading hours of the cash market (08:30-15:00 CT): the first hour is the open, the
#: last 30 minutes and the futures-only 15:00-16:00 are the close.
CME_GLOBEX = SessionCalendar(
    name="cme_globex", tz="America/Chicago", open="17:00", close="16:00", weekdays=(0, 1, 2, 3, 4),
    phases=(("17:00", "overnight"), ("08:30", "open"), ("09:30", "midday"), ("14:30", "close")))

#: Crypto (Binance and other 24/7 venues): one continuous day from 00:00 UTC, no named phases.
CRYPTO_UTC = SessionCalendar(name="crypto_utc", tz="UTC", open="00:00", close="00:00")

#: Every calendar by name.
CALENDARS: dict[str, SessionCalendar] = {c.name: c for c in (CME_GLOBEX, CRYPTO_UTC)}


def calendar(name: str) -> SessionCalendar:
    """The calendar called ``name``.

    Raises
    ------
    ValueError
        An unknown name (lists the known ones).
    """
    try:
        return CALENDARS[name]
    except KeyError:
        raise ValueError(f"unknown session calendar {name!r}; known: {', '.join(sorted(CALENDARS))}") from None


#: Exchange names (``Instrument.exchange``, upper case, up to the first ``-``) whose products
#: trade on the CME Globex schedule.
CME_EXCHANGES = frozenset({"CME", "GLBX", "XCME", "CBOT", "XCBT", "NYMEX", "XNYM", "COMEX", "XCEC"})
#: Exchange names of 24/7 crypto venues.
CRYPTO_EXCHANGES = frozenset({"BINANCE", "DERIBIT", "BYBIT", "OKX", "COINBASE", "KRAKEN", "BITMEX"})


def calendar_for(exchange: str) -> SessionCalendar | None:
    """The calendar of an exchange as the data source names it (``CME``, ``BINANCE-USDM``), or
    None when the exchange is not known (then session statistics count from the start of the
    data and nothing resets: no schedule is guessed). Settings can name a calendar instead."""
    key = str(exchange or "").upper().split("-")[0].strip()
    if key in CME_EXCHANGES:
        return CME_GLOBEX
    if key in CRYPTO_EXCHANGES:
        return CRYPTO_UTC
    return None
