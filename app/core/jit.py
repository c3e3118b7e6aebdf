"""The one numba helper: the compiled-kernel cache folder and the ``njit`` preset of every kernel.

Importing this module, once per process:

1. chooses numba's on-disk cache folder: ``$NUMBA_CACHE_DIR`` when it is already set (by the
   user, the frozen start-up in ``packaging/frozen_setup.py`` or the test run), else
   ``<user cache folder>/numba`` (:func:`app.paths.cache_dir`, created here) written to
   ``$NUMBA_CACHE_DIR`` so child processes and numba's own config reloads agree;
2. imports numba and, when numba was imported earlier without a cache folder, points
   ``numba.config.CACHE_DIR`` at it (the folder is read when a kernel is decorated);
3. puts :class:`AppCacheLocator` first among numba's cache locators, so the cache of the app's
   own kernels can be moved: its folders are named after each module's place in the ``app``
   package (not its absolute path) and an entry is valid while the module's source is the
   same (a hash of the file's bytes, also in the frozen app, where numba's own locators stamp
   entries with the executable). A cache built once, for a generic CPU (below), therefore
   loads from another folder, another install path and another machine: the bundle ships one;
4. defines the decorator presets.

Portable cache: numba keys each compiled overload by the target triple, CPU name and CPU
features (``codegen.magic_tuple()``; numba's "Notes on Caching"). With
``NUMBA_CPU_NAME=generic`` numba compiles for the architecture's baseline and leaves the CPU
features empty (``NUMBA_CPU_FEATURES`` defaults to ``""`` then: ``numba/core/config.py``), so
a cache built that way is used on any x86-64 CPU by a process that also runs with
``NUMBA_CPU_NAME=generic``; without it, numba compiles host-tuned kernels (and caches them
beside the generic ones). ``packaging/ci_bundle_check.sh`` / the spec build the bundle's cache
that way and ``packaging/frozen_setup.py`` uses it.

Every kernel module takes its decorator from here (``from app.core.jit import kernel``) and
never sets up the cache itself. The plain-NumPy twins of the kernels live in ``*_ref`` modules
beside them and do not need this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app import paths

__all__ = ["CACHE_DIR", "AppCacheLocator", "NumbaBlasProbeFinder", "kernel", "kernel_is_cached", "unaligned_load"]

#: Folder of the ``app`` package (its kernels' cache folders are named relative to it).
APP_ROOT = Path(__file__).resolve().parents[1]


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


class NumbaBlasProbeFinder:
    """Import hook that keeps scipy's BLAS out of numba's array-math start-up probe.

    When numba sets up its CPU target (the first kernel compiled or loaded in a process),
    ``numba.np.arraymath`` calls ``_check_blas()``, which imports ``scipy.linalg.cython_blas``
    only to learn whether BLAS-backed functions (``np.dot`` inside ``np.cov`` and the like)
    can use it: importing ``scipy.linalg`` costs 24 MiB resident (scipy's own OpenBLAS) and
    0.3 to 0.5 s, and no app kernel calls a BLAS function. This finder refuses the
    ``scipy.linalg`` import only while that probe runs (``_check_blas`` of
    ``numba.np.arraymath`` on the stack), so numba records "no BLAS" (its inner products then
    use its own loop; ``numba/np/arraymath.py``); every other import of ``scipy.linalg``
    (numba's own ``ensure_blas`` when a kernel does call ``np.dot``, the research commands)
    works as before. Installed first on :data:`sys.meta_path` by importing this module.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "scipy.linalg":
            return None
        f = sys._getframe(1)
        while f is not None:
            if f.f_code.co_name == "_check_blas" and f.f_globals.get("__name__") == "numba.np.arraymath":
                raise ModuleNotFoundError("scipy.linalg is not loaded for numba's BLAS probe (no app kernel "
                                          "uses BLAS)", name=name)
            f = f.f_back
        return None


if not any(isinstance(f, NumbaBlasProbeFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, NumbaBlasProbeFinder())

import numba  # noqa: E402  (after the cache folder is in the environment)

if not numba.config.CACHE_DIR:  # numba was imported before this module, with no folder set
    numba.config.CACHE_DIR = str(CACHE_DIR)

from numba.core import caching as _caching  # noqa: E402


class AppCacheLocator(_caching._CacheLocator):
    """numba cache locator of the app's own kernels, independent of where the app is installed.

    The entries of ``app/<pkg>/<module>.py`` go to ``$NUMBA_CACHE_DIR/app-<pkg>`` (numba's
    own :class:`numba.core.caching.UserProvidedCacheLocator` names the folder after a SHA-1 of
    the module's absolute folder), and an entry's source stamp is the SHA-256 of the module
    file's bytes (numba's locators use the executable's in a frozen app). Functions outside
    the ``app`` package, or with no cache folder set, are left to numba's locators.

    Parameters
    ----------
    py_func : function
        The kernel's Python function.
    py_file : str
        Its source file.
    """

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        rel = Path(py_file).resolve().relative_to(APP_ROOT)
        self._cache_path = os.path.join(numba.config.CACHE_DIR, "-".join(("app", *rel.parent.parts)))

    def get_cache_path(self) -> str:
        """The folder of this module's entries."""
        return self._cache_path

    def get_source_stamp(self):
        """SHA-256 of the module file's bytes (numba's content hash of a source file)."""
        st = os.stat(self._py_file)
        return _caching._hash_source_file(self._py_file, st.st_mtime, st.st_size)

    def get_disambiguator(self) -> str:
        """The kernel's first line number (two kernels of one name in one module differ)."""
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        """A locator for a kernel of the app package, else None (numba tries its own)."""
        if not numba.config.CACHE_DIR or not os.path.isfile(py_file):
            return None
        try:
            Path(py_file).resolve().relative_to(APP_ROOT)
        except ValueError:
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


if AppCacheLocator not in _caching.CacheImpl._locator_classes:
    _caching.CacheImpl._locator_classes.insert(0, AppCacheLocator)

#: Decorator of every kernel: compiled to machine code (``njit``), the GIL released while it
#: runs (``nogil``, so the engine and follower threads run beside the GUI) and cached on disk
#: in :data:`CACHE_DIR` (``cache``, so later starts load instead of compiling). Used as
#: ``@kernel`` or ``kernel(py_function)``.
kernel = numba.njit(nogil=True, cache=True)


def kernel_is_cached(dispatcher) -> bool:
    """True when numba's on-disk cache holds an index of ``dispatcher``'s compiled entries.

    A cheap file check (no compile, no CPU-target set-up): the kernel was compiled in this
    cache folder before, so calling it loads instead of compiling (unless the entries were
    made for another CPU or other argument types: then numba compiles as usual). Lets a
    caller choose a kernel's NumPy twin where a first compile would hold up a first start.

    Parameters
    ----------
    dispatcher : numba dispatcher
        A kernel made with :data:`kernel` (``cache=True``).

    Returns
    -------
    bool
        False also when the dispatcher has no cache or its cache cannot be read.
    """
    try:
        path = dispatcher._cache._cache_file._index_path  # numba.core.caching.IndexDataCacheFile
    except AttributeError:
        return False
    return os.path.isfile(path)


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
