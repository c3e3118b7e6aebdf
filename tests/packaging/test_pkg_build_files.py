"""The build files: spec, version resource, Inno Setup script, Windows workflow (no bundle build here)."""

from __future__ import annotations

import ast
import re
import sys

import pytest


@pytest.fixture
def pkg(repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root / "packaging"))
    return repo_root / "packaging"


def test_spec_compiles_and_names_both_executables(pkg):
    src = (pkg / "mia_elite.spec").read_text(encoding="utf-8")
    tree = ast.parse(src, "mia_elite.spec")  # valid Python
    compile(tree, "mia_elite.spec", "exec")
    calls = {n.func.id: n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for needed in ("Analysis", "PYZ", "EXE", "COLLECT"):
        assert needed in calls, needed
    names = {kw.value.value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "EXE"
             for kw in n.keywords if kw.arg == "name"}
    assert names == {"MIA Elite", "mia-elite"}
    consoles = {kw.value.value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "EXE"
                for kw in n.keywords if kw.arg == "console"}
    assert consoles == {True, False}
    # numba's cache needs the app's kernels as real .py files; no pyarrow, no QtWebEngine
    assert re.search(r'module_collection_mode=\{"app": "py"\}', src)
    assert '"pyarrow"' in src and "QtWebEngineCore" in src
    # both entry scripts exist and run the CLI dispatcher after the frozen set-up
    for entry, kind in (("entry_gui.py", "gui"), ("entry_cli.py", "cli")):
        text = (pkg / entry).read_text(encoding="utf-8")
        assert f'frozen_setup.setup("{kind}")' in text and "from app.cli import main" in text


def test_version_tuple(pkg):
    from packaging_version import version_tuple

    assert version_tuple("0.1.0") == (0, 1, 0, 0)
    assert version_tuple("1.2.3.4.5") == (1, 2, 3, 4)
    assert version_tuple("2.0rc1") == (2, 1, 0, 0)  # digits of "0rc1" -> 01
    assert version_tuple("3") == (3, 0, 0, 0)


def test_version_file_matches_package_version(pkg, tmp_path, repo_root):
    from packaging_version import version_tuple, write_version_file

    import app

    pyproject = (repo_root / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(rf'^version = "{re.escape(app.__version__)}"', pyproject, re.M)
    out = write_version_file(app.__version__, tmp_path / "v" / "version_info.txt")
    text = out.read_text(encoding="utf-8")
    assert f"filevers={version_tuple(app.__version__)}" in text
    assert f"StringStruct('ProductVersion', '{app.__version__}')" in text
    assert "OriginalFilename', 'MIA Elite.exe'" in text
    ast.parse(text, mode="eval")  # PyInstaller evaluates it as one Python expression
    try:
        from PyInstaller.utils.win32 import versioninfo
    except Exception:  # pragma: no cover - PyInstaller not installed
        return
    vi = versioninfo.load_version_info_from_text_file(str(out))
    assert vi.ffi.fileVersionMS == (version_tuple(app.__version__)[0] << 16) | version_tuple(app.__version__)[1]


def test_inno_setup_is_per_user_and_keeps_user_data(pkg):
    iss = (pkg / "installer.iss").read_text(encoding="utf-8")
    assert re.search(r"^PrivilegesRequired=lowest\s*$", iss, re.M)
    assert re.search(r"^DefaultDirName=\{localappdata\}\\Programs\\MIA Elite\s*$", iss, re.M)
    assert re.search(r'^Source: "\.\.\\dist\\MIA Elite\\\*"', iss, re.M)
    assert re.search(r'^Name: "\{group\}\\MIA Elite"; Filename: "\{app\}\\MIA Elite\.exe"', iss, re.M)
    assert "{uninstallexe}" in iss
    # user data is deleted only on an explicit "Yes"; the question defaults to "No"
    code = iss[iss.index("[Code]"):]
    assert "MB_DEFBUTTON2" in code and "= IDYES" in code
    deltree = re.findall(r"DelTree\(([^;]*)\);", code)
    assert len(deltree) == 1
    assert re.search(r"if \(CurUninstallStep = usPostUninstall\) and DeleteUserData then\s*\n\s*DelTree\(", code)
    # the folder it may delete is the app's user folder (platformdirs: <author>\<app name>)
    from app.paths import APP_AUTHOR, APP_NAME

    assert f"{{localappdata}}\\\\{APP_AUTHOR}\\\\{APP_NAME}".replace("\\\\", "\\") in deltree[0]
    # no [UninstallDelete] section that would remove user folders unconditionally
    assert "[UninstallDelete]" not in iss


def test_windows_workflow_builds_bundle_installer_and_runs_selftest(repo_root):
    wf = (repo_root / ".github" / "workflows" / "windows.yml").read_text(encoding="utf-8")
    assert "runs-on: windows-latest" in wf
    assert "packaging/mia_elite.spec" in wf
    assert "--self-test" in wf
    assert "installer.iss" in wf


def test_entry_scripts_are_plain_python(pkg):
    for name in ("entry_gui.py", "entry_cli.py", "frozen_setup.py", "strip_bundle.py", "bundle_figures.py"):
        compile((pkg / name).read_text(encoding="utf-8"), name, "exec")
    assert sys.version_info >= (3, 11)
