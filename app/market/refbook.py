"""ReferenceBook: a plain dict-based price-level book, the yardstick other books are compared to.

Deliberately simple (two dicts, no numba, no tick grid) so it is obviously right: tests of the
market model, the DTC client and the replay server rebuild a book with it and compare level by
level. It applies :data:`app.core.events.EVENT_DTYPE` depth events by the rules of
:mod:`app.core.events`: ``OP_SET`` inserts or replaces the level at ``price``, ``OP_DELETE``
removes it, ``OP_CLEAR`` empties one side (``side`` 1/2) or the whole book (``side`` 0).
Trade and quote events are ignored.
"""

from __future__ import annotations

import numpy as np

from app.core.events import KIND_DEPTH, OP_CLEAR, OP_DELETE, OP_SET, SIDE_ASK, SIDE_BID, depth_events


class ReferenceBook:
    """Price-level book keyed by tick.

    Attributes
    ----------
    events_applied : int
        Depth events applied so far.
    unknown_ops : int
        Depth events with an op other than SET/DELETE/CLEAR (skipped).
    """

    def __init__(self) -> None:
        self._bids: dict[int, float] = {}
        self._asks: dict[int, float] = {}
        self._bid_orders: dict[int, int] = {}
        self._ask_orders: dict[int, int] = {}
        self.events_applied = 0
        self.unknown_ops = 0

    def _side(self, side: int):
        if side == SIDE_BID:
            return self._bids, self._bid_orders
        if side == SIDE_ASK:
            return self._asks, self._ask_orders
        raise ValueError(f"side must be 1 (bid) or 2 (ask), got {side}")

    def clear(self, side: int = 0) -> None:
        """Empty one side (1 bid, 2 ask) or both (0)."""
        if side in (0, SIDE_BID):
            self._bids.clear()
            self._bid_orders.clear()
        if side in (0, SIDE_ASK):
            self._asks.clear()
            self._ask_orders.clear()

    def set_level(self, side: int, tick: int, size: float, num_orders: int = 0) -> None:
        """Insert or replace one level (``size`` contracts at ``tick``); size <= 0 deletes it."""
        sizes, orders = self._side(side)
        if size <= 0:
            sizes.pop(tick, None)
            orders.pop(tick, None)
        else:
            sizes[tick] = float(size)
            orders[tick] = int(num_orders)

    def delete_level(self, side: int, tick: int) -> None:
        """Remove the level at ``tick`` (no error when absent)."""
        sizes, orders = self._side(side)
        sizes.pop(tick, None)
        orders.pop(tick, None)

    def apply(self, events: np.ndarray) -> None:
        """Apply a batch of events (array of ``EVENT_DTYPE``); non-depth events are ignored.

        Equivalent to :meth:`apply_sequential` (the one-event-at-a-time twin the tests compare
        it with): within a stretch without ``OP_CLEAR`` only the LAST event of each
        (side, price) decides that level's final state, so those are found with numpy and
        applied as dict updates.
        """
        ev = events[events["kind"] == KIND_DEPTH] if len(events) else events
        if not len(ev):
            return
        ops = ev["op"]
        clears = np.flatnonzero(ops == OP_CLEAR)
        if len(clears):
            start = 0
            for ci in clears.tolist():
                if ci > start:
                    self._apply_stretch(ev[start:ci])
                sd = int(ev["side"][ci])
                self.clear(sd if sd in (SIDE_BID, SIDE_ASK) else 0)
                start = ci + 1
            if start < len(ev):
                self._apply_stretch(ev[start:])
        else:
            self._apply_stretch(ev)
        self.events_applied += len(ev)

    def _apply_stretch(self, ev: np.ndarray) -> None:
        ops = ev["op"]
        side = ev["side"]
        good = ((ops == OP_SET) | (ops == OP_DELETE)) & ((side == SIDE_BID) | (side == SIDE_ASK))
        bad = len(ev) - int(np.count_nonzero(good))
        if bad:
            self.unknown_ops += bad
            ev = ev[good]
            if not len(ev):
                return
        key = ev["price"] * 4 + ev["side"]
        n = len(key)
        _u, first_in_rev = np.unique(key[::-1], return_index=True)
        last = ev[n - 1 - first_in_rev]
        lops, lside = last["op"], last["side"]
        for sd, sizes, orders in ((SIDE_BID, self._bids, self._bid_orders), (SIDE_ASK, self._asks, self._ask_orders)):
            m = lside == sd
            sets = last[m & (lops == OP_SET)]
            if len(sets):
                p = sets["price"].tolist()
                sizes.update(zip(p, sets["size"].tolist()))
                orders.update(zip(p, sets["num_orders"].tolist()))
            dels = last[m & (lops == OP_DELETE)]
            for p in dels["price"].tolist():
                sizes.pop(p, None)
                orders.pop(p, None)

    #: Batch length (events) from which :meth:`apply` (one numpy pass) is the faster of the two:
    #: measured on the real BTCUSDT capture, 250 ns/event for the loop and 390 for the numpy pass
    #: at 1,024 events, 350 and 290 at 4,096, 385 and 124 at 32,768 (a one-off timing script,
    #: the bench gui figures in README show the effect on the window).
    VECTOR_MIN_EVENTS = 2048

    def apply_batch(self, events: np.ndarray) -> None:
        """Apply ``events`` (1-D ``EVENT_DTYPE``) with whichever of :meth:`apply_sequential`
        (short exchange batches) and :meth:`apply` (long backlogs, from
        :data:`VECTOR_MIN_EVENTS`) is faster for its length; both give the same book."""
        if len(events) >= self.VECTOR_MIN_EVENTS:
            self.apply(events)
        else:
            self.apply_sequential(events)

    def apply_sequential(self, events: np.ndarray) -> None:
        """Apply events one at a time, in order (the plain reference of :meth:`apply`)."""
        ev = events[events["kind"] == KIND_DEPTH] if len(events) else events
        if not len(ev):
            return
        ops = ev["op"].tolist()
        sides = ev["side"].tolist()
        prices = ev["price"].tolist()
        sizes = ev["size"].tolist()
        norders = ev["num_orders"].tolist()
        bids, asks, bo, ao = self._bids, self._asks, self._bid_orders, self._ask_orders
        for i in range(len(ops)):
            op = ops[i]
            sd = sides[i]
            if op == OP_SET:
                if sd == SIDE_BID:
                    bids[prices[i]] = sizes[i]
                    bo[prices[i]] = norders[i]
                elif sd == SIDE_ASK:
                    asks[prices[i]] = sizes[i]
                    ao[prices[i]] = norders[i]
                else:
                    self.unknown_ops += 1
            elif op == OP_DELETE:
                if sd == SIDE_BID:
                    bids.pop(prices[i], None)
                    bo.pop(prices[i], None)
                elif sd == SIDE_ASK:
                    asks.pop(prices[i], None)
                    ao.pop(prices[i], None)
                else:
                    self.unknown_ops += 1
            elif op == OP_CLEAR:
                self.clear(sd if sd in (SIDE_BID, SIDE_ASK) else 0)
            else:
                self.unknown_ops += 1
        self.events_applied += len(ops)

    def bids(self) -> dict[int, float]:
        """Copy of the bid side: tick -> size (contracts)."""
        return dict(self._bids)

    def asks(self) -> dict[int, float]:
        """Copy of the ask side: tick -> size (contracts)."""
        return dict(self._asks)

    def num_orders(self, side: int) -> dict[int, int]:
        """Copy of tick -> order count for one side (0 where the source did not give it)."""
        return dict(self._side(side)[1])

    def size_at(self, side: int, tick: int) -> float:
        """Displayed size at ``tick`` on ``side`` (0.0 when no level)."""
        return self._side(side)[0].get(tick, 0.0)

    def best_bid(self) -> int | None:
        """Highest bid tick, or None when the bid side is empty."""
        return max(self._bids) if self._bids else None

    def best_ask(self) -> int | None:
        """Lowest ask tick, or None when the ask side is empty."""
        return min(self._asks) if self._asks else None

    def levels(self, side: int, n: int | None = None) -> list[tuple[int, float]]:
        """Levels of one side best first: bids high to low, asks low to high.

        Parameters
        ----------
        side : int
            1 bid, 2 ask.
        n : int, optional
            Keep only the best ``n`` levels.

        Returns
        -------
        list of (tick, size)
        """
        sizes = self._side(side)[0]
        keys = sorted(sizes, reverse=(side == SIDE_BID))
        if n is not None:
            keys = keys[:n]
        return [(k, sizes[k]) for k in keys]

    def snapshot_events(self, ts: int = 0, flags: int = 0) -> np.ndarray:
        """The book as ``OP_SET`` depth events: bids best first, then asks best first.

        Parameters
        ----------
        ts : int
            Stamp of every event, ns UTC.
        flags : int
            ``FLAG_*`` bits set on every event (e.g. ``FLAG_SNAPSHOT``).

        Returns
        -------
        np.ndarray of EVENT_DTYPE, shape (levels,)
            Sizes in contracts, prices in ticks, order counts where known (else 0).
        """
        bids, asks = self.levels(SIDE_BID), self.levels(SIDE_ASK)
        nb, na = self.num_orders(SIDE_BID), self.num_orders(SIDE_ASK)
        levels = bids + asks
        return depth_events(
            np.full(len(levels), int(ts), dtype=np.int64),
            [t for t, _ in levels],
            [q for _, q in levels],
            [SIDE_BID] * len(bids) + [SIDE_ASK] * len(asks),
            OP_SET,
            flags=flags,
            num_orders=[nb.get(t, 0) for t, _ in bids] + [na.get(t, 0) for t, _ in asks],
        )

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (both sides present)."""
        b, a = self.best_bid(), self.best_ask()
        return b is not None and a is not None and b >= a

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceBook):
            return NotImplemented
        return self._bids == other._bids and self._asks == other._asks

    def __repr__(self) -> str:
        return (
            f"ReferenceBook(bids={len(self._bids)}, asks={len(self._asks)}, "
            f"best={self.best_bid()}/{self.best_ask()})"
        )


class BookTop:
    """Best bid and ask (ticks) of one price-level book, kept up to date from the batches applied to it.

    The trading session asks for the best prices after every market batch (the paper broker's
    :class:`ReferenceBook`, on the GUI thread), and so does the built-in server for its
    best bid/ask messages (on its own thread; 20 % of that thread on two crypto captures at
    maximum speed before it used this). A full scan is
    ``max``/``min`` over every level (86 us on the ES MBO book's ~1,500 levels, 500 us on
    BTCUSDT's ~9,000, per batch); this class does the same work in O(levels touched):

    * levels better than the last best can only have come from the batch's own ``OP_SET``
      events (before the batch the last best was the best), so the new best is the best of the
      last best (when it still holds size) and those set prices that still hold size;
    * when the last best lost its size and nothing better was set, the next level is searched
      from it outward tick by tick, up to :attr:`WALK` ticks, then by a full scan.

    A level counts when it holds size > 0 (``book.size_at``). Any change made to the book
    outside the batches handed to :meth:`update` can only remove levels (the paper broker's
    replay restart clears it), which the size check sees; a different book object starts over
    with a full scan.

    Attributes
    ----------
    bid, ask : int or None
        Best bid and ask ticks after the last :meth:`update` (None: that side is empty).
    WALK : int
        Ticks searched outward from a vanished best before a full scan.
    """

    WALK = 64

    def __init__(self) -> None:
        self.book = None
        self.bid: int | None = None
        self.ask: int | None = None

    @staticmethod
    def _scan(book, side: int) -> int | None:
        lv = (book.bids() if side == SIDE_BID else book.asks())
        ticks = [t for t, v in lv.items() if v > 0]
        if not ticks:
            return None
        return max(ticks) if side == SIDE_BID else min(ticks)

    def _side(self, book, side: int, prev: int | None, prices) -> int | None:
        has = book.size_at
        bid = side == SIDE_BID
        if prev is not None:  # only prices set better than the last best can beat it
            prices = prices[prices > prev] if bid else prices[prices < prev]
        for p in sorted(set(prices.tolist()), reverse=bid):
            if has(side, p) > 0:
                return p
        if prev is None:  # the side was empty and nothing set by this batch holds size
            return None
        if has(side, prev) > 0:
            return prev
        step = -1 if bid else 1
        p = prev
        for _ in range(self.WALK):
            p += step
            if has(side, p) > 0:
                return p
        return self._scan(book, side)

    def update(self, book, events) -> tuple[int | None, int | None]:
        """Best (bid, ask) ticks of ``book`` after ``events`` were applied to it.

        Parameters
        ----------
        book : ReferenceBook
            The book the events were just applied to (anything with ``size_at(side, tick)``,
            ``bids()`` and ``asks()``).
        events : numpy.ndarray
            The batch just applied, shape (n,), dtype :data:`~app.core.events.EVENT_DTYPE`
            (non-depth events are ignored).

        Returns
        -------
        tuple of (int or None, int or None)
            Best bid and best ask ticks, None for an empty side.
        """
        if book is not self.book:
            self.book = book
            self.bid, self.ask = self._scan(book, SIDE_BID), self._scan(book, SIDE_ASK)
            return self.bid, self.ask
        sets = events[(events["kind"] == KIND_DEPTH) & (events["op"] == OP_SET)] if len(events) else events
        side = sets["side"]
        prices = sets["price"]
        self.bid = self._side(book, SIDE_BID, self.bid, prices[side == SIDE_BID])
        self.ask = self._side(book, SIDE_ASK, self.ask, prices[side == SIDE_ASK])
        return self.bid, self.ask
