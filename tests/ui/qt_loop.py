"""Helpers of the window tests that run a real ``MainWindow`` on a qasync loop: run a coroutine
on the Qt loop, poll a condition (bounded), close a window and wait for it. Imported by the
``tests/ui`` modules (their folder is on ``sys.path``)."""

from __future__ import annotations

import asyncio
import time


def run_on_qt(qapp, coro_fn):
    """Run ``coro_fn()`` to completion on a fresh qasync loop over ``qapp``."""
    import qasync

    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return loop.run_until_complete(coro_fn())
    finally:
        asyncio.set_event_loop(None)


async def wait_until(pred, timeout):
    """Poll ``pred`` every 50 ms for at most ``timeout`` s; its last value."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def close_window(window):
    """Close ``window`` and wait (at most 30 s) for its ``sigClosed``."""
    closed = asyncio.get_running_loop().create_future()
    window.sigClosed.connect(lambda: closed.done() or closed.set_result(True))
    window.close()
    await asyncio.wait_for(closed, 30)
