"""mia-elite record: from the built-in DTC server (loopback) and from a Sierra Data folder.

No fixed sleeps: the tests wait for what the files show (bounded), and stop the recording when
everything arrived instead of recording for a fixed time."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.core.events import EVENT_DTYPE, KIND_DEPTH, KIND_TRADE


async def until(pred, timeout: float = 30.0) -> bool:
    """Poll ``pred`` every 10 ms on the event loop for at most ``timeout`` s (a bounded wait)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def es(shared_data):
    from app.feeds.dbn import read_dbn_mbo

    return read_dbn_mbo(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def test_record_from_dtc_server(es, tmp_path):
    from app.sim.server import DTCServer
    from app.feeds.depthfile import read_depth_events
    from app.cli.record import record_dtc
    from app.feeds.recording import read_recording
    from app.market.refbook import ReferenceBook

    out = tmp_path / "es.mrec"
    lines = []

    async def main():
        srv = DTCServer(es, port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        stop = asyncio.Event()
        try:
            task = asyncio.ensure_future(record_dtc(f"127.0.0.1:{srv.port}", "ESH4", out, 60.0,
                                                    also=("depth", "scid"), say=lines.append, stop=stop))
            # the recording file appears once the subscription is answered
            assert await until(out.exists), lines
            t0 = time.monotonic()
            srv.resume()
            assert await srv.wait_replay_done(60)
            lines.append(f"replay took {time.monotonic() - t0:.1f} s")
            # the last batches in flight: wait until every trade is in the .scid and the
            # recording stopped growing (bounded)
            want = 56 + 40 * int((es.events["kind"] == KIND_TRADE).sum())
            scid, seen = out.with_suffix(".scid"), []

            def settled() -> bool:  # every trade in the .scid and the recording the same size 3 times
                seen.append(out.stat().st_size)
                return scid.exists() and scid.stat().st_size >= want and len(set(seen[-3:])) == 1 \
                    and len(seen) >= 3

            await until(settled)
            stop.set()
            return await asyncio.wait_for(task, 30)
        finally:
            await srv.stop()

    assert asyncio.run(main()) == 0, lines
    rec = read_recording(out)
    assert rec.instrument.tick_size == 0.25 and rec.instrument.symbol == "ESH4"
    ref = ReferenceBook()
    ref.apply(es.events)
    got = ReferenceBook()
    got.apply(rec.events)
    assert got == ref  # the recorded stream rebuilds the server's final book
    assert (rec.events["kind"] == KIND_TRADE).sum() == (es.events["kind"] == KIND_TRADE).sum()
    d = ReferenceBook()
    d.apply(read_depth_events(out.with_suffix(".depth"), rec.instrument))
    assert d == ref
    assert out.with_suffix(".scid").stat().st_size == 56 + 40 * int((es.events["kind"] == KIND_TRADE).sum())


def test_record_dtc_unreachable(tmp_path):
    from app.cli.record import record_dtc

    lines = []
    code = asyncio.run(record_dtc("127.0.0.1:1", "ESH4", tmp_path / "x.mrec", 1.0, say=lines.append))
    assert code == 2 and "cannot connect" in lines[0]


def test_record_from_sierra_folder(es, tmp_path):
    from app.cli.record import record_sierra
    from app.feeds.depthfile import DepthHeader, depth_records_to_events, events_to_depth_records
    from app.feeds.recording import read_recording
    from app.market.refbook import ReferenceBook
    from app.feeds.scid import ScidHeader, events_to_scid_records, scid_to_events

    inst = es.instrument
    ev = es.events[:8000]
    dep = ev[ev["kind"] == KIND_DEPTH]
    drecs = events_to_depth_records(dep, inst)
    srecs = events_to_scid_records(ev, inst)
    data = tmp_path / "Data"
    (data / "MarketDepthData").mkdir(parents=True)
    dp = data / "MarketDepthData" / "ESH4.2023-12-25.depth"
    sp = data / "ESH4.scid"
    dp.write_bytes(DepthHeader().to_bytes())
    sp.write_bytes(ScidHeader().to_bytes())

    out = tmp_path / "rec.mrec"
    n_expected = len(depth_records_to_events(drecs, inst)) + len(scid_to_events(srecs, inst))
    lines = []

    async def main():
        stop = asyncio.Event()
        task = asyncio.ensure_future(record_sierra(str(data), "ESH4", out, 60.0, tick_size=0.25, tick_value=12.5,
                                                   poll_s=0.02, say=lines.append, stop=stop))
        assert await until(out.exists), lines  # the recording has its header: the follower runs
        empty = out.stat().st_size

        def recorded() -> int:
            return (out.stat().st_size - empty) // EVENT_DTYPE.itemsize

        # the follower reads the .scid from its end (only new trades): write the trades only after a
        # first depth chunk was delivered and a second one too (so the .scid was polled in between)
        step = 997
        with open(dp, "ab") as fd:
            for i in range(0, len(drecs), step):
                fd.write(drecs[i: i + step].tobytes())
                fd.flush()
                if i < 2 * step:
                    before = recorded()
                    assert await until(lambda: recorded() > before), lines
        with open(sp, "ab") as fs:
            fs.write(srecs.tobytes())
        assert await until(lambda: recorded() >= n_expected), (recorded(), n_expected)
        stop.set()
        return await asyncio.wait_for(task, 30)

    code = asyncio.run(main())
    assert code == 0, lines
    rec = read_recording(out)
    ref = ReferenceBook()
    ref.apply(dep)
    got = ReferenceBook()
    got.apply(rec.events)
    assert got == ref
    assert (rec.events["kind"] == KIND_TRADE).sum() == len(srecs)
    assert "depth records %d" % len(drecs) in lines[-1]


def test_record_cli_arguments(tmp_path):
    from app.cli import main

    assert main(["record", "ESH4", "--sierra", str(tmp_path), "--out", str(tmp_path / "a.mrec"), "--seconds", "0.1"]) == 2
    assert main(["record", "ESH4", "--sierra", str(tmp_path), "--tick-size", "0.25", "--also", "xyz",
                 "--out", str(tmp_path / "a.mrec")]) == 2
