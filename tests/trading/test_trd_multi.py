"""Issue 17 item 4: trading across instruments against the built-in server (real BTCUSDT/ETHUSDT).

One DTC connection, one DTC broker and one TradingSession trade both symbols. Per-instrument and
account-wide limits of ``trading.toml`` refuse what they must; a ticket belongs to the instrument
it was opened from; the kill switch cancels and flattens both and the **server's own** positions
end at 0; with ETHUSDT's flatten failing, the switch reports FAILED naming ETHUSDT and BTCUSDT is
still flat at the venue.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.cli.analyze import load_any
from app.config.trading import TradingSettings
from app.core.orders import OrderType
from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.trading.broker import BrokerError
from app.trading.dtc_broker import DtcBroker
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.trading.orders import ROLE_FLATTEN, OrderTicket
from app.trading.session import TradingSession

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz"))]


async def until(pred, timeout: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred() and loop.time() < end:
        await asyncio.sleep(0.005)
    return pred()


class Rig:
    """The built-in server with both captures (driven by publish), one client, broker, session."""

    def __init__(self, pair, clock=None, **settings):
        self.clock = clock
        self.recs = {r.instrument.symbol: r for r in pair}
        base = dict(mode="sim", account="Sim1", require_stop=False, stale_data_ms=3_600_000,
                    max_position_contracts=4, max_contracts_per_order=4, kill_verify_timeout_s=10.0)
        self.settings = TradingSettings.from_mapping({**base, **settings})

    async def start(self):
        self.server = DTCServer(list(self.recs.values()), port=0, paused=True, loop_replay=False)
        await self.server.start()
        self.client = DTCClient("127.0.0.1", self.server.port, trade_account="Sim1", heartbeat_s=5,
                                request_timeout_s=3.0)
        insts = [r.instrument for r in self.recs.values()]
        self.broker = DtcBroker(self.client, insts, "Sim1", own_client=True)
        kw = {"clock": self.clock} if self.clock is not None else {}
        self.s = TradingSession(self.broker, Journal(None), self.settings, insts[0], instruments=insts[1:], **kw)
        await self.s.start()
        for sym, rec in self.recs.items():
            await self.client.subscribe_market(sym, on_events=lambda b, _s=sym: self.s.on_market(_s, b),
                                               tick_size=rec.instrument.tick_size)
        for sym, rec in self.recs.items():  # books on both symbols
            for i in range(0, 20_000, 500):
                self.server.publish(sym, rec.events[i:i + 500])
                await asyncio.sleep(0)
        assert await until(lambda: all(self.s.market.get(sym) and self.s.market[sym].last_trade
                                       for sym in self.recs))
        return self

    def venue_qty(self, sym: str) -> int:
        return int(self.server.engine.position(sym, "Sim1").qty)

    def ticket(self, sym: str, side: int, qty: int) -> OrderTicket:
        inst = self.recs[sym].instrument if sym in self.recs else self.recs["BTCUSDT"].instrument
        return OrderTicket(sym, side, qty, OrderType.MARKET, None, None, None,
                           ref_price=self.s.ref_price(sym, side) or 1, source="test",
                           tick_size=inst.tick_size, tick_value=inst.tick_value)

    async def open(self, sym: str, side: int, qty: int):
        d = await self.s.confirm(self.ticket(sym, side, qty), instrument=sym)
        assert d.allowed, d.message
        want = self.venue_qty(sym) + side * qty
        assert await until(lambda: self.venue_qty(sym) == want and self.s.position_qty(sym) == want)

    async def stop(self):
        await self.s.stop()
        await self.server.stop()


def test_kill_switch_flattens_every_instrument_and_the_venue_reports_both_flat(pair):
    async def go():
        r = await Rig(pair).start()
        try:
            await r.open("BTCUSDT", 1, 1)
            await r.open("ETHUSDT", -1, 2)
            assert (r.venue_qty("BTCUSDT"), r.venue_qty("ETHUSDT")) == (1, -2)
            res = await r.s.kill.engage("manual")
            assert res.state == KillState.VERIFIED_FLAT, res.describe()
            assert res.flattens_sent == 2
            # the server's own positions, not the app's belief
            assert (r.venue_qty("BTCUSDT"), r.venue_qty("ETHUSDT")) == (0, 0)
            assert {p.Symbol: p.Quantity for p in await r.client.positions() if p.Quantity} == {}
        finally:
            await r.stop()

    asyncio.run(asyncio.wait_for(go(), 200))


def test_one_instruments_flatten_failing_is_named_and_the_other_is_still_flattened(pair):
    async def go():
        r = await Rig(pair, kill_verify_timeout_s=3.0).start()
        try:
            await r.open("BTCUSDT", 1, 2)
            await r.open("ETHUSDT", 1, 1)
            real_submit = r.broker.submit_order

            async def failing_submit(order):  # the fault: ETHUSDT's flatten cannot be written
                if order.symbol == "ETHUSDT" and order.role == ROLE_FLATTEN:
                    raise BrokerError("injected: the link refused the ETHUSDT flatten")
                await real_submit(order)

            r.broker.submit_order = failing_submit
            res = await r.s.kill.engage("manual")
            assert res.state == KillState.FAILED
            assert res.open_positions == ("ETHUSDT +1",) and "ETHUSDT" in res.error
            assert "BTCUSDT" not in res.describe()
            assert (r.venue_qty("BTCUSDT"), r.venue_qty("ETHUSDT")) == (0, 1)  # the venue's own figures
            r.broker.submit_order = real_submit
            res = await r.s.kill.retry()
            assert res.state == KillState.VERIFIED_FLAT and r.venue_qty("ETHUSDT") == 0
        finally:
            await r.stop()

    asyncio.run(asyncio.wait_for(go(), 200))


def test_per_instrument_and_account_limits_refuse_at_the_gate_and_nothing_reaches_the_venue(pair):
    async def go():
        r = await Rig(pair, account_max_contracts=3, account_daily_loss_limit_usd=500.0,
                      instruments={"ETHUSDT": {"max_position_contracts": 2, "max_contracts_per_order": 2}}).start()
        try:
            await r.open("BTCUSDT", 1, 2)
            orders_before = len(r.server.engine.orders)
            d = await r.s.confirm(r.ticket("ETHUSDT", 1, 3), instrument="ETHUSDT")
            assert not d.allowed and d.rule == "max_contracts_per_order" and "limit of 2 (ETHUSDT)" in d.message
            d = await r.s.confirm(r.ticket("ETHUSDT", 1, 2), instrument="ETHUSDT")
            assert not d.allowed and d.rule == "account_max_contracts" and "4 contracts" in d.message
            # BTCUSDT's own limit is the [trading] one (4): 2 more would pass it but not the account's 3
            d = await r.s.confirm(r.ticket("BTCUSDT", 1, 2), instrument="BTCUSDT")
            assert not d.allowed and d.rule == "account_max_contracts"
            assert len(r.server.engine.orders) == orders_before and r.venue_qty("ETHUSDT") == 0
            await r.open("ETHUSDT", 1, 1)  # 3 in the account: allowed
            # the account loss across instruments: a preview with a loss that only the sum reaches
            ctx = r.s.context_for(r.ticket("ETHUSDT", -1, 1))
            worse = replace(ctx, realized_pnl_usd=-300.0, account_realized_pnl_usd=-600.0, account_open_pnl_usd=0.0,
                            open_pnl_usd=0.0)
            d = r.s.gate.evaluate(worse)
            assert not d.allowed and d.rule == "account_daily_loss_limit"
        finally:
            await r.stop()

    asyncio.run(asyncio.wait_for(go(), 200))


def test_a_ticket_belongs_to_its_instrument_and_the_session_refuses_to_send_it_for_another(pair):
    async def go():
        r = await Rig(pair).start()
        try:
            px = r.s.ref_price("BTCUSDT", 1)
            t = r.s.ticket_from_price(px - 50, 1, 1, symbol="BTCUSDT")  # a ladder click on BTCUSDT's panel
            assert t.symbol == "BTCUSDT" and t.tick_value == r.recs["BTCUSDT"].instrument.tick_value
            n0 = len(r.server.engine.orders)
            moved = t.with_(symbol="ETHUSDT", entry=r.s.ref_price("ETHUSDT", 1) - 50, stop=None, target=None)
            d = await r.s.confirm(moved)
            assert not d.allowed and d.rule == "ticket_instrument"
            assert d.message == "ticket_instrument: the ticket belongs to BTCUSDT; it cannot send an order for ETHUSDT"
            d = await r.s.confirm(t, instrument="ETHUSDT")  # sent from ETHUSDT's panel
            assert not d.allowed and d.rule == "ticket_instrument"
            d = await r.s.confirm(r.ticket("SOLUSDT", 1, 1))
            assert not d.allowed and "SOLUSDT is not one of the session's instruments" in d.message
            assert len(r.server.engine.orders) == n0  # nothing reached the venue
            d = await r.s.confirm(t, instrument="BTCUSDT")  # from its own panel: sent
            assert d.allowed, d.message
            assert await until(lambda: len(r.server.engine.orders) > n0)
        finally:
            await r.stop()

    asyncio.run(asyncio.wait_for(go(), 200))


def test_stale_data_of_a_second_instrument_with_a_position_fires_the_kill_switch(pair):
    """ETHUSDT (not the first instrument) holds the position; its data stops while BTCUSDT's
    goes on: the stale-data trigger fires and the venue ends flat (before issue 17 only the
    first instrument's data was watched)."""
    from app.core.clock import ManualClock

    async def go():
        clock = ManualClock()
        r = await Rig(pair, clock=clock, stale_kill_s=5.0).start()
        try:
            await r.open("ETHUSDT", 1, 1)
            assert r.s.check_triggers() == ""
            btc = r.recs["BTCUSDT"].events
            clock.advance(6.0)
            r.server.publish("BTCUSDT", btc[20_000:20_500])  # BTCUSDT's data is fresh
            assert await until(lambda: r.s.market["BTCUSDT"].last_data_ns == clock.time_ns())
            assert r.s.check_triggers() == "stale_data"
            assert await until(lambda: r.s.kill.state == KillState.VERIFIED_FLAT)
            assert r.venue_qty("ETHUSDT") == 0
        finally:
            await r.stop()

    asyncio.run(asyncio.wait_for(go(), 200))
