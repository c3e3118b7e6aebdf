"""A paused replay's snapshots carry the replay's market time, never the wall clock."""

import asyncio

import numpy as np

from app.core.clock import ManualClock
from app.dtc.client import DTCClient
from app.sim.server import DTCServer
from app.feeds.samples import load_default_sample


def test_paused_start_keeps_events_in_the_recordings_time():
    rec = load_default_sample()
    # both ends run on this clock (the client's hold of untimed events, the server's session
    # deadlines); its wall time (2024-01-02) lies outside the recording (2023-12-25), so an
    # event stamped with it would show
    clock = ManualClock()

    async def main():
        srv = DTCServer(rec, port=0, speed=0.0, paused=True, loop_replay=False, clock=clock)
        await srv.start()
        # a short hold: untimed snapshot events would be stamped with the wall clock after it
        c = DTCClient("127.0.0.1", srv.port, depth_float=False, untimed_hold_s=0.2, reconnect=False, clock=clock)
        got = []
        try:
            await c.connect()
            await c.subscribe_market(rec.instrument.symbol, depth=True, on_events=lambda a: got.append(a.copy()))
            await c.trade_accounts()  # its answer comes after everything the paused server sent so far
            clock.advance(0.6)  # longer than the hold, still paused: the client releases what it holds now
            srv.resume()
            await srv.wait_replay_done(timeout=60)
            for _ in range(3):  # answers come after every byte sent before them
                await c.trade_accounts()
        finally:
            await c.close()
            await srv.stop()
        return np.concatenate(got)

    ev = asyncio.run(main())
    assert len(ev) > 60_000
    assert ev["ts"].min() >= rec.start_ns
    assert ev["ts"].max() <= rec.end_ns
