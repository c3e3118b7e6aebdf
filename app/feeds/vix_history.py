"""Daily VIX (and VIX3M) history: CBOE CSV files, and a hook for Sierra Chart ``.dly`` files.

CBOE publishes ``VIX_History.csv`` and ``VIX3M_History.csv`` with the header
``DATE,OPEN,HIGH,LOW,CLOSE`` and dates ``MM/DD/YYYY`` (ISO ``YYYY-MM-DD`` is accepted too).
The app ships copies under ``resources/vix/`` (see ``PROVENANCE.md`` there); they are the
default.

Sierra Chart keeps daily bars in ``Data/<symbol>.dly``; :func:`read_dly_closes` reads them with
the Sierra file module's :func:`app.feeds.dly.read_dly`. Readers are looked up by file suffix in
:data:`DAILY_READERS` (suffix -> ``fn(path) -> (dates, closes)``), so another format plugs in
the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app.paths import resource_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VixHistory:
    """Daily closes of VIX with VIX3M aligned on the same dates.

    Attributes
    ----------
    dates : np.ndarray, datetime64[D], shape (n,)
        Session dates, strictly increasing.
    close : np.ndarray, float64, shape (n,)
        VIX close, index points.
    vix3m : np.ndarray, float64, shape (n,)
        VIX3M close on the same date, ``nan`` where unknown.
    source : str
        Where it came from (for display).
    """

    dates: np.ndarray
    close: np.ndarray
    vix3m: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.dates.shape[0])

    @classmethod
    def from_arrays(cls, dates, close, vix3m_dates=None, vix3m_close=None, source: str = "") -> "VixHistory":
        """Build from columns (any order; duplicates keep the last row).

        Parameters
        ----------
        dates : array_like of datetime64[D] or ISO strings, shape (n,)
        close : array_like of float, shape (n,)
        vix3m_dates, vix3m_close : array_like, optional
            VIX3M closes, aligned onto ``dates`` by exact date.

        Raises
        ------
        ValueError
            Different lengths, no rows, or a non-positive close.
        """
        d = np.asarray(dates, dtype="datetime64[D]")
        c = np.asarray(close, dtype=np.float64)
        if d.shape != c.shape or d.ndim != 1:
            raise ValueError(f"dates {d.shape} and close {c.shape} must be 1-D of equal length")
        if d.size == 0:
            raise ValueError("VIX history is empty")
        if not np.all(np.isfinite(c)) or np.any(c <= 0):
            raise ValueError("VIX closes must be finite and > 0")
        d, c = _sort_unique(d, c)
        m = np.full(d.shape, np.nan)
        if vix3m_dates is not None and vix3m_close is not None:
            d3, c3 = _sort_unique(np.asarray(vix3m_dates, dtype="datetime64[D]"), np.asarray(vix3m_close, dtype=np.float64))
            idx = np.searchsorted(d3, d)
            ok = idx < d3.size
            ok[ok] &= d3[idx[ok]] == d[ok]
            m[ok] = c3[idx[ok]]
        return cls(dates=d, close=c, vix3m=m, source=source)

    def index_before(self, ts_ns: int) -> int:
        """Index of the last session whose date is strictly before the UTC date of ``ts_ns``.

        -1 when there is none. (A session's close is taken as known from the next calendar day;
        intraday levels come through :meth:`app.analysis.vix.VixAnalyzer.state` ``live_level``.)
        """
        day = np.datetime64(int(ts_ns), "ns").astype("datetime64[D]")
        return int(np.searchsorted(self.dates, day, side="left")) - 1


def _sort_unique(d: np.ndarray, c: np.ndarray):
    order = np.argsort(d, kind="stable")
    d, c = d[order], c[order]
    keep = np.ones(d.shape, bool)
    keep[:-1] = d[1:] != d[:-1]  # keep the last of equal dates
    return d[keep], c[keep]


def read_cboe_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CBOE history CSV (``DATE,...,CLOSE``) into ``(dates datetime64[D], closes float64)``.

    The close column is the one named ``CLOSE`` (or the last column, e.g. ``DATE,VVIX``).
    Malformed rows are counted, logged once, and skipped.

    Raises
    ------
    FileNotFoundError
    ValueError
        No header with ``DATE`` or no valid row.
    """
    p = Path(path)
    dates: list[str] = []
    closes: list[float] = []
    bad = 0
    with open(p, "r", encoding="utf-8-sig", newline="") as fh:
        header = fh.readline().strip().split(",")
        cols = [h.strip().upper() for h in header]
        if not cols or cols[0] != "DATE":
            raise ValueError(f"{p}: expected a header starting with DATE, got {header!r}")
        ci = cols.index("CLOSE") if "CLOSE" in cols else len(cols) - 1
        for line in fh:
            parts = line.strip().split(",")
            if len(parts) <= ci or not parts[0]:
                if line.strip():
                    bad += 1
                continue
            try:
                iso = _iso(parts[0].strip())
                v = float(parts[ci])
                np.datetime64(iso, "D")
            except ValueError:
                bad += 1
                continue
            if not np.isfinite(v) or v <= 0:
                bad += 1
                continue
            dates.append(iso)
            closes.append(v)
    if bad:
        log.warning("%s: skipped %d malformed rows", p, bad)
    if not dates:
        raise ValueError(f"{p}: no valid rows")
    return np.array(dates, dtype="datetime64[D]"), np.array(closes, dtype=np.float64)


