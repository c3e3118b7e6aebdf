"""Paper mode with several instruments: each symbol pays its own commission at the fill engine.

Real data: the BTCUSDT and ETHUSDT captures of 2024-08-08 (``../shared/data/crypto/``).
"""

from __future__ import annotations

import asyncio

import pytest

from app.config.trading import TradingSettings
from app.core.orders import OrderType
from app.feeds.samples import load_any
from app.trading.orders import OrderTicket


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz"))]


def test_each_instrument_pays_its_own_commission_in_paper_mode(pair):
    """The session built for the window (``build_session``) gives the paper fill engine every
    instrument's commission ([trading.instruments."SYM"], else the default), not the first
    instrument's for all: one contract bought in each symbol costs 0.50 + 0.20 USD at the engine's
    own account (the venue's books, not the app's picture)."""
    from app.ui.instruments_trading import build_session

    settings = TradingSettings.from_mapping({
        "mode": "paper", "require_stop": False, "stale_data_ms": 3_600_000,
        "max_position_contracts": 4, "max_contracts_per_order": 4,
        "commission_per_contract_usd": 0.5,
        "instruments": {"ETHUSDT": {"commission_per_contract_usd": 0.2}},
    })
    insts = [r.instrument for r in pair]

    async def go():
        s = build_session(insts, settings)
        await s.start()
        try:
            for r in pair:
                s.on_market(r.instrument.symbol, r.events[:20_000])  # a book and a last trade each
            for r in pair:
                sym, inst = r.instrument.symbol, r.instrument
                t = OrderTicket(sym, 1, 1, OrderType.MARKET, None, None, None,
                                ref_price=s.ref_price(sym, 1) or 1, source="test",
                                tick_size=inst.tick_size, tick_value=inst.tick_value)
                d = await s.confirm(t, instrument=sym)
                assert d.allowed, d.message
                for i in range(20_000, 200_000, 2_000):  # the market order fills on the next events
                    if s.position_qty(sym) == 1:
                        break
                    s.on_market(sym, r.events[i:i + 2_000])
                assert s.position_qty(sym) == 1
            ledger = s.broker.engine.ledger
            assert {sym: ledger.positions[sym].qty for sym in ("BTCUSDT", "ETHUSDT")} == {"BTCUSDT": 1, "ETHUSDT": 1}
            assert ledger.commissions == pytest.approx(0.5 + 0.2)
        finally:
            await s.stop()

    asyncio.run(asyncio.wait_for(go(), 120))
