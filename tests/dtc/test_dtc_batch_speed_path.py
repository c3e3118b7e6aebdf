"""The one-pass numba decode (app.dtc.batch._decode_fast) gives the events the column path gave.

Real bytes: the shipped ES hour's depth and trades encoded as every batch type the server and
Sierra Chart send, alone, interleaved, cut mid-frame, with snapshots, non-batch frames and
malformed values mixed in. Correctness only (speed is ``mia-elite bench dtc.batch_decode_vs_c``).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.core import events as ev
from app.dtc import batch as B
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding


@pytest.fixture(scope="module")
def es():
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    e = rec.events
    depth = e[(e["kind"] == ev.KIND_DEPTH) & ((e["op"] == ev.OP_SET) | (e["op"] == ev.OP_DELETE))]
    trades = e[e["kind"] == ev.KIND_TRADE]
    return depth, trades


def _same(data, tick, recv=777, start=0):
    p1, p2 = [], []
    a = B.decode_run(data, tick, start=start, recv_ts_ns=recv, problems=p1)
    b = B.decode_run(data, tick, start=start, recv_ts_ns=recv, problems=p2, one_pass=False)
    assert a[1:] == b[1:], (a[1:], b[1:])
    assert a[0].dtype == ev.EVENT_DTYPE
    assert a[0].tobytes() == b[0].tobytes()
    assert p1 == p2
    return a, p1


@pytest.mark.parametrize("mt", [106, 140, 141])
def test_real_depth_every_update_type(es, mt):
    depth, _ = es
    data = B.encode_depth_batch(depth, 0.25, 3, Encoding.BINARY, msg_type=mt)
    (out, end, n), problems = _same(data, 0.25)
    assert n == len(depth) == out.shape[0] and end == len(data) and not problems
    assert np.array_equal(out["price"], depth["price"]) and np.array_equal(out["side"], depth["side"])
    _same(data, {3: 0.25})


@pytest.mark.parametrize("mt", [107, 112, 137, 142, 146])
def test_real_trades_every_trade_type(es, mt):
    _, trades = es
    data = B.encode_trade_batch(trades, 0.25, 5, Encoding.BINARY, msg_type=mt)
    (out, end, n), _ = _same(data, 0.25)
    assert n == len(trades) and np.array_equal(out["price"], trades["price"])


def test_interleaved_types_snapshots_and_stops(es):
    depth, trades = es
    parts = []
    for i, mt in enumerate([106, 140, 107, 141, 146, 137, 112, 142]):
        chunk = depth[i * 500:(i + 1) * 500] if mt in (106, 140, 141) else trades[i * 50:(i + 1) * 50]
        enc = B.encode_depth_batch if mt in (106, 140, 141) else B.encode_trade_batch
        parts.append(enc(chunk, 0.25, 1 + i % 2, Encoding.BINARY, msg_type=mt))
    snap = depth[:40].copy()
    snap_bytes = B.encode_depth_batch(snap, 0.25, 1, Encoding.BINARY, msg_type=122)
    data = b"".join(parts[:3]) + snap_bytes + b"".join(parts[3:])
    (out, end, n), _ = _same(data, {1: 0.25, 2: 0.25})
    assert end == len(data)
    assert np.count_nonzero(out["op"] == ev.OP_CLEAR) >= 1  # the snapshot's clear came through
    # a non-batch frame ends the run; an incomplete frame too
    hb = C.encode(M.Heartbeat(), Encoding.BINARY)
    cut = parts[0] + hb + parts[1]
    (out, end, n), _ = _same(cut, 0.25)
    assert end == len(parts[0])
    (out2, end2, n2), _ = _same(cut, 0.25, start=end + len(hb))
    assert end2 == len(cut)
    (out, end, n), _ = _same(parts[0][:-7], 0.25)
    assert end == len(parts[0]) - 56


def test_malformed_values_and_unknown_symbols_are_reported_the_same(es):
    depth, _ = es
    data = bytearray(B.encode_depth_batch(depth[:3000], 0.25, 1, Encoding.BINARY, msg_type=106))
    struct.pack_into("<H", data, 56 * 100 + 8, 7)  # Side 7
    struct.pack_into("<d", data, 56 * 200 + 16, float("nan"))  # price NaN
    struct.pack_into("<d", data, 56 * 300 + 24, -5.0)  # negative size
    data[56 * 400 + 32] = 9  # UpdateType 9
    (out, end, n), problems = _same(bytes(data), 0.25)
    assert n == 3000 and out.shape[0] == 3000 - 4 and len(problems) == 4
    other = bytearray(B.encode_depth_batch(depth[:50], 0.25, 9, Encoding.BINARY, msg_type=140))
    mixed = bytes(data[: 56 * 50]) + bytes(other) + bytes(data[56 * 50:])
    (out, end, n), problems = _same(mixed, {1: 0.25})  # SymbolID 9 not subscribed
    assert any("not subscribed" in r for _, r in problems)
    _same(bytes(data), {})
    with pytest.raises(ValueError, match="tick_size"):
        B.decode_run(bytes(data), 0.0)
    assert B.decode_run(b"", 0.0)[2] == 0


def test_small_frames_after_a_large_one_refill_the_room(es):
    """The room is sized by the first frame (56 bytes); 19-byte trades after it fill it, and
    the decode goes on from where it stopped."""
    depth, trades = es
    big = B.encode_depth_batch(depth[:1], 0.25, 1, Encoding.BINARY, msg_type=106)
    small = B.encode_trade_batch(np.tile(trades, 2), 0.25, 1, Encoding.BINARY, msg_type=142)
    assert len(big) == 56 and len(small) == 19 * 2 * len(trades)
    data = big + small
    (out, end, n), _ = _same(data, 0.25)
    assert n == 1 + 2 * len(trades) and end == len(data)
    assert (len(data) // 56 + 1) < n  # more frames than the first room held
