"""Session volume profile beside the ladder, on the heatmap's price axis.

One horizontal bar per price row: the volume traded at that price this session
(``AnalysisFrame.session_volume``, contracts, rows of ``AnalysisFrame.book_prices``). The point of
control (the row with the most volume) and the value area (the rows around it that hold 70 % of
the session's volume) come from the frame (``poc``, ``vah``, ``val``, computed by
:meth:`app.market.model.MarketModel.volume_profile`; the GUI computes no analytics): the POC
bar is drawn in its own colour with a line across the pane, value-area bars brighter than the
rest, VAH and VAL as dashed lines, and the three prices in the header.

The vertical mapping price -> pixel is the ladder's (:meth:`set_view`, handed in by the window
from the heatmap's ViewBox), so a bar sits beside the same price row of the ladder and the
heatmap. Rows are grouped as the ladder groups them (:meth:`set_grouping`: one bar per ladder
row, summing the same price rows); on its own the pane sums neighbouring rows into bars of 2,
4, 5 or 10 rows when rows get thinner than :attr:`MIN_BAR_PX` pixels.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui

from app.analysis.frame import AnalysisFrame
from app.ui.ladder import PriceAlignedWidget, price_decimals

BG = QtGui.QColor(14, 16, 28)
OUTSIDE = QtGui.QColor(80, 86, 110)
VALUE = QtGui.QColor(120, 140, 200)
POC = QtGui.QColor(240, 190, 60)
TEXT = QtGui.QColor(225, 228, 235)
TEXT_DIM = QtGui.QColor(150, 155, 170)

#: rows summed into one bar when rows are thin (the ladder's tick groups)
GROUPS = (1, 2, 4, 5, 10)


class ProfilePane(PriceAlignedWidget):
    """The session volume profile (see the module docstring).

    Attributes
    ----------
    prices : np.ndarray, int64, shape (n,)
        Price rows of the frame, ascending (``tick_size`` price units each).
    volume : np.ndarray, float64, shape (n,)
        Session volume per row, contracts.
    poc, vah, val : int
        Point of control, value-area high and low, price rows (-1: no volume yet).
    tick : float
        Price units per row.
    rows_per_bar : int
        Rows summed into one bar by the last paint (1 when rows are at least
        :attr:`MIN_BAR_PX` high).
    """

    #: thinnest bar drawn, pixels (thinner rows are grouped)
    MIN_BAR_PX = 3.0
    HEADER_LINES = 2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("profile_pane")
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent, True)
        self.setMinimumWidth(60)
        self.tick = 0.25
        self.prices = np.zeros(0, dtype=np.int64)
        self.volume = np.zeros(0)
        self.poc = self.vah = self.val = -1
        self.rows_per_bar = 1
        self._grouping = None  # rows per bar from the ladder (set_grouping), else automatic
        self._lo, self._hi = 0.0, 1.0
        self._top, self._height = 0.0, 1.0
        self._font = QtGui.QFont(self.font())
        self._font.setPointSizeF(max(self._font.pointSizeF() * 0.85, 6.0))
        self.setToolTip("Session volume profile: volume traded per price this session; POC (most volume) "
                        "in yellow, value area (70 % of the volume) brighter, VAH / VAL dashed")

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        fm = QtGui.QFontMetrics(self._font)
        return QtCore.QSize(fm.horizontalAdvance("VAH 00000.00") + 8, 200)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        fm = QtGui.QFontMetrics(self._font)
        return QtCore.QSize(fm.horizontalAdvance("VAH 00000.00") + 8, 60)

    # ------------------------------------------------------------------ data
    def set_frame(self, frame: AnalysisFrame) -> None:
        """Take the profile of ``frame`` (immutable copies) and repaint, only when the profile
        changed (the same rows, volumes, POC and value area draw the same bars)."""
        tick = float(frame.tick_size)
        poc, vah, val = int(frame.poc), int(frame.vah), int(frame.val)
        prices, volume = frame.book_prices, frame.session_volume
        if (tick == self.tick and (poc, vah, val) == (self.poc, self.vah, self.val)
                and prices.shape == self.prices.shape and volume.shape == self.volume.shape
                and (prices.shape[0] == 0 or prices[0] == self.prices[0])
                and np.array_equal(volume, self.volume)):
            return  # nothing to draw anew (a pan or zoom repaints through set_view)
        self.tick = tick
        self.prices = prices
        self.volume = volume
        self.poc, self.vah, self.val = poc, vah, val
        self.update()

    def set_grouping(self, rows_for_px) -> None:
        """Group rows as the ladder does: ``rows_for_px(row_px) -> int`` gives the price rows per
        ladder row for rows ``row_px`` pixels high (``0``: not known yet, then the pane groups by
        itself, see :attr:`MIN_BAR_PX`), so each bar sits beside one ladder row and sums the same
        rows (groups aligned on multiples, as :func:`app.ui.ladder.group_rows`). ``None`` stops
        following."""
        self._grouping = rows_for_px
        self.update()

    def header_height(self) -> float:
        """Pixels of the header (POC, VAH / VAL prices) at the top of the pane."""
        return QtGui.QFontMetricsF(self._font).height() * self.HEADER_LINES + 4

    def row_kind(self, price_row: int) -> str:
        """``"poc"``, ``"value"`` (inside the value area) or ``"outside"`` for a price row."""
        if self.poc >= 0 and int(price_row) == self.poc:
            return "poc"
        if self.val >= 0 and self.val <= int(price_row) <= self.vah:
            return "value"
        return "outside"

    def bars(self) -> list[tuple[int, float, str]]:
        """The bars at the current group size: ``(first price row, volume, kind)`` per bar with
        volume, ascending. A grouped bar holds rows ``first .. first + rows_per_bar - 1``; its
        kind is ``"poc"`` when it holds the POC, else ``"value"`` when it holds a value-area row."""
        first, vol, kind = self._bar_arrays(0, self.prices.shape[0])
        names = ("outside", "value", "poc")
        return [(int(p), float(v), names[k]) for p, v, k in zip(first.tolist(), vol.tolist(), kind.tolist())]

    def _bar_arrays(self, i0: int, i1: int):
        """Bars of the rows ``prices[i0:i1]`` (whole groups): first rows (int64), volumes
        (float64) and kinds (0 outside, 1 value area, 2 POC), bars with volume only."""
        g = max(int(self.rows_per_bar), 1)
        n = self.prices.shape[0]
        if n == 0 or self.volume.shape[0] != n or i1 <= i0:
            z = np.zeros(0, np.int64)
            return z, np.zeros(0), z
        keys = np.floor_divide(self.prices[i0:i1], g) * g
        first, idx = np.unique(keys, return_index=True)
        vol = np.add.reduceat(np.asarray(self.volume[i0:i1], np.float64), idx)
        kind = np.zeros(first.shape[0], np.int64)
        if self.val >= 0:
            kind[(first <= self.vah) & (first + g - 1 >= self.val)] = 1
        if self.poc >= 0:
            kind[(first <= self.poc) & (self.poc < first + g)] = 2
        keep = vol > 0
        return first[keep], vol[keep], kind[keep]

    def longest_bar(self) -> tuple[int, float, str] | None:
        """The bar drawn longest (the lowest price on a tie), or None with no volume."""
        best = None
        for b in self.bars():
            if best is None or b[1] > best[1]:
                best = b
        return best

    # ------------------------------------------------------------------ paint
    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _group_for(self, row_h: float) -> int:
        if self._grouping is not None:
            k = int(self._grouping(row_h))
            if k >= 1:
                return k
        for g in GROUPS:
            if row_h * g >= self.MIN_BAR_PX:
                return g
        return GROUPS[-1]

    def _paint(self, p: QtGui.QPainter) -> None:
        w, h = float(self.width()), float(self.height())
        p.fillRect(self.rect(), BG)
        p.setFont(self._font)
        fm = QtGui.QFontMetricsF(self._font)
        head = self.header_height()
        dec = price_decimals(self.tick)
        line_h = fm.height()
        p.setPen(TEXT_DIM)
        if self.poc >= 0:
            p.setPen(POC)
            p.drawText(QtCore.QRectF(2, 1, w - 4, line_h), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter,
                       f"POC {self.poc * self.tick:.{dec}f}")
            p.setPen(VALUE)
            va = f"VA {self.val * self.tick:.{dec}f}-{self.vah * self.tick:.{dec}f}"
            if fm.horizontalAdvance(va) > w - 4:  # a narrow pane: the range's width in rows
                va = f"VA {self.vah - self.val + 1} rows"
            p.drawText(QtCore.QRectF(2, 1 + line_h, w - 4, line_h), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, va)
        else:
            p.drawText(QtCore.QRectF(2, 1, w - 4, line_h), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, "Profile")
        n = self.prices.shape[0]
        if n == 0 or self._hi <= self._lo or self.volume.shape[0] != n:
            return
        tick = self.tick
        scale = self._height / (self._hi - self._lo)
        row_h = tick * scale
        self.rows_per_bar = g = self._group_for(row_h)
        clip_top = max(head, self._top)
        clip_bot = min(h, self._top + self._height)
        p.setClipRect(QtCore.QRectF(0, clip_top, w, max(clip_bot - clip_top, 0.0)))
        # the longest bar of the whole profile is the full width (the scale does not jump on a pan)
        _, all_vol, _ = self._bar_arrays(0, n)
        if all_vol.shape[0] == 0:
            return
        vmax = float(all_vol.max()) or 1.0
        # the visible rows only, widened to whole groups
        lo_row = (int(np.floor(self._lo / tick)) - 1) // g * g
        hi_row = (int(np.ceil(self._hi / tick)) + 1) // g * g + g
        i0 = int(np.searchsorted(self.prices, lo_row, side="left"))
        i1 = int(np.searchsorted(self.prices, hi_row, side="left"))
        first, vol, kind = self._bar_arrays(i0, i1)
        bar_h = max(row_h * g - (1 if row_h * g >= 4 else 0), 1.0)
        colors = (OUTSIDE, VALUE, POC)
        scale_w = (w - 2) / vmax
        for p0, v, k in zip(first.tolist(), vol.tolist(), kind.tolist()):
            # the bar spans rows p0 .. p0 + g - 1: from the top of the highest to the bottom of the lowest
            y = self.price_to_y((p0 + g - 1) * tick) - row_h / 2
            if y > h or y + bar_h < head:
                continue
            p.fillRect(QtCore.QRectF(0, y, max(v * scale_w, 1.0), bar_h), colors[k])
        # POC line, VAH / VAL dashed lines across the pane
        if self.poc >= 0:
            p.setPen(QtGui.QPen(POC, 1))
            y = self.price_to_y(self.poc * tick)
            p.drawLine(QtCore.QPointF(0, y), QtCore.QPointF(w, y))
            pen = QtGui.QPen(VALUE, 1, QtCore.Qt.DashLine)
            p.setPen(pen)
            for pr, edge in ((self.vah, -0.5), (self.val, 0.5)):
                y = self.price_to_y((pr - edge) * tick)
                p.drawLine(QtCore.QPointF(0, y), QtCore.QPointF(w, y))
