"""Child process of the crash test: trades through the DTC broker until it is killed.

Usage: ``python trd_crash_child.py PORT JOURNAL_PATH``. Prints ``SENT <n>`` after each confirmed
ticket (i.e. after its orders were journaled and written) and ``CANCEL <cid>`` after each cancel.
The next ticket waits for the venue's acknowledgement of the previous entry (no fixed pause).
Runs at most ~60 s (bounded) if nobody kills it.
"""

from __future__ import annotations

import asyncio
import sys


async def main(port: int, journal_path: str) -> int:
    from app.dtc.client import DTCClient
    from app.core.events import Instrument
    from app.config.trading import TradingSettings
    from app.trading.dtc_broker import DtcBroker
    from app.trading.journal import Journal
    from app.core.orders import OrderType
    from app.trading.orders import OrderTicket
    from app.trading.session import TradingSession

    inst = Instrument("ESH4", 0.25, 12.5, "CME")
    settings = TradingSettings(mode="sim", account="Sim1", max_trades_per_day=10_000, max_position_contracts=10_000,
                               stale_data_ms=60_000, max_consecutive_losses=10_000, daily_loss_limit_usd=1e9)
    client = DTCClient("127.0.0.1", port, trade_account="Sim1", heartbeat_s=5, request_timeout_s=3.0)
    broker = DtcBroker(client, [inst], "Sim1", own_client=True)
    s = TradingSession(broker, Journal(journal_path), settings, inst)
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
                await asyncio.wait_for(happened.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    def on_events(b):
        s.on_market("ESH4", b)
        happened.set()

    await s.start()
    await client.subscribe_market("ESH4", on_events=on_events, tick_size=0.25)
    print(f"SESSION {s.journal.session}", flush=True)

    def quoted() -> bool:
        m = s.market.get("ESH4")
        return m is not None and m.best_bid is not None and m.best_ask is not None

    n = 0
    while await until(quoted):
        m = s.market["ESH4"]
        if n == 3:
            t = OrderTicket("ESH4", 1, 1, OrderType.MARKET, None, m.best_ask - 40, m.best_ask + 40, ref_price=m.best_ask)
        else:
            t = s.ticket_from_price(m.best_bid - 6 - n % 7, +1)
        d = await s.confirm(t)
        if not d.allowed:
            print(f"REFUSED {d.message}", flush=True)
            return 1
        n += 1
        print(f"SENT {n}", flush=True)
        entry = [o for o in broker.orders.values() if o.request.role == "entry"][-1]
        # the venue's acknowledgement (its order id, or a final state) paces the next ticket
        if not await until(lambda: bool(entry.server_order_id) or not entry.state.working):
            break
        if n % 3 == 0:
            entries = [o for o in broker.working_orders() if o.request.role == "entry" and o.server_order_id]
            if entries:
                await s.cancel_order(entries[0].client_order_id)
                print(f"CANCEL {entries[0].client_order_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2])))
