"""The trade result of a signal, and the random-entry baseline measured the same way.

One function, :func:`trade_result`, turns a :class:`~app.analysis.frame.Signal` and its
:class:`~app.analysis.frame.SignalOutcome` into what a trader would have booked for one
contract: exit ticks in the signal's favour and net USD after costs. Every figure of
``mia-elite evaluate`` goes through it, for the real signals and for the random entries alike.

When the outcome model books fills itself (an outcome with ``ticks`` / ``net_usd``, as
:class:`app.sim.outcomes.OutcomeTracker` books them on the paper fill model: decision delay,
trade-through targets, stop slippage, commission), those numbers are used as they are; an entry
limit it never filled is no trade (0 ticks, 0 USD, not decided). Otherwise, from today's
first-touch outcome: target first = ``+target distance``; stop first = ``-(stop distance + stop
slippage)``; neither (the data ended, or nothing was touched) = the last known forward move (15,
5 or 1 minutes, else 0), a time exit. Net USD = ``ticks x tick value - 2 x commission``
(commission per contract per side, both sides paid).

The random baseline (:func:`random_baseline`) draws, for each real signal, an entry with the same
side and the same bracket distances at the same time of day (within ``window_s``) in a session
chosen at random among those evaluated, enters at the last trade price at or before that time,
and follows it with the same outcome tracker as the real signals
(:class:`app.sim.outcomes.OutcomeTracker`, the paper fill model, on the session's own events),
then scores it with :func:`trade_result`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.analysis.frame import Signal
from app.core.events import Instrument, trade_events
from app.sim.outcomes import OutcomeTracker, SignalOutcome

#: trades fed to the outcome tracker per call (market time), as the engine feeds recent trades
FEED_NS = 300_000_000_000


@dataclass(frozen=True, slots=True)
class TradeResult:
    """One signal's booked result for one contract.

    Attributes
    ----------
    ticks : float
        Exit minus entry in the signal's favour, ticks (stop slippage included).
    net_usd : float
        ``ticks x tick_value - 2 x commission``, USD per contract.
    decided : bool
        Target or stop was touched (False: a time / end-of-data exit).
    target_first : bool
    """

    ticks: float
    net_usd: float
    decided: bool
    target_first: bool


def trade_result(sig: Signal, outcome: SignalOutcome | None, tick_value: float, commission_usd: float = 0.0,
                 stop_slippage_ticks: float = 0.0) -> TradeResult:
    """The booked result of ``sig`` for one contract (see the module docstring).

    Parameters
    ----------
    sig : Signal
        Side +1/-1, entry / stop / target in ticks.
    outcome : SignalOutcome or None
        Its outcome; None counts as an undecided trade with no move (0 ticks).
    tick_value : float
        USD per tick per contract.
    commission_usd : float
        Commission per contract per side, USD.
    stop_slippage_ticks : float
        Adverse ticks added to a stop exit.

    Returns
    -------
    TradeResult
    """
    cost = 2.0 * float(commission_usd)
    first = getattr(outcome, "first", None)
    ex = getattr(outcome, "ticks", None)
    net = getattr(outcome, "net_usd", None)
    if ex is not None:  # the fill model booked it
        ticks = float(ex)
        usd = float(net) if net is not None else ticks * tick_value - cost
        return TradeResult(ticks, usd, first is not None, first == "target")
    if hasattr(outcome, "entry_price") and getattr(outcome, "entry_price", None) is None:
        # the fill model never filled the entry limit (the market did not come back to it):
        # no trade, no commission, not decided
        return TradeResult(0.0, 0.0, False, False)
    if first == "target":
        ticks = float(abs(sig.target - sig.entry))
    elif first == "stop":
        ticks = -float(abs(sig.entry - sig.stop)) - float(stop_slippage_ticks)
    else:
        ticks = 0.0
        if outcome is not None:
            for m in (outcome.move_15m, outcome.move_5m, outcome.move_1m):
                if m is not None:
                    ticks = float(m)
                    break
    return TradeResult(ticks, ticks * tick_value - cost, first is not None, first == "target")


def follow(signals, events: np.ndarray, instrument: Instrument, decision_delay_s: float = 2.0,
           stop_slippage_ticks: int = 1, commission_usd: float = 2.25) -> dict[int, SignalOutcome]:
    """Outcomes of ``signals`` on one session, booked by the engine's outcome tracker.

    Parameters
    ----------
    signals : sequence of Signal
        Any order; ids must be unique; entry / stop / target in ticks.
    events : np.ndarray of EVENT_DTYPE, shape (N,), time order
        The session's market events (book and trades: the fill model queues a target behind the
        displayed size); trades alone work too.
    instrument : Instrument
    decision_delay_s, stop_slippage_ticks, commission_usd
        As the profile's ``[outcomes]`` section (s, ticks, USD per contract per side).

    Returns
    -------
    dict
        Signal id -> SignalOutcome (``ended_early`` where the events ran out).

    Notes
    -----
    Each signal is added when market time reaches it, as the engine does, so a signal only
    ever sees later events.
    """
    tr = OutcomeTracker(instrument, decision_delay_s, int(stop_slippage_ticks), commission_usd)
    sigs = sorted(signals, key=lambda s: s.ts)
    ts = events["ts"] if events.shape[0] else np.zeros(0, np.int64)
    i0 = 0
    for sig in sigs:
        i1 = int(np.searchsorted(ts, int(sig.ts), side="right"))
        if i1 > i0:
            tr.on_market(events[i0:i1])
            i0 = i1
        tr.add(int(sig.id), int(sig.ts), int(sig.side), int(sig.entry), int(sig.stop), int(sig.target),
               [r.name for r in sig.reasons])
    step = 65_536
    while i0 < events.shape[0]:
        tr.on_market(events[i0:i0 + step])
        i0 += step
        if all(o.complete for o in tr.outcomes.values()):
            break  # every outcome is final
    tr.finish()
    return dict(tr.outcomes)


def trades_only(ts: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Trade events (EVENT_DTYPE, size 1, no aggressor) from trade times (int64 ns) and prices
    (int64 ticks), for :func:`follow` when a session's book is not at hand."""
    return trade_events(np.asarray(ts, np.int64), np.asarray(px, np.int64), np.ones(len(ts)),
                        np.zeros(len(ts), np.uint8))


