"""DTC messages: one declarative table per message drives every encoding.

Each DTC message is described once, by a table of ``(C type, field name, default)`` rows in
header order plus the struct's packing (``pack(8)`` natural alignment, or ``pack(1)`` for the
compact float messages the official header wraps in ``#pragma pack(push, 1)``). From that
table this module derives, with no hand-written per-message code:

* the byte offset of every field and the struct size (C layout rules: every field aligned to
  ``min(sizeof(field), pack)``, the struct size rounded up to its largest alignment),
* a :class:`struct.Struct` with explicit padding for the binary encoding,
* the field order of the compact JSON encoding, and the names of the JSON encoding,
* one Python class per message (``LogonRequest``, ``MarketDepthUpdateLevel``, ...), named after
  the DTC struct without its ``s_`` prefix, constructed with keyword arguments named exactly as
  the DTC fields.

Sources: the official ``DTCProtocol.h`` (2022 snapshot, ``CURRENT_VERSION = 8``, public domain;
copy in ``ShabbirHasan1/dtc-go`` ``codegen/testdata/DTCProtocol.h``) for field order, C types and
the ``Clear()`` defaults; ``../shared/reference/dtc-struct-offsets.txt`` (g++ ``offsetof``) is what
the tests compare every computed offset and size against.

Unset values
------------
There is exactly one representation of "unset" per C type, the one the header's ``Clear()``
uses, exposed as module constants: :data:`UNSET_DOUBLE` (``DBL_MAX``) for ``double`` fields,
:data:`UNSET_FLOAT` (``FLT_MAX``) for the ``float`` bid/ask prices of 117/143/144 and
:data:`UNSET_UINT32` (``UINT_MAX``) for ``uint32_t`` counters. A field that the header
``Clear()`` sets to one of these defaults to it here. The binary encoding carries the sentinel
bytes; the JSON encodings omit a field whose value is its type's sentinel (DTC: "unset fields
may be omitted"), and a missing JSON field decodes to the default. Use :func:`is_unset` to test
a value; never compare a price against ``DBL_MAX`` by hand.

Field values
------------
Integers (also enum fields: plain ``int``; the ``IntEnum`` classes below compare equal to
them), ``float`` for ``double``/``float`` fields (``float`` fields hold float32-representable
values after a binary round trip), ``str`` for ``char[N]`` fields (UTF-8, at most ``N - 1``
bytes: the last byte is always the NUL terminator).
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

#: ``CURRENT_VERSION`` of the header this table follows.
PROTOCOL_VERSION = 8

#: ``DBL_MAX``: the unset value of ``double`` fields in the binary encoding.
UNSET_DOUBLE: float = sys.float_info.max
#: ``FLT_MAX``: the unset value of ``float`` bid/ask prices (117, 143, 144).
UNSET_FLOAT: float = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
#: ``UINT_MAX``: the unset value of ``uint32_t`` counters (snapshot SessionNumTrades, OpenInterest).
UNSET_UINT32: int = 0xFFFFFFFF

_SENTINELS = (UNSET_DOUBLE, UNSET_FLOAT)


def is_unset(value) -> bool:
    """True if ``value`` is DTC's "unset" for a numeric field (DBL_MAX, FLT_MAX, UINT_MAX).

    Doubles that come from float32 fields or from JSON text may differ from the sentinel in
    the last bits, so any magnitude >= ``FLT_MAX`` counts as unset.
    """
    if isinstance(value, float):
        return not math.isfinite(value) or abs(value) >= UNSET_FLOAT
    return value == UNSET_UINT32


# --------------------------------------------------------------------------------------------
# Enumerations (names and numbers exactly as in DTCProtocol.h)
# --------------------------------------------------------------------------------------------


class MessageType(IntEnum):
    """DTC message type numbers (``uint16_t Type`` of every message)."""

    LOGON_REQUEST = 1
    LOGON_RESPONSE = 2
    HEARTBEAT = 3
    LOGOFF = 5
    ENCODING_REQUEST = 6
    ENCODING_RESPONSE = 7
    MARKET_DATA_FEED_STATUS = 100
    MARKET_DATA_REQUEST = 101
    MARKET_DEPTH_REQUEST = 102
    MARKET_DATA_REJECT = 103
    MARKET_DATA_SNAPSHOT = 104
    MARKET_DEPTH_UPDATE_LEVEL = 106
    MARKET_DATA_UPDATE_TRADE = 107
    MARKET_DATA_UPDATE_BID_ASK = 108
    MARKET_DATA_UPDATE_TRADE_COMPACT = 112
    MARKET_DATA_UPDATE_SESSION_VOLUME = 113
    MARKET_DATA_UPDATE_SESSION_HIGH = 114
    MARKET_DATA_UPDATE_SESSION_LOW = 115
    MARKET_DATA_FEED_SYMBOL_STATUS = 116
    MARKET_DATA_UPDATE_BID_ASK_COMPACT = 117
    MARKET_DATA_UPDATE_SESSION_SETTLEMENT = 119
    MARKET_DATA_UPDATE_SESSION_OPEN = 120
    MARKET_DEPTH_REJECT = 121
    MARKET_DEPTH_SNAPSHOT_LEVEL = 122
    MARKET_DATA_UPDATE_OPEN_INTEREST = 124
    MARKET_DATA_UPDATE_LAST_TRADE_SNAPSHOT = 134
    MARKET_DATA_UPDATE_SESSION_NUM_TRADES = 135
    MARKET_DATA_UPDATE_TRADING_SESSION_DATE = 136
    MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR = 137
    TRADING_SYMBOL_STATUS = 138
    MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS = 140
    MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP = 141
    MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP = 142
    MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP = 143
    MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS = 144
    MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT = 145
    MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2 = 146
    SUBMIT_NEW_OCO_ORDER = 201
    CANCEL_ORDER = 203
    CANCEL_REPLACE_ORDER = 204
    SUBMIT_NEW_SINGLE_ORDER = 208
    SUBMIT_FLATTEN_POSITION_ORDER = 209
    OPEN_ORDERS_REQUEST = 300
    ORDER_UPDATE = 301
    OPEN_ORDERS_REJECT = 302
    HISTORICAL_ORDER_FILLS_REQUEST = 303
    HISTORICAL_ORDER_FILL_RESPONSE = 304
    CURRENT_POSITIONS_REQUEST = 305
    POSITION_UPDATE = 306
    CURRENT_POSITIONS_REJECT = 307
    HISTORICAL_ORDER_FILLS_REJECT = 308
    TRADE_ACCOUNTS_REQUEST = 400
    TRADE_ACCOUNT_RESPONSE = 401
    SECURITY_DEFINITION_FOR_SYMBOL_REQUEST = 506
    SECURITY_DEFINITION_RESPONSE = 507
    SECURITY_DEFINITION_REJECT = 509
    ACCOUNT_BALANCE_UPDATE = 600
    ACCOUNT_BALANCE_REQUEST = 601
    ACCOUNT_BALANCE_REJECT = 602
    USER_MESSAGE = 700
    GENERAL_LOG_MESSAGE = 701
    ALERT_MESSAGE = 702
    HISTORICAL_PRICE_DATA_REQUEST = 800
    HISTORICAL_PRICE_DATA_RESPONSE_HEADER = 801
    HISTORICAL_PRICE_DATA_REJECT = 802
    HISTORICAL_PRICE_DATA_RECORD_RESPONSE = 803
    HISTORICAL_PRICE_DATA_TICK_RECORD_RESPONSE = 804
    HISTORICAL_PRICE_DATA_RESPONSE_TRAILER = 807


class Encoding(IntEnum):
    """``EncodingEnum``."""

    BINARY = 0
    BINARY_WITH_VARIABLE_LENGTH_STRINGS = 1
    JSON = 2
    JSON_COMPACT = 3
    PROTOCOL_BUFFERS = 4


class LogonStatus(IntEnum):
    """``LogonStatusEnum``."""

    LOGON_SUCCESS = 1
    LOGON_ERROR = 2
    LOGON_ERROR_NO_RECONNECT = 3
    LOGON_RECONNECT_NEW_ADDRESS = 4


class RequestAction(IntEnum):
    """``RequestActionEnum``."""

    SUBSCRIBE = 1
    UNSUBSCRIBE = 2
    SNAPSHOT = 3
    SNAPSHOT_WITH_INTERVAL_UPDATES = 4


class AtBidOrAsk(IntEnum):
    """``AtBidOrAskEnum`` (uint16) and ``AtBidOrAskEnum8`` (uint8); same numbers.

    For trades: AT_BID = the bid was hit (seller aggressor), AT_ASK = the ask was lifted (buyer).
    """

    BID_ASK_UNSET = 0
    AT_BID = 1
    AT_ASK = 2


class DepthUpdateType(IntEnum):
    """``MarketDepthUpdateTypeEnum`` (uint8): levels are addressed by price."""

    MARKET_DEPTH_UNSET = 0
    MARKET_DEPTH_INSERT_UPDATE_LEVEL = 1
    MARKET_DEPTH_DELETE_LEVEL = 2


class FinalUpdateInBatch(IntEnum):
    """``FinalUpdateInBatchEnum`` (uint8). Four values, not a bool."""

    FINAL_UPDATE_UNSET = 0
    FINAL_UPDATE_TRUE = 1
    FINAL_UPDATE_FALSE = 2
    FINAL_UPDATE_BEGIN_BATCH = 3


class UnbundledTradeIndicator(IntEnum):
    """``UnbundledTradeIndicatorEnum`` (int8)."""

    UNBUNDLED_TRADE_NONE = 0
    FIRST_SUB_TRADE_OF_UNBUNDLED_TRADE = 1
    LAST_SUB_TRADE_OF_UNBUNDLED_TRADE = 2


class TradeCondition(IntEnum):
    """``TradeConditionEnum`` (int8)."""

    TRADE_CONDITION_NONE = 0
    TRADE_CONDITION_NON_LAST_UPDATE_EQUITY_TRADE = 1
    TRADE_CONDITION_ODD_LOT_EQUITY_TRADE = 2


class OrderStatus(IntEnum):
    """``OrderStatusEnum``. 2 PENDING_OPEN is *not* filled; 7 is FILLED."""

    ORDER_STATUS_UNSPECIFIED = 0
    ORDER_STATUS_ORDER_SENT = 1
    ORDER_STATUS_PENDING_OPEN = 2
    ORDER_STATUS_PENDING_CHILD = 3
    ORDER_STATUS_OPEN = 4
    ORDER_STATUS_PENDING_CANCEL_REPLACE = 5
    ORDER_STATUS_PENDING_CANCEL = 6
    ORDER_STATUS_FILLED = 7
    ORDER_STATUS_CANCELED = 8
    ORDER_STATUS_REJECTED = 9
    ORDER_STATUS_PARTIALLY_FILLED = 10


class OrderUpdateReason(IntEnum):
    """``OrderUpdateReasonEnum``."""

    ORDER_UPDATE_REASON_UNSET = 0
    OPEN_ORDERS_REQUEST_RESPONSE = 1
    NEW_ORDER_ACCEPTED = 2
    GENERAL_ORDER_UPDATE = 3
    ORDER_FILLED = 4
    ORDER_FILLED_PARTIALLY = 5
    ORDER_CANCELED = 6
    ORDER_CANCEL_REPLACE_COMPLETE = 7
    NEW_ORDER_REJECTED = 8
    ORDER_CANCEL_REJECTED = 9
    ORDER_CANCEL_REPLACE_REJECTED = 10


class OrderType(IntEnum):
    """``OrderTypeEnum``."""

    ORDER_TYPE_UNSET = 0
    ORDER_TYPE_MARKET = 1
    ORDER_TYPE_LIMIT = 2
    ORDER_TYPE_STOP = 3
    ORDER_TYPE_STOP_LIMIT = 4
    ORDER_TYPE_MARKET_IF_TOUCHED = 5
    ORDER_TYPE_LIMIT_IF_TOUCHED = 6
    ORDER_TYPE_MARKET_LIMIT = 7


class TimeInForce(IntEnum):
    """``TimeInForceEnum``."""

    TIF_UNSET = 0
    TIF_DAY = 1
    TIF_GOOD_TILL_CANCELED = 2
    TIF_GOOD_TILL_DATE_TIME = 3
    TIF_IMMEDIATE_OR_CANCEL = 4
    TIF_ALL_OR_NONE = 5
    TIF_FILL_OR_KILL = 6


class BuySell(IntEnum):
    """``BuySellEnum``."""

    BUY_SELL_UNSET = 0
    BUY = 1
    SELL = 2


class OpenCloseTrade(IntEnum):
    """``OpenCloseTradeEnum``."""

    TRADE_UNSET = 0
    TRADE_OPEN = 1
    TRADE_CLOSE = 2


class PartialFillHandling(IntEnum):
    """``PartialFillHandlingEnum`` (int8)."""

    PARTIAL_FILL_UNSET = 0
    PARTIAL_FILL_HANDLING_REDUCE_QUANTITY = 1
    PARTIAL_FILL_HANDLING_IMMEDIATE_CANCEL = 2


class FeedStatus(IntEnum):
    """``MarketDataFeedStatusEnum`` (the message of the same name is :class:`MarketDataFeedStatus`)."""

    MARKET_DATA_FEED_STATUS_UNSET = 0
    MARKET_DATA_FEED_UNAVAILABLE = 1
    MARKET_DATA_FEED_AVAILABLE = 2


class TradingStatus(IntEnum):
    """``TradingStatusEnum`` (int8)."""

    TRADING_STATUS_UNKNOWN = 0
    TRADING_STATUS_PRE_OPEN = 1
    TRADING_STATUS_OPEN = 2
    TRADING_STATUS_CLOSE = 3
    TRADING_STATUS_TRADING_HALT = 4


class SecurityType(IntEnum):
    """``SecurityTypeEnum``."""

    SECURITY_TYPE_UNSET = 0
    SECURITY_TYPE_FUTURES = 1
    SECURITY_TYPE_STOCK = 2
    SECURITY_TYPE_FOREX = 3
    SECURITY_TYPE_INDEX = 4
    SECURITY_TYPE_FUTURES_STRATEGY = 5
    SECURITY_TYPE_STOCK_OPTION = 6
    SECURITY_TYPE_FUTURES_OPTION = 7
    SECURITY_TYPE_INDEX_OPTION = 8
    SECURITY_TYPE_BOND = 9
    SECURITY_TYPE_MUTUAL_FUND = 10


class PutCall(IntEnum):
    """``PutCallEnum`` (uint8)."""

    PC_UNSET = 0
    PC_CALL = 1
    PC_PUT = 2


class HistoricalDataInterval(IntEnum):
    """``HistoricalDataIntervalEnum``: bar length in seconds (0 = ticks)."""

    INTERVAL_TICK = 0
    INTERVAL_1_SECOND = 1
    INTERVAL_2_SECONDS = 2
    INTERVAL_4_SECONDS = 4
    INTERVAL_5_SECONDS = 5
    INTERVAL_10_SECONDS = 10
    INTERVAL_30_SECONDS = 30
    INTERVAL_1_MINUTE = 60
    INTERVAL_5_MINUTE = 300
    INTERVAL_10_MINUTE = 600
    INTERVAL_15_MINUTE = 900
    INTERVAL_30_MINUTE = 1800
    INTERVAL_1_HOUR = 3600
    INTERVAL_2_HOURS = 7200
    INTERVAL_1_DAY = 86400
    INTERVAL_1_WEEK = 604800


class HistoricalPriceDataRejectReasonCode(IntEnum):
    """``HistoricalPriceDataRejectReasonCodeEnum`` (int16)."""

    HPDR_UNSET = 0
    HPDR_UNABLE_TO_SERVE_DATA_RETRY_IN_SPECIFIED_SECONDS = 1
    HPDR_UNABLE_TO_SERVE_DATA_DO_NOT_RETRY = 2
    HPDR_DATA_REQUEST_OUTSIDE_BOUNDS_OF_AVAILABLE_DATA = 3
    HPDR_GENERAL_REJECT_ERROR = 4


class LogonFlags(IntEnum):
    """Sierra Chart ``LOGON_REQUEST.Integer_1`` capability flags (DTCServer.php; OR them)."""

    LOW_BANDWIDTH = 0x1
    RELAY_SERVER_MODE = 0x2
    SUPPORT_UNBUNDLED_TRADES = 0x4
    NO_COMPACT_MARKET_DATA_MESSAGES = 0x8
    USE_MARKET_DEPTH_UPDATE_FLOAT_WITH_MS_MESSAGES = 0x80
    SUPPORT_MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT = 0x800
    SUPPORT_MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2 = 0x80000
    SUPPORT_MARKET_DATA_UPDATE_BIDASK_MICROSECOND_MESSAGE = 0x100000


# --------------------------------------------------------------------------------------------
# C types -> (width code, python struct char, size)
# --------------------------------------------------------------------------------------------

_BASE = {
    "uint8_t": "B",
    "int8_t": "b",
    "uint16_t": "H",
    "int16_t": "h",
    "uint32_t": "I",
    "int32_t": "i",
    "uint64_t": "Q",
    "int64_t": "q",
    "float": "f",
    "double": "d",
}
#: typedefs and enums of the header -> base C type (enum widths from their declarations)
_ALIASES = {
    "t_DateTime": "int64_t",  # UNIX seconds
    "t_DateTime4Byte": "uint32_t",  # UNIX seconds
    "t_DateTimeWithMilliseconds": "double",  # UNIX seconds with fraction
    "t_DateTimeWithMillisecondsInt": "int64_t",  # UNIX milliseconds
    "t_DateTimeWithMicrosecondsInt": "int64_t",  # UNIX microseconds
    "EncodingEnum": "int32_t",
    "LogonStatusEnum": "int32_t",
    "RequestActionEnum": "int32_t",
    "MarketDataFeedStatusEnum": "int32_t",
    "TradingStatusEnum": "int8_t",
    "AtBidOrAskEnum": "uint16_t",
    "AtBidOrAskEnum8": "uint8_t",
    "MarketDepthUpdateTypeEnum": "uint8_t",
    "FinalUpdateInBatchEnum": "uint8_t",
    "UnbundledTradeIndicatorEnum": "int8_t",
    "TradeConditionEnum": "int8_t",
    "OrderTypeEnum": "int32_t",
    "BuySellEnum": "int32_t",
    "TimeInForceEnum": "int32_t",
    "OpenCloseTradeEnum": "int32_t",
    "PartialFillHandlingEnum": "int8_t",
    "OrderStatusEnum": "int32_t",
    "OrderUpdateReasonEnum": "int32_t",
    "SecurityTypeEnum": "int32_t",
    "PriceDisplayFormatEnum": "int32_t",
    "PutCallEnum": "uint8_t",
    "HistoricalDataIntervalEnum": "int32_t",
    "HistoricalPriceDataRejectReasonCodeEnum": "int16_t",
}
_INT_RANGES = {
    "B": (0, 0xFF),
    "b": (-0x80, 0x7F),
    "H": (0, 0xFFFF),
    "h": (-0x8000, 0x7FFF),
    "I": (0, 0xFFFFFFFF),
    "i": (-0x80000000, 0x7FFFFFFF),
    "Q": (0, 0xFFFFFFFFFFFFFFFF),
    "q": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_DEFAULT_NAMES = {
    "DBL_MAX": UNSET_DOUBLE,
    "FLT_MAX": UNSET_FLOAT,
    "UINT_MAX": UNSET_UINT32,
    "CURRENT_VERSION": PROTOCOL_VERSION,
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a DTC message.

    Attributes
    ----------
    name : str
        DTC field name (case-sensitive, also the JSON key).
    ctype : str
        C type as written in the header (``double``, ``AtBidOrAskEnum``, ``char[64]``, ...).
    code : str
        :mod:`struct` code (``d``, ``H``, ...; ``64s`` for ``char[64]``).
    kind : str
        ``"int"``, ``"float"`` or ``"str"``.
    size : int
        Bytes in the binary encoding.
    offset : int
        Byte offset from the start of the message (the 4-byte Size/Type header included).
    default : int | float | str
        ``Clear()`` default.
    sentinel : int | float | None
        The unset value of this field when its default is one (omitted from JSON), else None.
    """

    name: str
    ctype: str
    code: str
    kind: str
    size: int
    offset: int
    default: Any
    sentinel: Any


