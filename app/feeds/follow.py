"""Live follow of Sierra Chart's growing data files (``.scid`` trades, ``.depth`` book).

Sierra Chart appends to ``Data/<symbol>.scid`` and ``Data/MarketDepthData/<symbol>.<date>.depth``
as the market moves. :class:`SierraFollower` polls both (default every 50 ms) and hands event
arrays (:data:`app.core.events.EVENT_DTYPE`) to a callback.

Guarantees
----------
* **Whole records only.** Only ``(size - position) // record_size`` records are read; a
  half-written record stays in the file until its last byte is there (counted in
  ``counters['partial_waits']``). A header that is not complete yet is waited for too.
* **Depth batch boundaries.** Depth events are delivered up to the last end-of-batch flag read;
  the events of an unfinished batch are held until the batch's last record arrives (or, for a
  source that never flags batch ends, for at most ``batch_hold_s``). Each delivered depth array
  therefore ends at a batch end and the book is consistent after it.
* **Day change.** Sierra Chart starts a new depth file per UTC day. When a file with a later date
  appears for the symbol, the old file is drained to its last whole record, then the follower
  switches to the next day's file from its header (``counters['rollovers']``); day files are
  taken in date order, never skipped. The directory is listed at most every ``rollover_check_s``.
* **Truncated or rewritten files.** When a file becomes shorter than the read position, is
  replaced by another file (a different file id), or its header / first record changes, the
  follower logs a warning and restarts from the header (``counters['restarts']``). A restarted
  ``.depth`` is re-read from its start (the day file begins with a full snapshot: clear + all
  levels, so the book is rebuilt); a restarted ``.scid`` (possibly gigabytes of history) is
  positioned by binary search after the last delivered DateTime, and until a newer record
  arrives records not newer than it are skipped, so trades are not repeated (records sharing
  the last delivered DateTime exactly are taken as already delivered).
* **Start.** ``.depth``: the newest day file is read from its header (its snapshot builds the
  book). ``.scid``: from its end by default (``scid_history`` records back, default 0).

Windows file sharing
--------------------
Sierra Chart opens its data files in shared mode (Sierra "Intraday Data File Format": "Sierra
Chart opens the file in shared mode when it reads or writes to the file"). CPython's ``open()``
on Windows calls ``CreateFileW`` with ``FILE_SHARE_READ | FILE_SHARE_WRITE`` (``_wopen`` with
``_SH_DENYNO``), so reading never blocks Sierra Chart's writes, but it lacks
``FILE_SHARE_DELETE``: while the handle is open Sierra Chart could not delete or rename the file
(for example when the user deletes data or Sierra replaces a file). :func:`open_shared` therefore
opens with ``CreateFileW(GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)``
through ``ctypes`` and wraps the handle with ``msvcrt.open_osfhandle``; if that fails it falls
back to ``open()``. On other systems ``open()`` never blocks anyone. A deleted/replaced file is
noticed by comparing the path's file id with the open handle's and is reopened.

Threads and asyncio
-------------------
:meth:`SierraFollower.poll_once` does one bounded poll (a few ``stat``/``read`` calls) and calls
``on_events`` synchronously. :meth:`SierraFollower.run` is a coroutine for the GUI's qasync loop;
:meth:`SierraFollower.start` / :meth:`SierraFollower.stop` run the same loop on a daemon thread
(``on_events`` is then called on that thread: hand the arrays to a thread-safe queue).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from app.core.clock import SYSTEM_CLOCK, Clock
from app.feeds.depthfile import (
    DEPTH_HEADER_SIZE,
    DEPTH_RECORD_SIZE,
    FLAG_END_OF_BATCH,
    MINIMAL_HEADER_SIZE,
    DepthFileError,
    DepthStats,
    depth_file_date,
    depth_records_from_bytes,
    depth_records_to_events,
    parse_depth_header,
)
from app.core.events import Instrument
from app.feeds.scid import (
    SCID_HEADER_SIZE,
    SCID_RECORD_DTYPE,
    SCID_RECORD_SIZE,
    ScidError,
    parse_scid_header,
    scid_records_from_bytes,
    scid_to_events,
)

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.05


def open_shared(path: str | os.PathLike):
    """Open ``path`` for binary reading without blocking other processes (see module docstring).

    Returns
    -------
    file object (binary, unbuffered reads through ``readinto``/``read``)

    Raises
    ------
    FileNotFoundError, PermissionError
    """
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        try:
            import ctypes
            import msvcrt
            from ctypes import wintypes

            GENERIC_READ = 0x80000000
            SHARE_ALL = 0x1 | 0x2 | 0x4  # READ | WRITE | DELETE
            OPEN_EXISTING = 3
            FILE_ATTRIBUTE_NORMAL = 0x80
            create = ctypes.windll.kernel32.CreateFileW
            create.restype = wintypes.HANDLE
            create.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                               wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
            h = create(str(path), GENERIC_READ, SHARE_ALL, None, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, None)
            if h is None or h == wintypes.HANDLE(-1).value:
                err = ctypes.get_last_error() or ctypes.GetLastError()
                if err == 2 or err == 3:
                    raise FileNotFoundError(path)
                raise OSError(err, f"CreateFileW failed for {path}")
            fd = msvcrt.open_osfhandle(h, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            return os.fdopen(fd, "rb", buffering=0)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to the portable open
            log.debug("open_shared(%s): CreateFileW path failed (%s); using open()", path, exc)
    return open(path, "rb", buffering=0)


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class _Tail:
    """Whole-record tail of one file with a fixed header and record size."""

    def __init__(self, path: Path, kind: str, counters: dict, start_at_end: bool = False,
                 history: int = 0):
        self.path = path
        self.kind = kind  # "scid" | "depth"
        self.rec = SCID_RECORD_SIZE if kind == "scid" else DEPTH_RECORD_SIZE
        self.min_header = SCID_HEADER_SIZE if kind == "scid" else MINIMAL_HEADER_SIZE
        self.c = counters
        self.start_at_end = start_at_end
        self.history = history
        self.f = None
        self.fid = None
        self.header_size: int | None = None
        self.header_bytes = b""
        self.first_record = b""
        self.pos = 0
        self.last_size = -1
        self.last_dt: int | None = None  # scid: DateTime of the last delivered record
        self.restarted = False  # set by a restart; the owner clears it
        self.skip_until_dt: int | None = None  # scid: after a restart, skip records not newer
        self._bad_header_logged = False

    def close(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except OSError:
                pass
        self.f = None

    def _restart(self, why: str) -> None:
        log.warning("%s: %s; restarting from its header", self.path, why)
        self.c["restarts"] += 1
        self.restarted = True
        if self.kind == "scid" and self.last_dt is not None:
            self.skip_until_dt = self.last_dt
        self.close()
        self.fid = None
        self.header_size = None
        self.pos = 0
        self.last_size = -1
        self.start_at_end = False

    def _pread(self, off: int, n: int) -> bytes:
        self.f.seek(off)
        return self.f.read(n)

    def _open_and_header(self, size: int) -> bool:
        if self.f is None:
            try:
                self.f = open_shared(self.path)
            except FileNotFoundError:
                return False
            self.fid = _file_id(os.fstat(self.f.fileno()))
        if size < self.min_header:
            return False
        head = self._pread(0, max(self.min_header, SCID_HEADER_SIZE if self.kind == "scid" else DEPTH_HEADER_SIZE))
        try:
            if self.kind == "scid":
                h = parse_scid_header(head, str(self.path))
            else:
                h = parse_depth_header(head, str(self.path))
        except (ScidError, DepthFileError) as exc:
            if not self._bad_header_logged:
                log.error("%s", exc)
                self._bad_header_logged = True
                self.c["errors"] += 1
            return False
        self._bad_header_logged = False
        if size < h.header_size:
            return False
        self.header_size = h.header_size
        self.header_bytes = self._pread(0, h.header_size)
        self.first_record = b""
        whole = (size - h.header_size) // self.rec
        if self.kind == "scid" and self.last_dt is not None and whole:
            self.pos = self._seek_after_dt(self.last_dt, whole)
        elif self.start_at_end:
            self.pos = h.header_size + max(0, whole - self.history) * self.rec
        else:
            self.pos = h.header_size
        return True

    def _seek_after_dt(self, dt: int, n: int) -> int:
        """Byte position of the first scid record with DateTime > dt (binary search, whole records)."""
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            b = self._pread(self.header_size + mid * self.rec, 8)
            if len(b) < 8:
                hi = mid
                continue
            if int.from_bytes(b, "little", signed=True) <= dt:
                lo = mid + 1
            else:
                hi = mid
        return self.header_size + lo * self.rec

    def read(self) -> bytes | None:
        """Return the new whole records (bytes) or None; handles rewrite/truncation."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.header_size is not None:
                self._restart("file disappeared")
            self.start_at_end = False  # a file created later is read from its start
            return None
        except OSError as exc:
            self.c["errors"] += 1
            log.debug("stat %s: %s", self.path, exc)
            return None
        size = st.st_size
        if self.f is None and self.header_size is not None:  # closed by close(): reopen
            try:
                self.f = open_shared(self.path)
            except FileNotFoundError:
                return None
        if self.fid is not None and _file_id(st) != self.fid:
            self._restart("file was replaced")
        if self.header_size is not None and size < self.pos:
            self._restart(f"file shrank to {size} bytes (read position {self.pos})")
        if self.header_size is None:
            if not self._open_and_header(size):
                return None
        elif size != self.last_size and size >= self.header_size + self.rec:
            # cheap rewrite check: header and first record unchanged
            probe = self._pread(0, self.header_size + self.rec)
            if probe[: self.header_size] != self.header_bytes or (
                self.first_record and probe[self.header_size:] != self.first_record
            ):
                self._restart("header or first record changed (file rewritten)")
                if not self._open_and_header(size):
                    return None
        self.last_size = size
        avail = size - self.pos
        n = avail // self.rec
        if avail % self.rec:
            self.c["partial_waits"] += 1
        if n <= 0:
            return None
        data = self._pread(self.pos, n * self.rec)
        n = len(data) // self.rec
        if n == 0:
            return None
        data = data[: n * self.rec]
        if self.pos == self.header_size and not self.first_record:
            self.first_record = data[: self.rec]
        elif not self.first_record and size >= self.header_size + self.rec:
            self.first_record = self._pread(self.header_size, self.rec)
        self.pos += n * self.rec
        self.c["bytes_read"] += len(data)
        return data


