"""Position and P&L bookkeeping from fills (the numbers the risk gate and the risk panel use).

Average-price accounting per symbol: a fill that adds to a position moves the average price;
a fill that reduces it realises ``(fill - avg) * closed_qty * side_of_position * tick_value``.
A round trip ends when the position returns to zero (or flips through zero); its net result
(realised minus the commissions paid during it) decides win or loss for the consecutive-loss
count. Prices in ticks, money in USD.

Commissions: each :class:`~app.core.orders.Fill` carries the commission charged on it. The
trading session sets it from ``trading.toml`` (the symbol's commission per contract per side,
:meth:`app.config.trading.TradingSettings.commission_for`) for every broker alike: paper, a
Sierra Chart account over DTC (DTC's ORDER_UPDATE reports no commission) and the built-in server.
So :attr:`PnLTracker.net_realized_usd`, the figure the risk gate and the risk panel use, is net
everywhere; :attr:`PnLTracker.realized_usd` keeps the gross.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.orders import Fill


@dataclass(slots=True)
class SymbolBook:
    """Position state of one symbol."""

    qty: int = 0  # signed contracts
    avg_price: float = 0.0  # ticks
    trip_pnl_usd: float = 0.0  # realised - commissions of the current round trip


@dataclass(slots=True)
class PnLTracker:
    """Realised P&L, commissions, round trips and the consecutive-loss count of one trading day.

    Parameters
    ----------
    tick_values : dict[str, float]
        USD per tick per contract by symbol; ``default_tick_value`` for others.
    """

    tick_values: dict = field(default_factory=dict)
    default_tick_value: float = 12.5
    books: dict = field(default_factory=dict)
    realized_usd: float = 0.0  # gross of commissions
    commissions_usd: float = 0.0
    round_trips: int = 0
    wins: int = 0
    losses: int = 0
    consecutive_losses: int = 0
    trip_results: list = field(default_factory=list)

    def tick_value(self, symbol: str) -> float:
        return float(self.tick_values.get(symbol, self.default_tick_value))

    @property
    def net_realized_usd(self) -> float:
        """Realised P&L after commissions, USD."""
        return self.realized_usd - self.commissions_usd

    def position(self, symbol: str) -> SymbolBook:
        return self.books.setdefault(symbol, SymbolBook())

    def apply_fill(self, fill: Fill) -> float:
        """Book a fill; return the gross P&L it realised (USD, 0 for an opening fill)."""
        b = self.position(fill.symbol)
        tv = self.tick_value(fill.symbol)
        signed = fill.side * fill.qty
        realized = 0.0
        self.commissions_usd += fill.commission_usd
        b.trip_pnl_usd -= fill.commission_usd
        if b.qty == 0 or (b.qty > 0) == (signed > 0):
            new_qty = b.qty + signed
            b.avg_price = (b.avg_price * abs(b.qty) + fill.price * abs(signed)) / abs(new_qty)
            b.qty = new_qty
        else:
            closed = min(abs(signed), abs(b.qty))
            pos_side = 1 if b.qty > 0 else -1
            realized = (fill.price - b.avg_price) * closed * pos_side * tv
            self.realized_usd += realized
            b.trip_pnl_usd += realized
            rest = abs(signed) - closed
            b.qty += pos_side * -closed
            if b.qty == 0:
                self._close_trip(b)
                if rest:
                    b.qty = (1 if signed > 0 else -1) * rest
                    b.avg_price = float(fill.price)
        return realized

    def _close_trip(self, b: SymbolBook) -> None:
        self.round_trips += 1
        self.trip_results.append(b.trip_pnl_usd)
        if b.trip_pnl_usd < 0:
            self.losses += 1
            self.consecutive_losses += 1
        else:
            self.wins += 1
            self.consecutive_losses = 0
        b.trip_pnl_usd = 0.0
        b.avg_price = 0.0

    def open_pnl_usd(self, symbol: str, last_price: int | None) -> float:
        """Unrealised P&L of ``symbol`` at ``last_price`` (ticks), USD; 0 when flat or no price."""
        b = self.books.get(symbol)
        if b is None or b.qty == 0 or last_price is None:
            return 0.0
        return (last_price - b.avg_price) * b.qty * self.tick_value(symbol)
