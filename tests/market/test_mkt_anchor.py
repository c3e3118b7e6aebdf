"""The grid is anchored on the first atomic batch that holds a price, however the stream is cut.

Regression: the DTC client delivers a depth snapshot as a lone ``OP_CLEAR`` (its own batch)
followed by the levels; when both arrived in one array the grid was left unanchored, then
anchored later under a book already on it, and the best ask jumped thousands of ticks away.
"""

import numpy as np
import pytest

from app.core import events as ev
from app.market.refbook import ReferenceBook
from app.sim.replay import first_trade_index, start_at
from app.feeds.samples import load_default_sample
from app.market.model import MarketModel


def _none(x):
    return -1 if x is None else x


@pytest.mark.parametrize("chunk", [1, 50, 5000])
def test_lone_clear_then_snapshot_in_one_array(chunk):
    rec = load_default_sample()
    body = start_at(rec, first_trade_index(rec.events)).events[:20_000]
    clear = ev.depth_events([body["ts"][0]], [0], [0.0], ev.SIDE_UNSET, ev.OP_CLEAR, flags=ev.FLAG_BATCH_END)
    stream = np.concatenate([clear, body])
    m = MarketModel(rec.instrument, column_ns=250_000_000)
    rb = ReferenceBook()
    for i in range(0, len(stream), chunk):
        b = stream[i:i + chunk]
        m.apply(b)
        rb.apply(b)
        assert (m.best_bid, m.best_ask) == (_none(rb.best_bid()), _none(rb.best_ask())), f"after event {i + len(b)}"
    assert 19000 < m.best_bid < m.best_ask < 19400  # ES near 4,800-4,850
