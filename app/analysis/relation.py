"""The relation between two instruments: rolling return correlation, relative strength, divergence.

Definitions: ``docs/relation.md`` (this module follows it line by line). Inputs are the two
instruments' **last trade prices** (ticks; log returns and ratios do not depend on the unit),
sampled on a **1-second grid** by last value: the value of second ``k`` (the interval
``[k, k+1)`` s since the epoch) is the last trade of that instrument with ``ts < (k+1) s``,
carried forward through seconds without a trade. Two streams with different timestamps thus
meet on one grid. A second is *closed* (computed, never revised) once the market clock (the
newest timestamp seen on either stream, or the ``until_ns`` given) reaches its end; a trade
that arrives after its second closed counts in the second that is open when it arrives.

Per closed second ``k`` where both instruments have a price (``a_k``, ``b_k`` = natural logs of
the sampled prices):

* **return correlation** ``corr_k``: Pearson correlation of the last ``window_s`` pairs of 1-s
  log returns ``(a_j - a_{j-1}, b_j - b_{j-1})``, ``j = k-window_s+1 .. k`` (NaN until
  ``window_s`` returns exist, or when either return series is constant in the window). This is
  what ``pandas.Series.rolling(window_s).corr`` computes on the same returns.
* **relative strength** ``rs_k = (a_k - a_open) - (b_k - b_open)``: the log of the price ratio
  A/B normalised at the session open (``a_open``, ``b_open`` = the first second of the session
  where both have a price); 0 at the open, +0.01 = A outperformed B by about 1 %.
* **divergence**: ``d_k = rs_k - rs_{k-horizon_s}`` (the relative move over the last
  ``horizon_s`` seconds) compared with the pair's own recent distribution of that move: the
  ``history_s`` values ``d_{k-horizon_s-history_s+1} .. d_{k-horizon_s}`` (moves that ended
  before the current one began, so a divergence does not hide itself), mean ``m``, standard
  deviation ``s`` (ddof 1). ``z_k = (d_k - m) / s`` and ``flag_k = sign(d_k - m)`` when
  ``|z_k| > k_sigma``, else 0 (+1: A ran ahead of B, -1: B ran ahead of A). NaN / 0 until the
  history is full, or when ``s == 0``. Stated rate: by Chebyshev's inequality at most
  ``1 / k_sigma**2`` of the values of a distribution lie more than ``k_sigma`` standard
  deviations from its mean, whatever its shape (fat tails included), so while the pair behaves
  as in its recent history the flag fires on at most that share of seconds (6.25 % at the
  default ``k_sigma`` 4; a Gaussian would give 0.006 %).

Everything starts again at each session open of the ``calendar`` (the windows are emptied, the
relative strength is normalised at the new open). Per instrument-second the work is O(window)
in the kernel (two-pass sums, numerically stable), nothing is allocated per call but the
outputs.

:func:`relation_scan` (numba) and its twin :func:`app.analysis.relation_ref.relation_scan_np`
take the sampled log prices and the state; :class:`Relation` does the sampling and holds the
state between batches (incremental: feeding a stream in batches gives the same rows as feeding
it at once, when the batches are cut at one market time for both streams).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.events import KIND_TRADE
from app.core.jit import kernel

NS_PER_S = 1_000_000_000

#: One row per closed second: ``ts`` start of the second (ns since the epoch, UTC), ``corr``
#: return correlation, ``rs`` relative strength (log ratio since the session open), ``z`` the
#: divergence statistic, ``flag`` -1 / 0 / +1, ``a`` / ``b`` the sampled prices (ticks).
RELATION_DTYPE = np.dtype([("ts", "<i8"), ("corr", "<f8"), ("rs", "<f8"), ("z", "<f8"), ("flag", "i1"),
                           ("a", "<f8"), ("b", "<f8")])

# float state: previous log prices, opens
F_PREV_A, F_PREV_B, F_OPEN_A, F_OPEN_B = 0, 1, 2, 3
N_STATE_F = 4
# int state: returns seen, rs values seen, d values seen, has previous, current session, opened
I_NR, I_NRS, I_ND, I_HAS_PREV, I_SESSION, I_OPENED = 0, 1, 2, 3, 4, 5
N_STATE_I = 6


@dataclass(frozen=True)
class RelationParams:
    """Parameters of the relation (``docs/relation.md``).

    Attributes
    ----------
    window_s : int
        Returns in the rolling correlation (seconds of the 1-s grid), >= 2. Default 60.
    horizon_s : int
        Seconds of the relative move tested for divergence, >= 1. Default 10.
    history_s : int
        Past relative moves forming the pair's own distribution, >= 2. Default 120.
    k_sigma : float
        Divergence when the move is more than this many of its standard deviations from its
        mean, > 1 (stated rate at most ``1 / k_sigma**2``). Default 4.

    Raises
    ------
    ValueError
        A parameter outside its range (the message names it).
    """

    window_s: int = 60
    horizon_s: int = 10
    history_s: int = 120
    k_sigma: float = 4.0

    def __post_init__(self) -> None:
        for name, low in (("window_s", 2), ("horizon_s", 1), ("history_s", 2)):
            v = getattr(self, name)
            if int(v) != v or v < low:
                raise ValueError(f"relation {name}: a whole number of seconds >= {low}, got {v!r}")
        if not (math.isfinite(self.k_sigma) and self.k_sigma > 1.0):
            raise ValueError(f"relation k_sigma: a finite number > 1, got {self.k_sigma!r}")

    @property
    def stated_rate(self) -> float:
        """Most share of seconds flagged while the pair behaves as in its history (Chebyshev)."""
        return 1.0 / (self.k_sigma * self.k_sigma)


def new_state(p: RelationParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state of :func:`relation_scan`: (float64 (4,), int64 (6,), returns float64 (2, window_s),
    rs ring float64 (horizon_s + 1,), d ring float64 (history_s + horizon_s,))."""
    sf = np.full(N_STATE_F, np.nan)
    si = np.zeros(N_STATE_I, np.int64)
    si[I_SESSION] = np.iinfo(np.int64).min
    return (sf, si, np.zeros((2, p.window_s)), np.zeros(p.horizon_s + 1),
            np.zeros(p.history_s + p.horizon_s))


