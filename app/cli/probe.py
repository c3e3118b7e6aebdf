"""``mia-elite probe HOST:PORT SYMBOL``: a trader's first diagnostic of a DTC server.

Connects (encoding negotiation, logon), subscribes to market data and depth of ``SYMBOL`` and
prints one summary line per second: best bid/ask, number of book levels per side, trades/s,
messages/s, decode errors and the connection state; until Ctrl-C or ``--seconds N``.

Exit codes: 0 = market data received; 1 = connected but no market data arrived; 2 = could not
connect / log on / subscribe (the reason is printed in one line, never a traceback: e.g. an
encoding the server granted that this client does not speak, a username or password longer than
LOGON_REQUEST's 31 bytes; a market data reject of a symbol the server does not know says so; any other reject prints
Sierra Chart's data-file alternative; either is printed once).
Messages whose values cannot be used (a best bid of 3e18) are counted as decode errors.

``--tls`` connects with TLS; a certificate that does not verify (self-signed) is refused with its
SHA-256 fingerprint, to compare with the server's and pin with ``--tls-fingerprint``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

import numpy as np

from app.core import events as ev
from app.dtc.encoding_names import ENCODING_NAMES, encoding_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", metavar="HOST:PORT", help="DTC server, e.g. 127.0.0.1:11099")
    p.add_argument("symbol", metavar="SYMBOL", help="exact symbol string of the server (e.g. ESZ25_FUT_CME)")
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)")
    p.add_argument("--exchange", default="", help="exchange string (Sierra Chart ignores it)")
    p.add_argument("--encoding", default="binary", choices=ENCODING_NAMES, type=encoding_option,
                   help="DTC encoding (default binary; old spellings compact, compact_json accepted)")
    p.add_argument("--tick-size", type=float, default=None,
                   help="price increment, when the server sends no security definition")
    p.add_argument("--no-depth", action="store_true", help="subscribe to trades/BBO only")
    p.add_argument("--username", default="", help="only if the server requires authentication")
    p.add_argument("--heartbeat", type=float, default=10.0, help="heartbeat interval, seconds")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds")
    p.add_argument("--tls", action="store_true", help="connect with TLS (Sierra Chart: Require TLS)")
    p.add_argument("--tls-fingerprint", default="", metavar="SHA256",
                   help="pinned SHA-256 fingerprint of the server's certificate (a self-signed one); without it "
                        "the certificate must verify, else its fingerprint is printed to compare and pin")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) -> (host, port); raises ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:11099")
    return host.strip("[]"), int(port)


class BookSummary:
    """A small by-price book built from event batches (prices in ticks), plus counters."""

    def __init__(self, tick_size: float):
        self.tick_size = tick_size
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.quote = {ev.SIDE_BID: None, ev.SIDE_ASK: None}
        self.trades = 0
        self.events = 0
        self.last_trade = None

    def apply(self, batch: np.ndarray) -> None:
        """Apply one EVENT_DTYPE batch (O(n) Python; fine for a diagnostic)."""
        self.events += batch.shape[0]
        kinds = batch["kind"]
        tr = batch[kinds == ev.KIND_TRADE]
        if tr.shape[0]:
            self.trades += tr.shape[0]
            self.last_trade = (int(tr["price"][-1]), float(tr["size"][-1]))
        q = batch[kinds == ev.KIND_QUOTE]
        for side, price, size in zip(q["side"].tolist(), q["price"].tolist(), q["size"].tolist()):
            self.quote[side] = (price, size)
        d = batch[kinds == ev.KIND_DEPTH]
        books = {ev.SIDE_BID: self.bids, ev.SIDE_ASK: self.asks}
        for side, price, size, op in zip(d["side"].tolist(), d["price"].tolist(), d["size"].tolist(),
                                         d["op"].tolist()):
            if op == ev.OP_CLEAR:
                if side == 0:
                    self.bids.clear()
                    self.asks.clear()
                elif side in books:
                    books[side].clear()
            elif side in books:
                if op == ev.OP_SET and size > 0:
                    books[side][price] = size
                elif op in (ev.OP_SET, ev.OP_DELETE):
                    books[side].pop(price, None)

    def best(self):
        """((bid_tick, size) or None, (ask_tick, size) or None), depth first, quotes as fallback."""
        bid = (max(self.bids), self.bids[max(self.bids)]) if self.bids else self.quote[ev.SIDE_BID]
        ask = (min(self.asks), self.asks[min(self.asks)]) if self.asks else self.quote[ev.SIDE_ASK]
        return bid, ask

    def fmt_price(self, tick: int) -> str:
        decimals = max(0, min(9, len(f"{self.tick_size:.9f}".rstrip("0").split(".")[1])))
        return f"{tick * self.tick_size:.{decimals}f}"


#: Words of a reject text that say the server does not know the symbol (our replay server:
#: "unknown symbol 'X'; this server replays ESH4"; others: "symbol not found", "invalid symbol").
_UNKNOWN_SYMBOL_WORDS = ("unknown symbol", "not found", "invalid symbol", "no such symbol", "does not exist",
                         "unrecognized symbol", "not recognized", "symbol is not", "not a valid symbol")


def reject_message(symbol: str, text: str, server: str) -> str:
    """One line explaining a MARKET_DATA_REJECT / MARKET_DEPTH_REJECT of ``symbol``.

    A reject whose text says the symbol is unknown (:data:`_UNKNOWN_SYMBOL_WORDS`) is reported
    as that, with the server's own words (no mention of Sierra Chart's exchange policy, which
    is not the cause); any other reject keeps the client's explanation
    (:class:`app.dtc.client.MarketDataRejected`: Sierra Chart refuses CME, CBOE, EUREX and
    NASDAQ data over DTC, and its data files are the way round).

    Parameters
    ----------
    symbol : str
        The symbol as subscribed.
    text : str
        The reject's ``RejectText``.
    server : str
        How to name the server (``"host:port (ServerName)"``).
    """
    low = (text or "").lower()
    if any(w in low for w in _UNKNOWN_SYMBOL_WORDS):
        return (f"the DTC server {server} does not know the symbol {symbol!r}: {text!r}. Use the server's exact "
                f"symbol string (Sierra Chart: the chart's symbol, e.g. ESZ25_FUT_CME).")
    from app.dtc.client import MarketDataRejected

    return str(MarketDataRejected(symbol, text))


class _DropRejectLog:
    """Logging filter: the client's "<symbol> rejected" warnings, which the probe prints itself
    once (market data and depth are both rejected; each would log the same text)."""

    def filter(self, record) -> bool:
        return " rejected: " not in record.getMessage()


def _line(symbol, book: BookSummary, trades_s, msgs_s, client) -> str:
    bid, ask = book.best()
    b = f"{book.fmt_price(bid[0])} x {bid[1]:g}" if bid else "-"
    a = f"{book.fmt_price(ask[0])} x {ask[1]:g}" if ask else "-"
    crossed = "  CROSSED" if bid and ask and bid[0] >= ask[0] else ""
    return (f"{time.strftime('%H:%M:%S')}  {symbol}  bid {b} | ask {a}{crossed}  levels {len(book.bids)}/{len(book.asks)}"
            f"  trades/s {trades_s:.0f}  msgs/s {msgs_s:.0f}  errors {client.decode_errors}  {client.state}")


async def probe(host: str, port: int, symbol: str, *, seconds: float | None = None, exchange: str = "",
                encoding: str = "binary", tick_size: float | None = None, depth: bool = True, username: str = "",
                password: str = "", heartbeat_s: float = 10.0, connect_timeout_s: float = 10.0,
                out=None, result: dict | None = None, tls: bool = False, tls_fingerprint: str = "") -> int:
    """Run the probe; returns the exit code (see the module docstring)."""
    from app.dtc.client import DTCClient, DTCError, LogonError, MarketDataRejected

    out = out or sys.stdout

    def say(text):
        print(text, file=out, flush=True)

    try:
        client = DTCClient(host, port, encoding=encoding, username=username, password=password,
                           heartbeat_s=heartbeat_s, connect_timeout_s=connect_timeout_s, client_name="MIA Elite probe",
                           tls=tls, tls_fingerprint=tls_fingerprint)
    except ValueError as exc:  # a username/password that does not fit LOGON_REQUEST, a bad encoding or pin
        say(f"cannot connect to {host}:{port}: {exc}")
        return 2
    book: BookSummary | None = None
    pending: list[np.ndarray] = []
    client_log = logging.getLogger("app.dtc.client")
    quiet = _DropRejectLog()
    client_log.addFilter(quiet)

    def on_events(batch):
        if book is None:
            pending.append(batch.copy())
        else:
            book.apply(batch)

    try:
        try:
            lr = await client.connect()
        except (OSError, asyncio.TimeoutError) as exc:
            say(f"cannot connect to {host}:{port}: {exc}. Is the DTC server enabled and listening on this port?")
            return 2
        except LogonError as exc:
            say(f"logon refused by {host}:{port}: {exc}")
            return 2
        except DTCError as exc:  # e.g. the server granted an encoding this client does not speak
            say(f"cannot talk to {host}:{port}: {exc}")
            return 2
        if client.peer_fingerprint:
            say(f"TLS: server certificate SHA-256 {client.peer_fingerprint}")
        say(f"connected to {host}:{port} ({lr.ServerName or 'DTC server'}), encoding {client.negotiated_encoding.name}, "
            f"trading {'yes' if lr.TradingIsSupported else 'no'}, depth {'yes' if lr.MarketDepthIsSupported else 'no'}")
        try:
            sub = await client.subscribe_market(symbol, exchange, depth=depth, on_events=on_events, tick_size=tick_size)
        except MarketDataRejected as exc:
            say(reject_message(symbol, exc.text, f"{host}:{port} ({lr.ServerName or 'DTC server'})"))
            return 2
        except ValueError as exc:
            say(f"cannot subscribe {symbol}: {exc}")
            return 2
        book = BookSummary(sub.tick_size)
        for b in pending:
            book.apply(b)
        pending.clear()
        say(f"subscribed {symbol} (SymbolID {sub.symbol_id}, tick {sub.tick_size:g})")
        t0 = time.monotonic()
        last_t, last_trades, last_msgs = t0, book.trades, client.messages_received
        try:
            while seconds is None or time.monotonic() - t0 < seconds:
                await asyncio.sleep(min(1.0, max(0.05, (t0 + seconds - time.monotonic()) if seconds else 1.0)))
                now = time.monotonic()
                dt = max(now - last_t, 1e-6)
                trades_s = (book.trades - last_trades) / dt
                msgs_s = (client.messages_received - last_msgs) / dt
                last_t, last_trades, last_msgs = now, book.trades, client.messages_received
                say(_line(symbol, book, trades_s, msgs_s, client))
        except asyncio.CancelledError:  # Ctrl-C: still print the summary
            say("interrupted")
        bid, ask = book.best()
        say(f"summary: {client.messages_received} messages, {book.events} events, {book.trades} trades, "
            f"{client.decode_errors} decode errors, {client.reconnects} reconnects; "
            f"best bid {book.fmt_price(bid[0]) if bid else '-'}, best ask {book.fmt_price(ask[0]) if ask else '-'}")
        if client.decode_errors and client.last_error:
            say(f"last decode error: {client.last_error}")
        if sub.rejected:
            say(f"note: the server rejected part of the subscription: {sub.rejected}")
        code = 1 if book.events == 0 else 0
        if code:
            say("no market data arrived")
        if result is not None:
            result["code"] = code
        return code
    finally:
        await client.close()
        client_log.removeFilter(quiet)


def run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    password = os.environ.get("MIA_ELITE_DTC_PASSWORD", "")  # never on the command line
    result = {"code": 130}
    try:
        return asyncio.run(probe(host, port, args.symbol, seconds=args.seconds, exchange=args.exchange,
                                 encoding=args.encoding, tick_size=args.tick_size, depth=not args.no_depth,
                                 username=args.username, password=password, heartbeat_s=args.heartbeat,
                                 connect_timeout_s=args.connect_timeout, result=result, tls=args.tls,
                                 tls_fingerprint=args.tls_fingerprint))
    except KeyboardInterrupt:
        return result["code"]
