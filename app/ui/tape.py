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

    The last model column, :attr:`COL_SYMBOL`, is the signal's instrument (``Signal.symbol``);
    the tape's view shows it second, after the time, when more than one instrument is configured
    (issue 17). Each row keeps the tick size and decimals of its own instrument's frame, so
    rows of instruments with different ticks (ES 0.25, BTCUSDT 0.1) all show their own prices.

    Rows are keyed by signal id within one run of an instrument's analysis (ids are unique
    across instruments: each instrument has its own block, ``app.live.instruments``): an outcome
    updates the row of its id in the current run only. :meth:`new_run` (a restart or a profile
    change: the window's tape calls it, for that instrument, when its frame numbers start again)
    leaves every older row as it is, with its outcome; a signal whose id is already in the tape
    but which is another signal (other time, side, entry or symbol: ids restarted without
    :meth:`new_run`) also starts a new run of its instrument instead of overwriting the older row.
    """

    HEADERS = ("Time", "Side", "Score", "Reasons", "Entry", "Stop", "Target", "Size",
               "1m", "5m", "15m", "First", "P(model)", "Symbol")
    #: column of the model's probability
    COL_MODEL = 12
    #: column of the signal's instrument (shown second by the view, see :class:`SignalTape`)
    COL_SYMBOL = 13
    MAX_ROWS = 5000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.signals: list[Signal] = []
        self.row_outcomes: list[SignalOutcome | None] = []  # per row, the outcome of its own signal
        self.row_price: list[tuple[float, int]] = []  # per row, (tick size, decimals) of its instrument
        self.run = 0
        self._row_of: dict[int, int] = {}  # signal id -> row, current run of its instrument only
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
        if c == self.COL_SYMBOL:
            if role in (QtCore.Qt.DisplayRole, QtCore.Qt.UserRole):
                return s.symbol
            if role == QtCore.Qt.TextAlignmentRole:
                return int(QtCore.Qt.AlignCenter)
            if role != QtCore.Qt.ToolTipRole:
                return None
        if role == QtCore.Qt.DisplayRole:
            r = index.row()
            tick, dec = self.row_price[r] if r < len(self.row_price) else (self.tick, self.dec)
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

    def new_run(self, symbol: str | None = None) -> None:
        """The analysis restarted: later ids and outcomes belong to new rows only.

        ``symbol``: only that instrument's analysis restarted (its rows stop taking outcomes;
        the other instruments' rows keep theirs); ``None``: every instrument's."""
        self.run += 1
        if symbol is None:
            self._row_of = {}
        else:
            self._row_of = {sid: r for sid, r in self._row_of.items() if self.signals[r].symbol != symbol}

    def symbols(self) -> list[str]:
        """The instruments of the rows, in the order they first appeared."""
        return list(dict.fromkeys(s.symbol for s in self.signals))

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
                # the id was reused by another run: never overwrite the older row
                self.new_run(s.symbol if s.symbol == self.signals[row].symbol else None)
                break
        new = [s for s in signals if s.id not in self._row_of]
        if new:
            if len(self.signals) + len(new) > self.MAX_ROWS:
                self.beginResetModel()
                k = self.MAX_ROWS // 2
                cut = len(self.signals) - k
                self.signals = self.signals[-k:]
                self.row_outcomes = self.row_outcomes[-k:]
                self.row_p = self.row_p[-k:]
                self.row_price = self.row_price[-k:]
                self._row_of = {sid: r - cut for sid, r in self._row_of.items() if r >= cut}
                self.endResetModel()
            n0 = len(self.signals)
            self.beginInsertRows(QtCore.QModelIndex(), n0, n0 + len(new) - 1)
            for s in new:
                self._row_of[s.id] = len(self.signals)
                self.signals.append(s)
                self.row_outcomes.append(None)
                self.row_p.append(None)
                self.row_price.append((self.tick, self.dec))
            self.endInsertRows()
        last_col = self.COL_MODEL
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


class SymbolFilterModel(QtCore.QSortFilterProxyModel):
    """The tape's rows of one instrument (or of all): a proxy over :class:`SignalTapeModel`.

    :meth:`set_symbol` chooses the instrument (``""``: every row). :meth:`signal_at` and
    :meth:`outcome_at` take the view's row (the proxy's) and answer for the signal shown there,
    so a double-click in a filtered tape opens the ticket of the signal clicked.
    """

    def __init__(self, source: SignalTapeModel, parent=None):
        super().__init__(parent)
        self.symbol = ""
        self.setSourceModel(source)

    def set_symbol(self, symbol: str) -> None:
        """Show only ``symbol``'s rows (``""``: all)."""
        if symbol != self.symbol:
            if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 (invalidateRowsFilter is deprecated there)
                self.beginFilterChange()
                self.symbol = str(symbol)
                self.endFilterChange(QtCore.QSortFilterProxyModel.Direction.Rows)
            else:
                self.symbol = str(symbol)
                self.invalidateRowsFilter()

    def filterAcceptsRow(self, row, parent):  # noqa: N802 (Qt name)
        if not self.symbol:
            return True
        sig = self.sourceModel().signal_at(row)
        return sig is not None and sig.symbol == self.symbol

    def _source_row(self, row: int) -> int:
        return self.mapToSource(self.index(row, 0)).row() if 0 <= row < self.rowCount() else -1

    def signal_at(self, row: int) -> Signal | None:
        """The signal shown in the view's ``row``, or None."""
        return self.sourceModel().signal_at(self._source_row(row))

    def outcome_at(self, row: int) -> SignalOutcome | None:
        """The outcome shown in the view's ``row``, or None."""
        return self.sourceModel().outcome_at(self._source_row(row))


