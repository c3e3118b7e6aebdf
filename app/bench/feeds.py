"""Benchmarks of the Sierra Chart file feeds (``mia-elite bench feeds``).

Figures (one JSON line each, see :mod:`app.bench`):

* ``feeds.depth_read``: records/s of reading a ``.depth`` file and decoding every record into
  :data:`EVENT_DTYPE` events (:func:`read_depth` + :func:`depth_records_to_events`). The file is
  the real ES MBO hour turned into depth records (62,072 records) repeated to about 2.5 million
  records (quick: 0.5 million). Baseline: the same bytes decoded with one ``struct.unpack_from``
  per record plus the command mapping in Python (what a plain reader does), on a slice.
  Target >= 5,000,000 records/s.
* ``feeds.scid_read``: records/s of ``.scid`` tick records -> trade + quote events, same method.
* ``feeds.mbo_read``: records/s of :func:`app.feeds.dbn.read_dbn_mbo` on the shipped ES hour
  (68,792 MBO records, from the ``.dbn.zst`` file: zstd, then the numba pass from the DBN bytes
  to price-level events). Baseline: the same call with ``use_numba=False`` (the Python twin).
  Target: at least nautilus_trader's pyo3 L3 book on the same file (``mia-elite bench peers``).
* ``feeds.mbo_to_events``: records/s of the orders -> price levels step alone
  (:func:`app.feeds.dbn.mbo_to_events` on the records in memory), numba vs the Python twin.
* ``feeds.binance_read``: lines/s of the Binance capture path, read + book: :func:`app.feeds.binance.read_binance_gz`
  on the real BTCUSDT capture (``crypto/btcusdt_20240808.gz`` of the shared data, 93,954 lines:
  gzip, JSON, events) then :class:`app.market.refbook.ReferenceBook` ``apply`` of the events.
  Baseline: the plain path a user would write, in the same run: ``gzip`` + ``json.loads`` per
  line + a dict book (snapshot, then the diffs with ``u >= lastUpdateId``; absolute quantities,
  0 removes). Peer: hftbacktest's own reader when it is importable (``peer`` says ``skipped``
  otherwise; the benchmark installs nothing). The figure records ``same_book`` (best bid/ask
  and the number of levels a side agree with the plain book) and ``read_only_lines_s``.
  Timed as the best of alternating rounds. Skipped with a message when the capture is absent.
* ``feeds.follow_latency_p99`` (and ``_p50``): ms from the append of a depth batch to its
  delivery by :class:`SierraFollower` (poll 50 ms) polling on a thread, while a writer thread
  appends batches at irregular intervals (5-40 ms; the records carry their append time). The
  latency is the delivery wall time minus the batch's append time. Baseline: the same
  measurement with a plain tail that re-reads and re-decodes the whole file on every poll.
  Target p99 <= poll interval + 10 ms = 60 ms.
"""

from __future__ import annotations

import random
import struct
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.core.events import Instrument

ES = Instrument("ESH4", 0.25, 12.5)


def _es_depth_records():
    from app.feeds.depthfile import events_to_depth_records
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    return events_to_depth_records(rec.events, rec.instrument), rec


