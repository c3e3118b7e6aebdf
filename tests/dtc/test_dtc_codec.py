"""Codec: exact bytes, round trips in every encoding, hostile streams, batch == per-message."""

from __future__ import annotations

import json
import random
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.dtc import batch as B
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding
from app.core import events as ev

ENCODINGS = [Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT]


@pytest.fixture(scope="module")
def py_formats(shared_reference):
    """struct name -> the official Python struct format string from the offsets file."""
    text = (shared_reference / "dtc-struct-offsets.txt").read_text()
    return dict(re.findall(r"STRUCT (s_\w+) size=\d+ pack=\d+\s+py='([^']+)'", text))


# ------------------------------------------------------------------------------- exact bytes


def test_heartbeat_exact_bytes():
    data = C.encode(M.Heartbeat(NumDroppedMessages=3, CurrentDateTime=1735689600), Encoding.BINARY)
    assert data == bytes.fromhex("1000 0300 03000000") + (1735689600).to_bytes(8, "little")


def test_encoding_request_exact_bytes_from_the_doc():
    # sierrachart.com doc: JSON request = 10 00 06 00 08 00 00 00 02 00 00 00 44 54 43 00
    assert C.encoding_request(Encoding.JSON) == bytes.fromhex("10000600080000000200000044544300")


def test_logon_request_exact_bytes(py_formats):
    msg = M.LogonRequest(Username="trader", Password="pw", Integer_1=0x80, HeartbeatIntervalInSeconds=10,
                         TradeAccount="Sim1", ClientName="MIA Elite")
    expect = struct.pack(py_formats["s_LogonRequest"], 284, 1, 8, b"trader", b"pw", b"", 0x80, 0, 10, 0,
                         b"Sim1", b"", b"MIA Elite", 0)
    assert C.encode(msg, Encoding.BINARY) == expect
    assert expect[136:140] == b"\x80\x00\x00\x00"  # Integer_1 at offset 136


def test_market_depth_update_level_exact_bytes(py_formats):
    msg = M.MarketDepthUpdateLevel(SymbolID=7, Side=2, Price=4810.25, Quantity=12.0, UpdateType=1,
                                   DateTime=1735689600.125, NumOrders=4)
    expect = struct.pack(py_formats["s_MarketDepthUpdateLevel"], 56, 106, 7, 2, 4810.25, 12.0, 1,
                         1735689600.125, 4)
    assert C.encode(msg, Encoding.BINARY) == expect
    # spot-check by hand: Side uint16 at 8, Price double at 16, UpdateType at 32, NumOrders at 48
    assert expect[8:10] == b"\x02\x00" and struct.unpack_from("<d", expect, 16)[0] == 4810.25
    assert expect[32] == 1 and struct.unpack_from("<I", expect, 48)[0] == 4


def test_depth_float_ms_140_exact_bytes():
    msg = M.MarketDepthUpdateLevelFloatWithMilliseconds(SymbolID=1, DateTime=1735689600123, Price=4810.25,
                                                        Quantity=3.0, Side=1, UpdateType=2, NumOrders=5,
                                                        FinalUpdateInBatch=1)
    expect = (struct.pack("<HHI", 29, 140, 1) + struct.pack("<q", 1735689600123) + struct.pack("<ff", 4810.25, 3.0)
              + bytes([1, 2]) + struct.pack("<H", 5) + bytes([1]))
    assert len(expect) == 29
    assert C.encode(msg, Encoding.BINARY) == expect


