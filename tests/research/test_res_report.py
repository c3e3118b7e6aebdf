"""The evaluate report's wording of the breakeven rate."""
from app.cli.evaluate import _breakeven
from app.research.stats import breakeven_rate


def test_a_breakeven_above_one_is_reported_as_none_not_as_a_rate():
    # 1-tick target, 1-tick stop, 0.10 USD a tick, 4.50 USD round trip: the costs exceed the target
    p = breakeven_rate(1, 1, 0.10, 4.50)
    assert p > 1.0
    text = _breakeven(p)
    assert text.startswith("none") and "costs exceed the target" in text
    assert _breakeven(breakeven_rate(8, 8, 12.5, 4.5)) == "0.52"
    assert _breakeven(None) == "-"
