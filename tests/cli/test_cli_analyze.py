"""``mia-elite analyze`` on the real ES sample and the real BTCUSDT capture: exit 0, signals
with reasons and outcomes, and JSON output identical between two runs."""

from __future__ import annotations

import json

import numpy as np

import app.core.jit  # noqa: F401  (sets numba's cache folder at collection, before any test home)
from app.core.events import chunks
from app.cli import main
from app.core.events import FLAG_BATCH_END, empty


def _run_json(capsys, *argv):
    code = main(["analyze", *argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)
    timing = rep.pop("timing")  # wall-clock figures: the only part allowed to differ
    assert timing["wall_s"] > 0 and timing["events_per_s"] > 0
    return rep


def _check_report(rep):
    assert rep["errors"] == 0, rep["last_error"]
    assert rep["events"] > 50_000 and rep["steps"] > 100
    assert rep["summary"]["signals"] == len(rep["signals"]) > 0
    for s in rep["signals"]:
        assert s["reasons"], s
        assert all(r["name"] and r["detail"] for r in s["reasons"])
        assert s["outcome"] is not None and s["outcome"]["complete"] in (True, False)
        assert (s["stop"] < s["entry"] < s["target"]) if s["side"] == "long" else (s["target"] < s["entry"] < s["stop"])
    for k, v in rep["summary"]["precision_per_pattern"].items():
        assert 0 <= v["target_first"] <= v["decided"] and 0.0 <= v["precision"] <= 1.0


def test_analyze_es_sample_is_stable_between_runs(capsys):
    a = _run_json(capsys, "default", "--profile", "production")
    b = _run_json(capsys, "default", "--profile", "production")
    assert a == b
    _check_report(a)
    assert a["recording"]["symbol"] == "ESH4"
    assert a["summary"]["best_bid"] == 4810.0 and a["summary"]["best_ask"] == 4810.25


def test_analyze_btc_capture_is_stable_between_runs(capsys, shared_data):
    path = str(shared_data / "crypto" / "btcusdt_20240808.gz")
    a = _run_json(capsys, path, "--profile", "development")
    b = _run_json(capsys, path, "--profile", "development")
    assert a == b
    _check_report(a)
    assert a["recording"]["symbol"] == "BTCUSDT"
    assert 50_000 < a["summary"]["best_bid"] < 70_000


def test_analyze_text_output_and_vix_file(capsys, shared_data):
    code = main(["analyze", "default", "--profile", "development",
                 "--vix", str(shared_data / "vix_spx" / "VIX_History.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "summary" in out and "events/s" in out and "signals" in out
    assert "outcome:" in out  # each signal prints its forward outcome


def test_analyze_bad_inputs_exit_2(capsys, tmp_path):
    assert main(["analyze", str(tmp_path / "missing.mrec")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hello")
    assert main(["analyze", str(tmp_path / "x.txt")]) == 2
    assert "unknown recording type" in capsys.readouterr().err
    assert main(["analyze", "default", "--speed", "fast"]) == 2
    assert main(["analyze", "default", "--profile", "yolo"]) == 2
    assert "yolo" in capsys.readouterr().err


def test_chunks_end_at_batch_ends_and_cover_everything():
    ev = empty(50_000)
    ev["ts"] = np.arange(50_000)
    ev["flags"][np.arange(99, 50_000, 100)] = FLAG_BATCH_END
    parts = list(chunks(ev, 1000))
    assert sum(len(p) for p in parts) == 50_000
    assert all(p["flags"][-1] & FLAG_BATCH_END for p in parts)
    assert np.array_equal(np.concatenate(parts)["ts"], ev["ts"])
    # no batch end in reach: cut at the size
    assert [len(p) for p in chunks(empty(2500), 1000)] == [1000, 1000, 500]


def test_analyze_reads_mrec_and_dbn_files(capsys, tmp_path, shared_data):
    from app.feeds.recording import write_recording_zst
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    rec.events = rec.events[:20_000]
    path = write_recording_zst(tmp_path / "es.mrec.zst", rec, level=3)
    a = _run_json(capsys, str(path), "--profile", "production")
    assert a["events"] == 20_000 and a["errors"] == 0 and a["recording"]["symbol"] == "ESH4"
    dbn = shared_data / "databento_cme" / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
    b = _run_json(capsys, str(dbn), "--profile", "production")
    assert b["events"] > 1_000 and b["errors"] == 0 and b["recording"]["symbol"].startswith("ES")
