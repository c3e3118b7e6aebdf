"""Issue 17: in a split view, the trader chooses which instrument each cell shows.

Three instruments in split 2 (the real BTCUSDT and ETHUSDT captures of 2024-08-08 and the real
ES hour, a frame each from a headless engine): the third panel is out of view and keeps its
newest frame; :meth:`PanelArea.show_in_cell` (a right-click on a panel's header: "Show in this
cell") puts it in a cell, where it draws that frame at once, and the tabs follow the new order.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

pytestmark = pytest.mark.timeout(600)

BTC, ETH, ES = "BTCUSDT", "ETHUSDT", "ESH4"


@pytest.fixture(scope="module")
def frames(shared_data):
    """Symbol -> two frames (after 60 and 120 chunks, or a third and two thirds) of each real recording."""
    from app.cli.analyze import load_any
    from app.core.events import chunks
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine, resolve_profile

    srcs = [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz")), load_default_sample()]
    out = {}
    for src in srcs:
        eng = AnalysisEngine(src.instrument, resolve_profile("production"))
        got = []
        cs = list(chunks(src.events[:200_000]))
        at = (min(60, len(cs) // 3), min(120, 2 * len(cs) // 3))
        for i, c in enumerate(cs[:at[1] + 1]):
            eng.process(c)
            if i in at:
                got.append(eng.snapshot_frame())
        assert len(got) == 2
        out[src.instrument.symbol] = got
    assert set(out) == {BTC, ETH, ES}
    return out


def _window(qtbot):
    """A window (not started) with three instrument panels in split 2, as ``_adopt_runtime`` lays them out."""
    from app.ui.main_window import MainWindow

    w = MainWindow(prefs=None)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.panels[0].symbol = BTC
    w._add_panel(ETH)
    w._add_panel(ES)
    w.panel_area.set_panels(w.panels)
    w._show_layout_control()
    w.set_panel_layout("split2")
    w.show()
    qtbot.waitExposed(w)
    return w


def test_show_in_cell_puts_a_hidden_panel_in_view_and_it_draws_its_pending_frame(qtbot, frames):
    w = _window(qtbot)
    area = w.panel_area
    btc, eth, es = w.panels
    assert area.visible_panels() == [btc, eth]
    for sym in (BTC, ETH, ES):
        w.draw_frame(frames[sym][0])
    assert btc.frames_drawn == 1 and eth.frames_drawn == 1
    assert es.frames_drawn == 0 and es.last_frame is None and es._pending is frames[ES][0]  # out of view
    seen = []
    area.sigVisibleChanged.connect(lambda: seen.append(list(area.visible_panels())))
    area.show_in_cell(1, es)
    assert area.visible_panels() == [btc, es]
    assert seen and seen[-1] == [btc, es]
    assert es.last_frame is frames[ES][0] and es.frames_drawn == 1 and es._pending is None
    assert es.isVisible() and not eth.isVisible() and btc.isVisible()
    assert area.time_link.panels == [btc, es]
    # the window's order of instruments (its runtime's) is unchanged; the area's is the cells' order
    assert w.panels == [btc, eth, es] and area.panels == [btc, es, eth]
    # ETH, out of view now, keeps its newest frame until it is shown again (by its symbol)
    w.draw_frame(frames[ETH][1])
    assert eth.frames_drawn == 1 and eth._pending is frames[ETH][1]
    area.show_in_cell(0, ETH)
    assert area.visible_panels() == [eth, es] and area.panels == [eth, es, btc]
    assert eth.last_frame is frames[ETH][1] and eth.frames_drawn == 2
    # the same panel in its own cell: nothing changes; two visible ones change places
    area.show_in_cell(0, eth)
    assert area.visible_panels() == [eth, es]
    area.show_in_cell(0, es)
    assert area.visible_panels() == [es, eth] and area.panels == [es, eth, btc]


def test_the_tabs_follow_the_new_order_and_the_split_view_keeps_it(qtbot, frames):
    w = _window(qtbot)
    area = w.panel_area
    btc, eth, es = w.panels
    area.show_in_cell(1, es)
    w.set_panel_layout("tabs")
    assert [area.tabs.tabText(i) for i in range(area.tabs.count())] == [BTC, ES, ETH]
    assert area.visible_panels() == [btc]
    area.show_in_cell(0, ETH)  # in tabs: the one cell is the current tab, the order is kept
    assert area.visible_panels() == [eth] and area.tabs.currentIndex() == 2
    assert [area.tabs.tabText(i) for i in range(area.tabs.count())] == [BTC, ES, ETH]
    w.set_panel_layout("split2")
    assert area.visible_panels() == [btc, es]
    w.set_panel_layout("split4")
    assert area.visible_panels() == [btc, es, eth]


def test_bad_cells_and_unknown_instruments_are_named(qtbot, frames):
    from app.ui.instrument_panel import InstrumentPanel

    w = _window(qtbot)
    area = w.panel_area
    with pytest.raises(ValueError, match=r"no panel of 'NQH4'; known symbols: BTCUSDT, ETHUSDT, ESH4"):
        area.show_in_cell(0, "NQH4")
    stranger = InstrumentPanel("CLH4")
    qtbot.addWidget(stranger)
    with pytest.raises(ValueError, match=r"'CLH4' is not in this area; known symbols: BTCUSDT, ETHUSDT, ESH4"):
        area.show_in_cell(0, stranger)
    with pytest.raises(ValueError, match=r"cell 2 is not on screen; cells of split2 with 3 panel\(s\): 0, 1"):
        area.show_in_cell(2, ES)
    for bad in (-1, "1", 1.0, None):
        with pytest.raises(ValueError, match="is not on screen"):
            area.show_in_cell(bad, ES)
    assert area.visible_panels() == w.panels[:2]  # nothing moved


def test_a_right_click_on_a_header_offers_the_other_instruments_for_its_cell(qtbot, frames, monkeypatch):
    w = _window(qtbot)
    area = w.panel_area
    btc, eth, es = w.panels
    w.draw_frame(frames[ES][0])  # ES out of view: kept
    assert eth.header.isVisible() and eth.header.contextMenuPolicy() == QtCore.Qt.CustomContextMenu
    menu = area.header_menu(eth)
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Show in this cell", f"{BTC}  (in cell 1: swap)", ES]
    assert not menu.actions()[0].isEnabled()
    assert area.header_menu(es) is None  # out of view: no cell
    # the right-click itself: the menu opens at the header, the trader picks ES
    shown = []

    def fake_exec(menu, at):
        shown.append(([a.text() for a in menu.actions()], at))
        next(a for a in menu.actions() if a.data() == ES).trigger()

    monkeypatch.setattr(area, "exec_menu", fake_exec)
    at = eth.header.mapToGlobal(QtCore.QPoint(4, 4))
    eth.header.customContextMenuRequested.emit(QtCore.QPoint(4, 4))
    assert shown and shown[0][0][0] == "Show in this cell"
    assert shown[0][1] == at  # at the click
    assert area.visible_panels() == [btc, es]
    assert es.last_frame is frames[ES][0]
    # the View menu offers the same per cell
    w.cells_menu.aboutToShow.emit()
    subs = [a.menu() for a in w.cells_menu.actions() if a.menu() is not None]
    assert [m.title() for m in subs] == [f"Cell 1: {BTC}", f"Cell 2: {ES}"]
    assert [a.text() for a in subs[0].actions()] == [ES, ETH]
    next(a for a in subs[0].actions() if a.text() == ETH).trigger()
    assert area.visible_panels() == [eth, es]
    assert w.cells_menu.menuAction().isVisible()


def test_one_instrument_has_no_cell_choice(qtbot):
    from app.ui.main_window import MainWindow

    w = MainWindow(prefs=None)
    qtbot.addWidget(w)
    area = w.panel_area
    assert area.header_menu(w.panels[0]) is None
    assert not w.cells_menu.menuAction().isVisible()
    area.show_in_cell(0, w.panels[0])  # its own cell: nothing to do
    assert area.visible_panels() == w.panels


def test_a_signal_chosen_in_the_tape_brings_its_instrument_into_the_first_cell(qtbot, frames):
    """In split 2 with three instruments, choosing a signal of the one out of view puts its
    panel in the first cell and jumps its heatmap there (before, only tabs were switched)."""
    from app.analysis.frame import Signal

    w = _window(qtbot)
    area = w.panel_area
    btc, eth, es = w.panels
    for sym in (BTC, ETH, ES):
        w.draw_frame(frames[sym][0])
    f = frames[ES][0]
    mid = int((f.best_bid + f.best_ask) // 2)
    sig = Signal(id=7, ts=int(f.ts), symbol=ES, side=1, score=0.8, components=(), reasons=(),
                 entry=mid, stop=mid - 8, target=mid + 8, size=1)
    w._on_signal_selected(sig)
    assert area.visible_panels() == [es, eth]
    (x0, x1), _ = es.heatmap.vb.viewRange()
    assert x0 <= f.ts / 1e9 <= x1 and not es.heatmap.following
