"""The relation of a pair of instruments, drawn on a time axis (issue 17 item 5).

Two stacked pyqtgraph plots sharing one x axis (seconds since the epoch UTC, as the heatmap, so
:meth:`RelationPane.link_x` can tie it to an instrument's heatmap):

- **top**: the rolling return correlation ``corr`` (-1..1, dotted lines at -1, 0 and +1);
- **bottom**: the relative-strength line ``rs`` (log ratio A/B since the session open; shown in
  percent, +1 % = A ahead of B by about 1 %), with the **divergence flags** marked on it:
  an up triangle (green) where ``flag`` is +1 (A ran ahead of B), a down triangle (red) where
  it is -1 (B ran ahead of A).

The figures are :data:`app.analysis.relation.RELATION_DTYPE` rows (``ts, corr, rs, z, flag,
a, b``, one per closed second; definitions in ``docs/relation.md``), computed in the analysis
layer: :class:`app.live.instruments.InstrumentsRuntime` puts the newest one on both
instruments' frames as ``frame.relation`` and keeps the series in ``rt.relation_rows``. Feed
the pane either with frames (:meth:`RelationPane.set_frame`: the newest row of each frame
drawn; the window draws at display rate, so at a fast replay a second may close between two
drawn frames and only the newest is shown) or with the series itself
(:meth:`RelationPane.extend`: every row, in time order). Nothing is computed here but the
percent scale.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from app.analysis.relation import RELATION_DTYPE
from app.ui.heatmap import ScrollingDateAxis, cache_axes, fit_y_range

NS = 1_000_000_000
CORR_COLOR = (120, 190, 255)
RS_COLOR = (240, 200, 90)
UP_COLOR = (60, 200, 110)
DOWN_COLOR = (235, 80, 90)
GUIDE_COLOR = (110, 110, 130)


class RelationPane(pg.GraphicsLayoutWidget):
    """Rolling correlation and relative strength of a pair, with divergence flags.

    Parameters
    ----------
    pair : tuple of two str, optional
        The symbols A and B (the titles); :meth:`set_pair` changes them.

    Attributes
    ----------
    MAX_ROWS : int
        Rows kept (one per second: 24 h); beyond it the oldest half is dropped.
    corr_plot, rs_plot : pyqtgraph.PlotItem
        The two plots (x linked; the bottom one carries the date axis).
    """

    MAX_ROWS = 86_400

    def __init__(self, pair: tuple[str, str] | None = None, parent=None):
        super().__init__(parent=parent)
        self.setObjectName("relation_pane")
        self.setBackground((8, 10, 22))
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.ci.setSpacing(0)
        self.corr_plot = self.addPlot(row=0, col=0)
        self.rs_plot = self.addPlot(row=1, col=0, axisItems={"bottom": ScrollingDateAxis(orientation="bottom",
                                                                                      utcOffset=0)})
        for p in (self.corr_plot, self.rs_plot):
            p.setMenuEnabled(False)
            p.hideButtons()
            # no grid (the dotted guides stay): the left axis would draw it across the plot, a
            # large picture redrawn with every y range
            p.showGrid(x=False, y=False)
            p.getAxis("left").setWidth(48)
            p.getAxis("left").enableAutoSIPrefix(False)
            cache_axes(p)  # each axis from a pixmap until it changes
        self.corr_plot.hideAxis("bottom")
        self.corr_plot.setXLink(self.rs_plot)
        self.corr_plot.setYRange(-1.05, 1.05, padding=0)
        self.corr_plot.vb.setMouseEnabled(x=False, y=False)
        self.rs_plot.vb.setMouseEnabled(x=True, y=False)
        # x follows the linked heatmap (or the series when unlinked); y fits the visible line
        # with headroom and moves only when the line leaves it (fit_y_range), not every frame
        self.rs_plot.vb.enableAutoRange(x=True, y=False)
        self.rs_plot.vb.sigXRangeChanged.connect(self._fit_rs)
        #: times the relative-strength y range was moved
        self.y_fits = 0
        guide = pg.mkPen(GUIDE_COLOR, width=1, style=QtCore.Qt.DotLine)
        for y in (-1.0, 0.0, 1.0):
            self.corr_plot.addItem(pg.InfiniteLine(y, angle=0, pen=guide))
        self.rs_plot.addItem(pg.InfiniteLine(0.0, angle=0, pen=guide))
        self.corr_curve = pg.PlotDataItem(pen=pg.mkPen(CORR_COLOR, width=1.5), connect="finite")
        self.rs_curve = pg.PlotDataItem(pen=pg.mkPen(RS_COLOR, width=1.5), connect="finite")
        self.corr_plot.addItem(self.corr_curve)
        self.rs_plot.addItem(self.rs_curve)
        self.up_marks = pg.ScatterPlotItem(symbol="t1", size=9, brush=pg.mkBrush(UP_COLOR), pen=None)
        self.down_marks = pg.ScatterPlotItem(symbol="t", size=9, brush=pg.mkBrush(DOWN_COLOR), pen=None)
        self.rs_plot.addItem(self.up_marks)
        self.rs_plot.addItem(self.down_marks)
        self.corr_label = pg.TextItem("", color=CORR_COLOR, anchor=(0, 0))
        self.corr_label.setParentItem(self.corr_plot.vb)
        self.corr_label.setPos(4, 0)
        self.rs_label = pg.TextItem("", color=RS_COLOR, anchor=(0, 0))
        self.rs_label.setParentItem(self.rs_plot.vb)
        self.rs_label.setPos(4, 0)
        self.setMinimumHeight(90)
        self._rows = np.zeros(1024, RELATION_DTYPE)
        self._rs_line = (np.zeros(0), np.zeros(0))  # the drawn relative strength: seconds, percent
        self._n = 0
        self._drawn = -1
        self.pair: tuple[str, str] = ("A", "B")
        self.set_pair(pair or ("A", "B"))

    # ------------------------------------------------------------------ set-up
    def set_pair(self, pair: tuple[str, str]) -> None:
        """Name the pair (A, B) in the labels; the series starts again."""
        self.pair = (str(pair[0]), str(pair[1]))
        self.clear_series()

    def link_x(self, plot) -> None:
        """Share the x (time) axis of ``plot`` (an instrument's heatmap, seconds since the epoch)."""
        self.rs_plot.setXLink(plot)

    def linked_to(self):
        """The ViewBox this pane's time axis follows (None when not linked)."""
        return self.rs_plot.vb.linkedView(pg.ViewBox.XAxis)

    # ------------------------------------------------------------------ data
    def clear_series(self) -> None:
        """Forget every row (a restarted replay, another pair)."""
        self._n = 0
        self._drawn = -1
        self._redraw()

    def extend(self, rows: np.ndarray) -> int:
        """Add ``rows`` (:data:`RELATION_DTYPE`, time order) newer than the last one kept.

        A row whose ``ts`` is before the last one kept (the replay started again) starts the
        series again from it. Returns the rows added.

        Raises
        ------
        ValueError
            ``rows`` is not an array of :data:`RELATION_DTYPE` (what it is is said).
        """
        rows = np.asarray(rows)
        if rows.dtype != RELATION_DTYPE:
            raise ValueError(f"relation rows must have RELATION_DTYPE (ts, corr, rs, z, flag, a, b); got {rows.dtype}")
        rows = rows.reshape(-1)
        if not rows.shape[0]:
            return 0
        if self._n and int(rows["ts"][0]) < int(self._rows["ts"][self._n - 1]):
            self._n = 0  # time went back: a new replay
        if self._n:
            rows = rows[rows["ts"] > self._rows["ts"][self._n - 1]]
        k = rows.shape[0]
        if not k:
            return 0
        if self._n + k > self.MAX_ROWS:  # keep the newest half
            rows = np.concatenate([self._rows[:self._n], rows])[-(self.MAX_ROWS // 2):]
            self._n, k = 0, rows.shape[0]
        if self._n + k > self._rows.shape[0]:
            grown = np.zeros(max(2 * self._rows.shape[0], self._n + k), RELATION_DTYPE)
            grown[:self._n] = self._rows[:self._n]
            self._rows = grown
        self._rows[self._n:self._n + k] = rows
        self._n += k
        self._redraw()
        return k

    def set_frame(self, frame) -> bool:
        """Add ``frame.relation`` (the pair's newest row, or None) when it is new; True if added."""
        row = getattr(frame, "relation", None)
        if row is None:
            return False
        return self.extend(np.asarray(row, RELATION_DTYPE).reshape(1)) > 0

    def rows(self) -> np.ndarray:
        """The rows kept (a copy, :data:`RELATION_DTYPE`, time order)."""
        return self._rows[:self._n].copy()

    def last(self):
        """The newest row kept (``numpy.void``), or None."""
        return self._rows[self._n - 1].copy() if self._n else None

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        """The marked divergences: ``(t_up, t_down)``, float64 seconds since the epoch UTC."""
        r = self._rows[:self._n]
        t = r["ts"] / NS
        return t[r["flag"] > 0], t[r["flag"] < 0]

    #: headroom above and below the visible relative-strength line, share of its span
    Y_HEADROOM = 0.25
    #: smallest relative-strength span shown, percent
    RS_MIN_SPAN_PCT = 0.01

    def _fit_rs(self, *_args) -> None:
        t, v = self._rs_line
        self.y_fits += int(fit_y_range(self.rs_plot.vb, t, v, self.Y_HEADROOM, self.RS_MIN_SPAN_PCT))

    def _redraw(self) -> None:
        if self._drawn == self._n:
            return
        self._drawn = self._n
        r = self._rows[:self._n]
        t = r["ts"] / NS
        self.corr_curve.setData(t, r["corr"])
        rs_pct = 100.0 * r["rs"]
        self.rs_curve.setData(t, rs_pct)
        self._rs_line = (t, rs_pct)
        self._fit_rs()
        up, down = r["flag"] > 0, r["flag"] < 0
        self.up_marks.setData(t[up], rs_pct[up])
        self.down_marks.setData(t[down], rs_pct[down])
        a, b = self.pair
        if self._n:
            last = r[-1]
            c = float(last["corr"])
            self.corr_label.setText(f"corr {a}/{b} {'-' if np.isnan(c) else f'{c:+.2f}'}")
            flag = int(last["flag"])
            mark = f", {a} ahead" if flag > 0 else f", {b} ahead" if flag < 0 else ""
            self.rs_label.setText(f"rel. strength {a}/{b} {100.0 * float(last['rs']):+.3f}%{mark}")
        else:
            self.corr_label.setText(f"corr {a}/{b}")
            self.rs_label.setText(f"rel. strength {a}/{b}")
