"""The one numba helper: the compiled-kernel cache folder and the ``njit`` preset of every kernel.

Importing this module, once per process:

1. chooses numba's on-disk cache folder: ``$NUMBA_CACHE_DIR`` when it is already set (by the
   user, the frozen start-up in ``packaging/frozen_setup.py`` or the test run), else
   ``<user cache folder>/numba`` (:func:`app.paths.cache_dir`, created here) written to
   ``$NUMBA_CACHE_DIR`` so child processes and numba's own config reloads agree;
2. imports numba and, when numba was imported earlier without a cache folder, points
   ``numba.config.CACHE_DIR`` at it (the folder is read when a kernel is decorated);
3. defines the decorator presets.

Every kernel module takes its decorator from here (``from app.core.jit import kernel``) and
never sets up the cache itself. The plain-NumPy twins of the kernels live in ``*_ref`` modules
beside them and do not need this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from app import paths

__all__ = ["CACHE_DIR", "kernel", "unaligned_load"]


def _cache_folder() -> Path:
    """The cache folder (``$NUMBA_CACHE_DIR`` wins), set in the environment before numba loads."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return Path(chosen)
    d = paths.cache_dir() / "numba"
    d.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    return d


#: Folder holding numba's compiled kernels for this process (index files ``*.nbi``).
CACHE_DIR: Path = _cache_folder()

import numba  # noqa: E402  (after the cache folder is in the environment)

if not numba.config.CACHE_DIR:  # numba was imported before this module, with no folder set
    numba.config.CACHE_DIR = str(CACHE_DIR)

#: Decorator of every kernel: compiled to machine code (``njit``), the GIL released while it
#: runs (``nogil``, so the engine and follower threads run beside the GUI) and cached on disk
#: in :data:`CACHE_DIR` (``cache``, so later starts load instead of compiling). Used as
#: ``@kernel`` or ``kernel(py_function)``.
kernel = numba.njit(nogil=True, cache=True)


def unaligned_load(dtype) -> object:
    """A numba intrinsic ``load(buf, offset)`` for kernels that read packed binary records.

    Parameters
    ----------
    dtype : {"uint16", "uint32", "int64", "float32", "float64"}
        The little-endian machine type read.

    Returns
    -------
    callable
        Usable inside kernels only: ``load(buf, offset)`` is the value of ``dtype`` stored at
        byte ``offset`` of the 1-D uint8 array ``buf``, read with one unaligned machine load
        (packed DTC frames put their fields at any alignment). No bounds check: the caller
        checks the record lies inside ``buf``. Little-endian hosts only (x86-64, arm64).

    Raises
    ------
    KeyError
        If ``dtype`` is not one of the names above.
    """
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    nbtype, lltype = {
        "uint16": (types.uint16, ir.IntType(16)),
        "uint32": (types.uint32, ir.IntType(32)),
        "int64": (types.int64, ir.IntType(64)),
        "float32": (types.float32, ir.FloatType()),
        "float64": (types.float64, ir.DoubleType()),
    }[dtype]

    @intrinsic
    def load(typingctx, arr, off):
        sig = nbtype(arr, off)

        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), lltype.as_pointer())
            v = builder.load(ptr)
            v.align = 1
            return v

        return sig, codegen

    return load
