"""Issue 17 item 3: the window with several instruments, on the real BTCUSDT / ETHUSDT pair.

One module fixture runs ``MainWindow`` exactly as ``mia-elite --recording btcusdt_20240808.gz
--recording ethusdt_20240808.gz`` does: the built-in DTC server replays both real captures of
2024-08-08 (USD-M perpetuals, the same minutes) on one market clock into one DTC connection,
an :class:`~app.live.instruments.InstrumentsRuntime` runs one engine per instrument, and the
window shows one :class:`~app.ui.instrument_panel.InstrumentPanel` each. The fixture drives the
window (split view, tabs, back to split, a wheel zoom on one heatmap, tickets from one panel's
ladder) and records what it saw; the tests check it, the orders against what the paper
broker (the venue of paper mode) received.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("qasync")

pytestmark = pytest.mark.timeout(900)

BTC, ETH = "BTCUSDT", "ETHUSDT"
FILES = {BTC: "crypto/btcusdt_20240808.gz", ETH: "crypto/ethusdt_20240808.gz"}


def _trade_range(rec) -> tuple[float, float]:
    """(min, max) traded price of a recording, price units."""
    from app.core.events import KIND_TRADE

    ev = rec.events
    px = ev["price"][ev["kind"] == KIND_TRADE].astype(np.float64) * float(rec.instrument.tick_size)
    return float(px.min()), float(px.max())


def _panel_obs(p) -> dict:
    f = p.last_frame
    img = p.heatmap.image_data()
    lo, hi = p.heatmap.price_range()
    return {"symbol": p.symbol, "frame_symbol": getattr(f, "symbol", None), "frames": p.frames_drawn,
            "tick": float(f.tick_size) if f is not None else None,
            "image_nonzero": int(np.count_nonzero(img)) if img is not None else 0,
            "mid": 0.5 * (f.best_bid + f.best_ask) * float(f.tick_size) if f is not None else None,
            "view": (lo, hi), "ladder_bid": p.ladder.best_bid,
            "visible": p.isVisible() and p.heatmap.isVisible()}


@pytest.fixture(scope="module")
def run(qapp, shared_data, tmp_path_factory):
    """Run the two-instrument window once; return the observations."""
    import os

    from PySide6 import QtCore, QtGui, QtTest

    from app.cli.analyze import load_any
    from app.config.trading import trading_settings_path
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow
    from qt_loop import close_window, run_on_qt, wait_until

    old_home = os.environ.get("MIA_ELITE_HOME")
    os.environ["MIA_ELITE_HOME"] = str(tmp_path_factory.mktemp("instruments-home"))
    # the replay's quiet stretches must not make the gate refuse a ticket as stale data; crypto trades all day
    trading_settings_path().write_text("[trading]\nstale_data_ms = 600000\ntrading_start = \"00:00\"\n"
                                       "trading_end = \"00:00\"\n", encoding="utf-8")
    recs = {s: load_any(str(shared_data / f)) for s, f in FILES.items()}
    obs: dict = {"ranges": {s: _trade_range(r) for s, r in recs.items()},
                 "ticks": {s: float(r.instrument.tick_size) for s, r in recs.items()}}
    cfg = PipelineConfig(embedded=True, recording=[recs[BTC], recs[ETH]], speed=20.0, profile="scalping",
                         profile_overrides={"elite.min_elite_score": 0.3},  # signals on both captures
                         loop_replay=True)

    async def main():
        w = MainWindow(cfg, prefs=None)
        w.resize(1600, 1000)
        w.show()
        await w.start()
        try:
            obs["panels"] = [p.symbol for p in w.panels]
            obs["runtime"] = w.runtime is not None and w.runtime.symbols
            w.set_panel_layout("split2")

            def both_drawn(n=1):
                return all(p.frames_drawn >= n and p.last_frame is not None and p.heatmap.image_data() is not None
                           for p in w.panels)

            obs["ready"] = await wait_until(lambda: len(w.panels) == 2 and both_drawn(3), 300)
            if not obs["ready"]:
                return
            obs["split"] = {p.symbol: _panel_obs(p) for p in w.panels}
            # tabs: one panel on screen; the other tab, then back to the split view: both keep drawing
            w.set_panel_layout("tabs")
            obs["tabs_visible"] = [p.symbol for p in w.panel_area.visible_panels()]
            n0 = {p.symbol: p.frames_drawn for p in w.panels}
            obs["tabs_first_draws"] = await wait_until(lambda: w.panels[0].frames_drawn > n0[BTC] + 2, 60)
            w.panel_area.tabs.setCurrentIndex(1)
            obs["tabs_visible_2"] = [p.symbol for p in w.panel_area.visible_panels()]
            n1 = w.panels[1].frames_drawn
            obs["tabs_second_draws"] = await wait_until(lambda: w.panels[1].frames_drawn > n1 + 2, 60)
            w.set_panel_layout("split2")
            n2 = {p.symbol: p.frames_drawn for p in w.panels}
            obs["split_again"] = await wait_until(
                lambda: all(p.frames_drawn > n2[p.symbol] + 2 for p in w.panels), 60)
            obs["split_again_obs"] = {p.symbol: _panel_obs(p) for p in w.panels}
            obs["prefs_layout"] = w.panel_area.layout_key
            # linked time axes: a wheel zoom on BTC's heatmap moves ETH's to the same time range
            a, b = w.panels
            await asyncio.sleep(0.1)
            vp = a.heatmap.viewport()
            centre = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
            before_b = tuple(b.heatmap.vb.viewRange()[0])
            for _ in range(3):
                ev = QtGui.QWheelEvent(centre, vp.mapToGlobal(centre), QtCore.QPoint(0, 0), QtCore.QPoint(0, -240),
                                       QtCore.Qt.NoButton, QtCore.Qt.NoModifier, QtCore.Qt.NoScrollPhase, False)
                QtCore.QCoreApplication.sendEvent(vp, ev)
            await asyncio.sleep(0.3)  # frames keep coming: neither view may snap back to following
            obs["link"] = {"a": tuple(a.heatmap.vb.viewRange()[0]), "b": tuple(b.heatmap.vb.viewRange()[0]),
                           "b_before": before_b, "a_following": a.heatmap.following,
                           "b_following": b.heatmap.following, "offsets": (a.market_offset_s, b.market_offset_s),
                           "b_delta": tuple(b.delta_pane.vb.viewRange()[0])}
            w.follow_all(True)
            # tickets: a double-click on ETH's ladder opens a ticket bound to ETH
            obs["trading"] = await wait_until(
                lambda: w.trading is not None and all(w.trading.session.market.get(s) is not None
                                                      and w.trading.session.market[s].best_bid is not None
                                                      for s in (BTC, ETH)), 120)
            if not obs["trading"]:
                return
            ctl, s = w.trading, w.trading.session
            obs["session_instruments"] = sorted(s.instruments)
            await asyncio.sleep(0.2)
            lad = b.ladder
            opened = []
            ctl.sigTicketOpened.connect(opened.append)
            y = lad._top + 0.85 * lad._height  # low on the ladder: a buy limit below the market
            QtTest.QTest.mouseDClick(lad, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier,
                                     QtCore.QPoint(int(lad.width() * 0.25), int(y)))
            await wait_until(lambda: bool(opened), 10)
            dlg = opened[-1] if opened else None
            obs["eth_dialog"] = None if dlg is None else {
                "instrument": dlg.instrument, "symbol": dlg.ticket().symbol, "title": dlg.windowTitle(),
                "tick": dlg.tick, "decimals": dlg.decimals, "side": dlg.ticket().side, "entry": dlg.ticket().entry}
            if dlg is None:
                return
            venue = s.broker.engine
            # the same ETH-bound ticket path with a BTC ticket: refused by the dialog and by the session
            btc_ticket = s.ticket_from_price(s.market[BTC].best_bid - 50, 1, symbol=BTC)
            dlg_btc = ctl.open_ticket(btc_ticket, instrument=ETH)
            obs["btc_in_eth_dialog"] = {"confirm_enabled": dlg_btc.confirm_button.isEnabled(),
                                        "verdict": dlg_btc.verdict_label.text()}
            sent = []
            dlg_btc.sigConfirmed.connect(sent.append)
            dlg_btc.confirm()
            obs["btc_dialog_emitted"] = len(sent)
            d = await ctl._confirm_for(btc_ticket, ETH)
            obs["btc_via_eth"] = (d.allowed, d.message)
            # the ETH ticket from ETH's ladder, confirmed as the trader would
            # 2,000 ticks (20 USD, under 1 %) below the bid: the replay runs on at 20x, and a limit
            # near the market fills (its line goes) before it is looked at on a loaded machine
            eth_ticket = s.ticket_from_price(s.market[ETH].best_bid - 2000, 1, symbol=ETH)
            dlg_eth = ctl.open_price_ticket(eth_ticket.entry, 1, "limit", symbol=ETH)
            n_dec = len(ctl.decisions)
            QtTest.QTest.mouseClick(dlg_eth.confirm_button, QtCore.Qt.LeftButton)
            await wait_until(lambda: len(ctl.decisions) > n_dec, 20)
            obs["eth_decision"] = [(i, dd.allowed, dd.message) for i, dd in ctl.decisions[n_dec:]]
            # every order the venue was given, in any state (the replay runs on: a limit it
            # reaches is filled, and no longer open)
            obs["venue_orders"] = sorted({o.symbol for o in venue.orders.values()})
            obs["eth_drawn"] = await wait_until(lambda: any("B 1" in lbl for _p, lbl, _k in b.own_orders.overlay.drawn),
                                                30)
            obs["btc_drawn"] = [lbl for _p, lbl, _k in a.own_orders.overlay.drawn]
            obs["eth_orders"] = [(o.symbol, str(o.status), o.price, s.market[ETH].best_bid) for o in venue.orders.values()]
            obs["eth_overlay"] = list(b.own_orders.overlay.drawn)
            obs["eth_drawn_prices"] = [p_ for p_, lbl, _k in b.own_orders.overlay.drawn if "B 1" in lbl]
            # the one tape: every instrument's signals, each once
            await wait_until(lambda: {sg.symbol for sg in w.tape.model.signals} >= {BTC, ETH}, 120)
            obs["tape"] = [(sg.id, sg.symbol) for sg in w.tape.model.signals]
            obs["tape_run"] = w.tape.model.run
            # the window's parts for several instruments: the relation pane, the tape's filter,
            # the risk panel's line per instrument
            await wait_until(lambda: w.relation_pane.last() is not None, 60)
            w._feed_relation()
            rows = np.concatenate(w.runtime.relation_rows) if w.runtime.relation_rows else None
            obs["relation"] = {"visible": w.relation_pane.isVisible(), "pair": w.relation_pane.pair,
                               "pane_rows": w.relation_pane.rows(), "runtime_rows": rows,
                               "linked": w.relation_pane.linked_to() is a.heatmap.getPlotItem().vb}
            obs["tape_filter"] = {}
            for sym in ("", BTC, ETH):
                w.tape.set_filter(sym)
                obs["tape_filter"][sym] = sorted({w.tape.proxy.signal_at(i).symbol
                                                  for i in range(w.tape.proxy.rowCount())})
            w.tape.set_filter("")
            obs["symbol_column_shown"] = not w.tape.view.isColumnHidden(w.tape.model.COL_SYMBOL)
            ctl.refresh()
            obs["risk_rows"] = ctl.panel.positions_table.rowCount()
            obs["problems"] = [t for lv, t in w.problems.entries if lv == "error"]
        finally:
            await close_window(w)
            obs["closed"] = True

    t0 = time.monotonic()
    try:
        run_on_qt(qapp, main)
    finally:
        if old_home is None:
            os.environ.pop("MIA_ELITE_HOME", None)
        else:
            os.environ["MIA_ELITE_HOME"] = old_home
    obs["wall_s"] = time.monotonic() - t0
    return obs


def test_split_view_draws_both_instruments_with_their_own_real_data(run):
    assert run["runtime"] == [BTC, ETH] and run["panels"] == [BTC, ETH]
    assert run["ready"], "both panels did not draw within the time limit"
    for sym, p in run["split"].items():
        lo, hi = run["ranges"][sym]
        assert p["frame_symbol"] == sym and p["visible"]
        assert p["tick"] == run["ticks"][sym]  # 0.1 for BTCUSDT, 0.01 for ETHUSDT
        assert p["image_nonzero"] > 100, f"{sym}: the heatmap holds no resting size"
        assert lo <= p["mid"] <= hi and lo - 0.01 * lo <= 0.5 * (p["view"][0] + p["view"][1]) <= hi + 0.01 * hi
        assert lo <= p["ladder_bid"] * run["ticks"][sym] <= hi  # the ladder's best bid (ticks) of its own book
    # two very different price ranges: each panel shows its own instrument, not the other's
    assert run["split"][BTC]["mid"] > 10 * run["split"][ETH]["mid"]


def test_switching_tabs_and_split_keeps_both_drawing(run):
    assert run["ready"]
    assert run["tabs_visible"] == [BTC] and run["tabs_first_draws"]
    assert run["tabs_visible_2"] == [ETH] and run["tabs_second_draws"]
    assert run["split_again"] and run["prefs_layout"] == "split2"
    for sym, p in run["split_again_obs"].items():
        assert p["visible"] and p["frame_symbol"] == sym and p["frames"] > run["split"][sym]["frames"]


def test_the_time_axes_of_the_visible_panels_move_together(run):
    assert run["ready"]
    ln = run["link"]
    assert ln["offsets"] == (0.0, 0.0)  # the captures overlap: both on their real times
    span_a, span_b0 = ln["a"][1] - ln["a"][0], ln["b_before"][1] - ln["b_before"][0]
    assert span_a > 1.3 * span_b0, "the wheel zoomed out BTC's heatmap"
    assert ln["b"] == pytest.approx(ln["a"], abs=1e-3), "ETH's heatmap moved to the same time range"
    assert ln["b_delta"] == pytest.approx(ln["b"], abs=1e-3)  # and its delta pane with it
    assert not ln["a_following"] and not ln["b_following"]


def test_a_ticket_from_one_instrument_cannot_submit_to_the_other(run):
    assert run["ready"] and run["trading"]
    assert run["session_instruments"] == [BTC, ETH]
    d = run["eth_dialog"]
    assert d is not None, "a double-click on ETH's ladder opened no ticket"
    assert d["instrument"] == ETH and d["symbol"] == ETH and ETH in d["title"] and d["tick"] == 0.01 and d["side"] == 1
    assert d["decimals"] == 2  # ETH's prices (the session's first instrument, BTCUSDT, has 1)
    lo, hi = run["ranges"][ETH]
    assert lo * 0.95 <= d["entry"] * 0.01 <= hi * 1.05  # an ETH price, in ETH's ticks
    # a BTC ticket on the ETH-bound path: Confirm disabled, nothing emitted, the session refuses it too
    assert not run["btc_in_eth_dialog"]["confirm_enabled"] and "opened from ETHUSDT" in run["btc_in_eth_dialog"]["verdict"]
    assert run["btc_dialog_emitted"] == 0
    assert run["btc_via_eth"][0] is False and "ETHUSDT" in run["btc_via_eth"][1]
    # the venue (paper fill engine) received ETH's orders only
    assert run["eth_decision"] and run["eth_decision"][0][:2] == (ETH, True), run["eth_decision"]
    assert run["venue_orders"] == [ETH]
    # own orders drawn on ETH's panel only
    assert run["eth_drawn"] and run["btc_drawn"] == [], (run["eth_orders"], run["eth_overlay"])
    # at ETH prices: priced with ETH's tick, not the session's first instrument's
    assert run["eth_drawn_prices"] and all(lo * 0.95 <= p <= hi * 1.05 for p in run["eth_drawn_prices"])
    assert not run["problems"], run["problems"]


def test_time_link_maps_recordings_of_other_dates_on_the_market_clock(qtbot):
    """Two panels whose recordings are aligned at their starts (offsets as the server's market
    timeline gives them): a wheel zoom on one moves the other to the same market-time range;
    a panel dropped from the link no longer moves."""
    from PySide6 import QtCore, QtGui

    from app.ui.instrument_panel import InstrumentPanel, TimeLink

    es, btc = InstrumentPanel("ESH4"), InstrumentPanel(BTC)
    for p in (es, btc):
        qtbot.addWidget(p)
        p.resize(700, 500)
        p.show()
    qtbot.waitExposed(btc)
    t_es, t_btc = 1703545200.0, 1723075200.0  # 2023-12-25 23:00 and 2024-08-08 00:00 UTC
    es.market_offset_s, btc.market_offset_s = t_btc - t_es, 0.0  # ES shifted to BTC's start
    es.heatmap.vb.setXRange(t_es, t_es + 600, padding=0)
    btc.heatmap.vb.setXRange(t_btc, t_btc + 300, padding=0)
    link = TimeLink()
    link.set_panels([es, btc])

    def wheel(panel):
        vp = panel.heatmap.viewport()
        c = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
        QtCore.QCoreApplication.sendEvent(vp, QtGui.QWheelEvent(
            c, vp.mapToGlobal(c), QtCore.QPoint(0, 0), QtCore.QPoint(0, -240), QtCore.Qt.NoButton,
            QtCore.Qt.NoModifier, QtCore.Qt.NoScrollPhase, False))

    wheel(es)
    (a0, a1), _ = es.heatmap.vb.viewRange()
    (b0, b1), _ = btc.heatmap.vb.viewRange()
    assert a1 - a0 > 600  # zoomed out
    assert (b0, b1) == pytest.approx((a0 + t_btc - t_es, a1 + t_btc - t_es), abs=1e-3)
    assert link.market_range(es) == pytest.approx(link.market_range(btc), abs=1e-3)
    assert not btc.heatmap.following
    link.set_panels([btc])  # ES out of view (a tab): no longer linked
    before = btc.heatmap.vb.viewRange()[0]
    wheel(es)
    assert btc.heatmap.vb.viewRange()[0] == pytest.approx(before)


def test_the_layout_choice_persists_in_the_prefs(qtbot, tmp_path):
    from app.config.prefs import Prefs
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow

    path = tmp_path / "settings.toml"
    w = MainWindow(PipelineConfig(embedded=True), prefs=Prefs(path))
    qtbot.addWidget(w)
    assert w.panel_area.layout_key == "split2"  # the default
    assert not w.act_layout_combo.isVisible() and not w.layout_actions["tabs"].isVisible()  # one instrument: no control
    w.layout_actions["split4"].trigger()
    assert w.panel_area.layout_key == "split4" and w.layout_combo.currentData() == "split4"
    w.save_prefs()
    assert 'layout = "split4"' in (tmp_path / "window.toml").read_text()
    w2 = MainWindow(PipelineConfig(embedded=True), prefs=Prefs(path))
    qtbot.addWidget(w2)
    assert w2.panel_area.layout_key == "split4" and w2.layout_actions["split4"].isChecked()
    with pytest.raises(ValueError, match="known: tabs, split2, split4"):
        w2.set_panel_layout("grid9")


def test_the_relation_kernel_is_compiled_off_the_gui_thread_with_the_runtimes_types(shared_data):
    """The pair's relation runs on the GUI thread (the runtime's batch listener); its numba kernel
    must be compiled beforehand on the engines' compile thread (``precompile``), else a cold
    compile blocked the window and its DTC heartbeats until the server dropped the connection.
    After the warm-up, the real trades of the pair (as the runtime hands them over) add no new
    compiled signature, i.e. nothing compiles on the GUI thread."""
    from app.analysis.relation import Relation, relation_scan
    from app.cli.analyze import load_any
    from app.ui.main_window import warm_relation_kernel

    warm_relation_kernel()
    n = len(relation_scan.signatures)
    assert n >= 1
    a = load_any(str(shared_data / FILES[BTC]))
    b = load_any(str(shared_data / FILES[ETH]))
    rows = Relation().update(*Relation.trades_of(a.events[:200_000]), *Relation.trades_of(b.events[:200_000]))
    assert len(rows) > 60  # real seconds closed
    assert len(relation_scan.signatures) == n


def test_a_runtime_window_hands_the_relation_warm_up_to_the_engines(qtbot, shared_data):
    from app.cli.analyze import load_any
    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow, warm_relation_kernel

    recs = [load_any(str(shared_data / FILES[s])) for s in (BTC, ETH)]
    w = MainWindow(PipelineConfig(embedded=True, recording=recs), prefs=None)
    qtbot.addWidget(w)
    assert w.several_instruments()
    rt = w._new_runtime()
    assert warm_relation_kernel in rt.config.engine_options["precompile"]


def test_market_offsets_of_es_beside_btcusdt_align_them_at_their_starts(shared_data):
    """The real ES hour (2023-12-25) beside the real BTCUSDT capture (2024-08-08): the server
    starts both at ES's start, so BTCUSDT's panel is linked with the offset ES start - BTC start
    and ES's with 0; the crypto pair (same minutes) links on real times."""
    from app.cli.analyze import load_any
    from app.feeds.samples import load_default_sample
    from app.sim.server import DTCServer
    from app.ui.instrument_panel import market_offsets

    es, btc, eth = load_default_sample(), load_any(str(shared_data / FILES[BTC])), load_any(str(shared_data / FILES[ETH]))
    off = market_offsets(DTCServer([es, btc], host="127.0.0.1", port=0, speed=0.0, paused=True))
    sym_es = es.instrument.symbol
    assert off[sym_es] == 0.0
    assert off[BTC] == pytest.approx((es.start_ns - btc.start_ns) / 1e9, abs=1e-6) and off[BTC] < -1e7
    # a BTC time maps to the ES time of the same replay moment: both starts meet
    assert btc.start_ns / 1e9 + off[BTC] == pytest.approx(es.start_ns / 1e9 + off[sym_es], abs=1e-6)
    assert market_offsets(DTCServer([btc, eth], host="127.0.0.1", port=0, speed=0.0, paused=True)) == {BTC: 0.0, ETH: 0.0}
    assert market_offsets(None) == {}


