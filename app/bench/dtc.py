"""DTC codec benchmarks for ``mia-elite bench dtc``: figures with a same-run baseline.

The input is the real CME ES depth of the shipped sample (``app.feeds.samples``), encoded as
DTC messages (tiled to the wanted count); a synthetic stream is used only if the sample cannot
be loaded (the figure says which). Speeds are printed, never asserted.

Figures (targets from issue 3):

* ``dtc.depth_batch_decode``: binary 106 stream -> EVENT_DTYPE with :func:`app.dtc.batch.decode_events`
  (target >= 2,000,000 msg/s); baseline: per-field ``struct.unpack_from`` into one dict per message.
* ``dtc.depth_batch_decode_140``: the same for the pack(1) float messages Sierra Chart sends.
* ``dtc.depth_batch_decode_vs_c`` (and ``_cached``): the same 106 bytes decoded by
  :func:`app.dtc.batch.decode_events` and by a small C reference decoder written here
  (:data:`C_REFERENCE`, compiled with ``cc -O2`` in a temporary folder when a C compiler is on
  PATH): the same frame walk, the same checks (side, update type, finite price and size), the
  same conversions (``rint(price / tick)``, double seconds rounded to microseconds, then ns) into
  the same 40-byte event records, each call into a freshly allocated output as
  ``decode_events`` does. Value: MIA msg/s; baseline: C msg/s; ratio MIA/C (issue 18: >= 0.5).
  ``_cached`` decodes the shipped sample's 62,071 messages once (they fit in the CPU caches);
  the main figure the tiled stream. Without a compiler the figure says so.
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
from app.core import events as ev


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


#: The C reference decoder of ``dtc.depth_batch_decode_vs_c`` (106 MARKET_DEPTH_UPDATE_LEVEL,
#: layout of app/dtc/messages.py: Size u16, Type u16, SymbolID u32, Side u16 @8, Price f8 @16,
#: Quantity f8 @24, UpdateType u8 @32, DateTime f8 @40, NumOrders u32 @48; 56 bytes).
C_REFERENCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef struct { int64_t ts, price; double size; uint32_t num_orders; uint8_t kind, side, op, flags;
                 uint32_t symbol_id, pad; } Event;  /* EVENT_DTYPE, 40 bytes */
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static long decode(const uint8_t *b, long n, double tick, Event *out) {
    long off = 0, k = 0;
    while (off + 4 <= n) {
        uint16_t size, typ; memcpy(&size, b + off, 2); memcpy(&typ, b + off + 2, 2);
        if (size < 56 || off + size > n || typ != 106) break;
        uint32_t sid, no; uint16_t side; double px, q, dt; uint8_t op = b[off + 32];
        memcpy(&sid, b + off + 4, 4); memcpy(&side, b + off + 8, 2); memcpy(&px, b + off + 16, 8);
        memcpy(&q, b + off + 24, 8); memcpy(&dt, b + off + 40, 8); memcpy(&no, b + off + 48, 4);
        double t = px / tick;
        if (!(isfinite(t) && fabs(t) < 9e15 && fabs(px) < 3e38 && isfinite(q) && q >= 0 &&
              (side == 1 || side == 2) && (op == 1 || op == 2))) break;
        double us = rint(dt * 1e6);
        Event *e = &out[k++];
        e->ts = (isfinite(us) && fabs(us) < 9e15) ? (int64_t)us * 1000 : 0;
        e->price = (int64_t)rint(t); e->size = q; e->num_orders = no; e->kind = 1; e->side = (uint8_t)side;
        e->op = op; e->flags = 1; e->symbol_id = sid; e->pad = 0;
        off += size;
    }
    return k;
}
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb"); if (!f) return 2;
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n); if (fread(b, 1, n, f) != (size_t)n) return 3; fclose(f);
    int reps = atoi(argv[2]); double tick = atof(argv[3]), best = 1e9; long k = 0; long long sum = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        Event *out = malloc(sizeof(Event) * (n / 56 + 1));
        k = decode(b, n, tick, out);
        double t = now() - t0;
        if (t < best) best = t;
        for (long i = 0; i < k; i++) sum += out[i].price + out[i].ts;
        free(out);
    }
    printf("%ld %.9f %lld\n", k, best, sum);
    return 0;
}
"""


