"""Encoding and decoding DTC messages: binary, JSON and compact JSON, from one table.

Every per-message function here is generated from the message's table in
:mod:`app.dtc.messages` (no hand-written pack/unpack per message).

Encodings (sierrachart.com ``doc/DTCProtocol.php``):

* **binary** (``Encoding.BINARY``): the C struct, little endian, natural alignment or
  ``pack(1)`` as the header has it, ``Size``/``Type`` first. Readers follow the versioning rule
  of ``DTCMessageDocumentation.php``: copy ``min(Size, sizeof)`` bytes; fields beyond a shorter
  (older) message take their defaults, bytes beyond a longer (newer) one are skipped.
* **JSON** (``Encoding.JSON``): ``{"Type": N, "<Field>": value, ...}`` + one NUL byte.
  Fields whose value is their type's unset sentinel are omitted; missing fields decode to
  their defaults.
* **compact JSON** (``Encoding.JSON_COMPACT``): for the high-frequency types in
  :data:`COMPACT_TYPES`, ``{"Type": N, "F": [values in binary field order]}`` + NUL; every
  other type is sent as standard JSON. Decoding keys on ``"F" in object``. Quirk: Sierra Chart
  sends 112 and 117 with SymbolID first (reference notes section 3, item 4); with
  ``sierra_compact_order=True`` (the default) both directions use that order.
"""

from __future__ import annotations

import json
import logging
import struct
from typing import Callable

from app.dtc import messages as M
from app.dtc.framing import MAX_BINARY_FRAME, MAX_JSON_FRAME, BinaryFramer, FrameErrors, NulFramer
from app.dtc.messages import Encoding, Message, MessageType

log = logging.getLogger(__name__)

try:  # ~5x faster than json.loads; optional, same results for valid DTC JSON
    import msgspec as _msgspec

    _loads = _msgspec.json.Decoder().decode
except ImportError:  # pragma: no cover - msgspec is a dependency, json is the fallback
    _loads = json.loads

__all__ = [
    "encode",
    "decode_frame",
    "Decoder",
    "COMPACT_TYPES",
    "SIERRA_COMPACT_ORDER",
    "EncodeError",
    "SUPPORTED_ENCODINGS",
    "REQUIRED_SIZE",
]

SUPPORTED_ENCODINGS = (Encoding.BINARY, Encoding.JSON, Encoding.JSON_COMPACT)

#: Types sent as ``{"Type":N,"F":[...]}`` in compact JSON (doc/DTCProtocol.php: heartbeat,
#: snapshots, trade/bid-ask/session updates, depth snapshot/update, historical records).
COMPACT_TYPES = frozenset(
    int(t)
    for t in (
        MessageType.HEARTBEAT,
        MessageType.MARKET_DATA_SNAPSHOT,
        MessageType.MARKET_DEPTH_UPDATE_LEVEL,
        MessageType.MARKET_DATA_UPDATE_TRADE,
        MessageType.MARKET_DATA_UPDATE_BID_ASK,
        MessageType.MARKET_DATA_UPDATE_TRADE_COMPACT,
        MessageType.MARKET_DATA_UPDATE_SESSION_VOLUME,
        MessageType.MARKET_DATA_UPDATE_SESSION_HIGH,
        MessageType.MARKET_DATA_UPDATE_SESSION_LOW,
        MessageType.MARKET_DATA_UPDATE_BID_ASK_COMPACT,
        MessageType.MARKET_DATA_UPDATE_SESSION_SETTLEMENT,
        MessageType.MARKET_DATA_UPDATE_SESSION_OPEN,
        MessageType.MARKET_DEPTH_SNAPSHOT_LEVEL,
        MessageType.MARKET_DATA_UPDATE_OPEN_INTEREST,
        MessageType.MARKET_DATA_UPDATE_LAST_TRADE_SNAPSHOT,
        MessageType.MARKET_DATA_UPDATE_SESSION_NUM_TRADES,
        MessageType.MARKET_DATA_UPDATE_TRADING_SESSION_DATE,
        MessageType.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR,
        MessageType.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS,
        MessageType.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP,
        MessageType.MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP,
        MessageType.MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP,
        MessageType.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS,
        MessageType.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT,
        MessageType.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2,
        MessageType.HISTORICAL_PRICE_DATA_RECORD_RESPONSE,
        MessageType.HISTORICAL_PRICE_DATA_TICK_RECORD_RESPONSE,
    )
)

