"""Issue 14, items 1-7: the DOM and Battle Navale detectors on hand-built books and bars.

Each test builds the case the issue describes, fails on the code before the fix and runs on both
implementations (``impl``: the numba kernel and its NumPy twin); where a kernel keeps state, the
kernel and the twin are compared directly.
"""

import math

import numpy as np
import pytest

from app.analysis import dom
from app.analysis.analyzers import Analyzers, make_view
from app.config.profiles import load_profile
from app.core.events import Instrument

DEV = load_profile("development")
SEC = DEV.section("dom")
ES = Instrument("ES", 0.25, 12.5)
TOUCH_B, TOUCH_A = 30, 31  # rows of best bid / best ask (base 1000)
#: Instrument-relative thresholds (dom.STAT_SLOTS order) as DomStats might set them: iceberg
#: 10 contracts, typical queue 0, ladder growth 0, squeeze thin 0.5 / imbalance 0.4, absorption 30.
STATS = (10.0, 0.0, 0.0, 0.5, 0.4, 30.0)


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
    p = dom.dom_params(SEC, v.column_ns, stats=STATS) if params is None else params
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


# ---- the statistics behind the relative thresholds (items 2-4) ----------------------------------

def steps(a, make, n, t0=1_703_545_200_000_000_000, dt=250_000_000):
    """Run ``n`` analysis steps of 250 ms on views from ``make(k)``; return every PatternHit."""
    hits = []
    for k in range(n):
        v = make(k)
        v = make_view(**{**{f: getattr(v, f) for f in v.__dataclass_fields__}, "ts": t0 + k * dt,
                         "col_t0": t0 + k * dt - (v.hist_bid.shape[1] - 1) * dt})
        hits.extend(a.step(v).patterns)
    return hits


def analyzers():
    return Analyzers(DEV, ES, vix_history=False)


def test_dom_stats_stay_off_until_stats_min_s_then_follow_the_quantiles():
    st = dom.DomStats(SEC)
    p = dom.dom_params(SEC, 250_000_000)
    out = np.zeros(dom.DOM_OUT_SHAPE)
    t0 = 10**18
    for k in range(200):  # 50 s of 250 ms steps: less than stats_min_s (60 s)
        out[12] = (k % 100 / 100, 1.0, 1.0, 0.0)
        out[13] = (k % 100, 20.0, 20.0, k % 100)
        st.add(t0 + k * 250_000_000, out)
    st.apply(p, t0 + 199 * 250_000_000, force=True)
    assert tuple(p[list(dom.STAT_SLOTS)]) == dom.OFF
    for k in range(200, 400):
        out[12] = (k % 100 / 100, 1.0, 1.0, 0.0)
        out[13] = (k % 100, 20.0, 20.0, k % 100)
        st.add(t0 + k * 250_000_000, out)
    st.apply(p, t0 + 399 * 250_000_000, force=True)
    x = np.arange(100.0)
    assert p[dom.Q_ICE_MINVOL] == pytest.approx(np.quantile(x, SEC["iceberg_quantile"]))
    assert p[dom.Q_ICE_TYP] == 20.0
    assert p[dom.Q_LAD_GROWTH] == pytest.approx(np.quantile(x / 100, SEC["ladder_quantile"]))
    assert p[dom.Q_SQ_THIN] == 1.0 and p[dom.Q_SQ_IMB] == SEC["squeeze_imbalance"]
    assert p[dom.Q_ABS_MINVOL] == pytest.approx(np.quantile(x, SEC["absorption_quantile"]))


# ---- item 2: a ladder must be unusual against the instrument's own book shape ----------------

def shaped_book(k, sizes=(10, 13, 17, 22, 28, 35, 44, 55, 69, 86)):
    """The normal shape of a book: sizes rising away from each touch (10 rows a side)."""
    v = make_view(rows=64, cols=40, best_bid=1000 + TOUCH_B, best_ask=1000 + TOUCH_A)
    v.bid[TOUCH_B - 9: TOUCH_B + 1] = sizes[::-1]
    v.ask[TOUCH_A: TOUCH_A + 10] = sizes
    v.hist_bid[:] = v.bid[:, None]
    v.hist_ask[:] = v.ask[:, None]
    return v


def test_ladder_on_the_normal_book_shape_does_not_fire():
    """Issue 14.2: sizes rising away from the touch every step is the book's normal shape; the old
    detector reported it as a ladder on both sides from the first step."""
    hits = steps(analyzers(), shaped_book, 400)
    assert not [h for h in hits if h.name == "ladder"]


def test_ladder_steeper_than_the_usual_shape_fires():
    steep = (10, 15, 23, 35, 53, 80, 120, 180, 270, 400)
    hits = steps(analyzers(), lambda k: shaped_book(k, steep if k >= 380 else (10, 13, 17, 22, 28, 35, 44, 55, 69, 86)),
                 400)
    lad = [h for h in hits if h.name == "ladder"]
    assert lad and all(h.ts >= 1_703_545_200_000_000_000 + 380 * 250_000_000 for h in lad)
    assert {h.side for h in lad} == {1, -1}
    assert dict(lad[0].values)["growth"] == pytest.approx(math.log(400 / 10))


