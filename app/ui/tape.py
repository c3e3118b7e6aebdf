"""Elite signal tape: one row per signal, outcome columns that fill in, the session's statistics.

:class:`SignalTapeModel` is a ``QAbstractTableModel`` fed from each drawn frame
(``frame.signals`` and ``frame.outcomes``); new signals are appended with
``beginInsertRows``, outcome changes emit one ``dataChanged`` per changed row. Rows are kept
for the session (bounded by :attr:`SignalTapeModel.MAX_ROWS`) even when the engine's recent
list has moved on. :class:`PrecisionModel` shows ``frame.session_stats``: the statistics of
``mia-elite evaluate`` for the session so far (computed off the GUI thread by the engine's
research observer, :mod:`app.research.live`, which :meth:`SignalTape.research_observer` builds).
:class:`SignalTape` puts both in views and emits :attr:`SignalTape.sigSignalSelected` when
the user clicks a row.
"""

from __future__ import annotations

import datetime as _dt
import math

from PySide6 import QtCore, QtGui, QtWidgets

from app.analysis.frame import Signal
from app.sim.outcomes import SignalOutcome

#: what the tape says when no signal-quality model is active
NO_MODEL = "no signal-quality model loaded: run mia-elite learn"

GREEN = QtGui.QColor(60, 200, 110)
RED = QtGui.QColor(235, 80, 90)


def _fmt_ts(ts_ns: int) -> str:
    return _dt.datetime.fromtimestamp(ts_ns / 1e9, tz=_dt.timezone.utc).strftime("%H:%M:%S")


def _fmt_move(v) -> str:
    """A move in ticks, whole ticks with a sign: ``+3``, ``-2``, and ``0`` (never ``-0``) for
    anything that rounds to zero; ``""`` while unknown."""
    if v is None:
        return ""
    r = round(float(v))
    return "0" if r == 0 else f"{r:+d}"


def reasons_text(sig: Signal, n: int = 3) -> str:
    """The Reasons column: the ``n`` strongest distinct patterns with their strength, then
    ``+k`` for the k further patterns (all in the tooltip), so the column names or counts every
    pattern the precision table counts the signal under (``"wall 0.91, ladder 0.60, iceberg 0.55 +1"``)."""
    best: dict[str, float] = {}
    for r in sig.reasons:
        best[r.name] = max(best.get(r.name, 0.0), float(r.strength))
    names = sorted(best, key=lambda k: -best[k])
    text = ", ".join(f"{k} {best[k]:.2f}" for k in names[:n])
    return text + (f" +{len(names) - n}" if len(names) > n else "")


