"""DOM ladder beside the heatmap, on the same price axis.

One :meth:`LadderWidget.paintEvent` draws every visible row per frame (no widget per cell, no
item model): session traded volume, bid size and ask size per price with bars, and the price;
the inside market (best bid / best ask rows) is highlighted. The vertical mapping
price -> pixel is handed in by the window from the heatmap's ViewBox (:meth:`set_view`), so a
row of the ladder sits exactly beside the same price of the heatmap.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.analysis.frame import AnalysisFrame

BG = QtGui.QColor(14, 16, 28)
GRID = QtGui.QColor(40, 44, 60)
BID_BAR = QtGui.QColor(40, 120, 220)
ASK_BAR = QtGui.QColor(210, 60, 90)
VOL_BAR = QtGui.QColor(110, 110, 130)
BID_HI = QtGui.QColor(30, 80, 160, 170)
ASK_HI = QtGui.QColor(160, 40, 80, 170)
TEXT = QtGui.QColor(225, 228, 235)
TEXT_DIM = QtGui.QColor(150, 155, 170)


def price_decimals(tick: float) -> int:
    """Decimals needed to show prices on a ``tick`` grid (0.25 -> 2, 0.01 -> 2, 0.1 -> 1, 1 -> 0)."""
    if tick <= 0:
        return 2
    for d in range(0, 9):
        if abs(round(tick * 10**d) - tick * 10**d) < 1e-9:
            return d
    return 8


def _fmt_size(v: float) -> str:
    if v <= 0:
        return ""
    if v >= 10_000:
        return f"{v / 1000:.0f}k"
    if v == int(v):
        return str(int(v))
    return f"{v:.3g}"


class LadderWidget(QtWidgets.QWidget):
    """Price ladder: volume | bid | price | ask, drawn in one paint routine.

    Attributes
    ----------
    best_bid, best_ask : int
        Inside market of the last frame, ticks (-1 when that side is empty).
    rows_painted : int
        Rows drawn by the last paint (for tests and status).
    """

    COLS = (("Volume", 0.24), ("Bid", 0.26), ("Price", 0.24), ("Ask", 0.26))

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumWidth(220)
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent, True)
        self.tick = 0.25
        self.prices = np.zeros(0, dtype=np.int64)
        self.bid = np.zeros(0)
        self.ask = np.zeros(0)
        self.volume = np.zeros(0)
        self.best_bid = -1
        self.best_ask = -1
        self.rows_painted = 0
        self._lo, self._hi = 0.0, 1.0
        self._top, self._height = 0.0, 1.0
        self._font = QtGui.QFont("monospace")
        self._font.setStyleHint(QtGui.QFont.TypeWriter)
        self._bold = QtGui.QFont(self._font)
        self._bold.setBold(True)

    def set_frame(self, frame: AnalysisFrame) -> None:
        """Take the ladder arrays of ``frame`` (immutable copies) and repaint."""
        self.tick = float(frame.tick_size)
        self.prices = frame.book_prices
        self.bid = frame.book_bid
        self.ask = frame.book_ask
        self.volume = frame.session_volume
        self.best_bid = int(frame.best_bid)
        self.best_ask = int(frame.best_ask)
        self.update()

    def set_view(self, lo: float, hi: float, top_px: float, height_px: float) -> None:
        """Align with the heatmap: prices ``lo..hi`` span ``height_px`` pixels from ``top_px``.

        Parameters
        ----------
        lo, hi : float
            Visible price range, price units.
        top_px, height_px : float
            The heatmap ViewBox's top and height in this widget's pixel coordinates.
        """
        if hi <= lo or height_px <= 0:
            return
        self._lo, self._hi, self._top, self._height = float(lo), float(hi), float(top_px), float(height_px)
        self.update()

    def price_to_y(self, price: float) -> float:
        """Pixel y of a price (centre of its row)."""
        return self._top + (self._hi - price) / (self._hi - self._lo) * self._height

    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QtGui.QPainter) -> None:
        w = self.width()
        p.fillRect(self.rect(), BG)
        xs = [0.0]
        for _, frac in self.COLS:
            xs.append(xs[-1] + frac * w)
        # header
        p.setFont(self._bold)
        p.setPen(TEXT_DIM)
        head_h = 16
        for i, (name, _) in enumerate(self.COLS):
            p.drawText(QtCore.QRectF(xs[i], 0, xs[i + 1] - xs[i], head_h), QtCore.Qt.AlignCenter, name)
        self.rows_painted = 0
        n = self.prices.shape[0]
        if n == 0 or self._hi <= self._lo:
            return
        tick = self.tick
        row_h = tick / (self._hi - self._lo) * self._height
        i0 = int(np.searchsorted(self.prices, math.floor(self._lo / tick) - 1, side="left"))
        i1 = int(np.searchsorted(self.prices, math.ceil(self._hi / tick) + 1, side="right"))
        if i1 <= i0:
            return
        prices = self.prices[i0:i1]
        bid = self.bid[i0:i1]
        ask = self.ask[i0:i1]
        vol = self.volume[i0:i1] if self.volume.shape[0] == n else np.zeros(i1 - i0)
        m_side = max(float(bid.max(initial=0.0)), float(ask.max(initial=0.0)), 1e-9)
        m_vol = max(float(vol.max(initial=0.0)), 1e-9)
        clip_top = max(float(head_h), self._top)
        clip_bot = min(float(self.height()), self._top + self._height)
        p.setClipRect(QtCore.QRectF(0, clip_top, w, max(clip_bot - clip_top, 0.0)))
        show_text = row_h >= 11
        dec = price_decimals(tick)
        p.setFont(self._font)
        pad = 2.0
        # plain Python numbers for the per-row loop (numpy scalar access per cell costs more
        # than the drawing itself)
        prices_l, bid_l, ask_l, vol_l = prices.tolist(), bid.tolist(), ask.tolist(), vol.tolist()
        height = self.height()
        best_bid, best_ask = self.best_bid, self.best_ask
        top, span_hi, scale = self._top, self._hi, self._height / (self._hi - self._lo)
        hgt = max(row_h - (1 if row_h >= 4 else 0), 1.0)
        rect = QtCore.QRectF
        fill = p.fillRect
        text = p.drawText
        right = QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter
        left = QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter
        centre = QtCore.Qt.AlignCenter
        w_vol, w_bid, w_ask = xs[1] - xs[0] - pad, xs[2] - xs[1] - pad, xs[4] - xs[3] - pad
        font, bold = self._font, self._bold
        current_font = font
        if show_text:
            p.setPen(TEXT)
        for k in range(len(prices_l)):
            pt = int(prices_l[k])
            yc = top + (span_hi - pt * tick) * scale  # price_to_y
            y = yc - row_h / 2
            if y > height or y + row_h < head_h:
                continue
            inside = pt == best_bid or pt == best_ask
            if pt == best_bid:
                fill(rect(0, y, w, hgt), BID_HI)
            elif pt == best_ask:
                fill(rect(0, y, w, hgt), ASK_HI)
            v, b, a = vol_l[k], bid_l[k], ask_l[k]
            if v > 0:
                bw = w_vol * v / m_vol
                fill(rect(xs[1] - pad - bw, y, bw, hgt), VOL_BAR)
            if b > 0:
                bw = w_bid * b / m_side
                fill(rect(xs[2] - pad - bw, y, bw, hgt), BID_BAR)
            if a > 0:
                bw = w_ask * a / m_side
                fill(rect(xs[3] + pad, y, bw, hgt), ASK_BAR)
            if show_text:
                want = bold if inside else font
                if want is not current_font:
                    p.setFont(want)
                    current_font = want
                if v > 0:
                    text(rect(xs[0], y, xs[1] - xs[0] - 4, row_h), right, _fmt_size(float(v)))
                if b > 0:
                    text(rect(xs[1], y, xs[2] - xs[1] - 4, row_h), right, _fmt_size(float(b)))
                text(rect(xs[2], y, xs[3] - xs[2], row_h), centre, f"{pt * tick:.{dec}f}")
                if a > 0:
                    text(rect(xs[3] + 4, y, xs[4] - xs[3] - 4, row_h), left, _fmt_size(float(a)))
            self.rows_painted += 1
        p.setPen(GRID)
        for x in xs[1:-1]:
            p.drawLine(QtCore.QPointF(x, head_h), QtCore.QPointF(x, self.height()))