@dataclass
class SessionTrades:
    """A session's trades for the baseline: ``sid`` (session id), ``start_ns`` (session open, or
    the first event when the instrument has no calendar), ``ts`` (int64 ns), ``px`` (int64 ticks),
    and ``events`` (the session's EVENT_DTYPE events for the fill model; None: trades only)."""

    sid: str
    start_ns: int
    ts: np.ndarray
    px: np.ndarray
    events: np.ndarray | None = None

    def market(self) -> np.ndarray:
        """The events the fill model replays: ``events``, else the trades alone."""
        return self.events if self.events is not None else trades_only(self.ts, self.px)


@dataclass
class Baseline:
    """Random entries matched to a profile's signals.

    Attributes
    ----------
    net_usd : np.ndarray, float64, shape (draws, n)
        Net USD per contract of draw b's entry matched to signal i (signals in time order).
    ticks : np.ndarray, float64, shape (draws, n)
    target_first : np.ndarray, bool, shape (draws, n)
    decided : np.ndarray, bool, shape (draws, n)
    """

    net_usd: np.ndarray
    ticks: np.ndarray
    target_first: np.ndarray
    decided: np.ndarray

    @property
    def mean_net(self) -> np.ndarray:
        """Mean net USD per trade of each draw, shape (draws,)."""
        return self.net_usd.mean(axis=1) if self.net_usd.shape[1] else np.zeros(self.net_usd.shape[0])


