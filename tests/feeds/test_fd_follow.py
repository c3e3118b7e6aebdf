"""Live follow: a separate writer process appends .scid and .depth bytes in uneven chunks (half
records included) and rolls to a new day file; the follower delivers every record once, whole and
in order, and its book equals the writer's. No fixed sleeps: the writer pauses until the follower
has polled, the test waits for conditions with a bound, and the hold timer runs on a ManualClock."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import random
import time
import numpy as np
import pytest

from app.feeds.depthfile import (
    DepthHeader,
    depth_records_to_events,
    events_to_depth_records,
    read_depth_events,
)
from app.core.clock import ManualClock
from app.core.events import FLAG_BATCH_END, KIND_DEPTH, KIND_TRADE
from app.feeds.follow import SierraFollower
from app.feeds.scid import ScidHeader, best_bid_ask_at_trades, events_to_scid_records, scid_to_events

SYM = "ESH4"


def writer_main(plan: list, seed: int, conn) -> None:
    """Writer process: ``plan`` = [(path, blob), ...] written in order, each in uneven chunks.

    After about a third of the chunks it tells the test (``conn``) and waits until the follower
    has polled what is in the files (the test answers), so the follower sees half records, split
    headers and unfinished batches at those points whatever the machine's speed.
    """
    rnd = random.Random(seed)
    for path, blob in plan:
        with open(path, "ab") as f:
            i = 0
            while i < len(blob):
                # chunk sizes from 1 byte to ~3 records: many half records and split headers
                k = rnd.choice((1, 7, 13, 23, 24, 40, 41, 57, 64, 100, 333, 1000, 2500))
                f.write(blob[i: i + k])
                f.flush()
                i += k
                if rnd.random() < 0.3:
                    conn.send("written")
                    if not conn.poll(30):  # bounded: a test that died does not leave us hanging
                        raise SystemExit(3)
                    conn.recv()
    conn.send("done")


def until(pred, timeout: float = 20.0) -> bool:
    """Poll ``pred`` every 2 ms for at most ``timeout`` s of real time (a bounded wait)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


