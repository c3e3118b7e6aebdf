"""Issue 17 items 1-2: the multi-instrument runtime (:mod:`app.live.instruments`) on real data.

The built-in server replays the BTCUSDT and ETHUSDT captures of 2024-08-08 (same minutes) at
maximum speed; the runtime's two instruments share one DTC connection (one SymbolID each), each
with its own engine on its own worker thread, its own frames (tagged with its symbol, its tick
size), signal ids from its own block and its own outcome tracker; the pair's relation row rides
on both instruments' frames and its series equals pandas on the trades the two pipelines
received. An external DTC server carries both symbols over one connection and a refused symbol
does not stop the others; Sierra Chart files instruments each get their own follower.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from app.cli.analyze import load_any
from app.core.events import KIND_TRADE
from app.live.instruments import SIGNAL_ID_BLOCK, ConnectionShare, InstrumentsRuntime
from app.live.pipeline import InstrumentConfig, PipelineConfig
from app.live.sierra_source import SierraFilesSource

pytestmark = pytest.mark.timeout(600)

BTC = "crypto/btcusdt_20240808.gz"
ETH = "crypto/ethusdt_20240808.gz"


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / BTC)), load_any(str(shared_data / ETH))]


async def until(pred, timeout: float, poll=None) -> bool:
    """Bounded poll (the replay and the worker threads run on their own)."""
    t_end = time.monotonic() + timeout
    while not pred() and time.monotonic() < t_end:
        if poll is not None:
            poll()
        await asyncio.sleep(0.02)
    return pred()


def pandas_corr(ta, pa, tb, pb, window: int) -> pd.Series:
    """Rolling correlation of 1-s log returns of the last trade price per second (carried forward)."""
    sa = pd.Series(pa, index=pd.to_datetime(ta, utc=True)).resample("1s").last()
    sb = pd.Series(pb, index=pd.to_datetime(tb, utc=True)).resample("1s").last()
    both = pd.concat([sa, sb], axis=1, keys=["a", "b"]).ffill().dropna()
    r = np.log(both).diff()
    return r["a"].rolling(window).corr(r["b"])


def assert_corr_is_pandas(rows, trades, missing: int) -> None:
    """The relation rows' correlation equals :func:`pandas_corr` on the trades each pipeline
    received (``trades[symbol]``: list of ``(ts, price)``), second for second; at most
    ``missing`` of pandas' seconds absent from the rows (the stream's last, not closed yet)."""
    ca = [np.concatenate([t[i] for t in trades["BTCUSDT"]]) for i in (0, 1)]
    cb = [np.concatenate([t[i] for t in trades["ETHUSDT"]]) for i in (0, 1)]
    expect = pandas_corr(ca[0], ca[1], cb[0], cb[1], 60)
    corr = pd.Series(rows["corr"], index=pd.to_datetime(rows["ts"], utc=True))
    common = expect.index.intersection(corr.index)
    assert len(common) >= len(expect) - missing and expect[common].notna().sum() > 250
    np.testing.assert_allclose(corr[common].to_numpy(), expect[common].to_numpy(), rtol=0, atol=1e-9, equal_nan=True)


def test_two_recordings_share_one_connection_each_with_its_own_engine_frames_ids_and_relation(pair):
    from app.research.live import LiveResearch

    made = []

    def observer():  # the window's factory: the tape's research observer, one per engine
        made.append(LiveResearch("scalping"))
        return made[-1]

    cfg = PipelineConfig(embedded=True, recording=pair, speed=0.0, profile="scalping",
                         profile_overrides={"elite.min_elite_score": 0.3},  # signals on both captures
                         engine_options={"observer_factory": observer})
    problems, frames, trades = [], {}, {}
    out = {}

    def on_batch(symbol, batch):
        t = batch[batch["kind"] == KIND_TRADE]
        trades.setdefault(symbol, []).append((t["ts"].astype(np.int64), t["price"].astype(np.float64)))

    async def main():
        rt = InstrumentsRuntime(cfg, on_problem=lambda lv, text, action: problems.append((lv, text)))
        rt.add_listener(on_batch)
        rt.add_frame_listener(lambda f: frames.setdefault(f.symbol, []).append(f))
        await rt.start()
        a, b = rt.instruments
        out["shared"] = (a.pipeline.client is b.pipeline.client is rt.client,
                         len(rt.client.subscriptions), isinstance(b.pipeline.source, ConnectionShare))
        src = a.pipeline.source
        assert await until(lambda: src.replay_finished and all(
            r.engine.backlog == 0 and r.engine.events_applied == r.pipeline.events_in for r in rt.instruments),
            300, rt.poll)
        out["engines"] = [(r.symbol, r.engine, r.engine.tracker, r.pipeline.events_in, r.engine.events_applied,
                           [s.id for s in r.engine.all_signals], {s.symbol for s in r.engine.all_signals})
                          for r in rt.instruments]
        out["observers"] = [(r.engine.observer, r.engine.observer._engine is r.engine, r.engine.observer._n)
                            for r in rt.instruments]
        out["rows"] = np.concatenate(rt.relation_rows)
        out["pair"] = rt.relation_pair
        await rt.stop()

    asyncio.run(asyncio.wait_for(main(), 500))
    assert not [p for p in problems if p[0] == "error"], problems
    assert out["shared"] == (True, 2, True)  # one DTC connection, one SymbolID per symbol
    (sa, ea, ta, na, aa, ida, syma), (sb, eb, tb, nb, ab, idb, symb) = out["engines"]
    assert (sa, sb) == ("BTCUSDT", "ETHUSDT") and ea is not eb and ta is not tb
    assert na > 100_000 and nb > 100_000 and (aa, ab) == (na, nb)
    # each engine its own research observer, holding that instrument's trades only (one shared
    # observer took both engines' streams, from two threads: a race that stopped an engine)
    (oa, own_a, n_a), (ob, own_b, n_b) = out["observers"]
    assert made == [oa, ob] and oa is not ob and own_a and own_b
    assert n_a == sum(len(t[0]) for t in trades["BTCUSDT"]) and n_b == sum(len(t[0]) for t in trades["ETHUSDT"])
    # frames: each instrument's own, tagged with its symbol and tick size
    assert {f.tick_size for f in frames["BTCUSDT"]} == {0.1} and {f.tick_size for f in frames["ETHUSDT"]} == {0.01}
    # signal ids from each instrument's block: unique across instruments
    assert ida and idb, "scalping signals fire on both captures"
    assert all(1 <= i < SIGNAL_ID_BLOCK for i in ida) and all(SIGNAL_ID_BLOCK < i < 2 * SIGNAL_ID_BLOCK for i in idb)
    assert syma == {"BTCUSDT"} and symb == {"ETHUSDT"}
    # the relation: newest row on both instruments' frames; the series equals pandas on the trades received
    rows = out["rows"]
    assert out["pair"] == ("BTCUSDT", "ETHUSDT") and np.all(np.diff(rows["ts"]) > 0)
    for sym in out["pair"]:
        last = frames[sym][-1].relation
        assert last is not None and int(last["ts"]) in set(rows["ts"].tolist())
    assert_corr_is_pandas(rows, trades, missing=1)
    assert np.nanmean(rows["corr"]) > 0.5  # a real correlated pair


def test_external_dtc_server_carries_every_symbol_on_one_connection_and_a_refused_one_is_reported(pair):
    from app.sim.server import DTCServer

    out, problems = {}, []

    async def main():
        srv = DTCServer(pair, host="127.0.0.1", port=0, speed=0.0, paused=True)
        await srv.start()
        try:
            cfg = PipelineConfig(embedded=False, host="127.0.0.1", port=srv.port, profile="production")
            cfg.set_instruments([InstrumentConfig("ETHUSDT"), InstrumentConfig("NOSUCH", tick_size=0.5),
                                 InstrumentConfig("BTCUSDT")])
            rt = InstrumentsRuntime(cfg, on_problem=lambda lv, text, action: problems.append((lv, text, action)),
                                    take_turns=True)  # the engines' shared step lock
            await rt.start()
            out["locks"] = {id(r.engine._step_lock) for r in rt.instruments if r.engine is not None}
            srv.resume()
            got = {r.symbol: r for r in rt.instruments}
            assert await until(lambda: got["ETHUSDT"].pipeline.events_in > 1000 and
                               got["BTCUSDT"].pipeline.events_in > 1000, 120, rt.poll)
            out["clients"] = {id(r.pipeline.client) for r in rt.instruments}
            out["subs"] = sorted(s.symbol for s in rt.client.subscriptions.values())
            out["inst"] = {s: (r.instrument.tick_size if r.instrument else None) for s, r in got.items()}
            out["states"] = {s: r.pipeline.source.state for s, r in got.items()}
            out["server_connections"] = srv.stats.get("connections")
            await rt.stop()
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 300))
    assert len(out["clients"]) == 1 and out["subs"] == ["BTCUSDT", "ETHUSDT"]
    assert len(out["locks"]) == 1
    assert out["inst"] == {"ETHUSDT": 0.01, "NOSUCH": 0.5, "BTCUSDT": 0.1}
    assert out["states"]["NOSUCH"] == "rejected" and out["states"]["BTCUSDT"] == "streaming"
    refused = [p for p in problems if p[0] == "error"]
    assert len(refused) == 1 and refused[0][1].startswith("NOSUCH: Symbol NOSUCH rejected") and \
        refused[0][2] == "use_sierra_files"


def test_sierra_files_instruments_each_follow_their_own_files(tmp_path):
    from app.feeds.samples import load_default_sample
    from app.feeds.scid import events_to_scid_records, write_scid

    rec = load_default_sample()
    tr = rec.events[rec.events["kind"] == KIND_TRADE][:100]
    for sym in ("ESH4", "MESH4"):
        write_scid(tmp_path / f"{sym}.scid", events_to_scid_records(tr, rec.instrument))
    cfg = PipelineConfig(embedded=False, sierra_data_dir=str(tmp_path))
    cfg.set_instruments([InstrumentConfig("ESH4", "CME", 0.25, 12.5, "sierra_files"),
                         InstrumentConfig("MESH4", "CME", 0.25, 1.25, "sierra_files", profile="scalping")])
    out = {}

    async def main():
        rt = InstrumentsRuntime(cfg)
        await rt.start()
        out["sources"] = [(type(r.pipeline.source), r.pipeline.source.symbol, r.pipeline.source.state,
                           r.instrument.tick_value, r.pipeline.profile.name) for r in rt.instruments]
        out["distinct"] = rt.instruments[0].pipeline.source is not rt.instruments[1].pipeline.source
        out["client"] = rt.client
        await rt.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
    assert out["distinct"] and out["client"] is None
    assert out["sources"] == [(SierraFilesSource, "ESH4", "following", 12.5, "production"),
                              (SierraFilesSource, "MESH4", "following", 1.25, "scalping")]


def test_one_research_observer_for_several_instruments_is_refused(pair):
    from app.research.live import LiveResearch

    cfg = PipelineConfig(embedded=True, recording=pair, speed=0.0, profile="scalping",
                         engine_options={"observer": LiveResearch("scalping")})

    with pytest.raises(ValueError, match="observer_factory"):
        InstrumentsRuntime(cfg)


def test_a_looped_replay_starts_the_relation_again_each_pass_and_analyses_every_pass(pair):
    """With ``loop_replay`` every pass is a new session at the same market times. The relation
    refused the second pass's trades ("trade times go backwards", every batch), and the engines
    ran no analysis step in it. Now each pass has its own series, equal to pandas on that pass's
    trades, and both engines analyse it."""
    import re

    cfg = PipelineConfig(embedded=True, recording=pair, speed=0.0, profile="scalping", loop_replay=True)
    problems, passes = [], {}
    state = {"pass": 1}
    out = {}

    def on_batch(symbol, batch):
        t = batch[batch["kind"] == KIND_TRADE]
        passes.setdefault(state["pass"], {}).setdefault(symbol, []).append(
            (t["ts"].astype(np.int64), t["price"].astype(np.float64)))

    async def main():
        rt = InstrumentsRuntime(cfg, on_problem=lambda lv, text, action: on_problem(rt, lv, text, action))
        rt.add_listener(on_batch)
        await rt.start()
        steps = {}

        def on_problem_pass(n):
            if n == 3 and "rows2" not in out:  # pass 2 ended: its series before the reset
                out["rows2"] = np.concatenate(rt.relation_rows)
                out["steps2"] = {r.symbol: r.engine.steps for r in rt.instruments}
                out["passes_seen"] = {r.symbol: r.engine.new_passes for r in rt.instruments}
            if n == 2:
                steps.update({r.symbol: r.engine.steps for r in rt.instruments})

        out["hook"] = on_problem_pass
        assert await until(lambda: "rows2" in out, 400, rt.poll)
        out["steps1"] = steps
        out["resets"] = rt.relation_resets
        await rt.stop()

    def on_problem(rt, lv, text, action):
        problems.append((lv, text))
        m = re.search(r"pass (\d+)", text)
        if action == "replay_restarted" and m and int(m.group(1)) > state["pass"]:
            state["pass"] = int(m.group(1))
            out["hook"](state["pass"])

    asyncio.run(asyncio.wait_for(main(), 500))
    assert not [p for p in problems if p[0] == "error"], problems[:3]
    assert out["resets"] >= 2
    rows = out["rows2"]
    assert len(rows) > 250 and np.all(np.diff(rows["ts"]) > 0)
    assert_corr_is_pandas(rows, passes[2], missing=2)
    # both engines saw the new pass and analysed it as much as the first (steps at 100 ms of market time)
    assert all(n >= 1 for n in out["passes_seen"].values())
    for sym, s1 in out["steps1"].items():
        assert out["steps2"][sym] - s1 >= 0.9 * s1, (sym, s1, out["steps2"][sym])