@kernel
def relation_scan(la, lb, session, window, horizon, history, k_sigma, sf, si, ring_r, ring_rs, ring_d,
                  out_corr, out_rs, out_z, out_flag):
    """Relation figures for consecutive closed seconds (numba; ``docs/relation.md``).

    Parameters
    ----------
    la, lb : float64 (n,)
        Natural log of each instrument's sampled price per second (NaN: no price yet).
    session : int64 (n,)
        Session key per second (a change starts everything again).
    window, horizon, history : int
        :class:`RelationParams` ``window_s``, ``horizon_s``, ``history_s``.
    k_sigma : float
    sf, si, ring_r, ring_rs, ring_d
        The state (:func:`new_state`), updated in place.
    out_corr, out_rs, out_z : float64 (n,)
    out_flag : int8 (n,)
        Overwritten with the rows.

    Returns
    -------
    int
        Seconds flagged.
    """
    n = la.shape[0]
    flagged = 0
    n_ring_rs = horizon + 1
    n_ring_d = history + horizon
    for k in range(n):
        if session[k] != si[I_SESSION]:
            si[I_SESSION] = session[k]
            si[I_NR] = 0
            si[I_NRS] = 0
            si[I_ND] = 0
            si[I_HAS_PREV] = 0
            si[I_OPENED] = 0
        out_corr[k] = np.nan
        out_rs[k] = np.nan
        out_z[k] = np.nan
        out_flag[k] = 0
        a = la[k]
        b = lb[k]
        if np.isnan(a) or np.isnan(b):
            continue
        if si[I_OPENED] == 0:
            sf[F_OPEN_A] = a
            sf[F_OPEN_B] = b
            si[I_OPENED] = 1
        rs = (a - sf[F_OPEN_A]) - (b - sf[F_OPEN_B])
        out_rs[k] = rs
        # returns and their rolling correlation
        if si[I_HAS_PREV] == 1:
            slot = si[I_NR] % window
            ring_r[0, slot] = a - sf[F_PREV_A]
            ring_r[1, slot] = b - sf[F_PREV_B]
            si[I_NR] += 1
        sf[F_PREV_A] = a
        sf[F_PREV_B] = b
        si[I_HAS_PREV] = 1
        if si[I_NR] >= window:
            ma = 0.0
            mb = 0.0
            for j in range(window):
                ma += ring_r[0, j]
                mb += ring_r[1, j]
            ma /= window
            mb /= window
            sab = 0.0
            saa = 0.0
            sbb = 0.0
            for j in range(window):
                da = ring_r[0, j] - ma
                db = ring_r[1, j] - mb
                sab += da * db
                saa += da * da
                sbb += db * db
            if saa > 0.0 and sbb > 0.0:
                out_corr[k] = sab / math.sqrt(saa * sbb)
        # the relative move over the horizon against its own history
        ring_rs[si[I_NRS] % n_ring_rs] = rs
        si[I_NRS] += 1
        if si[I_NRS] > horizon:
            d = rs - ring_rs[(si[I_NRS] - 1 - horizon) % n_ring_rs]
            ring_d[si[I_ND] % n_ring_d] = d
            si[I_ND] += 1
            if si[I_ND] >= n_ring_d:
                first = si[I_ND] - n_ring_d  # the oldest of the ring: d_{k-horizon-history+1}
                m = 0.0
                for j in range(history):
                    m += ring_d[(first + j) % n_ring_d]
                m /= history
                v = 0.0
                for j in range(history):
                    e = ring_d[(first + j) % n_ring_d] - m
                    v += e * e
                s = math.sqrt(v / (history - 1))
                if s > 0.0:
                    z = (d - m) / s
                    out_z[k] = z
                    if abs(z) > k_sigma:
                        out_flag[k] = 1 if z > 0 else -1
                        flagged += 1
    return flagged


