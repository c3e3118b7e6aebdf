"""Signal outcomes as the paper fill model books them (issue 14, item 17).

The old tracker (``app/analysis/outcomes.py``) entered at the signal's price at the signal
instant, counted a target on a touch, filled stops at the stop price, charged no commission and
let MFE/MAE run after the exit. On the tape of ``test_touch_is_no_target_...`` it said "target"
with MFE 20 and MAE 10 (checked on the old code); the fill model says "stop" at 995 (one tick of
slippage), MFE 8 (the touch of the target; nothing after the exit), -5 ticks and -67.00 USD
after two commissions. The bracket is the one the signal's ticket sends (limit entry at the
signal's price, target limit, stop), 2 s after the signal.
"""

import numpy as np
import pytest

from app.core.events import EVENT_DTYPE, OP_SET, SIDE_ASK, SIDE_BID, Instrument, depth_events, trade_events
from app.core.orders import OrderStatus, OrderType, Side
from app.sim.matching import FillEngine
from app.sim.outcomes import OutcomeTracker, SignalOutcome

ES = Instrument("ESH4", 0.25, 12.5)
S = 1_000_000_000
T0 = 1_703_545_200 * S


def book(ts, bids, asks):
    """Depth SET events for {tick: size} on each side at ``ts``."""
    px = list(bids) + list(asks)
    sz = list(bids.values()) + list(asks.values())
    sd = [SIDE_BID] * len(bids) + [SIDE_ASK] * len(asks)
    return depth_events([ts] * len(px), px, sz, sd, OP_SET)


def trade(t, price, size=1.0, side=SIDE_BID):
    return trade_events([T0 + int(t * S)], [price], [size], [side])


def tape(*parts):
    ev = np.concatenate(parts).astype(EVENT_DTYPE)
    ev.sort(order="ts", kind="stable")
    return ev


BIDS = {999: 10.0, 998: 10.0, 997: 10.0, 996: 10.0, 995: 10.0}
ASKS = {1000: 10.0, 1001: 10.0, 1002: 10.0, 1004: 10.0, 1008: 50.0, 1009: 10.0}


def tracker(**kw):
    kw = {"decision_delay_s": 2.0, "stop_slippage_ticks": 1, "commission_per_contract_usd": 2.25, **kw}
    return OutcomeTracker(ES, **kw)


def long_signal(tr, sid=1, patterns=("wall",)):
    tr.add(sid, T0, 1, 1000, 996, 1008, patterns)


def test_touch_is_no_target_stop_slips_mfe_stops_at_the_exit_and_commission_is_charged():
    tr = tracker()
    long_signal(tr)
    tr.on_market(book(T0 - S, BIDS, ASKS))
    tr.on_market(tape(book(T0 + 3 * S, {}, {1003: 5.0}),  # first event after the decision time
                      trade(10, 1004, 2, SIDE_ASK),
                      trade(20, 1008, 5, SIDE_ASK)))  # a touch of the target: 50 lots were ahead
    o = tr.outcomes[1]
    assert o.entry_price == 1000 and o.entry_ts == T0 + 2 * S  # the limit met the ask, after the delay
    assert o.first is None and o.exit_price is None and o.mfe == 8  # the old model: "target"
    gone = depth_events([T0 + 29 * S] * 3, [999, 998, 997], [0.0] * 3, [SIDE_BID] * 3, 2)
    tr.on_market(tape(gone, trade(30, 996, 3)))  # the stop triggers; the book's best bid is 996
    o = tr.outcomes[1]
    assert o.first == "stop" and o.exit_price == 995  # 996 - 1 tick of slippage
    assert o.ticks == -5 and o.net_usd == pytest.approx(-5 * 12.5 - 2 * 2.25)
    assert o.mae == 5 and o.mfe == 8 and not o.complete
    tr.on_market(tape(trade(40, 1020), trade(100, 1010), trade(400, 1000)))
    o = tr.outcomes[1]
    assert o.mfe == 8 and o.mae == 5  # stopped at the exit: the rally to 1020 is not the trade's
    assert (o.move_1m, o.move_5m, o.move_15m) == (20, 10, None)  # from the entry fill, 1 and 5 min after it
    tr.on_market(tape(trade(1000, 990)))
    o = tr.outcomes[1]
    assert o.move_15m == 0 and o.complete
    assert tr.precision() == {"wall": (1, 0, 0.0)}


@pytest.mark.parametrize("prints, filled", [
    ([(1009, 1.0)], True),  # a trade through the target
    ([(1008, 30.0), (1008, 30.0)], True),  # trades at it, more than the 50 lots ahead
    ([(1008, 30.0), (1008, 19.0)], False),  # trades at it, less than the queue ahead
])
def test_target_fills_on_a_trade_through_or_once_the_queue_ahead_traded(prints, filled):
    tr = tracker()
    long_signal(tr, patterns=("wall", "iceberg"))
    tr.on_market(book(T0 - S, BIDS, ASKS))
    tr.on_market(tape(book(T0 + 3 * S, {}, {1003: 5.0}),
                      *[trade(10 + k, p, q, SIDE_ASK) for k, (p, q) in enumerate(prints)]))
    o = tr.outcomes[1]
    if filled:
        assert o.first == "target" and o.exit_price == 1008  # a limit fills at its own price
        assert o.ticks == 8 and o.net_usd == pytest.approx(8 * 12.5 - 4.5)
        assert tr.precision() == {"iceberg": (1, 1, 1.0), "wall": (1, 1, 1.0)}
    else:
        assert o.first is None and o.net_usd is None
        assert tr.precision() == {"iceberg": (0, 0, 0.0), "wall": (0, 0, 0.0)}


