"""Build helper: strip the ELF files of an assembled Linux bundle, except auditwheel-repaired ones.

PyInstaller's ``strip=True`` runs ``strip`` on every collected library. Libraries that
auditwheel repaired with patchelf (the ``<package>.libs/`` folders, e.g. numpy's OpenBLAS, and
the extension modules of those packages) no longer load after that ("ELF load command
address/offset not page-aligned"). This strips everything else (libpython, llvmlite, Qt,
zstandard, ...), which is where the size is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_ELF_MAGIC = b"\x7fELF"


def _is_elf(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == _ELF_MAGIC
    except OSError:
        return False


def _patched_packages(internal: Path) -> set[str]:
    """Top-level names whose files auditwheel patched: ``numpy`` for ``numpy.libs``."""
    return {d.name[:-5] for d in internal.iterdir() if d.is_dir() and d.name.endswith(".libs")}


def strip_bundle(bundle: Path, report: Path | None = None, strip: str | None = None) -> tuple[int, int]:
    """Strip the ELF files under ``bundle`` in place (not the auditwheel-patched ones).

    Parameters
    ----------
    bundle : Path
        The one-folder bundle (``dist/MIA Elite``).
    report : Path, optional
        Write one line per file (bytes before, after, relative path) there.
    strip : str, optional
        The ``strip`` program (default: found on PATH).

    Returns
    -------
    (int, int)
        Bytes before and after, summed over the files considered. (0, 0) when no ``strip``
        program exists (the bundle is then left as it is).
    """
    tool = strip or shutil.which("strip")
    if tool is None:
        print("strip_bundle: no 'strip' program found; bundle left unstripped")
        return 0, 0
    internal = bundle / "_internal"
    skip_top = _patched_packages(internal) if internal.is_dir() else set()
    lines = []
    before = after = 0
    for root, _dirs, names in os.walk(bundle):
        for n in names:
            p = Path(root) / n
            if p.is_symlink() or not _is_elf(p):
                continue
            rel = p.relative_to(internal) if internal in p.parents else p.relative_to(bundle)
            top = rel.parts[0] if len(rel.parts) > 1 else ""
            if top.endswith(".libs") or top in skip_top:
                continue
            if p.parent == bundle:
                continue  # the executables: bootloader + appended archive, never strip
            b = p.stat().st_size
            r = subprocess.run([tool, "--strip-unneeded", str(p)], capture_output=True, text=True, timeout=120)
            a = p.stat().st_size
            before += b
            after += a
            lines.append(f"{b}\t{a}\t{rel}" + ("" if r.returncode == 0 else f"\tFAILED: {r.stderr.strip()}"))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"strip_bundle: {len(lines)} files, {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return before, after
