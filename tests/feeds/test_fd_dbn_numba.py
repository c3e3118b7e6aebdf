"""The numba MBO path (app.feeds.dbn_kernels) equals its Python twin event for event.

On the real files (the shipped ES hour, the same hour in ../shared, the ESM4 seconds with a
book clear) and on random record streams that force every branch: table growth, backward-shift
deletion, duplicate adds, unknown cancels, modifies of unknown orders, no-price records,
snapshots, several instruments.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import EVENT_DTYPE
from app.feeds import dbn
from app.feeds.dbn_kernels import WORDS_PER_RECORD, mbo_events_nb
from app.feeds.dbn_kernels_ref import mbo_events_py, mbo_fields

ESM4 = "databento_cme/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
ESH4 = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def _same_events(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == EVENT_DTYPE
    assert len(a) == len(b)
    for name in EVENT_DTYPE.names:
        bad = np.flatnonzero(a[name] != b[name])
        assert not len(bad), f"field {name} differs first at event {bad[0]}: {a[bad[0]]} vs {b[bad[0]]}"


def _both(path):
    fast = dbn.read_dbn_mbo(path)
    slow = dbn.read_dbn_mbo(path, use_numba=False)
    return fast, slow


def test_shipped_es_hour_numba_equals_python(repo_root):
    fast, slow = _both(repo_root / "resources" / "samples" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    _same_events(fast.events, slow.events)
    assert fast.extra == slow.extra
    st = fast.extra["dbn"]
    assert st["records"] == 68792 and st["events"] == 65045
    assert st["actions"] == {"A": 29216, "C": 17999, "M": 12233, "F": 6371, "T": 2973}
    assert st["resting_orders_at_end"] == 11217


def test_shared_es_hour_numba_equals_python(shared_data):
    fast, slow = _both(shared_data / ESH4)
    _same_events(fast.events, slow.events)
    assert fast.extra == slow.extra


def test_esm4_seconds_numba_equals_python(shared_data):
    fast, slow = _both(shared_data / ESM4)
    _same_events(fast.events, slow.events)
    assert fast.extra == slow.extra
    assert fast.extra["dbn"]["actions"]["R"] == 1
    assert fast.extra["dbn"]["records"] == 13796


def test_mbo_to_events_numba_equals_python_on_records(shared_data):
    _meta, recs = dbn.mbo_records(shared_data / ESM4)
    s1, s2 = {}, {}
    _same_events(dbn.mbo_to_events(recs, stats=s1), dbn.mbo_to_events(recs, stats=s2, use_numba=False))
    assert s1 == s2


def test_word_fields_match_the_structured_view(shared_data):
    _meta, recs = dbn.mbo_records(shared_data / ESH4)
    f = mbo_fields(recs.view(np.uint64))
    assert np.array_equal(f["order_id"], recs["order_id"])
    assert np.array_equal(f["price"], recs["price"])
    assert np.array_equal(f["size"], recs["size"])
    assert np.array_equal(f["flags"], recs["flags"])
    assert np.array_equal(f["ts_recv"], recs["ts_recv"].astype(np.int64))
    assert bytes(f["action"].astype(np.uint8)) == recs["action"].tobytes()
    assert bytes(f["side"].astype(np.uint8)) == recs["side"].tobytes()
    assert np.array_equal(f["instrument_id"], recs["instrument_id"])


def test_mbo_to_events_rejects_other_dtypes():
    with pytest.raises(TypeError, match="MBO_DTYPE"):
        dbn.mbo_to_events(np.zeros(3, EVENT_DTYPE))


def _random_stream(seed: int, n: int, n_orders: int, instruments=(7,)) -> np.ndarray:
    """MBO records with every action, side and odd case mixed in (prices near 4000.00)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, dbn.MBO_DTYPE)
    r["length"] = dbn.MBO_DTYPE.itemsize // 4
    r["rtype"] = dbn.RTYPE_MBO
    r["instrument_id"] = rng.choice(instruments, n)
    r["order_id"] = rng.integers(1, n_orders, n).astype(np.uint64) * np.uint64(0x1000193)
    r["price"] = (16_000 + rng.integers(-40, 40, n)) * 250_000_000
    r["price"][rng.random(n) < 0.01] = dbn.UNDEF_PRICE
    r["price"][rng.random(n) < 0.005] += 1  # off the tick grid
    r["size"] = rng.integers(0, 30, n)
    r["action"] = rng.choice(np.array([b"A", b"A", b"A", b"C", b"C", b"M", b"M", b"T", b"F", b"N"]), n)
    r["action"][rng.random(n) < 0.0005] = b"R"
    r["side"] = rng.choice(np.array([b"B", b"A", b"N"]), n, p=[0.47, 0.47, 0.06])
    fl = np.where(rng.random(n) < 0.3, dbn.F_LAST, 0)
    fl[: n // 20] |= dbn.F_SNAPSHOT  # a snapshot at the start
    r["flags"] = fl
    r["ts_recv"] = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(-5, 100, n))  # not monotonic
    return r


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_streams_numba_equals_python(seed):
    recs = _random_stream(seed, 40_000, 6_000)  # > 4096 live orders: the order table grows
    w = recs.view(np.uint64)
    e1, c1 = mbo_events_nb(w, -1, 2.5e8)
    e2, c2 = mbo_events_py(w, -1, 2.5e8)
    _same_events(e1, e2)
    assert c1.tolist() == c2.tolist()
    assert c1[1] > 0 and c1[2] >= 0 and c1[3] > 0 and c1[4] > 0  # the odd cases did occur


def test_snapshot_to_the_end_and_instrument_filter():
    recs = _random_stream(9, 5_000, 900, instruments=(7, 8))
    recs["flags"] |= dbn.F_SNAPSHOT  # the whole stream is a snapshot: emitted at the end
    w = recs.view(np.uint64)
    for inst in (7, 8):
        e1, c1 = mbo_events_nb(w, inst, 2.5e8)
        e2, c2 = mbo_events_py(w, inst, 2.5e8)
        _same_events(e1, e2)
        assert c1.tolist() == c2.tolist()
        assert c1[0] == np.count_nonzero(recs["instrument_id"] == inst)
        assert len(e1) > 1 and (e1["flags"][-1] & 1)
    mixed = recs[recs["instrument_id"] == 8].view(np.uint64)
    _same_events(mbo_events_nb(w, 8, 2.5e8)[0], mbo_events_nb(mixed, -1, 2.5e8)[0])


def test_empty_input():
    e, c = mbo_events_nb(np.zeros(0, np.uint64), -1, 2.5e8)
    assert len(e) == 0 and c.tolist() == [0] * 6
    assert WORDS_PER_RECORD * 8 == dbn.MBO_DTYPE.itemsize
