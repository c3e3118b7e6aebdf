"""A sans-I/O DTC session: negotiation, logon, heartbeats and the encoding switch, without sockets.

One :class:`DTCSession` is one DTC connection seen from one side (:attr:`Role.CLIENT` or
:attr:`Role.SERVER`). It does no I/O and never reads the time itself: its owner feeds it the
bytes it read (:meth:`~DTCSession.receive_data`, :meth:`~DTCSession.receive_eof`), writes out
what it has to send (:meth:`~DTCSession.data_to_send`), takes what it decoded
(:meth:`~DTCSession.events_received`) and, since nothing here runs by itself, calls
:meth:`~DTCSession.handle_timeouts` once :meth:`~DTCSession.next_deadline_ns` has passed (an
asyncio timer, a selector timeout, or a test advancing a :class:`~app.core.clock.ManualClock`).
All times come from the injected :class:`~app.core.clock.Clock`.

Procedure (sierrachart.com ``doc/DTCMessageDocumentation.php``; reference notes sections 3, 4):

* **Encoding.** The client's first message is a *binary* ENCODING_REQUEST. The server answers
  with an ENCODING_RESPONSE in the encoding in force before the change (binary at connection
  start), granting the requested encoding when it supports it (binary, JSON, compact JSON) and
  its current one otherwise, or always its fixed one (``fixed_encoding``). Everything after the
  request (client to server) and after the response (server to client) is in the granted
  encoding, including the rest of the same read. A server connection whose first byte is ``{``
  is JSON without negotiation (observed Sierra Chart behaviour).
* **Logon.** The client sends its LOGON_REQUEST in the granted encoding right after the
  ENCODING_RESPONSE (:meth:`~DTCSession.initiate`). The server session reports the request as
  :class:`LogonRequested` and the owner decides: :meth:`~DTCSession.accept_logon` or
  :meth:`~DTCSession.refuse_logon`. Requests the server receives before any LOGON_REQUEST are
  ignored and counted (:attr:`~DTCSession.ignored_before_logon`); requests that arrive between
  the LOGON_REQUEST and the owner's decision are kept (at most :data:`MAX_HELD_BEFORE_LOGON`)
  and released after an accept.
* **Heartbeats.** From logon on, each side sends a HEARTBEAT every interval: the client's
  ``heartbeat_s``; on the server the LOGON_REQUEST's ``HeartbeatIntervalInSeconds`` clamped to
  :data:`MIN_HEARTBEAT_S` .. :data:`MAX_HEARTBEAT_S` (0 or less: no heartbeats, no idle limit).
  The first one is due one interval after logon. Any received byte counts as liveness; silence
  for ``peer_timeout_factor`` (2) x the interval (+ ``peer_timeout_grace_s``) closes the
  session (:attr:`CloseCause.HEARTBEAT_TIMEOUT`).
* **Deadlines.** Client: each handshake step (ENCODING_RESPONSE, then LOGON_RESPONSE) must come
  within ``handshake_timeout_s`` (default :data:`CLIENT_HANDSHAKE_TIMEOUT_S`); server: the
  accepted logon within ``handshake_timeout_s`` of the session's start (default
  :data:`SERVER_LOGON_TIMEOUT_S`). With ``market_clock`` the client's decoder holds untimed
  market events (:class:`app.dtc.batch.MarketStreamDecoder`); their release is one more
  deadline.
* **Closing.** A LOGOFF from the peer, the end of the stream, a refused logon, a missed
  deadline, a protocol error (an ENCODING_RESPONSE granting an unsupported encoding) or a
  binary stream that cannot be resynchronised ends the session with one :class:`Closed` event.
  When the session itself gives up (deadline, desync, protocol error) it queues a LOGOFF with
  the reason for the peer. After :class:`Closed` the owner sends what :meth:`data_to_send`
  still returns and closes the transport (:meth:`~DTCSession.close_expected`).

:meth:`~DTCSession.events_received` returns, in arrival order, every decoded message (session
messages such as HEARTBEAT and LOGON_RESPONSE included, after the session acted on them), the
``EVENT_DTYPE`` arrays of the client's market decoder (with ``tick_sizes``), and the typed
:class:`SessionEvent` objects right after the message that caused them.

Size limits: a received frame is at most ``max_frame`` bytes (binary: 65535, the ``uint16``
Size; JSON: :data:`app.dtc.framing.MAX_JSON_FRAME` without its NUL); longer ones are dropped and
counted (binary: the stream cannot be resynchronised, the session closes). A sent frame over
the same limit raises :class:`FrameTooLarge`. LOGOFF reasons and logon result texts are cut to
their ``char[96]`` fields.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.core.clock import SYSTEM_CLOCK, Clock
from app.dtc import messages as M
from app.dtc.batch import MarketStreamDecoder
from app.dtc.codec import SUPPORTED_ENCODINGS, Decoder, encode
from app.dtc.framing import MAX_BINARY_FRAME, MAX_JSON_FRAME
from app.dtc.messages import Encoding, MessageType

__all__ = [
    "Role",
    "State",
    "CloseCause",
    "SessionEvent",
    "EncodingSelected",
    "LogonRequested",
    "LoggedOn",
    "LogonRefused",
    "Closed",
    "SessionError",
    "InvalidState",
    "FrameTooLarge",
    "DTCSession",
    "MIN_HEARTBEAT_S",
    "MAX_HEARTBEAT_S",
    "CLIENT_HANDSHAKE_TIMEOUT_S",
    "SERVER_LOGON_TIMEOUT_S",
    "MAX_HELD_BEFORE_LOGON",
]

T = MessageType

#: Server side: the client's heartbeat interval is clamped to this range (s).
MIN_HEARTBEAT_S = 1.0
MAX_HEARTBEAT_S = 300.0
#: Client side default: longest wait for each of ENCODING_RESPONSE and LOGON_RESPONSE (s).
CLIENT_HANDSHAKE_TIMEOUT_S = 20.0
#: Server side default: longest time from the connection's start to the accepted logon (s).
SERVER_LOGON_TIMEOUT_S = 120.0
#: Server side: most requests kept between a LOGON_REQUEST and the owner's decision.
MAX_HELD_BEFORE_LOGON = 10_000
#: ``char[96]`` text fields (LOGOFF.Reason, LOGON_RESPONSE.ResultText) hold 95 bytes + NUL.
_TEXT_FIELD = 95

#: Messages the session itself acts on; they are never ignored before logon.
_SESSION_TYPES = frozenset(int(t) for t in (T.ENCODING_REQUEST, T.ENCODING_RESPONSE, T.LOGON_REQUEST,
                                            T.LOGON_RESPONSE, T.HEARTBEAT, T.LOGOFF))


class Role(enum.Enum):
    """Which side of the connection a session is."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    """Session states, in order. ``NEGOTIATING``: before the encoding is settled (client: the
    ENCODING_REQUEST is out; server: nothing or only bytes before a request); ``LOGGING_ON``:
    client: the LOGON_REQUEST is out; server: encoding settled or LOGON_REQUEST under decision;
    ``OPEN``: logged on, application messages flow; ``CLOSED``: finished (see :class:`Closed`)."""

    NEGOTIATING = "negotiating"
    LOGGING_ON = "logging_on"
    OPEN = "open"
    CLOSED = "closed"


class CloseCause(str, enum.Enum):
    """Why a session closed (:attr:`Closed.cause`)."""

    LOCAL = "local"  #: the owner called :meth:`DTCSession.logoff`
    PEER_LOGOFF = "peer-logoff"  #: the peer sent LOGOFF
    EOF = "eof"  #: the peer closed the stream (:meth:`DTCSession.receive_eof`)
    LOGON_REFUSED = "logon-refused"  #: LOGON_RESPONSE with a failure (client) / refuse_logon (server)
    HEARTBEAT_TIMEOUT = "heartbeat-timeout"  #: the peer was silent too long
    HANDSHAKE_TIMEOUT = "handshake-timeout"  #: negotiation or logon did not finish in time
    DESYNC = "desync"  #: a binary stream that cannot be resynchronised
    PROTOCOL_ERROR = "protocol-error"  #: e.g. an unsupported encoding granted


class SessionEvent:
    """Base class of the typed events :meth:`DTCSession.events_received` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class EncodingSelected(SessionEvent):
    """The encoding of the connection is settled (or changed again).

    Attributes
    ----------
    encoding : Encoding
        The encoding in force from now on, both directions.
    requested : Encoding or int
        What the ENCODING_REQUEST asked for (server side: what the client asked; client side:
        what this session asked).
    """

    encoding: Encoding
    requested: Any


