"""Binance USD-M capture reader on the real BTCUSDT file (hftbacktest format)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from app.feeds.binance import BinanceError, read_binance_gz
from app.core.events import (
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_QUOTE,
    KIND_TRADE,
    OP_CLEAR,
    SIDE_ASK,
    SIDE_BID,
)
from app.market.refbook import ReferenceBook


@pytest.fixture(scope="module")
def btc(shared_data):
    path = shared_data / "crypto" / "btcusdt_20240808.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    return read_binance_gz(path), [(int(a), json.loads(b)) for a, b in (x.split(" ", 1) for x in lines)]


def test_counts_and_instrument(btc):
    rec, raw = btc
    st = rec.extra["stats"]
    # counts given by the data README: 1 snapshot, 6,551 diffs, 66,089 bookTicker, 21,313 trades
    assert (st["snapshots"], st["diffs"], st["book_tickers"], st["trades"]) == (1, 6551, 66089, 21313)
    assert st["sequence_gaps"] == 0 and st["bad_lines"] == 0
    ev = rec.events
    assert (ev["kind"] == KIND_TRADE).sum() == 21313
    assert (ev["kind"] == KIND_QUOTE).sum() == 2 * 66089
    assert np.all(np.diff(ev["ts"]) >= 0)
    assert rec.instrument.tick_size == 0.1 and rec.instrument.tick_value == 0.1


def test_snapshot_batch(btc):
    rec, raw = btc
    ev = rec.events
    snap = next(d for _, d in raw if "lastUpdateId" in d)
    i0 = int(np.flatnonzero(ev["op"] == OP_CLEAR)[0])
    assert ev["flags"][i0] & FLAG_SNAPSHOT
    block = ev[i0 + 1 : i0 + 1 + 2000]
    assert np.all(block["flags"] & FLAG_SNAPSHOT)
    assert block["flags"][-1] & FLAG_BATCH_END and not np.any(block["flags"][:-1] & FLAG_BATCH_END)
    assert np.all(block["side"][:1000] == SIDE_BID) and np.all(block["side"][1000:] == SIDE_ASK)
    exp_bid = [round(float(p) * 10) for p, _ in snap["bids"]]
    assert block["price"][:1000].tolist() == exp_bid
    assert block["size"][1000:].tolist() == [float(q) for _, q in snap["asks"]]


def test_book_matches_book_ticker(btc):
    """After the diff whose last update id u equals a bookTicker's u, best bid/ask and sizes agree."""
    rec, raw = btc
    tickers = {}
    for _, m in raw:
        if m.get("stream", "").endswith("@bookTicker"):
            d = m["data"]
            tickers[d["u"]] = (round(float(d["b"]) * 10), float(d["B"]), round(float(d["a"]) * 10), float(d["A"]))
    diff_us = [m["data"]["u"] for _, m in raw if m.get("stream", "").endswith("@depth@0ms")]
    ev = rec.events
    dep = ev[ev["kind"] == KIND_DEPTH]
    ends = np.flatnonzero(dep["flags"] & FLAG_BATCH_END)
    # batch 0 is the snapshot; the next ones are the applied diffs, in file order
    applied = [u for u in diff_us if u >= next(d for _, d in raw if "lastUpdateId" in d)["lastUpdateId"]]
    assert len(ends) == 1 + len(applied)
    book = ReferenceBook()
    prev = 0
    checked = 0
    for k, end in enumerate(ends):
        book.apply(dep[prev : end + 1])
        prev = end + 1
        assert not book.is_crossed()
        if k == 0:
            continue
        t = tickers.get(applied[k - 1])
        if t is None:
            continue
        bb, ba = book.best_bid(), book.best_ask()
        assert (bb, book.size_at(SIDE_BID, bb), ba, book.size_at(SIDE_ASK, ba)) == t
        checked += 1
    assert checked > 500  # 629 diffs share their u with a bookTicker


def test_trade_sides(btc):
    rec, raw = btc
    trades = [m["data"] for _, m in raw if m.get("stream", "").endswith("@trade")]
    ev = rec.events[rec.events["kind"] == KIND_TRADE]
    exp_side = np.array([SIDE_BID if t["m"] else SIDE_ASK for t in trades])
    assert np.array_equal(ev["side"], exp_side)
    assert ev["price"].tolist() == [round(float(t["p"]) * 10) for t in trades]
    assert (ev["side"] == SIDE_ASK).any() and (ev["side"] == SIDE_BID).any()


def test_bad_input(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello world\n123 {\"foo\": 1}\n")
    with pytest.raises(BinanceError):
        read_binance_gz(p)
    q = tmp_path / "y.txt"
    q.write_text('1 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","p":"1.0"}}\n'
                 '2 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","p":"1.0","q":"2","m":true}}\n'
                 "garbage\n")
    with pytest.raises(BinanceError, match="--tick-size"):  # one price: the stream cannot tell the tick
        read_binance_gz(q)
    r = read_binance_gz(q, tick_size=0.1, market="USD-M")
    assert r.extra["stats"]["bad_lines"] == 2 and len(r.events) == 1 and r.events["side"][0] == SIDE_BID