# ---- item 3: squeeze relative to the instrument's own depth swings; reported at the thin side ----

def jitter_book(k, thin_from=None):
    """Asks 9..11 per level now (history 10), bids 10: the ordinary breathing of an ES book; from
    step ``thin_from`` the asks thin to 8 per level (0.8 of their average, never <= 0.5 on ES) and
    the bids fatten to 20."""
    v = make_view(rows=64, cols=40, best_bid=1000 + TOUCH_B, best_ask=1000 + TOUCH_A)
    v.hist_bid[21:31] = 10
    v.hist_ask[31:41] = 10
    v.bid[21:31] = 10
    v.ask[31:41] = 9 + (k * 7 % 3)
    if thin_from is not None and k >= thin_from:
        v.ask[31:41] = 8
        v.bid[21:31] = 20
    return v


def test_squeeze_fires_on_a_thinning_unusual_for_the_instrument_and_names_the_ask():
    """Issue 14.3: on ES the thin side never falls to 0.5 of its average, so the old squeeze never
    fired; measured against the book's own swings, asks at 0.8 with heavy bids are a squeeze up,
    found at the best ask and reported "on the ask" (the old text said "on the bid")."""
    hits = [h for h in steps(analyzers(), lambda k: jitter_book(k, thin_from=380), 400) if h.name == "squeeze"]
    assert hits and all(h.side == 1 and h.price == 1000 + TOUCH_A for h in hits)
    assert all(h.ts >= 1_703_545_200_000_000_000 + 380 * 250_000_000 for h in hits)
    assert "squeeze on the ask" in hits[0].detail
    assert dict(hits[0].values)["thin_ratio"] == pytest.approx(0.8)


def test_squeeze_silent_on_the_ordinary_breathing_of_the_book():
    assert not [h for h in steps(analyzers(), jitter_book, 400) if h.name == "squeeze"]


# ---- item 4: iceberg against the typical queue and the instrument's traded volume --------------

ICE_STATS = (40.0, 23.0, 0.0, 0.5, 0.4, 30.0)  # traded_max quantile 40, typical touch queue 23


def test_iceberg_not_fired_by_a_normal_queue_refill(impl):
    """Issue 14.4 ("traded 11, max_displayed 2.56"): a thin level that shows 2.56 contracts on
    average and trades 11 is a queue refilling, not a hidden order; the old rule (10 contracts and
    1.5 x displayed) reported it."""
    v = book()
    v.ask[32] = 3
    v.hist_ask[32, :] = 2.56
    v.traded_buy[32, -11:] = 1.0
    assert ("iceberg", -1) not in scan(impl, v, dom.dom_params(SEC, v.column_ns, stats=ICE_STATS))
    assert ("iceberg", -1) in scan(impl, v, dom.dom_params(SEC, v.column_ns, stats=(10.0, 0.0, 0.0, 0.5, 0.4, 30.0)))


def test_iceberg_that_trades_far_more_than_the_typical_queue_fires(impl):
    v = book()
    v.ask[32] = 20
    v.hist_ask[32, :] = 20
    v.traded_buy[32, -12:] = 10.0  # 120 traded at a level that never showed more than 20
    s, price, vol, disp = scan(impl, v, dom.dom_params(SEC, v.column_ns, stats=ICE_STATS))[("iceberg", -1)]
    assert price == 1032 and vol == pytest.approx(120) and disp == 23.0  # the typical queue, not the 20 shown
    assert s == pytest.approx(min(1.0, 0.5 * (120 / 23) / SEC["iceberg_ratio"]))
    v.traded_buy[32, -12:] = 3.0  # 36 traded: under the instrument's 40
    assert ("iceberg", -1) not in scan(impl, v, dom.dom_params(SEC, v.column_ns, stats=ICE_STATS))


# ---- items 5-7: Battle Navale ---------------------------------------------------------------

from app.analysis import battle_navale as bn  # noqa: E402
from app.market.bars import BAR_DTYPE  # noqa: E402

BNP = bn.bn_params(DEV.section("battle_navale"))
BASE, R = 990, 40


def bars_with(rows, fps_rows):
    """rows: (o, h, l, c, vol, buy, sell) per bar; fps_rows: per bar ({row price: buy}, {row price: sell})."""
    b = np.zeros(len(rows), BAR_DTYPE)
    fpb = np.zeros((len(rows), R), np.float32)
    fps = np.zeros((len(rows), R), np.float32)
    for k, ((o, h, lo, c, vol, buy, sell), (fb, fs)) in enumerate(zip(rows, fps_rows)):
        b[k] = (k * 60_000_000_000, o, h, lo, c, vol, buy, sell, buy - sell, 10)
        for px, x in fb.items():
            fpb[k, px - BASE] = x
        for px, x in fs.items():
            fps[k, px - BASE] = x
    return b, fpb, fps


