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
        #: False while the engine compiles the analyzers (``AnalysisFrame.analysis_ready``)
        self.analysis_ready = True
        self.setMinimumSize(200, 180)  # the dial shrinks to fit; its texts keep their size
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent, True)

    # ------------------------------------------------------------------ data
    def set_state(self, state: VixState | None, analysis_ready: bool = True) -> None:
        """Show ``state`` (repaints only when it or ``analysis_ready`` changed).

        Parameters
        ----------
        state : VixState or None
            The frame's VIX picture (``AnalysisFrame.vix``); None: none yet.
        analysis_ready : bool
            ``AnalysisFrame.analysis_ready``: False while the analyzers are being compiled on a
            first start, when the missing state means "not computed yet", not "no history".
        """
        ready = bool(analysis_ready)
        if state == self.state and ready == self.analysis_ready:
            return
        self.state = state
        self.analysis_ready = ready
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
            return "VIX: no history loaded" if self.analysis_ready else \
                "VIX: the analysis is compiling (the regime shows once it is ready)"
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

    def fonts(self) -> tuple[QtGui.QFont, QtGui.QFont, QtGui.QFont]:
        """``(title, small, big)`` fonts, all in points from the widget's font (they follow the
        screen's DPI and ``QT_SCALE_FACTOR``)."""
        title = QtGui.QFont(self.font())
        title.setBold(True)
        small = QtGui.QFont(self.font())
        small.setPointSizeF(max(small.pointSizeF() * 0.8, 6.0))
        big = QtGui.QFont(small)
        big.setBold(True)
        big.setPointSizeF(small.pointSizeF() * 1.7)
        return title, small, big

    def geometry_of_dial(self) -> dict:
        """Where the dial and its texts go at the widget's size (pixels), from the font metrics.

        Returns a dict: ``cx``, ``cy`` (dial centre), ``radius``, ``thick`` (band width),
        ``title`` (QRectF of "VIX regime"), ``line_h`` (one line of small text) and ``labels``:
        ``[(text, QRectF)]``, one per band edge. The band labels sit on a ring outside the
        arc, below the title and inside the widget (the top one was cut off when the dial was
        sized without them).
        """
        w, h = float(self.width()), float(self.height())
        title_f, small_f, big_f = self.fonts()
        fmt = QtGui.QFontMetricsF(title_f)
        fm = QtGui.QFontMetricsF(small_f)
        fmb = QtGui.QFontMetricsF(big_f)
        s = self.state
        bands = list(s.bands) if s is not None and s.bands else [12.0, 16.0, 25.0, 35.0]
        texts = [f"{v:g}" for v in bands]
        lab_w = max(fm.horizontalAdvance(t) for t in texts) + 6
        lab_h = fm.height()
        line_h = fm.height() + 1
        title = QtCore.QRectF(6, 2, w - 12, fmt.height() + 2)
        # below the centre: the regime name, three lines of figures and one row of badges
        below = 6 + fmb.height() + 2 + 3 * line_h + 4 + line_h + 4
        top = title.bottom() + 2 + lab_h + 2  # the top of the arc's outer edge
        r_tot = min(w / 2 - 4 - lab_w, h - top - below)  # outer edge of the arc, from the centre
        radius = r_tot / 1.11 if r_tot / 1.11 * 0.22 >= 8 else r_tot - 4
        radius = max(radius, 20.0)
        thick = max(radius * 0.22, 8.0)
        cx, cy = w / 2, top + thick / 2 + radius
        r_lab = radius + thick / 2 + 2 + lab_h / 2
        labels = []
        for v, t in zip(bands, texts):
            a = math.radians(self.value_to_angle(v))
            x, y = cx + r_lab * math.cos(a), cy - r_lab * math.sin(a)
            # a label beside the arc (near the ends) moves out sideways, not into the band
            x += math.cos(a) * (lab_w - lab_h) / 2
            labels.append((t, QtCore.QRectF(x - lab_w / 2, y - lab_h / 2, lab_w, lab_h)))
        return dict(cx=cx, cy=cy, radius=radius, thick=thick, title=title, line_h=line_h,
                    labels=labels, big_h=fmb.height())

    def _paint(self, p: QtGui.QPainter) -> None:
        w = self.width()
        p.fillRect(self.rect(), BG)
        title_f, small, big = self.fonts()
        g = self.geometry_of_dial()
        p.setFont(title_f)
        p.setPen(DIM)
        p.drawText(g["title"], QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter, "VIX regime")
        s = self.state
        radius, thick, cx, cy = g["radius"], g["thick"], g["cx"], g["cy"]
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
        p.setFont(small)
        for text, r in g["labels"]:
            p.drawText(r, QtCore.Qt.AlignCenter, text)
        line_h = g["line_h"]
        if s is None:
            p.setPen(DIM)
            p.drawText(QtCore.QRectF(0, cy + 4, w, line_h + 4), QtCore.Qt.AlignCenter,
                       "no VIX history loaded" if self.analysis_ready else "analysis compiling...")
            return
        # needle
        a = math.radians(self.value_to_angle(s.level))
        tip = QtCore.QPointF(cx + (radius - thick * 0.2) * math.cos(a), cy - (radius - thick * 0.2) * math.sin(a))
        p.setPen(QtGui.QPen(TEXT, 3, QtCore.Qt.SolidLine, QtCore.Qt.RoundCap))
        p.drawLine(QtCore.QPointF(cx, cy), tip)
        p.setBrush(TEXT)
        p.drawEllipse(QtCore.QPointF(cx, cy), 5, 5)
        # numbers
        big_h = g["big_h"] + 2
        p.setFont(big)
        p.setPen(BAND_COLORS[min(max(s.regime_index, 0), 4)])
        p.drawText(QtCore.QRectF(0, cy - radius * 0.55, w, big_h), QtCore.Qt.AlignCenter, f"{s.level:.2f}")
        p.drawText(QtCore.QRectF(0, cy + 6, w, big_h), QtCore.Qt.AlignCenter, REGIME_LABELS.get(s.regime, s.regime))
        p.setFont(small)
        p.setPen(TEXT)
        ts = "n/a" if s.term_structure != s.term_structure else f"{s.term_structure:.2f}"
        lines = [
            f"percentile {s.percentile * 100:.0f}%   5d mom {s.momentum_5d * 100:+.1f}%",
            f"VIX/VIX3M {ts} {'(backwardation)' if ts != 'n/a' and s.term_structure > 1 else ''}",
            f"sizing x{s.sizing_factor:.2f}   as of {s.date}",
        ]
        y = cy + 6 + big_h
        for line in lines:
            p.drawText(QtCore.QRectF(4, y, w - 8, line_h), QtCore.Qt.AlignCenter, line)
            y += line_h
        # badges
        x = 6.0
        y += 4
        fm = QtGui.QFontMetricsF(small)
        badge_h = line_h + 1
        for hit in s.patterns:
            label = hit.name.replace("_", " ")
            bw = fm.horizontalAdvance(label) + 12
            if x + bw > w - 6:
                x = 6.0
                y += badge_h + 3
            p.setPen(QtCore.Qt.NoPen)
            p.setBrush(QtGui.QColor(200, 120, 30) if hit.side <= 0 else QtGui.QColor(40, 150, 90))
            p.drawRoundedRect(QtCore.QRectF(x, y, bw, badge_h), 7, 7)
            p.setPen(TEXT)
            p.drawText(QtCore.QRectF(x, y, bw, badge_h), QtCore.Qt.AlignCenter, label)
            x += bw + 5
