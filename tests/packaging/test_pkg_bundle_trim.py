"""What the bundle leaves out (issue 18 item 7, packaging/BUNDLE.md), checked without building it:
the ICU data subset on the real PySide6 library, the QtOpenGL stand-in with real pyqtgraph
drawing, the spec's drop patterns on Linux and Windows names, and the loaded-modules check."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def pkg(repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    return repo_root / "packaging"


def _real_icu_data() -> Path:
    import PySide6

    libs = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    libs = [p for p in libs if not p.is_symlink()]
    if not libs:
        pytest.skip("this PySide6 has no libicudata (not Linux, or Qt built without ICU)")
    return libs[0]


def test_icu_package_reads_back_and_the_subset_keeps_what_qt_uses(pkg):
    import icu_subset as iu

    lib = _real_icu_data()
    raw = lib.read_bytes()
    sym = "icudt" + lib.name.rsplit(".", 1)[1] + "_dat"
    off, size = iu._elf_symbol_offset(raw, sym)
    header, items = iu.read_package(raw[off:off + size])
    assert len(items) > 3000 and header[12:16] == b"CmnD"
    again = iu.read_package(iu.write_package(header, items))
    # same names and same item bytes (padding between items may differ: ICU ignores it)
    assert [n for n, _ in again[1]] == [n for n, _ in items]
    assert all(a.rstrip(b"\0\xaa") == b.rstrip(b"\0\xaa") for (_n, a), (_m, b) in zip(again[1], items))

    symbol, package, n_all, n_kept = iu.subset_data(lib)
    assert symbol == sym and n_all == len(items) and 20 < n_kept < 200
    kept = {n.split("/", 1)[1] for n, _ in iu.read_package(package)[1]}
    for need in ("root.res", "pool.res", "res_index.res", "en.res", "zoneinfo64.res", "metaZones.res",
                 "coll/root.res", "coll/ucadata.icu", "zone/en.res", "zone/root.res", "cnvalias.icu", "nfkc.nrm"):
        assert need in kept, need
    for drop in ("de.res", "coll/de.res", "zone/fr.res", "unames.icu"):
        assert drop not in kept, drop
    assert not any(n.endswith(".cnv") or n.startswith(("brkitr/", "translit/", "curr/", "lang/")) for n in kept)
    assert len(package) < 0.15 * size


def test_icu_reader_refuses_what_is_not_icu_data(pkg, tmp_path):
    import icu_subset as iu

    with pytest.raises(iu.IcuDataError, match="magic"):
        iu.read_package(b"\x20\x00\x00\x00" + b"\0" * 60)
    with pytest.raises(iu.IcuDataError, match="CmnD"):
        iu.read_package(b"\x20\x00\xda\x27" + b"\x14\x00\x00\x00\x00\x00\x02\x00ResB\x01" + b"\0" * 60)
    with pytest.raises(iu.IcuDataError, match="ELF"):
        iu._elf_symbol_offset(b"not an elf file at all", "icudt73_dat")
    bad = tmp_path / "libicudata.so"
    bad.write_bytes(b"x")
    with pytest.raises(iu.IcuDataError, match="version"):
        iu.subset_data(bad)
    assert iu.shrink_icu_data(tmp_path / "nothing-here") == (0, 0)


_QT_ICU_PROBE = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QCollator, QDateTime, QLocale, QTimeZone
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    c = QCollator(QLocale("en_US"))
    words = ["delta", "Bid", "ask", "VWAP", "aggressor", "Zeta", "book"]
    tz = QTimeZone(b"America/Chicago")
    when = QDateTime.fromMSecsSinceEpoch(1703500000000, QTimeZone.utc())
    maps = open("/proc/self/maps").read()
    print(json.dumps({"order": sorted(words, key=c.sortKey), "cmp": c.compare("a", "B") < 0,
                      "tz": tz.displayName(when, QTimeZone.NameType.LongName, QLocale("en_US")),
                      "upper": QLocale("tr_TR").toUpper("istanbul"),
                      "icudata": sorted({l.split()[-1] for l in maps.splitlines() if "libicudata" in l})}))
""")


