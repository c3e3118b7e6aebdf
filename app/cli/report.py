"""``mia-elite report``: the day's trades, P&L and per-pattern signal outcomes, from the journal.

Trades are rebuilt from the journaled fills with the same bookkeeping the session uses
(:class:`app.trading.pnl.PnLTracker`): a round trip ends when the position returns to zero;
its result is the realised P&L minus the commissions paid during it. Signal outcomes come from
``signal_outcomes`` (latest row per signal) joined with each signal's reasons (pattern names):
per pattern, the exits (target / stop, as the paper fill model booked the signal's bracket,
``app/sim/outcomes.py``), the precision (target exits / decided), the mean 5-minute move and the
net USD of the decided brackets (per contract, after commissions; journals written before
schema 4 have no net figure: ``None``).

Prices are in price units (the journal's ticks x ``--tick-size``, default 0.25 for ES; the
ticks stay beside them as ``entry_ticks`` / ``exit_ticks``) and times in ISO 8601 UTC
(``entry_time``, ``exit_time``, a kill-switch event's ``time``; ns stay as ``wall_ns``).
Moves are distances in ticks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
from pathlib import Path

from app.cli.export import DEFAULT_TICK_SIZE, iso_utc, price_of
from app.trading import journal as J
from app.core.orders import Fill
from app.trading.pnl import PnLTracker

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover
    ZoneInfo = None  # type: ignore


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", default=None, help="trading day YYYY-MM-DD (default: today in --timezone)")
    p.add_argument("--timezone", default="America/Chicago", help="zone of the trading day (default America/Chicago)")
    p.add_argument("--journal", default=None, help="journal file (default: the user data folder's journal)")
    p.add_argument("--tick-value", type=float, default=12.5, help="USD per tick per contract (default 12.5, ES)")
    p.add_argument("--tick-size", type=float, default=DEFAULT_TICK_SIZE,
                   help=f"price units per tick (default {DEFAULT_TICK_SIZE:g}, ES)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def day_bounds(day: str | None, tz_name: str) -> tuple[str, int, int]:
    """``(day, start_ns, end_ns)`` of a trading day in ``tz_name`` (ValueError on a bad date or zone)."""
    tz = dt.timezone.utc
    if ZoneInfo is not None:
        try:
            tz = ZoneInfo(tz_name)
        except Exception as exc:
            raise ValueError(f"unknown time zone {tz_name!r}") from exc
    d = dt.date.fromisoformat(day) if day else dt.datetime.now(tz).date()
    start = dt.datetime(d.year, d.month, d.day, tzinfo=tz)
    end = start + dt.timedelta(days=1)
    return d.isoformat(), int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)


def build_report(journal_path: str | Path | None, day: str | None = None, tz_name: str = "America/Chicago",
                 tick_value: float = 12.5, tick_size: float = DEFAULT_TICK_SIZE) -> dict:
    """The report as a dict: ``day``, ``fills``, ``trades``, ``pnl``, ``patterns``, ``kill_switch``, ``gate``.

    Parameters
    ----------
    journal_path : path or None
        Default :func:`app.trading.journal.default_path`.
    day : str, optional
        ``YYYY-MM-DD`` in ``tz_name`` (default today).
    tz_name : str
        IANA zone of the trading day.
    tick_value : float
        USD per tick per contract.
    tick_size : float
        Price units per tick: each trade's ``entry_price`` / ``exit_price`` are ticks x this
        (``entry_ticks`` / ``exit_ticks`` keep the ticks); ``entry_time`` / ``exit_time`` are
        the first and last fill's exchange times in ISO 8601 UTC.

    Raises
    ------
    FileNotFoundError
        The journal does not exist.
    ValueError
        A bad date, zone or a tick size that is not positive.
    """
    if not float(tick_size) > 0:
        raise ValueError(f"tick size must be > 0 (price units per tick), got {tick_size!r}")
    path = Path(journal_path) if journal_path else J.default_path()
    if not path.exists():
        raise FileNotFoundError(f"journal not found: {path}")
    day, t0, t1 = day_bounds(day, tz_name)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        fills = con.execute("SELECT * FROM fills WHERE wall_ns >= ? AND wall_ns < ? ORDER BY id", (t0, t1)).fetchall()
        pnl = PnLTracker(default_tick_value=tick_value)
        trades = []
        open_fills: list = []
        for r in fills:
            f = Fill(r["client_order_id"], r["server_order_id"], r["exec_id"], r["symbol"], int(r["side"]),
                     int(r["qty"]), int(r["price"]), int(r["ts_ns"]), float(r["commission_usd"]))
            n_before = pnl.round_trips
            pnl.apply_fill(f)
            open_fills.append(dict(r))
            if pnl.round_trips > n_before:
                first = open_fills[0]
                trades.append({"symbol": f.symbol, "fills": len(open_fills),
                               "entry_side": first["side"], "qty": first["qty"],
                               "entry_time": iso_utc(first["ts_ns"]), "exit_time": iso_utc(f.ts_ns),
                               "entry_price": price_of(first["price"], tick_size),
                               "exit_price": price_of(f.price, tick_size),
                               "entry_ticks": first["price"], "exit_ticks": f.price,
                               "net_usd": round(pnl.trip_results[-1], 2)})
                open_fills = []
        decisions = con.execute("SELECT allowed, rule FROM gate_decisions WHERE wall_ns >= ? AND wall_ns < ?",
                                (t0, t1)).fetchall()
        refusals: dict[str, int] = {}
        for d in decisions:
            if not d["allowed"]:
                refusals[d["rule"]] = refusals.get(d["rule"], 0) + 1
        kills = [{"time": iso_utc(r["wall_ns"]), **dict(r)} for r in con.execute(
            "SELECT wall_ns, state, trigger FROM kill_switch WHERE wall_ns >= ? AND wall_ns < ? ORDER BY id", (t0, t1))]
        patterns: dict[str, dict] = {}
        has_outcomes = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='signal_outcomes'").fetchone() is not None
        if has_outcomes:
            cols = {r[1] for r in con.execute("PRAGMA table_info(signal_outcomes)")}
            net_col = "o.net_usd" if "net_usd" in cols else "NULL AS net_usd"
            rows = con.execute(
                f"SELECT s.signal_id, s.reasons, o.first, o.move_5m, o.complete, {net_col}"
                " FROM signals s JOIN signal_outcomes o"
                " ON o.signal_id = s.signal_id AND o.wall_ns = (SELECT MAX(wall_ns) FROM signal_outcomes"
                " WHERE signal_id = s.signal_id) WHERE s.wall_ns >= ? AND s.wall_ns < ?", (t0, t1)).fetchall()
            for r in rows:
                try:
                    names = sorted({x["name"] for x in json.loads(r["reasons"])})
                except (ValueError, TypeError, KeyError):
                    names = ["?"]
                for n in names:
                    p = patterns.setdefault(n, {"signals": 0, "decided": 0, "target_first": 0, "stops": 0,
                                                "moves_5m": [], "nets": []})
                    p["signals"] += 1
                    if r["first"] in ("target", "stop"):
                        p["decided"] += 1
                        p["target_first"] += r["first"] == "target"
                        p["stops"] += r["first"] == "stop"
                        if r["net_usd"] is not None:
                            p["nets"].append(float(r["net_usd"]))
                    if r["move_5m"] is not None:
                        p["moves_5m"].append(float(r["move_5m"]))
        n_signals = con.execute("SELECT COUNT(*) FROM signals WHERE wall_ns >= ? AND wall_ns < ?",
                                (t0, t1)).fetchone()[0]
    finally:
        con.close()
    for p in patterns.values():
        mv = p.pop("moves_5m")
        nets = p.pop("nets")
        p["precision"] = round(p["target_first"] / p["decided"], 3) if p["decided"] else None
        p["mean_move_5m_ticks"] = round(sum(mv) / len(mv), 2) if mv else None
        p["net_usd"] = round(sum(nets), 2) if nets else None
        p["mean_net_usd"] = round(sum(nets) / len(nets), 2) if nets else None
    return {
        "day": day,
        "tick_size": float(tick_size),
        "fills": len(fills),
        "trades": trades,
        "pnl": {"gross_usd": round(pnl.realized_usd, 2), "commissions_usd": round(pnl.commissions_usd, 2),
                "net_usd": round(pnl.net_realized_usd, 2), "wins": pnl.wins, "losses": pnl.losses,
                "open_position": {s: b.qty for s, b in pnl.books.items() if b.qty}},
        "signals": n_signals,
        "patterns": patterns,
        "gate": {"decisions": len(decisions), "refusals": refusals},
        "kill_switch": kills,
    }


def _decimals(tick_size: float) -> int:
    """Decimals that show every multiple of ``tick_size`` exactly (0.25 -> 2, 0.1 -> 1, 1 -> 0)."""
    text = f"{float(tick_size):.9f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _short_time(iso: str | None) -> str:
    """An ISO 8601 UTC time cut to milliseconds for the text table (``2023-12-25T23:00:01.123Z``)."""
    return "-" if not iso else iso[:23] + "Z"


def format_report(r: dict) -> str:
    """Plain-text form of :func:`build_report`."""
    lines = [f"MIA Elite trading report for {r['day']}", ""]
    p = r["pnl"]
    lines.append(f"P&L: net {p['net_usd']:+.2f} USD (gross {p['gross_usd']:+.2f}, commissions {p['commissions_usd']:.2f});"
                 f" {len(r['trades'])} trades, {p['wins']} won, {p['losses']} lost; {r['fills']} fills")
    if p["open_position"]:
        lines.append("Still open: " + ", ".join(f"{s} {q:+d}" for s, q in p["open_position"].items()))
    if r["trades"]:
        dec = _decimals(r.get("tick_size", DEFAULT_TICK_SIZE))
        lines += ["", f"{'#':>3} {'symbol':<10} {'side':<5} {'qty':>4} {'entry time (UTC)':<24} {'entry':>10}"
                  f" {'exit time (UTC)':<24} {'exit':>10} {'net USD':>10}"]
        for i, t in enumerate(r["trades"], 1):
            lines.append(f"{i:>3} {t['symbol']:<10} {'LONG' if t['entry_side'] > 0 else 'SHORT':<5} {t['qty']:>4} "
                         f"{_short_time(t['entry_time']):<24} {t['entry_price']:>10.{dec}f} "
                         f"{_short_time(t['exit_time']):<24} {t['exit_price']:>10.{dec}f} {t['net_usd']:>+10.2f}")
    lines += ["", f"Signals: {r['signals']}"]
    if r["patterns"]:
        lines.append(f"{'pattern':<16} {'signals':>7} {'decided':>7} {'target':>6} {'stop':>5} {'precision':>9}"
                     f" {'move 5m':>8} {'net USD':>10}")
        for n, q in sorted(r["patterns"].items()):
            prec = "-" if q["precision"] is None else f"{q['precision']:.2f}"
            mv = "-" if q["mean_move_5m_ticks"] is None else f"{q['mean_move_5m_ticks']:+.1f}"
            net = "-" if q["net_usd"] is None else f"{q['net_usd']:+.2f}"
            lines.append(f"{n:<16} {q['signals']:>7} {q['decided']:>7} {q['target_first']:>6} {q['stops']:>5}"
                         f" {prec:>9} {mv:>8} {net:>10}")
        lines.append("(exits as the paper fill model booked each signal's bracket; net USD per contract"
                     " after commissions)")
    g = r["gate"]
    lines += ["", f"Risk gate: {g['decisions']} decisions, refusals: "
              + (", ".join(f"{k} x{v}" for k, v in sorted(g["refusals"].items())) or "none")]
    if r["kill_switch"]:
        lines.append("Kill switch: " + ", ".join(f"{_short_time(k['time'])} {k['state']} ({k['trigger']})"
                                                 for k in r["kill_switch"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        r = build_report(args.journal, args.date, args.timezone, args.tick_value, args.tick_size)
    except (FileNotFoundError, ValueError, sqlite3.Error) as exc:
        print(f"mia-elite report: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=1) if args.json else format_report(r))
    return 0
