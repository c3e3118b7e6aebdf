"""The server's account queries: open orders, positions, trade accounts, balances, history.

Solicited answers (300 -> 301s, 305 -> 306s, 400 -> 401, 601 -> 600) carry RequestID /
TotalNumMessages / MessageNumber; empty results are one message with NoOrders / NoPositions =
1; a multi-message answer is written in one piece, so no unsolicited update can interleave.
Prices go out as ``ticks * tick_size``; money in USD.
"""

from __future__ import annotations

from app.dtc import codec
from app.dtc import messages as M
from app.sim.server.session import Conn, fit

T = M.MessageType


class QueriesMixin:
    """Account queries of :class:`app.sim.server.DTCServer` (300, 305, 400, 601, 700).

    Uses the server's ``engine``, ``account`` and the session's ``_send`` / ``_write``; ORDER_UPDATE
    building is the order-entry part's ``_order_update``. Every answer is about the connection's
    own account (:attr:`Conn.account`, shown as the server's ``account`` name); a TradeAccount
    naming any other account is rejected as unknown.
    """

    #: message type -> handler method name
    HANDLES_QUERIES = {
        int(T.OPEN_ORDERS_REQUEST): "_on_open_orders",
        int(T.CURRENT_POSITIONS_REQUEST): "_on_positions",
        int(T.TRADE_ACCOUNTS_REQUEST): "_on_trade_accounts",
        int(T.ACCOUNT_BALANCE_REQUEST): "_on_balance",
        int(T.HISTORICAL_PRICE_DATA_REQUEST): "_on_historical",
    }

    def _on_open_orders(self, c: Conn, m) -> None:
        if not m.RequestAllOrders and m.ServerOrderID:
            o = self.engine.order(m.ServerOrderID)
            orders = [o] if o is not None and o.account == c.account and not o.is_final else []
        else:
            orders = self.engine.open_orders(account=c.account)
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.OpenOrdersReject(RequestID=m.RequestID, RejectText=fit(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        reason = M.OrderUpdateReason.OPEN_ORDERS_REQUEST_RESPONSE
        if not orders:
            self._send(c, M.OrderUpdate(RequestID=m.RequestID, TotalNumMessages=1, MessageNumber=1, NoOrders=1,
                                        OrderUpdateReason=int(reason), TradeAccount=fit(self.account, 32)))
            return
        chunks = []
        for i, o in enumerate(orders, 1):
            msg = self._order_update(o, reason, request_id=m.RequestID, total=len(orders), number=i)
            chunks.append(codec.encode(msg, c.encoding))
        self._write(c, b"".join(chunks), len(chunks))

    def _position_update(self, sym: str, account: str, request_id=0, total=1, number=1, unsolicited=1) -> M.Message:
        """POSITION_UPDATE (306) of ``sym`` in the engine account ``account``."""
        p = self.engine.position(sym, account)
        inst = self.engine.instruments[sym]
        tick = inst.tick_size
        return M.PositionUpdate(
            RequestID=request_id, TotalNumberMessages=total, MessageNumber=number,
            Symbol=fit(sym, 64), Exchange=fit(inst.exchange, 16), Quantity=float(p.qty),
            AveragePrice=(p.avg_price * tick) if p.avg_price is not None else 0.0,
            TradeAccount=fit(self.account, 32), NoPositions=0, Unsolicited=unsolicited,
            EntryDateTime=int(p.entry_ns // 1_000_000_000) if p.qty else 0,
            OpenProfitLoss=float(self.engine.open_pnl(sym, account)),
            HighPriceDuringPosition=(p.high * tick) if (p.qty and p.high is not None) else 0.0,
            LowPriceDuringPosition=(p.low * tick) if (p.qty and p.low is not None) else 0.0,
        )

    def _on_positions(self, c: Conn, m) -> None:
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.CurrentPositionsReject(RequestID=m.RequestID, RejectText=fit(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        syms = [s for s, p in self.engine.ledger_of(c.account).positions.items() if p.qty]
        if not syms:
            self._send(c, M.PositionUpdate(RequestID=m.RequestID, TotalNumberMessages=1, MessageNumber=1,
                                           NoPositions=1, Unsolicited=0, TradeAccount=fit(self.account, 32)))
            return
        data = b"".join(codec.encode(self._position_update(s, c.account, m.RequestID, len(syms), i, 0), c.encoding)
                        for i, s in enumerate(syms, 1))
        self._write(c, data, len(syms))

    def _on_trade_accounts(self, c: Conn, m) -> None:
        self._send(c, M.TradeAccountResponse(TotalNumberMessages=1, MessageNumber=1,
                                             TradeAccount=fit(self.account, 32), RequestID=m.RequestID))

    def _balance(self, account: str, request_id=0, unsolicited=1) -> M.Message:
        """ACCOUNT_BALANCE_UPDATE (600) of the engine account ``account`` (USD)."""
        e = self.engine
        open_pnl = e.total_open_pnl(account)
        cash = e.cash_balance(account)
        return M.AccountBalanceUpdate(
            RequestID=request_id, CashBalance=float(cash),
            BalanceAvailableForNewPositions=float(cash + open_pnl),
            AccountCurrency="USD", TradeAccount=fit(self.account, 32), SecuritiesValue=0.0, MarginRequirement=0.0,
            TotalNumberMessages=1, MessageNumber=1, NoAccountBalances=0, Unsolicited=unsolicited,
            OpenPositionsProfitLoss=float(open_pnl), DailyProfitLoss=float(e.realized_pnl(account) + open_pnl),
            TransactionDateTime=int(e.now_ns // 1000),
        )

    def _on_balance(self, c: Conn, m) -> None:
        if m.TradeAccount and m.TradeAccount != self.account:
            self._send(c, M.AccountBalanceReject(RequestID=m.RequestID, RejectText=fit(f"unknown trade account {m.TradeAccount!r}", 96)))
            return
        self._send(c, self._balance(c.account, m.RequestID, unsolicited=0))

    def _on_historical(self, c: Conn, m) -> None:
        self._send(c, M.HistoricalPriceDataReject(
            RequestID=m.RequestID,
            RejectText="historical data is not served by the MIA Elite replay server",
            RejectReasonCode=int(M.HistoricalPriceDataRejectReasonCode.HPDR_UNABLE_TO_SERVE_DATA_DO_NOT_RETRY)))
