"""Replay clock: hands out a recording's events in batches at real time x speed.

Used by the built-in DTC server (one clock per symbol) and by anything else that replays a
:class:`~app.feeds.recording.Recording` (the GUI demo, headless analysis).

Batches never split an atomic depth batch: the events are first cut into *segments*, each
ending at an event flagged ``FLAG_BATCH_END`` (trades inside a depth batch stay in it); a batch
handed out is one or more whole segments.

Time
----
Replay time ``t_rec`` (ns, the recording's clock) advances as ``speed`` x the monotonic
reading of the injected ``clock`` (:class:`app.core.clock.Clock`, the system clock by default;
tests drive a :class:`~app.core.clock.ManualClock`, whose every move wakes a waiting
:meth:`ReplayClock.stream`). ``speed <= 0`` or ``math.inf`` means *maximum speed*: no waiting,
batches of about ``max_batch`` events, with a yield to the event loop between them. A gap in the
recording longer than ``max_gap_s`` (in recording time) is shortened to ``max_gap_s`` (the ES
sample has a 22-hour gap between its snapshot and the session, and quiet pre-open minutes).
:meth:`ReplayClock.pause` freezes replay time; :meth:`ReplayClock.resume` continues from the same
replay time; :meth:`ReplayClock.set_speed` keeps the current replay time and changes the rate.

End and loops
-------------
Without ``loop`` :meth:`ReplayClock.stream` ends after the last batch. With ``loop`` each pass
starts again at the first event; a pass lasts at least ``min_pass_s`` seconds of the injected
clock (a recording whose events all share one timestamp would otherwise be resent as fast as
the CPU goes; at maximum speed a pass that would be shorter is spread evenly over it, event
count against time, rather than sent in a burst and followed by a still wait), and ``on_restart`` (if set) is called on the loop just before the next pass, so
the owner can start a new session (the built-in server clears the book and cancels orders).
:meth:`ReplayClock.stream` awaits the event loop after every batch, whatever the speed and the
recording's timestamps: the loop (the server's logons, ``--seconds``, SIGINT) stays responsive.
"""

from __future__ import annotations

import asyncio
import datetime
import math
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.events import FLAG_BATCH_END
from app.feeds.recording import Recording

#: A maximum-speed pass spread over ``min_pass_s`` waits only when it is this far ahead (ns).
_SPREAD_SLACK_NS = 2_000_000


def segment_ends(events: np.ndarray) -> np.ndarray:
    """Exclusive end index of each atomic segment (ends after every ``FLAG_BATCH_END`` event).

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        Increasing; the last value is ``len(events)``.
    """
    n = len(events)
    ends = np.flatnonzero((events["flags"] & FLAG_BATCH_END) != 0) + 1
    if not len(ends) or ends[-1] != n:
        ends = np.append(ends, n)
    return ends.astype(np.int64)