def combined_summary(summaries: dict) -> dict | None:
    """The "All" statistics of several instruments: each instrument's rows, labelled with its symbol.

    Parameters
    ----------
    summaries : dict[str, dict or None]
        Symbol -> that instrument's ``frame.session_stats``
        (:func:`app.research.live.session_summary`), in display order.

    Returns
    -------
    dict or None
        ``None`` while no instrument has a summary; else a summary of the same shape whose
        ``measured`` and ``open`` are the sums, ``draws`` the instruments' (the largest when
        they differ), ``per_symbol`` the (symbol, measured, open) of each, and ``rows`` every
        instrument's rows in turn with ``label`` ``"<symbol>: <label>"`` and ``symbol`` set.
        No row pools two instruments: their tick values differ and their signals overlap in
        time (not independent), so a pooled rate or p-value would claim more than it knows.
    """
    got = [(sym, s) for sym, s in summaries.items() if s is not None]
    if not got:
        return None
    rows = []
    for sym, s in got:
        rows.extend({**r, "label": f"{sym}: {r['label']}", "symbol": sym} for r in s["rows"])
    return {"profile": ", ".join(dict.fromkeys(s["profile"] for _, s in got)),
            "measured": sum(s["measured"] for _, s in got), "open": sum(s["open"] for _, s in got),
            "draws": max(s["draws"] for _, s in got), "rows": rows,
            "per_symbol": [(sym, s["measured"], s["open"]) for sym, s in got]}


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
        text = (f"{s['measured']} signal(s) measured, {s['open']} open; random baseline: {s['draws']} entries "
                f"per signal from the session so far")
        per = s.get("per_symbol")
        if per:
            text += ("; " + ", ".join(f"{sym} {m} measured" for sym, m, _ in per)
                     + "; each instrument's rows are its own (no figure pools two instruments)")
        return text


