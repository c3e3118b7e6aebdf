"""Trade-based patterns (microstructure, volume-profile reaction) and order flow on
hand-built trade tapes, on both implementations (``impl``: numba kernels and NumPy twins)."""

import numpy as np
import pytest

from app.analysis import advanced as adv
from app.config.profiles import load_profile
from app.core.events import SIDE_ASK, SIDE_BID, Instrument, trade_events

ADVP = adv.adv_params(load_profile("development").section("advanced"))
S = 1_000_000_000
T0 = 1_703_545_200_000_000_000

def tape(prices, times, sizes=None, sides=None):
    n = len(prices)
    return trade_events(np.asarray(times, np.int64), prices, sizes if sizes is not None else np.ones(n),
                        sides if sides is not None else np.full(n, SIDE_ASK))


def adv_scan(impl, t, now, poc=-1, vah=-1, val=-1):
    """Run ``impl.adv_trades_scan``; return its ``out`` (2, 5): microstructure, volume profile."""
    x = np.zeros((2, 5))
    n = impl.adv_trades_scan(t, now, poc, vah, val, ADVP, x)
    assert n == int((x[:, 0] > 0).sum())
    return x


@pytest.mark.parametrize("n_burst, fires", [(40, True), (10, False)])
def test_microstructure_burst(impl, n_burst, fires):
    calm = T0 + np.arange(100) * S  # one trade per second for 100 s
    burst = T0 + 100 * S + np.arange(n_burst) * (S // 100)  # then n_burst trades in 0.4 s
    times = np.concatenate([calm, burst])
    sides = np.concatenate([np.full(100, SIDE_BID), np.full(n_burst, SIDE_ASK)])
    x = adv_scan(impl, tape(np.full(times.size, 1000), times, sides=sides), int(burst[-1]))
    assert (x[0, 0] > 0) == fires  # near miss: 10 trades < micro_min_trades 20
    if fires:
        assert x[0, 2] == 1 and x[0, 4] == pytest.approx(1.0)


@pytest.mark.parametrize("last, fires", [(1004, True), (1002, False)])
def test_volume_profile_reaction_at_val(impl, last, fires):
    prices = [1003, 1002, 1001, 1000, 1001, 1002, last]  # tests the VAL at 1000 then lifts
    times = T0 + np.arange(7) * S
    x = adv_scan(impl, tape(prices, times), int(times[-1]), poc=1010, vah=1015, val=1000)
    assert (x[1, 0] > 0) == fires  # reaction 3 ticks needed (development)
    if fires:
        assert x[1, 1] == 1000 and x[1, 2] == 1 and x[1, 3] == 0 and x[1, 4] == 4


def test_volume_profile_rejection_at_vah(impl):
    prices = [1010, 1013, 1015, 1014, 1011]
    times = T0 + np.arange(5) * S
    x = adv_scan(impl, tape(prices, times), int(times[-1]), poc=1005, vah=1015, val=995)
    assert x[1, 2] == -1 and x[1, 1] == 1015 and x[1, 3] == 2


def test_orderflow_numbers(impl):
    t = tape([1000, 1000, 1001, 999], T0 + np.arange(4) * S, sizes=np.array([5.0, 30.0, 2.0, 40.0]),
             sides=np.array([SIDE_ASK, SIDE_ASK, SIDE_BID, SIDE_BID]))
    bid = np.zeros(20)
    ask = np.zeros(20)
    bid[8:11] = 10  # rows 8..10 = prices 998..1000
    ask[11:13] = 5
    x = np.zeros(7)
    assert impl.flow_scan(t, T0 + S, 25.0, bid, ask, 1000, 1001, 990, 10, x) == 3
    # window from T0 + 1 s: trades 2..4 -> buy 30, sell 42, large (>= 25): buy 30, sell 40
    assert list(x) == [30 - 42, 30, 42, 30, 40, pytest.approx((30 - 10) / 40), 3]


def test_empty_tape(impl):
    x = adv_scan(impl, tape([], []), T0, poc=1000, vah=1001, val=999)
    assert not x.any()


def _vp_view(session_volume):
    """A view whose tape tests the VAL at 1000 then lifts 4 ticks, 31 closed bars of 100."""
    from app.analysis.analyzers import make_view

    prices = [1003, 1002, 1001, 1000, 1001, 1002, 1004]
    times = T0 + np.arange(7) * S
    v = make_view(ts=int(times[-1]), trades=tape(prices, times), n_bars=32, poc=1010, vah=1015, val=1000,
                  session_volume=float(session_volume))
    v.bars["volume"][:] = 100.0
    return v


@pytest.mark.parametrize("session_volume, fires", [(2_999.0, False), (3_000.0, True)])
def test_volume_profile_needs_a_session_of_trading_behind_it(impl, session_volume, fires):
    """Old code: signal #1 at 23:01 cited a value area built from one minute (issue 14, item 11).
    Now the profile is a reason only after 30 median bars' volume (30 x 100 here)."""
    from app.analysis.analyzers import Analyzers

    a = Analyzers(load_profile("development"), Instrument("ES", 0.25, 12.5), vix_history=False,
                  use_numba=impl.use_numba)
    names = [h.name for h in a.step(_vp_view(session_volume)).patterns]
    assert ("volume_profile" in names) == fires
