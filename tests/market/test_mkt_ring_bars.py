"""Heatmap ring (plain-slice window, wrap, gaps, re-centring), footprint bars and the volume
profile, on hand-built events whose expected values are worked out by hand, on both
implementations (``impl``: the numba kernels and their Python/NumPy twins)."""

from __future__ import annotations

import numpy as np
import pytest

from app.market.bars import BAR_DTYPE
from app.core.events import SIDE_ASK, SIDE_BID, OP_SET, Instrument, depth_events, trade_events
from app.market import kernels as K
from app.market import kernels_ref
from app.market.model import MarketModel

ES = Instrument("ES", 0.25, 12.5)
MS = 1_000_000


def small(impl, **kw):
    args = dict(rows=20, column_ns=MS, history_s=0.01, window_cols=4, grid=256, bar_ns=10 * MS,
                use_numba=impl.use_numba)
    args.update(kw)
    return MarketModel(ES, **args)


def test_window_is_a_plain_slice_and_holds_the_book_at_each_column_end(impl):
    m = small(impl)  # 10 columns of history, a 4-column window
    expect = {}
    for c in range(25):  # wraps the 10-column ring twice
        t = c * MS + MS // 2
        m.apply(depth_events([t, t], [100, 101], [c + 1, 50 - c], [SIDE_BID, SIDE_ASK], OP_SET))
        expect[c] = (c + 1, 50 - c)
    hb, ha, tb, ts, t0 = m.heatmap_window()
    assert hb.shape == (20, 4)
    assert np.shares_memory(hb, m.hbid) and np.shares_memory(ha, m.hask)  # no copy, no np.roll
    assert not hb.flags.writeable
    assert t0 == 21 * MS
    r_bid, r_ask = 100 - m.heatmap_base, 101 - m.heatmap_base
    assert hb[r_bid].tolist() == [expect[c][0] for c in range(21, 25)]
    assert ha[r_ask].tolist() == [expect[c][1] for c in range(21, 25)]
    assert hb.sum() == hb[r_bid].sum()  # nothing on other rows
    # the whole history (copy path) is the last 10 columns, oldest first
    hb10 = m.heatmap_window(10)[0]
    assert hb10[r_bid].tolist() == [expect[c][0] for c in range(15, 25)]


def test_mirror_slots_equal_their_primary_slots(impl):
    m = small(impl)
    for c in range(37):
        m.apply(depth_events([c * MS], [100 + c % 3], [c + 1.0], [SIDE_BID], OP_SET))
        m.apply(trade_events([c * MS + 1], [101], [1.0 + c], [SIDE_ASK]))
    H, W = m.hot_cols, m.window_cols  # the mirror follows the hot ring's slots
    for a in (m.hbid, m.hask, m.tbuy, m.tsell):
        np.testing.assert_array_equal(a[H:H + W], a[:W])


def test_traded_volume_per_column_and_side(impl):
    m = small(impl)
    m.apply(depth_events([0], [100], [5.0], [SIDE_BID], OP_SET))
    m.apply(trade_events([MS + 10, MS + 20, 2 * MS + 5], [101, 100, 101], [2.0, 3.0, 4.0],
                         [SIDE_ASK, SIDE_BID, SIDE_ASK]))
    m.apply(depth_events([3 * MS], [100], [6.0], [SIDE_BID], OP_SET))
    hb, ha, tb, ts, t0 = m.heatmap_window()
    assert t0 == 0
    r100, r101 = 100 - m.heatmap_base, 101 - m.heatmap_base
    assert tb[r101].tolist() == [0.0, 2.0, 4.0, 0.0]
    assert ts[r100].tolist() == [0.0, 3.0, 0.0, 0.0]
    assert hb[r100].tolist() == [5.0, 5.0, 5.0, 6.0]  # last column is the live (open) one


