"""VIX regime gauge: five regime bands, a needle at the VIX, and the regime's numbers.

Drawn in one paint routine from :class:`app.analysis.frame.VixState`: a half-circle dial
split at ``VixState.bands`` (upper VIX bounds of ultra-low, low, normal, high; extreme above),
the needle at ``level``, and below it the regime, percentile, 5-day momentum, term structure
(VIX/VIX3M), the sizing factor, and one badge per active VIX pattern.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from app.analysis.frame import VixState

REGIMES = ("ultra_low", "low", "normal", "high", "extreme")
REGIME_LABELS = {
    "ultra_low": "ULTRA-LOW",
    "low": "LOW",
    "normal": "NORMAL",
    "high": "HIGH",
    "extreme": "EXTREME",
}
BAND_COLORS = (
    QtGui.QColor(60, 140, 230),
    QtGui.QColor(60, 190, 160),
    QtGui.QColor(110, 200, 80),
    QtGui.QColor(240, 170, 40),
    QtGui.QColor(230, 60, 60),
)
BG = QtGui.QColor(14, 16, 28)
TEXT = QtGui.QColor(225, 228, 235)
DIM = QtGui.QColor(150, 155, 170)


class VixGauge(QtWidgets.QWidget):
    """The VIX regime gauge.

    Attributes
    ----------
    state : VixState or None
        The state drawn now.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.state: VixState | None = None
        self.setMinimumSize(240, 230)
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent, True)

    # ------------------------------------------------------------------ data
    def set_state(self, state: VixState | None) -> None:
        """Show ``state`` (repaints only when it changed)."""
        if state == self.state:
            return
        self.state = state
        self.setToolTip(self.summary_text())
        self.update()

    @property
    def regime(self) -> str:
        """The regime shown (``""`` before any VIX state)."""
        return self.state.regime if self.state else ""

    def summary_text(self) -> str:
        """One-line text of what the gauge shows (tooltip, status, tests)."""
        s = self.state
        if s is None:
            return "VIX: no history loaded"
        ts = "n/a" if s.term_structure != s.term_structure else f"{s.term_structure:.2f}"
        return (
            f"VIX {s.level:.2f} ({s.date}) regime {REGIME_LABELS.get(s.regime, s.regime)}; "
            f"percentile {s.percentile * 100:.0f}%, 5d momentum {s.momentum_5d * 100:+.1f}%, "
            f"VIX/VIX3M {ts}, sizing x{s.sizing_factor:.2f}"
        )

    def dial_max(self) -> float:
        """Upper end of the dial, VIX points (at least 50, and above the current level)."""
        s = self.state
        top = 50.0
        if s is not None:
            if s.bands:
                top = max(top, float(s.bands[-1]) * 1.4)
            top = max(top, s.level * 1.1)
        return top

    def value_to_angle(self, v: float) -> float:
        """Dial angle in degrees (180 = left end = 0, 0 = right end = :meth:`dial_max`)."""
        frac = min(max(v / self.dial_max(), 0.0), 1.0)
        return 180.0 - 180.0 * frac

    # ------------------------------------------------------------------ paint
    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        try:
            p.setRenderHint(QtGui.QPainter.Antialiasing, True)
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QtGui.QPainter) -> None:
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), BG)
        f = p.font()
        f.setBold(True)
        p.setFont(f)
        p.setPen(DIM)
        p.drawText(QtCore.QRectF(6, 2, w - 12, 18), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, "VIX regime")
        s = self.state
        radius = max(min(w * 0.42, h * 0.42), 30.0)
        cx, cy = w / 2, 24 + radius
        thick = max(radius * 0.22, 8.0)
        rect = QtCore.QRectF(cx - radius, cy - radius, 2 * radius, 2 * radius)
        bands = list(s.bands) if s is not None and s.bands else [12.0, 16.0, 25.0, 35.0]
        edges = [0.0, *bands, self.dial_max()]
        for i in range(5):
            a0 = self.value_to_angle(edges[i])
            a1 = self.value_to_angle(edges[i + 1])
            pen = QtGui.QPen(BAND_COLORS[i], thick, QtCore.Qt.SolidLine, QtCore.Qt.FlatCap)
            if s is not None and s.regime_index != i:
                c = QtGui.QColor(BAND_COLORS[i])
                c.setAlpha(110)
                pen.setColor(c)
            p.setPen(pen)
            p.drawArc(rect, int(a1 * 16), int((a0 - a1) * 16))
        # band edge labels
        p.setPen(DIM)
        small = QtGui.QFont(p.font())
        small.setBold(False)
        small.setPointSizeF(max(small.pointSizeF() * 0.8, 6.0))
        p.setFont(small)
        for v in bands:
            a = math.radians(self.value_to_angle(v))
            r = radius + thick * 0.5 + 9
            p.drawText(QtCore.QRectF(cx + r * math.cos(a) - 14, cy - r * math.sin(a) - 8, 28, 16),
                       QtCore.Qt.AlignCenter, f"{v:g}")
        if s is None:
            p.setPen(DIM)
            p.drawText(QtCore.QRectF(0, cy + 4, w, 20), QtCore.Qt.AlignCenter, "no VIX history loaded")
            return
        # needle
        a = math.radians(self.value_to_angle(s.level))
        tip = QtCore.QPointF(cx + (radius - thick * 0.2) * math.cos(a), cy - (radius - thick * 0.2) * math.sin(a))
        p.setPen(QtGui.QPen(TEXT, 3, QtCore.Qt.SolidLine, QtCore.Qt.RoundCap))
        p.drawLine(QtCore.QPointF(cx, cy), tip)
        p.setBrush(TEXT)
        p.drawEllipse(QtCore.QPointF(cx, cy), 5, 5)
        # numbers
        big = QtGui.QFont(p.font())
        big.setBold(True)
        big.setPointSizeF(small.pointSizeF() * 1.7)
        p.setFont(big)
        p.setPen(BAND_COLORS[min(max(s.regime_index, 0), 4)])
        p.drawText(QtCore.QRectF(0, cy - radius * 0.55, w, 24), QtCore.Qt.AlignCenter, f"{s.level:.2f}")
        p.drawText(QtCore.QRectF(0, cy + 6, w, 24), QtCore.Qt.AlignCenter, REGIME_LABELS.get(s.regime, s.regime))
        p.setFont(small)
        p.setPen(TEXT)
        ts = "n/a" if s.term_structure != s.term_structure else f"{s.term_structure:.2f}"
        lines = [
            f"percentile {s.percentile * 100:.0f}%   5d mom {s.momentum_5d * 100:+.1f}%",
            f"VIX/VIX3M {ts} {'(backwardation)' if ts != 'n/a' and s.term_structure > 1 else ''}",
            f"sizing x{s.sizing_factor:.2f}   as of {s.date}",
        ]
        y = cy + 32
        for line in lines:
            p.drawText(QtCore.QRectF(4, y, w - 8, 16), QtCore.Qt.AlignCenter, line)
            y += 16
        # badges
        x = 6.0
        y += 4
        fm = QtGui.QFontMetricsF(small)
        for hit in s.patterns:
            label = hit.name.replace("_", " ")
            bw = fm.horizontalAdvance(label) + 12
            if x + bw > w - 6:
                x = 6.0
                y += 20
            p.setPen(QtCore.Qt.NoPen)
            p.setBrush(QtGui.QColor(200, 120, 30) if hit.side <= 0 else QtGui.QColor(40, 150, 90))
            p.drawRoundedRect(QtCore.QRectF(x, y, bw, 17), 7, 7)
            p.setPen(TEXT)
            p.drawText(QtCore.QRectF(x, y, bw, 17), QtCore.Qt.AlignCenter, label)
            x += bw + 5
