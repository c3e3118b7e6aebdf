"""``mia-elite --self-test [SECONDS] [--recording FILE]``: start the window on the built-in server and check it works.

Checks, after the first frame and the analysis running (a first run compiles the kernels) and SECONDS of replay of the
shipped real ES sample, or of ``--recording FILE`` (a ``.mrec``; paper mode, fast replay;
``--speed`` and ``--profile`` apply too):
frames arrive and are drawn, the heatmap holds liquidity, the ladder's inside market is a
valid (uncrossed) book, the VIX gauge shows a regime, no error was reported, and (when the
trading panel provides ``self_test()``) that the kill switch verifies flat in paper mode.
Prints one line per check and a summary; the exit code is 0 only when every check passed.
The window is closed cleanly at the end (every task and thread stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import tempfile


#: Longest wait for the first frame (a first run compiles the analysis kernels), seconds.
COMPILE_WAIT_S = 240.0


def _price_text(row: int, tick_size: float) -> str:
    """A ladder row (a price in rows of ``tick_size`` price units) as a price, e.g. 4809.75."""
    if row < 0:
        return "-"
    text = f"{float(tick_size):.9f}".rstrip("0")
    dec = len(text.split(".")[1]) if "." in text else 0
    return f"{row * tick_size:.{dec}f}"


def _checks(window) -> list[tuple[str, bool, str]]:
    out = []
    f = window.last_frame
    out.append(("frames drawn", window.frames_drawn > 0, f"{window.frames_drawn} frames"))
    if f is None:
        return out
    hm = window.heatmap.image_data()
    nz = int((hm > 0).sum()) if hm is not None else 0
    out.append(("heatmap has liquidity", nz > 0, f"{nz} non-empty cells of {0 if hm is None else hm.size}"))
    lb, la = window.ladder.best_bid, window.ladder.best_ask
    # (the sample's pre-open book is really crossed until 23:00 UTC, so only presence is checked)
    out.append(("ladder shows the engine's inside market",
                lb >= 0 and la >= 0 and (lb, la) == (f.best_bid, f.best_ask),
                f"{f.symbol} bid {_price_text(lb, f.tick_size)} ask {_price_text(la, f.tick_size)}"))
    eng = getattr(window.pipeline, "engine", None)
    out.append(("analysis running", bool(getattr(f, "analysis_ready", True)),
                f"kernels ready in {getattr(eng, 'compile_seconds', 0.0):.1f} s"))
    out.append(("VIX regime shown", bool(window.vix_gauge.regime), window.vix_gauge.summary_text()))
    errors = [t for lvl, t in window.problems.entries if lvl == "error"]
    out.append(("no error reported", not errors, errors[0].splitlines()[0] if errors else "none"))
    return out


async def _trading_check(window):
    tr = window.trading
    if tr is None:
        return ("kill switch verifies flat (paper)", False,
                f"trading panel not attached: {window.trading_error or 'unknown reason'}")
    fn = getattr(tr, "self_test", None)
    if fn is None and hasattr(tr, "kill") and hasattr(tr, "session"):
        try:
            await asyncio.wait_for(tr.kill("self-test"), 20.0)
        except Exception as exc:
            return ("kill switch verifies flat (paper)", False, repr(exc))
        res = tr.session.kill.last_result
        state = getattr(getattr(res, "state", None), "value", getattr(res, "state", None))
        return ("kill switch verifies flat (paper)", state == "verified_flat", f"kill switch result: {state}")
    if fn is None:
        return None
    try:
        res = fn()
        if inspect.isawaitable(res):
            res = await asyncio.wait_for(res, 20.0)
    except Exception as exc:
        return ("kill switch verifies flat (paper)", False, repr(exc))
    if isinstance(res, tuple):
        return ("kill switch verifies flat (paper)", bool(res[0]), str(res[1]) if len(res) > 1 else "")
    return ("kill switch verifies flat (paper)", bool(res), str(res))


def run(args: argparse.Namespace) -> int:
    """Run the self-test for ``args.self_test`` seconds; returns the exit code."""
    seconds = float(getattr(args, "self_test", 20.0) or 20.0)
    recording = getattr(args, "recording", None)
    if isinstance(recording, list):  # --recording is repeatable (the window's instruments); one here
        recording = recording[0] if recording else None
    if recording and not os.path.isfile(recording):
        print(f"self-test: recording not found: {recording}", file=sys.stderr)
        return 2
    from app.core import jit  # noqa: F401  (the user's kernel cache, chosen before the home is redirected)

    if not os.environ.get("MIA_ELITE_HOME"):
        # keep the user's settings and journal untouched
        os.environ["MIA_ELITE_HOME"] = tempfile.mkdtemp(prefix="mia-elite-selftest-")
    import qasync

    from app.ui.main import make_app, run_window
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    from app.ui.crash import install_excepthook
    from app.ui.splash import show_splash

    app = make_app()
    install_excepthook(app)
    splash = show_splash(app)
    # the server in its own process, as the window runs it: in a bundle this checks that the
    # frozen entry point starts the child (multiprocessing.freeze_support)
    cfg = PipelineConfig(embedded=True, speed=float(getattr(args, "speed", None) or 60.0), recording=recording,
                         replay_process=True)
    if getattr(args, "profile", None):
        cfg.profile = args.profile
    print(f"self-test on {recording or 'the shipped ES sample'}", flush=True)
    window = MainWindow(cfg, prefs=None)
    splash.follow(window)
    results: list = []

    async def main():
        async def check_then_close():
            # the first start compiles the numba kernels (cached afterwards) while the book is
            # drawn already: wait for the analysis to run too, bounded
            t_end = asyncio.get_running_loop().time() + COMPILE_WAIT_S

            def ready():
                eng = getattr(window.pipeline, "engine", None)
                f = window.last_frame
                return window.frames_drawn > 0 and (eng is None or eng.state == "error" or (
                    f is not None and f.analysis_ready) or getattr(eng, "compile_failed", False))

            while not ready() and asyncio.get_running_loop().time() < t_end:
                await asyncio.sleep(0.1)
            await asyncio.sleep(seconds)
            results.extend(_checks(window))
            tc = await _trading_check(window)
            if tc is not None:
                results.append(tc)
            window.close()

        def started(w):
            w.spawn(check_then_close())

        await run_window(window, on_started=started)

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
    ok = bool(results) and all(r[1] for r in results)
    for name, passed, detail in results:
        print(f"[{'PASS' if passed else 'FAIL'}] {name}: {detail}")
    print(f"self-test {'passed' if ok else 'FAILED'} ({len(results)} checks, {seconds:g} s)")
    sys.stdout.flush()
    return 0 if ok else 1
