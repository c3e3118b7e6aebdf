"""Splitting a DTC byte stream into frames, correct for any split or coalescing of TCP reads.

Two framings exist (sierrachart.com ``doc/DTCProtocol.php``, "Message Format and Encoding"):

* **binary** (encodings 0 and 1, and protobuf): every message starts with ``uint16 Size,
  uint16 Type`` (little endian); ``Size`` counts the whole message including these 4 bytes.
* **NUL-terminated** (JSON and compact JSON): each message is one JSON object followed by one
  ``0x00`` byte; there is no size field.

Both framers keep a persistent buffer (the classic bugs are a single ``recv`` per message and
splitting each chunk independently; see the reference notes, section 9, items 1-2). A frame
that can never be valid (binary ``Size < 4`` or ``Size`` above the maximum; a NUL-framed
message longer than the maximum) cannot be resynchronised in a binary stream: the framer drops
its buffer, counts the error, records the reason in :attr:`last_error` and sets
:attr:`desynced` so the owner of the connection can reset it. NUL framing resynchronises by
itself at the next NUL, so there only the oversize data is dropped.
"""

from __future__ import annotations

import logging
import struct

log = logging.getLogger(__name__)

#: ``uint16 Size, uint16 Type``
HEADER = struct.Struct("<HH")
HEADER_SIZE = 4
#: Largest binary frame: Size is a uint16.
MAX_BINARY_FRAME = 0xFFFF
#: Default largest JSON frame (bytes, NUL excluded). DTC JSON messages are < 4 KiB.
MAX_JSON_FRAME = 1 << 16


class FrameErrors:
    """Error bookkeeping shared by framers and decoders.

    Attributes
    ----------
    errors : int
        Malformed frames seen (bad size, bad JSON, field conversion errors, ...).
    last_error : str
        Reason of the last one ("" when none).
    desynced : int
        Times the stream could not be resynchronised and the buffer was dropped; the owner of
        the connection should reset it when this grows.
    """

    __slots__ = ("errors", "last_error", "desynced", "_log_name")

    def __init__(self, name: str = "dtc"):
        self.errors = 0
        self.last_error = ""
        self.desynced = 0
        self._log_name = name

    def error(self, reason: str) -> None:
        """Count one malformed frame and log it (first 10, then every 1000th)."""
        self.errors += 1
        self.last_error = reason
        if self.errors <= 10 or self.errors % 1000 == 0:
            log.warning("%s: malformed frame #%d skipped: %s", self._log_name, self.errors, reason)


class BinaryFramer(FrameErrors):
    """Frames of the binary encodings: ``Size`` bytes at a time.

    Parameters
    ----------
    max_frame : int
        Largest accepted ``Size`` in bytes (default and upper bound 65535).
    """

    __slots__ = ("buf", "max_frame")

    def __init__(self, max_frame: int = MAX_BINARY_FRAME):
        super().__init__("dtc binary framer")
        self.buf = bytearray()
        self.max_frame = min(int(max_frame), MAX_BINARY_FRAME)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete frames now available (header included)."""
        buf = self.buf
        buf += data
        out = []
        n = len(buf)
        off = 0
        unpack = HEADER.unpack_from
        while n - off >= HEADER_SIZE:
            size, _typ = unpack(buf, off)
            if size < HEADER_SIZE or size > self.max_frame:
                self.error(f"binary Size {size} outside 4..{self.max_frame}: stream cannot be resynchronised, "
                           f"{n - off} buffered bytes dropped")
                self.desynced += 1
                off = n
                break
            if n - off < size:
                break
            out.append(bytes(buf[off:off + size]))
            off += size
        if off:
            del buf[:off]
        return out


class NulFramer(FrameErrors):
    """Frames of the JSON encodings: everything up to each ``0x00``.

    Empty frames (two NULs in a row, a lone trailing NUL) are skipped silently.

    Parameters
    ----------
    max_frame : int
        Largest accepted JSON text in bytes; longer data without a NUL is dropped and counted.
    """

    __slots__ = ("buf", "max_frame")

    def __init__(self, max_frame: int = MAX_JSON_FRAME):
        super().__init__("dtc json framer")
        self.buf = b""
        self.max_frame = int(max_frame)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete frames (NUL removed) now available."""
        buf = self.buf + bytes(data) if self.buf else bytes(data)
        if b"\x00" not in buf:
            frames = []
            rest = buf
        else:
            frames = buf.split(b"\x00")
            rest = frames.pop()
        if len(rest) > self.max_frame:
            self.error(f"JSON frame longer than {self.max_frame} bytes without NUL terminator: dropped")
            rest = b""
        self.buf = rest
        out = []
        mx = self.max_frame
        for f in frames:
            if not f:
                continue
            if len(f) > mx:
                self.error(f"JSON frame of {len(f)} bytes exceeds maximum {mx}: dropped")
                continue
            out.append(f)
        return out
