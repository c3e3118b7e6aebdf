"""Plain-NumPy twin of the order-flow kernel :func:`app.analysis.orderflow.flow_scan`.

Same arguments, same ``out`` and return value, written with array operations instead of a loop.
It is the reference the tests run every order-flow assertion on, the benchmarks' baseline and the
``use_numba=False`` path of :class:`app.analysis.analyzers.Analyzers`; production code imports it
only on that path.
"""

from __future__ import annotations

import numpy as np

from app.analysis.orderflow import (
    SIDE_ASK,
    SIDE_BID,
)


def flow_scan_np(trades, t_from, lot, bid, ask, best_bid, best_ask, base, levels, out):
    """Plain NumPy twin of :func:`app.analysis.orderflow.flow_scan`.

    Same arguments and ``out`` (float64 (7,), overwritten) as the kernel: trades EVENT_DTYPE (T,)
    ns ascending, ``t_from`` ns, ``lot`` contracts, book float64 (R,), prices in ticks.

    Returns
    -------
    int
        Trades in the window.
    """
    t_ts, t_size, t_side = trades["ts"], trades["size"], trades["side"]
    k = int(np.searchsorted(t_ts, t_from, side="left"))
    sz = np.asarray(t_size[k:], np.float64)
    sd = np.asarray(t_side[k:])
    isb, iss = sd == SIDE_ASK, sd == SIDE_BID
    big = sz >= lot
    buy, sell = float(sz[isb].sum()), float(sz[iss].sum())
    R = bid.shape[0]
    rb = best_bid - base - np.arange(levels)
    ra = best_ask - base + np.arange(levels)
    sb = float(bid[rb[(rb >= 0) & (rb < R)]].sum()) if best_bid >= 0 else 0.0
    sa = float(ask[ra[(ra >= 0) & (ra < R)]].sum()) if best_ask >= 0 else 0.0
    out[:] = (buy - sell, buy, sell, float(sz[isb & big].sum()), float(sz[iss & big].sum()),
              (sb - sa) / (sb + sa) if sb + sa > 0 else 0.0, sz.size)
    return int(sz.size)
