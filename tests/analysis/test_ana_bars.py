"""Battle Navale (5 patterns + the rouge-sous-verte gate) and the bar-based advanced patterns
(head fake, transition) on hand-built footprint bars, on both implementations (``impl``: numba
kernels and NumPy twins)."""

import numpy as np
import pytest

from app.analysis import advanced as adv
from app.analysis import battle_navale as bn
from app.analysis.analyzers import Analyzers, make_view
from app.market.bars import BAR_DTYPE
from app.config.profiles import load_profile
from app.core.events import Instrument

PROF = load_profile("development")
BNP = bn.bn_params(PROF.section("battle_navale"))
ADVP = adv.adv_params(PROF.section("advanced"))
BASE, R = 990, 40

def make_bars(rows, bullish_fp=True):
    """rows: list of (o, h, l, c, vol, buy, sell). Footprint: buy volume at the high and sell
    volume at the low (green base above red: rouge sous verte) or the reverse."""
    b = np.zeros(len(rows), BAR_DTYPE)
    fpb = np.zeros((len(rows), R), np.float32)
    fps = np.zeros((len(rows), R), np.float32)
    for k, (o, h, lo, c, vol, buy, sell) in enumerate(rows):
        b[k] = (k * 60_000_000_000, o, h, lo, c, vol, buy, sell, buy - sell, 10)
        up, dn = (h, lo) if bullish_fp else (lo, h)
        fpb[k, up - BASE] = buy
        fps[k, dn - BASE] = sell
    return b, fpb, fps


QUIET = [(1000, 1002, 1000, 1001, 100.0, 50.0, 50.0)] * 20


def run_bn(impl, rows, bullish_fp=True, last_fp=None):
    """Run ``impl.bn_scan`` on the last closed bar; return ({slot: row}, bases row)."""
    b, fpb, fps = make_bars(rows + [(1001, 1001, 1001, 1001, 1.0, 1.0, 0.0)], bullish_fp)
    if last_fp is not None:
        fpb[-2], fps[-2] = last_fp
    i = len(b) - 2
    x = np.zeros(bn.BN_OUT_SHAPE)
    assert impl.bn_scan(b, fpb, fps, BASE, i, BNP, x) == int((x[:7, 0] > 0).sum())
    g, red = impl.bar_bases(fpb[i], fps[i], BASE)
    np.testing.assert_allclose(x[7, 1:3], (g, red), equal_nan=True)  # row 7 holds the bases
    got = {bn.BN_SLOTS[k]: tuple(x[k]) for k in range(7) if x[k, 0] > 0}
    return got, x[7]


@pytest.mark.parametrize("close, fires", [(1004, True), (1002, False)])
def test_long_down_up(impl, close, fires):
    rows = QUIET + [(1006, 1006, 1000, 1000, 100.0, 40.0, 60.0), (1001, close + 1, 1001, close, 100.0, 60.0, 40.0)]
    got, rsv = run_bn(impl, rows)
    assert (("long_down_up", 1) in got) == fires
    if fires:
        s, price, ratio, ret = got[("long_down_up", 1)]
        avg = (19 * 3 + 7) / 20  # the lookback (20 bars before the evaluated bar) holds the long bar
        assert price == 1000 and ratio == pytest.approx(7 / avg) and ret == pytest.approx(4 / 6)
        assert s == pytest.approx(min(1.0, 0.5 * 7 / (1.6 * avg) + (4 / 6 - 0.5)))


def test_long_up_down_and_rouge_sous_verte_gate(impl):
    rows = QUIET + [(1000, 1006, 1000, 1006, 100.0, 60.0, 40.0), (1005, 1005, 1001, 1002, 100.0, 40.0, 60.0)]
    got, rsv = run_bn(impl, rows, bullish_fp=False)  # sellers' base above buyers': short allowed
    assert ("long_up_down", -1) in got and rsv[3] == 0.0
    got, rsv = run_bn(impl, rows, bullish_fp=True)  # rouge sous verte holds (gap 4): no short pattern
    assert ("long_up_down", -1) not in got and rsv[0] == pytest.approx(4.0) and rsv[3] == 1.0


@pytest.mark.parametrize("buy, sell, fires", [(40.0, 60.0, True), (45.0, 55.0, False)])
def test_color_down(impl, buy, sell, fires):
    rows = QUIET + [(1000, 1002, 1000, 1002, 100.0, buy, sell)]
    got, _ = run_bn(impl, rows, bullish_fp=False)
    assert (("color_down", -1) in got) == fires
    if fires:
        assert got[("color_down", -1)][0] == pytest.approx(0.5 * 0.2 / 0.15)


