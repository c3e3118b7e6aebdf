"""The window on other sources: an external DTC server that rejects a symbol, and Sierra Chart's
own data files (written here from the real ES sample by the converter)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

from qt_loop import close_window, run_on_qt, wait_until  # noqa: E402




def test_rejected_symbol_says_what_to_do_and_offers_sierra_files(qapp):
    """A DTC server that does not carry the symbol answers MARKET_DATA_REJECT: the window says so,
    names the Sierra Chart setting, and offers to switch the symbol to Sierra Chart's files."""
    from app.sim.server import DTCServer
    from app.feeds.samples import load_default_sample
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    out = {}

    async def main():
        server = DTCServer(load_default_sample(), host="127.0.0.1", port=0, speed=1.0, paused=True)
        await server.start()
        try:
            cfg = PipelineConfig(embedded=False, host="127.0.0.1", port=server.port, symbol="ESZ25_FUT_CME",
                                 tick_size=0.25, tick_value=12.5)
            w = MainWindow(cfg, prefs=None)
            w.show()
            await w.start()
            await wait_until(lambda: not w.problem_banner.isHidden(), 20)
            out["banner"] = w.problem_banner.text
            out["action_visible"] = w.problem_banner.action_button.isVisible()
            out["action_text"] = w.problem_banner.action_button.text()
            out["states"] = dict(w.pipeline.states)
            out["mode"] = w.mode_banner.text()
            out["log"] = [t for lvl, t in w.problems.entries if lvl == "error"]
            await close_window(w)
        finally:
            await server.stop()

    run_on_qt(qapp, main)
    assert "ESZ25_FUT_CME" in out["banner"] and "rejected" in out["banner"]
    assert out["action_visible"] and "Sierra Chart data files" in out["action_text"]
    assert "rejected" in out["states"].values()
    full = out["log"][0]
    assert "Record Market Depth Data" in full  # the exact Sierra Chart setting to turn on
    assert "PAPER MODE" in out["mode"]


def test_window_reads_sierra_chart_files(qapp, tmp_path):
    """Data source 'Sierra Chart data files': the real ES hour written as a Sierra Data folder
    (MarketDepthData/<symbol>.<date>.depth and <symbol>.scid) is followed and drawn; the ladder's
    inside market equals the book of the depth file."""
    from app.cli.convert import write_outputs
    from app.feeds.depthfile import read_depth_events
    from app.market.refbook import ReferenceBook
    from app.feeds.samples import load_default_sample
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    rec = load_default_sample()
    data = tmp_path / "Data"
    data.mkdir()
    files = write_outputs(rec, data, ["depth", "scid"])
    depth_files = sorted(p for p in files if p.suffix == ".depth")
    assert depth_files
    book = ReferenceBook()
    book.apply(read_depth_events(depth_files[-1], rec.instrument))
    inst = rec.instrument
    out = {}
    # The trading session reads "now" from the window's injected clock: the stale-data rule
    # cannot refuse the paper order because the test machine was slow to get there (it did,
    # on the system clock, under load: the followed file ends, and 5 s later data is stale).
    from app.core.clock import ManualClock

    clock = ManualClock(time_ns=1_704_205_800_000_000_000)  # Tue 2024-01-02 14:30 UTC, inside trading hours

    async def main():
        cfg = PipelineConfig(embedded=False, data_source="sierra_files", sierra_data_dir=str(data),
                             symbol=inst.symbol, tick_size=inst.tick_size, tick_value=inst.tick_value)
        w = MainWindow(cfg, prefs=None, clock=clock)
        w.show()
        await w.start()
        ok = await wait_until(lambda: w.last_frame is not None and w.last_frame.best_bid >= 0
                         and (w.ladder.best_bid, w.ladder.best_ask) == (book.best_bid(), book.best_ask()), 240)
        out["ok"] = ok
        out["ladder"] = (w.ladder.best_bid, w.ladder.best_ask)
        img = w.heatmap.image_data()
        out["nonzero"] = int((img > 0).sum()) if img is not None else 0
        out["states"] = dict(w.pipeline.states)
        out["mode"] = w.mode_banner.text()
        out["source"] = w.pipeline.source.status
        await _trade_on_the_stream(w, inst.symbol, out)
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["ok"], (out["ladder"], (book.best_bid(), book.best_ask()))
    assert out["nonzero"] > 0
    assert "following" in out["states"].values()
    assert out["source"].kind == "sierra_files" and out["source"].state == "following"
    assert "Sierra Chart's data files" in out["mode"]
    # trading hears the Sierra-files stream through the pipeline's fan-out
    assert out["market"] == (book.best_bid(), book.best_ask()), out["market"]
    assert out["fed"]
    assert out["clock"] is clock, "the trading session must read the window's clock, not the system's"
    assert out["filled"], "the paper market order was not filled against the Sierra-files book"
    assert out["stale_now"] == "" and out["stale_later"] == "stale_data"
    assert out["flat"]


