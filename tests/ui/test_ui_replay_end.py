"""Issue 13 item 17 in the window: at the end of the embedded replay the window says "replay
finished" and offers Restart and Load; Restart is a new session for paper trading (working paper
orders cancelled with reason "replay restarted", the position closed at the last price, both
journaled); Load replays another recording."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

from qt_loop import close_window, run_on_qt, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(600)




def _cut(rec, n_events, label):
    """The real ES sample's first ``n_events`` events, cut at an atomic-batch end."""
    from app.feeds.recording import Recording
    from app.sim.replay import segment_ends

    ends = segment_ends(rec.events)
    cut = int(ends[np.searchsorted(ends, n_events)])
    return Recording(instrument=rec.instrument, events=rec.events[:cut].copy(), source=label)


def test_replay_finished_banner_restart_and_load(qapp, tmp_path):
    from app.core.orders import OrderSpec, OrderType, Side
    from app.feeds.recording import write_recording
    from app.feeds.samples import load_default_sample
    from app.live.pipeline import PipelineConfig
    from app.sim.replay import first_trade_index, start_at
    from app.ui.main_window import MainWindow

    sample = load_default_sample()
    opened = start_at(sample, first_trade_index(sample.events))
    first = _cut(opened, 6000, "ES sample, first 6,000 events from the open")
    other_rec = _cut(opened, 3000, "ES sample, first 3,000 events")
    other = write_recording(tmp_path / "other.mrec", other_rec)
    out: dict = {}

    def finished_notices(w):
        return sum(1 for _lvl, t in w.problems.entries if t.startswith("replay finished"))

    async def main():
        w = MainWindow(PipelineConfig(embedded=True, speed=0.0, recording=first), prefs=None)
        w.show()
        await w.start()
        out["finished"] = await wait_until(lambda: "Replay finished" in w.replay_banner.text, 300)
        out["buttons"] = (w.replay_banner.restart_button.isVisible(), w.replay_banner.load_button.isVisible())
        out["trading"] = w.trading is not None
        if not out["trading"]:
            out["trading_error"] = w.trading_error
            await close_window(w)
            return
        session = w.trading.session
        broker = session.broker
        eng = broker.engine
        sym = w.pipeline.instrument.symbol
        # a paper position and a working stop, as a trader would hold them at the end
        assert await wait_until(lambda: eng.books[sym].best_ask() is not None and sym in eng.last_trade, 30)
        last = eng.last_trade[sym]
        buy = eng.submit(OrderSpec(sym, Side.BUY, 1, OrderType.MARKET, client_order_id="T-BUY"))
        stop = eng.submit(OrderSpec(sym, Side.SELL, 1, OrderType.STOP, price=last - 40, client_order_id="T-STOP"))
        out["held"] = (eng.position(sym).qty, buy.status.name, stop.status.name)
        out["last"] = last
        # Restart: a new session, then the replay ends again
        w.replay_banner.restart_button.click()
        out["restarted"] = await wait_until(lambda: finished_notices(w) == 2, 120)
        out["banner_again"] = "Replay finished" in w.replay_banner.text
        out["after"] = (eng.position(sym).qty, stop.status.name, stop.info, len(eng.open_orders(sym)))
        closing = [o for o in eng.orders.values() if o.client_order_id == "replay-restart"]
        out["closing"] = [(o.status.name, o.side.name, o.filled_qty, o.avg_fill_price) for o in closing]
        j = session.journal
        out["journal_events"] = [r["kind"] for r in j.query("SELECT kind FROM events WHERE kind='replay_restarted'")]
        out["journal_orders"] = [(r["client_order_id"], r["info"]) for r in j.query(
            "SELECT client_order_id, info FROM order_updates WHERE info LIKE '%replay restarted%'")]
        # Load: another recording, replayed to its end
        old = w.pipeline
        w.load_recording(str(other))
        out["loaded"] = await wait_until(lambda: w.pipeline is not old and w.pipeline.started
                                    and "Replay finished" in w.replay_banner.text, 300)
        out["loaded_events"] = int(sum(len(s.clock.events) for s in w.pipeline.source.replay.server.symbols.values()))
        await close_window(w)

    run_on_qt(qapp, main)
    assert out["finished"], "the window must say the replay finished"
    assert out["buttons"] == (True, True)
    assert out["trading"], out.get("trading_error")
    assert out["held"] == (1, "FILLED", "OPEN")
    assert out["restarted"] and out["banner_again"]
    qty, stop_status, stop_info, n_open = out["after"]
    assert qty == 0 and stop_status == "CANCELED" and stop_info == "replay restarted" and n_open == 0
    assert out["closing"] == [("FILLED", "SELL", 1, out["last"])]  # closed at the last price before the restart
    assert out["journal_events"] == ["replay_restarted"]
    assert {cid for cid, _i in out["journal_orders"]} >= {"T-STOP", "replay-restart"}
    assert out["loaded"]
    assert out["loaded_events"] == len(other_rec.events)  # it starts at its opening trade already
