"""The built-in server's best bid/ask messages follow the book's top kept per batch
(:class:`app.market.refbook.BookTop`), on the real BTCUSDT capture and the ES hour: after every
batch, the top the server kept equals a full scan of its engine's book."""

from __future__ import annotations

import pytest

from app.cli.analyze import load_any
from app.core.events import chunks
from app.feeds.samples import load_default_sample
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("which", ["es", "btc"])
def test_the_servers_kept_top_equals_a_scan_of_its_book_after_every_batch(which, shared_data):
    rec = load_default_sample() if which == "es" else load_any(str(shared_data / "crypto/btcusdt_20240808.gz"))
    srv = DTCServer(rec, port=0, speed=0, paused=True)
    sym = next(iter(srv.symbols))
    s = srv.symbols[sym]
    ev = s.events if len(s.events) else rec.events
    ev = ev[:150_000]
    book = srv.engine.books[sym]
    checked = 0
    for c in chunks(ev, 97):
        srv.publish(sym, c)
        scan = (book.best_bid(), book.best_ask())
        assert s.book_bbo[0] == scan[0] and s.book_bbo[2] == scan[1], checked
        checked += 1
    assert checked > 500 and s.book_bbo[0] is not None
