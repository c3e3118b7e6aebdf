"""Crash test: a trading process killed with SIGKILL mid-session; the journal is intact and a
restarted session reconciles orders and positions from the server."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.config.trading import TradingSettings
from app.trading.dtc_broker import DtcBroker
from app.trading.journal import Journal
from app.trading.killswitch import KillState
from app.trading.session import TradingSession

CHILD = Path(__file__).with_name("trd_crash_child.py")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_session_journal_intact_and_reconciled(es_sample, tmp_path, repo_root):
    journal_path = tmp_path / "journal.sqlite3"
    sym = es_sample.instrument.symbol
    ev = es_sample.events

    async def go():
        server = DTCServer(es_sample, port=0, paused=True, loop_replay=False)
        await server.start()
        i = 0
        server.publish(sym, ev[:3000])
        i = 3000
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), str(server.port), str(journal_path), cwd=str(repo_root),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        lines = []
        sent = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        try:
            while sent < 12:
                assert loop.time() < end, f"child too slow: {lines[-5:]}"
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), 0.05)
                except asyncio.TimeoutError:
                    line = None
                if line == b"":
                    err = await proc.stderr.read()
                    raise AssertionError(f"child ended early: {lines} {err.decode()[-2000:]}")
                if line:
                    text = line.decode().strip()
                    lines.append(text)
                    assert not text.startswith("REFUSED"), text
                    if text.startswith("SENT"):
                        sent = int(text.split()[1])
                # the market keeps moving while the child trades
                server.publish(sym, ev[i:i + 50])
                i += 50
            os.kill(proc.pid, signal.SIGKILL)  # mid-session: the child is still trading
            rc = await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert rc == -signal.SIGKILL
        child_session = int(next(x for x in lines if x.startswith("SESSION")).split()[1])

        # 1. the journal file is intact
        con = sqlite3.connect(str(journal_path))
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            journaled = {r[0] for r in con.execute("SELECT client_order_id FROM orders")}
            confirmed = con.execute("SELECT COUNT(*) FROM tickets WHERE status='confirmed'").fetchone()[0]
            cancels = {r[0] for r in con.execute("SELECT detail FROM events WHERE kind='cancel_request'")}
        finally:
            con.close()
        # 2. nothing acknowledged is missing: every order the server knows was journaled first,
        #    every ticket the child reported as sent is confirmed, every cancel it reported is there
        server_orders = {o.client_order_id: o for o in server.engine.orders.values() if o.client_order_id}
        assert server_orders and set(server_orders) <= journaled
        assert confirmed >= sent
        reported_cancels = [x.split()[1] for x in lines if x.startswith("CANCEL")]
        assert reported_cancels and all(any(c in d for d in cancels) for c in reported_cancels)

        # 3. restart: a new session on the same journal reconciles from the server
        settings = TradingSettings(mode="sim", account="Sim1", max_position_contracts=10_000,
                                   max_trades_per_day=10_000, stale_data_ms=60_000)
        client = DTCClient("127.0.0.1", server.port, trade_account="Sim1", heartbeat_s=5, request_timeout_s=3.0)
        broker = DtcBroker(client, [es_sample.instrument], "Sim1", own_client=True)
        s = TradingSession(broker, Journal(journal_path), settings, es_sample.instrument)
        await s.start()
        assert s.journal.session > child_session
        assert s.reconcile_count == 1
        open_at_server = {o.client_order_id: o for o in server.engine.open_orders()}
        assert open_at_server, "the child left working orders"
        working = {o.client_order_id: o for o in broker.working_orders()}
        assert set(working) == set(open_at_server)
        for cid, o in open_at_server.items():
            assert working[cid].server_order_id == o.server_order_id
        assert broker.position_qty(sym) == int(server.engine.position(sym).qty) != 0
        assert s.pnl.position(sym).qty == broker.position_qty(sym)
        # every journaled order is now either open at the server, final, or marked unknown
        states = s.journal.last_order_states()
        for cid, st in states.items():
            assert cid in open_at_server or st in ("filled", "canceled", "rejected", "unknown"), (cid, st)
        new_cid = s.journal.next_client_order_id()
        assert new_cid not in journaled
        # 4. the restarted session controls what the dead one left: the kill switch flattens it all
        res = await s.kill.engage("manual")
        assert res.state == KillState.VERIFIED_FLAT, res.describe()
        assert server.engine.open_orders() == [] and server.engine.position(sym).qty == 0
        await s.stop()
        await server.stop()

    asyncio.run(go())
