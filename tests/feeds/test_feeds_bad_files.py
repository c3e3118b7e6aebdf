"""Issue 13 items 19 and 20: importers that never guess.

Item 19: a Binance capture tells its symbol, market and tick size itself (the real ETHUSDT
capture; spot and COIN-M captures in the same format are made here from its lines by the
differences of their documented payloads); when it cannot, the command says so and asks for
``--symbol`` / ``--tick-size``.

Item 20: bad files give one line naming the file and the problem and a non-zero exit, unless the
data used is complete; an incomplete tail gives a warning with the counts used and skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from app.core.events import KIND_TRADE, SIDE_ASK, SIDE_BID
from app.feeds.binance import BinanceError, read_binance_gz
from app.market.refbook import ReferenceBook

ETH = "crypto/ethusdt_20240808.gz"


def _cli(repo_root, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=repo_root, env=env)


def _one_line_error(proc, path) -> str:
    """The command failed with exactly one line on stderr that names ``path``; returns it."""
    assert proc.returncode != 0, proc.stdout[-500:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert str(path) in lines[0] or os.path.basename(str(path)) in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def eth_lines(shared_data):
    return gzip.decompress((shared_data / ETH).read_bytes()).decode().splitlines()


# ---------------------------------------------------------------------------------- item 19
def test_ethusdt_symbol_market_and_tick_come_from_the_stream(shared_data):
    rec = read_binance_gz(shared_data / ETH)
    inst, st = rec.instrument, rec.extra["stats"]
    assert (inst.symbol, inst.tick_size, inst.exchange) == ("ETHUSDT", 0.01, "BINANCE-USDM")
    assert rec.extra["market"] == "USD-M" and rec.extra["tick_from"] == "stream"
    # every stream line used (data README: 1 snapshot, 6,586 diffs, 14,076 trades), none skipped
    assert (st["snapshots"], st["diffs"], st["trades"]) == (1, 6586, 14076)
    assert st["other_symbols"] == 0 and st["bad_lines"] == 0 and st["sequence_gaps"] == 0
    assert st["diffs_applied"] > 6500
    ev = rec.events
    tr = ev[ev["kind"] == KIND_TRADE]
    # figures checked independently with gzip + json (data README)
    assert round(float(tr["size"].sum()), 3) == 9164.948
    delta = tr["size"][tr["side"] == SIDE_ASK].sum() - tr["size"][tr["side"] == SIDE_BID].sum()
    assert round(float(delta), 2) == 756.18
    book = ReferenceBook()
    book.apply(ev)
    bb, ba = book.best_bid(), book.best_ask()
    assert bb is not None and ba is not None and bb < ba  # a live book, not the locked snapshot
    assert 2600 < bb * 0.01 < 2700


def test_spot_and_coinm_captures_are_told_apart(eth_lines, tmp_path):
    """The same real lines reshaped as Binance's spot and COIN-M streams publish them."""
    spot, coinm = [], []
    prev_u = None
    for line in eth_lines:
        ts, js = line.split(" ", 1)
        m = json.loads(js)
        s = json.loads(js)
        if "lastUpdateId" in m:
            for k in ("E", "T"):
                s.pop(k, None)
        else:
            d = s["data"]
            e = d.get("e")
            if e == "depthUpdate":
                d.pop("pu", None)
                d.pop("T", None)
                if prev_u is not None:
                    d["U"] = prev_u + 1  # spot: each diff starts where the last ended
                prev_u = d["u"]
            elif e == "bookTicker":
                for k in ("e", "E", "T"):
                    d.pop(k, None)
            elif e == "trade":
                d.pop("X", None)
                d["M"] = True
        spot.append(f"{ts} {json.dumps(s)}")
        c = json.loads(js)
        if "data" in c:
            c["stream"] = c["stream"].replace("ethusdt", "ethusd_perp")
            c["data"]["s"] = "ETHUSD_PERP"
            if c["data"].get("e") == "depthUpdate":
                c["data"]["ps"] = "ETHUSD"
        coinm.append(f"{ts} {json.dumps(c)}")
    p_spot = tmp_path / "ethusdt_spot.gz"
    p_spot.write_bytes(gzip.compress("\n".join(spot).encode()))
    p_coin = tmp_path / "ethusd_perp.gz"
    p_coin.write_bytes(gzip.compress("\n".join(coinm).encode()))
    r = read_binance_gz(p_spot)
    assert (r.instrument.symbol, r.extra["market"], r.instrument.exchange, r.instrument.tick_size) == \
        ("ETHUSDT", "spot", "BINANCE", 0.01)
    assert r.extra["stats"]["sequence_gaps"] == 0
    c = read_binance_gz(p_coin)
    assert (c.instrument.symbol, c.extra["market"], c.instrument.exchange) == ("ETHUSD_PERP", "COIN-M", "BINANCE-COINM")
    assert c.instrument.tick_value == 0.0  # inverse contracts: no constant USD per tick, not guessed