def test_submit_new_single_order_exact_bytes(py_formats):
    msg = M.SubmitNewSingleOrder(Symbol="ESZ5", Exchange="CME", TradeAccount="Sim1", ClientOrderID="c1",
                                 OrderType=M.OrderType.ORDER_TYPE_LIMIT, BuySell=M.BuySell.BUY, Price1=4800.5,
                                 Quantity=2.0, TimeInForce=M.TimeInForce.TIF_DAY, IsParentOrder=1,
                                 FreeFormText="mia")
    expect = struct.pack(py_formats["s_SubmitNewSingleOrder"], 296, 208, b"ESZ5", b"CME", b"Sim1", b"c1", 2, 1,
                         4800.5, 0.0, 2.0, 1, 0, 0, 1, b"mia", 0, 0.0, b"", b"")
    assert C.encode(msg, Encoding.BINARY) == expect


def test_order_update_exact_bytes(py_formats):
    msg = M.OrderUpdate(RequestID=0, TotalNumMessages=1, MessageNumber=1, Symbol="ESZ5", ServerOrderID="S1",
                        ClientOrderID="c1", OrderStatus=7, OrderUpdateReason=4, OrderType=1, BuySell=2,
                        OrderQuantity=1.0, FilledQuantity=1.0, RemainingQuantity=0.0, AverageFillPrice=4810.0,
                        LastFillPrice=4810.0, LastFillDateTime=1735689600123, LastFillQuantity=1.0,
                        TradeAccount="Sim1", InfoText="filled")
    d = M.UNSET_DOUBLE
    expect = struct.pack(py_formats["s_OrderUpdate"], 720, 301, 0, 1, 1, b"ESZ5", b"", b"", b"S1", b"c1", b"",
                         7, 4, 1, 2, d, d, 0, 0, 1.0, 1.0, 0.0, 4810.0, 4810.0, 1735689600123, 1.0, b"",
                         b"Sim1", b"filled", 0, b"", b"", 0, b"", b"", 0, 0.0, b"")
    assert C.encode(msg, Encoding.BINARY) == expect


def test_json_and_compact_text():
    msg = M.MarketDataUpdateTrade(SymbolID=1, AtBidOrAsk=2, Price=6012.25, Volume=3, DateTime=1735689600.5)
    assert C.encode(msg, Encoding.JSON) == (
        b'{"Type":107,"SymbolID":1,"AtBidOrAsk":2,"Price":6012.25,"Volume":3,"DateTime":1735689600.5}\x00')
    assert C.encode(msg, Encoding.JSON_COMPACT) == b'{"Type":107,"F":[1,2,6012.25,3,1735689600.5]}\x00'
    # 112 in Sierra Chart's observed order: SymbolID first
    c = M.MarketDataUpdateTradeCompact(Price=1.5, Volume=2.0, DateTime=10, SymbolID=9, AtBidOrAsk=1)
    assert json.loads(C.encode(c, Encoding.JSON_COMPACT)[:-1])["F"] == [9, 1, 1.5, 2.0, 10]
    # unset doubles are omitted in JSON and come back as DBL_MAX
    snap = M.MarketDataSnapshot(SymbolID=1, BidPrice=10.0)
    obj = json.loads(C.encode(snap, Encoding.JSON)[:-1])
    assert "AskPrice" not in obj and obj["BidPrice"] == 10.0
    assert C.Decoder(Encoding.JSON).feed(C.encode(snap, Encoding.JSON))[0].AskPrice == M.UNSET_DOUBLE


def test_encode_errors_name_the_field():
    with pytest.raises(C.EncodeError, match="Symbol"):
        C.encode(M.MarketDataRequest(Symbol="X" * 64), Encoding.BINARY)
    with pytest.raises(C.EncodeError, match="SymbolID"):
        C.encode(M.MarketDataRequest(SymbolID=-1), Encoding.BINARY)
    with pytest.raises(ValueError):
        C.encode(M.Heartbeat(), Encoding.PROTOCOL_BUFFERS)


# ------------------------------------------------------------------------------- versioning