@dataclass(frozen=True)
class MessageSpec:
    """The layout of one message, derived from its table.

    Attributes
    ----------
    type : int
        Message type number.
    name : str
        Python class name (the DTC struct name without ``s_``).
    pack : int
        8 (natural alignment) or 1 (``#pragma pack(1)`` group).
    fields : tuple[Field, ...]
        In header order, without Size and Type.
    size : int
        ``sizeof`` the struct = binary Size of a message this build writes.
    struct : struct.Struct
        Little-endian layout of the whole message, Size and Type included, explicit padding.
    """

    type: int
    name: str
    pack: int
    fields: tuple
    size: int
    struct: struct.Struct

    @property
    def field_names(self) -> tuple:
        return tuple(f.name for f in self.fields)


def _layout(rows, pack):
    """Compute offsets/size from ``(ctype, name, default)`` rows with the C rules."""
    off = 4  # uint16 Size, uint16 Type
    max_align = 2
    fmt = ["<HH"]
    fields = []
    for ctype, name, default in rows:
        if ctype.startswith("char["):
            n = int(ctype[5:-1])
            code, size, align, kind = f"{n}s", n, 1, "str"
        else:
            base = _ALIASES.get(ctype, ctype)
            if base not in _BASE:
                raise ValueError(f"unknown C type {ctype!r} for field {name}")
            code = _BASE[base]
            size = struct.calcsize("<" + code)
            align = min(size, pack)
            kind = "float" if code in "fd" else "int"
        pad = (-off) % align
        if pad:
            fmt.append(f"{pad}x")
            off += pad
        max_align = max(max_align, align)
        if default is None:
            default = "" if kind == "str" else (0.0 if kind == "float" else 0)
        elif isinstance(default, str) and default in _DEFAULT_NAMES:
            default = _DEFAULT_NAMES[default]
        elif kind == "float":
            default = float(default)
        sentinel = default if (kind != "str" and (default in _SENTINELS or (kind == "int" and code == "I" and default == UNSET_UINT32))) else None
        fields.append(Field(name, ctype, code, kind, size, off, default, sentinel))
        fmt.append(code)
        off += size
    total = off + ((-off) % max(max_align, 1) if pack > 1 else 0)
    if total > off:
        fmt.append(f"{total - off}x")
    st = struct.Struct("".join(fmt))
    assert st.size == total, (st.size, total)
    return tuple(fields), total, st