async def _trade_on_the_stream(w, sym, out):
    """Paper fills and the stale-data rule of the window's trading session on the current source."""
    from app.trading.killswitch import KillState
    from app.core.orders import OrderType
    from app.trading.orders import OrderTicket

    out["attached"] = await wait_until(lambda: w.trading is not None and w.trading.session._started, 30)
    s = w.trading.session
    out["clock"] = s.clock
    m = s.market.get(sym)
    out["fed"] = m is not None and m.last_data_ns > 0
    if not out["fed"]:
        out.update(market=None, filled=False, stale_now=None, stale_later=None, flat=False)
        return
    out["market"] = (m.best_bid, m.best_ask)
    d = await s.confirm(OrderTicket(sym, 1, 1, OrderType.MARKET, None, m.best_ask - 20, m.best_ask + 40, ref_price=m.best_ask))
    out["decision"] = d.message
    out["filled"] = await wait_until(lambda: s.broker.position_qty(sym) == 1, 10)
    # the market is fresh now; with no data for longer than stale_kill_s the kill switch fires
    out["stale_now"] = s.check_triggers(t_ns=m.last_data_ns + 1_000_000)
    out["stale_later"] = s.check_triggers(t_ns=m.last_data_ns + int((s.settings.stale_kill_s + 1) * 1e9))
    out["flat"] = await wait_until(lambda: s.kill.state == KillState.VERIFIED_FLAT and s.broker.position_qty(sym) == 0, 20)


def test_dropped_connection_is_shown_with_what_to_do(qapp):
    """The external DTC server goes away mid-stream: the status shows the state and the banner
    says the app reconnects and what to check."""
    from app.sim.server import DTCServer
    from app.feeds.samples import load_default_sample
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    out = {}

    async def main():
        rec = load_default_sample()
        server = DTCServer(rec, host="127.0.0.1", port=0, speed=50.0)
        await server.start()
        cfg = PipelineConfig(embedded=False, host="127.0.0.1", port=server.port, symbol=rec.instrument.symbol)
        w = MainWindow(cfg, prefs=None)
        w.show()
        await w.start()
        out["streaming"] = await wait_until(lambda: w.frames_drawn > 0, 240)  # a cold numba cache compiles first
        await server.stop()
        out["shown"] = await wait_until(lambda: "dropped" in w.problem_banner.text, 20)
        out["banner"] = w.problem_banner.text
        out["health"] = w.health.sources_label.text()
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["streaming"]
    assert out["shown"], out["banner"]
    assert "reconnects by itself" in out["banner"] and "DTC server" in out["banner"]
    assert "dtc 127.0.0.1" in out["health"]


def test_engine_errors_are_shown_not_swallowed(qapp):
    """An analyzer that raises on the worker thread: the window shows the error with its
    traceback (banner + Problems), counts repeats, and keeps drawing the market."""
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    class BrokenAnalyzers:
        def step(self, view):
            raise ZeroDivisionError(f"broken analyzer at market time {view.ts}")

    out = {}

    async def main():
        cfg = PipelineConfig(embedded=True, speed=200.0, loop_replay=False,
                             engine_options={"analyzers": BrokenAnalyzers()})
        w = MainWindow(cfg, prefs=None)
        w.show()
        await w.start()
        out["shown"] = await wait_until(lambda: "Analysis engine error" in w.problem_banner.text, 240)
        out["drawn"] = await wait_until(lambda: w.frames_drawn > 0 and w.last_frame.best_bid >= 0, 60)
        out["problems"] = [t for lvl, t in w.problems.entries if lvl == "error"]
        out["dock"] = w.problems_dock.isVisible()
        out["count"] = w.pipeline.engine_errors
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["shown"] and out["dock"]
    assert "ZeroDivisionError: broken analyzer at market time" in out["problems"][0]  # the traceback text
    assert "Traceback" in out["problems"][0]
    assert out["drawn"]  # the market model keeps going
    assert out["count"] >= 1 and len(out["problems"]) <= 5 + out["count"] // 100 + 2