def test_shorter_and_longer_binary_messages():
    full = C.encode(M.LogonRequest(HeartbeatIntervalInSeconds=10, ClientName="x", MarketDataTransmissionInterval=5),
                    Encoding.BINARY)
    old = bytearray(full[:280])  # 2021 header: no MarketDataTransmissionInterval
    old[0:2] = (280).to_bytes(2, "little")
    newer = bytearray(full + b"\x07" * 8)  # 2025 header appends fields
    newer[0:2] = (292).to_bytes(2, "little")
    d = C.Decoder(Encoding.BINARY)
    a, b = d.feed(bytes(old) + bytes(newer))
    assert a.ClientName == "x" and a.MarketDataTransmissionInterval == 0  # default
    assert b.MarketDataTransmissionInterval == 5
    assert d.errors == 0


def test_unknown_types_are_skipped_and_counted():
    hb = C.encode(M.Heartbeat(), Encoding.BINARY)
    d = C.Decoder(Encoding.BINARY)
    out = d.feed(struct.pack("<HH", 8, 9999) + b"abcd" + hb)
    # issue 13 item 11: an unknown type is also a counted decode error, with its reason
    assert [type(m).__name__ for m in out] == ["Heartbeat"] and d.unknown == 1 and d.errors == 1
    assert "unknown message type 9999" in d.last_error
    dj = C.Decoder(Encoding.JSON)
    assert dj.feed(b'{"Type":10100,"X":1}\x00{"Type":3}\x00')[0].TYPE == 3 and dj.unknown == 1


def test_encoding_negotiation_switch_inside_one_read():
    d = C.Decoder(Encoding.BINARY, follow_encoding_response=True)
    trade = M.MarketDataUpdateTrade(SymbolID=1, Price=2.0)
    data = C.encode(M.EncodingResponse(Encoding=Encoding.JSON_COMPACT), Encoding.BINARY) + C.encode(
        trade, Encoding.JSON_COMPACT)
    for cut in range(len(data) + 1):
        d = C.Decoder(Encoding.BINARY, follow_encoding_response=True)
        out = d.feed(data[:cut]) + d.feed(data[cut:])
        assert out[1] == trade and d.encoding == Encoding.JSON_COMPACT and d.errors == 0


# ------------------------------------------------------------------------------- round trips

def _value(f):
    if f.kind == "str":
        return st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=min(8, f.size - 1))
    if f.kind == "float":
        if f.code == "f":
            return st.floats(width=32, allow_nan=False, allow_infinity=False)
        return st.floats(allow_nan=False, allow_infinity=False)
    lo, hi = M._INT_RANGES[f.code]
    return st.integers(lo, hi)


def _message_strategy(cls):
    return st.fixed_dictionaries({f.name: _value(f) for f in cls.SPEC.fields}).map(lambda kw: cls(**kw))


ALL = sorted(M.CLASSES_BY_NAME)


@pytest.mark.parametrize("name", ALL)
def test_round_trip_every_message_every_encoding(name):
    cls = M.CLASSES_BY_NAME[name]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_message_strategy(cls), st.integers(1, 50))
    def check(msg, cut):
        for enc in ENCODINGS:
            data = C.encode(msg, enc)
            d = C.Decoder(enc)
            out = d.feed(data[:cut]) + d.feed(data[cut:])
            assert d.errors == 0, d.last_error
            assert out == [msg], (enc, data)

    check()


# ------------------------------------------------------------------------------- hostile streams


def _sample_stream(enc, rng):
    msgs = [
        M.Heartbeat(CurrentDateTime=1),
        M.MarketDepthUpdateLevel(SymbolID=1, Side=1, Price=4810.25, Quantity=3, UpdateType=1),
        M.MarketDepthUpdateLevelFloatWithMilliseconds(SymbolID=1, Price=4810.5, Quantity=2, Side=2, UpdateType=1),
        M.OrderUpdate(Symbol="ESZ5", OrderStatus=4),
        M.MarketDataUpdateTrade(SymbolID=1, Price=4810.25, Volume=1, AtBidOrAsk=2),
        M.SecurityDefinitionResponse(Symbol="ESZ5", MinPriceIncrement=0.25),
    ]
    return msgs, b"".join(C.encode(rng.choice(msgs), enc) for _ in range(60))


