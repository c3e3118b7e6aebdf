"""Issue 17 item 7: several instruments over one DTC connection (loopback, real data).

The built-in server replays the BTCUSDT and ETHUSDT captures of 2024-08-08 (the same minutes,
USD-M perpetuals) together on one market clock; one :class:`app.dtc.client.DTCClient` subscribes
to both (one SymbolID each). Each symbol's client book is a :class:`app.market.model.MarketModel`
fed only from that symbol's event batches; at every checkpoint (the replay advanced by a few
seconds of market time on a :class:`~app.core.clock.ManualClock`, the client synchronised by a
request round trip) it must equal a MarketModel rebuilt from that symbol's own file up to the
events the server says it replayed. The ES hour plus a crypto capture (tick sizes 0.25 and 0.01,
CME and crypto sessions, dates seven months apart) served together start together and end in
the books of their files. The relation of the pair computed from the client's two streams (fed
at each checkpoint) equals pandas on the same trades. Positions in both symbols are reported by
the server itself.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from app.analysis.relation import Relation
from app.cli.analyze import load_any
from app.core.clock import ManualClock
from app.core.events import KIND_TRADE, SIDE_ASK, SIDE_BID, Instrument
from app.dtc import messages as M
from app.dtc.client import DTCClient
from app.market.model import MarketModel
from app.sim import replay as R
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(300)

BTC = "crypto/btcusdt_20240808.gz"
ETH = "crypto/ethusdt_20240808.gz"
ES = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / BTC)), load_any(str(shared_data / ETH))]


@pytest.fixture(scope="module")
def es(shared_data):
    return load_any(str(shared_data / ES))


async def until(pred, timeout: float = 60.0) -> bool:
    """Bounded poll for what the loopback socket must still deliver."""
    for _ in range(int(timeout / 0.005)):
        if pred():
            return True
        await asyncio.sleep(0.005)
    return pred()


def book_of(model: MarketModel) -> tuple:
    """Both sides of a model's book: (bid prices, bid sizes, ask prices, ask sizes)."""
    bp, bs, _ = model.levels(SIDE_BID)
    ap, as_, _ = model.levels(SIDE_ASK)
    return bp, bs, ap, as_


def assert_same_book(client: MarketModel, file: MarketModel, what: str) -> None:
    c, f = book_of(client), book_of(file)
    for name, a, b in zip(("bid prices", "bid sizes", "ask prices", "ask sizes"), c, f):
        assert np.array_equal(a, b), f"{what}: {name} differ ({len(a)} vs {len(b)} levels)"


class FileSide:
    """A symbol's book rebuilt from its own file, advanced to the events the server replayed."""

    def __init__(self, events: np.ndarray, inst: Instrument):
        self.events = events
        self.model = MarketModel(inst)
        self.done = 0

    def advance(self, n: int) -> None:
        if n > self.done:
            self.model.apply(self.events[self.done:n])
            self.done = n


class ClientSide:
    """A symbol's client book: one MarketModel fed only from this symbol's batches."""

    def __init__(self):
        self.model: MarketModel | None = None
        self.trades = 0
        self.batches = 0
        self.trade_ts: list[np.ndarray] = []  # the trades received, for the relation
        self.trade_px: list[np.ndarray] = []
        self.taken = 0  # trade batches already given to the relation

    def on_events(self, batch: np.ndarray) -> None:
        self.model.apply(batch)
        t = batch[batch["kind"] == KIND_TRADE]
        self.trades += len(t)
        self.batches += 1
        if len(t):
            self.trade_ts.append(t["ts"].astype(np.int64))
            self.trade_px.append(t["price"].astype(np.float64))

    def new_trades(self) -> tuple[np.ndarray, np.ndarray]:
        """Trades received since the last call (ts ns, price ticks)."""
        ts, px = self.trade_ts[self.taken:], self.trade_px[self.taken:]
        self.taken = len(self.trade_ts)
        return (np.concatenate(ts) if ts else np.zeros(0, np.int64)), (np.concatenate(px) if px else np.zeros(0))

    def all_trades(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.trade_ts), np.concatenate(self.trade_px)


async def subscribe(cl: DTCClient, symbols: list[str]) -> dict[str, ClientSide]:
    sides = {}
    for sym in symbols:
        side = sides[sym] = ClientSide()
        # the model knows only what the wire tells: the symbol and the definition's tick size
        definition = await cl.security_definition(sym)
        side.model = MarketModel(Instrument(sym, definition.MinPriceIncrement, definition.CurrencyValuePerIncrement))
        await cl.subscribe_market(sym, on_events=side.on_events)
    return sides


