"""The trading session's best prices kept per batch (BookTop) equal a full scan of the paper book.

Real data: the shipped ES hour and the BTCUSDT capture of ``../shared/data/crypto``, fed exchange
batch by exchange batch (as the DTC client hands them over), with the paper broker's replay
restart (which clears its book outside any batch) in the middle.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.config.trading import TradingSettings
from app.core.events import FLAG_BATCH_END, SIDE_ASK, SIDE_BID, depth_events
from app.market.refbook import ReferenceBook
from app.trading.journal import Journal
from app.trading.paper import PaperBroker
from app.trading.session import BookTop, TradingSession


def full_scan(book: ReferenceBook):
    """Best (bid, ask) ticks by looking at every level holding size (the plain reference)."""
    bids = [t for t, v in book.bids().items() if v > 0]
    asks = [t for t, v in book.asks().items() if v > 0]
    return (max(bids) if bids else None), (min(asks) if asks else None)


def exchange_batches(ev: np.ndarray, limit: int | None = None):
    ends = np.flatnonzero(ev["flags"] & FLAG_BATCH_END) + 1
    parts = [p for p in np.split(ev, ends) if len(p)]
    return parts[:limit] if limit else parts


def check_session(rec, parts, tmp_path, restart_at: int):
    sym = rec.instrument.symbol
    broker = PaperBroker([rec.instrument])
    s = TradingSession(broker, Journal(tmp_path / "journal.sqlite3"), TradingSettings(), rec.instrument)
    book = broker.engine.books[sym]
    walked = 0
    for i, p in enumerate(parts):
        if i == restart_at:
            broker.replay_restarted("test restart")  # clears the book outside on_market
        s.on_market(sym, p)
        m = s.market[sym]
        assert (m.best_bid, m.best_ask) == full_scan(book), f"batch {i}"
        walked += 1
    return walked


def test_session_best_prices_follow_the_es_hour_batch_by_batch(es_sample, tmp_path):
    parts = exchange_batches(es_sample.events)
    assert len(parts) > 10_000
    n = check_session(es_sample, parts, tmp_path, restart_at=len(parts) // 2)
    assert n == len(parts)


def test_session_best_prices_follow_btcusdt(shared_data, tmp_path):
    from app.feeds.binance import read_binance_gz

    rec = read_binance_gz(shared_data / "crypto/btcusdt_20240808.gz")
    parts = exchange_batches(rec.events, limit=3000)
    n = check_session(rec, parts, tmp_path, restart_at=1500)
    assert n == 3000


def test_booktop_vanished_best_walks_then_scans():
    book = ReferenceBook()
    top = BookTop()
    top.WALK = 4
    # bids 100 and 90 (a gap of 10 ticks, longer than the walk), asks 101 and 102
    first = depth_events([0, 0, 0, 0], [100, 90, 101, 102], [5.0, 5.0, 5.0, 5.0],
                         [SIDE_BID, SIDE_BID, SIDE_ASK, SIDE_ASK], [1, 1, 1, 1])
    book.apply(first)
    assert top.update(book, first) == (100, 101)
    gone = depth_events([1, 1], [100, 101], [0.0, 0.0], [SIDE_BID, SIDE_ASK], [2, 2])
    book.apply(gone)
    assert top.update(book, gone) == (90, 102)  # bid: past the walk, full scan; ask: one step
    better = depth_events([2, 2], [95, 96], [1.0, 0.0], [SIDE_BID, SIDE_BID], [1, 1])  # 96 set with no size
    book.apply(better)
    assert top.update(book, better) == (95, 102)
    book.clear()  # outside any batch: the next update sees the levels gone
    none = depth_events([3], [95], [0.0], [SIDE_BID], [2])
    book.apply(none)
    assert top.update(book, none) == (None, None)


def test_booktop_new_book_object_starts_over():
    top = BookTop()
    a, b = ReferenceBook(), ReferenceBook()
    a.set_level(SIDE_BID, 10, 1.0)
    b.set_level(SIDE_BID, 20, 1.0)
    empty = depth_events([], [], [], [], [])
    assert top.update(a, empty) == (10, None)
    assert top.update(b, empty) == (20, None)


@pytest.mark.parametrize("side", [SIDE_BID, SIDE_ASK])
def test_booktop_matches_scan_on_random_churn(side):
    rng = np.random.default_rng(7)
    book, top = ReferenceBook(), BookTop()
    for step in range(400):
        n = int(rng.integers(1, 6))
        px = rng.integers(990, 1010, n)
        sz = np.where(rng.random(n) < 0.4, 0.0, rng.integers(1, 9, n).astype(float))
        ops = np.where(sz > 0, 1, 2)
        ev = depth_events(np.full(n, step), px, sz, np.full(n, side), ops)
        book.apply(ev)
        assert top.update(book, ev) == full_scan(book), f"step {step}"