async def until_async(pred, timeout: float = 20.0) -> bool:
    """:func:`until` on an event loop."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.002)
    return True


def polled_twice_more(fol):
    """A predicate: true once the follower has begun two more polls (so one whole poll ran)."""
    n = fol.counters["polls"]
    return lambda: fol.counters["polls"] >= n + 2


@pytest.fixture(scope="module")
def es(shared_data):
    from app.feeds.dbn import read_dbn_mbo

    return read_dbn_mbo(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def _split_at_batch(depth_ev, frac):
    ends = np.flatnonzero(depth_ev["flags"] & FLAG_BATCH_END)
    return int(ends[int(len(ends) * frac)]) + 1


def test_writer_process_uneven_chunks_and_day_roll(es, tmp_path):
    from app.market.refbook import ReferenceBook

    inst = es.instrument
    ev = es.events[:12000]
    dep = ev[ev["kind"] == KIND_DEPTH]
    cut = _split_at_batch(dep, 0.6)
    # day 1 file: the first 60 % of the batches; day 2 file: a snapshot of the book at the cut
    # (Sierra starts each day file with one) and the rest
    ref = ReferenceBook()
    ref.apply(dep[:cut])
    from app.core.events import FLAG_SNAPSHOT, OP_CLEAR, OP_SET, SIDE_ASK, SIDE_BID, empty

    lv = [(SIDE_BID, p, s) for p, s in ref.levels(SIDE_BID)] + [(SIDE_ASK, p, s) for p, s in ref.levels(SIDE_ASK)]
    snap = empty(1 + len(lv))
    snap["ts"] = dep["ts"][cut]
    snap["kind"] = KIND_DEPTH
    snap["op"][0] = OP_CLEAR
    snap["op"][1:] = OP_SET
    snap["side"][1:] = [x[0] for x in lv]
    snap["price"][1:] = [x[1] for x in lv]
    snap["size"][1:] = [x[2] for x in lv]
    snap["flags"] = FLAG_SNAPSHOT
    snap["flags"][-1] |= FLAG_BATCH_END
    day1 = events_to_depth_records(dep[:cut], inst)
    day2 = events_to_depth_records(np.concatenate((snap, dep[cut:])), inst)
    bid, ask = best_bid_ask_at_trades(ev)
    srecs = events_to_scid_records(ev, inst, bid=bid, ask=ask)
    assert len(srecs) > 200 and len(day1) > 5000 and len(day2) > 2000

    data = tmp_path / "Data"
    ddir = data / "MarketDepthData"
    ddir.mkdir(parents=True)
    p1 = ddir / f"{SYM}.2023-12-25.depth"
    p2 = ddir / f"{SYM}.2023-12-26.depth"
    ps = data / f"{SYM}.scid"
    half = len(srecs) // 2
    s_head = ScidHeader().to_bytes()
    d_head = DepthHeader().to_bytes()
    plan = [
        (str(ps), s_head + srecs[:half].tobytes()),
        (str(p1), d_head + day1.tobytes()),
        (str(ps), srecs[half:].tobytes()),
        (str(p2), d_head + day2.tobytes()),
    ]
    got: list[np.ndarray] = []
    fol = SierraFollower(data, SYM, inst, lambda b: got.append(b.copy()), poll_s=0.002,
                         rollover_check_s=0.02, batch_hold_s=30.0)
    fol.start()
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=writer_main, args=(plan, 7, there), daemon=True)
    proc.start()
    pauses = 0
    while True:  # answer each pause of the writer once the follower has polled the files
        assert here.poll(60), "writer process silent for 60 s"
        if here.recv() == "done":
            break
        pauses += 1
        assert until(polled_twice_more(fol)), fol.counters
        here.send("go")
    proc.join(60)
    assert proc.exitcode == 0, "writer process failed or timed out"
    assert pauses > 100
    exp_depth = np.concatenate((depth_records_to_events(day1, inst), depth_records_to_events(day2, inst)))
    exp_scid = scid_to_events(srecs, inst)
    assert until(lambda: sum(len(b) for b in got) >= len(exp_depth) + len(exp_scid)), fol.counters
    assert until(polled_twice_more(fol))  # a whole poll more: nothing is delivered twice
    fol.stop()

    allev = np.concatenate(got)
    d_got = allev[allev["kind"] == KIND_DEPTH]
    s_got = allev[allev["kind"] != KIND_DEPTH]
    # every record once, whole, in order
    assert len(d_got) == len(exp_depth), (len(d_got), len(exp_depth), fol.counters)
    bad = np.flatnonzero(d_got != exp_depth)
    assert not len(bad), (bad[:5], d_got[bad[:3]], exp_depth[bad[:3]])
    assert np.array_equal(s_got, exp_scid)
    assert (s_got["kind"] == KIND_TRADE).sum() == len(srecs)
    # every delivered depth array ends at a batch end
    for b in got:
        if b["kind"][0] == KIND_DEPTH:
            assert b["flags"][-1] & FLAG_BATCH_END
    c = fol.counters
    assert c["rollovers"] == 1 and c["restarts"] == 0 and c["errors"] == 0
    assert c["partial_waits"] > 0  # half records were seen and waited for
    assert c["depth_records"] == len(day1) + len(day2) and c["scid_records"] == len(srecs)
    # the follower's book == the writer's book (the source events)
    writer_book = ReferenceBook()
    writer_book.apply(dep)
    app_book = ReferenceBook()
    app_book.apply(d_got)
    assert app_book == writer_book and len(app_book) > 100


def test_truncate_rewrite_restarts_from_header(es, tmp_path, caplog):
    from app.market.refbook import ReferenceBook

    inst = es.instrument
    dep = es.events[es.events["kind"] == KIND_DEPTH][:3000]
    recs = events_to_depth_records(dep, inst)
    ddir = tmp_path / "MarketDepthData"
    ddir.mkdir()
    p = ddir / f"{SYM}.2023-12-25.depth"
    p.write_bytes(DepthHeader().to_bytes() + recs.tobytes())
    got = []
    fol = SierraFollower(tmp_path, SYM, inst, lambda b: got.append(b.copy()), scid=False)
    assert fol.poll_once() == len(dep)
    # Sierra rewrites the file shorter (the first third of the batches) -> restart from the header
    ends = np.flatnonzero(dep["flags"] & FLAG_BATCH_END)
    cut = int(ends[len(ends) // 3]) + 1
    with caplog.at_level(logging.WARNING, logger="app.feeds.follow"):
        p.write_bytes(DepthHeader().to_bytes() + recs[:cut].tobytes())
        fol.poll_once()
    assert fol.counters["restarts"] == 1
    assert any("restarting from its header" in r.message for r in caplog.records)
    again = np.concatenate(got[1:])
    assert np.array_equal(again, read_depth_events(p, inst))
    b1, b2 = ReferenceBook(), ReferenceBook()
    b1.apply(np.concatenate(got))
    b2.apply(dep[:cut])
    assert b1 == b2
    # replaced by a new file of the same size with other content (a new file id) -> restart too
    tmp = p.with_suffix(".tmp")
    tmp.write_bytes(DepthHeader().to_bytes() + recs[:cut].tobytes())
    os.replace(tmp, p)
    fol.poll_once()
    assert fol.counters["restarts"] == 2
    fol.close()


def test_partial_header_and_batch_hold(es, tmp_path):
    inst = es.instrument
    dep = es.events[es.events["kind"] == KIND_DEPTH][:2000]
    recs = events_to_depth_records(dep, inst)
    ddir = tmp_path / "MarketDepthData"
    ddir.mkdir()
    p = ddir / f"{SYM}.2023-12-25.depth"
    blob = DepthHeader().to_bytes() + recs.tobytes()
    got = []
    clock = ManualClock()
    fol = SierraFollower(tmp_path, SYM, inst, lambda b: got.append(b.copy()), scid=False, batch_hold_s=0.05,
                         clock=clock)
    with open(p, "wb") as f:
        f.write(blob[:30])  # half a header
        f.flush()
        assert fol.poll_once() == 0
        # header + records up to the middle of an unfinished batch
        ends = np.flatnonzero(recs["flags"] & 1)
        k = int(np.flatnonzero(np.diff(ends) >= 2)[1])  # a batch of 2+ records follows ends[k]
        mid = int(ends[k]) + 1 + 1  # one record into that batch
        f.write(blob[30: 64 + mid * 24 + 5])
        f.flush()
        n = fol.poll_once()
        assert n == int(ends[k]) + 1  # the unfinished batch is held back
        clock.advance(0.05)
        assert fol.poll_once() == 0  # held exactly batch_hold_s: still held
        clock.advance(ns=1)
        fol.poll_once()  # held longer than batch_hold_s: delivered anyway
        assert sum(len(b) for b in got) == mid
    fol.close()


def test_scid_starts_at_end_and_asyncio_run(es, tmp_path):
    inst = es.instrument
    ev = es.events[:6000]
    srecs = events_to_scid_records(ev, inst)
    p = tmp_path / f"{SYM}.scid"
    p.write_bytes(ScidHeader().to_bytes() + srecs[:50].tobytes())
    got = []

    async def main():
        fol = SierraFollower(tmp_path, SYM, inst, lambda b: got.append(b.copy()), depth=False, poll_s=0.01,
                             scid_history=5, quotes=False)
        task = asyncio.ensure_future(fol.run())
        assert await until_async(polled_twice_more(fol))  # the first poll placed it at the end
        with open(p, "ab") as f:
            f.write(srecs[50:60].tobytes() + srecs[60].tobytes()[:17])
        assert await until_async(lambda: sum(len(b) for b in got) >= 15 and fol.counters["partial_waits"] > 0)
        assert await until_async(polled_twice_more(fol))  # a whole poll more: nothing else comes
        fol.stop()
        await asyncio.wait_for(task, 2)
        return fol

    fol = asyncio.run(main())
    tr = np.concatenate(got)
    # 5 history records + 10 new whole ones; the partial 61st waits
    assert np.array_equal(tr, scid_to_events(srecs[45:60], inst, quotes=False))
    assert fol.counters["partial_waits"] > 0


def test_scid_rewrite_does_not_repeat_trades(es, tmp_path):
    """Sierra rewrites a .scid (for example after a data download): the follower restarts from the
    header but positions itself after the last delivered DateTime (binary search)."""
    inst = es.instrument
    srecs = events_to_scid_records(es.events[:20000], inst)
    assert len(srecs) > 300
    p = tmp_path / f"{SYM}.scid"
    p.write_bytes(ScidHeader().to_bytes() + srecs[:200].tobytes())
    got = []
    fol = SierraFollower(tmp_path, SYM, inst, lambda b: got.append(b.copy()), depth=False, quotes=False,
                         scid_history=200)
    fol.poll_once()
    assert sum(len(b) for b in got) == 200
    # rewritten as a new file: 30 older records dropped from the front, 50 new records at the end
    tmp = p.with_suffix(".new")
    tmp.write_bytes(ScidHeader().to_bytes() + srecs[30:250].tobytes())
    os.replace(tmp, p)
    fol.poll_once()
    assert fol.counters["restarts"] == 1
    tr = np.concatenate(got)
    assert np.array_equal(tr, scid_to_events(srecs[:250], inst, quotes=False))
    # truncated below the read position, then grown again: again no repeats
    p.write_bytes(ScidHeader().to_bytes() + srecs[30:60].tobytes())
    fol.poll_once()
    with open(p, "ab") as f:
        f.write(srecs[60:260].tobytes())
    fol.poll_once()
    tr = np.concatenate(got)
    assert fol.counters["restarts"] == 2
    assert np.array_equal(tr, scid_to_events(srecs[:260], inst, quotes=False))
    fol.close()