def random_baseline(signals, signal_sessions, sessions: dict[str, SessionTrades], draws: int,
                    rng: np.random.Generator, tick_value: float, commission_usd: float = 0.0,
                    stop_slippage_ticks: float = 0.0, window_s: float = 1800.0,
                    instrument: Instrument | None = None, decision_delay_s: float = 2.0) -> Baseline:
    """Random entries matched on side, bracket and time of day, ``draws`` per signal.

    Parameters
    ----------
    signals : sequence of Signal
        The profile's signals, in time order.
    signal_sessions : sequence of str
        Session id of each signal.
    sessions : dict
        Session id -> :class:`SessionTrades`, every evaluated session of that instrument.
    draws : int
        Draws per signal (>= 1).
    rng : numpy.random.Generator
    tick_value, commission_usd, stop_slippage_ticks : float
        As :func:`trade_result`.
    window_s : float
        Half-width of the time-of-day window, s: the random time is the signal's offset from its
        session open plus a uniform draw in ``[-window_s, +window_s]``, clipped to the chosen
        session's first and last trade.
    instrument : Instrument, optional
        For the fill model (tick value, symbol); default one with ``tick_value``.
    decision_delay_s : float
        The profile's ``outcomes.decision_delay_s``, so random entries wait as signals do.

    Returns
    -------
    Baseline

    Raises
    ------
    ValueError
        ``draws < 1`` or a signal's session is unknown.
    """
    if draws < 1:
        raise ValueError(f"random_baseline: draws must be >= 1, got {draws}")
    n = len(signals)
    shape = (int(draws), n)
    out = Baseline(np.zeros(shape), np.zeros(shape), np.zeros(shape, bool), np.zeros(shape, bool))
    if n == 0:
        return out
    sids = [s for s in sessions if sessions[s].ts.shape[0] > 0]
    if not sids:
        return out
    fake: dict[str, list] = {s: [] for s in sids}
    where: dict[int, tuple[int, int]] = {}
    nid = 1
    w = int(window_s * 1e9)
    for i, (sig, ss) in enumerate(zip(signals, signal_sessions)):
        if ss not in sessions:
            raise ValueError(f"random_baseline: signal {sig.id} is in unknown session {ss!r}")
        off = int(sig.ts) - int(sessions[ss].start_ns)
        picks = rng.integers(0, len(sids), size=draws)
        jit = rng.integers(-w, w + 1, size=draws) if w > 0 else np.zeros(draws, np.int64)
        for b in range(draws):
            st = sessions[sids[int(picks[b])]]
            t = int(np.clip(st.start_ns + off + int(jit[b]), st.ts[0], st.ts[-1]))
            fake[st.sid].extend(matched_entries(sig, [t], st.ts, st.px, nid))
            where[nid] = (b, i)
            nid += 1
    for sid, fs in fake.items():
        if not fs:
            continue
        st = sessions[sid]
        inst = instrument or Instrument("baseline", 1.0, float(tick_value))
        oc = follow(fs, st.market(), inst, decision_delay_s, int(stop_slippage_ticks), commission_usd)
        for f in fs:
            r = trade_result(f, oc.get(f.id), tick_value, commission_usd, stop_slippage_ticks)
            b, i = where[f.id]
            out.net_usd[b, i] = r.net_usd
            out.ticks[b, i] = r.ticks
            out.target_first[b, i] = r.target_first
            out.decided[b, i] = r.decided
    return out


def drift_ticks(st: SessionTrades) -> float:
    """The session's drift: last trade minus first trade, ticks (``nan`` with no trades)."""
    if st.px.shape[0] == 0:
        return math.nan
    return float(st.px[-1] - st.px[0])


def matched_entries(sig: Signal, times, ts: np.ndarray, px: np.ndarray, first_id: int = 1) -> list[Signal]:
    """Random entries matched to ``sig``: the same side and bracket distances, one per time.

    Parameters
    ----------
    sig : Signal
        The real signal (side, entry / stop / target in ticks).
    times : sequence of int
        Entry times, ns (each within the trades' span).
    ts, px : np.ndarray int64 (M,)
        The session's trade times (ns, ascending) and prices (ticks).
    first_id : int
        Id of the first entry; the others count up from it.

    Returns
    -------
    list of Signal
        Entry at the last trade price at or before each time, stop ``entry - side x stop
        distance``, target ``entry + side x target distance``, size 1.
    """
    stop_d = abs(int(sig.entry) - int(sig.stop))
    tgt_d = abs(int(sig.target) - int(sig.entry))
    s = int(sig.side)
    out = []
    for k, t in enumerate(times):
        j = max(0, int(np.searchsorted(ts, int(t), side="right")) - 1)
        e = int(px[j])
        out.append(Signal(id=int(first_id) + k, ts=int(t), symbol=sig.symbol, side=s, score=0.0, components=(),
                          reasons=(), entry=e, stop=e - s * stop_d, target=e + s * tgt_d, size=1))
    return out


