"""Issue 17 item 5: the relation between two instruments (``docs/relation.md``).

Real data: the BTCUSDT and ETHUSDT trades of 2024-08-08 23:54-00:00 UTC (Binance USD-M, the
same minutes). The kernel equals its NumPy twin; the correlation equals an independent pandas
computation; feeding in batches equals feeding at once; the divergence flag fires on a planted
divergence and stays within its stated rate on the real pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.analysis.relation import NS_PER_S, RELATION_DTYPE, Relation, RelationParams
from app.cli.analyze import load_any
from app.core.sessions import CRYPTO_UTC

BTC = "crypto/btcusdt_20240808.gz"
ETH = "crypto/ethusdt_20240808.gz"
FIELDS = ("ts", "corr", "rs", "z", "flag", "a", "b")


@pytest.fixture(scope="module")
def trades(shared_data):
    """(ts, price ticks) of BTCUSDT and ETHUSDT trades."""
    out = []
    for f in (BTC, ETH):
        out.extend(Relation.trades_of(load_any(str(shared_data / f)).events))
    return tuple(out)


def run(trades, params=None, use_numba=True, calendar=None, until_ns=None) -> np.ndarray:
    r = Relation(params, calendar=calendar, use_numba=use_numba)
    return r.update(*trades, until_ns=until_ns)


def assert_rows_equal(x: np.ndarray, y: np.ndarray, exact: bool = False) -> None:
    assert len(x) == len(y)
    for f in FIELDS:
        if f in ("ts", "flag"):
            assert np.array_equal(x[f], y[f]), f
        elif exact:
            assert np.array_equal(x[f], y[f], equal_nan=True), f
        else:
            np.testing.assert_allclose(x[f], y[f], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=f)


def plant(trades, start_s: float, length_s: float, move: float):
    """The real trades with B's prices raised by ``move`` (log) along a ramp over
    ``length_s`` seconds from ``start_s`` after the first trade (B ran ahead of A), then held."""
    ta, pa, tb, pb = trades
    t0 = int(min(ta[0], tb[0]))
    x = np.clip((tb - t0 - start_s * NS_PER_S) / (length_s * NS_PER_S), 0.0, 1.0)
    return ta, pa, tb, pb * np.exp(move * x)


# ---------------------------------------------------------------- sampling on one grid
def test_last_value_sampling_on_a_one_second_grid():
    """Two streams with different timestamps meet on the grid: each second takes the last
    trade before its end, carried through seconds without a trade; a second closes when the
    market clock (either stream) reaches its end."""
    s = NS_PER_S
    base = 1_723_161_255 * s
    ta = np.array([base + s // 5, base + 17 * s // 10, base + 18 * s // 10, base + 4 * s + 1])
    pa = np.array([100.0, 101.0, 102.0, 103.0])
    tb = np.array([base + 9 * s // 10, base + 31 * s // 10])
    pb = np.array([50.0, 51.0])
    rows = Relation().update(ta, pa, tb, pb)
    assert rows.dtype == RELATION_DTYPE
    assert rows["ts"].tolist() == [base, base + s, base + 2 * s, base + 3 * s]  # second 4 still open
    assert rows["a"].tolist() == [100.0, 102.0, 102.0, 102.0]
    assert rows["b"].tolist() == [50.0, 50.0, 50.0, 51.0]
    assert rows["rs"][0] == 0.0  # normalised at the open
    assert rows["rs"][3] == pytest.approx(np.log(102 / 100) - np.log(51 / 50))
    more = Relation()
    assert len(more.update(ta, pa, tb, pb, until_ns=base + 5 * s)) == 5  # the clock closed second 4


# ---------------------------------------------------------------- kernel = twin
@pytest.mark.parametrize("params", [RelationParams(), RelationParams(window_s=20, horizon_s=3, history_s=30,
                                                                     k_sigma=2.0)])
def test_kernel_equals_twin_on_the_real_pair_and_a_planted_divergence(trades, params):
    for tr in (trades, plant(trades, 250, 10, -0.004)):
        a, b = run(tr, params), run(tr, params, use_numba=False)
        assert_rows_equal(a, b)
    assert (a["flag"] != 0).any()  # the flags were compared where they fire


def test_kernel_equals_twin_across_a_session_open(trades):
    """The real minutes before midnight UTC and the same trades 345 s later (after midnight):
    at the crypto session open the relative strength starts again at 0 and the windows empty."""
    ta, pa, tb, pb = trades
    shift = 345 * NS_PER_S
    two = (np.concatenate([ta, ta + shift]), np.concatenate([pa, pa]),
           np.concatenate([tb, tb + shift]), np.concatenate([pb, pb]))
    k, t = run(two, calendar=CRYPTO_UTC), run(two, calendar=CRYPTO_UTC, use_numba=False)
    assert_rows_equal(k, t)
    midnight = 1_723_161_600 * NS_PER_S  # 2024-08-09 00:00 UTC
    i = int(np.searchsorted(k["ts"], midnight))
    assert k["ts"][i] == midnight and k["rs"][i] == 0.0
    assert np.isnan(k["corr"][i:i + 60]).all() and np.isfinite(k["corr"][i + 60])
    assert np.isfinite(k["corr"][i - 1])


# ---------------------------------------------------------------- against pandas
def test_correlation_equals_pandas_rolling_corr_on_the_real_trades(trades):
    ta, pa, tb, pb = trades
    window = 60
    rows = run(trades, RelationParams(window_s=window))
    # independent: pandas resampling (last trade per second, carried forward) and rolling corr
    sa = pd.Series(pa, index=pd.to_datetime(ta, utc=True)).resample("1s").last()
    sb = pd.Series(pb, index=pd.to_datetime(tb, utc=True)).resample("1s").last()
    both = pd.concat([sa, sb], axis=1, keys=["a", "b"]).ffill().dropna()
    rets = np.log(both).diff()
    expect = rets["a"].rolling(window).corr(rets["b"])
    got = pd.Series(rows["corr"], index=pd.to_datetime(rows["ts"], utc=True))
    closed = expect.index[expect.index <= got.index[-1]]  # the last, still open second is not a row
    assert len(closed) >= len(expect) - 1 and expect[closed].notna().sum() > 250
    np.testing.assert_allclose(got[closed].to_numpy(), expect[closed].to_numpy(), rtol=0, atol=1e-9, equal_nan=True)
    # a real correlated pair: BTC and ETH perpetuals move together most of these minutes
    assert 0.3 < float(np.nanmean(rows["corr"])) < 0.95


# ---------------------------------------------------------------- incremental
@pytest.mark.parametrize("step_s", [0.37, 7.0])
def test_batches_cut_at_one_market_time_give_the_same_rows(trades, step_s):
    ta, pa, tb, pb = trades
    whole = run(trades)
    r = Relation()
    t0, t_end = int(min(ta[0], tb[0])), int(max(ta[-1], tb[-1]))
    parts = []
    for cut in np.arange(t0, t_end + int(step_s * NS_PER_S), int(step_s * NS_PER_S)):
        ia0, ia1 = np.searchsorted(ta, [cut - int(step_s * NS_PER_S), cut], side="left")
        ib0, ib1 = np.searchsorted(tb, [cut - int(step_s * NS_PER_S), cut], side="left")
        if cut == t0:
            continue
        parts.append(r.update(ta[ia0:ia1], pa[ia0:ia1], tb[ib0:ib1], pb[ib0:ib1], until_ns=int(cut)))
    parts.append(r.update(ta[ia1:], pa[ia1:], tb[ib1:], pb[ib1:]))
    got = np.concatenate(parts)
    n = min(len(got), len(whole))
    assert n >= len(whole) - 1
    assert_rows_equal(got[:n], whole[:n], exact=True)
    assert r.rows_out == len(got)


# ---------------------------------------------------------------- the divergence flag
def test_flag_fires_on_a_planted_divergence_and_not_before(trades):
    p = RelationParams()
    rows = run(plant(trades, 250, 10, 0.002))  # ETH runs 0.2 % ahead of BTC within 10 s (about 7 sd)
    t0 = int(rows["ts"][0])
    sec = (rows["ts"] - t0) // NS_PER_S
    fired = sec[rows["flag"] != 0]
    assert len(fired) and fired.min() >= 250 and fired.min() <= 250 + 10 + p.horizon_s
    assert (rows["flag"][rows["flag"] != 0] == -1).all()  # B (ETH) ran ahead of A (BTC)
    before = rows[(sec < 250) & np.isfinite(rows["z"])]
    assert len(before) > 100 and (before["flag"] == 0).all()


@pytest.mark.parametrize("k_sigma", [2.0, 3.0, 4.0])
def test_flag_rate_on_the_real_pair_stays_within_its_stated_rate(trades, k_sigma):
    p = RelationParams(k_sigma=k_sigma)
    rows = run(trades, p)
    tested = np.isfinite(rows["z"])
    assert tested.sum() > 150
    rate = float((rows["flag"][tested] != 0).mean())
    assert rate <= p.stated_rate, f"k_sigma {k_sigma}: flagged {rate:.1%} > stated {p.stated_rate:.1%}"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw,match", [({"window_s": 1}, "window_s"), ({"horizon_s": 0.5}, "horizon_s"),
                                      ({"history_s": 1}, "history_s"), ({"k_sigma": 1.0}, "k_sigma"),
                                      ({"k_sigma": float("nan")}, "k_sigma")])
def test_bad_parameters_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        RelationParams(**kw)


def test_bad_trades_are_refused_and_nothing_is_lost():
    s = NS_PER_S
    r = Relation()
    first = r.update(np.array([s, 2 * s]), np.array([10.0, 11.0]), np.array([s]), np.array([5.0]))
    assert first["ts"].tolist() == [s]
    with pytest.raises(ValueError, match="stream B: prices must be positive"):
        r.update(np.array([3 * s]), np.array([12.0]), np.array([3 * s]), np.array([-1.0]))
    with pytest.raises(ValueError, match="stream A: trade times go backwards"):
        r.update(np.array([3 * s, s]), np.array([12.0, 12.0]), np.zeros(0, np.int64), np.zeros(0))
    rows = r.update(np.array([4 * s]), np.array([12.0]), np.array([4 * s]), np.array([6.0]))
    # the refused calls took nothing (not A's valid trade at 3 s either)
    assert rows["ts"].tolist() == [2 * s, 3 * s] and rows["a"].tolist() == [11.0, 11.0]
