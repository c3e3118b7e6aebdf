"""VIX regimes and patterns on the real CBOE history, on both implementations (``impl``: numba
kernels and NumPy twins); the kernels equal their twins on the full history."""

import numpy as np
import pytest

from app.analysis import vix as V
from app.analysis import vix_ref
from app.config.profiles import load_profile
from app.feeds.vix_history import VixHistory, load_vix_history, read_cboe_csv


@pytest.fixture(scope="module")
def hist(shared_data):
    d = shared_data / "vix_spx"
    return load_vix_history(d / "VIX_History.csv", d / "VIX3M_History.csv")


@pytest.fixture(scope="module")
def ana(hist, impl):
    return V.VixAnalyzer(hist, load_profile("production").section("vix"), use_numba=impl.use_numba)


def idx(hist, day):
    i = int(np.searchsorted(hist.dates, np.datetime64(day)))
    assert str(hist.dates[i]) == day, f"{day} is not a session"
    return i


def test_loader_reads_real_files(hist, shared_data):
    assert len(hist) > 9000
    assert hist.close[idx(hist, "2020-03-16")] == pytest.approx(82.69)
    assert np.isnan(hist.vix3m[0])  # VIX3M starts in 2009
    assert hist.vix3m[idx(hist, "2020-03-16")] > 0
    d, c = read_cboe_csv(shared_data / "vix_spx" / "vix-daily.csv")  # ISO-dated copy
    assert c[np.searchsorted(d, np.datetime64("2020-03-16"))] == pytest.approx(82.69)


def test_shipped_default_matches_shared_copy(hist):
    shipped = load_vix_history()
    assert np.array_equal(shipped.dates, hist.dates) and np.array_equal(shipped.close, hist.close)


def test_2020_03_16_is_extreme(ana, hist):
    st = ana.state_at_index(idx(hist, "2020-03-16"))
    assert st.regime == "extreme" and st.regime_index == 4
    assert st.sizing_factor == pytest.approx(0.25)


def test_quiet_2017_month_is_ultra_low_or_low(ana, hist):
    m = (hist.dates >= np.datetime64("2017-07-01")) & (hist.dates < np.datetime64("2017-08-01"))
    names = {V.REGIMES[r] for r in ana.regime[m]}
    assert names <= {"ultra_low", "low"} and len(np.flatnonzero(m)) > 15
    assert any(p.name == "complacency" for i in np.flatnonzero(m) for p in ana.state_at_index(int(i)).patterns)


def test_feb_2018_regime_change_then_spike_reversal(ana, hist):
    lo, hi = idx(hist, "2018-02-01"), idx(hist, "2018-02-28")
    change = [i for i in range(lo, hi) if ana.change[i] >= 2 and ana.regime[i] == 4]
    assert change, "no upward regime change into extreme in February 2018"
    first = change[0]
    assert str(hist.dates[first]) == "2018-02-05"  # VIX 17.31 -> 37.32
    rev = [i for i in range(first + 1, hi) if ana.spike_rev[i] > 0]
    assert rev and str(hist.dates[rev[0]]) == "2018-02-06"  # 37.32 -> 29.98, -20 %
    names = [p.name for p in ana.state_at_index(rev[0]).patterns]
    assert "spike_reversal" in names
    # and nothing of the kind in the calm January before it
    j0, j1 = idx(hist, "2018-01-02"), idx(hist, "2018-01-22")
    assert not ana.spike_rev[j0:j1].any()


def test_state_as_of_market_time(ana):
    # the shipped ES sample: 2023-12-25 23:00 UTC (Christmas) -> the close of Friday 2023-12-22
    st = ana.state(1_703_545_200_000_000_000)
    assert st.date == "2023-12-22" and st.level == pytest.approx(13.03)
    assert st.regime in ("low", "ultra_low")
    assert ana.state(0) is None  # before 1990
    live = ana.state(1_703_545_200_000_000_000, live_level=40.0)
    assert live.level == 40.0 and live.regime == "extreme"


@pytest.mark.parametrize("profile", ["production", "development"])
def test_kernels_equal_numpy_twins_on_full_history(hist, profile):
    sec = load_profile(profile).section("vix")
    p = V.vix_params(sec)
    b = np.asarray(sec["bands"])
    a = V.vix_series(hist.close, hist.vix3m, b, p)
    n = vix_ref.vix_series_np(hist.close, hist.vix3m, b, p)
    for x, y in zip(a, n):
        np.testing.assert_allclose(x, y, rtol=1e-12, equal_nan=True)
    pa = V.vix_patterns(hist.close, *a, p)
    pn = vix_ref.vix_patterns_np(hist.close, *n, p)
    for x, y in zip(pa, pn):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_history_validation():
    with pytest.raises(ValueError, match="empty"):
        VixHistory.from_arrays([], [])
    with pytest.raises(ValueError, match="> 0"):
        VixHistory.from_arrays(["2020-01-02"], [-1.0])


def test_sierra_dly_files_give_the_same_state(tmp_path, hist, impl):
    # write the real CBOE closes of 2017-2019 as Sierra Chart .dly files and read them back
    from app.feeds.dly import DLY_DTYPE, write_dly

    m = (hist.dates >= np.datetime64("2017-01-01")) & (hist.dates < np.datetime64("2019-01-01"))
    for name, col in (("VIX.dly", hist.close), ("VIX3M.dly", hist.vix3m)):
        b = np.zeros(int(m.sum()), DLY_DTYPE)
        b["ts"] = hist.dates[m].astype("datetime64[ns]").astype(np.int64)
        b["open"] = b["high"] = b["low"] = b["close"] = col[m]
        write_dly(tmp_path / name, b)
    h2 = load_vix_history(tmp_path / "VIX.dly", tmp_path / "VIX3M.dly")
    assert np.array_equal(h2.dates, hist.dates[m]) and np.allclose(h2.close, hist.close[m])
    a2 = V.VixAnalyzer(h2, load_profile("production").section("vix"), use_numba=impl.use_numba)
    i = int(np.searchsorted(h2.dates, np.datetime64("2018-02-06")))
    assert "spike_reversal" in [p.name for p in a2.state_at_index(i).patterns]


def test_empty_dly_is_a_clear_error(tmp_path):
    p = tmp_path / "VIX.dly"
    p.write_text("Date, Open, High, Low, Close\n")
    with pytest.raises(ValueError, match="VIX.dly"):
        load_vix_history(p)


def test_malformed_rows_are_skipped(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2020,1,1,1,13.5\ngarbage\n01/03/2020,1,1,1,x\n01/06/2020,1,1,1,14\n")
    d, c = read_cboe_csv(p)
    assert list(c) == [13.5, 14.0]
