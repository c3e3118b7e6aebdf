"""The six DOM detectors on hand-built books: each fires where docs/patterns.md says and stays
quiet on a near miss, on both implementations (``impl``: the numba kernel and its NumPy twin);
the kernel's running sums agree with the stateless twin while the columns advance."""

import numpy as np
import pytest

from app.analysis import dom, dom_ref
from app.analysis.analyzers import make_view
from app.config.profiles import load_profile

SEC = load_profile("development").section("dom")  # wall_ratio 3, iceberg_ratio 1.5, ...
TOUCH_B, TOUCH_A = 30, 31  # rows of best bid / best ask (base 1000)
#: Thresholds that DomStats would take from the instrument's statistics (dom.STAT_SLOTS order),
#: fixed here: iceberg 10 contracts, no typical-queue floor, any ladder growth, squeeze thin 0.5
#: and imbalance 0.4, absorption 30 contracts.
STATS = (10.0, 0.0, 0.0, 0.5, 0.4, 30.0)

def book(**kw):
    """A steady book: 10 contracts on rows 21..30 (bid) and 31..40 (ask), the same in history."""
    v = make_view(rows=64, cols=40, best_bid=1000 + TOUCH_B, best_ask=1000 + TOUCH_A, **kw)
    v.bid[21:31] = 10
    v.ask[31:41] = 10
    return v


def sync_hist(v):
    v.hist_bid[:] = v.bid[:, None]
    v.hist_ask[:] = v.ask[:, None]


