"""GUI benchmark (``mia-elite bench gui``): the real window on a real recording at maximum speed.

For each recording (the shipped real CME ES sample; the real Binance BTCUSDT depth recording
when the Binance reader is present) the window runs offscreen (or on the display given) with
the built-in DTC server replaying at maximum speed in its own process
(:class:`app.live.replay_process.ReplayServerProcess`; ``--replay-server thread``: on a thread
and asyncio loop of the window's process, :class:`app.live.sources.ReplayServerThread`, the
design before stop 28) into the DTC client on the GUI thread, the engine
(profile with a 400-row heatmap, publishing at the display rate :data:`PUBLISH_INTERVAL_S`) and
the display timer (60 Hz). Figures:

Runs: ``es`` and ``btcusdt`` at maximum speed, and ``es_30x`` (the ES sample at 30x real time,
a fast but market-like pace the engine keeps up with). At maximum speed the replay loops, and a
pass lasts at least :attr:`app.sim.replay.ReplayClock.min_pass_s` (1 s), spread evenly over it:
the ES hour's 65,045 events come as a steady ~65 k events/s; the BTCUSDT capture (598,754
events) is longer than that, so the whole pipeline is saturated and the GUI thread (decode,
paper book, drawing) and the engine's queue bound frames and latency.

* ``gui.<rec>.frames_per_s``: frames drawn per second (target >= 55); baseline: frames the
  engine published per second in the same run (the most the GUI could draw).
* ``gui.<rec>.gui_busy_share``: CPU time of the GUI thread / wall time while drawing
  (``time.thread_time`` read on the GUI thread; the replay server's process, or thread with
  ``--replay-server thread``, is not counted: it is reported as ``server_busy_share`` beside it), target < 0.6; baseline: the same share in a
  first phase of the same run with drawing switched off (socket, decode and hand-off only).
* ``gui.<rec>.gui_cpu_ms_per_10k_events``: GUI-thread CPU milliseconds per 10,000 market events
  received while drawing (the work per event; on a loaded machine the busy share mostly shows
  how much CPU the thread got).
* ``gui.<rec>.latency_p99_ms``: p99 of (paint end of the first frame that contains a depth
  batch) - (the return of the socket read that brought the batch, before it was decoded:
  :attr:`app.dtc.client.DTCClient.last_read_ns`), target <= 25 ms; baseline: p99 of (engine
  publishes the frame) - (same arrival), i.e. the engine's share, so ``value - baseline`` is
  what the GUI adds. Data still queued in the server's output buffer or in the kernel's
  socket buffers before that read is not in it (before the maximum-speed pace, that queue held
  megabytes; with it, what the server sends is about what the engine applies).
* ``frames_per_s`` also carries ``flow_holds_per_s``: how often the pipeline's flow control
  held the replay because the engine was behind, and ``pace_eps``: the maximum-speed pace the
  pipeline had set on the replay at the end (events/s; :meth:`app.live.pipeline.Pipeline._pace`:
  "maximum speed" is as fast as the engine applies while the newest frame stays within two
  frames of the socket, so ``events_per_s`` beside the latency is the rate reached).

Several instruments (issue 17, ``mia-elite bench gui --symbols 1,2,4``; :func:`bench_gui_symbols`):
the same window with one panel per instrument, the built-in server replaying every recording on
one market clock at maximum speed, the split view (split 2 for two, split 4 for four). Sets:
``1`` = the ES hour (one panel, the single-instrument window); ``2`` = BTCUSDT + ETHUSDT (the
two real captures of 2024-08-08, the same minutes); ``4`` = ES + BTCUSDT + ETHUSDT + a second
copy of the ETHUSDT capture served under the symbol ``ETHUSDT.2`` (the repeat: a third crypto
stream of real size, its own engine and panel). Per visible panel:

* ``gui.symbols<N>.<SYM>.frames_per_s``: frames drawn on that panel per second (target >= 30
  with two instruments); baseline: frames that instrument's engine published per second in the
  same run (the most the panel could draw).
* ``gui.symbols<N>.<SYM>.latency_p99_ms``: p99 socket-read-to-paint of that instrument's depth
  batches (as ``gui.<rec>.latency_p99_ms``; target < 50 ms with two); baseline: p99 of
  socket-read-to-publish (the engine's share) in the same run.
* ``gui.symbols<N>.gui_busy_share``: GUI-thread CPU / wall while drawing all panels.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

HEATMAP_ROWS = 400
HEATMAP_COLS = 1000
MAX_SPEED = 0.0  # the server's "maximum speed"
#: Engine publish interval, seconds: the display rate (60 Hz), so frames are not capped below it.
PUBLISH_INTERVAL_S = 1.0 / 60.0


def _server_cpu_s(replay) -> float:
    """CPU seconds used so far by the built-in replay server: its child process (``replay.pid``,
    :class:`app.live.replay_process.ReplayServerProcess`) or its thread (``replay.thread_ident``,
    :class:`app.live.sources.ReplayServerThread`). Linux ``/proc``; NaN elsewhere or without one."""
    pid = getattr(replay, "pid", None)
    ident = getattr(replay, "thread_ident", None)
    if pid:
        path = f"/proc/{pid}/stat"
    elif ident is not None:
        import threading

        native = next((t.native_id for t in threading.enumerate() if t.ident == ident), None)
        path = f"/proc/self/task/{native}/stat"
    else:
        return float("nan")
    try:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return float("nan")


def _in_process(args) -> bool:
    """``--replay-server``: True (the default) runs the built-in server in its own process."""
    return (getattr(args, "replay_server", None) or "process") == "process"


async def _wait_analysis_ready(pipelines, timeout_s: float = 180.0) -> float:
    """Wait until every pipeline's engine runs its analyzers; returns the seconds waited.

    The window draws its first frame before the numba kernels are compiled (issue 18 item 5):
    they compile on the engine's ``mia-compile`` thread, which on the benchmark's fresh user
    folder takes about 10 s of CPU. Measuring before it ends would count the compile against the
    frame path (and against the window before issue 16, whose first frame came after it).
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        engines = [getattr(pl, "engine", None) for pl in pipelines]
        if engines and all(e is not None and e.analysis_ready for e in engines):
            break
        await asyncio.sleep(0.05)
    return time.perf_counter() - t0


