"""The six DOM detectors (iceberg, wall, ladder, spoofing, absorption, squeeze) in one kernel.

:func:`dom_scan` (numba, ``nogil``, cached) and its plain NumPy twin
:func:`app.analysis.dom_ref.dom_scan_np` read the book and the heatmap history of a
:class:`~app.market.view.MarketView` and write, for each pattern and each book side, the
strongest detection into ``out`` (float64, :data:`DOM_OUT_SHAPE`):

* row ``2 * p + b`` for pattern ``p`` (:data:`DOM_PATTERNS` order) and book side ``b``
  (0 = bid side, 1 = ask side);
* columns ``[strength 0..1 (0 = none), row, value1, value2]``, ``row`` is the heatmap row of the
  price (``price = base + row``), the two values are the pattern's numbers (see
  :data:`DOM_VALUES`);
* rows 12 and 13: this step's book statistics (:data:`DOM_STAT_NAMES`), which
  :class:`DomStats` keeps over the last ``dom.stats_window_s`` to set the thresholds that are
  relative to the instrument (iceberg volume and typical queue, ladder growth, squeeze,
  absorption volume).

The exact rules, units and profile defaults are in ``docs/patterns.md``; the kernel follows them
line by line. Window lengths are given to the kernel in heatmap columns (the newest column,
``C - 1``, is the current one).
"""

from __future__ import annotations

import math

import numpy as np

from app.core.jit import kernel

from app.analysis.kernel_util import median_inplace as _median
from app.analysis.kernel_util import n_hits as _n_hits

DOM_PATTERNS = ("iceberg", "wall", "ladder", "spoofing", "absorption", "squeeze")
#: Names of value1/value2 per pattern (for PatternHit.values).
DOM_VALUES = (
    ("traded", "displayed"),
    ("size", "median"),
    ("levels", "growth"),
    ("pulled_size", "median"),
    ("aggressive", "opposite"),
    ("imbalance", "thin_ratio"),
)
#: Trading direction of a detection on the bid (index 0) / ask (index 1) side, per pattern.
DOM_SIDES = (
    (1, -1),  # iceberg: hidden buyer on the bid is bullish
    (1, -1),  # wall: support / resistance
    (1, -1),  # ladder
    (-1, 1),  # spoofing: a pulled bid was fake support -> bearish
    (1, -1),  # absorption: bids absorbing sellers -> bullish
    (1, -1),  # squeeze: slot 0 = asks thinning with bids heavy -> squeeze up (price: the best ask)
)

#: Detection slots (rows) of ``out``: two per pattern.
N_DOM_SLOTS = 12
#: Shape of the kernels' ``out`` array: the detection slots, then two rows of this step's book
#: statistics (:data:`DOM_STAT_NAMES`), the samples :class:`DomStats` turns into thresholds.
DOM_OUT_SHAPE = (14, 4)
#: The statistics rows, flattened (``out[12:].ravel()``), nan where undefined this step:
#: ``ladder_growth`` = the largest ln(last / first size) of a qualifying ladder run on either side
#: (0 when none); ``thin_ask`` / ``thin_bid`` = size on the ``squeeze_levels`` rows from the ask / bid
#: now over its average over the squeeze window; ``imbalance`` = (B - A) / (B + A) on those rows;
#: ``traded_max`` = the largest volume traded over the iceberg window at a displayed level the
#: iceberg rule reads (either side); ``touch_bid`` / ``touch_ask`` = size at each touch now;
#: ``aggression`` = the larger of the two sides' aggressive volumes ``A`` of the absorption rule
#: (contracts).
DOM_STAT_NAMES = ("ladder_growth", "thin_ask", "thin_bid", "imbalance", "traded_max", "touch_bid",
                  "touch_ask", "aggression")

#: The book side where the reported price lies, per pattern and slot (for the reason text): a squeeze
#: up (slot 0) is found where the asks thin, at the best ask.
DOM_BOOK_SIDES = (("bid", "ask"),) * 5 + (("ask", "bid"),)

