"""Order book on the tick grid: equal to the reference book on real data, overflow levels,
re-anchoring, clears and quotes (the hand-built cases on both implementations, ``impl``), and
the numba kernel equal to its NumPy twin on real data."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import (
    FLAG_BATCH_END,
    KIND_QUOTE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
    depth_events,
    empty,
)
from app.market.refbook import ReferenceBook
from app.market.model import MarketModel

ES = Instrument("ES", 0.25, 12.5)


def _ref_side(rb: ReferenceBook, side: int) -> dict:
    d = rb.bids() if side == SIDE_BID else rb.asks()
    return {k: v for k, v in d.items() if v > 0}


def assert_same_book(m: MarketModel, rb: ReferenceBook, where: str = ""):
    for side in (SIDE_BID, SIDE_ASK):
        px, sz, cnt = m.levels(side)
        ref = _ref_side(rb, side)
        got = dict(zip(px.tolist(), sz.tolist()))
        assert got == ref, f"{where}: side {side} differs ({len(got)} vs {len(ref)} levels)"
        orders = rb.num_orders(side)
        assert {p: int(c) for p, c in zip(px.tolist(), cnt.tolist())} == {p: orders[p] for p in ref}, where
    bb, ba = rb.best_bid(), rb.best_ask()
    assert m.best_bid == (-1 if bb is None else bb), where
    assert m.best_ask == (-1 if ba is None else ba), where


def test_book_equals_reference_on_es_at_batch_ends(es_recording, cut):
    ev = es_recording.events
    m = MarketModel(es_recording.instrument, rows=200, column_ns=250_000_000, history_s=600, window_cols=200)
    rb = ReferenceBook()
    pieces = cut(ev, 97)
    assert len(pieces) > 400
    for k, piece in enumerate(pieces):
        m.apply(piece)
        rb.apply(piece)
        if k % 7 == 0 and piece["flags"][-1] & FLAG_BATCH_END:
            assert_same_book(m, rb, f"after piece {k}")
    assert_same_book(m, rb, "end of the ES hour")
    # README of the data: about 920 bid and 565 ask levels, best 4810.00 / 4810.25 at the end
    assert m.best_bid == 19240 and m.best_ask == 19241
    assert len(m.levels(SIDE_BID)[0]) > 900 and len(m.levels(SIDE_ASK)[0]) > 500


def test_book_equals_reference_on_btc(btc_recording, cut):
    ev = btc_recording.events
    m = MarketModel(btc_recording.instrument, rows=100, column_ns=1_000_000_000, history_s=600,
                    window_cols=100)
    rb = ReferenceBook()
    for k, piece in enumerate(cut(ev, 400)):
        m.apply(piece)
        rb.apply(piece)
        assert_same_book(m, rb, f"BTC piece {k}")
    # Binance's 1000-level snapshot reaches thousands of dollars from the touch: some levels
    # live outside the grid (overflow) and the book is still exact
    assert m.ovf_bid or m.ovf_ask or m.grid * 0.1 > 10_000


def test_small_grid_overflow_and_reanchor_follow_the_market(impl):
    """A 64-tick grid: levels far away go to the overflow, a market that walks up re-anchors
    the grid, and the book stays equal to the reference at every step."""
    m = MarketModel(ES, rows=16, column_ns=1_000_000, history_s=1, window_cols=10, grid=64, use_numba=impl.use_numba)
    rb = ReferenceBook()
    t = 0
    rng = np.random.default_rng(7)
    for step in range(300):
        mid = 1000 + step  # walks 300 ticks up: far beyond the 64-tick grid
        px = np.concatenate([mid - 1 - rng.integers(0, 200, 5), mid + 1 + rng.integers(0, 200, 5)])
        side = np.array([SIDE_BID] * 5 + [SIDE_ASK] * 5)
        size = rng.integers(0, 4, 10).astype(float)
        op = np.where(size > 0, OP_SET, OP_DELETE)
        ts = t + np.arange(10) * 100_000
        t = int(ts[-1]) + 100_000
        b = depth_events(ts, px, size, side, op, flags=0, num_orders=size.astype(int))
        m.apply(b)
        rb.apply(b)
        assert_same_book(m, rb, f"step {step}")
    assert m.reanchors > 0
    assert m.ovf_bid and m.ovf_ask


def test_clear_one_side_and_all_levels(impl):
    m = MarketModel(ES, rows=20, column_ns=1_000_000, history_s=1, window_cols=10, grid=128,
                    use_numba=impl.use_numba)
    b = depth_events([0, 0, 0, 0, 0], [100, 99, 101, 102, 5000], [1, 2, 3, 4, 5],
                     [SIDE_BID, SIDE_BID, SIDE_ASK, SIDE_ASK, SIDE_ASK], OP_SET)
    m.apply(b)
    assert (m.best_bid, m.best_ask) == (100, 101)
    assert 5000 in m.ovf_ask  # far outside the 128-tick grid
    m.apply(depth_events([1], [0], [0], [SIDE_ASK], [OP_CLEAR]))
    assert m.best_ask == -1 and not m.ovf_ask and m.best_bid == 100
    m.apply(depth_events([2], [0], [0], [0], [OP_CLEAR]))
    assert m.best_bid == -1 and len(m.levels(SIDE_BID)[0]) == 0


def test_delete_of_best_finds_the_next_level_and_zero_size_set_deletes(impl):
    m = MarketModel(ES, rows=20, column_ns=1_000_000, history_s=1, window_cols=10, grid=256,
                    use_numba=impl.use_numba)
    m.apply(depth_events([0] * 4, [100, 95, 103, 110], [1, 1, 1, 1],
                         [SIDE_BID, SIDE_BID, SIDE_ASK, SIDE_ASK], OP_SET))
    m.apply(depth_events([1], [100], [0], [SIDE_BID], [OP_DELETE]))
    assert m.best_bid == 95
    m.apply(depth_events([2], [103], [0.0], [SIDE_ASK], [OP_SET]))  # size 0 = delete
    assert m.best_ask == 110
    assert m.size_at(SIDE_ASK, 103) == 0.0


def test_quotes_give_the_best_prices_only_when_the_book_has_none(impl):
    m = MarketModel(ES, rows=20, column_ns=1_000_000, history_s=1, window_cols=10, grid=256,
                    use_numba=impl.use_numba)
    q = empty(2)
    q["ts"] = [0, 0]
    q["price"] = [400, 401]
    q["size"] = [3, 4]
    q["side"] = [SIDE_BID, SIDE_ASK]
    q["kind"] = KIND_QUOTE
    m.apply(q)
    assert (m.best_bid, m.best_ask) == (400, 401)
    m.apply(depth_events([1, 1], [399, 402], [1, 1], [SIDE_BID, SIDE_ASK], OP_SET))
    assert (m.best_bid, m.best_ask) == (399, 402)


def test_apply_refuses_a_foreign_dtype(impl):
    m = MarketModel(ES, rows=20, column_ns=1_000_000, history_s=1, window_cols=10, grid=256,
                    use_numba=impl.use_numba)
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        m.apply(np.zeros(3, dtype=[("ts", "i8")]))


@pytest.mark.parametrize("which", ["es", "btc"])
def test_numba_kernel_equals_numpy_twin_on_real_data(which, es_recording, btc_recording, cut):
    """Every state array equal after the real stream, with few rows so the heatmap re-centres
    often and few bars so the bar buffer compacts."""
    rec = es_recording if which == "es" else btc_recording
    ev = rec.events if which == "es" else rec.events[:150_000]
    kw = dict(rows=40, column_ns=500_000_000, history_s=300, window_cols=120, max_bars=8,
              bar_ns=30_000_000_000)
    a = MarketModel(rec.instrument, use_numba=True, **kw)
    b = MarketModel(rec.instrument, use_numba=False, **kw)
    for piece in cut(ev, 60):
        a.apply(piece)
        b.apply(piece)
    assert a.recentres > 3 and a.recentres == b.recentres
    assert a.S[4] > 0  # bars were made
    sa, sb = a.state_arrays(), b.state_arrays()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.ovf_bid == b.ovf_bid and a.ovf_ask == b.ovf_ask
    assert a.volume_profile() == b.volume_profile()


def test_result_does_not_depend_on_batch_cuts(es_recording, cut):
    kw = dict(rows=60, column_ns=250_000_000, history_s=600, window_cols=200, max_bars=8)
    a = MarketModel(es_recording.instrument, **kw)
    b = MarketModel(es_recording.instrument, **kw)
    a.apply(es_recording.events)
    for piece in cut(es_recording.events, 3):
        b.apply(piece)
    sa, sb = a.state_arrays(), b.state_arrays()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
