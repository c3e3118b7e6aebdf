"""Build helper: write the Windows version resource (VSVersionInfo) from the package version."""

from __future__ import annotations

from pathlib import Path

_TEMPLATE = """VSVersionInfo(
  ffi=FixedFileInfo(filevers={t}, prodvers={t}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'MIA'),
      StringStruct('FileDescription', 'MIA Elite - companion for Sierra Chart'),
      StringStruct('FileVersion', '{v}'),
      StringStruct('InternalName', 'MIA Elite'),
      StringStruct('OriginalFilename', 'MIA Elite.exe'),
      StringStruct('ProductName', 'MIA Elite'),
      StringStruct('ProductVersion', '{v}')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def version_tuple(version: str) -> tuple[int, int, int, int]:
    """``"0.1.0"`` -> ``(0, 1, 0, 0)``; non-numeric parts (``rc1``) count as 0."""
    parts = []
    for p in version.split(".")[:4]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple((parts + [0, 0, 0, 0])[:4])


def write_version_file(version: str, out: Path) -> Path:
    """Write the PyInstaller version file for ``version`` to ``out`` and return its path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_TEMPLATE.format(t=version_tuple(version), v=version), encoding="utf-8")
    return out
