"""``mia-elite record``: record a live source's normalised event stream to a replayable file.

Sources:

* ``--dtc HOST:PORT``: a DTC server (Sierra Chart or MIA Elite's built-in server) through
  :class:`app.dtc.client.DTCClient`; trades, best bid/ask and depth of SYMBOL.
* ``--sierra DATA_DIR``: Sierra Chart's own files (``.scid`` + ``.depth``) followed live with
  :class:`app.feeds.follow.SierraFollower`; ``--tick-size`` is needed (the files do not store it).
  ``--sierra auto`` looks in the usual Sierra Chart folders (:func:`find_sierra_data_dir`).

The output is a ``.mrec`` (:class:`app.feeds.recording.RecordingWriter`: every batch is written
and flushed as it arrives; a crash loses at most the batch being written), which
``mia-elite serve`` and ``mia-elite analyze`` replay. ``--also depth,scid`` also writes Sierra
Chart's formats beside it (``OUT`` with ``.depth`` / ``.scid``), so Sierra Chart can open the
session.

Exit codes: 0 recorded (events > 0), 1 nothing arrived, 2 could not start (bad arguments,
connection/logon failure, market data rejected: the message says what to do).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np

from app.core.events import Instrument
from app.dtc.encoding_names import ENCODING_NAMES, encoding_option

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbol", metavar="SYMBOL", help="exact symbol string (e.g. ESZ25_FUT_CME, ESH4)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dtc", metavar="HOST:PORT", help="record from a DTC server")
    src.add_argument("--sierra", metavar="DATA_DIR", help="record from Sierra Chart's Data folder ('auto' to find it)")
    p.add_argument("--out", required=True, help="output recording (.mrec)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to record (default 60)")
    p.add_argument("--also", default="", help="also write Sierra formats: depth, scid or 'depth,scid'")
    p.add_argument("--tick-size", type=float, default=None, help="price increment (required with --sierra)")
    p.add_argument("--tick-value", type=float, default=0.0, help="USD per tick per contract")
    p.add_argument("--price-multiplier", type=float, default=1.0, help="Sierra real-time price multiplier")
    p.add_argument("--poll", type=float, default=0.05, help="Sierra file poll interval, seconds")
    p.add_argument("--no-depth", action="store_true", help="trades and bid/ask only")
    p.add_argument("--encoding", default="binary", choices=ENCODING_NAMES, type=encoding_option,
                   help="DTC encoding (default binary; old spellings compact, compact_json accepted)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (Sierra Chart: Require TLS)")
    p.add_argument("--tls-fingerprint", default="", metavar="SHA256",
                   help="pinned SHA-256 fingerprint of the server's certificate (a self-signed one); without it "
                        "the certificate must verify, else its fingerprint is printed to compare and pin")


class _Sink:
    """Writes each batch to the recording (and optional Sierra files); counts events."""

    def __init__(self, out: Path, instrument: Instrument, source: str, also: list[str]):
        from app.feeds.depthfile import DepthWriter
        from app.feeds.recording import RecordingWriter
        from app.feeds.scid import ScidWriter

        self.instrument = instrument
        self.rec = RecordingWriter(out, instrument, source=source)
        self.depth = DepthWriter(out.with_suffix(".depth"), truncate=True) if "depth" in also else None
        self.scid = ScidWriter(out.with_suffix(".scid"), truncate=True) if "scid" in also else None
        self.events = 0
        self.errors = 0

    def __call__(self, batch: np.ndarray) -> None:
        try:
            self.rec.append(batch)
            if self.depth is not None:
                self.depth.append_events(batch, self.instrument)
            if self.scid is not None:
                self.scid.append_events(batch, self.instrument)
            self.events += len(batch)
        except Exception:  # noqa: BLE001 - keep recording; the count tells the user
            self.errors += 1
            log.exception("record: writing a batch failed")

    def close(self) -> list[Path]:
        paths = [self.rec.path]
        self.rec.close()
        for w in (self.depth, self.scid):
            if w is not None:
                w.close()
                paths.append(w.path)
        return paths


async def _wait(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # Windows: Ctrl-C raises KeyboardInterrupt instead


async def record_dtc(address: str, symbol: str, out: Path, seconds: float, *, also=(), depth=True,
                     tick_size=None, tick_value=0.0, encoding="binary", say=print,
                     stop: asyncio.Event | None = None, tls: bool = False, tls_fingerprint: str = "") -> int:
    """Record ``symbol`` from a DTC server for ``seconds`` (or until ``stop`` is set); returns the exit code."""
    from app.dtc.client import DTCClient, DTCError, LogonError, MarketDataRejected
    from app.cli.probe import parse_address

    host, port = parse_address(address)
    client = DTCClient(host, port, encoding=encoding, client_name="MIA Elite recorder", reconnect=True, tls=tls,
                       tls_fingerprint=tls_fingerprint)
    sink = None
    buffered: list[np.ndarray] = []
    stop = stop or asyncio.Event()
    _install_stop(stop)
    try:
        try:
            await client.connect()
        except (OSError, LogonError, DTCError, asyncio.TimeoutError) as exc:
            say(f"record: cannot connect to {address}: {exc}")
            return 2

        def on_events(batch):
            if sink is None:
                buffered.append(batch.copy())
            else:
                sink(batch)

        try:
            sub = await client.subscribe_market(symbol, depth=depth, on_events=on_events, tick_size=tick_size)
        except MarketDataRejected as exc:
            from app.live.sierra_source import explain_missing_depth

            say(f"record: the server rejected market data for {symbol}: {exc}\n"
                f"Sierra Chart's DTC server does not relay CME/CBOE data; record from its files instead:\n"
                f"  mia-elite record {symbol} --sierra auto --tick-size <tick> --out {out}\n"
                + explain_missing_depth(symbol))
            return 2
        except ValueError as exc:
            say(f"record: {exc}")
            return 2
        defn = sub.definition
        tv = tick_value or float(getattr(defn, "CurrencyValuePerIncrement", 0.0) or 0.0)
        inst = Instrument(symbol, sub.tick_size, tv, exchange=getattr(defn, "Exchange", "") or "",
                          description=getattr(defn, "Description", "") or "")
        sink = _Sink(out, inst, f"DTC {address} {symbol} recorded {time.strftime('%Y-%m-%d %H:%M:%S')}", list(also))
        for b in buffered:
            sink(b)
        buffered.clear()
        await _wait(seconds, stop)
    finally:
        await client.close()
    paths = sink.close()
    say(f"recorded {sink.events} events of {symbol} in {seconds:g} s -> {', '.join(str(p) for p in paths)}")
    if client.decode_errors:
        say(f"record: {client.decode_errors} malformed messages from the server were skipped (not recorded); "
            f"last: {client.last_error}")
    return 0 if sink.events else 1


async def record_sierra(data_dir: str, symbol: str, out: Path, seconds: float, *, tick_size: float,
                        tick_value: float = 0.0, also=(), depth=True, price_multiplier=1.0, poll_s=0.05,
                        say=print, stop: asyncio.Event | None = None) -> int:
    """Record ``symbol`` from Sierra Chart's files for ``seconds`` (or until ``stop``); returns the exit code."""
    from app.feeds.follow import SierraFollower
    from app.live.sierra_source import (
        explain_missing_depth,
        explain_missing_scid,
        files_for_symbol,
        find_sierra_data_dir,
    )

    folder = find_sierra_data_dir(None if data_dir == "auto" else data_dir)
    if folder is None:
        say("record: no Sierra Chart Data folder found; pass --sierra <folder> (Global Settings >> "
            "General Settings >> Data Files Folder in Sierra Chart)")
        return 2
    files = files_for_symbol(folder, symbol)
    if files.scid is None:
        say(explain_missing_scid(symbol, folder))
    if depth and not files.depth_files:
        say(explain_missing_depth(symbol, folder))
    inst = Instrument(symbol, tick_size, tick_value, description=f"{symbol} from Sierra Chart files")
    sink = _Sink(out, inst, f"Sierra Chart files {folder} {symbol}", list(also))
    follower = SierraFollower(folder, symbol, inst, sink, poll_s=poll_s, price_multiplier=price_multiplier,
                              depth=depth)
    stop = stop or asyncio.Event()
    _install_stop(stop)
    task = asyncio.ensure_future(follower.run())
    try:
        await _wait(seconds, stop)
    finally:
        follower.stop()
        try:
            await asyncio.wait_for(task, 2.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
    follower.poll_once()  # what arrived in the last interval
    follower.close()
    paths = sink.close()
    c = follower.counters
    say(f"recorded {sink.events} events of {symbol} in {seconds:g} s (depth records {c['depth_records']}, "
        f"scid records {c['scid_records']}, restarts {c['restarts']}, day changes {c['rollovers']}) -> "
        + ", ".join(str(p) for p in paths))
    return 0 if sink.events else 1


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    also = [a.strip().lower() for a in args.also.split(",") if a.strip()]
    bad = [a for a in also if a not in ("depth", "scid")]
    if bad:
        print(f"record: --also {','.join(bad)}: choose depth and/or scid", file=sys.stderr)
        return 2
    try:
        if args.dtc:
            coro = record_dtc(args.dtc, args.symbol, out, args.seconds, also=also, depth=not args.no_depth,
                              tick_size=args.tick_size, tick_value=args.tick_value, encoding=args.encoding,
                              tls=args.tls, tls_fingerprint=args.tls_fingerprint)
        else:
            if not args.tick_size:
                print("record: --tick-size is required with --sierra (the files do not store it)", file=sys.stderr)
                return 2
            coro = record_sierra(args.sierra, args.symbol, out, args.seconds, tick_size=args.tick_size,
                                 tick_value=args.tick_value, also=also, depth=not args.no_depth,
                                 price_multiplier=args.price_multiplier, poll_s=args.poll)
        return asyncio.run(coro)
    except ValueError as exc:
        print(f"record: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 1
