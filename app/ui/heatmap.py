"""DOM ladder heatmap: resting liquidity over time, best bid/ask, trade bubbles, pattern markers.

Drawn with pyqtgraph following ``shared/reference/heatmap-rendering.md``:

* one :class:`pyqtgraph.ImageItem` (row-major, float32 data, explicit ``levels``, a 256-entry
  uint8 lookup table) created once and updated in place with ``setImage``; the image is placed
  in data coordinates with ``setRect`` (x = seconds since the epoch UTC, y = price);
* contrast changes the image ``levels`` only (never the data, never the LUT);
* two :class:`BubblesItem` for trade bubbles (size ~ sqrt(volume), one per aggressor side, each
  drawn from an atlas of circles in one call), one :class:`pyqtgraph.ScatterPlotItem` for pattern markers (tooltip = the pattern's reasons), one for elite signals
  and one for the markers of the signal selected in the tape; all created once;
* best bid / best ask are lines of one :class:`LinesItem` fed from a fixed-size ring that the
  widget keeps of the frames it drew (display state only; no analytics here); the session VWAP
  (gold, one point per heatmap column) and its 1 and 2 standard-deviation bands (dotted) in the
  same item, a dashed vertical line at the trading session's open, and the session phase in the
  time axis label;
* the view follows the market by default (newest column at the right edge, price re-centred
  when the mid drifts past a quarter of the visible height; the time span starts where the
  data starts, ``frame.history_start_ns``, never on an empty pre-open stretch); any mouse
  pan/zoom switches following off; :meth:`HeatmapWidget.follow` (key ``F``) switches it back on;
* the whole session: the wheel zooms from one minute to the whole session (view limits).
  When the view reaches past the frame's newest window, the widget asks the engine for the
  image of the visible range (``history_source``, e.g.
  :meth:`app.live.engine.AnalysisEngine.request_history`: O(1) here, the worker computes it at
  the finest tier that fits the view's width in pixels) and draws the answer, which arrives
  in a later frame (``frame.history``), in a second image item under the live one. Nothing
  is computed here per frame: one request per view change that the last answer does not
  cover.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.analysis.frame import AnalysisFrame, Signal

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, useOpenGL=False)
try:  # numba-accelerated rescale in ImageItem (documented pyqtgraph option)
    pg.setConfigOptions(useNumba=True)
except Exception:  # pragma: no cover - option missing in an old pyqtgraph
    pass

NS = 1_000_000_000

#: Colour stops of the liquidity palette (position 0..1 -> RGB), dark for empty.
HEATMAP_STOPS = (
    (0.00, (8, 10, 22)),
    (0.08, (18, 32, 84)),
    (0.30, (20, 110, 170)),
    (0.55, (40, 190, 140)),
    (0.75, (230, 220, 60)),
    (0.90, (250, 130, 30)),
    (1.00, (255, 255, 255)),
)

BUY_COLOR = (40, 230, 90)
SELL_COLOR = (250, 60, 70)
BID_LINE_COLOR = (60, 200, 255)
ASK_LINE_COLOR = (255, 90, 160)
VWAP_COLOR = (255, 200, 60)  # session VWAP (bands dotted in the same colour)

#: Marker symbol per pattern name (pyqtgraph symbol codes); unknown names use ``star``.
PATTERN_SYMBOLS = {
    "iceberg": "d",
    "wall": "s",
    "spoofing": "x",
    "spoof": "x",
    "absorption": "o",
    "squeeze": "t1",
    "ladder": "h",
    "head_fake": "p",
    "microstructure": "+",
}


def cache_axes(plot_item, on: bool = True) -> None:
    """Draw the axes of ``plot_item`` from a pixmap Qt keeps per axis.

    An axis replays its tick labels (a ``QPicture`` of text) on every paint of the view,
    about 4 ms per axis per paint here; with ``DeviceCoordinateCache`` Qt renders it once
    into a pixmap at device resolution and blits that until the axis changes (a new range
    or size calls its ``update()``, which drops the pixmap). ``on=False`` paints them
    directly again (the reference the tests compare with).
    """
    mode = QtWidgets.QGraphicsItem.DeviceCoordinateCache if on else QtWidgets.QGraphicsItem.NoCache
    for name in ("left", "bottom", "right", "top"):
        plot_item.getAxis(name).setCacheMode(mode)


class ScrollingDateAxis(pg.DateAxisItem):
    """A time axis (UTC seconds, like :class:`pyqtgraph.DateAxisItem`) that follows a scrolling
    view by moving its drawn labels instead of laying them out again.

    While a heatmap follows the market its x range moves every frame by a small shift of the
    same span; pyqtgraph then chooses ticks, formats and measures every label and records a
    new picture (``generateDrawSpecs``: about 1 ms per axis per frame here, two axes per
    instrument with the relation pane). Here a change of range that keeps the span (to a
    twentieth of a pixel) and the width, and moves the axis by at most :attr:`max_shift_px` pixels from
    where its picture was drawn, keeps the picture and plays it shifted by that many pixels
    (the axis line is drawn :attr:`max_shift_px` longer at both ends, so a shifted line still
    reaches both edges). Any other change (a zoom, a resize, a style change, a larger shift)
    lays the axis out again, as pyqtgraph does. What this gives up: a tick entering at an edge
    is shown at most :attr:`max_shift_px` pixels late (on the ES heatmap following 100 s in
    1,200 px, 0.7 s of market time); labels are never misplaced.

    Attributes
    ----------
    layouts : int
        Times the labels were laid out (a new picture), for tests and benchmarks.
    """

    max_shift_px = 8.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pic_range: tuple[float, float, float] | None = None  # (min, max, width px) of the picture
        self.layouts = 0

    def _shift_px(self, mn: float, mx: float) -> float | None:
        """Pixels from the picture's position to ``[mn, mx]`` (None: not a pure shift)."""
        if self.picture is None or self._pic_range is None:
            return None
        p0, p1, w = self._pic_range
        span = p1 - p0
        # the same span to a twentieth of a pixel at the far edge (x is seconds since the
        # epoch, so the span carries ~1e-7 s of rounding)
        if span == 0 or w <= 0 or abs((mx - mn) - span) * w > 0.05 * abs(span):
            return None
        if abs(self.geometry().width() - w) > 0.5:
            return None
        return (p0 - mn) * w / span

    def setRange(self, mn: float, mx: float):  # noqa: N802 (pyqtgraph name)
        """The visible range, seconds; a small shift of the same span keeps the picture."""
        if not (math.isfinite(mn) and math.isfinite(mx)):
            raise ValueError(f"Not setting range to [{mn}, {mx}]")
        dx = self._shift_px(mn, mx)
        if dx is not None and abs(dx) <= self.max_shift_px:
            self.range = [mn, mx]
            self.update()
            return
        super().setRange(mn, mx)

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802 (pyqtgraph name)
        pen, p1, p2 = axisSpec
        ext = self.max_shift_px
        if self.orientation in ("bottom", "top"):
            p1, p2 = QtCore.QPointF(p1.x() - ext, p1.y()), QtCore.QPointF(p2.x() + ext, p2.y())
        super().drawPicture(p, (pen, p1, p2), tickSpecs, textSpecs)

    def paint(self, p, opt, widget):
        p.save()
        p.setClipRect(self.boundingRect())  # the longer axis line ends at the axis' edges
        try:
            if self.picture is None:
                self.layouts += 1
                self._pic_range = (float(self.range[0]), float(self.range[1]), float(self.geometry().width()))
                super().paint(p, opt, widget)
                return
            p.translate(self._shift_px(float(self.range[0]), float(self.range[1])) or 0.0, 0.0)
            self.picture.play(p)
        finally:
            p.restore()


