"""Child process of the kill -9 loop (tests/trading/test_faults.py): trades long-only through the DTC
broker until it is killed; a ``KILL`` line on stdin fires the kill switch (while the parent may also
have frozen the market, so that the stale-data trigger fires too).

Usage: ``python faults_child.py PORT JOURNAL_PATH SEED``. Prints, flushed:

* ``SESSION <n>``: the journal session of this process;
* ``SENT <k> <cid> [<cid> ...]``: ticket ``k`` (a bracket) confirmed: its orders journaled and written;
* ``ACK <cid>``: the venue acknowledged that entry (a ServerOrderID, or a final state);
* ``CANCEL <cid>``: a cancel of that entry was journaled and written;
* ``REFUSED <rule>``: the gate refused a ticket (locked by the kill switch);
* ``KILL``: the manual kill switch was triggered; ``KILL_DONE <state>`` when its run ended.

Every ticket buys (a limit bracket below the market, or a market entry with its bracket),
so the venue's position never goes below zero unless a kill switch oversells. Each ticket waits for
the venue's acknowledgement of the previous one (no fixed pause). Runs at most ~60 s if nobody kills it.
"""

from __future__ import annotations

import asyncio
import random
import sys


async def main(port: int, journal_path: str, seed: int) -> int:
    from app.config.trading import TradingSettings
    from app.core.events import Instrument
    from app.core.orders import OrderType
    from app.dtc.client import DTCClient
    from app.trading.dtc_broker import DtcBroker
    from app.trading.journal import Journal
    from app.trading.orders import OrderTicket
    from app.trading.session import TradingSession

    rnd = random.Random(seed)
    inst = Instrument("ESH4", 0.25, 12.5, "CME")
    settings = TradingSettings(mode="sim", account="Sim1", max_trades_per_day=10_000, max_position_contracts=10_000,
                               max_contracts_per_order=10, max_risk_per_trade_usd=100_000.0, stale_data_ms=600_000,
                               stale_kill_s=0.3, max_consecutive_losses=10_000, daily_loss_limit_usd=1e9,
                               kill_verify_timeout_s=10.0)
    client = DTCClient("127.0.0.1", port, trade_account="Sim1", heartbeat_s=30, request_timeout_s=10.0)
    broker = DtcBroker(client, [inst], "Sim1", own_client=True)
    s = TradingSession(broker, Journal(journal_path), settings, inst)
    s.monitor_interval_s = 0.05
    happened = asyncio.Event()  # set on every session change and every market batch
    s.listeners.append(happened.set)
    loop = asyncio.get_running_loop()
    end = loop.time() + 60.0

    async def until(pred) -> bool:
        """Wait for ``pred()``, woken by the session and the market, never past ``end``."""
        while not pred():
            left = end - loop.time()
            if left <= 0:
                return False
            happened.clear()
            try:
                await asyncio.wait_for(happened.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass
        return True

    def on_events(b):
        s.on_market("ESH4", b)
        happened.set()

    def on_kill(state, result):
        if result is not None:
            print(f"KILL_DONE {state.value}", flush=True)

    s.kill.add_listener(on_kill)
    await s.start()
    await client.subscribe_market("ESH4", on_events=on_events, tick_size=0.25)
    s.watch_market("ESH4")
    print(f"SESSION {s.journal.session}", flush=True)

    async def commands():
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if line.strip() == "KILL":
                print("KILL", flush=True)
                s.kill.trigger("manual")

    cmd_task = asyncio.ensure_future(commands())

    def quoted() -> bool:
        m = s.market.get("ESH4")
        return m is not None and m.best_bid is not None and m.best_ask is not None

    n = 0
    while await until(quoted):
        m = s.market["ESH4"]
        kind = rnd.random()
        qty = rnd.randint(1, 3)
        if kind < 0.6:
            t = s.ticket_from_price(m.best_bid - 4 - rnd.randint(0, 8), +1, qty)
        else:
            t = OrderTicket("ESH4", 1, qty, OrderType.MARKET, None, m.best_ask - 40, m.best_ask + 40,
                            ref_price=m.best_ask)
        before = set(broker.orders)
        d = await s.confirm(t)
        if not d.allowed:
            print(f"REFUSED {d.rule}", flush=True)
            if not await until(lambda: not s.gate.locked):
                break
            continue
        n += 1
        new = [c for c in broker.orders if c not in before]
        print(f"SENT {n} {' '.join(new)}", flush=True)
        entry = broker.orders[new[0]]
        if not await until(lambda: bool(entry.server_order_id) or not entry.state.working):
            break
        print(f"ACK {entry.client_order_id}", flush=True)
        if rnd.random() < 0.25:
            entries = [o for o in broker.working_orders() if o.request.role == "entry" and o.server_order_id]
            if entries:
                await s.cancel_order(entries[0].client_order_id)
                print(f"CANCEL {entries[0].client_order_id}", flush=True)
    cmd_task.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
