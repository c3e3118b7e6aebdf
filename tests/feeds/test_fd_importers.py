"""LOBSTER importer, .dly reader, Sierra folder detection, and the convert command on real files."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from app.core.events import KIND_TRADE, SIDE_ASK, SIDE_BID


# ------------------------------------------------------------------------------------ LOBSTER

def test_lobster_book_equals_orderbook_rows(shared_data, tmp_path):
    from app.feeds.lobster import read_lobster
    from app.market.refbook import ReferenceBook

    mp = shared_data / "lobster" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
    rec = read_lobster(mp)
    msgs = list(csv.reader(open(mp)))
    rows = list(csv.reader(open(str(mp).replace("_message_", "_orderbook_"))))
    assert len(msgs) == len(rows) == 999  # no trailing newline: the last row still counts
    ev = rec.events
    # trades: types 4 and 5 (98 visible + 61 hidden executions per the data README)
    tr = ev[ev["kind"] == KIND_TRADE]
    exp = [m for m in msgs if m[1] in ("4", "5")]
    assert len(tr) == len(exp) == 159
    assert tr["price"].tolist() == [int(m[4]) // 100 for m in exp]
    assert tr["side"].tolist() == [SIDE_BID if m[5] == "1" else SIDE_ASK for m in exp]
    base = int(dt.datetime(2012, 6, 21, 4, tzinfo=dt.timezone.utc).timestamp()) * 10**9  # 00:00 EDT
    assert int(ev["ts"][0]) == base + round(float(msgs[0][0]) * 1e9)
    # the book after the first k rows equals orderbook row k (files cut at k rows, read again)
    raw_m = mp.read_text().splitlines()
    raw_o = Path(str(mp).replace("_message_", "_orderbook_")).read_text().splitlines()
    for k in list(range(1, 999, 37)) + [999]:
        cm = tmp_path / mp.name
        cm.write_text("\n".join(raw_m[:k]))
        Path(str(cm).replace("_message_", "_orderbook_")).write_text("\n".join(raw_o[:k]))
        part = read_lobster(cm)
        book = ReferenceBook()
        book.apply(part.events)
        want = rows[k - 1]
        bids = {int(want[4 * j + 2]) // 100: float(want[4 * j + 3]) for j in range(10) if int(want[4 * j + 3]) > 0}
        asks = {int(want[4 * j]) // 100: float(want[4 * j + 1]) for j in range(10) if int(want[4 * j + 1]) > 0}
        assert book.bids() == bids and book.asks() == asks, k
        assert np.array_equal(part.events, ev[: len(part.events)])  # a prefix of the full conversion
    assert not book.is_crossed()
    assert rec.instrument.tick_size == 0.01 and rec.instrument.symbol == "AAPL"


def test_lobster_errors(tmp_path):
    from app.feeds.lobster import LobsterError, read_lobster

    m = tmp_path / "X_2012-06-21_0_1_message_1.csv"
    o = tmp_path / "X_2012-06-21_0_1_orderbook_1.csv"
    m.write_text("34200.1,1,1,10,100000,1\n34200.2,1,2,10,100100,-1\n")
    o.write_text("100100,10,100000,10\n")
    with pytest.raises(LobsterError, match="rows"):
        read_lobster(m)
    o.write_text("100100,10,100000\n100100,10,100000\n")
    with pytest.raises(LobsterError):
        read_lobster(m)


# ------------------------------------------------------------------------------------ .dly

def test_dly_parse_and_round_trip(tmp_path):
    from app.feeds.dly import DlyError, read_dly, write_dly

    p = tmp_path / "VIX.dly"
    p.write_text("Date, Open, High, Low, Close, Volume, OpenInterest\n"
                 "2020/03/13, 57.27, 60.75, 48.51, 57.83, 0, 0\n"
                 "2020/03/16, 65.94, 83.56, 60.53, 82.69, 0, 0\n"
                 "garbage line\n")
    st = {}
    bars = read_dly(p, st)
    assert len(bars) == 2 and st["bad_lines"] == 1
    assert bars["close"].tolist() == [57.83, 82.69]
    assert int(bars["ts"][1]) == int(dt.datetime(2020, 3, 16, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    q = write_dly(tmp_path / "copy.dly", bars)
    assert np.array_equal(read_dly(q), bars)
    bad = tmp_path / "bad.dly"
    bad.write_text("Date, Open, High, Low\n2020/01/01, 1, 2, 3\n")
    with pytest.raises(DlyError, match="Close"):
        read_dly(bad)


def test_dly_from_cboe_vix_history(shared_data, tmp_path):
    """CBOE's VIX_History.csv (MM/DD/YYYY) reads through the same parser; 2020-03-16 close 82.69."""
    from app.feeds.dly import read_dly

    bars = read_dly(shared_data / "vix_spx" / "VIX_History.csv")
    day = int(dt.datetime(2020, 3, 16, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert float(bars["close"][bars["ts"] == day][0]) == 82.69
    assert len(bars) > 9000


# ------------------------------------------------------------------------------------ source

def test_find_data_dir_and_files(tmp_path):
    from app.live.sierra_source import explain_missing_depth, files_for_symbol, find_sierra_data_dir

    install = tmp_path / "SierraChart"
    data = install / "Data"
    (data / "MarketDepthData").mkdir(parents=True)
    (data / "ESZ25_FUT_CME.scid").write_bytes(b"")
    (data / "esz25_fut_cme.dly").write_text("x")
    for d in ("2025-12-01", "2025-11-30"):
        (data / "MarketDepthData" / f"ESZ25_FUT_CME.{d}.depth").write_bytes(b"")
    (data / "MarketDepthData" / "NQZ25_FUT_CME.2025-12-01.depth").write_bytes(b"")
    assert find_sierra_data_dir(data) == data
    assert find_sierra_data_dir(install) == data  # the install folder given: its Data subfolder
    assert find_sierra_data_dir(None, candidates=[tmp_path / "nope", data]) == data
    assert find_sierra_data_dir(tmp_path / "missing", candidates=[]) is None
    f = files_for_symbol(data, "ESZ25_FUT_CME")
    assert f.scid.name == "ESZ25_FUT_CME.scid" and f.dly.name == "esz25_fut_cme.dly"
    assert [p.name for p in f.depth_files] == ["ESZ25_FUT_CME.2025-11-30.depth", "ESZ25_FUT_CME.2025-12-01.depth"]
    assert f.depth_is_current(today=dt.date(2025, 12, 1))
    none = files_for_symbol(data, "VX")
    assert none.scid is None and none.depth_files == [] and not none.depth_is_current()
    msg = explain_missing_depth("ESZ25_FUT_CME", data)
    assert "Global Settings >> Symbol Settings" in msg and "Record Market Depth Data" in msg
    assert "Intraday" in msg and "ESZ25_FUT_CME" in msg


# ------------------------------------------------------------------------------------ convert

def _convert(argv):
    from app.cli import main

    return main(["convert", *argv])


def test_convert_dbn_to_sierra_folder_and_back(shared_data, tmp_path, capsys):
    from app.feeds.depthfile import read_depth_events
    from app.feeds.recording import read_recording
    from app.market.refbook import ReferenceBook
    from app.feeds.scid import read_scid, scid_to_events

    src = shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    out = tmp_path / "Data"
    out.mkdir()
    assert _convert([str(src), str(out), "--format", "mrec,depth,scid"]) == 0
    rec = read_recording(out / "ESH4.mrec")
    assert len(rec.events) == 65045 and rec.instrument.tick_size == 0.25
    depth_files = sorted((out / "MarketDepthData").glob("ESH4.*.depth"))
    assert [p.name for p in depth_files] == ["ESH4.2023-12-25.depth"]
    book = ReferenceBook()
    book.apply(read_depth_events(depth_files[0], rec.instrument))
    ref = ReferenceBook()
    ref.apply(rec.events)
    assert book == ref
    _, srecs = read_scid(out / "ESH4.scid")
    tr = rec.events[rec.events["kind"] == KIND_TRADE]
    assert len(srecs) == len(tr) == 2973
    back = scid_to_events(srecs, rec.instrument, quotes=False)
    assert back["price"].tolist() == tr["price"].tolist()
    known = tr["side"] != 0  # an unset side (auction uncross) cannot be stored: readers infer it
    assert back["side"][known].tolist() == tr["side"][known].tolist() and (~known).sum() < 5
    # each record's bid/ask is the book's best just before the trade: only the opening auction
    # trade (first record) sees the crossed pre-open book; from then on bid < ask
    assert srecs["low"][0] > srecs["high"][0]
    assert np.all(srecs["low"][1:] < srecs["high"][1:])
    assert "wrote" in capsys.readouterr().out


def test_convert_binance_and_lobster(shared_data, tmp_path):
    from app.feeds.recording import read_recording

    out = tmp_path / "btc.mrec"
    assert _convert([str(shared_data / "crypto" / "btcusdt_20240808.gz"), str(out)]) == 0
    rec = read_recording(out)
    assert rec.instrument.symbol == "BTCUSDT" and (rec.events["kind"] == KIND_TRADE).sum() == 21313
    out2 = tmp_path / "aapl.mrec"
    assert _convert([str(shared_data / "lobster" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"),
                     str(out2)]) == 0
    assert read_recording(out2).instrument.symbol == "AAPL"
    # a scid source round trip needs a tick size
    assert _convert([str(shared_data / "sierra_chart" / "test.scid"), str(tmp_path / "t.mrec")]) == 2
    assert _convert([str(shared_data / "sierra_chart" / "test.scid"), str(tmp_path / "t.mrec"),
                     "--tick-size", "0.25", "--symbol", "ESM23"]) == 0
    t = read_recording(tmp_path / "t.mrec")
    assert (t.events["kind"] == KIND_TRADE).sum() == 10
    assert _convert([str(tmp_path / "t.mrec"), str(tmp_path / "t2.scid"), "--format", "scid"]) == 0
    assert (tmp_path / "t2.scid").stat().st_size == 56 + 40 * 10
    assert _convert([str(tmp_path / "unknown.xyz"), str(tmp_path / "o.mrec")]) == 2


def test_convert_binance_to_sierra_formats_keeps_fractional_sizes(shared_data, tmp_path, capsys):
    """BTC sizes (0.001 steps) survive .depth/.scid through the size multiplier (auto = 1000)."""
    from app.feeds.depthfile import read_depth_events
    from app.feeds.recording import read_recording
    from app.market.refbook import ReferenceBook
    from app.feeds.scid import read_scid_events

    out = tmp_path / "Data"
    out.mkdir()
    assert _convert([str(shared_data / "crypto" / "btcusdt_20240808.gz"), str(out),
                     "--format", "mrec,depth,scid"]) == 0
    assert "--size-multiplier 1000" in capsys.readouterr().out
    rec = read_recording(out / "BTCUSDT.mrec")
    files = sorted((out / "MarketDepthData").glob("BTCUSDT.*.depth"))
    assert [p.name for p in files] == ["BTCUSDT.2024-08-08.depth"]
    ref = ReferenceBook()
    ref.apply(rec.events)
    got = ReferenceBook()
    got.apply(read_depth_events(files[0], rec.instrument, size_multiplier=1000))
    assert got.bids() == pytest.approx(ref.bids()) and got.asks() == pytest.approx(ref.asks())
    tr = read_scid_events(out / "BTCUSDT.scid", rec.instrument, quotes=False, size_multiplier=1000)
    src = rec.events[rec.events["kind"] == KIND_TRADE]
    assert np.allclose(tr["size"], src["size"]) and tr["price"].tolist() == src["price"].tolist()
