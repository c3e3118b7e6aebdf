"""Resources from source and from a simulated frozen bundle; the frozen start-up helpers."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from app import paths


def test_resources_resolve_from_source(repo_root):
    assert paths.resources_root() == repo_root / "resources"
    profiles = sorted(p.stem for p in paths.resource_path("profiles").glob("*.toml"))
    assert profiles == ["budget", "development", "production", "scalping"]
    from app.feeds.samples import default_sample_path
    from app.feeds.vix_history import default_vix_paths

    assert default_sample_path().is_file() and default_sample_path().parent == repo_root / "resources" / "samples"
    assert all(p.is_file() for p in default_vix_paths())
    with pytest.raises(FileNotFoundError, match="no-such.toml"):
        paths.resource_path("profiles", "no-such.toml")


@pytest.fixture
def frozen(tmp_path, repo_root, monkeypatch):
    """A fake one-folder bundle: ``sys.frozen`` set, ``sys._MEIPASS`` = a copy of the resources."""
    meipass = tmp_path / "MIA Elite" / "_internal"
    shutil.copytree(repo_root / "resources", meipass / "resources")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(meipass), raising=False)
    return meipass


def test_resources_resolve_frozen_and_load(frozen):
    assert paths.is_frozen()
    assert paths.resources_root() == frozen / "resources"
    assert paths.resource_path("profiles", "production.toml") == frozen / "resources" / "profiles" / "production.toml"
    # the real loaders go through resource_path: they read the bundle's copies
    from app.config.profiles import load_profile
    from app.feeds.samples import default_sample_path
    from app.feeds.vix_history import default_vix_paths, load_vix_history

    for name in ("scalping", "production", "development", "budget"):
        prof = load_profile(name)
        assert prof.get("engine.analysis_interval_ms") > 0
    assert default_sample_path().is_relative_to(frozen)
    vix, vix3m = default_vix_paths()
    assert vix.is_relative_to(frozen) and vix3m.is_relative_to(frozen)
    hist = load_vix_history()
    assert len(hist.dates) > 1000  # decades of CBOE daily closes
    # a file missing from the bundle is named in the error
    (frozen / "resources" / "profiles" / "budget.toml").unlink()
    with pytest.raises(FileNotFoundError, match=r"_internal.resources.profiles.budget\.toml"):
        paths.resource_path("profiles", "budget.toml")


def test_frozen_setup_numba_cache_one_folder(repo_root, monkeypatch, _isolated_home, tmp_path):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    import frozen_setup

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CPU_NAME", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "no-bundle"), raising=False)
    frozen_setup._numba_cache("cli")
    assert Path(os.environ["NUMBA_CACHE_DIR"]) == _isolated_home / "cache" / "numba" / "bundle"
    assert Path(os.environ["NUMBA_CACHE_DIR"]).is_dir()
    assert "NUMBA_CPU_NAME" not in os.environ  # no shipped cache: host-tuned kernels
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere/by/user")
    frozen_setup._numba_cache("cli")
    assert os.environ["NUMBA_CACHE_DIR"] == "/elsewhere/by/user"  # the user's choice wins


def test_frozen_setup_uses_the_shipped_generic_cache_until_host_kernels_exist(repo_root, monkeypatch,
                                                                             _isolated_home, tmp_path):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    import frozen_setup

    shipped = tmp_path / "_internal" / frozen_setup.SHIPPED_CACHE / "app-market"
    shipped.mkdir(parents=True)
    (shipped / "kernels.apply_events_nb-100.py311.nbi").write_bytes(b"index")
    (shipped / "kernels.apply_events_nb-100.py311.1.nbc").write_bytes(b"code")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_internal"), raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CPU_NAME", raising=False)
    monkeypatch.delenv(frozen_setup.HOST_ENV, raising=False)
    frozen_setup._numba_cache("cli")  # (the window would also schedule the host-tuned compile)
    user = Path(os.environ["NUMBA_CACHE_DIR"])
    assert os.environ["NUMBA_CPU_NAME"] == "generic"
    assert (user / "app-market" / "kernels.apply_events_nb-100.py311.1.nbc").read_bytes() == b"code"
    (user / frozen_setup.HOST_MARK).write_text("ok")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CPU_NAME")
    frozen_setup._numba_cache("cli")
    assert "NUMBA_CPU_NAME" not in os.environ  # host-tuned kernels from now on


def test_frozen_setup_wraps_make_app_once(repo_root, monkeypatch, qapp):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    import frozen_setup

    import app.ui.main as ui_main
    from app.ui import crash

    calls = []
    monkeypatch.setattr(ui_main, "make_app", lambda: calls.append(1) or qapp)
    monkeypatch.setattr("app.ui.splash.show_splash", lambda a: calls.append("splash"))
    try:
        frozen_setup._wire_window_helpers()
        wrapped = ui_main.make_app
        frozen_setup._wire_window_helpers()  # idempotent
        assert ui_main.make_app is wrapped
        assert ui_main.make_app() is qapp
        assert calls == [1, "splash"]
        assert crash._state["handler"] is not None
    finally:
        crash.uninstall()


def test_null_streams(monkeypatch):
    import io

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging"))
    try:
        import frozen_setup
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    frozen_setup._null_streams()
    assert sys.stdout is not None
    print("goes nowhere")  # must not raise in the windowed executable


def test_strip_bundle_leaves_auditwheel_libraries(tmp_path, monkeypatch, repo_root):
    strip = shutil.which("strip")
    if strip is None:
        pytest.skip("no strip program (binutils)")
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    from strip_bundle import strip_bundle

    import _json  # any small ELF extension module of this interpreter

    elf = Path(_json.__file__) if hasattr(_json, "__file__") else None
    if elf is None or elf.suffix != ".so":
        pytest.skip("no ELF extension module to copy")
    b = tmp_path / "MIA Elite"
    files = {
        "numpy.libs/libfake.so": True,  # auditwheel folder: left alone
        "numpy/_core/fake.so": True,  # package repaired by auditwheel: left alone
        "zstandard/fake.so": False,  # stripped
    }
    for rel in files:
        p = b / "_internal" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(elf, p)
    (b / "mia-elite").write_bytes(elf.read_bytes())  # executables are never touched
    (b / "_internal" / "data.txt").write_text("not an ELF")
    before = {rel: (b / "_internal" / rel).read_bytes() for rel in files}
    report = tmp_path / "stripped.txt"
    strip_bundle(b, report=report)
    listed = report.read_text().splitlines()
    assert [line.split("\t")[2] for line in listed] == ["zstandard/fake.so"]
    for rel, untouched in files.items():
        if untouched:
            assert (b / "_internal" / rel).read_bytes() == before[rel]
    assert (b / "mia-elite").read_bytes() == elf.read_bytes()


def test_bundle_figures_helpers(tmp_path, repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    import bundle_figures as bf

    assert bf.first_frame_seconds("... INFO app.ui.splash: first frame drawn 3.37 s after process start (k)") == 3.37
    assert bf.first_frame_seconds("no frame") is None
    assert bf._json_doc('log line\n{"events": 3}\n') == {"events": 3}
    assert bf._json_doc("{bad") is None
    d = tmp_path / "b"
    d.mkdir()
    (d / "a.bin").write_bytes(b"x" * 2**20)
    disk, apparent = bf.bundle_size(d)
    assert apparent == pytest.approx(1.0, abs=0.01) and disk >= 0.9
    with pytest.raises(FileNotFoundError):
        bf.cli_executable(d)
    f = bf._fig("bundle.size_mib", 350.0, "MiB", 340.0, "<= 300 MB")
    assert set(f) >= {"name", "value", "unit", "baseline", "ratio", "target"} and f["ratio"] == pytest.approx(1.029, abs=1e-3)


def test_bundle_figures_names_the_largest_parts(tmp_path, repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    import bundle_figures as bf

    internal = tmp_path / "b" / "_internal"
    (internal / "llvmlite" / "binding").mkdir(parents=True)
    (internal / "llvmlite" / "binding" / "libllvmlite.so").write_bytes(b"x" * 3 * 2**20)
    (internal / "libicudata.so.73").write_bytes(b"x" * 2**20)
    (internal / "libicudata.so").symlink_to(internal / "libicudata.so.73")  # links are not counted twice
    (tmp_path / "b" / "mia-elite").write_bytes(b"x" * 2 * 2**20)
    parts = bf.largest_parts(tmp_path / "b")
    assert [n for n, _ in parts] == ["_internal/llvmlite", "mia-elite", "_internal/libicudata.so.73"]
    assert parts[0][1] == pytest.approx(3.0)