#: Compact-JSON field order Sierra Chart was observed to send for 112/117 (SymbolID first).
SIERRA_COMPACT_ORDER = {
    int(MessageType.MARKET_DATA_UPDATE_TRADE_COMPACT): ("SymbolID", "AtBidOrAsk", "Price", "Volume", "DateTime"),
    int(MessageType.MARKET_DATA_UPDATE_BID_ASK_COMPACT): (
        "SymbolID", "BidPrice", "BidQuantity", "AskPrice", "AskQuantity", "DateTime"),
}


class EncodeError(ValueError):
    """A message cannot be encoded; the text names the message and the field."""


def _cstr(value, n: int, name: str, msg: str) -> bytes:
    if isinstance(value, str):
        b = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        b = bytes(value)
    else:
        raise EncodeError(f"{msg}.{name}: expected str, got {type(value).__name__}")
    if len(b) >= n:
        raise EncodeError(f"{msg}.{name}: {len(b)} bytes do not fit char[{n}] (max {n - 1} + NUL)")
    return b


def _sdec(b: bytes) -> str:
    i = b.find(b"\x00")
    if i >= 0:
        b = b[:i]
    return b.decode("utf-8", "replace")


class _MessageCodec:
    """Generated encode/decode functions of one message type."""

    __slots__ = ("spec", "cls", "type", "pack", "unpack", "from_json", "defaults_bytes", "compact_order",
                 "json_fields", "_from_list")

    def __init__(self, cls: type[Message]):
        spec = cls.SPEC
        self.spec = spec
        self.cls = cls
        self.type = spec.type
        ns = {"st": spec.struct, "cls": cls, "new": object.__new__, "_cstr": _cstr, "_sdec": _sdec,
              "S": spec.size, "T": spec.type, "EncodeError": EncodeError, "struct": struct}
        # ---- binary pack
        args = []
        for f in spec.fields:
            if f.kind == "str":
                args.append(f"_cstr(o.{f.name}, {f.size}, {f.name!r}, {spec.name!r})")
            else:
                args.append(f"o.{f.name}")
        src = ["def pack(o):", "    try:",
               f"        return st.pack(S, T, {', '.join(args)})",
               "    except (struct.error, OverflowError) as exc:",
               "        raise EncodeError(_diagnose(o, exc)) from None"]
        # ---- binary unpack
        src += ["def unpack(buf, off, size):",
                "    if size >= S:",
                "        t = st.unpack_from(buf, off)",
                "    else:",
                "        t = st.unpack(bytes(buf[off:off + size]) + DEF[size:])",
                "    o = new(cls)"]
        for i, f in enumerate(spec.fields):
            v = f"t[{i + 2}]"
            src.append(f"    o.{f.name} = _sdec({v})" if f.kind == "str" else f"    o.{f.name} = {v}")
        src.append("    return o")
        # ---- from JSON dict (coercing types; missing -> default)
        src += ["def from_json(d):", "    g = d.get", "    o = new(cls)"]
        for f in spec.fields:
            conv = {"int": "int", "float": "float", "str": "str"}[f.kind]
            src.append(f"    v = g({f.name!r})")
            src.append(f"    o.{f.name} = {f.default!r} if v is None else {conv}(v)")
        src.append("    return o")
        ns["_diagnose"] = self._diagnose
        exec("\n".join(src), ns)  # noqa: S102 - code generated from the message table
        self.pack = ns["pack"]
        self.unpack = ns["unpack"]
        self.from_json = ns["from_json"]
        self.defaults_bytes = b""
        self.defaults_bytes = self.pack(cls())
        ns["DEF"] = self.defaults_bytes
        self.json_fields = tuple((f.name, f.sentinel) for f in spec.fields)
        self.compact_order = spec.field_names
        self._from_list = {}

    def _diagnose(self, o, exc) -> str:
        """Find the field that made struct.pack fail."""
        for f in self.spec.fields:
            v = getattr(o, f.name)
            if f.kind == "str":
                continue
            try:
                struct.pack("<" + f.code, v)
            except (struct.error, TypeError, OverflowError) as e2:
                return f"{self.spec.name}.{f.name}={v!r} does not fit {f.ctype}: {e2}"
        return f"{self.spec.name}: {exc}"

    # ---- JSON
    def to_json_obj(self, o) -> dict:
        d = {"Type": self.type}
        for name, sentinel in self.json_fields:
            v = getattr(o, name)
            if sentinel is not None and v == sentinel:
                continue
            d[name] = v
        return d

    def to_compact(self, o, order) -> dict:
        return {"Type": self.type, "F": [getattr(o, n) for n in order]}

    def from_compact(self, values, order):
        """Message from a compact-JSON ``F`` list in ``order`` (shorter lists: defaults)."""
        fn = self._from_list.get(order)
        if fn is None:
            fn = self._from_list[order] = self._make_from_list(order)
        return fn(values)

    def _make_from_list(self, order):
        by_name = {f.name: f for f in self.spec.fields}
        fields = [by_name[n] for n in order]
        conv = {"int": "int", "float": "float", "str": "str"}
        src = ["def from_list(v):",
               f"    if len(v) < {len(fields)}:",
               "        v = list(v) + DEFS[len(v):]",
               "    o = new(cls)"]
        for i, f in enumerate(fields):
            src.append(f"    o.{f.name} = {conv[f.kind]}(v[{i}])")
        # fields not in the order (none today) keep their defaults
        for f in self.spec.fields:
            if f.name not in order:
                src.append(f"    o.{f.name} = {f.default!r}")
        src.append("    return o")
        ns = {"new": object.__new__, "cls": self.cls, "DEFS": [f.default for f in fields]}
        exec("\n".join(src), ns)  # noqa: S102 - generated from the message table
        return ns["from_list"]