def _best_of(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _struct_depth_baseline(raw: bytes, header: int, n: int) -> None:
    unpack = struct.Struct("<qBBHfII").unpack_from
    out = []
    ops = (0, 3, 1, 1, 1, 1, 2, 2)
    sides = (0, 0, 1, 2, 1, 2, 1, 2)
    for i in range(n):
        dt, cmd, fl, no, px, q, _r = unpack(raw, header + 24 * i)
        out.append(((dt - 2209161600000000) * 1000, round(px / 0.25), q, ops[cmd], sides[cmd], fl))
    return out


def bench_depth_read(args):
    from app.feeds.depthfile import DepthHeader, depth_records_to_events, read_depth

    recs, _ = _es_depth_records()
    reps_file = 8 if args.quick else 40
    big = np.tile(recs, reps_file)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "ESH4.2023-12-25.depth"
        p.write_bytes(DepthHeader().to_bytes() + big.tobytes())
        n = len(big)

        def fast():
            _, r = read_depth(p)
            depth_records_to_events(r, ES)

        t = _best_of(fast, 3 if args.quick else 5)
        raw = p.read_bytes()
    nb = min(n, 100_000 if args.quick else 300_000)
    tb = _best_of(lambda: _struct_depth_baseline(raw, 64, nb), 1 if args.quick else 2)
    v, b = n / t, nb / tb
    yield {"name": "feeds.depth_read", "value": round(v), "unit": "records/s", "baseline": round(b),
           "ratio": round(v / b, 1), "target": 5_000_000, "records": n}


def bench_scid_read(args):
    from app.feeds.scid import ScidHeader, best_bid_ask_at_trades, events_to_scid_records, read_scid, scid_to_events
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    bid, ask = best_bid_ask_at_trades(rec.events)
    srecs = events_to_scid_records(rec.events, rec.instrument, bid=bid, ask=ask)
    big = np.tile(srecs, 100 if args.quick else 500)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "ESH4.scid"
        p.write_bytes(ScidHeader().to_bytes() + big.tobytes())

        def fast():
            _, r = read_scid(p)
            scid_to_events(r, ES)

        t = _best_of(fast, 3 if args.quick else 5)
        raw = p.read_bytes()
    unpack = struct.Struct("<qffffIIII").unpack_from
    nb = min(len(big), 100_000 if args.quick else 300_000)

    def base():
        out = []
        for i in range(nb):
            dt, o, h, lo, c, nt, tv, bv, av = unpack(raw, 56 + 40 * i)
            side = 2 if av > bv else 1 if bv > av else 0
            out.append(((dt - 2209161600000000) * 1000, round(c / 0.25), tv, side, round(lo / 0.25), round(h / 0.25)))
        return out

    tb = _best_of(base, 1 if args.quick else 2)
    v, b = len(big) / t, nb / tb
    yield {"name": "feeds.scid_read", "value": round(v), "unit": "records/s", "baseline": round(b),
           "ratio": round(v / b, 1), "target": 5_000_000, "records": len(big)}


class _NaiveTail:
    """Baseline follower: re-reads and decodes the whole file on every poll, delivers the new suffix."""

    def __init__(self, path, on_events, poll_s):
        self.path, self.on_events, self.poll_s = path, on_events, poll_s
        self.seen = 0
        self._stop = threading.Event()

    def run(self):
        from app.feeds.depthfile import depth_records_from_bytes, depth_records_to_events

        while not self._stop.wait(self.poll_s):
            try:
                raw = Path(self.path).read_bytes()
            except OSError:
                continue
            recs = depth_records_from_bytes(raw, 64)
            ev = depth_records_to_events(recs, ES)
            if len(ev) > self.seen:
                new = ev[self.seen:]
                self.seen = len(ev)
                self.on_events(new)


def _latency_run(seconds: float, poll_s: float, naive: bool, recs) -> np.ndarray:
    """Append batches of ``recs`` for ``seconds``; return per-batch latencies in ms."""
    from app.feeds.depthfile import FLAG_END_OF_BATCH, DepthHeader
    from app.core.events import FLAG_BATCH_END
    from app.feeds.follow import SierraFollower
    from app.feeds.scid import SC_EPOCH_OFFSET_US

    ends = np.flatnonzero(recs["flags"] & FLAG_END_OF_BATCH)
    lat: list[float] = []

    def on_events(ev):
        now = time.time_ns()
        be = ev[(ev["flags"] & FLAG_BATCH_END) != 0]
        lat.extend(((now - be["ts"]) / 1e6).tolist())

    with tempfile.TemporaryDirectory() as d:
        ddir = Path(d) / "MarketDepthData"
        ddir.mkdir()
        p = ddir / "ESH4.2023-12-25.depth"
        p.write_bytes(DepthHeader().to_bytes())
        if naive:
            fol = _NaiveTail(p, on_events, poll_s)
            th = threading.Thread(target=fol.run, daemon=True)
            th.start()
        else:
            fol = SierraFollower(d, "ESH4", ES, on_events, poll_s=poll_s, scid=False)
            fol.start()
        rnd = random.Random(1)
        t_end = time.monotonic() + seconds
        k = 1  # skip the snapshot batch (first) so each append is a small live batch
        with open(p, "ab") as f:
            while time.monotonic() < t_end and k + 1 < len(ends):
                batch = recs[ends[k - 1] + 1: ends[k] + 1].copy()
                batch["dt"] = time.time_ns() // 1000 + SC_EPOCH_OFFSET_US
                f.write(batch.tobytes())
                f.flush()
                k += 1
                time.sleep(rnd.uniform(0.005, 0.040))
        time.sleep(poll_s * 3)
        if naive:
            fol._stop.set()
            th.join(2)
        else:
            fol.stop()
    return np.asarray(lat)


def bench_follow_latency(args):
    recs, _ = _es_depth_records()
    poll = 0.05
    secs = 2.0 if args.quick else 8.0
    lat = _latency_run(secs, poll, False, recs)
    base = _latency_run(secs, poll, True, recs)
    target = poll * 1000 + 10
    p99, b99 = float(np.percentile(lat, 99)), float(np.percentile(base, 99))
    yield {"name": "feeds.follow_latency_p99", "value": round(p99, 2), "unit": "ms", "baseline": round(b99, 2),
           "ratio": round(b99 / p99, 2), "target": target, "batches": int(len(lat)), "poll_ms": poll * 1000}
    p50, b50 = float(np.percentile(lat, 50)), float(np.percentile(base, 50))
    yield {"name": "feeds.follow_latency_p50", "value": round(p50, 2), "unit": "ms", "baseline": round(b50, 2),
           "ratio": round(b50 / p50, 2), "target": None, "batches": int(len(lat)), "poll_ms": poll * 1000}


def bench_mbo(args):
    from app.feeds.dbn import mbo_records, mbo_to_events, read_dbn_mbo
    from app.feeds.samples import default_sample_path

    path = default_sample_path()
    _meta, recs = mbo_records(path)
    n = len(recs)
    read_dbn_mbo(path)  # compile / load the kernel
    reps = 3 if args.quick else 7
    t = _best_of(lambda: read_dbn_mbo(path), reps)
    tb = _best_of(lambda: read_dbn_mbo(path, use_numba=False), 1 if args.quick else 3)
    yield {"name": "feeds.mbo_read", "value": round(n / t), "unit": "records/s", "baseline": round(n / tb),
           "ratio": round(tb / t, 1), "target": ">= nautilus_trader L3 book (bench peers)", "records": n,
           "file": path.name, "baseline_kind": "read_dbn_mbo(use_numba=False): the Python twin"}
    t = _best_of(lambda: mbo_to_events(recs), reps)
    tb = _best_of(lambda: mbo_to_events(recs, use_numba=False), 1 if args.quick else 3)
    yield {"name": "feeds.mbo_to_events", "value": round(n / t), "unit": "records/s", "baseline": round(n / tb),
           "ratio": round(tb / t, 1), "target": None, "records": n,
           "baseline_kind": "mbo_to_events(use_numba=False): the Python twin"}


def _btc_capture():
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crypto" / "btcusdt_20240808.gz"
    return path if path.is_file() else None


def _plain_binance_book(path: Path):
    """The plain reader: gzip + json + dict book; returns (lines, bids, asks) with float prices."""
    import gzip
    import json

    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    snap = None
    pending = []

    def diff(d):
        for book, key in ((bids, "b"), (asks, "a")):
            for p, q in d[key]:
                if float(q) == 0.0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)

    for line in lines:
        _ts, js = line.split(" ", 1)
        m = json.loads(js)
        if "lastUpdateId" in m:
            snap = m["lastUpdateId"]
            bids = {float(p): float(q) for p, q in m["bids"]}
            asks = {float(p): float(q) for p, q in m["asks"]}
            for d in pending:
                if d["u"] >= snap:
                    diff(d)
            pending = []
            continue
        d = m.get("data", m)
        if d.get("e") == "depthUpdate":
            if snap is None:
                pending.append(d)
            elif d["u"] >= snap:
                diff(d)
    return len(lines), bids, asks