class SignalTapeModel(QtCore.QAbstractTableModel):
    """Table of elite signals (newest last) with their outcomes.

    Columns: time (UTC), side, score, reasons (:func:`reasons_text`), entry, stop, target
    (prices), size (contracts), move after 1/5/15 min (whole ticks in the signal's favour), and
    which of target or stop came first, and the active signal-quality model's probability of
    target first (``frame.model_p``, computed on the analysis thread; "no model" when none is
    loaded, with :data:`NO_MODEL` as the header's and the cell's tooltip).

    Rows are keyed by signal id within one run of the analysis: an outcome updates the row of
    its id in the current run only. :meth:`new_run` (a restart or a profile change: the window's
    tape calls it when the frame numbers start again) leaves every older row as it is, with its
    outcome; a signal whose id is already in the tape but which is another signal (other time,
    side or entry: ids restarted without :meth:`new_run`) also starts a new run instead of
    overwriting the older row.
    """

    HEADERS = ("Time", "Side", "Score", "Reasons", "Entry", "Stop", "Target", "Size",
               "1m", "5m", "15m", "First", "P(model)")
    #: column of the model's probability
    COL_MODEL = 12
    MAX_ROWS = 5000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.signals: list[Signal] = []
        self.row_outcomes: list[SignalOutcome | None] = []  # per row, the outcome of its own signal
        self._row_run: list[int] = []  # per row, the run it belongs to
        self.run = 0
        self._row_of: dict[int, int] = {}  # signal id -> row, current run only
        self.row_p: list[float | None] = []  # per row, the model's probability (None: not scored)
        self.model_name = ""
        self.tick = 0.25
        self.dec = 2

    def rowCount(self, parent=QtCore.QModelIndex()):  # noqa: N802 (Qt name)
        return 0 if parent.isValid() else len(self.signals)

    def columnCount(self, parent=QtCore.QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=QtCore.Qt.DisplayRole):  # noqa: N802
        if orientation != QtCore.Qt.Horizontal:
            return None
        if role == QtCore.Qt.DisplayRole:
            return self.HEADERS[section]
        if role == QtCore.Qt.ToolTipRole and section == self.COL_MODEL:
            return self._model_tip()
        return None

    def _model_tip(self) -> str:
        if not self.model_name:
            return NO_MODEL
        return (f"Probability of target first from the signal-quality model {self.model_name} "
                "(mia-elite learn), computed on the analysis thread from the signal's features")

    def signal_at(self, row: int) -> Signal | None:
        """The signal of a row, or None."""
        return self.signals[row] if 0 <= row < len(self.signals) else None

    def data(self, index, role=QtCore.Qt.DisplayRole):
        if not index.isValid():
            return None
        s = self.signals[index.row()]
        c = index.column()
        o = self.row_outcomes[index.row()]
        if c == self.COL_MODEL:
            p = self.row_p[index.row()]
            if role == QtCore.Qt.DisplayRole:
                return "no model" if not self.model_name else ("-" if p is None else f"{p:.2f}")
            if role == QtCore.Qt.ToolTipRole:
                return self._model_tip()
            if role == QtCore.Qt.UserRole:
                return p
            if role == QtCore.Qt.TextAlignmentRole:
                return int(QtCore.Qt.AlignCenter)
            return None
        if role == QtCore.Qt.DisplayRole:
            tick, dec = self.tick, self.dec
            if c == 0:
                return _fmt_ts(s.ts)
            if c == 1:
                return "LONG" if s.side > 0 else "SHORT"
            if c == 2:
                return f"{s.score:.2f}"
            if c == 3:
                return reasons_text(s)
            if c in (4, 5, 6):
                v = (s.entry, s.stop, s.target)[c - 4]
                return f"{v * tick:.{dec}f}"
            if c == 7:
                return str(s.size)
            if o is None:
                return ""
            if c == 8:
                return _fmt_move(o.move_1m)
            if c == 9:
                return _fmt_move(o.move_5m)
            if c == 10:
                return _fmt_move(o.move_15m)
            if c == 11:
                return (o.first or "") + (" (data ended)" if o.ended_early else "")
        elif role == QtCore.Qt.ForegroundRole:
            if c == 1:
                return GREEN if s.side > 0 else RED
            if o is not None and c in (8, 9, 10):
                v = (o.move_1m, o.move_5m, o.move_15m)[c - 8]
                if v is not None:  # the colour of the shown (rounded) move: "0" is neither
                    r = round(float(v))
                    return GREEN if r > 0 else RED if r < 0 else None
            if o is not None and c == 11 and o.first:
                return GREEN if o.first == "target" else RED
        elif role == QtCore.Qt.ToolTipRole:
            lines = [f"signal #{s.id} {s.symbol} {'LONG' if s.side > 0 else 'SHORT'} score {s.score:.3f}"
                     f" regime {s.regime}"]
            lines += [f"  {k} {v:.2f}" for k, v in s.components]
            lines += [f"- {r.name} ({r.strength:.2f}): {r.detail}" for r in s.reasons]
            return "\n".join(lines)
        elif role == QtCore.Qt.TextAlignmentRole and c != 3:
            return int(QtCore.Qt.AlignCenter)
        return None

    def new_run(self) -> None:
        """The analysis restarted: later ids and outcomes belong to new rows only."""
        self.run += 1
        self._row_of = {}

    def outcome_at(self, row: int) -> SignalOutcome | None:
        """The outcome shown in a row (its own signal's), or None."""
        return self.row_outcomes[row] if 0 <= row < len(self.row_outcomes) else None

    def update_from(self, signals, outcomes: dict, tick_size: float, decimals: int = 2, model_p=None,
                    model_name: str = "") -> int:
        """Append signals not seen yet and refresh changed outcomes.

        Parameters
        ----------
        signals : sequence of Signal
            The frame's recent signals, oldest first.
        outcomes : dict[int, SignalOutcome]
            Latest outcome per signal id.
        tick_size : float
            Price units per tick (display).
        decimals : int
            Price decimals.
        model_p : dict[int, float], optional
            Signal id -> the model's probability (``frame.model_p``).
        model_name : str
            The active model's file name; ``""``: none is loaded.

        Returns
        -------
        int
            Number of rows appended.
        """
        self.tick, self.dec = float(tick_size), int(decimals)
        for s in signals:
            row = self._row_of.get(s.id)
            if row is not None and not _same_signal(self.signals[row], s):
                self.new_run()  # the id was reused by another run: never overwrite the older row
                break
        new = [s for s in signals if s.id not in self._row_of]
        if new:
            if len(self.signals) + len(new) > self.MAX_ROWS:
                self.beginResetModel()
                k = self.MAX_ROWS // 2
                self.signals = self.signals[-k:]
                self.row_outcomes = self.row_outcomes[-k:]
                self.row_p = self.row_p[-k:]
                self._row_run = self._row_run[-k:]
                self._row_of = {s.id: i for i, (s, r) in enumerate(zip(self.signals, self._row_run)) if r == self.run}
                self.endResetModel()
            n0 = len(self.signals)
            self.beginInsertRows(QtCore.QModelIndex(), n0, n0 + len(new) - 1)
            for s in new:
                self._row_of[s.id] = len(self.signals)
                self.signals.append(s)
                self.row_outcomes.append(None)
                self.row_p.append(None)
                self._row_run.append(self.run)
            self.endInsertRows()
        last_col = len(self.HEADERS) - 1
        for sid, o in outcomes.items():
            row = self._row_of.get(sid)
            if row is not None and self.row_outcomes[row] != o:
                self.row_outcomes[row] = o
                self.dataChanged.emit(self.index(row, 8), self.index(row, last_col))
        if model_name != self.model_name:
            self.model_name = str(model_name)
            self.headerDataChanged.emit(QtCore.Qt.Horizontal, self.COL_MODEL, self.COL_MODEL)
            if self.signals:
                self.dataChanged.emit(self.index(0, self.COL_MODEL), self.index(len(self.signals) - 1, self.COL_MODEL))
        for sid, p in (model_p or {}).items():
            row = self._row_of.get(sid)
            if row is not None and self.row_p[row] != p:
                self.row_p[row] = float(p)
                self.dataChanged.emit(self.index(row, self.COL_MODEL), self.index(row, self.COL_MODEL))
        return len(new)


