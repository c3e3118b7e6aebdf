"""Plain-NumPy twin of the relation kernel :func:`app.analysis.relation.relation_scan`.

Same arguments, same state (updated in place), same outputs and return value; each second's
figures are computed with NumPy reductions over the windows (``np.corrcoef``-free: mean,
centred products, ``np.std`` with ddof 1) read out of the rings in time order, instead of the
kernel's running loops. It is the reference of the kernel tests and the ``use_numba=False``
path of :class:`app.analysis.relation.Relation`.
"""

from __future__ import annotations

import numpy as np

from app.analysis.relation import (
    F_OPEN_A,
    F_OPEN_B,
    F_PREV_A,
    F_PREV_B,
    I_HAS_PREV,
    I_ND,
    I_NR,
    I_NRS,
    I_OPENED,
    I_SESSION,
)


def _in_order(ring: np.ndarray, count: int) -> np.ndarray:
    """The ring's values oldest first (the ring holds the last ``len(ring)`` of ``count`` pushes)."""
    n = ring.shape[-1]
    start = count % n
    return np.concatenate([ring[..., start:], ring[..., :start]], axis=-1)


def relation_scan_np(la, lb, session, window, horizon, history, k_sigma, sf, si, ring_r, ring_rs, ring_d,
                     out_corr, out_rs, out_z, out_flag):
    """Plain NumPy twin of :func:`app.analysis.relation.relation_scan` (same arguments: log
    prices float64 (n,), session keys int64 (n,), window/horizon/history seconds, the state
    arrays, outputs float64 (n,) x 3 and int8 (n,)).

    Returns
    -------
    int
        Seconds flagged.
    """
    flagged = 0
    for k in range(len(la)):
        if session[k] != si[I_SESSION]:
            si[I_SESSION] = session[k]
            si[[I_NR, I_NRS, I_ND, I_HAS_PREV, I_OPENED]] = 0
        out_corr[k] = out_rs[k] = out_z[k] = np.nan
        out_flag[k] = 0
        a, b = la[k], lb[k]
        if np.isnan(a) or np.isnan(b):
            continue
        if not si[I_OPENED]:
            sf[F_OPEN_A], sf[F_OPEN_B] = a, b
            si[I_OPENED] = 1
        rs = (a - sf[F_OPEN_A]) - (b - sf[F_OPEN_B])
        out_rs[k] = rs
        if si[I_HAS_PREV]:
            ring_r[:, si[I_NR] % window] = (a - sf[F_PREV_A], b - sf[F_PREV_B])
            si[I_NR] += 1
        sf[F_PREV_A], sf[F_PREV_B] = a, b
        si[I_HAS_PREV] = 1
        if si[I_NR] >= window:
            c = ring_r - ring_r.mean(axis=1, keepdims=True)
            saa, sbb = float(np.dot(c[0], c[0])), float(np.dot(c[1], c[1]))
            if saa > 0.0 and sbb > 0.0:
                out_corr[k] = float(np.dot(c[0], c[1])) / np.sqrt(saa * sbb)
        ring_rs[si[I_NRS] % len(ring_rs)] = rs
        si[I_NRS] += 1
        if si[I_NRS] > horizon:
            d = rs - _in_order(ring_rs, si[I_NRS])[0]  # the oldest: rs_{k-horizon}
            ring_d[si[I_ND] % len(ring_d)] = d
            si[I_ND] += 1
            if si[I_ND] >= len(ring_d):
                past = _in_order(ring_d, si[I_ND])[:history]
                s = float(np.std(past, ddof=1))
                if s > 0.0:
                    z = (d - float(past.mean())) / s
                    out_z[k] = z
                    if abs(z) > k_sigma:
                        out_flag[k] = 1 if z > 0 else -1
                        flagged += 1
    return flagged