class SignalTape(QtWidgets.QWidget):
    """The signal tape view plus the precision summary.

    Several instruments (issue 17): every instrument's frames go through
    :meth:`update_from_frame` (``frame.symbol`` says whose). Once a second instrument is known
    (:meth:`set_instruments`, or a frame or signal of a second symbol) the view shows the
    Symbol column second and an instrument filter ("All / ES / NQ", :attr:`symbol_filter`)
    above the tape; the filter chooses the rows shown and the statistics table: the chosen
    instrument's own ``session_stats``, or for "All" every instrument's rows labelled with
    its symbol (:func:`combined_summary`). With one instrument both stay hidden: the tape looks
    as it always has.

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
        #: the rows the view shows (the filter's instrument, or all)
        self.proxy = SymbolFilterModel(self.model, self)
        self.precision_model = PrecisionModel(self)
        self.view = QtWidgets.QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        hh = self.view.horizontalHeader()
        # fixed widths: ResizeToContents would ask every row for its text on each update
        hh.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        fm = self.view.fontMetrics()
        for col, sample in enumerate(("00:00:00", "SHORT", "0.00", "absorption, iceberg +2", "00000.00",
                                      "00000.00", "00000.00", "000", "+000", "+000", "+000", "target",
                                      "no model", "ESZ25_FUT")):
            # wide enough for the sample and for the header's own text (never a cut header)
            self.view.setColumnWidth(col, max(fm.horizontalAdvance(sample), fm.horizontalAdvance(
                self.model.HEADERS[col])) + 18)
        # the Symbol column is the model's last but is shown second, after the time (hidden
        # while one instrument is configured)
        hh.moveSection(hh.visualIndex(SignalTapeModel.COL_SYMBOL), 1)
        self.view.setColumnHidden(SignalTapeModel.COL_SYMBOL, True)
        # the last column takes what is left; a narrow window scrolls sideways instead of
        # squeezing the Reasons column to nothing
        hh.setStretchLastSection(True)
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
        self._last_seq: dict[str, int] = {}  # per instrument, its newest frame number
        self.model_problem = ""  # why the active model could not be loaded ("" = none or loaded)
        self._instruments: list[str] = []  # symbols known, in order (filter entries)
        self._summaries: dict[str, dict | None] = {}  # symbol -> its newest frame.session_stats
        self._shown_key = None  # what the statistics table shows: (filter, id of each summary)
        self.filter_label = QtWidgets.QLabel("Instrument")
        self.symbol_filter = QtWidgets.QComboBox()
        self.symbol_filter.setObjectName("tape_symbol_filter")
        self.symbol_filter.setToolTip("Show the signals and the statistics of one instrument, or of all")
        self.symbol_filter.addItem("All", "")
        self.symbol_filter.currentIndexChanged.connect(self._on_filter)
        self.filter_label.hide()
        self.symbol_filter.hide()

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        title = QtWidgets.QLabel("<b>Elite signal tape</b>")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(title)
        row.addWidget(self.filter_label)
        row.addWidget(self.symbol_filter)
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
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)

    # ------------------------------------------------------------------ instruments
    def set_instruments(self, symbols) -> None:
        """The configured instruments, in the window's order (the filter's entries after "All").

        With two or more the Symbol column and the filter are shown; symbols met later in
        frames are added after these. The current filter is kept when its symbol stays."""
        for sym in symbols:
            self._add_symbol(str(sym))
        self._show_instruments()

    @property
    def instruments(self) -> list[str]:
        """The symbols the filter offers (besides "All")."""
        return list(self._instruments)

    def set_filter(self, symbol: str) -> None:
        """Show one instrument's rows and statistics (``""`` or ``"All"``: all).

        Raises
        ------
        ValueError
            ``symbol`` is not one of :attr:`instruments` (they are listed).
        """
        symbol = "" if symbol in ("", "All") else str(symbol)
        i = self.symbol_filter.findData(symbol)
        if i < 0:
            raise ValueError(f"no instrument {symbol!r} in the tape; known: {', '.join(self._instruments) or 'none'}")
        self.symbol_filter.setCurrentIndex(i)

    @property
    def filter_symbol(self) -> str:
        """The filter's instrument (``""``: All)."""
        return self.proxy.symbol

    def _add_symbol(self, sym: str) -> bool:
        if not sym or sym in self._instruments:
            return False
        self._instruments.append(sym)
        self.symbol_filter.addItem(sym, sym)
        return True

    def _show_instruments(self) -> None:
        many = len(self._instruments) > 1
        self.view.setColumnHidden(SignalTapeModel.COL_SYMBOL, not many)
        self.filter_label.setVisible(many)
        self.symbol_filter.setVisible(many)

    def _on_filter(self, _index: int) -> None:
        self.proxy.set_symbol(self.symbol_filter.currentData() or "")
        self._show_stats()
        self._show_count()
        self.view.scrollToBottom()

    def _show_count(self) -> None:
        n = len(self.model.signals)
        if not n:
            return
        shown = self.proxy.rowCount()
        text = f"{n} signal{'s' if n != 1 else ''}"
        if self.proxy.symbol:
            text = f"{shown} of {text} ({self.proxy.symbol})"
        self.count_label.setText(text)

    def _show_stats(self) -> None:
        """The statistics table for the filter: one instrument's summary, or all of them."""
        sym = self.proxy.symbol
        summaries = self._ordered_summaries()
        if sym or len(summaries) <= 1:
            summary = summaries.get(sym) if sym else next(iter(summaries.values()), None)
            key = (sym, id(summary))
        else:
            key = ("", tuple(id(v) for v in summaries.values()))
            summary = combined_summary(summaries) if key != self._shown_key else self.precision_model.summary
        if key != self._shown_key or summary is not self.precision_model.summary:
            self._shown_key = key
            self.precision_model.update_from(summary)
            # a handful of rows, at most every few seconds: fitting the columns is cheap
            self.precision_view.resizeColumnsToContents()
        self.stats_label.setText(self.precision_model.caption())

    def _ordered_summaries(self) -> dict:
        order = [*self._instruments, *(k for k in self._summaries if k not in self._instruments)]
        return {k: self._summaries[k] for k in order if k in self._summaries}

    def statistics_of(self, symbol: str = "") -> dict | None:
        """What the statistics table shows for the filter ``symbol`` (``""``: All), without
        changing the filter: that instrument's newest ``session_stats``, or for All with
        several instruments :func:`combined_summary` of them."""
        summaries = self._ordered_summaries()
        if symbol:
            return summaries.get(symbol)
        return next(iter(summaries.values()), None) if len(summaries) <= 1 else combined_summary(summaries)

    # ------------------------------------------------------------------ frames
    def update_from_frame(self, frame) -> int:
        """Take one instrument's frame (``frame.symbol``): its signals, outcomes and
        ``session_stats``; returns rows appended."""
        from app.ui.ladder import price_decimals

        sym = str(getattr(frame, "symbol", "") or "")
        if frame.seq < self._last_seq.get(sym, 0):  # a new engine: its frame numbers start again
            self.model.new_run(sym if sym else None)
        self._last_seq[sym] = int(frame.seq)
        known = self._add_symbol(sym)
        for s in frame.signals:
            known = self._add_symbol(s.symbol) or known
        if known:
            self._show_instruments()
        before = len(self.model.signals)
        added = self.model.update_from(frame.signals, frame.outcomes, frame.tick_size,
                                       price_decimals(float(frame.tick_size)), frame.model_p, frame.model_name)
        self._show_model(frame.model_name)
        self._summaries[sym] = frame.session_stats
        self._show_stats()
        if added:
            self._show_count()
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
        self.sigSignalSelected.emit(self.proxy.signal_at(row))

    def select_row(self, row: int) -> None:
        """Select a row of the view (the filter's rows) as a click would (emits
        :attr:`sigSignalSelected`)."""
        self.view.selectRow(row)
        self._emit_row(row)
