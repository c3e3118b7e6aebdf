"""Small numba helpers shared by the analyzer kernels (``dom``, ``battle_navale``, ``advanced``)."""

from __future__ import annotations

from app.paths import numba_cache_setup

numba_cache_setup()

import numba  # noqa: E402


@numba.njit(nogil=True, cache=True)
def n_hits(out, n):
    """Rows among the first ``n`` of ``out`` (float64, shape (>= n, k)) with a detection (``out[i, 0] > 0``)."""
    k = 0
    for i in range(n):
        if out[i, 0] > 0:
            k += 1
    return k
