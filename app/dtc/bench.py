"""DTC codec benchmarks for ``mia-elite bench dtc``: figures with a same-run baseline.

The input is the real CME ES depth of the shipped sample (``app.feeds.samples``), encoded as
DTC messages (tiled to the wanted count); a synthetic stream is used only if the sample cannot
be loaded (the figure says which). Speeds are printed, never asserted.

Figures (targets from issue 3):

* ``dtc.depth_batch_decode``: binary 106 stream -> EVENT_DTYPE with :func:`app.dtc.batch.decode_events`
  (target >= 2,000,000 msg/s); baseline: per-field ``struct.unpack_from`` into one dict per message.
* ``dtc.depth_batch_decode_140``: the same for the pack(1) float messages Sierra Chart sends.
* ``dtc.binary_decode``: :class:`app.dtc.codec.Decoder` on the binary 106 stream fed in 64 KiB
  reads, one message object each (target >= 300,000 msg/s); same baseline.
* ``dtc.json_depth_decode``: :class:`~app.dtc.codec.Decoder` on the JSON 106 stream (target >=
  150,000 msg/s); baseline: split on NUL + ``json.loads`` into dicts.
* ``dtc.depth_batch_encode``: :func:`app.dtc.batch.encode_depth_batch` binary (what the server
  sends); baseline: :func:`app.dtc.codec.encode` per message object.
"""

from __future__ import annotations

import json
import struct
import time

import numpy as np

from app.dtc import batch as B
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding
from app.feeds import events as ev


def _depth_events(n: int):
    try:
        from app.feeds.samples import load_default_sample

        rec = load_default_sample()
        e = rec.events[rec.events["kind"] == ev.KIND_DEPTH]
        e = e[(e["op"] == ev.OP_SET) | (e["op"] == ev.OP_DELETE)]
        tick = rec.instrument.tick_size
        source = f"real {rec.instrument.symbol} depth (shipped sample, {e.shape[0]} events, tiled)"
    except Exception as exc:  # noqa: BLE001 - benchmark still runs, and says so
        rng = np.random.default_rng(0)
        m = 50_000
        e = ev.depth_events(ts=1_700_000_000_000_000_000 + np.arange(m) * 1000, price=19_000 + rng.integers(-50, 50, m),
                            size=rng.integers(0, 300, m).astype(float), side=rng.integers(1, 3, m), op=1,
                            flags=ev.FLAG_BATCH_END)
        tick = 0.25
        source = f"synthetic depth (sample unavailable: {exc})"
    reps = -(-n // max(1, e.shape[0]))
    return np.tile(e, reps)[:n], tick, source


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _per_field_unpack_baseline(data: bytes, msg_type: int):
    """Plain reference: header unpack, then one struct.unpack_from per field into a dict."""
    spec = M.MESSAGE_CLASSES[msg_type].SPEC
    fields = [(f.name, struct.Struct("<" + f.code), f.offset) for f in spec.fields if f.kind != "str"]
    hdr = struct.Struct("<HH")

    def run():
        out = []
        off = 0
        n = len(data)
        while off + 4 <= n:
            size, _typ = hdr.unpack_from(data, off)
            d = {}
            for name, st, fo in fields:
                d[name] = st.unpack_from(data, off + fo)[0]
            out.append(d)
            off += size
        return out

    return run


def _fig(name, n, secs, base_secs, target, unit="msg/s", **extra):
    value = n / secs
    base = n / base_secs if base_secs else None
    d = {"name": name, "value": round(value), "unit": unit, "baseline": round(base) if base else None,
         "ratio": round(value / base, 2) if base else None, "target": target, "n": n}
    d.update(extra)
    return d


def bench_batch_decode(args):
    n = 100_000 if args.quick else 400_000
    rep = 2 if args.quick else 5
    events, tick, source = _depth_events(n)
    for mt, name in ((106, "dtc.depth_batch_decode"), (140, "dtc.depth_batch_decode_140")):
        data = B.encode_depth_batch(events, tick, 1, Encoding.BINARY, msg_type=mt)
        B.decode_events(data[:10_000], tick)  # compile / warm
        out = B.decode_events(data, tick)[0]
        assert out.shape[0] == n
        t = _best(lambda: B.decode_events(data, tick), rep)
        nb = min(n, 100_000)
        base_data = data[: nb * M.MESSAGE_CLASSES[mt].SPEC.size]
        tb = _best(_per_field_unpack_baseline(base_data, mt), 1 if args.quick else 2) * (n / nb)
        yield _fig(name, n, t, tb, 2_000_000, data=source, baseline_kind="per-field struct.unpack into dicts")


def bench_binary_decode(args):
    n = 50_000 if args.quick else 200_000
    events, tick, source = _depth_events(n)
    data = B.encode_depth_batch(events, tick, 1, Encoding.BINARY, msg_type=106)
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]

    def run():
        d = C.Decoder(Encoding.BINARY)
        k = 0
        for c in chunks:
            k += len(d.feed(c))
        assert k == n

    t = _best(run, 2 if args.quick else 3)
    tb = _best(_per_field_unpack_baseline(data, 106), 1 if args.quick else 2)
    yield _fig("dtc.binary_decode", n, t, tb, 300_000, data=source,
               baseline_kind="per-field struct.unpack into dicts")


def bench_json_decode(args):
    n = 30_000 if args.quick else 150_000
    events, tick, source = _depth_events(n)
    for enc, name in ((Encoding.JSON, "dtc.json_depth_decode"), (Encoding.JSON_COMPACT, "dtc.json_compact_depth_decode")):
        data = B.encode_depth_batch(events, tick, 1, enc, msg_type=106)
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]

        def run():
            d = C.Decoder(enc)
            k = 0
            for c in chunks:
                k += len(d.feed(c))
            assert k == n, (k, n)

        def baseline():
            loads = json.loads
            return [loads(p) for p in data.split(b"\x00") if p]

        t = _best(run, 2 if args.quick else 3)
        tb = _best(baseline, 2 if args.quick else 3)
        yield _fig(name, n, t, tb, 150_000, data=source, baseline_kind="split on NUL + json.loads into dicts")


def bench_encode(args):
    n = 100_000 if args.quick else 400_000
    events, tick, source = _depth_events(n)
    for enc in (Encoding.BINARY, Encoding.JSON):
        t = _best(lambda: B.encode_depth_batch(events, tick, 1, enc, msg_type=106), 2 if args.quick else 3)
        nb = min(n, 30_000)
        sub = events[:nb]
        msgs = [M.MarketDepthUpdateLevel(SymbolID=1, Side=int(e["side"]), Price=float(e["price"]) * tick,
                                         Quantity=float(e["size"]), UpdateType=int(e["op"]),
                                         DateTime=int(e["ts"]) / 1e9, NumOrders=int(e["num_orders"])) for e in sub]
        tb = _best(lambda: [C.encode(m, enc) for m in msgs], 1 if args.quick else 2) * (n / nb)
        yield _fig(f"dtc.depth_batch_encode_{enc.name.lower()}", n, t, tb, 200_000, data=source,
                   baseline_kind="codec.encode per message object")


BENCHMARKS = {
    "dtc.batch_decode": bench_batch_decode,
    "dtc.binary_decode": bench_binary_decode,
    "dtc.json_decode": bench_json_decode,
    "dtc.encode": bench_encode,
}
