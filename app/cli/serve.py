"""``mia-elite serve``: run the built-in DTC server replaying a recording, with paper fills.

Examples
--------
``mia-elite serve`` replays the shipped real CME ES hour at real time on 127.0.0.1:11199.
``mia-elite serve ../shared/data/databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst --speed 10``
``mia-elite serve my.mrec --port 0 --speed 0 --seconds 30`` (maximum speed, then exit).
``mia-elite serve ../shared/data/crypto/btcusdt_20240808.gz ../shared/data/crypto/ethusdt_20240808.gz``
serves several recordings at once (any file ``analyze`` takes: ``.mrec``, DBN, Binance ``.gz``),
each under its own symbol (from the file), on one market clock: recordings whose times overlap
replay on their real times, recordings of other dates start together
(:data:`app.sim.replay.ALIGNMENT_RULE`, printed at start-up with each symbol's shift). With no
file it serves the shipped ES hour alone.
``mia-elite serve --loop`` starts the recording again at its end, each pass a new session (by
default the replay stops at its end and tells the clients with a GENERAL_LOG_MESSAGE
"replay finished: ..." and a MARKET_DATA_SNAPSHOT whose TradingStatus is CLOSE).
``mia-elite serve --tls server.crt server.key`` serves TLS only (clients pin the certificate's
SHA-256 fingerprint, e.g. ``mia-elite probe 127.0.0.1:11199 ESH4 --tls --tls-fingerprint AB:CD:...``).
WebSocket clients (``ws://`` or, with ``--tls``, ``wss://``) use the same port.
``MIA_ELITE_SERVE_PASSWORD=... mia-elite serve`` (or ``--password``): logon requires the password.

Access: each logon Username trades its own simulated account (shown to its clients as
``--account``, ``Sim1``) and sees only that account's orders and positions; ``--shared-account``
puts every logon on one account. The server listens on 127.0.0.1 unless ``--host`` says otherwise.

While it runs in a terminal, type a command and Enter: ``p`` pause, ``r`` resume, ``s X`` speed X
(``s 0`` = maximum), ``i`` statistics, ``q`` quit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
from pathlib import Path

from app.dtc.encoding_names import encoding_option
from app.dtc.messages import Encoding

log = logging.getLogger(__name__)

#: ``--encoding`` -> the fixed encoding (``auto``: clients negotiate)
_ENC = {"auto": None, "binary": Encoding.BINARY, "json": Encoding.JSON, "json_compact": Encoding.JSON_COMPACT}
#: Environment variable holding the logon password (the setting behind ``--password``; keeps the
#: password out of the process list).
PASSWORD_ENV = "MIA_ELITE_SERVE_PASSWORD"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare ``serve``'s options."""
    from app.sim.server import DEFAULT_ACCOUNT, DEFAULT_PORT
    from app.sim.server.session import MAX_CONNECTIONS, MAX_SUBSCRIPTIONS, SLOW_CLIENT_TIMEOUT_S

    p.add_argument("recordings", nargs="*", metavar="RECORDING",
                   help="recording(s) to replay, each under its own symbol on one market clock: .mrec / "
                        ".mrec.zst, Databento .mbo.dbn(.zst) or a Binance .gz capture (default: the "
                        "shipped ES sample alone)")
    p.add_argument("--host", default="127.0.0.1", help="listening address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listening port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed, 1 = real time, 0 = maximum (default 1)")
    p.add_argument("--loop", action="store_true",
                   help="start the recordings again at the end of the set, each pass a new session (books "
                        "cleared, working orders cancelled, positions closed at the last price); default: stop "
                        "at the end")
    p.add_argument("--paused", action="store_true", help="start with the replay paused")
    p.add_argument("--from-start", action="store_true",
                   help="replay from the recording's first event (default: from the opening trade, with the "
                        "book at that moment; CME's pre-open book can be crossed)")
    p.add_argument("--encoding", choices=list(_ENC), default="auto", type=encoding_option,
                   help="auto: clients negotiate (binary by default); or a fixed encoding (the old spelling "
                        "'compact' is accepted)")
    p.add_argument("--account", default=DEFAULT_ACCOUNT, help=f"simulated trade account (default {DEFAULT_ACCOUNT})")
    p.add_argument("--commission", type=float, default=0.0, help="USD per contract per fill (default 0)")
    p.add_argument("--slippage", type=int, default=0, help="ticks against market/stop fills (default 0)")
    p.add_argument("--max-gap", type=float, default=5.0, help="longest replay pause between events, s (default 5)")
    p.add_argument("--seconds", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), default=None,
                   help="serve TLS only, with this PEM certificate and private key (DTC and WebSocket inside it)")
    p.add_argument("--password", default=None,
                   help=f"logon requires this password (default: the {PASSWORD_ENV} environment variable; "
                        "none: any logon is accepted)")
    p.add_argument("--shared-account", action="store_true",
                   help="every logon trades the one --account (default: each username has its own account)")
    p.add_argument("--max-order-qty", type=float, default=1000.0,
                   help="largest quantity of one order, whole contracts (default 1000)")

    p.add_argument("--slow-client-timeout", type=float, default=SLOW_CLIENT_TIMEOUT_S, metavar="S",
                   help="log off a client that stays more than the send buffer behind for S seconds "
                        f"(default {SLOW_CLIENT_TIMEOUT_S:g}; meanwhile its market data is conflated)")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, metavar="N",
                   help=f"most open connections (default {MAX_CONNECTIONS})")
    p.add_argument("--max-subscriptions", type=int, default=MAX_SUBSCRIPTIONS, metavar="N",
                   help=f"most market data + depth subscriptions per connection (default {MAX_SUBSCRIPTIONS})")