CODECS: dict[int, _MessageCodec] = {t: _MessageCodec(c) for t, c in M.MESSAGE_CLASSES.items()}

#: Market data types whose binary frames must hold every field a book or a trade needs: the
#: versioning rule (fields beyond a shorter message take their defaults) would otherwise turn a
#: 16-byte 107 into a zero-price trade. Type -> the smallest accepted ``Size``: the whole struct,
#: except 106 and 122, whose last field (``NumOrders``, uint32 at offset 48) was added later and
#: defaults to 0 (layouts: ``DTCProtocol.h``, ``../shared/reference/dtc-struct-offsets.txt``).
REQUIRED_SIZE: dict[int, int] = {
    int(t): M.MESSAGE_CLASSES[int(t)].SPEC.size
    for t in (MessageType.MARKET_DATA_UPDATE_TRADE, MessageType.MARKET_DATA_UPDATE_BID_ASK,
              MessageType.MARKET_DATA_UPDATE_TRADE_COMPACT, MessageType.MARKET_DATA_UPDATE_BID_ASK_COMPACT,
              MessageType.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR,
              MessageType.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS,
              MessageType.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP, MessageType.MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP,
              MessageType.MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP,
              MessageType.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS,
              MessageType.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT, MessageType.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2)
}
REQUIRED_SIZE[int(MessageType.MARKET_DEPTH_UPDATE_LEVEL)] = 48
REQUIRED_SIZE[int(MessageType.MARKET_DEPTH_SNAPSHOT_LEVEL)] = 48


def _short_frame(typ: int, size: int) -> str:
    """The reason a binary frame of ``typ`` and ``size`` bytes is refused ("" when it is not)."""
    need = REQUIRED_SIZE.get(typ, 0)
    if size >= need:
        return ""
    return (f"{M.MESSAGE_CLASSES[typ].__name__} ({typ}) of {size} bytes is shorter than the {need} bytes of the "
            f"fields it needs")


#: JSON side of :data:`REQUIRED_SIZE`: how many values a compact ``F`` list of the type needs
#: (the fields within the required size). A standard JSON object of these types needs a
#: ``Price`` (the other fields are checked by value, :func:`app.dtc.batch.message_problem`).
_COMPACT_NEED: dict[int, int] = {
    t: sum(1 for f in M.MESSAGE_CLASSES[t].SPEC.fields if f.offset + f.size <= need)
    for t, need in REQUIRED_SIZE.items()
}


def _unknown_type(typ: int, size: int) -> str:
    if typ == 0:
        return f"Type 0 ({size} bytes) is not a DTC message type"
    return f"unknown message type {typ} ({size} bytes) skipped"

_HDR_UNPACK = struct.Struct("<HH").unpack_from

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def _compact_order(t: int, sierra: bool):
    if sierra and t in SIERRA_COMPACT_ORDER:
        return SIERRA_COMPACT_ORDER[t]
    return CODECS[t].compact_order


