"""Sierra Chart daily data files (``Data/<symbol>.dly``): text/CSV daily bars.

Sierra Chart stores Historical Daily data as Text/CSV (Sierra Chart "Text/CSV Data Format" and
"Chart Data and Chart Data Files": "Historical daily data files have a dly file extension"; "The
first line is always assumed to be the header"; fields are separated by a comma, tab or
semicolon; CRLF or LF line ends; data earliest to latest). The usual header is
``Date, Open, High, Low, Close, Volume, OpenInterest`` with dates ``YYYY/MM/DD`` (``YYYY-MM-DD``
and ``MM/DD/YYYY`` are accepted too). Columns are found by header name (case-insensitive), so
files with extra or missing optional columns (Volume, OpenInterest) still read.

Output: a structured array of :data:`DLY_DTYPE` (one row per day, prices as float64 in the
file's units: daily bars feed the VIX analyzers, which work in index points, not ticks).
Malformed lines are counted (``stats['bad_lines']``), logged (first 5) and skipped.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: One daily bar. ``ts``: ns UTC of the day's date at 00:00.
DLY_DTYPE = np.dtype(
    [
        ("ts", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("volume", "<f8"),
        ("open_interest", "<f8"),
    ]
)

_SPLIT = re.compile(r"[,;\t]")
_EPOCH = _dt.date(1970, 1, 1)


class DlyError(ValueError):
    """The file is not a Sierra Chart daily text file (message names the missing column)."""


def _parse_date(s: str) -> _dt.date:
    s = s.strip()
    if "/" in s:
        a, b, c = s.split("/")
        if len(a) == 4:
            return _dt.date(int(a), int(b), int(c))
        return _dt.date(int(c), int(a), int(b))  # MM/DD/YYYY
    if "-" in s:
        return _dt.date.fromisoformat(s)
    if len(s) == 8 and s.isdigit():
        return _dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    raise ValueError(f"unknown date format {s!r}")


def parse_dly(text: str, name: str = "<dly>", stats: dict | None = None) -> np.ndarray:
    """Parse ``.dly`` text (see module docstring).

    Returns
    -------
    np.ndarray of DLY_DTYPE, shape (days,)

    Raises
    ------
    DlyError
        No header line, or a required column (Date, Open, High, Low, Close) missing.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DlyError(f"{name}: empty file")
    head = [h.strip().lower().replace(" ", "") for h in _SPLIT.split(lines[0])]
    alias = {"last": "close", "vol": "volume", "oi": "openinterest"}
    head = [alias.get(h, h) for h in head]
    cols = {}
    for key in ("date", "open", "high", "low", "close"):
        if key not in head:
            raise DlyError(f"{name}: header has no {key.capitalize()!r} column: {lines[0]!r}")
        cols[key] = head.index(key)
    for key in ("volume", "openinterest"):
        if key in head:
            cols[key] = head.index(key)
    st = stats if stats is not None else {}
    st.setdefault("bad_lines", 0)
    rows = []
    for i, ln in enumerate(lines[1:], 2):
        parts = _SPLIT.split(ln)
        try:
            d = _parse_date(parts[cols["date"]])
            vals = [float(parts[cols[k]]) for k in ("open", "high", "low", "close")]
            vol = float(parts[cols["volume"]]) if "volume" in cols and len(parts) > cols["volume"] else 0.0
            oi = (float(parts[cols["openinterest"]])
                  if "openinterest" in cols and len(parts) > cols["openinterest"] else 0.0)
        except (ValueError, IndexError) as exc:
            st["bad_lines"] += 1
            if st["bad_lines"] <= 5:
                log.warning("%s:%d: skipped (%s)", name, i, exc)
            continue
        rows.append(((d - _EPOCH).days * 86_400_000_000_000, *vals, vol, oi))
    out = np.array(rows, dtype=DLY_DTYPE) if rows else np.zeros(0, dtype=DLY_DTYPE)
    st["rows"] = len(out)
    return out


def read_dly(path: str | os.PathLike, stats: dict | None = None) -> np.ndarray:
    """Read a Sierra Chart ``.dly`` file (see :func:`parse_dly`).

    Raises
    ------
    FileNotFoundError, DlyError
    """
    path = Path(path)
    return parse_dly(path.read_text(encoding="utf-8", errors="replace"), str(path), stats)


def write_dly(path: str | os.PathLike, bars: np.ndarray) -> Path:
    """Write daily bars (:data:`DLY_DTYPE`) in Sierra Chart's ``.dly`` text layout."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="\r\n") as f:
        f.write("Date, Open, High, Low, Close, Volume, OpenInterest\n")
        for r in bars:
            d = _EPOCH + _dt.timedelta(days=int(r["ts"] // 86_400_000_000_000))
            f.write(f"{d.year:04d}/{d.month:02d}/{d.day:02d}, {r['open']:g}, {r['high']:g}, "
                    f"{r['low']:g}, {r['close']:g}, {r['volume']:g}, {r['open_interest']:g}\n")
    return path
