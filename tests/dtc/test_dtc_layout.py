"""Every binary message's size and field offsets equal the official ones (g++ offsetof table)."""

from __future__ import annotations

import re
import struct

import pytest

from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding


def _parse_offsets(path):
    """``dtc-struct-offsets.txt`` -> {struct name: (size, pack, [(offset, size, ctype, name), ...])}."""
    out = {}
    cur = None
    for line in path.read_text().splitlines():
        m = re.match(r"STRUCT (s_\w+) size=(\d+) pack=(\d+)", line)
        if m:
            cur = []
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)), cur)
            continue
        m = re.match(r"\s+(\d+)\s+(\d+)\s+(\S+)\s+(.+?)\s*(\(anonymous union\))?$", line)
        if m and cur is not None:
            names = [n.strip().split("[")[0] for n in m.group(4).split("|")]
            ctype = m.group(3).replace("DTC::", "")
            cur.append((int(m.group(1)), int(m.group(2)), ctype, names))
    return out


@pytest.fixture(scope="module")
def official(shared_reference):
    path = shared_reference / "dtc-struct-offsets.txt"
    table = _parse_offsets(path)
    assert len(table) > 90, "offsets table not parsed"
    return table


# the messages the issue names (every one must be defined and match)
REQUIRED = [
    "EncodingRequest", "EncodingResponse", "LogonRequest", "LogonResponse", "Heartbeat", "Logoff",
    "MarketDataRequest", "MarketDataReject", "MarketDataSnapshot", "MarketDataUpdateTrade",
    "MarketDataUpdateTradeCompact", "MarketDataUpdateTradeWithUnbundledIndicator",
    "MarketDataUpdateTradeWithUnbundledIndicator2", "MarketDataUpdateBidAsk", "MarketDataUpdateBidAskCompact",
    "MarketDataUpdateBidAskFloatWithMicroseconds", "MarketDepthRequest", "MarketDepthReject",
    "MarketDepthSnapshotLevel", "MarketDepthSnapshotLevelFloat", "MarketDepthUpdateLevel",
    "MarketDepthUpdateLevelFloatWithMilliseconds", "MarketDepthUpdateLevelNoTimestamp",
    "SecurityDefinitionForSymbolRequest", "SecurityDefinitionResponse", "SubmitNewSingleOrder",
    "SubmitNewOCOOrder", "CancelOrder", "CancelReplaceOrder", "OpenOrdersRequest", "OrderUpdate",
    "CurrentPositionsRequest", "PositionUpdate", "TradeAccountsRequest", "TradeAccountResponse",
    "AccountBalanceRequest", "AccountBalanceUpdate", "HistoricalPriceDataRequest",
    "HistoricalPriceDataResponseHeader", "HistoricalPriceDataRecordResponse",
    "HistoricalPriceDataTickRecordResponse", "HistoricalPriceDataReject",
]


def test_required_messages_defined():
    missing = [n for n in REQUIRED if n not in M.CLASSES_BY_NAME]
    assert not missing


@pytest.mark.parametrize("name", sorted(M.CLASSES_BY_NAME))
def test_layout_matches_official(name, official):
    cls = M.CLASSES_BY_NAME[name]
    size, pack, rows = official["s_" + name]
    spec = cls.SPEC
    assert spec.size == size
    assert spec.pack == pack
    assert rows[0][3] == ["Size"] and rows[1][3] == ["Type"]
    ours = spec.fields
    assert len(ours) == len(rows) - 2
    for f, (off, fsize, ctype, names) in zip(ours, rows[2:]):
        assert f.name in names, (f.name, names)
        assert f.offset == off, f.name
        assert f.size == fsize, f.name
        assert f.ctype.split("[")[0] == ctype, f.name
    # the encoded message has that size and the header in place
    data = C.encode(cls(), Encoding.BINARY)
    assert len(data) == size
    assert struct.unpack_from("<HH", data) == (size, cls.TYPE)


@pytest.mark.parametrize("name", sorted(M.CLASSES_BY_NAME))
def test_every_field_lands_at_its_offset(name, official):
    """Write a distinct value into each field and find it at the official offset."""
    cls = M.CLASSES_BY_NAME[name]
    size, pack, rows = official["s_" + name]
    offsets = {names[0]: (off, fsize) for off, fsize, ctype, names in rows[2:]}
    for i, f in enumerate(cls.SPEC.fields):
        if f.kind == "str":
            value = "AB"[: max(1, min(2, f.size - 1))]
            expect = value.encode()
        elif f.kind == "float":
            value = 2.5 + i
            expect = struct.pack("<" + f.code, value)
        else:
            value = (i % 100) + 3
            expect = struct.pack("<" + f.code, value)
        data = C.encode(cls(**{f.name: value}), Encoding.BINARY)
        off, fsize = offsets.get(f.name, offsets.get("OpenInterest") if f.name == "NumTrades" else None)
        assert data[off:off + len(expect)] == expect, f.name


def test_clear_defaults_are_the_headers():
    assert M.MarketDataSnapshot().BidPrice == M.UNSET_DOUBLE
    assert M.MarketDataSnapshot().SessionNumTrades == M.UNSET_UINT32
    assert M.OrderUpdate().Price1 == M.UNSET_DOUBLE
    assert M.MarketDataUpdateBidAskCompact().BidPrice == M.UNSET_FLOAT
    assert M.LogonResponse().MarketDepthIsSupported == 1
    assert M.CancelReplaceOrder().Price1IsSet == 1
    assert M.SecurityDefinitionResponse().PriceDisplayFormat == -1
    assert M.EncodingRequest().ProtocolType == "DTC"
    assert M.is_unset(M.UNSET_DOUBLE) and M.is_unset(M.UNSET_FLOAT) and not M.is_unset(4810.25)


def test_unknown_field_name_is_an_error():
    with pytest.raises(TypeError, match="StopPrice"):
        M.SubmitNewSingleOrder(StopPrice=1.0)
