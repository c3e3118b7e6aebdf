"""The trading session and the kill switch on a ManualClock: the automatic triggers fire exactly
when the clock passes their limit and not before, the kill switch gives up only when the clock
passes its verify deadline, the trading day follows the clock. No fixed sleeps: time passes
only when a test advances the clock (real-time waits are bounded polls for the event loop)."""

from __future__ import annotations

import asyncio

from app.config.trading import TradingSettings
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.core.orders import OrderType
from app.trading.orders import OrderTicket
from app.trading.paper import PaperBroker
from app.trading.session import TradingSession


async def wait_until(pred, timeout=5.0):
    """Poll ``pred`` on the event loop up to ``timeout`` s of real time (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


def session(rec, clock, broker_cls=PaperBroker, **kw):
    s = TradingSettings(**kw)
    b = broker_cls([rec.instrument], s.commission_per_contract_usd, s.slippage_ticks)
    return TradingSession(b, Journal(), s, rec.instrument, clock=clock)


async def buy_one(s, feeder):
    feeder.advance(3000)
    ask = s.market["ESH4"].best_ask
    d = await s.confirm(OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, ask - 4, ask + 40, ref_price=ask))
    assert d.allowed, d.message
    assert s.position_qty("ESH4") == 1


def test_stale_data_trigger_fires_exactly_after_the_limit(es_sample, feeder_cls, manual_clock):
    async def go():
        s = session(es_sample, manual_clock, stale_kill_s=0.4, stale_data_ms=60_000)
        await s.start()
        await buy_one(s, feeder_cls(s, es_sample))
        manual_clock.advance(0.4)  # exactly the limit: not stale yet
        assert s.check_triggers() == ""
        assert s.kill.state == KillState.ARMED
        manual_clock.advance(ns=1)
        assert s.check_triggers() == "stale_data"
        await wait_until(lambda: s.kill.state == KillState.VERIFIED_FLAT)
        assert s.kill.trigger_name == "stale_data" and s.broker.engine.position("ESH4").qty == 0
        await s.stop()

    asyncio.run(go())


def test_market_data_resets_the_stale_clock(es_sample, feeder_cls, manual_clock):
    async def go():
        s = session(es_sample, manual_clock, stale_kill_s=1.0, stale_data_ms=60_000)
        await s.start()
        f = feeder_cls(s, es_sample)
        await buy_one(s, f)
        for _ in range(5):  # 5 s of clock in all, but data every 0.9 s: never stale
            manual_clock.advance(0.9)
            f.advance(5)
            assert s.check_triggers() == ""
        manual_clock.advance(1.0)
        assert s.check_triggers() == ""
        manual_clock.advance(ns=1)
        assert s.check_triggers() == "stale_data"
        await wait_until(lambda: s.kill.state == KillState.VERIFIED_FLAT)
        await s.stop()

    asyncio.run(go())


def test_connection_lost_trigger_follows_the_clock(es_sample, feeder_cls, manual_clock):
    async def go():
        s = session(es_sample, manual_clock, disconnect_kill_s=2.0, stale_kill_s=3600.0, stale_data_ms=60_000)
        await s.start()
        await buy_one(s, feeder_cls(s, es_sample))
        s.on_connection(False)  # what the broker reports when its link drops
        manual_clock.advance(2.0)
        assert s.check_triggers() == ""
        manual_clock.advance(ns=1)
        assert s.check_triggers() == "connection_lost"
        await wait_until(lambda: not s.kill.busy)
        await s.stop()

    asyncio.run(go())


class DeafBroker(PaperBroker):
    """Ignores cancels (the kill switch cannot get flat) and counts the venue queries."""

    queries = 0

    async def cancel(self, client_order_id):
        pass

    async def query_open_orders(self, timeout=2.0):
        self.queries += 1
        return await super().query_open_orders(timeout)


def test_kill_switch_gives_up_only_when_the_clock_passes_the_verify_deadline(es_sample, feeder_cls,
                                                                              manual_clock):
    async def go():
        s = session(es_sample, manual_clock, broker_cls=DeafBroker, kill_verify_timeout_s=0.3)
        await s.start()
        f = feeder_cls(s, es_sample)
        f.advance(4000)
        assert (await s.confirm(s.ticket_from_price(s.market["ESH4"].best_bid - 12, +1))).allowed
        task = s.kill.trigger("manual")
        # many verify rounds in real time (each polls the venue), far more than 0.3 s of them
        # on a slow machine; the clock has not moved, so the switch keeps trying
        await wait_until(lambda: s.broker.queries >= 8)
        assert not task.done() and s.kill.state == KillState.ENGAGED
        manual_clock.advance(0.299)
        await wait_until(lambda: s.broker.queries >= 12)
        assert not task.done() and s.kill.state == KillState.ENGAGED
        manual_clock.advance(0.001)  # the deadline: the next round gives up
        res = await asyncio.wait_for(task, 5.0)
        assert res.state == KillState.FAILED and len(res.open_orders) == 3
        assert res.elapsed_s == 0.3  # measured on the session's clock
        assert s.gate.locked
        await s.stop()

    asyncio.run(go())


def test_trading_day_follows_the_clock(es_sample, manual_clock):
    s = session(es_sample, manual_clock, session_calendar="crypto_utc")  # its day starts 00:00 UTC
    assert s.day == "2024-01-02"
    assert not s.roll_day()
    manual_clock.advance(9.5 * 3600 - 1)  # 23:59:59 UTC
    assert not s.roll_day()
    manual_clock.advance(1.0)
    assert s.roll_day() and s.day == "2024-01-03"
