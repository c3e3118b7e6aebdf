"""DOM ladder beside the heatmap, on the same price axis.

One :meth:`LadderWidget.paintEvent` draws every visible row per frame (no widget per cell, no
item model): session traded volume, bid size and ask size per price with bars, and the price;
the inside market (best bid / best ask rows) is highlighted. The trader's own working orders
are drawn in their price rows (``B 2 LMT`` in the bid column for buys, ``S 1 STP`` in the ask
column for sells) and the position's average price is outlined in its row with the open P&L
(USD and ticks) beside it (:meth:`LadderWidget.set_orders`, from
:class:`app.ui.orders_overlay.OwnOrdersController`). The vertical mapping
price -> pixel is handed in by the window from the heatmap's ViewBox (:meth:`set_view`), so a
row of the ladder sits exactly beside the same price of the heatmap.

Rows always carry text (issue 16 item 4): when a price row is shorter than a line of text
(zoomed out, a small screen), the ladder groups ``k`` rows into one (:func:`row_grouping`: the
smallest of 1, 2, 4, 5, 10 rows -- then 20, 40, 50, 100, ... -- whose height fits the font) and
draws each group's summed sizes (:func:`group_rows`) with the price of its lowest row. Own orders
and the position mark stay in the group that holds their price. The fonts are QFont point sizes
(the widget's font: the desktop's setting), measured with the widget's own font metrics, so the
row heights and text follow the screen's logical DPI and device pixel ratio (Windows 125 % /
150 % scaling) instead of fixed pixel sizes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

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
BUY_ORDER_BG = QtGui.QColor(30, 90, 190)
SELL_ORDER_BG = QtGui.QColor(175, 35, 60)
ORDER_EDGE = QtGui.QColor(235, 240, 255)
POSITION_EDGE = QtGui.QColor(255, 200, 60)
POSITION_BG = QtGui.QColor(40, 34, 10, 230)
PNL_UP = QtGui.QColor(90, 230, 120)
PNL_DOWN = QtGui.QColor(255, 110, 110)


class PaintedRow(NamedTuple):
    """One ladder row as the last paint drew it (the model the tests read; no pixels).

    ``price`` is the frame row (ticks of the frame's tick size) of the row's lowest price and
    ``rows`` how many frame rows it spans; ``y``/``h`` its top and height in pixels; the texts
    are what was drawn (``""`` when nothing): sizes, price, own orders (labels joined by
    ``", "``) and the open P&L when the position's average price lies in this row.
    """

    price: int
    rows: int
    y: float
    h: float
    volume_text: str
    bid_text: str
    price_text: str
    ask_text: str
    buy_orders: str
    sell_orders: str
    position: str


def price_decimals(tick: float) -> int:
    """Decimals needed to show prices on a ``tick`` grid (0.25 -> 2, 0.01 -> 2, 0.1 -> 1, 1 -> 0)."""
    if tick <= 0:
        return 2
    for d in range(0, 9):
        if abs(round(tick * 10**d) - tick * 10**d) < 1e-9:
            return d
    return 8


#: Rows per ladder row tried first (then the same times 10, 100, ...), smallest first.
ROW_GROUPINGS = (1, 2, 4, 5, 10)


def row_grouping(row_px: float, text_px: float) -> int:
    """Price rows per ladder row: the smallest of 1, 2, 4, 5, 10, 20, 40, 50, 100, ... whose height fits the text.

    Parameters
    ----------
    row_px : float
        Height of one price row, logical pixels.
    text_px : float
        Height of one line of the ladder's text (font metrics), logical pixels.

    Returns
    -------
    int
        ``k >= 1`` with ``k * row_px >= text_px`` (1 when the rows are tall enough; 10**6 when
        ``row_px`` is not positive).
    """
    if not row_px > 0:
        return 10 ** 6
    scale = 1
    while scale <= 10 ** 5:
        for g in ROW_GROUPINGS:
            if g * scale * row_px >= text_px:
                return g * scale
        scale *= 10
    return 10 ** 6


def group_rows(prices: np.ndarray, bid: np.ndarray, ask: np.ndarray, volume: np.ndarray, k: int):
    """Sum the ladder arrays into groups of ``k`` price rows.

    Group ``g`` holds the rows ``g*k .. g*k + k - 1`` (``g = price // k``, floor), the rule of
    :mod:`app.market.grouping` (whose :class:`~app.market.grouping.PriceGrouper` groups event
    streams; here the frame's arrays are summed for display only).

    Parameters
    ----------
    prices : numpy.ndarray
        Shape (n,), int64 rows (ticks of the frame's tick size), ascending.
    bid, ask, volume : numpy.ndarray
        Shape (n,), float contracts per row.
    k : int
        Rows per group, >= 1 (1 returns the arrays unchanged).

    Returns
    -------
    (groups, bid, ask, volume) : tuple of numpy.ndarray
        ``groups`` int64 group numbers, ascending and unique; the sums per group.
    """
    if k <= 1 or prices.shape[0] == 0:
        return prices, bid, ask, volume
    g = np.floor_divide(prices, k)
    groups, first = np.unique(g, return_index=True)
    return (groups, np.add.reduceat(bid, first), np.add.reduceat(ask, first), np.add.reduceat(volume, first))


def _fmt_size(v: float) -> str:
    if v <= 0:
        return ""
    if v >= 10_000:
        return f"{v / 1000:.0f}k"
    if v == int(v):
        return str(int(v))
    return f"{v:.3g}"


def _cell_text(orders, width: float, fm: QtGui.QFontMetricsF) -> str:
    """Text of an order cell: the orders' labels (``"B 2 LMT, B 1 STP"``) when they fit in
    ``width`` pixels, else the side, the summed contracts and the number of orders (``"B 3 x2"``)."""
    if not orders:
        return ""
    full = ", ".join(o.label for o in orders)
    if len(orders) == 1 or fm.horizontalAdvance(full) <= width:
        return full
    return f"{'B' if orders[0].side > 0 else 'S'} {sum(o.qty for o in orders)} x{len(orders)}"


class PriceAlignedWidget(QtWidgets.QWidget):
    """A widget whose rows line up with the heatmap's price axis (the ladder, the profile pane).

    Subclasses set ``_lo, _hi`` (visible prices) and ``_top, _height`` (pixels) in their
    constructor; :meth:`set_view` moves them with the heatmap's ViewBox.
    """

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


class LadderWidget(PriceAlignedWidget):
    """Price ladder: volume | bid | price | ask, drawn in one paint routine.

    Attributes
    ----------
    best_bid, best_ask : int
        Inside market of the last frame, ticks (-1 when that side is empty).
    rows_painted : int
        Rows drawn by the last paint (for tests and status).
    grouping : int
        Price rows per ladder row in the last paint (:func:`row_grouping`).
    text_height : float
        Row height a line of the ladder's numbers needs in the last paint (their ink and one
        pixel above and below), logical pixels.
    painted : list of PaintedRow
        What the last paint drew, row by row (top to bottom).
    order_cells : list of (QRectF, int, tuple of OwnOrder)
        The cells of the last paint that hold own orders: rectangle, side, orders.

    Signals
    -------
    sigCancelOrder(str)
        A click on an order's cell: cancel that order (ClientOrderID).
    sigModifyOrder(str, int)
        An order was dragged to another row: ClientOrderID and the new price in exchange ticks.

    Gestures: a click on an order's cell cancels it; dragging it to another row asks to move it
    (the modify ticket decides; nothing is sent from here). Double-clicks (tickets) are the
    trading panel's (:class:`app.ui.trading_panel._LadderClicks`).
    """

    COLS = (("Volume", 0.24), ("Bid", 0.26), ("Price", 0.24), ("Ask", 0.26))

    sigCancelOrder = QtCore.Signal(str)
    sigModifyOrder = QtCore.Signal(str, int)

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
        self.painted: list[PaintedRow] = []
        self.order_cells: list = []
        self.orders: list = []  # OwnOrder records (app.ui.orders_overlay), by price
        self.position = None  # OwnPosition or None
        self.order_tick = 0.0  # exchange tick size of the orders' prices
        self._press = None  # (cell, press position) while the left button is down on an order cell
        self.drag_target: int | None = None  # exchange ticks under the mouse while an order is dragged
        self.setMouseTracking(True)  # the pointing-hand cursor over order cells
        self._lo, self._hi = 0.0, 1.0
        self._top, self._height = 0.0, 1.0
        self.grouping = 1
        self.text_height = 0.0
        #: draw the price column from a cached pixmap (False: text per row, the reference)
        self.cache_prices = True
        #: times the price column's pixmap was rendered (it is re-rendered only when the rows,
        #: their placement, the tick, the font or the size change)
        self.price_renders = 0
        self._price_pm = None  # (key, QPixmap)
        self._make_fonts()

    def _make_fonts(self) -> None:
        """Monospace fonts at the widget font's point size (the desktop's setting; never pixels)."""
        pt = self.font().pointSizeF()
        self._font = QtGui.QFont("monospace")
        self._font.setStyleHint(QtGui.QFont.TypeWriter)
        self._font.setPointSizeF(pt if pt > 0 else 9.0)
        self._bold = QtGui.QFont(self._font)
        self._bold.setBold(True)

    def changeEvent(self, ev):  # noqa: N802 (Qt name)
        """A new widget font (or application font) makes new ladder fonts."""
        if ev.type() in (QtCore.QEvent.FontChange, QtCore.QEvent.ApplicationFontChange):
            self._make_fonts()
            self._price_pm = None
            self.update()
        super().changeEvent(ev)

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

    def set_orders(self, orders, position, order_tick: float) -> None:
        """Show the trader's own working orders and position (repaints only when they changed).

        Parameters
        ----------
        orders : list of app.ui.orders_overlay.OwnOrder
            Working orders with a price (price units), sorted by price.
        position : app.ui.orders_overlay.OwnPosition or None
            The open position (average price in price units, open P&L), None when flat.
        order_tick : float
            The exchange tick size of the orders' prices (a dragged order's new price is
            rounded to it).
        """
        orders = list(orders)
        if orders == self.orders and position == self.position and order_tick == self.order_tick:
            return
        self.orders, self.position, self.order_tick = orders, position, float(order_tick)
        self.update()


    def y_to_price(self, y: float) -> float:
        """Price (price units) at pixel ``y`` (the inverse of :meth:`price_to_y`)."""
        return self._hi - (y - self._top) / self._height * (self._hi - self._lo)

    # ------------------------------------------------------------------ gestures
    def cell_at(self, pos: QtCore.QPointF):
        """The order cell of the last paint under ``pos`` (widget pixels): ``(rect, side, orders)`` or None."""
        for cell in self.order_cells:
            if cell[0].contains(pos):
                return cell
        return None

    def _ticks_at(self, y: float) -> int:
        return int(round(self.y_to_price(y) / self.order_tick)) if self.order_tick > 0 else 0

    def mousePressEvent(self, ev):  # noqa: N802 (Qt name)
        """Left button on an order cell: a click (cancel) or the start of a drag (move)."""
        if ev.button() == QtCore.Qt.LeftButton and not ev.modifiers() & QtCore.Qt.ShiftModifier:
            cell = self.cell_at(ev.position())
            if cell is not None:
                self._press = (cell, QtCore.QPointF(ev.position()))
                self.drag_target = None
                ev.accept()
                return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev):  # noqa: N802 (Qt name)
        """Dragging an order shows where it would go; hovering an order cell shows a hand."""
        if self._press is not None:
            p0 = self._press[1]
            if self.drag_target is not None or abs(ev.position().y() - p0.y()) >= QtWidgets.QApplication.startDragDistance():
                self.drag_target = self._ticks_at(ev.position().y())
                self.update()
            ev.accept()
            return
        over = self.cell_at(ev.position()) is not None
        self.setCursor(QtCore.Qt.PointingHandCursor if over else QtCore.Qt.ArrowCursor)
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev):  # noqa: N802 (Qt name)
        """Release: a click on a cell cancels its orders (``sigCancelOrder`` each; cancels need no
        confirmation); a drag emits ``sigModifyOrder`` for the cell's order nearest the press, with
        the price (exchange ticks) under the mouse, when it differs from the order's own."""
        if self._press is None or ev.button() != QtCore.Qt.LeftButton:
            super().mouseReleaseEvent(ev)
            return
        (_rect, _side, orders), p0 = self._press
        self._press = None
        dragged = self.drag_target is not None
        self.drag_target = None
        ev.accept()
        if not dragged:
            for o in orders:
                self.sigCancelOrder.emit(o.client_order_id)
        else:
            at = self.y_to_price(p0.y())
            o = min(orders, key=lambda o: abs(o.price - at))
            new = self._ticks_at(ev.position().y())
            if new != o.price_ticks:
                self.sigModifyOrder.emit(o.client_order_id, int(new))
        self.update()

    def _order_rows(self, tick: float, k: int) -> dict:
        """Own orders by ladder row (``row // k`` of the frame row ``floor(price / tick)``): {row: ([buys], [sells])}."""
        out: dict[int, tuple[list, list]] = {}
        for o in self.orders:
            g = int(math.floor(o.price / tick + 1e-6)) // k
            out.setdefault(g, ([], []))[0 if o.side > 0 else 1].append(o)
        return out

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
        # header; heights from the fonts' metrics on this widget (its screen's logical DPI)
        fm_bold = QtGui.QFontMetricsF(self._bold, self)
        # a row needs the height of the digits' ink and one pixel clear above and below (the
        # line spacing of fm.height() holds accents and descenders that numbers never use)
        text_h = fm_bold.tightBoundingRect("0123456789").height() + 2.0
        self.text_height = text_h
        p.setFont(self._bold)
        p.setPen(TEXT_DIM)
        head_h = math.ceil(fm_bold.height() + 3)
        for i, (name, _) in enumerate(self.COLS):
            p.drawText(QtCore.QRectF(xs[i], 0, xs[i + 1] - xs[i], head_h), QtCore.Qt.AlignCenter, name)
        self.rows_painted = 0
        self.painted = []
        self.order_cells = []
        n = self.prices.shape[0]
        if n == 0 or self._hi <= self._lo:
            return
        tick = self.tick
        row_h = tick / (self._hi - self._lo) * self._height
        k = self.grouping = row_grouping(row_h, text_h)
        # whole groups around the view (a group cut at the edge would show a partial sum)
        lo_row = (math.floor(self._lo / tick) - 1) // k * k
        hi_row = ((math.ceil(self._hi / tick) + 1) // k + 1) * k
        i0 = int(np.searchsorted(self.prices, lo_row, side="left"))
        i1 = int(np.searchsorted(self.prices, hi_row, side="left"))
        if i1 <= i0:
            return
        vol = self.volume[i0:i1] if self.volume.shape[0] == n else np.zeros(i1 - i0)
        prices, bid, ask, vol = group_rows(self.prices[i0:i1], self.bid[i0:i1], self.ask[i0:i1], vol, k)
        m_side = max(float(bid.max(initial=0.0)), float(ask.max(initial=0.0)), 1e-9)
        m_vol = max(float(vol.max(initial=0.0)), 1e-9)
        clip_top = max(float(head_h), self._top)
        clip_bot = min(float(self.height()), self._top + self._height)
        p.setClipRect(QtCore.QRectF(0, clip_top, w, max(clip_bot - clip_top, 0.0)))
        gh = row_h * k  # height of one ladder row (k price rows)
        show_text = gh + 0.5 >= text_h  # always true but for a view below 10**6 rows per line
        dec = price_decimals(tick)
        p.setFont(self._font)
        pad = 2.0
        # plain Python numbers for the per-row loop (numpy scalar access per cell costs more
        # than the drawing itself)
        prices_l, bid_l, ask_l, vol_l = prices.tolist(), bid.tolist(), ask.tolist(), vol.tolist()
        height = self.height()
        best_bid, best_ask = self.best_bid, self.best_ask
        bb_row = best_bid // k if best_bid >= 0 else None
        ba_row = best_ask // k if best_ask >= 0 else None
        top, span_hi, scale = self._top, self._hi, self._height / (self._hi - self._lo)
        hgt = max(gh - (1 if gh >= 4 else 0), 1.0)
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
        cached = show_text and self.cache_prices
        order_rows = self._order_rows(tick, k) if self.orders else {}
        cell_w = min(xs[2] - xs[1], xs[4] - xs[3]) - 7  # text room of an order cell
        pos = self.position
        pos_row = int(math.floor(pos.avg_price / tick + 1e-6)) // k if pos is not None else None
        decorations = []  # (y, row, buys, sells, position) drawn after the plain rows
        painted = self.painted
        for j in range(len(prices_l)):
            g = int(prices_l[j])  # the group (the price row itself when k == 1)
            # the row spans frame rows g*k .. g*k + k - 1: its top is the top of the highest one
            y = top + (span_hi - (g * k + k - 1) * tick) * scale - row_h / 2
            if y > height or y + gh < head_h:
                continue
            if g == bb_row and g == ba_row:  # a grouped row holding the whole inside market
                fill(rect(0, y, xs[2] + (xs[3] - xs[2]) / 2, hgt), BID_HI)
                fill(rect(xs[2] + (xs[3] - xs[2]) / 2, y, w, hgt), ASK_HI)
            elif g == bb_row:
                fill(rect(0, y, w, hgt), BID_HI)
            elif g == ba_row:
                fill(rect(0, y, w, hgt), ASK_HI)
            v, b, a = vol_l[j], bid_l[j], ask_l[j]
            if v > 0:
                bw = w_vol * v / m_vol
                fill(rect(xs[1] - pad - bw, y, bw, hgt), VOL_BAR)
            if b > 0:
                bw = w_bid * b / m_side
                fill(rect(xs[2] - pad - bw, y, bw, hgt), BID_BAR)
            if a > 0:
                bw = w_ask * a / m_side
                fill(rect(xs[3] + pad, y, bw, hgt), ASK_BAR)
            vt = _fmt_size(float(v))
            bt = _fmt_size(float(b))
            at = _fmt_size(float(a))
            pxt = f"{g * k * tick:.{dec}f}"
            if show_text:
                want = bold if (g == bb_row or g == ba_row) else font
                if want is not current_font:
                    p.setFont(want)
                    current_font = want
                if vt:
                    text(rect(xs[0], y, xs[1] - xs[0] - 4, gh), right, vt)
                if bt:
                    text(rect(xs[1], y, xs[2] - xs[1] - 4, gh), right, bt)
                if not cached or g == bb_row or g == ba_row:  # inside rows: bold, drawn here
                    text(rect(xs[2], y, xs[3] - xs[2], gh), centre, pxt)
                if at:
                    text(rect(xs[3] + 4, y, xs[4] - xs[3] - 4, gh), left, at)
            else:
                vt = bt = at = pxt = ""
            mine = order_rows.get(g)
            has_pos = g == pos_row
            buys = _cell_text(mine[0], cell_w, fm_bold) if mine else ""
            sells = _cell_text(mine[1], cell_w, fm_bold) if mine else ""
            if mine or has_pos:
                decorations.append((y, g, mine, has_pos))
            painted.append(PaintedRow(g * k, k, y, gh, vt, bt, pxt, at, buys, sells, ""))
            self.rows_painted += 1
        # rows that only hold an own order (no book row at that price): still drawn
        seen = {r.price // k for r in painted}
        for g in sorted(set(order_rows) | ({pos_row} if pos_row is not None else set())):
            if g in seen:
                continue
            y = top + (span_hi - (g * k + k - 1) * tick) * scale - row_h / 2
            if y > height or y + gh < head_h:
                continue
            mine = order_rows.get(g)
            decorations.append((y, g, mine, g == pos_row))
            painted.append(PaintedRow(g * k, k, y, gh, "", "", f"{g * k * tick:.{dec}f}", "",
                                      _cell_text(mine[0], cell_w, fm_bold) if mine else "",
                                      _cell_text(mine[1], cell_w, fm_bold) if mine else "", ""))
        if cached:
            self._blit_prices(p, xs, prices_l, k, tick, dec, top, span_hi, scale, row_h, gh, head_h,
                              [r for r in (bb_row, ba_row) if r is not None])
        painted.sort(key=lambda r: r.y)
        p.setPen(GRID)
        for x in xs[1:-1]:
            p.drawLine(QtCore.QPointF(x, head_h), QtCore.QPointF(x, self.height()))
        for y, g, mine, has_pos in decorations:
            shown = self._paint_own(p, xs, y, gh, mine, pos if has_pos else None, dec)
            if shown:
                i = next(i for i, r in enumerate(painted) if r.price == g * k)
                painted[i] = painted[i]._replace(position=shown)
        if self.drag_target is not None and self._press is not None:
            # where the dragged order would go: a dashed box in its column at the target row
            side = self._press[0][1]
            x0, x1 = (xs[1], xs[2]) if side > 0 else (xs[3], xs[4])
            yt = self.price_to_y(self.drag_target * self.order_tick) - gh / 2
            r = QtCore.QRectF(x0 + 1, yt, x1 - x0 - 2, max(gh - 1, 1.0))
            p.setPen(QtGui.QPen(ORDER_EDGE, 1, QtCore.Qt.DashLine))
            p.drawRect(r)
            p.drawText(r, QtCore.Qt.AlignCenter, f"{self.drag_target * self.order_tick:.{price_decimals(self.order_tick)}f}")

    def _blit_prices(self, p, xs, groups, k, tick, dec, top, span_hi, scale, row_h, gh, head_h, inside) -> None:
        """The plain (not inside-market) price texts from a pixmap of the whole column.

        The pixmap holds every row's price in the regular font, drawn at the same places as the
        per-row text would be; it is rendered again only when its key (rows, their placement,
        tick, grouping, widget size, font, device pixel ratio) changes, i.e. on a pan, a zoom, a
        re-centre or a resize, not per frame. The inside-market rows (bold) are clipped out and
        drawn as text by the caller.
        """
        x0, cw = xs[2], xs[3] - xs[2]
        dpr = self.devicePixelRatioF()
        key = (tuple(groups), k, tick, dec, top, span_hi, scale, row_h, cw, self.height(), head_h, dpr,
               self._font.key())
        if self._price_pm is None or self._price_pm[0] != key:
            pm = QtGui.QPixmap(max(int(math.ceil(cw * dpr)), 1), max(int(math.ceil(self.height() * dpr)), 1))
            pm.setDevicePixelRatio(dpr)
            pm.fill(QtCore.Qt.transparent)
            q = QtGui.QPainter(pm)
            try:
                q.setFont(self._font)
                q.setPen(TEXT)
                for g in groups:
                    y = top + (span_hi - (g * k + k - 1) * tick) * scale - row_h / 2
                    if y > self.height() or y + gh < head_h:
                        continue
                    q.drawText(QtCore.QRectF(0.0, y, cw, gh), QtCore.Qt.AlignCenter, f"{g * k * tick:.{dec}f}")
            finally:
                q.end()
            self._price_pm = (key, pm)
            self.price_renders += 1
        pm = self._price_pm[1]
        # vertical spans of the column outside the inside-market rows
        cuts = sorted({(top + (span_hi - (g * k + k - 1) * tick) * scale - row_h / 2) for g in inside})
        spans, y0 = [], 0.0
        for yc in cuts:
            spans.append((y0, yc))
            y0 = yc + gh
        spans.append((y0, float(self.height())))
        for a, b in spans:
            if b <= a:
                continue
            p.save()
            p.setClipRect(QtCore.QRectF(x0, a, cw, b - a), QtCore.Qt.IntersectClip)
            p.drawPixmap(QtCore.QPointF(x0, 0.0), pm)
            p.restore()

    def _paint_own(self, p: QtGui.QPainter, xs, y: float, gh: float, mine, pos, dec: int) -> str:
        """Own orders of one row (boxes in the bid / ask column) and the position's mark and open P&L.

        Returns the open P&L text drawn (the longest spelling that fits), ``""`` without the position.
        """
        p.setFont(self._bold)
        if mine:
            for side, orders, x0, x1, bg in ((1, mine[0], xs[1], xs[2], BUY_ORDER_BG),
                                             (-1, mine[1], xs[3], xs[4], SELL_ORDER_BG)):
                if not orders:
                    continue
                r = QtCore.QRectF(x0 + 1, y, x1 - x0 - 2, max(gh - 1, 1.0))
                pending = all(o.pending for o in orders)  # bracket children waiting for their entry
                p.fillRect(r, bg.darker(170) if pending else bg)
                p.setPen(QtGui.QPen(ORDER_EDGE, 1, QtCore.Qt.DashLine if pending else QtCore.Qt.SolidLine))
                p.drawRect(r)
                p.drawText(r.adjusted(3, 0, -2, 0), QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter | QtCore.Qt.TextSingleLine,
                           _cell_text(orders, r.width() - 5, QtGui.QFontMetricsF(self._bold, self)))
                self.order_cells.append((r, side, tuple(orders)))
        if pos is not None:
            cell = QtCore.QRectF(xs[2] + 1, y, xs[3] - xs[2] - 2, max(gh - 1, 1.0))
            p.setPen(QtGui.QPen(POSITION_EDGE, 2))
            p.drawRect(cell)
            # the open P&L beside the average price: over the volume and bid columns, unless a
            # buy order already sits there (then over the volume column only)
            x1 = xs[1] if mine and mine[0] else xs[2]
            box = QtCore.QRectF(xs[0] + 1, y, x1 - xs[0] - 3, max(gh - 1, 1.0))
            p.fillRect(box, POSITION_BG)
            p.setPen(PNL_UP if pos.open_pnl_usd >= 0 else PNL_DOWN)
            fm = p.fontMetrics()
            texts = pos.pnl_texts
            shown = next((t for t in texts if fm.horizontalAdvance(t) <= box.width() - 4), texts[-1])
            p.drawText(box.adjusted(2, 0, -2, 0), QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter | QtCore.Qt.TextSingleLine,
                       shown)
            return shown
        return ""