@pytest.mark.parametrize("enc", ENCODINGS)
def test_random_and_mutated_streams_never_escape(enc):
    rng = random.Random(1234 + int(enc))
    msgs, clean = _sample_stream(enc, rng)
    for trial in range(150):
        data = bytearray(clean)
        kind = trial % 3
        if kind == 0:
            data = bytearray(rng.randbytes(rng.randint(0, 3000)))
        elif kind == 1:
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            a = rng.randrange(len(data))
            del data[a:a + rng.randint(1, 80)]
            data[rng.randrange(len(data)):rng.randrange(len(data))] = rng.randbytes(rng.randint(0, 40))
        d = C.Decoder(enc)
        pos = 0
        out = []
        while pos < len(data):
            n = rng.randint(1, 300)
            out += d.feed(bytes(data[pos:pos + n]))
            pos += n
        assert all(isinstance(m, M.Message) for m in out)
        assert d.errors >= 0 and d.unknown >= 0
        if kind == 0 and enc != Encoding.BINARY and len(data) > 200:
            assert d.errors + d.unknown > 0 or not out


def test_mutation_is_counted_binary():
    d = C.Decoder(Encoding.BINARY)
    hb = C.encode(M.Heartbeat(), Encoding.BINARY)
    assert d.feed(hb + b"\x02\x00\x03\x00" + hb) == [M.Heartbeat()]
    assert d.errors == 1 and d.desynced == 1 and "resynchronised" in d.last_error
    assert d.feed(hb) == [M.Heartbeat()]  # the next clean data decodes again


def test_mutation_is_counted_json():
    d = C.Decoder(Encoding.JSON)
    out = d.feed(b'{"Type":3}\x00{"Type":106,"Price":"abc"}\x00{"Type":3\x00{"Type":3}\x00')
    assert len(out) == 2 and d.errors == 2 and d.last_error
    d2 = C.Decoder(Encoding.JSON, max_frame=100)
    assert d2.feed(b"{" + b" " * 500) == [] and d2.errors == 1
    assert d2.feed(b'\x00{"Type":3}\x00') == [M.Heartbeat()]


# ------------------------------------------------------------------------------- batch path


def _depth_events(n, seed):
    rng = np.random.default_rng(seed)
    e = ev.depth_events(
        ts=1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 10_000, n)) * 1000,
        price=19_000 + rng.integers(-40, 40, n),
        size=rng.integers(0, 500, n).astype(float),
        side=rng.integers(1, 3, n),
        op=rng.integers(1, 3, n),
        flags=np.where(rng.random(n) < 0.3, ev.FLAG_BATCH_END, 0),
        num_orders=rng.integers(0, 60, n),
    )
    return e