def test_icu_subset_library_gives_qt_the_same_collation_and_zone_names(pkg, tmp_path):
    import icu_subset as iu

    lib = _real_icu_data()
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the bundle then keeps the full ICU data")
    out = tmp_path / "lib"
    out.mkdir()
    shutil.copyfile(lib, out / lib.name)
    before, after = iu.shrink_icu_data(out, report=tmp_path / "kept.txt")
    assert before == lib.stat().st_size and after < before / 8
    assert "icudt" in (tmp_path / "kept.txt").read_text()

    def probe(extra_env):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", **extra_env)
        r = subprocess.run([sys.executable, "-c", _QT_ICU_PROBE], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr

    full, _ = probe({})
    # LD_LIBRARY_PATH comes before Qt's RUNPATH ($ORIGIN), so libicuuc maps the subset library
    small, err = probe({"LD_LIBRARY_PATH": str(out)})
    assert small["icudata"] == [str(out / lib.name)] and full["icudata"] != small["icudata"]
    assert small["order"] == full["order"] == ["aggressor", "ask", "Bid", "book", "delta", "VWAP", "Zeta"]
    assert small["cmp"] and small["tz"] == full["tz"] == "Central Standard Time"
    assert small["upper"] == full["upper"] == "\u0130STANBUL"
    assert "Could not create collator" not in err


def test_qtopengl_standin_lets_pyqtgraph_draw_and_says_why_on_use(pkg):
    code = textwrap.dedent(f"""
        import sys, importlib.abc
        sys.path.insert(0, {str(pkg)!r})
        class NoGL(importlib.abc.MetaPathFinder):  # as in the bundle: the real module is absent
            def find_spec(self, name, path=None, target=None):
                if name == "PySide6.QtOpenGL":
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NoGL())
        import frozen_setup
        mod = frozen_setup.qtopengl_standin()
        assert mod is not None and sys.modules["PySide6.QtOpenGL"] is mod
        assert frozen_setup.qtopengl_standin() is None  # once
        import numpy as np, pyqtgraph as pg
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        pg.setConfigOptions(useOpenGL=False)
        w = pg.PlotWidget()
        w.plot(np.arange(50.0), np.sin(np.arange(50.0)), pen="y")
        w.addItem(pg.ImageItem(np.random.default_rng(1).random((20, 30))))
        w.resize(320, 200)
        img = w.grab().toImage()
        assert img.width() == 320 and len({{img.pixel(x, 100) for x in range(0, 320, 4)}}) > 2
        try:
            mod.QOpenGLBuffer
        except ImportError as exc:
            assert "not in this bundle" in str(exc)
        else:
            raise AssertionError("the stand-in must refuse use")
        print("drawn")
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "drawn" in r.stdout, r.stderr[-3000:]


def test_qtopengl_standin_not_installed_when_the_real_module_exists(pkg, monkeypatch):
    import frozen_setup

    pytest.importorskip("PySide6.QtOpenGL")
    assert frozen_setup.qtopengl_standin() is None  # already imported
    monkeypatch.delitem(sys.modules, "PySide6.QtOpenGL")
    assert frozen_setup.qtopengl_standin() is None  # found on the path


def _drop_pattern(spec_text: str) -> re.Pattern:
    tree = ast.parse(spec_text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_DROP_ALWAYS":
            call = node.value
            return re.compile(ast.literal_eval(call.args[0]), re.IGNORECASE)
    raise AssertionError("no _DROP_ALWAYS in the spec")


def test_spec_drop_patterns_hold_for_linux_and_windows_names(pkg):
    pat = _drop_pattern((pkg / "mia_elite.spec").read_text(encoding="utf-8"))

    def dropped(name):
        return bool(pat.search(name.replace("\\", "/")))

    for name in ("PySide6/opengl32sw.dll", "PySide6\\d3dcompiler_47.dll", "PySide6/libEGL.dll",
                 "python3.11/lib-dynload/_codecs_jp.cpython-311-x86_64-linux-gnu.so", "_codecs_kr.pyd",
                 "_multibytecodec.pyd", "zstandard/_cffi.cpython-311-x86_64-linux-gnu.so",
                 "zstandard\\_cffi.cp311-win_amd64.pyd", "PySide6/Qt/translations/qt_de.qm",
                 "PySide6/translations/qtbase_fr.qm",
                 "PySide6/resources/icudtl.dat", "PySide6/Qt/resources/qtwebengine_resources.pak", "numba/np/ufunc/omppool.cpython-311-x86_64-linux-gnu.so",
                 "numba\\np\\ufunc\\tbbpool.cp311-win_amd64.pyd"):
        assert dropped(name), name
    for name in ("PySide6/Qt6Gui.dll", "PySide6/Qt/lib/libQt6OpenGL.so.6", "PySide6/Qt6OpenGLWidgets.dll",
                 "zstandard/backend_c.cpython-311-x86_64-linux-gnu.so", "_codecs.pyd",
                 "python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
                 "PySide6/Qt/lib/libicudata.so.73", "llvmlite/binding/llvmlite.dll", "numba/np/ufunc/workqueue.pyd"):
        assert not dropped(name), name


def test_spec_excludes_read_from_the_spec(pkg):
    import bundle_figures as bf

    ex = bf.spec_excludes()
    assert {"PySide6.QtOpenGL", "PySide6.QtWebEngineCore", "pandas", "PIL", "zstandard.backend_cffi"} <= set(ex)
    assert "PySide6.QtOpenGLWidgets" not in ex and "PySide6.QtWidgets" not in ex


def test_compare_loaded_names_unexplained_modules_and_unused_libraries(pkg, tmp_path):
    import bundle_figures as bf

    b = tmp_path / "MIA Elite"
    (b / "_internal" / "big").mkdir(parents=True)
    used = b / "_internal" / "libused.so.1"
    used.write_bytes(b"x" * 2**20)
    unused = b / "_internal" / "big" / "unused.pyd"
    unused.write_bytes(b"x" * 3 * 2**20)
    (b / "_internal" / "notes.txt").write_text("data, not a library")
    bundle_doc = {"modules": ["app", "numpy", "PySide6.QtOpenGL (stand-in)", "pyimod02_importers"],
                  "shared_objects": [str(used), "/usr/lib/libc.so.6"]}
    source_doc = {"modules": ["app", "numpy", "PySide6.QtOpenGL", "PySide6.QtSvg", "__editable___mia_finder",
                              "_distutils_hack", "app.extra"], "shared_objects": []}
    out = bf.compare_loaded(bundle_doc, source_doc, b, ["PySide6.QtSvg", "pandas"])
    assert out["unexplained"] == ["app.extra"]
    assert out["excluded"] == ["PySide6.QtSvg"] and out["standins"] == ["PySide6.QtOpenGL"]
    assert out["loaded_files"] == 1 and out["loaded_mib"] == pytest.approx(1.0)
    assert out["never_loaded_files"] == 1 and out["never_loaded"][0][0].endswith("unused.pyd")
    source_doc["modules"].remove("app.extra")
    assert bf.compare_loaded(bundle_doc, source_doc, b, ["PySide6.QtSvg"])["unexplained"] == []


def test_loaded_report_lists_modules_and_mapped_libraries(pkg, tmp_path):
    import frozen_setup
    import numpy  # noqa: F401  (its extension module must show as mapped)

    target = tmp_path / "loaded.json"
    frozen_setup.write_loaded_report(target)
    doc = json.loads(target.read_text())
    assert "json" in doc["modules"] and "numpy" in doc["modules"] and doc["frozen"] is False
    if sys.platform.startswith("linux"):
        assert any(Path(p).name.startswith("_multiarray_umath") for p in doc["shared_objects"])


def test_size_baseline_file_is_read(pkg, tmp_path):
    import bundle_figures as bf

    mib, what = bf.baseline_size()
    assert mib == pytest.approx(362.6) and "58cabbb" in what
    assert bf.baseline_size(tmp_path / "missing.json")[0] is None


def test_refuse_finder_fails_imports_as_the_bundle_would_and_records_them(pkg, monkeypatch):
    import bundle_figures as bf

    finder = bf._Refuse(["colorsys", "email.mime"])
    monkeypatch.setattr(sys, "meta_path", [finder] + sys.meta_path)
    for name in ("colorsys", "email.mime.text"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ModuleNotFoundError, match="left out of the bundle"):
        __import__("colorsys")
    with pytest.raises(ModuleNotFoundError):
        __import__("email.mime.text")
    import email.utils  # noqa: F401  (a sibling of a refused package still imports)

    assert finder.refused == {"colorsys", "email.mime"}


def test_shared_pyz_hook_points_the_importer_at_the_console_archive(pkg, tmp_path, monkeypatch):
    import types

    import shared_pyz

    src = shared_pyz.hook_source("mia-elite.exe", 98520)
    compile(src, shared_pyz.HOOK_NAME, "exec")
    opened = []

    class Reader:
        def __init__(self, path, start_offset=None, check_pymagic=False):
            if not os.path.exists(path):
                raise FileNotFoundError(path)
            opened.append((path, start_offset, check_pymagic))

    archive = types.ModuleType("pyimod01_archive")
    archive.ZlibArchiveReader = Reader
    importers = types.ModuleType("pyimod02_importers")
    importers.pyz_archive, importers._pyz_tree = "own", {"stale": 1}
    monkeypatch.setitem(sys.modules, "pyimod01_archive", archive)
    monkeypatch.setitem(sys.modules, "pyimod02_importers", importers)
    exe_dir = tmp_path / "MIA Elite"
    exe_dir.mkdir()
    monkeypatch.setattr(sys, "executable", str(exe_dir / "MIA Elite.exe"))
    sys.path_importer_cache["sentinel-entry"] = None
    with pytest.raises(RuntimeError, match="reinstall MIA Elite"):  # console executable missing
        exec(src, {})
    assert importers.pyz_archive == "own"
    (exe_dir / "mia-elite.exe").write_bytes(b"x")
    exec(src, {})
    assert opened == [(str(exe_dir / "mia-elite.exe"), 98520, True)]
    assert isinstance(importers.pyz_archive, Reader) and importers._pyz_tree is None
    assert "sentinel-entry" not in sys.path_importer_cache
    with pytest.raises(ValueError):
        shared_pyz.hook_source("dir/mia-elite", 1)
    with pytest.raises(ValueError):
        shared_pyz.hook_source("mia-elite", -1)


def test_shared_pyz_keeps_only_the_standard_library_for_the_bootstrap(pkg):
    import sysconfig

    import shared_pyz

    import numpy

    std = sysconfig.get_paths()["stdlib"]
    toc = [("os", os.path.join(std, "os.py"), "PYMODULE"), ("json", os.path.join(std, "json", "__init__.py"), "PYMODULE"),
           ("numpy", numpy.__file__, "PYMODULE"), ("app", str(pkg.parent / "app" / "__init__.py"), "PYMODULE"),
           ("weird", None, "PYMODULE")]
    assert [e[0] for e in shared_pyz.stdlib_only(toc)] == ["os", "json"]