def _iso(s: str) -> str:
    if "/" in s:
        m, d, y = s.split("/")
        return f"{int(y):04d}-{int(m):02d}-{int(d):02d}"
    return s


def read_dly_closes(path) -> tuple[np.ndarray, np.ndarray]:
    """Dates and closes of a Sierra Chart ``.dly`` daily file (via :func:`app.feeds.dly.read_dly`).

    Raises
    ------
    FileNotFoundError
    ValueError
        Unreadable file or no valid row (names the file).
    """
    from app.feeds.dly import read_dly

    bars = read_dly(path)
    ok = np.isfinite(bars["close"]) & (bars["close"] > 0)
    if not ok.any():
        raise ValueError(f"{path}: no valid daily bar")
    if (~ok).any():
        log.warning("%s: skipped %d bars without a positive close", path, int((~ok).sum()))
    bars = bars[ok]
    return bars["ts"].astype("datetime64[ns]").astype("datetime64[D]"), bars["close"].astype(np.float64)


#: Daily-history readers by lower-case file suffix: ``fn(path) -> (dates datetime64[D], closes float64)``.
DAILY_READERS: dict[str, Callable] = {".csv": read_cboe_csv, ".dly": read_dly_closes}


def _read_daily(path):
    suf = Path(path).suffix.lower()
    fn = DAILY_READERS.get(suf)
    if fn is None:
        raise ValueError(f"{path}: unknown daily-history format {suf!r} (known: {', '.join(DAILY_READERS)})")
    return fn(path)


def default_vix_paths() -> tuple[Path, Path]:
    """The shipped CBOE files ``resources/vix/VIX_History.csv`` and ``VIX3M_History.csv``."""
    return resource_path("vix", "VIX_History.csv"), resource_path("vix", "VIX3M_History.csv")


def load_vix_history(vix_csv=None, vix3m_csv=None) -> VixHistory:
    """Load the daily VIX history (default: the shipped CBOE files).

    Parameters
    ----------
    vix_csv : path, optional
        CBOE ``VIX_History.csv`` or a Sierra Chart ``.dly`` (once a reader is registered).
        ``None`` = the shipped copy, and then ``vix3m_csv`` defaults to the shipped VIX3M.
    vix3m_csv : path, optional
        VIX3M history for the term structure; without it ``term_structure`` is ``nan``.

    Returns
    -------
    VixHistory

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file or no valid row (the message names the file).
    """
    if vix_csv is None:
        vix_csv, d3 = default_vix_paths()
        if vix3m_csv is None:
            vix3m_csv = d3
    d, c = _read_daily(vix_csv)
    d3 = c3 = None
    if vix3m_csv is not None:
        d3, c3 = _read_daily(vix3m_csv)
    return VixHistory.from_arrays(d, c, d3, c3, source=str(vix_csv))
