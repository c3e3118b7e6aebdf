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
