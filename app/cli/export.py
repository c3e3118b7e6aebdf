"""``mia-elite export``: write the trading journal to Parquet or CSV (one file per table).

Columns keep the journal's names and SQLite's declared types (INTEGER -> int64, REAL -> float64,
TEXT -> string; NULL stays null), with two changes for people reading the file:

* prices are in price units: each price column of :data:`PRICE_COLUMNS` holds ``ticks x
  --tick-size`` (float64) and the journal's ticks follow it as ``<column>_ticks``;
* every time ``<name>_ns`` (int64 ns since the UNIX epoch, UTC) is preceded by ``<name>_time``,
  the same instant in ISO 8601 UTC with nanoseconds (``2023-12-25T23:00:00.123456789Z``).

Distances (a signal outcome's moves, MFE and MAE) stay in ticks; money is in USD.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sqlite3
import sys
from pathlib import Path

from app.trading import journal as J

_TYPES = {"INTEGER": "int64", "REAL": "float64", "TEXT": "string"}

#: table -> its columns holding prices in ticks (``app/trading/journal.py``)
PRICE_COLUMNS = {
    "signals": ("entry", "stop", "target"),
    "tickets": ("entry", "stop", "target", "ref_price"),
    "orders": ("price", "price2"),
    "order_updates": ("avg_fill_price",),
    "fills": ("price",),
    "positions": ("avg_price",),
}

#: ES's tick (price units), the default of ``--tick-size``
DEFAULT_TICK_SIZE = 0.25


def iso_utc(ns: int | None) -> str | None:
    """``ns`` (int, ns since the UNIX epoch, UTC) as ISO 8601 UTC with nanoseconds, e.g.
    ``2023-12-25T23:00:00.123456789Z``; None stays None."""
    if ns is None:
        return None
    s, frac = divmod(int(ns), 1_000_000_000)
    t = dt.datetime.fromtimestamp(s, dt.timezone.utc)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def price_of(ticks, tick_size: float) -> float | None:
    """``ticks x tick_size`` rounded to 10 decimals (no float noise: 19239 x 0.25 = 4809.75); None stays None."""
    return None if ticks is None else round(float(ticks) * tick_size, 10)


def _readable(table: str, cols: list[str], types: list[str], rows: list, tick_size: float):
    """Columns, types and rows with prices in price units (ticks after them) and ISO times
    before every ``*_ns`` column (see the module docstring)."""
    prices = set(PRICE_COLUMNS.get(table, ()))
    plan = []  # (name, type, function of the row)
    for i, (c, ty) in enumerate(zip(cols, types)):
        if c.endswith("_ns"):
            plan.append((c[:-3] + "_time", "string", lambda r, i=i: iso_utc(r[i])))
        if c in prices:
            plan.append((c, "float64", lambda r, i=i: price_of(r[i], tick_size)))
            plan.append((c + "_ticks", ty, lambda r, i=i: r[i]))
        else:
            plan.append((c, ty, lambda r, i=i: r[i]))
    out_rows = [[f(r) for _n, _t, f in plan] for r in rows]
    return [n for n, _t, _f in plan], [t for _n, t, _f in plan], out_rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="output format (default parquet)")
    p.add_argument("--out", default=".", help="output folder (created if needed; default: current folder)")
    p.add_argument("--journal", default=None, help="journal file (default: the user data folder's journal)")
    p.add_argument("--tables", nargs="*", default=None, help=f"tables to export (default all: {', '.join(J.TABLES)})")
    p.add_argument("--since", default=None, help="only rows journaled on or after this date (YYYY-MM-DD, UTC)")
    p.add_argument("--tick-size", type=float, default=DEFAULT_TICK_SIZE,
                   help=f"price units per tick of the journal's prices (default {DEFAULT_TICK_SIZE:g}, ES)")


def _open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"journal not found: {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def export(journal_path: str | Path | None, out_dir: str | Path, fmt: str = "parquet",
           tables=None, since_ns: int | None = None,
           tick_size: float = DEFAULT_TICK_SIZE) -> dict[str, tuple[Path, int]]:
    """Export journal tables; returns ``{table: (file, rows)}``.

    Parameters
    ----------
    journal_path : path or None
        Default :func:`app.trading.journal.default_path`.
    out_dir : path
    fmt : ``"parquet"`` or ``"csv"``
    tables : iterable of str, optional
        Subset of :data:`app.trading.journal.TABLES`.
    since_ns : int, optional
        Keep rows with ``wall_ns >= since_ns``.
    tick_size : float
        Price units per tick of the journal's prices (default 0.25, ES).

    Raises
    ------
    FileNotFoundError
        The journal does not exist.
    ValueError
        Unknown table or format, or a tick size that is not positive.
    """
    if not float(tick_size) > 0:
        raise ValueError(f"tick size must be > 0 (price units per tick), got {tick_size!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, got {fmt!r}")
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:  # the frozen bundle leaves pyarrow out
            raise ValueError(f"Parquet export needs pyarrow ({exc}); use --format csv") from exc
    path = Path(journal_path) if journal_path else J.default_path()
    names = list(tables) if tables else list(J.TABLES)
    unknown = [t for t in names if t not in J.TABLES]
    if unknown:
        raise ValueError(f"unknown journal table(s) {unknown}; known: {', '.join(J.TABLES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = _open_readonly(path)
    result = {}
    try:
        existing = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for t in names:
            if t not in existing:
                continue  # an older schema without this table
            info = con.execute(f"PRAGMA table_info({t})").fetchall()
            cols = [c[1] for c in info]
            types = [_TYPES.get(str(c[2]).upper(), "string") for c in info]
            sql = f"SELECT * FROM {t}"
            params: tuple = ()
            if since_ns is not None and "wall_ns" in cols:
                sql += " WHERE wall_ns >= ?"
                params = (int(since_ns),)
            rows = con.execute(sql, params).fetchall()
            cols, types, rows = _readable(t, cols, types, rows, float(tick_size))
            f = out / f"{t}.{fmt}"
            if fmt == "parquet":
                arrays = [pa.array([r[i] for r in rows], type=getattr(pa, ty)()) for i, ty in enumerate(types)]
                pq.write_table(pa.Table.from_arrays(arrays, names=cols), f)
            else:  # plain csv: a header row, NULL as an empty field
                with open(f, "w", newline="", encoding="utf-8") as fh:
                    w = csv.writer(fh)
                    w.writerow(cols)
                    w.writerows(["" if v is None else v for v in r] for r in rows)
            result[t] = (f, len(rows))
    finally:
        con.close()
    return result


def run(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            d = dt.date.fromisoformat(args.since)
        except ValueError:
            print(f"mia-elite export: --since must be YYYY-MM-DD, got {args.since!r}", file=sys.stderr)
            return 2
        since = int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp() * 1e9)
    try:
        res = export(args.journal, args.out, args.format, args.tables, since, args.tick_size)
    except (FileNotFoundError, ValueError, sqlite3.Error) as exc:
        print(f"mia-elite export: {exc}", file=sys.stderr)
        return 1
    for t, (f, n) in res.items():
        print(f"{t}: {n} rows -> {f}")
    return 0
