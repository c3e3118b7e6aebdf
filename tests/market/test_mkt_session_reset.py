"""The volume profile and cumulative delta restart at each trading-session open (issue 14, item 11)."""

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.core.events import KIND_TRADE, SIDE_ASK, SIDE_BID, Instrument, trade_events
from app.core.sessions import CME_GLOBEX
from app.market.model import MarketModel

ES = Instrument("ES", 0.25, 12.5, exchange="CME")
S = 1_000_000_000


def _ns(text):
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("America/Chicago")).timestamp()) * S


def _tape():
    """Trades before and after Tuesday's 17:00 CT open: 40 bought at 1000 before, 7 sold at 990 after."""
    before = _ns("2024-03-05 16:10") + np.arange(40) * S
    after = _ns("2024-03-05 17:00") + np.arange(7) * S
    ts = np.concatenate([before, after])
    px = np.concatenate([np.full(40, 1000), np.full(7, 990)])
    side = np.concatenate([np.full(40, SIDE_ASK), np.full(7, SIDE_BID)])
    return trade_events(ts, px, np.ones(ts.size), side)


@pytest.mark.parametrize("cut", [1, 3, 47])
def test_profile_and_delta_restart_at_the_globex_open_whatever_the_batch_cut(cut):
    ev = _tape()
    m = MarketModel(ES, rows=64, column_ns=S, history_s=3600, window_cols=60, calendar=CME_GLOBEX)
    for k in range(0, ev.size, cut):
        m.apply(ev[k:k + cut])
    assert m.session_resets == 1
    assert m.session_start_ns == _ns("2024-03-05 17:00")
    assert m.cum_delta == -7.0 and m.session_volume == 7.0
    assert m.volume_profile()[0] == 990  # the POC of the new session, not the old 1000
    v = m.view()
    assert v.session_start_ns == _ns("2024-03-05 17:00") and v.session_volume == 7.0


def test_without_a_calendar_nothing_resets():
    m = MarketModel(ES, rows=64, column_ns=S, history_s=3600, window_cols=60)
    m.apply(_tape())
    assert m.session_resets == 0 and m.cum_delta == 40 - 7 and m.volume_profile()[0] == 1000


def test_engine_picks_the_calendar_from_the_exchange_and_resets_on_the_real_es_hour(shared_data):
    """The shipped file starts with the book at 00:00 UTC and trades from the 17:00 CT open:
    the profile and delta count from the open, not from the pre-open records."""
    from app.core.events import chunks
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "production")
    for c in chunks(rec.events):
        eng.process(c)
    assert eng.model.calendar is CME_GLOBEX
    open_ns = CME_GLOBEX.day_starts_between(int(rec.events["ts"][0]), int(rec.events["ts"][-1]))[-1]
    assert eng.model.session_start_ns == open_ns
    ev = rec.events
    tr = ev[(ev["kind"] == KIND_TRADE) & (ev["ts"] >= open_ns) & (ev["side"] != 0)]  # with an aggressor
    assert eng.model.session_volume == pytest.approx(float(tr["size"].sum()))
    buy = float(tr["size"][tr["side"] == SIDE_ASK].sum())
    assert eng.model.cum_delta == pytest.approx(buy - (float(tr["size"].sum()) - buy))
