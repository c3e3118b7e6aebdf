"""pytest-qt: ticket from a signal, confirm/cancel by keyboard, kill switch button and hotkey,
risk panel values equal to the broker's (paper broker fed the real ES sample, qasync loop)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

from PySide6 import QtCore, QtTest, QtWidgets  # noqa: E402

from app.analysis.frame import PatternHit, Signal  # noqa: E402
from app.config.trading import TradingSettings  # noqa: E402
from app.trading.journal import Journal  # noqa: E402
from app.trading.killswitch import KillState  # noqa: E402
from app.trading.paper import PaperBroker  # noqa: E402
from app.trading.session import TradingSession  # noqa: E402
from app.ui.trading_panel import TradingController, TradingPanel  # noqa: E402


@pytest.fixture
def rig(qapp, es_sample, feeder_cls):
    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    inst = es_sample.instrument
    settings = TradingSettings(stale_data_ms=600_000, max_position_contracts=6)
    session = TradingSession(PaperBroker([inst], settings.commission_per_contract_usd), Journal(), settings, inst)
    win = QtWidgets.QMainWindow()
    panel = TradingPanel()
    win.setCentralWidget(panel)
    ctl = TradingController(session, panel)
    ctl.install_hotkey(win)
    win.show()

    class R:
        pass

    r = R()
    r.loop, r.s, r.panel, r.ctl, r.win = loop, session, panel, ctl, win
    r.feed = feeder_cls(session, es_sample)

    def run(coro, timeout=10.0):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def until(pred, timeout=5.0):
        async def w():
            end = time.monotonic() + timeout
            while not pred():
                assert time.monotonic() < end, "condition not reached in time"
                await asyncio.sleep(0.01)
        run(w(), timeout + 1)

    r.run, r.until = run, until
    run(ctl.start())
    r.feed.advance(3000)
    yield r
    run(ctl.shutdown())
    win.close()
    loop.close()
    asyncio.set_event_loop(None)


def make_signal(s, side=1, size=1):
    m = s.market["ESH4"]
    ref = m.best_bid if side > 0 else m.best_ask
    hit = PatternHit("wall", "dom", 0, ref, side, 0.9, "wall", (("size", 300.0),))
    return Signal(11, 0, "ESH4", side, 0.8, (), (hit,), ref - side * 2, ref - side * 10, ref + side * 14, size, "low")


def test_ticket_from_signal_confirm_with_ctrl_enter(rig, qtbot):
    sig = make_signal(rig.s, +1, 2)
    dlg = rig.ctl.open_signal_ticket(sig)
    qtbot.waitExposed(dlg)
    assert "BUY" in dlg.side_label.text() and dlg.qty.value() == 2
    assert dlg.entry.value() == sig.entry * 0.25 and dlg.stop.value() == sig.stop * 0.25
    assert dlg.target.value() == sig.target * 0.25
    assert "Risk 8 ticks = 200.00 USD" in dlg.risk_label.text()
    assert "Reward 16 ticks = 400.00 USD" in dlg.risk_label.text()
    assert "ALLOWED" in dlg.verdict_label.text() and dlg.confirm_button.isEnabled()
    qtbot.keyClick(dlg, QtCore.Qt.Key_Return, QtCore.Qt.ControlModifier)
    rig.until(lambda: len(rig.s.broker.orders) == 3)
    entry = [o for o in rig.s.broker.orders.values() if o.request.role == "entry"][0]
    assert entry.request.price == sig.entry and entry.request.qty == 2 and entry.request.side == 1
    assert rig.s.journal.query("SELECT status FROM tickets")[0][0] == "confirmed"
    assert rig.s.journal.query("SELECT COUNT(*) FROM signals")[0][0] == 1


def test_ticket_escape_cancels_and_enter_confirms(rig, qtbot):
    dlg = rig.ctl.open_signal_ticket(make_signal(rig.s, -1))
    qtbot.waitExposed(dlg)
    qtbot.keyClick(dlg, QtCore.Qt.Key_Escape)
    rig.until(lambda: rig.ctl.dialog is None)
    assert rig.s.broker.orders == {}
    assert rig.s.journal.query("SELECT status FROM tickets")[0][0] == "cancelled"
    bid = rig.s.market["ESH4"].best_bid
    dlg = rig.ctl.open_price_ticket(bid - 4, +1)  # as from a ladder click
    qtbot.waitExposed(dlg)
    assert dlg.entry.value() == (bid - 4) * 0.25
    assert dlg.stop.value() == (bid - 4 - rig.s.settings.bracket_stop_ticks) * 0.25
    qtbot.keyClick(dlg.qty, QtCore.Qt.Key_Enter)  # Enter from a field confirms (default button)
    rig.until(lambda: len(rig.s.broker.orders) == 3)


def test_refused_ticket_cannot_be_confirmed(rig, qtbot):
    dlg = rig.ctl.open_signal_ticket(make_signal(rig.s, +1, 5))  # more than max_contracts_per_order = 2
    qtbot.waitExposed(dlg)
    assert not dlg.confirm_button.isEnabled()
    assert "max_contracts_per_order" in dlg.verdict_label.text()
    qtbot.keyClick(dlg, QtCore.Qt.Key_Return, QtCore.Qt.ControlModifier)
    dlg.qty.setValue(1)  # editing re-runs the gate
    assert dlg.confirm_button.isEnabled()
    rig.run(asyncio.sleep(0.05))
    assert rig.s.broker.orders == {}


def test_kill_switch_button_and_risk_panel_values_equal_the_broker(rig, qtbot):
    s = rig.s
    m = s.market["ESH4"]
    from app.core.orders import OrderType
    from app.trading.orders import OrderTicket

    rig.run(s.confirm(OrderTicket("ESH4", 1, 2, OrderType.MARKET, None, m.best_ask - 20, m.best_ask + 40, ref_price=m.best_ask)))
    rig.run(s.confirm(s.ticket_from_price(m.best_bid - 10, +1)))
    rig.feed.advance(300)
    rig.ctl.refresh()
    v = rig.panel.values
    b = s.broker
    assert b.position_qty("ESH4") == 2
    assert v["position"].text() == "+2 ESH4"
    assert v["avg_price"].text() == f"{b.positions['ESH4'].avg_price * 0.25:.2f}"
    assert v["working"].text() == str(len(b.working_orders())) == "5"
    assert v["trades"].text() == "2 / 20"
    assert v["realized_pnl"].text() == f"{s.pnl.net_realized_usd:+,.2f} USD"
    assert v["open_pnl"].text() == f"{s.open_pnl_usd('ESH4'):+,.2f} USD"
    assert v["gate"].text() == "OPEN" and v["mode"].text() == "PAPER"
    qtbot.mouseClick(rig.panel.kill_button, QtCore.Qt.LeftButton)
    assert s.gate.locked  # locked at the click, before the task runs
    rig.until(lambda: s.kill.state == KillState.VERIFIED_FLAT)
    rig.ctl.refresh()
    assert "VERIFIED FLAT" in rig.panel.kill_status.text()
    assert v["position"].text() == "flat ESH4" and v["working"].text() == "0"
    assert v["gate"].text().startswith("locked")
    assert rig.panel.unlock_box.isVisible()
    rig.panel.unlock_edit.setText("unlock")
    qtbot.mouseClick(rig.panel.unlock_button, QtCore.Qt.LeftButton)
    assert s.gate.locked and "Unlock refused" in rig.panel.problem_label.text()
    rig.panel.unlock_edit.setText("UNLOCK")
    qtbot.mouseClick(rig.panel.unlock_button, QtCore.Qt.LeftButton)
    assert not s.gate.locked and s.kill.state == KillState.ARMED


def test_kill_switch_hotkey_is_application_wide(rig, qtbot):
    s = rig.s
    m = s.market["ESH4"]
    rig.run(s.confirm(s.ticket_from_price(m.best_bid - 10, +1)))
    assert s.broker.working_orders()
    other = QtWidgets.QLineEdit()  # focus in another top-level window of the app
    other.show()
    other.activateWindow()
    other.setFocus()
    qtbot.waitExposed(other)
    QtTest.QTest.keyClick(other, QtCore.Qt.Key_K, QtCore.Qt.ControlModifier | QtCore.Qt.ShiftModifier)
    assert s.gate.locked
    rig.until(lambda: s.kill.state == KillState.VERIFIED_FLAT)
    assert s.kill.trigger_name == "hotkey" and not s.broker.working_orders()
    other.close()


def test_ladder_double_click_opens_a_limit_ticket_at_that_row(rig, qtbot):
    from app.ui.ladder import LadderWidget
    from app.ui.trading_panel import _LadderClicks

    lad = LadderWidget()
    lad.resize(240, 400)
    lad.show()
    qtbot.waitExposed(lad)
    bid = rig.s.market["ESH4"].best_bid
    lo, hi = (bid - 20) * 0.25, (bid + 20) * 0.25  # 40 ticks over 400 px: 10 px per tick
    lad.tick = 0.25
    lad.set_view(lo, hi, 0.0, 400.0)
    lad.installEventFilter(_LadderClicks(lad, rig.ctl))
    y = int(round(lad.price_to_y((bid - 4) * 0.25)))
    qtbot.mouseDClick(lad, QtCore.Qt.LeftButton, pos=QtCore.QPoint(30, y))
    dlg = rig.ctl.dialog
    assert dlg is not None and dlg.base.side == 1 and dlg.base.entry == bid - 4 and dlg.base.source == "ladder"
    qtbot.keyClick(dlg, QtCore.Qt.Key_Escape)
    qtbot.mouseDClick(lad, QtCore.Qt.LeftButton, pos=QtCore.QPoint(200, y))
    assert rig.ctl.dialog.base.side == -1 and rig.ctl.dialog.base.entry == bid - 4
    rig.ctl.dialog.reject()
    lad.close()


def test_frames_journal_each_signal_once_and_each_decided_outcome_once(rig):
    import numpy as np

    from app.analysis.frame import AnalysisFrame
    from app.sim.outcomes import SignalOutcome
    from app.market.bars import BAR_DTYPE

    sig = make_signal(rig.s, +1)
    z = np.zeros((1, 1), np.float32)
    e = np.zeros(0)

    def frame(outcomes):
        return AnalysisFrame(1, 0, "ESH4", 0.25, z, 0, 0, 1, z, z, 1, 2, np.zeros(0, np.int64), e, e, e,
                             np.zeros(0, BAR_DTYPE), signals=(sig,), outcomes=outcomes)

    rig.ctl.on_frame(frame({sig.id: SignalOutcome(sig.id, 1.0)}))
    rig.ctl.on_frame(frame({sig.id: SignalOutcome(sig.id, 1.0, 3.0, 5.0, 6, -1, "target", True)}))
    rig.ctl.on_frame(frame({sig.id: SignalOutcome(sig.id, 1.0, 3.0, 5.0, 6, -1, "target", True)}))
    j = rig.s.journal
    assert j.query("SELECT COUNT(*) FROM signals")[0][0] == 1
    rows = j.query("SELECT first, patterns FROM signal_outcomes")
    assert len(rows) == 1 and rows[0]["first"] == "target" and "wall" in rows[0]["patterns"]


def test_every_signal_the_engine_publishes_is_journaled_once_from_the_frames(rig):
    """The controller hears the pipeline's frames (``add_frame_listener``), published on a worker
    thread like the engine's: every signal of every frame's ``new_signals`` is journaled exactly
    once, also when the frames come faster than any display could take them, and nothing is
    journaled after the controller stops following."""
    import threading

    import numpy as np

    from app.analysis.frame import AnalysisFrame
    from app.live.pipeline import Pipeline, PipelineConfig
    from app.market.bars import BAR_DTYPE

    z = np.zeros((1, 1), np.float32)
    e = np.zeros(0)
    base = make_signal(rig.s, +1)
    sigs = [Signal(100 + i, i, "ESH4", base.side, 0.8, (), base.reasons, base.entry, base.stop, base.target, 1, "low")
            for i in range(60)]

    def frame(seq, new, recent):
        return AnalysisFrame(seq, 0, "ESH4", 0.25, z, 0, 0, 1, z, z, 1, 2, np.zeros(0, np.int64), e, e, e,
                             np.zeros(0, BAR_DTYPE), signals=tuple(recent), new_signals=tuple(new))

    # one new signal per frame; "recent signals" (frame.signals) keep only the last three
    frames = [frame(i, (s,), sigs[max(0, i - 2):i + 1]) for i, s in enumerate(sigs)]
    pl = Pipeline(PipelineConfig(embedded=False))

    async def go():
        rig.ctl.follow(pl)
        worker = threading.Thread(target=lambda: [pl._on_frame(f) for f in frames])  # the engine's callback
        worker.start()
        worker.join()
        end = asyncio.get_running_loop().time() + 5.0
        while len(rig.s.journal.query("SELECT signal_id FROM signals")) < len(sigs):
            assert asyncio.get_running_loop().time() < end, "frames were not journaled"
            await asyncio.sleep(0.01)
        rig.ctl.unfollow()
        pl._on_frame(frame(99, (base,), (base,)))  # not followed any more: nothing is queued
        assert not pl._frames_out

    rig.run(go())
    ids = [r[0] for r in rig.s.journal.query("SELECT signal_id FROM signals")]
    assert sorted(ids) == [s.id for s in sigs]  # each once, none missing, the unfollowed one absent
    assert pl._frame_listeners == [] and pl._listeners == []


def test_the_controller_hears_the_pipeline_fan_out_not_a_patched_callback(rig, es_sample):
    """Market batches reach the session through ``Pipeline.add_listener`` (any source)."""
    from app.live.pipeline import Pipeline, PipelineConfig

    pl = Pipeline(PipelineConfig(embedded=False, data_source="sierra_files"))

    async def go():
        rig.ctl.follow(pl)
        before = rig.s.market["ESH4"].last_data_ns
        ev = es_sample.events[3000:3400]
        pl._on_events(ev)  # what any source hands the pipeline
        after = rig.s.market["ESH4"]
        rig.ctl.unfollow()
        return before, after.last_data_ns

    before, after = rig.run(go())
    assert after > before
    assert pl._listeners == []


def test_attach_detach_attach_keeps_one_working_hotkey(qapp, qtbot, es_sample):
    """A pipeline restart detaches and re-attaches the panel: the hotkey must still fire once."""
    import types

    from app.ui.trading_panel import attach_trading

    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    win = QtWidgets.QMainWindow()
    area = QtWidgets.QWidget()
    area.setLayout(QtWidgets.QVBoxLayout())
    win.setCentralWidget(area)
    win.trading_area = area
    win.show()
    qtbot.waitExposed(win)
    ctx = types.SimpleNamespace(instrument=es_sample.instrument, client=None, trade_account="",
                                report=lambda level, text: None)
    try:
        with loop:
            async def go():
                c1 = attach_trading(win, ctx)
                await asyncio.sleep(0.05)
                await c1.shutdown()
                c2 = attach_trading(win, ctx)
                await asyncio.sleep(0.05)
                QtTest.QTest.keyClick(win, QtCore.Qt.Key_K, QtCore.Qt.ControlModifier | QtCore.Qt.ShiftModifier)
                assert c2.session.gate.locked and not c1.session.gate.locked
                for _ in range(200):
                    if c2.session.kill.state == KillState.VERIFIED_FLAT:
                        break
                    await asyncio.sleep(0.01)
                assert c2.session.kill.state == KillState.VERIFIED_FLAT
                await c2.shutdown()

            loop.run_until_complete(asyncio.wait_for(go(), 20))
    finally:
        asyncio.set_event_loop(None)
        win.close()


def test_signal_ticket_shows_the_sizing_arithmetic(rig, qtbot):
    """Issue 14, item 14: the ticket says how the size came about (risk / stop value x regime)."""
    from dataclasses import replace

    note = "250 USD / (8 ticks x 12.50 USD) = 2.50 x regime 1.00 = 2.50 -> 2 contracts"
    dlg = rig.ctl.open_signal_ticket(replace(make_signal(rig.s, +1, 2), sizing=note))
    qtbot.waitExposed(dlg)
    assert dlg.sizing_label.isVisible() and dlg.sizing_label.text() == f"Size: {note}"
    dlg.reject()
