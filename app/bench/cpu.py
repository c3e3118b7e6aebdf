"""CPU budget beside Sierra Chart (``mia-elite bench cpu``): the app's CPU and memory while the
busiest real minute streams in at 1x, 10x and 100x.

A trader runs MIA Elite on the PC that runs Sierra Chart, so every percent it uses comes out of
Sierra Chart's budget at the moments that matter (a data release, the open). This benchmark
measures the whole app as a user runs it, from the outside:

1. The busiest minute of each real recording (the shipped ES hour; the BTCUSDT capture of
   ``../shared/data/crypto`` when present): the 60 s of market time holding the most events,
   starting at a batch end, preceded by the book at that moment as a snapshot (an ``OP_CLEAR``
   and one ``OP_SET`` per level, :meth:`app.market.refbook.ReferenceBook.snapshot_events`),
   written as a ``.mrec`` recording.
2. The built-in DTC server replays it in a process of its own (``mia-elite serve <minute.mrec>
   --speed S --loop``): it stands where Sierra Chart's DTC server stands, so its CPU is not the
   app's; it is printed beside it.
3. The app (``mia-elite gui --host 127.0.0.1 --port P``: DTC client, pipeline, analysis engine
   thread, window; offscreen Qt) connects to it as to Sierra Chart, in a fresh user folder
   (``MIA_ELITE_HOME``), with the numba cache of this process (``NUMBA_CACHE_DIR``) so kernels
   load instead of compiling.
4. After its log says ``first frame drawn``, then ``analysis engine ready`` (the kernels load
   or compile after the first frame) and ``settle_s`` more seconds, its process CPU
   time (user + system, all threads: GUI, engine, asyncio I/O; psutil ``cpu_times``) and RSS
   are sampled for ``measure_s`` seconds of wall time (the minute loops, so the stream never
   pauses). ``cpu_pct`` is CPU seconds / wall seconds x 100: percent of ONE core (100 = one
   core busy). The app starts no child processes: ``cpu_pct`` excludes children,
   ``cpu_pct_with_children`` adds the times of waited-for children (psutil
   ``children_user/children_system``), which is the same number unless it ever does.

Figures per recording and speed: ``cpu.<rec>.<S>x.cpu_pct`` (target at 10x: < 10 % of one
core), with ``rss_mb`` (at the end of the window), ``rss_peak_mb``, ``server_cpu_pct`` (the
replay server's process, the stand-in for Sierra Chart), ``events_per_s`` (the minute's events x
speed / 60) and ``load_avg_1min`` (other processes share the machine: figures from a loaded
machine are upper bounds). ``baseline`` is the app's CPU at 1x in the same run (``ratio``: how
CPU grows with the rate).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.core.events import EVENT_DTYPE, FLAG_BATCH_END, FLAG_SNAPSHOT, KIND_DEPTH, OP_CLEAR

#: Market time of the window, ns (one minute).
MINUTE_NS = 60 * 10**9
SPEEDS = (1.0, 10.0, 100.0)
_CLI = "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))"


def busiest_minute(events: np.ndarray, window_ns: int = MINUTE_NS) -> tuple[np.ndarray, int, int]:
    """The ``window_ns`` of market time holding the most events, as a replayable stream.

    Parameters
    ----------
    events : numpy.ndarray, dtype EVENT_DTYPE
        A whole recording, time order, starting with its snapshot (if any).
    window_ns : int
        Window length, ns.

    Returns
    -------
    stream : numpy.ndarray, dtype EVENT_DTYPE
        ``OP_CLEAR`` + the book at the window's start (``FLAG_SNAPSHOT``, the last also
        ``FLAG_BATCH_END``), then the window's events unchanged.
    first, count : int
        Index in ``events`` of the window's first event, and its number of events.

    Raises
    ------
    ValueError
        If ``events`` holds no event after its snapshot.
    """
    from app.market.refbook import ReferenceBook

    live = np.flatnonzero((events["flags"] & FLAG_SNAPSHOT) == 0)
    if not len(live):
        raise ValueError("busiest_minute: the recording holds no event after its snapshot")
    ts = events["ts"]
    t = ts[live[0]:]
    counts = np.searchsorted(t, t + window_ns, side="left") - np.arange(len(t))
    start = live[0] + int(np.argmax(counts))
    ends = np.flatnonzero(events["flags"][:start] & FLAG_BATCH_END)
    if len(ends):  # start on a whole exchange event
        start = int(ends[-1]) + 1
    stop = int(np.searchsorted(ts, ts[start] + window_ns, side="left"))
    book = ReferenceBook()
    book.apply(events[:start])
    clear = np.zeros(1, EVENT_DTYPE)
    clear["ts"], clear["kind"], clear["op"], clear["flags"] = ts[start], KIND_DEPTH, OP_CLEAR, FLAG_SNAPSHOT
    snap = book.snapshot_events(int(ts[start]), FLAG_SNAPSHOT)
    head = np.concatenate([clear, snap])
    head["flags"][-1] |= FLAG_BATCH_END
    return np.concatenate([head, events[start:stop]]), start, stop - start


def _shared_file(rel: str) -> Path | None:
    """``shared/<rel>`` in the nearest folder above the repository that has it, else ``None``.

    The repository's ``../shared`` in a plain checkout; a git worktree one level deeper
    (``wt/<name>``) finds the same folder one level further up.
    """
    for up in Path(__file__).resolve().parents[2].parents:
        p = up / "shared" / rel
        if p.exists():
            return p
    return None


def _recordings():
    from app.feeds.samples import load_default_sample

    yield "es", load_default_sample()
    p = _shared_file("data/crypto/btcusdt_20240808.gz")
    if p is not None:
        from app.feeds.binance import read_binance_gz

        yield "btcusdt", read_binance_gz(p)


class _Lines(threading.Thread):
    """Reads a child's output; remembers the lines and when a pattern first appeared."""

    def __init__(self, stream, patterns: dict[str, str]):
        super().__init__(daemon=True)
        self.stream, self.patterns = stream, {k: re.compile(v) for k, v in patterns.items()}
        self.found: dict[str, re.Match] = {}
        self.tail: list[str] = []
        self.event = threading.Event()

    def run(self):
        for line in iter(self.stream.readline, ""):
            self.tail = (self.tail + [line.rstrip()])[-40:]
            for k, rx in self.patterns.items():
                m = rx.search(line)
                if m and k not in self.found:
                    self.found[k] = m
                    self.event.set()


