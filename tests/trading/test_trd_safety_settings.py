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


# ---------------------------------------------------------------------------- item 11
def test_net_pnl_is_equal_across_sim_paper_and_live_for_the_same_fills(es_sample, tmp_path):
    """One round trip of 2 contracts on the real ES sample, at the same book, three ways: the DTC
    broker's session against the built-in server (live path), the server's own account (sim), the
    paper broker's session and its engine (paper). Commission 1.75 USD per contract from the
    symbol's trading.toml table (not the 2.25 default): every figure is gross - 4 x 1.75."""
    from app.dtc.client import DTCClient
    from app.sim.server import DTCServer
    from app.trading.dtc_broker import DtcBroker

    sym, inst, n = es_sample.instrument.symbol, es_sample.instrument, 4000
    settings = TradingSettings(mode="sim", account="Sim1", stale_data_ms=60_000,
                               instruments={sym: InstrumentTradingSettings(commission_per_contract_usd=1.75)})
    comm = settings.commission_for(sym)
    assert comm == 1.75

    async def round_trip(s, bid, ask):
        s.note_quote(sym, bid, ask)
        d = await s.confirm(OrderTicket(sym, 1, 2, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask))
        assert d.allowed, d.message
        await wait_until(lambda: s.position_qty(sym) == 2)
        assert await s.flatten_position(sym, reason="test")
        await wait_until(lambda: s.position_qty(sym) == 0 and s.pnl.round_trips == 1)

    async def go():
        # live path: DtcBroker -> the built-in server, whose account charges the symbol's commission
        server = DTCServer(es_sample, port=0, paused=True, loop_replay=False,
                           commission_per_contract={sym: comm})
        await server.start()
        server.publish(sym, es_sample.events[:n])
        book = server.engine.books[sym]
        bid, ask = book.best_bid(), book.best_ask()
        client = DTCClient("127.0.0.1", server.port, trade_account="Sim1", heartbeat_s=5, request_timeout_s=3.0)
        live = TradingSession(DtcBroker(client, [inst], "Sim1", own_client=True), Journal(tmp_path / "live.sqlite3"),
                              settings, inst)
        await live.start()
        await round_trip(live, bid, ask)

        # paper: the same events, the same book, the same fills
        paper = TradingSession(PaperBroker([inst], comm, settings.slippage_ticks), Journal(tmp_path / "paper.sqlite3"),
                               settings, inst)
        await paper.start()
        paper.on_market(sym, es_sample.events[:n])
        await round_trip(paper, bid, ask)

        fills = [[(r["side"], r["qty"], r["price"], r["commission_usd"]) for r in
                  s.journal.query("SELECT * FROM fills ORDER BY id")] for s in (live, paper)]
        assert fills[0] == fills[1] and len(fills[0]) == 2  # the same fills, each 2 x 1.75 USD
        assert all(f[3] == 2 * comm for f in fills[0])
        gross = live.pnl.realized_usd
        assert gross == paper.pnl.realized_usd and gross != 0.0
        net = gross - 4 * comm
        sim_net = server.engine.realized_pnl()  # the venue's own account
        paper_engine_net = paper.broker.engine.realized_pnl()
        for name, v in (("live session", live.pnl.net_realized_usd), ("paper session", paper.pnl.net_realized_usd),
                        ("sim account", sim_net), ("paper account", paper_engine_net),
                        ("risk panel live", live.snapshot().realized_pnl_usd),
                        ("risk panel paper", paper.snapshot().realized_pnl_usd)):
            assert abs(v - net) < 1e-9, (name, v, net)
        await live.stop()
        await paper.stop()
        await server.stop()

    asyncio.run(go())


def test_the_sim_account_charges_each_symbol_its_own_commission():
    from app.core.events import Instrument
    from app.core.orders import Side
    from app.sim.account import Account

    es, nq = Instrument("ESH4", 0.25, 12.5), Instrument("NQH4", 0.25, 5.0)
    a = Account("Sim1", 100_000.0, {"ESH4": 2.0, "NQH4": 0.5}, mark=lambda s: None)
    a.add_instrument(es)
    a.add_instrument(nq)
    a.book_fill("ESH4", Side.BUY, 1, 100, 0)
    a.book_fill("ESH4", Side.SELL, 1, 104, 1)  # +4 ticks x 12.5 = 50 gross, 2 x 2.0 commission
    a.book_fill("NQH4", Side.SELL, 2, 200, 2)
    a.book_fill("NQH4", Side.BUY, 2, 201, 3)   # -1 tick x 5 x 2 = -10 gross, 4 x 0.5 commission
    assert a.positions["ESH4"].realized_pnl == 46.0 and a.positions["NQH4"].realized_pnl == -12.0
    assert a.commissions == 6.0 and a.cash_balance() == 100_000.0 + 34.0
    import pytest

    with pytest.raises(ValueError, match="no commission per contract given for symbol 'CLH4'"):
        a.add_instrument(Instrument("CLH4", 0.01, 10.0))
    with pytest.raises(ValueError, match="commission per contract must be >= 0"):
        Account("Sim1", 0.0, {"ESH4": float("nan")}, mark=lambda s: None)
