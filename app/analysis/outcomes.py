"""Signal outcomes: every signal followed forward on the trades that come after it.

For a signal with side ``s`` and entry ``E`` (ticks), each later trade at price ``P`` is a move of
``s x (P - E)`` ticks in the signal's favour. The tracker records the move at 1, 5 and 15 minutes
of market time (the last trade at or before the horizon), the maximum favourable excursion
(MFE, >= 0) and maximum adverse excursion (MAE, >= 0, ticks against), and which of target or
stop was touched first (a trade at or beyond it). Per pattern, the precision is
``target first / decided`` over the signals whose reasons include that pattern.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from app.analysis.frame import Signal, SignalOutcome

HORIZONS_NS = (60_000_000_000, 300_000_000_000, 900_000_000_000)


class _Track:
    __slots__ = ("sig", "out", "last_fav", "last_ts")

    def __init__(self, sig: Signal):
        self.sig = sig
        self.out = SignalOutcome(signal_id=sig.id)
        self.last_fav = 0.0
        self.last_ts = sig.ts


class OutcomeTracker:
    """Follows signals forward.

    Call :meth:`add` for each new signal and :meth:`update` each analysis step with the recent
    trades; :attr:`outcomes` holds the latest :class:`SignalOutcome` per signal id.
    """

    def __init__(self):
        self.outcomes: dict[int, SignalOutcome] = {}
        self._open: dict[int, _Track] = {}
        self._signals: dict[int, Signal] = {}
        self._seen_ts = -1  # newest trade time applied to every open signal
        self._next_due = None  # earliest horizon still pending, ns
        self._precision: dict | None = {}

    def add(self, sig: Signal) -> None:
        """Start following ``sig``."""
        self._open[sig.id] = _Track(sig)
        self._signals[sig.id] = sig
        self.outcomes[sig.id] = self._open[sig.id].out
        self._seen_ts = -1
        self._next_due = None
        self._precision = None

    def update(self, t_ts: np.ndarray, t_price: np.ndarray, now: int) -> bool:
        """Apply trades (ts int64 ns ascending, price int64 ticks) up to market time ``now``.

        Only trades later than what a signal has already seen are applied. Returns True when
        some outcome changed.
        """
        if not self._open:
            return False
        newest = int(t_ts[-1]) if t_ts.shape[0] else -1
        if newest <= self._seen_ts and (self._next_due is None or now < self._next_due):
            return False  # nothing new to apply and no horizon passed
        changed = False
        done = []
        for sid, tr in self._open.items():
            k = int(np.searchsorted(t_ts, tr.last_ts, side="right"))
            o = tr.out
            s = tr.sig.side
            mfe, mae, first = o.mfe, o.mae, o.first
            moves = [o.move_1m, o.move_5m, o.move_15m]
            if k < t_ts.shape[0]:
                ts = t_ts[k:]
                fav = s * (t_price[k:].astype(np.float64) - tr.sig.entry)
                for h, hn in enumerate(HORIZONS_NS):
                    if moves[h] is None:
                        edge = tr.sig.ts + hn
                        j = int(np.searchsorted(ts, edge, side="right"))
                        if j < ts.shape[0] or now >= edge:  # the horizon has passed
                            moves[h] = float(fav[j - 1]) if j > 0 else tr.last_fav
                mfe = max(mfe, float(fav.max()))
                mae = max(mae, float(-fav.min()))
                if first is None:
                    tgt = s * (t_price[k:] - tr.sig.target) >= 0
                    stp = s * (t_price[k:] - tr.sig.stop) <= 0
                    it = int(np.argmax(tgt)) if tgt.any() else -1
                    ist = int(np.argmax(stp)) if stp.any() else -1
                    if it >= 0 and (ist < 0 or it <= ist):
                        first = "target" if ist != it else "stop"  # same trade: count the stop
                    elif ist >= 0:
                        first = "stop"
                tr.last_fav = float(fav[-1])
                tr.last_ts = int(ts[-1])
            else:
                for h, hn in enumerate(HORIZONS_NS):
                    if moves[h] is None and now >= tr.sig.ts + hn:
                        moves[h] = tr.last_fav
            complete = first is not None and all(m is not None for m in moves)
            new = replace(o, move_1m=moves[0], move_5m=moves[1], move_15m=moves[2], mfe=mfe, mae=mae,
                          first=first, complete=complete)
            if new != o:
                tr.out = new
                self.outcomes[sid] = new
                changed = True
            if complete:
                done.append(sid)
        for sid in done:
            del self._open[sid]
        self._seen_ts = newest
        due = [tr.sig.ts + hn for tr in self._open.values()
               for hn, m in zip(HORIZONS_NS, (tr.out.move_1m, tr.out.move_5m, tr.out.move_15m)) if m is None]
        self._next_due = min(due) if due else None
        if changed:
            self._precision = None
        return changed

    def finish(self) -> None:
        """Mark every still-open outcome as ended early (the data ended)."""
        for sid, tr in self._open.items():
            self.outcomes[sid] = replace(tr.out, ended_early=True)
        self._open.clear()
        self._precision = None

    def precision(self) -> dict[str, tuple[int, int, float]]:
        """Per pattern name: ``(decided, target_first, precision 0..1)`` (cached until a change)."""
        if self._precision is not None:
            return self._precision
        acc: dict[str, list[int]] = {}
        for sid, o in self.outcomes.items():
            sig = self._signals[sid]
            for name in {r.name for r in sig.reasons}:
                a = acc.setdefault(name, [0, 0])
                if o.first is not None:
                    a[0] += 1
                    a[1] += o.first == "target"
        self._precision = {k: (d, w, (w / d if d else 0.0)) for k, (d, w) in sorted(acc.items())}
        return self._precision