def _recordings(quick: bool):
    from app.feeds.samples import load_default_sample

    yield "es", load_default_sample()
    try:
        from app.feeds.binance import read_binance_gz
    except ImportError:
        return
    p = _shared_data() / "crypto" / "btcusdt_20240808.gz"  # ../shared, or $MIA_ELITE_SHARED (a worktree)
    if p.exists():
        yield "btcusdt", read_binance_gz(p)


def _capacity(window, frames, seconds: float) -> tuple[float, float]:
    """Frames per second the window draws and paints when a new real frame is always ready.

    Cycles through ``frames`` (real frames captured in the run, pipeline stopped) calling the
    same ``draw_frame`` as the timer, then lets Qt run the paints that frame causes, as the
    window's event loop does (the heatmap, the delta pane, the ladder and the profile, each
    once: ``tests/ui/test_ui_one_paint.py``). Until this stop the loop also called
    ``repaint()`` on the heatmap and the ladder before that, which painted both twice per
    frame, once more than the window does.

    Returns
    -------
    (float, float)
        Frames per second, and the heatmap's paints per frame (1.0 when each frame is painted
        once, as in the window).
    """
    from PySide6 import QtCore, QtWidgets

    class PaintCount(QtCore.QObject):
        n = 0

        def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
            if ev.type() == QtCore.QEvent.Paint:
                self.n += 1
            return False

    if not frames:
        return float("nan"), float("nan")
    counter = PaintCount()
    window.heatmap.viewport().installEventFilter(counter)
    n = 0
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            window.draw_frame(frames[n % len(frames)])
            QtWidgets.QApplication.processEvents()
            n += 1
    finally:
        window.heatmap.viewport().removeEventFilter(counter)
    return n / (time.perf_counter() - t0), counter.n / max(n, 1)