def test_decision_delay_meets_the_book_of_that_instant_and_a_resting_entry_fills_on_a_later_trade():
    moved = book(T0 + S, {}, {1000: 0.0, 1001: 0.0, 1002: 0.0, 1003: 4.0})  # the ask left in 1 s
    later = book(T0 + 3 * S, {}, {1010: 1.0})
    tr = tracker(decision_delay_s=0.0)
    long_signal(tr)
    tr.on_market(book(T0 - S, BIDS, ASKS))
    tr.on_market(tape(moved, later))
    assert tr.outcomes[1].entry_price == 1000 and tr.outcomes[1].entry_ts == T0  # no delay: at the ask
    tr = tracker()
    long_signal(tr)
    tr.on_market(book(T0 - S, BIDS, ASKS))
    tr.on_market(tape(moved, later, trade(5, 1003, 1, SIDE_ASK)))
    assert tr.outcomes[1].entry_price is None  # 2 s later the limit at 1000 rests under the market
    tr.on_market(tape(trade(8, 1000, 3), trade(9, 999, 1), trade(10, 1002, 1, SIDE_ASK)))
    o = tr.outcomes[1]
    assert o.entry_price == 1000 and o.entry_ts == T0 + 8 * S  # the first trade at it: nobody was ahead
    assert o.mae == 1 and o.mfe == 2  # from that trade on
    tr = tracker(stop_slippage_ticks=0)
    tr.add(5, T0, -1, 999, 1003, 995, ("absorption",))  # short: sell limit at the bid, stop above
    tr.on_market(book(T0 - S, BIDS, ASKS))
    tr.on_market(tape(book(T0 + 3 * S, {990: 1.0}, {}), trade(5, 994, 1, SIDE_BID)))
    o = tr.outcomes[5]
    assert o.entry_price == 999 and o.first == "target" and o.exit_price == 995 and o.ticks == 4
    assert o.mfe == 5  # the trade through at 994


def test_an_entry_never_filled_is_cancelled_at_the_last_horizon_and_the_end_of_data_ends_early():
    tr = tracker()
    long_signal(tr, sid=1)
    tr.on_market(book(T0 - S, BIDS, {1003: 5.0}))  # the ask is above the entry limit
    tr.on_market(tape(trade(3, 1003, 1, SIDE_ASK), trade(500, 1006, 1, SIDE_ASK), trade(1000, 1001, 1, SIDE_ASK)))
    o = tr.outcomes[1]
    assert o.entry_price is None and "not filled" in o.entry_error and o.first is None
    assert o.complete and o.move_15m == 6  # from the signal's price (1000) when nothing filled
    assert tr.precision() == {"wall": (0, 0, 0.0)}
    assert all(x.status == OrderStatus.CANCELED for x in tr.engine.orders.values())
    long_signal(tr, sid=2)
    tr.finish()
    assert tr.outcomes[2].ended_early and tr.outcomes[2].entry_price is None


def test_bad_settings_are_refused_with_their_name():
    with pytest.raises(ValueError, match="decision delay"):
        tracker(decision_delay_s=-1)
    with pytest.raises(ValueError, match="slippage"):
        tracker(stop_slippage_ticks=-2)
    with pytest.raises(ValueError, match="commission"):
        tracker(commission_per_contract_usd=-0.5)
    with pytest.raises(ValueError, match="side"):
        tracker().add(1, T0, 0, 1000, 996, 1008)
    assert SignalOutcome(3).net_usd is None


def test_real_es_outcomes_equal_what_the_fill_engine_books_for_the_same_bracket(shared_data):
    """The engine's outcome of each signal on the shipped ES hour equals a fresh FillEngine (the
    paper broker's engine) given the signal's ticket bracket 2 s after the signal, fed the same
    events (an entry still unfilled 15 minutes after the decision is cancelled)."""
    from app.core.events import chunks
    from app.feeds.samples import load_default_sample
    from app.live.engine import AnalysisEngine

    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "development")
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    ev = rec.events
    sym = rec.instrument.symbol
    checked = 0
    exits = set()
    for s in eng.all_signals[:8]:
        o = eng.outcomes[s.id]
        fe = FillEngine([rec.instrument], commission_per_contract=2.25, slippage_ticks=1)
        due = s.ts + 2 * S
        k = int(np.searchsorted(ev["ts"], due, side="right"))
        fe.on_market(sym, ev[:k])
        # the signal's ticket: a limit entry at the signal's price with its stop and target
        parent, target, stop = fe.submit_bracket(sym, Side(s.side), 1, OrderType.LIMIT, entry_price=s.entry,
                                                 stop_price=s.stop, target_price=s.target)
        k2 = int(np.searchsorted(ev["ts"], due + 900 * S, side="right"))
        fe.on_market(sym, ev[k:k2 + 1])
        if parent.filled_qty == 0:
            fe.cancel(parent.server_order_id)
            assert o.entry_price is None and "not filled" in o.entry_error
            continue
        fe.on_market(sym, ev[k2 + 1:])
        assert o.entry_price == pytest.approx(parent.avg_fill_price)
        done = [leg for leg in (target, stop) if leg.status == OrderStatus.FILLED]
        if not done:
            assert o.first is None and o.ended_early
            continue
        leg = done[0]
        assert o.first == ("target" if leg is target else "stop")
        assert o.exit_price == pytest.approx(leg.avg_fill_price)
        assert o.net_usd == pytest.approx(fe.realized_pnl())  # realised after both commissions
        assert o.ticks == pytest.approx(s.side * (leg.avg_fill_price - parent.avg_fill_price))
        assert o.mfe >= max(o.ticks, 0) and o.mae >= max(-o.ticks, 0)
        exits.add(o.first)
        checked += 1
    assert checked >= 4, f"only {checked} decided outcomes to compare"
