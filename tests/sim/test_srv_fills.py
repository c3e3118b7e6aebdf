"""Paper fill engine on hand-built books (rules of docs/fill-model.md)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import OP_SET, SIDE_ASK, SIDE_BID, Instrument, depth_events, trade_events
from app.core.orders import OrderSpec, OrderStatus, OrderType, PartialFillHandling, Side, TimeInForce
from app.sim.account import BalanceEvent, PositionEvent
from app.sim.matching import FillEngine, OrderReport

ES = Instrument("ESH4", 0.25, 12.5)
S = "ESH4"


def book_events(bids, asks, ts=1):
    """bids/asks: lists of (tick, size)."""
    rows = [(t, q, SIDE_BID) for t, q in bids] + [(t, q, SIDE_ASK) for t, q in asks]
    return depth_events([ts] * len(rows), [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], OP_SET)


def trade(price, size, side=SIDE_BID, ts=2):
    return trade_events([ts], [price], [size], [side])


@pytest.fixture
def eng():
    e = FillEngine([ES], account="Sim1", commission_per_contract=0.0)
    e.on_market(S, book_events([(100, 5), (99, 10), (98, 20)], [(101, 3), (102, 4), (103, 50)]))
    e.log = []
    e.add_listener(e.log.append)
    return e


def kinds(e):
    return [(ev.kind, ev.order.client_order_id) for ev in e.log if isinstance(ev, OrderReport)]


def test_market_buy_walks_the_book(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 5, OrderType.MARKET, client_order_id="m1"))
    assert o.status == OrderStatus.FILLED
    # 3 @ 101 then 2 @ 102
    assert o.avg_fill_price == pytest.approx((3 * 101 + 2 * 102) / 5)
    fills = [(ev.fill_qty, ev.fill_price) for ev in eng.log if isinstance(ev, OrderReport) and ev.fill_qty]
    assert fills == [(3, 101), (2, 102)]
    assert kinds(eng) == [("accepted", "m1"), ("partially_filled", "m1"), ("filled", "m1")]
    pos = eng.position(S)
    assert pos.qty == 5 and pos.avg_price == pytest.approx(101.4)


def test_market_beyond_visible_book_fills_rest_at_last_level(eng):
    o = eng.submit(OrderSpec(S, Side.SELL, 40, OrderType.MARKET))
    assert o.status == OrderStatus.FILLED
    assert o.filled_qty == 40
    assert o.last_fill_price == 98  # 5@100, 10@99, remaining 25 @98
    assert o.avg_fill_price == pytest.approx((5 * 100 + 10 * 99 + 25 * 98) / 40)


def test_market_with_empty_side_is_rejected():
    e = FillEngine([ES])
    e.on_market(S, book_events([(100, 5)], []))
    o = e.submit(OrderSpec(S, Side.BUY, 1))
    assert o.status == OrderStatus.REJECTED
    assert "liquidity" in o.info


def test_invalid_orders_rejected_with_reason(eng):
    assert "unknown symbol" in eng.submit(OrderSpec("NQ", Side.BUY, 1)).info
    assert "quantity" in eng.submit(OrderSpec(S, Side.BUY, 0)).info
    assert "price" in eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT)).info
    assert "account" in eng.submit(OrderSpec(S, Side.BUY, 1, account="Live9")).info
    assert [k for k, _ in kinds(eng)] == ["rejected"] * 4


def test_marketable_limit_fills_up_to_limit_and_rests(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 10, OrderType.LIMIT, price=102))
    assert o.filled_qty == 7  # 3@101 + 4@102
    assert o.status == OrderStatus.PARTIALLY_FILLED
    assert o in eng.open_orders()


def test_resting_limit_queue_position(eng):
    # buy 2 @ 100 behind 5 displayed
    o = eng.submit(OrderSpec(S, Side.BUY, 2, OrderType.LIMIT, price=100, client_order_id="L"))
    assert o.queue_ahead == 5
    eng.on_market(S, trade(100, 4))
    assert o.filled_qty == 0 and o.queue_ahead == 1
    eng.on_market(S, trade(100, 2))  # 1 consumes the queue, 1 fills us
    assert o.filled_qty == 1 and o.status == OrderStatus.PARTIALLY_FILLED
    eng.on_market(S, trade(99, 1))  # trade through: the rest fills at our price
    assert o.status == OrderStatus.FILLED and o.last_fill_price == 100
    assert eng.position(S).qty == 2


def test_queue_shrinks_with_level(eng):
    o = eng.submit(OrderSpec(S, Side.SELL, 1, OrderType.LIMIT, price=103))
    assert o.queue_ahead == 50
    eng.on_market(S, depth_events([3], [103], [6], [SIDE_ASK], OP_SET))
    assert o.queue_ahead == 6
    eng.on_market(S, trade(103, 6, SIDE_ASK))
    assert o.filled_qty == 0
    eng.on_market(S, trade(103, 1, SIDE_ASK))
    assert o.status == OrderStatus.FILLED


def test_limit_not_filled_by_trades_away(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT, price=98))
    eng.on_market(S, trade(99, 100))
    eng.on_market(S, trade(101, 100, SIDE_ASK))
    assert o.filled_qty == 0 and o.status == OrderStatus.OPEN


def test_stop_triggers_on_trade_then_fills_as_market(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 2, OrderType.STOP, price=102, client_order_id="S"))
    eng.on_market(S, trade(101, 1, SIDE_ASK))
    assert o.status == OrderStatus.OPEN and not o.triggered
    eng.on_market(S, trade(102, 1, SIDE_ASK))
    assert o.status == OrderStatus.FILLED
    # the book still shows 3@101 (a trade prints before the depth update it causes), but a
    # trade at 102 means 101 is gone: the stop fills from the trigger price on, 2@102
    assert o.avg_fill_price == 102
    assert ("updated", "S") in kinds(eng)


def test_stop_beyond_book_fills_at_trigger_price(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.STOP, price=104))
    eng.on_market(S, trade(105, 1, SIDE_ASK))  # asks end at 103 (50 lots) in the stale book
    assert o.status == OrderStatus.FILLED and o.last_fill_price == 105


def test_sell_stop_limit(eng):
    o = eng.submit(OrderSpec(S, Side.SELL, 20, OrderType.STOP_LIMIT, price=100, price2=99))
    eng.on_market(S, trade(100, 1))
    assert o.triggered
    assert o.filled_qty == 15  # 5@100 + 10@99, limit 99
    assert o.status == OrderStatus.PARTIALLY_FILLED


def test_slippage_and_commission():
    e = FillEngine([ES], commission_per_contract=2.0, slippage_ticks=1)
    e.on_market(S, book_events([(100, 5)], [(101, 5)]))
    e.submit(OrderSpec(S, Side.BUY, 1))
    e.submit(OrderSpec(S, Side.SELL, 1))
    p = e.position(S)
    assert p.qty == 0
    # bought 102 (101+1), sold 99 (100-1): -3 ticks * 12.5 - 2 * 2.0
    assert p.realized_pnl == pytest.approx(-3 * 12.5 - 4.0)
    assert e.cash_balance() == pytest.approx(100_000 - 41.5)


def test_position_flip_and_pnl(eng):
    eng.submit(OrderSpec(S, Side.BUY, 2))  # 2 @ 101
    eng.on_market(S, book_events([(110, 50)], [(111, 50)], ts=5))
    eng.submit(OrderSpec(S, Side.SELL, 5))  # 5 @ 110 (bids 110 best now)
    p = eng.position(S)
    assert p.qty == -3 and p.avg_price == 110
    assert p.realized_pnl == pytest.approx(2 * 9 * 12.5)
    eng.on_market(S, trade(108, 1, ts=6))
    assert eng.open_pnl(S) == pytest.approx(3 * 2 * 12.5)
    pos_events = [ev for ev in eng.log if isinstance(ev, PositionEvent)]
    assert pos_events[-1].qty == -3
    assert isinstance(eng.log[-1], BalanceEvent) or isinstance(eng.log[-2], BalanceEvent)


def test_bracket_target_fills_stop_cancelled(eng):
    p, tgt, stp = eng.submit_bracket(S, Side.BUY, 2, OrderType.LIMIT, 100, stop_price=96, target_price=104,
                                     client_order_ids=("P", "T", "X"))
    assert p.status == OrderStatus.OPEN
    assert tgt.status == stp.status == OrderStatus.PENDING_CHILD
    assert kinds(eng) == [("accepted", "P"), ("accepted", "T"), ("accepted", "X")]
    eng.on_market(S, trade(99, 3))  # through the parent: fills 2 @ 100
    assert p.status == OrderStatus.FILLED
    assert tgt.status == stp.status == OrderStatus.OPEN and tgt.qty == 2 and stp.qty == 2
    eng.on_market(S, book_events([(103, 1)], [(104, 1)], ts=3))
    eng.on_market(S, trade(105, 1, SIDE_ASK, ts=4))  # through the target
    assert tgt.status == OrderStatus.FILLED and tgt.avg_fill_price == 104
    assert stp.status == OrderStatus.CANCELED
    assert eng.position(S).qty == 0
    assert eng.position(S).realized_pnl == pytest.approx(2 * 4 * 12.5)
    seq = kinds(eng)
    assert seq[3:] == [("filled", "P"), ("updated", "T"), ("updated", "X"), ("filled", "T"), ("cancelled", "X")]


def test_bracket_partial_parent_then_oco_reduce(eng):
    p, tgt, stp = eng.submit_bracket(S, Side.BUY, 4, OrderType.LIMIT, 100, stop_price=97, target_price=104)
    eng.on_market(S, trade(100, 7))  # 5 ahead, 2 fill us
    assert p.filled_qty == 2 and tgt.qty == 2 and stp.qty == 2
    eng.on_market(S, trade(99, 1))  # rest of parent
    assert p.status == OrderStatus.FILLED and tgt.qty == 4 and stp.qty == 4
    # target partially fills 1 (queue ahead 0 at 104: no ask level there)
    eng.on_market(S, trade(104, 1, SIDE_ASK))
    assert tgt.filled_qty == 1 and stp.qty == 3
    eng.on_market(S, trade(97, 1))  # stop triggers, market sell 3 into bids 99.. (100 level size 5)
    assert stp.status == OrderStatus.FILLED and stp.filled_qty == 3
    assert tgt.status == OrderStatus.CANCELED
    assert eng.position(S).qty == 0


def test_oco_immediate_cancel_on_partial(eng):
    a, b = eng.submit_oco(
        OrderSpec(S, Side.SELL, 3, OrderType.LIMIT, price=104),
        OrderSpec(S, Side.SELL, 3, OrderType.STOP, price=97),
        partial_fill_handling=PartialFillHandling.IMMEDIATE_CANCEL,
    )
    eng.on_market(S, trade(104, 1, SIDE_ASK))
    assert a.filled_qty == 1 and b.status == OrderStatus.CANCELED


def test_cancel_parent_cancels_children_and_unknown_id(eng):
    p, t, s = eng.submit_bracket(S, Side.SELL, 1, OrderType.LIMIT, 105, stop_price=108, target_price=100)
    assert eng.cancel(p.server_order_id)
    assert p.status == t.status == s.status == OrderStatus.CANCELED
    assert not eng.cancel(p.server_order_id)  # already cancelled
    assert not eng.cancel("nope")
    rej = [ev for ev in eng.log if isinstance(ev, OrderReport) and ev.kind == "cancel_rejected"]
    assert rej[0].order.status == OrderStatus.CANCELED
    assert rej[1].order.status == OrderStatus.REJECTED and rej[1].order.server_order_id == ""


def test_bracket_rejected_together(eng):
    out = eng.submit_bracket(S, Side.BUY, 1, OrderType.LIMIT, 100, stop_price=None, target_price=104)
    assert all(o.status == OrderStatus.REJECTED for o in out)
    assert len(out) == 3 and not eng.open_orders()


def test_market_bracket_children_activate_at_once(eng):
    p, t, s = eng.submit_bracket(S, Side.BUY, 1, OrderType.MARKET, None, stop_price=99, target_price=103)
    assert p.status == OrderStatus.FILLED
    assert t.status == OrderStatus.OPEN and s.status == OrderStatus.OPEN


def test_replace_and_ioc(eng):
    o = eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT, price=97))
    assert eng.replace(o.server_order_id, price=99)
    assert o.price == 99 and o.queue_ahead == 10
    assert not eng.replace("zz", price=1)
    ioc = eng.submit(OrderSpec(S, Side.BUY, 10, OrderType.LIMIT, price=101, tif=TimeInForce.IOC))
    assert ioc.filled_qty == 3 and ioc.status == OrderStatus.CANCELED
    fok = eng.submit(OrderSpec(S, Side.BUY, 10, OrderType.LIMIT, price=101, tif=TimeInForce.FOK))
    assert fok.filled_qty == 0 and fok.status == OrderStatus.CANCELED


def test_flatten_and_cancel_all(eng):
    eng.submit(OrderSpec(S, Side.BUY, 3))
    eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT, price=95))
    assert eng.cancel_all() == 1
    o = eng.flatten(S)
    assert o.status == OrderStatus.FILLED and eng.position(S).qty == 0
    assert eng.flatten(S) is None


def test_listener_error_does_not_break_engine(eng):
    def bad(_ev):
        raise RuntimeError("boom")

    eng.add_listener(bad)
    o = eng.submit(OrderSpec(S, Side.BUY, 1))
    assert o.status == OrderStatus.FILLED


def test_engine_on_real_es_book(shared_data):
    """A market order on the real ES book at the end of the hour fills at the real best ask."""
    from app.feeds.dbn import read_dbn_mbo

    rec = read_dbn_mbo(shared_data / "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    e = FillEngine([rec.instrument])
    e.on_market(rec.instrument.symbol, rec.events)
    best_ask = e.books[S].best_ask()
    o = e.submit(OrderSpec(S, Side.BUY, 1))
    assert o.last_fill_price == best_ask == round(4810.25 / 0.25)
    assert np.isclose(e.mark(S), e.last_trade[S])


def test_rejections_carry_the_request_that_caused_them(eng):
    """The engine hands a rejection back with the caller's request handle (the DTC server routes
    it to that connection); reports caused by market data, and non-rejections, carry none."""
    eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT, client_order_id="no-price"), request="conn-A")
    eng.cancel("999", request="conn-B")
    eng.replace("998", qty=2, request="conn-C")
    ok = eng.submit(OrderSpec(S, Side.BUY, 1, OrderType.LIMIT, price=99, client_order_id="ok"), request="conn-D")
    assert ok.status == OrderStatus.OPEN
    got = [(ev.kind, ev.request) for ev in eng.log if isinstance(ev, OrderReport)]
    assert got == [("rejected", "conn-A"), ("cancel_rejected", "conn-B"), ("replace_rejected", "conn-C"),
                   ("accepted", None)]


def test_no_liquidity_rejection_carries_the_request():
    e = FillEngine([ES])
    e.on_market(S, book_events([(100, 5)], []))  # no asks at all
    e.log = []
    e.add_listener(e.log.append)
    assert e.submit(OrderSpec(S, Side.BUY, 1, client_order_id="mkt"), request="conn-A").status == OrderStatus.REJECTED
    lim = e.submit(OrderSpec(S, Side.SELL, 1, OrderType.LIMIT, price=101, client_order_id="lim"), request="conn-B")
    e.on_market(S, trade(102, 1))  # fills the resting sell: a market-data report, no request
    assert lim.status == OrderStatus.FILLED
    got = [(ev.kind, ev.order.client_order_id, ev.request) for ev in e.log if isinstance(ev, OrderReport)]
    assert got == [("accepted", "mkt", None), ("rejected", "mkt", "conn-A"), ("accepted", "lim", None),
                   ("filled", "lim", None)]
