"""Reasons read like a trader's note (issue 14, item 16): prices not ticks, sizes in the
instrument's units without spurious decimals, English only, each with its strength."""

import re

import numpy as np
import pytest

from app.analysis.reasons import ReasonFormatter
from app.core.events import Instrument, chunks
from app.live.engine import AnalysisEngine

ES = Instrument("ES", 0.25, 12.5, price_decimals=2)
BTC = Instrument("BTCUSDT", 0.1, 0.1, price_decimals=1)


def test_formatter_units():
    f = ReasonFormatter(ES)
    f.learn_sizes(np.array([1.0, 3.0, 12.0]))
    assert f.size_decimals == 0
    assert f.price(19203) == "4800.75"
    assert f.values((("traded", 11.0), ("max_displayed", 2.5625))) == "traded 11, max displayed 3"
    assert f.value("move_ticks", 4.0) == "move ticks 4 ticks"
    assert f.value("range_ratio", 1.23456) == "range ratio 1.23"
    b = ReasonFormatter(BTC)
    b.learn_sizes(np.array([0.002, 0.125, 1.0]))
    assert b.size_decimals == 3 and b.size(0.125) == "0.125"


@pytest.fixture(scope="module")
def es_signals(shared_data):
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    eng = AnalysisEngine(rec.instrument, "development")
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    return rec.instrument, eng.all_signals


def test_es_reasons_cite_prices_whole_contracts_and_strength(es_signals):
    inst, sigs = es_signals
    assert sigs
    lo, hi = 4790.0, 4820.0  # the shipped hour traded 4797-4813
    for s in sigs:
        for r in s.reasons:
            d = r.detail
            assert not re.search(r"rouge|verte|sous", d), d
            assert d.endswith(f"strength {r.strength:.2f}"), d
            # every number with a decimal point is a price of the hour, a ratio, or a strength
            for num in re.findall(r"\d+\.\d+", d):
                x = float(num)
                assert lo <= x <= hi or x < 100, d
            if r.price > 0 and r.family in ("dom", "advanced"):
                assert f"{r.price * inst.tick_size:.2f}" in d, d  # the level as a price
            # no size with decimals on a whole-contract instrument (old: "max_displayed 2.562")
            for name in ("traded", "displayed", "size", "median", "first size", "aggressive", "opposite"):
                m = re.search(rf"\b{name} (\d+(?:\.\d+)?)", d)
                if m:
                    assert "." not in m.group(1), d