def _wait(lines: _Lines, key: str, proc, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while key not in lines.found:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before '{key}': " + " | ".join(lines.tail[-5:]))
        if time.monotonic() > end:
            raise RuntimeError(f"no '{key}' within {timeout:.0f} s: " + " | ".join(lines.tail[-5:]))
        lines.event.wait(0.2)
        lines.event.clear()
    return lines.found[key]


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_BREAK_EVENT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def measure_app(mrec: Path, rec, speed: float, measure_s: float, settle_s: float, home: Path,
                root: Path | None = None) -> dict:
    """Run the server and the app on ``mrec`` at ``speed``; return the measured figures.

    Parameters
    ----------
    mrec : Path
        The minute recording (``.mrec``).
    rec : Recording
        Its instrument (symbol, tick size, tick value).
    speed : float
        Replay speed (1 = real time).
    measure_s, settle_s : float
        Seconds of wall time measured, and waited after the first frame before that.
    home : Path
        A fresh user folder for the app.
    root : Path, optional
        Source tree the server and the app run from (its ``app`` package first on
        ``PYTHONPATH``); default this one. Another checkout gives a same-run baseline of
        other code.

    Returns
    -------
    dict
        ``cpu_pct``, ``cpu_pct_with_children``, ``rss_mb``, ``rss_peak_mb``, ``server_cpu_pct``,
        ``wall_s``, ``first_frame_s``.

    Raises
    ------
    RuntimeError
        If the server or the app exits early or does not start within its time-out.
    """
    import psutil

    from app.core.jit import CACHE_DIR

    env = dict(os.environ, MIA_ELITE_HOME=str(home), NUMBA_CACHE_DIR=str(CACHE_DIR), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(root or Path(__file__).resolve().parents[2])]
                                          + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if os.name == "nt":
        kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    srv = subprocess.Popen([sys.executable, "-c", _CLI, "serve", str(mrec), "--port", "0", "--speed", repr(speed),
                            "--loop"], **kw)
    app = None
    try:
        sl = _Lines(srv.stdout, {"port": r"DTC server on [\d.]+:(\d+)"})
        sl.start()
        port = _wait(sl, "port", srv, 120).group(1)
        inst = rec.instrument
        app = subprocess.Popen([sys.executable, "-c", _CLI, "gui", "--host", "127.0.0.1", "--port", port,
                                "--symbol", inst.symbol, "--tick-size", repr(inst.tick_size),
                                "--tick-value", repr(inst.tick_value)], **kw)
        al = _Lines(app.stdout, {"frame": r"first frame drawn ([\d.]+) s", "ready": r"analysis engine ready"})
        al.start()
        first = float(_wait(al, "frame", app, 240).group(1))
        # the kernels load (or compile) after the first frame: measure the running app, not that
        _wait(al, "ready", app, 600)
        time.sleep(settle_s)
        pa, ps = psutil.Process(app.pid), psutil.Process(srv.pid)
        a0, s0, w0 = pa.cpu_times(), ps.cpu_times(), time.perf_counter()
        peak = 0
        while time.perf_counter() - w0 < measure_s:
            if app.poll() is not None:
                raise RuntimeError(f"the app exited ({app.returncode}) while measured: " + " | ".join(al.tail[-5:]))
            peak = max(peak, pa.memory_info().rss)
            time.sleep(0.25)
        a1, s1, w1 = pa.cpu_times(), ps.cpu_times(), time.perf_counter()
        rss = pa.memory_info().rss
        wall = w1 - w0
        own = (a1.user - a0.user) + (a1.system - a0.system)
        kids = (a1.children_user - a0.children_user) + (a1.children_system - a0.children_system)
        srv_cpu = (s1.user - s0.user) + (s1.system - s0.system)
        return {"cpu_pct": 100 * own / wall, "cpu_pct_with_children": 100 * (own + kids) / wall,
                "rss_mb": rss / 1e6, "rss_peak_mb": max(peak, rss) / 1e6, "server_cpu_pct": 100 * srv_cpu / wall,
                "wall_s": wall, "first_frame_s": first}
    finally:
        if app is not None:
            _stop(app)
        _stop(srv)


def bench_cpu(args):
    quick = bool(getattr(args, "quick", False))
    measure_s, settle_s = (8.0, 3.0) if quick else (30.0, 5.0)
    from app.feeds.recording import Recording, write_recording

    with tempfile.TemporaryDirectory(prefix="mia-bench-cpu-") as d:
        for name, rec in _recordings():
            stream, _first, count = busiest_minute(rec.events)
            mrec = Path(d) / f"{name}_busiest_minute.mrec"
            write_recording(mrec, Recording(rec.instrument, stream, source=f"busiest minute of {rec.source}"))
            base = None
            for speed in SPEEDS:
                home = Path(d) / f"home-{name}-{speed:g}"
                home.mkdir()
                r = measure_app(mrec, rec, speed, measure_s, settle_s, home)
                base = r["cpu_pct"] if base is None else base
                yield {"name": f"cpu.{name}.{speed:g}x.cpu_pct", "value": round(r["cpu_pct"], 1),
                       "unit": "% of one core", "baseline": round(base, 1),
                       "ratio": round(r["cpu_pct"] / base, 2) if base else None,
                       "target": "< 10 at 10x" if speed == 10 else None,
                       "cpu_pct_with_children": round(r["cpu_pct_with_children"], 1),
                       "children": "excluded in value (the app starts none); included in cpu_pct_with_children",
                       "rss_mb": round(r["rss_mb"], 1), "rss_peak_mb": round(r["rss_peak_mb"], 1),
                       "server_cpu_pct": round(r["server_cpu_pct"], 1),
                       "server": "built-in DTC server in its own process (the stand-in for Sierra Chart), not counted",
                       "events_in_minute": int(count), "events_per_s": round(count * speed / 60, 1),
                       "measured_s": round(r["wall_s"], 1), "first_frame_s": round(r["first_frame_s"], 1),
                       "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


BENCHMARKS = {"cpu": bench_cpu}