async def _capture_frames(window, n: int, timeout_s: float) -> list:
    """Up to ``n`` frames the window draws next (within ``timeout_s``), for :func:`_capacity`.

    Taken after the measured phase, not during it: keeping 40 frames (about 5 MB each at
    1000x400) makes every new frame's arrays fresh pages, and the page faults of that second
    doubled the engine's frame copies and the latency p99 of the measurement.
    """
    frames: list = []
    draw = window.draw_frame

    def keep(f):
        frames.append(f)
        draw(f)

    window.draw_frame = keep
    t_end = time.perf_counter() + timeout_s
    try:
        while len(frames) < n and time.perf_counter() < t_end:
            await asyncio.sleep(0.02)
    finally:
        window.draw_frame = draw
    return frames[-n:]


async def _run_one(window, phase_s: float, total_s: float):
    """Phase 1 (no drawing) then phase 2 (drawing); returns measured dicts."""
    pl = window.pipeline
    pl.latency.enabled = False
    draw = window.draw_frame
    window.draw_frame = lambda f: None  # phase 1: take frames, draw nothing
    t0, c0 = time.perf_counter(), time.thread_time()
    await asyncio.sleep(phase_s)
    base_busy = (time.thread_time() - c0) / (time.perf_counter() - t0)
    window.draw_frame = draw
    pl.latency.reset()
    pl.latency.enabled = True
    f0, p0, e0 = window.frames_drawn, pl.slot.published, pl.events_in
    th0 = pl.throttle_count
    replay = getattr(pl.source, "replay", None)
    s0 = _server_cpu_s(replay)
    t0, c0 = time.perf_counter(), time.thread_time()
    deadline = t0 + total_s
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    wall = time.perf_counter() - t0
    busy = (time.thread_time() - c0) / wall
    server_busy = (_server_cpu_s(replay) - s0) / wall
    pl.latency.enabled = False
    frames = await _capture_frames(window, 40, 2.0)
    return {
        "fps": (window.frames_drawn - f0) / wall,
        "published_fps": (pl.slot.published - p0) / wall,
        "busy": busy,
        "server_busy": server_busy,
        "base_busy": base_busy,
        "lat": pl.latency.latencies_ms(),
        "wall": wall,
        "events_in": pl.events_in - e0,
        "throttles": pl.throttle_count - th0,
        "pace_eps": pl.pace_eps,
        "frames": frames,
        "draw_ms": np.array(list(window.draw_ms)[-(window.frames_drawn - f0):] if window.frames_drawn > f0 else []),
    }


