"""Fixtures for the market-model tests: the real ES hour and the real Binance BTCUSDT capture."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from app.feeds.events import (
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
    Instrument,
    empty,
)
from app.feeds.recording import Recording


@pytest.fixture(scope="session")
def es_recording():
    """The shipped real CME ES MBO hour as price-level events (helper B's converter)."""
    from app.feeds.samples import load_default_sample

    return load_default_sample(use_cache=False)


def _quick_binance(path) -> Recording:
    """Minimal reader for the hftbacktest Binance capture (used only until app.feeds.binance
    exists): REST snapshot -> clear + levels; depth diffs after it (qty 0 = delete); trades
    (``m`` true = buyer is maker = the bid was hit). Time = the capture's receive ns."""
    rows = []
    snap_id = None
    with gzip.open(path, "rt") as fh:
        for line in fh:
            t, js = line.split(" ", 1)
            t = int(t)
            d = json.loads(js)
            if "lastUpdateId" in d:
                snap_id = d["lastUpdateId"]
                rows.append((t, 0, 0.0, KIND_DEPTH, 0, OP_CLEAR, FLAG_SNAPSHOT))
                for side, key in ((SIDE_BID, "bids"), (SIDE_ASK, "asks")):
                    for p, q in d[key]:
                        rows.append((t, round(float(p) * 10), float(q), KIND_DEPTH, side, OP_SET, FLAG_SNAPSHOT))
                rows[-1] = rows[-1][:6] + (FLAG_SNAPSHOT | FLAG_BATCH_END,)
                continue
            data = d.get("data", {})
            e = data.get("e")
            if e == "depthUpdate":
                if snap_id is None or data["u"] < snap_id:
                    continue
                n0 = len(rows)
                for side, key in ((SIDE_BID, "b"), (SIDE_ASK, "a")):
                    for p, q in data[key]:
                        q = float(q)
                        rows.append((t, round(float(p) * 10), q, KIND_DEPTH, side,
                                     OP_SET if q > 0 else OP_DELETE, 0))
                if len(rows) > n0:
                    rows[-1] = rows[-1][:6] + (FLAG_BATCH_END,)
            elif e == "trade":
                rows.append((t, round(float(data["p"]) * 10), float(data["q"]), KIND_TRADE,
                             SIDE_BID if data["m"] else SIDE_ASK, 0, 0))
    ev = empty(len(rows))
    arr = np.array(rows, dtype=[("ts", "i8"), ("price", "i8"), ("size", "f8"), ("kind", "u1"),
                                ("side", "u1"), ("op", "u1"), ("flags", "u1")])
    for name in arr.dtype.names:
        ev[name] = arr[name]
    return Recording(Instrument("BTCUSDT", 0.1, 0.1), ev, source="btcusdt_20240808.gz (test reader)")


@pytest.fixture(scope="session")
def btc_recording(shared_data):
    """The real Binance BTCUSDT capture (helper F's reader when present)."""
    path = shared_data / "crypto" / "btcusdt_20240808.gz"
    try:
        from app.feeds.binance import read_binance_gz
    except ImportError:
        return _quick_binance(path)
    return read_binance_gz(path)


@pytest.fixture(scope="session")
def cut():
    """``cut(events, every)``: split at every ``every``-th batch end (FLAG_BATCH_END)."""

    def _cut(events: np.ndarray, every: int) -> list[np.ndarray]:
        ends = np.flatnonzero(events["flags"] & FLAG_BATCH_END) + 1
        return [c for c in np.split(events, ends[::every]) if len(c)]

    return _cut
