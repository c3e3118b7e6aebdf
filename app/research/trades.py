"""The trade result of a signal, and the random-entry baseline measured the same way.

One function, :func:`trade_result`, turns a :class:`~app.analysis.frame.Signal` and its
:class:`~app.analysis.frame.SignalOutcome` into what a trader would have booked for one
contract: exit ticks in the signal's favour and net USD after costs. Every figure of
``mia-elite evaluate`` goes through it, for the real signals and for the random entries alike.

When the outcome model books fills itself (an outcome with ``exit_ticks`` / ``net_usd`` fields,
as the paper fill model gives them), those numbers are used as they are. Otherwise, from today's
first-touch outcome: target first = ``+target distance``; stop first = ``-(stop distance + stop
slippage)``; neither (the data ended, or nothing was touched) = the last known forward move (15,
5 or 1 minutes, else 0), a time exit. Net USD = ``ticks x tick value - 2 x commission``
(commission per contract per side, both sides paid).

The random baseline (:func:`random_baseline`) draws, for each real signal, an entry with the same
side and the same bracket distances at the same time of day (within ``window_s``) in a session
chosen at random among those evaluated, enters at the last trade price at or before that time,
and follows it with the same outcome tracker as the real signals
(:class:`app.analysis.outcomes.OutcomeTracker`), then scores it with :func:`trade_result`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.analysis.frame import Signal, SignalOutcome
from app.analysis.outcomes import OutcomeTracker

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
    ex = getattr(outcome, "exit_ticks", None)
    net = getattr(outcome, "net_usd", None)
    if ex is not None:  # the fill model booked it
        ticks = float(ex)
        usd = float(net) if net is not None else ticks * tick_value - cost
        return TradeResult(ticks, usd, first is not None, first == "target")
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


def follow(signals, trade_ts: np.ndarray, trade_px: np.ndarray) -> dict[int, SignalOutcome]:
    """Outcomes of ``signals`` on one session's trades, by the engine's outcome tracker.

    Parameters
    ----------
    signals : sequence of Signal
        Any order; ids must be unique.
    trade_ts : np.ndarray, int64 ns, shape (T,), ascending
    trade_px : np.ndarray, int64 ticks, shape (T,)

    Returns
    -------
    dict
        Signal id -> SignalOutcome (ended early where the trades ran out).

    Notes
    -----
    The trades are fed in :data:`FEED_NS` slices and each signal is added when market time
    reaches it, as the engine does step by step, so a signal only ever sees later trades.
    """
    tr = OutcomeTracker()
    sigs = sorted(signals, key=lambda s: s.ts)
    if not sigs or trade_ts.shape[0] == 0:
        for s in sigs:
            tr.add(s)
        tr.finish()
        return dict(tr.outcomes)
    k = 0
    t = int(sigs[0].ts)
    end = int(trade_ts[-1])
    i0 = int(np.searchsorted(trade_ts, t, side="right"))
    while True:
        t1 = t + FEED_NS
        while k < len(sigs) and sigs[k].ts < t1:
            tr.add(sigs[k])
            k += 1
        i1 = int(np.searchsorted(trade_ts, t1, side="right"))
        tr.update(trade_ts[i0:i1], trade_px[i0:i1], min(t1, end))
        i0 = i1
        t = t1
        if t >= end and k >= len(sigs):
            break
        if k >= len(sigs) and all(o.complete for o in tr.outcomes.values()):
            break  # every outcome is final
    tr.finish()
    return dict(tr.outcomes)


@dataclass
class SessionTrades:
    """A session's trades for the baseline: ``sid`` (session id), ``start_ns`` (session open, or
    the first event when the instrument has no calendar), ``ts`` (int64 ns), ``px`` (int64 ticks)."""

    sid: str
    start_ns: int
    ts: np.ndarray
    px: np.ndarray


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
                    stop_slippage_ticks: float = 0.0, window_s: float = 1800.0) -> Baseline:
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
        stop_d = abs(int(sig.entry) - int(sig.stop))
        tgt_d = abs(int(sig.target) - int(sig.entry))
        picks = rng.integers(0, len(sids), size=draws)
        jit = rng.integers(-w, w + 1, size=draws) if w > 0 else np.zeros(draws, np.int64)
        for b in range(draws):
            st = sessions[sids[int(picks[b])]]
            t = int(np.clip(st.start_ns + off + int(jit[b]), st.ts[0], st.ts[-1]))
            j = max(0, int(np.searchsorted(st.ts, t, side="right")) - 1)
            e = int(st.px[j])
            s = int(sig.side)
            fake[st.sid].append(Signal(id=nid, ts=t, symbol=sig.symbol, side=s, score=0.0, components=(),
                                       reasons=(), entry=e, stop=e - s * stop_d, target=e + s * tgt_d, size=1))
            where[nid] = (b, i)
            nid += 1
    for sid, fs in fake.items():
        if not fs:
            continue
        st = sessions[sid]
        oc = follow(fs, st.ts, st.px)
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
