"""Heatmap history that grows with the data: columns in chunks allocated on first write, and
coarser tiers of it for the whole session (:class:`HeatmapHistory`).

:class:`ColumnStore` keeps the newest ``capacity`` columns of one time resolution in a ring of
chunks of ``chunk`` columns each. A chunk's arrays are allocated when the first column of it is
written and recycled (zeroed, given to the next chunk of columns) when its columns leave the
history, so memory follows the columns written, never the capacity up front.

Each column carries ``planes`` float32 planes of ``rows`` rows and the price (ticks) of its
row 0 (``base``): the heatmap re-centres its rows as price moves, so two columns of the store
may sit at different prices; readers re-align them (:func:`place_rows`).
"""

from __future__ import annotations

import numpy as np


class ColumnStore:
    """A ring of lazily allocated chunks of heatmap columns (one time resolution).

    A chunk holds its columns one of two ways: **dense** (float32 ``(planes, chunk, rows)``,
    allocated on its first ordinary write) or as a **run** (every column of the chunk equal
    to one column at one row-0 price: a quiet market, a gap in the data, a closed session;
    :meth:`put_run`), which costs one column instead of ``chunk``. A run chunk becomes
    dense when an ordinary write lands in it. Reads (:meth:`get`) give the same columns
    either way.

    Parameters
    ----------
    planes : int
        Float32 planes per column (e.g. 4: resting bid, resting ask, traded buy, traded sell).
    rows : int
        Price rows per column.
    capacity : int
        Columns kept: a column older than ``newest - capacity + 1`` reads as absent.
    chunk : int
        Columns per chunk (the unit of allocation).

    Attributes
    ----------
    newest : int
        Newest column index written (-1 before the first).

    Raises
    ------
    ValueError
        If a size is not positive.
    """

    def __init__(self, planes: int, rows: int, capacity: int, chunk: int = 256):
        for key, v in (("planes", planes), ("rows", rows), ("capacity", capacity), ("chunk", chunk)):
            if int(v) <= 0:
                raise ValueError(f"ColumnStore: {key} must be > 0, got {v}")
        self.planes, self.rows = int(planes), int(rows)
        self.capacity, self.chunk = int(capacity), int(chunk)
        self.nslots = -(-self.capacity // self.chunk) + 1  # any `capacity` consecutive columns fit
        self._data: list[np.ndarray | None] = [None] * self.nslots  # float32 (planes, chunk, rows)
        self._base: list[np.ndarray | None] = [None] * self.nslots  # int64 (chunk,)
        self._have: list[np.ndarray | None] = [None] * self.nslots  # bool (chunk,)
        #: per slot, a run chunk's one column (float32 (planes, rows)) and its row-0 price
        self._run: list[tuple[np.ndarray, int] | None] = [None] * self.nslots
        self._id = np.full(self.nslots, -1, np.int64)  # chunk number held by each slot
        self.newest = -1

    @property
    def nbytes(self) -> int:
        """Bytes of the chunks held now (a run chunk counts its one column)."""
        dense = sum(d.nbytes + b.nbytes + h.nbytes for d, b, h in zip(self._data, self._base, self._have)
                    if d is not None)
        return dense + sum(r[0].nbytes for r in self._run if r is not None)

    @property
    def run_chunks(self) -> int:
        """Chunks held as runs now (one column each)."""
        return sum(r is not None for r in self._run)

    @property
    def oldest(self) -> int:
        """Oldest column index still kept (``newest - capacity + 1``)."""
        return self.newest - self.capacity + 1

    def _slot(self, k: int) -> int:
        """Slot of chunk number ``k``, dense, allocated or recycled for it (a run chunk ``k``
        is expanded into dense columns first)."""
        s = k % self.nslots
        run = self._run[s] if self._id[s] == k else None
        if self._id[s] != k or run is not None:
            self._run[s] = None
            if self._data[s] is None:
                self._data[s] = np.zeros((self.planes, self.chunk, self.rows), np.float32)
                self._base[s] = np.zeros(self.chunk, np.int64)
                self._have[s] = np.zeros(self.chunk, bool)
            else:  # recycled: its old columns left the history (their data reads as absent)
                self._base[s].fill(0)
                self._have[s].fill(False)
            if run is not None:
                self._data[s][:] = run[0][:, None, :]
                self._base[s].fill(run[1])
                self._have[s].fill(True)
            self._id[s] = k
        return s

    def _span(self, c0: int, n: int):
        """Start of the kept part of a write of columns ``c0 .. c0 + n - 1``, and the newest
        column after it."""
        newest = max(self.newest, c0 + n - 1)
        return max(c0, newest - self.capacity + 1), newest

    def put(self, c0: int, data: np.ndarray, bases: np.ndarray, have: np.ndarray | None = None) -> None:
        """Write the consecutive columns ``c0 .. c0 + n - 1``.

        Parameters
        ----------
        c0 : int
            Column index of the first column (increasing over calls; older columns are ignored).
        data : np.ndarray, float32, shape (planes, n, rows)
        bases : np.ndarray, int64, shape (n,)
            Price (ticks) of row 0 of each column.
        have : np.ndarray, bool, shape (n,), optional
            Columns that hold data (default all).
        """
        n = int(data.shape[1])
        c0 = int(c0)
        if n == 0:
            return
        start, newest = self._span(c0, n)
        c = start
        while c < c0 + n:
            k, j = divmod(c, self.chunk)
            m = min(self.chunk - j, c0 + n - c)
            s = self._slot(k)
            self._data[s][:, j : j + m] = data[:, c - c0 : c - c0 + m]
            self._base[s][j : j + m] = bases[c - c0 : c - c0 + m]
            self._have[s][j : j + m] = True if have is None else have[c - c0 : c - c0 + m]
            c += m
        self.newest = newest

    def put_run(self, c0: int, n: int, column: np.ndarray, base: int) -> None:
        """Write ``n`` consecutive columns ``c0 ..`` that all equal ``column`` at row-0 price
        ``base``; chunks the run covers whole are kept as one column each (O(chunks), no
        ``(planes, chunk, rows)`` array), the ends of the run go into dense chunks.

        Parameters
        ----------
        c0 : int
            Column index of the first column (increasing over calls).
        n : int
            Number of columns (>= 0).
        column : np.ndarray, float32, shape (planes, rows)
        base : int
            Price (ticks) of row 0 of every column.
        """
        n, c0 = int(n), int(c0)
        if n <= 0:
            return
        col = np.array(column, np.float32, copy=True).reshape(self.planes, self.rows)
        start, newest = self._span(c0, n)
        end = c0 + n
        c = start
        while c < end:
            k, j = divmod(c, self.chunk)
            m = min(self.chunk - j, end - c)
            if j == 0 and m == self.chunk:  # the whole chunk: one column
                s = k % self.nslots
                self._id[s] = k
                self._run[s] = (col, int(base))
                self._data[s] = self._base[s] = self._have[s] = None  # memory follows the data
            else:
                s = self._slot(k)
                self._data[s][:, j : j + m] = col[:, None, :]
                self._base[s][j : j + m] = int(base)
                self._have[s][j : j + m] = True
            c += m
        self.newest = newest

    def get(self, c0: int, c1: int, planes=None):
        """Columns ``c0 .. c1 - 1`` (copies; absent columns are zero with ``have`` False).

        Parameters
        ----------
        c0, c1 : int
            Column range, ``c1 >= c0``.
        planes : sequence of int, optional
            Planes to return (default all).

        Returns
        -------
        data : np.ndarray, float32, shape (len(planes), c1 - c0, rows)
        bases : np.ndarray, int64, shape (c1 - c0,)
        have : np.ndarray, bool, shape (c1 - c0,)
        """
        c0, c1 = int(c0), int(c1)
        pl = list(range(self.planes)) if planes is None else list(planes)
        n = max(c1 - c0, 0)
        data = np.zeros((len(pl), n, self.rows), np.float32)
        bases = np.zeros(n, np.int64)
        have = np.zeros(n, bool)
        c = max(c0, self.oldest)
        end = min(c1, self.newest + 1)
        while c < end:
            k, j = divmod(c, self.chunk)
            m = min(self.chunk - j, end - c)
            s = k % self.nslots
            if self._id[s] == k:
                run = self._run[s]
                if run is not None:
                    data[:, c - c0 : c - c0 + m] = run[0][pl][:, None, :]
                    bases[c - c0 : c - c0 + m] = run[1]
                    have[c - c0 : c - c0 + m] = True
                else:
                    data[:, c - c0 : c - c0 + m] = self._data[s][pl, j : j + m]
                    bases[c - c0 : c - c0 + m] = self._base[s][j : j + m]
                    have[c - c0 : c - c0 + m] = self._have[s][j : j + m]
            c += m
        if not have.all():  # a recycled chunk keeps old data in columns not written again
            data[:, ~have] = 0.0
        return data, bases, have

    def clear(self) -> None:
        """Forget every column and free the chunks."""
        self._data = [None] * self.nslots
        self._base = [None] * self.nslots
        self._have = [None] * self.nslots
        self._run = [None] * self.nslots
        self._id[:] = -1
        self.newest = -1


def place_rows(data: np.ndarray, bases: np.ndarray, have: np.ndarray, base: int, rows: int) -> np.ndarray:
    """Re-align columns written at different row-0 prices onto one row grid.

    Parameters
    ----------
    data : np.ndarray, float32, shape (planes, n, R)
        Columns as stored (row ``r`` of column ``i`` is price ``bases[i] + r``).
    bases : np.ndarray, int64, shape (n,)
        Price (ticks) of row 0 of each column.
    have : np.ndarray, bool, shape (n,)
        Columns that hold data (the others stay zero).
    base : int
        Price (ticks) of row 0 of the result.
    rows : int
        Rows of the result.

    Returns
    -------
    np.ndarray, float32, shape (planes, n, rows)
        Row ``r`` of column ``i`` is price ``base + r`` (0 where the column holds no such row).
    """
    P, n, R = data.shape
    out = np.zeros((P, n, rows), np.float32)
    for b in np.unique(bases[have]).tolist():
        sel = np.flatnonzero(have & (bases == b))
        d = int(b) - int(base)  # result row of the column's row 0
        lo, hi = max(d, 0), min(d + R, rows)
        if hi > lo:
            out[:, sel, lo:hi] = data[:, sel, lo - d : hi - d]
    return out


def aggregate(data: np.ndarray, bases: np.ndarray, have: np.ndarray, c0: int, factor: int):
    """Merge ``factor`` consecutive columns into one coarser column (groups aligned on
    multiples of ``factor``).

    Rule (documented in ``docs`` of :class:`HeatmapHistory`): every column of a group is first
    re-aligned to the row-0 price of the group's newest column that holds data (rows that fall
    outside are dropped); resting size (plane 0) is the **mean** over the columns that hold
    data (a wall that stood the whole span keeps its brightness, a flash is dimmed by its
    share of the span, and colour levels stay comparable across tiers); traded volume (planes
    1 and 2) is **summed**.

    Parameters
    ----------
    data : np.ndarray, float32, shape (3, n, R)
        Planes resting size (bid + ask), traded buy, traded sell, contracts.
    bases : np.ndarray, int64, shape (n,)
        Price (ticks) of row 0 of each column.
    have : np.ndarray, bool, shape (n,)
        Columns that hold data.
    c0 : int
        Column index of ``data[:, 0]`` (in the finer tier's columns).
    factor : int
        Columns per group.

    Returns
    -------
    out : np.ndarray, float32, shape (3, ng, R)
    out_bases : np.ndarray, int64, shape (ng,)
    out_have : np.ndarray, bool, shape (ng,)
    g0 : int
        Index of the first group (``c0 // factor``, floor).
    """
    F = int(factor)
    P, n, R = data.shape
    g0 = int(c0) // F
    pad0 = int(c0) - g0 * F
    if pad0 == 0 and n % F == 0 and n and have.all():
        bg = bases.reshape(-1, F)
        if (bg == bg[:, -1:]).all():  # the common case: whole groups, one row-0 price each
            out = data.reshape(P, n // F, F, R).sum(axis=2)
            out[0] *= np.float32(1.0 / F) if F & (F - 1) == 0 else 1.0
            if F & (F - 1):
                out[0] /= np.float32(F)
            return out, bg[:, -1].copy(), np.ones(n // F, bool), g0
    ng = -(-(pad0 + n) // F)
    tot = ng * F
    d = np.zeros((P, tot, R), np.float32)
    d[:, pad0 : pad0 + n] = data
    b = np.zeros(tot, np.int64)
    b[pad0 : pad0 + n] = bases
    h = np.zeros(tot, bool)
    h[pad0 : pad0 + n] = have
    hg = h.reshape(ng, F)
    out_have = hg.any(axis=1)
    last = F - 1 - np.argmax(hg[:, ::-1], axis=1)  # newest column with data in each group
    out_bases = np.where(out_have, b.reshape(ng, F)[np.arange(ng), last], 0)
    shift = b - np.repeat(out_bases, F)  # result row of each column's row 0
    moved = h & (shift != 0)
    if moved.any():
        for s in np.unique(shift[moved]).tolist():
            sel = np.flatnonzero(moved & (shift == s))
            blk = np.zeros((P, sel.size, R), np.float32)
            lo, hi = max(s, 0), min(R + s, R)
            if hi > lo:
                blk[:, :, lo:hi] = d[:, sel, lo - s : hi - s]
            d[:, sel] = blk
    d[:, ~h] = 0.0
    g = d.reshape(P, ng, F, R).sum(axis=2, dtype=np.float64)
    cnt = hg.sum(axis=1)
    g[0] /= np.maximum(cnt, 1)[:, None]
    return g.astype(np.float32), out_bases, out_have, g0


class HistoryImage:
    """A heatmap image of a time range of the history (what the GUI draws for it).

    Attributes
    ----------
    heatmap : np.ndarray, float32, shape (rows, cols)
        Resting size (bid + ask, contracts; the mean over each column's span at tiers >= 1);
        row 0 is price ``base``, column 0 starts at ``t0_ns``.
    traded_buy, traded_sell : np.ndarray, float32, shape (rows, cols)
        Volume traded at the ask / at the bid in each cell (summed), contracts.
    base : int
        Price (ticks, of the model's rows) of row 0.
    t0_ns : int
        Start of column 0, ns since the epoch UTC.
    column_ns : int
        Width of one column, ns.
    tier : int
        0 = the model's own columns; tier ``k`` is ``factor ** k`` times coarser.
    have : np.ndarray, bool, shape (cols,)
        Columns that hold data.
    request : object
        The request this image answers (whatever the caller passed; ``None`` by default).
    """

    __slots__ = ("heatmap", "traded_buy", "traded_sell", "base", "t0_ns", "column_ns", "tier",
                 "have", "request")

    def __init__(self, heatmap, traded_buy, traded_sell, base, t0_ns, column_ns, tier, have,
                 request=None):
        self.heatmap, self.traded_buy, self.traded_sell = heatmap, traded_buy, traded_sell
        self.base, self.t0_ns, self.column_ns, self.tier = int(base), int(t0_ns), int(column_ns), int(tier)
        self.have = have
        self.request = request

    @property
    def t1_ns(self) -> int:
        """End of the last column, ns."""
        return self.t0_ns + self.heatmap.shape[1] * self.column_ns


class HeatmapHistory:
    """Tiers of coarser heatmap columns above the model's own (tier 0), as map tiles are.

    Tier ``k`` (``k >= 1``) has columns ``factor ** k`` tier-0 columns wide (Production, 250 ms,
    factor 4: 1 s, 4 s, 16 s, 64 s), each kept in a :class:`ColumnStore` of ``tier_cols``
    columns (chunks allocated on first write) and enough tiers that the coarsest covers
    ``span_s`` (Production: 4 tiers, 64 s x 3,600 = 64 h). A tier-``k`` column is made from
    ``factor`` tier-``k-1`` columns once they are final (:func:`aggregate`: every column
    re-aligned to the row-0 price of the newest one, resting size the mean, traded volume the
    sum); each stored column keeps its own row-0 price (``base``), so prices stay right
    across re-centres. The newest columns of each tier (not final yet) are aggregated on
    request from the finer tier, down to the model's hot ring.

    Parameters
    ----------
    rows : int
        Price rows per column.
    column_ns : int
        Tier-0 column width, ns.
    tier0 : callable(c0, c1) -> (data, bases, have)
        Tier-0 columns ``c0 .. c1 - 1``: float32 ``(3, n, rows)`` planes resting (bid + ask),
        traded buy, traded sell; int64 ``(n,)`` row-0 prices; bool ``(n,)`` (the model).
    factor : int
        Tier-to-tier factor (>= 2).
    tier_cols : int
        Columns kept per tier.
    span_s : float
        Time the coarsest tier must cover, seconds (>= 24 h by default).
    chunk : int
        Columns per allocation chunk.

    Raises
    ------
    ValueError
        If ``factor < 2`` or a size is not positive.
    """

    def __init__(self, rows: int, column_ns: int, tier0, *, factor: int = 4, tier_cols: int = 3600,
                 span_s: float = 86400.0, chunk: int = 256):
        if int(factor) < 2:
            raise ValueError(f"HeatmapHistory: factor must be >= 2, got {factor}")
        for key, v in (("rows", rows), ("column_ns", column_ns), ("tier_cols", tier_cols), ("span_s", span_s)):
            if v <= 0:
                raise ValueError(f"HeatmapHistory: {key} must be > 0, got {v}")
        self.rows, self.column_ns, self.factor = int(rows), int(column_ns), int(factor)
        self.tier_cols = int(tier_cols)
        self._tier0 = tier0
        k = 1
        while self.tier_cols * self.column_ns * self.factor ** k < span_s * 1e9:
            k += 1
        #: tier stores, index k - 1 for tier k
        self.tiers = [ColumnStore(3, self.rows, self.tier_cols, chunk) for _ in range(k)]
        self._done = [None] * (k + 1)  # per tier: first column not final yet (None: none yet)
        self._buf: list = [None] * (k + 1)  # per tier >= 1: finer columns of the open group
        #: first tier-0 column of the stream (set by the model; None before it)
        self.first_col: int | None = None

    @property
    def levels(self) -> int:
        """Number of tiers above tier 0."""
        return len(self.tiers)

    @property
    def done0(self) -> int | None:
        """First tier-0 column not handed to the tiers yet (None before the first)."""
        return self._done[0]

    @property
    def nbytes(self) -> int:
        """Bytes allocated by the tiers (tier 0 is the model's)."""
        return sum(t.nbytes for t in self.tiers)

    def width_ns(self, k: int) -> int:
        """Column width of tier ``k``, ns."""
        return self.column_ns * self.factor ** int(k)

    def clear(self) -> None:
        """Forget every tier (a new stream)."""
        for t in self.tiers:
            t.clear()
        self._done = [None] * (self.levels + 1)
        self._buf = [None] * (self.levels + 1)
        self.first_col = None

    # ---------------------------------------------------------------- building the tiers
    def add(self, c0: int, data: np.ndarray, bases: np.ndarray) -> None:
        """Final tier-0 columns ``c0 .. c0 + n - 1`` (consecutive, increasing over calls).

        Parameters
        ----------
        data : np.ndarray, float32, shape (3, n, rows)
            Resting (bid + ask), traded buy, traded sell.
        bases : np.ndarray, int64, shape (n,)
        """
        n = data.shape[1]
        if n:
            self._done[0] = int(c0) + n
            self._feed(1, int(c0), data, bases, np.ones(n, bool))

    def add_run(self, c0: int, c1: int, column: np.ndarray, base: int) -> None:
        """Tier-0 columns ``c0 .. c1 - 1`` that all equal ``column`` (a quiet market: the book
        unchanged, nothing traded), added without materialising them (O(tiers x factor)).

        Parameters
        ----------
        column : np.ndarray, float32, shape (3, rows)
        base : int
            Their row-0 price, ticks.
        """
        if c1 > c0:
            self._done[0] = int(c1)
            self._feed_run(1, int(c0), int(c1), np.asarray(column, np.float32), int(base))

    def _feed_run(self, k: int, a: int, b: int, column, base: int) -> None:
        if k > self.levels:
            return
        F = self.factor
        A, B = -(-a // F) * F, (b // F) * F  # the whole groups of the run: [A, B)

        def cols(n):
            return (np.broadcast_to(column[:, None, :], (3, n, self.rows)),
                    np.full(n, base, np.int64), np.ones(n, bool))

        if B - A < F:  # short: no whole group inside, feed it column by column
            self._feed(k, a, *cols(b - a))
            return
        if A > a:
            self._feed(k, a, *cols(A - a))  # completes the group before the run
        buf = self._buf[k]
        if buf is not None:  # a group before A still open (A == a): it is complete now
            b0, bd, bb, bh = buf
            self._emit(k, b0, bd, bb, bh, (b0 + bd.shape[1] - 1) // F + 1)
        ga, gb = A // F, B // F
        self.tiers[k - 1].put_run(ga, gb - ga, column, base)
        self._done[k] = gb
        self._feed_run(k + 1, ga, gb, column, base)
        if b > B:
            self._feed(k, B, *cols(b - B))

    def _feed(self, k: int, c0: int, data, bases, have) -> None:
        """Columns of tier ``k - 1`` into tier ``k``: complete groups are aggregated and stored."""
        if k > self.levels:
            return
        F = self.factor
        buf = self._buf[k]
        if buf is not None:
            b0, bd, bb, bh = buf
            bend = b0 + bd.shape[1]
            if c0 // F == (bend - 1) // F and c0 >= bend:  # the open group goes on
                gap = c0 - bend
                P, _, R = bd.shape
                data = np.concatenate([bd, np.zeros((P, gap, R), np.float32), data], axis=1)
                bases = np.concatenate([bb, np.zeros(gap, np.int64), bases])
                have = np.concatenate([bh, np.zeros(gap, bool), have])
                c0 = b0
            else:  # a later group started: the buffered one is complete
                self._emit(k, b0, bd, bb, bh, (bend - 1) // F + 1)
        c1 = c0 + data.shape[1]
        cut = (c1 // F) * F  # columns before it form complete groups
        if cut > c0:
            m = cut - c0
            self._emit(k, c0, data[:, :m], bases[:m], have[:m], cut // F)
            data, bases, have, c0 = data[:, m:], bases[m:], have[m:], cut
        self._buf[k] = (c0, data, bases, have) if data.shape[1] else None
        if self._buf[k] is not None:
            self._done[k] = max(self._done[k] or 0, c0 // F)

    def _emit(self, k, c0, data, bases, have, done) -> None:
        out, ob, oh, g0 = aggregate(data, bases, have, c0, self.factor)
        keep = np.flatnonzero(oh)
        if keep.size:
            a, b = int(keep[0]), int(keep[-1]) + 1
            self.tiers[k - 1].put(g0 + a, out[:, a:b], ob[a:b], oh[a:b])
        self._done[k] = int(done)
        self._buf[k] = None
        self._feed(k + 1, g0, out, ob, oh)

    # ---------------------------------------------------------------- reading
    def columns(self, k: int, c0: int, c1: int):
        """Tier-``k`` columns ``c0 .. c1 - 1``: the stored ones, and the newest (not final yet)
        aggregated now from tier ``k - 1``.

        Returns
        -------
        data : np.ndarray, float32, shape (3, c1 - c0, rows)
        bases : np.ndarray, int64, shape (c1 - c0,)
        have : np.ndarray, bool, shape (c1 - c0,)
        """
        c0, c1 = int(c0), int(c1)
        if k == 0:
            return self._tier0(c0, c1)
        done = self._done[k]
        if done is None:  # nothing reached tier k yet: all of it is young (from the first column)
            done = c1 if self.first_col is None else self.first_col // self.factor ** k
        mid = min(max(done, c0), c1)
        data, bases, have = self.tiers[k - 1].get(c0, mid)
        if mid < c1:
            F = self.factor
            d2, b2, h2 = self.columns(k - 1, mid * F, c1 * F)  # whole groups: c1 - mid of them
            out, ob, oh, _ = aggregate(d2, b2, h2, mid * F, F)
            data = np.concatenate([data, out], axis=1)
            bases = np.concatenate([bases, ob])
            have = np.concatenate([have, oh])
        return data, bases, have

    def oldest(self, k: int, open_col: int, history_cols: int) -> int:
        """Oldest tier-``k`` column kept (tier 0: ``history_cols`` before the open column)."""
        if k == 0:
            return int(open_col) - int(history_cols) + 1
        newest = int(open_col) // self.factor ** k
        return newest - self.tier_cols + 1

    def window(self, t0_ns: int, t1_ns: int, max_cols: int, *, open_col: int, history_cols: int,
               price_lo: int | None = None, price_hi: int | None = None, request=None):
        """The image of ``[t0_ns, t1_ns)`` at the finest tier that fits ``max_cols`` columns and
        still holds ``t0_ns`` (else the coarsest that fits; a range beyond even that is cut at
        its old end to ``max_cols`` columns).

        Parameters
        ----------
        t0_ns, t1_ns : int
            Time range, ns since the epoch UTC (``t1_ns > t0_ns``); cut at the open column.
        max_cols : int
            Most columns of the image (e.g. the view's width in pixels).
        open_col : int
            The model's open tier-0 column (``ts // column_ns``).
        history_cols : int
            Tier-0 columns the model keeps.
        price_lo, price_hi : int, optional
            Keep only the rows of these prices (ticks, inclusive); default every row any column
            of the range holds.
        request : object, optional
            Stored in the result's ``request``.

        Returns
        -------
        HistoryImage or None
            None when the range holds no column with data.

        Raises
        ------
        ValueError
            If ``max_cols < 1`` or ``t1_ns <= t0_ns``.
        """
        if int(max_cols) < 1:
            raise ValueError(f"history_window: max_cols must be >= 1, got {max_cols}")
        if int(t1_ns) <= int(t0_ns):
            raise ValueError(f"history_window: t1_ns ({t1_ns}) must be after t0_ns ({t0_ns})")
        span = int(t1_ns) - int(t0_ns)
        fits = [k for k in range(self.levels + 1) if -(-span // self.width_ns(k)) <= max_cols]
        k = fits[0] if fits else self.levels
        t_held = int(t0_ns)  # the oldest time that must be held: no data before the first column
        if self.first_col is not None:
            t_held = max(t_held, self.first_col * self.column_ns)
        for j in fits:
            if t_held // self.width_ns(j) >= self.oldest(j, open_col, history_cols):
                k = j
                break
        else:
            if fits:
                k = fits[-1]
        w = self.width_ns(k)
        c1 = min(-(-int(t1_ns) // w), int(open_col) // self.factor ** k + 1)
        c0 = max(int(t0_ns) // w, self.oldest(k, open_col, history_cols), c1 - int(max_cols))
        if c1 <= c0:
            return None
        data, bases, have = self.columns(k, c0, c1)
        if not have.any():
            return None
        lo = int(bases[have].min())
        hi = int(bases[have].max()) + self.rows - 1
        if price_lo is not None:
            lo = max(lo, int(price_lo))
        if price_hi is not None:
            hi = min(hi, int(price_hi))
        if hi < lo:
            lo = hi = int(price_lo) if price_lo is not None else lo
        img = place_rows(data, bases, have, lo, hi - lo + 1)
        planes = [np.ascontiguousarray(img[p].T) for p in range(3)]
        return HistoryImage(planes[0], planes[1], planes[2], lo, c0 * w, w, k, have, request)
