"""Build helper (Linux): replace the bundle's 30 MiB ICU data library with the part Qt uses.

PySide6's Linux Qt links ICU (``libicuuc``, ``libicui18n``, ``libicudata``); ``libicudata.so.NN``
is nothing but ICU's common data package (one exported symbol, ``icudtNN_dat``) and takes 30.5 of
the bundle's MiB. The app's window never uses what most of it holds: charset converters
(``*.cnv``; the app decodes UTF-8/ASCII in Python), break-iterator dictionaries (Qt breaks text
with its own Unicode tables), transliterators, number spell-out, and the display names of
languages, regions, currencies, units and time zones in every locale (Qt formats numbers and
dates from its own CLDR tables). Qt does use ICU for collation (``QCollator``, natural sorting in
the file dialog), time-zone display names and case mapping (the case tables are compiled into
``libicuuc``, not into the data).

So the bundle gets a data library with the same symbol and SONAME holding only:

* every top-level data item that is not a locale (likely subtags, plural rules, time-zone rules
  ``zoneinfo64``/``metaZones``/``windowsZones``, normalisation ``*.nrm``, stringprep ``*.spp``,
  ``cnvalias.icu`` ...) except the character names ``unames.icu`` and ``confusables.cfu``;
* the ``root``, ``en``, ``en_US`` and ``en_001`` locale bundles at the top, in ``coll/`` and in
  ``zone/``, each tree's ``res_index.res`` and ``pool.res``, and ``coll/ucadata.icu`` (the root
  collation: other locales collate with it, English time-zone names).

A locale or converter that is left out behaves as ICU documents for missing data: a locale falls
back to its parent (finally ``root``), a converter cannot be opened (``QStringDecoder`` for e.g.
Shift_JIS is invalid; UTF-8/16/32 and Latin-1 are Qt's own and unaffected).

Format (ICU User Guide, "ICU Data", and ``udata.h``/``ucmndata.h``): a data item starts with a
``MappedData`` header (``uint16 headerSize``, magic bytes ``0xda 0x27``) and a ``UDataInfo``
(20 bytes: size, reserved, isBigEndian, charsetFamily, sizeofUChar, reserved, dataFormat[4],
formatVersion[4], dataVersion[4]). The common package has dataFormat ``CmnD`` version 1 and,
after its header, an offset table of contents: ``uint32 count``, then ``count`` pairs of
``uint32`` (name offset, data offset), both relative to the table's start; names are
``icudtNNl/<path>``, sorted; items are 16-byte aligned.

The new library is assembled with the system C compiler (``cc``, an ``.incbin`` of the data); on
a machine without one the bundle keeps the full data and this says so. Windows: PySide6's Qt
there uses the system's ICU (no ``icudt*.dll`` is shipped), so this step is Linux only.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

#: Locales kept in each tree (ICU falls back from any other locale to these, finally root).
KEEP_LOCALES = ("root", "en", "en_US", "en_001")
#: Trees (sub-folders of the package) whose kept locales stay; every other tree goes.
KEEP_TREES = ("coll", "zone")
#: Top-level data items dropped although they are not locales.
DROP_TOP = ("unames.icu", "confusables.cfu")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:_[A-Za-z0-9]+)*\.res$")


class IcuDataError(ValueError):
    """The file is not an ICU data library this helper understands."""


def _elf_symbol_offset(raw: bytes, symbol: str) -> tuple[int, int]:
    """File offset and size of a defined dynamic ``symbol`` in an ELF64 little-endian shared object.

    Raises
    ------
    IcuDataError
        Not ELF64 LE, or the symbol is not defined there.
    """
    if raw[:4] != b"\x7fELF" or raw[4] != 2 or raw[5] != 1:
        raise IcuDataError("not an ELF64 little-endian file")
    e_phoff, e_shoff = struct.unpack_from("<QQ", raw, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", raw, 0x36)
    sections = [struct.unpack_from("<IIQQQQIIQQ", raw, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    for sh in sections:
        if sh[1] != 11:  # SHT_DYNSYM
            continue
        strtab = sections[sh[6]]
        s_off, sym_off, sym_size, entsize = strtab[4], sh[4], sh[5], sh[9]
        for k in range(sym_size // entsize):
            st_name, _info, _other, st_shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", raw, sym_off + k * entsize)
            end = raw.index(b"\0", s_off + st_name)
            if st_shndx != 0 and raw[s_off + st_name:end].decode() == symbol:
                for i in range(e_phnum):
                    p_type, _f, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(
                        "<IIQQQQ", raw, e_phoff + i * e_phentsize)
                    if p_type == 1 and p_vaddr <= st_value < p_vaddr + p_filesz:  # PT_LOAD
                        return p_offset + st_value - p_vaddr, st_size
    raise IcuDataError(f"symbol {symbol} not defined")


def read_package(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Split an ICU common data package (``CmnD`` v1, offset TOC) into (header, [(name, item bytes)]).

    ``data`` starts at the package header; names are as stored (``icudtNNl/<path>``). An item's
    bytes run to the next item's start (the last one: to the end of ``data``).

    Raises
    ------
    IcuDataError
        Bad magic, a format other than ``CmnD`` v1, a big-endian package, or a table that does
        not fit in ``data``.
    """
    if len(data) < 32:
        raise IcuDataError("too short for an ICU data header")
    header_size = struct.unpack_from("<H", data, 0)[0]
    if data[2:4] != b"\xda\x27":
        raise IcuDataError("no ICU data magic (0xda 0x27)")
    if data[8] != 0 or data[12:16] != b"CmnD" or data[16] != 1:
        raise IcuDataError(f"not a little-endian CmnD v1 package (format {data[12:16]!r} v{data[16]})")
    toc = header_size
    (count,) = struct.unpack_from("<I", data, toc)
    if toc + 4 + 8 * count > len(data):
        raise IcuDataError(f"table of {count} items does not fit in {len(data)} bytes")
    entries = [struct.unpack_from("<II", data, toc + 4 + 8 * k) for k in range(count)]
    items = []
    for k, (name_off, data_off) in enumerate(entries):
        end_name = data.index(b"\0", toc + name_off)
        end = toc + entries[k + 1][1] if k + 1 < count else len(data)
        items.append((data[toc + name_off:end_name].decode("ascii"), data[toc + data_off:end]))
    return data[:header_size], items