def bench_gui(args):
    """Yield the GUI figures for each recording (see the module docstring)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    os.environ.setdefault("MIA_ELITE_HOME", tempfile.mkdtemp(prefix="mia-bench-"))
    import qasync

    from app.ui.main import make_app
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    quick = bool(getattr(args, "quick", False))
    app = make_app()
    out = []
    runs = [(name, rec, MAX_SPEED) for name, rec in _recordings(quick)]
    # the same window at a fast but market-like pace (the engine keeps up): the display's own latency
    runs.insert(1, ("es_30x", runs[0][1], 30.0))
    for name, rec, speed in runs:
        cfg = PipelineConfig(
            embedded=True,
            recording=rec,
            speed=speed,
            profile="production",
            profile_overrides={"engine.heatmap_rows": HEATMAP_ROWS},
            loop_replay=True,  # a continuous stream for the whole measurement
            engine_options={"window_cols": HEATMAP_COLS, "publish_interval_s": PUBLISH_INTERVAL_S},
            server_options={"max_batch": 256}, replay_process=_in_process(args),
        )
        window = MainWindow(cfg, prefs=None, display_hz=60.0)
        window.resize(1600, 1000)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def main():
            window.show()
            await window.start()
            # wait for the first frame (numba compile on a cold cache) before measuring
            t_end = time.perf_counter() + 120
            while window.frames_drawn == 0 and time.perf_counter() < t_end:
                await asyncio.sleep(0.05)
            compile_wait = await _wait_analysis_ready([window.pipeline])
            res = await _run_one(window, 2.0 if quick else 4.0, 10.0 if quick else 30.0)
            res["compile_wait_s"] = compile_wait
            await window.shutdown()
            res["capacity"], res["paints_per_frame"] = _capacity(window, res["frames"], 2.0 if quick else 5.0)
            window._closed = True
            window.close()
            return res

        try:
            with loop:
                res = loop.run_until_complete(main())
        finally:
            asyncio.set_event_loop(None)
        lat_paint, lat_pub = res["lat"]
        p99 = float(np.percentile(lat_paint, 99)) if lat_paint.size else float("nan")
        p99b = float(np.percentile(lat_pub, 99)) if lat_pub.size else float("nan")
        pref = f"gui.{name}"
        out += [
            {"name": f"{pref}.frames_per_s", "value": round(res["fps"], 2), "unit": "frames/s",
             "baseline": round(res["published_fps"], 2), "ratio": round(res["fps"] / res["published_fps"], 3)
             if res["published_fps"] else None, "target": ">= 55",
             "heatmap": f"{HEATMAP_COLS}x{HEATMAP_ROWS}", "replay_speed": "max" if speed <= 0 else speed,
             "publish_interval_s": round(PUBLISH_INTERVAL_S, 4),
             "flow_holds_per_s": round(res["throttles"] / res["wall"], 1),
             "pace_eps": round(res["pace_eps"]) if res.get("pace_eps") else None,
             "measured_after_compile_s": round(res["compile_wait_s"], 2)},
            {"name": f"{pref}.gui_busy_share", "value": round(res["busy"], 3), "unit": "fraction",
             "baseline": round(res["base_busy"], 3),
             "ratio": round(res["busy"] / res["base_busy"], 3) if res["base_busy"] else None, "target": "< 0.6",
             "server_busy_share": round(res["server_busy"], 3) if res["server_busy"] == res["server_busy"] else None,
             "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
            {"name": f"{pref}.gui_cpu_ms_per_10k_events", "value": round(res["busy"] * res["wall"] * 1e3
             / (res["events_in"] / 1e4), 2) if res["events_in"] else None, "unit": "ms", "baseline": None,
             "ratio": None, "target": None,
             "note": "GUI-thread CPU per 10,000 market events received (drawing included): less sensitive to "
                     "other processes than the busy share on a loaded machine"},
            {"name": f"{pref}.latency_p99_ms", "value": round(p99, 2), "unit": "ms", "baseline": round(p99b, 2),
             "ratio": round(p99 / p99b, 3) if p99b and p99b == p99b else None, "target": "<= 25",
             "samples": int(lat_paint.size), "median_ms": round(float(np.median(lat_paint)), 2)
             if lat_paint.size else None, "events_per_s": round(res["events_in"] / res["wall"], 1)},
            {"name": f"{pref}.draw_capacity_fps", "value": round(res["capacity"], 1), "unit": "frames/s",
             "baseline": round(res["published_fps"], 2), "ratio": round(res["capacity"] / res["published_fps"], 2)
             if res["published_fps"] else None, "target": ">= 30",
             "heatmap_paints_per_frame": round(res["paints_per_frame"], 2),
             "note": "draw of real frames of this run, one new frame each time, and the paints each causes"},
            {"name": f"{pref}.draw_ms_p99", "value": round(float(np.percentile(res["draw_ms"], 99)), 2)
             if res["draw_ms"].size else None, "unit": "ms", "baseline": None, "ratio": None, "target": "< 16",
             "median_ms": round(float(np.median(res["draw_ms"])), 2) if res["draw_ms"].size else None},
        ]
    return out


#: ``--symbols`` sets: count -> recordings by name (see the module docstring).
SYMBOL_SETS = {1: ("es",), 2: ("btcusdt", "ethusdt"), 4: ("es", "btcusdt", "ethusdt", "ethusdt.2")}


def _shared_data():
    from pathlib import Path

    base = os.environ.get("MIA_ELITE_SHARED", "")
    return (Path(base) if base else Path(__file__).resolve().parents[2].parent / "shared") / "data"


def _symbol_set(n: int, cache: dict):
    """The recordings of the ``n``-instrument set (:data:`SYMBOL_SETS`), loaded once.

    Raises
    ------
    ValueError
        ``n`` is not 1, 2 or 4.
    FileNotFoundError
        A crypto capture is missing from ``../shared/data/crypto`` (names it).
    """
    import dataclasses

    from app.feeds.samples import load_default_sample

    if n not in SYMBOL_SETS:
        raise ValueError(f"--symbols: {n} is not one of {', '.join(map(str, SYMBOL_SETS))}")
    out = []
    for name in SYMBOL_SETS[n]:
        if name not in cache:
            if name == "es":
                cache[name] = load_default_sample()
            elif name == "ethusdt.2":
                eth = _symbol_set_one("ethusdt", cache)
                cache[name] = dataclasses.replace(
                    eth, instrument=dataclasses.replace(eth.instrument, symbol=eth.instrument.symbol + ".2"))
            else:
                _symbol_set_one(name, cache)
        out.append(cache[name])
    return out


def _symbol_set_one(name: str, cache: dict):
    if name not in cache:
        from app.feeds.binance import read_binance_gz

        p = _shared_data() / "crypto" / f"{name}_20240808.gz"
        if not p.exists():
            raise FileNotFoundError(f"{p} not found (the real {name.upper()} capture of 2024-08-08)")
        cache[name] = read_binance_gz(p)
    return cache[name]


def parse_symbols(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``.

    Raises
    ------
    ValueError
        An entry that is not 1, 2 or 4 (names it).
    """
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) not in SYMBOL_SETS:
            raise ValueError(f"--symbols: {part!r} is not one of {', '.join(map(str, SYMBOL_SETS))}")
        out.append(int(part))
    if not out:
        raise ValueError("--symbols: give at least one count, e.g. 1,2,4")
    return out


