"""Market event types shared by every source, the recorder, the replay server and the engine.

All market events travel as numpy structured arrays of one dtype, :data:`EVENT_DTYPE`
(never one Python object per event). A batch is a 1-D array of it, in arrival order.

Units and conventions (the design card, section 3):

* ``ts``: int64 nanoseconds since the UNIX epoch, UTC. Each source converts its own unit.
* ``price``: int64 **ticks** (``round(price / tick_size)``); conversion to float happens only at
  the edges (codecs, display) with :class:`Instrument`.
* ``size``: float64 contracts (crypto sizes are fractional; futures sizes are whole numbers).
* ``side``: DTC's ``AtBidOrAskEnum`` numbering for every kind: ``SIDE_BID = 1``,
  ``SIDE_ASK = 2``, ``0`` unset. For a **depth** event it is the book side. For a **trade** it is
  the side of the book that was traded against: ``SIDE_BID`` = the bid was hit = the aggressor
  sold; ``SIDE_ASK`` = the ask was lifted = the aggressor bought (DTC doc "AtBidOrAskEnum").
* ``op`` (depth only): ``OP_SET`` inserts or updates the level at ``price`` with ``size`` (DTC
  ``MARKET_DEPTH_INSERT_UPDATE_LEVEL = 1``), ``OP_DELETE`` removes it (DTC
  ``MARKET_DEPTH_DELETE_LEVEL = 2``), ``OP_CLEAR`` empties the side given by ``side`` or the whole
  book when ``side == 0`` (a snapshot follows). Levels are addressed **by price**, never by index.
* ``flags``: bit field. ``FLAG_BATCH_END`` marks the last event of an atomic depth batch (DTC
  ``FinalUpdateInBatch = FINAL_UPDATE_IN_BATCH``; Sierra ``.depth`` end-of-batch flag): the book is
  consistent (uncrossed) after it. ``FLAG_SNAPSHOT`` marks events of an initial book snapshot.
* ``num_orders``: orders at the level where the source knows it, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: One market event, 40 bytes, aligned. See the module docstring for units.
EVENT_DTYPE = np.dtype(
    [
        ("ts", "<i8"),  # ns since epoch, UTC
        ("price", "<i8"),  # ticks
        ("size", "<f8"),  # contracts
        ("num_orders", "<u4"),
        ("kind", "u1"),  # KIND_*
        ("side", "u1"),  # SIDE_*
        ("op", "u1"),  # OP_* (depth)
        ("flags", "u1"),  # FLAG_*
        ("symbol_id", "<u4"),  # source-local id; 0 when a batch carries one symbol
        ("_pad", "<u4"),
    ],
    align=True,
)
assert EVENT_DTYPE.itemsize == 40

KIND_DEPTH = 1
KIND_TRADE = 2
KIND_QUOTE = 3  # best bid/ask only (price = bid or ask tick by side, size); sources without depth

SIDE_UNSET = 0
SIDE_BID = 1
SIDE_ASK = 2

OP_NONE = 0
OP_SET = 1
OP_DELETE = 2
OP_CLEAR = 3

FLAG_BATCH_END = 1
FLAG_SNAPSHOT = 2


def empty(n: int = 0) -> np.ndarray:
    """Return a zeroed event array of length ``n`` (dtype :data:`EVENT_DTYPE`)."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def depth_events(ts, price, size, side, op, flags=0, num_orders=0) -> np.ndarray:
    """Build a depth-event array from equal-length columns (or scalars broadcast to them).

    Parameters
    ----------
    ts : array_like of int64, ns since epoch UTC
    price : array_like of int64, ticks
    size : array_like of float64, contracts
    side, op, flags : array_like of uint8 (``SIDE_*``, ``OP_*``, ``FLAG_*``)
    num_orders : array_like of uint32
    """
    ts = np.asarray(ts, dtype=np.int64)
    out = empty(ts.shape[0])
    out["ts"] = ts
    out["price"] = price
    out["size"] = size
    out["side"] = side
    out["op"] = op
    out["flags"] = flags
    out["num_orders"] = num_orders
    out["kind"] = KIND_DEPTH
    return out