async def checkpoint(cl: DTCClient, srv: DTCServer, sides, files, what: str) -> dict[str, int]:
    """Compare every symbol's client book with its file's book at the server's replay position."""
    for _ in range(2):  # every byte sent before the answer has been read (TCP order)
        await cl.trade_accounts()
    pos = {s: v["position"] for s, v in srv.stats["replay"].items()}
    for sym, side in sides.items():
        files[sym].advance(pos[sym])
        assert_same_book(side.model, files[sym].model, f"{sym} at {what} ({pos[sym]} events)")
        ev = files[sym].events[:pos[sym]]
        assert side.trades == int((ev["kind"] == KIND_TRADE).sum()), f"{sym} trades at {what}"
    return pos


def pandas_corr(ta, pa, tb, pb, window: int):
    """Rolling correlation of 1-s log returns of the last trade per second (pandas, carried forward)."""
    sa = pd.Series(pa, index=pd.to_datetime(ta, utc=True)).resample("1s").last()
    sb = pd.Series(pb, index=pd.to_datetime(tb, utc=True)).resample("1s").last()
    both = pd.concat([sa, sb], axis=1, keys=["a", "b"]).ffill().dropna()
    rets = np.log(both).diff()
    return rets["a"].rolling(window).corr(rets["b"])


def due(srv: DTCServer, elapsed_s: float) -> int:
    """Events of the whole set whose segment starts within ``elapsed_s`` of market time."""
    tl = srv.timeline
    starts = tl.times_ns[np.concatenate(([0], tl.ends[:-1]))]
    k = int(np.searchsorted(starts, int(tl.times_ns[0]) + int(elapsed_s * 1e9), side="right"))
    return int(tl.ends[k - 1]) if k else 0


def test_two_crypto_books_equal_their_files_at_every_checkpoint_and_positions_in_both(pair):
    clock = ManualClock()
    step_s = 3.0

    async def main():
        srv = DTCServer(pair, port=0, speed=1.0, paused=True, clock=clock)
        await srv.start()
        files = {r.instrument.symbol: FileSide(r.events, r.instrument) for r in pair}
        cl = DTCClient("127.0.0.1", srv.port, heartbeat_s=60, depth_float=False, trade_account="Sim1")
        try:
            await cl.connect()
            sides = await subscribe(cl, ["BTCUSDT", "ETHUSDT"])
            assert len({s.symbol_id for s in cl.subscriptions.values()}) == 2  # one SymbolID each
            conn = next(iter(srv.conns.values()))
            assert set(conn.depth_subs) == {"BTCUSDT", "ETHUSDT"}
            srv.resume()
            assert await until(lambda: srv.replay.position > 0)
            mono0, elapsed, n_checks = clock.monotonic_ns(), 0.0, 0
            seen_both = False
            relation = Relation()  # the app's relation, fed at each checkpoint with what arrived
            rel_rows = []
            while not srv.replay.done:
                elapsed += step_s
                clock.advance(elapsed - (clock.monotonic_ns() - mono0) / 1e9)
                want = due(srv, elapsed)
                assert await until(lambda: srv.replay.position >= want or srv.replay.done)
                pos = await checkpoint(cl, srv, sides, files, f"{elapsed:g} s")
                rel_rows.append(relation.update(*sides["BTCUSDT"].new_trades(), *sides["ETHUSDT"].new_trades()))
                n_checks += 1
                seen_both = seen_both or all(p > 0 for p in pos.values())
                assert n_checks < 1000
            assert await srv.wait_replay_done(30.0)
            pos = await checkpoint(cl, srv, sides, files, "the end")
            assert seen_both and n_checks > 100  # 6 minutes in 3 s steps
            assert pos == {r.instrument.symbol: len(r.events) for r in pair}
            assert cl.decode_errors == 0
            # the correlation from the app (fed per checkpoint from the client's two streams)
            # equals an independent pandas computation on the same trades
            rel_rows.append(relation.update(*sides["BTCUSDT"].new_trades(), *sides["ETHUSDT"].new_trades()))
            rows = np.concatenate(rel_rows)
            expect = pandas_corr(*sides["BTCUSDT"].all_trades(), *sides["ETHUSDT"].all_trades(),
                                 relation.params.window_s)
            got = expect.index.intersection(pd.to_datetime(rows["ts"], utc=True))
            assert len(got) >= len(expect) - 1 and expect[got].notna().sum() > 250
            corr = pd.Series(rows["corr"], index=pd.to_datetime(rows["ts"], utc=True))
            np.testing.assert_allclose(corr[got].to_numpy(), expect[got].to_numpy(), rtol=0, atol=1e-9,
                                       equal_nan=True)
            # positions in both symbols: the venue's own books and its DTC reports
            cl.submit_order(M.SubmitNewSingleOrder(Symbol="BTCUSDT", OrderType=M.OrderType.ORDER_TYPE_MARKET,
                                                   BuySell=M.BuySell.BUY, Quantity=1,
                                                   TimeInForce=M.TimeInForce.TIF_DAY))
            cl.submit_order(M.SubmitNewSingleOrder(Symbol="ETHUSDT", OrderType=M.OrderType.ORDER_TYPE_MARKET,
                                                   BuySell=M.BuySell.SELL, Quantity=2,
                                                   TimeInForce=M.TimeInForce.TIF_DAY))
            assert await until(lambda: srv.engine.position("BTCUSDT", "Sim1").qty == 1
                               and srv.engine.position("ETHUSDT", "Sim1").qty == -2, 20.0)
            reported = {p.Symbol: p.Quantity for p in await cl.positions()}
            assert reported == {"BTCUSDT": 1.0, "ETHUSDT": -2.0}
            # each filled at its own market, in its own ticks
            btc_px = srv.engine.position("BTCUSDT", "Sim1").avg_price * 0.1
            eth_px = srv.engine.position("ETHUSDT", "Sim1").avg_price * 0.01
            assert abs(btc_px - files["BTCUSDT"].model.best_ask * 0.1) < 50
            assert abs(eth_px - files["ETHUSDT"].model.best_bid * 0.01) < 5
        finally:
            await cl.close()
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 280))


