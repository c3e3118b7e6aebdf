"""Sierra .scid reader/writer on the real test.scid and the ES.csv-derived 1-second file."""

from __future__ import annotations

import csv
import datetime as dt
import struct

import numpy as np
import pytest

from app.core.events import EVENT_DTYPE, KIND_QUOTE, KIND_TRADE, SIDE_ASK, SIDE_BID, Instrument, trade_events
from app.feeds.scid import (
    SCID_RECORD_DTYPE,
    ScidError,
    ScidWriter,
    events_to_scid_records,
    parse_scid_header,
    read_scid,
    scid_to_events,
    tick_record_mask,
    write_scid,
)
from app.feeds.sierra_kernels_ref import scid_to_events_numpy
from app.market.bars import scid_to_bars

ES = Instrument("ESM23", 0.25, 12.5)
#: every decoding assertion runs on the numba path and on its plain-NumPy twin
BOTH = pytest.mark.parametrize("decode", [scid_to_events, scid_to_events_numpy], ids=["numba", "numpy"])


def _unpack_all(path):
    raw = path.read_bytes()
    head = struct.unpack("<4sIIHHI36s", raw[:56])
    recs = [struct.unpack("<qffffIIII", raw[56 + 40 * i: 96 + 40 * i]) for i in range((len(raw) - 56) // 40)]
    return head, recs


@BOTH
def test_test_scid_known_values(shared_data, decode):
    path = shared_data / "sierra_chart" / "test.scid"
    head_ref, ref = _unpack_all(path)
    head, recs = read_scid(path)
    assert head_ref[0] == b"SCID" and (head.header_size, head.record_size, head.version) == head_ref[1:4]
    assert len(recs) == len(ref) == 10
    for r, x in zip(recs, ref):
        assert int(r["dt"]) == x[0]
        assert (float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"])) == x[1:5]
        assert tuple(int(r[f]) for f in ("num_trades", "total_volume", "bid_volume", "ask_volume")) == x[5:]
    # concrete values of this file (ESM23 2023-02-21): first trade 4048.00 with bid 4048.00 / ask 4048.75
    assert ref[0][2:5] == (4048.75, 4048.0, 4048.0)
    assert tick_record_mask(recs).all()  # includes the two unbundled-trade markers
    assert ref[3][1] < -1e37 and ref[4][1] < -1e37

    ev = decode(recs, ES)
    trades = ev[ev["kind"] == KIND_TRADE]
    assert len(trades) == 10
    assert trades["price"].tolist() == [round(x[4] / 0.25) for x in ref]
    assert trades["size"].tolist() == [float(x[6]) for x in ref]
    # side from the Sierra volume fields: BidVolume -> hit the bid, AskVolume -> lifted the ask
    exp_side = [SIDE_BID if x[7] > x[8] else SIDE_ASK for x in ref]
    assert trades["side"].tolist() == exp_side
    bids = ev[(ev["kind"] == KIND_QUOTE) & (ev["side"] == SIDE_BID)]
    asks = ev[(ev["kind"] == KIND_QUOTE) & (ev["side"] == SIDE_ASK)]
    assert bids["price"].tolist() == [round(x[3] / 0.25) for x in ref]
    assert asks["price"].tolist() == [round(x[2] / 0.25) for x in ref]
    # time: microseconds since 1899-12-30 -> ns since 1970
    t0 = dt.datetime(1899, 12, 30, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ref[0][0])
    assert t0 == dt.datetime(2023, 2, 21, 20, 37, 19, 26000, tzinfo=dt.timezone.utc)
    assert int(trades["ts"][0]) == int(t0.timestamp()) * 10**9 + 26_000_000
    assert int(trades["ts"][4]) - int(trades["ts"][3]) == 1000  # the .105000/.105001 counter


def test_derived_1s_bars_equal_es_csv(shared_data):
    rows = list(csv.reader(open(shared_data / "sierra_chart" / "ES.csv"), skipinitialspace=True))[1:]
    head, recs = read_scid(shared_data / "sierra_chart" / "derived" / "ES_2011-01-02_1s.derived.scid")
    assert not tick_record_mask(recs).any()
    bars = scid_to_bars(recs, Instrument("ES", 0.25, 12.5))
    assert len(bars) == len(rows) == 999
    for b, r in zip(bars, rows):
        t = dt.datetime.strptime(r[0] + " " + r[1], "%Y/%m/%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        assert int(b["ts"]) == int(t.timestamp()) * 10**9
        assert [int(b[k]) for k in ("open", "high", "low", "close")] == [round(float(x) / 0.25) for x in r[2:6]]
        assert (b["volume"], b["trades"], b["sell_volume"], b["buy_volume"]) == tuple(int(x) for x in r[6:10])
    assert bars["delta"][0] == 393 - 375


def test_scid_round_trip_and_writer_append(tmp_path, shared_data):
    head, recs = read_scid(shared_data / "sierra_chart" / "test.scid")
    p = tmp_path / "x.scid"
    write_scid(p, recs)
    assert p.read_bytes() == (shared_data / "sierra_chart" / "test.scid").read_bytes()
    # a crash left half a record: the writer cuts it before appending
    with open(p, "ab") as f:
        f.write(b"\x01" * 17)
    with ScidWriter(p) as w:
        w.append(recs[:2])
    _, back = read_scid(p)
    assert len(back) == 12 and np.array_equal(back[10:], recs[:2])
    assert len(read_scid(p, start=-3)[1]) == 3


@BOTH
def test_events_to_scid_and_back(decode):
    inst = Instrument("ES", 0.25, 12.5)
    ev = trade_events([10**18, 10**18 + 1500, 10**18 + 2500], [20000, 20001, 19999], [3, 1, 7],
                      [SIDE_ASK, SIDE_BID, SIDE_BID])
    recs = events_to_scid_records(ev, inst, bid=np.array([19999, 20000, 19999]), ask=np.array([20000, 20001, 20000]))
    assert recs["dt"][1] > recs["dt"][0]
    back = decode(recs, inst)
    tr = back[back["kind"] == KIND_TRADE]
    assert tr["price"].tolist() == [20000, 20001, 19999]
    assert tr["side"].tolist() == [SIDE_ASK, SIDE_BID, SIDE_BID]
    assert tr["size"].tolist() == [3, 1, 7]
    assert (tr["ts"] // 1000).tolist() == (ev["ts"] // 1000).tolist()


def test_bad_headers():
    with pytest.raises(ScidError, match="FileTypeUniqueHeaderID"):
        parse_scid_header(b"XXXX" + b"\x00" * 52)
    with pytest.raises(ScidError, match="truncated"):
        parse_scid_header(b"SCID")
    with pytest.raises(ScidError, match="RecordSize"):
        parse_scid_header(struct.pack("<4sIIHHI36s", b"SCID", 56, 32, 1, 0, 0, b""))


def test_legacy_float_days_datetime():
    from app.feeds.scid import sc_datetime_to_ns

    days = np.array([45000.5], dtype=np.float64)  # 2023-03-15 12:00 UTC as float days
    ns = sc_datetime_to_ns(days.view(np.int64))
    assert ns[0] == int(dt.datetime(2023, 3, 15, 12, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert SCID_RECORD_DTYPE.itemsize == 40


@BOTH
def test_no_records_give_no_events(decode):
    ev = decode(np.zeros(0, SCID_RECORD_DTYPE), ES)
    assert len(ev) == 0 and ev.dtype == EVENT_DTYPE


def test_legacy_float_days_records_decode_through_the_twin():
    """The kernel reads integer microseconds only; a file with float-days DateTime values is
    decoded by the NumPy twin (the deliberate fallback), with the same events either way."""
    recs = np.zeros(2, SCID_RECORD_DTYPE)
    recs["dt"] = np.array([45000.5, 45000.75], np.float64).view(np.int64)  # 2023-03-15 12:00 / 18:00 UTC
    recs["high"], recs["low"], recs["close"] = 4000.25, 4000.0, 4000.25
    recs["total_volume"], recs["ask_volume"] = 2, 2
    ev = scid_to_events(recs, ES)
    assert np.array_equal(ev, scid_to_events_numpy(recs, ES))
    tr = ev[ev["kind"] == KIND_TRADE]
    noon = int(dt.datetime(2023, 3, 15, 12, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert tr["ts"].tolist() == [noon, noon + 6 * 3600 * 10**9]
    assert tr["price"].tolist() == [16001, 16001] and tr["side"].tolist() == [SIDE_ASK, SIDE_ASK]
