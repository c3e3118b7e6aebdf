"""Cumulative delta of the session under the heatmap, on the heatmap's time axis.

A pyqtgraph plot whose x axis is linked to the heatmap's (:meth:`DeltaPane.link_x`; x =
seconds since the epoch UTC, as the heatmap), so a pan or zoom of either moves both. The line
is the session's cumulative delta (volume bought at the ask minus volume sold at the bid,
contracts, from zero at the session open):

- history from the frame's footprint bars (``AnalysisFrame.bars``, the session's ones): the
  value at the end of each bar is ``cum_delta`` minus the deltas of the bars after it, so the
  line ends exactly on the frame's session figure (``AnalysisFrame.cum_delta``);
- then one point per frame drawn (its ``ts`` and ``cum_delta``), so the line moves within a
  bar as the market trades.

A new session (``session_start_ns`` changes) or a replay that starts again (time goes back)
starts the line again. Nothing is computed here beyond that arithmetic of the frame's figures.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from app.analysis.frame import AnalysisFrame
from app.ui.heatmap import LinesItem, cache_axes, fit_y_range, settle_view

NS = 1_000_000_000
LINE_COLOR = (240, 200, 90)
ZERO_COLOR = (110, 110, 130)


class DeltaPane(pg.PlotWidget):
    """The cumulative delta pane (see the module docstring).

    Attributes
    ----------
    MAX_POINTS : int
        Points per frame kept (the oldest half is dropped beyond it; the bars still give the
        history).
    curve : app.ui.heatmap.LinesItem
        The line drawn (its line ``"delta"``, :meth:`drawn_line`): only the stretch around the
        visible range is given to it, so a long session costs a frame no more than an hour.
    """

    MAX_POINTS = 200_000

    def __init__(self, parent=None):
        super().__init__(parent=parent, background=(8, 10, 22))
        self.setObjectName("delta_pane")
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        # no axis title (a short pane would cut it): the line's name and value are in the plot
        self.getAxis("left").enableAutoSIPrefix(False)
        self.plotItem.hideAxis("bottom")  # the heatmap's time axis is right above it (same x)
        # no y grid: the left axis draws it across the whole pane, and that large translucent
        # axis picture cost about 2 ms of every frame's paint (ES, 1600 px wide); the zero line
        # and the value label remain
        self.plotItem.showGrid(x=False, y=False)
        self.vb = self.plotItem.getViewBox()
        self.vb.setMouseEnabled(x=False, y=False)  # the heatmap's wheel and drag move the time axis
        cache_axes(self.plotItem)  # the axes from a pixmap until they change
        # y fits the visible part of the line with headroom (fit_y): moved only when the line leaves
        # it or fills less than a quarter of it, not on every frame (a new y range redraws the
        # axis and the grid)
        self.vb.disableAutoRange()
        #: times the y range was moved (fit_y)
        self.y_fits = 0
        self.zero = pg.InfiniteLine(0.0, angle=0, pen=pg.mkPen(ZERO_COLOR, width=1, style=QtCore.Qt.DotLine))
        self.addItem(self.zero)
        # the line: the visible stretch (plus a view's width each side) of the series, at most
        # DRAWN_PER_PX points a pixel (_draw_line); a pan past that stretch draws it again
        self.curve = LinesItem({"delta": pg.mkPen(LINE_COLOR, width=1.5)})
        self.addItem(self.curve)
        self._drawn_x = None  # (x0, x1) seconds the drawn stretch covers
        self.vb.sigXRangeChanged.connect(self._on_x_changed)
        # the newest value, at the top left of the plot area (pixels, not data: never off screen)
        self.last_label = pg.TextItem("cum. delta", color=LINE_COLOR, anchor=(0, 0))
        self.last_label.setParentItem(self.vb)
        self.last_label.setPos(4, 0)
        self._label_text = "cum. delta"
        self.setMinimumHeight(60)
        self._tbuf = np.zeros(1024)  # per-frame points: seconds since the epoch, contracts
        self._vbuf = np.zeros(1024)
        self._n = 0
        self._session = None
        self._last_ts = -1
        self._bar_t = np.zeros(0)
        self._bar_v = np.zeros(0)

    # ------------------------------------------------------------------ axes
    def link_x(self, plot: pg.PlotWidget) -> None:
        """Share the x (time) axis of ``plot`` (the heatmap)."""
        self.setXLink(plot)

    def linked_to(self):
        """The ViewBox this pane's x axis follows (None when not linked)."""
        return self.vb.linkedView(pg.ViewBox.XAxis)

    # ------------------------------------------------------------------ data
    def clear_series(self) -> None:
        """Forget the line (a new session or a restarted replay)."""
        self._n = 0
        self._bar_t = np.zeros(0)
        self._bar_v = np.zeros(0)

    def _push(self, t_s: float, v: float) -> None:
        n = self._n
        if n and t_s <= self._tbuf[n - 1]:
            self._vbuf[n - 1] = v  # same market time: the newer figure wins
            return
        if n == self._tbuf.shape[0]:
            if n >= self.MAX_POINTS:  # drop the oldest half
                keep = n // 2
                self._tbuf[:keep] = self._tbuf[n - keep:n]
                self._vbuf[:keep] = self._vbuf[n - keep:n]
                n = keep
            else:
                self._tbuf = np.concatenate([self._tbuf, np.zeros(n)])
                self._vbuf = np.concatenate([self._vbuf, np.zeros(n)])
        self._tbuf[n] = t_s
        self._vbuf[n] = v
        self._n = n + 1

    def set_frame(self, frame: AnalysisFrame) -> None:
        """Add ``frame``'s cumulative delta and redraw the line in place."""
        ts = int(frame.ts)
        session = int(getattr(frame, "session_start_ns", -1))
        if session != self._session or (self._last_ts >= 0 and ts < self._last_ts):
            self.clear_series()
            self._session = session
        self._last_ts = ts
        cum = float(getattr(frame, "cum_delta", 0.0))
        b = frame.bars
        if b.shape[0]:
            if session > 0:
                b = b[b["ts"] >= session]
            if b.shape[0]:
                d = b["delta"].astype(np.float64)
                after = np.cumsum(d[::-1])[::-1]  # delta of bar i and every bar after it
                # the value at the start of bar i is cum minus the deltas from bar i on
                self._bar_t = b["ts"].astype(np.float64) / NS
                self._bar_v = cum - after
        if ts > 0:
            self._push(ts / NS, cum)
        t, v = self.series()
        self._draw_line(t, v)
        self.fit_y(t, v)
        if v.shape[0]:
            text = f"cum. delta {v[-1]:+,.0f}"
            if text != self._label_text:  # a TextItem lays its text out again on every setText
                self._label_text = text
                self.last_label.setText(text)
        settle_view(self.vb)  # its y auto-range now, not in the paint (one paint per frame)

    #: most points drawn per pixel of the pane's width (beyond it the stretch is thinned)
    DRAWN_PER_PX = 2

    def drawn_line(self) -> tuple[np.ndarray, np.ndarray]:
        """The points the line item holds now: float64 ``(n,)`` seconds and contracts (a
        stretch of :meth:`series` around the visible range, thinned to at most
        :attr:`DRAWN_PER_PX` points a pixel, always with its last point)."""
        return self.curve.data("delta")

    def _draw_line(self, t: np.ndarray, v: np.ndarray) -> None:
        """Give the line item the visible stretch of ``(t, v)`` with a view's width on each
        side (and the point just outside), every k-th point when it has more than
        :attr:`DRAWN_PER_PX` a pixel (the stretch's last point kept)."""
        (x0, x1), _ = self.vb.viewRange()
        w = max(x1 - x0, 1e-9)
        a, b = x0 - w, x1 + w
        i0 = max(int(np.searchsorted(t, a, side="left")) - 1, 0)
        i1 = min(int(np.searchsorted(t, b, side="right")) + 1, t.shape[0])
        ts, vs = t[i0:i1], v[i0:i1]
        most = max(int(self.DRAWN_PER_PX * 3 * max(self.vb.width(), 1.0)), 16)  # three view widths
        if ts.shape[0] > most:
            k = -(-ts.shape[0] // most)
            idx = np.r_[np.arange(0, ts.shape[0] - 1, k), ts.shape[0] - 1]
            ts, vs = ts[idx], vs[idx]
        self.curve.set_lines({"delta": (ts, vs)})
        self._drawn_x = (a, b)

    def _on_x_changed(self, *_):
        """A pan or zoom (of the heatmap, linked) past the drawn stretch draws it again."""
        d = self._drawn_x
        if d is None:
            return
        (x0, x1), _ = self.vb.viewRange()
        if x0 < d[0] or x1 > d[1] or (x1 - x0) < 0.2 * (d[1] - d[0]) / 3:
            self._draw_line(*self.series())

    #: headroom above and below the visible line when the y range is moved, share of its span
    Y_HEADROOM = 0.25

    def fit_y(self, t: np.ndarray, v: np.ndarray) -> bool:
        """Keep the visible part of the line inside the y range (:func:`app.ui.heatmap.fit_y_range`
        with :attr:`Y_HEADROOM` and at least 1 contract); True when it was moved."""
        moved = fit_y_range(self.vb, t, v, self.Y_HEADROOM, 1.0)
        self.y_fits += int(moved)
        return moved

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """The line drawn: ``(t, value)``, float64 ``(n,)``, seconds since the epoch UTC and
        contracts; bar starts before the first frame point, then the frame points."""
        n = self._n
        if n == 0:
            return self._bar_t, self._bar_v
        keep = self._bar_t < self._tbuf[0]
        return (np.concatenate([self._bar_t[keep], self._tbuf[:n]]),
                np.concatenate([self._bar_v[keep], self._vbuf[:n]]))

    def last_value(self) -> float | None:
        """The line's newest value, contracts (None before any data)."""
        _, v = self.series()
        return float(v[-1]) if v.shape[0] else None