@pytest.mark.parametrize("vol, fires", [(200.0, True), (170.0, False)])
def test_vikings(impl, vol, fires):
    rows = QUIET + [(1000, 1003, 1000, 1003, vol, 0.7 * vol, 0.3 * vol)]
    got, _ = run_bn(impl, rows)
    assert (("vikings", 1) in got) == fires
    if fires:
        s, price, vr, dr = got[("vikings", 1)]
        assert vr == pytest.approx(2.0) and dr == pytest.approx(0.4)


@pytest.mark.parametrize("bottom, fires", [(30.0, True), (15.0, False)])
def test_defenders(impl, bottom, fires):
    rows = QUIET + [(1003, 1006, 1000, 1005, 120.0, 60.0, 60.0)]  # 7 rows: wider than usual (3)
    fpb = np.zeros(R, np.float32)
    fps = np.zeros(R, np.float32)
    fpb[1006 - BASE] = 60
    fps[1000 - BASE] = bottom  # sellers hit the two lowest rows ...
    fps[1003 - BASE] = 60 - bottom  # ... the rest higher up; the bar closed back up
    got, _ = run_bn(impl, rows, last_fp=(fpb, fps))
    assert (("defenders", 1) in got) == fires
    if fires:
        s, price, fr, pos = got[("defenders", 1)]
        assert price == 1000 and fr == pytest.approx(0.5) and pos == pytest.approx(5 / 6)


def run_adv_bars(impl, rows, fp_last=None):
    """Run ``impl.adv_bars_scan`` on the last closed bar; return its ``out`` (2, 5)."""
    b, fpb, fps = make_bars(rows + [(1001, 1001, 1001, 1001, 1.0, 1.0, 0.0)])
    if fp_last is not None:
        fpb[-2], fps[-2] = fp_last
    i = len(b) - 2
    x = np.zeros((2, 5))
    assert impl.adv_bars_scan(b, fpb, fps, BASE, i, ADVP, x) == (1 if x[0, 0] > 0 else 0)
    return x


@pytest.mark.parametrize("close, beyond, fires", [(1001, 50.0, True), (1003, 50.0, False), (1001, 30.0, False)])
def test_head_fake(impl, close, beyond, fires):
    fpb = np.zeros(R, np.float32)
    fps = np.zeros(R, np.float32)
    fpb[1003 - BASE: 1006 - BASE] = beyond / 3  # volume above the 10-bar high of 1002
    fps[1000 - BASE] = 50
    x = run_adv_bars(impl, QUIET + [(1001, 1005, 1000, close, 100.0, 50.0, 50.0)], (fpb, fps))
    assert (x[0, 0] > 0) == fires
    if fires:
        assert x[0, 1] == 1002 and x[0, 2] == -1 and x[0, 3] == pytest.approx(50.0)
        assert x[0, 4] == pytest.approx(100 / 3)


def test_efficiency_ratio(impl):
    trend = [(1000 + k, 1001 + k, 1000 + k, 1001 + k, 100.0, 50.0, 50.0) for k in range(20)]
    x = run_adv_bars(impl, trend)
    assert x[1, 0] == pytest.approx(1.0) and x[1, 2] == 1
    chop = [(1000, 1002, 1000, 1000 + (k % 2), 100.0, 50.0, 50.0) for k in range(20)]
    x = run_adv_bars(impl, chop)
    assert x[1, 0] <= 0.1


def _bars_view(rows, ts):
    b, fpb, fps = make_bars(rows + [(rows[-1][3],) * 4 + (1.0, 1.0, 0.0)])
    return make_view(rows=R, cols=4, base=BASE, ts=ts, n_bars=len(b), bars=b, fp_buy=fpb, fp_sell=fps)


def test_transition_range_to_trend_through_the_facade(impl):
    a = Analyzers(PROF, Instrument("ES", 0.25, 12.5), vix_history=False, use_numba=impl.use_numba)
    rows = [(1000, 1002, 1000, 1000 + (k % 2), 100.0, 50.0, 50.0) for k in range(12)]
    seen = []
    t = 1_703_545_200_000_000_000
    for k in range(12):  # range first, then a steady climb
        rows.append((1000 + 2 * k, 1002 + 2 * k, 1000 + 2 * k, 1002 + 2 * k, 100.0, 50.0, 50.0))
        r = a.step(_bars_view(rows, t + k * 60_000_000_000))
        seen += [h for h in r.patterns if h.name == "transition"]
    assert seen and seen[0].side == 1 and "range -> trend" in seen[0].detail
