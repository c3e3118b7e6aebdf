"""Own orders and position on the ladder and the heatmap (issue 16 item 2), on the real ES sample.

A paper :class:`TradingSession` is fed the shipped real CME ES hour; orders go through the real
ticket -> risk gate -> paper broker path, and the assertions read the venue's own state (the
paper broker's :class:`~app.sim.matching.FillEngine` working orders), the ladder's paint model
(:attr:`LadderWidget.painted`) and the heatmap overlay's lines.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

from PySide6 import QtCore, QtWidgets  # noqa: E402

from app.config.trading import TradingSettings  # noqa: E402
from app.core.orders import OrderType  # noqa: E402
from app.trading.journal import Journal  # noqa: E402
from app.trading.orders import OrderTicket  # noqa: E402
from app.trading.paper import PaperBroker  # noqa: E402
from app.trading.session import TradingSession  # noqa: E402
from app.ui.heatmap import HeatmapWidget  # noqa: E402
from app.ui.ladder import LadderWidget  # noqa: E402
from app.ui.orders_overlay import OrdersOverlay, OwnOrdersController, own_orders  # noqa: E402

TICK = 0.25


@pytest.fixture(scope="module")
def es_sample():
    from app.feeds.samples import load_default_sample

    return load_default_sample(use_cache=False)


class Rig:
    """A paper session on the real sample, a ladder and a heatmap with the own-orders controller."""

    def __init__(self, qapp, rec):
        qapp.setQuitOnLastWindowClosed(False)
        self.loop = qasync.QEventLoop(qapp)
        asyncio.set_event_loop(self.loop)
        self.inst = rec.instrument
        self.events = rec.events
        self.i = 0
        settings = TradingSettings(stale_data_ms=600_000, max_position_contracts=6, trading_start="00:00",
                                   trading_end="00:00")
        self.s = TradingSession(PaperBroker([self.inst], settings.commission_per_contract_usd), Journal(),
                                settings, self.inst)
        self.win = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(self.win)
        self.heatmap = HeatmapWidget()
        self.ladder = LadderWidget()
        lay.addWidget(self.heatmap, 3)
        lay.addWidget(self.ladder, 1)
        self.win.resize(900, 600)
        self.overlay = OrdersOverlay(self.heatmap)
        self.ctl = OwnOrdersController(self.ladder, self.overlay, lambda: self.s)
        self.win.show()
        self.run(self.s.start())
        self.feed(3000)

    @property
    def engine(self):
        return self.s.broker.engine

    def venue_orders(self) -> dict[str, int]:
        """The paper engine's own working orders: ClientOrderID -> price (ticks)."""
        return {o.client_order_id: int(o.price) for o in self.engine.open_orders()}

    def run(self, coro, timeout=10.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def until(self, pred, timeout=5.0):
        async def w():
            end = time.monotonic() + timeout
            while not pred():
                assert time.monotonic() < end, "condition not reached in time"
                await asyncio.sleep(0.01)
        self.run(w(), timeout + 1)

    def feed(self, n):
        end = min(len(self.events), self.i + n)
        while self.i < end:
            j = min(end, self.i + 200)
            self.s.on_market(self.inst.symbol, self.events[self.i:j])
            self.i = j

    def book(self):
        b = self.engine.books[self.inst.symbol]
        return b.best_bid(), b.best_ask()

    def show_book(self, rows_px: float = 12.0, span: int = 24):
        """Ladder arrays from the paper engine's real book, the view centred on the market."""
        b = self.engine.books[self.inst.symbol]
        bb, ba = b.best_bid(), b.best_ask()
        prices = np.arange(bb - 60, ba + 61, dtype=np.int64)
        bids, asks = b.bids(), b.asks()
        lad = self.ladder
        lad.tick = TICK
        lad.prices = prices
        lad.bid = np.array([bids.get(int(t), 0.0) for t in prices])
        lad.ask = np.array([asks.get(int(t), 0.0) for t in prices])
        lad.volume = np.zeros(len(prices))
        lad.best_bid, lad.best_ask = int(bb), int(ba)
        mid = (bb + ba) / 2 * TICK
        h = span * 2 * rows_px
        lad.set_view(mid - span * TICK, mid + span * TICK, 20.0, h)
        self.heatmap.vb.setRange(xRange=(0, 1), yRange=(mid - span * TICK, mid + span * TICK), padding=0)
        return bb, ba

    def confirm(self, side, qty, order_type, entry, stop, target):
        t = OrderTicket(symbol=self.inst.symbol, side=side, qty=qty, order_type=order_type, entry=entry,
                        stop=stop, target=target, ref_price=self.s.ref_price(self.inst.symbol, side), source="manual",
                        tick_size=TICK, tick_value=self.inst.tick_value)
        d = self.run(self.s.confirm(t))
        assert d.allowed, d.message

    def close(self):
        for dlg in QtWidgets.QApplication.topLevelWidgets():
            if isinstance(dlg, QtWidgets.QDialog):
                dlg.close()
        self.run(self.s.stop())
        self.win.close()
        self.loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def rig(qapp, es_sample):
    r = Rig(qapp, es_sample)
    yield r
    r.close()


def row_at(ladder, frame_row):
    rows = [r for r in ladder.painted if r.price <= frame_row < r.price + r.rows]
    assert rows, f"no painted row holds {frame_row}"
    return rows[0]


def test_working_orders_and_position_are_drawn_in_their_rows_and_as_heatmap_lines(rig, qtbot):
    bb, ba = rig.book()
    # an open long: a market entry fills at once, its stop and target work at the venue
    rig.confirm(+1, 1, OrderType.MARKET, None, bb - 8, ba + 10)
    # a second bracket: a buy limit below the market, its children wait for its fill
    rig.confirm(+1, 2, OrderType.LIMIT, bb - 4, bb - 12, bb + 8)
    assert rig.s.position_qty("ESH4") == 1
    assert sorted(rig.venue_orders().values()) == sorted([bb - 8, ba + 10, bb - 4, bb - 12, bb + 8])
    rig.feed(200)  # a few more real trades: the open P&L moves with the market
    rig.show_book(rows_px=12.0, span=16)
    rig.ctl.refresh()
    rig.ladder.grab()  # paints
    lad = rig.ladder
    stop_row, target_row = row_at(lad, bb - 8), row_at(lad, ba + 10)
    assert stop_row.sell_orders == "S 1 STP" and stop_row.buy_orders == ""
    assert target_row.sell_orders == "S 1 LMT"
    assert row_at(lad, bb - 4).buy_orders == "B 2 LMT"
    assert row_at(lad, bb - 12).sell_orders == "S 2 STP"
    # the position: its average price row carries the open P&L in USD and ticks
    orders, pos = own_orders(rig.s)
    assert pos.qty == 1 and pos.open_pnl_usd == pytest.approx(rig.s.open_pnl_usd("ESH4"))
    assert pos.open_pnl_ticks == pytest.approx(pos.open_pnl_usd / 12.5)
    avg_row = row_at(lad, int(np.floor(pos.avg_price / TICK + 1e-6)))
    assert avg_row.position in pos.pnl_texts and "USD" in pos.pnl_text and pos.pnl_text.endswith(" t")
    assert "$" in avg_row.position or "USD" in avg_row.position
    # cells: sells in the ask column (right half), buys in the bid column (left half)
    for rect, side, cell_orders in lad.order_cells:
        assert (rect.center().x() > lad.width() / 2) == (side < 0)
        assert all(o.side == side for o in cell_orders)
    assert {o.client_order_id for _, _, os_ in lad.order_cells for o in os_} == set(rig.venue_orders())
    # the heatmap: one line per working order at its price, stops dashed, and the average price line
    drawn = {(price, label, kind) for price, label, kind in rig.overlay.drawn if kind != "position"}
    assert ((bb - 8) * TICK, "S 1 STP", "sell-stop") in drawn
    assert ((ba + 10) * TICK, "S 1 LMT", "sell") in drawn
    assert ((bb - 4) * TICK, "B 2 LMT", "buy") in drawn
    lines = [ln for ln in rig.overlay._lines if ln.isVisible()]
    assert len(lines) == 5 and all(ln.scene() is rig.heatmap.scene() for ln in lines)
    stop_line = next(ln for ln in lines if ln.value() == (bb - 8) * TICK)
    assert stop_line.pen.style() == QtCore.Qt.DashLine and "S 1 STP" in stop_line.label.format
    pl = rig.overlay.position_line
    assert pl.isVisible() and pl.value() == pytest.approx(pos.avg_price) and "USD" in pl.label.format


def test_lines_and_cells_follow_the_venue_when_orders_end(rig, qtbot):
    bb, ba = rig.book()
    rig.confirm(-1, 1, OrderType.LIMIT, ba + 6, ba + 14, ba - 2)
    rig.show_book()
    rig.ctl.refresh()
    assert len([d for d in rig.overlay.drawn if d[2] != "position"]) == 3
    entry = next(cid for cid, wo in rig.s.broker.orders.items() if wo.request.role == "entry")
    rig.run(rig.s.cancel_order(entry))  # the venue cancels the entry and its children
    assert rig.venue_orders() == {}
    rig.ctl.refresh()  # the session listener already refreshed; once more is harmless
    rig.ladder.grab()
    assert rig.overlay.drawn == [] and not any(ln.isVisible() for ln in rig.overlay._lines)
    assert not any(r.buy_orders or r.sell_orders for r in rig.ladder.painted)
    assert rig.ladder.order_cells == []


# ---------------------------------------------------------------------------------- item 2: gestures
def cell_of(ladder, client_order_id):
    for rect, side, orders in ladder.order_cells:
        if any(o.client_order_id == client_order_id for o in orders):
            return rect
    raise AssertionError(f"no cell for {client_order_id}")


def order_id(rig, role, side=None):
    return next(cid for cid, wo in rig.s.broker.orders.items()
                if wo.request.role == role and (side is None or wo.request.side == side) and wo.state.working)


def test_a_click_on_an_order_cell_cancels_it_at_the_venue_without_confirmation(rig, qtbot):
    bb, ba = rig.book()
    rig.confirm(-1, 1, OrderType.LIMIT, ba + 6, ba + 14, ba - 2)
    entry = order_id(rig, "entry")
    assert entry in rig.venue_orders()
    rig.show_book()
    rig.ctl.refresh()
    rig.ladder.grab()
    rect = cell_of(rig.ladder, entry)
    assert rect.center().x() > rig.ladder.width() / 2  # a sell: ask-side column
    qtbot.mouseClick(rig.ladder, QtCore.Qt.LeftButton, pos=rect.center().toPoint())
    rig.until(lambda: entry not in rig.venue_orders())
    assert rig.venue_orders() == {}  # its bracket children went with it (the venue's rule)
    assert rig.s.broker.orders[entry].state.final
    assert QtWidgets.QApplication.activeModalWidget() is None and rig.ctl.dialog is None  # no confirmation asked
    rig.ladder.grab()
    assert not any(r.sell_orders for r in rig.ladder.painted)


def drag(qtbot, widget, start: QtCore.QPoint, end: QtCore.QPoint):
    qtbot.mousePress(widget, QtCore.Qt.LeftButton, pos=start)
    mid = QtCore.QPoint(start.x(), (start.y() + end.y()) // 2)
    qtbot.mouseMove(widget, pos=mid)
    qtbot.mouseMove(widget, pos=end)
    qtbot.mouseRelease(widget, QtCore.Qt.LeftButton, pos=end)


def test_dragging_a_stop_opens_the_modify_ticket_and_the_venue_moves_only_after_confirm(rig, qtbot):
    bb, ba = rig.book()
    rig.confirm(+1, 1, OrderType.MARKET, None, bb - 8, ba + 10)  # long 1, stop and target work
    stop = order_id(rig, "stop")
    assert rig.venue_orders()[stop] == bb - 8
    rig.show_book(rows_px=12.0)
    rig.ctl.refresh()
    rig.ladder.grab()
    rect = cell_of(rig.ladder, stop)
    new = bb - 11
    end = QtCore.QPoint(int(rect.center().x()), int(round(rig.ladder.price_to_y(new * TICK))))
    opened = []
    rig.ctl.sigModifyTicketOpened.connect(opened.append)
    drag(qtbot, rig.ladder, rect.center().toPoint(), end)
    assert len(opened) == 1
    dlg = rig.ctl.dialog
    assert dlg is opened[0] and dlg.client_order_id == stop
    assert dlg.price.value() == new * TICK and dlg.from_label.text() == f"{(bb - 8) * TICK:.2f}"
    assert "ALLOWED" in dlg.verdict_label.text() and dlg.confirm_button.isEnabled()
    assert "USD" in dlg.risk_label.text()
    # confirm-to-trade: nothing moves at the venue while the ticket is open
    rig.feed(100)
    rig.run(asyncio.sleep(0.05))
    assert rig.venue_orders()[stop] == bb - 8 and rig.s.broker.orders[stop].request.price == bb - 8
    qtbot.mouseClick(dlg.confirm_button, QtCore.Qt.LeftButton)
    rig.until(lambda: rig.venue_orders().get(stop) == new)
    assert rig.s.broker.orders[stop].request.price == new  # the venue's replace report, taken locally
    kinds = [r[0] for r in rig.s.journal.query("SELECT kind FROM events")]
    assert "modify_request" in kinds
    rig.ladder.grab()
    assert row_at(rig.ladder, new).sell_orders == "S 1 STP"
    assert row_at(rig.ladder, bb - 8).sell_orders == ""


def test_a_cancelled_or_refused_move_sends_nothing_and_its_confirm_looks_disabled(rig, qtbot):
    bb, ba = rig.book()
    rig.confirm(+1, 1, OrderType.MARKET, None, bb - 8, ba + 10)
    stop = order_id(rig, "stop")
    rig.show_book(rows_px=12.0)
    rig.ctl.refresh()
    rig.ladder.grab()
    rect = cell_of(rig.ladder, stop)
    end = QtCore.QPoint(int(rect.center().x()), int(round(rig.ladder.price_to_y((bb - 10) * TICK))))
    drag(qtbot, rig.ladder, rect.center().toPoint(), end)
    dlg = rig.ctl.dialog
    qtbot.waitExposed(dlg)
    ok_img = dlg.confirm_button.grab().toImage()
    # 50 ticks of risk: 625 USD > max_risk_per_trade_usd 500: refused, Confirm disabled
    dlg.price.setValue((bb - 50) * TICK)
    assert not dlg.confirm_button.isEnabled() and "max_risk_per_trade" in dlg.verdict_label.text()
    qtbot.keyClick(dlg, QtCore.Qt.Key_Return, QtCore.Qt.ControlModifier)
    dlg.confirm()
    off_img = dlg.confirm_button.grab().toImage()
    on = ok_img.pixelColor(6, ok_img.height() // 2)
    off = off_img.pixelColor(6, off_img.height() // 2)
    assert on.green() > on.red() + 60 and on.hsvSaturation() > 150  # allowed: green
    assert off.hsvSaturation() < 60  # disabled: grey, not the green of an allowed one
    # the order ticket's Confirm the same way (issue 16 item 10: a disabled Confirm looked enabled)
    from app.ui.trading_ticket import OrderTicketDialog

    refused = OrderTicketDialog(rig.s, rig.s.ticket_from_price(bb - 4, +1, qty=5))  # > max_contracts_per_order
    refused.show()
    qtbot.waitExposed(refused)
    assert not refused.confirm_button.isEnabled()
    img = refused.confirm_button.grab().toImage()
    c = img.pixelColor(6, img.height() // 2)
    assert c.hsvSaturation() < 60 and c != on
    refused.reject()
    rig.run(asyncio.sleep(0.05))
    assert rig.venue_orders()[stop] == bb - 8
    qtbot.keyClick(dlg, QtCore.Qt.Key_Escape)
    rig.until(lambda: rig.ctl.dialog is None)
    assert rig.venue_orders()[stop] == bb - 8
    assert "modify_request" not in [r[0] for r in rig.s.journal.query("SELECT kind FROM events")]


def test_shift_double_click_prefills_a_stop_ticket_and_a_plain_one_a_limit(rig, qtbot):
    from app.ui.trading_panel import TradingController, TradingPanel, _LadderClicks

    panel = TradingPanel()
    ctl = TradingController(rig.s, panel)
    rig.ladder.installEventFilter(_LadderClicks(rig.ladder, ctl))
    bb, ba = rig.show_book(rows_px=12.0)
    y = int(round(rig.ladder.price_to_y((ba + 4) * TICK)))
    qtbot.mouseDClick(rig.ladder, QtCore.Qt.LeftButton, QtCore.Qt.ShiftModifier, pos=QtCore.QPoint(30, y))
    dlg = ctl.dialog
    assert dlg is not None and dlg.base.order_type == OrderType.STOP and dlg.base.side == 1
    assert dlg.base.entry == ba + 4 and dlg.type_box.currentText() == "stop"
    assert dlg.ticket().order_type == OrderType.STOP
    assert rig.venue_orders() == {}  # nothing before Confirm
    qtbot.mouseClick(dlg.confirm_button, QtCore.Qt.LeftButton)
    rig.until(lambda: len(rig.venue_orders()) == 3)
    entry = next(o for o in rig.engine.open_orders() if not o.parent_id and o.order_type == OrderType.STOP)
    assert int(entry.price) == ba + 4 and int(entry.side) == 1
    qtbot.mouseDClick(rig.ladder, QtCore.Qt.LeftButton, pos=QtCore.QPoint(30, int(round(rig.ladder.price_to_y((bb - 6) * TICK)))))
    assert ctl.dialog.base.order_type == OrderType.LIMIT and ctl.dialog.base.entry == bb - 6
    ctl.dialog.reject()
    panel.close()


def test_modify_moves_the_order_at_the_built_in_dtc_server(es_sample):
    """DtcBroker.modify: CANCEL_REPLACE_ORDER to the built-in server; its engine holds the new price."""
    from app.dtc.client import DTCClient
    from app.sim.server import DTCServer
    from app.trading.dtc_broker import DtcBroker

    async def go():
        rec, sym = es_sample, es_sample.instrument.symbol
        server = DTCServer(rec, port=0, paused=True, loop_replay=False)
        await server.start()
        client = DTCClient("127.0.0.1", server.port, trade_account="Sim1", heartbeat_s=5, request_timeout_s=3.0)
        broker = DtcBroker(client, [rec.instrument], "Sim1", own_client=True)
        settings = TradingSettings(mode="sim", account="Sim1", stale_data_ms=600_000, trading_start="00:00",
                                   trading_end="00:00")
        s = TradingSession(broker, Journal(), settings, rec.instrument)
        try:
            await s.start()
            await client.subscribe_market(sym, on_events=lambda b: s.on_market(sym, b), tick_size=rec.instrument.tick_size)
            server.publish(sym, rec.events[:3000])

            async def until(pred):
                end = time.monotonic() + 10
                while not pred():
                    assert time.monotonic() < end, "condition not reached in time"
                    await asyncio.sleep(0.01)

            await until(lambda: s.market.get(sym) is not None and s.market[sym].best_bid is not None)
            book = server.engine.books[sym]
            bb = book.best_bid()
            t = OrderTicket(symbol=sym, side=1, qty=1, order_type=OrderType.LIMIT, entry=bb - 6, stop=bb - 14,
                            target=bb + 4, ref_price=bb, tick_size=TICK, tick_value=12.5)
            assert (await s.confirm(t)).allowed
            cid = next(c for c, wo in broker.orders.items() if wo.request.role == "entry")
            await until(lambda: broker.server_id(cid) != "")
            venue = {o.client_order_id: o for o in server.engine.open_orders()}
            assert int(venue[cid].price) == bb - 6
            d = await s.modify_order(cid, bb - 9)
            assert d.allowed
            await until(lambda: int(server.engine.find_open(cid).price) == bb - 9)
            await until(lambda: broker.orders[cid].request.price == bb - 9)
        finally:
            await s.stop()
            await server.stop()

    asyncio.run(go())


def test_orders_still_show_when_the_ladder_groups_rows_on_real_data(rig, qtbot):
    """Issue 16 item 4 with item 2: at 4 px a price row the ladder groups rows; own orders and the
    position mark stay in the group that holds their price, and every row keeps its numbers."""
    bb, ba = rig.book()
    rig.confirm(+1, 1, OrderType.MARKET, None, bb - 9, ba + 11)
    rig.show_book(rows_px=4.0, span=60)
    rig.ctl.refresh()
    rig.ladder.grab()
    lad = rig.ladder
    k = lad.grouping
    assert k >= 4 and all(r.price_text and r.rows == k for r in lad.painted)
    assert row_at(lad, bb - 9).sell_orders == "S 1 STP" and row_at(lad, ba + 11).sell_orders == "S 1 LMT"
    _, pos = own_orders(rig.s)
    assert row_at(lad, int(np.floor(pos.avg_price / TICK + 1e-6))).position in pos.pnl_texts


def test_the_window_draws_own_orders_and_a_click_on_the_ladder_cancels_at_the_venue(qapp, tmp_path, monkeypatch):
    """The wiring in MainWindow: the built-in server replays the real sample, the paper session's
    working order appears on the window's ladder and heatmap, a click on its cell cancels it in
    the paper FillEngine."""
    from PySide6 import QtTest

    from app.live.pipeline import PipelineConfig
    from app.ui.main_window import MainWindow
    from qt_loop import close_window, run_on_qt, wait_until

    from app.config.trading import trading_settings_path

    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    # the replay's quiet stretches must not make the gate refuse the test's order as stale data
    trading_settings_path().write_text("[trading]\nstale_data_ms = 600000\ntrading_start = \"00:00\"\n"
                                       "trading_end = \"00:00\"\n", encoding="utf-8")
    out: dict = {}

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=2.0, profile="production", loop_replay=False), prefs=None)
        w.resize(1400, 900)
        w.show()
        await w.start()
        try:
            ok = await wait_until(lambda: w.frames_drawn > 0 and w.trading is not None
                                  and w.trading.session.market.get(w.pipeline.instrument.symbol) is not None
                                  and w.trading.session.market[w.pipeline.instrument.symbol].best_bid is not None, 240)
            out["ready"] = ok
            if not ok:
                return
            s = w.trading.session
            sym = s.instrument.symbol
            eng = s.broker.engine
            for attempt in range(3):
                bb = s.market[sym].best_bid
                # 10 ticks below the bid (6 filled once in a full run and the order's cell was gone
                # before the click; 40 is off the ladder's rows)
                t = OrderTicket(symbol=sym, side=1, qty=1, order_type=OrderType.LIMIT, entry=bb - 10,
                                stop=bb - 18, target=bb + 4, ref_price=s.ref_price(sym, 1),
                                tick_size=s.instrument.tick_size, tick_value=s.instrument.tick_value)
                d = await s.confirm(t)
                out["allowed"] = (d.allowed, d.message)
                if not d.allowed:
                    return
                entry = next(c for c, wo in reversed(list(s.broker.orders.items()))
                             if wo.request.role == "entry")  # this attempt's

                def working(entry=entry):
                    return entry in {o.client_order_id for o in eng.open_orders()}

                out["venue_before"] = working()
                out["drawn"] = await wait_until(
                    lambda: not working() or (any(r.buy_orders == "B 1 LMT" for r in w.ladder.painted)
                                              and any(lbl == "B 1 LMT" for _p, lbl, _k in w.own_orders.overlay.drawn)),
                    60) and working()
                if out["drawn"] or working():
                    break
                # the market reached the entry before it was drawn (a fill, not a drawing fault):
                # flatten what filled and try again from the new bid
                out.setdefault("filled_before_drawn", 0)
                out["filled_before_drawn"] += 1
                await s.flatten_position(sym)
                await wait_until(lambda: not any(wo.state.working for wo in s.broker.orders.values()), 30)
            out["state"] = (working(), [r.buy_orders for r in w.ladder.painted if r.buy_orders],
                            list(w.own_orders.overlay.drawn))
            out["on_heatmap"] = await wait_until(lambda: any(ln.isVisible() and ln.scene() is w.heatmap.scene()
                                                             for ln in w.own_orders.overlay._lines), 30)
            cells = []

            def entry_cell():
                cells[:] = [r for r, side, os_ in w.ladder.order_cells
                            if any(o.client_order_id == entry for o in os_)]
                return bool(cells)

            out["cell"] = await wait_until(entry_cell, 30)
            if not out["cell"]:
                return
            QtTest.QTest.mouseClick(w.ladder, QtCore.Qt.LeftButton, pos=cells[0].center().toPoint())
            out["cancelled"] = await wait_until(lambda: entry not in {o.client_order_id for o in eng.open_orders()}, 30)
            out["undrawn"] = await wait_until(lambda: not any(r.buy_orders for r in w.ladder.painted), 30)
        finally:
            await close_window(w)

    run_on_qt(qapp, main)
    assert out.get("ready"), "the window did not get data and a trading session in time"
    assert out["allowed"][0], out["allowed"][1]
    assert out["venue_before"], "the confirmed entry was not working at the venue"
    assert out["drawn"], ("the working entry was not drawn on the ladder and the overlay", out["state"])
    assert out["on_heatmap"], ("no own-order line on the heatmap", out["state"])
    assert out["cell"], "the entry's ladder cell was never painted"
    assert out["cancelled"] and out["undrawn"]


def test_the_gate_judges_a_move_by_the_risk_after_it(rig):
    """TradingSession.modify_context: the loss if the stop fills after the move, on real prices."""
    bb, ba = rig.book()
    rig.confirm(+1, 2, OrderType.LIMIT, bb - 4, bb - 12, bb + 8)  # entry working, children pending
    s = rig.s
    entry, stop, target = (order_id(rig, r) for r in ("entry", "stop", "target"))
    assert s.modify_context(entry, bb - 6).risk_usd == 6 * 2 * 12.5  # new entry to its stop
    assert s.modify_context(stop, bb - 20).risk_usd == 16 * 2 * 12.5  # entry (still working) to the new stop
    assert s.modify_context(target, bb + 12).risk_usd == 8 * 2 * 12.5  # a target move keeps the stop's risk
    ctx = s.modify_context(entry, bb - 6)
    assert ctx.pending_qty == 0 and ctx.trades_today == 0  # the moved entry is not counted twice
    with pytest.raises(ValueError, match="cross its stop"):
        s.modify_context(entry, bb - 13)
    assert not s.preview_modify(stop, bb - 40).allowed  # 28 ticks x 2 = 700 USD > 500 USD
    s.gate.lock("kill switch: test")
    d = rig.run(s.modify_order(stop, bb - 14))
    assert not d.allowed and d.rule == "kill_switch_engaged"
    assert rig.venue_orders()[stop] == bb - 12  # refused: nothing reached the venue
    s.gate.unlock()
    assert rig.run(s.modify_order(stop, bb - 14)).allowed
    assert rig.venue_orders()[stop] == bb - 14
    n = s.journal.query("SELECT COUNT(*) FROM gate_decisions")[0][0]
    assert n == 3  # the bracket's, the refused move's and the allowed move's decisions
    rig.run(s.cancel_order(entry))
    with pytest.raises(ValueError, match="not working"):
        s.modify_context(entry, bb - 5)