def _parse_table(text):
    rows = []
    for line in text.strip().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        default = None
        if "=" in line:
            line, d = line.split("=", 1)
            d = d.strip()
            if d.startswith('"'):
                default = d.strip('"')
            elif d in _DEFAULT_NAMES:
                default = d
            else:
                default = float(d) if "." in d else int(d, 0)
        ctype, name = line.split()
        rows.append((ctype, name, default))
    return rows


class Message:
    """Base class of every DTC message class.

    Construct with keyword arguments named exactly as the DTC fields; fields not given take
    the header's ``Clear()`` defaults. Unknown names raise :class:`TypeError` naming them
    (JSON peers silently ignore unknown names, so a typo must fail here).
    """

    __slots__ = ()
    TYPE: ClassVar[int]
    SPEC: ClassVar[MessageSpec]

    def __init__(self, **kwargs):
        for f in self.SPEC.fields:
            object.__setattr__(self, f.name, f.default)
        for k, v in kwargs.items():
            if k not in self.SPEC.field_names:
                raise TypeError(f"{type(self).__name__} has no DTC field {k!r}")
            object.__setattr__(self, k, v)

    def to_dict(self) -> dict:
        """Field name -> value, in header order (Size/Type not included)."""
        return {n: getattr(self, n) for n in self.SPEC.field_names}

    def replace(self, **kwargs) -> "Message":
        """A copy with some fields changed."""
        d = self.to_dict()
        d.update(kwargs)
        return type(self)(**d)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.SPEC.field_names)

    def __repr__(self):
        body = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({body})"


