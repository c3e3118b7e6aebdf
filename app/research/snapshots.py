"""Candidate snapshots: every step where the elite score was computed, with its features and outcome.

A *candidate* is a (step, side) where the analyzers saw a new pattern hit on that side, so the
elite gate scored it, whether or not a signal was emitted. :class:`SnapshotRecorder` is the
analyzers' ``candidate_hook`` (:class:`app.analysis.analyzers.Analyzers`, off by default); it
keeps one row per candidate and, at the end of the session, follows each candidate's bracket
(the one the signal would have had) forward on the session's trades with the engine's outcome
tracker (:func:`app.research.trades.follow`) and books it with
:func:`app.research.trades.trade_result`.

Storage (Parquet through pyarrow): ``DIR/date=YYYY-MM-DD/instrument=SYMBOL/part-*.parquet``
(UTC date of the candidate), append-only: every session run adds new files, written to a
temporary name and renamed, so a crash loses at most the current session's batch. Every row
carries ``schema_version`` (:data:`SCHEMA_VERSION`), also in the file's metadata.

Columns (units): ``ts`` (int64 ns), ``date``, ``instrument``, ``profile``, ``session``, ``side``
(+1/-1), ``score`` and ``c_vix`` / ``c_dom`` / ``c_regime`` (0..1), ``p_<pattern>`` (strongest hit
of that pattern on the side in the confluence window, 0..1), ``n_patterns``, ``opposite``
(noisy-OR of the other side), ``vix_regime`` (0..4, -1 none), ``vix_level``, ``spread_ticks``,
``depth_bid10`` / ``depth_ask10`` (resting contracts within 10 ticks of the best), ``imbalance``
(-1..1), ``flow_ratio`` (delta / volume), ``trend_dir``, ``phase`` (session phase), ``tod_min``
(minutes since the session open, or since 00:00 UTC without a calendar), ``atr_ticks``,
``vol_ticks`` (standard deviation of the last 300 trade-to-trade price changes, ticks),
``entry`` / ``stop`` / ``target`` (ticks), ``emitted`` (a signal was emitted), ``signal_id``
(-1 none), the pair's relation in force at the step (issue 17; ``docs/relation.md``;
:data:`app.analysis.analyzers.RELATION_FEATURES`): ``rel_corr`` (rolling 1-s return
correlation), ``rel_rs`` (relative strength, log ratio since the session open), ``rel_z``
(divergence statistic), ``rel_flag`` (-1 / 0 / +1), all float64 and NaN when the instrument is
in no pair (files written before these columns read back with them missing), then the outcome: ``first`` (``target`` / ``stop`` / ``""``), ``target_first``,
``decided``, ``exit_ticks``, ``net_usd`` (one contract, after commission).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from pathlib import Path

import numpy as np

from app.analysis import advanced as adv
from app.analysis import battle_navale as bn
from app.analysis import dom
from app.analysis.analyzers import RELATION_FEATURES
from app.analysis.frame import Signal
from app.analysis.sizing import average_range, bracket

#: version of the row layout; readers refuse newer files
SCHEMA_VERSION = 1
#: every intraday pattern name, in a fixed order (the ``p_<name>`` columns)
PATTERNS = tuple(dict.fromkeys([*dom.DOM_PATTERNS, *(n for n, _ in bn.BN_SLOTS), *adv.ADV_TRADE_ROWS,
                                "head_fake", "transition"]))
#: numeric feature columns a model uses (``learn``), in order; the relation columns
#: (:data:`app.analysis.analyzers.RELATION_FEATURES`) follow them when the rows have values
FEATURES = (("side", "score", "c_vix", "c_dom", "c_regime") + tuple(f"p_{n}" for n in PATTERNS)
            + ("n_patterns", "opposite", "vix_regime", "spread_ticks", "depth_bid10", "depth_ask10",
               "imbalance", "flow_ratio", "trend_dir", "tod_min", "atr_ticks", "vol_ticks"))
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SnapshotRecorder:
    """Collects candidate rows of one session run and writes them at :meth:`close`.

    Parameters
    ----------
    folder : str or Path
        Root of the partitioned data set.
    instrument : Instrument
    profile : str
    session : str
        Session id (``ESH4 2023-12-26``).
    commission_usd : float
        Per contract per side, for ``net_usd``.

    Attributes
    ----------
    rows : int
        Rows written by :meth:`close` (0 before).
    """

    def __init__(self, folder, instrument, profile: str, session: str, commission_usd: float = 2.25):
        self.folder = Path(folder)
        self.instrument = instrument
        self.profile = str(profile)
        self.session = str(session)
        self.commission_usd = float(commission_usd)
        self._rows: list[dict] = []
        self.rows = 0
        self._row_ticks = 1  # exchange ticks per analysis row (the engine's price grouping)
        self._outcomes = None  # the profile's [outcomes] section, from the analyzers

    # -------------------------------------------------------------------------- the hook
    def on_candidates(self, ana, view, window, vs, fo, new_signals) -> None:
        """The analyzers' ``candidate_hook``: one row per side with a new hit this step
        (:func:`candidate_rows`)."""
        self._row_ticks = row_ticks_of(ana, self.instrument)
        if self._outcomes is None:
            self._outcomes = dict(ana.profile.section("outcomes"))
        self._rows.extend(candidate_rows(ana, view, window, vs, fo, new_signals, self.instrument.symbol,
                                         self.profile, self.session))

    # -------------------------------------------------------------------------- writing
    def close(self, events: np.ndarray) -> list[Path]:
        """Book every candidate's outcome on the session's events (the paper fill model, as the
        engine books its signals) and write the rows.

        Parameters
        ----------
        events : np.ndarray of EVENT_DTYPE, shape (N,), time order
            The session's market events (exchange ticks).

        Returns
        -------
        list of Path
            The files written (one per UTC date); none without candidates.
        """
        from app.research.trades import follow

        rows = self._rows
        self._rows = []
        if not rows:
            return []
        sigs = [candidate_signal(r, self._row_ticks, i + 1) for i, r in enumerate(rows)]
        oc_ = self._outcomes or {}
        oc = follow(sigs, events, self.instrument, float(oc_.get("decision_delay_s", 2.0)),
                    int(oc_.get("stop_slippage_ticks", 1)), float(oc_.get("commission_per_contract_usd",
                                                                           self.commission_usd)))
        for s, r in zip(sigs, rows):
            book_row(r, s, oc.get(s.id), self.instrument.tick_value, self.commission_usd)
        out = write_partitioned(self.folder, self.instrument.symbol, rows, f"{self.profile}-{self.session}")
        self.rows = len(rows)
        return out


def candidate_signal(row: dict, row_ticks: int, sid: int) -> Signal:
    """The bracket a candidate row would have traded, as a :class:`Signal` in exchange ticks
    (``app.market.grouping.bracket_to_ticks`` of the row's entry / stop / target), id ``sid``."""
    from app.market.grouping import bracket_to_ticks

    e, st, tg = bracket_to_ticks(int(row["side"]), int(row["entry"]), int(row["stop"]), int(row["target"]),
                                 int(row_ticks))
    return Signal(id=int(sid), ts=int(row["ts"]), symbol=str(row["instrument"]), side=int(row["side"]),
                  score=float(row["score"]), components=(), reasons=(), entry=e, stop=st, target=tg, size=1)


def book_row(row: dict, sig: Signal, outcome, tick_value: float, commission_usd: float) -> None:
    """Fill in a row's outcome columns (``first``, ``target_first``, ``decided``, ``exit_ticks``,
    ``net_usd`` for one contract) from its bracket's outcome, via
    :func:`app.research.trades.trade_result`."""
    from app.research.trades import trade_result

    tr = trade_result(sig, outcome, tick_value, commission_usd)
    row["first"] = (outcome.first or "") if outcome is not None else ""
    row["target_first"] = bool(tr.target_first)
    row["decided"] = bool(tr.decided)
    row["exit_ticks"] = float(tr.ticks)
    row["net_usd"] = float(tr.net_usd)


def write_partitioned(folder, symbol: str, rows: list[dict], tag: str) -> list[Path]:
    """Write booked ``rows`` as one new file per UTC date (:func:`write_rows`); returns the paths."""
    out = []
    by_date: dict[str, list[dict]] = {}
    for r in rows:
        by_date.setdefault(r["date"], []).append(r)
    for date, rs in sorted(by_date.items()):
        out.append(write_rows(folder, date, symbol, rs, tag))
    return out


def row_ticks_of(ana, instrument) -> int:
    """Exchange ticks per analysis row of ``ana`` (the engine's price grouping) for ``instrument``."""
    return max(1, int(round(float(ana.instrument.tick_size) / float(instrument.tick_size))))


def candidate_rows(ana, view, window, vs, fo, new_signals, symbol: str, profile: str, session: str) -> list[dict]:
    """The feature rows of one candidate step: one per side with a new hit (columns: module docstring).

    Parameters
    ----------
    ana : app.analysis.analyzers.Analyzers
        The analyzers calling their ``candidate_hook`` (gate, profile, trend state).
    view, window, vs, fo, new_signals
        The hook's arguments: the market view, the confluence window (PatternHit list), the
        VixState, the order-flow figures, the signals emitted this step.
    symbol, profile, session : str
        Written into every row.

    Returns
    -------
    list of dict
        Rows without the outcome columns; prices in the analyzers' rows (ticks for ES).
    """
    ts = int(view.ts)
    out: list[dict] = []
    sides = sorted({h.side for h in window if h.ts == ts and h.side != 0}, reverse=True)
    if not sides:
        return out
    vol = fo[1] + fo[2]
    flow_ratio = float(fo[0] / vol) if vol > 0 else 0.0
    both = ana.gate.score_both(vs, window, flow_ratio, fo[5], ana._trend_dir)
    bb, ba, base = int(view.best_bid), int(view.best_ask), int(view.base)
    rows_n = view.bid.shape[0]
    d_bid = float(view.bid[max(0, bb - base - 9): max(0, bb - base + 1)].sum()) if 0 <= bb - base < rows_n else 0.0
    d_ask = float(view.ask[max(0, ba - base): max(0, ba - base + 10)].sum()) if 0 <= ba - base < rows_n else 0.0
    b = view.bars
    closed = b[:-1] if b.shape[0] > 1 else b
    atr = average_range(closed["high"], closed["low"], int(ana.elite_sec["atr_bars"]))
    px = view.trades["price"][-301:]
    vol_t = float(np.std(np.diff(px.astype(np.float64)))) if px.shape[0] > 2 else 0.0
    sess0 = int(getattr(view, "session_start_ns", -1))
    tod = (ts - sess0) / 6e10 if sess0 >= 0 else (ts % 86_400_000_000_000) / 6e10
    emitted = {s.side: s.id for s in new_signals}
    rel = getattr(ana, "relation_features", None) or dict.fromkeys(RELATION_FEATURES, float("nan"))
    for side in sides:
        sc, comps, reasons = both[side]
        strengths = {h.name: float(h.strength) for h in reversed(reasons)}
        _, opp_comps, opp_reasons = both[-side]
        prod = 1.0
        for h in opp_reasons:
            prod *= 1.0 - min(1.0, h.strength)
        entry = ba if side > 0 else bb
        if entry < 0:
            if view.trades.shape[0] == 0:
                continue
            entry = int(view.trades["price"][-1])
        levels = [r.price for r in reasons if r.family in ("dom", "battle_navale") and r.price > 0]
        stop, target = bracket(side, int(entry), atr, levels, ana.elite_sec)
        row = {
            "schema_version": SCHEMA_VERSION, "ts": ts,
            "date": _dt.datetime.fromtimestamp(ts / 1e9, _dt.timezone.utc).date().isoformat(),
            "instrument": symbol, "profile": profile, "session": session,
            "side": int(side), "score": float(sc), "c_vix": float(comps[0][1]), "c_dom": float(comps[1][1]),
            "c_regime": float(comps[2][1]),
            **{f"p_{n}": strengths.get(n, 0.0) for n in PATTERNS},
            "n_patterns": len(reasons), "opposite": 1.0 - prod,
            "vix_regime": int(vs.regime_index) if vs is not None else -1,
            "vix_level": float(vs.level) if vs is not None else float("nan"),
            "spread_ticks": float(ba - bb) if bb >= 0 and ba >= 0 else float("nan"),
            "depth_bid10": d_bid, "depth_ask10": d_ask, "imbalance": float(fo[5]), "flow_ratio": flow_ratio,
            "trend_dir": int(ana._trend_dir), "phase": str(getattr(view, "session_phase", "") or ""),
            "tod_min": float(tod), "atr_ticks": float(atr), "vol_ticks": vol_t,
            "entry": int(entry), "stop": int(stop), "target": int(target),
            "emitted": side in emitted, "signal_id": int(emitted.get(side, -1)),
            **rel,
        }
        out.append(row)
    return out


def write_rows(folder, date: str, symbol: str, rows: list[dict], tag: str = "") -> Path:
    """Write ``rows`` (dicts with the same keys) as one new Parquet file of the partition
    ``date=<date>/instrument=<symbol>`` under ``folder``; returns its path.

    Written to ``*.tmp`` and renamed (``os.replace``): readers never see a partial file.

    Raises
    ------
    ImportError
        pyarrow is not installed.
    OSError
        The folder cannot be written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = Path(folder) / f"date={date}" / f"instrument={_SAFE.sub('_', symbol)}"
    part.mkdir(parents=True, exist_ok=True)
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    table = pa.table(cols).replace_schema_metadata({"mia.snapshot.schema_version": str(SCHEMA_VERSION)})
    name = f"part-{_SAFE.sub('_', tag)}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = part / (name + ".tmp")
    pq.write_table(table, tmp)
    final = part / name
    os.replace(tmp, final)
    return final


def snapshot_files(paths) -> list[Path]:
    """Every ``*.parquet`` under ``paths`` (files or folders), sorted.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"snapshots not found: {p}")
        out.extend(sorted(p.rglob("*.parquet")) if p.is_dir() else [p])
    return out


def read_snapshots(paths) -> dict[str, np.ndarray]:
    """Read every snapshot file under ``paths`` into columns (numpy arrays of equal length N).

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        A file is not a snapshot file or has a newer schema than :data:`SCHEMA_VERSION`
        (the message names the file).
    ImportError
        pyarrow is not installed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in snapshot_files(paths):
        try:
            t = pq.ParquetFile(f).read()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ValueError(f"{f}: not a readable Parquet file ({exc})") from None
        if "schema_version" not in t.column_names:
            raise ValueError(f"{f}: not a MIA snapshot file (no schema_version column)")
        v = max(t.column("schema_version").to_pylist() or [0])
        if v > SCHEMA_VERSION:
            raise ValueError(f"{f}: snapshot schema {v} is newer than this program's {SCHEMA_VERSION}")
        tables.append(t)
    if not tables:
        return {}
    t = pa.concat_tables(tables, promote_options="default")
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}
