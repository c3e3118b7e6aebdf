"""Databento DBN market-by-order (MBO) reader: CME ES orders -> price-level depth events + trades.

A DBN MBO file carries one record per order event (L3). MIA Elite's model and the DTC wire use
price levels (L2, DTC ``MARKET_DEPTH_UPDATE_LEVEL`` inserts/updates/deletes a level **by price**),
so this reader keeps the individual resting orders, aggregates them per price level and emits one
depth event each time a level's total changes:

* ``OP_SET`` with the level's new total size (contracts) and order count, or
* ``OP_DELETE`` when the last order at that price leaves.

Rules, with their sources
-------------------------
* Record layout and meaning of ``action`` / ``side`` / ``flags``: Databento MBO schema
  (https://databento.com/docs/schemas/mbo) and the ``databento-dbn`` package that decodes it.
  The file's metadata (dataset, symbol mappings) is read with ``databento_dbn.DBNDecoder``; the
  fixed 56-byte MBO records are then read in place, as 64-bit words by the numba kernel
  :func:`app.feeds.dbn_kernels.mbo_events_nb` (decode and book in one pass, no Python object
  per record) or as a numpy structured array (:data:`MBO_DTYPE`, :func:`mbo_records`); the test
  suite cross-checks every field against ``databento_dbn``'s own record objects and the kernel
  against its Python twin :mod:`app.feeds.dbn_kernels_ref`, event for event.
* Book building (Databento "Order tracking" example, https://databento.com/docs/examples/
  order-book/order-tracking): ``A`` add inserts an order; ``C`` cancel removes ``size`` from the
  order (fully or partially); ``M`` modify changes an order's price and/or size; ``R`` clears the
  book; ``T`` trade, ``F`` fill and ``N`` none **do not change the book** ("all fills will be
  accompanied by cancel actions that do update the book"). A modify of an order that is not in the
  book is treated as an add; a cancel of an unknown order is counted and skipped.
* Trades: the ``side`` of a ``T`` record is the side that **initiated** the trade: "Ask for a sell
  aggressor in a trade, Bid for a buy aggressor in a trade, or None" (Databento trades schema,
  https://databento.com/docs/schemas/trades). MIA Elite's trade ``side`` is the side traded
  against (:mod:`app.core.events`), so DBN ``'B'`` (buyer aggressor) becomes ``SIDE_ASK`` (the
  ask was lifted), ``'A'`` (seller aggressor) becomes ``SIDE_BID`` and ``'N'`` becomes
  ``SIDE_UNSET`` (for example the opening auction's uncross). ``F`` records carry the side of the
  *resting* order instead (checked on the ES file: ``T`` ``B`` is followed by ``F`` ``A``).
* Batches: Databento sets ``F_LAST`` (0x80) on the last record of one exchange event; the book is
  only consistent after it. The depth event emitted last before such a record gets
  ``FLAG_BATCH_END``.
* Snapshot: records flagged ``F_SNAPSHOT`` (0x20) at the start of the file are a book snapshot.
  They are applied silently, then the resulting book is emitted at once as ``OP_CLEAR`` (side 0)
  followed by one ``OP_SET`` per level, all flagged ``FLAG_SNAPSHOT``; the last carries
  ``FLAG_BATCH_END``.
* CME's pre-open book may be crossed (indicative auction prices); in the ES sample it crosses
  between 22:39 and 23:00 UTC and is uncrossed at every batch end from the opening trade on.
* Time: ``ts_recv`` (Databento's capture time, ns UTC; the order in which the file is written).
  It is made non-decreasing (running maximum) so replay never goes backwards; the snapshot is
  stamped with the ``ts_recv`` of its last record.
* Prices: DBN prices are int64 in units of 1e-9; ticks = ``price / (tick_size * 1e9)``, rounded
  (a price off the tick grid is counted in ``stats['off_grid_prices']``).

ES defaults: tick size 0.25 index points, tick value 12.50 USD (CME E-mini S&P 500 contract
specification: 50 USD x index, minimum fluctuation 0.25 = 12.50 USD).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from app.core.events import Instrument
from app.feeds.dbn_kernels import (
    C_MODIFY_AS_ADD,
    C_NO_PRICE_TRADES,
    C_OFF_GRID,
    C_RECORDS,
    C_RESTING,
    C_UNKNOWN_CANCEL,
    WORDS_PER_RECORD,
    mbo_events_nb,
)
from app.feeds.recording import Recording

log = logging.getLogger(__name__)

#: DBN record flags (Databento "Flags" convention).
F_LAST = 0x80
F_TOB = 0x40
F_SNAPSHOT = 0x20
F_MBP = 0x10
F_BAD_TS_RECV = 0x08
F_MAYBE_BAD_BOOK = 0x04

#: DBN ``rtype`` of an MBO record.
RTYPE_MBO = 0xA0
#: DBN's "no price" sentinel.
UNDEF_PRICE = np.iinfo(np.int64).max

#: Fixed layout of one DBN MBO record (56 bytes, little endian; identical in DBN v1, v2 and v3).
MBO_DTYPE = np.dtype(
    [
        ("length", "u1"),  # record length in 4-byte words (14)
        ("rtype", "u1"),  # 0xA0
        ("publisher_id", "<u2"),
        ("instrument_id", "<u4"),
        ("ts_event", "<u8"),
        ("order_id", "<u8"),
        ("price", "<i8"),  # 1e-9 units
        ("size", "<u4"),
        ("flags", "u1"),
        ("channel_id", "u1"),
        ("action", "S1"),
        ("side", "S1"),
        ("ts_recv", "<u8"),
        ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)
assert MBO_DTYPE.itemsize == 56

ES_TICK_SIZE = 0.25
ES_TICK_VALUE = 12.50


class DBNError(ValueError):
    """The file is not a DBN MBO file this reader can use (message names the problem)."""


def _read_bytes(path: Path) -> bytes:
    """The file's DBN bytes; a ``.zst`` file is decompressed frame by frame.

    Raises
    ------
    DBNError
        A ``.zst`` file that is not zstd (gzip, random bytes), or whose last frame is cut short
        (a partial download): the message names the file and how far it decompressed.
    """
    raw = path.read_bytes()
    if path.suffix != ".zst":
        return raw
    import zstandard

    if raw[:2] == b"\x1f\x8b":
        raise DBNError(f"{path}: gzip-compressed, not zstd (a .dbn.zst file is zstd)")
    parts, rest, frames = [], raw, 0
    while rest:
        dec = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(dec.decompress(rest))
        except zstandard.ZstdError as exc:
            where = "not a zstd-compressed file" if not frames else f"corrupt zstd data after frame {frames}"
            raise DBNError(f"{path}: {where} ({exc})") from None
        if not dec.eof:
            raise DBNError(f"{path}: truncated: the file ends inside zstd frame {frames + 1} "
                           f"({sum(map(len, parts)):,} bytes decompressed); download it again")
        frames += 1
        rest = dec.unused_data
    if not frames:
        raise DBNError(f"{path}: empty file")
    return b"".join(parts)


def _metadata(data: bytes, name: str):
    """Decode the DBN metadata with ``databento_dbn``; return (metadata, offset of first record)."""
    import databento_dbn

    if len(data) < 8 or data[:3] != b"DBN":
        raise DBNError(f"{name}: not a DBN stream (no 'DBN' magic)")
    meta_len = int.from_bytes(data[4:8], "little")
    start = 8 + meta_len
    if len(data) < start:
        raise DBNError(f"{name}: truncated DBN metadata ({len(data)} < {start} bytes)")
    dec = databento_dbn.DBNDecoder()
    dec.write(data[:start])
    try:
        first = dec.decode()
    except Exception as exc:  # the package raises its own error types
        raise DBNError(f"{name}: bad DBN metadata: {exc}") from exc
    meta = first[0] if first else None
    return meta, start


def _mbo_words(path: Path) -> tuple[object, np.ndarray]:
    """The file's metadata and its records as 64-bit words (layout: :mod:`app.feeds.dbn_kernels`).

    The words are a fresh, 8-byte aligned array (one copy of the decompressed body), so the
    kernels read them in place. Raises as :func:`mbo_records`.
    """
    data = _read_bytes(path)
    meta, start = _metadata(data, str(path))
    schema = str(getattr(meta, "schema", ""))
    if "mbo" not in schema.lower():
        raise DBNError(f"{path}: DBN schema is {schema!r}, expected MBO")
    size = MBO_DTYPE.itemsize
    body = len(data) - start
    n = body // size
    rest = body - n * size
    words = np.frombuffer(data, dtype="<u8", count=n * WORDS_PER_RECORD, offset=start).copy()
    head = words[::WORDS_PER_RECORD] & np.uint64(0xFFFF)  # length (words of 4 bytes), rtype
    bad = head != np.uint64((RTYPE_MBO << 8) | (size // 4))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        h = int(head[i])
        raise DBNError(
            f"{path}: record {i} is not an MBO record (rtype={h >> 8:#x}, "
            f"length={(h & 0xFF) * 4} bytes); mixed-schema files are not supported"
        )
    if rest:
        raise DBNError(f"{path}: truncated: the file ends inside record {n + 1} ({rest} of "
                       f"{size} bytes; {n:,} whole records before it)")
    if n == 0:
        raise DBNError(f"{path}: holds no MBO records (only the metadata)")
    return meta, words


def mbo_records(path: str | os.PathLike) -> tuple[object, np.ndarray]:
    """Read a DBN MBO file (optionally ``.zst``) into a structured array.

    Parameters
    ----------
    path : path-like
        ``*.mbo.dbn`` or ``*.mbo.dbn.zst``.

    Returns
    -------
    metadata : databento_dbn.Metadata
        The file's metadata (dataset, schema, symbol mappings).
    records : numpy.ndarray, shape (n,), dtype :data:`MBO_DTYPE`
        Every record, in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DBNError
        If the file is not DBN (or not zstd for ``.zst``), is truncated (inside a zstd frame or
        a record), holds no record, its schema is not MBO, or it holds records other than MBO.
    """
    meta, words = _mbo_words(Path(path))
    return meta, words.view(MBO_DTYPE)


def _symbol_for(meta, instrument_id: int) -> str:
    for m in getattr(meta, "mappings", None) or []:
        raw = getattr(m, "raw_symbol", None)
        for iv in getattr(m, "intervals", None) or []:
            if str(getattr(iv, "symbol", "")) == str(instrument_id) and raw:
                return str(raw)
    syms = list(getattr(meta, "symbols", None) or [])
    return str(syms[0]) if len(syms) == 1 else str(instrument_id)


def _events_and_stats(words: np.ndarray, instrument_id: int, tick_size: float, use_numba: bool,
                      st: dict) -> np.ndarray:
    if use_numba:
        run = mbo_events_nb
    else:  # the twin is loaded only when asked for (production paths run the kernel)
        from app.feeds.dbn_kernels_ref import mbo_events_py as run
    events, cnt = run(words, int(instrument_id), float(tick_size) * 1e9)
    w4 = words[4::WORDS_PER_RECORD]
    act = (w4 >> np.uint64(48)) & np.uint64(0xFF)
    if instrument_id >= 0:
        act = act[(words[::WORDS_PER_RECORD] >> np.uint64(32)) == np.uint64(instrument_id)]
    counts = np.bincount(act.astype(np.intp), minlength=256)
    st.update(
        records=int(cnt[C_RECORDS]),
        events=len(events),
        unknown_cancel=int(cnt[C_UNKNOWN_CANCEL]),
        modify_as_add=int(cnt[C_MODIFY_AS_ADD]),
        no_price_trades=int(cnt[C_NO_PRICE_TRADES]),
        off_grid_prices=int(cnt[C_OFF_GRID]),
        actions={chr(a): int(counts[a]) for a in np.flatnonzero(counts)},
        resting_orders_at_end=int(cnt[C_RESTING]),
    )
    return events


def mbo_to_events(
    recs: np.ndarray, tick_size: float = ES_TICK_SIZE, stats: dict | None = None, *,
    use_numba: bool = True,
) -> np.ndarray:
    """Turn MBO records of ONE instrument into price-level depth events and trades.

    Parameters
    ----------
    recs : numpy.ndarray, dtype :data:`MBO_DTYPE`
        Records of a single instrument, in file order.
    tick_size : float
        Price units per tick (ES: 0.25).
    stats : dict, optional
        Filled with counters (``records``, ``unknown_cancel``, ``modify_as_add``,
        ``off_grid_prices``, ``no_price_trades``, ``actions`` ...).
    use_numba : bool
        True (default): the numba kernel :func:`app.feeds.dbn_kernels.mbo_events_nb`; False:
        its Python twin :func:`app.feeds.dbn_kernels_ref.mbo_events_py` (same results).

    Returns
    -------
    numpy.ndarray, dtype :data:`app.core.events.EVENT_DTYPE`
        Depth (``KIND_DEPTH``) and trade (``KIND_TRADE``) events in record order; see the module
        docstring for the rules.

    Raises
    ------
    TypeError
        If ``recs`` is not an :data:`MBO_DTYPE` array.
    """
    if not isinstance(recs, np.ndarray) or recs.dtype != MBO_DTYPE:
        raise TypeError(f"mbo_to_events: recs must be an MBO_DTYPE array, got {getattr(recs, 'dtype', type(recs))}")
    words = np.ascontiguousarray(recs).view(np.uint64)
    return _events_and_stats(words, -1, tick_size, use_numba, stats if stats is not None else {})


def read_dbn_mbo(
    path: str | os.PathLike,
    instrument_id: int | None = None,
    tick_size: float = ES_TICK_SIZE,
    tick_value: float = ES_TICK_VALUE,
    symbol: str | None = None,
    *,
    use_numba: bool = True,
) -> Recording:
    """Read a Databento DBN MBO file into a :class:`~app.feeds.recording.Recording`.

    Parameters
    ----------
    path : path-like
        ``*.mbo.dbn`` or ``*.mbo.dbn.zst``.
    instrument_id : int, optional
        Databento instrument id to keep. Default: the file's only instrument.
    tick_size : float
        Price units per tick (default ES 0.25).
    tick_value : float
        USD per tick per contract (default ES 12.50).
    symbol : str, optional
        Symbol to record; default the raw symbol from the file's mappings (``ESH4``).
    use_numba : bool
        True (default): decode and rebuild the levels in the numba kernel
        (:mod:`app.feeds.dbn_kernels`), straight from the decompressed bytes; False: the Python
        twin (:mod:`app.feeds.dbn_kernels_ref`); the results are the same.

    Returns
    -------
    Recording
        ``events``: depth and trade events (:data:`EVENT_DTYPE`) per the module docstring;
        ``extra["dbn"]``: the conversion counters and the DBN dataset/instrument id.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DBNError
        If the file is not a DBN MBO file, holds several instruments and ``instrument_id`` is
        not given, or ``instrument_id`` is not in it.
    """
    path = Path(path)
    meta, words = _mbo_words(path)
    inst = words[::WORDS_PER_RECORD] >> np.uint64(32)
    ids = inst[:1] if (inst == inst[0]).all() else np.unique(inst)
    if instrument_id is None:
        if len(ids) != 1:
            raise DBNError(
                f"{path}: holds instruments {ids.tolist()}; pass instrument_id to choose one"
            )
        instrument_id = int(ids[0])
    elif instrument_id not in ids.tolist():
        raise DBNError(f"{path}: instrument_id {instrument_id} not in file (has {ids.tolist()})")
    stats: dict = {}
    keep = -1 if len(ids) == 1 else int(instrument_id)
    events = _events_and_stats(words, keep, tick_size, use_numba, stats)
    sym = symbol or _symbol_for(meta, instrument_id)
    dataset = str(getattr(meta, "dataset", ""))
    inst = Instrument(
        symbol=sym,
        tick_size=tick_size,
        tick_value=tick_value,
        exchange="CME",
        description=f"{sym} ({dataset} instrument {instrument_id}, Databento MBO)",
        price_decimals=2,
    )
    stats.update(dataset=dataset, instrument_id=int(instrument_id), file=path.name)
    return Recording(
        instrument=inst,
        events=events,
        source=f"Databento {dataset} MBO {path.name} (price levels rebuilt from orders)",
        extra={"dbn": stats},
    )