(Q_DEPTH, Q_ICE_COLS, Q_ICE_RATIO, Q_ICE_MINVOL, Q_WALL_RATIO, Q_WALL_MIN, Q_WALL_NB, Q_LAD_MIN,
 Q_LAD_STEP, Q_SPOOF_COLS, Q_SPOOF_RATIO, Q_SPOOF_DIST, Q_SPOOF_TRADED, Q_ABS_COLS, Q_ABS_RATIO,
 Q_ABS_MINVOL, Q_ABS_GIVE, Q_SQ_LEVELS, Q_SQ_COLS, Q_SQ_THIN, Q_SQ_IMB, Q_SQ_SPREAD, Q_ICE_TYP,
 Q_LAD_GROWTH) = range(24)
N_DOM_PARAMS = 24
#: The slots set from the instrument's own statistics (:meth:`DomStats.apply`): iceberg minimum
#: volume, typical touch queue, ladder growth, squeeze thin ratio and imbalance, absorption minimum
#: volume.
STAT_SLOTS = (Q_ICE_MINVOL, Q_ICE_TYP, Q_LAD_GROWTH, Q_SQ_THIN, Q_SQ_IMB, Q_ABS_MINVOL)
#: Their values while there are no statistics (:func:`dom_params`' default): iceberg, ladder,
#: squeeze and absorption cannot fire.
OFF = (math.inf, 0.0, math.inf, -1.0, math.inf, math.inf)
#: A spoofed level counts as pulled when what is left is at most this fraction of its peak size.
SPOOF_GONE_FRAC = 0.25


def dom_params(section: dict, column_ns: int, stats=None) -> np.ndarray:
    """Pack the profile's ``[dom]`` section into the kernel's float64 vector (24,).

    Windows in seconds become a number of heatmap columns, ``ceil(window_s / column_s)``, at least 1.

    Parameters
    ----------
    section : dict
        The profile's ``[dom]`` section.
    column_ns : int
        Heatmap column width, ns.
    stats : sequence of 6 float, optional
        The thresholds relative to the instrument (:data:`STAT_SLOTS` order: iceberg minimum
        volume, typical touch size (contracts), ladder growth (ln ratio), squeeze thin ratio,
        squeeze imbalance, absorption minimum volume (contracts)), normally set each step by
        :meth:`DomStats.apply`; default :data:`OFF` (iceberg, ladder, squeeze and absorption
        cannot fire).
    """
    col_s = max(column_ns, 1) / 1e9

    def cols(s):
        return float(max(1, math.ceil(s / col_s - 1e-9)))

    s = section
    p = np.array(
        [
            s["depth_levels"], cols(s["iceberg_window_s"]), s["iceberg_ratio"], math.inf,
            s["wall_ratio"], s["wall_min_size"], s["wall_neighbours"], s["ladder_min_levels"],
            s["ladder_step_ratio"], cols(s["spoof_window_s"]), s["spoof_ratio"], s["spoof_distance_ticks"],
            s["spoof_max_traded_frac"], cols(s["absorption_window_s"]), s["absorption_ratio"],
            math.inf, s["absorption_max_give_ticks"], s["squeeze_levels"],
            cols(s["squeeze_window_s"]), -1.0, math.inf,
            s["squeeze_max_spread_ticks"], 0.0, math.inf,
        ],
        dtype=np.float64,
    )
    for slot, x in zip(STAT_SLOTS, OFF if stats is None else stats):
        p[slot] = x
    return p


@kernel
def _side_median(book, touch, step, n, R, buf):
    """Median of the non-empty sizes among the first ``n`` rows of one side from the touch
    (``buf``: a scratch row of the kernel state, length R)."""
    k = 0
    r = touch
    for _ in range(n):
        if r < 0 or r >= R:
            break
        if book[r] > 0:
            buf[k] = book[r]
            k += 1
        r += step
    if k == 0:
        return 0.0
    return _median(buf, 0, k)


#: Running sums kept between calls (:func:`new_dom_state`), rows of ``sums`` (float64 (12, R));
#: the last two rows are scratch space for the kernel (no allocation per call).
S_ICE_SELL, S_ICE_BUY, S_ICE_HBID, S_ICE_HASK, S_ICE_NBID, S_ICE_NASK, S_ABS_SELL, S_ABS_BUY, \
    S_SP_SELL, S_SP_BUY, S_SCRATCH_MED, S_SCRATCH_PEAK = range(12)
N_SUMS = 10
#: meta (int64 (10,)): valid, base, C, last closed absolute column, nI, nA, nS, advances since
#: rebuild, band low row, band high row (exclusive). Only the rows of the band are kept up to date.
REBUILD_EVERY = 1024  # full recompute after this many incremental advances (bounds float drift)
BAND_MARGIN = 16  # rows kept beyond those needed now, so the touch can move before a rebuild
EPS = 1e-9


