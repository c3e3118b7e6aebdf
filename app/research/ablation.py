"""Attribution by ablation: the analyzers with one pattern switched off.

:class:`AblatedAnalyzers` is :class:`app.analysis.analyzers.Analyzers` whose detections of the
named patterns are dropped before the elite gate sees them, so the signals of a run without a
pattern are those the profile would have produced had the pattern never existed (not the
signals that merely cite it). ``mia-elite evaluate`` compares a profile's result with and
without each pattern its signals cite.
"""

from __future__ import annotations

from app.analysis.analyzers import Analyzers


class AblatedAnalyzers(Analyzers):
    """Analyzers without the patterns in ``removed``.

    Parameters
    ----------
    profile, instrument, vix_history, use_numba, first_signal_id
        As :class:`~app.analysis.analyzers.Analyzers`.
    removed : iterable of str
        Pattern names (``docs/patterns.md``) whose hits are dropped in every family.
    """

    def __init__(self, profile, instrument, vix_history=None, use_numba: bool = True,
                 first_signal_id: int = 1, removed=()):
        super().__init__(profile, instrument, vix_history=vix_history, use_numba=use_numba,
                         first_signal_id=first_signal_id)
        self.removed = frozenset(removed)

    def _keep(self, hits):
        return [h for h in hits if h.name not in self.removed]

    def _dom(self, v):
        return self._keep(super()._dom(v))

    def _bars(self, v):
        return self._keep(super()._bars(v))

    def _adv_trades(self, v):
        return self._keep(super()._adv_trades(v))
