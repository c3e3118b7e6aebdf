"""``mia-elite evaluate``: sessions, the book at a session's open, ablation, the CLI on the real ES hour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.core.events import FLAG_SNAPSHOT, OP_CLEAR, OP_DELETE, OP_SET, depth_events
from app.research.evaluate import Job, book_at, discover, run_session


def test_book_at_keeps_the_last_standing_level_per_side_and_price():
    ev = depth_events([1, 2, 3, 4, 5, 6, 7], [100, 101, 100, 102, 99, 0, 98],
                      [5.0, 6.0, 7.0, 3.0, 1.0, 0.0, 2.0], [1, 2, 1, 2, 1, 1, 1],
                      [OP_SET, OP_SET, OP_SET, OP_SET, OP_SET, OP_CLEAR, OP_SET])
    snap = book_at(ev, 50)
    # the bid side was cleared at t=6: only 98 stands; asks 101 and 102 stand
    got = sorted((int(e["side"]), int(e["price"]), float(e["size"])) for e in snap)
    assert got == [(1, 98, 2.0), (2, 101, 6.0), (2, 102, 3.0)]
    assert (snap["ts"] == 50).all() and (snap["flags"] & FLAG_SNAPSHOT).all()
    ev2 = depth_events([1, 2], [100, 100], [5.0, 0.0], [1, 1], [OP_SET, OP_DELETE])
    assert book_at(ev2, 9).shape[0] == 0


def test_the_es_sample_is_one_trading_session_with_its_book(es_sessions):
    """2023-12-25 23:00 UTC is the Globex reopen (17:00 CT): Tuesday's trading day. The
    pre-open book snapshot (2023-12-24) has no trades and rides along as the opening book."""
    assert [s.sid for s in es_sessions] == ["ESH4 2023-12-26"]
    s = es_sessions[0]
    assert s.events["ts"][0] >= s.start_ns
    assert np.count_nonzero(s.events["flags"] & FLAG_SNAPSHOT) > 500  # the book rebuilt at the open


def test_discover_walks_folders_and_names_what_it_skips(tmp_path, shared_data):
    files, skipped = discover([shared_data / "databento_cme"])
    names = {f.name for f in files}
    assert "esh4-glbx-mdp3-20231225.mbo.dbn.zst" in names
    assert not skipped or all(r for _p, r in skipped)
    with pytest.raises(FileNotFoundError, match="path not found"):
        discover([tmp_path / "nope"])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown file type"):
        discover([tmp_path / "x.txt"])


def test_ablation_removes_the_pattern_from_the_signals(es_sessions, es_production_run):
    """The profile rerun without its most cited pattern: no signal cites it any more, and the
    signals are the gate's own decisions without it (not the old signals filtered)."""
    counts: dict[str, int] = {}
    for s in es_production_run.signals:
        for h in s.reasons:
            counts[h.name] = counts.get(h.name, 0) + 1
    top = max(counts, key=counts.get)
    run = run_session(Job(es_sessions[0], "production", (top,)))
    assert all(h.name != top for s in run.signals for h in s.reasons)
    keep = [s.ts for s in es_production_run.signals if all(h.name != top for h in s.reasons)]
    assert [s.ts for s in run.signals] != keep or len(run.signals) != len(es_production_run.signals)


def test_evaluate_cli_on_the_shipped_es_hour_prints_verdicts_json_and_html(tmp_path, capsys):
    from app.cli import main

    out_html = tmp_path / "report.html"
    rc = main(["evaluate", "default", "--profile", "production", "--draws", "20", "--no-ablation",
               "--jobs", "1", "--json", "--html", str(out_html)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rep = json.loads(cap.out)
    p = rep["profiles"]["production"]
    assert p["n"] >= 3 and p["sessions"] == 1
    assert rep["settings"]["commission_usd"] == {"ESH4": 2.25}  # trading.toml's default for the symbol
    assert rep["verdicts"] == [p["verdict"]]
    assert p["verdict"].startswith(f"production: not distinguishable from random entries at n = {p['n']} (1 session)")
    assert p["verdict"] in cap.err
    assert 0 < p["rate_ci"][0] < p["rate"] < p["rate_ci"][1] < 1
    assert p["risk"]["sharpe"] is None and "needs >= 20 sessions" in p["risk"]["note"]
    assert len(p["equity"]) == p["n"] and len(p["baseline_band"][0]) == p["n"]
    assert all(t["name"] for t in rep["tests"])
    text = out_html.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 2 and "not distinguishable" in text
    # the same report as terminal tables, from the JSON (no second engine run)
    from app.cli.evaluate import print_text
    import io

    buf = io.StringIO()
    print_text(rep, buf)
    assert "per profile" in buf.getvalue() and p["verdict"] in buf.getvalue()


def test_evaluate_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["evaluate", str(tmp_path / "missing.mrec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evaluate: ") and "path not found" in err and err.count("\n") == 1
    assert main(["evaluate", "default", "--draws", "0"]) == 2
    assert "--draws must be >= 1" in capsys.readouterr().err
    assert main(["evaluate", "default", "--profile", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("evaluate: ")



def test_analyze_writes_snapshots_too(tmp_path, capsys):
    from app.cli import main
    from app.research.snapshots import read_snapshots

    assert main(["analyze", "default", "--json", "--snapshots", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    d = read_snapshots([tmp_path])
    assert rep["snapshot_rows"] == len(d["ts"]) > len(rep["signals"]) > 0
    assert int(d["emitted"].sum()) == len(rep["signals"])


def test_the_same_recording_named_twice_counts_once(shared_data, repo_root):
    from app.research.evaluate import file_key

    shipped = file_key(Path("default"))
    assert shipped == file_key(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    assert shipped != file_key(shared_data / "crypto" / "btcusdt_20240808.gz")


def test_a_sierra_chart_data_folder_is_read_with_its_depth_files(tmp_path, capsys):
    """The real ES hour written as Sierra Chart would store it (``ESH4.scid`` + the day's
    ``MarketDepthData/ESH4.<date>.depth``): the folder is walked, trades and depth merged, and
    it is cut into the same trading session as the DBN original."""
    from app.cli import main
    from app.feeds.samples import default_sample_path
    from app.research.evaluate import load_path, split_sessions

    assert main(["convert", str(default_sample_path()), str(tmp_path), "--format", "scid,depth"]) == 0
    capsys.readouterr()
    files, skipped = discover([tmp_path])
    assert [f.name for f in files] == ["ESH4.scid"] and skipped == []
    src = load_path(files[0])
    assert "+ 1 .depth file(s)" in src.source
    sess = split_sessions(src)
    assert [s.sid for s in sess] == ["ESH4 2023-12-26"]
    t = sess[0].trades()
    assert t.ts.shape[0] == 2973  # every trade of the hour
    assert np.count_nonzero(sess[0].events["kind"] == 1) > 10_000  # with the depth


def test_bench_evaluate_is_registered(capsys):
    from app.cli import main

    assert main(["bench", "--list"]) == 0
    assert "evaluate" in capsys.readouterr().out.split()
