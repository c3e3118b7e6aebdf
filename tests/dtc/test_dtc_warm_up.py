"""The batch decoder's background warm-up: while the kernels compile, the client's stream decoder
decodes message by message and gives the same events; afterwards it takes the batch path.

Real data: the shipped ES hour encoded as the built-in server sends it (depth updates 106 and
trades 112, in the recording's order), read in random cuts as off a socket.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from app.core import events as ev
from app.dtc import batch as B
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding


@pytest.fixture(scope="module")
def es_stream():
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    e = rec.events[:20_000]
    kinds = e["kind"]
    cuts = np.flatnonzero(np.diff(kinds)) + 1
    parts = []
    for run in np.split(e, cuts):
        if run["kind"][0] == ev.KIND_DEPTH:
            run = run[run["op"] != ev.OP_CLEAR]
            parts.append(B.encode_depth_batch(run, rec.instrument.tick_size, 1, Encoding.BINARY, msg_type=106))
        else:
            parts.append(B.encode_trade_batch(run, rec.instrument.tick_size, 1, Encoding.BINARY, msg_type=112))
        if len(parts) % 50 == 0:
            parts.append(C.encode(M.Heartbeat(), Encoding.BINARY))
    return b"".join(parts), rec.instrument.tick_size


def _read(sd, data, seed, on_half=None):
    rng = random.Random(seed)
    items, pos, half = [], 0, len(data) // 2
    while pos < len(data):
        n = rng.randint(1, 3000)
        items += sd.feed(data[pos:pos + n])
        pos += n
        if on_half is not None and pos >= half:
            on_half()
            on_half = None
    arrays = [i for i in items if isinstance(i, np.ndarray)]
    others = [type(i).__name__ for i in items if not isinstance(i, np.ndarray)]
    return np.concatenate(arrays), others


@pytest.mark.parametrize("market_clock", [False, True])
def test_decoder_during_warm_up_gives_the_batch_path_events(es_stream, monkeypatch, market_clock):
    data, tick = es_stream
    ref, ref_other = _read(B.MarketStreamDecoder(Encoding.BINARY, {1: tick}, market_clock=market_clock), data, 1)
    pending = threading.Event()  # a warm-up still running
    monkeypatch.setattr(B, "_warm", pending)
    sd = B.MarketStreamDecoder(Encoding.BINARY, {1: tick}, market_clock=market_clock)
    seen = {}

    def finish():
        seen["frames_while_pending"] = sd.batch_frames
        pending.set()  # the kernels are ready half-way through the stream, inside a cut frame

    got, other = _read(sd, data, 1, on_half=finish)
    assert seen["frames_while_pending"] == 0  # message by message while the warm-up ran
    assert sd.batch_frames > 0  # the batch path took over once it was done
    assert sd.dropped == 0 and other == ref_other
    assert got.shape[0] > 15_000
    assert np.array_equal(got, ref)


def test_warm_up_in_background_compiles_then_releases_the_batch_path(monkeypatch):
    monkeypatch.setattr(B, "_warm", None)
    assert B.batch_path_ready()  # no warm-up started: the batch path as before
    done = B.warm_up_in_background()
    assert B.warm_up_in_background() is done  # idempotent
    assert done.wait(600), "the warm-up did not finish"
    assert B.batch_path_ready()
    assert B.warm_up() == 10


def test_failed_warm_up_still_releases_the_batch_path(monkeypatch):
    monkeypatch.setattr(B, "_warm", None)

    def broken():
        raise RuntimeError("compiler exploded")

    monkeypatch.setattr(B, "warm_up", broken)
    done = B.warm_up_in_background()
    assert done.wait(60)
    assert B.batch_path_ready()
