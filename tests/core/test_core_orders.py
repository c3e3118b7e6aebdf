"""The one trading vocabulary (app.core.orders) and its one DTC mapping (app.dtc.adapter)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.core.events import SIDE_ASK, SIDE_BID
from app.core.orders import OrderStatus, OrderType, PartialFillHandling, Side, TimeInForce
from app.dtc import adapter
from app.dtc import messages as M

ROOT = Path(__file__).resolve().parents[2]


def test_trading_side_is_signed_and_not_the_book_side():
    assert (int(Side.BUY), int(Side.SELL)) == (1, -1)
    assert Side.BUY.opposite is Side.SELL and Side.SELL.opposite is Side.BUY
    # the book sides are another convention (where liquidity rests); nothing maps one onto the other
    assert {SIDE_BID, SIDE_ASK} != {int(Side.BUY), int(Side.SELL)}


def test_order_types_keep_stop_limit_apart_and_read_as_their_values():
    assert len(set(OrderType)) == 4
    assert OrderType.STOP_LIMIT != OrderType.STOP
    assert (OrderType.MARKET.needs_price, OrderType.STOP.needs_price, OrderType.STOP.needs_price2) == (False, True, False)
    assert OrderType.STOP_LIMIT.needs_price and OrderType.STOP_LIMIT.needs_price2
    assert OrderType("stop_limit") is OrderType.STOP_LIMIT and f"{OrderType.LIMIT}" == "limit"


def test_status_working_and_final():
    assert {s for s in OrderStatus if s.final} == {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED}
    assert not OrderStatus.UNKNOWN.working and not OrderStatus.UNKNOWN.final
    assert OrderStatus.SENT.working and OrderStatus.PENDING_CHILD.working


@pytest.mark.parametrize("t, n", [(OrderType.MARKET, 1), (OrderType.LIMIT, 2), (OrderType.STOP, 3),
                                  (OrderType.STOP_LIMIT, 4)])
def test_order_type_round_trips_through_dtc(t, n):
    assert adapter.order_type_to_dtc(t) == n
    assert adapter.order_type_from_dtc(n) is t


def test_dtc_sides_statuses_tif_and_partial_fill_handling():
    assert (adapter.side_to_dtc(Side.BUY), adapter.side_to_dtc(-1)) == (1, 2)
    assert (adapter.side_from_dtc(1), adapter.side_from_dtc(2)) == (Side.BUY, Side.SELL)
    with pytest.raises(ValueError, match="unsupported side 0"):
        adapter.side_from_dtc(0)
    with pytest.raises(ValueError):
        adapter.side_to_dtc(2)  # a DTC number is not a trading side
    with pytest.raises(ValueError, match="order type 5 not supported"):
        adapter.order_type_from_dtc(5)
    for s in OrderStatus:
        if s is not OrderStatus.UNKNOWN:
            assert adapter.status_from_dtc(adapter.status_to_dtc(s)) is s
    assert adapter.status_from_dtc(M.OrderStatus.ORDER_STATUS_PENDING_CANCEL_REPLACE) is OrderStatus.PENDING_CANCEL
    assert adapter.status_from_dtc(0) is None and adapter.status_from_dtc(42) is None
    for t in TimeInForce:
        assert adapter.tif_from_dtc(adapter.tif_to_dtc(t)) is t
    assert adapter.tif_from_dtc(0) is TimeInForce.DAY
    assert adapter.pfh_from_dtc(2) is PartialFillHandling.IMMEDIATE_CANCEL
    assert adapter.pfh_from_dtc(0) is PartialFillHandling.REDUCE


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_dtc_numbers_meet_the_vocabulary_only_in_the_adapter():
    """The adapter imports only core and the protocol; the brokers and the server import it,
    and no other module of theirs spells the DTC enums of sides, types or statuses."""
    app_imports = {m for m in _imports(ROOT / "app/dtc/adapter.py") if m.startswith("app.")}
    assert app_imports and all(m.startswith(("app.core.", "app.dtc.")) or m == "app.dtc" for m in app_imports)
    users = [ROOT / "app/trading/dtc_broker.py", ROOT / "app/trading/paper.py",
             *sorted((ROOT / "app/sim").rglob("*.py"))]
    for p in users:
        text = p.read_text(encoding="utf-8")
        for enum in ("M.BuySell.", "M.OrderType.", "M.OrderStatus.", "M.TimeInForce.", "M.PartialFillHandling."):
            assert enum not in text, f"{p.relative_to(ROOT)} uses {enum} (convert in app.dtc.adapter)"
    assert "app.dtc.adapter" in _imports(ROOT / "app/trading/dtc_broker.py")
    assert "app.dtc.adapter" in _imports(ROOT / "app/sim/server/orders.py")