#: message type number -> class
MESSAGE_CLASSES: dict[int, type[Message]] = {}
#: message class name -> class
CLASSES_BY_NAME: dict[str, type[Message]] = {}


def _define(type_: int, name: str, table: str, pack: int = 8) -> type[Message]:
    fields, size, st = _layout(_parse_table(table), pack)
    spec = MessageSpec(int(type_), name, pack, fields, size, st)
    cls = type(name, (Message,), {"__slots__": spec.field_names, "TYPE": MessageType(type_), "SPEC": spec,
                                  "__doc__": f"DTC ``s_{name}`` (Type {int(type_)}, {size} bytes, pack({pack}))."})
    cls.__module__ = __name__
    MESSAGE_CLASSES[int(type_)] = cls
    CLASSES_BY_NAME[name] = cls
    globals()[name] = cls
    return cls


T = MessageType

# --------------------------------------------------------------------------------------------
# The tables (header order; "= x" is the Clear() default)
# --------------------------------------------------------------------------------------------

_define(T.ENCODING_REQUEST, "EncodingRequest", """
    int32_t ProtocolVersion = CURRENT_VERSION
    EncodingEnum Encoding
    char[4] ProtocolType = "DTC"
""")
_define(T.ENCODING_RESPONSE, "EncodingResponse", """
    int32_t ProtocolVersion = CURRENT_VERSION
    EncodingEnum Encoding
    char[4] ProtocolType = "DTC"
""")
_define(T.LOGON_REQUEST, "LogonRequest", """
    int32_t ProtocolVersion = CURRENT_VERSION
    char[32] Username
    char[32] Password
    char[64] GeneralTextData
    int32_t Integer_1
    int32_t Integer_2
    int32_t HeartbeatIntervalInSeconds
    int32_t Unused1
    char[32] TradeAccount
    char[64] HardwareIdentifier
    char[32] ClientName
    int32_t MarketDataTransmissionInterval
""")
_define(T.LOGON_RESPONSE, "LogonResponse", """
    int32_t ProtocolVersion = CURRENT_VERSION
    LogonStatusEnum Result
    char[96] ResultText
    char[64] ReconnectAddress
    int32_t Integer_1
    char[60] ServerName
    uint8_t MarketDepthUpdatesBestBidAndAsk
    uint8_t TradingIsSupported
    uint8_t OCOOrdersSupported
    uint8_t OrderCancelReplaceSupported = 1
    char[4] SymbolExchangeDelimiter
    uint8_t SecurityDefinitionsSupported
    uint8_t HistoricalPriceDataSupported
    uint8_t ResubscribeWhenMarketDataFeedAvailable
    uint8_t MarketDepthIsSupported = 1
    uint8_t OneHistoricalPriceDataRequestPerConnection
    uint8_t BracketOrdersSupported
    uint8_t Unused_1
    uint8_t UsesMultiplePositionsPerSymbolAndTradeAccount
    uint8_t MarketDataSupported = 1
""")
_define(T.LOGOFF, "Logoff", """
    char[96] Reason
    uint8_t DoNotReconnect
""")
_define(T.HEARTBEAT, "Heartbeat", """
    uint32_t NumDroppedMessages
    t_DateTime CurrentDateTime
""")
_define(T.MARKET_DATA_FEED_STATUS, "MarketDataFeedStatus", """
    MarketDataFeedStatusEnum Status
""")
_define(T.MARKET_DATA_FEED_SYMBOL_STATUS, "MarketDataFeedSymbolStatus", """
    uint32_t SymbolID
    MarketDataFeedStatusEnum Status
""")
_define(T.TRADING_SYMBOL_STATUS, "TradingSymbolStatus", """
    uint32_t SymbolID
    TradingStatusEnum Status
""")
_define(T.MARKET_DATA_REQUEST, "MarketDataRequest", """
    RequestActionEnum RequestAction = 1
    uint32_t SymbolID
    char[64] Symbol
    char[16] Exchange
    uint32_t IntervalForSnapshotUpdatesInMilliseconds
""")
_define(T.MARKET_DEPTH_REQUEST, "MarketDepthRequest", """
    RequestActionEnum RequestAction = 1
    uint32_t SymbolID
    char[64] Symbol
    char[16] Exchange
    int32_t NumLevels
""")
_define(T.MARKET_DATA_REJECT, "MarketDataReject", """
    uint32_t SymbolID
    char[96] RejectText
""")
_define(T.MARKET_DATA_SNAPSHOT, "MarketDataSnapshot", """
    uint32_t SymbolID
    double SessionSettlementPrice = DBL_MAX
    double SessionOpenPrice = DBL_MAX
    double SessionHighPrice = DBL_MAX
    double SessionLowPrice = DBL_MAX
    double SessionVolume = DBL_MAX
    uint32_t SessionNumTrades = UINT_MAX
    uint32_t OpenInterest = UINT_MAX
    double BidPrice = DBL_MAX
    double AskPrice = DBL_MAX
    double AskQuantity = DBL_MAX
    double BidQuantity = DBL_MAX
    double LastTradePrice = DBL_MAX
    double LastTradeVolume = DBL_MAX
    t_DateTimeWithMilliseconds LastTradeDateTime
    t_DateTimeWithMilliseconds BidAskDateTime
    t_DateTime4Byte SessionSettlementDateTime
    t_DateTime4Byte TradingSessionDate
    TradingStatusEnum TradingStatus
    t_DateTimeWithMilliseconds MarketDepthUpdateDateTime
""")
_define(T.MARKET_DEPTH_SNAPSHOT_LEVEL, "MarketDepthSnapshotLevel", """
    uint32_t SymbolID
    AtBidOrAskEnum Side
    double Price
    double Quantity
    uint16_t Level
    uint8_t IsFirstMessageInBatch
    uint8_t IsLastMessageInBatch
    t_DateTimeWithMilliseconds DateTime
    uint32_t NumOrders
""")
_define(T.MARKET_DEPTH_SNAPSHOT_LEVEL_FLOAT, "MarketDepthSnapshotLevelFloat", """
    uint32_t SymbolID
    float Price
    float Quantity
    uint32_t NumOrders
    uint16_t Level
    AtBidOrAskEnum8 Side
    FinalUpdateInBatchEnum FinalUpdateInBatch
""", pack=1)
_define(T.MARKET_DEPTH_UPDATE_LEVEL, "MarketDepthUpdateLevel", """
    uint32_t SymbolID
    AtBidOrAskEnum Side
    double Price
    double Quantity
    MarketDepthUpdateTypeEnum UpdateType
    t_DateTimeWithMilliseconds DateTime
    uint32_t NumOrders
""")
_define(T.MARKET_DEPTH_UPDATE_LEVEL_FLOAT_WITH_MILLISECONDS, "MarketDepthUpdateLevelFloatWithMilliseconds", """
    uint32_t SymbolID
    t_DateTimeWithMillisecondsInt DateTime
    float Price
    float Quantity
    AtBidOrAskEnum8 Side
    MarketDepthUpdateTypeEnum UpdateType
    uint16_t NumOrders
    FinalUpdateInBatchEnum FinalUpdateInBatch
""", pack=1)
_define(T.MARKET_DEPTH_UPDATE_LEVEL_NO_TIMESTAMP, "MarketDepthUpdateLevelNoTimestamp", """
    uint32_t SymbolID
    float Price
    float Quantity
    uint16_t NumOrders
    int8_t Side
    int8_t UpdateType
    FinalUpdateInBatchEnum FinalUpdateInBatch
""", pack=1)
_define(T.MARKET_DATA_UPDATE_TRADE_NO_TIMESTAMP, "MarketDataUpdateTradeNoTimestamp", """
    uint32_t SymbolID
    float Price
    uint32_t Volume
    AtBidOrAskEnum8 AtBidOrAsk
    UnbundledTradeIndicatorEnum UnbundledTradeIndicator
    TradeConditionEnum TradeCondition
""", pack=1)
_define(T.MARKET_DATA_UPDATE_SESSION_SETTLEMENT, "MarketDataUpdateSessionSettlement", """
    uint32_t SymbolID
    double Price
    t_DateTime4Byte DateTime
""")
_define(T.MARKET_DATA_UPDATE_SESSION_OPEN, "MarketDataUpdateSessionOpen", """
    uint32_t SymbolID
    double Price
    t_DateTime4Byte TradingSessionDate
""")
_define(T.MARKET_DATA_UPDATE_SESSION_NUM_TRADES, "MarketDataUpdateSessionNumTrades", """
    uint32_t SymbolID
    int32_t NumTrades
    t_DateTime4Byte TradingSessionDate
""")
_define(T.MARKET_DATA_UPDATE_TRADING_SESSION_DATE, "MarketDataUpdateTradingSessionDate", """
    uint32_t SymbolID
    t_DateTime4Byte Date
""")
_define(T.MARKET_DEPTH_REJECT, "MarketDepthReject", """
    uint32_t SymbolID
    char[96] RejectText
""")
_define(T.MARKET_DATA_UPDATE_TRADE, "MarketDataUpdateTrade", """
    uint32_t SymbolID
    AtBidOrAskEnum AtBidOrAsk
    double Price
    double Volume
    t_DateTimeWithMilliseconds DateTime
""")
_define(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR, "MarketDataUpdateTradeWithUnbundledIndicator", """
    uint32_t SymbolID
    AtBidOrAskEnum8 AtBidOrAsk
    UnbundledTradeIndicatorEnum UnbundledTradeIndicator
    uint8_t TradeCondition
    uint8_t Reserve_1
    uint32_t Reserve_2
    double Price
    uint32_t Volume
    uint32_t Reserve_3
    t_DateTimeWithMilliseconds DateTime
""")
_define(T.MARKET_DATA_UPDATE_TRADE_WITH_UNBUNDLED_INDICATOR_2, "MarketDataUpdateTradeWithUnbundledIndicator2", """
    uint32_t SymbolID
    float Price
    uint32_t Volume
    t_DateTimeWithMicrosecondsInt DateTime
    AtBidOrAskEnum8 AtBidOrAsk
    UnbundledTradeIndicatorEnum UnbundledTradeIndicator
    TradeConditionEnum TradeCondition
""", pack=1)
_define(T.MARKET_DATA_UPDATE_BID_ASK, "MarketDataUpdateBidAsk", """
    uint32_t SymbolID
    double BidPrice = DBL_MAX
    float BidQuantity
    double AskPrice = DBL_MAX
    float AskQuantity
    t_DateTime4Byte DateTime
""")
_define(T.MARKET_DATA_UPDATE_BID_ASK_COMPACT, "MarketDataUpdateBidAskCompact", """
    float BidPrice = FLT_MAX
    float BidQuantity
    float AskPrice = FLT_MAX
    float AskQuantity
    t_DateTime4Byte DateTime
    uint32_t SymbolID
""")
_define(T.MARKET_DATA_UPDATE_BID_ASK_FLOAT_WITH_MICROSECONDS, "MarketDataUpdateBidAskFloatWithMicroseconds", """
    uint32_t SymbolID
    float BidPrice = FLT_MAX
    float BidQuantity
    float AskPrice = FLT_MAX
    float AskQuantity
    t_DateTimeWithMicrosecondsInt DateTime
""", pack=1)
_define(T.MARKET_DATA_UPDATE_BID_ASK_NO_TIMESTAMP, "MarketDataUpdateBidAskNoTimeStamp", """
    uint32_t SymbolID
    float BidPrice = FLT_MAX
    uint32_t BidQuantity
    float AskPrice = FLT_MAX
    uint32_t AskQuantity
""", pack=1)
_define(T.MARKET_DATA_UPDATE_TRADE_COMPACT, "MarketDataUpdateTradeCompact", """
    float Price
    float Volume
    t_DateTime4Byte DateTime
    uint32_t SymbolID
    AtBidOrAskEnum AtBidOrAsk
""")
_define(T.MARKET_DATA_UPDATE_SESSION_VOLUME, "MarketDataUpdateSessionVolume", """
    uint32_t SymbolID
    double Volume
    t_DateTime4Byte TradingSessionDate
    uint8_t IsFinalSessionVolume
""")
_define(T.MARKET_DATA_UPDATE_OPEN_INTEREST, "MarketDataUpdateOpenInterest", """
    uint32_t SymbolID
    uint32_t OpenInterest
    t_DateTime4Byte TradingSessionDate
""")
_define(T.MARKET_DATA_UPDATE_SESSION_HIGH, "MarketDataUpdateSessionHigh", """
    uint32_t SymbolID
    double Price
    t_DateTime4Byte TradingSessionDate
""")
_define(T.MARKET_DATA_UPDATE_SESSION_LOW, "MarketDataUpdateSessionLow", """
    uint32_t SymbolID
    double Price
    t_DateTime4Byte TradingSessionDate
""")
_define(T.MARKET_DATA_UPDATE_LAST_TRADE_SNAPSHOT, "MarketDataUpdateLastTradeSnapshot", """
    uint32_t SymbolID
    double LastTradePrice
    double LastTradeVolume
    t_DateTimeWithMilliseconds LastTradeDateTime
""")
_define(T.SUBMIT_NEW_SINGLE_ORDER, "SubmitNewSingleOrder", """
    char[64] Symbol
    char[16] Exchange
    char[32] TradeAccount
    char[32] ClientOrderID
    OrderTypeEnum OrderType
    BuySellEnum BuySell
    double Price1
    double Price2
    double Quantity
    TimeInForceEnum TimeInForce
    t_DateTime GoodTillDateTime
    uint8_t IsAutomatedOrder
    uint8_t IsParentOrder
    char[48] FreeFormText
    OpenCloseTradeEnum OpenOrClose
    double MaxShowQuantity
    char[16] Price1AsString
    char[16] Price2AsString
""")
_define(T.SUBMIT_FLATTEN_POSITION_ORDER, "SubmitFlattenPositionOrder", """
    char[64] Symbol
    char[16] Exchange
    char[32] TradeAccount
    char[32] ClientOrderID
    char[48] FreeFormText
    uint8_t IsAutomatedOrder
""")
_define(T.CANCEL_REPLACE_ORDER, "CancelReplaceOrder", """
    char[32] ServerOrderID
    char[32] ClientOrderID
    double Price1
    double Price2
    double Quantity
    uint8_t Price1IsSet = 1
    uint8_t Price2IsSet = 1
    int32_t Unused
    TimeInForceEnum TimeInForce
    t_DateTime GoodTillDateTime
    uint8_t UpdatePrice1OffsetToParent
    char[32] TradeAccount
    char[16] Price1AsString
    char[16] Price2AsString
""")
_define(T.CANCEL_ORDER, "CancelOrder", """
    char[32] ServerOrderID
    char[32] ClientOrderID
    char[32] TradeAccount
""")
_define(T.SUBMIT_NEW_OCO_ORDER, "SubmitNewOCOOrder", """
    char[64] Symbol
    char[16] Exchange
    char[32] ClientOrderID_1
    OrderTypeEnum OrderType_1
    BuySellEnum BuySell_1
    double Price1_1
    double Price2_1
    double Quantity_1
    char[32] ClientOrderID_2
    OrderTypeEnum OrderType_2
    BuySellEnum BuySell_2
    double Price1_2
    double Price2_2
    double Quantity_2
    TimeInForceEnum TimeInForce
    t_DateTime GoodTillDateTime
    char[32] TradeAccount
    uint8_t IsAutomatedOrder
    char[32] ParentTriggerClientOrderID
    char[48] FreeFormText
    OpenCloseTradeEnum OpenOrClose
    PartialFillHandlingEnum PartialFillHandling
    uint8_t UseOffsets
    double OffsetFromParent1
    double OffsetFromParent2
    uint8_t MaintainSamePricesOnParentFill
    char[16] Price1_1AsString
    char[16] Price2_1AsString
    char[16] Price1_2AsString
    char[16] Price2_2AsString
""")
_define(T.OPEN_ORDERS_REQUEST, "OpenOrdersRequest", """
    int32_t RequestID
    int32_t RequestAllOrders = 1
    char[32] ServerOrderID
    char[32] TradeAccount
""")
_define(T.HISTORICAL_ORDER_FILLS_REQUEST, "HistoricalOrderFillsRequest", """
    int32_t RequestID
    char[32] ServerOrderID
    int32_t NumberOfDays
    char[32] TradeAccount
    t_DateTime StartDateTime
""")
_define(T.HISTORICAL_ORDER_FILLS_REJECT, "HistoricalOrderFillsReject", """
    int32_t RequestID
    char[96] RejectText
""")
_define(T.CURRENT_POSITIONS_REQUEST, "CurrentPositionsRequest", """
    int32_t RequestID
    char[32] TradeAccount
""")
_define(T.CURRENT_POSITIONS_REJECT, "CurrentPositionsReject", """
    int32_t RequestID
    char[96] RejectText
""")
_define(T.ORDER_UPDATE, "OrderUpdate", """
    int32_t RequestID
    int32_t TotalNumMessages
    int32_t MessageNumber
    char[64] Symbol
    char[16] Exchange
    char[32] PreviousServerOrderID
    char[32] ServerOrderID
    char[32] ClientOrderID
    char[32] ExchangeOrderID
    OrderStatusEnum OrderStatus
    OrderUpdateReasonEnum OrderUpdateReason
    OrderTypeEnum OrderType
    BuySellEnum BuySell
    double Price1 = DBL_MAX
    double Price2 = DBL_MAX
    TimeInForceEnum TimeInForce
    t_DateTime GoodTillDateTime
    double OrderQuantity = DBL_MAX
    double FilledQuantity = DBL_MAX
    double RemainingQuantity = DBL_MAX
    double AverageFillPrice = DBL_MAX
    double LastFillPrice = DBL_MAX
    t_DateTimeWithMillisecondsInt LastFillDateTime
    double LastFillQuantity = DBL_MAX
    char[64] LastFillExecutionID
    char[32] TradeAccount
    char[96] InfoText
    uint8_t NoOrders
    char[32] ParentServerOrderID
    char[32] OCOLinkedOrderServerOrderID
    OpenCloseTradeEnum OpenOrClose
    char[32] PreviousClientOrderID
    char[48] FreeFormText
    t_DateTimeWithMillisecondsInt OrderReceivedDateTime
    t_DateTimeWithMilliseconds LatestTransactionDateTime
    char[32] Username
""")
_define(T.OPEN_ORDERS_REJECT, "OpenOrdersReject", """
    int32_t RequestID
    char[96] RejectText
""")
_define(T.HISTORICAL_ORDER_FILL_RESPONSE, "HistoricalOrderFillResponse", """
    int32_t RequestID
    int32_t TotalNumberMessages
    int32_t MessageNumber
    char[64] Symbol
    char[16] Exchange
    char[32] ServerOrderID
    BuySellEnum BuySell
    double Price
    t_DateTime DateTime
    double Quantity
    char[64] UniqueExecutionID
    char[32] TradeAccount
    OpenCloseTradeEnum OpenClose
    uint8_t NoOrderFills
    char[96] InfoText
    double HighPriceDuringPosition
    double LowPriceDuringPosition
    double PositionQuantity = DBL_MAX
""")
_define(T.POSITION_UPDATE, "PositionUpdate", """
    int32_t RequestID
    int32_t TotalNumberMessages
    int32_t MessageNumber
    char[64] Symbol
    char[16] Exchange
    double Quantity
    double AveragePrice
    char[32] PositionIdentifier
    char[32] TradeAccount
    uint8_t NoPositions
    uint8_t Unsolicited
    double MarginRequirement
    t_DateTime4Byte EntryDateTime
    double OpenProfitLoss
    double HighPriceDuringPosition
    double LowPriceDuringPosition
    double QuantityLimit
    double MaxPotentialPostionQuantity
""")
_define(T.TRADE_ACCOUNTS_REQUEST, "TradeAccountsRequest", """
    int32_t RequestID
""")
_define(T.TRADE_ACCOUNT_RESPONSE, "TradeAccountResponse", """
    int32_t TotalNumberMessages
    int32_t MessageNumber
    char[32] TradeAccount
    int32_t RequestID
""")
_define(T.SECURITY_DEFINITION_FOR_SYMBOL_REQUEST, "SecurityDefinitionForSymbolRequest", """
    int32_t RequestID
    char[64] Symbol
    char[16] Exchange
""")
_define(T.SECURITY_DEFINITION_RESPONSE, "SecurityDefinitionResponse", """
    int32_t RequestID
    char[64] Symbol
    char[16] Exchange
    SecurityTypeEnum SecurityType
    char[64] Description
    float MinPriceIncrement
    PriceDisplayFormatEnum PriceDisplayFormat = -1
    float CurrencyValuePerIncrement
    uint8_t IsFinalMessage
    float FloatToIntPriceMultiplier = 1.0
    float IntToFloatPriceDivisor = 1.0
    char[32] UnderlyingSymbol
    uint8_t UpdatesBidAskOnly
    float StrikePrice
    PutCallEnum PutOrCall
    uint32_t ShortInterest
    t_DateTime4Byte SecurityExpirationDate
    float BuyRolloverInterest
    float SellRolloverInterest
    float EarningsPerShare
    uint32_t SharesOutstanding
    float IntToFloatQuantityDivisor
    uint8_t HasMarketDepthData = 1
    float DisplayPriceMultiplier = 1.0
    char[64] ExchangeSymbol
    float InitialMarginRequirement
    float MaintenanceMarginRequirement
    char[8] Currency
    float ContractSize
    uint32_t OpenInterest
    t_DateTime4Byte RolloverDate
    uint8_t IsDelayed
    int64_t SecurityIdentifier
    char[64] ProductIdentifier
""")
_define(T.SECURITY_DEFINITION_REJECT, "SecurityDefinitionReject", """
    int32_t RequestID
    char[96] RejectText
""")
_define(T.ACCOUNT_BALANCE_REQUEST, "AccountBalanceRequest", """
    int32_t RequestID
    char[32] TradeAccount
""")
_define(T.ACCOUNT_BALANCE_REJECT, "AccountBalanceReject", """
    int32_t RequestID
    char[96] RejectText
""")
_define(T.ACCOUNT_BALANCE_UPDATE, "AccountBalanceUpdate", """
    int32_t RequestID
    double CashBalance
    double BalanceAvailableForNewPositions
    char[8] AccountCurrency
    char[32] TradeAccount
    double SecuritiesValue
    double MarginRequirement
    int32_t TotalNumberMessages
    int32_t MessageNumber
    uint8_t NoAccountBalances
    uint8_t Unsolicited
    double OpenPositionsProfitLoss
    double DailyProfitLoss
    char[96] InfoText
    uint64_t TransactionIdentifier
    double DailyNetLossLimit
    double TrailingAccountValueToLimitPositions
    uint8_t DailyNetLossLimitReached
    uint8_t IsUnderRequiredMargin
    uint8_t ClosePositionsAtEndOfDay
    uint8_t TradingIsDisabled
    char[96] Description
    uint8_t IsUnderRequiredAccountValue
    t_DateTimeWithMicrosecondsInt TransactionDateTime
    double MarginRequirementFull
    double MarginRequirementFullPositionsOnly
    double PeakMarginRequirement
""")
_define(T.USER_MESSAGE, "UserMessage", """
    char[256] UserMessage
    uint8_t IsPopupMessage = 1
""")
_define(T.GENERAL_LOG_MESSAGE, "GeneralLogMessage", """
    char[128] MessageText
""")
_define(T.ALERT_MESSAGE, "AlertMessage", """
    char[128] MessageText
    char[32] TradeAccount
""")
_define(T.HISTORICAL_PRICE_DATA_REQUEST, "HistoricalPriceDataRequest", """
    int32_t RequestID
    char[64] Symbol
    char[16] Exchange
    HistoricalDataIntervalEnum RecordInterval
    t_DateTime StartDateTime
    t_DateTime EndDateTime
    uint32_t MaxDaysToReturn
    uint8_t UseZLibCompression
    uint8_t RequestDividendAdjustedStockData
    uint16_t Integer_1
""")
_define(T.HISTORICAL_PRICE_DATA_RESPONSE_HEADER, "HistoricalPriceDataResponseHeader", """
    int32_t RequestID
    HistoricalDataIntervalEnum RecordInterval
    uint8_t UseZLibCompression
    uint8_t NoRecordsToReturn
    float IntToFloatPriceDivisor
""")
_define(T.HISTORICAL_PRICE_DATA_REJECT, "HistoricalPriceDataReject", """
    int32_t RequestID
    char[96] RejectText
    HistoricalPriceDataRejectReasonCodeEnum RejectReasonCode
    uint16_t RetryTimeInSeconds
""")
# 803: OpenInterest and NumTrades share one uint32 (anonymous union); this table names it NumTrades.
_define(T.HISTORICAL_PRICE_DATA_RECORD_RESPONSE, "HistoricalPriceDataRecordResponse", """
    int32_t RequestID
    t_DateTimeWithMicrosecondsInt StartDateTime
    double OpenPrice
    double HighPrice
    double LowPrice
    double LastPrice
    double Volume
    uint32_t NumTrades
    double BidVolume
    double AskVolume
    uint8_t IsFinalRecord
""")
_define(T.HISTORICAL_PRICE_DATA_TICK_RECORD_RESPONSE, "HistoricalPriceDataTickRecordResponse", """
    int32_t RequestID
    t_DateTimeWithMilliseconds DateTime
    AtBidOrAskEnum AtBidOrAsk
    double Price
    double Volume
    uint8_t IsFinalRecord
""")
_define(T.HISTORICAL_PRICE_DATA_RESPONSE_TRAILER, "HistoricalPriceDataResponseTrailer", """
    int32_t RequestID
    t_DateTimeWithMicrosecondsInt FinalRecordLastDateTime
""")

