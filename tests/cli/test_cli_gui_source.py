"""``mia-elite --source sierra-files --data-dir DIR --symbol ESH4`` (issue 16, item 8): the window's
command line reaches Sierra Chart's data files, so README's ``--host/--port/--symbol`` route (which
ends in "market data rejected" for ES on Sierra Chart) is not the only one.

The folder holds a ``.scid`` written by :mod:`app.feeds.scid` from real ES trades; the pipeline
built from the command line is started headless and follows the file as it grows.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest

from app.config.prefs import Prefs
from app.feeds.scid import ScidWriter, events_to_scid_records, write_scid
from app.live.pipeline import Pipeline, SourceChoiceError
from app.live.sierra_source import SierraFilesSource


def _args(argv):
    from app.cli import gui

    p = argparse.ArgumentParser()
    gui.add_arguments(p)
    return p.parse_args(argv)


@pytest.fixture()
def es():
    from app.core.events import KIND_TRADE
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    trades = rec.events[rec.events["kind"] == KIND_TRADE]
    return rec.instrument, trades


def test_source_sierra_files_builds_a_sierra_files_pipeline_that_follows_the_scid(tmp_path, es):
    from app.ui.main import build_config

    inst, trades = es
    data = tmp_path / "Data"
    data.mkdir()
    write_scid(data / "ESH4.scid", events_to_scid_records(trades[:200], inst))
    args = _args(["--source", "sierra-files", "--data-dir", str(data), "--symbol", "ESH4",
                  "--tick-size", "0.25", "--tick-value", "12.5"])
    cfg = build_config(args, Prefs(tmp_path / "settings.toml"))
    assert (cfg.embedded, cfg.data_source, cfg.sierra_data_dir, cfg.symbol, cfg.tick_size) == (
        False, "sierra_files", str(data), "ESH4", 0.25)
    out = {}

    async def main():
        pl = Pipeline(cfg)
        assert isinstance(pl.source, SierraFilesSource)
        got = []
        pl.add_listener(got.append)
        await pl.start()
        out["state"] = pl.source.state
        out["instrument"] = (pl.instrument.symbol, pl.instrument.tick_size, pl.instrument.tick_value)
        # the follower starts at the end of the file: wait for a whole poll (bounded)
        fol = pl.source.follower
        t_end = time.monotonic() + 30
        while fol.counters["polls"] < 2 and time.monotonic() < t_end:
            await asyncio.sleep(0.02)
        # Sierra Chart appends trades: they reach the pipeline (market data fan-out and engine)
        with ScidWriter(data / "ESH4.scid") as w:
            w.append_events(trades[200:400], inst)
        t_end = time.monotonic() + 60
        while sum(len(b) for b in got) < 200 and time.monotonic() < t_end:
            await asyncio.sleep(0.05)
        out["events"] = sum(len(b) for b in got)
        await pl.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
    assert out["state"] == "following"
    assert out["instrument"] == ("ESH4", 0.25, 12.5)
    assert out["events"] >= 200


def test_data_dir_alone_implies_sierra_files_and_tick_comes_from_the_symbol_map(tmp_path, es):
    from app.ui.main import build_config

    inst, trades = es
    write_scid(tmp_path / "ESH4.scid", events_to_scid_records(trades[:50], inst))
    pr = Prefs(tmp_path / "settings.toml")
    pr.set("connection.symbols", [{"name": "ES", "symbol": "ESH4", "exchange": "CME", "tick_size": 0.25,
                                   "tick_value": 12.5, "source": "dtc"}])
    pr.save()
    cfg = build_config(_args(["--data-dir", str(tmp_path), "--symbol", "ESH4"]), Prefs(tmp_path / "settings.toml"))
    assert (cfg.data_source, cfg.tick_size, cfg.tick_value, cfg.exchange) == ("sierra_files", 0.25, 12.5, "CME")


@pytest.mark.parametrize("argv, says", [
    (["--symbol", "ESH4", "--tick-size", "0.25"], "No ESH4.scid in"),
    (["--symbol", "ESH4"], "Pass --tick-size"),
    (["--tick-size", "0.25"], "Pass --symbol"),
])
def test_bad_sierra_files_choices_say_what_is_wrong(tmp_path, argv, says):
    from app.ui.main import build_config

    with pytest.raises(SourceChoiceError, match=says):
        build_config(_args(["--source", "sierra-files", "--data-dir", str(tmp_path), *argv]),
                     Prefs(tmp_path / "settings.toml"))


def test_command_line_exits_2_with_one_line_naming_the_missing_folder(tmp_path, capsys):
    from app.cli import main

    missing = tmp_path / "no" / "Data"
    rc = main(["--source", "sierra-files", "--data-dir", str(missing), "--symbol", "ESH4", "--tick-size", "0.25"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("mia-elite: --source sierra-files: Sierra Chart Data folder") and str(missing) in err[-1]


def test_source_builtin_and_dtc(tmp_path):
    from app.ui.main import build_config

    pr = Prefs(tmp_path / "settings.toml")
    assert build_config(_args(["--source", "builtin"]), pr).embedded
    cfg = build_config(_args(["--source", "dtc", "--symbol", "ESH4"]), pr)
    assert (cfg.embedded, cfg.data_source) == (False, "dtc")
