"""Price grouping (issue 14, item 12a): rows of k ticks, the row's size the sum of its levels,
trades in their row, k chosen per instrument from its own first minute of trades."""

import numpy as np
import pytest

from app.core.events import (
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
    depth_events,
    trade_events,
)
from app.market.grouping import (
    PriceGrouper,
    auto_row_ticks,
    bracket_to_ticks,
    grouped_instrument,
    nice_floor,
    row_edge_ticks,
)
from app.market.refbook import ReferenceBook


def test_a_level_update_sets_its_row_to_the_sum_of_the_rows_levels():
    g = PriceGrouper(10)
    ev = depth_events([1, 2, 3, 4, 5, 6], [1000, 1004, 1009, 1004, 1000, 1011],
                      [5.0, 3.0, 2.0, 1.0, 0.0, 7.0], SIDE_BID, [OP_SET, OP_SET, OP_SET, OP_SET, OP_DELETE, OP_SET])
    out = g.apply(ev)
    assert out.shape == ev.shape and (out["ts"] == ev["ts"]).all()
    assert out["price"].tolist() == [100, 100, 100, 100, 100, 101]
    # 5 -> 5+3 -> 5+3+2 -> 5+1+2 (the 1004 level was replaced, not added) -> 1+2 (1000 deleted)
    assert out["size"].tolist() == [5.0, 8.0, 10.0, 8.0, 3.0, 7.0]
    assert (out["op"] == OP_SET).all()
    out = g.apply(depth_events([7, 8], [1004, 1009], [0.0, 0.0], SIDE_BID, OP_DELETE))
    assert out["op"].tolist() == [OP_SET, OP_DELETE] and out["size"].tolist() == [2.0, 0.0]  # the row emptied
    assert g.row_size(SIDE_BID, 100) == 0 and g.row_size(SIDE_BID, 101) == 7.0


def test_trades_map_to_their_row_negative_ticks_floor_and_clear_forgets_the_side():
    g = PriceGrouper(5)
    ev = np.concatenate([depth_events([1, 2], [-3, 12], [4.0, 6.0], [SIDE_BID, SIDE_ASK], OP_SET),
                         trade_events([3, 4], [14, -1], [1.0, 2.0], [SIDE_ASK, SIDE_BID]),
                         depth_events([5], [0], [0.0], SIDE_ASK, OP_CLEAR),
                         depth_events([6], [13], [1.0], SIDE_ASK, OP_SET)])
    out = g.apply(ev)
    assert out["price"][:4].tolist() == [-1, 2, 2, -1]  # -3 // 5 = -1: row -1 holds -5..-1
    assert out["kind"][2] == KIND_TRADE and out["size"][2] == 1.0
    assert out["size"][5] == 1.0  # after the clear the ask row 2 holds only the new level
    assert g.row_size(SIDE_BID, -1) == 4.0


def test_one_tick_rows_pass_through_and_bad_k_is_refused():
    ev = depth_events([1], [1000], [5.0], SIDE_BID, OP_SET)
    assert PriceGrouper(1).apply(ev) is ev
    with pytest.raises(ValueError, match="ticks per row"):
        PriceGrouper(0)
    es = Instrument("ES", 0.25, 12.5)
    assert grouped_instrument(es, 1) is es
    g = grouped_instrument(Instrument("BTCUSDT", 0.1, 0.1), 50)
    assert g.tick_size == pytest.approx(5.0) and g.tick_value == pytest.approx(5.0)
    assert [nice_floor(x) for x in (0.3, 1.9, 2, 4.9, 7, 10, 49, 50, 120, 260)] == [1, 1, 2, 2, 5, 10, 20, 50, 100, 200]
    assert (row_edge_ticks(-1, 5, True), row_edge_ticks(-1, 5, False)) == (-5, -1)
    # a long bracket in rows of 10: buy anywhere in the entry row, stop on any trade in its row,
    # sell anywhere in the target row; a short mirrors it; one-tick rows are unchanged
    assert bracket_to_ticks(1, 100, 98, 104, 10) == (1009, 989, 1040)
    assert bracket_to_ticks(-1, 100, 102, 96, 10) == (1000, 1020, 969)
    assert bracket_to_ticks(1, 100, 98, 104, 1) == (100, 98, 104)


def _rows_of(book: ReferenceBook, side: int, k: int) -> dict:
    acc: dict[int, float] = {}
    for tick, size in book.levels(side):
        acc[tick // k] = acc.get(tick // k, 0.0) + size
    return {r: round(s, 9) for r, s in acc.items() if s > 1e-12}


def test_grouped_real_btcusdt_book_equals_the_exchange_book_summed_by_row(shared_data):
    from app.feeds.binance import read_binance_gz

    rec = read_binance_gz(shared_data / "crypto" / "btcusdt_20240808.gz")
    ev = rec.events[:200_000]
    k = 50
    g = PriceGrouper(k)
    raw, grp = ReferenceBook(), ReferenceBook()
    for c in np.array_split(ev, 37):  # arbitrary batch cuts
        raw.apply(c)
        grp.apply(g.apply(c))
    for side in (SIDE_BID, SIDE_ASK):
        want = _rows_of(raw, side, k)
        got = {r: round(s, 9) for r, s in grp.levels(side)}
        assert got == pytest.approx(want, abs=1e-6) and len(got) > 20


def test_auto_row_ticks_per_instrument_from_its_first_minute(shared_data):
    from app.feeds.binance import read_binance_gz
    from app.feeds.samples import load_default_sample

    def k_of(rec):
        t = rec.events[rec.events["kind"] == KIND_TRADE]
        return auto_row_ticks(t["ts"], t["price"])

    assert k_of(load_default_sample()) == 1  # ES: a 10-second range of a few ticks
    btc = k_of(read_binance_gz(shared_data / "crypto" / "btcusdt_20240808.gz"))
    eth = k_of(read_binance_gz(shared_data / "crypto" / "ethusdt_20240808.gz", symbol="ETHUSDT", tick_size=0.01,
                               tick_value=0.01))
    assert btc >= 20 and eth >= 10
    assert auto_row_ticks(np.zeros(0, np.int64), np.zeros(0, np.int64)) == 1