def fit_y_range(view_box, t: np.ndarray, v: np.ndarray, headroom: float, min_span: float) -> bool:
    """Keep the visible part of a line inside ``view_box``'s y range, moving it seldom.

    A new y range redraws the y axis (and its cached pixmap, :func:`cache_axes`), so the range
    moves only when the visible values (the points inside the x range and the one on each side
    of it) leave it or span less than a quarter of it; the new range is their span (at least
    ``min_span``) plus ``headroom`` of it above and below.

    Parameters
    ----------
    view_box : pyqtgraph.ViewBox
        The plot's view (its x range is read, its y range set).
    t, v : np.ndarray, float64, shape (n,)
        The line: x (ascending, the view's x units) and y values. NaN y values are ignored.
    headroom : float
        Share of the span added above and below.
    min_span : float
        Smallest span, in y units.

    Returns
    -------
    bool
        True when the y range was moved.
    """
    if v.shape[0] == 0:
        return False
    (x0, x1), (y0, y1) = view_box.viewRange()
    i0 = max(int(np.searchsorted(t, x0, side="left")) - 1, 0)
    i1 = min(int(np.searchsorted(t, x1, side="right")) + 1, v.shape[0])
    if i1 <= i0:
        i0, i1 = v.shape[0] - 1, v.shape[0]
    seg = v[i0:i1]
    seg = seg[np.isfinite(seg)]
    if seg.shape[0] == 0:
        return False
    lo, hi = float(seg.min()), float(seg.max())
    span = max(hi - lo, float(min_span))
    if lo >= y0 and hi <= y1 and span >= 0.25 * (y1 - y0):
        return False
    pad = headroom * span
    view_box.setYRange(lo - pad, lo + span + pad, padding=0)
    return True


def settle_view(view_box) -> None:
    """Bring ``view_box``'s auto-range and view transform up to date now, not in the next paint.

    pyqtgraph defers both to :meth:`pyqtgraph.ViewBox.prepareForPaint`, which runs inside the
    view's paint; the new transform there makes every curve, scatter and infinite line call
    ``prepareGeometryChange`` during the paint, and the scene schedules a second full paint of
    the view for the same frame. Called after a frame's items are updated (and before the
    paint), the changes join the one paint the frame needs. Idempotent (nothing happens when
    the range did not change).
    """
    view_box.prepareForPaint()


