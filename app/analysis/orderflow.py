"""Order flow: delta, cumulative delta, bid/ask book imbalance and large-lot flow.

:func:`flow_scan` (numba) and its twin :func:`app.analysis.orderflow_ref.flow_scan_np` read the
recent trades (EVENT_DTYPE columns) and the book. Trades with ``side == SIDE_ASK`` (2) lifted the
ask: buyer aggressor.

Outputs, float64 (7,): ``[delta, buy, sell, large_buy, large_sell, imbalance, trades]`` where
``delta = buy - sell`` over the window (contracts), ``large_*`` sum only trades of at least
``lot`` contracts, ``imbalance = (B - A) / (B + A)`` with B, A the resting size of the
``levels`` rows from each touch (-1..1, 0 when the book is empty), ``trades`` the count.
"""

from __future__ import annotations

from app.core.jit import kernel

SIDE_ASK = 2
SIDE_BID = 1


@kernel
def flow_scan(trades, t_from, lot, bid, ask, best_bid, best_ask, base, levels, out):
    """Order-flow figures (numba). See the module docstring.

    Parameters
    ----------
    trades : EVENT_DTYPE (T,)
        Recent trades, ``ts`` ascending (ns); ``size`` contracts; ``side`` = the side traded
        against (2 = buyer aggressor, 1 = seller aggressor).
    t_from : int
        Window start, ns (trades with ``ts >= t_from`` count).
    lot : float
        Large-lot threshold, contracts (``inf`` = none).
    bid, ask : float64 (R,)
    best_bid, best_ask, base : int
        Ticks.
    levels : int
    out : float64 (7,)
        Overwritten with the figures.

    Returns
    -------
    int
        Trades in the window.
    """
    t_ts = trades["ts"]
    t_size = trades["size"]
    t_side = trades["side"]
    buy = 0.0
    sell = 0.0
    lb = 0.0
    ls = 0.0
    n = 0
    T = t_ts.shape[0]
    k = T - 1
    while k >= 0 and t_ts[k] >= t_from:
        k -= 1
    for j in range(k + 1, T):
        sz = t_size[j]
        if t_side[j] == SIDE_ASK:
            buy += sz
            if sz >= lot:
                lb += sz
        elif t_side[j] == SIDE_BID:
            sell += sz
            if sz >= lot:
                ls += sz
        n += 1
    R = bid.shape[0]
    sb = 0.0
    sa = 0.0
    if best_bid >= 0:
        for i in range(levels):
            r = best_bid - base - i
            if 0 <= r < R:
                sb += bid[r]
    if best_ask >= 0:
        for i in range(levels):
            r = best_ask - base + i
            if 0 <= r < R:
                sa += ask[r]
    out[0] = buy - sell
    out[1] = buy
    out[2] = sell
    out[3] = lb
    out[4] = ls
    out[5] = (sb - sa) / (sb + sa) if sb + sa > 0 else 0.0
    out[6] = n
    return n


