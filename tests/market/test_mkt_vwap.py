"""Session VWAP and its standard-deviation bands (issue 14, item 13)."""

import math

import numpy as np
import pytest

from app.core.events import SIDE_ASK, Instrument, trade_events
from app.core.sessions import CRYPTO_UTC
from app.market.model import MarketModel
from app.market.vwap import SessionVWAP

S = 1_000_000_000


def test_vwap_and_sd_by_hand():
    v = SessionVWAP()
    assert math.isnan(v.vwap) and math.isnan(v.sd)
    v.add(np.array([100, 102], np.int64), np.array([1.0, 3.0]))
    # (100 + 306) / 4 = 101.5; sd = sqrt((1 x 1.5^2 + 3 x 0.5^2) / 4) = sqrt(0.75)
    assert v.vwap == pytest.approx(101.5) and v.sd == pytest.approx(math.sqrt(0.75))
    assert v.bands(2.0) == pytest.approx((101.5 - 2 * math.sqrt(0.75), 101.5 + 2 * math.sqrt(0.75)))


def test_vwap_keeps_its_digits_on_a_large_price():
    v = SessionVWAP()
    p = 600_000 + np.array([0, 1, 2, 3], np.int64)  # BTC near 60,000 USD at 0.1 ticks
    v.add(p, np.ones(4))
    assert v.vwap == pytest.approx(600_001.5) and v.sd == pytest.approx(math.sqrt(1.25), rel=1e-12)


def test_model_vwap_restarts_at_the_crypto_day_and_reaches_the_view():
    inst = Instrument("BTCUSDT", 0.1, 0.1, exchange="BINANCE-USDM")
    t0 = 1_723_161_600 * S  # 2024-08-09 00:00 UTC
    ts = np.array([t0 - 2 * S, t0 - S, t0, t0 + S], np.int64)
    ev = trade_events(ts, np.array([1000, 1010, 500, 502]), np.ones(4), np.full(4, SIDE_ASK))
    m = MarketModel(inst, rows=64, column_ns=S, history_s=600, window_cols=60, calendar=CRYPTO_UTC)
    m.apply(ev)
    v = m.view()
    assert v.vwap == pytest.approx(501.0) and v.vwap_sd == pytest.approx(1.0)
    assert v.session_phase == "session" and v.session_start_ns == t0
