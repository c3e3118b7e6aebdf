"""Benchmark ``dtc.server_depth``: built-in DTC server -> client over loopback, depth messages per
second, sustained, with one slow client connected.

The server replays the shipped real ES hour at maximum speed (looping) to one subscribed client;
the client runs in a thread with a blocking socket and only counts bytes (so the figure is the
server's send path: replay clock, book, batch encoding, socket writes). A second client is
subscribed too and never reads (a 4 KiB receive buffer, no ``recv``): the replay must not wait
for it (issue 13: it is conflated, then logged off). A figure is taken from resume until the
reading client has received every byte the server sent it.

Baseline (same run, same loopback): a plain asyncio server that builds one message object per
depth event and encodes it with :func:`app.dtc.codec.encode` (the per-message path).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding
from app.core.events import KIND_DEPTH

TARGET_MSGS_PER_S = 200_000


class _Counter:
    def __init__(self, port: int, encoding: Encoding, subscribe: bool):
        self.port = port
        self.encoding = encoding
        self.subscribe = subscribe
        self.bytes = 0
        self.stop = False
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-client")

    def _run(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            if self.subscribe:
                if self.encoding != Encoding.BINARY:
                    s.sendall(codec.encoding_request(self.encoding))
                    got = b""
                    while len(got) < 16:
                        got += s.recv(16 - len(got))
                    self.bytes += len(got)
                enc = self.encoding
                s.sendall(codec.encode(M.LogonRequest(HeartbeatIntervalInSeconds=60, ClientName="bench"), enc))
                s.sendall(codec.encode(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"), enc))
            self.ready.set()
            s.settimeout(0.5)
            while not self.stop:
                try:
                    data = s.recv(1 << 20)
                except socket.timeout:
                    continue
                if not data:
                    break
                self.bytes += len(data)
        finally:
            s.close()

    def start(self) -> "_Counter":
        self.thread.start()
        return self


async def _wait(pred, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if pred():
            return True
        await asyncio.sleep(0.005)
    return pred()


def _slow_client(port: int) -> socket.socket:
    """A subscribed client that never reads (4 KiB receive buffer, no ``recv``)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 12)
    s.connect(("127.0.0.1", port))
    s.sendall(codec.encode(M.LogonRequest(HeartbeatIntervalInSeconds=0, ClientName="bench-slow"), Encoding.BINARY)
              + codec.encode(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"), Encoding.BINARY))
    return s


async def _server_rate(rec, encoding: Encoding, seconds: float) -> tuple[float, int, dict]:
    """Depth msgs/s received by the reading client (the slow one connected and subscribed too)."""
    from app.sim.server import DTCServer

    srv = DTCServer(rec, port=0, speed=0, loop_replay=True, paused=True)
    await srv.start()
    slow = None
    try:
        cl = _Counter(srv.port, encoding, subscribe=True).start()
        ok = await _wait(lambda: any(c.depth_subs for c in srv.conns.values()), 10)
        if not ok:
            raise RuntimeError("benchmark client did not subscribe")
        good = next(c for c in srv.conns.values() if c.depth_subs)
        slow = _slow_client(srv.port)
        if not await _wait(lambda: sum(1 for c in srv.conns.values() if c.depth_subs) == 2, 10):
            raise RuntimeError("the slow benchmark client did not subscribe")
        await _wait(lambda: cl.bytes >= good.bytes_out, 5)
        m0 = good.msgs_out  # the reading client subscribed depth only: its messages are depth
        t0 = time.perf_counter()
        srv.resume()
        await asyncio.sleep(seconds)
        srv.pause()
        target = good.bytes_out
        await _wait(lambda: cl.bytes >= target, 30)
        t1 = time.perf_counter()
        n = good.msgs_out - m0
        cl.stop = True
        st = srv.stats
        extra = {k: st[k] for k in ("slow_clients_conflated", "slow_clients_dropped", "conflated_messages")}
        return n / (t1 - t0), n, extra
    finally:
        if slow is not None:
            slow.close()
        await srv.stop()


async def _baseline_rate(rec, n_events: int) -> float:
    dep = rec.events[rec.events["kind"] == KIND_DEPTH][:n_events]
    tick = rec.instrument.tick_size
    cols = (dep["side"].tolist(), (dep["price"] * tick).tolist(), dep["size"].tolist(), dep["op"].tolist(),
            (dep["ts"] / 1e9).tolist(), dep["num_orders"].tolist())
    total = {"bytes": 0}
    done = asyncio.Event()

    async def handler(reader, writer):
        for i, (sd, px, q, op, ts, no) in enumerate(zip(*cols)):
            data = codec.encode(M.MarketDepthUpdateLevel(SymbolID=1, Side=sd, Price=px, Quantity=q, UpdateType=op,
                                                         DateTime=ts, NumOrders=no), Encoding.BINARY)
            writer.write(data)
            total["bytes"] += len(data)
            if i % 1000 == 999:
                await writer.drain()
        await writer.drain()
        done.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.perf_counter()
        cl = _Counter(port, Encoding.BINARY, subscribe=False).start()
        await asyncio.wait_for(done.wait(), 120)
        await _wait(lambda: cl.bytes >= total["bytes"], 30)
        t1 = time.perf_counter()
        cl.stop = True
        return len(dep) / (t1 - t0)
    finally:
        server.close()


def _repeated(rec, times: int):
    """The recording played ``times`` times back to back as one (each copy's times shifted by the
    hour's span + 1 s), so the bench measures one long pass: a looping replay waits out the
    minimum pass period (``ReplayClock.min_pass_s``), which is not the server's speed."""
    import numpy as np

    from app.feeds.recording import Recording

    ev = rec.events
    span = int(ev["ts"][-1]) - int(ev["ts"][0]) + 1_000_000_000
    parts = []
    for k in range(int(times)):
        c = ev.copy()
        c["ts"] += k * span
        parts.append(c)
    return Recording(instrument=rec.instrument, events=np.concatenate(parts), source=f"{rec.source} x{times}")


def bench_server_depth(args):
    """Yield server->client depth msgs/s received by a reading client while a client that never
    reads is connected (binary with the 200,000 target, JSON informative), each vs the baseline.
    Input: the shipped ES hour played 8 times back to back (one pass, no loop wait)."""
    from app.feeds.samples import load_default_sample

    rec = _repeated(load_default_sample(), 8)
    quick = bool(getattr(args, "quick", False))
    seconds = 1.5 if quick else 4.0
    base = asyncio.run(_baseline_rate(rec, 20_000 if quick else 60_000))
    for enc, name, target in ((Encoding.BINARY, "binary", TARGET_MSGS_PER_S), (Encoding.JSON, "json", None)):
        rate, n, extra = asyncio.run(_server_rate(rec, enc, seconds))
        yield {
            "name": f"dtc.server_depth_loopback_{name}",
            "value": round(rate),
            "unit": "depth msgs/s",
            "baseline": round(base),
            "ratio": round(rate / base, 2) if base else None,
            "target": target,
            "messages": n,
            "slow_client": "one subscribed client that never reads connected throughout",
            **extra,
            "baseline_kind": "per-message objects + codec.encode, binary, same loopback",
        }


BENCHMARKS = {"dtc.server_depth": bench_server_depth}

__all__ = ["BENCHMARKS", "bench_server_depth"]
