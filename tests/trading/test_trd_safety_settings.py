"""Trading settings that make the figures safe (issue 12 items 8 and 11).

Item 8: the trading day (daily loss limit, trades today, consecutive losses) rolls at the symbol's
session open (CME Globex 17:00 America/Chicago by default, configurable per symbol in
trading.toml), not at midnight; the risk panel's snapshot says when the day started.
Item 11: P&L is net of the per-symbol commission everywhere: the built-in server's account, the
DTC broker's session and the paper broker's session agree for the same fills.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from app.config.trading import InstrumentTradingSettings, TradingSettings
from app.core.clock import ManualClock
from app.core.orders import OrderType
from app.trading.journal import Journal
from app.trading.orders import OrderTicket
from app.trading.paper import PaperBroker
from app.trading.session import TradingSession

CT = ZoneInfo("America/Chicago")


def ct_ns(y, mo, d, h, mi, s=0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=CT).timestamp()) * 1_000_000_000


async def wait_until(pred, timeout=5.0):
    """Poll ``pred`` on the event loop up to ``timeout`` s of real time (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


def paper_session(rec, clock, **kw):
    s = TradingSettings(**kw)
    b = PaperBroker([rec.instrument], s.commission_for(rec.instrument.symbol), s.slippage_ticks)
    return TradingSession(b, Journal(), s, rec.instrument, clock=clock)


async def losing_round_trip(s, feeder):
    """Buy 1 at the ask, sell it at the bid: a loss (spread plus commissions) on the real sample."""
    feeder.advance(3000)
    ask = s.market["ESH4"].best_ask
    d = await s.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask))
    assert d.allowed, d.message
    assert s.position_qty("ESH4") == 1
    assert await s.flatten_position("ESH4", reason="test")
    await wait_until(lambda: s.position_qty("ESH4") == 0 and s.pnl.round_trips == 1)


# ---------------------------------------------------------------------------- item 8
def test_trading_day_rolls_at_the_globex_open_not_at_midnight(es_sample, feeder_cls):
    async def go():
        clock = ManualClock(ct_ns(2024, 1, 2, 15, 0))  # Tuesday 15:00 CT, inside Tuesday's session
        s = paper_session(es_sample, clock, stale_data_ms=60_000, max_consecutive_losses=5)
        await s.start()
        await losing_round_trip(s, feeder_cls(s, es_sample))
        assert s.day == "2024-01-02" and s.trades_today == 1 and s.pnl.consecutive_losses == 1
        assert s.snapshot().daily_loss_used_usd > 0
        snap = s.snapshot()
        assert snap.trading_day == "2024-01-02" and snap.day_start_ns == ct_ns(2024, 1, 1, 17, 0)
        assert snap.day_start_local == "2024-01-01 17:00 CST"

        clock.set(ct_ns(2024, 1, 2, 16, 59, 59))
        assert not s.roll_day() and s.trades_today == 1
        clock.advance(1.0)  # 17:00:00 CT: Globex opens Wednesday's trading day
        assert s.roll_day() and s.day == "2024-01-03"
        assert s.trades_today == 0 and s.pnl.consecutive_losses == 0 and s.pnl.net_realized_usd == 0.0
        snap = s.snapshot()
        assert snap.daily_loss_used_usd == 0.0 and snap.trades_today == 0 and snap.consecutive_losses == 0
        assert snap.day_start_ns == ct_ns(2024, 1, 2, 17, 0) and snap.day_start_local == "2024-01-02 17:00 CST"
        row = s.journal.query("SELECT detail FROM events WHERE kind='new_day'")
        assert len(row) == 1 and str(ct_ns(2024, 1, 2, 17, 0)) in row[0]["detail"]

        clock.set(ct_ns(2024, 1, 3, 0, 0))  # midnight CT is the middle of the overnight session
        assert not s.roll_day() and s.day == "2024-01-03"
        clock.set(ct_ns(2024, 1, 3, 16, 59))
        assert not s.roll_day()
        clock.set(ct_ns(2024, 1, 3, 17, 0))
        assert s.roll_day() and s.day == "2024-01-04"
        await s.stop()

    asyncio.run(go())


def test_the_open_is_configurable_per_symbol(es_sample):
    clock = ManualClock(ct_ns(2024, 1, 2, 17, 30))
    moved = {"ESH4": InstrumentTradingSettings(session_open="18:00")}
    s = paper_session(es_sample, clock, instruments=moved)
    assert s.day == "2024-01-02"  # 17:30: still Tuesday's day, it opens at 18:00 for this symbol
    clock.set(ct_ns(2024, 1, 2, 17, 59, 59))
    assert not s.roll_day()
    clock.set(ct_ns(2024, 1, 2, 18, 0))
    assert s.roll_day() and s.day == "2024-01-03"
    assert s.snapshot().day_start_local == "2024-01-02 18:00 CST"

    # a 24/7 symbol named on the crypto calendar rolls at 00:00 UTC
    clock = ManualClock(ct_ns(2024, 1, 2, 17, 30))  # 23:30 UTC
    crypto = {"ESH4": InstrumentTradingSettings(session_calendar="crypto_utc")}
    s = paper_session(es_sample, clock, instruments=crypto)
    assert s.day == "2024-01-02"
    clock.set(int(dt.datetime(2024, 1, 3, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000)
    assert s.roll_day() and s.day == "2024-01-03" and s.snapshot().day_start_local == "2024-01-03 00:00 UTC"


def test_the_risk_panel_says_when_the_trading_day_started(qtbot, es_sample):
    from app.ui.trading_panel import ROWS, TradingPanel

    s = paper_session(es_sample, ManualClock(ct_ns(2024, 1, 2, 20, 15)))
    panel = TradingPanel()
    qtbot.addWidget(panel)
    panel.update_from(s.snapshot())
    assert panel.values["day"].text() == "2024-01-03, started 2024-01-02 17:00 CST"
    assert dict(ROWS)["day"] == "Trading day" and dict(ROWS)["realized_pnl"] == "Realised P&L (net)"


# ---------------------------------------------------------------------------- item 9
def test_the_journal_and_its_wal_and_shm_are_0600_in_a_0700_folder(tmp_path):
    import os
    import stat

    import pytest

    if os.name != "posix":
        pytest.skip("POSIX modes (Windows: the profile's ACL)")

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "journal.sqlite3"
        j = Journal(path)
        j.record_event("hello", {})  # the WAL and its index exist once something was written
        wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
        assert wal.exists() and shm.exists()
        assert (mode(path), mode(wal), mode(shm), mode(path.parent)) == (0o600, 0o600, 0o600, 0o700)
        j.close()

        # a journal of an earlier version, 0644 with its side files: tightened when opened
        for p in (path, wal, shm):
            if p.exists():
                os.chmod(p, 0o644)
        j = Journal(path)
        j.record_event("again", {})
        assert all(mode(p) == 0o600 for p in (path, wal, shm) if p.exists())
        j.close()

        j = Journal()  # the default place: the app's data folder
        j.record_event("hello", {})
        assert mode(j.path) == 0o600 and mode(j.path.parent) == 0o700
        j.close()
    finally:
        os.umask(old)
