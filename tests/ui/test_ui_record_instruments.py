"""Issue 17: the Record button with several instruments records every instrument's stream.

The real window on the real BTCUSDT / ETHUSDT pair of 2024-08-08 (both captures replayed by the
built-in DTC server on one market clock, an :class:`~app.live.instruments.InstrumentsRuntime`
with one pipeline each): Record writes one ``SYMBOL-YYYYmmdd-HHMMSS.mrec`` per instrument, each
holding its own instrument's events only; a file that cannot be started stops the others again
and names its symbol. Lighter fakes check the skipped instrument (source not started yet) and
the status bar's indicator.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("qasync")

pytestmark = pytest.mark.timeout(900)

BTC, ETH = "BTCUSDT", "ETHUSDT"
FILES = {BTC: "crypto/btcusdt_20240808.gz", ETH: "crypto/ethusdt_20240808.gz"}
NAME = re.compile(r"^(?P<sym>[A-Z]+)-(?P<stamp>\d{8}-\d{6})\.mrec$")


def _trade_range(rec) -> tuple[float, float]:
    """(min, max) traded price of a recording, price units."""
    from app.core.events import KIND_TRADE

    ev = rec.events
    px = ev["price"][ev["kind"] == KIND_TRADE].astype(np.float64) * float(rec.instrument.tick_size)
    return float(px.min()), float(px.max())


@pytest.fixture(scope="module")
def run(qapp, shared_data, tmp_path_factory):
    """Run the two-instrument window once: a recording of both, then a failed start of ETH's."""
    import os

    from app.cli.analyze import load_any
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow
    from qt_loop import close_window, run_on_qt, wait_until

    old_home = os.environ.get("MIA_ELITE_HOME")
    home = tmp_path_factory.mktemp("record-home")
    os.environ["MIA_ELITE_HOME"] = str(home)
    recs = {s: load_any(str(shared_data / f)) for s, f in FILES.items()}
    obs: dict = {"ranges": {s: _trade_range(r) for s, r in recs.items()}, "home": home}
    cfg = PipelineConfig(embedded=True, recording=[recs[BTC], recs[ETH]], speed=20.0, profile="production",
                         loop_replay=True)

    async def main():
        w = MainWindow(cfg, prefs=None)
        w.resize(1400, 900)
        w.show()
        await w.start()
        try:
            rt = w.runtime
            obs["runtime"] = rt is not None and rt.symbols
            obs["ready"] = await wait_until(
                lambda: rt is not None and len(rt.instruments) == 2
                and all(r.pipeline.instrument is not None and r.pipeline.events_in > 0 for r in rt.instruments), 300)
            if not obs["ready"]:
                return
            pls = {r.symbol: r.pipeline for r in rt.instruments}
            before = {s: pl.events_in for s, pl in pls.items()}
            w.act_record.setChecked(True)
            obs["paths"] = list(getattr(w, "recording_paths", []))
            obs["path"] = w.recording_path
            obs["recording"] = {s: pl.recorder is not None for s, pl in pls.items()}
            obs["indicator"] = w.recording_indicator.text()
            obs["flowed"] = await wait_until(lambda: all(pl.events_in > before[s] + 2000 for s, pl in pls.items()),
                                             120)
            n_entries = len(w.problems.entries)
            w.act_record.setChecked(False)
            obs["closed"] = [t for _lv, t in w.problems.entries[n_entries:] if "recording closed" in t]
            obs["stopped"] = {s: pl.recorder is None for s, pl in pls.items()}
            obs["indicator_after"] = w.recording_indicator.isVisible()
            # a failure in the second instrument's start: the first one's recording stops again
            rec_dir = home / "data" / "recordings"
            files_before = set(rec_dir.iterdir())

            def boom(path):
                raise OSError(f"No space left on device: {path}")

            pls[ETH].start_recording = boom
            n_entries = len(w.problems.entries)
            try:
                w.act_record.setChecked(True)
                obs["fail_checked"] = w.act_record.isChecked()
                obs["fail_recorders"] = {s: pl.recorder for s, pl in pls.items()}
                obs["fail_errors"] = [t for lv, t in w.problems.entries[n_entries:] if lv == "error"]
                obs["fail_new_files"] = sorted(p.name for p in set(rec_dir.iterdir()) - files_before)
                obs["fail_indicator"] = w.recording_indicator.isVisible()
            finally:
                del pls[ETH].start_recording
        finally:
            await close_window(w)

    try:
        run_on_qt(qapp, main)
    finally:
        if old_home is None:
            os.environ.pop("MIA_ELITE_HOME", None)
        else:
            os.environ["MIA_ELITE_HOME"] = old_home
    return obs