def heatmap_lut(stops=HEATMAP_STOPS) -> np.ndarray:
    """Build the liquidity lookup table.

    Returns
    -------
    np.ndarray, uint8, shape (256, 4)
        RGBA colour per level index (the fast Indexed8 path of ``ImageItem`` needs uint8 and
        at most 256 entries).
    """
    pos = np.array([s[0] for s in stops])
    rgb = np.array([s[1] for s in stops], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    lut = np.empty((256, 4), dtype=np.uint8)
    for c in range(3):
        lut[:, c] = np.clip(np.rint(np.interp(x, pos, rgb[:, c])), 0, 255)
    lut[:, 3] = 255
    return lut


def display_lut(lut: np.ndarray) -> np.ndarray:
    """The table the image item draws with: each RGB entry of ``lut`` twice.

    Parameters
    ----------
    lut : np.ndarray, uint8, shape (256, 4)
        :func:`heatmap_lut`.

    Returns
    -------
    np.ndarray, uint8, shape (512, 3)
        Entry ``k`` is ``lut[k // 2]`` without alpha (the palette is opaque).

    Notes
    -----
    With 512 entries pyqtgraph maps a cell to index ``floor((v - lo) * 512 / (hi - lo))``
    (clipped to 0..511), which is exactly twice the 256-entry index (a power-of-two scale is
    exact in floating point), so every cell gets the same colour as with ``lut``. The
    difference is the image format: more than 256 entries make pyqtgraph apply the table
    itself (one numba pass) and hand Qt a 32-bit RGBX image, which Qt draws about four times
    faster than the 8-bit indexed image a 256-entry table gives (that one is converted on
    every paint).
    """
    return np.ascontiguousarray(np.repeat(lut[:, :3], 2, axis=0))


def level_sample(data: np.ndarray, max_samples: int = 20_000) -> np.ndarray:
    """A strided sample of the non-zero cells of a heatmap (bounded cost whatever its size).

    Parameters
    ----------
    data : np.ndarray, float32, shape (rows, cols)
        Resting size per cell, contracts.
    max_samples : int
        Cells looked at, at most.

    Returns
    -------
    np.ndarray, float32, shape (k,)
        The non-zero sampled sizes, contracts (may be empty).
    """
    flat = data.reshape(-1)
    step = max(1, flat.size // max_samples)
    s = flat[::step]
    return s[s > 0]


def cutoff_level(sample: np.ndarray, contrast: float) -> float:
    """Upper colour level: the ``contrast`` quantile (0.5..1.0) of the sampled sizes.

    This is the settings' ``display.contrast`` ("upper cut-off quantile of resting size"):
    cells at or above it get the brightest colour. Returns 1.0 for an empty sample.
    """
    if sample.size == 0:
        return 1.0
    q = min(max(float(contrast), 0.5), 1.0)
    return float(max(np.quantile(sample, q), 1e-9))


class _Ring:
    """Fixed-size ring of (t seconds, a, b) for lines over time: best bid / ask, or VWAP / its sd."""

    def __init__(self, n: int = 4096):
        self.t = np.full(n, np.nan)
        self.bid = np.full(n, np.nan)
        self.ask = np.full(n, np.nan)
        self.n = n
        self.count = 0

    def push(self, t: float, bid: float, ask: float, min_dt: float = 0.0) -> None:
        """Add a point at ``t`` (seconds). With ``min_dt`` > 0 (a heatmap column, seconds), a
        point in the same step ``floor(t / min_dt)`` as the newest one replaces it: the line
        keeps one point per step, the step's newest, and always ends on the newest value."""
        if self.count:
            last = (self.count - 1) % self.n
            if t < self.t[last]:
                self.clear()  # market time went back (new replay): start over
            elif min_dt > 0.0 and math.floor(t / min_dt) == math.floor(self.t[last] / min_dt):
                self.t[last], self.bid[last], self.ask[last] = t, bid, ask
                return
        i = self.count % self.n
        self.t[i], self.bid[i], self.ask[i] = t, bid, ask
        self.count += 1

    def clear(self) -> None:
        self.t[:] = np.nan
        self.bid[:] = np.nan
        self.ask[:] = np.nan
        self.count = 0

    def ordered(self):
        if self.count <= self.n:
            sl = slice(0, self.count)
            return self.t[sl], self.bid[sl], self.ask[sl]
        k = self.count % self.n
        idx = np.r_[k : self.n, 0:k]
        return self.t[idx], self.bid[idx], self.ask[idx]


class BubblesItem(pg.GraphicsObject):
    """Filled circles of one colour at data positions, each a few pixels across whatever the
    zoom (trade bubbles: x seconds since the epoch UTC, y price units, diameter in pixels).

    Drawn in one ``QPainter.drawPixmapFragments`` call from an atlas of one antialiased circle
    per size of ``sizes``, rendered once (what :class:`pyqtgraph.ScatterPlotItem` does in its
    paint, without its per-point records, styles and per-paint bounds: its ``setData`` cost
    0.6 ms per item per frame on the ES band, three quarters of the bubbles' time).

    Parameters
    ----------
    sizes : np.ndarray, float64, shape (k,)
        The diameters a bubble may have, pixels, ascending.
    brush : QtGui.QBrush
        Fill of every circle (no outline).

    Attributes
    ----------
    data : np.ndarray, structured (``x``, ``y``, ``size`` float64), shape (n,)
        The bubbles drawn now, in the order given to :meth:`set_bubbles`.
    """

    def __init__(self, sizes: np.ndarray, brush):
        super().__init__()
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.brush = pg.mkBrush(brush)
        self.data = np.zeros(0, dtype=[("x", "f8"), ("y", "f8"), ("size", "f8")])
        self._idx = np.zeros(0, dtype=np.intp)
        self._rect = QtCore.QRectF()
        self._atlas = None  # (QPixmap, source rects float64 (k, 4), device pixel ratio)
        from pyqtgraph.Qt import internals

        self._frags = internals.PrimitiveArray(QtGui.QPainter.PixmapFragment, 10)

    def _make_atlas(self, dpr: float):
        cells = [int(math.ceil(d * dpr)) + 2 for d in self.sizes]
        img = QtGui.QImage(sum(cells), max(cells), QtGui.QImage.Format_ARGB32_Premultiplied)
        img.fill(0)
        qp = QtGui.QPainter(img)
        qp.setRenderHint(QtGui.QPainter.Antialiasing, True)
        qp.setPen(QtCore.Qt.NoPen)
        qp.setBrush(self.brush)
        rects = np.zeros((len(cells), 4))
        x = 0
        for k, (d, c) in enumerate(zip(self.sizes, cells)):
            qp.drawEllipse(QtCore.QRectF(x + (c - d * dpr) / 2, (c - d * dpr) / 2, d * dpr, d * dpr))
            rects[k] = (x, 0, c, c)
            x += c
        qp.end()
        pix = QtGui.QPixmap.fromImage(img)
        return pix, rects, dpr

    def set_bubbles(self, x: np.ndarray, y: np.ndarray, size: np.ndarray) -> None:
        """Draw bubbles at ``x``, ``y`` (data units, float64, shape (n,)) with diameters ``size``
        (pixels, each one of :attr:`sizes`).

        Raises
        ------
        ValueError
            If a size is not one of :attr:`sizes` or the arrays differ in length.
        """
        x, y, size = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (x, y, size))
        if not (x.shape == y.shape == size.shape):
            raise ValueError(f"x, y and size differ in length: {x.shape[0]}, {y.shape[0]}, {size.shape[0]}")
        idx = np.searchsorted(self.sizes, size)
        if x.shape[0] and (idx.max() >= self.sizes.shape[0] or not np.array_equal(self.sizes[idx], size)):
            raise ValueError(f"bubble sizes must be among {self.sizes.tolist()} px")
        d = np.empty(x.shape[0], dtype=self.data.dtype)
        d["x"], d["y"], d["size"] = x, y, size
        self.data, self._idx = d, idx
        rect = (QtCore.QRectF(float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min()))
                if x.shape[0] else QtCore.QRectF())
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def boundingRect(self):  # noqa: N802 (Qt name)
        """The bubbles' centres, widened by the largest radius in data units at the current zoom."""
        if self._rect.isNull() and not self.data.shape[0]:
            return QtCore.QRectF()
        px, py = self.pixelVectors()
        rx = abs(px.x()) * self.sizes[-1] if px is not None else 0.0
        ry = abs(py.y()) * self.sizes[-1] if py is not None else 0.0
        return self._rect.adjusted(-rx, -ry, rx, ry)

    def viewTransformChanged(self):  # noqa: N802 (pyqtgraph name)
        self.prepareGeometryChange()  # the pixel margin of the bounds changed

    def paint(self, p, _opt, widget):
        n = self.data.shape[0]
        if not n:
            return
        dpr = widget.devicePixelRatioF() if widget is not None else 1.0
        if self._atlas is None or self._atlas[2] != dpr:
            self._atlas = self._make_atlas(dpr)
        pix, rects, _ = self._atlas
        t = p.transform()
        x, y = self.data["x"], self.data["y"]
        self._frags.resize(n)
        f = self._frags.ndarray()
        f[:, 0] = t.m11() * x + t.m21() * y + t.dx()
        f[:, 1] = t.m12() * x + t.m22() * y + t.dy()
        np.clip(f[:, 0:2], -2.0 ** 30, 2.0 ** 30, out=f[:, 0:2])
        f[:, 2:6] = rects[self._idx]
        f[:, 6:10] = (1.0 / dpr, 1.0 / dpr, 0.0, 1.0)
        p.save()
        p.resetTransform()
        p.drawPixmapFragments(*self._frags.drawargs(), pix)
        p.restore()


