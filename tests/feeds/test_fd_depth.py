"""Sierra .depth: the real ES MBO hour written as .depth and read back gives the same book."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.feeds.depthfile import (
    ADD_ASK_LEVEL,
    ADD_BID_LEVEL,
    COMMAND_CLEAR_BOOK,
    DELETE_ASK_LEVEL,
    DELETE_BID_LEVEL,
    DEPTH_RECORD_DTYPE,
    MODIFY_ASK_LEVEL,
    MODIFY_BID_LEVEL,
    DepthDayWriter,
    DepthFileError,
    depth_records_to_events,
    events_to_depth_records,
    parse_depth_header,
    read_depth,
    read_depth_events,
    write_depth,
)
from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
)
from app.feeds.sierra_kernels_ref import depth_records_to_events_numpy

ES = Instrument("ESH4", 0.25, 12.5)
#: every decoding assertion runs on the numba path and on its plain-NumPy twin
BOTH = pytest.mark.parametrize("decode", [depth_records_to_events, depth_records_to_events_numpy],
                               ids=["numba", "numpy"])


@pytest.fixture(scope="module")
def es_hour(shared_data):
    from app.feeds.dbn import read_dbn_mbo

    return read_dbn_mbo(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def _books_at_batch_ends(ev):
    from app.market.refbook import ReferenceBook

    book = ReferenceBook()
    ends = np.flatnonzero(ev["flags"] & FLAG_BATCH_END)
    prev = 0
    for e in ends:
        book.apply(ev[prev: e + 1])
        prev = e + 1
        yield book


def test_es_mbo_depth_round_trip_same_book_every_batch(es_hour, tmp_path):
    from app.market.refbook import ReferenceBook

    src = es_hour.events[es_hour.events["kind"] == KIND_DEPTH]
    recs = events_to_depth_records(src, es_hour.instrument)
    path = tmp_path / "ESH4.2023-12-25.depth"
    write_depth(path, recs)
    raw = path.read_bytes()
    # independent check of the header and of the first records with struct
    assert struct.unpack("<IIII", raw[:16]) == (0x44444353, 64, 24, 1) and raw[:4] == b"SCDD"
    assert (len(raw) - 64) % 24 == 0 and (len(raw) - 64) // 24 == len(src)
    first = struct.unpack("<QBBHfII", raw[64:88])
    assert first[1] == COMMAND_CLEAR_BOOK
    second = struct.unpack("<QBBHfII", raw[88:112])
    assert second[1] == ADD_BID_LEVEL and second[4] == src["price"][1] * 0.25 and second[5] == src["size"][1]
    cmds = np.bincount(recs["command"], minlength=8)
    assert all(cmds[c] > 0 for c in (COMMAND_CLEAR_BOOK, ADD_BID_LEVEL, ADD_ASK_LEVEL, MODIFY_BID_LEVEL,
                                     MODIFY_ASK_LEVEL, DELETE_BID_LEVEL, DELETE_ASK_LEVEL))

    back = read_depth_events(path, es_hour.instrument)
    assert len(back) == len(src)
    assert np.array_equal(back["flags"] & FLAG_BATCH_END, src["flags"] & FLAG_BATCH_END)
    a, b = ReferenceBook(), ReferenceBook()
    ends = np.flatnonzero(src["flags"] & FLAG_BATCH_END)
    assert len(ends) > 40_000
    # Equal at every batch end, checked by induction: after each batch every level either batch
    # touched must agree (untouched levels agree from the previous batch end); a batch with a
    # clear is compared in full.
    sides, prices, bops = src["side"].tolist(), src["price"].tolist(), back["op"].tolist()
    prev = 0
    for e in ends:
        a.apply(src[prev: e + 1])
        b.apply(back[prev: e + 1])
        if OP_CLEAR in bops[prev: e + 1]:
            assert a == b, f"book differs after batch ending at {e}"
        else:
            for i in range(prev, e + 1):
                assert a.size_at(sides[i], prices[i]) == b.size_at(sides[i], prices[i]), f"batch end {e}"
        prev = e + 1
    assert a == b
    assert a.num_orders(SIDE_BID) == b.num_orders(SIDE_BID)
    assert len(a.bids()) > 900 and len(a.asks()) > 500
    assert (a.best_bid(), a.best_ask()) == (19240, 19241)  # 4810.00 / 4810.25 at 23:59:59


@BOTH
def test_every_command_and_flags(decode):
    def rec(cmd, px=0.0, q=0, fl=0, no=0):
        return (3_900_000_000_000_000, cmd, fl, no, px, q, 0)

    recs = np.array([
        rec(COMMAND_CLEAR_BOOK), rec(ADD_BID_LEVEL, 100.0, 5, no=2), rec(ADD_ASK_LEVEL, 100.25, 7, fl=1),
        rec(MODIFY_BID_LEVEL, 100.0, 9), rec(MODIFY_ASK_LEVEL, 100.25, 0), rec(0, fl=1),  # NO_COMMAND carries end
        rec(DELETE_BID_LEVEL, 100.0), rec(99), rec(DELETE_ASK_LEVEL, 100.5, fl=1),
    ], dtype=DEPTH_RECORD_DTYPE)
    from app.feeds.depthfile import DepthStats

    st = DepthStats()
    ev = decode(recs, ES, stats=st)
    assert st.dropped == 2 and st.zero_quantity_sets == 1 and len(ev) == 7
    assert ev["op"].tolist() == [OP_CLEAR, OP_SET, OP_SET, OP_SET, OP_DELETE, OP_DELETE, OP_DELETE]
    assert ev["side"].tolist() == [0, SIDE_BID, SIDE_ASK, SIDE_BID, SIDE_ASK, SIDE_BID, SIDE_ASK]
    assert ev["price"].tolist() == [0, 400, 401, 400, 401, 400, 402]
    assert ev["num_orders"][1] == 2 and ev["size"][3] == 9
    # batch ends: record 2, the NO_COMMAND's flag moved to record 4, record 8
    assert (ev["flags"] & FLAG_BATCH_END).astype(bool).tolist() == [False, False, True, False, True, False, True]
    assert (ev["flags"][:3] & FLAG_SNAPSHOT).all() and not (ev["flags"][3:] & FLAG_SNAPSHOT).any()


@BOTH
def test_no_records_give_no_events(decode):
    from app.feeds.depthfile import DepthStats

    st = DepthStats()
    ev = decode(np.zeros(0, DEPTH_RECORD_DTYPE), ES, stats=st)
    assert len(ev) == 0 and ev.dtype == EVENT_DTYPE
    assert (st.records, st.dropped, st.zero_quantity_sets) == (0, 0, 0)


def test_bad_header_and_partial_tail(tmp_path):
    with pytest.raises(DepthFileError, match="SCDD"):
        parse_depth_header(b"SCID" + b"\x00" * 60)
    with pytest.raises(DepthFileError, match="truncated"):
        parse_depth_header(b"SCDD")
    p = tmp_path / "a.depth"
    write_depth(p, np.zeros(3, dtype=DEPTH_RECORD_DTYPE))
    with open(p, "ab") as f:
        f.write(b"\x00" * 10)
    assert len(read_depth(p)[1]) == 3


def test_day_writer_rolls_with_snapshot(tmp_path, es_hour):
    from app.market.refbook import ReferenceBook

    src = es_hour.events[es_hour.events["kind"] == KIND_DEPTH][:5000].copy()
    ends = np.flatnonzero(src["flags"] & FLAG_BATCH_END)
    cut = int(ends[len(ends) // 2]) + 1
    src["ts"][cut:] += 86_400 * 10**9  # the second half falls on the next UTC day
    with DepthDayWriter(tmp_path, "ESH4", ES) as w:
        w.append_events(src[:1234])
        w.append_events(src[1234:])
    assert [p.name for p in w.files] == ["ESH4.2023-12-25.depth", "ESH4.2023-12-26.depth"]
    day2 = read_depth_events(w.files[1], ES)
    assert day2["op"][0] == OP_CLEAR and day2["flags"][0] & FLAG_SNAPSHOT
    ref = ReferenceBook()
    ref.apply(src)
    got = ReferenceBook()
    got.apply(day2)  # the second file alone rebuilds the book
    assert got == ref
