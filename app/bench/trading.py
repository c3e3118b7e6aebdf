"""Trading benchmarks for ``mia-elite bench trading``: figures with a same-run baseline.

Every run uses a throw-away journal in a temporary folder (never the user's journal) and the
built-in DTC server (:class:`app.sim.server.DTCServer`) on the shipped real ES sample, driven
with ``publish`` (no replay clock), on 127.0.0.1.

Figures (targets from issues 6 and 12):

* ``trading.kill_switch_first_cancel``: ms from the kill-switch click (``KillSwitch.trigger``, what
  the button and the hotkey call) to the first CANCEL_ORDER written to the socket, with two
  working brackets and an open position, the journal at ``synchronous=FULL`` (the ``engaged``
  row is fsynced before the first cancel). ``value`` is the 99th percentile (nearest rank) over
  the rounds, target <= 20 ms; ``median``, ``p90`` and ``max`` beside it. Baseline: encoding and
  writing one CANCEL_ORDER with the same client (the floor of any "send a cancel").
* ``trading.kill_switch_first_flatten``: ms from the click to the flattening order on the wire,
  p99, target <= 20 ms; same baseline. Since issue 12 the flatten waits for the venue's report
  that no order works any more (one round trip to the server: OPEN_ORDERS_REQUEST and
  CURRENT_POSITIONS_REQUEST written after the cancels) and is sized from its position report.
* ``trading.kill_switch_verified``: ms from the click to VERIFIED FLAT (venue reports checked), p99.
* ``trading.gate_check``: microseconds per order for :meth:`RiskGate.evaluate` (all 11 rules);
  baseline: the same limits as one inline Python expression.
* ``trading.gate_check_journaled``: ms per order for :meth:`RiskGate.check` (decision committed
  to the WAL journal, ``synchronous=FULL``); baseline: the same with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path

from app.config.trading import TradingSettings
from app.trading.journal import Journal
from app.trading.orders import now_ns
from app.trading.risk import OrderContext, RiskGate


def _fig(name, value, unit, baseline, target, **extra):
    d = {"name": name, "value": round(value, 4), "unit": unit, "baseline": round(baseline, 4),
         "ratio": round(value / baseline, 2) if baseline else None, "target": target}
    d.update(extra)
    return d


async def _kill_rounds(rounds: int, tmp: Path):
    from app.dtc import messages as M
    from app.dtc.client import DTCClient
    from app.sim.server import DTCServer
    from app.feeds.samples import load_default_sample
    from app.trading.dtc_broker import DtcBroker
    from app.trading.killswitch import KillState
    from app.core.orders import OrderType
    from app.trading.orders import OrderTicket
    from app.trading.session import TradingSession

    rec = load_default_sample()
    sym = rec.instrument.symbol
    server = DTCServer(rec, port=0, paused=True, loop_replay=False)
    await server.start()
    server.publish(sym, rec.events[:4000])
    settings = TradingSettings(mode="sim", account="Sim1", max_position_contracts=100, max_trades_per_day=10_000,
                               stale_data_ms=3_600_000, max_consecutive_losses=10_000, daily_loss_limit_usd=1e9)
    client = DTCClient("127.0.0.1", server.port, trade_account="Sim1", heartbeat_s=5)
    broker = DtcBroker(client, [rec.instrument], "Sim1", own_client=True)
    s = TradingSession(broker, Journal(tmp / "bench-journal.sqlite3", synchronous="FULL"), settings, rec.instrument)
    sync = int(s.journal.query("PRAGMA synchronous")[0][0])
    if sync != 2:  # SQLite: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
        raise RuntimeError(f"bench journal: PRAGMA synchronous is {sync}, expected 2 (FULL)")
    await s.start()
    s.note_quote(sym, None, None)
    cancel_ms, flatten_ms, verified_ms, base_ms = [], [], [], []
    loop = asyncio.get_running_loop()
    try:
        for _ in range(rounds):
            book = server.engine.books[sym]
            bid, ask = book.best_bid(), book.best_ask()
            s.note_quote(sym, bid, ask)
            for t in (s.ticket_from_price(bid - 12, +1), s.ticket_from_price(ask + 12, -1),
                      OrderTicket(sym, 1, 1, OrderType.MARKET, None, ask - 40, ask + 40, ref_price=ask)):
                d = await s.confirm(t)
                if not d.allowed:
                    raise RuntimeError(f"bench ticket refused: {d.message}")
            end = loop.time() + 5
            while not (broker.position_qty(sym) != 0 and broker.working_orders()
                       and all(o.server_order_id for o in broker.working_orders())):
                if loop.time() > end:
                    raise RuntimeError("bench: brackets not acknowledged within 5 s")
                await asyncio.sleep(0.002)
            # baseline: one CANCEL_ORDER encoded and written by the same client (unknown id: harmless)
            t0 = time.perf_counter_ns()
            client.send(M.CancelOrder(ServerOrderID="bench-none", TradeAccount="Sim1"))
            base_ms.append((time.perf_counter_ns() - t0) / 1e6)
            broker.wire_log = []
            t_click = time.perf_counter_ns()
            task = s.kill.trigger("bench")
            res = await asyncio.wait_for(task, 10)
            t_done = time.perf_counter_ns()
            if res.state != KillState.VERIFIED_FLAT:
                raise RuntimeError(f"bench: kill switch ended {res.describe()}")
            wl = broker.wire_log
            broker.wire_log = None
            cancel_ms.append((next(t for t, w, _ in wl if w == "cancel") - t_click) / 1e6)
            flatten_ms.append((next(t for t, w, _ in wl if w == "submit") - t_click) / 1e6)
            verified_ms.append((t_done - t_click) / 1e6)
            if not s.kill.unlock("UNLOCK"):
                raise RuntimeError("bench: unlock refused")
            await asyncio.sleep(0.05)  # let the last updates arrive before the next round
    finally:
        await s.stop()
        await server.stop()
    return cancel_ms, flatten_ms, verified_ms, base_ms


def _pct(values, q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: the smallest value with at least ``q`` of them at or below."""
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def _kill_fig(name: str, ms: list, base: float, target, extra: dict) -> dict:
    p99 = _pct(ms, 0.99)
    return _fig(name, p99, "ms", base, target, stat="p99", median=round(statistics.median(ms), 4),
                p90=round(_pct(ms, 0.90), 4), max=round(max(ms), 4),
                target_met=None if target is None else p99 <= target, **extra)