del T

# names for static analysis / IDEs (the classes are created by _define above)
EncodingRequest: type[Message]
EncodingResponse: type[Message]
LogonRequest: type[Message]
LogonResponse: type[Message]
Logoff: type[Message]
Heartbeat: type[Message]
MarketDataFeedStatus: type[Message]
MarketDataRequest: type[Message]
MarketDepthRequest: type[Message]
MarketDataReject: type[Message]
MarketDataSnapshot: type[Message]
MarketDepthSnapshotLevel: type[Message]
MarketDepthSnapshotLevelFloat: type[Message]
MarketDepthUpdateLevel: type[Message]
MarketDepthUpdateLevelFloatWithMilliseconds: type[Message]
MarketDepthUpdateLevelNoTimestamp: type[Message]
MarketDepthReject: type[Message]
MarketDataUpdateTrade: type[Message]
MarketDataUpdateTradeCompact: type[Message]
MarketDataUpdateTradeWithUnbundledIndicator: type[Message]
MarketDataUpdateTradeWithUnbundledIndicator2: type[Message]
MarketDataUpdateBidAsk: type[Message]
MarketDataUpdateBidAskCompact: type[Message]
MarketDataUpdateBidAskFloatWithMicroseconds: type[Message]
SubmitNewSingleOrder: type[Message]
SubmitNewOCOOrder: type[Message]
CancelOrder: type[Message]
CancelReplaceOrder: type[Message]
OpenOrdersRequest: type[Message]
OrderUpdate: type[Message]
CurrentPositionsRequest: type[Message]
PositionUpdate: type[Message]
TradeAccountsRequest: type[Message]
TradeAccountResponse: type[Message]
SecurityDefinitionForSymbolRequest: type[Message]
SecurityDefinitionResponse: type[Message]
SecurityDefinitionReject: type[Message]
AccountBalanceRequest: type[Message]
AccountBalanceUpdate: type[Message]
AccountBalanceReject: type[Message]
HistoricalPriceDataRequest: type[Message]
HistoricalPriceDataResponseHeader: type[Message]
HistoricalPriceDataReject: type[Message]
HistoricalPriceDataRecordResponse: type[Message]
HistoricalPriceDataTickRecordResponse: type[Message]
HistoricalPriceDataResponseTrailer: type[Message]


def message_class(type_: int) -> type[Message] | None:
    """The class of message type ``type_``, or None when this build does not know it."""
    return MESSAGE_CLASSES.get(int(type_))