def _warm_up(instrument: Instrument) -> None:
    """Compile (or load from the cache) the decoding kernels now, not during the first poll."""
    from app.feeds.depthfile import DEPTH_RECORD_DTYPE

    depth_records_to_events(np.zeros(1, dtype=DEPTH_RECORD_DTYPE), instrument)
    scid_to_events(np.zeros(1, dtype=SCID_RECORD_DTYPE), instrument)


class SierraFollower:
    """Follow one symbol's ``.scid`` and ``.depth`` files and deliver event arrays.

    Parameters
    ----------
    data_dir : path-like
        Sierra Chart's Data folder (``.scid`` there, ``.depth`` in ``MarketDepthData``).
    symbol : str
        Sierra Chart symbol, used verbatim in the file names.
    instrument : Instrument
        Tick size for price -> tick conversion.
    on_events : callable(np.ndarray) -> None
        Receives :data:`EVENT_DTYPE` arrays: depth arrays end at a batch end; trade/quote arrays
        come from ``.scid`` tick records. Called on the polling thread/loop.
    poll_s : float
        Poll interval in seconds (default 0.05).
    price_multiplier : float
        Sierra Chart's real-time price multiplier for the symbol.
    depth, scid : bool
        Which files to follow.
    scid_history : int
        ``.scid`` records before the end to deliver at start (0: only new trades).
    quotes : bool
        Emit ``KIND_QUOTE`` bid/ask events from ``.scid`` tick records.
    batch_hold_s : float
        Longest time an unfinished depth batch is held before it is delivered anyway.
    rollover_check_s : float
        Minimum time between directory listings looking for a newer depth day file.
    symbol_id : int
        Written into every delivered event's ``symbol_id``.
    size_multiplier : float
        Stored quantity / size_multiplier = size (1 for futures).
    clock : app.core.clock.Clock
        Monotonic clock of the timing rules: ``batch_hold_s``, ``rollover_check_s`` and the
        poll schedule of :meth:`run` / :meth:`start` (default the system clock). The loops'
        real waits are never longer than ``poll_s``, so with a
        :class:`~app.core.clock.ManualClock` they still poll every ``poll_s`` of real time
        while the hold and the listing interval follow the manual clock.

    Attributes
    ----------
    counters : dict
        ``polls``, ``scid_records``, ``depth_records``, ``events``, ``depth_batches``,
        ``deliveries``, ``restarts``, ``rollovers``, ``partial_waits``, ``errors``,
        ``bytes_read``, ``callback_errors``.
    depth_path, scid_path : Path or None
        Files followed now.
    """

    def __init__(self, data_dir, symbol: str, instrument: Instrument,
                 on_events: Callable[[np.ndarray], None], poll_s: float = DEFAULT_POLL_S,
                 price_multiplier: float = 1.0, depth: bool = True, scid: bool = True,
                 scid_history: int = 0, quotes: bool = True, batch_hold_s: float = 1.0,
                 rollover_check_s: float = 0.25, symbol_id: int = 0, size_multiplier: float = 1.0,
                 clock: Clock = SYSTEM_CLOCK):
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.depth_dir = self.data_dir / "MarketDepthData"
        self.symbol = symbol
        self.instrument = instrument
        self.on_events = on_events
        self.poll_s = float(poll_s)
        self.mult = float(price_multiplier)
        self.size_mult = float(size_multiplier)
        self.quotes = quotes
        self.batch_hold_s = batch_hold_s
        self.rollover_check_s = rollover_check_s
        self.symbol_id = symbol_id
        self.counters = dict(polls=0, scid_records=0, depth_records=0, events=0, depth_batches=0,
                             deliveries=0, restarts=0, rollovers=0, partial_waits=0, errors=0,
                             bytes_read=0, callback_errors=0)
        self.depth_stats = DepthStats()
        self._scid = _Tail(self.data_dir / f"{symbol}.scid", "scid", self.counters,
                           start_at_end=True, history=scid_history) if scid else None
        self._follow_depth = depth
        self._depth: _Tail | None = None
        self._depth_date: _dt.date | None = None
        self._last_listing: int | None = None  # clock ns of the last directory listing
        self._pending = b""  # raw records of an unfinished depth batch
        self._pending_since = 0  # clock ns when the held batch started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _warm_up(instrument)

    # ------------------------------------------------------------------ files

    @property
    def depth_path(self) -> Path | None:
        return self._depth.path if self._depth else None

    @property
    def scid_path(self) -> Path | None:
        return self._scid.path if self._scid else None

    def _depth_files(self) -> list[tuple[_dt.date, Path]]:
        try:
            names = os.listdir(self.depth_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for name in names:
            d = depth_file_date(name, self.symbol)
            if d is not None:
                out.append((d, self.depth_dir / name))
        out.sort()
        return out

    def _newer_depth_file(self, force: bool = False) -> tuple[_dt.date, Path] | None:
        """The next depth day file to follow, or None.

        At start (first listing) the newest day file; after that the oldest file dated after the
        current one (so files created while the follower was busy are never skipped).
        """
        now = self.clock.monotonic_ns()
        last = self._last_listing
        if not force and last is not None and now - last < self.rollover_check_s * 1e9:
            return None
        first = self._last_listing is None
        self._last_listing = now
        files = self._depth_files()
        if not files:
            return None
        if self._depth_date is None:
            return files[-1] if first else files[0]
        later = [f for f in files if f[0] > self._depth_date]
        return later[0] if later else None

    # ------------------------------------------------------------------ decoding

    def _deliver(self, ev: np.ndarray) -> None:
        if not len(ev):
            return
        if self.symbol_id:
            ev["symbol_id"] = self.symbol_id
        self.counters["events"] += len(ev)
        self.counters["deliveries"] += 1
        try:
            self.on_events(ev)
        except Exception:  # noqa: BLE001 - a consumer bug must not stop the tail
            self.counters["callback_errors"] += 1
            log.exception("on_events failed")

    def _read_depth(self) -> bytes | None:
        data = self._depth.read()
        if self._depth.restarted:  # the held unfinished batch belonged to the old content
            self._depth.restarted = False
            self._pending = b""
        return data

    def _depth_bytes(self, data: bytes) -> None:
        """Decode whole batches; keep the raw records of an unfinished batch for the next read.

        Decoding whole batches keeps batch-level properties right (``FLAG_SNAPSHOT`` of a batch
        that starts with a clear, an end flag moved off a NO_COMMAND record).
        """
        self.counters["depth_records"] += len(data) // DEPTH_RECORD_SIZE
        buf = self._pending + data if self._pending else data
        recs = depth_records_from_bytes(buf)
        ends = np.flatnonzero(recs["flags"] & FLAG_END_OF_BATCH)
        cut = int(ends[-1]) + 1 if len(ends) else 0
        if cut < len(recs) and (cut > 0 or not self._pending):
            self._pending_since = self.clock.monotonic_ns()
        self._pending = bytes(buf[cut * DEPTH_RECORD_SIZE:])
        if cut:
            self.counters["depth_batches"] += len(ends)
            self._deliver(depth_records_to_events(recs[:cut], self.instrument, self.mult, self.depth_stats,
                                                  size_multiplier=self.size_mult))

    def _flush_pending(self, force: bool = False) -> None:
        """Deliver an unfinished batch held longer than ``batch_hold_s`` (or at once with ``force``)."""
        if self._pending and (force or self.clock.monotonic_ns() - self._pending_since > round(self.batch_hold_s * 1e9)):
            recs = depth_records_from_bytes(self._pending)
            log.debug("delivering an unfinished depth batch of %d records", len(recs))
            self._pending = b""
            self._deliver(depth_records_to_events(recs, self.instrument, self.mult, self.depth_stats,
                                                  size_multiplier=self.size_mult))

    def _poll_depth(self) -> None:
        if self._depth is None:
            nf = self._newer_depth_file(force=self._last_listing is None)
            if nf is None:
                return
            self._depth_date, path = nf
            self._depth = _Tail(path, "depth", self.counters)
            log.info("following %s", path)
        data = self._read_depth()
        if data:
            self._depth_bytes(data)
            return
        nf = self._newer_depth_file()
        if nf is None:
            self._flush_pending()
            return
        # day change: drain the old file, then switch to the new one from its header
        while True:
            data = self._read_depth()
            if not data:
                break
            self._depth_bytes(data)
        self._flush_pending(force=True)
        self._depth.close()
        self._depth_date, path = nf
        log.info("depth day change: now following %s", path)
        self.counters["rollovers"] += 1
        self._depth = _Tail(path, "depth", self.counters)
        data = self._read_depth()
        if data:
            self._depth_bytes(data)

    def _poll_scid(self) -> None:
        data = self._scid.read()
        if not data:
            return
        recs = scid_records_from_bytes(data)
        skip = self._scid.skip_until_dt
        if skip is not None:  # catching up after a rewrite: deliver only records newer than before
            recs = recs[recs["dt"] > skip]
            if not len(recs):
                return
            self._scid.skip_until_dt = None
        self._scid.last_dt = int(recs["dt"][-1])
        self.counters["scid_records"] += len(recs)
        self._deliver(scid_to_events(np.asarray(recs, dtype=SCID_RECORD_DTYPE), self.instrument,
                                     self.mult, self.quotes, size_multiplier=self.size_mult))

    def poll_once(self) -> int:
        """One poll of every followed file; returns the number of events delivered."""
        with self._lock:
            before = self.counters["events"]
            self.counters["polls"] += 1
            if self._follow_depth:
                try:
                    self._poll_depth()
                except OSError as exc:
                    self.counters["errors"] += 1
                    log.warning("depth poll: %s", exc)
            if self._scid is not None:
                try:
                    self._poll_scid()
                except OSError as exc:
                    self.counters["errors"] += 1
                    log.warning("scid poll: %s", exc)
            return self.counters["events"] - before

    # ------------------------------------------------------------------ loops

    def _next_delay(self, t0: float, k: int) -> tuple[float, int]:
        """Real seconds to wait before poll ``k`` of a schedule started at ``t0`` (clock s), and
        the poll number: missed polls are skipped; never more than ``poll_s``."""
        now = self.clock.monotonic()
        delay = t0 + k * self.poll_s - now
        if delay < 0:  # fell behind: skip missed ticks
            k = int((now - t0) / self.poll_s) + 1
            delay = t0 + k * self.poll_s - now
        return min(self.poll_s, max(0.0, delay)), k

    async def run(self) -> None:
        """Poll until :meth:`stop` (coroutine for asyncio/qasync); files closed at the end."""
        self._stop.clear()
        t0 = self.clock.monotonic()
        k = 0
        try:
            while not self._stop.is_set():
                self.poll_once()
                delay, k = self._next_delay(t0, k + 1)
                await asyncio.sleep(delay)
        finally:
            self.close()

    def _thread_main(self) -> None:
        t0 = self.clock.monotonic()
        k = 0
        try:
            while not self._stop.is_set():
                self.poll_once()
                delay, k = self._next_delay(t0, k + 1)
                self._stop.wait(delay)
        finally:
            self.close()

    def start(self) -> None:
        """Poll on a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._thread_main, name=f"sierra-follow-{self.symbol}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the polling loop (thread or coroutine) and close the files."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Close open file handles (the follower can poll again later)."""
        with self._lock:
            if self._scid is not None:
                self._scid.close()
            if self._depth is not None:
                self._depth.close()
