"""Optional peers benchmark (``mia-elite bench peers``): the MBO path beside the libraries a user
would otherwise pick, on the same file in the same run.

It installs nothing. Each peer runs only when it is importable; otherwise its figure says
``skipped`` with the reason. To measure the peers, make a separate environment (never the app's
own), for example::

    python3 -m venv /tmp/venv-peers
    /tmp/venv-peers/bin/pip install nautilus_trader databento-dbn numpy numba msgspec zstandard platformdirs
    PYTHONPATH=<checkout> /tmp/venv-peers/bin/python -m app.bench.peers [--quick] [file.mbo.dbn.zst]

Implementations, each from the ``.dbn.zst`` file on disk to a full-depth book (every price level
with its size), timed as the best of alternating rounds (one round runs each once, in turn):

* ``mia``: :func:`app.feeds.dbn.read_dbn_mbo` (zstd, then one numba pass from the DBN bytes to
  price-level events: the order table and the levels of :mod:`app.feeds.dbn_kernels`);
* ``mia_python``: the same with ``use_numba=False`` (the Python twin; the same-run baseline);
* ``mia_model``: ``mia`` then :class:`app.market.model.MarketModel` ``apply`` of the events (the
  user path: book grid, heatmap ring, bars, volume profile);
* ``nautilus``: nautilus_trader's ``DatabentoDataLoader.from_dbn_file`` (pyo3 deltas) applied to a
  pyo3 ``OrderBook`` of ``BookType.L3_MBO``, one ``apply_delta`` per delta;
* ``dbn_dict``: ``databento_dbn.DBNDecoder`` records into a plain dict order book (orders by id,
  sizes by price per side; Databento's order-tracking rules).

Every implementation's final book is checked against ``mia``'s: best bid, best ask and the
number of levels on each side must agree (the figure records ``same_book``).

Figures: ``peers.mbo_decode_book`` (records/s of ``mia``, baseline ``nautilus``: ratio >= 1 is the
issue's goal) and one ``peers.<name>`` line per other implementation.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np

#: Price units (1e-9) per ES tick (0.25 index points).
_ES_SCALE = 250_000_000


def _mia(path):
    from app.feeds.dbn import read_dbn_mbo

    rec = read_dbn_mbo(path)
    return _book_of_events(rec.events)


def _mia_python(path):
    from app.feeds.dbn import read_dbn_mbo

    rec = read_dbn_mbo(path, use_numba=False)
    return _book_of_events(rec.events)


def _mia_model(path):
    from app.feeds.dbn import read_dbn_mbo
    from app.market.model import MarketModel

    rec = read_dbn_mbo(path)
    m = MarketModel(rec.instrument)
    m.apply(rec.events)
    return m.best_bid, m.best_ask, None, None


def _book_of_events(ev):
    """(best bid, best ask, bid levels, ask levels) from price-level events (not timed apart:
    the last event of each level decides it; a tiny NumPy pass)."""
    from app.core.events import KIND_DEPTH, OP_CLEAR, OP_SET, SIDE_ASK, SIDE_BID

    d = ev[ev["kind"] == KIND_DEPTH]
    clears = np.flatnonzero(d["op"] == OP_CLEAR)
    if len(clears):
        d = d[clears[-1] + 1:]
    key = d["price"] * 4 + d["side"]
    _u, first = np.unique(key[::-1], return_index=True)
    last = d[len(d) - 1 - first]
    live = last[last["op"] == OP_SET]
    bids = live["price"][live["side"] == SIDE_BID]
    asks = live["price"][live["side"] == SIDE_ASK]
    return int(bids.max()), int(asks.min()), len(bids), len(asks)


def _nautilus_available() -> str | None:
    try:
        import nautilus_trader  # noqa: F401
        from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip, and say why
        return f"nautilus_trader not importable ({type(exc).__name__}: {exc})"
    return None


def _nautilus(path):
    from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader
    from nautilus_trader.core import nautilus_pyo3 as pyo3

    deltas = DatabentoDataLoader().from_dbn_file(str(path), as_legacy_cython=False)
    book = pyo3.OrderBook(deltas[0].instrument_id, pyo3.BookType.L3_MBO)
    for d in deltas:
        book.apply_delta(d)
    bb, ba = book.best_bid_price(), book.best_ask_price()
    return (round(float(bb) * 4), round(float(ba) * 4), len(book.bids()), len(book.asks()))


def _dbn_available() -> str | None:
    try:
        import databento_dbn  # noqa: F401
        import zstandard  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"databento_dbn/zstandard not importable ({type(exc).__name__}: {exc})"
    return None


def _dbn_dict(path):
    import databento_dbn
    import zstandard

    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    dec = databento_dbn.DBNDecoder()
    dec.write(data)
    recs = dec.decode()[1:]
    orders: dict[int, tuple] = {}
    lv = {"B": {}, "A": {}}
    for r in recs:
        a = r.action
        if a == "A":
            s, p, q = r.side, r.price, r.size
            if s in lv:
                orders[r.order_id] = (s, p, q)
                lvl = lv[s]
                lvl[p] = lvl.get(p, 0) + q
        elif a == "C":
            o = orders.get(r.order_id)
            if o is not None:
                s, p, q0 = o
                q = min(r.size, q0)
                rest = q0 - q
                if rest > 0:
                    orders[r.order_id] = (s, p, rest)
                else:
                    del orders[r.order_id]
                lvl = lv[s]
                left = lvl[p] - q
                if left > 0:
                    lvl[p] = left
                else:
                    del lvl[p]
        elif a == "M":
            o = orders.pop(r.order_id, None)
            if o is not None:
                s, p, q0 = o
                lvl = lv[s]
                left = lvl[p] - q0
                if left > 0:
                    lvl[p] = left
                else:
                    del lvl[p]
            s, p, q = r.side, r.price, r.size
            if q > 0 and s in lv:
                orders[r.order_id] = (s, p, q)
                lvl = lv[s]
                lvl[p] = lvl.get(p, 0) + q
        elif a == "R":
            orders.clear()
            lv["B"].clear()
            lv["A"].clear()
    b, a_ = lv["B"], lv["A"]
    return max(b) // _ES_SCALE, min(a_) // _ES_SCALE, len(b), len(a_)


def _records_in(path) -> int:
    from app.feeds.dbn import mbo_records

    return len(mbo_records(path)[1])


def run_peers(path, rounds: int):
    """Time every available implementation on ``path`` (alternating rounds); yield figures.

    Parameters
    ----------
    path : path-like
        A DBN MBO file of one instrument (``.dbn`` or ``.dbn.zst``); ES tick size assumed for
        the peers' book check (0.25).
    rounds : int
        Alternating rounds; each implementation's figure is its best round.

    Yields
    ------
    dict
        One figure per implementation (see the module docstring).
    """
    path = Path(path)
    n = _records_in(path)
    impls = {"mia": _mia, "mia_python": _mia_python, "mia_model": _mia_model}
    skipped = {}
    for name, fn, why in (("nautilus", _nautilus, _nautilus_available()), ("dbn_dict", _dbn_dict, _dbn_available())):
        if why:
            skipped[name] = why
        else:
            impls[name] = fn
    books, best = {}, {k: float("inf") for k in impls}
    for fn in impls.values():  # warm: compile, caches, imports
        fn(path)
    for _ in range(rounds):
        for name, fn in impls.items():
            gc.collect()
            t0 = time.perf_counter()
            books[name] = fn(path)
            best[name] = min(best[name], time.perf_counter() - t0)
    ref = books["mia"]
    rate = {k: n / v for k, v in best.items()}

    def same(b):
        return b[:2] == ref[:2] and (b[2] is None or b[2:] == ref[2:])

    peer = rate.get("nautilus")
    yield {"name": "peers.mbo_decode_book", "value": round(rate["mia"]), "unit": "records/s",
           "baseline": round(peer) if peer else None, "ratio": round(rate["mia"] / peer, 2) if peer else None,
           "target": ">= nautilus (ratio >= 1)", "records": n, "file": path.name,
           "baseline_kind": "nautilus_trader pyo3 L3_MBO OrderBook" if peer else skipped["nautilus"],
           "book": {"best_bid": ref[0], "best_ask": ref[1], "bid_levels": ref[2], "ask_levels": ref[3]}}
    for name in impls:
        if name == "mia":
            continue
        yield {"name": f"peers.{name}", "value": round(rate[name]), "unit": "records/s",
               "baseline": round(rate["mia"]), "ratio": round(rate[name] / rate["mia"], 2), "target": None,
               "records": n, "seconds": round(best[name], 4), "same_book": same(books[name])}
    for name, why in skipped.items():
        yield {"name": f"peers.{name}", "skipped": why}


def _default_path():
    from app.feeds.samples import default_sample_path

    return default_sample_path()


def bench_peers(args):
    yield from run_peers(_default_path(), 3 if args.quick else 7)


BENCHMARKS = {"peers": bench_peers}


if __name__ == "__main__":  # run in a separate environment that holds the peers
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="DBN MBO file (default: the shipped ES hour)")
    ap.add_argument("--quick", action="store_true")
    ns = ap.parse_args()
    for fig in run_peers(ns.file or _default_path(), 3 if ns.quick else 7):
        print(json.dumps(fig), flush=True)