class LinesItem(pg.GraphicsObject):
    """Several polylines over time in one scene item: the best bid and ask, the session VWAP and
    its bands (data coordinates: x seconds since the epoch UTC, y price units).

    One item instead of a :class:`pyqtgraph.PlotCurveItem` per line: each curve item computes
    its data and pixel bounds and rebuilds its path inside every paint, and the scene asks
    each for its bounding rect several times a frame (a third of the ES heatmap's frame cost
    for six curves, profiled with ``bench gui``). Here a line's path is built once when its
    data is set (:func:`pyqtgraph.arrayToQPath`, NaN breaks the line), the bounding rect is
    the union of the paths' rects, and a paint is one ``drawPath`` per line.

    Parameters
    ----------
    pens : dict of str -> QPen
        The lines by name, in drawing order (later ones on top), each with its pen (cosmetic:
        widths in pixels).
    """

    def __init__(self, pens: dict):
        super().__init__()
        self._pens = dict(pens)
        self._paths: dict = {}
        self._data: dict = {}
        self._rect = QtCore.QRectF()

    def names(self) -> list[str]:
        """The lines' names, in drawing order."""
        return list(self._pens)

    def set_lines(self, lines: dict) -> None:
        """Replace the data of some lines and repaint once.

        Parameters
        ----------
        lines : dict of str -> (x, y)
            Line name -> float64 arrays of the same length ``(n,)``: seconds since the epoch
            UTC and price units; a NaN breaks the line.

        Raises
        ------
        KeyError
            A name that is not one of :meth:`names`.
        """
        for name, (x, y) in lines.items():
            if name not in self._pens:
                raise KeyError(f"no line {name!r}; known: {', '.join(self._pens)}")
            x = np.asarray(x, np.float64)
            y = np.asarray(y, np.float64)
            self._data[name] = (x, y)
            self._paths[name] = pg.arrayToQPath(x, y, connect="finite")
        rect = QtCore.QRectF()
        for path in self._paths.values():
            if not path.isEmpty():
                rect = rect.united(path.boundingRect())
        if not rect.isNull():
            # a flat line has a zero-height rect, which the scene would never paint
            pad_y = max(abs(rect.height()), abs(rect.center().y()), 1.0) * 1e-6
            rect = rect.adjusted(0.0, -pad_y, 0.0, pad_y)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The arrays of line ``name`` as last set (empty float64 arrays before that)."""
        return self._data.get(name, (np.zeros(0), np.zeros(0)))

    def boundingRect(self):  # noqa: N802 (Qt name)
        return self._rect

    def paint(self, p, *_args):
        for name, pen in self._pens.items():
            path = self._paths.get(name)
            if path is not None and not path.isEmpty():
                p.setPen(pen)
                p.drawPath(path)


class HeatmapWidget(pg.PlotWidget):
    """The DOM ladder heatmap (see the module docstring).

    Signals
    -------
    sigFollowChanged(bool)
        Following switched on or off.
    sigViewChanged()
        The visible price range changed (the ladder re-aligns to it).
    """

    sigFollowChanged = QtCore.Signal(bool)
    sigViewChanged = QtCore.Signal()

    #: Narrowest time span the wheel zooms to, seconds (one minute).
    MIN_SPAN_S = 60.0

    #: Default visible height in ticks while following.
    DEFAULT_VISIBLE_TICKS = 44
    #: At most this many trade bubbles are drawn (the largest ones).
    MAX_BUBBLES = 2000
    #: Bubble diameters are quantised to these pixel sizes (few symbols for pyqtgraph's atlas).
    BUBBLE_SIZES = np.array([4.0, 6.0, 8.0, 11.0, 14.0, 18.0, 23.0, 29.0])

    def __init__(self, parent=None):
        axis = ScrollingDateAxis(orientation="bottom", utcOffset=0)
        super().__init__(parent=parent, axisItems={"bottom": axis}, background=(8, 10, 22))
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        self.plotItem.showGrid(x=False, y=False)
        self.plotItem.setLabel("bottom", "time (UTC)")
        self._axis_label = "time (UTC)"
        self.plotItem.setLabel("left", "price")
        # price labels and their tick marks, without the unlabelled third tick level (one mark
        # per tick size: 55 marks for 44 ticks): the axis is drawn again on every re-centre,
        # and that level cost 0.7 of its 1.3 ms (the ladder beside it shows every price)
        self.getAxis("left").setStyle(maxTickLevel=1)
        self.vb = self.plotItem.getViewBox()
        self.vb.disableAutoRange()
        self.vb.setMouseEnabled(x=True, y=True)
        cache_axes(self.plotItem)

        self.lut = heatmap_lut()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(display_lut(self.lut))
        self.image.setAutoDownsample(False)
        self.image.setZValue(-10)
        self.addItem(self.image)
        # the older history (answers to history requests), under the live window's image
        self.history_image = pg.ImageItem(axisOrder="row-major")
        self.history_image.setLookupTable(display_lut(self.lut))
        self.history_image.setAutoDownsample(False)
        self.history_image.setZValue(-11)
        self.history_image.setVisible(False)
        self.addItem(self.history_image)
        #: callable(t0_ns, t1_ns, max_cols, price_lo, price_hi) -> request id, or None: asks for
        #: the history image of a range (answered in a later frame's ``history``)
        self.history_source = None
        self._hist_req_id = None  # id of the newest request
        self._hist_first = None  # id of this widget's first request
        self._hist_req_view = None  # (x0, x1, y0, y1) seconds / price units it covers
        self._hist_drawn = None  # id of the answer drawn now
        self._hist_scale = None  # colour level the history image was drawn with
        self._limits = None  # (min span, max span) set on the view box, seconds

        # best bid / ask, the session VWAP and its 1 and 2 standard-deviation bands (dotted):
        # one item, the bands under the VWAP, the bid and ask on top
        band = lambda a: pg.mkPen(VWAP_COLOR + (a,), width=1, style=QtCore.Qt.DotLine)  # noqa: E731
        self.lines = LinesItem({"band2": band(90), "band1": band(150),
                                "vwap": pg.mkPen(VWAP_COLOR, width=2),
                                "bid": pg.mkPen(BID_LINE_COLOR, width=1), "ask": pg.mkPen(ASK_LINE_COLOR, width=1)})
        self.lines.setZValue(4)
        self.addItem(self.lines)

        self._no_pen = pg.mkPen(None)  # one pen object: a new one per frame re-renders every symbol
        # buyers' and sellers' bubbles in two items of one colour each, sellers drawn over buyers
        self._buy_brush = pg.mkBrush(*BUY_COLOR, 170)
        self._sell_brush = pg.mkBrush(*SELL_COLOR, 170)
        self.bubbles = BubblesItem(self.BUBBLE_SIZES, self._buy_brush)  # buyer aggressor
        self.bubbles_sell = BubblesItem(self.BUBBLE_SIZES, self._sell_brush)  # seller aggressor
        for k, it in enumerate((self.bubbles, self.bubbles_sell)):
            it.setZValue(5 + 0.1 * k)  # sellers over buyers, as one item drew them
            self.addItem(it)
        self._bubble_key = None  # what the drawn bubbles were built from (_bubbles_key)
        #: times the bubbles were rebuilt (skipped when a frame's band traded nothing new)
        self.bubble_updates = 0

        self.markers = pg.ScatterPlotItem(
            pxMode=True, hoverable=True, tip=self._marker_tip, hoverSize=14, size=10
        )
        self.markers.setZValue(8)
        self.addItem(self.markers)

        self._marker_key = None
        self._marker_pen = pg.mkPen((0, 0, 0), width=1)
        self._signal_pen = pg.mkPen((255, 255, 255), width=1)
        self._pattern_brushes = (pg.mkBrush(240, 220, 80, 200), pg.mkBrush(*BUY_COLOR, 200),
                                 pg.mkBrush(*SELL_COLOR, 200))
        self.signal_marks = pg.ScatterPlotItem(pxMode=True, hoverable=True, tip=self._marker_tip, size=18)
        self.signal_marks.setZValue(9)
        self.addItem(self.signal_marks)

        self.selected_marks = pg.ScatterPlotItem(
            pxMode=True, size=26, symbol="o", pen=pg.mkPen((255, 255, 255), width=2), brush=None
        )
        self.selected_marks.setZValue(10)
        self.addItem(self.selected_marks)
        # the session open
        self.session_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 200, 200), width=1,
                                                                   style=QtCore.Qt.DashDotLine))
        self.session_line.setVisible(False)
        self.addItem(self.session_line)
        self._vwap_ring = _Ring()
        self.bracket_lines = {}
        for name, color in (("entry", (255, 255, 255)), ("stop", SELL_COLOR), ("target", BUY_COLOR)):
            line = pg.InfiniteLine(angle=0, pen=pg.mkPen(color, width=1, style=QtCore.Qt.DashLine))
            line.setVisible(False)
            line.setZValue(11)
            self.addItem(line)
            self.bracket_lines[name] = line

        self._contrast = 0.98
        self._scale = None  # upper level, contracts (smoothed over frames)
        self._sample = None  # non-zero sample of the last image (contrast changes re-use it)
        self._tick = None
        self._following = True
        self._ring = _Ring()
        self._last_t_end = None
        self._frame: AnalysisFrame | None = None
        self._selected: Signal | None = None
        self._setting_range = False
        #: called after each paint of the view (the window measures frame-to-screen latency with it)
        self.on_painted = None
        self._reset_y = True  # first frame (or instrument change): default height around the mid
        self._band: tuple[int, int] | None = None  # heatmap rows [r0, r1) drawn now
        self._in_set_frame = False
        self.vb.sigRangeChangedManually.connect(self._on_manual_range)
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        self.vb.sigYRangeChanged.connect(lambda *_: self.sigViewChanged.emit())
        self.vb.sigResized.connect(lambda *_: self.sigViewChanged.emit())

    # ----------------------------------------------------------------- state
    @property
    def following(self) -> bool:
        """True while the view follows the newest data."""
        return self._following

    @property
    def contrast(self) -> float:
        """The contrast: upper cut-off quantile 0.5..1.0."""
        return self._contrast

    @property
    def levels(self) -> tuple[float, float]:
        """The image levels now (contracts): ``(0, cut-off level)``."""
        lv = self.image.getLevels()
        return (float(lv[0]), float(lv[1])) if lv is not None else (0.0, 1.0)

    def set_contrast(self, value: float) -> None:
        """Set the contrast: the upper cut-off quantile 0.5..1.0 of resting size.

        Changes the image levels only (the data and the lookup table stay as they are).
        """
        self._contrast = min(max(float(value), 0.5), 1.0)
        if self._sample is not None:
            self._scale = cutoff_level(self._sample, self._contrast)
            self.image.setLevels(self._levels())

    def _levels(self):
        return (0.0, float(self._scale))

    def follow(self, on: bool = True) -> None:
        """Switch following on (the default) or off; on re-centres at once."""
        changed = on != self._following
        self._following = bool(on)
        if on and self._frame is not None:
            self._apply_follow(self._frame, force=True)
        if changed:
            self.sigFollowChanged.emit(self._following)

    def _on_manual_range(self, *_):
        if not self._setting_range and self._following:
            self._following = False
            self.sigFollowChanged.emit(False)

    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        super().paintEvent(ev)
        cb = self.on_painted
        if cb is not None:
            cb()

    def keyPressEvent(self, ev):  # noqa: N802 (Qt name)
        if ev.key() == QtCore.Qt.Key_F:
            self.follow(True)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def price_range(self) -> tuple[float, float]:
        """Visible price range (low, high), price units."""
        (_, _), (lo, hi) = self.vb.viewRange()
        return float(lo), float(hi)

    def view_scene_rect(self) -> QtCore.QRectF:
        """The ViewBox rectangle in the viewport's pixel coordinates (the ladder aligns to it)."""
        return QtCore.QRectF(self.mapFromScene(self.vb.sceneBoundingRect()).boundingRect())

    # ----------------------------------------------------------------- drawing
    def set_frame(self, frame: AnalysisFrame) -> None:
        """Draw ``frame`` (GUI thread only). Items are updated in place, none is created.

        Only the rows near the visible price range are turned into an image and bubbles
        (:meth:`band_rows`); a pan or zoom beyond them redraws the band from this frame.
        """
        self._in_set_frame = True
        try:
            self._set_frame(frame)
        finally:
            self._in_set_frame = False
        settle_view(self.vb)  # one paint per frame (see settle_view)

    def _set_frame(self, frame: AnalysisFrame) -> None:
        self._frame = frame
        tick = float(frame.tick_size)
        if self._tick != tick:
            self._reset_y = True
        self._tick = tick
        hm = frame.heatmap
        rows, cols = hm.shape
        t0 = frame.heatmap_t0 / NS
        col_s = frame.column_ns / NS
        if self._following:
            self._apply_follow(frame)  # first: the band drawn below is chosen from the view
        if rows and cols:
            self._sample = level_sample(hm)  # colour levels from the whole heatmap, as always
            s = cutoff_level(self._sample, self._contrast)
            self._scale = s if self._scale is None else 0.85 * self._scale + 0.15 * s
        self._band = None
        self._draw_band(frame)
        t_end = t0 + cols * col_s
        t_now = frame.ts / NS if frame.ts else t_end
        if self._last_t_end is not None and t_end < self._last_t_end - 1.0:
            self._ring.clear()
            self.clear_history()  # market time went back (new replay)
        self._last_t_end = t_end
        bid = frame.best_bid * tick if frame.best_bid >= 0 else np.nan
        ask = frame.best_ask * tick if frame.best_ask >= 0 else np.nan
        self._ring.push(t_now, bid, ask)
        t, b, a = self._ring.ordered()
        lines = {"bid": (t, b), "ask": (t, a)}
        self._draw_session(frame, t_now, tick, lines)
        self.lines.set_lines(lines)
        self._draw_markers(frame, tick)
        self._set_limits(frame, t_end)
        self._draw_history(frame)
        if not self._following:
            self._request_history()

    # ----------------------------------------------------------------- whole-session history
    def _data_start_s(self, frame) -> float | None:
        start = int(getattr(frame, "history_start_ns", -1))
        return start / NS if start > 0 else None

    def _set_limits(self, frame, t_end: float) -> None:
        """Wheel zoom from one minute (or the window, if shorter) to the whole session."""
        span = frame.heatmap.shape[1] * frame.column_ns / NS
        lo = min(self.MIN_SPAN_S, max(span, 1.0))
        start = self._data_start_s(frame)
        whole = max(t_end - start, span) if start is not None else span
        hi = max(1.1 * whole + self.MIN_SPAN_S, lo * 2)
        old = self._limits
        if old is None or old[0] != lo or abs(old[1] - hi) > 0.02 * old[1]:
            self._limits = (lo, hi)
            self.vb.setLimits(minXRange=lo, maxXRange=hi)

    def clear_history(self) -> None:
        """Forget the history image and the ranges asked for (the next view change asks again)."""
        self.history_image.setVisible(False)
        self._hist_req_view = None
        self._hist_drawn = None

    def _request_history(self) -> None:
        """Ask for the visible range's image when the view reaches past the newest window and
        the last request does not cover it (or covers it too coarsely)."""
        f, src = self._frame, self.history_source
        if f is None or src is None:
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        if x0 >= f.heatmap_t0 / NS:
            return  # the live window covers the view
        r = self._hist_req_view
        w, h = x1 - x0, y1 - y0
        if r is not None and r[0] <= x0 and x1 <= r[1] and r[2] <= y0 and y1 <= r[3] and w > 0.4 * (r[1] - r[0]):
            return
        tick = float(f.tick_size) or 1.0
        a, b = x0 - 0.25 * w, x1 + 0.25 * w
        lo, hi = y0 - h, y1 + h
        px = max(int(self.vb.width() * 1.5), 64)
        try:
            rid = src(int(a * NS), int(b * NS), px, int(math.floor(lo / tick)), int(math.ceil(hi / tick)))
        except Exception:  # a failing source must not break drawing; the engine reports its own
            return
        if rid is not None:
            if self._hist_req_id is not None and rid <= self._hist_req_id:  # ids restarted: a new engine
                self._hist_first = None
                self._hist_drawn = None
            self._hist_req_id = rid
            if self._hist_first is None:
                self._hist_first = rid
            self._hist_req_view = (a, b, lo, hi)

    def _draw_history(self, frame) -> None:
        """Draw the frame's history answer when it is new (or re-level it when the colour
        scale moved by more than 10 %)."""
        img = getattr(frame, "history", None)
        if img is None or self._scale is None:
            return
        new = img.request != self._hist_drawn
        if not new and self._hist_scale is not None and abs(self._scale - self._hist_scale) <= 0.1 * self._hist_scale:
            return
        if self._hist_first is None or not self._hist_first <= img.request <= self._hist_req_id:
            return  # not an answer to this widget's requests
        if new and self._hist_drawn is not None and img.request < self._hist_drawn:
            return  # older than the answer drawn
        tick = float(frame.tick_size)
        hm = img.heatmap
        rows, cols = hm.shape
        if not rows or not cols:
            return
        self._hist_scale = self._scale
        self.history_image.setImage(hm, autoLevels=False, levels=self._levels())
        self.history_image.setRect(QtCore.QRectF(img.t0_ns / NS, (img.base - 0.5) * tick,
                                                 cols * img.column_ns / NS, rows * tick))
        self.history_image.setVisible(True)
        self._hist_drawn = img.request

    @property
    def history_request_id(self):
        """Id of the newest history request (None before the first)."""
        return self._hist_req_id

    @property
    def history_drawn(self):
        """Id of the history answer drawn now (None: none)."""
        return self._hist_drawn

    def history_image_data(self) -> np.ndarray | None:
        """The history image drawn now (float32 (rows, cols), resting size), or None."""
        return self.history_image.image if self.history_image.isVisible() else None

    def history_image_rect(self) -> QtCore.QRectF:
        """Where the history image sits, data coordinates (x seconds, y price)."""
        return self.history_image.mapRectToParent(self.history_image.boundingRect())

    def _draw_session(self, frame, t_now: float, tick: float, lines: dict) -> None:
        """VWAP with its 1 and 2 standard-deviation bands as lines over time (added to
        ``lines``, for :attr:`lines`), the session open as a vertical line, and the session
        phase in the time axis label."""
        vw = float(getattr(frame, "vwap", np.nan))
        sd = float(getattr(frame, "vwap_sd", np.nan))
        # one point per heatmap column (the newest moves within its column): the line has the
        # resolution of the image under it, not one point per frame drawn
        self._vwap_ring.push(t_now, vw * tick, sd * tick, min_dt=frame.column_ns / NS)
        t, v, d = self._vwap_ring.ordered()
        lines["vwap"] = (t, v)
        gap = np.array([np.nan])
        for k in (1, 2):  # each band's upper and lower line as one path broken by a NaN
            lines[f"band{k}"] = (np.concatenate([t, gap, t]), np.concatenate([v + k * d, gap, v - k * d]))
        start = int(getattr(frame, "session_start_ns", -1))
        self.session_line.setVisible(start > 0)
        if start > 0:
            self.session_line.setValue(start / NS)
        phase = getattr(frame, "session_phase", "")
        label = "time (UTC)" + (f"  |  session: {phase}" if phase else "")
        if label != self._axis_label:
            self._axis_label = label
            self.plotItem.setLabel("bottom", label)

    def band_rows(self, frame: AnalysisFrame | None = None) -> tuple[int, int]:
        """Heatmap rows ``[r0, r1)`` to draw for the visible price range (0 <= r0 <= r1 <= rows).

        The visible rows plus one visible height above and below (so a re-centre while
        following, or a small pan, stays inside it); all rows when the view is zoomed out that
        far. Rows outside the band are off screen: the image and the bubbles are built from the
        band only (the colour levels still come from the whole heatmap).
        """
        f = frame if frame is not None else self._frame
        if f is None:
            return 0, 0
        rows = int(f.heatmap.shape[0])
        tick = float(f.tick_size) or 1.0
        lo, hi = self.price_range()
        h = max(hi - lo, tick)
        r0 = int(math.floor((lo - h) / tick)) - int(f.heatmap_base)
        r1 = int(math.ceil((hi + h) / tick)) - int(f.heatmap_base) + 1
        return max(0, min(rows, r0)), max(0, min(rows, r1))

    def _draw_band(self, frame: AnalysisFrame) -> None:
        """Image and trade bubbles of ``frame``'s :meth:`band_rows` (a view, no copy)."""
        tick = float(frame.tick_size)
        hm = frame.heatmap
        rows, cols = hm.shape
        t0 = frame.heatmap_t0 / NS
        col_s = frame.column_ns / NS
        r0, r1 = self.band_rows(frame)
        self._band = (r0, r1)
        if rows and cols and r1 > r0 and self._scale is not None:
            self.image.setVisible(True)
            self.image.setImage(hm[r0:r1], autoLevels=False, levels=self._levels())
            self.image.setRect(
                QtCore.QRectF(t0, (frame.heatmap_base + r0 - 0.5) * tick, cols * col_s, (r1 - r0) * tick)
            )
        elif rows and cols:
            self.image.setVisible(False)  # the whole view is above or below the heatmap
        self._draw_bubbles(frame, t0, col_s, tick, r0, r1)

    def _on_range_changed(self, *_):
        """A pan or zoom (or a re-centre) that shows rows outside the drawn band redraws it;
        one that reaches past the newest window asks for the history image."""
        f, band = self._frame, self._band
        if f is None or band is None or self._in_set_frame:
            return
        if not self._following:
            self._request_history()
        r0, r1 = self.band_rows(f)
        rows = int(f.heatmap.shape[0])
        lo, hi = self.price_range()
        v0 = max(0, int(math.floor(lo / (float(f.tick_size) or 1.0))) - int(f.heatmap_base))
        v1 = min(rows, int(math.ceil(hi / (float(f.tick_size) or 1.0))) - int(f.heatmap_base) + 1)
        if v0 < band[0] or v1 > band[1] or (r1 - r0) < (band[1] - band[0]) // 3:
            self._draw_band(f)

    def _bubbles_key(self, frame, t0, col_s, tick, r0, r1, buy, sell):
        """What the bubbles of a band depend on: placement, and the band's newest two columns
        (trades land in the open column; older columns of a frame are closed and do not change
        until they roll out, which moves ``t0``). Equal keys draw equal bubbles."""
        tail = (buy[:, -2:].copy(), sell[:, -2:].copy()) if buy.shape[1] else None
        return (t0, col_s, tick, r0, r1, int(frame.heatmap_base), buy.shape), tail

    def _draw_bubbles(self, frame, t0, col_s, tick, r0=0, r1=None):
        buy, sell = frame.traded_buy, frame.traded_sell
        if r1 is None:
            r1 = buy.shape[0]
        buy, sell = buy[r0:r1], sell[r0:r1]
        key, tail = self._bubbles_key(frame, t0, col_s, tick, r0, r1, buy, sell)
        old = self._bubble_key
        if (old is not None and old[0] == key and (tail is None) == (old[1] is None)
                and (tail is None or (np.array_equal(tail[0], old[1][0]) and np.array_equal(tail[1], old[1][1])))):
            return  # the same bubbles as drawn: nothing to rebuild
        self._bubble_key = (key, tail)
        self.bubble_updates += 1
        if buy.size == 0:
            self.bubbles.set_bubbles([], [], [])
            self.bubbles_sell.set_bubbles([], [], [])
            return
        # one pass over the cells: where anything traded, then both volumes there
        flat = np.flatnonzero((buy + sell).reshape(-1))
        b = buy.reshape(-1)[flat]
        sv = sell.reshape(-1)[flat]
        nb = b > 0
        ns = sv > 0
        cells = np.concatenate([flat[nb], flat[ns]])
        vol = np.concatenate([b[nb], sv[ns]]).astype(np.float64)
        is_buy = np.zeros(vol.size, dtype=bool)
        is_buy[: int(nb.sum())] = True
        rows, cols = np.divmod(cells, buy.shape[1])
        if vol.size > self.MAX_BUBBLES:
            keep = np.argpartition(vol, -self.MAX_BUBBLES)[-self.MAX_BUBBLES:]
            vol, rows, cols, is_buy = vol[keep], rows[keep], cols[keep], is_buy[keep]
        x = t0 + (cols + 0.5) * col_s
        y = (frame.heatmap_base + r0 + rows) * tick
        ref = max(float(np.percentile(vol, 90)) if vol.size else 1.0, 1.0)
        raw = 4.0 + 10.0 * np.sqrt(vol / ref)  # area ~ volume, the 90th percentile at 14 px
        size = self.BUBBLE_SIZES[np.clip(np.searchsorted(self.BUBBLE_SIZES, raw), 0, self.BUBBLE_SIZES.size - 1)]
        for it, sel in ((self.bubbles, is_buy), (self.bubbles_sell, ~is_buy)):
            it.set_bubbles(x[sel], y[sel], size[sel])

    def _draw_markers(self, frame, tick):
        key = (len(frame.patterns), frame.patterns[-1] if frame.patterns else None,
               len(frame.signals), frame.signals[-1] if frame.signals else None, tick)
        if key == self._marker_key:
            return  # same detections as the last frame: nothing to redo
        self._marker_key = key
        pats = [p for p in frame.patterns if p.price > 0]
        if pats:
            x = np.array([p.ts / NS for p in pats])
            y = np.array([p.price * tick for p in pats])
            sym = [PATTERN_SYMBOLS.get(p.name, "star") for p in pats]
            brush = [self._pattern_brushes[1 if p.side > 0 else 2 if p.side < 0 else 0] for p in pats]
            data = [f"{p.name} ({p.family}) strength {p.strength:.2f}\n{p.detail}" for p in pats]
            self.markers.setData(x=x, y=y, symbol=sym, brush=brush, data=data, pen=self._marker_pen)
        else:
            self.markers.setData(x=[], y=[])
        sigs = frame.signals
        if sigs:
            x = np.array([s.ts / NS for s in sigs])
            y = np.array([s.entry * tick for s in sigs])
            sym = ["t1" if s.side > 0 else "t" for s in sigs]
            brush = [pg.mkBrush(*(BUY_COLOR if s.side > 0 else SELL_COLOR), 255) for s in sigs]
            data = [
                f"signal #{s.id} {'LONG' if s.side > 0 else 'SHORT'} score {s.score:.2f}\n{s.top_reasons(5)}"
                for s in sigs
            ]
            self.signal_marks.setData(x=x, y=y, symbol=sym, brush=brush, data=data, pen=self._signal_pen)
        else:
            self.signal_marks.setData(x=[], y=[])

    @staticmethod
    def _marker_tip(x, y, data):
        return str(data) if data is not None else f"{y:.2f}"

    def show_signal(self, signal: Signal | None, tick_size: float | None = None) -> None:
        """Highlight a signal's reasons (pattern markers) and bracket; ``None`` clears it."""
        self._selected = signal
        tick = tick_size or self._tick or 1.0
        if signal is None:
            self.selected_marks.setData(x=[], y=[])
            for line in self.bracket_lines.values():
                line.setVisible(False)
            return
        pts = [(r.ts / NS, r.price * tick, f"{r.name}: {r.detail}") for r in signal.reasons if r.price > 0]
        pts.append((signal.ts / NS, signal.entry * tick, f"signal #{signal.id}"))
        self.selected_marks.setData(
            x=[p[0] for p in pts], y=[p[1] for p in pts], data=[p[2] for p in pts]
        )
        for name in ("entry", "stop", "target"):
            line = self.bracket_lines[name]
            line.setValue(getattr(signal, name) * tick)
            line.setVisible(True)
        # look at it: stop following and centre the view on the signal
        (x0, x1), (y0, y1) = self.vb.viewRange()
        w, h = x1 - x0, y1 - y0
        self._setting_range = True
        try:
            self.vb.setRange(
                xRange=(signal.ts / NS - 0.7 * w, signal.ts / NS + 0.3 * w),
                yRange=(signal.entry * tick - h / 2, signal.entry * tick + h / 2),
                padding=0,
            )
        finally:
            self._setting_range = False
        if self._following:
            self._following = False
            self.sigFollowChanged.emit(False)
        self._request_history()  # the book at the signal's time, if it is older than the window

    def _apply_follow(self, frame, force: bool = False) -> None:
        tick = float(frame.tick_size)
        rows, cols = frame.heatmap.shape
        t0 = frame.heatmap_t0 / NS
        t_end = t0 + max(cols * frame.column_ns / NS, 1.0)
        span = t_end - t0
        start = self._data_start_s(frame)
        if start is not None and start > t0:  # no empty stretch before the data
            span = max(t_end - start, min(self.MIN_SPAN_S, span))
        (x0, x1), (y0, y1) = self.vb.viewRange()
        if frame.best_bid >= 0 and frame.best_ask >= 0:
            mid = 0.5 * (frame.best_bid + frame.best_ask) * tick
        elif frame.best_bid >= 0 or frame.best_ask >= 0:
            mid = max(frame.best_bid, frame.best_ask) * tick
        else:
            mid = (frame.heatmap_base + rows / 2) * tick
        h = y1 - y0
        if force or self._reset_y or not (2 * tick <= h <= 5000 * tick):
            self._reset_y = False
            h = self.DEFAULT_VISIBLE_TICKS * tick
            y0, y1 = mid - h / 2, mid + h / 2
        elif abs(mid - 0.5 * (y0 + y1)) > h / 4:
            y0, y1 = mid - h / 2, mid + h / 2
        self._setting_range = True
        try:
            self.vb.setRange(xRange=(t_end - span, t_end + 0.02 * span), yRange=(y0, y1), padding=0)
        finally:
            self._setting_range = False

    # ----------------------------------------------------------------- inspection (tests, status)
    @property
    def drawn_rows(self) -> tuple[int, int] | None:
        """Heatmap rows ``[r0, r1)`` of the last frame the image and bubbles show now (None before a frame)."""
        return self._band

    def image_data(self) -> np.ndarray | None:
        """The array the image item holds now (float32, shape (r1 - r0, cols): the frame's
        heatmap rows :attr:`drawn_rows`, a view), or None."""
        return self.image.image

    def bubble_count(self) -> int:
        """Number of trade bubbles drawn now (buyers' and sellers')."""
        return len(self.bubbles.data) + len(self.bubbles_sell.data)

    def bubble_data(self) -> np.ndarray:
        """The trade bubbles drawn now: float64 ``(4, n)`` rows x (s), y (price), size (px),
        buyer aggressor (1.0, else 0.0); buyers' first."""
        out = []
        for it, buy in ((self.bubbles, 1.0), (self.bubbles_sell, 0.0)):
            d = it.data
            out.append(np.stack([d["x"], d["y"], d["size"], np.full(len(d), buy)]) if len(d) else np.zeros((4, 0)))
        return np.concatenate(out, axis=1)

    def marker_count(self) -> int:
        """Number of pattern markers drawn now."""
        return len(self.markers.data)


def visible_rows(lo: float, hi: float, tick: float) -> int:
    """Number of price rows of ``tick`` in the range ``lo..hi`` (display helper)."""
    return max(0, int(math.floor(hi / tick)) - int(math.ceil(lo / tick)) + 1)
