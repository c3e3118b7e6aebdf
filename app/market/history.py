"""Heatmap history that grows with the data: columns in chunks allocated on first write.

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
        self._id = np.full(self.nslots, -1, np.int64)  # chunk number held by each slot
        self.newest = -1

    @property
    def nbytes(self) -> int:
        """Bytes of the chunks allocated now."""
        return sum(d.nbytes + b.nbytes + h.nbytes for d, b, h in zip(self._data, self._base, self._have)
                   if d is not None)

    @property
    def oldest(self) -> int:
        """Oldest column index still kept (``newest - capacity + 1``)."""
        return self.newest - self.capacity + 1

    def _slot(self, k: int) -> int:
        """Slot of chunk number ``k``, allocated or recycled for it."""
        s = k % self.nslots
        if self._id[s] != k:
            if self._data[s] is None:
                self._data[s] = np.zeros((self.planes, self.chunk, self.rows), np.float32)
                self._base[s] = np.zeros(self.chunk, np.int64)
                self._have[s] = np.zeros(self.chunk, bool)
            else:  # recycled: its old columns left the history
                self._data[s].fill(0.0)
                self._base[s].fill(0)
                self._have[s].fill(False)
            self._id[s] = k
        return s

    def put(self, c0: int, data: np.ndarray, bases: np.ndarray) -> None:
        """Write the consecutive columns ``c0 .. c0 + n - 1``.

        Parameters
        ----------
        c0 : int
            Column index of the first column (increasing over calls; older columns are ignored).
        data : np.ndarray, float32, shape (planes, n, rows)
        bases : np.ndarray, int64, shape (n,)
            Price (ticks) of row 0 of each column.
        """
        n = int(data.shape[1])
        c0 = int(c0)
        if n == 0:
            return
        newest = max(self.newest, c0 + n - 1)
        start = max(c0, newest - self.capacity + 1)
        c = start
        while c < c0 + n:
            k, j = divmod(c, self.chunk)
            m = min(self.chunk - j, c0 + n - c)
            s = self._slot(k)
            self._data[s][:, j : j + m] = data[:, c - c0 : c - c0 + m]
            self._base[s][j : j + m] = bases[c - c0 : c - c0 + m]
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
                data[:, c - c0 : c - c0 + m] = self._data[s][pl, j : j + m]
                bases[c - c0 : c - c0 + m] = self._base[s][j : j + m]
                have[c - c0 : c - c0 + m] = self._have[s][j : j + m]
            c += m
        return data, bases, have

    def clear(self) -> None:
        """Forget every column and free the chunks."""
        self._data = [None] * self.nslots
        self._base = [None] * self.nslots
        self._have = [None] * self.nslots
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