def _pct(x) -> str:
    return "-" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.0f}%"


def _num(x, fmt: str, nd: int = 2) -> str:
    """``x`` rounded to ``nd`` places then formatted (``+ 0.0``: a value that rounds to zero
    never shows as ``-0.00``); ``"-"`` for None / nan."""
    return "-" if x is None or not math.isfinite(float(x)) else format(round(float(x), nd) + 0.0, fmt)


def _same_signal(a: Signal, b: Signal) -> bool:
    return (a.ts, a.side, a.entry, a.symbol) == (b.ts, b.side, b.entry, b.symbol)


class PrecisionModel(QtCore.QAbstractTableModel):
    """The session's precision table: the statistics of ``mia-elite evaluate`` for the session so far.

    One row per profile (all its signals with a final outcome) and one per pattern, labelled
    "signals citing <pattern>" (a signal citing several patterns counts in each: these rows are
    not an attribution). Columns: n (signals measured), target first (of the decided ones),
    its 95 % Wilson interval, the breakeven rate of the brackets after costs, the expectancy per
    trade in ticks and USD (one contract, after commission), the random-entry baseline (target-first
    rate and USD per trade of entries matched on side and bracket, drawn from the session so far)
    and the one-sided p-value against it. The figures come from ``frame.session_stats``
    (:func:`app.research.live.session_summary`, computed off the GUI thread); the role
    ``QtCore.Qt.UserRole`` gives each cell's number unformatted.
    """

    HEADERS = ("Signals", "n", "Target first", "95% interval", "Breakeven", "Exp. ticks", "Exp. USD",
               "Random rate", "Random USD", "p vs random")
    TIPS = ("The profile's signals with a final outcome, then per pattern the signals citing it "
            "(not attribution: a signal citing two patterns counts in both)",
            "Signals measured (outcome final); signals still open are not counted",
            "Target filled before stop, of the decided signals",
            "95% Wilson score interval of the target-first rate (Wilson 1927)",
            "Target-first rate at which the brackets break even after commission and stop slippage",
            "Mean exit per trade in the signal's favour, ticks (one session: no bootstrap interval)",
            "Mean net result per trade, USD per contract after commission",
            "Target-first rate of random entries with the same side and bracket, drawn from the session so far",
            "Mean net USD per trade of those random entries",
            "Chance that random entries do at least as well (Monte-Carlo, one-sided); above 0.05: "
            "not distinguishable from random entries")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.summary: dict | None = None

    def rowCount(self, parent=QtCore.QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QtCore.QModelIndex()):  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=QtCore.Qt.DisplayRole):  # noqa: N802
        if orientation == QtCore.Qt.Horizontal:
            if role == QtCore.Qt.DisplayRole:
                return self.HEADERS[section]
            if role == QtCore.Qt.ToolTipRole:
                return self.TIPS[section]
        return None

    @staticmethod
    def values(r: dict) -> tuple:
        """The numbers of a row, in column order (the label first)."""
        ci = r.get("rate_ci") or [None, None]
        return (r["label"], r["n"], r.get("rate"), tuple(ci), r.get("breakeven_rate"),
                r["expectancy_ticks"]["mean"], r["expectancy_usd"]["mean"], r.get("baseline_rate"),
                r.get("baseline_usd"), r.get("p_value"))

    def data(self, index, role=QtCore.Qt.DisplayRole):
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        c = index.column()
        v = self.values(r)
        if role == QtCore.Qt.UserRole:
            return v[c]
        if role == QtCore.Qt.DisplayRole:
            if c == 0:
                return r["label"]
            if c == 1:
                return str(r["n"])
            if c == 2:
                return f"{r['target_first']}/{r['decided']} = {_pct(r.get('rate'))}" if r["decided"] else "-"
            if c == 3:
                return f"{_pct(v[3][0])}-{_pct(v[3][1])}" if r["decided"] else "-"
            if c in (4, 7):
                return _pct(v[c])
            if c == 5:
                return _num(v[5], "+.2f")
            if c in (6, 8):
                return _num(v[c], "+.2f")
            if c == 9:
                return _num(v[9], ".3f", 3)
        if role == QtCore.Qt.ToolTipRole:
            if c == 0 and r.get("kind") == "citing":
                return "signals whose reasons include this pattern (not the pattern's own contribution)"
            return self.TIPS[c]
        if role == QtCore.Qt.TextAlignmentRole and c != 0:
            return int(QtCore.Qt.AlignCenter)
        return None

    def update_from(self, summary: dict | None) -> None:
        """Replace the rows when ``summary`` (``frame.session_stats``) changed."""
        if summary is self.summary:
            return
        self.summary = summary
        self.beginResetModel()
        self.rows = list(summary["rows"]) if summary else []
        self.endResetModel()

    def caption(self) -> str:
        """One line under the table: what is measured, or why nothing is."""
        s = self.summary
        if s is None:
            return "session statistics: waiting for the first final outcome"
        if not s["rows"]:
            return f"session statistics: no signal with a final outcome yet ({s['open']} open)"
        return (f"{s['measured']} signal(s) measured, {s['open']} open; random baseline: {s['draws']} entries "
                f"per signal from the session so far")