def scan(impl, v, sec=SEC):
    """Run ``impl.dom_scan``; return {(pattern, side): (strength, price, v1, v2)}."""
    p = dom.dom_params(sec, v.column_ns, stats=STATS)
    a = np.zeros(dom.DOM_OUT_SHAPE)
    n = impl.dom_scan(v.bid, v.ask, v.hist_bid.T, v.hist_ask.T, v.traded_buy.T, v.traded_sell.T,
                      v.best_bid, v.best_ask, v.base, v.col_t0 // v.column_ns, p, *dom.new_dom_state(v.rows), a)
    assert n == int((a[:dom.N_DOM_SLOTS, 0] > 0).sum())  # the count of detections written to out
    found = {}
    for k in np.flatnonzero(a[:dom.N_DOM_SLOTS, 0] > 0):
        pi, side_i = divmod(int(k), 2)
        name = dom.DOM_PATTERNS[pi]
        found[(name, dom.DOM_SIDES[pi][side_i])] = (a[k, 0], v.base + int(a[k, 1]), a[k, 2], a[k, 3])
    return found


def test_quiet_book_fires_nothing(impl):
    v = book()
    sync_hist(v)
    assert scan(impl, v) == {}


@pytest.mark.parametrize("size, fires", [(50.0, True), (25.0, False)])
def test_wall(impl, size, fires):
    v = book()
    v.bid[27] = size  # median of the bid side is 10; wall_ratio 3 -> 30 needed
    sync_hist(v)
    got = scan(impl, v)
    assert (("wall", 1) in got) == fires
    if fires:
        s, price, sz, med = got[("wall", 1)]
        assert price == 1027 and sz == 50 and med == 10
        assert s == pytest.approx(min(1.0, 0.5 * (50 / 10) / 3.0))


@pytest.mark.parametrize("traded, fires", [(20.0, True), (14.0, False)])
def test_iceberg(impl, traded, fires):
    v = book()
    sync_hist(v)  # the ask at 1032 shows 10 contracts the whole time
    v.traded_buy[32, -10:] = traded / 10  # buyers lift 1032 for `traded` contracts in all
    got = scan(impl, v)
    assert (("iceberg", -1) in got) == fires  # 1.5 x 10 = 15 needed
    if fires:
        s, price, vol, dmax = got[("iceberg", -1)]
        assert price == 1032 and vol == pytest.approx(20) and dmax == 10
        assert s == pytest.approx(0.5 * 2.0 / 1.5)


@pytest.mark.parametrize("sizes, fires", [((10, 13, 17, 22), True), ((10, 13, 15, 22), False)])
def test_ladder(impl, sizes, fires):
    v = book()
    v.bid[30], v.bid[29], v.bid[28], v.bid[27] = sizes  # stepping up away from the touch by 1.25x
    sync_hist(v)
    got = scan(impl, v)
    assert (("ladder", 1) in got) == fires
    if fires:
        s, price, n, growth = got[("ladder", 1)]
        assert price == 1030 and n == 4 and growth == pytest.approx(np.log(22 / 10))
        assert s == pytest.approx(0.5 * np.log(2.2) / (3 * np.log(1.25)))  # growth / the least a run can grow


@pytest.mark.parametrize("traded, fires", [(0.0, True), (30.0, False)])
def test_spoofing(impl, traded, fires):
    v = book()
    sync_hist(v)
    v.hist_bid[28, 20:38] = 60  # a 60-lot sat 2 ticks under the touch ...
    v.bid[28] = 0  # ... and is gone now
    v.hist_bid[28, 38:] = 0
    v.traded_sell[28, 37] = traded  # near miss: it traded (30 > 0.2 x 60), so it was real
    got = scan(impl, v)
    assert (("spoofing", -1) in got) == fires
    if fires:
        s, price, peak, med = got[("spoofing", -1)]
        assert price == 1028 and peak == 60 and med == 10


@pytest.mark.parametrize("rows, fires", [((30,), True), ((30, 29, 28), False)])
def test_absorption(impl, rows, fires):
    v = book()
    sync_hist(v)
    for r in rows:  # 40 contracts sold into the bid, 5 bought
        v.traded_sell[r, -5:] = 8.0 / len(rows)
    v.traded_buy[31, -1] = 5
    if len(rows) > 1:  # the bid gave way: it is now at the lowest row sold into
        v.bid[29:31] = 0
        v = make_view(**{**{f: getattr(v, f) for f in v.__dataclass_fields__}, "best_bid": 1028})
    got = scan(impl, v)
    assert (("absorption", 1) in got) == fires
    if fires:
        s, price, agg, other = got[("absorption", 1)]
        assert price == 1030 and agg == pytest.approx(40) and other == 5
        assert s == pytest.approx(min(1.0, 0.25 * min(40 / (2.5 * 5), 2) + 0.25 * min(40 / 30, 2)))


@pytest.mark.parametrize("ask_now, fires", [(3.0, True), (6.0, False)])
def test_squeeze(impl, ask_now, fires):
    v = book()
    sync_hist(v)  # asks averaged 10 per level over the window
    v.ask[31:36] = ask_now  # ... and thinned to 3 (near miss: 6 -> 30 > 0.5 x 50)
    got = scan(impl, v)
    assert (("squeeze", 1) in got) == fires
    if fires:
        s, price, imb, thin = got[("squeeze", 1)]
        assert price == 1031
        assert imb == pytest.approx((50 - 15) / 65)
        assert thin == pytest.approx(0.3)


def test_empty_side_and_no_history_do_not_crash(impl):
    v = make_view(rows=16, cols=1)
    assert scan(impl, v) == {}
    v = make_view(rows=16, cols=3, best_bid=1005, best_ask=-1)
    v.bid[5] = 4
    scan(impl, v)


def test_running_sums_follow_moving_columns_and_touch():
    """Persistent kernel state vs the stateless twin while columns advance (1-3 at a time), the
    touch walks 60 rows (leaving the kept band) and the row grid shifts once."""
    rng = np.random.default_rng(7)
    R, C, T = 160, 150, 140  # C > the 60-column iceberg window, so advances can be incremental
    hb_all = rng.integers(0, 40, (T + C, R)).astype(np.float32)
    ha_all = rng.integers(0, 40, (T + C, R)).astype(np.float32)
    tb_all = (rng.random((T + C, R)) < 0.05).astype(np.float32) * rng.integers(1, 30, (T + C, R))
    ts_all = (rng.random((T + C, R)) < 0.05).astype(np.float32) * rng.integers(1, 30, (T + C, R))
    p = dom.dom_params(SEC, 500_000_000, stats=STATS)
    sums, meta = dom.new_dom_state(R)
    col, touch, base, rebuilt = 0, 40, 1000, 0
    for k in range(70):
        col += 1 + k % 3
        if col + C > T + C:
            break
        touch += 1
        if k == 35:
            base += 5  # a re-centre: rows now mean other prices
        sl = slice(col, col + C)
        bid, ask = np.zeros(R), np.zeros(R)
        bid[touch - 12: touch + 1] = rng.integers(1, 60, 13)
        ask[touch + 1: touch + 14] = rng.integers(1, 60, 13)
        args = (bid, ask, hb_all[sl], ha_all[sl], tb_all[sl], ts_all[sl], base + touch, base + touch + 1, base, col, p)
        x, y = np.zeros(dom.DOM_OUT_SHAPE), np.zeros(dom.DOM_OUT_SHAPE)
        assert dom.dom_scan(*args, sums, meta, x) == dom_ref.dom_scan_np(*args, None, None, y)
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)  # running sums: rounding only
        rebuilt += meta[7] == 0
    assert 2 <= rebuilt < 40  # rebuilds happened (band exits, re-centre) but most steps were incremental