def test_the_tape_gets_every_instruments_signals_once(run):
    """Both engines' frames go to the one tape; their frame numbers interleave, which must not
    read as a new engine (rows appended again)."""
    assert run["ready"] and run["trading"]
    ids = [i for i, _s in run["tape"]]
    assert {s for _i, s in run["tape"]} == {BTC, ETH}, run["tape"][:10]
    assert len(ids) == len(set(ids)), "a signal was appended twice"
    assert run["tape_run"] == 0


def test_bench_gui_symbol_sets(shared_data, monkeypatch):
    """``mia-elite bench gui --symbols 1,2,4``: the sets it replays (real recordings; the repeat
    in the set of four is the ETHUSDT capture under its own symbol) and a bad count named."""
    import argparse

    from app import bench
    from app.ui.bench_gui import SYMBOL_SETS, _symbol_set, parse_symbols

    monkeypatch.setenv("MIA_ELITE_SHARED", str(shared_data.parent))
    assert parse_symbols("1,2,4") == [1, 2, 4] and parse_symbols(" 2 ") == [2]
    with pytest.raises(ValueError, match="'3' is not one of 1, 2, 4"):
        parse_symbols("1,3")
    cache: dict = {}
    four = _symbol_set(4, cache)
    assert [r.instrument.symbol for r in four] == ["ESH4", BTC, ETH, ETH + ".2"]
    assert four[3].events is four[2].events and four[3].instrument.tick_size == 0.01
    assert [r.instrument.symbol for r in _symbol_set(2, cache)] == [BTC, ETH] and set(SYMBOL_SETS) == {1, 2, 4}
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    assert p.parse_args(["gui", "--symbols", "1,2,4"]).symbols == "1,2,4"


