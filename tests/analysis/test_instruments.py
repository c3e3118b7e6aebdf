"""Thresholds relative to the instrument (issue 14, item 12b): on the shipped ES hour, the BTCUSDT
capture and the ETHUSDT capture (read with symbol ETHUSDT, tick 0.01), the engine's rows, stops,
targets and large lots come out in proportion to each instrument's own market.

Before item 12 every instrument had one-tick rows: on BTCUSDT a median one-minute bar spanned
~900 rows, so the 400-row heatmap was under half a bar (0.4) and the bracket's 4-row minimum stop
was $0.40. The test prints one line per instrument (``pytest -s``) and checks the bands below,
which are properties of the rules (rows sized to the instrument's own 10-second range, stops in
average bar ranges, large lots a trade-size quantile), not fitted to a recording.
"""

import numpy as np
import pytest

from app.analysis.sizing import average_range, bracket
from app.core.events import KIND_TRADE, chunks
from app.live.engine import AnalysisEngine


def _recordings(shared_data):
    from app.feeds.binance import read_binance_gz
    from app.feeds.samples import load_default_sample

    crypto = shared_data / "crypto"
    return {
        "ES": load_default_sample(),
        "BTCUSDT": read_binance_gz(crypto / "btcusdt_20240808.gz"),
        "ETHUSDT": read_binance_gz(crypto / "ethusdt_20240808.gz", symbol="ETHUSDT", tick_size=0.01,
                                   tick_value=0.01),
    }


def figures(rec, profile=None) -> dict:
    """Run the engine over ``rec`` with automatic rows (``engine.row_ticks = 0``, opt-in); the
    instrument's proportions (rows, ticks, sizes, USD)."""
    from app.config.profiles import load_profile

    eng = AnalysisEngine(rec.instrument, profile or load_profile("development", {"engine.row_ticks": 0}))
    for c in chunks(rec.events):
        eng.process(c)
    eng.finish(end_of_data=True)
    v = eng.model.view()
    closed = v.bars[:-1]
    closed = closed[closed["volume"] > 0]
    rng = (closed["high"] - closed["low"]).astype(np.float64)
    med = float(np.median(rng))  # rows
    elite = eng.profile.section("elite")
    atr = average_range(closed["high"], closed["low"], int(elite["atr_bars"]))
    entry = int(v.best_ask)
    stop, target = bracket(1, entry, atr, [], elite)
    sizes = rec.events["size"][rec.events["kind"] == KIND_TRADE]
    lot = float(eng.analyzers._lot)  # the automatic large lot: a quantile of recent trade sizes
    row_usd = eng.model_instrument.tick_value  # USD per row per contract
    return {
        "row_ticks": eng.row_ticks,
        "median_bar_rows": med,
        "heatmap_bars": eng.model.rows / med,
        "stop_bars": (entry - stop) / med,
        "target_bars": (target - entry) / med,
        "stop_usd": (entry - stop) * row_usd,
        "large_lot": lot,
        "large_lot_share": float(np.mean(sizes >= lot)),
        "signals": len(eng.all_signals),
    }


@pytest.fixture(scope="module")
def table(shared_data):
    out = {name: figures(rec) for name, rec in _recordings(shared_data).items()}
    print("\ninstrument  ticks/row  median bar (rows)  heatmap (bars)  stop (bars)  target (bars)  stop USD"
          "  large lot  share of trades")
    for n, f in out.items():
        print(f"{n:<10} {f['row_ticks']:>9} {f['median_bar_rows']:>18.1f} {f['heatmap_bars']:>15.1f}"
              f" {f['stop_bars']:>12.2f} {f['target_bars']:>14.2f} {f['stop_usd']:>9.2f} {f['large_lot']:>10g}"
              f" {f['large_lot_share']:>16.3f}")
    return out


def test_es_keeps_one_tick_rows_and_crypto_gets_rows_of_its_own_size(table):
    assert table["ES"]["row_ticks"] == 1
    assert table["BTCUSDT"]["row_ticks"] > 1 and table["ETHUSDT"]["row_ticks"] > 1


def test_rows_stops_targets_and_large_lots_are_proportionate_on_every_instrument(table):
    for name, f in table.items():
        assert f["median_bar_rows"] >= 2, name  # a bar has a shape in rows (footprint, Battle Navale)
        assert f["heatmap_bars"] >= 5, name  # the heatmap shows several bars of range (BTC was 0.4)
        assert 0.5 <= f["stop_bars"] <= 6.0, name  # a stop is a fraction of the market's own bar, not 40 ticks
        assert f["target_bars"] > f["stop_bars"], name  # reward_risk > 1 in the profile
        assert 0.005 <= f["large_lot_share"] <= 0.05, name  # large lots are the largest ~2% of trades


def test_automatic_rows_equal_the_same_rows_set_by_hand(shared_data):
    """The automatic choice replays its first minute on the new rows: the run is the one the
    profile would give with ``engine.row_ticks`` set to that value from the start."""
    from app.config.profiles import load_profile
    from app.feeds.binance import read_binance_gz

    rec = read_binance_gz(shared_data / "crypto" / "btcusdt_20240808.gz")
    runs = []
    for prof in (load_profile("development", {"engine.row_ticks": 0}),
                 load_profile("development", {"engine.row_ticks": 20})):
        eng = AnalysisEngine(rec.instrument, prof)
        for c in chunks(rec.events):
            eng.process(c)
        eng.finish(end_of_data=True)
        f = eng.snapshot_frame()
        sigs = [(s.ts, s.side, s.entry, s.stop, s.target, eng.outcomes[s.id].first, eng.outcomes[s.id].mfe)
                for s in eng.all_signals]  # ids aside: the automatic run's ids continue past its first minute
        runs.append((eng.row_ticks, eng.steps, sigs, f.best_bid, f.best_ask, f.tick_size, f.row_ticks,
                     float(f.heatmap.sum()), float(f.bars["volume"].sum())))
    assert runs[0][0] == 20 and runs[0][2]
    assert runs[0][1:] == runs[1][1:]
