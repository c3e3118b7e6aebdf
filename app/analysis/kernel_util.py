"""Small numba helpers shared by the analyzer kernels (``dom``, ``battle_navale``, ``advanced``)."""

from __future__ import annotations

from app.core.jit import kernel


@kernel
def n_hits(out, n):
    """Rows among the first ``n`` of ``out`` (float64, shape (>= n, k)) with a detection (``out[i, 0] > 0``)."""
    k = 0
    for i in range(n):
        if out[i, 0] > 0:
            k += 1
    return k
