"""The house's layering rules (DESIGN.md, "Layout"), checked by walking the package.

Every ``import`` / ``from ... import`` of an ``app.*`` module anywhere in a module (at the top or
inside a function: a lazy import is still a dependency) must go to the same package or to a
floor below it. Qt (PySide6, shiboken6, pyqtgraph, qasync) is imported only under ``app/ui``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# the top-level modules of the ground floor, importable from anywhere
GROUND = {"__init__", "paths", "logs"}

#: package -> the packages it may import besides itself and the ground floor
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "dtc": {"core"},
    "config": {"core"},
    "feeds": {"core", "config"},
    "market": {"core", "config", "feeds"},
    "analysis": {"core", "config", "feeds", "market"},
    "sim": {"core", "config", "dtc", "feeds", "market"},
    "trading": {"core", "config", "dtc", "feeds", "market", "sim"},
    "live": {"core", "config", "dtc", "feeds", "market", "analysis", "sim", "trading"},
    "ui": {"core", "config", "dtc", "feeds", "market", "analysis", "sim", "trading", "live", "research"},
    "research": {"core", "config", "feeds", "market", "analysis", "sim", "live"},
    "bench": {"core", "config", "dtc", "feeds", "market", "analysis", "sim", "trading", "live", "ui", "research"},
    "cli": {"core", "config", "dtc", "feeds", "market", "analysis", "sim", "trading", "live", "ui", "bench",
            "research"},
    "__main__": {"cli"},
}
QT = ("PySide6", "shiboken6", "pyqtgraph", "qasync")


def _modules():
    for p in sorted(APP.rglob("*.py")):
        rel = p.relative_to(APP)
        pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        yield p, rel, pkg


def _imports(path: Path):
    """(line, absolute dotted name) of every import in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    mod_parts = ["app", *path.relative_to(APP).with_suffix("").parts]
    if mod_parts[-1] == "__init__":
        mod_parts = mod_parts[:-1]
        here = mod_parts
    else:
        here = mod_parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for a in node.names:  # "from app import ui" imports the package app.ui
                if name == "app" and ((APP / a.name).is_dir() or (APP / f"{a.name}.py").is_file()):
                    yield node.lineno, f"app.{a.name}"


def test_every_app_package_has_a_floor():
    pkgs = {pkg for _p, rel, pkg in _modules() if len(rel.parts) > 1}
    assert pkgs <= set(ALLOWED), f"packages without a floor in ALLOWED: {sorted(pkgs - set(ALLOWED))}"


def test_imports_go_only_downward():
    bad = []
    for path, rel, pkg in _modules():
        if pkg in GROUND:
            allowed: set[str] = set()
        else:
            allowed = ALLOWED[pkg]
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "app" or len(parts) == 1:
                continue
            target = parts[1]
            if target in GROUND or target == pkg or target in allowed:
                continue
            bad.append(f"app/{rel}:{line} ({pkg}) imports {name}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("floor,forbidden", [
    ("dtc", ("app.trading", "app.sim", "app.market", "app.ui")),
    ("market", ("app.analysis",)),
    ("core", ("app.dtc", "app.feeds", "app.market", "app.analysis", "app.sim", "app.trading", "app.live", "app.ui")),
])
def test_named_rules_of_the_issue(floor, forbidden):
    hits = [f"app/{rel}:{line} imports {name}" for path, rel, pkg in _modules() if pkg == floor
            for line, name in _imports(path) if name.startswith(forbidden)]
    assert not hits, "\n".join(hits)


def test_qt_is_imported_only_under_app_ui():
    hits = [f"app/{rel}:{line} imports {name}" for path, rel, pkg in _modules() if pkg != "ui"
            for line, name in _imports(path) if name.split(".")[0] in QT]
    assert not hits, "Qt outside app/ui:\n" + "\n".join(hits)


def test_no_monkeypatched_market_callback():
    """Trading hears the market through the pipeline's fan-out, never by patching a callback."""
    hits = [f"app/{rel}" for path, rel, _pkg in _modules() if "_hook_market" in path.read_text(encoding="utf-8")]
    assert not hits, f"_hook_market is still in {hits}"
