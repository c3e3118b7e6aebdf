"""Heatmap history that grows with the data (issue 18 item 2, issue 16 item 3).

The lazy ring (a hot ring of the newest window plus one chunk, older columns handed to a store
of chunks allocated on first write) must return the same heatmap windows as the single ring of
the whole history it replaces. The reference here is that single ring: the same model with a
hot ring so large (``chunk_cols`` above the columns of the test) that no column ever leaves it,
which is exactly the old layout (column ``c`` in slot ``c % ring size``, no store)."""

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
    assert int(whole.S[16]) <= int(ev["ts"][0] // (250 * MS))  # the reference never handed a column over
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