def encode(msg: Message, encoding: Encoding = Encoding.BINARY, *, sierra_compact_order: bool = True) -> bytes:
    """Encode one message as one whole wire frame.

    Parameters
    ----------
    msg : Message
        Any message instance of :mod:`app.dtc.messages`.
    encoding : Encoding
        BINARY (struct with Size/Type header), JSON or JSON_COMPACT (object + one NUL byte).
    sierra_compact_order : bool
        Use Sierra Chart's SymbolID-first order for 112/117 in compact JSON.

    Returns
    -------
    bytes

    Raises
    ------
    EncodeError
        A value does not fit its field (the text names message and field; e.g. 1e39 in a
        float32 field: ``struct`` raises OverflowError there, reported as this error), a string
        is too long for its ``char[N]``, or a float is not finite in JSON.
    ValueError
        Unsupported encoding (VLS, protobuf).
    """
    codec = CODECS.get(msg.TYPE)
    if codec is None:  # pragma: no cover - every class has a codec
        raise EncodeError(f"no codec for {type(msg).__name__}")
    if encoding == Encoding.BINARY:
        return codec.pack(msg)
    if encoding == Encoding.JSON:
        obj = codec.to_json_obj(msg)
    elif encoding == Encoding.JSON_COMPACT:
        if codec.type in COMPACT_TYPES:
            obj = codec.to_compact(msg, _compact_order(codec.type, sierra_compact_order))
        else:
            obj = codec.to_json_obj(msg)
    else:
        raise ValueError(f"encoding {encoding!r} is not supported (binary, JSON, compact JSON only)")
    try:
        return _dumps(obj).encode("ascii") + b"\x00"
    except (ValueError, TypeError) as exc:
        raise EncodeError(f"{type(msg).__name__}: cannot encode as JSON: {exc}") from None


def decode_frame(frame: bytes, encoding: Encoding, *, sierra_compact_order: bool = True) -> Message:
    """Decode one complete frame (binary with header, or JSON text without its NUL).

    Raises
    ------
    ValueError
        Malformed frame or unknown type (the text says which). :class:`Decoder` is the
        never-raising stream API.
    """
    if encoding == Encoding.BINARY:
        if len(frame) < 4:
            raise ValueError(f"binary frame of {len(frame)} bytes is shorter than the header")
        size, typ = struct.unpack_from("<HH", frame)
        codec = CODECS.get(typ)
        if codec is None:
            raise ValueError(_unknown_type(typ, size))
        if size != len(frame):
            raise ValueError(f"Size {size} != frame length {len(frame)}")
        short = _short_frame(typ, size)
        if short:
            raise ValueError(short)
        return codec.unpack(frame, 0, size)
    try:
        obj = _loads(frame)
    except Exception as exc:  # noqa: BLE001 - msgspec also raises RecursionError (deep nesting)
        raise ValueError(f"invalid JSON: {type(exc).__name__}: {exc}") from None
    return _from_json_obj(obj, sierra_compact_order)


class _UnknownType(Exception):
    pass


def _from_json_obj(obj, sierra: bool):
    if not isinstance(obj, dict):
        raise ValueError(f"JSON frame is a {type(obj).__name__}, not an object")
    t = obj.get("Type")
    if not isinstance(t, int) or isinstance(t, bool):
        raise ValueError(f"JSON frame has no integer Type (Type={t!r})")
    codec = CODECS.get(t)
    if codec is None:
        raise _UnknownType(t)
    f = obj.get("F")
    need = _COMPACT_NEED.get(t)
    if f is not None:
        if not isinstance(f, list):
            raise ValueError(f"Type {t}: compact field 'F' is not a list")
        if need is not None and len(f) < need:
            raise ValueError(f"Type {t}: compact 'F' has {len(f)} values, the type needs {need}")
        return codec.from_compact(f, _compact_order(t, sierra))
    if need is not None and "Price" not in obj and any(n == "Price" for n, _ in codec.json_fields):
        raise ValueError(f"Type {t}: no Price")
    return codec.from_json(obj)