def test_es_hour_and_a_crypto_capture_served_together(es, pair):
    """Different tick sizes (0.25 vs 0.01), sessions (CME vs crypto) and dates (2023-12-25 vs
    2024-08-08): both start together on the market clock and end in their files' books."""
    eth = pair[1]
    clock = ManualClock()

    async def main():
        srv = DTCServer([es, eth], port=0, speed=1.0, paused=True, clock=clock, start_at_open=True)
        await srv.start()
        assert srv.timeline.groups == (0, 1)
        files = {s.inst.symbol: FileSide(s.events, s.inst) for s in srv.symbols.values()}
        cl = DTCClient("127.0.0.1", srv.port, heartbeat_s=60, depth_float=False)
        try:
            await cl.connect()
            sides = await subscribe(cl, ["ESH4", "ETHUSDT"])
            assert {s.tick_size for s in cl.subscriptions.values()} == {0.25, 0.01}
            srv.resume()
            assert await until(lambda: srv.replay.position > 0)
            mono0 = clock.monotonic_ns()
            for elapsed in (1.0, 5.0, 10.0, 30.0):
                clock.advance(elapsed - (clock.monotonic_ns() - mono0) / 1e9)
                want = due(srv, elapsed)
                assert await until(lambda: srv.replay.position >= want)
                pos = await checkpoint(cl, srv, sides, files, f"{elapsed:g} s")
                # aligned at their starts: within the first second both markets are trading
                assert pos["ESH4"] > 0 and pos["ETHUSDT"] > 0
                # and each only as far as its own first `elapsed` seconds
                for sym, s in srv.symbols.items():
                    t = s.events["ts"][pos[sym] - 1] - s.events["ts"][0]
                    assert t <= (elapsed + 5.0) * 1e9, f"{sym} ran ahead of the market clock"
            srv.set_speed(0)  # the rest at maximum speed
            assert await srv.wait_replay_done(120.0)
            pos = await checkpoint(cl, srv, sides, files, "the end")
            assert pos == {s: len(v.events) for s, v in srv.symbols.items()}
            assert cl.decode_errors == 0
        finally:
            await cl.close()
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 280))


def test_market_clock_of_the_pair_is_their_real_time(pair):
    tl = R.market_timeline([r.events for r in pair])
    assert tl.groups == (0, 0) and tl.offsets_ns == (0, 0)