def trade_events(ts, price, size, side) -> np.ndarray:
    """Build a trade-event array. ``side`` is the side traded against (SIDE_ASK = buyer aggressor)."""
    ts = np.asarray(ts, dtype=np.int64)
    out = empty(ts.shape[0])
    out["ts"] = ts
    out["price"] = price
    out["size"] = size
    out["side"] = side
    out["kind"] = KIND_TRADE
    return out


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the model needs to know about a symbol.

    Attributes
    ----------
    symbol : str
        Opaque symbol string of the data service (``ESH4``, ``ESZ25_FUT_CME``); never parsed.
    tick_size : float
        Minimum price increment in price units (ES: 0.25).
    tick_value : float
        USD per tick per contract (ES: 12.50).
    exchange : str
        Exchange string as the source gives it (may be empty).
    description : str
        Human-readable description.
    price_decimals : int
        Decimals to display (DTC ``PriceDisplayFormat`` 0..9).
    """

    symbol: str
    tick_size: float
    tick_value: float
    exchange: str = ""
    description: str = ""
    price_decimals: int = 2

    def to_ticks(self, price):
        """Price (float or float array) to int64 ticks, rounded to the nearest tick.

        Parameters
        ----------
        price : float or array_like of float64, shape (n,)
            Price units (ES: index points).

        Returns
        -------
        numpy.int64 or numpy.ndarray of int64, shape (n,)
            ``rint(price / tick_size)``.

        Raises
        ------
        ValueError
            If a price is not finite (NaN, +-inf) or its tick count does not fit int64
            (``|price / tick_size| >= 2**63``); the message names the first such price. Casting
            such a value with ``astype(int64)`` would wrap silently (3e18 at tick 0.25 became
            -2.3e18 ticks), so no conversion happens.
        """
        q = np.rint(np.asarray(price, dtype=np.float64) / self.tick_size)
        ok = np.abs(q) < 2.0**63  # fits int64; False for NaN and +-inf too
        if not np.all(ok):
            bad = float(np.asarray(price, dtype=np.float64).reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]])
            what = "is not finite" if not np.isfinite(bad) else "is out of range (ticks overflow int64)"
            raise ValueError(f"{self.symbol}: price {bad!r} {what}")
        return q.astype(np.int64)

    def to_price(self, ticks):
        """Ticks (int or int array) to float price."""
        return np.asarray(ticks, dtype=np.float64) * self.tick_size

    def to_dict(self) -> dict:
        """Plain dict for JSON metadata."""
        return {
            "symbol": self.symbol,
            "tick_size": self.tick_size,
            "tick_value": self.tick_value,
            "exchange": self.exchange,
            "description": self.description,
            "price_decimals": self.price_decimals,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Instrument":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        return cls(
            symbol=str(d["symbol"]),
            tick_size=float(d["tick_size"]),
            tick_value=float(d.get("tick_value", 0.0)),
            exchange=str(d.get("exchange", "")),
            description=str(d.get("description", "")),
            price_decimals=int(d.get("price_decimals", 2)),
        )


#: Default piece size of :func:`chunks` (events).
CHUNK_EVENTS = 8192


def chunks(events: np.ndarray, size: int = CHUNK_EVENTS, whole_segments: bool = False):
    """Cut ``events`` into consecutive pieces of about ``size`` events, each ending at a batch end
    (``FLAG_BATCH_END``) when there is one in reach, so the book is consistent at every cut.

    ``events`` is an :data:`EVENT_DTYPE` array of shape (N,); yields views of it (no copies), in
    order, that together cover every event once. With no batch end in reach a piece is cut at
    ``size`` events, or with ``whole_segments`` runs on to the next batch end (the live engine's
    frames between pieces never show a 1,452-level book snapshot half applied).
    """
    n = len(events)
    ends = np.flatnonzero(events["flags"] & FLAG_BATCH_END) + 1
    i = 0
    while i < n:
        want = min(i + size, n)
        k = np.searchsorted(ends, want, side="right") - 1
        if k >= 0 and ends[k] > i:
            j = int(ends[k])
        elif whole_segments:
            k = np.searchsorted(ends, i, side="right")
            j = int(ends[k]) if k < len(ends) else n
        else:
            j = want
        yield events[i:j]
        i = j
