"""DBN MBO reader, ReferenceBook and the shipped sample, on the real ES hour."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from app.feeds import dbn
from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    depth_events,
)
from app.market.refbook import ReferenceBook

ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


@pytest.fixture(scope="module")
def es_path(shared_data):
    return shared_data / ES_FILE


@pytest.fixture(scope="module")
def es_rec(es_path):
    return dbn.read_dbn_mbo(es_path)


@pytest.fixture(scope="module")
def es_dbn_records(es_path):
    """The file decoded independently by databento_dbn's own record objects."""
    import databento_dbn
    import zstandard

    with open(es_path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    dec = databento_dbn.DBNDecoder()
    dec.write(data)
    return dec.decode()[1:]


def test_numpy_view_matches_databento_objects(es_path, es_dbn_records):
    _meta, recs = dbn.mbo_records(es_path)
    assert len(recs) == len(es_dbn_records) == 68792
    for i in list(range(0, len(recs), 997)) + [len(recs) - 1]:
        r = es_dbn_records[i]
        assert int(recs["ts_recv"][i]) == r.ts_recv
        assert int(recs["order_id"][i]) == r.order_id
        assert int(recs["price"][i]) == r.price
        assert int(recs["size"][i]) == r.size
        assert int(recs["flags"][i]) == int(r.flags)
        assert recs["action"][i].decode() == str(r.action.value if hasattr(r.action, "value") else r.action)
        assert recs["side"][i].decode() == str(r.side.value if hasattr(r.side, "value") else r.side)


def _independent_book(records):
    """Order-level rebuild straight from databento_dbn objects (the rules of Databento's example)."""
    orders = {}
    for r in records:
        a = str(r.action.value if hasattr(r.action, "value") else r.action)
        s = str(r.side.value if hasattr(r.side, "value") else r.side)
        if a == "A":
            orders[r.order_id] = (s, r.price, r.size)
        elif a == "C":
            if r.order_id in orders:
                s0, p0, q0 = orders[r.order_id]
                q = q0 - r.size
                if q > 0:
                    orders[r.order_id] = (s0, p0, q)
                else:
                    del orders[r.order_id]
        elif a == "M":
            if r.size > 0:
                orders[r.order_id] = (s, r.price, r.size)
            else:
                orders.pop(r.order_id, None)
        elif a == "R":
            orders.clear()
    bids, asks = collections.Counter(), collections.Counter()
    counts = collections.Counter()
    for s, p, q in orders.values():
        tick = round(p / 250_000_000)
        (bids if s == "B" else asks)[tick] += q
        counts[(s, tick)] += 1
    return bids, asks, counts


def test_final_book_equals_order_level_rebuild(es_rec, es_dbn_records):
    ref = ReferenceBook()
    ref.apply(es_rec.events)
    bids, asks, counts = _independent_book(es_dbn_records)
    assert ref.bids() == {k: float(v) for k, v in bids.items()}
    assert ref.asks() == {k: float(v) for k, v in asks.items()}
    assert ref.num_orders(SIDE_BID) == {k: counts[("B", k)] for k in bids}
    # the README's figures: ~920 bid and 565 ask levels, 4810.00 / 4810.25 at the end
    assert ref.best_bid() * 0.25 == 4810.00
    assert ref.best_ask() * 0.25 == 4810.25
    assert len(ref.asks()) == 565


def test_events_shape_and_flags(es_rec):
    ev = es_rec.events
    assert ev.dtype == EVENT_DTYPE
    assert np.all(np.diff(ev["ts"]) >= 0)
    assert es_rec.instrument.symbol == "ESH4"
    assert es_rec.instrument.tick_size == 0.25 and es_rec.instrument.tick_value == 12.5
    # snapshot: a clear, then levels, all flagged, the last closing the batch
    snap = ev[(ev["flags"] & FLAG_SNAPSHOT) != 0]
    assert snap[0]["op"] == OP_CLEAR
    assert set(snap["op"][1:].tolist()) == {OP_SET}
    assert snap[-1]["flags"] & FLAG_BATCH_END
    n_snap = len(snap)
    assert np.all((ev["flags"][:n_snap] & FLAG_SNAPSHOT) != 0)
    assert not np.any((ev["flags"][n_snap:] & FLAG_SNAPSHOT) != 0)
    depth = ev[ev["kind"] == KIND_DEPTH]
    # deletes carry size 0, sets a positive size and order count
    assert np.all(depth["size"][depth["op"] == OP_DELETE] == 0)
    sets = depth[depth["op"] == OP_SET]
    assert np.all(sets["size"] > 0) and np.all(sets["num_orders"] > 0)
    assert len(ev[ev["kind"] == KIND_TRADE]) == 2973


def test_book_uncrossed_at_every_batch_end_once_trading(es_rec):
    """CME's pre-open book may cross (indicative auction); from the opening trade on it must not."""
    ev = es_rec.events
    ref = ReferenceBook()
    ends = np.flatnonzero((ev["flags"] & FLAG_BATCH_END) != 0)
    first_trade = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[0])
    start = 0
    crossed_open = crossed_pre = 0
    for e in ends:
        ref.apply(ev[start : e + 1])
        start = e + 1
        if e > first_trade:
            crossed_open += ref.is_crossed()
        else:
            crossed_pre += ref.is_crossed()
    assert len(ends) > 40000
    assert crossed_open == 0
    assert crossed_pre > 0  # the real pre-open did cross: the check above can see a crossed book