@dataclass(frozen=True, slots=True)
class LogonRequested(SessionEvent):
    """Server side: a LOGON_REQUEST arrived; call :meth:`DTCSession.accept_logon` or
    :meth:`DTCSession.refuse_logon`."""

    request: Any


@dataclass(frozen=True, slots=True)
class LoggedOn(SessionEvent):
    """Logon succeeded: client side with the server's LOGON_RESPONSE, server side after
    :meth:`DTCSession.accept_logon` with the response sent."""

    response: Any


@dataclass(frozen=True, slots=True)
class LogonRefused(SessionEvent):
    """Client side: the LOGON_RESPONSE's ``Result`` is not LOGON_SUCCESS (a :class:`Closed`
    follows)."""

    response: Any

    @property
    def result(self) -> int:
        """``LogonStatusEnum`` value."""
        return int(self.response.Result)

    @property
    def text(self) -> str:
        """``ResultText``."""
        return self.response.ResultText


@dataclass(frozen=True, slots=True)
class Closed(SessionEvent):
    """The session ended (emitted exactly once).

    Attributes
    ----------
    cause : CloseCause
    reason : str
        Human-readable reason (the peer's LOGOFF reason, the missed deadline, ...).
    do_not_reconnect : bool
        The peer asked not to reconnect (LOGOFF ``DoNotReconnect``, or a logon refused with
        LOGON_ERROR_NO_RECONNECT).
    """

    cause: CloseCause
    reason: str
    do_not_reconnect: bool = False


