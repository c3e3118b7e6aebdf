"""Issue 14, items 1-7: the DOM and Battle Navale detectors on hand-built books and bars.

Each test builds the case the issue describes, fails on the code before the fix and runs on both
implementations (``impl``: the numba kernel and its NumPy twin); where a kernel keeps state, the
kernel and the twin are compared directly.
"""

import numpy as np
import pytest

from app.analysis import dom
from app.analysis.analyzers import make_view
from app.config.profiles import load_profile

DEV = load_profile("development")
SEC = DEV.section("dom")
TOUCH_B, TOUCH_A = 30, 31  # rows of best bid / best ask (base 1000)


def book(**kw):
    """A steady book: 10 contracts on rows 21..30 (bid) and 31..40 (ask), the same in history."""
    v = make_view(rows=64, cols=40, best_bid=1000 + TOUCH_B, best_ask=1000 + TOUCH_A, **kw)
    v.bid[21:31] = 10
    v.ask[31:41] = 10
    v.hist_bid[:] = v.bid[:, None]
    v.hist_ask[:] = v.ask[:, None]
    return v


def scan(impl, v, params=None):
    """Run ``impl.dom_scan``; return {(pattern, side): (strength, price, v1, v2)}."""
    p = dom.dom_params(SEC, v.column_ns) if params is None else params
    a = np.zeros(dom.DOM_OUT_SHAPE)
    n = impl.dom_scan(v.bid, v.ask, v.hist_bid.T, v.hist_ask.T, v.traded_buy.T, v.traded_sell.T,
                      v.best_bid, v.best_ask, v.base, v.col_t0 // v.column_ns, p, *dom.new_dom_state(v.rows), a)
    assert n == int((a[:dom.N_DOM_SLOTS, 0] > 0).sum())
    found = {}
    for k in np.flatnonzero(a[:dom.N_DOM_SLOTS, 0] > 0):
        pi, side_i = divmod(int(k), 2)
        found[(dom.DOM_PATTERNS[pi], dom.DOM_SIDES[pi][side_i])] = (a[k, 0], v.base + int(a[k, 1]), a[k, 2], a[k, 3])
    return found


# ---- item 1: absorption sees the rows above the touch ------------------------------------------

def test_absorption_bid_that_slid_under_selling_is_not_absorption(impl):
    """Issue 14.1: the bid slid 1035 -> 1030 under 120 contracts of selling (20 at each price).
    The old kernel looked only at 1020..1031, saw 40 contracts within one tick and reported a
    bullish absorption at 0.83; the level gave way, so nothing fires."""
    v = book()
    v.traded_sell[30:36, -6:] = 20.0 / 6  # 20 contracts at each of 1030..1035 over the window
    v.traded_buy[36, -1] = 5
    got = scan(impl, v)
    assert ("absorption", 1) not in got


def test_absorption_that_held_still_fires(impl):
    """The same 120 contracts sold at 1030 and 1031 only (within one tick), the bid still 1030."""
    v = book()
    v.traded_sell[30:32, -6:] = 60.0 / 6
    v.traded_buy[36, -1] = 5
    s, price, agg, other = scan(impl, v)[("absorption", 1)]
    assert price == 1030 and agg == pytest.approx(120) and other == 5


def test_absorption_ask_that_climbed_under_buying_is_not_absorption(impl):
    """The mirror: the ask climbed 1026 -> 1031 under buying (rows below today's ask)."""
    v = book()
    v.traded_buy[26:32, -6:] = 20.0 / 6
    v.traded_sell[20, -1] = 5
    assert ("absorption", -1) not in scan(impl, v)