def baseline_rate(target_first: np.ndarray, decided: np.ndarray) -> float:
    """Target-first rate of random entries: per draw ``target firsts / decided`` over the
    matched entries (shape (draws, n) bool arrays), averaged over the draws that decided any;
    ``nan`` when none did (or ``n == 0``)."""
    tf = np.asarray(target_first, bool)
    dec = np.asarray(decided, bool)
    if tf.ndim != 2 or tf.shape[1] == 0:
        return math.nan
    d = dec.sum(axis=1)
    if not np.any(d > 0):
        return math.nan
    return float(np.mean(tf.sum(axis=1)[d > 0] / d[d > 0]))


def _round(x, nd=4):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), nd)


def measure(results, sessions_of, tick_value: float, costs, draws_boot: int, rng) -> dict:
    """Statistics of one set of signals (a profile, or its signals citing a pattern).

    Parameters
    ----------
    results : sequence of (Signal, SignalOutcome or None)
        The signals with their outcomes (booked by :func:`trade_result`).
    sessions_of : sequence
        Session label of each signal (the bootstrap's blocks).
    tick_value : float
        USD per tick per contract.
    costs : (float, float)
        Commission per contract per side (USD) and stop slippage (ticks).
    draws_boot : int
        Session-bootstrap resamples.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``n``, ``sessions``, ``decided``, ``target_first``, ``rate`` with ``rate_ci`` (Wilson,
        :func:`app.research.stats.wilson_interval`), ``breakeven_rate`` (mean over the signals'
        brackets of :func:`app.research.stats.breakeven_rate`, stop slippage added to the stop
        distance, both commissions as the cost), ``expectancy_ticks`` / ``expectancy_usd``
        (``mean``, ``low``, ``high``: :func:`app.research.stats.session_bootstrap_mean`),
        ``total_usd`` and ``_usd`` (np.ndarray float64 (n,), net USD per signal).
    """
    from app.research import stats

    commission, slip = costs
    res = [trade_result(s, o, tick_value, commission, slip) for s, o in results]
    n = len(res)
    dec = sum(r.decided for r in res)
    wins = sum(r.target_first for r in res)
    ticks = np.array([r.ticks for r in res])
    usd = np.array([r.net_usd for r in res])
    m_t = stats.session_bootstrap_mean(ticks, sessions_of, draws_boot, rng=rng) if n else (math.nan,) * 3
    m_u = stats.session_bootstrap_mean(usd, sessions_of, draws_boot, rng=rng) if n else (math.nan,) * 3
    lo, hi = stats.wilson_interval(wins, dec)
    be = [stats.breakeven_rate(abs(s.target - s.entry), abs(s.entry - s.stop) + slip, tick_value, 2 * commission)
          for s, _ in results if s.target != s.entry and s.stop != s.entry] if tick_value > 0 else []
    r = _round
    return {
        "n": n, "sessions": len(set(sessions_of)), "decided": int(dec), "target_first": int(wins),
        "rate": r(wins / dec if dec else math.nan), "rate_ci": [r(lo), r(hi)],
        "breakeven_rate": r(float(np.mean(be)) if be else math.nan),
        "expectancy_ticks": {"mean": r(m_t[0]), "low": r(m_t[1]), "high": r(m_t[2])},
        "expectancy_usd": {"mean": r(m_u[0], 2), "low": r(m_u[1], 2), "high": r(m_u[2], 2)},
        "total_usd": r(float(usd.sum()) if n else 0.0, 2),
        "_usd": usd,
    }