def _session_keys(seconds: np.ndarray, calendar) -> np.ndarray:
    """Session start (ns) of each grid second, by bisection (session starts never decrease)."""
    out = np.zeros(len(seconds), np.int64)
    if calendar is None or not len(seconds):
        return out

    def fill(lo: int, hi: int, s_lo: int, s_hi: int) -> None:  # [lo, hi] inclusive
        if s_lo == s_hi:
            out[lo:hi + 1] = s_lo
            return
        if hi - lo <= 1:
            out[lo], out[hi] = s_lo, s_hi
            return
        mid = (lo + hi) // 2
        s_mid = int(calendar.session_start_ns(int(seconds[mid]) * NS_PER_S))
        fill(lo, mid, s_lo, s_mid)
        fill(mid, hi, s_mid, s_hi)

    n = len(seconds) - 1
    fill(0, n, int(calendar.session_start_ns(int(seconds[0]) * NS_PER_S)),
         int(calendar.session_start_ns(int(seconds[n]) * NS_PER_S)))
    return out


class Relation:
    """The relation of instrument A to instrument B, fed batch by batch (incremental).

    Parameters
    ----------
    params : RelationParams, optional
    calendar : app.core.sessions.SessionCalendar, optional
        Sessions of the pair (the relative strength is normalised, and every window starts
        again, at each open; e.g. ES/NQ: CME Globex). None: one session from the first price.
    use_numba : bool
        False runs the twin :func:`app.analysis.relation_ref.relation_scan_np`.

    Attributes
    ----------
    rows_out : int
        Closed seconds produced so far.
    flagged : int
        Seconds flagged so far.
    """

    def __init__(self, params: RelationParams | None = None, calendar=None, use_numba: bool = True) -> None:
        self.params = params or RelationParams()
        self.calendar = calendar
        if use_numba:
            self._scan = relation_scan
        else:
            from app.analysis.relation_ref import relation_scan_np

            self._scan = relation_scan_np
        self._state = new_state(self.params)
        self._next_sec: int | None = None  # first second not yet closed
        self._last = [math.nan, math.nan]  # last price (ticks) of A, B up to the closed seconds
        self._pending = [(np.zeros(0, np.int64), np.zeros(0)), (np.zeros(0, np.int64), np.zeros(0))]
        self._clock_ns = -1
        self.rows_out = 0
        self.flagged = 0

    @staticmethod
    def trades_of(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ts int64 ns, price float64 ticks) of the trades in an EVENT_DTYPE batch."""
        t = events[events["kind"] == KIND_TRADE]
        return t["ts"].astype(np.int64), t["price"].astype(np.float64)

    def update_events(self, events_a: np.ndarray, events_b: np.ndarray, until_ns: int | None = None) -> np.ndarray:
        """:meth:`update` with the trades of two EVENT_DTYPE batches (either may be empty)."""
        return self.update(*self.trades_of(events_a), *self.trades_of(events_b), until_ns=until_ns)

    def update(self, ts_a, px_a, ts_b, px_b, until_ns: int | None = None) -> np.ndarray:
        """Add trades of A and B and return the rows of the seconds this closes.

        Parameters
        ----------
        ts_a, ts_b : int64 (n,), (m,)
            Trade times, ns since the epoch, non-decreasing per stream.
        px_a, px_b : float64 (n,), (m,)
            Trade prices, ticks of each instrument (> 0).
        until_ns : int, optional
            Market time reached (ns): every second ending at or before it closes. Default: the
            newest trade time seen on either stream.

        Returns
        -------
        numpy.ndarray of RELATION_DTYPE
            One row per newly closed second, in time order (empty when none closed).

        Raises
        ------
        ValueError
            A price that is not positive and finite, or times that go backwards within a stream
            (the message names the stream).
        """
        streams = ((np.asarray(ts_a, np.int64), np.asarray(px_a, np.float64), "A"),
                   (np.asarray(ts_b, np.int64), np.asarray(px_b, np.float64), "B"))
        for i, (ts, px, name) in enumerate(streams):  # check both before taking either
            if len(ts) != len(px):
                raise ValueError(f"relation stream {name}: {len(ts)} times for {len(px)} prices")
            if len(px) and not (np.all(np.isfinite(px)) and np.all(px > 0)):
                raise ValueError(f"relation stream {name}: prices must be positive and finite")
            pt = self._pending[i][0]
            if len(ts) and ((len(pt) and ts[0] < pt[-1]) or np.any(np.diff(ts) < 0)):
                raise ValueError(f"relation stream {name}: trade times go backwards")
        for i, (ts, px, _name) in enumerate(streams):
            pt, pp = self._pending[i]
            if len(ts):
                self._pending[i] = (np.concatenate([pt, ts]), np.concatenate([pp, px]))
                self._clock_ns = max(self._clock_ns, int(ts[-1]))
        clock = self._clock_ns if until_ns is None else max(self._clock_ns, int(until_ns))
        if clock < 0:
            return np.zeros(0, RELATION_DTYPE)
        if self._next_sec is None:
            firsts = [int(p[0][0]) // NS_PER_S for p in self._pending if len(p[0])]
            if not firsts:
                return np.zeros(0, RELATION_DTYPE)
            self._next_sec = min(firsts)
        end_sec = clock // NS_PER_S  # second k = [k, k+1) s is closed once (k+1) s <= clock
        if end_sec <= self._next_sec:
            return np.zeros(0, RELATION_DTYPE)
        grid = np.arange(self._next_sec, end_sec, dtype=np.int64)
        sampled = []
        for i in range(2):
            pt, pp = self._pending[i]
            secs = pt // NS_PER_S
            idx = np.searchsorted(secs, grid, side="right") - 1
            val = np.where(idx >= 0, pp[np.maximum(idx, 0)], self._last[i]) if len(pp) else \
                np.full(len(grid), self._last[i])
            sampled.append(val)
            keep = int(np.searchsorted(secs, end_sec, side="left"))
            if keep:
                self._last[i] = float(pp[keep - 1])
            self._pending[i] = (pt[keep:], pp[keep:])
        self._next_sec = int(end_sec)
        n = len(grid)
        with np.errstate(invalid="ignore", divide="ignore"):
            la, lb = np.log(sampled[0]), np.log(sampled[1])
        rows = np.zeros(n, RELATION_DTYPE)
        corr, rs, z = np.empty(n), np.empty(n), np.empty(n)
        flag = np.zeros(n, np.int8)
        p = self.params
        sf, si, ring_r, ring_rs, ring_d = self._state
        self.flagged += int(self._scan(la, lb, _session_keys(grid, self.calendar), p.window_s, p.horizon_s,
                                       p.history_s, float(p.k_sigma), sf, si, ring_r, ring_rs, ring_d,
                                       corr, rs, z, flag))
        rows["ts"] = grid * NS_PER_S
        rows["corr"], rows["rs"], rows["z"], rows["flag"] = corr, rs, z, flag
        rows["a"], rows["b"] = sampled
        self.rows_out += n
        return rows