class ReplayClock:
    """Batches of a recording at real time x speed.

    Parameters
    ----------
    recording : Recording or numpy.ndarray
        The recording (or a bare EVENT_DTYPE array in time order).
    speed : float
        Replay rate (1.0 = real time); ``<= 0`` or ``inf`` = maximum speed.
    max_gap_s : float
        Longest wait between two events, in recording seconds.
    max_batch : int
        Upper bound of events per batch (a single longer segment is still handed out whole).
    loop : bool
        Start again from the beginning after the end (``loops`` counts restarts).
    clock : app.core.clock.Clock
        Whose monotonic reading paces the replay (default the system clock).
    min_pass_s : float
        With ``loop``: shortest duration of one pass, seconds of ``clock`` (default 1 s).
    times_ns : numpy.ndarray of int64, shape (len(events),), optional
        The time that paces each event (ns, non-decreasing); default ``events["ts"]``. Several
        recordings on one market clock pass :attr:`MarketTimeline.times_ns`.
    ends : numpy.ndarray of int64, optional
        Exclusive end index of each atomic segment (increasing, the last ``len(events)``);
        default :func:`segment_ends` of ``events``.

    Attributes
    ----------
    position : int
        Index of the next event to hand out.
    loops : int
        Completed passes.
    batches_out, events_out : int
        Counters.
    rate_waits : int
        Times a maximum-speed replay waited for :meth:`set_max_rate`'s pace (the pace, not the
        sender, held it back).
    on_restart : callable() or None
        Called on the loop before each new pass of a looping :meth:`stream`.
    """

    def __init__(
        self,
        recording: Recording | np.ndarray,
        speed: float = 1.0,
        max_gap_s: float = 5.0,
        max_batch: int = 4096,
        loop: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        min_pass_s: float = 1.0,
        times_ns: np.ndarray | None = None,
        ends: np.ndarray | None = None,
    ) -> None:
        self.clock = clock
        self.events = recording.events if isinstance(recording, Recording) else recording
        self._times = self.events["ts"] if times_ns is None else np.asarray(times_ns, dtype=np.int64)
        if len(self._times) != len(self.events):
            raise ValueError(f"times_ns has {len(self._times)} values for {len(self.events)} events")
        if ends is not None:
            self._ends = np.asarray(ends, dtype=np.int64)
        else:
            self._ends = segment_ends(self.events) if len(self.events) else np.zeros(0, np.int64)
        self._starts_ts = self._times[np.concatenate(([0], self._ends[:-1]))] if len(self._ends) else np.zeros(0, np.int64)
        self._ends_list = self._ends.tolist()
        self._start_ts_list = self._starts_ts.tolist()
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.max_batch = int(max_batch)
        self.loop = loop
        self.min_pass_ns = int(max(0.0, float(min_pass_s)) * 1e9)
        self.on_restart = None
        self._pass_wall_ns = 0
        self._paused_at_ns = 0
        self._rate_eps = 0.0  # set_max_rate: events/s at maximum speed (0: no limit)
        self._rate_wall_ns = 0
        self._rate_events = 0
        self.rate_waits = 0  # times the replay waited for the pace (it was what held it back)
        self.position = 0
        self._seg = 0
        self.loops = 0
        self.batches_out = 0
        self.events_out = 0
        self._speed = 1.0
        self._paused = False
        self._resumed: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._rec_anchor = int(self._times[0]) if len(self.events) else 0
        self._wall_anchor = self.clock.monotonic_ns()
        self.set_speed(speed)

    # ---------------------------------------------------------------- control
    @property
    def speed(self) -> float:
        """Current rate (``math.inf`` = maximum)."""
        return self._speed

    @property
    def max_speed(self) -> bool:
        """True when replaying as fast as possible."""
        return math.isinf(self._speed)

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused

    @property
    def done(self) -> bool:
        """True when every event was handed out and ``loop`` is off."""
        return not self.loop and self._seg >= len(self._ends_list)

    @property
    def progress(self) -> float:
        """Fraction of the current pass handed out (0..1)."""
        n = len(self.events)
        return self.position / n if n else 1.0

    def replay_time_ns(self) -> int:
        """Current replay time (ns, the clock of ``times_ns``: the recording's by default)."""
        if self._paused or self.max_speed:
            return self._rec_anchor
        return self._rec_anchor + int((self.clock.monotonic_ns() - self._wall_anchor) * self._speed)

    def _rebase(self, rec_ns: int) -> None:
        self._rec_anchor = int(rec_ns)
        self._wall_anchor = self.clock.monotonic_ns()

    def set_speed(self, speed: float) -> None:
        """Change the rate, keeping the current replay time (``<= 0`` or inf: maximum speed)."""
        now = self.replay_time_ns()
        self._speed = math.inf if (speed is None or speed <= 0 or math.isinf(speed)) else float(speed)
        self._rebase(now)
        self._kick()

    def set_max_rate(self, events_per_s: float | None) -> None:
        """At maximum speed, hand out at most ``events_per_s`` events a second (None or ``<= 0``:
        no limit): the pace of a consumer that cannot take more (the window's engine, see
        :meth:`app.live.pipeline.Pipeline._pace`). Batches stay whole; the debt or credit of the
        old rate carries over (the next batch is due no earlier than it was), so changing the
        rate often sends no burst."""
        now = self.clock.monotonic_ns()
        start = max(now, self._rate_due_ns()) if self._rate_eps > 0.0 else now
        self._rate_eps = float(events_per_s) if events_per_s and events_per_s > 0 else 0.0
        self._rate_wall_ns, self._rate_events = start, self.events_out
        self._kick()

    def _rate_due_ns(self) -> int:
        """When the next batch is due at the pace of :meth:`set_max_rate` (clock ns)."""
        return self._rate_wall_ns + int((self.events_out - self._rate_events) * 1e9 / self._rate_eps)

    def pause(self) -> None:
        """Freeze replay time (and, at maximum speed, the pass's spread schedule)."""
        if not self._paused:
            self._rebase(self.replay_time_ns())
            self._paused = True
            self._paused_at_ns = self.clock.monotonic_ns()
            if self._resumed is not None:
                self._resumed.clear()

    def resume(self) -> None:
        """Continue from the replay time at which :meth:`pause` was called.

        A looping replay at maximum speed spreads each pass over :attr:`min_pass_ns`; the
        pause's length is added to the pass's start, so the pass goes on at its even rate
        from where it stood. (Before, the schedule ran on through the pause, and resuming
        sent everything it had fallen behind by in one burst: the pipeline's flow control
        holds the replay several times a second, and each release flooded the engine with
        seconds of work.)
        """
        if self._paused:
            self._paused = False
            held_from = max(self._paused_at_ns, self._pass_wall_ns)  # a pass may begin in the pause
            self._pass_wall_ns += max(self.clock.monotonic_ns() - held_from, 0)
            self._rebase(self._rec_anchor)
            if self._resumed is not None:
                self._resumed.set()
            self._kick()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def restart(self) -> None:
        """Go back to the first event (counts as a loop when something was handed out)."""
        if self.position:
            self.loops += 1
        self.position = 0
        self._seg = 0
        if len(self.events):
            self._rebase(int(self._times[0]))

    async def _sleep(self, seconds: float) -> None:
        """Wait up to ``seconds`` (at most 0.25 s, at least 0.5 ms) or until the clock moves
        or the replay is controlled (:meth:`_kick`); callers re-read the clock afterwards."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(min(seconds, 0.25), 0.0005))
        except asyncio.TimeoutError:
            pass

    # ---------------------------------------------------------------- batches
    def _take(self, until_ts: int | None) -> np.ndarray | None:
        """Whole segments starting at or before ``until_ts`` (None: no time limit), <= max_batch."""
        k = self._seg
        ends = self._ends_list
        starts = self._start_ts_list
        if k >= len(ends):
            return None
        if until_ts is not None and starts[k] > until_ts:
            return None
        begin = self.position
        j = k
        while j < len(ends):
            if until_ts is not None and starts[j] > until_ts:
                break
            if j > k and ends[j] - begin > self.max_batch:
                break
            j += 1
        end = ends[j - 1]
        self._seg = j
        self.position = end
        self.batches_out += 1
        self.events_out += end - begin
        return self.events[begin:end]

    def iter_batches(self) -> Iterator[np.ndarray]:
        """All remaining batches at once (maximum speed, no waiting, one pass)."""
        while True:
            b = self._take(None)
            if b is None:
                return
            yield b

    async def stream(self) -> AsyncIterator[np.ndarray]:
        """Async batches at real time x speed (honours pause, resume, speed and loop).

        Ends after the last batch unless ``loop`` is set. Safe to cancel.
        """
        self._resumed = asyncio.Event()
        self._wake = asyncio.Event()
        if not self._paused:
            self._resumed.set()
        if self.position == 0 and len(self.events):
            self._rebase(int(self._times[0]))
        loop = asyncio.get_running_loop()

        def moved() -> None:  # the clock moved (any thread): re-read it on the loop
            loop.call_soon_threadsafe(self._kick)

        listen = getattr(self.clock, "add_listener", None)
        if callable(listen):
            listen(moved)
        self._pass_wall_ns = self.clock.monotonic_ns()
        try:
            while True:
                if self._seg >= len(self._ends_list):
                    if not self.loop or not len(self.events):
                        return
                    left_ns = self._pass_wall_ns + self.min_pass_ns - self.clock.monotonic_ns()
                    if left_ns > 0:  # a pass lasts at least min_pass_s (zero-duration recordings)
                        await self._sleep(left_ns / 1e9)
                        continue
                    if self.on_restart is not None:
                        self.on_restart()
                    self.restart()
                    self._pass_wall_ns = self.clock.monotonic_ns()
                if self._paused:
                    await self._resumed.wait()
                    continue
                if self.max_speed:
                    if self.loop and self.min_pass_ns and len(self.events):
                        # a pass shorter than min_pass_s is spread over it, not sent in a burst
                        # followed by a frozen wait (the ES hour: 0.3 s of data, then 0.7 s still)
                        due = self._pass_wall_ns + self.min_pass_ns * self.position // len(self.events)
                        ahead = due - self.clock.monotonic_ns()
                        if ahead > _SPREAD_SLACK_NS:
                            await self._sleep(ahead / 1e9)
                            continue
                    if self._rate_eps > 0.0:
                        # the consumer's pace (set_max_rate): never ahead of it, never a burst
                        ahead = self._rate_due_ns() - self.clock.monotonic_ns()
                        if ahead > _SPREAD_SLACK_NS:
                            self.rate_waits += 1
                            await self._sleep(ahead / 1e9)
                            continue
                    b = self._take(None)
                    if b is not None:
                        self._rec_anchor = int(self._times[self.position - 1])
                        yield b
                    await asyncio.sleep(0)
                    continue
                now = self.replay_time_ns()
                nxt = self._start_ts_list[self._seg]
                if nxt > now:
                    if nxt - now > self.max_gap_ns:
                        self._rebase(nxt - self.max_gap_ns)
                        now = nxt - self.max_gap_ns
                    await self._sleep((nxt - now) / self._speed / 1e9)
                    continue
                b = self._take(now)
                if b is not None:
                    yield b
                await asyncio.sleep(0)  # never loop without awaiting (a batch of one timestamp)
        finally:
            unlisten = getattr(self.clock, "remove_listener", None)
            if callable(unlisten):
                unlisten(moved)


def first_trade_index(events: np.ndarray) -> int | None:
    """Index of the first trade event (the session's opening trade), or None without trades."""
    from app.core.events import KIND_TRADE

    idx = np.flatnonzero(events["kind"] == KIND_TRADE)
    return int(idx[0]) if len(idx) else None


def start_at(recording: Recording, index: int) -> Recording:
    """The recording from event ``index`` on, headed by a snapshot of the book at that point.

    The head is an ``OP_CLEAR`` (side 0) plus one ``OP_SET`` per level of the book that the
    events before ``index`` built (:class:`app.market.refbook.ReferenceBook`), all flagged
    ``FLAG_SNAPSHOT``, the last one ``FLAG_BATCH_END``, stamped with the time of event
    ``index``. Replaying the result ends in the same book as replaying the whole recording.
    The built-in server uses it to start at the opening trade: CME's pre-open book can be
    crossed (indicative prices), which is not what a trader practises on.

    Raises
    ------
    IndexError
        If ``index`` is outside ``0..len(events)``.
    """
    from app.core.events import FLAG_SNAPSHOT, OP_CLEAR, SIDE_UNSET, depth_events
    from app.market.refbook import ReferenceBook

    ev = recording.events
    if not 0 <= index <= len(ev):
        raise IndexError(f"start index {index} outside 0..{len(ev)}")
    book = ReferenceBook()
    book.apply(ev[:index])
    ts = int(ev["ts"][index]) if index < len(ev) else (int(ev["ts"][-1]) if len(ev) else 0)
    clear = depth_events([ts], [0], [0.0], SIDE_UNSET, OP_CLEAR, flags=FLAG_SNAPSHOT)
    head = np.concatenate([clear, book.snapshot_events(ts, FLAG_SNAPSHOT)])
    head["flags"][-1] |= FLAG_BATCH_END
    extra = dict(recording.extra)
    extra["start_index"] = int(index)
    return Recording(
        instrument=recording.instrument,
        events=np.concatenate([head, ev[index:]]),
        source=f"{recording.source} (from event {index})",
        extra=extra,
    )


# ---------------------------------------------------------------------- one market clock
#: The rule of :func:`market_timeline`, in one line (``mia-elite serve`` prints it at start-up).
ALIGNMENT_RULE = (
    "recordings whose times overlap replay on their real times; recordings on other dates "
    "start together at the first one's start (each set's gaps over max-gap shortened, as a "
    "single replay does); every message keeps its recorded time")


@dataclass(frozen=True)
class MarketTimeline:
    """Several recordings merged, whole atomic segments at a time, on one market clock.

    Attributes
    ----------
    events : numpy.ndarray of EVENT_DTYPE, shape (n,)
        Every recording's events, each segment (:func:`segment_ends`) kept whole and in its
        recording's order, the segments of all recordings in market-time order (ties: the
        recording given first). ``ts`` stays each event's recorded time.
    member : numpy.ndarray of int32, shape (n,)
        Index (into the recordings given) of each event's recording.
    times_ns : numpy.ndarray of int64, shape (n,)
        Market time of each event (ns): the time that paces the replay (:class:`ReplayClock`
        ``times_ns``); non-decreasing over the segments' first events.
    ends : numpy.ndarray of int64, shape (k,)
        Exclusive end of each segment in ``events`` (:class:`ReplayClock` ``ends``).
    offsets_ns : tuple of int
        Per recording: market time of its first event minus its recorded time (0 for the
        recordings of the first time group; 0 for an empty recording).
    groups : tuple of int
        Per recording: its time group (0 = the one starting first); recordings of one group
        overlap in time and replay on their real times.
    """

    events: np.ndarray
    member: np.ndarray
    times_ns: np.ndarray
    ends: np.ndarray
    offsets_ns: tuple
    groups: tuple

    def describe(self, names: list[str]) -> str:
        """One line: each recording's name, recorded start (UTC) and shift on the market clock."""
        parts = []
        for i, (name, off, g) in enumerate(zip(names, self.offsets_ns, self.groups)):
            sel = np.flatnonzero(self.member == i)
            if not len(sel):
                parts.append(f"{name} (no events)")
                continue
            start = datetime.datetime.fromtimestamp(int(self.events["ts"][sel[0]]) / 1e9, datetime.timezone.utc)
            shift = "real time" if off == 0 else f"shifted {off / 1e9:+,.0f} s"
            parts.append(f"{name} from {start:%Y-%m-%d %H:%M:%S} UTC (group {g}, {shift})")
        return "; ".join(parts)


def _compress_gaps(times: np.ndarray, all_times: np.ndarray, max_gap_ns: int) -> np.ndarray:
    """``times`` with every gap of the sorted ``all_times`` longer than ``max_gap_ns`` cut to it."""
    u = np.unique(all_times)
    excess = np.maximum(np.diff(u) - max_gap_ns, 0)
    cut = np.concatenate(([0], np.cumsum(excess)))
    return times - cut[np.searchsorted(u, times)]


def market_timeline(event_arrays: list[np.ndarray], max_gap_s: float = 5.0) -> MarketTimeline:
    """Put several recordings on one market clock (the rule is :data:`ALIGNMENT_RULE`).

    Recordings are sorted by their first event's time and swept into *time groups*: a
    recording joins the current group when it starts at or before the latest last event of the
    group (their times overlap), else it opens a new group. One group (every recording
    overlapping, or a single one): market time is the recorded time, and the replay shortens
    long gaps as it runs, exactly as for one recording. Several groups (different dates):
    within each group the gaps between consecutive event times longer than ``max_gap_s`` are
    cut to ``max_gap_s`` (what a single replay would do), then every group is shifted so that
    it starts at the first group's start. Messages keep their recorded times (``ts``); only
    the pacing uses market time.

    Parameters
    ----------
    event_arrays : list of numpy.ndarray of EVENT_DTYPE
        One array per recording, each in time order.
    max_gap_s : float
        Longest gap kept inside a group when groups are aligned, seconds.

    Returns
    -------
    MarketTimeline
        For a single recording its events themselves (no copy), times = ``ts``.

    Raises
    ------
    ValueError
        If no array is given.
    """
    if not event_arrays:
        raise ValueError("market_timeline needs at least one recording")
    k = len(event_arrays)
    order = sorted((i for i in range(k) if len(event_arrays[i])), key=lambda i: int(event_arrays[i]["ts"][0]))
    groups = [0] * k
    group_members: list[list[int]] = []
    group_end = None
    for i in order:
        ts = event_arrays[i]["ts"]
        if group_end is not None and int(ts[0]) <= group_end:
            group_members[-1].append(i)
            group_end = max(group_end, int(ts[-1]))
        else:
            group_members.append([i])
            group_end = int(ts[-1])
        groups[i] = len(group_members) - 1
    times = [a["ts"].astype(np.int64) for a in event_arrays]
    offsets = [0] * k
    if len(group_members) > 1:
        t0 = int(event_arrays[group_members[0][0]]["ts"][0])
        gap = int(max(0.0, float(max_gap_s)) * 1e9)
        for g, members in enumerate(group_members):
            all_t = np.concatenate([times[i] for i in members])
            start = int(all_t.min())
            for i in members:
                times[i] = _compress_gaps(times[i], all_t, gap) - start + t0
                offsets[i] = int(times[i][0] - event_arrays[i]["ts"][0])
    if k == 1:
        ev = event_arrays[0]
        return MarketTimeline(ev, np.zeros(len(ev), np.int32), times[0],
                              segment_ends(ev) if len(ev) else np.zeros(0, np.int64), (0,), (0,))
    seg_start, seg_len, seg_time, seg_member = [], [], [], []
    base = 0
    for i, a in enumerate(event_arrays):
        if len(a):
            e = segment_ends(a)
            s = np.concatenate(([0], e[:-1]))
            seg_start.append(s + base)
            seg_len.append(e - s)
            seg_time.append(times[i][s])
            seg_member.append(np.full(len(e), i, np.int32))
        base += len(a)
    if not seg_start:
        ev = np.concatenate(event_arrays)
        return MarketTimeline(ev, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                              tuple(offsets), tuple(groups))
    seg_start = np.concatenate(seg_start)
    seg_len = np.concatenate(seg_len)
    seg_time = np.concatenate(seg_time)
    seg_member = np.concatenate(seg_member)
    pick = np.lexsort((np.arange(len(seg_time)), seg_member, seg_time))  # time, then recording, then order
    seg_start, seg_len = seg_start[pick], seg_len[pick]
    ends = np.cumsum(seg_len)
    idx = np.repeat(seg_start - (ends - seg_len), seg_len) + np.arange(int(ends[-1]))
    all_ev = np.concatenate(event_arrays)
    all_member = np.concatenate([np.full(len(a), i, np.int32) for i, a in enumerate(event_arrays)])
    all_times = np.concatenate(times)
    return MarketTimeline(all_ev[idx], all_member[idx], all_times[idx], ends.astype(np.int64),
                          tuple(offsets), tuple(groups))