def test_what_the_stream_cannot_tell_is_asked_for(eth_lines, tmp_path, shared_data, repo_root):
    # a capture of a few trades: too few prices for the tick size, no market evidence
    few = [ln for ln in eth_lines if '"e":"trade"' in ln][:5]
    few = [ln.replace(',"X":"MARKET"', "") for ln in few]
    p = tmp_path / "few_trades.gz"
    p.write_bytes(gzip.compress("\n".join(few).encode()))
    with pytest.raises(BinanceError, match="--tick-size") as exc:
        read_binance_gz(p)
    assert str(p) in str(exc.value) and "--market" in str(exc.value)
    line = _one_line_error(_cli(repo_root, "analyze", p), p)
    assert "--tick-size" in line
    ok = _cli(repo_root, "convert", p, tmp_path / "few.mrec", "--tick-size", "0.01", "--market", "USD-M")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "ETHUSDT" in ok.stdout and "tick 0.01" in ok.stdout
    # a symbol the file does not hold, and a tick size the prices are not on
    with pytest.raises(BinanceError, match="ETHUSDT"):
        read_binance_gz(shared_data / ETH, symbol="BTCUSDT")
    with pytest.raises(BinanceError, match="not a multiple"):
        read_binance_gz(shared_data / ETH, tick_size=0.05)
    # two symbols with REST snapshots that name none: refused, not guessed
    btc = gzip.decompress((shared_data / "crypto/btcusdt_20240808.gz").read_bytes()).decode().splitlines()
    both = tmp_path / "both.gz"
    both.write_bytes(gzip.compress("\n".join(eth_lines[:2000] + btc[:2000]).encode()))
    with pytest.raises(BinanceError, match="several symbols"):
        read_binance_gz(both)
    line = _one_line_error(_cli(repo_root, "convert", both, tmp_path / "both.mrec"), both)
    assert "several symbols" in line


def test_convert_ethusdt_names_its_instrument(shared_data, tmp_path, repo_root):
    out = _cli(repo_root, "convert", shared_data / ETH, tmp_path / "eth.mrec")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "of ETHUSDT (tick 0.01, 0.01 USD/tick)" in out.stdout
    from app.feeds.recording import read_recording

    rec = read_recording(tmp_path / "eth.mrec")
    assert rec.instrument.symbol == "ETHUSDT" and (rec.events["kind"] == KIND_TRADE).sum() == 14076
    assert np.all(np.diff(rec.events["ts"]) >= 0)