def new_dom_state(rows: int):
    """Fresh running-sum state for :func:`dom_scan`: ``(sums float64 (12, rows), meta int64 (10,))``
    (10 rows of window sums, 2 of scratch)."""
    return np.zeros((N_SUMS + 2, rows)), np.zeros(10, np.int64)


@kernel
def _add_col(sums, k, arr, c, sign, lo, hi):
    row = arr[c]
    for r in range(lo, hi):
        sums[k, r] += sign * row[r]


@kernel
def _add_count(sums, k, arr, c, sign, lo, hi):
    row = arr[c]
    for r in range(lo, hi):
        if row[r] > 0:
            sums[k, r] += sign


@kernel
def _update_sums(hb, ha, tb, tsell, base, col0, nI, nA, nS, need_lo, need_hi, sums, meta):
    """Bring the closed-column sums of rows ``[need_lo, need_hi)`` up to date.

    Incremental (add the columns that closed, drop those that left each window) while the row
    grid, the column count, the windows and the kept row band are unchanged; otherwise rebuilt
    over a band of ``BAND_MARGIN`` rows around the needed ones.
    """
    C = hb.shape[0]
    R = hb.shape[1]
    last = col0 + C - 2  # absolute index of the newest closed column
    d = last - meta[3]
    nmax = max(nI, max(nA, nS))
    ok = (meta[0] == 1 and meta[1] == base and meta[2] == C and meta[4] == nI and meta[5] == nA
          and meta[6] == nS and d >= 0 and d <= C - 1 - nmax and meta[7] < REBUILD_EVERY
          and meta[8] <= need_lo and need_hi <= meta[9])
    if ok:
        if d == 0:
            return
        lo = meta[8]
        hi = meta[9]
        for col in range(C - 1 - d, C - 1):  # columns that closed since the last call
            for sgn in (1.0, -1.0):
                c = col if sgn > 0 else col - nI
                if nI > 0:
                    _add_col(sums, S_ICE_SELL, tsell, c, sgn, lo, hi)
                    _add_col(sums, S_ICE_BUY, tb, c, sgn, lo, hi)
                    _add_col(sums, S_ICE_HBID, hb, c, sgn, lo, hi)
                    _add_col(sums, S_ICE_HASK, ha, c, sgn, lo, hi)
                    _add_count(sums, S_ICE_NBID, hb, c, sgn, lo, hi)
                    _add_count(sums, S_ICE_NASK, ha, c, sgn, lo, hi)
                c = col if sgn > 0 else col - nA
                if nA > 0:
                    _add_col(sums, S_ABS_SELL, tsell, c, sgn, lo, hi)
                    _add_col(sums, S_ABS_BUY, tb, c, sgn, lo, hi)
                c = col if sgn > 0 else col - nS
                if nS > 0:
                    _add_col(sums, S_SP_SELL, tsell, c, sgn, lo, hi)
                    _add_col(sums, S_SP_BUY, tb, c, sgn, lo, hi)
        meta[7] += d
    else:
        lo = max(0, need_lo - BAND_MARGIN)
        hi = min(R, need_hi + BAND_MARGIN)
        sums[:, :] = 0.0
        for c in range(C - 1 - nI, C - 1):
            _add_col(sums, S_ICE_SELL, tsell, c, 1.0, lo, hi)
            _add_col(sums, S_ICE_BUY, tb, c, 1.0, lo, hi)
            _add_col(sums, S_ICE_HBID, hb, c, 1.0, lo, hi)
            _add_col(sums, S_ICE_HASK, ha, c, 1.0, lo, hi)
            _add_count(sums, S_ICE_NBID, hb, c, 1.0, lo, hi)
            _add_count(sums, S_ICE_NASK, ha, c, 1.0, lo, hi)
        for c in range(C - 1 - nA, C - 1):
            _add_col(sums, S_ABS_SELL, tsell, c, 1.0, lo, hi)
            _add_col(sums, S_ABS_BUY, tb, c, 1.0, lo, hi)
        for c in range(C - 1 - nS, C - 1):
            _add_col(sums, S_SP_SELL, tsell, c, 1.0, lo, hi)
            _add_col(sums, S_SP_BUY, tb, c, 1.0, lo, hi)
        meta[0] = 1
        meta[1] = base
        meta[2] = C
        meta[4] = nI
        meta[5] = nA
        meta[6] = nS
        meta[7] = 0
        meta[8] = lo
        meta[9] = hi
    meta[3] = last


