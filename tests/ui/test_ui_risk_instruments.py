"""Issue 17 item 3 (the risk panel): one line per instrument's position and the account total.

A paper broker trades the real BTCUSDT and ETHUSDT captures of 2024-08-08 (books built from the
files); the panel's lines are checked against the **broker's own** positions (its fill engine)
and the last trade of each file, the account total against the account limits of
``trading.toml``.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("pytestqt")

from app.cli.analyze import load_any  # noqa: E402
from app.config.trading import TradingSettings  # noqa: E402
from app.core.events import KIND_TRADE  # noqa: E402
from app.core.orders import OrderType  # noqa: E402
from app.trading.journal import Journal  # noqa: E402
from app.trading.orders import OrderTicket  # noqa: E402
from app.trading.paper import PaperBroker  # noqa: E402
from app.trading.session import TradingSession  # noqa: E402
from app.ui.trading_panel import TradingController, TradingPanel, account_line, position_lines  # noqa: E402

pytestmark = pytest.mark.timeout(300)
N = 20_000  # events of each capture fed before trading (both books built)


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz"))]


def session_of(recs, **limits):
    st = TradingSettings.from_mapping(dict(require_stop=False, stale_data_ms=3_600_000, max_position_contracts=4,
                                           max_contracts_per_order=3, commission_per_contract_usd=0.5,
                                           **limits))
    insts = [r.instrument for r in recs]
    broker = PaperBroker(insts, st.commission_per_contract_usd, st.slippage_ticks)
    return TradingSession(broker, Journal(None), st, insts[0], instruments=insts[1:])


async def trade(s, recs, orders):
    await s.start()
    for r in recs:
        s.on_market(r.instrument.symbol, r.events[:N])
    for sym, side, qty in orders:
        inst = s.instrument_of(sym)
        t = OrderTicket(sym, side, qty, OrderType.MARKET, None, None, None, ref_price=s.ref_price(sym, side),
                        source="test", tick_size=inst.tick_size, tick_value=inst.tick_value)
        d = await s.confirm(t, instrument=sym)
        assert d.allowed, d.message


def last_trade(rec) -> int:
    ev = rec.events[:N]
    return int(ev["price"][ev["kind"] == KIND_TRADE][-1])


def test_one_line_per_instrument_and_the_account_total_from_the_brokers_positions(qtbot, pair):
    s = session_of(pair, account_max_contracts=6, account_daily_loss_limit_usd=1500)
    asyncio.run(trade(s, pair, [("BTCUSDT", 1, 1), ("ETHUSDT", -1, 2), ("ETHUSDT", -1, 1)]))
    venue = s.broker.engine.positions  # the fill engine's own positions (the paper venue)
    assert {p.symbol: int(p.qty) for p in venue.values() if p.qty} == {"BTCUSDT": 1, "ETHUSDT": -3}
    panel = TradingPanel()
    qtbot.addWidget(panel)
    ctl = TradingController(s, panel)
    ctl.refresh()
    lines = position_lines(s)
    assert [ln.symbol for ln in lines] == ["BTCUSDT", "ETHUSDT"]
    want_open = {}
    for ln, rec in zip(lines, pair):
        vp = next(p for p in venue.values() if p.symbol == ln.symbol)
        assert ln.qty == int(vp.qty)
        assert ln.avg_price == pytest.approx(float(vp.avg_price))
        assert (ln.max_position, ln.daily_loss_limit_usd) == (4, s.settings.daily_loss_limit_usd)
        tv = rec.instrument.tick_value
        want_open[ln.symbol] = (last_trade(rec) - float(vp.avg_price)) * int(vp.qty) * tv
        assert ln.open_pnl_usd == pytest.approx(want_open[ln.symbol])
    # day P&L: nothing closed yet, so the open P&L less the entries' commission (0.5 USD per
    # contract). ETHUSDT only: the 1-BTC market order sweeps fractional-size levels and the
    # session books such fills with int(qty) (see the report of issue 17's B2 helper), so its
    # realised figure is not the venue's
    eth_line = lines[1]
    assert eth_line.day_pnl_usd == pytest.approx(want_open["ETHUSDT"] - 0.5 * 3)
    acct = account_line(s)
    assert acct.contracts == 4 and acct.max_contracts == 6 and acct.contracts_left == 2
    assert acct.open_pnl_usd == pytest.approx(sum(want_open.values()))
    assert acct.day_pnl_usd == pytest.approx(sum(want_open.values()) + s.pnl.net_realized_usd)
    assert acct.day_pnl_usd == pytest.approx(sum(ln.day_pnl_usd for ln in lines))
    assert acct.loss_limit_usd == 1500.0
    assert acct.loss_left_usd == pytest.approx(1500.0 + min(0.0, acct.day_pnl_usd))

    assert panel.positions_table.isVisibleTo(panel) and panel.account_headroom.isVisibleTo(panel)
    cells = panel.position_texts()
    assert [c[0] for c in cells] == ["BTCUSDT", "ETHUSDT", "Account"]
    btc, eth = (next(p for p in venue.values() if p.symbol == sym) for sym in ("BTCUSDT", "ETHUSDT"))
    def usd(v):
        return f"{round(v, 2) + 0.0:+,.2f}"  # never "-0.00"

    assert cells[0][1:4] == ("+1", f"{btc.avg_price * 0.1:.1f}", usd(want_open["BTCUSDT"]))
    assert cells[1][1:4] == ("-3", f"{eth.avg_price * 0.01:.2f}", usd(want_open["ETHUSDT"]))
    assert cells[2][1] == "4" and cells[2][3] == usd(sum(want_open.values()))  # contracts
    assert "-0.00" not in {c for row in cells for c in row}
    assert "4 / 6 contracts (2 left)" in panel.account_headroom.text()
    assert f"/ 1,500.00 USD ({acct.loss_left_usd:,.2f} left)" in panel.account_headroom.text()
    # the first instrument's own rows stay as they were (position, avg price, open P&L)
    assert panel.values["position"].text() == "+1 BTCUSDT"


def test_the_account_headroom_counts_working_entries_and_says_when_there_is_no_limit(qtbot, pair):
    s = session_of(pair)  # account_max_contracts 0: no account-wide limit
    asyncio.run(trade(s, pair, [("ETHUSDT", 1, 2)]))
    eth = s.instrument_of("ETHUSDT")
    below = s.ref_price("ETHUSDT", -1) - 50  # a resting buy 50 ticks under the bid: works, not filled
    t = OrderTicket("ETHUSDT", 1, 1, OrderType.LIMIT, below, None, None, ref_price=below, source="test",
                    tick_size=eth.tick_size, tick_value=eth.tick_value)
    assert asyncio.run(s.confirm(t, instrument="ETHUSDT")).allowed
    assert len(s.broker.working_orders()) == 1
    acct = account_line(s)
    assert acct.contracts == 3 and acct.contracts_left is None  # 2 held + 1 working entry
    panel = TradingPanel()
    qtbot.addWidget(panel)
    panel.update_accounts(position_lines(s), acct)
    assert panel.position_texts()[0][1] == "flat"  # BTCUSDT has no position: a flat line
    assert "3 contracts (no account limit)" in panel.account_headroom.text()


def test_one_instrument_keeps_the_one_instrument_panel(qtbot, pair):
    s = session_of(pair[:1])
    asyncio.run(trade(s, pair[:1], [("BTCUSDT", -1, 1)]))
    panel = TradingPanel()
    qtbot.addWidget(panel)
    TradingController(s, panel).refresh()
    assert len(position_lines(s)) == 1
    assert not panel.positions_table.isVisibleTo(panel) and not panel.account_headroom.isVisibleTo(panel)
    assert panel.values["position"].text() == "-1 BTCUSDT"