def test_trade_aggressor_side_from_dbn(es_rec, es_dbn_records):
    """DBN T side 'B' = buyer aggressor -> SIDE_ASK (ask lifted); 'A' -> SIDE_BID."""
    dbn_sides = [
        str(r.side.value if hasattr(r.side, "value") else r.side)
        for r in es_dbn_records
        if str(r.action.value if hasattr(r.action, "value") else r.action) == "T"
    ]
    tr = es_rec.events[es_rec.events["kind"] == KIND_TRADE]
    mapping = {"B": SIDE_ASK, "A": SIDE_BID, "N": 0}
    assert tr["side"].tolist() == [mapping[s] for s in dbn_sides]
    # a buyer-aggressor trade prints at (or above) the ask that was resting before it
    ref = ReferenceBook()
    ev = es_rec.events
    checked = 0
    i = 0
    for j in np.flatnonzero(ev["kind"] == KIND_TRADE)[:400]:
        ref.apply(ev[i:j])
        i = j
        t = ev[j]
        if t["side"] == SIDE_ASK and ref.best_ask() is not None:
            assert t["price"] >= ref.best_ask()
            checked += 1
        elif t["side"] == SIDE_BID and ref.best_bid() is not None:
            assert t["price"] <= ref.best_bid()
            checked += 1
    assert checked > 100


def test_refbook_ops():
    b = ReferenceBook()
    b.apply(depth_events([1, 2, 3], [100, 101, 99], [5, 7, 2], [SIDE_BID, SIDE_ASK, SIDE_BID], OP_SET))
    assert b.best_bid() == 100 and b.best_ask() == 101
    assert b.levels(SIDE_BID) == [(100, 5.0), (99, 2.0)]
    b.apply(depth_events([4], [100], [0], [SIDE_BID], OP_DELETE))
    assert b.best_bid() == 99
    b.apply(depth_events([5], [0], [0], [SIDE_ASK], OP_CLEAR))
    assert b.asks() == {} and b.bids() == {99: 2.0}
    b.apply(depth_events([6], [0], [0], [0], OP_CLEAR))
    assert len(b) == 0
    with pytest.raises(ValueError, match="side"):
        b.levels(3)


def test_not_dbn_and_wrong_instrument(tmp_path, es_path):
    bad = tmp_path / "x.dbn"
    bad.write_bytes(b"hello world, not dbn")
    with pytest.raises(dbn.DBNError, match="DBN"):
        dbn.read_dbn_mbo(bad)
    with pytest.raises(dbn.DBNError, match="instrument_id 5"):
        dbn.read_dbn_mbo(es_path, instrument_id=5)