@pytest.mark.parametrize("msg_type", B.DEPTH_TYPES)
def test_batch_depth_round_trip_and_equals_per_message(msg_type):
    e = _depth_events(500, msg_type)
    if msg_type in (122, 145):
        e = e[e["op"] == ev.OP_SET]
    data = B.encode_depth_batch(e, 0.25, 3, Encoding.BINARY, msg_type=msg_type)
    got, end = B.decode_events(data, 0.25, recv_ts_ns=42)
    assert end == len(data)
    msgs = C.Decoder(Encoding.BINARY).feed(data)
    assert len(msgs) == len(data) // M.MESSAGE_CLASSES[msg_type].SPEC.size
    ref = np.concatenate([B.message_to_events(m, 0.25, 42) for m in msgs])
    assert np.array_equal(got, ref)
    levels = got[got["op"] == ev.OP_SET] if msg_type in (122, 145) else got
    assert np.array_equal(levels["price"], e["price"])
    assert np.array_equal(levels["side"], e["side"])
    assert np.array_equal(levels["size"], e["size"])
    if msg_type in (106, 140, 141):
        assert np.array_equal(got["op"], e["op"])
    if msg_type in (140, 141):
        assert np.array_equal(got["flags"] & ev.FLAG_BATCH_END, e["flags"] & ev.FLAG_BATCH_END)
    if msg_type == 106:
        assert np.array_equal(got["ts"], e["ts"])
    if msg_type == 140:
        assert np.array_equal(got["ts"], e["ts"] // 1_000_000 * 1_000_000)
    if msg_type in (122, 145):
        assert got[0]["op"] == ev.OP_CLEAR and got[-1]["flags"] & ev.FLAG_BATCH_END


@pytest.mark.parametrize("msg_type", B.TRADE_TYPES)
def test_batch_trades_round_trip(msg_type):
    rng = np.random.default_rng(msg_type)
    n = 300
    e = ev.trade_events(ts=1_700_000_000_000_000_000 + np.arange(n) * 1_000_000_000,
                        price=19_000 + rng.integers(-40, 40, n), size=rng.integers(1, 50, n).astype(float),
                        side=rng.integers(1, 3, n))
    data = B.encode_trade_batch(e, 0.25, 2, Encoding.BINARY, msg_type=msg_type)
    got, end = B.decode_events(data, 0.25)
    assert end == len(data)
    ref = np.concatenate([B.message_to_events(m, 0.25) for m in C.Decoder(Encoding.BINARY).feed(data)])
    assert np.array_equal(got, ref)
    assert np.array_equal(got["price"], e["price"]) and np.array_equal(got["side"], e["side"])
    assert np.array_equal(got["size"], e["size"]) and (got["kind"] == ev.KIND_TRADE).all()
    if msg_type != 142:
        assert np.array_equal(got["ts"], e["ts"])


def test_batch_mixed_stream_equals_per_message():
    e = _depth_events(200, 1)
    t = ev.trade_events(ts=np.arange(50) * 10**9, price=19_000 + np.arange(50), size=np.ones(50), side=2)
    parts = [B.encode_depth_batch(e[:50], 0.25, 1, Encoding.BINARY, msg_type=106),
             B.encode_trade_batch(t[:10], 0.25, 1, Encoding.BINARY, msg_type=112),
             B.encode_depth_batch(e[50:120], 0.25, 1, Encoding.BINARY, msg_type=140),
             B.encode_depth_batch(e[e["op"] == 1][:30], 0.25, 1, Encoding.BINARY, msg_type=122),
             B.encode_trade_batch(t[10:], 0.25, 1, Encoding.BINARY, msg_type=146)]
    rng = random.Random(5)
    data = b"".join(parts)  # five runs of different types back to back
    got, end = B.decode_events(data, {1: 0.25})
    assert end == len(data)
    ref = np.concatenate([B.message_to_events(m, 0.25) for m in C.Decoder(Encoding.BINARY).feed(data)])
    assert np.array_equal(got, ref)
    # through the client-side stream decoder, cut at random points, with a heartbeat in between
    sd = B.MarketStreamDecoder(Encoding.BINARY, {1: 0.25})
    stream = data + C.encode(M.Heartbeat(), Encoding.BINARY) + data
    items = []
    pos = 0
    while pos < len(stream):
        n = rng.randint(1, 700)
        items += sd.feed(stream[pos:pos + n])
        pos += n
    arrays = [i for i in items if isinstance(i, np.ndarray)]
    assert [type(i).__name__ for i in items if not isinstance(i, np.ndarray)] == ["Heartbeat"]
    assert np.array_equal(np.concatenate(arrays), np.concatenate([ref, ref]))


@pytest.mark.parametrize("enc", [Encoding.JSON, Encoding.JSON_COMPACT])
@pytest.mark.parametrize("msg_type", [106, 140, 122, 107, 112])
def test_batch_json_encoders_decode_to_the_same_events(enc, msg_type):
    if msg_type in B.DEPTH_TYPES:
        e = _depth_events(60, 3)
        if msg_type == 122:
            e = e[e["op"] == ev.OP_SET]
        text = B.encode_depth_batch(e, 0.25, 1, enc, msg_type=msg_type)
        binary = B.encode_depth_batch(e, 0.25, 1, Encoding.BINARY, msg_type=msg_type)
    else:
        e = ev.trade_events(ts=np.arange(40) * 10**9, price=19_000 + np.arange(40), size=np.ones(40), side=1)
        text = B.encode_trade_batch(e, 0.25, 1, enc, msg_type=msg_type)
        binary = B.encode_trade_batch(e, 0.25, 1, Encoding.BINARY, msg_type=msg_type)
    dj = C.Decoder(enc)
    mj = dj.feed(text)
    assert dj.errors == 0
    assert mj == C.Decoder(Encoding.BINARY).feed(binary)


@pytest.mark.parametrize("enc", ENCODINGS)
def test_market_stream_decoder_survives_hostile_streams(enc):
    """The client's batch path: random/mutated market streams never raise, output is well-formed."""
    rng = random.Random(99 + int(enc))
    e = _depth_events(300, 7)
    t = ev.trade_events(ts=np.arange(40) * 10**9, price=19_000 + np.arange(40), size=np.ones(40), side=2)
    clean = (B.encode_depth_batch(e, 0.25, 1, enc, msg_type=140) + C.encode(M.Heartbeat(), enc)
             + B.encode_trade_batch(t, 0.25, 1, enc, msg_type=107)
             + B.encode_depth_batch(e[e["op"] == 1], 0.25, 1, enc, msg_type=122)
             + B.encode_depth_batch(e, 0.25, 2, enc, msg_type=106))
    for trial in range(60):
        data = bytearray(clean)
        if trial % 2:
            for _ in range(rng.randint(1, 30)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(rng.randbytes(rng.randint(1, 5000)))
            # sprinkle plausible headers so the batch scanner really runs on garbage
            for _ in range(20):
                p = rng.randrange(max(1, len(data) - 4))
                data[p:p + 4] = struct.pack("<HH", rng.choice([29, 56, 40, 21, 3, 0]), rng.choice(B.DEPTH_TYPES + B.TRADE_TYPES))
        sd = B.MarketStreamDecoder(enc, {1: 0.25, 2: 0.5})
        pos = 0
        items = []
        while pos < len(data):
            n = rng.randint(1, 900)
            items += sd.feed(bytes(data[pos:pos + n]), recv_ts_ns=5)
            pos += n
        for it in items:
            if isinstance(it, np.ndarray):
                assert it.dtype == ev.EVENT_DTYPE
                assert np.isin(it["side"], [0, 1, 2]).all() and (it["op"] <= ev.OP_CLEAR).all()
                assert np.isin(it["symbol_id"], [1, 2]).all()  # unknown SymbolIDs dropped
            else:
                assert isinstance(it, M.Message)


def test_json_decoding_without_msgspec_gives_the_same_messages(monkeypatch):
    msgs = [M.MarketDepthUpdateLevel(SymbolID=1, Side=2, Price=4810.25, Quantity=3.0, UpdateType=1),
            M.OrderUpdate(Symbol="ESZ5", OrderStatus=7, InfoText="filled"), M.Heartbeat(CurrentDateTime=5)]
    for enc in (Encoding.JSON, Encoding.JSON_COMPACT):
        data = b"".join(C.encode(m, enc) for m in msgs) + b'{"Type":3,"F":[1,\x00'
        fast = C.Decoder(enc)
        out_fast = fast.feed(data)
        monkeypatch.setattr(C, "_loads", json.loads)
        slow = C.Decoder(enc)
        out_slow = slow.feed(data)
        monkeypatch.undo()
        assert out_fast == out_slow == msgs
        assert fast.errors == slow.errors == 1
