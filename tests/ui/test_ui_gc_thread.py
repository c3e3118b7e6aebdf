"""The window collects reference cycles on the GUI thread, never on a worker thread."""

from __future__ import annotations

import gc
import threading
import weakref


class _Node:
    """A plain object in a reference cycle (what a Qt wrapper left in a cycle looks like to gc)."""


def test_a_cycle_dropped_on_the_gui_thread_is_collected_there_not_by_a_busy_worker(qapp, qtbot):
    from app.ui.main import make_app

    gc.enable()  # as a new process starts (the suite's conftest switches it off per test)
    app = make_app()
    assert app is qapp
    threads: list[int] = []
    node = _Node()
    node.me = node  # a cycle: only the cyclic collector frees it
    weakref.finalize(node, lambda: threads.append(threading.get_ident()))
    del node

    def busy():  # an engine-like worker that allocates many containers
        keep = [(i, [i]) for i in range(300_000)]
        busy.kept = len(keep)

    w = threading.Thread(target=busy)
    w.start()
    w.join()
    assert busy.kept == 300_000
    assert threads == [], "the worker thread ran the cyclic collector (and would destroy Qt objects there)"
    assert not gc.isenabled()
    more = [[i] for i in range(2_000)]  # past the first generation's threshold: the timer collects
    qtbot.waitUntil(lambda: bool(threads), timeout=5_000)  # its Qt timer, on the GUI thread
    assert len(more) == 2_000
    assert threads == [threading.get_ident()]
    assert threading.get_ident() == threading.main_thread().ident