def bench_kill_switch(args):
    rounds = 10 if getattr(args, "quick", False) else 100
    with tempfile.TemporaryDirectory() as d:
        cancel_ms, flatten_ms, verified_ms, base_ms = asyncio.run(_kill_rounds(rounds, Path(d)))
    base = statistics.median(base_ms)
    extra = {"rounds": rounds, "setup": "DTC broker -> built-in server (real ES sample), 2 working brackets + "
             "1 open position with its OCO children; journal synchronous=FULL"}
    yield _kill_fig("trading.kill_switch_first_cancel", cancel_ms, base, 20.0, extra)
    yield _kill_fig("trading.kill_switch_first_flatten", flatten_ms, base, 20.0, extra)
    yield _kill_fig("trading.kill_switch_verified", verified_ms, base, None, extra)


def _contexts(n: int):
    t = now_ns()
    return [OrderContext("ESH4", 1 if i % 2 else -1, 1 + i % 2, risk_usd=100.0 + i % 50, position_qty=i % 3,
                         realized_pnl_usd=-float(i % 200), trades_today=i % 10, consecutive_losses=i % 2,
                         now_ns=t, last_data_ns=t) for i in range(n)]


def _inline(c: OrderContext, s: TradingSettings) -> bool:
    return (not c.kill_locked and not (c.mode == "live" and not c.live_confirmed)
            and c.realized_pnl_usd + min(0.0, c.open_pnl_usd) > -s.daily_loss_limit_usd
            and c.consecutive_losses < s.max_consecutive_losses and c.trades_today < s.max_trades_per_day
            and (c.now_ns - c.last_data_ns) / 1e6 <= s.stale_data_ms and c.qty <= s.max_contracts_per_order
            and abs(c.position_qty + c.pending_qty + c.side * c.qty) <= s.max_position_contracts
            and c.risk_usd is not None and c.risk_usd <= s.max_risk_per_trade_usd)


def bench_gate(args):
    n = 2_000 if getattr(args, "quick", False) else 20_000
    s = TradingSettings()
    gate = RiskGate(s)
    ctxs = _contexts(n)
    best = base = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for c in ctxs:
            gate.evaluate(c)
        best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c in ctxs:
            _inline(c, s)
        base = min(base, time.perf_counter() - t0)
    yield _fig("trading.gate_check", best / n * 1e6, "us/order", base / n * 1e6, None, orders=n,
               rules=len(gate.rules))
    m = 50 if getattr(args, "quick", False) else 300
    with tempfile.TemporaryDirectory() as d:
        jf = Journal(Path(d) / "full.sqlite3", synchronous="FULL")
        jn = Journal(Path(d) / "normal.sqlite3", synchronous="NORMAL")
        gf, gn = RiskGate(s, jf), RiskGate(s, jn)
        t0 = time.perf_counter()
        for c in ctxs[:m]:
            gf.check(c, 1)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        for c in ctxs[:m]:
            gn.check(c, 1)
        normal = time.perf_counter() - t0
        jf.close()
        jn.close()
    yield _fig("trading.gate_check_journaled", full / m * 1e3, "ms/order", normal / m * 1e3, None, orders=m,
               note="decision committed (WAL, synchronous=FULL); baseline synchronous=NORMAL")


BENCHMARKS = {
    "trading.gate": bench_gate,
    "trading.kill_switch": bench_kill_switch,
}