class SessionError(Exception):
    """Base class of the session's errors."""


class InvalidState(SessionError):
    """The call does not fit the session's role or state (e.g. :meth:`DTCSession.send` before
    logon or after close)."""


class FrameTooLarge(SessionError, ValueError):
    """An encoded message is longer than the session's frame limit."""


def _cut(text: str, n: int = _TEXT_FIELD) -> str:
    """``text`` cut to at most ``n`` UTF-8 bytes (whole characters)."""
    b = str(text).encode("utf-8")
    if len(b) <= n:
        return str(text)
    return b[:n].decode("utf-8", "ignore")


def _encoding(value) -> Encoding:
    enc = Encoding(int(value))
    if enc not in SUPPORTED_ENCODINGS:
        raise ValueError(f"encoding {enc.name} is not supported (binary, json, json_compact)")
    return enc


class DTCSession:
    """One DTC connection's protocol state, bytes in and bytes out (see the module docstring).

    Parameters
    ----------
    role : Role
        :attr:`Role.CLIENT` or :attr:`Role.SERVER`.
    clock : Clock
        Source of every time the session uses (monotonic ns for deadlines, wall-clock seconds for
        HEARTBEAT.CurrentDateTime); default :data:`~app.core.clock.SYSTEM_CLOCK`.
    encoding : Encoding
        Client: the encoding to request (the connection starts binary). Server: the encoding at
        connection start (binary, unless ``fixed_encoding``).
    heartbeat_s : float
        Client: the heartbeat interval (s, > 0) this side keeps and declares at logon. Server:
        unused (the interval comes from the LOGON_REQUEST).
    handshake_timeout_s : float, optional
        See the module docstring ("Deadlines"); ``0`` disables; ``None`` picks the role's default.
    peer_timeout_factor : float
        Silence of ``peer_timeout_factor * interval`` (+ grace) closes the session (default 2).
    peer_timeout_grace_s : float
        Extra seconds of silence allowed on top (default 0).
    fixed_encoding : bool
        Server: the encoding never changes; an ENCODING_REQUEST is answered with it.
    tick_sizes : dict[int, float], optional
        Client: SymbolID -> tick size (price units per tick). Given, received market data is
        decoded into ``EVENT_DTYPE`` arrays by :class:`app.dtc.batch.MarketStreamDecoder`
        (the dict is shared, the owner keeps it up to date); otherwise every message is decoded
        on its own (:class:`app.dtc.codec.Decoder`).
    market_clock : bool
        With ``tick_sizes``: stamp untimed events with the stream's market time.
    hold_s : float
        With ``market_clock``: longest hold of untimed events (s of the clock).
    max_frame : int, optional
        Largest frame in bytes, received and sent (default 65535 binary / 65536 JSON; never more
        than 65535 for binary).
    sierra_compact_order : bool
        Compact JSON field order of 112/117 (see :func:`app.dtc.codec.encode`).

    Raises
    ------
    ValueError
        Unsupported encoding; client ``heartbeat_s <= 0``; ``tick_sizes`` on a server session;
        a negative timeout or a ``max_frame`` below 16 bytes.
    """

    def __init__(self, role: Role, *, clock: Clock = SYSTEM_CLOCK, encoding=Encoding.BINARY,
                 heartbeat_s: float = 10.0, handshake_timeout_s: float | None = None,
                 peer_timeout_factor: float = 2.0, peer_timeout_grace_s: float = 0.0,
                 fixed_encoding: bool = False, tick_sizes: dict | None = None, market_clock: bool = False,
                 hold_s: float = 2.0, max_frame: int | None = None, sierra_compact_order: bool = True):
        self.role = Role(role)
        self.clock = clock
        client = self.role is Role.CLIENT
        enc = _encoding(encoding)
        if client and not heartbeat_s > 0:
            raise ValueError(f"client heartbeat_s must be > 0, got {heartbeat_s!r}")
        if not client and tick_sizes is not None:
            raise ValueError("tick_sizes (market event decoding) is a client-side option")
        if handshake_timeout_s is None:
            handshake_timeout_s = CLIENT_HANDSHAKE_TIMEOUT_S if client else SERVER_LOGON_TIMEOUT_S
        for name, v in (("handshake_timeout_s", handshake_timeout_s), ("peer_timeout_grace_s", peer_timeout_grace_s)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        if not peer_timeout_factor > 0:
            raise ValueError(f"peer_timeout_factor must be > 0, got {peer_timeout_factor!r}")
        if max_frame is not None and max_frame < 16:
            raise ValueError(f"max_frame must be at least 16 bytes, got {max_frame!r}")
        self.max_frame = max_frame
        self.sierra_compact_order = bool(sierra_compact_order)
        self.handshake_timeout_s = float(handshake_timeout_s)
        self.peer_timeout_factor = float(peer_timeout_factor)
        self.peer_timeout_grace_s = float(peer_timeout_grace_s)
        self.fixed_encoding = bool(fixed_encoding) and not client
        #: client: the encoding asked for; server: the last one a client asked for
        self.requested_encoding = enc if client else None
        #: encoding of both directions now (client: binary until the ENCODING_RESPONSE)
        self.encoding = Encoding.BINARY if client else enc
        #: heartbeat interval in force (s; 0 = none). Client: ``heartbeat_s``; server: set at logon.
        self.heartbeat_s = float(heartbeat_s) if client else 0.0
        self.state = State.NEGOTIATING if (client or not self.fixed_encoding) else State.LOGGING_ON
        #: the LOGON_REQUEST (server: received; client: sent)
        self.logon_request = None
        #: the LOGON_RESPONSE (client: received; server: sent)
        self.logon_response = None
        #: the :class:`Closed` event once closed, else None
        self.closed: Closed | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self.messages_sent = 0
        #: server: requests received before any LOGON_REQUEST (ignored)
        self.ignored_before_logon = 0
        #: server: requests dropped because more than MAX_HELD_BEFORE_LOGON waited for a decision
        self.dropped_before_logon = 0

        self._events: list = []
        self._out: list[bytes] = []
        self._grants: deque[tuple[Encoding, Any]] = deque()  # server: ENCODING_REQUEST decisions, in order
        self._held: list = []  # server: requests waiting for the logon decision
        self._deciding = False  # server: a LogonRequested awaits accept/refuse
        self._first_bytes = True
        self._desync_seen = 0
        now = clock.monotonic_ns()
        self._last_rx = now
        self._hb_due: int | None = None
        self._handshake_due: int | None = None
        if not client:
            self._handshake_due = self._after(self.handshake_timeout_s, now)
        if client:
            if tick_sizes is not None:
                self.decoder = MarketStreamDecoder(Encoding.BINARY, tick_sizes, follow_encoding_response=True,
                                                   market_clock=market_clock, hold_s=hold_s, max_frame=max_frame,
                                                   clock=clock)
            else:
                self.decoder = Decoder(Encoding.BINARY, max_frame=max_frame, follow_encoding_response=True,
                                       sierra_compact_order=sierra_compact_order)
        else:
            self.decoder = Decoder(self.encoding, max_frame=max_frame, on_encoding_request=self._grant,
                                   sierra_compact_order=sierra_compact_order)
        self._stream = isinstance(self.decoder, MarketStreamDecoder)

    # ------------------------------------------------------------------ statistics

    @property
    def messages(self) -> int:
        """Messages decoded so far."""
        return self.decoder.messages

    @property
    def errors(self) -> int:
        """Malformed frames received so far (counted and skipped)."""
        return self.decoder.errors

    @property
    def last_error(self) -> str:
        """Reason of the last malformed frame ("" when none)."""
        return self.decoder.last_error

    @property
    def is_open(self) -> bool:
        """Logged on and not closed."""
        return self.state is State.OPEN

    def close_expected(self) -> bool:
        """True once the session is closed: the owner sends :meth:`data_to_send` and closes the
        transport."""
        return self.state is State.CLOSED

    # ------------------------------------------------------------------ deadlines

    def _after(self, seconds: float, now: int | None = None) -> int | None:
        if not seconds > 0:
            return None
        return (self.clock.monotonic_ns() if now is None else now) + int(round(seconds * 1e9))

    @property
    def heartbeat_due_ns(self) -> int | None:
        """Monotonic ns (of the clock) when this side's next HEARTBEAT is due; None before logon,
        without heartbeats, or when closed."""
        return self._hb_due if self.state is State.OPEN else None

    @property
    def peer_deadline_ns(self) -> int | None:
        """Monotonic ns after which the silent peer counts as lost (last byte received +
        ``peer_timeout_factor * heartbeat_s`` + grace); None unless open with heartbeats."""
        if self.state is not State.OPEN or not self.heartbeat_s > 0:
            return None
        span = self.peer_timeout_factor * self.heartbeat_s + self.peer_timeout_grace_s
        return self._last_rx + int(round(span * 1e9))

    @property
    def handshake_deadline_ns(self) -> int | None:
        """Monotonic ns by which the current handshake step must finish; None when none runs."""
        if self.state in (State.OPEN, State.CLOSED):
            return None
        return self._handshake_due

    @property
    def hold_deadline_ns(self) -> int | None:
        """Monotonic ns when the market decoder's oldest held events are due (``market_clock``)."""
        if self.state is State.CLOSED or not self._stream:
            return None
        return self.decoder.held_due_ns

    def next_deadline_ns(self) -> int | None:
        """The earliest of the deadlines above (monotonic ns of the clock), or None: call
        :meth:`handle_timeouts` once the clock has reached it."""
        best = None
        for d in (self.heartbeat_due_ns, self.peer_deadline_ns, self.handshake_deadline_ns, self.hold_deadline_ns):
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timeouts(self) -> None:
        """Act on every deadline the clock has reached: close for a lost peer or a handshake
        that took too long (queuing a LOGOFF with the reason), release held market events, send
        a due HEARTBEAT. Cheap when nothing is due; a no-op once closed."""
        if self.state is State.CLOSED:
            return
        now = self.clock.monotonic_ns()
        d = self.handshake_deadline_ns
        if d is not None and now >= d:
            step = {State.NEGOTIATING: "ENCODING_RESPONSE" if self.role is Role.CLIENT else "logon",
                    State.LOGGING_ON: "LOGON_RESPONSE" if self.role is Role.CLIENT else "logon"}[self.state]
            self._fail(CloseCause.HANDSHAKE_TIMEOUT, f"no {step} within {self.handshake_timeout_s:g} s")
            return
        d = self.peer_deadline_ns
        if d is not None and now >= d:
            silence = (now - self._last_rx) / 1e9
            self._fail(CloseCause.HEARTBEAT_TIMEOUT,
                       f"no data for {silence:.1f} s ({self.peer_timeout_factor:g} x heartbeat {self.heartbeat_s:g} s)")
            return
        d = self.hold_deadline_ns
        if d is not None and now >= d:
            self._events.extend(self.decoder.expire_held(self.clock.time_ns()))
        d = self.heartbeat_due_ns
        if d is not None and now >= d:
            self._queue(M.Heartbeat(NumDroppedMessages=0, CurrentDateTime=self.clock.time_ns() // 1_000_000_000))
            self._hb_due = now + int(round(self.heartbeat_s * 1e9))

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now, in order (b"" when none); each call returns new
        bytes only."""
        if not self._out:
            return b""
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self.bytes_sent += len(out)
        return out

    def _check_frame(self, msg, encoding: Encoding) -> bytes:
        data = encode(msg, encoding, sierra_compact_order=self.sierra_compact_order)
        if encoding == Encoding.BINARY:
            limit = min(self.max_frame or MAX_BINARY_FRAME, MAX_BINARY_FRAME)
        else:
            limit = (self.max_frame or MAX_JSON_FRAME) + 1  # + NUL
        if len(data) > limit:
            raise FrameTooLarge(f"{type(msg).__name__}: {len(data)} bytes exceed the frame limit of {limit} bytes")
        return data

    def _queue(self, msg, encoding: Encoding | None = None) -> None:
        self._out.append(self._check_frame(msg, self.encoding if encoding is None else encoding))
        self.messages_sent += 1

    def send(self, msg) -> None:
        """Queue an application message in the session's encoding (see :meth:`data_to_send`).

        Parameters
        ----------
        msg : app.dtc.messages.Message

        Raises
        ------
        InvalidState
            Not logged on yet (the encoding may not be settled) or closed.
        FrameTooLarge
            The encoded message is longer than the frame limit.
        app.dtc.codec.EncodeError
            A value does not fit its field.
        """
        if self.state is not State.OPEN:
            raise InvalidState(f"{self.role.value} session is {self.state.value}: cannot send {type(msg).__name__}")
        self._queue(msg)

    def send_encoded(self, data: bytes, messages: int = 1) -> None:
        """Queue bytes the owner encoded itself in :attr:`encoding` (e.g. a numpy batch from
        :func:`app.dtc.batch.encode_depth_batch`); ``messages`` is their count, for statistics.

        Raises
        ------
        InvalidState
            Not logged on yet, or closed.
        """
        if self.state is not State.OPEN:
            raise InvalidState(f"{self.role.value} session is {self.state.value}: cannot send data")
        if data:
            self._out.append(bytes(data))
            self.messages_sent += int(messages)

    def logoff(self, reason: str = "", do_not_reconnect: bool = False) -> None:
        """Queue a LOGOFF and close the session (:attr:`CloseCause.LOCAL`); a no-op when closed.

        ``reason`` is cut to 95 bytes (``char[96]``)."""
        if self.state is State.CLOSED:
            return
        self._queue(M.Logoff(Reason=_cut(reason), DoNotReconnect=int(bool(do_not_reconnect))))
        self._close(CloseCause.LOCAL, reason, do_not_reconnect)

    # ------------------------------------------------------------------ client handshake

    def initiate(self, logon) -> None:
        """Client: start the handshake: queue the binary ENCODING_REQUEST; ``logon`` (a
        LOGON_REQUEST) goes out in the granted encoding as soon as the ENCODING_RESPONSE comes.

        Raises
        ------
        InvalidState
            Not a client session, or already initiated.
        TypeError
            ``logon`` is not a LogonRequest.
        app.dtc.codec.EncodeError, FrameTooLarge
            ``logon`` cannot be sent in the requested encoding (checked here, so that
            :meth:`receive_data` never raises).
        """
        if self.role is not Role.CLIENT:
            raise InvalidState("initiate() is the client's side of the handshake")
        if self.logon_request is not None or self.state is not State.NEGOTIATING:
            raise InvalidState(f"handshake already started (state {self.state.value})")
        if not isinstance(logon, M.LogonRequest):
            raise TypeError("initiate takes a LogonRequest")
        if not logon.ProtocolVersion:
            logon = logon.replace(ProtocolVersion=M.PROTOCOL_VERSION)
        self._check_frame(logon, self.requested_encoding)
        self.logon_request = logon
        self._queue(M.EncodingRequest(ProtocolVersion=M.PROTOCOL_VERSION, Encoding=int(self.requested_encoding)),
                    Encoding.BINARY)
        self._handshake_due = self._after(self.handshake_timeout_s)

    # ------------------------------------------------------------------ server handshake

    def _grant(self, request) -> Encoding:
        """Decoder hook (server): the encoding granted for ``request``, in effect from the next
        byte; the response is queued when the session processes the request."""
        want = int(request.Encoding)
        cur = self.decoder.encoding
        if self.fixed_encoding:
            new = cur
        else:
            new = Encoding(want) if want in SUPPORTED_ENCODINGS else cur
        self._grants.append((new, want))
        return new

    def accept_logon(self, response=None) -> None:
        """Server: accept the pending LOGON_REQUEST and queue ``response`` (a LOGON_RESPONSE with
        the server's name and capability flags; ``Result`` and ``ProtocolVersion`` are set here).

        The heartbeat interval becomes the request's ``HeartbeatIntervalInSeconds`` clamped to
        :data:`MIN_HEARTBEAT_S` .. :data:`MAX_HEARTBEAT_S` (0 or less: no heartbeats). Requests
        that arrived after the LOGON_REQUEST come out of the next :meth:`events_received`,
        followed by nothing else of the handshake (a :class:`LoggedOn` comes first).

        Raises
        ------
        InvalidState
            Not a server session, or no LOGON_REQUEST is waiting for a decision.
        TypeError
            ``response`` is not a LogonResponse.
        """
        if self.role is not Role.SERVER or not self._deciding:
            raise InvalidState("accept_logon() answers a LogonRequested event on a server session")
        if response is None:
            response = M.LogonResponse()
        if not isinstance(response, M.LogonResponse):
            raise TypeError("accept_logon takes a LogonResponse")
        response = response.replace(ProtocolVersion=M.PROTOCOL_VERSION, Result=int(M.LogonStatus.LOGON_SUCCESS),
                                    ResultText=_cut(response.ResultText))
        hb = int(self.logon_request.HeartbeatIntervalInSeconds)
        self.heartbeat_s = float(min(max(hb, MIN_HEARTBEAT_S), MAX_HEARTBEAT_S)) if hb > 0 else 0.0
        self._deciding = False
        self._queue(response)
        self.logon_response = response
        self.state = State.OPEN
        self._handshake_due = None
        self._hb_due = self._after(self.heartbeat_s)
        self._events.append(LoggedOn(response))
        held, self._held = self._held, []
        self._events.extend(held)

    def refuse_logon(self, text: str, *, result: int = M.LogonStatus.LOGON_ERROR_NO_RECONNECT,
                     server_name: str = "") -> None:
        """Server: refuse the pending LOGON_REQUEST: queue a LOGON_RESPONSE with ``result`` and
        ``text`` (cut to 95 bytes) and close the session (:attr:`CloseCause.LOGON_REFUSED`);
        requests held for the decision are dropped.

        Raises
        ------
        InvalidState
            Not a server session, or no LOGON_REQUEST is waiting for a decision.
        ValueError
            ``result`` is LOGON_SUCCESS.
        """
        if self.role is not Role.SERVER or not self._deciding:
            raise InvalidState("refuse_logon() answers a LogonRequested event on a server session")
        if int(result) == M.LogonStatus.LOGON_SUCCESS:
            raise ValueError("refuse_logon needs a failure result, not LOGON_SUCCESS")
        self._deciding = False
        self._held.clear()
        resp = M.LogonResponse(ProtocolVersion=M.PROTOCOL_VERSION, Result=int(result), ResultText=_cut(text),
                               ServerName=_cut(server_name, 59))
        self._queue(resp)
        self.logon_response = resp
        self._close(CloseCause.LOGON_REFUSED, text, int(result) == M.LogonStatus.LOGON_ERROR_NO_RECONNECT)

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer (any cut); results come out of :meth:`events_received`,
        answers (ENCODING_RESPONSE, LOGON_REQUEST, ...) out of :meth:`data_to_send`.

        Never raises for bad input: malformed frames are counted (:attr:`errors`) and skipped; a
        binary stream that cannot be resynchronised closes the session. Ignored once closed.
        """
        if self.state is State.CLOSED or not data:
            return
        self._last_rx = self.clock.monotonic_ns()
        self.bytes_received += len(data)
        if self._first_bytes:
            self._first_bytes = False
            if (self.role is Role.SERVER and self.state is State.NEGOTIATING and data[:1] == b"{"):
                # JSON without negotiation (observed Sierra Chart behaviour)
                self.decoder.encoding = Encoding.JSON
                self.encoding = Encoding.JSON
                self.state = State.LOGGING_ON
                self._events.append(EncodingSelected(Encoding.JSON, Encoding.JSON))
        if self._stream:
            items = self.decoder.feed(data, self.clock.time_ns())
        else:
            items = self.decoder.feed(data)
        fast = self.state is State.OPEN and self.role is Role.CLIENT
        events = self._events
        for it in items:
            if self.state is State.CLOSED:
                break
            if fast and (not isinstance(it, M.Message) or it.TYPE not in _SESSION_TYPES):
                events.append(it)
                continue
            self._on_item(it)
            fast = self.state is State.OPEN and self.role is Role.CLIENT
        if self.state is not State.CLOSED and self.decoder.desynced > self._desync_seen:
            self._desync_seen = self.decoder.desynced
            self._fail(CloseCause.DESYNC, f"stream could not be resynchronised ({self.decoder.last_error})")

    def receive_eof(self) -> None:
        """The peer closed the stream: close the session (:attr:`CloseCause.EOF`) unless it is
        already closed."""
        if self.state is not State.CLOSED:
            who = "server" if self.role is Role.CLIENT else "client"
            self._close(CloseCause.EOF, f"closed by {who}")

    def events_received(self) -> list:
        """Everything decoded since the last call, in order: messages, ``EVENT_DTYPE`` arrays
        and :class:`SessionEvent` objects (module docstring)."""
        out, self._events = self._events, []
        return out

    def _on_item(self, it) -> None:
        if not isinstance(it, M.Message):  # an EVENT_DTYPE array (client market decoder)
            self._events.append(it)
            return
        t = int(it.TYPE)
        if t not in _SESSION_TYPES:
            if self.role is Role.SERVER and self.state is not State.OPEN:
                if self._deciding:
                    if len(self._held) < MAX_HELD_BEFORE_LOGON:
                        self._held.append(it)
                    else:
                        self.dropped_before_logon += 1
                else:
                    self.ignored_before_logon += 1
                return
            self._events.append(it)
            return
        self._events.append(it)
        if t == T.HEARTBEAT:
            return
        if t == T.LOGOFF:
            self._close(CloseCause.PEER_LOGOFF, it.Reason, bool(it.DoNotReconnect))
        elif self.role is Role.CLIENT:
            if t == T.ENCODING_RESPONSE:
                self._on_encoding_response(it)
            elif t == T.LOGON_RESPONSE:
                self._on_logon_response(it)
        else:
            if t == T.ENCODING_REQUEST:
                self._on_encoding_request(it)
            elif t == T.LOGON_REQUEST:
                self._on_logon_request(it)

    def _on_encoding_response(self, msg) -> None:
        want = int(msg.Encoding)
        if want not in SUPPORTED_ENCODINGS:
            self._fail(CloseCause.PROTOCOL_ERROR,
                       f"server answered the encoding request with unsupported encoding {want}")
            return
        self.encoding = Encoding(want)
        self._events.append(EncodingSelected(self.encoding, self.requested_encoding))
        if self.state is State.NEGOTIATING and self.logon_request is not None:
            try:
                self._queue(self.logon_request)
            except ValueError as exc:  # EncodeError / FrameTooLarge in a granted encoding not asked for
                self._fail(CloseCause.PROTOCOL_ERROR, f"cannot send the LOGON_REQUEST in {self.encoding.name}: {exc}")
                return
            self.state = State.LOGGING_ON
            self._handshake_due = self._after(self.handshake_timeout_s)

    def _on_logon_response(self, msg) -> None:
        if self.state is not State.LOGGING_ON:
            return  # unsolicited or repeated: passed on, no effect
        self.logon_response = msg
        if int(msg.Result) == M.LogonStatus.LOGON_SUCCESS:
            self.state = State.OPEN
            self._handshake_due = None
            self._hb_due = self._after(self.heartbeat_s)
            self._events.append(LoggedOn(msg))
        else:
            self._events.append(LogonRefused(msg))
            self._close(CloseCause.LOGON_REFUSED, msg.ResultText,
                        int(msg.Result) == M.LogonStatus.LOGON_ERROR_NO_RECONNECT)

    def _on_encoding_request(self, msg) -> None:
        granted, want = self._grants.popleft() if self._grants else (self.encoding, int(msg.Encoding))
        # the response goes out in the encoding in force before the change
        self._queue(M.EncodingResponse(ProtocolVersion=M.PROTOCOL_VERSION, Encoding=int(granted)))
        self.encoding = granted
        self.requested_encoding = want
        if self.state is State.NEGOTIATING:
            self.state = State.LOGGING_ON
        self._events.append(EncodingSelected(granted, want))

    def _on_logon_request(self, msg) -> None:
        if self.state is State.OPEN or self._deciding:
            return  # a second LOGON_REQUEST: passed on, no effect
        self.logon_request = msg
        self.state = State.LOGGING_ON
        self._deciding = True
        self._events.append(LogonRequested(msg))

    # ------------------------------------------------------------------ closing

    def _fail(self, cause: CloseCause, reason: str) -> None:
        """Close for a reason found here, telling the peer with a LOGOFF."""
        try:
            self._queue(M.Logoff(Reason=_cut(reason), DoNotReconnect=0))
        except ValueError:  # a LOGOFF over a tiny max_frame: close without telling
            pass
        self._close(cause, reason)

    def _close(self, cause: CloseCause, reason: str, do_not_reconnect: bool = False) -> None:
        self.state = State.CLOSED
        self._deciding = False
        self._held.clear()
        self._hb_due = self._handshake_due = None
        self.closed = Closed(cause, str(reason), bool(do_not_reconnect))
        self._events.append(self.closed)