@kernel
def dom_scan(bid, ask, hb, ha, tb, tsell, best_bid, best_ask, base, col0, params, sums, meta, out):
    """Run the six DOM detectors (numba). See the module docstring for ``out``.

    Window sums over the heatmap's **closed** columns are kept in ``sums``/``meta`` between calls
    and advanced incrementally while the row grid (``base``) and the column count stay the same
    (a new column adds one column and drops the one that left each window); anything else, or
    every :data:`REBUILD_EVERY` advances, rebuilds them from scratch. The open column is always
    read fresh. Results equal :func:`app.analysis.dom_ref.dom_scan_np` (which recomputes
    everything) up to rounding.

    Parameters
    ----------
    bid, ask : float64 (R,)
        Resting size per row now, contracts.
    hb, ha, tb, tsell : float32 (C, R)
        Heatmap history **time-major** (the transpose of the MarketView's ``(R, C)``
        ``hist_bid``, ``hist_ask``, ``traded_buy``, ``traded_sell``; pass ``view.hist_bid.T``):
        row ``C - 1`` is the current (open) column.
    best_bid, best_ask : int
        Ticks (-1 = side empty).
    base : int
        Price of row 0, ticks.
    col0 : int
        Absolute index of column 0 (``view.col_t0 // view.column_ns``).
    params : float64 (24,)
        :func:`dom_params`, with the :data:`STAT_SLOTS` set by :meth:`DomStats.apply`.
    sums, meta : from :func:`new_dom_state` (updated in place)
    out : float64 :data:`DOM_OUT_SHAPE`
        Overwritten: rows 0..11 the detections, rows 12..13 this step's statistics
        (:data:`DOM_STAT_NAMES`).

    Returns
    -------
    int
        Number of detections (rows of ``out`` with strength > 0). The kernels return a count,
        not ``out``: boxing a returned array costs more than the scan itself.
    """
    out[:, :] = 0.0
    out[12, 1:] = np.nan
    out[13, 1:3] = np.nan
    R = bid.shape[0]
    C = hb.shape[0]
    if C == 0:
        return 0
    nI = min(C - 1, int(params[Q_ICE_COLS]) - 1)
    nA = min(C - 1, int(params[Q_ABS_COLS]) - 1)
    nS = min(C - 1, int(params[Q_SPOOF_COLS]))
    depth = int(params[Q_DEPTH])
    bb = best_bid - base if best_bid >= 0 else -1
    ba = best_ask - base if best_ask >= 0 else -1
    reach = max(depth, int(params[Q_SPOOF_DIST]) + 1) + 1  # rows from a touch whose sums are read
    need_lo = R
    need_hi = 0
    for t in (bb, ba):
        if 0 <= t < R:
            need_lo = min(need_lo, max(0, t - reach))
            need_hi = max(need_hi, min(R, t + reach + 1))
    if need_hi > need_lo:
        _update_sums(hb, ha, tb, tsell, base, col0, nI, nA, nS, need_lo, need_hi, sums, meta)
    o = C - 1  # the open column
    nb = int(params[Q_WALL_NB])
    peakbuf = sums[S_SCRATCH_PEAK]  # length R >= the spoofing rows read
    for b in range(2):
        if b == 0:
            book = bid
            hist = hb
            hit = tsell  # aggressive sells hit the bid
            opp = tb
            touch = bb
            step = -1
            k_ice, k_h, k_n, k_abs, k_opp, k_sp = S_ICE_SELL, S_ICE_HBID, S_ICE_NBID, S_ABS_SELL, S_ABS_BUY, S_SP_SELL
        else:
            book = ask
            hist = ha
            hit = tb
            opp = tsell
            touch = ba
            step = 1
            k_ice, k_h, k_n, k_abs, k_opp, k_sp = S_ICE_BUY, S_ICE_HASK, S_ICE_NASK, S_ABS_BUY, S_ABS_SELL, S_SP_BUY
        if touch < 0 or touch >= R:
            continue
        out[13, 1 + b] = book[touch]
        med = _side_median(book, touch, step, nb, R, sums[S_SCRATCH_MED])
        # ---- iceberg
        for k in range(depth):
            r = touch + step * k
            if r < 0 or r >= R:
                break
            if book[r] <= 0:
                continue
            vol = sums[k_ice, r] + hit[o, r]
            if vol > out[13, 0]:
                out[13, 0] = vol  # traded_max
            n = sums[k_n, r]
            dmax = book[r]
            if n > 0 and sums[k_h, r] / n > dmax:
                dmax = sums[k_h, r] / n
            if params[Q_ICE_TYP] > dmax:  # a thin level is measured against the typical queue
                dmax = params[Q_ICE_TYP]
            if vol > 0 and vol > params[Q_ICE_MINVOL] and vol >= params[Q_ICE_RATIO] * dmax:
                s = min(1.0, 0.5 * (vol / dmax) / params[Q_ICE_RATIO])
                if s > out[b, 0]:
                    out[b, 0] = s
                    out[b, 1] = r
                    out[b, 2] = vol
                    out[b, 3] = dmax
        # ---- wall
        if med > 0:
            for k in range(depth):
                r = touch + step * k
                if r < 0 or r >= R:
                    break
                sz = book[r]
                if sz >= params[Q_WALL_MIN] and sz >= params[Q_WALL_RATIO] * med:
                    s = min(1.0, 0.5 * (sz / med) / params[Q_WALL_RATIO])
                    if s > out[2 + b, 0]:
                        out[2 + b, 0] = s
                        out[2 + b, 1] = r
                        out[2 + b, 2] = sz
                        out[2 + b, 3] = med
        # ---- ladder: runs of sizes stepping up away from the touch, starting within depth; the
        # run's growth ln(last / first) must exceed the instrument's usual growth (Q_LAD_GROWTH)
        minlev = int(params[Q_LAD_MIN])
        lmin = (minlev - 1) * math.log(max(params[Q_LAD_STEP], 1.0 + EPS))
        for k in range(depth):
            r0 = touch + step * k
            if r0 < 0 or r0 >= R:
                break
            if book[r0] > 0:
                n = 1
                r = r0
                while True:
                    r2 = r + step
                    if r2 < 0 or r2 >= R or book[r2] <= 0 or book[r2] < params[Q_LAD_STEP] * book[r]:
                        break
                    n += 1
                    r = r2
                if n >= minlev:
                    g = math.log(book[r] / book[r0])
                    if g > out[12, 0]:
                        out[12, 0] = g  # ladder_growth
                    if g > params[Q_LAD_GROWTH]:
                        s = min(1.0, 0.5 * g / max(params[Q_LAD_GROWTH], lmin))
                        if s > out[4 + b, 0]:
                            out[4 + b, 0] = s
                            out[4 + b, 1] = r0
                            out[4 + b, 2] = n
                            out[4 + b, 3] = g
        # ---- spoofing: a large order near the touch vanished without trading
        if med > 0:
            ns = 0
            for k in range(int(params[Q_SPOOF_DIST]) + 1):
                r = touch + step * k
                if r < 0 or r >= R:
                    break
                ns += 1
            slo = touch - ns + 1 if b == 0 else touch  # the same rows, ascending
            for k in range(ns):
                peakbuf[k] = 0.0
            for c in range(C - 1 - nS, C - 1):
                for k in range(ns):
                    x = hist[c, slo + k]
                    if x > peakbuf[k]:
                        peakbuf[k] = x
            for k in range(ns):
                r = touch + step * k
                peak = peakbuf[r - slo]
                traded = sums[k_sp, r] + hit[o, r]
                if (
                    peak >= params[Q_SPOOF_RATIO] * med
                    and peak >= params[Q_WALL_MIN]
                    and book[r] <= SPOOF_GONE_FRAC * peak
                    and traded <= params[Q_SPOOF_TRADED] * peak
                ):
                    s = min(1.0, 0.5 * (peak / med) / params[Q_SPOOF_RATIO])
                    if s > out[6 + b, 0]:
                        out[6 + b, 0] = s
                        out[6 + b, 1] = r
                        out[6 + b, 2] = peak
                        out[6 + b, 3] = med
        # ---- absorption: heavy one-way aggression into the touch, all within `give` ticks.
        # Rows on both sides of the touch: a bid that slid down under selling took it above today's
        # touch, and those rows must count (they widen the span, so the level "gave way").
        give = int(params[Q_ABS_GIVE])
        agg = 0.0
        other = 0.0
        lo_r = R
        hi_r = -1
        r_from = max(0, touch - depth)
        r_to = min(R - 1, touch + depth)
        for r in range(r_from, r_to + 1):
            v = sums[k_abs, r] + hit[o, r]
            if v > EPS:
                agg += v
                if r < lo_r:
                    lo_r = r
                if r > hi_r:
                    hi_r = r
            other += sums[k_opp, r] + opp[o, r]
        if agg > out[13, 3]:
            out[13, 3] = agg  # aggression
        if agg > 0 and agg > params[Q_ABS_MINVOL] and agg >= params[Q_ABS_RATIO] * other and hi_r - lo_r <= give:
            held = (touch >= lo_r) if b == 0 else (touch <= hi_r)
            if held:
                rr = agg / (params[Q_ABS_RATIO] * other) if other > EPS else 2.0
                mv = agg / params[Q_ABS_MINVOL] if params[Q_ABS_MINVOL] > 0 else 2.0
                s = min(1.0, 0.25 * min(rr, 2.0) + 0.25 * min(mv, 2.0))
                out[8 + b, 0] = s
                out[8 + b, 1] = lo_r if b == 0 else hi_r
                out[8 + b, 2] = agg
                out[8 + b, 3] = other
    # ---- squeeze (needs both sides)
    if 0 <= bb < R and 0 <= ba < R:
        k = int(params[Q_SQ_LEVELS])
        w = min(C - 1, int(params[Q_SQ_COLS]))
        kb = min(k, bb + 1)
        ka = min(k, R - ba)
        bnow = 0.0
        anow = 0.0
        for i in range(kb):
            bnow += bid[bb - i]
        for i in range(ka):
            anow += ask[ba + i]
        bavg = 0.0
        aavg = 0.0
        for c in range(C - 1 - w, C - 1):
            for i in range(kb):
                bavg += hb[c, bb - i]
            for i in range(ka):
                aavg += ha[c, ba + i]
        if w > 0:
            bavg /= w
            aavg /= w
        tot = bnow + anow
        out[12, 1] = anow / aavg if aavg > 0 else np.nan
        out[12, 2] = bnow / bavg if bavg > 0 else np.nan
        out[12, 3] = (bnow - anow) / tot if tot > 0 else np.nan
        spread = ba - bb
        if tot > 0 and spread <= params[Q_SQ_SPREAD]:
            imb = (bnow - anow) / tot
            thr = params[Q_SQ_IMB]
            for b in range(2):
                thin = anow if b == 0 else bnow
                avg = aavg if b == 0 else bavg
                sim = imb if b == 0 else -imb
                if avg > 0 and thin <= params[Q_SQ_THIN] * avg and sim >= thr and sim > 0:
                    tr = thin / avg
                    q = params[Q_SQ_THIN] / tr if tr > 0 else 4.0
                    s = min(1.0, 0.25 * (sim / thr if thr > 0 else 2.0) + 0.25 * min(q, 4.0))
                    out[10 + b, 0] = s
                    out[10 + b, 1] = ba if b == 0 else bb
                    out[10 + b, 2] = sim
                    out[10 + b, 3] = tr
    return _n_hits(out, N_DOM_SLOTS)




