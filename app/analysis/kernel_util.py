"""Small numba helpers shared by the analyzer kernels (``dom``, ``battle_navale``, ``advanced``)."""

from __future__ import annotations

import numpy as np

from app.core.jit import kernel


@kernel
def n_hits(out, n):
    """Rows among the first ``n`` of ``out`` (float64, shape (>= n, k)) with a detection (``out[i, 0] > 0``)."""
    k = 0
    for i in range(n):
        if out[i, 0] > 0:
            k += 1
    return k


@kernel
def median_inplace(buf, lo, n):
    """Median of ``buf[lo:lo + n]`` (float64), sorting that slice in place (insertion sort: for the
    few values of a bar lookback, cheaper than :func:`numpy.median`'s copy). nan when ``n == 0``.

    Parameters
    ----------
    buf : float64 (>= lo + n,)
        Scratch buffer; the slice is reordered.
    lo, n : int
        Start and length of the slice.

    Returns
    -------
    float
        The middle value (odd ``n``) or the mean of the two middle values (even ``n``), as
        :func:`numpy.median`.
    """
    if n <= 0:
        return np.nan
    for a in range(lo + 1, lo + n):
        x = buf[a]
        b = a - 1
        while b >= lo and buf[b] > x:
            buf[b + 1] = buf[b]
            b -= 1
        buf[b + 1] = x
    m = lo + n // 2
    if n % 2 == 1:
        return buf[m]
    return 0.5 * (buf[m - 1] + buf[m])
