"""Asyncio DTC client: connection, negotiation, logon, heartbeats, reconnect, requests, orders.

One :class:`DTCClient` owns one TCP connection to a DTC server (Sierra Chart, or MIA Elite's
built-in replay server) and keeps it alive:

* **Connect** -> binary ``ENCODING_REQUEST`` -> ``ENCODING_RESPONSE`` (the decoder switches to the
  granted encoding before decoding the next byte) -> ``LOGON_REQUEST`` -> ``LOGON_RESPONSE``
  (procedure of sierrachart.com ``doc/DTCMessageDocumentation.php``; reference notes section 4).
* **Heartbeats**: one ``HEARTBEAT`` every ``heartbeat_s`` seconds (the first one interval after
  logon); any received byte counts as liveness; silence for ``2 * heartbeat_s`` resets the
  connection (reference notes section 9, item 16).
* **Protocol core**: negotiation, logon, heartbeats and their deadlines live in the sans-I/O
  :class:`app.dtc.session.DTCSession` (role client); this class drives it with asyncio: it
  feeds it the socket's bytes, writes what it has to send and wakes it at its next deadline.
* **Time** comes from the ``clock`` (:mod:`app.core.clock`): the session's deadlines, the hold
  of untimed market data, wall-clock stamps and the message rate. With a
  :class:`~app.core.clock.ManualClock` the deadlines fall due when the test advances the
  clock (the client is woken by the clock; when the clock is advanced on the event loop's
  thread, the due deadlines are handled before ``advance`` returns). The TCP connect timeout,
  request timeouts and the reconnect backoff wait in real time (asyncio).
* **TLS** (``tls=True``; Sierra Chart's "Require TLS"): the server's certificate must verify
  against the system's authorities, or match the pinned SHA-256 fingerprint
  (``tls_fingerprint``; Sierra Chart's certificate is usually self-signed); otherwise
  :class:`UntrustedCertificate` says so with the fingerprint to compare and pin, and nothing is
  sent. Verification is never turned off without a pin.
* **Reconnect** with exponential backoff (``backoff_initial_s`` doubling up to
  ``backoff_max_s``) and +-25 % jitter, then **resubscribe** every market subscription with its
  old SymbolID (the server answers with fresh snapshots, so the book starts with ``OP_CLEAR``).
* **Market data** arrives as ``EVENT_DTYPE`` numpy batches (:mod:`app.dtc.batch`), prices in
  ticks of the symbol's ``MinPriceIncrement`` from its security definition; BBO messages
  (108/117/143/144) become ``KIND_QUOTE`` events. A market message that cannot be used (too
  short, a Side or batch flag outside its enum, an unsubscribed SymbolID, a price such as 3e18
  beyond the int64 tick range) is counted in :attr:`DTCClient.decode_errors` with its reason
  (:attr:`DTCClient.last_error`) and never reaches ``on_events``.
* **Event times are market times.** Messages without a timestamp (141 depth, 142 trades, 143
  BBO, 145 snapshot levels) or with a zero one (e.g. a 122 snapshot sent before the book has
  traded) are stamped with the last market time seen on the connection for that symbol (the
  latest timed depth or trade message), so a replay stays in the recording's time. Before any
  market time is seen, such depth/trade events are held back up to ``untimed_hold_s`` and
  stamped with the first market time that arrives; only if none arrives in time do they (and
  untimed BBO) take the wall clock. Rules: :mod:`app.dtc.batch` ("Market clock").
* **Requests** (security definition, trade accounts, positions, open orders, account balance)
  are awaitable and matched by RequestID; historical data uses its own connection on the
  historical port (one request per connection, as Sierra Chart does).
* **Orders**: :meth:`submit_order`, :meth:`submit_oco` (also bracket children), :meth:`cancel_order`
  (by ServerOrderID: the server identifies orders only by it), :meth:`cancel_replace`.
  ``ORDER_UPDATE``, ``POSITION_UPDATE``, ``ACCOUNT_BALANCE_UPDATE`` reach listeners registered
  with :meth:`add_listener`.

All callbacks run on the event loop thread (the GUI thread under qasync) and must be O(1)-ish;
an exception in a callback is logged and never stops the connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from app.core import events as ev
from app.core.clock import SYSTEM_CLOCK, Clock
from app.core.timers import ClockTimers, TimerHandle
from app.dtc import messages as M
from app.dtc.codec import SUPPORTED_ENCODINGS
from app.dtc.messages import Encoding, LogonFlags, MessageType
from app.dtc.session import (
    CloseCause,
    Closed,
    DTCSession,
    EncodingSelected,
    InvalidState,
    LoggedOn,
    LogonRefused,
    Role,
    State,
)

log = logging.getLogger(__name__)

T = MessageType

#: Integer_1 flags asked for when ``depth_float=True``: 140 depth updates, 144 bid/ask (Sierra
#: Chart DTCServer.php), and NO_COMPACT_MARKET_DATA_MESSAGES so trades come as 107 (double price
#: and volume, ms): 146's uint32 Volume would truncate fractional (crypto) sizes and 112 has
#: whole-second times; both are still decoded. 145 float snapshot levels are decoded too but not
#: asked for: their batch boundaries are only the 4-valued FinalUpdateInBatch, while 122 snapshot
#: levels carry explicit IsFirst/IsLast flags, which makes the snapshot's clear unambiguous.
FLOAT_FLAGS = (LogonFlags.USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES
               | LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES
               | LogonFlags.SUPPORT_MARKET_DATA_UPDATE_BIDASK_MICROSECOND_MESSAGE)

#: The BBO messages: decoded into KIND_QUOTE events, joined with the other market data of a read.
_QUOTE_TYPES = frozenset(int(t) for t in (T.MARKET_DATA_UPDATE_BID_ASK, T.MARKET_DATA_UPDATE_BID_ASK_COMPACT,
                                          T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS,
                                          T.MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP))

STATES = ("disconnected", "connecting", "negotiating", "logging_on", "connected", "reconnecting", "closed")

class DTCError(Exception):
    """Base class of the client's errors."""


class NotConnected(DTCError, ConnectionError):
    """The client has no live connection (it may be reconnecting)."""


class LogonError(DTCError):
    """The server refused the logon. ``result`` is the LogonStatusEnum, ``text`` its ResultText."""

    def __init__(self, result: int, text: str):
        self.result = int(result)
        self.text = text
        try:
            name = M.LogonStatus(self.result).name
        except ValueError:
            name = str(self.result)
        super().__init__(f"logon refused ({name}): {text}")


