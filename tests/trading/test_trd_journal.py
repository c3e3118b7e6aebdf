"""Journal: WAL, schema migrations, ClientOrderIDs across restarts; export and report commands."""

from __future__ import annotations

import asyncio
import sqlite3

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from app import cli
from app.analysis.frame import PatternHit, Signal
from app.sim.outcomes import SignalOutcome
from app.trading import journal as J
from app.config.trading import TradingSettings
from app.core.clock import ManualClock
from app.trading.journal import Journal
from app.core.orders import OrderType
from app.trading.orders import OrderTicket
from app.trading.paper import PaperBroker
from app.cli.report import build_report, format_report
from app.trading.session import TradingSession


def test_wal_mode_schema_version_and_default_location(_isolated_home):
    j = Journal()
    assert j.path == _isolated_home / "data" / "journal.sqlite3"
    assert j.query("PRAGMA journal_mode")[0][0] == "wal"
    assert j.schema_version == J.SCHEMA_VERSION == 4
    j.close()


def test_migration_from_v1_keeps_rows(tmp_path):
    p = tmp_path / "old.sqlite3"
    con = sqlite3.connect(p)
    con.executescript(J.MIGRATIONS[1])
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO meta VALUES ('install_tag', 'AB12')")
    con.execute("INSERT INTO meta VALUES ('session', '7')")
    con.execute("INSERT INTO kill_switch(wall_ns, state, trigger, detail) VALUES (1, 'unlocked', 'manual', '{}')")
    con.commit()
    con.close()
    j = Journal(p)
    assert j.schema_version == 4
    assert j.session == 8 and j.install_tag == "AB12"
    assert j.query("SELECT state FROM kill_switch")[0][0] == "unlocked"
    assert j.query("SELECT COUNT(*) FROM signal_outcomes")[0][0] == 0  # the v2 table exists
    j.close()


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "new.sqlite3"
    con = sqlite3.connect(p)
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Journal(p)


def test_client_order_ids_unique_across_restarts(tmp_path):
    p = tmp_path / "j.sqlite3"
    seen = set()
    for _ in range(3):
        j = Journal(p)
        ids = [j.next_client_order_id() for _ in range(50)]
        assert all(len(i.encode()) <= 31 for i in ids)
        assert not seen & set(ids)
        seen |= set(ids)
        j.close()
    assert len(seen) == 150


def test_transaction_is_all_or_nothing(tmp_path):
    j = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(ZeroDivisionError):
        with j.transaction():
            j.record_event("a")
            1 / 0
    assert j.query("SELECT COUNT(*) FROM events")[0][0] == 0
    with j.transaction():
        j.record_event("a")
        j.record_event("b")
    assert j.query("SELECT COUNT(*) FROM events")[0][0] == 2


def _day_of_trading(rec, feeder_cls, path):
    """Two real round trips on the paper broker + a signal with its outcome (on a ManualClock: a
    slow machine cannot make the market data look stale between two steps)."""

    async def go():
        s = TradingSession(PaperBroker([rec.instrument], 2.25), Journal(path),
                           TradingSettings(commission_per_contract_usd=2.25, max_consecutive_losses=10),
                           rec.instrument, clock=ManualClock())
        await s.start()
        f = feeder_cls(s, rec)
        f.advance(3000)
        hit = PatternHit("absorption", "dom", 0, 0, 1, 0.8, "", ())
        sig = Signal(3, 0, "ESH4", 1, 0.9, (), (hit,), 100, 90, 120, 1, "low")
        s.record_signal(sig, {"x": 1})
        s.journal.record_signal_outcome(SignalOutcome(3, 1.0, 4.0, None, 5, -1, "target", True,
                                                            ticks=8.0, net_usd=95.5), ["absorption"])
        for side in (1, -1):
            m = s.market["ESH4"]
            ref = m.best_ask if side > 0 else m.best_bid
            t = OrderTicket("ESH4", side, 1, OrderType.MARKET, None, ref - side * 8, ref + side * 8, ref_price=ref)
            assert (await s.confirm(t)).allowed
            f.advance(2000)
            await s.flatten_position("ESH4") if s.position_qty("ESH4") else None
            for o in s.broker.working_orders():
                await s.cancel_order(o.client_order_id)
            f.advance(100)
        await s.stop()
        return s

    return asyncio.run(go())


def test_export_and_report_on_a_real_paper_session(es_sample, feeder_cls, tmp_path, capsys):
    jp = tmp_path / "journal.sqlite3"
    s = _day_of_trading(es_sample, feeder_cls, jp)
    n_fills = s.journal.query("SELECT COUNT(*) FROM fills")[0][0]
    assert n_fills == 4
    out = tmp_path / "pq"
    assert cli.main(["export", "--journal", str(jp), "--out", str(out)]) == 0
    t = pq.read_table(out / "fills.parquet")
    # prices in price units, the journal's ticks beside them (issue 16 item 11)
    assert t.num_rows == n_fills and t.schema.field("price").type == "double"
    assert t.schema.field("price_ticks").type == "int64"
    assert t.column("price").to_pylist() == [p * 0.25 for p in t.column("price_ticks").to_pylist()]
    assert abs(sum(t.column("realized_usd").to_pylist()) - s.pnl.realized_usd) < 1e-9
    assert pq.read_table(out / "signals.parquet").num_rows == 1
    assert cli.main(["export", "--journal", str(jp), "--out", str(tmp_path / "csv"), "--format", "csv",
                     "--tables", "orders", "gate_decisions"]) == 0
    assert pacsv.read_csv(tmp_path / "csv" / "orders.csv").num_rows == s.journal.query(
        "SELECT COUNT(*) FROM orders")[0][0]
    assert cli.main(["export", "--journal", str(tmp_path / "missing.sqlite3")]) == 1
    assert "journal not found" in capsys.readouterr().err

    r = build_report(jp, tz_name=s.settings.trading_timezone)
    assert len(r["trades"]) == 2 and r["fills"] == 4
    assert abs(r["pnl"]["net_usd"] - round(s.pnl.net_realized_usd, 2)) < 0.006
    assert r["pnl"]["commissions_usd"] == 4 * 2.25
    assert abs(sum(t["net_usd"] for t in r["trades"]) - r["pnl"]["net_usd"]) < 0.02
    assert r["patterns"]["absorption"] == {"signals": 1, "decided": 1, "target_first": 1, "stops": 0,
                                           "precision": 1.0, "mean_move_5m_ticks": 4.0, "net_usd": 95.5,
                                           "mean_net_usd": 95.5}
    text = format_report(r)
    assert "2 trades" in text and "absorption" in text
    assert cli.main(["report", "--journal", str(jp), "--json"]) == 0
    assert '"net_usd"' in capsys.readouterr().out
