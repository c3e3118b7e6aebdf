"""Heatmap history that grows with the data (issue 18 item 2, issue 16 item 3).

The lazy ring (a hot ring of the newest window plus one chunk, older columns handed to a store
of chunks allocated on first write) must return the same heatmap windows as the single ring of
the whole history it replaces. The reference here is that single ring: the same model with a
hot ring so large (``chunk_cols`` above the columns of the test) that it never wraps, which is
the old layout (column ``c`` in slot ``c % ring size``); only the columns of a gap longer than
the window, which the book spent unchanged, reach its store, as a run (that path is checked on
its own in ``test_mkt_ring_bars.py`` and below)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import OP_SET, SIDE_BID, Instrument, depth_events
from app.market.history import ColumnStore, place_rows
from app.market.model import MarketModel

ES = Instrument("ES", 0.25, 12.5)
MS = 1_000_000


def _es_without_the_gap(rec):
    """The real ES stream with its snapshot moved to one second before the first live event
    (the shipped file holds the snapshot 22 hours before the re-open; the reference ring
    cannot hold a gap longer than itself)."""
    ev = rec.events.copy()
    ts = ev["ts"]
    live = np.flatnonzero(np.diff(ts) > 3600 * 10**9)
    assert live.size == 1, "expected one long gap after the snapshot"
    k = int(live[0]) + 1
    ts[:k] = ts[k] - 10**9
    return ev


def test_lazy_ring_returns_the_same_windows_as_the_whole_ring_on_real_es(es_recording, cut):
    ev = _es_without_the_gap(es_recording)
    span_cols = int((ev["ts"][-1] - ev["ts"][0]) // (250 * MS)) + 2
    kw = dict(rows=40, column_ns=250 * MS, history_s=span_cols * 0.25, window_cols=600)
    lazy = MarketModel(es_recording.instrument, chunk_cols=64, **kw)
    whole = MarketModel(es_recording.instrument, chunk_cols=span_cols + 10, **kw)
    assert whole.hot_cols >= whole.history_cols + whole.window_cols
    N = lazy.history_cols
    seen_cols = 0
    recentres = 0
    long_checks = 0
    compared = 0
    for piece in cut(ev, 4):
        # one piece at a time; compare at every new column (and right after every re-centre)
        lazy.apply(piece)
        whole.apply(piece)
        col = int(lazy.S[2])
        if col == seen_cols and lazy.recentres == recentres:
            continue
        new_centre = lazy.recentres != recentres
        seen_cols, recentres = col, lazy.recentres
        compared += 1
        for a, b in zip(lazy.heatmap_window(), whole.heatmap_window()):
            np.testing.assert_array_equal(a, b)
        if new_centre or compared % 40 == 0:
            n = min(N, col - int(ev["ts"][0] // (250 * MS)) + 1 + 50)
            for a, b in zip(lazy.heatmap_window(max(n, 1)), whole.heatmap_window(max(n, 1))):
                np.testing.assert_array_equal(a, b)
            long_checks += 1
    assert lazy.recentres >= 3 and lazy.recentres == whole.recentres
    assert compared > 2000 and long_checks > 50
    assert whole.hot_cols > span_cols  # the reference's ring never wrapped
    assert lazy.store.newest > lazy.store.chunk * 10  # the lazy one did, many times
    for a, b in zip(lazy.heatmap_window(N), whole.heatmap_window(N)):
        np.testing.assert_array_equal(a, b)


def test_memory_follows_the_columns_written(impl):
    m = MarketModel(ES, rows=20, column_ns=MS, history_s=2.0, window_cols=10, grid=256,
                    chunk_cols=100, use_numba=impl.use_numba)
    assert m.store.nbytes == 0  # nothing allocated up front
    chunk_bytes = 4 * 100 * 20 * 4 + 100 * 8 + 100
    for c in range(0, 1000, 5):
        m.apply(depth_events([c * MS], [100], [1.0 + c], [SIDE_BID], OP_SET))
    assert m.store.nbytes <= 10 * chunk_bytes
    assert m.store.nbytes >= 8 * chunk_bytes
    for c in range(1000, 6000, 5):  # 5,000 more columns: the store keeps 2,000 and recycles
        m.apply(depth_events([c * MS], [100], [1.0 + c], [SIDE_BID], OP_SET))
    assert m.store.nbytes == m.store.nslots * chunk_bytes == 21 * chunk_bytes
    hb = m.heatmap_window(2000)[0]
    r = 100 - m.heatmap_base
    last = 5995
    expect = np.array([1.0 + (c - c % 5) for c in range(last - 1999, last + 1)], np.float32)
    np.testing.assert_array_equal(hb[r], expect)


def test_column_store_put_get_wrap_and_absent_columns():
    st = ColumnStore(2, 3, capacity=10, chunk=4)
    assert st.nbytes == 0
    data = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3)
    st.put(5, data, np.arange(6) + 100)
    d, b, h = st.get(3, 13)
    assert h.tolist() == [False, False, True, True, True, True, True, True, False, False]
    np.testing.assert_array_equal(d[:, 2:8], data)
    assert b[2:8].tolist() == list(range(100, 106))
    st.put(30, data[:, :1], np.array([7]))  # far ahead: older columns leave the history
    d, b, h = st.get(0, 31)
    assert h.tolist() == [False] * 30 + [True]
    with pytest.raises(ValueError, match="capacity"):
        ColumnStore(1, 1, 0)


def test_place_rows_realigns_columns_by_their_base():
    data = np.zeros((1, 3, 4), np.float32)
    data[0, 0] = [1, 2, 3, 4]  # rows at prices 10..13
    data[0, 1] = [5, 6, 7, 8]  # prices 12..15
    data[0, 2] = [9, 9, 9, 9]  # absent
    out = place_rows(data, np.array([10, 12, 0]), np.array([True, True, False]), 11, 4)
    assert out[0, 0].tolist() == [2, 3, 4, 0]  # prices 11..14
    assert out[0, 1].tolist() == [0, 5, 6, 7]
    assert out[0, 2].tolist() == [0, 0, 0, 0]


# ------------------------------------------------------------------ tiers (issue 16 item 3)
def _ref_merge(data, bases, have, c0, F):
    """Brute-force reference of one tier step, a loop per group and column: re-align to the
    newest column with data, resting size averaged over the columns with data, traded summed."""
    P, n, R = data.shape
    out = {}
    groups = {}
    for i in range(n):
        if have[i]:
            groups.setdefault((c0 + i) // F, []).append(i)
    for g, idx in groups.items():
        B = int(bases[idx[-1]])
        acc = np.zeros((P, R), np.float64)
        for i in idx:
            for r in range(R):
                rr = int(bases[i]) + r - B
                if 0 <= rr < R:
                    acc[:, rr] += data[:, i, r]
        acc[0] /= len(idx)
        out[g] = (acc.astype(np.float32), B)
    return out


def test_tiers_equal_a_brute_force_merge_of_the_whole_ring_on_real_es(es_recording, cut):
    ev = _es_without_the_gap(es_recording)
    colns = 250 * MS
    span_cols = int((ev["ts"][-1] - ev["ts"][0]) // colns) + 2
    kw = dict(rows=40, column_ns=colns, window_cols=300, tier_cols=500)
    lazy = MarketModel(es_recording.instrument, history_s=200.0, chunk_cols=64, **kw)
    whole = MarketModel(es_recording.instrument, history_s=span_cols * 0.25, chunk_cols=64, **kw)
    for piece in cut(ev, 50):
        lazy.apply(piece)
        whole.apply(piece)
    assert lazy.recentres >= 3
    hist = lazy.history
    assert hist.levels == 5  # 500 columns x 0.25 s x 4**5 >= 24 h
    col = int(lazy.S[2])
    first = hist.first_col
    # tier 0 of the whole stream from the reference, then tier by tier by brute force
    d, b, h = whole.columns(first, col + 1)
    d[0] += d[1]
    level = {first + i: (d[[0, 2, 3], i], int(b[i])) for i in range(d.shape[1]) if h[i]}
    for k in range(1, hist.levels + 1):
        keys = sorted(level)
        c0 = keys[0]
        n = keys[-1] - c0 + 1
        dd = np.zeros((3, n, 40), np.float32)
        bb = np.zeros(n, np.int64)
        hh = np.zeros(n, bool)
        for c, (v, base) in level.items():
            dd[:, c - c0], bb[c - c0], hh[c - c0] = v, base, True
        level = _ref_merge(dd, bb, hh, c0, 4)
        g0 = max(min(level), hist.oldest(k, col, lazy.history_cols))
        g1 = max(level) + 1
        got, gb, gh = hist.columns(k, g0, g1)
        for g in range(g0, g1):
            assert gh[g - g0] == (g in level), (k, g)
            if g in level:
                v, base = level[g]
                assert gb[g - g0] == base, (k, g)
                np.testing.assert_allclose(got[:, g - g0], v, rtol=1e-5, atol=1e-4, err_msg=f"tier {k} col {g}")
    assert hist.nbytes > 0


def test_history_window_picks_the_finest_tier_that_fits_and_keeps_prices_across_recentres(impl):
    # a wall at price 100 while the market walks up past several re-centres
    m = MarketModel(ES, rows=20, column_ns=MS, history_s=0.1, window_cols=10, grid=512,
                    chunk_cols=16, tier_cols=400, session_s=10.0, use_numba=impl.use_numba)
    m.apply(depth_events([0, 0, 0], [100, 104, 105], [50.0, 1.0, 1.0], [SIDE_BID, SIDE_BID, 2], OP_SET))
    for c in range(1, 3000):
        t = c * MS
        p = 104 + c // 100  # the market walks up one tick every 100 columns
        m.apply(depth_events([t, t, t, t], [p - 1, p, p, p + 1], [0, 1, 0, 1],
                             [SIDE_BID, SIDE_BID, 2, 2], [2, OP_SET, 2, OP_SET]))
    assert m.recentres >= 3
    lv = m.history.levels
    assert lv == 3  # 400 x 1 ms x 4**3 >= 10 s
    # the last second at <= 300 columns: 1 ms columns do not fit, 4 ms ones do (tier 1)
    img = m.history_window(2000 * MS, 3000 * MS, 300)
    assert img.tier == 1 and img.column_ns == 4 * MS and img.heatmap.shape[1] == 250
    # the whole stream at 100 columns: tier 3 (64 ms) is the finest that fits 3 s
    img = m.history_window(0, 3000 * MS, 100)
    assert img.tier == 3 and img.heatmap.shape[1] <= 100
    # the wall: price 100 in every column whose rows still reach it, at its resting size
    r = 100 - img.base
    cols = np.flatnonzero(img.have)
    assert cols.size > 40
    wall = img.heatmap[r, cols]
    assert (wall[wall > 0] == 50.0).all()
    assert (wall > 0).sum() >= 10  # before the rows moved past it
    # the moving best bid: each coarse column has liquidity at the price the walk held in the
    # middle of its span (the rows re-aligned to the right prices across re-centres)
    t_mid = img.t0_ns + (cols + 0.5) * img.column_ns
    walk = 104 + (t_mid // MS) // 100
    for j, c in enumerate(cols):
        if c == cols[-1]:
            break
        rr = int(walk[j]) - img.base
        assert img.heatmap[rr, c] > 0, (c, rr)
    with pytest.raises(ValueError, match="max_cols"):
        m.history_window(0, 10, 0)
    with pytest.raises(ValueError, match="after t0_ns"):
        m.history_window(10, 10, 5)


def test_tier_memory_is_bounded_by_the_tier_sizes_over_a_long_stream(impl):
    m = MarketModel(ES, rows=10, column_ns=MS, history_s=0.05, window_cols=10, grid=256,
                    chunk_cols=16, tier_cols=32, session_s=5.0, use_numba=impl.use_numba)
    for c in range(0, 40_000, 7):  # 40 s of stream: far more than the coarsest tier's span
        m.apply(depth_events([c * MS], [100], [1.0 + c % 5], [SIDE_BID], OP_SET))
    per_chunk = 3 * 16 * 10 * 4 + 16 * 8 + 16
    for t in m.history.tiers:
        assert t.nbytes <= t.nslots * per_chunk
    assert m.store.nbytes <= m.store.nslots * (4 * 16 * 10 * 4 + 16 * 8 + 16)
    img = m.history_window(0, 40_000 * MS, 1000)
    assert img.tier == m.history.levels
    assert img.have.any()


def test_a_gap_longer_than_the_history_reaches_the_tiers_as_the_unchanged_book(impl):
    m = MarketModel(ES, rows=20, column_ns=MS, history_s=0.05, window_cols=10, grid=256,
                    chunk_cols=16, tier_cols=400, session_s=10.0, use_numba=impl.use_numba)
    m.apply(depth_events([0], [100], [5.0], [SIDE_BID], OP_SET))
    m.apply(depth_events([4000 * MS], [101], [2.0], [2], OP_SET))  # 4 s later: 80 x the history
    img = m.history_window(0, 4000 * MS, 100)
    assert img.tier == 3 and img.have.all()
    assert img.heatmap[100 - img.base].tolist() == [5.0] * img.heatmap.shape[1]
    assert img.traded_buy.sum() == 0.0 and img.traded_sell.sum() == 0.0
    assert m.history_start_ns == 0


def test_a_run_reads_as_the_same_columns_written_one_by_one_and_costs_one_column_a_chunk():
    rng = np.random.default_rng(7)
    for trial in range(40):
        run_st, dense_st = ColumnStore(2, 3, capacity=20, chunk=4), ColumnStore(2, 3, capacity=20, chunk=4)
        c = int(rng.integers(0, 9))
        for _ in range(6):  # dense writes and runs in turn, some longer than the capacity
            n = int(rng.integers(1, 30))
            if rng.random() < 0.5:
                col = rng.random((2, 3)).astype(np.float32)
                base = int(rng.integers(90, 110))
                run_st.put_run(c, n, col, base)
                dense_st.put(c, np.broadcast_to(col[:, None, :], (2, n, 3)), np.full(n, base, np.int64))
            else:
                d = rng.random((2, n, 3)).astype(np.float32)
                b = rng.integers(90, 110, n)
                run_st.put(c, d, b)
                dense_st.put(c, d, b)
            c += n + int(rng.integers(0, 3))
            lo = int(rng.integers(max(c - 30, 0), c + 1))
            for a, b_ in zip(run_st.get(lo, c + 2), dense_st.get(lo, c + 2)):
                np.testing.assert_array_equal(a, b_)
            np.testing.assert_array_equal(run_st.get(lo, c, planes=[1])[0], dense_st.get(lo, c, planes=[1])[0])
    st = ColumnStore(4, 400, capacity=3600, chunk=256)
    st.put_run(10, 3600 * 3, np.ones((4, 400), np.float32), 5)  # three times the capacity
    col_bytes = 4 * 400 * 4
    assert st.run_chunks >= 13
    assert st.nbytes <= 2 * (4 * 256 * 400 * 4 + 256 * 9) + st.run_chunks * col_bytes  # two dense ends at most


def test_the_real_es_gap_before_the_reopen_costs_the_tiers_no_dense_chunks(es_recording):
    """The shipped ES file holds its snapshot 22 hours before the re-open; the book stood
    unchanged in between. The tiers must hold that stretch as runs: dense chunks only where
    the data is (the old store materialised every column of the run: every tier full)."""
    m = MarketModel(es_recording.instrument, rows=400, column_ns=250 * MS, history_s=900.0,
                    window_cols=1500)
    m.apply(es_recording.events)
    ts = es_recording.events["ts"]
    k = int(np.flatnonzero(np.diff(ts) > 3600 * 10**9)[0]) + 1
    live_s = (int(ts[-1]) - int(ts[k])) / 1e9
    h = m.history
    for j, t in enumerate(h.tiers, start=1):
        dense = sum(d is not None for d in t._data)
        live_cols = live_s * 1e9 / h.width_ns(j)
        assert dense <= min(t.nslots, int(np.ceil(live_cols / t.chunk)) + 2), (j, dense, live_cols)
    assert sum(t.run_chunks for t in h.tiers) > 0
    # the gap reads as the book at the snapshot, the same at every tier that holds it
    img = m.history_window(int(ts[0]) + 3600 * 10**9, int(ts[0]) + 7200 * 10**9, 100)
    assert img is not None and img.have.all()
    np.testing.assert_array_equal(img.heatmap, img.heatmap[:, :1].repeat(img.heatmap.shape[1], axis=1))
    assert img.heatmap.sum() > 0 and img.traded_buy.sum() == 0.0
