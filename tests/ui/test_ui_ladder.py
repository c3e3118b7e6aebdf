"""The ladder always shows numbers (issue 16 item 4, ladder part): price rows grouped so that a
row fits a line of text, fonts in points measured on the widget (DPI and Windows scaling).

Assertions read the ladder's paint model (:attr:`LadderWidget.painted`), not pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtGui  # noqa: E402

from app.ui.ladder import LadderWidget, group_rows, row_grouping  # noqa: E402
from app.ui.orders_overlay import OwnOrder  # noqa: E402

TICK = 0.25
BASE = 19_000


def book_ladder(qtbot, row_px: float, n: int = 400, width: int = 260, height: int = 600):
    """A ladder with ``n`` rows of a hand-built book (bids below BASE + n/2, asks above), each row
    ``row_px`` pixels high."""
    lad = LadderWidget()
    qtbot.addWidget(lad)
    lad.resize(width, height)
    lad.show()
    prices = np.arange(BASE, BASE + n, dtype=np.int64)
    mid = BASE + n // 2
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 60, n).astype(float)
    lad.tick = TICK
    lad.prices = prices
    lad.bid = np.where(prices < mid, sizes, 0.0)
    lad.ask = np.where(prices > mid, sizes, 0.0)
    lad.volume = np.where(np.abs(prices - mid) < 10, 5.0, 0.0)
    lad.best_bid, lad.best_ask = mid - 1, mid + 1
    rows_visible = (height - 40) / row_px
    lo = (mid - rows_visible / 2) * TICK
    hi = (mid + rows_visible / 2) * TICK
    lad.set_view(lo, hi, 20.0, height - 40.0)
    return lad


def test_grouping_is_the_smallest_of_1_2_4_5_10_whose_row_fits_the_text():
    assert row_grouping(14.0, 13.9) == 1
    assert row_grouping(10.0, 13.9) == 2
    assert row_grouping(7.0, 13.9) == 2
    assert row_grouping(4.0, 13.9) == 4
    assert row_grouping(3.0, 13.9) == 5
    assert row_grouping(2.0, 13.9) == 10
    assert row_grouping(1.0, 13.9) == 20  # past 10: the same steps times 10
    assert row_grouping(0.5, 13.9) == 40
    assert row_grouping(0.3, 13.9) == 50
    assert row_grouping(0.0, 13.9) == 10 ** 6
    for h in (0.05, 0.7, 1.3, 2.9, 3.5, 6.9, 13.0):
        k = row_grouping(h, 13.9)
        assert k * h >= 13.9
        assert not any(s * h >= 13.9 for s in (1, 2, 4, 5, 10, 20, 40, 50, 100, 200, 400, 500) if s < k)


def test_group_rows_sums_each_group_of_k_rows():
    prices = np.array([7, 8, 9, 10, 11, 12, 13], dtype=np.int64)
    bid = np.array([1.0, 2, 3, 4, 0, 0, 0])
    ask = np.array([0.0, 0, 0, 0, 5, 6, 7])
    vol = np.arange(7, dtype=float)
    g, b, a, v = group_rows(prices, bid, ask, vol, 4)
    assert g.tolist() == [1, 2, 3]  # rows 4..7, 8..11, 12..15
    assert b.tolist() == [1.0, 9.0, 0.0] and a.tolist() == [0.0, 5.0, 13.0] and v.tolist() == [0.0, 10.0, 11.0]
    same = group_rows(prices, bid, ask, vol, 1)
    assert same[0] is prices and same[1] is bid


def test_at_4_px_a_row_the_ladder_still_paints_numbers_in_grouped_rows(qtbot):
    lad = book_ladder(qtbot, row_px=4.0)
    lad.grab()  # paints
    k = lad.grouping
    assert lad.text_height > 8 and k == row_grouping(4.0, lad.text_height) and k >= 4
    rows = lad.painted
    assert len(rows) >= 20
    for r in rows:
        assert r.rows == k and r.price % k == 0 and r.h == pytest.approx(4.0 * k)
        assert r.h >= lad.text_height  # the text fits its row
        assert r.price_text == f"{r.price * TICK:.2f}"  # every row has its price
    # the sizes drawn are the group sums of the book
    by_price = {int(p): (b, a) for p, b, a in zip(lad.prices, lad.bid, lad.ask)}
    some = [r for r in rows if r.bid_text][:5]
    assert some
    for r in some:
        total = sum(by_price.get(p, (0, 0))[0] for p in range(r.price, r.price + k))
        assert r.bid_text == str(int(total))
    # rows are stacked without gaps or overlaps: each group exactly k price rows high
    ys = [r.y for r in rows]
    assert all(abs((y1 - y0) - 4.0 * k) < 1e-6 for y0, y1 in zip(ys, ys[1:]))


def test_tall_rows_are_not_grouped_and_zooming_out_groups_more(qtbot):
    lad = book_ladder(qtbot, row_px=20.0)
    lad.grab()
    assert lad.grouping == 1 and all(r.rows == 1 and r.price_text for r in lad.painted)
    ks = []
    for px in (9.0, 4.0, 2.5, 1.2):
        lad2 = book_ladder(qtbot, row_px=px, n=2000)
        lad2.grab()
        ks.append(lad2.grouping)
        assert all(r.price_text for r in lad2.painted)
    assert ks == sorted(ks) and ks[0] >= 2 and ks[-1] >= 10


def test_an_order_inside_a_grouped_row_still_shows(qtbot):
    lad = book_ladder(qtbot, row_px=4.0)
    lad.grab()
    k = lad.grouping
    mid = BASE + 200
    g0 = (mid - 20) // k * k  # a group below the market
    inner = g0 + k - 1  # not the group's own (lowest) price
    buy = OwnOrder("C1", 1, 2, "limit", inner * TICK, inner, "entry")
    stop = OwnOrder("C2", 1, 1, "stop", (g0 + 1) * TICK, g0 + 1, "entry")
    sell = OwnOrder("C3", -1, 1, "stop", (mid + 31) * TICK, mid + 31, "stop")
    lad.set_orders([buy], None, TICK)
    lad.grab()
    row = next(r for r in lad.painted if r.price == g0)
    assert row.buy_orders == "B 2 LMT" and row.rows == k
    (rect, side, orders), = lad.order_cells
    assert side == 1 and orders == (buy,) and rect.top() == pytest.approx(row.y)
    # two orders in one grouped row: one cell, its text fits (labels, or side / contracts / count)
    lad.set_orders([stop, buy, sell], None, TICK)
    lad.grab()
    row = next(r for r in lad.painted if r.price == g0)
    assert row.buy_orders in ("B 1 STP, B 2 LMT", "B 3 x2")
    fm = QtGui.QFontMetricsF(lad._bold, lad)
    assert fm.horizontalAdvance(row.buy_orders) <= lad.width() * 0.26
    srow = next(r for r in lad.painted if r.price <= mid + 31 < r.price + k)
    assert srow.sell_orders == "S 1 STP"
    assert sorted(len(c[2]) for c in lad.order_cells) == [1, 2]


def test_fonts_are_point_sizes_that_follow_the_widget_font(qtbot):
    lad = book_ladder(qtbot, row_px=12.0)
    lad.grab()
    assert lad._font.pointSizeF() > 0 and lad._font.pixelSize() == -1  # points, not pixels
    small_h, small_k = lad.text_height, lad.grouping
    f = QtGui.QFont(lad.font())
    f.setPointSizeF(lad.font().pointSizeF() * 2)
    lad.setFont(f)  # a larger desktop font (or a higher DPI setting) reaches the ladder
    lad.grab()
    assert lad._font.pointSizeF() == pytest.approx(f.pointSizeF())
    assert lad.text_height > 1.6 * small_h
    assert lad.grouping > small_k and all(r.h >= lad.text_height for r in lad.painted)


_SCALED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PySide6 import QtWidgets
    from app.ui.ladder import LadderWidget
    app = QtWidgets.QApplication([])
    lad = LadderWidget()
    lad.resize(260, 600)
    lad.show()
    prices = np.arange(19000, 19400, dtype=np.int64)
    lad.tick = 0.25
    lad.prices = prices
    lad.bid = np.where(prices < 19200, 10.0, 0.0)
    lad.ask = np.where(prices > 19200, 12.0, 0.0)
    lad.volume = np.zeros(400)
    lad.best_bid, lad.best_ask = 19199, 19201
    lad.set_view((19200 - 70) * 0.25, (19200 + 70) * 0.25, 20.0, 560.0)  # 4 px a row
    img = lad.grab().toImage()
    json.dump({"dpr": lad.devicePixelRatioF(), "image_h": img.height(), "text_h": lad.text_height,
               "k": lad.grouping, "rows": len(lad.painted),
               "with_text": sum(1 for r in lad.painted if r.price_text),
               "fits": all(r.h >= lad.text_height for r in lad.painted)}, sys.stdout)
""")


def _scaled(factor: str, repo_root) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR=factor, PYTHONPATH=str(repo_root))
    out = subprocess.run([sys.executable, "-c", _SCALED], env=env, capture_output=True, text=True, timeout=120,
                         cwd=str(repo_root))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_windows_scaling_125_and_150_percent_keeps_every_row_readable(repo_root):
    """Qt scales logical pixels by the device pixel ratio (Windows 125 % / 150 %): the fonts are
    points measured on the widget, so the text keeps its size in logical pixels (within the
    pixel that hinting at the finer resolution moves it) and every row still fits its text."""
    base = _scaled("1", repo_root)
    assert base["dpr"] == 1.0 and base["fits"] and base["with_text"] == base["rows"] > 10
    for factor in ("1.25", "1.5"):
        s = _scaled(factor, repo_root)
        assert s["dpr"] == pytest.approx(float(factor))
        assert s["image_h"] == pytest.approx(600 * float(factor), abs=1)  # drawn at the physical resolution
        # the digits' ink is measured at the physical resolution: within a pixel of 100 %
        assert abs(s["text_h"] - base["text_h"]) <= 1.5 and s["k"] == row_grouping(4.0, s["text_h"])
        assert s["fits"] and s["with_text"] == s["rows"] > 10
