"""A paused replay's snapshots carry the replay's market time, never the wall clock."""

import asyncio

import numpy as np

from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.feeds.samples import load_default_sample


def test_paused_start_keeps_events_in_the_recordings_time():
    rec = load_default_sample()

    async def main():
        srv = DTCServer(rec, port=0, speed=0.0, paused=True, loop_replay=False)
        await srv.start()
        # a short hold: untimed snapshot events would be stamped with the wall clock after it
        c = DTCClient("127.0.0.1", srv.port, depth_float=False, untimed_hold_s=0.2, reconnect=False)
        got = []
        try:
            await c.connect()
            await c.subscribe_market(rec.instrument.symbol, depth=True, on_events=lambda a: got.append(a.copy()))
            await asyncio.sleep(0.6)  # longer than the hold, still paused
            srv.resume()
            await srv.wait_replay_done(timeout=60)
            await asyncio.sleep(0.3)
        finally:
            await c.close()
            await srv.stop()
        return np.concatenate(got)

    ev = asyncio.run(main())
    assert len(ev) > 60_000
    assert ev["ts"].min() >= rec.start_ns
    assert ev["ts"].max() <= rec.end_ns