def write_package(header: bytes, items: list[tuple[str, bytes]]) -> bytes:
    """An ICU common data package (the inverse of :func:`read_package`): ``header`` as given,
    the offset TOC of ``items`` sorted by name (ICU looks names up by binary search), names, then
    the items, each aligned to 16 bytes."""
    items = sorted(items, key=lambda t: t[0].encode("ascii"))
    n = len(items)
    names = b""
    name_offs = []
    base = 4 + 8 * n
    for name, _d in items:
        name_offs.append(base + len(names))
        names += name.encode("ascii") + b"\0"
    body_start = base + len(names)
    pad = (-(len(header) + body_start)) % 16
    body = b""
    data_offs = []
    for _name, d in items:
        data_offs.append(body_start + pad + len(body))
        body += d + b"\0" * ((-len(d)) % 16)
    toc = struct.pack("<I", n) + b"".join(struct.pack("<II", a, b) for a, b in zip(name_offs, data_offs))
    return header + toc + names + b"\0" * pad + body


def keep_item(name: str) -> bool:
    """Whether the subset keeps the item ``name`` (``icudtNNl/<path>``; rules in the module doc)."""
    parts = name.split("/")[1:]
    if len(parts) == 1:
        leaf = parts[0]
        if leaf.endswith(".cnv") or leaf in DROP_TOP:
            return False
        if leaf in ("res_index.res", "pool.res"):
            return True
        return not _LOCALE.match(leaf) or leaf[:-4] in KEEP_LOCALES
    if len(parts) == 2 and parts[0] in KEEP_TREES:
        leaf = parts[1]
        return leaf in ("res_index.res", "pool.res", "ucadata.icu", "tzdbNames.res") or leaf[:-4] in KEEP_LOCALES
    return False