def test_non_mbo_schema_rejected(shared_data):
    with pytest.raises(dbn.DBNError, match="schema"):
        dbn.read_dbn_mbo(shared_data / "databento_cme/dbn_test_data/test_data.mbp-10.dbn")


def test_small_mbo_fixture(shared_data):
    rec = dbn.read_dbn_mbo(shared_data / "databento_cme/dbn_test_data/test_data.mbo.dbn")
    assert rec.events.dtype == EVENT_DTYPE
    assert rec.extra["dbn"]["records"] == 2


def test_default_sample_is_the_shared_file_and_cached(es_path):
    from app import paths
    from app.feeds import samples

    p = samples.default_sample_path()
    assert p.read_bytes() == es_path.read_bytes()
    rec = samples.load_default_sample()
    cached = list((paths.cache_dir() / "samples").glob("*.mrec"))
    assert len(cached) == 1
    rec2 = samples.load_default_sample()
    assert np.array_equal(rec.events, rec2.events)
    assert rec2.instrument == rec.instrument
    assert (p.parent / "PROVENANCE.md").exists()


def test_refbook_vectorised_apply_equals_sequential(es_rec):
    """The numpy ``apply`` and its one-event-at-a-time twin agree after every batch of the ES hour."""
    ev = es_rec.events
    fast, slow = ReferenceBook(), ReferenceBook()
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.choice(np.arange(1, len(ev)), size=300, replace=False))
    start = 0
    for c in [*cuts.tolist(), len(ev)]:
        fast.apply(ev[start:c])
        slow.apply_sequential(ev[start:c])
        assert fast == slow
        assert fast.num_orders(SIDE_ASK) == slow.num_orders(SIDE_ASK)
        start = c
    # bad ops / sides are counted by both
    weird = depth_events([1, 2], [5, 6], [1, 1], [3, SIDE_BID], [OP_SET, 9])
    fast.apply(weird)
    slow.apply_sequential(weird)
    assert fast.unknown_ops == slow.unknown_ops == 2


def test_second_file_with_clear_record(shared_data):
    """ESM4 2024-05-08: a clear ('R') record and a snapshot; the book equals an order-level rebuild."""
    import databento_dbn
    import zstandard

    p = shared_data / "databento_cme/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
    rec = dbn.read_dbn_mbo(p)
    assert rec.instrument.symbol == "ESM4"
    assert rec.extra["dbn"]["actions"]["R"] == 1
    with open(p, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    dec = databento_dbn.DBNDecoder()
    dec.write(data)
    bids, asks, _counts = _independent_book(dec.decode()[1:])
    ref = ReferenceBook()
    ref.apply(rec.events)
    assert ref.bids() == {k: float(v) for k, v in bids.items()}
    assert ref.asks() == {k: float(v) for k, v in asks.items()}
    assert not ref.is_crossed()


def test_the_fill_engine_gives_a_long_backlog_to_the_one_pass_apply(es_rec, monkeypatch):
    """The outcome tracker hands the fill engine its backlog in one batch (up to 200,000 events):
    that goes through the numpy ``apply`` (a loop cost it 26% of the engine thread at maximum
    replay speed in a profile of ``bench gui``); an exchange batch keeps the loop. The book is
    the sequential one either way."""
    from app.sim.matching import FillEngine

    ev = es_rec.events
    calls = []
    for name in ("apply", "apply_sequential"):
        real = getattr(ReferenceBook, name)
        monkeypatch.setattr(ReferenceBook, name, lambda self, e, _r=real, _n=name: (calls.append((_n, len(e))),
                                                                                    _r(self, e))[1])
    sym = es_rec.instrument.symbol
    fe = FillEngine([es_rec.instrument])
    fe.on_market(sym, ev[:50_000])
    fe.on_market(sym, ev[50_000:50_010])
    assert calls[0] == ("apply", 50_000), calls
    assert ("apply_sequential", 10) in calls, calls
    monkeypatch.undo()
    ref = ReferenceBook()
    ref.apply_sequential(ev[:50_010])
    assert fe.books[sym] == ref