def test_a_signal_ticket_converts_rows_with_its_own_instruments_row_size(qtbot, shared_data, tmp_path, monkeypatch):
    """Price rows differ between instruments (ES 1 tick a row, the crypto captures 20): a tape
    signal of ES opened just after a BTCUSDT frame keeps ES's rows (the controller once used the
    row size of whichever frame came last)."""
    import dataclasses

    from app.analysis.frame import Signal
    from app.cli.analyze import load_any
    from app.config.trading import TradingSettings
    from app.feeds.samples import load_default_sample
    from app.trading.journal import Journal
    from app.trading.paper import PaperBroker
    from app.trading.session import TradingSession
    from app.ui.instruments_trading import InstrumentsTradingController
    from app.ui.trading_panel import TradingPanel

    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    es, btc = load_default_sample().instrument, load_any(str(shared_data / FILES[BTC])).instrument
    settings = TradingSettings(stale_data_ms=600_000, trading_start="00:00", trading_end="00:00")
    s = TradingSession(PaperBroker([es, btc]), Journal(tmp_path / "j.sqlite3"), settings, es, instruments=[btc])
    panel = TradingPanel()
    qtbot.addWidget(panel)
    ctl = InstrumentsTradingController(s, panel)
    # the frames' row sizes as the engines publish them (the rest of a frame is not read for this)
    frame = dataclasses.make_dataclass("F", ["symbol", "row_ticks", "signals", "new_signals", "outcomes"])
    ctl.on_frame(frame(es.symbol, 1, (), (), {}))
    ctl.on_frame(frame(BTC, 20, (), (), {}))
    sig = Signal(7, 1, es.symbol, 1, 0.9, (), (), 19230, 19222, 19246, 1)  # ES rows = ES ticks
    dlg = ctl.open_signal_ticket(sig)
    t = dlg.ticket()
    assert t.symbol == es.symbol and dlg.instrument == es.symbol
    assert (t.entry, t.stop, t.target) == (19230, 19222, 19246)
    dlg.close()
    s.journal.close()


def test_the_window_draws_the_pairs_relation_and_filters_the_tape_by_instrument(run):
    """Issue 17 items 3 and 5 in the window: the relation pane shows the runtime's rows for the
    pair (BTCUSDT, ETHUSDT) on BTCUSDT's time axis; the tape's filter shows one instrument's rows."""
    rel = run["relation"]
    assert rel["visible"] and rel["pair"] == (BTC, ETH) and rel["linked"]
    pane, rows = rel["pane_rows"], rel["runtime_rows"]
    assert rows is not None and pane.shape[0] > 10
    # every row the pane holds is the runtime's row of that second (the pane keeps time order)
    by_ts = {int(t): i for i, t in enumerate(rows["ts"])}
    idx = np.array([by_ts[int(t)] for t in pane["ts"]])
    np.testing.assert_array_equal(pane["corr"], rows["corr"][idx])
    np.testing.assert_array_equal(pane["rs"], rows["rs"][idx])
    assert run["symbol_column_shown"]
    assert run["tape_filter"][""] == [BTC, ETH]
    assert run["tape_filter"][BTC] == [BTC] and run["tape_filter"][ETH] == [ETH]
    assert run["risk_rows"] >= 2  # one line per instrument