def _hftbacktest_read(path: Path):
    """hftbacktest's own converter of its Binance capture format, when importable (else raises ImportError)."""
    from hftbacktest.data.utils import binancefutures  # noqa: PLC0415  (optional peer)

    return binancefutures.convert(str(path))


def bench_binance_read(args):
    from app.feeds.binance import read_binance_gz
    from app.market.refbook import ReferenceBook

    path = _btc_capture()
    if path is None:
        yield {"name": "feeds.binance_read", "value": None, "unit": "lines/s", "baseline": None, "ratio": None,
               "target": None, "skipped": "crypto/btcusdt_20240808.gz not found beside the checkout (shared data)"}
        return
    out = {}

    def mia():
        rec = read_binance_gz(path)
        book = ReferenceBook()
        book.apply(rec.events)
        out["mia"] = (rec, book)

    def mia_read():
        read_binance_gz(path)

    def plain():
        out["plain"] = _plain_binance_book(path)

    rounds = 1 if args.quick else 3
    best = {"mia": float("inf"), "mia_read": float("inf"), "plain": float("inf")}
    for _ in range(rounds):  # alternating rounds: each implementation once per round
        for name, fn in (("mia", mia), ("mia_read", mia_read), ("plain", plain)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    rec, book = out["mia"]
    n_lines, pb, pa = out["plain"]
    tick = rec.instrument.tick_size
    same = (book.bids() == {round(p / tick): q for p, q in pb.items()}
            and book.asks() == {round(p / tick): q for p, q in pa.items()})
    try:
        t0 = time.perf_counter()
        _hftbacktest_read(path)
        peer = {"peer": "hftbacktest", "peer_lines_s": round(n_lines / (time.perf_counter() - t0))}
    except ImportError as exc:
        peer = {"peer": f"skipped (hftbacktest not importable: {exc})"}
    except Exception as exc:  # another hftbacktest version: say so, keep the figure
        peer = {"peer": f"hftbacktest failed: {type(exc).__name__}: {exc}"}
    v, b = n_lines / best["mia"], n_lines / best["plain"]
    yield {"name": "feeds.binance_read", "value": round(v), "unit": "lines/s", "baseline": round(b),
           "ratio": round(v / b, 2), "target": ">= plain gzip + json + dict book", "lines": n_lines,
           "events": int(len(rec.events)), "read_only_lines_s": round(n_lines / best["mia_read"]),
           "same_book": bool(same), "rounds": rounds, "file": path.name,
           "baseline_kind": "gzip + json.loads + dict book, same run", **peer}


BENCHMARKS = {
    "feeds.mbo": bench_mbo,
    "feeds.depth_read": bench_depth_read,
    "feeds.scid_read": bench_scid_read,
    "feeds.follow_latency": bench_follow_latency,
    "feeds.binance_read": bench_binance_read,
}