def subset_data(lib: Path) -> tuple[str, bytes, int, int]:
    """The kept package of the ICU data library ``lib`` (``libicudata.so.NN``).

    Returns (symbol name, package bytes, items before, items after).

    Raises
    ------
    IcuDataError
        The file name has no version, or the file is not such a library.
    """
    m = re.match(r"libicudata\.so\.(\d+)", lib.name)
    if not m:
        raise IcuDataError(f"{lib.name}: not named libicudata.so.<version>")
    symbol = f"icudt{m.group(1)}_dat"
    raw = lib.read_bytes()
    off, size = _elf_symbol_offset(raw, symbol)
    header, items = read_package(raw[off:off + size] if size else raw[off:])
    kept = [(n, d) for n, d in items if keep_item(n)]
    return symbol, write_package(header, kept), len(items), len(kept)


def build_library(package: bytes, symbol: str, soname: str, out: Path, cc: str | None = None) -> bool:
    """Write a shared object ``out`` exporting ``symbol`` = ``package`` (16-byte aligned, read
    only) with SONAME ``soname``, via the C compiler ``cc`` (default: found on PATH).

    Returns False (nothing written) when there is no C compiler or it fails.
    """
    tool = cc or shutil.which("cc") or shutil.which("gcc")
    if tool is None:
        return False
    with tempfile.TemporaryDirectory(prefix="mia-icu-") as d:
        blob = Path(d) / "data.bin"
        blob.write_bytes(package)
        asm = Path(d) / "icudata.S"
        asm.write_text(
            '\t.section .rodata\n\t.globl {s}\n\t.type {s}, @object\n\t.balign 16\n{s}:\n'
            '\t.incbin "{b}"\n\t.size {s}, . - {s}\n\t.section .note.GNU-stack,"",@progbits\n'
            .format(s=symbol, b=blob.as_posix()), encoding="ascii")
        tmp = Path(d) / soname
        r = subprocess.run([tool, "-shared", "-nostdlib", "-s", f"-Wl,-soname,{soname}", "-o", str(tmp), str(asm)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not tmp.is_file():
            print(f"icu_subset: {tool} failed: {r.stderr.strip()[:300]}")
            return False
        shutil.copyfile(tmp, out)
    return True


def shrink_icu_data(qt_lib: Path, report: Path | None = None) -> tuple[int, int]:
    """Replace ``qt_lib/libicudata.so.NN`` (the bundle's ``PySide6/Qt/lib``) with the subset.

    Returns (bytes before, bytes after); (0, 0) when there is no such library or no C compiler
    (the full data stays, and a line says so). ``report`` gets the kept item names.
    """
    libs = sorted(p for p in qt_lib.glob("libicudata.so.*") if not p.is_symlink()) if qt_lib.is_dir() else []
    if not libs:
        print(f"icu_subset: no libicudata in {qt_lib}; nothing to do")
        return 0, 0
    lib = libs[0]
    symbol, package, n_all, n_kept = subset_data(lib)
    before = lib.stat().st_size
    with tempfile.TemporaryDirectory(prefix="mia-icu-out-") as d:
        out = Path(d) / lib.name
        if not build_library(package, symbol, lib.name, out):
            print("icu_subset: no C compiler (cc); the full ICU data stays in the bundle")
            return 0, 0
        shutil.copyfile(out, lib)
    after = lib.stat().st_size
    if report is not None:
        _h, items = read_package(package)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("\n".join(n for n, _d in items) + "\n", encoding="utf-8")
    print(f"icu_subset: {lib.name}: {n_kept} of {n_all} data items kept, "
          f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    return before, after