class Decoder(FrameErrors):
    """Stream decoder: bytes in, messages out; never raises on bad input.

    Parameters
    ----------
    encoding : Encoding
        Initial encoding (binary at connection start). Settable: the DTC encoding
        negotiation switches it.
    max_frame : int, optional
        Largest frame in bytes (binary default 65535, JSON default 65536).
    follow_encoding_response : bool
        Client side: when an ENCODING_RESPONSE is decoded, switch :attr:`encoding` to its
        ``Encoding`` *before* decoding the bytes that follow it in the same read (the server
        answers in the old encoding and sends everything after in the new one).
    on_encoding_request : callable(EncodingRequest) -> Encoding or None, optional
        Server side: called once for every decoded ENCODING_REQUEST; the encoding it returns
        (when supported and different) takes effect *before* the bytes that follow the request
        in the same read are decoded (the client sends everything after the request in the
        new encoding). ``None`` keeps the encoding.
    sierra_compact_order : bool
        See :func:`encode`.

    Attributes
    ----------
    errors, last_error, desynced
        See :class:`app.dtc.framing.FrameErrors` (framer errors included).
    unknown : int
        Frames of a type this build does not know (skipped, as DTC's versioning rule says; also
        counted in :attr:`errors`, with the type in :attr:`last_error`). Type 0 is one of them.
        Binary market data frames shorter than :data:`REQUIRED_SIZE` are counted errors too.
    messages : int
        Messages decoded.
    """

    def __init__(self, encoding: Encoding = Encoding.BINARY, *, max_frame: int | None = None,
                 follow_encoding_response: bool = False,
                 on_encoding_request: Callable[[Message], Encoding | None] | None = None,
                 sierra_compact_order: bool = True):
        super().__init__("dtc decoder")
        self._max_frame = max_frame
        self.unknown = 0
        self.messages = 0
        self.follow_encoding_response = follow_encoding_response
        self.on_encoding_request = on_encoding_request
        self.sierra_compact_order = sierra_compact_order
        self._bin = BinaryFramer(max_frame or MAX_BINARY_FRAME)
        self._nul = NulFramer(max_frame or MAX_JSON_FRAME)
        self._encoding = Encoding.BINARY
        self.encoding = encoding

    @property
    def errors(self) -> int:
        """Malformed frames so far (framing and decoding)."""
        return self._bin.errors + self._nul.errors + self._own_errors if hasattr(self, "_nul") else 0

    @errors.setter
    def errors(self, _value) -> None:  # FrameErrors.__init__ assigns it; the count is derived
        pass

    @property
    def desynced(self) -> int:
        """Times the binary stream could not be resynchronised (buffer dropped)."""
        return self._bin.desynced + self._nul.desynced if hasattr(self, "_nul") else 0

    @desynced.setter
    def desynced(self, _value) -> None:
        pass

    @property
    def encoding(self) -> Encoding:
        return self._encoding

    @encoding.setter
    def encoding(self, value) -> None:
        value = Encoding(int(value))
        if value not in SUPPORTED_ENCODINGS:
            raise ValueError(f"encoding {value.name} is not supported (binary, JSON, compact JSON only)")
        if value == self._encoding:
            return
        # carry undecoded bytes over to the other framer
        if self._encoding == Encoding.BINARY:
            rest, self._bin.buf = bytes(self._bin.buf), bytearray()
        else:
            rest, self._nul.buf = self._nul.buf, b""
        self._encoding = value
        if rest:
            self._pending = rest

    _pending = b""
    _own_errors = 0

    def error(self, reason: str, count: int = 1) -> None:
        """Count ``count`` malformed frames (or messages whose values cannot be used) and log
        the first 10, then about every 1000th; ``reason`` (of the first) becomes
        :attr:`last_error`. The owner of the decoder calls it for problems it finds after
        decoding (e.g. prices out of range)."""
        before = self._own_errors
        self._own_errors += int(count)
        self.last_error = reason
        n = self._own_errors
        if before < 10 or n // 1000 > before // 1000:
            log.warning("dtc decoder: malformed frame #%d skipped: %s", n, reason)

    def buffered(self) -> int:
        """Bytes received but not yet decoded (an incomplete frame)."""
        return len(self._bin.buf) + len(self._nul.buf) + len(self._pending)

    def feed(self, data: bytes) -> list[Message]:
        """Append received bytes; return the messages completed by them, in order.

        Never raises for bad input: malformed frames are counted in :attr:`errors` (reason in
        :attr:`last_error`, logged) and skipped, unknown types counted in :attr:`unknown` and
        :attr:`errors`.
        """
        out: list[Message] = []
        while True:
            if self._pending:
                data, self._pending = self._pending + bytes(data), b""
            if self._encoding == Encoding.BINARY:
                switched = self._feed_binary(data, out)
            else:
                switched = self._feed_json(data, out)
            for fr in (self._bin, self._nul):
                if fr.errors and fr.last_error:
                    self.last_error = fr.last_error
                    fr.last_error = ""
            if not switched:
                break
            data = b""
        self.messages += len(out)
        return out

    def _switch_to(self, msg) -> Encoding | None:
        """The encoding the bytes after ``msg`` (an ENCODING_REQUEST or _RESPONSE) are in, when
        it changes; ``None`` otherwise."""
        if msg.TYPE == MessageType.ENCODING_RESPONSE:
            new = msg.Encoding if self.follow_encoding_response else None
        elif self.on_encoding_request is not None:
            new = self.on_encoding_request(msg)
        else:
            return None
        if new is None or new not in SUPPORTED_ENCODINGS or new == self._encoding:
            return None
        return Encoding(int(new))

    def _feed_binary(self, data, out) -> bool:
        # framing inlined (same rules as BinaryFramer) so each message is unpacked straight
        # from the receive buffer, without a copy per frame
        fr = self._bin
        buf = fr.buf
        buf += data
        n = len(buf)
        off = 0
        codecs = CODECS
        hdr = _HDR_UNPACK
        mx = fr.max_frame
        append = out.append
        switched = False
        while n - off >= 4:
            size, typ = hdr(buf, off)
            if size < 4 or size > mx:
                fr.error(f"binary Size {size} outside 4..{mx}: stream cannot be resynchronised, "
                         f"{n - off} buffered bytes dropped")
                fr.desynced += 1
                off = n
                break
            if n - off < size:
                break
            codec = codecs.get(typ)
            if codec is None:
                self.unknown += 1
                self.error(_unknown_type(typ, size))
                off += size
                continue
            if size < codec.spec.size and typ in REQUIRED_SIZE and size < REQUIRED_SIZE[typ]:
                self.error(_short_frame(typ, size))
                off += size
                continue
            try:
                msg = codec.unpack(buf, off, size)
            except Exception as exc:  # noqa: BLE001 - a bad frame must never escape
                self.error(f"type {typ}, {size} bytes: {exc}")
                off += size
                continue
            off += size
            append(msg)
            if typ == 7 or typ == 6:  # ENCODING_RESPONSE / ENCODING_REQUEST
                new = self._switch_to(msg)
                if new is not None:
                    self._pending = bytes(buf[off:])
                    off = n
                    self._encoding = new
                    switched = True
                    break
        if off:
            del buf[:off]
        return switched

    def _feed_json(self, data, out) -> bool:
        frames = self._nul.feed(data)
        sierra = self.sierra_compact_order
        loads = _loads
        objs = None
        if len(frames) > 1:
            # one json.loads for the whole read (much less per-call overhead); any problem and
            # every frame is parsed on its own so a bad one is counted and skipped alone. Any
            # exception: msgspec raises RecursionError, not DecodeError, for deeply nested input
            try:
                objs = loads(b"[" + b",".join(frames) + b"]")
                if not isinstance(objs, list) or len(objs) != len(frames):
                    objs = None
            except Exception:  # noqa: BLE001 - a bad frame must never escape
                objs = None
        for i, fr in enumerate(frames):
            try:
                msg = _from_json_obj(loads(fr) if objs is None else objs[i], sierra)
            except _UnknownType as exc:
                self.unknown += 1
                self.error(f"JSON frame: unknown message Type {exc.args[0]} skipped")
                continue
            except Exception as exc:  # noqa: BLE001 - a bad frame must never escape
                self.error(f"JSON frame {fr[:60]!r}: {type(exc).__name__}: {exc}")
                continue
            out.append(msg)
            if msg.TYPE == MessageType.ENCODING_RESPONSE or msg.TYPE == MessageType.ENCODING_REQUEST:
                new = self._switch_to(msg)
                if new is not None:
                    self._pending = b"".join(f + b"\x00" for f in frames[i + 1:]) + self._nul.buf
                    self._nul.buf = b""
                    self._encoding = new
                    return True
        return False


def encoding_request(encoding: Encoding) -> bytes:
    """The binary ENCODING_REQUEST frame asking for ``encoding`` (always binary on the wire)."""
    return encode(M.EncodingRequest(Encoding=int(encoding)), Encoding.BINARY)