def access_options(args: argparse.Namespace) -> dict:
    """The server's access and order-size arguments from ``serve``'s options.

    Returns
    -------
    dict
        ``password`` (``--password``, else the :data:`PASSWORD_ENV` variable, else None),
        ``shared_account``, ``max_order_qty`` (contracts): keyword arguments of
        :class:`app.sim.server.DTCServer`.

    Raises
    ------
    ValueError
        If the password is empty or longer than 31 UTF-8 bytes (DTC ``Password`` is
        ``char[32]``: a longer one could never match), or ``--max-order-qty`` is not a whole
        number >= 1.
    """
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if password is not None:
        if not password:
            raise ValueError("--password: the password is empty")
        if len(password.encode("utf-8")) > 31:
            raise ValueError("--password: longer than 31 bytes (DTC Password is char[32])")
    q = float(args.max_order_qty)
    if not (q >= 1 and q == int(q)):
        raise ValueError(f"--max-order-qty: a whole number of contracts >= 1, got {args.max_order_qty!r}")
    return {"password": password, "shared_account": bool(args.shared_account), "max_order_qty": q}


def load_recording(path: str | Path):
    """Load any file ``mia-elite analyze`` takes (:func:`app.cli.analyze.load_any`): a
    ``.mrec``/``.mrec.zst`` recording, a Databento MBO ``.dbn``/``.dbn.zst`` file or a Binance
    ``.gz`` capture; its symbol, tick size and market come from the file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is none of them, or the reader refuses it (message names the file; a capture of
        several symbols: how to split it, since ``serve`` serves each file under its own symbol).
    """
    from app.cli.analyze import load_any

    try:
        return load_any(str(Path(path)))
    except ValueError as exc:
        if "pass --symbol" not in str(exc):
            raise
        raise ValueError(f"{exc} (serve has no --symbol: write one recording per symbol with "
                         f"'mia-elite convert {path} OUT.mrec --symbol SYMBOL' and serve those)") from exc


def _stdin_control(loop: asyncio.AbstractEventLoop, server, stop: asyncio.Event) -> None:
    def handle(line: str) -> None:
        parts = line.strip().split()
        if not parts:
            return
        cmd = parts[0].lower()
        if cmd == "p":
            server.pause()
            print("paused", flush=True)
        elif cmd == "r":
            server.resume()
            print("resumed", flush=True)
        elif cmd == "s" and len(parts) > 1:
            try:
                server.set_speed(float(parts[1]))
                print(f"speed {parts[1]}", flush=True)
            except ValueError:
                print("usage: s SPEED (0 = maximum)", flush=True)
        elif cmd == "i":
            print(json.dumps(server.stats), flush=True)
        elif cmd == "q":
            stop.set()
        else:
            print("commands: p pause, r resume, s X speed (0 = max), i stats, q quit", flush=True)

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(handle, line)
        # stdin closed: keep serving

    threading.Thread(target=reader, name="serve-stdin", daemon=True).start()