def test_record_writes_one_file_per_instrument_each_with_its_own_events(run):
    from app.core.events import KIND_TRADE
    from app.feeds.recording import read_recording

    assert run["runtime"] == [BTC, ETH]
    assert run["ready"], "the two instruments did not start streaming in time"
    paths = [Path(p) for p in run["paths"]]
    assert len(paths) == 2 and all(p.exists() for p in paths), run["paths"]
    assert run["path"] == paths[0]  # recording_path stays the first file
    assert run["recording"] == {BTC: True, ETH: True}
    names = [NAME.match(p.name) for p in paths]
    assert all(names), [p.name for p in paths]
    assert [m["sym"] for m in names] == [BTC, ETH] and names[0]["stamp"] == names[1]["stamp"]
    assert all(p.parent == run["home"] / "data" / "recordings" for p in paths)
    assert "2 files:" in run["indicator"] and all(p.name in run["indicator"] for p in paths)
    assert run["flowed"]
    assert run["stopped"] == {BTC: True, ETH: True} and not run["indicator_after"]
    # stopping reports each file's count
    assert len(run["closed"]) == 2
    for sym, p in zip((BTC, ETH), paths):
        rec = read_recording(p)
        assert rec.instrument.symbol == sym
        n = len(rec.events)
        assert n > 2000
        line = next(t for t in run["closed"] if str(p) in t)
        assert f"{n:,} events" in line
        # only its own instrument's events: every trade in its own price range, far from the other's
        px = rec.events["price"][rec.events["kind"] == KIND_TRADE].astype(np.float64) * float(rec.instrument.tick_size)
        lo, hi = run["ranges"][sym]
        assert len(px) and (px >= lo - 1e-6).all() and (px <= hi + 1e-6).all()
        other_lo, other_hi = run["ranges"][ETH if sym == BTC else BTC]
        assert not ((px >= other_lo) & (px <= other_hi)).any()


def test_a_failed_start_of_one_instrument_stops_the_others_and_names_it(run):
    assert run["ready"]
    assert run["fail_checked"] is False  # Record is off again
    assert run["fail_recorders"] == {BTC: None, ETH: None}  # BTC's recording, started first, was stopped
    assert len(run["fail_errors"]) == 1 and "cannot record ETHUSDT" in run["fail_errors"][0], run["fail_errors"]
    assert "No space left on device" in run["fail_errors"][0] and BTC in run["fail_errors"][0]
    assert run["fail_new_files"] == []  # nothing half-recorded is left behind
    assert not run["fail_indicator"]


class _FakePipeline:
    """What the window's Record code asks of a pipeline."""

    def __init__(self, symbol: str | None):
        self.instrument = types.SimpleNamespace(symbol=symbol) if symbol else None
        self.recorder = None
        self.on_problem = None

    def start_recording(self, path):
        self.recorder = Path(path)
        self.recorder.write_bytes(b"")
        return self.recorder

    def stop_recording(self):
        rec, self.recorder = self.recorder, None
        return None if rec is None else 7


def _fake_runtime(*symbols):
    return types.SimpleNamespace(instruments=[
        types.SimpleNamespace(symbol=s or f"SYM{k}", pipeline=_FakePipeline(s)) for k, s in enumerate(symbols)])


def test_an_instrument_whose_source_has_not_started_is_skipped_with_a_warning(qtbot):
    from app.core.clock import ManualClock
    from app.ui.main_window import MainWindow

    w = MainWindow(clock=ManualClock())
    qtbot.addWidget(w)
    w.show()
    try:
        rt = _fake_runtime("ESH4", None, "NQH4")
        w.runtime, w.pipeline = rt, rt.instruments[0].pipeline
        w.act_record.trigger()
        assert w.act_record.isChecked()
        assert [Path(p).name.split("-")[0] for p in w.recording_paths] == ["ESH4", "NQH4"]
        assert w.recording_path == w.recording_paths[0]
        warnings = [t for lv, t in w.problems.entries if lv == "warning"]
        assert any("SYM1" in t and "not recorded" in t for t in warnings), warnings
        assert not [t for lv, t in w.problems.entries if lv == "error"]
        ind = w.recording_indicator
        assert ind.isVisible() and "2 files:" in ind.text() and "ESH4-" in ind.text() and "NQH4-" in ind.text()
        assert all(str(p) in ind.toolTip() for p in w.recording_paths)
        w.act_record.trigger()
        assert [r.pipeline.recorder for r in rt.instruments] == [None, None, None]
        assert len([t for _lv, t in w.problems.entries if "recording closed: 7 events" in t]) == 2
        # none started: a warning and Record off, no error
        w.runtime = _fake_runtime(None, None)
        w.pipeline = w.runtime.instruments[0].pipeline
        w.act_record.trigger()
        assert not w.act_record.isChecked()
        assert "nothing to record yet" in w.problems.entries[-1][1]
        assert not [t for lv, t in w.problems.entries if lv == "error"]
    finally:
        w.runtime = w.pipeline = None  # the fakes have nothing to stop on close


def test_the_indicator_keeps_its_one_file_text(qtbot):
    from app.ui.status import RecordingIndicator

    ind = RecordingIndicator()
    qtbot.addWidget(ind)
    p = Path("/data/recordings/ESH4-20240808-120000.mrec")
    ind.start(p, 0.0)
    ind.tick(12.0)
    assert ind.text().endswith("REC 00:12  ESH4-20240808-120000.mrec") and "files" not in ind.text()
    assert ind.path == p and ind.paths == [p]
    q = Path("/data/recordings/NQH4-20240808-120000.mrec")
    ind.start([p, q], 0.0)
    ind.tick(12.0)
    assert "REC 00:12  2 files: ESH4-20240808-120000.mrec, NQH4-20240808-120000.mrec" in ind.text()
    assert ind.path == p and str(q) in ind.toolTip()
    ind.stop()
    assert ind.path is None and ind.paths == [] and not ind.isVisible()