def test_profile_change_applies_without_restart_and_persists(qapp, tmp_path):
    """Choosing another profile applies it to the running analysis (issue 16, item 6): the same
    pipeline, source and engine thread go on (no restart, the replay does not jump back), the
    new profile's frames arrive, and the choice is saved on close."""
    from app.config.settings import load_settings
    from app.ui.main_window import PROFILES, MainWindow
    from app.live.pipeline import PipelineConfig
    from app.config.prefs import Prefs

    out = {}
    path = tmp_path / "settings.toml"

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=100.0, profile="production"), prefs=Prefs(path))
        w.show()
        await w.start()
        out["first"] = await wait_until(lambda: w.frames_drawn > 0, 240)
        old, src, thread = w.pipeline, w.pipeline.source, w.pipeline.engine._thread
        ts0 = w.last_frame.ts
        w.profile_combo.setCurrentIndex(PROFILES.index("scalping"))
        w._on_profile_chosen(PROFILES.index("scalping"))
        out["applied"] = await wait_until(lambda: old.engine.profile_changes == 1
                                          and w.last_frame.column_ns == 100_000_000, 240)
        out["same"] = (w.pipeline is old, w.pipeline.source is src, thread.is_alive(), not old.stopped)
        out["forward"] = w.last_frame.ts >= ts0
        drawn = w.frames_drawn
        await wait_until(lambda: w.frames_drawn > drawn + 5, 60)
        out["errors"] = [t for lvl, t in w.problems.entries if lvl == "error"]
        out["profile"] = w.pipeline.profile.name
        out["trading"] = w.trading is not None or bool(w.trading_error)
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["first"] and out["applied"]
    assert out["same"] == (True, True, True, True)
    assert out["forward"]
    assert out["errors"] == []  # the new column width is drawn without a failure
    assert out["profile"] == "scalping"
    assert out["trading"]
    assert load_settings(path).analysis.profile == "scalping"


def test_record_button_writes_a_replayable_recording(qapp):
    """The window's Record button writes the live event stream to a .mrec that reads back."""
    from app.feeds.recording import read_recording
    from app.ui.main_window import MainWindow
    from app.live.pipeline import PipelineConfig

    out = {}

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=100.0, profile="production"), prefs=None)
        w.show()
        await w.start()
        out["first"] = await wait_until(lambda: w.frames_drawn > 0, 240)
        before = w.pipeline.events_in
        w.act_record.setChecked(True)
        out["recording"] = w.recording_path
        await wait_until(lambda: w.pipeline.events_in > before + 2000, 60)
        w.act_record.setChecked(False)
        out["written"] = [t for lvl, t in w.problems.entries if "recording closed" in t]
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["first"]
    assert out["recording"] is not None and out["written"]
    rec = read_recording(out["recording"])
    assert rec.instrument.symbol == "ESH4" and rec.instrument.tick_size == 0.25
    assert len(rec.events) > 2000
    prices = rec.events["price"][rec.events["kind"] == 2]
    assert len(prices) and (prices > 19_000).all() and (prices < 19_400).all()  # ES trades near 4,800


def test_pause_and_speed_reach_the_replay_server_thread(qapp):
    """The window's Pause and Speed controls go through the pipeline's source to the built-in
    server, which runs on its own thread (not the GUI thread)."""
    import threading

    from app.ui.main_window import SPEEDS, MainWindow
    from app.live.pipeline import PipelineConfig

    out = {}

    async def stats(server):
        return server.stats["replay"]

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=10.0, profile="production"), prefs=None)
        w.show()
        await w.start()
        out["first"] = await wait_until(lambda: w.frames_drawn > 0, 240)
        rt = w.pipeline.source.replay
        out["thread"] = rt.alive and rt.thread_ident != threading.get_ident()
        w.act_pause.setChecked(True)
        w._on_pause(True)
        out["paused"] = [v["paused"] for v in (await rt.run(stats, 5.0)).values()]
        out["label"] = w.act_pause.text()
        out["status_paused"] = w.pipeline.source.status.paused
        w.pipeline.throttled = True  # a flow-control release must not lift the user's pause
        w.pipeline.poll()
        out["still_paused"] = [v["paused"] for v in (await rt.run(stats, 5.0)).values()]
        w.act_pause.setChecked(False)
        w._on_pause(False)
        idx = SPEEDS.index(100.0)
        w.speed_combo.setCurrentIndex(idx)
        w._on_speed_chosen(idx)
        out["speed"] = [v["speed"] for v in (await rt.run(stats, 5.0)).values()]
        out["user_hold"] = w.pipeline.source.paused
        # the replay runs again (the window's timer lifts a flow-control hold once the engine caught up)
        t_end = time.monotonic() + 60
        running = False
        while not running and time.monotonic() < t_end:
            running = not any(v["paused"] for v in (await rt.run(stats, 5.0)).values())
            if not running:
                await asyncio.sleep(0.05)
        out["running"] = running
        await close_window(w)
        out["thread_after"] = rt.alive

    run_on_qt(qapp, main)
    assert out["first"] and out["thread"]
    assert out["paused"] == [True] and out["still_paused"] == [True] and out["status_paused"]
    assert out["label"] == "Resume replay"
    assert out["speed"] == [100.0] and not out["user_hold"] and out["running"]
    assert not out["thread_after"]
