"""The Binance reader equals a plain reference on both real captures (BTCUSDT and ETHUSDT, event
for event), and its fast paths (msgspec decoding, level lists unzipped in runs) behave exactly as
the plain ``json.loads`` / ``for p, q in levels`` code they replace, malformed input included."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from app.core.events import (
    EVENT_DTYPE,
    FLAG_BATCH_END,
    FLAG_SNAPSHOT,
    KIND_DEPTH,
    KIND_QUOTE,
    KIND_TRADE,
    OP_CLEAR,
    OP_DELETE,
    OP_SET,
    SIDE_ASK,
    SIDE_BID,
)
from app.feeds import binance
from app.feeds.binance import read_binance_gz


def _reference_events(path, tick: float) -> tuple[np.ndarray, dict]:
    """Plain reading of a one-symbol USD-M capture by the rules of app/feeds/binance.py's docstring:
    json.loads per line, one Python row per event."""
    rows: list[list] = []
    st = {"snapshots": 0, "diffs": 0, "diffs_applied": 0, "diffs_dropped": 0, "trades": 0, "book_tickers": 0}
    snap = None
    last_u = None
    pending: list[tuple[int, dict]] = []

    def levels(ts, bids, asks, flags):
        n0 = len(rows)
        for side, lv in ((SIDE_BID, bids), (SIDE_ASK, asks)):
            for p, q in lv:
                rows.append([ts, p, q, KIND_DEPTH, side, OP_SET, flags])
        if len(rows) > n0:
            rows[-1][6] |= FLAG_BATCH_END

    def diff(ts, d):
        nonlocal last_u
        if last_u is None and d["u"] < snap:
            st["diffs_dropped"] += 1
            return
        last_u = d["u"]
        st["diffs_applied"] += 1
        levels(ts, d["b"], d["a"], 0)

    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        head, js = line.split(" ", 1)
        ts, m = int(head), json.loads(js)
        if "lastUpdateId" in m:
            st["snapshots"] += 1
            snap, last_u = m["lastUpdateId"], None
            rows.append([ts, 0.0, 0.0, KIND_DEPTH, 0, OP_CLEAR, FLAG_SNAPSHOT])
            levels(ts, m["bids"], m["asks"], FLAG_SNAPSHOT)
            for pts, d in pending:
                diff(max(pts, ts), d)
            pending = []
            continue
        stream, d = m["stream"], m["data"]
        if "@depth" in stream:
            st["diffs"] += 1
            if snap is None:
                pending.append((ts, d))
            else:
                diff(ts, d)
        elif stream.endswith("@trade"):
            st["trades"] += 1
            rows.append([ts, d["p"], d["q"], KIND_TRADE, SIDE_BID if d["m"] else SIDE_ASK, 0, 0])
        elif stream.endswith("@bookTicker"):
            st["book_tickers"] += 1
            rows.append([ts, d["b"], d["B"], KIND_QUOTE, SIDE_BID, 0, 0])
            rows.append([ts, d["a"], d["A"], KIND_QUOTE, SIDE_ASK, 0, 0])
    st["diffs_dropped"] += len(pending)
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    out["ts"] = np.maximum.accumulate([r[0] for r in rows])
    out["price"] = [round(float(r[1]) / tick) for r in rows]
    out["size"] = [float(r[2]) for r in rows]
    out["kind"] = [r[3] for r in rows]
    out["side"] = [r[4] for r in rows]
    out["op"] = [OP_DELETE if r[5] == OP_SET and float(r[2]) == 0.0 else r[5] for r in rows]
    out["flags"] = [r[6] for r in rows]
    return out, st


@pytest.mark.parametrize("name, symbol, tick", [("btcusdt_20240808.gz", "BTCUSDT", 0.1),
                                                ("ethusdt_20240808.gz", "ETHUSDT", 0.01)])
def test_real_capture_equals_the_plain_reference_event_for_event(shared_data, name, symbol, tick):
    path = shared_data / "crypto" / name
    rec = read_binance_gz(path)
    assert rec.instrument.symbol == symbol and rec.instrument.tick_size == tick
    ref, st = _reference_events(path, tick)
    ev = rec.events
    assert len(ev) == len(ref) > 500_000
    for field in ("ts", "price", "size", "kind", "side", "op", "flags", "num_orders", "symbol_id"):
        assert np.array_equal(ev[field], ref[field]), field
    assert ev.tobytes() == ref.tobytes()
    got = rec.extra["stats"]
    assert {k: got[k] for k in st} == st
    assert got["bad_lines"] == got["other"] == got["sequence_gaps"] == 0


def test_levels_fast_path_equals_the_entry_by_entry_loop():
    def plain(batches):
        c = binance._Cols()
        for ts, b, a in batches:
            n0 = c.n
            for side, lv in ((SIDE_BID, b), (SIDE_ASK, a)):
                for p, q in lv:
                    c.add(ts, p, q, KIND_DEPTH, side, OP_SET, 0)
            if c.n > n0:
                c.end_batch()
        return c.to_array(0.1)

    batches = [(5, [["100.1", "2"], ["100.0", "0.000"]], [["100.2", "1.5"]]), (6, [], [["100.3", "3"]]),
               (4, [], []), (7, [["99.9", 1], {"99.8": 0, "x": 1}], ["ab"])]
    fast = binance._Cols()
    for ts, b, a in batches[:3]:
        fast.levels(ts, b, a, 0)
    assert fast.to_array(0.1).tobytes() == plain(batches[:3]).tobytes()
    # a side with a malformed entry is taken entry by entry: what precedes it stays, then the
    # error a plain loop raises (the reader counts the message as a bad line)
    c = binance._Cols()
    with pytest.raises(ValueError):
        c.levels(1, [["1.0", "2"], ["1.1", "3"], ["1.2"]], [["1.3", "1"]], 0)
    assert c.price == ["1.0", "1.1"] and c.batch_end == []
    with pytest.raises(TypeError):
        binance._Cols().levels(1, [["1.0", "2"], 5], [], 0)
    assert binance._all_pairs([["1", "2"], ("3", "4"), "ab"]) and not binance._all_pairs([["1", "2"], ["3"]])
    assert not binance._all_pairs([["1", "2"], None]) and not binance._all_pairs([["1", "2", "3"], ["4"]])


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"u": 123456789012345678901234567890}', '{"p": 1e400}',
                                  '"\\ud800"', '{"s": "BTCUSDT", "b": [["1.0", "2"]]}', '{"a": 1, "a": 2}'])
def test_json_decoding_is_the_standard_librarys(text):
    assert repr(binance._loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["[1,]", "{", "", "nul"])
def test_json_decoding_errors_are_value_errors(text):
    with pytest.raises(ValueError):
        binance._loads(text)


def test_price_scan_matches_a_plain_comprehension():
    levels = [["1.5", "2"], ["1.4", "0"]]
    assert binance._first_column(levels) == ["1.5", "1.4"]
    assert binance._first_column([]) == [] and binance._first_column(()) == []
    with pytest.raises(ValueError):
        binance._first_column([["1.5", "2"], ["1.4"]])
