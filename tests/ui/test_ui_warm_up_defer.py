"""Issue 18 item 5: the start-up compiles wait for the first frame (they hold the interpreter
lock and slowed the GUI thread's way to it about twofold), then run and switch the fast paths on."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("pytestqt")


@pytest.fixture()
def fresh_warm_up(monkeypatch):
    """The warm-up's process-wide state as in a new process; pyqtgraph's option put back after."""
    import pyqtgraph as pg

    from app.dtc import batch
    from app.ui import splash

    monkeypatch.setattr(splash, "FIRST_FRAME", threading.Event())
    monkeypatch.setattr(splash, "_defer", threading.Event())
    monkeypatch.setattr(batch, "_warm", None)
    before = pg.getConfigOption("useNumba")
    yield splash, batch, pg
    pg.setConfigOptions(useNumba=before)


def test_nothing_waits_without_a_warm_up(fresh_warm_up):
    splash, batch, _pg = fresh_warm_up
    assert splash.wait_first_frame(timeout_s=600)  # returns at once: nothing was deferred
    assert batch.batch_path_ready()


def test_compiles_wait_for_the_first_frame_then_switch_the_fast_paths_on(fresh_warm_up):
    splash, batch, pg = fresh_warm_up
    import app.ui.heatmap  # noqa: F401  (turns useNumba on, as in the window)

    assert pg.getConfigOption("useNumba")
    done = splash.start_window_warm_up()
    # before the first frame: the NumPy rescale and the per-message decode, nothing compiled
    assert not pg.getConfigOption("useNumba")
    assert not batch.batch_path_ready()
    assert not done.is_set()
    splash.FIRST_FRAME.set()  # the splash sets it when the first frame with data is drawn
    assert done.wait(600), "the pyqtgraph warm-up did not finish"
    assert pg.getConfigOption("useNumba")
    assert batch._warm.wait(600), "the DTC decode warm-up did not finish"
    assert batch.batch_path_ready()


def test_the_wait_ends_after_its_time_out(fresh_warm_up):
    splash, _batch, _pg = fresh_warm_up
    splash._defer.set()
    assert splash.wait_first_frame(timeout_s=0.0) is False  # no first frame: the caller goes on
