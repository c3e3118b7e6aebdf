"""numba decoding kernels == their plain-NumPy twins of :mod:`app.feeds.sierra_kernels_ref` (real ES
records and hostile variants); the behaviour tests of each decoder run on both (test_fd_depth,
test_fd_scid)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core import events as E
from app.feeds import sierra_kernels as K
from app.feeds.depthfile import DepthStats, depth_records_to_events, events_to_depth_records
from app.feeds.scid import (
    FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE,
    LAST_SUB_TRADE_OF_UNBUNDLED_TRADE,
    best_bid_ask_at_trades,
    events_to_scid_records,
    read_scid,
    scid_to_events,
)
from app.feeds.sierra_kernels_ref import depth_records_to_events_numpy, scid_to_events_numpy


@pytest.fixture(scope="module")
def es(shared_data):
    from app.feeds.dbn import read_dbn_mbo

    return read_dbn_mbo(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def test_kernel_constants_match_events():
    assert (K._KIND_DEPTH, K._KIND_TRADE, K._KIND_QUOTE) == (E.KIND_DEPTH, E.KIND_TRADE, E.KIND_QUOTE)
    assert (K._SIDE_BID, K._SIDE_ASK) == (E.SIDE_BID, E.SIDE_ASK)
    assert (K._OP_SET, K._OP_DELETE, K._OP_CLEAR) == (E.OP_SET, E.OP_DELETE, E.OP_CLEAR)
    assert (K._FLAG_BATCH_END, K._FLAG_SNAPSHOT) == (E.FLAG_BATCH_END, E.FLAG_SNAPSHOT)


@pytest.mark.parametrize("mult", [1.0, 0.01])
def test_depth_kernel_equals_numpy(es, mult):
    recs = events_to_depth_records(es.events, es.instrument)
    if mult != 1.0:
        recs["price"] = (recs["price"].astype(np.float64) / mult).astype(np.float32)
    assert np.array_equal(depth_records_to_events(recs, es.instrument, mult),
                          depth_records_to_events_numpy(recs, es.instrument, mult))
    # hostile: unknown commands, NO_COMMAND with end flags, zero quantities, random flags
    rng = np.random.default_rng(3)
    x = recs.copy()
    x["command"] = rng.integers(0, 12, len(x))
    x["flags"] = rng.integers(0, 4, len(x))
    x["quantity"][rng.random(len(x)) < 0.1] = 0
    s1, s2 = DepthStats(), DepthStats()
    a = depth_records_to_events(x, es.instrument, mult, s1, size_multiplier=1000)
    b = depth_records_to_events_numpy(x, es.instrument, mult, s2, size_multiplier=1000)
    assert np.array_equal(a, b)
    assert (s1.dropped, s1.zero_quantity_sets) == (s2.dropped, s2.zero_quantity_sets) and s1.dropped > 0


def test_scid_kernel_equals_numpy(es, shared_data):
    bid, ask = best_bid_ask_at_trades(es.events)
    s = events_to_scid_records(es.events, es.instrument, bid=bid, ask=ask)
    s["open"][::7] = FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE
    s["open"][3::7] = LAST_SUB_TRADE_OF_UNBUNDLED_TRADE
    s["open"][::11] = 4000.0  # bar records: skipped by both
    s["bid_volume"][::5] = 0
    s["ask_volume"][::5] = 0  # side from price vs bid/ask
    s["total_volume"][::13] = 0  # bid/ask-only records
    s["low"][::17] = 0
    for quotes in (True, False):
        assert np.array_equal(scid_to_events(s, es.instrument, 1.0, quotes),
                              scid_to_events_numpy(s, es.instrument, 1.0, quotes))
    assert np.array_equal(scid_to_events(s, es.instrument, 1.0, size_multiplier=1000),
                          scid_to_events_numpy(s, es.instrument, 1.0, size_multiplier=1000))
    _, t = read_scid(shared_data / "sierra_chart" / "test.scid")
    assert np.array_equal(scid_to_events(t, es.instrument), scid_to_events_numpy(t, es.instrument))