def bench_gui_symbols(args):
    """The window with 1, 2 or 4 instruments at maximum speed (the module docstring); one figure
    list per count in ``args.symbols``."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    os.environ.setdefault("MIA_ELITE_HOME", tempfile.mkdtemp(prefix="mia-bench-"))
    import qasync

    from app.live.pipeline import PipelineConfig
    from app.ui.main import make_app
    from app.ui.main_window import MainWindow

    quick = bool(getattr(args, "quick", False))
    counts = parse_symbols(getattr(args, "symbols", "") or "1,2,4")
    warm_s, measure_s = (2.0, 8.0) if quick else (4.0, 20.0)
    app = make_app()
    cache: dict = {}
    out = []
    for n in counts:
        recs = _symbol_set(n, cache)
        cfg = PipelineConfig(
            embedded=True, recording=recs if n > 1 else recs[0], speed=MAX_SPEED, profile="production",
            profile_overrides={"engine.heatmap_rows": HEATMAP_ROWS}, loop_replay=True,
            engine_options={"window_cols": HEATMAP_COLS, "publish_interval_s": PUBLISH_INTERVAL_S},
            server_options={"max_batch": 256}, replay_process=_in_process(args))
        window = MainWindow(cfg, prefs=None, display_hz=60.0)
        window.resize(1600, 1000)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def main(window=window, n=n):
            window.show()
            await window.start()
            window.set_panel_layout("split4" if n > 2 else "split2")
            t_end = time.perf_counter() + 180  # a cold numba cache compiles first
            while time.perf_counter() < t_end and not (
                    len(window.panels) == n and all(p.frames_drawn > 0 for p in window.panels)):
                await asyncio.sleep(0.05)
            panels = list(window.panels)
            pls = [p.pipeline if window.runtime is not None else window.pipeline for p in panels]
            await _wait_analysis_ready(pls)
            await asyncio.sleep(warm_s)
            for pl in pls:
                pl.latency.reset()
                pl.latency.enabled = True
            f0 = [p.frames_drawn for p in panels]
            pub0 = [pl.slot.published for pl in pls]
            ev0 = [pl.events_in for pl in pls]
            t0, c0 = time.perf_counter(), time.thread_time()
            await asyncio.sleep(measure_s)
            wall = time.perf_counter() - t0
            busy = (time.thread_time() - c0) / wall
            for pl in pls:
                pl.latency.enabled = False
            res = {"wall": wall, "busy": busy, "panels": []}
            for k, (p, pl) in enumerate(zip(panels, pls)):
                res["panels"].append({"symbol": p.symbol, "fps": (p.frames_drawn - f0[k]) / wall,
                                      "published_fps": (pl.slot.published - pub0[k]) / wall,
                                      "events_per_s": (pl.events_in - ev0[k]) / wall,
                                      "lat": pl.latency.latencies_ms(), "visible": p.isVisible(),
                                      "pace_eps": pl.pace_eps, "pace_changes": pl.pace_changes,
                                      "holds": pl.throttle_count})
            await window.shutdown()
            window._closed = True
            window.close()
            return res

        try:
            with loop:
                res = loop.run_until_complete(main())
        finally:
            asyncio.set_event_loop(None)
        load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        pref = f"gui.symbols{n}"
        for pr in res["panels"]:
            lat_paint, lat_pub = pr["lat"]
            p99 = float(np.percentile(lat_paint, 99)) if lat_paint.size else float("nan")
            p99b = float(np.percentile(lat_pub, 99)) if lat_pub.size else float("nan")
            out += [
                {"name": f"{pref}.{pr['symbol']}.frames_per_s", "value": round(pr["fps"], 2), "unit": "frames/s",
                 "baseline": round(pr["published_fps"], 2),
                 "ratio": round(pr["fps"] / pr["published_fps"], 3) if pr["published_fps"] else None,
                 "target": ">= 30" if n == 2 else None, "visible": pr["visible"], "replay_speed": "max",
                 "layout": "split4" if n > 2 else ("split2" if n == 2 else "single"),
                 "events_per_s": round(pr["events_per_s"], 1), "load_avg_1min": load,
                 "pace_eps": round(pr["pace_eps"]) if pr["pace_eps"] else None,
                 "pace_changes": pr["pace_changes"], "flow_holds": pr["holds"]},
                {"name": f"{pref}.{pr['symbol']}.latency_p99_ms", "value": round(p99, 2), "unit": "ms",
                 "baseline": round(p99b, 2), "ratio": round(p99 / p99b, 3) if p99b and p99b == p99b else None,
                 "target": "< 50" if n == 2 else None, "samples": int(lat_paint.size),
                 "median_ms": round(float(np.median(lat_paint)), 2) if lat_paint.size else None},
            ]
        out.append({"name": f"{pref}.gui_busy_share", "value": round(res["busy"], 3), "unit": "fraction",
                    "baseline": None, "ratio": None, "target": None, "panels": len(res["panels"]),
                    "load_avg_1min": load})
    return out


def _bench_gui_dispatch(args):
    """``bench gui``: the per-recording figures, or with ``--symbols`` the several-instrument ones."""
    if getattr(args, "symbols", None):
        return bench_gui_symbols(args)
    return bench_gui(args)


BENCHMARKS = {"gui": _bench_gui_dispatch}