def run_bn(impl, rows, fps_rows):
    """Scan the last bar of ``rows`` (an open bar is appended); return ({slot: row}, out)."""
    b, fpb, fps = bars_with(rows + [(1001, 1001, 1001, 1001, 1.0, 1.0, 0.0)], fps_rows + [({1001: 1.0}, {})])
    x = np.zeros(bn.BN_OUT_SHAPE)
    impl.bn_scan(b, fpb, fps, BASE, len(b) - 2, BNP, x)
    return {bn.BN_SLOTS[k]: tuple(x[k]) for k in range(7) if x[k, 0] > 0}, x


#: 20 quiet ES-like bars 1000-1002: buyers and sellers trade at the same prices, so the green base
#: sits only 0.4 tick above the red one (the real ES hour: median gap 0.44 ticks).
QUIET = [(1000, 1002, 1000, 1001, 100.0, 50.0, 50.0)] * 20
QUIET_FP = [({1001: 50.0}, {1001: 30.0, 1000: 20.0})] * 20


def test_defenders_refused_on_a_narrow_bar(impl):
    """Issue 14.5: on a 5-row bar the 2 extreme rows are 40 % of the bar, so "35 % of the selling
    there" says nothing; the old rule fired (the docs' former example)."""
    got, _ = run_bn(impl, QUIET + [(1003, 1004, 1000, 1003, 120.0, 60.0, 60.0)],
                    QUIET_FP + [({1004: 60.0}, {1000: 30.0, 1003: 30.0})])
    assert ("defenders", 1) not in got


def test_defenders_on_a_wide_bar_fire(impl):
    got, _ = run_bn(impl, QUIET + [(1003, 1006, 1000, 1005, 120.0, 60.0, 60.0)],
                    QUIET_FP + [({1006: 30.0, 1005: 30.0}, {1000: 30.0, 1003: 30.0})])
    s, price, fr, pos = got[("defenders", 1)]
    assert price == 1000 and fr == pytest.approx(0.5)


def test_rouge_sous_verte_neutral_is_the_median_gap_of_recent_bars(impl):
    """Issue 14.6: with a 1-tick neutral, a bar whose green base is 0.6 above the red (more than
    the usual 0.4) was "verte sous rouge" and blocked a long; calibrated on the bars before it,
    it holds (and a 0.2 gap does not)."""
    up = (1000, 1003, 1000, 1003, 200.0, 140.0, 60.0)  # a vikings bar: 2 x volume, delta 0.4, up
    got, x = run_bn(impl, QUIET + [up], QUIET_FP + [({1002: 140.0}, {1002: 24.0, 1001: 36.0})])
    assert x[8, 0] == pytest.approx(0.4) and x[8, 1] == 20  # neutral gap, bars it was measured on
    assert x[7, 0] == pytest.approx(0.6) and x[7, 3] == 1.0  # gap 0.6 >= 0.4: rouge sous verte
    assert ("vikings", 1) in got
    got, x = run_bn(impl, QUIET + [up], QUIET_FP + [({1002: 140.0}, {1002: 48.0, 1001: 12.0})])
    assert x[7, 0] == pytest.approx(0.2) and x[7, 3] == 0.0 and ("vikings", 1) not in got


def test_long_down_up_long_up_down_and_vikings_fire_on_es_like_bars(impl):
    """Issue 14.7: each of the three fires on an ES-like footprint (gaps near the calibrated neutral),
    long and short; under the 1-tick neutral every long one was refused on such bars."""
    fp_long = ({1003: 60.0}, {1003: 20.0, 1002: 20.0})  # gap 0.5 >= 0.4
    fp_short = ({1003: 40.0}, {1003: 36.0, 1002: 24.0})  # gap 0.4 <= 0.4
    long_bar_down = (1006, 1006, 1000, 1000, 100.0, 40.0, 60.0)
    got, _ = run_bn(impl, QUIET + [long_bar_down, (1001, 1005, 1001, 1004, 100.0, 60.0, 40.0)],
                    QUIET_FP + [({1000: 40.0}, {1000: 60.0}), fp_long])
    assert ("long_down_up", 1) in got
    long_bar_up = (1000, 1006, 1000, 1006, 100.0, 60.0, 40.0)
    got, _ = run_bn(impl, QUIET + [long_bar_up, (1005, 1005, 1001, 1002, 100.0, 40.0, 60.0)],
                    QUIET_FP + [({1006: 60.0}, {1006: 40.0}), fp_short])
    assert ("long_up_down", -1) in got
    got, _ = run_bn(impl, QUIET + [(1003, 1003, 1000, 1000, 200.0, 60.0, 140.0)],
                    QUIET_FP + [({1001: 60.0}, {1001: 84.0, 1000: 56.0})])
    assert ("vikings", -1) in got


def test_profile_refuses_stats_min_longer_than_the_window():
    from app.config.schema import ConfigError

    with pytest.raises(ConfigError, match="stats_min_s"):
        load_profile("production", {"dom.stats_min_s": 900.0})  # stats_window_s is 600
    assert load_profile("production", {"dom.stats_min_s": 600.0}).get("dom.stats_min_s") == 600.0