class SignalTape(QtWidgets.QWidget):
    """The signal tape view plus the precision summary.

    Signals
    -------
    sigSignalSelected(object)
        The :class:`Signal` the user clicked (or ``None`` when the selection is cleared).
    sigNewSignals(object)
        A list of signals appended by the last update (for sound / notification).
    """

    sigSignalSelected = QtCore.Signal(object)
    sigNewSignals = QtCore.Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = SignalTapeModel(self)
        self.precision_model = PrecisionModel(self)
        self.view = QtWidgets.QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        hh = self.view.horizontalHeader()
        hh.setStretchLastSection(False)
        # fixed widths: ResizeToContents would ask every row for its text on each update
        hh.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        fm = self.view.fontMetrics()
        for col, sample in enumerate(("00:00:00", "SHORT", "0.00", "", "00000.00", "00000.00", "00000.00",
                                      "000", "+000", "+000", "+000", "target", "no model")):
            if col != 3:
                self.view.setColumnWidth(col, fm.horizontalAdvance(sample) + 18)
        hh.setSectionResizeMode(3, QtWidgets.QHeaderView.Stretch)
        self.view.setAlternatingRowColors(True)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.view.selectionModel().currentRowChanged.connect(self._on_current)
        self.view.clicked.connect(lambda idx: self._emit_row(idx.row()))
        self.precision_view = QtWidgets.QTableView()
        self.precision_view.setModel(self.precision_model)
        self.precision_view.verticalHeader().setVisible(False)
        self.precision_view.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        self.precision_view.horizontalHeader().setStretchLastSection(True)
        self.stats_label = QtWidgets.QLabel(self.precision_model.caption())
        self.stats_label.setWordWrap(True)
        self.precision_view.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.count_label = QtWidgets.QLabel("no signal yet")
        self.model_label = QtWidgets.QLabel(NO_MODEL)
        self.model_label.setObjectName("model_label")
        self.model_label.setWordWrap(True)  # wraps in a narrow window instead of widening it
        self._follow_tail = True
        self._last_seq = 0
        self.model_problem = ""  # why the active model could not be loaded ("" = none or loaded)

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        title = QtWidgets.QLabel("<b>Elite signal tape</b>")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(title)
        row.addStretch(1)
        row.addWidget(self.count_label)
        lv.addLayout(row)
        lv.addWidget(self.view)
        lv.addWidget(self.model_label)
        right = QtWidgets.QWidget()
        rv = QtWidgets.QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        stats_title = QtWidgets.QLabel("<b>Session statistics</b> (target before stop, against random entries)")
        stats_title.setWordWrap(True)
        rv.addWidget(stats_title)
        rv.addWidget(self.precision_view)
        rv.addWidget(self.stats_label)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.splitter.setObjectName("tape_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)

    def update_from_frame(self, frame) -> int:
        """Take ``frame.signals``, ``frame.outcomes`` and ``frame.precision``; returns rows appended."""
        from app.ui.ladder import price_decimals

        if frame.seq < self._last_seq:  # a new engine: its frame numbers start again
            self.model.new_run()
        self._last_seq = int(frame.seq)
        before = len(self.model.signals)
        added = self.model.update_from(frame.signals, frame.outcomes, frame.tick_size,
                                       price_decimals(float(frame.tick_size)), frame.model_p, frame.model_name)
        self._show_model(frame.model_name)
        self.precision_model.update_from(frame.session_stats)
        self.stats_label.setText(self.precision_model.caption())
        if added:
            n = len(self.model.signals)
            self.count_label.setText(f"{n} signal{'s' if n != 1 else ''}")
            if not self.view.selectionModel().hasSelection():
                self.view.scrollToBottom()
            self.sigNewSignals.emit(self.model.signals[before:])
        return added

    def _show_model(self, name: str) -> None:
        if name:
            text = f"signal-quality model {name}: P(model) is its probability of target first"
        elif self.model_problem:
            text = f"signal-quality model not loaded: {self.model_problem}"
        else:
            text = NO_MODEL
        if self.model_label.text() != text:
            self.model_label.setText(text)
            self.model_label.setToolTip(text)

    def research_observer(self, profile: str, snapshots_dir=None, model_folder=None):
        """The engine observer behind this tape's statistics and model column.

        Parameters
        ----------
        profile : str
            The pipeline's profile.
        snapshots_dir : str or Path, optional
            Data-collection mode: candidate snapshots are written there.
        model_folder : Path, optional
            Where the model registry is (default ``app.research.learn.model_dir()``).

        Returns
        -------
        app.research.live.LiveResearch
            Pass it as ``engine_options["observer"]``; the active model, if any, is loaded.
        """
        from app.research.learn import ModelError, active_model, model_dir, read_registry
        from app.research.live import LiveResearch

        model, name = None, ""
        try:
            folder = model_folder or model_dir()
            name = read_registry(folder)["active"] or ""
            model = active_model(folder) if name else None
        except (ModelError, OSError) as exc:
            name = ""
            self.model_problem = str(exc)
        else:
            self.model_problem = ""
        self._show_model(name)
        return LiveResearch(profile, model=model, model_name=name, snapshots_dir=snapshots_dir)

    def _on_current(self, current, _previous):
        if current.isValid():
            self._emit_row(current.row())

    def _emit_row(self, row: int) -> None:
        self.sigSignalSelected.emit(self.model.signal_at(row))

    def select_row(self, row: int) -> None:
        """Select a row as a click would (emits :attr:`sigSignalSelected`)."""
        self.view.selectRow(row)
        self._emit_row(row)
