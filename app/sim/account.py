"""The simulated account: net positions, realised P&L, commissions and the cash balance.

:class:`Account` books every fill of the matching engine (:mod:`app.sim.matching`) and returns
the :class:`PositionEvent` and :class:`BalanceEvent` the engine reports after it. It knows
nothing about orders or the book: the engine gives it the fill (symbol, trading side, contracts,
price in ticks) and, for open P&L, the mark price.

Units: prices and average prices are ticks (float for averages), quantities signed contracts
(negative = short), money USD (``ticks * tick_value * contracts``), times ns since the epoch
(market time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from app.core.events import Instrument
from app.core.orders import Side


@dataclass
class Position:
    """Net position of one symbol.

    Attributes
    ----------
    symbol, account : str
    qty : float
        Signed contracts (negative = short).
    avg_price : float or None
        Average entry, float ticks; None when flat.
    realized_pnl : float
        USD since the account started, after commissions.
    commissions : float
        USD paid on this symbol.
    high, low : int or None
        Ticks: highest / lowest trade while the position is open.
    entry_ns : int
        ns since the epoch of the fill that opened the position.
    """

    symbol: str
    account: str
    qty: float = 0.0
    avg_price: float | None = None
    realized_pnl: float = 0.0
    commissions: float = 0.0
    high: int | None = None
    low: int | None = None
    entry_ns: int = 0


@dataclass(frozen=True)
class PositionEvent:
    """A position changed (after a fill).

    Attributes
    ----------
    symbol, account : str
    qty : float
        Signed contracts (negative = short).
    avg_price : float or None
        Float ticks; None when flat.
    realized_pnl : float
        USD, this symbol, since the account started, after commissions.
    open_pnl : float
        USD, marked at the last trade (or mid).
    ts : int
        ns since the epoch (market time).
    """

    symbol: str
    account: str
    qty: float
    avg_price: float | None
    realized_pnl: float
    open_pnl: float
    ts: int


@dataclass(frozen=True)
class BalanceEvent:
    """Account balance after a fill.

    Attributes
    ----------
    account : str
    cash_balance, realized_pnl, open_pnl, commissions : float
        USD (``cash_balance`` = starting balance + realised P&L, commissions included).
    ts : int
        ns since the epoch (market time).
    """

    account: str
    cash_balance: float
    realized_pnl: float
    open_pnl: float
    commissions: float
    ts: int


class Account:
    """Positions and money of one simulated trade account.

    Parameters
    ----------
    name : str
        Account name (Sierra-style ``Sim1``).
    starting_balance : float
        USD cash at start.
    commission_per_contract : float or mapping of str to float
        USD per contract per fill (entries and exits): one figure for every symbol, or
        ``{symbol: USD}`` per symbol (``trading.toml``'s per-instrument commissions, see
        :meth:`app.config.trading.TradingSettings.commission_for`). Every realised P&L and
        balance the account reports is net of it.
    mark : callable
        ``mark(symbol) -> float ticks or None``: the price open P&L is marked at.

    Raises
    ------
    ValueError
        A negative or non-finite commission.
    """

    def __init__(self, name: str, starting_balance: float, commission_per_contract: float | Mapping[str, float],
                 mark: Callable[[str], float | None]) -> None:
        self.name = name
        self.starting_balance = float(starting_balance)
        per_symbol = isinstance(commission_per_contract, Mapping)
        self._commission_by_symbol: dict[str, float] | None = (
            {str(k): float(v) for k, v in commission_per_contract.items()} if per_symbol else None)
        self.commission_per_contract = 0.0 if per_symbol else float(commission_per_contract)
        for v in (self._commission_by_symbol or {"": self.commission_per_contract}).values():
            if not (0.0 <= v < float("inf")):
                raise ValueError(f"account {name}: commission per contract must be >= 0 USD and finite, got {v!r}")
        self.instruments: dict[str, Instrument] = {}
        self.positions: dict[str, Position] = {}
        self.commissions = 0.0
        self._mark = mark

    def add_instrument(self, inst: Instrument) -> None:
        """Keep a (flat) position for ``inst.symbol``; its tick value prices the P&L.

        Raises
        ------
        ValueError
            Commissions are given per symbol and none is given for ``inst.symbol`` (a P&L
            silently gross of commission is what this account must never report).
        """
        if self._commission_by_symbol is not None and inst.symbol not in self._commission_by_symbol:
            raise ValueError(f"account {self.name}: no commission per contract given for symbol {inst.symbol!r}"
                             f" (given for {', '.join(sorted(self._commission_by_symbol)) or 'none'})")
        self.instruments[inst.symbol] = inst
        self.positions.setdefault(inst.symbol, Position(inst.symbol, self.name))

    # ------------------------------------------------------------------ money
    def commission_for(self, symbol: str) -> float:
        """USD per contract per fill charged on ``symbol``."""
        if self._commission_by_symbol is not None:
            return self._commission_by_symbol[symbol]
        return self.commission_per_contract

    def open_pnl(self, symbol: str) -> float:
        """USD open P&L of ``symbol`` at the mark (0 when flat or without a mark).

        Raises
        ------
        KeyError
            If the account does not trade ``symbol``.
        """
        p = self.positions[symbol]
        m = self._mark(symbol)
        if not p.qty or p.avg_price is None or m is None:
            return 0.0
        return (m - p.avg_price) * p.qty * self.instruments[symbol].tick_value

    def realized_pnl(self) -> float:
        """USD realised P&L of all symbols, after commissions."""
        return sum(p.realized_pnl for p in self.positions.values())

    def cash_balance(self) -> float:
        """USD: starting balance + realised P&L (commissions included)."""
        return self.starting_balance + self.realized_pnl()

    def total_open_pnl(self) -> float:
        """USD open P&L over all symbols."""
        return sum(self.open_pnl(s) for s in self.positions)

    # ------------------------------------------------------------------ booking
    def track_extremes(self, symbol: str, prices: np.ndarray) -> None:
        """Widen the open position's high / low with traded ``prices`` (int64 ticks, shape (n,))."""
        p = self.positions.get(symbol)
        if p is None or not p.qty or not len(prices):
            return
        hi, lo = int(prices.max()), int(prices.min())
        p.high = hi if p.high is None else max(p.high, hi)
        p.low = lo if p.low is None else min(p.low, lo)

    def book_fill(self, symbol: str, side: Side, qty: float, price: int, now_ns: int) -> tuple[PositionEvent, BalanceEvent]:
        """Book one fill and return the position and balance after it.

        Parameters
        ----------
        symbol : str
        side : Side
            Trading side of the fill (+1 buy adds, -1 sell subtracts).
        qty : float
            Contracts (> 0).
        price : int
            Ticks.
        now_ns : int
            ns since the epoch (market time) of the fill.

        Returns
        -------
        (PositionEvent, BalanceEvent)

        Raises
        ------
        KeyError
            If the account does not trade ``symbol``.
        """
        inst = self.instruments[symbol]
        p = self.positions[symbol]
        signed = qty if side == Side.BUY else -qty
        comm = self.commission_for(symbol) * qty
        p.commissions += comm
        self.commissions += comm
        p.realized_pnl -= comm
        if p.qty == 0 or (p.qty > 0) == (signed > 0):
            tot = p.qty + signed
            p.avg_price = ((p.avg_price or 0.0) * abs(p.qty) + price * abs(signed)) / abs(tot)
            if p.qty == 0:
                p.entry_ns = now_ns
                p.high = p.low = price
            p.qty = tot
        else:
            closing = min(abs(signed), abs(p.qty))
            direction = 1.0 if p.qty > 0 else -1.0
            p.realized_pnl += (price - p.avg_price) * closing * direction * inst.tick_value
            rest = abs(signed) - closing
            p.qty += signed
            if abs(p.qty) < 1e-9:
                p.qty = 0.0
                p.avg_price = None
                p.high = p.low = None
            elif rest > 1e-9:  # flipped
                p.avg_price = float(price)
                p.entry_ns = now_ns
                p.high = p.low = price
        pos = PositionEvent(symbol=symbol, account=p.account, qty=p.qty, avg_price=p.avg_price,
                            realized_pnl=p.realized_pnl, open_pnl=self.open_pnl(symbol), ts=now_ns)
        bal = BalanceEvent(account=self.name, cash_balance=self.cash_balance(), realized_pnl=self.realized_pnl(),
                           open_pnl=self.total_open_pnl(), commissions=self.commissions, ts=now_ns)
        return pos, bal
