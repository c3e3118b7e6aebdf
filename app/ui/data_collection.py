"""The window's data-collection mode: candidate snapshots recorded, no trades offered.

:class:`DataCollection` owns the checkable "Data collection" action. While it is on, the
engine's research observer (:class:`app.research.live.LiveResearch`) writes every candidate's
features and outcome to ``snapshots/`` in the user data folder (the settings schema has no
``[research]`` section), with the snapshot writer of ``mia-elite evaluate``
(:mod:`app.research.snapshots`, same schema version), and the trading panel opens no order
ticket (its controller's ``entry_blocked`` says why; the "Trade signal" button is disabled with
the reason). The kill switch and Flatten stay available: they only take risk off.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui

#: shown in the trading panel while the mode is on
REASON = ("Data collection mode: candidate snapshots are recorded and no trades are offered "
          "(turn Data collection off to trade). The kill switch stays available.")


class DataCollection(QtCore.QObject):
    """The mode's action and what it switches.

    Parameters
    ----------
    window : app.ui.main_window.MainWindow
        Uses ``tape``, ``config.profile``, ``pipeline`` (its engine's observer), ``trading``
        (the TradingController or None) and ``report``.

    Signals
    -------
    sigChanged(bool)
        The mode was turned on or off.
    """

    sigChanged = QtCore.Signal(bool)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.action = QtGui.QAction("Data collection", window)
        self.action.setObjectName("data_collection")
        self.action.setCheckable(True)
        self.action.setToolTip("Record candidate snapshots (features and outcomes, for mia-elite learn) "
                               "to the user data folder's snapshots/ and offer no trades")
        self.action.toggled.connect(self._on_toggled)

    @property
    def on(self) -> bool:
        """The mode is on."""
        return self.action.isChecked()

    @staticmethod
    def folder() -> Path:
        """``snapshots/`` in the user data folder (``app.paths.data_dir()``)."""
        from app.paths import data_dir

        return data_dir() / "snapshots"

    def observer(self):
        """A research observer for a new pipeline (the tape's), collecting when the mode is on."""
        w = self.window
        return w.tape.research_observer(w.config.profile, str(self.folder()) if self.on else None)

    def _on_toggled(self, on: bool) -> None:
        w = self.window
        rt = getattr(w, "runtime", None)
        pipelines = [r.pipeline for r in rt.instruments] if rt is not None else [w.pipeline]
        for pl in pipelines:  # every instrument's engine has its own observer
            obs = getattr(getattr(pl, "engine", None), "observer", None)
            if obs is not None:
                obs.set_collecting(str(self.folder()) if on else None)
        self.apply_trading()
        report = getattr(self.window, "report", None)
        if report is not None:
            report("info", f"data collection on: candidate snapshots go to {self.folder()}; no trades are offered"
                   if on else "data collection off: trading tickets are offered again")
        self.sigChanged.emit(bool(on))

    def apply_trading(self) -> None:
        """Block or allow order tickets on the window's trading controller (after each attach)."""
        ctl = getattr(self.window, "trading", None)
        if ctl is None:
            return
        ctl.entry_blocked = REASON if self.on else ""
        btn = ctl.panel.trade_button
        btn.setEnabled(not self.on)
        btn.setToolTip(REASON if self.on else "Open an order ticket for the signal selected in the tape "
                       "(or double-click it)")
        ctl.panel.problem_label.setText(REASON if self.on else "")