async def serve(args: argparse.Namespace) -> int:
    """Run the server until ``--seconds`` elapse, ``q`` is typed, Ctrl-C / SIGTERM, or the task is
    cancelled; then stop it (every client logged off, at most about 0.5 s) and print the final
    stats line (``{"stats": {...}}``)."""
    from app.sim.server import DTCServer

    access = access_options(args)
    if args.recordings:
        recs = [load_recording(p) for p in args.recordings]
    else:
        from app.feeds.samples import load_default_sample

        recs = [load_default_sample()]
    server = DTCServer(
        recs,
        host=args.host,
        port=args.port,
        speed=args.speed,
        loop_replay=args.loop,
        paused=args.paused,
        account=args.account,
        commission_per_contract=args.commission,
        slippage_ticks=args.slippage,
        max_gap_s=args.max_gap,
        encoding=_ENC[args.encoding],
        start_at_open=not args.from_start,
        tls=getattr(args, "tls", None),
        **access,
        slow_client_timeout_s=args.slow_client_timeout,
        max_connections=args.max_connections,
        max_subscriptions=args.max_subscriptions,
    )
    await server.start()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        auth = "no authentication (set --password)" if access["password"] is None else "a password only"
        print(f"warning: listening on {args.host}: this server has {'TLS and ' if server.tls else 'no TLS and '}"
              f"{auth}; keep it on 127.0.0.1 unless you know the network", file=sys.stderr, flush=True)
    syms = ", ".join(f"{s.inst.symbol} ({len(s.events)} events)" for s in server.symbols.values())
    speed = "maximum" if args.speed <= 0 else f"x{args.speed:g}"
    tls = f" (TLS, certificate {server.tls[0]})" if server.tls else ""
    accounts = "one shared account" if access["shared_account"] else "an account per username"
    logon = "password required" if access["password"] is not None else "no password"
    print(f"MIA Elite DTC server on {args.host}:{server.port}{tls}: {syms}; speed {speed}; account {args.account} "
          f"({accounts}; {logon})", flush=True)
    if len(server.symbols) > 1:
        from app.sim.replay import ALIGNMENT_RULE

        print(f"market clock: {ALIGNMENT_RULE}: {server.timeline.describe(list(server.symbols))}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.stdin is not None and sys.stdin.isatty():
        _stdin_control(loop, server, stop)
    restore = _stop_on_signals(loop, stop)
    try:
        if args.seconds is not None:
            try:
                await asyncio.wait_for(stop.wait(), args.seconds)
            except asyncio.TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        stats = server.stats
        try:
            await server.stop()
            stats = server.stats  # with the counters of the connections it just closed
        finally:
            restore()
            print(json.dumps({"stats": stats}), flush=True)
    return 0


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event):
    """Make Ctrl-C (SIGINT) and SIGTERM set ``stop``, so the server shuts down in order (LOGOFF to
    every client, final stats line) instead of the task being cancelled mid-way. Returns the
    function that restores the previous handlers.

    POSIX: :meth:`loop.add_signal_handler`; Windows (no such method on its loops):
    :func:`signal.signal` with a handler that wakes the loop thread-safely.
    """
    import signal

    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    try:
        for sig in sigs:
            loop.add_signal_handler(sig, stop.set)

        def restore() -> None:
            for sig in sigs:
                loop.remove_signal_handler(sig)

        return restore
    except (NotImplementedError, RuntimeError, ValueError):
        pass
    previous = {}

    def handler(_signum, _frame) -> None:
        loop.call_soon_threadsafe(stop.set)

    for sig in sigs:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            pass

    def restore_plain() -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)

    return restore_plain


def run(args: argparse.Namespace) -> int:
    """Entry point of ``mia-elite serve``; returns the exit code (2 for a bad recording/port)."""
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0
    except (FileNotFoundError, ValueError) as exc:
        print(f"mia-elite serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mia-elite serve: {exc}", file=sys.stderr)
        return 2