def test_gap_longer_than_the_history_fills_it_with_the_unchanged_book(impl):
    m = small(impl)
    m.apply(depth_events([0], [100], [5.0], [SIDE_BID], OP_SET))
    m.apply(trade_events([MS // 2], [100], [9.0], [SIDE_BID]))
    m.apply(depth_events([500 * MS], [101], [2.0], [SIDE_ASK], OP_SET))  # 500 columns later
    hb, ha, tb, ts, t0 = m.heatmap_window(10)
    r100 = 100 - m.heatmap_base
    assert hb[r100].tolist() == [5.0] * 10
    assert ts.sum() == 0.0 and tb.sum() == 0.0  # the old trade is out of the history
    assert t0 == 491 * MS


def test_recentre_only_past_the_margin_and_rows_keep_their_prices(impl):
    m = small(impl, history_s=0.02, window_cols=6)  # 20 rows, margin 4 rows, 20 columns
    m.apply(depth_events([0, 0, 0], [95, 100, 101], [7.0, 1.0, 1.0],
                         [SIDE_BID, SIDE_BID, SIDE_ASK], OP_SET))
    base0 = m.heatmap_base
    assert base0 == 100 - 10
    # walk the market up 1 tick per column; the bid at 95 stays
    for c in range(1, 16):
        t = c * MS
        m.apply(depth_events([t, t, t, t], [99 + c, 100 + c, 100 + c, 101 + c], [0, 1, 0, 1],
                             [SIDE_BID, SIDE_BID, SIDE_ASK, SIDE_ASK], [2, OP_SET, 2, OP_SET]))
    assert m.recentres >= 1
    assert m.heatmap_base > base0
    mid_row = (m.best_bid + m.best_ask) // 2 - m.heatmap_base
    assert 4 <= mid_row < 16
    hb, ha, tb, ts, t0 = m.heatmap_window()
    r95 = 95 - m.heatmap_base
    if 0 <= r95 < m.rows:
        assert hb[r95].tolist() == [7.0] * m.window_cols
    # every column of the long history shows the bid at 95 on the right row (or is off-grid)
    hb20 = m.heatmap_window(16)[0]
    for k in range(16):
        col = hb20[:, k]
        if 0 <= r95 < m.rows:
            assert col[r95] == 7.0, k
        # the moving best bid of column k sits at price 100 + k
        r = 100 + k - m.heatmap_base
        if 0 <= r < m.rows and k > 0:
            assert col[r] == 1.0, k


def test_no_recentre_while_price_stays_inside_the_margin(impl):
    m = small(impl)
    m.apply(depth_events([0, 0], [100, 101], [1.0, 1.0], [SIDE_BID, SIDE_ASK], OP_SET))
    for c in range(1, 30):
        m.apply(depth_events([c * MS], [100 + (c % 5)], [1.0], [SIDE_BID], OP_SET))
        m.apply(depth_events([c * MS + 1], [100 + (c % 5)], [0.0], [SIDE_BID], [2]))
    assert m.recentres == 0


def test_footprint_bars_and_volume_profile_by_hand(impl):
    m = small(impl, rows=40)
    m.apply(depth_events([0, 0], [100, 101], [1.0, 1.0], [SIDE_BID, SIDE_ASK], OP_SET))
    # bar 0 (0..10 ms): 100 ask 2, 101 bid 3, 99 ask 1 ; bar 1 (10..20 ms): 102 ask 4
    m.apply(trade_events([1 * MS, 2 * MS, 5 * MS, 12 * MS], [100, 101, 99, 102], [2.0, 3.0, 1.0, 4.0],
                         [SIDE_ASK, SIDE_BID, SIDE_ASK, SIDE_ASK]))
    bars = m.bars()
    assert bars.dtype == BAR_DTYPE and len(bars) == 2
    b0, b1 = bars
    assert (b0["ts"], b0["open"], b0["high"], b0["low"], b0["close"]) == (0, 100, 101, 99, 99)
    assert (b0["volume"], b0["buy_volume"], b0["sell_volume"], b0["delta"], b0["trades"]) == (6, 3, 3, 0, 3)
    assert (b1["ts"], b1["open"], b1["close"], b1["volume"], b1["delta"], b1["trades"]) == (10 * MS, 102, 102, 4, 4, 1)
    fpb, fps = m.footprint()
    row = lambda p: p - m.heatmap_base  # noqa: E731
    assert fpb[0, row(100)] == 2 and fpb[0, row(99)] == 1 and fps[0, row(101)] == 3
    assert fpb[0].sum() == 3 and fps[0].sum() == 3 and fpb[1, row(102)] == 4
    assert m.cum_delta == 4.0
    # profile: 99:1 100:2 101:3 102:4 -> POC 102; 70 % of 10 = 7: 102 (4) + 101 (3)
    assert m.volume_profile() == (102, 102, 101)
    # add volume: 98:1 99:2 100:6 101:3 102:4 ... recompute by hand
    m.apply(trade_events([13 * MS, 13 * MS, 13 * MS], [98, 99, 100], [1.0, 1.0, 4.0], [SIDE_BID] * 3))
    # volumes 98:1 99:2 100:6 101:3 102:4 = 16, goal 11.2: POC 100 (6); up 101 (3) > dn 99 (2)
    # -> 9; up 102 (4) > dn 99 (2) -> 13 >= 11.2: VAH 102, VAL 100
    assert m.volume_profile() == (100, 102, 100)
    assert m.volume_profile(0.9) == (100, 102, 99)


def test_bars_buffer_compacts_and_keeps_the_newest(impl):
    m = small(impl, max_bars=3)
    for k in range(10):
        m.apply(trade_events([k * 10 * MS + 1], [100 + k], [1.0], [SIDE_ASK]))
    bars = m.bars()
    assert 3 <= len(bars) <= 6
    assert bars["open"][-3:].tolist() == [107, 108, 109]
    assert bars["ts"][-1] == 90 * MS


@pytest.mark.parametrize("seed", range(5))
def test_value_area_kernel_equals_twin(seed):
    rng = np.random.default_rng(seed)
    vol = rng.exponential(3.0, 200) * (rng.random(200) > 0.3)
    for frac in (0.5, 0.7, 0.95):
        assert K.value_area_nb(vol, 10, 180, frac) == kernels_ref.value_area_py(vol, 10, 180, frac)


def test_value_area_by_hand(impl):
    vol = np.zeros(10)
    vol[[2, 3, 4, 5, 6]] = [1.0, 2.0, 6.0, 3.0, 4.0]  # 16 in all, goal 70 % = 11.2
    # POC 4 (6); up 5 (3) > down 3 (2) -> 9; up 6 (4) > down 3 (2) -> 13 >= 11.2
    assert impl.value_area(vol, 0, 9, 0.7) == (4, 4, 6)
    assert impl.value_area(vol, 0, 9, 0.9) == (4, 3, 6)
    assert impl.value_area(vol, 5, 4, 0.7) == (-1, -1, -1)  # empty range
    assert impl.value_area(np.zeros(10), 0, 9, 0.7) == (-1, -1, -1)  # no volume


def test_view_and_frame_parts_shapes_and_copies(impl):
    m = small(impl, rows=30)
    m.apply(depth_events([0, 0], [100, 101], [3.0, 4.0], [SIDE_BID, SIDE_ASK], OP_SET))
    m.apply(trade_events([2 * MS], [101], [1.0], [SIDE_ASK]))
    v = m.view()
    assert v.rows == 30 and v.bid.shape == (30,) and v.hist_bid.shape == (30, 4)
    assert v.bid[v.row_of(100)] == 3.0 and v.ask[v.row_of(101)] == 4.0
    assert v.best_bid == 100 and v.best_ask == 101 and len(v.trades) == 1
    assert v.session_buy[v.row_of(101)] == 1.0 and v.poc == 101
    assert v.fp_buy.shape == (1, 30)
    f = m.frame_parts()
    assert f["heatmap"].flags.c_contiguous and f["heatmap"].dtype == np.float32
    assert f["heatmap"].shape == (30, 4)
    assert not np.shares_memory(f["heatmap"], m.hbid) and not np.shares_memory(f["book_bid"], m.bid)
    assert f["book_prices"][0] == m.heatmap_base and f["book_prices"][-1] == m.heatmap_base + 29
    assert f["heatmap"][101 - m.heatmap_base, -1] == 4.0