class DomStats:
    """The instrument's own recent book statistics, turned into the relative DOM thresholds.

    Each analysis step :meth:`add` keeps the kernel's statistics rows (``out[12:14]``,
    :data:`DOM_STAT_NAMES`) with their market time; :meth:`apply` writes the thresholds of
    :data:`STAT_SLOTS` into the kernel's params from the samples of the last
    ``dom.stats_window_s`` seconds (recomputed every :attr:`REFRESH` steps):

    * ``Q_ICE_MINVOL`` = the ``iceberg_quantile`` of ``traded_max`` (the most traded at one
      displayed level over the iceberg window): an iceberg trades more at one price than the
      book's busiest level usually does;
    * ``Q_ICE_TYP`` = the median of ``touch_bid`` and ``touch_ask`` (contracts): the typical
      queue, the least displayed size an iceberg's traded volume is compared with;
    * ``Q_LAD_GROWTH`` = the ``ladder_quantile`` of ``ladder_growth``: a ladder must grow more
      than the book's usual shape does;
    * ``Q_SQ_THIN`` = the ``squeeze_quantile`` of ``thin_ask`` and ``thin_bid`` pooled;
      ``Q_SQ_IMB`` = the larger of ``squeeze_imbalance`` and the ``1 - squeeze_quantile``
      quantile of ``imbalance`` and ``-imbalance`` pooled;
    * ``Q_ABS_MINVOL`` = the ``absorption_quantile`` of ``aggression``: absorption needs heavier
      one-way aggression than the instrument usually sees.

    Until the samples span ``dom.stats_min_s`` of market time the slots stay "off" (:data:`OFF`:
    iceberg, ladder, squeeze and absorption do not fire). Quantiles: :func:`numpy.quantile` (linear), nan samples left
    out. Time is the data's, so a replay gives the same thresholds as the live run.

    Parameters
    ----------
    section : dict
        The profile's ``[dom]`` section.
    capacity : int
        Samples kept (the oldest drop first); 8192 covers 600 s at 100 ms steps.
    """

    REFRESH = 40  # steps between recomputations of the quantiles

    def __init__(self, section: dict, capacity: int = 8192):
        self.window_ns = int(section["stats_window_s"] * 1e9)
        self.min_ns = int(section["stats_min_s"] * 1e9)
        self.q_ice = float(section["iceberg_quantile"])
        self.q_lad = float(section["ladder_quantile"])
        self.q_sq = float(section["squeeze_quantile"])
        self.q_abs = float(section["absorption_quantile"])
        self.imb_floor = float(section["squeeze_imbalance"])
        self.buf = np.full((capacity, 8), np.nan)
        self.ts = np.zeros(capacity, np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget every sample (market time went back: a replay restarted)."""
        self.n = 0
        self._since = self.REFRESH
        self.values = None  # thresholds per STAT_SLOTS, None = off

    def add(self, ts: int, out: np.ndarray) -> None:
        """Keep this step's statistics rows ``out[12:14]`` (float64) at market time ``ts`` (ns)."""
        i = self.n % self.buf.shape[0]
        self.buf[i, :4] = out[12]
        self.buf[i, 4:] = out[13]
        self.ts[i] = ts
        self.n += 1
        self._since += 1

    def thresholds(self, now: int):
        """The :data:`STAT_SLOTS` values from the samples of the window ending at ``now`` (ns).

        Returns
        -------
        tuple of float or None
            ``(iceberg_min_volume, typical_touch, ladder_growth, squeeze_thin, squeeze_imbalance,
            absorption_min_volume)`` (contracts, contracts, ln ratio, ratio, -1..1, contracts); None
            while the samples span less than ``stats_min_s``.
        """
        k = min(self.n, self.buf.shape[0])
        if k == 0:
            return None
        keep = self.ts[:k] >= now - self.window_ns
        if not keep.any() or now - int(self.ts[:k][keep].min()) < self.min_ns or keep.sum() < 20:
            return None
        b = self.buf[:k][keep]

        def q(x, p):
            x = x[np.isfinite(x)]
            return float(np.quantile(x, p)) if x.size else math.nan

        vol = q(b[:, 4], self.q_ice)
        typ = q(b[:, 5:7].ravel(), 0.5)
        lad = q(b[:, 0], self.q_lad)
        thin = q(b[:, 1:3].ravel(), self.q_sq)
        imb = q(np.concatenate([b[:, 3], -b[:, 3]]), 1.0 - self.q_sq)
        agg = q(b[:, 7], self.q_abs)
        return (vol if vol == vol else math.inf, typ if typ == typ else 0.0, lad if lad == lad else math.inf,
                thin if thin == thin else -1.0, max(self.imb_floor, imb) if imb == imb else math.inf,
                agg if agg == agg else math.inf)

    def apply(self, params: np.ndarray, now: int, force: bool = False) -> None:
        """Write the thresholds into ``params`` (float64 (24,)), recomputed every :attr:`REFRESH`
        steps (or with ``force``); "off" values while there are too few statistics."""
        if force or self._since >= self.REFRESH:
            self._since = 0
            self.values = self.thresholds(now)
        v = self.values
        if v is None:
            v = OFF
        for slot, x in zip(STAT_SLOTS, v):
            params[slot] = x
