"""The command line (issue 16 item 11): one spelling of ``--encoding``, the window's options in
``mia-elite --help``, ``probe`` on a symbol the server does not know, prices and ISO times in
``report`` / ``export``, a cold ``analyze`` that says what it does, ``--self-test --recording``."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli
from app.cli import probe as probe_cmd
from app.core.orders import Fill
from app.trading.journal import Journal

REPO = Path(__file__).resolve().parents[2]


def _parse(*argv):
    return cli.build_parser(list(argv)).parse_args(list(argv))


# --------------------------------------------------------------------------- --encoding
@pytest.mark.parametrize("command", [("serve",), ("probe", "h:1", "S"), ("record", "S", "--dtc", "h:1", "--out", "o.mrec"), ()])
def test_every_encoding_option_has_one_spelling(command, capsys):
    for name in ("binary", "json", "json_compact"):
        assert _parse(*command, "--encoding", name).encoding == name
    assert capsys.readouterr().err == ""
    for old in ("compact", "compact_json"):
        assert _parse(*command, "--encoding", old).encoding == "json_compact"
        assert f"--encoding {old} is now spelled json_compact" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _parse(*command, "--encoding", "protobuf")
    assert e.value.code == 2
    assert "'binary', 'json', 'json_compact')" in capsys.readouterr().err.replace('"', "'")


def test_serve_fixes_the_named_encoding():
    from app.cli.serve import _ENC
    from app.dtc.messages import Encoding

    assert _ENC[_parse("serve", "--encoding", "json_compact").encoding] is Encoding.JSON_COMPACT
    assert _ENC[_parse("serve", "--encoding", "compact").encoding] is Encoding.JSON_COMPACT


def test_window_settings_keep_the_one_spelling(tmp_path):
    from app.config.prefs import Prefs
    from app.config.settings import load_settings

    p = Prefs(tmp_path / "settings.toml")
    p.set("connection.encoding", "json_compact")
    p.save()
    assert load_settings(tmp_path / "settings.toml").connection.encoding == "json_compact"
    assert Prefs(tmp_path / "settings.toml").get("connection.encoding") == "json_compact"


# --------------------------------------------------------------------------- --help
def test_top_level_help_lists_the_window_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--host", "--port", "--symbol", "--recording", "--speed", "--profile", "--encoding"):
        assert opt in out, opt
    assert "serve" in out and "analyze" in out  # the commands are still listed


def test_window_options_with_help_print_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--host", "127.0.0.1", "--port", "1", "--symbol", "ESH4", "--help"])
    assert e.value.code == 0
    assert "usage: mia-elite" in capsys.readouterr().out


def test_window_options_without_a_command_open_the_window(monkeypatch):
    import app.cli.gui as gui

    seen = {}
    monkeypatch.setattr(gui, "run", lambda args: seen.setdefault("args", args) and 0)
    assert cli.main(["--host", "127.0.0.1", "--port", "1", "--symbol", "ESH4"]) == 0
    a = seen["args"]
    assert (a.command, a.host, a.port, a.symbol) == ("gui", "127.0.0.1", 1, ["ESH4"])  # --symbol repeats


def test_help_does_not_load_qt_or_numba():
    code = ("import sys\nfrom app.cli import build_parser\nbuild_parser(['--help'])\n"
            "print('PySide6' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.split() == ["False", "False"], out.stderr


# --------------------------------------------------------------------------- probe
def test_probe_of_a_symbol_the_server_does_not_know_says_so_once(caplog):
    from app.feeds.samples import load_default_sample
    from app.sim.server import DTCServer

    async def main():
        srv = DTCServer(load_default_sample(), port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            out = io.StringIO()
            code = await probe_cmd.probe("127.0.0.1", srv.port, "NQZ9", seconds=0.5, out=out)
            return code, out.getvalue()
        finally:
            await srv.stop()

    with caplog.at_level(logging.INFO):
        code, text = asyncio.run(asyncio.wait_for(main(), 60))
    assert code == 2
    assert "does not know the symbol 'NQZ9'" in text and "this server replays ESH4" in text
    assert "exchange policy" not in text and "Record Market Depth Data" not in text
    everything = text + "\n".join(r.getMessage() for r in caplog.records)
    assert everything.count("unknown symbol 'NQZ9'") == 1, everything


def test_probe_keeps_the_sierra_chart_hint_for_other_rejects():
    msg = probe_cmd.reject_message("ESZ5", "CME data not available", "h:1 (SC DTC Server)")
    assert "exchange policy" in msg and "Record Market Depth Data" in msg
    msg = probe_cmd.reject_message("ESZ5", "Symbol not found", "h:1 (x)")
    assert "does not know the symbol 'ESZ5'" in msg and "exchange policy" not in msg


# --------------------------------------------------------------------------- report / export
T0 = 1_703_545_200_123_456_789  # 2023-12-25T23:00:00.123456789Z


def _journal(path: Path) -> None:
    j = Journal(path)
    try:
        j.record_fill(Fill("c1", "s1", "e1", "ESH4", 1, 1, 19239, T0, 2.25), 0.0)  # buy 4809.75
        j.record_fill(Fill("c2", "s2", "e2", "ESH4", -1, 1, 19243, T0 + 60_000_000_000, 2.25), 50.0)  # sell 4810.75
        j.record_kill_switch("verified_flat", "manual")
    finally:
        j.close()


def test_report_gives_prices_and_iso_utc_times(tmp_path, capsys):
    jp = tmp_path / "journal.sqlite3"
    _journal(jp)
    from app.cli.report import build_report, format_report

    r = build_report(jp, tz_name="UTC")
    (t,) = r["trades"]
    assert (t["entry_price"], t["exit_price"]) == (4809.75, 4810.75)
    assert (t["entry_ticks"], t["exit_ticks"]) == (19239, 19243)
    assert t["entry_time"] == "2023-12-25T23:00:00.123456789Z"
    assert t["exit_time"] == "2023-12-25T23:01:00.123456789Z"
    assert r["kill_switch"][0]["time"].endswith("Z") and "T" in r["kill_switch"][0]["time"]
    text = format_report(r)
    assert "4809.75" in text and "4810.75" in text and "2023-12-25T23:00:00.123Z" in text
    assert "19239" not in text
    assert cli.main(["report", "--journal", str(jp), "--timezone", "UTC", "--tick-size", "0.5"]) == 0
    assert " 9619.5 " in capsys.readouterr().out  # 19239 x 0.5


def test_export_gives_prices_and_iso_utc_times(tmp_path):
    jp = tmp_path / "journal.sqlite3"
    _journal(jp)
    assert cli.main(["export", "--journal", str(jp), "--out", str(tmp_path / "csv"), "--format", "csv",
                     "--tables", "fills", "kill_switch"]) == 0
    with open(tmp_path / "csv" / "fills.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["price"]) for r in rows] == [4809.75, 4810.75]
    assert [int(r["price_ticks"]) for r in rows] == [19239, 19243]
    assert rows[0]["ts_time"] == "2023-12-25T23:00:00.123456789Z" and int(rows[0]["ts_ns"]) == T0
    assert rows[0]["wall_time"].endswith("Z") and rows[0]["wall_ns"].isdigit()
    with open(tmp_path / "csv" / "kill_switch.csv", newline="") as fh:
        (k,) = list(csv.DictReader(fh))
    assert k["wall_time"].endswith("Z") and k["state"] == "verified_flat"


def test_export_refuses_a_bad_tick_size(tmp_path, capsys):
    jp = tmp_path / "journal.sqlite3"
    _journal(jp)
    assert cli.main(["export", "--journal", str(jp), "--out", str(tmp_path), "--format", "csv",
                     "--tick-size", "0"]) == 1
    assert "tick size must be > 0" in capsys.readouterr().err


# --------------------------------------------------------------------------- analyze
def test_analyze_says_it_is_compiling_and_shows_progress(tmp_path, capsys):
    from app.feeds.recording import Recording, write_recording
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    small = tmp_path / "es-part.mrec"
    write_recording(small, Recording(rec.instrument, rec.events[:20_000].copy(), rec.source))
    assert cli.main(["analyze", str(small), "--json", "--progress", "always"]) == 0
    cap = capsys.readouterr()
    assert '"events": 20000' in cap.out  # the report stays on stdout, whole
    assert "compiling the analyzers" in cap.err and "analyzers ready in" in cap.err
    assert "20.0k/20.0k" in cap.err  # tqdm's bar reached the end
    assert cli.main(["analyze", str(small), "--json", "--progress", "never"]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- --self-test
def test_self_test_runs_on_the_given_recording_and_reports_prices(tmp_path):
    from app.feeds.recording import Recording, write_recording
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()  # the real ES hour, under another symbol so the report can tell
    inst = dataclasses.replace(rec.instrument, symbol="ESH4-SELFTEST")
    path = tmp_path / "other.mrec"
    write_recording(path, Recording(inst, rec.events, rec.source))
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen",
           "MIA_ELITE_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "app", "--self-test", "3", "--recording", str(path)],
                         capture_output=True, text=True, timeout=400, cwd=REPO, env=env)
    assert f"self-test on {path}" in out.stdout, out.stdout + out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if "inside market" in ln)
    assert "ESH4-SELFTEST bid " in line, line
    bid = float(line.split(" bid ")[1].split()[0])
    ask = float(line.split(" ask ")[1].split()[0])
    assert 4000 < bid < 6000 and 4000 < ask < 6000, line  # prices, not ticks (19239)
    assert "[PASS] ladder shows the engine's inside market" in out.stdout, out.stdout


def test_self_test_names_a_missing_recording(tmp_path, capsys):
    assert cli.main(["--self-test", "1", "--recording", str(tmp_path / "none.mrec")]) == 2
    assert "recording not found" in capsys.readouterr().err