# ---------------------------------------------------------------------------------- item 20
@pytest.fixture(scope="module")
def bad(tmp_path_factory, shared_data):
    """Bad files, each made from real data or random bytes (fixed seed)."""
    import zstandard

    from app.feeds.depthfile import DepthWriter
    from app.feeds.samples import load_default_sample

    d = tmp_path_factory.mktemp("bad-files")
    rng = np.random.default_rng(13)
    ob = shared_data / "databento_cme/orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
    zst = ob.read_bytes()
    dbn = zstandard.ZstdDecompressor().stream_reader(__import__("io").BytesIO(zst)).read()
    eth = (shared_data / ETH).read_bytes()
    scid = (shared_data / "sierra_chart/test.scid").read_bytes()
    files = {
        "random.mbo.dbn.zst": rng.bytes(4000),
        "gzip.mbo.dbn.zst": gzip.compress(dbn[:20000]),
        "half.mbo.dbn.zst": zst[: len(zst) // 2],
        "half.mbo.dbn": dbn[: len(dbn) // 2 + 3],
        "hundred.mbo.dbn": dbn[:100],
        # the metadata and 44 bytes of the first record; the metadata alone
        "short.mbo.dbn": dbn[:8 + int.from_bytes(dbn[4:8], "little") + 44],
        "metadata-only.mbo.dbn": dbn[:8 + int.from_bytes(dbn[4:8], "little")],
        "truncated.gz": eth[: len(eth) // 2],
        "random-content.gz": gzip.compress(rng.bytes(5000)),
        "random.gz": rng.bytes(5000),
        "random-records.scid": scid[:56] + rng.bytes(40 * 50),
        "tail.scid": scid + scid[56:56 + 17],
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    rec = load_default_sample()
    with DepthWriter(d / "ES.depth", truncate=True) as w:
        w.append_events(rec.events[:3000], rec.instrument)
    good = (d / "ES.depth").read_bytes()
    (d / "random-records.depth").write_bytes(good[:64] + rng.bytes(24 * 60))
    (d / "tail.depth").write_bytes(good + good[64:64 + 11])
    return d


@pytest.mark.parametrize("name, command, problem", [
    ("random.mbo.dbn.zst", "convert", "not a zstd-compressed file"),
    ("gzip.mbo.dbn.zst", "analyze", "gzip-compressed, not zstd"),
    ("half.mbo.dbn.zst", "convert", "truncated"),
    ("half.mbo.dbn", "analyze", "truncated"),
    ("hundred.mbo.dbn", "convert", "truncated DBN metadata"),
    ("short.mbo.dbn", "analyze", "the file ends inside record 1"),
    ("metadata-only.mbo.dbn", "convert", "holds no MBO records"),
    ("truncated.gz", "analyze", "truncated gzip"),
    ("random-content.gz", "analyze", "not a text capture"),
    ("random.gz", "convert", "not a text capture"),
    ("random-records.scid", "convert", "not a Sierra Chart intraday record"),
    ("random-records.depth", "convert", "not a market depth record"),
    ("random.mbo.dbn.zst", "serve", "not a zstd-compressed file"),
])
def test_bad_file_gives_one_line_naming_it_and_a_non_zero_exit(bad, repo_root, name, command, problem):
    path = bad / name
    args = [command, path]
    if command == "convert":
        args += [bad / "out.mrec", "--tick-size", "0.25"]
    elif command == "serve":
        args += ["--port", "0", "--seconds", "1"]
    proc = _cli(repo_root, *args)
    line = _one_line_error(proc, path)
    assert problem in line
    assert "RuntimeWarning" not in proc.stderr and "overflow" not in proc.stderr


@pytest.mark.parametrize("name, used", [("tail.scid", 10), ("tail.depth", None)])
def test_incomplete_tail_warns_with_counts_and_uses_the_whole_records(bad, repo_root, name, used):
    """A file Sierra Chart is still writing: the whole records are used, the partial one is
    skipped with a warning that gives both counts; the data used is complete, so exit 0."""
    from app.feeds.recording import read_recording

    size = (bad / name).stat().st_size
    header, rec_size = (56, 40) if name.endswith(".scid") else (64, 24)
    whole = (size - header) // rec_size
    assert used is None or whole == used
    out = bad / f"{name}.mrec"
    proc = _cli(repo_root, "convert", bad / name, out, "--tick-size", "0.25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "incomplete last record" in proc.stderr and str(bad / name) in proc.stderr
    assert f"{whole} records used, 1 partial record skipped" in proc.stderr
    assert len(read_recording(out).events) > 0
