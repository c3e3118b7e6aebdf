"""Risk gate: every rule refuses with its message and values; decisions are journaled."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from app.config.trading import TradingSettings
from app.core.clock import ManualClock
from app.trading.journal import Journal
from app.core.orders import OrderType
from app.trading.orders import INTENT_REDUCE, OrderTicket
from app.trading.paper import PaperBroker
from app.trading.risk import OrderContext, RiskGate
from app.trading.session import TradingSession


#: The decision time of the contexts below (wall ns): a fixed instant, not the machine's clock.
T0 = ManualClock().time_ns()


def ctx(**kw):
    base = dict(symbol="ESH4", side=1, qty=1, risk_usd=100.0, now_ns=T0, last_data_ns=T0)
    base.update(kw)
    return OrderContext(**base)


def test_all_pass_by_default():
    d = RiskGate(TradingSettings()).evaluate(ctx())
    assert d.allowed, d.message
    assert {v.rule for v in d.verdicts} >= {"max_contracts_per_order", "daily_loss_limit", "stale_market_data"}


@pytest.mark.parametrize(
    "settings, kw, rule, words",
    [
        (dict(max_contracts_per_order=2), dict(qty=3), "max_contracts_per_order", ["3 contracts", "limit of 2"]),
        (dict(max_position_contracts=3), dict(qty=2, position_qty=2), "max_position_contracts", ["4 contracts", "limit 3"]),
        (dict(max_position_contracts=3, max_contracts_per_order=5), dict(qty=1, pending_qty=3),
         "max_position_contracts", ["working +3"]),
        (dict(max_risk_per_trade_usd=200.0), dict(risk_usd=250.0), "max_risk_per_trade", ["250.00 USD", "200.00 USD"]),
        (dict(), dict(risk_usd=None), "max_risk_per_trade", ["no protective stop"]),
        (dict(daily_loss_limit_usd=500.0), dict(realized_pnl_usd=-450.0, open_pnl_usd=-60.0), "daily_loss_limit",
         ["-510.00", "500.00"]),
        (dict(max_trades_per_day=5), dict(trades_today=5), "max_trades_per_day", ["5 trades today", "limit 5"]),
        (dict(max_consecutive_losses=3), dict(consecutive_losses=3), "consecutive_losses", ["3 losses", "limit 3"]),
        (dict(stale_data_ms=1000), dict(last_data_ns=T0 - 3_000_000_000), "stale_market_data", ["limit 1000 ms"]),
        (dict(), dict(last_data_ns=0), "stale_market_data", ["no market data"]),
        (dict(mode="live"), dict(mode="live", live_confirmed=False), "live_mode_not_confirmed", ["typed confirmation"]),
        (dict(), dict(kill_locked=True), "kill_switch_engaged", ["kill switch is engaged"]),
    ],
)
def test_each_rule_refuses_with_its_values(settings, kw, rule, words):
    d = RiskGate(TradingSettings(**settings)).evaluate(ctx(**kw))
    assert not d.allowed
    assert d.rule == rule
    assert d.message.startswith(rule + ":")
    for w in words:
        assert w in d.message, d.message


def test_trading_hours_window_and_overnight():
    tz = ZoneInfo("America/Chicago")
    at = lambda h, m: int(dt.datetime(2024, 3, 5, h, m, tzinfo=tz).timestamp() * 1e9)  # noqa: E731
    g = RiskGate(TradingSettings(trading_start="08:30", trading_end="15:00"))
    assert g.evaluate(ctx(now_ns=at(9, 0), last_data_ns=at(9, 0))).allowed
    d = g.evaluate(ctx(now_ns=at(7, 59), last_data_ns=at(7, 59)))
    assert d.rule == "trading_hours" and "07:59" in d.message and "08:30-15:00 America/Chicago" in d.message
    over = RiskGate(TradingSettings(trading_start="17:00", trading_end="16:00"))
    assert over.evaluate(ctx(now_ns=at(23, 0), last_data_ns=at(23, 0))).allowed
    assert over.evaluate(ctx(now_ns=at(16, 30), last_data_ns=at(16, 30))).rule == "trading_hours"


def test_reduce_orders_pass_a_locked_gate_but_must_reduce():
    g = RiskGate(TradingSettings(daily_loss_limit_usd=100))
    g.lock("test")
    opening = g.evaluate(ctx())
    assert not opening.allowed and opening.rule == "kill_switch_engaged"
    red = g.evaluate(ctx(side=-1, qty=2, position_qty=2, intent=INTENT_REDUCE, realized_pnl_usd=-5000, risk_usd=None,
                         last_data_ns=0))
    assert red.allowed, red.message
    bad = g.evaluate(ctx(side=1, qty=1, position_qty=2, intent=INTENT_REDUCE))
    assert not bad.allowed and bad.rule == "reduce_only"
    g.unlock()
    assert g.evaluate(ctx()).allowed


def test_stale_rule_reads_its_clock_when_the_context_has_no_time():
    clock = ManualClock()
    g = RiskGate(TradingSettings(stale_data_ms=1000), clock=clock)
    fresh = ctx(now_ns=0, last_data_ns=clock.time_ns())
    clock.advance(1.0)  # exactly the limit: still fresh
    assert g.evaluate(fresh).allowed
    clock.advance(ns=1)
    d = g.evaluate(fresh)
    assert d.rule == "stale_market_data" and "limit 1000 ms" in d.message


def test_trading_hours_rule_reads_its_clock_when_the_context_has_no_time():
    tz = ZoneInfo("America/Chicago")
    clock = ManualClock(time_ns=int(dt.datetime(2024, 3, 5, 8, 29, tzinfo=tz).timestamp() * 1e9))
    g = RiskGate(TradingSettings(trading_start="08:30", trading_end="15:00"), clock=clock)
    c = ctx(now_ns=0, last_data_ns=clock.time_ns())
    d = g.evaluate(c)
    assert d.rule == "trading_hours" and "08:29" in d.message
    clock.advance(60.0)
    assert g.evaluate(ctx(now_ns=0, last_data_ns=clock.time_ns())).allowed


def _session(rec, clock=None, **settings):
    inst = rec.instrument
    s = TradingSettings(**settings)
    broker = PaperBroker([inst], s.commission_per_contract_usd, s.slippage_ticks)
    return TradingSession(broker, Journal(), s, inst, clock=clock or ManualClock())


@pytest.mark.parametrize(
    "settings, ticket_kw, rule",
    [
        (dict(max_contracts_per_order=1), dict(qty=2), "max_contracts_per_order"),
        (dict(max_risk_per_trade_usd=50.0), dict(stop_off=8), "max_risk_per_trade"),
        (dict(max_trades_per_day=1), dict(pre_trades=1), "max_trades_per_day"),
        (dict(stale_data_ms=1), dict(advance_s=0.05), "stale_market_data"),
    ],
)
def test_rules_refuse_through_the_session_on_real_data(es_sample, feeder_cls, settings, ticket_kw, rule):
    async def go():
        s = _session(es_sample, **settings)
        await s.start()
        f = feeder_cls(s, es_sample)
        f.advance(3000)
        s.trades_today = ticket_kw.get("pre_trades", 0)
        bid = s.market["ESH4"].best_bid
        off = ticket_kw.get("stop_off", 4)
        t = s.ticket_from_price(bid - 4, +1, qty=ticket_kw.get("qty", 1))
        t = t.with_(stop=t.entry - off)
        s.clock.advance(ticket_kw.get("advance_s", 0.0))  # time passes only when the test says so
        preview = s.preview(t)
        d = await s.confirm(t)
        assert not preview.allowed and preview.rule == rule
        assert not d.allowed and d.rule == rule
        assert s.broker.orders == {}  # nothing was sent
        rows = s.journal.query("SELECT * FROM gate_decisions")
        assert len(rows) == 1 and rows[0]["allowed"] == 0 and rows[0]["rule"] == rule
        assert rows[0]["message"] == d.message
        assert any(v["rule"] == rule and not v["allowed"] for v in json.loads(rows[0]["context"])["verdicts"])
        st = s.journal.query("SELECT status FROM tickets WHERE id=?", (t.ticket_id,))[0][0]
        assert st == "refused"
        assert s.journal.query("SELECT COUNT(*) FROM orders")[0][0] == 0

    asyncio.run(go())


def test_stale_data_refuses_exactly_when_the_clock_passes_the_limit(es_sample, feeder_cls, manual_clock):
    async def go():
        s = _session(es_sample, clock=manual_clock, stale_data_ms=2000)
        await s.start()
        feeder_cls(s, es_sample).advance(3000)
        t = s.ticket_from_price(s.market["ESH4"].best_bid - 4, +1)
        assert s.market["ESH4"].last_data_ns == manual_clock.time_ns()  # arrival stamped by the session's clock
        manual_clock.advance(1.999)
        assert s.preview(t).allowed
        manual_clock.advance(0.001)  # 2000 ms old: the limit itself still passes
        assert s.preview(t).allowed
        manual_clock.advance(ns=1)
        d = s.preview(t)
        assert not d.allowed and d.rule == "stale_market_data" and "limit 2000 ms" in d.message
        assert d.context["now_ns"] == manual_clock.time_ns()  # the decision is stamped by the clock
        feeder_cls(s, es_sample, start=3000).advance(10)  # fresh data: allowed again
        assert s.preview(t).allowed
        await s.stop()

    asyncio.run(go())


def test_market_ticket_risk_uses_reference_price(es_sample, feeder_cls):
    async def go():
        s = _session(es_sample)
        await s.start()
        feeder_cls(s, es_sample).advance(3000)
        ask = s.market["ESH4"].best_ask
        t = OrderTicket("ESH4", 1, 2, OrderType.MARKET, None, ask - 6, ask + 12, ref_price=s.ref_price("ESH4", 1))
        assert t.risk_ticks == 6 and t.reward_ticks == 12
        assert t.risk_usd == 6 * 12.5 * 2 and t.reward_usd == 12 * 12.5 * 2

    asyncio.run(go())


def test_live_mode_needs_the_typed_confirmation(es_sample, feeder_cls):
    async def go():
        inst = es_sample.instrument
        s = TradingSession(PaperBroker([inst]), Journal(), TradingSettings(mode="live"), inst, clock=ManualClock())
        await s.start()
        feeder_cls(s, es_sample).advance(3000)
        t = s.ticket_from_price(s.market["ESH4"].best_bid - 8, +1)
        d = await s.confirm(t)
        assert not d.allowed and d.rule == "live_mode_not_confirmed"
        assert not s.confirm_live("live") and not s.live_confirmed
        assert s.confirm_live("LIVE") and s.live_confirmed
        d = await s.confirm(s.ticket_from_price(s.market["ESH4"].best_bid - 8, +1))
        assert d.allowed, d.message
        ev = [json.loads(r["detail"])["accepted"] for r in s.journal.query(
            "SELECT detail FROM events WHERE kind='live_confirmation' ORDER BY id")]
        assert ev == [False, True]
        await s.stop()

    asyncio.run(go())
