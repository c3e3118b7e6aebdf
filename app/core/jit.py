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

__all__ = ["CACHE_DIR", "kernel"]


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