class UntrustedCertificate(DTCError):
    """TLS: the server's certificate is not trusted, so nothing was sent.

    Either it does not verify against the system's certificate authorities and no fingerprint is
    pinned (Sierra Chart's certificate is usually self-signed: compare :attr:`fingerprint` with
    the server's and pin it), or it differs from the pinned one (:attr:`pinned`).

    Attributes
    ----------
    host, port : str, int
    fingerprint : str
        SHA-256 of the certificate the server presented (DER), ``AB:CD:...`` (64 hex digits).
    pinned : str
        The pinned fingerprint it was compared with ("" when none was pinned).
    reason : str
        The verification error (no pin) or "fingerprint mismatch".
    """

    def __init__(self, host: str, port: int, fingerprint: str, reason: str, pinned: str = ""):
        self.host, self.port = host, int(port)
        self.fingerprint, self.pinned, self.reason = fingerprint, pinned, reason
        if pinned:
            text = (f"TLS: the certificate of {host}:{port} has SHA-256 {fingerprint}, not the pinned {pinned}: "
                    f"not connecting (a different server, or its certificate was renewed: check it and pin the "
                    f"new fingerprint)")
        else:
            text = (f"TLS: the certificate of {host}:{port} is not trusted ({reason}); its SHA-256 fingerprint is "
                    f"{fingerprint}. If that is your server's certificate (Sierra Chart's is usually self-signed), "
                    f"pin it: --tls-fingerprint {fingerprint} or the connection dialog / settings "
                    f"[connection] tls_fingerprint")
        super().__init__(text)


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate in DER form, as 32 upper-case hex bytes joined by colons (the
    form browsers and ``openssl x509 -fingerprint -sha256`` show)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint typed or pasted in any usual form (``ab:cd:..``, ``ABCD..``, spaces)
    as :func:`certificate_fingerprint` writes it; ``""`` stays ``""``.

    Raises
    ------
    ValueError
        Not 64 hex digits (the text says so).
    """
    digits = "".join(ch for ch in str(text) if ch not in ": \t").upper()
    if not digits:
        return ""
    if len(digits) != 64 or any(ch not in "0123456789ABCDEF" for ch in digits):
        raise ValueError(f"TLS fingerprint {text!r}: expected a SHA-256 fingerprint, 64 hex digits "
                         f"(e.g. AB:CD:...:EF)")
    return ":".join(digits[i:i + 2] for i in range(0, 64, 2))


def _unverified_context() -> ssl.SSLContext:
    """TLS without certificate verification: only for reading the certificate to compare its
    fingerprint with a pinned one (or to show it); never used to send anything unpinned."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch_fingerprint(host: str, port: int, timeout: float = 5.0) -> tuple[str, str]:
    """Read the TLS certificate of ``host:port`` (blocking, sends no DTC byte).

    Returns
    -------
    fingerprint : str
        SHA-256 of the certificate (:func:`certificate_fingerprint`).
    verify_error : str
        "" when the certificate verifies against the system's authorities for ``host``, else why
        not (e.g. "self-signed certificate"): then it must be pinned to be used.

    Raises
    ------
    OSError
        Cannot connect, or no TLS on that port (the text names host and port).
    """
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw:
            with _unverified_context().wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot read the TLS certificate of {host}:{port}: {exc}") from None
    fp = certificate_fingerprint(der)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw:
            with ssl.create_default_context().wrap_socket(raw, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as exc:
        return fp, str(exc.verify_message or exc)
    except (OSError, ssl.SSLError) as exc:
        return fp, str(exc)
    return fp, ""


class RequestRejected(DTCError):
    """A request was rejected by the server (its reject message's text)."""


class RequestTimeout(DTCError, TimeoutError):
    """No answer to a request in time."""


class MarketDataRejected(DTCError):
    """The server refused market data or depth for ``symbol``.

    The message tells the user why this usually happens with Sierra Chart and what to do.
    """

    def __init__(self, symbol: str, text: str):
        self.symbol = symbol
        self.text = text
        super().__init__(
            f"market data for {symbol} was rejected by the DTC server: {text!r}. Sierra Chart's DTC server "
            f"refuses CME, CBOE, EUREX and NASDAQ market data (exchange policy); trading still works. MIA Elite "
            f"can read Sierra Chart's own data files instead: Data/{symbol}.scid (trades) and "
            f"Data/MarketDepthData/ (depth), with 'Record Market Depth Data' turned on in Sierra Chart "
            f"(Global Settings >> Symbol Settings) and a chart of {symbol} open; then choose the data source "
            f"'Sierra Chart data files'."
        )


class HistoricalDataRejected(RequestRejected):
    """HISTORICAL_PRICE_DATA_REJECT; ``reason_code`` and ``retry_s`` as sent."""

    def __init__(self, text: str, reason_code: int, retry_s: int):
        self.reason_code = reason_code
        self.retry_s = retry_s
        super().__init__(f"historical data rejected ({reason_code}): {text}")


def logon_text_limit(name: str) -> int:
    """Most UTF-8 bytes LOGON_REQUEST's ``name`` field (``Username``, ``Password``) holds: its
    ``char[N]`` less the NUL (31 for both; ``DTCProtocol.h``)."""
    for f in M.LogonRequest.SPEC.fields:
        if f.name == name:
            return f.size - 1
    raise KeyError(name)


def _check_logon_text(name: str, value: str) -> None:
    """Raise ValueError when ``value`` does not fit LOGON_REQUEST's ``name`` (the text never
    shows a password)."""
    if not isinstance(value, str):
        raise ValueError(f"DTC {name.lower()} must be text, got {type(value).__name__}")
    n = len(value.encode("utf-8"))
    limit = logon_text_limit(name)
    if n > limit:
        raise ValueError(f"DTC {name.lower()} is {n} bytes; LOGON_REQUEST.{name} holds at most {limit} bytes "
                         f"(UTF-8)")


def _parse_encoding(value) -> Encoding:
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_").replace(" ", "_")
        key = {"JSON_COMPACT": "JSON_COMPACT", "COMPACT_JSON": "JSON_COMPACT", "COMPACT": "JSON_COMPACT"}.get(key, key)
        try:
            enc = Encoding[key]
        except KeyError:
            raise ValueError(f"encoding {value!r}: use binary, json or json_compact") from None
    else:
        enc = Encoding(int(value))
    if enc not in SUPPORTED_ENCODINGS:
        raise ValueError(f"encoding {enc.name} is not supported (binary, json, json_compact)")
    return enc


#: Largest |price / tick| accepted (int64 ticks with room; a double holds integers exactly to 2**53).
MAX_ABS_TICKS = 9.0e15


def price_to_ticks(price: float, tick: float) -> int | None:
    """``round(price / tick)`` as an int, or ``None`` when it cannot be a price in ticks.

    Parameters
    ----------
    price : float
        Price in the server's units.
    tick : float
        Price units per tick (> 0).

    Returns
    -------
    int or None
        Ticks; ``None`` for a non-finite price, a non-positive tick, or ``|price / tick|`` of
        :data:`MAX_ABS_TICKS` or more (e.g. 3e18 with tick 0.25, which overflows int64).
    """
    if not tick > 0 or not math.isfinite(price):
        return None
    q = price / tick
    if not abs(q) < MAX_ABS_TICKS:
        return None
    return int(round(q))


def clean_tick(x: float) -> float:
    """A float32 ``MinPriceIncrement`` (0.0099999998) as the decimal it stands for (0.01)."""
    x = float(x)
    return float(f"{x:.7g}") if x > 0 else 0.0


@dataclass
class Subscription:
    """One market subscription.

    Attributes
    ----------
    symbol, exchange : str
    symbol_id : int
        Client-chosen SymbolID (stable for the client's lifetime, reused after reconnects).
    tick_size : float
        Price units per tick (``MinPriceIncrement``), used to convert prices to ticks.
    depth : bool
        Depth requested as well as trades/BBO.
    on_events : callable(np.ndarray) or None
        Receives ``EVENT_DTYPE`` batches of this symbol.
    definition : SecurityDefinitionResponse or None
    rejected : str
        Reject text, when the server refused it ("" otherwise).
    """

    symbol: str
    exchange: str
    symbol_id: int
    tick_size: float
    depth: bool = True
    on_events: Callable[[np.ndarray], Any] | None = None
    num_levels: int = 0
    definition: Any = None
    rejected: str = ""
    events: int = 0
    ready: asyncio.Future | None = field(default=None, repr=False)


class _Pending:
    """A request waiting for its answer messages."""

    __slots__ = ("future", "items", "kind")

    def __init__(self, kind: str, loop):
        self.kind = kind
        self.items: list = []
        self.future = loop.create_future()


class DTCClient:
    """Asyncio DTC client (see the module docstring).

    Parameters
    ----------
    host, port : str, int
        The DTC server (Sierra Chart: usually 127.0.0.1:11099).
    encoding : Encoding or str
        Encoding to negotiate (binary, json, json_compact).
    client_name : str
        LOGON_REQUEST.ClientName.
    username, password : str
        Only when the server requires authentication (never logged).
    heartbeat_s : float
        Heartbeat interval declared at logon and kept; ``2 * heartbeat_s`` of silence resets.
    trade_account : str
        Default TradeAccount of orders and requests (``Sim1`` style for simulated accounts).
    depth_float : bool
        Ask Sierra Chart for the compact float depth/trade messages (``Integer_1`` flags,
        :data:`FLOAT_FLAGS`).
    historical_port : int or None
        Port of the historical data server (Sierra Chart default 11098); None = ``port``.
    reconnect : bool
        Reconnect after a lost connection (the first :meth:`connect` always raises on failure).
    backoff_initial_s, backoff_max_s : float
        Exponential backoff bounds, seconds.
    connect_timeout_s, request_timeout_s, subscribe_timeout_s : float
        Bounds of a TCP connect + logon, of one request, of the wait for a subscription's first
        data or reject.
    on_state : callable(str) or None
        Called with the new :attr:`state` on every change.
    confirm_subscribe : bool
        After a subscription's first data, one more request the server answers in order (a
        security definition) before :meth:`subscribe_market` returns, so the MARKET_DEPTH_REQUEST
        sent with the MARKET_DATA_REQUEST has been handled too (the first data answers only the
        latter). The built-in replay is resumed right after the subscription and must not run
        ahead of the depth request (seen at maximum speed with the server in its own process:
        the client's depth then began with the end-of-replay book); default False.
    untimed_hold_s : float
        Longest time (s of the ``clock``) untimed depth/trade events of a symbol are held back
        waiting for the connection's first market time of that symbol before they take the
        wall clock (module docstring); ``0`` stamps them with the wall clock at once.
    clock : Clock, optional
        Source of time (module docstring, "Time"); default
        :data:`~app.core.clock.SYSTEM_CLOCK`.
    tls : bool
        Connect with TLS (Sierra Chart's "Require TLS"). The certificate must verify against the
        system's authorities for ``host``, or match ``tls_fingerprint``; otherwise
        :meth:`connect` raises :class:`UntrustedCertificate` with the certificate's fingerprint
        (verification is never turned off silently).
    tls_fingerprint : str
        Pinned SHA-256 fingerprint of the server's certificate (any usual form, see
        :func:`normalize_fingerprint`): a certificate with this fingerprint is trusted (a
        self-signed one included), any other refused.

    Raises
    ------
    ValueError
        ``username`` or ``password`` longer than LOGON_REQUEST's ``char[32]`` (31 UTF-8 bytes),
        an unsupported ``encoding``, or a ``tls_fingerprint`` that is not 64 hex digits.
    """

    def __init__(self, host: str, port: int, *, encoding=Encoding.BINARY, client_name: str = "MIA Elite",
                 username: str = "", password: str = "", heartbeat_s: float = 10, trade_account: str = "",
                 depth_float: bool = True, historical_port: int | None = None, reconnect: bool = True,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0, connect_timeout_s: float = 10.0,
                 request_timeout_s: float = 15.0, subscribe_timeout_s: float = 10.0,
                 on_state: Callable[[str], Any] | None = None, untimed_hold_s: float = 2.0,
                 clock: Clock | None = None, tls: bool = False, tls_fingerprint: str = "",
                 confirm_subscribe: bool = False):
        self.clock = SYSTEM_CLOCK if clock is None else clock
        for name, value in (("Username", username), ("Password", password)):
            _check_logon_text(name, value)
        self.host = host
        self.port = int(port)
        self.encoding = _parse_encoding(encoding)
        self.client_name = client_name
        self.username = username
        self._password = password
        self.heartbeat_s = float(heartbeat_s)
        self.trade_account = trade_account
        self.depth_float = depth_float
        self.confirm_subscribe = bool(confirm_subscribe)
        self.historical_port = int(historical_port) if historical_port else self.port
        self.reconnect_enabled = reconnect
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.request_timeout_s = float(request_timeout_s)
        self.subscribe_timeout_s = float(subscribe_timeout_s)
        self.untimed_hold_s = float(untimed_hold_s)
        self.tls = bool(tls)
        self.tls_fingerprint = normalize_fingerprint(tls_fingerprint)
        #: SHA-256 fingerprint of the certificate of the current TLS connection ("" without TLS)
        self.peer_fingerprint = ""

        self.state = "disconnected"
        self._state_listeners: list[Callable[[str], Any]] = [on_state] if on_state else []
        self._listeners: dict[int, list[Callable]] = {}
        self.logon_response = None
        self.negotiated_encoding = Encoding.BINARY
        self.server_name = ""

        self.subscriptions: dict[int, Subscription] = {}
        self._symbol_ids: dict[tuple[str, str], int] = {}
        self._next_symbol_id = itertools.count(1)
        self._next_request_id = itertools.count(1)
        self._next_order = itertools.count(1)
        self._order_prefix = f"mia{self.clock.time_ns() // 1_000_000_000 % 100000:05d}"
        self._pending: dict[int, _Pending] = {}
        self._ticks: dict[int, float] = {}
        #: ClientOrderID -> latest ORDER_UPDATE
        self.orders: dict[str, Any] = {}

        self._reader = None
        self._writer = None
        #: the connection's protocol core (a new one per connection)
        self._session: DTCSession | None = None
        self._read_task: asyncio.Task | None = None
        #: the connection's deadline timer (the session's next deadline, on the injected clock)
        self._timers: ClockTimers | None = None
        self._timer_handle: TimerHandle | None = None
        self._supervisor: asyncio.Task | None = None
        self._conn_lost: asyncio.Future | None = None
        self._enc_future: asyncio.Future | None = None
        self._logon_future: asyncio.Future | None = None
        self._closing = False
        self._msgs_seen_conn = 0
        self._dispatching = False
        #: SymbolID -> market batches decoded in the current :meth:`_process` call, not yet handed over
        self._market_out: dict[int, list[np.ndarray]] = {}

        # statistics
        self.messages_received = 0
        self._errors_before = 0
        self.reconnects = 0
        self.connections = 0
        self.bytes_received = 0
        #: ``clock.monotonic_ns()`` when the latest socket read returned (before its bytes were
        #: decoded): the market batches handed over by that read were "read off the socket" then
        self.last_read_ns = 0
        self._rate_t0 = self.clock.monotonic()
        self._rate_n0 = 0
        self._rate = 0.0

    # ------------------------------------------------------------------ statistics

    @property
    def decode_errors(self) -> int:
        """Malformed frames (and messages with unusable values) seen over all connections."""
        return self._errors_before + (self._session.errors if self._session else 0)

    @property
    def last_error(self) -> str:
        """Reason of the latest decode error of the current connection ("" when none)."""
        return self._session.last_error if self._session else ""

    @property
    def msgs_per_s(self) -> float:
        """Messages received per second over the last ~1 s window."""
        now = self.clock.monotonic()
        if now - self._rate_t0 > 2.0:
            return 0.0 if self.messages_received == self._rate_n0 else self._rate
        return self._rate

    def _count(self, n: int) -> None:
        self.messages_received += n
        now = self.clock.monotonic()
        dt = now - self._rate_t0
        if dt >= 1.0:
            self._rate = (self.messages_received - self._rate_n0) / dt
            self._rate_t0 = now
            self._rate_n0 = self.messages_received

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # ------------------------------------------------------------------ listeners

    def add_listener(self, msg_type: int, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(message)`` for every received message of ``msg_type``."""
        self._listeners.setdefault(int(msg_type), []).append(callback)

    def remove_listener(self, msg_type: int, callback) -> None:
        lst = self._listeners.get(int(msg_type), [])
        if callback in lst:
            lst.remove(callback)

    def add_state_listener(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(state)`` on every connection-state change."""
        self._state_listeners.append(callback)

    def remove_state_listener(self, callback) -> None:
        """Stop calling ``callback`` on state changes (no error when it was not registered)."""
        if callback in self._state_listeners:
            self._state_listeners.remove(callback)

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        log.info("dtc %s:%d: %s", self.host, self.port, state)
        for cb in list(self._state_listeners):
            try:
                cb(state)
            except Exception:  # noqa: BLE001
                log.exception("state listener failed")

    # ------------------------------------------------------------------ connection

    async def connect(self):
        """Connect, negotiate the encoding and log on; then keep the connection alive.

        Returns
        -------
        LogonResponse

        Raises
        ------
        OSError
            TCP connection failed (nothing listening, refused, timeout).
        LogonError
            The server refused the logon.
        UntrustedCertificate
            TLS: the certificate neither verifies nor matches the pinned fingerprint.
        DTCError
            Negotiation failed (the server granted an unsupported encoding).
        asyncio.TimeoutError
            No ENCODING_RESPONSE, or no LOGON_RESPONSE, within ``connect_timeout_s`` of the
            ``clock`` (each step), or no TCP connection within ``connect_timeout_s``.
        ConnectionResetError
            The server closed the connection during the handshake.
        """
        self._closing = False
        try:
            await self._open()
        except BaseException:
            await self._drop_connection()
            self._set_state("disconnected")
            raise
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self.logon_response

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._set_state("connecting")
        reader, writer = await asyncio.wait_for(self._open_stream(), self.connect_timeout_s)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover
                pass
        self._reader, self._writer = reader, writer
        self.connections += 1
        if self._session is not None:
            self._errors_before += self._session.errors
        # each handshake step (ENCODING_RESPONSE, LOGON_RESPONSE) gets connect_timeout_s
        session = self._session = DTCSession(
            Role.CLIENT, clock=self.clock, encoding=self.encoding, heartbeat_s=self.heartbeat_s,
            handshake_timeout_s=self.connect_timeout_s, tick_sizes=self._ticks, market_clock=True,
            hold_s=self.untimed_hold_s)
        self._msgs_seen_conn = 0
        self.negotiated_encoding = Encoding.BINARY
        self._conn_lost = loop.create_future()
        self._enc_future = loop.create_future()
        self._logon_future = loop.create_future()
        self._read_task = loop.create_task(self._read_loop(session, reader, self._conn_lost))
        self._timers = ClockTimers(self.clock, name="dtc-client-timers")
        self._timers.start()
        # 1. encoding negotiation (always binary on the wire at connection start); the session
        #    sends the LOGON_REQUEST in the granted encoding as soon as the answer is in
        self._set_state("negotiating")
        # without the float flags: the double-precision 107/108 (Sierra Chart sends the float
        # compact 112/117, whole-second times, unless NO_COMPACT_MARKET_DATA_MESSAGES is set)
        flags = int(FLOAT_FLAGS) if self.depth_float else int(LogonFlags.NO_COMPACT_MARKET_DATA_MESSAGES)
        session.initiate(M.LogonRequest(Username=self.username, Password=self._password, Integer_1=flags,
                                        HeartbeatIntervalInSeconds=max(1, int(round(self.heartbeat_s))),
                                        TradeAccount=self.trade_account, ClientName=self.client_name[:31]))
        self._flush(session)
        self._arm_timer(session)  # the handshake step's deadline
        selected = await self._await_step(self._enc_future, "ENCODING_RESPONSE")
        granted = selected.encoding
        if granted != self.encoding:
            log.warning("dtc: asked for %s encoding, server uses %s", self.encoding.name, granted.name)
        self.negotiated_encoding = granted
        # 2. logon
        self._set_state("logging_on")
        lr = await self._await_step(self._logon_future, "LOGON_RESPONSE")
        if lr.Result != M.LogonStatus.LOGON_SUCCESS:
            raise LogonError(lr.Result, lr.ResultText)
        self.logon_response = lr
        self.server_name = lr.ServerName
        self._set_state("connected")

    async def _open_stream(self):
        """The TCP (or TLS) connection: (reader, writer). With TLS the certificate is checked
        before anything is sent (class docstring, ``tls``)."""
        if not self.tls:
            return await asyncio.open_connection(self.host, self.port)
        self.peer_fingerprint = ""
        if self.tls_fingerprint:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=_unverified_context(),
                                                           server_hostname=self.host)
            fp = certificate_fingerprint(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
            if fp != self.tls_fingerprint:
                writer.transport.abort()
                raise UntrustedCertificate(self.host, self.port, fp, "fingerprint mismatch", self.tls_fingerprint)
            self.peer_fingerprint = fp
            return reader, writer
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=ssl.create_default_context(),
                                                           server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            # read the certificate (nothing is sent) so that the user can compare and pin it
            _r, w = await asyncio.open_connection(self.host, self.port, ssl=_unverified_context(),
                                                  server_hostname=self.host)
            fp = certificate_fingerprint(w.get_extra_info("ssl_object").getpeercert(binary_form=True))
            w.transport.abort()
            raise UntrustedCertificate(self.host, self.port, fp, str(exc.verify_message or exc)) from None
        self.peer_fingerprint = certificate_fingerprint(writer.get_extra_info("ssl_object").getpeercert(True))
        return reader, writer

    async def _await_step(self, fut, what):
        """Wait for one handshake step; the session's deadline bounds it (a handshake timeout
        closes the session, which resolves the connection-lost future)."""
        lost = self._conn_lost
        done, _ = await asyncio.wait({fut, lost}, return_when=asyncio.FIRST_COMPLETED)
        if fut in done:
            return fut.result()
        closed = self._session.closed if self._session is not None else None
        if closed is not None and closed.cause is CloseCause.HANDSHAKE_TIMEOUT:
            raise asyncio.TimeoutError(closed.reason)
        if closed is not None and closed.cause is CloseCause.PROTOCOL_ERROR:
            raise DTCError(closed.reason)
        raise ConnectionResetError(f"connection closed while waiting for {what}: {lost.result()}")

    async def _drop_connection(self) -> None:
        # held untimed events die with their connection's session (its decoder)
        timers, self._timers, self._timer_handle = self._timers, None, None
        if timers is not None:
            await timers.stop()
        t = self._read_task
        if t is not None and not t.done():
            t.cancel()
        if t is not None:
            try:
                await asyncio.wait_for(asyncio.shield(t), 1.0)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        self._read_task = None
        w = self._writer
        self._writer = None
        if w is not None:
            try:
                w.close()
                await asyncio.wait_for(w.wait_closed(), 1.0)
            except (OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_exception(NotConnected("connection lost before the answer arrived"))
        self._pending.clear()

    async def _supervise(self) -> None:
        """Wait for the connection to drop; reconnect with backoff and resubscribe."""
        try:
            while not self._closing:
                lost = self._conn_lost
                if lost is None:
                    return
                reason = await lost
                if self._closing:
                    return
                log.warning("dtc %s:%d: connection lost: %s", self.host, self.port, reason)
                await self._drop_connection()
                if not self.reconnect_enabled or reason == "logoff-no-reconnect":
                    self._set_state("disconnected")
                    return
                self._set_state("reconnecting")
                delay = self.backoff_initial_s
                while not self._closing:
                    await asyncio.sleep(delay * random.uniform(0.75, 1.25))
                    if self._closing:
                        return
                    try:
                        await self._open()
                        self.reconnects += 1
                        await self._resubscribe()
                        break
                    except UntrustedCertificate as exc:
                        await self._drop_connection()
                        log.error("dtc: %s; not reconnecting", exc)
                        self._set_state("disconnected")
                        return
                    except LogonError as exc:
                        await self._drop_connection()
                        if exc.result == M.LogonStatus.LOGON_ERROR_NO_RECONNECT:
                            log.error("dtc: %s; not reconnecting", exc)
                            self._set_state("disconnected")
                            return
                        log.warning("dtc: reconnect failed: %s", exc)
                    except (OSError, asyncio.TimeoutError, DTCError) as exc:
                        await self._drop_connection()
                        log.info("dtc: reconnect to %s:%d failed (%s); next try in ~%.1f s",
                                 self.host, self.port, exc, min(delay * 2, self.backoff_max_s))
                        self._set_state("reconnecting")
                    delay = min(delay * 2, self.backoff_max_s)
        except asyncio.CancelledError:
            pass

    async def close(self) -> None:
        """Log off, close the connection, stop reconnecting. Idempotent."""
        self._closing = True
        s = self._session
        if self._writer is not None and self.state == "connected" and s is not None:
            try:
                s.logoff("client closing")
                self._flush(s)
            except Exception:  # noqa: BLE001
                pass
        sup = self._supervisor
        self._supervisor = None
        if sup is not None and not sup.done():
            sup.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(sup), 1.0)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        await self._drop_connection()
        for s in self.subscriptions.values():
            if s.ready is not None and not s.ready.done():
                s.ready.cancel()
        self._set_state("closed")

    def drop_connection_for_test(self) -> None:
        """Abort the TCP connection as a network failure would (the client reconnects)."""
        if self._writer is not None:
            self._writer.transport.abort()

    # ------------------------------------------------------------------ I/O

    def _write(self, data: bytes) -> None:
        w = self._writer
        if w is None or w.is_closing():
            raise NotConnected(f"not connected to {self.host}:{self.port} (state {self.state})")
        w.write(data)

    def _flush(self, session: DTCSession) -> None:
        """Write what ``session`` has to send (nothing when the connection is gone)."""
        data = session.data_to_send()
        if data and session is self._session:
            try:
                self._write(data)
            except NotConnected:
                pass

    def _send(self, msg) -> None:
        s = self._session
        w = self._writer
        if s is None or w is None or w.is_closing():
            raise NotConnected(f"not connected to {self.host}:{self.port} (state {self.state})")
        try:
            s.send(msg)
        except InvalidState as exc:
            raise NotConnected(f"{self.host}:{self.port}: {exc}") from None
        w.write(s.data_to_send())

    def send(self, msg) -> None:
        """Send any DTC message in the negotiated encoding (raises :class:`NotConnected`)."""
        self._send(msg)

    async def _read_loop(self, session: DTCSession, reader, lost: asyncio.Future) -> None:
        reason = "closed by server"
        try:
            while session.state is not State.CLOSED:
                data = await reader.read(1 << 17)
                if not data:
                    session.receive_eof()
                    self._process(session)
                    break
                self.bytes_received += len(data)
                self.last_read_ns = self.clock.monotonic_ns()
                session.receive_data(data)
                self._process(session)
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except (OSError, ConnectionError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the client silently
            log.exception("dtc read loop failed")
            reason = f"internal error: {exc}"
        finally:
            if not lost.done():
                lost.set_result(reason)

    def _process(self, session: DTCSession) -> None:
        """Dispatch what ``session`` decoded, write what it has to send, count its messages and
        move the deadline timer to the session's next deadline.

        Market events decoded here (depth/trade runs and BBO quotes) are joined: each
        subscription's ``on_events`` gets one batch per call (one socket read), in stream order,
        handed over before any other message or session event that followed them is
        dispatched (so the relative order of market data and, say, an order update stays).
        """
        self._dispatching = True
        try:
            for item in session.events_received():
                if isinstance(item, np.ndarray):
                    self._dispatch_events(item)
                elif isinstance(item, M.Message):
                    if int(item.TYPE) not in _QUOTE_TYPES:
                        self._flush_market()
                    self._dispatch(item)
                else:
                    self._flush_market()
                    self._on_session_event(session, item)
        finally:
            self._dispatching = False
            self._flush_market()
        self._flush(session)
        self._count_messages(session)
        self._arm_timer(session)

    def _on_session_event(self, session: DTCSession, event) -> None:
        if isinstance(event, EncodingSelected):
            if self._enc_future is not None and not self._enc_future.done():
                self._enc_future.set_result(event)
        elif isinstance(event, (LoggedOn, LogonRefused)):
            if self._logon_future is not None and not self._logon_future.done():
                self._logon_future.set_result(event.response)
        elif isinstance(event, Closed):
            self._on_closed(session, event)

    def _on_closed(self, session: DTCSession, event: Closed) -> None:
        cause = event.cause
        if cause is CloseCause.PEER_LOGOFF:
            log.warning("dtc: server logged off: %s%s", event.reason,
                        " (do not reconnect)" if event.do_not_reconnect else "")
            reason = "logoff-no-reconnect" if event.do_not_reconnect else f"logoff: {event.reason}"
        elif cause is CloseCause.HEARTBEAT_TIMEOUT:
            log.warning("dtc %s:%d: %s: resetting", self.host, self.port, event.reason)
            reason = "heartbeat timeout"
        elif cause is CloseCause.DESYNC:
            reason = f"{event.reason}; resetting the connection"
        else:
            reason = event.reason
        lost = self._conn_lost
        if session is self._session and lost is not None and not lost.done():
            lost.set_result(reason)
        if cause is CloseCause.HEARTBEAT_TIMEOUT and session is self._session and self._writer is not None:
            self._flush(session)  # the LOGOFF, in case the peer still reads
            self._writer.transport.abort()

    def _arm_timer(self, session: DTCSession) -> None:
        """Schedule :meth:`_on_deadline` at the session's next deadline (heartbeat, silent peer,
        handshake step, held market data), replacing an earlier schedule that no longer matches."""
        timers = self._timers
        if timers is None or session is not self._session:
            return
        due = session.next_deadline_ns()
        h = self._timer_handle
        if h is not None and not h.cancelled and h.when_ns == due:
            return
        if h is not None:
            h.cancel()
        self._timer_handle = timers.call_at(due, self._on_deadline, session) if due is not None else None

    def _on_deadline(self, session: DTCSession) -> None:
        """Timer callback on the loop's thread: the session acts on its due deadlines. A clock
        moved from inside a message callback defers this to the next loop turn (no re-entry)."""
        self._timer_handle = None
        if session is not self._session or session.state is State.CLOSED:
            return
        if self._dispatching:
            asyncio.get_running_loop().call_soon(self._on_deadline, session)
            return
        self._run_timeouts(session)
        self._arm_timer(session)

    def _run_timeouts(self, session: DTCSession) -> None:
        if session.state is State.CLOSED:
            return
        session.handle_timeouts()
        self._process(session)

    def _count_messages(self, session: DTCSession) -> None:
        """Add the messages ``session`` (this connection's) decoded since the last call."""
        total = session.messages
        n = total - self._msgs_seen_conn
        self._msgs_seen_conn = total
        self._count(n)

    # ------------------------------------------------------------------ dispatch

    def _dispatch_events(self, batch: np.ndarray) -> None:
        if batch.shape[0] == 0:
            return
        sids = batch["symbol_id"]
        first = int(sids[0])
        if (sids == first).all():
            self._deliver(first, batch)
        else:
            for sid in np.unique(sids):
                self._deliver(int(sid), batch[sids == sid])

    def _deliver(self, sid: int, batch: np.ndarray) -> None:
        """Hand ``batch`` (EVENT_DTYPE, shape (n,)) to subscription ``sid``; while
        :meth:`_process` dispatches, it is queued and joined with the batches of the same read
        (:meth:`_flush_market`)."""
        sub = self.subscriptions.get(sid)
        if sub is None:
            return
        sub.events += batch.shape[0]
        if sub.ready is not None and not sub.ready.done():
            sub.ready.set_result(True)
        if sub.on_events is None:
            return
        if self._dispatching:
            self._market_out.setdefault(sid, []).append(batch)
            return
        self._hand_over(sub, batch)

    def _hand_over(self, sub: Subscription, batch: np.ndarray) -> None:
        try:
            sub.on_events(batch)
        except Exception:  # noqa: BLE001
            log.exception("on_events callback for %s failed", sub.symbol)

    def _flush_market(self) -> None:
        """Hand each subscription its queued batches as one joined batch (stream order kept)."""
        out = self._market_out
        if not out:
            return
        self._market_out = {}
        for sid, parts in out.items():
            sub = self.subscriptions.get(sid)
            if sub is None or sub.on_events is None:
                continue
            self._hand_over(sub, parts[0] if len(parts) == 1 else np.concatenate(parts))

    def _dispatch(self, msg) -> None:
        t = int(msg.TYPE)
        handler = self._HANDLERS.get(t)
        if handler is not None:
            try:
                handler(self, msg)
            except Exception:  # noqa: BLE001
                log.exception("dtc: handling %s failed", type(msg).__name__)
        for cb in self._listeners.get(t, ()):
            try:
                cb(msg)
            except Exception:  # noqa: BLE001
                log.exception("dtc listener for %s failed", type(msg).__name__)

    def _on_reject(self, msg) -> None:
        sub = self.subscriptions.get(int(msg.SymbolID))
        text = msg.RejectText
        if sub is None:
            log.warning("dtc: market data reject for unknown SymbolID %d: %s", msg.SymbolID, text)
            return
        sub.rejected = text
        log.warning("dtc: %s rejected: %s", sub.symbol, text)
        if sub.ready is not None and not sub.ready.done():
            sub.ready.set_exception(MarketDataRejected(sub.symbol, text))

    def _on_snapshot(self, msg) -> None:
        sub = self.subscriptions.get(int(msg.SymbolID))
        if sub is not None and sub.ready is not None and not sub.ready.done():
            sub.ready.set_result(True)

    def _on_bid_ask(self, msg) -> None:
        sid = int(msg.SymbolID)
        sub = self.subscriptions.get(sid)
        if sub is None or not sub.tick_size > 0:
            self._count_error(f"{type(msg).__name__} ({int(msg.TYPE)}) SymbolID {sid}: SymbolID is not subscribed")
            return
        t = int(msg.TYPE)
        if t == T.MARKET_DATA_UPDATE_BID_ASK:
            ts = int(msg.DateTime) * 1_000_000_000
        elif t == T.MARKET_DATA_UPDATE_BID_ASK_COMPACT:
            ts = int(msg.DateTime) * 1_000_000_000
        elif t == T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS:
            ts = int(msg.DateTime) * 1000
        else:
            ts = 0  # 143: no timestamp
        if ts <= 0:  # untimed: the connection's market time of the symbol, else the wall clock
            s = self._session
            ts = s.decoder.market_time(sid, 0) if s is not None else 0
            if ts <= 0:
                ts = self.clock.time_ns()
        tick = sub.tick_size
        quotes = []
        for side, price, qty in ((ev.SIDE_BID, msg.BidPrice, msg.BidQuantity),
                                 (ev.SIDE_ASK, msg.AskPrice, msg.AskQuantity)):
            price = float(price)
            if M.is_unset(price):
                continue
            ticks = price_to_ticks(price, tick)
            qty = float(qty)
            if ticks is None or not math.isfinite(qty):
                # a value that cannot be a quote (e.g. 3e18): a counted decode error, never a crash
                self._count_error(f"{type(msg).__name__} SymbolID {sid}: price {price!r} / quantity {qty!r} "
                                  f"out of range for tick {tick:g}; quote dropped")
                return
            quotes.append((side, ticks, qty))
        if not quotes:
            return
        out = np.zeros(len(quotes), dtype=ev.EVENT_DTYPE)
        out["ts"] = ts
        out["kind"] = ev.KIND_QUOTE
        out["symbol_id"] = sid
        for i, (side, ticks, qty) in enumerate(quotes):
            out["price"][i] = ticks
            out["size"][i] = qty
            out["side"][i] = side
        self._deliver(sid, out)

    def _count_error(self, reason: str) -> None:
        """Count a received message whose values cannot be used as a decode error (with its
        reason, see :attr:`decode_errors` and :attr:`last_error`)."""
        s = self._session
        if s is not None:
            s.decoder.error(reason)

    def _on_order_update(self, msg) -> None:
        if msg.ClientOrderID:
            self.orders[msg.ClientOrderID] = msg
        self._answer(msg, "orders", last=(msg.MessageNumber >= msg.TotalNumMessages) or bool(msg.NoOrders),
                     empty=bool(msg.NoOrders))

    def _on_position_update(self, msg) -> None:
        self._answer(msg, "positions", last=(msg.MessageNumber >= msg.TotalNumberMessages) or bool(msg.NoPositions),
                     empty=bool(msg.NoPositions))

    def _on_balance_update(self, msg) -> None:
        self._answer(msg, "balance", last=(msg.MessageNumber >= msg.TotalNumberMessages) or bool(msg.NoAccountBalances),
                     empty=bool(msg.NoAccountBalances))

    def _on_trade_account(self, msg) -> None:
        self._answer(msg, "accounts", last=msg.MessageNumber >= msg.TotalNumberMessages,
                     empty=msg.TotalNumberMessages == 0)

    def _on_security_definition(self, msg) -> None:
        self._answer(msg, "secdef", last=True, empty=False)

    def _on_request_reject(self, msg) -> None:
        p = self._pending.pop(int(msg.RequestID), None)
        if p is not None and not p.future.done():
            p.future.set_exception(RequestRejected(f"{type(msg).__name__}: {msg.RejectText}"))

    def _answer(self, msg, kind: str, *, last: bool, empty: bool) -> None:
        rid = int(msg.RequestID)
        if rid == 0:
            return  # unsolicited
        p = self._pending.get(rid)
        if p is None or p.kind != kind:
            return
        if not empty:
            p.items.append(msg)
        if last:
            self._pending.pop(rid, None)
            if not p.future.done():
                p.future.set_result(p.items)

    _HANDLERS: dict = {}

    # ------------------------------------------------------------------ requests

    def _new_request(self, kind: str) -> tuple[int, _Pending]:
        rid = next(self._next_request_id)
        p = _Pending(kind, asyncio.get_running_loop())
        self._pending[rid] = p
        return rid, p

    async def _request(self, kind: str, make_msg: Callable[[int], Any], timeout: float | None = None) -> list:
        rid, p = self._new_request(kind)
        try:
            self._send(make_msg(rid))
            return await asyncio.wait_for(p.future, timeout or self.request_timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no answer to {kind} request {rid} within "
                                 f"{timeout or self.request_timeout_s:.0f} s") from None
        finally:
            self._pending.pop(rid, None)

    async def security_definition(self, symbol: str, exchange: str = "", timeout: float | None = None):
        """SECURITY_DEFINITION_RESPONSE for ``symbol`` (raises RequestRejected / RequestTimeout)."""
        items = await self._request("secdef", lambda rid: M.SecurityDefinitionForSymbolRequest(
            RequestID=rid, Symbol=symbol, Exchange=exchange), timeout)
        if not items:
            raise RequestRejected(f"no security definition for {symbol}")
        return items[0]

    async def trade_accounts(self) -> list[str]:
        """Trade account names (TRADE_ACCOUNTS_REQUEST -> TRADE_ACCOUNT_RESPONSEs)."""
        items = await self._request("accounts", lambda rid: M.TradeAccountsRequest(RequestID=rid))
        return [m.TradeAccount for m in items if m.TradeAccount]

    async def positions(self, account: str | None = None) -> list:
        """Current POSITION_UPDATEs of ``account`` (default :attr:`trade_account`; [] when none)."""
        acct = self.trade_account if account is None else account
        return await self._request("positions", lambda rid: M.CurrentPositionsRequest(RequestID=rid, TradeAccount=acct))

    async def open_orders(self, account: str | None = None) -> list:
        """Working orders as ORDER_UPDATEs (reason OPEN_ORDERS_REQUEST_RESPONSE; [] when none)."""
        acct = self.trade_account if account is None else account
        return await self._request("orders", lambda rid: M.OpenOrdersRequest(RequestID=rid, RequestAllOrders=1,
                                                                             TradeAccount=acct))

    async def account_balance(self, account: str | None = None):
        """ACCOUNT_BALANCE_UPDATE of ``account`` (None when the server has none)."""
        acct = self.trade_account if account is None else account
        items = await self._request("balance", lambda rid: M.AccountBalanceRequest(RequestID=rid, TradeAccount=acct))
        for m in items:
            if not acct or m.TradeAccount == acct:
                return m
        return items[0] if items else None

    # ------------------------------------------------------------------ market data

    def symbol_id(self, symbol: str, exchange: str = "") -> int:
        """The SymbolID of ``symbol``/``exchange`` (allocated on first use, then stable)."""
        key = (symbol, exchange)
        sid = self._symbol_ids.get(key)
        if sid is None:
            sid = next(self._next_symbol_id)
            self._symbol_ids[key] = sid
        return sid

    async def subscribe_market(self, symbol: str, exchange: str = "", depth: bool = True,
                               on_events: Callable[[np.ndarray], Any] | None = None, *,
                               tick_size: float | None = None, num_levels: int = 0) -> Subscription:
        """Subscribe to trades/BBO (and depth) of ``symbol``; events go to ``on_events``.

        The tick size comes from the security definition's ``MinPriceIncrement`` unless
        ``tick_size`` is given. Waits for the first data (snapshot, depth snapshot, trade) or a
        reject, at most :attr:`subscribe_timeout_s` (then returns, logging that nothing came yet).

        Raises
        ------
        MarketDataRejected
            MARKET_DATA_REJECT or MARKET_DEPTH_REJECT for this symbol.
        ValueError
            No tick size known (server without security definitions and no ``tick_size``).
        """
        sid = self.symbol_id(symbol, exchange)
        definition = None
        no_tick_reason = ""
        if tick_size is None:
            try:
                definition = await self.security_definition(symbol, exchange)
                tick_size = clean_tick(definition.MinPriceIncrement)
                if not tick_size > 0:
                    no_tick_reason = f"security definition has MinPriceIncrement {definition.MinPriceIncrement}"
            except (RequestRejected, RequestTimeout) as exc:
                no_tick_reason = f"security definition failed: {exc}"
        sub = Subscription(symbol, exchange, sid, float(tick_size or 0.0), depth, on_events, int(num_levels),
                           definition)
        sub.ready = asyncio.get_running_loop().create_future()
        self.subscriptions[sid] = sub
        if no_tick_reason:
            # still ask: a market data reject (with its advice) is more useful than "no tick size"
            self._send_subscribe(sub)
            try:
                await asyncio.wait_for(asyncio.shield(sub.ready), self.subscribe_timeout_s)
            except MarketDataRejected:
                self.subscriptions.pop(sid, None)
                raise
            except asyncio.TimeoutError:
                pass
            self.unsubscribe_market(symbol, exchange)
            raise ValueError(f"{symbol}: no tick size ({no_tick_reason}); pass tick_size")
        self._ticks[sid] = sub.tick_size
        self._send_subscribe(sub)
        try:
            await asyncio.wait_for(asyncio.shield(sub.ready), self.subscribe_timeout_s)
        except asyncio.TimeoutError:
            log.warning("dtc: no data for %s within %.0f s after subscribing (still subscribed)", symbol,
                        self.subscribe_timeout_s)
        except MarketDataRejected:
            self.subscriptions.pop(sid, None)
            self._ticks.pop(sid, None)
            raise
        if self.confirm_subscribe and depth:
            try:  # answered after the depth request was handled (one connection, in order)
                await self.security_definition(symbol, exchange)
            except (RequestRejected, RequestTimeout) as exc:
                log.warning("dtc: %s: the confirming request after subscribing failed: %s", symbol, exc)
        return sub

    def _send_subscribe(self, sub: Subscription) -> None:
        self._send(M.MarketDataRequest(RequestAction=M.RequestAction.SUBSCRIBE, SymbolID=sub.symbol_id,
                                       Symbol=sub.symbol, Exchange=sub.exchange))
        if sub.depth:
            self._send(M.MarketDepthRequest(RequestAction=M.RequestAction.SUBSCRIBE, SymbolID=sub.symbol_id,
                                            Symbol=sub.symbol, Exchange=sub.exchange, NumLevels=sub.num_levels))

    async def _resubscribe(self) -> None:
        for sub in list(self.subscriptions.values()):
            if sub.rejected:
                continue
            sub.ready = asyncio.get_running_loop().create_future()
            # nobody awaits it: consume a reject here (listeners of 103/121 still see it)
            sub.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._send_subscribe(sub)
            log.info("dtc: resubscribed %s (SymbolID %d)", sub.symbol, sub.symbol_id)

    def unsubscribe_market(self, symbol: str, exchange: str = "") -> None:
        """Stop the subscription of ``symbol`` (no-op when not subscribed)."""
        sid = self._symbol_ids.get((symbol, exchange))
        sub = self.subscriptions.pop(sid, None) if sid else None
        if sub is None:
            return
        self._ticks.pop(sid, None)  # its market data is no longer decoded (counted if it still comes)
        try:
            self._send(M.MarketDataRequest(RequestAction=M.RequestAction.UNSUBSCRIBE, SymbolID=sid))
            if sub.depth:
                self._send(M.MarketDepthRequest(RequestAction=M.RequestAction.UNSUBSCRIBE, SymbolID=sid))
        except NotConnected:
            pass

    # ------------------------------------------------------------------ orders

    def new_client_order_id(self) -> str:
        """A ClientOrderID unique for this session (``mia<nnnnn>-<n>``)."""
        return f"{self._order_prefix}-{next(self._next_order)}"

    def submit_order(self, order) -> str:
        """Send a SUBMIT_NEW_SINGLE_ORDER; returns its ClientOrderID.

        Empty ``TradeAccount`` / ``ClientOrderID`` are filled with :attr:`trade_account` and a
        fresh id. Prices are in the trading service's format (see the reference notes, section
        9, item 11, about DisplayPriceMultiplier). Raises :class:`NotConnected`.
        """
        if not isinstance(order, M.SubmitNewSingleOrder):
            raise TypeError("submit_order takes a SubmitNewSingleOrder")
        kw = {}
        if not order.ClientOrderID:
            kw["ClientOrderID"] = self.new_client_order_id()
        if not order.TradeAccount and self.trade_account:
            kw["TradeAccount"] = self.trade_account
        if kw:
            order = order.replace(**kw)
        self._send(order)
        return order.ClientOrderID

    def submit_oco(self, order) -> tuple[str, str]:
        """Send a SUBMIT_NEW_OCO_ORDER (bracket children when ParentTriggerClientOrderID is set).

        Returns the two ClientOrderIDs (generated when empty).
        """
        if not isinstance(order, M.SubmitNewOCOOrder):
            raise TypeError("submit_oco takes a SubmitNewOCOOrder")
        kw = {}
        if not order.ClientOrderID_1:
            kw["ClientOrderID_1"] = self.new_client_order_id()
        if not order.ClientOrderID_2:
            kw["ClientOrderID_2"] = self.new_client_order_id()
        if not order.TradeAccount and self.trade_account:
            kw["TradeAccount"] = self.trade_account
        if kw:
            order = order.replace(**kw)
        self._send(order)
        return order.ClientOrderID_1, order.ClientOrderID_2

    def cancel_order(self, server_order_id: str, client_order_id: str = "", trade_account: str | None = None) -> None:
        """Send CANCEL_ORDER. The server identifies the order only by ``server_order_id``."""
        if not server_order_id:
            raise ValueError("cancel_order needs the ServerOrderID (from ORDER_UPDATE); a cancel without it is "
                             "silently ignored by Sierra Chart")
        self._send(M.CancelOrder(ServerOrderID=server_order_id, ClientOrderID=client_order_id,
                                 TradeAccount=self.trade_account if trade_account is None else trade_account))

    def cancel_replace(self, server_order_id: str, *, price1: float | None = None, price2: float | None = None,
                       quantity: float | None = None, client_order_id: str = "", time_in_force: int = 0,
                       trade_account: str | None = None) -> None:
        """Send CANCEL_REPLACE_ORDER. ``None`` leaves a price unchanged (Price*IsSet = 0);
        ``quantity`` is the new total including what has filled (None/0: unchanged)."""
        if not server_order_id:
            raise ValueError("cancel_replace needs the ServerOrderID")
        self._send(M.CancelReplaceOrder(
            ServerOrderID=server_order_id, ClientOrderID=client_order_id,
            Price1=0.0 if price1 is None else float(price1), Price1IsSet=0 if price1 is None else 1,
            Price2=0.0 if price2 is None else float(price2), Price2IsSet=0 if price2 is None else 1,
            Quantity=0.0 if quantity is None else float(quantity), TimeInForce=int(time_in_force),
            TradeAccount=self.trade_account if trade_account is None else trade_account))

    def flatten_position(self, symbol: str, exchange: str = "", trade_account: str | None = None) -> str:
        """Send SUBMIT_FLATTEN_POSITION_ORDER; returns its ClientOrderID."""
        cid = self.new_client_order_id()
        self._send(M.SubmitFlattenPositionOrder(Symbol=symbol, Exchange=exchange, ClientOrderID=cid,
                                                TradeAccount=self.trade_account if trade_account is None
                                                else trade_account))
        return cid

    # ------------------------------------------------------------------ historical data

    async def historical(self, symbol: str, exchange: str = "", *, interval: int = M.HistoricalDataInterval.INTERVAL_1_MINUTE,
                         start_s: int = 0, end_s: int = 0, max_days: int = 0, timeout: float = 120.0,
                         port: int | None = None) -> list:
        """Historical bars (803) or ticks (804) of ``symbol`` over a separate connection.

        Sierra Chart serves history on its own port (default 11098) with one request per
        connection; this opens it, negotiates, logs on, requests (no zlib), reads the header
        and the records up to ``IsFinalRecord`` (an empty final record with time 0 is dropped),
        and closes.

        Parameters
        ----------
        interval : int
            Seconds per bar (``HistoricalDataInterval``; 0 = ticks).
        start_s, end_s : int
            UNIX seconds (0 = server default).
        max_days : int
            ``MaxDaysToReturn`` (0 = no limit).

        Returns
        -------
        list of HistoricalPriceDataRecordResponse / HistoricalPriceDataTickRecordResponse
            Oldest first.

        Raises
        ------
        HistoricalDataRejected, RequestTimeout, OSError, LogonError
        """
        hist = DTCClient(self.host, port or self.historical_port, encoding=self.encoding,
                         client_name=self.client_name, username=self.username, password=self._password,
                         heartbeat_s=max(self.heartbeat_s, 60.0), depth_float=False, reconnect=False,
                         connect_timeout_s=self.connect_timeout_s, clock=self.clock, tls=self.tls,
                         tls_fingerprint=self.tls_fingerprint)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        records: list = []

        def on_header(m):
            if m.NoRecordsToReturn and not done.done():
                done.set_result(None)

        def on_record(m):
            final = bool(m.IsFinalRecord)
            t = m.StartDateTime if m.TYPE == T.HISTORICAL_PRICE_DATA_RECORD_RESPONSE else m.DateTime
            if not (final and not t):
                records.append(m)
            if final and not done.done():
                done.set_result(None)

        def on_reject(m):
            if not done.done():
                done.set_exception(HistoricalDataRejected(m.RejectText, m.RejectReasonCode, m.RetryTimeInSeconds))

        hist.add_listener(T.HISTORICAL_PRICE_DATA_RESPONSE_HEADER, on_header)
        hist.add_listener(T.HISTORICAL_PRICE_DATA_RECORD_RESPONSE, on_record)
        hist.add_listener(T.HISTORICAL_PRICE_DATA_TICK_RECORD_RESPONSE, on_record)
        hist.add_listener(T.HISTORICAL_PRICE_DATA_REJECT, on_reject)
        try:
            await hist.connect()
            rid = next(self._next_request_id)
            hist.send(M.HistoricalPriceDataRequest(RequestID=rid, Symbol=symbol, Exchange=exchange,
                                                   RecordInterval=int(interval), StartDateTime=int(start_s),
                                                   EndDateTime=int(end_s), MaxDaysToReturn=int(max_days)))
            lost = hist._conn_lost
            waiter = await asyncio.wait({done, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if done in waiter[0]:
                done.result()
            elif lost in waiter[0]:
                if not records:
                    raise NotConnected(f"historical connection closed before data: {lost.result()}")
            else:
                raise RequestTimeout(f"historical data for {symbol}: no final record within {timeout:.0f} s")
        finally:
            await hist.close()
        return records


DTCClient._HANDLERS = {
    int(T.MARKET_DATA_REJECT): DTCClient._on_reject,
    int(T.MARKET_DEPTH_REJECT): DTCClient._on_reject,
    int(T.MARKET_DATA_SNAPSHOT): DTCClient._on_snapshot,
    int(T.MARKET_DATA_UPDATE_BID_ASK): DTCClient._on_bid_ask,
    int(T.MARKET_DATA_UPDATE_BID_ASK_COMPACT): DTCClient._on_bid_ask,
    int(T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS): DTCClient._on_bid_ask,
    int(T.MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP): DTCClient._on_bid_ask,
    int(T.ORDER_UPDATE): DTCClient._on_order_update,
    int(T.POSITION_UPDATE): DTCClient._on_position_update,
    int(T.ACCOUNT_BALANCE_UPDATE): DTCClient._on_balance_update,
    int(T.TRADE_ACCOUNT_RESPONSE): DTCClient._on_trade_account,
    int(T.SECURITY_DEFINITION_RESPONSE): DTCClient._on_security_definition,
    int(T.SECURITY_DEFINITION_REJECT): DTCClient._on_request_reject,
    int(T.OPEN_ORDERS_REJECT): DTCClient._on_request_reject,
    int(T.CURRENT_POSITIONS_REJECT): DTCClient._on_request_reject,
    int(T.ACCOUNT_BALANCE_REJECT): DTCClient._on_request_reject,
}
