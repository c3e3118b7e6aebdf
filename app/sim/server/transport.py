"""The server's transports besides plain TCP: DTC over WebSocket on the same port, and TLS.

**WebSocket** (Sierra Chart serves it on its DTC listening port since version 1798, detected
automatically; ``../shared/reference/dtc-protocol-notes.md`` section 3): a connection whose first
bytes are ``GET `` is an HTTP upgrade request. The handshake and the WebSocket framing are done by
the ``websockets`` library's sans-I/O protocol (:class:`websockets.server.ServerProtocol`), which
fits the server's own loop: bytes read from the socket go in, bytes to write come out. Over
WebSocket the DTC encoding is always JSON (compact JSON unless the server's fixed encoding is
JSON, as Sierra Chart does): no ENCODING_REQUEST is needed (one is answered with the fixed
encoding). Every DTC message the server sends is one WebSocket text message holding the JSON
object and its NUL terminator; a message received from the client may hold one or more
NUL-terminated DTC messages, and one without a final NUL gets one (a web client that forgot it
still works). Ping, pong and the closing handshake are the library's.

:func:`maybe_websocket` is the hook :mod:`.session` calls with a connection's first read;
:class:`WebSocketStream` then stands in for the connection's ``asyncio.StreamReader`` and
``StreamWriter`` (``read``, ``write``, ``drain``, ``close``, ``wait_closed``, ``transport``,
``get_extra_info``), so the rest of the server does not know which transport it serves.

**TLS** (Sierra Chart's "Require TLS" setting): :func:`server_ssl_context` builds the context
``mia-elite serve --tls CERT KEY`` listens with; the DTC stream (plain or WebSocket) runs inside it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Callable

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from app.dtc.messages import Encoding

log = logging.getLogger(__name__)

__all__ = ["WebSocketStream", "maybe_websocket", "websocket_encoding", "server_ssl_context", "HTTP_GET"]

#: First bytes of an HTTP upgrade request (a binary DTC stream starts with its Size, JSON with ``{``).
HTTP_GET = b"GET "
#: Largest WebSocket message accepted from a client, bytes (DTC JSON messages are < 4 KiB).
MAX_MESSAGE = 1 << 20


def websocket_encoding(fixed: Encoding | None) -> Encoding:
    """The DTC encoding of a WebSocket connection: JSON when the server's fixed encoding is JSON,
    else compact JSON (Sierra Chart's WebSocket encoding).

    Parameters
    ----------
    fixed : Encoding or None
        The server's fixed encoding (None: automatic).
    """
    return Encoding.JSON if fixed == Encoding.JSON else Encoding.JSON_COMPACT


class _Transport:
    """What the server asks of ``writer.transport``: the write buffer size and abort (the raw
    socket's; WebSocket framing adds a few bytes per message)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: "WebSocketStream"):
        self._stream = stream

    def get_write_buffer_size(self) -> int:
        return self._stream.raw_writer.transport.get_write_buffer_size()

    def abort(self) -> None:
        self._stream.raw_writer.transport.abort()

    def is_closing(self) -> bool:
        return self._stream.raw_writer.transport.is_closing()

    def __getattr__(self, name):
        # flow control and the rest (pause_reading, set_write_buffer_limits, ...): the socket's
        return getattr(self._stream.raw_writer.transport, name)


class WebSocketStream:
    """One WebSocket connection carrying DTC JSON, as a stream reader and writer in one.

    Parameters
    ----------
    reader, writer : asyncio.StreamReader, asyncio.StreamWriter
        The TCP (or TLS) connection.
    initial : bytes
        What was already read from it (the start of the HTTP request).

    Attributes
    ----------
    protocol : websockets.server.ServerProtocol
        The sans-I/O WebSocket protocol (handshake, framing, ping/pong, close).
    handshake_done : bool
        The upgrade was accepted (101 sent).
    messages_in, messages_out : int
        WebSocket data messages received / sent.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes = b""):
        self.raw_reader = reader
        self.raw_writer = writer
        self.protocol = ServerProtocol(max_size=MAX_MESSAGE)
        self.transport = _Transport(self)
        self.handshake_done = False
        self.messages_in = 0
        self.messages_out = 0
        self._pending = bytes(initial)
        self._fragments: list[bytes] = []
        self._closed = False

    # ------------------------------------------------------------------ reading

    async def read(self, n: int = -1) -> bytes:
        """DTC bytes from the client (whole NUL-terminated JSON messages); ``b""`` at the end
        (closing handshake, end of stream, refused upgrade).

        Parameters
        ----------
        n : int
            Most bytes to read off the socket at a time (the result can be longer).
        """
        while True:
            if self._pending:
                data, self._pending = self._pending, b""
            else:
                if self._closed or self.protocol.close_expected():
                    return b""
                data = await self.raw_reader.read(n if n and n > 0 else 1 << 16)
                if not data:
                    self.protocol.receive_eof()
                    self._flush()
                    return b""
            self.protocol.receive_data(data)
            out = self._events()
            self._flush()
            if out:
                return out
            if self.protocol.close_expected() or (not self.handshake_done and self.protocol.handshake_exc):
                return b""

    def _events(self) -> bytes:
        out = []
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self._handshake(event)
                continue
            op = event.opcode
            if op in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self._fragments.append(event.data)
                if event.fin:
                    msg = b"".join(self._fragments)
                    self._fragments = []
                    self.messages_in += 1
                    if msg and not msg.endswith(b"\x00"):
                        msg += b"\x00"  # one WebSocket message is at least one whole DTC message
                    out.append(msg)
            # PING (answered by the protocol), PONG and CLOSE need nothing here
        return b"".join(out)

    def _handshake(self, request: Request) -> None:
        response = self.protocol.accept(request)
        self.protocol.send_response(response)
        self.handshake_done = response.status_code == 101
        if self.handshake_done:
            log.info("DTC over WebSocket: upgrade accepted (%s)", request.path)
        else:
            log.info("DTC over WebSocket: upgrade refused (%d %s)", response.status_code, response.reason_phrase)

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes) -> None:
        """Send DTC bytes (whole NUL-terminated JSON messages) as one text message per DTC message;
        dropped once the WebSocket is closing."""
        if not data or not self.handshake_done or self._closed:
            return
        from websockets.protocol import State

        if self.protocol.state is not State.OPEN:
            return
        parts = bytes(data).split(b"\x00")
        if parts and parts[-1] == b"":
            parts.pop()
        send = self.protocol.send_text
        for p in parts:
            if p:
                send(p + b"\x00")
                self.messages_out += 1
        self._flush()

    def _flush(self) -> None:
        chunks = [c for c in self.protocol.data_to_send() if c]
        if chunks and not self.raw_writer.is_closing():
            self.raw_writer.write(b"".join(chunks))

    async def drain(self) -> None:
        await self.raw_writer.drain()

    def is_closing(self) -> bool:
        return self._closed or self.raw_writer.is_closing()

    def close(self) -> None:
        """Start the closing handshake (code 1000) and close the socket."""
        if self._closed:
            return
        self._closed = True
        from websockets.protocol import State

        try:
            if self.handshake_done and self.protocol.state is State.OPEN:
                self.protocol.send_close(1000, "")
                self._flush()
        except Exception:  # noqa: BLE001 - closing must never raise
            pass
        self.raw_writer.close()

    async def wait_closed(self) -> None:
        await self.raw_writer.wait_closed()

    def get_extra_info(self, name: str, default=None):
        return self.raw_writer.get_extra_info(name, default)


async def maybe_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                          on_websocket: Callable[[WebSocketStream], None]) -> bytes:
    """Look at a connection's first bytes; a WebSocket upgrade request switches it to WebSocket.

    Reads more only while the bytes could still be the start of ``GET `` (a TCP read may stop
    after one byte).

    Parameters
    ----------
    reader, writer : asyncio.StreamReader, asyncio.StreamWriter
        The connection.
    data : bytes
        Its first read.
    on_websocket : callable(WebSocketStream)
        Called once when the connection is a WebSocket: the owner replaces the connection's
        reader, writer and DTC session (JSON, see :func:`websocket_encoding`).

    Returns
    -------
    bytes
        The bytes to feed to the DTC session now: ``data`` (with what was read to decide) for a
        plain connection, ``b""`` for a WebSocket (its stream returns the DTC bytes).
    """
    while data and len(data) < len(HTTP_GET) and HTTP_GET.startswith(data):
        more = await reader.read(1 << 16)
        if not more:
            break
        data += more
    if not data.startswith(HTTP_GET):
        return data
    on_websocket(WebSocketStream(reader, writer, data))
    return b""


def server_ssl_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """The TLS context the server listens with (TLS 1.2 or later).

    Parameters
    ----------
    cert, key : path
        PEM certificate (chain) and its private key.

    Returns
    -------
    ssl.SSLContext

    Raises
    ------
    ValueError
        A file is missing or does not hold a usable certificate / key (the text names the file
        and the problem).
    """
    cert, key = Path(cert), Path(key)
    for what, p in (("certificate", cert), ("key", key)):
        if not p.is_file():
            raise ValueError(f"TLS {what} {p}: no such file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"TLS certificate {cert} / key {key}: cannot be used ({exc})") from None
    return ctx