def _c_reference(data: bytes, tick: float, reps: int):
    """Compile and run :data:`C_REFERENCE` on ``data``; (messages, best seconds, checksum) or a
    reason string when no C compiler works."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return "no C compiler (cc/gcc/clang) on PATH"
    with tempfile.TemporaryDirectory() as d:
        src, exe, inp = Path(d) / "ref.c", Path(d) / "ref", Path(d) / "depth106.bin"
        src.write_text(C_REFERENCE)
        inp.write_bytes(data)
        r = subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-lm"], capture_output=True, text=True)
        if r.returncode:
            return f"C compile failed: {r.stderr.strip()[:200]}"
        r = subprocess.run([str(exe), str(inp), str(reps), repr(tick)], capture_output=True, text=True, timeout=120)
        if r.returncode:
            return f"C reference failed (exit {r.returncode})"
        k, secs, checksum = r.stdout.split()
        return int(k), float(secs), int(checksum)


def bench_batch_decode_vs_c(args):
    rep = 5 if args.quick else 15
    events, tick, source = _depth_events(100_000 if args.quick else 400_000)
    once = events[: min(len(events), 62_071)]
    for name, ev_in in (("dtc.depth_batch_decode_vs_c_cached", once), ("dtc.depth_batch_decode_vs_c", events)):
        data = B.encode_depth_batch(ev_in, tick, 1, Encoding.BINARY, msg_type=106)
        out = B.decode_events(data, tick)[0]
        n = out.shape[0]
        t = _best(lambda: B.decode_events(data, tick), rep)
        ref = _c_reference(data, tick, rep)
        if isinstance(ref, str):
            yield _fig(name, n, t, None, ">= 0.5 x C", data=source, baseline_kind=f"skipped: {ref}")
            continue
        k, tc, checksum = ref
        expect = (int(out["price"].sum()) + int(out["ts"].sum())) * rep  # C sums wrap at 64 bits
        same = k == n and checksum == (expect + 2**63) % 2**64 - 2**63
        yield _fig(name, n, t, tc, ">= 0.5 x C", data=source, same_events=bool(same),
                   baseline_kind="C reference decoder (cc -O2), same bytes, same conversions")


BENCHMARKS = {
    "dtc.batch_decode": bench_batch_decode,
    "dtc.batch_decode_vs_c": bench_batch_decode_vs_c,
    "dtc.binary_decode": bench_binary_decode,
    "dtc.json_decode": bench_json_decode,
    "dtc.encode": bench_encode,
}


# --------------------------------------------------------------------------------------------
# client over loopback: the built-in server (own thread and loop) -> DTCClient batch path
# --------------------------------------------------------------------------------------------


class _ServerThread:
    """The built-in server replaying the shipped sample, on its own thread and event loop."""

    def __init__(self, rec):
        import asyncio
        import threading

        self.rec = rec
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.srv = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-dtc-server")

    def _run(self):
        import asyncio

        from app.sim.server import DTCServer

        asyncio.set_event_loop(self.loop)
        self.srv = DTCServer(self.rec, port=0, speed=0, loop_replay=True, paused=True)
        self.loop.run_until_complete(self.srv.start())
        self.ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        if not self.ready.wait(20):
            raise RuntimeError("benchmark server did not start")
        return self

    def call(self, fn):
        self.loop.call_soon_threadsafe(fn)

    def stop(self):
        import asyncio

        fut = asyncio.run_coroutine_threadsafe(self.srv.stop(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


async def _measure(server: _ServerThread, seconds: float, make_reader):
    """Run the replay ``seconds``, then wait until the reader got every byte; msgs/s received."""
    import asyncio

    count, nbytes, close = await make_reader(server.srv.port)
    for _ in range(200):  # subscribed and snapshot read
        if any(c.depth_subs for c in list(server.srv.conns.values())):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    n0 = count()
    t0 = time.perf_counter()
    server.call(server.srv.resume)
    await asyncio.sleep(seconds)
    server.call(server.srv.pause)
    await asyncio.sleep(0.05)
    target = server.srv.stats["bytes_out"]
    for _ in range(600):
        if nbytes() >= target:
            break
        await asyncio.sleep(0.05)
    t1 = time.perf_counter()
    n = count() - n0
    await close()
    return n / (t1 - t0), n


def bench_client_loopback(args):
    """End to end: server -> DTCClient (binary, float depth, batch path) -> event batches."""
    import asyncio

    from app.dtc.client import DTCClient
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    symbol = rec.instrument.symbol
    seconds = 1.5 if args.quick else 4.0

    async def client_reader(port):
        events = [0]
        cl = DTCClient("127.0.0.1", port, heartbeat_s=30, depth_float=True)
        await cl.connect()
        await cl.subscribe_market(symbol, on_events=lambda b: events.__setitem__(0, events[0] + b.shape[0]))

        async def close():
            await cl.close()

        return (lambda: cl.messages_received), (lambda: cl.bytes_received), close

    async def per_message_reader(port):
        """Plain reference: the same connection decoded into one message object per message."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(C.encode(M.EncodingRequest(Encoding=0), Encoding.BINARY))
        writer.write(C.encode(M.LogonRequest(HeartbeatIntervalInSeconds=30, ClientName="bench",
                                             Integer_1=int(M.LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES)),
                              Encoding.BINARY))
        writer.write(C.encode(M.MarketDataRequest(SymbolID=1, Symbol=symbol), Encoding.BINARY))
        writer.write(C.encode(M.MarketDepthRequest(SymbolID=1, Symbol=symbol), Encoding.BINARY))
        dec = C.Decoder(Encoding.BINARY)
        state = {"n": 0, "b": 0}

        async def loop():
            try:
                while True:
                    data = await reader.read(1 << 17)
                    if not data:
                        return
                    state["b"] += len(data)
                    state["n"] += len(dec.feed(data))
            except (OSError, asyncio.CancelledError):
                return

        task = asyncio.get_running_loop().create_task(loop())

        async def close():
            task.cancel()
            writer.close()

        return (lambda: state["n"]), (lambda: state["b"]), close

    rates = {}
    for name, maker in (("client", client_reader), ("baseline", per_message_reader)):
        server = _ServerThread(rec).start()
        try:
            rates[name] = asyncio.run(_measure(server, seconds, maker))
        finally:
            server.stop()
    (v, n), (b, _nb) = rates["client"], rates["baseline"]
    yield {"name": "dtc.client_loopback_binary", "value": round(v), "unit": "msg/s", "baseline": round(b),
           "ratio": round(v / b, 2) if b else None, "target": 200_000, "n": n,
           "data": f"real {symbol} replay at max speed, server on its own thread",
           "baseline_kind": "same stream decoded by codec.Decoder into message objects"}


BENCHMARKS["dtc.client_loopback"] = bench_client_loopback
