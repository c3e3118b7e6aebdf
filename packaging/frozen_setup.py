"""Start-up of the frozen executables (imported first by ``entry_gui.py`` / ``entry_cli.py``).

What it does, in order, before any app module that imports numba:

1. Windowed executable on Windows: ``sys.stdout``/``sys.stderr`` are ``None`` there; they are
   pointed at ``os.devnull`` so ``print`` and the console log handler cannot raise.
2. numba's on-disk cache goes to the user cache folder, ``<cache>/numba/bundle``, one folder
   for both executables (the app's kernels are stamped with their source files' hashes, not
   with the executable: :class:`app.core.jit.AppCacheLocator`). ``NUMBA_CACHE_DIR`` set by the
   user wins. The folder is handed on in ``NUMBA_CACHE_DIR``, which :mod:`app.core.jit` (the
   app's one numba helper) keeps when a kernel module imports it.
   The bundle ships the kernels compiled for a generic x86-64 CPU (``_internal/``
   :data:`SHIPPED_CACHE`, built by the spec with ``NUMBA_CPU_NAME=generic``). Until the host's
   own kernels exist (:data:`HOST_MARK` in the folder), the shipped files are copied into the
   user folder (those not there yet) and the process runs with ``NUMBA_CPU_NAME=generic``, so
   a first start loads them on any CPU instead of compiling; the window then starts, after
   :data:`HOST_COMPILE_DELAY_S` and at low priority, ``mia-elite analyze default`` without that
   setting (``MIA_ELITE_HOST_KERNELS=1``), which compiles the host-tuned kernels into the same
   folder; when it succeeds it writes :data:`HOST_MARK` and later starts use them.
3. The CLI crash hook (:func:`app.ui.crash.install_cli_excepthook`): unhandled exceptions are
   logged with their traceback and the log file is named on stderr.
4. The window's start-up helpers: ``app.ui.main.make_app`` is wrapped so that the crash dialog
   (:func:`app.ui.crash.install_excepthook`) and the splash (:func:`app.ui.splash.show_splash`)
   are installed as soon as the ``QApplication`` exists. Both are idempotent, so this stays
   harmless once ``app/ui/main.py`` calls them itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

#: Folder of the bundle (``_internal``) holding the kernels compiled for a generic x86-64 CPU.
SHIPPED_CACHE = "numba_cache_generic"
#: File in the user's numba folder saying the host-tuned kernels were compiled there.
HOST_MARK = "host-kernels.ok"
#: Seconds after the window's start before the host-tuned compile begins.
HOST_COMPILE_DELAY_S = 60.0
#: Environment variable of the host-tuned compile (a child process): no generic CPU for it.
HOST_ENV = "MIA_ELITE_HOST_KERNELS"


def _null_streams() -> None:
    if sys.stdout is None or sys.stderr is None:
        null = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives for the process
        if sys.stdout is None:
            sys.stdout = null
        if sys.stderr is None:
            sys.stderr = null


def _numba_cache(kind: str) -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from app.paths import cache_dir

    d = cache_dir() / "numba" / "bundle"
    d.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    if os.environ.get(HOST_ENV) or (d / HOST_MARK).exists():
        return  # the host-tuned kernels (being) compiled there
    shipped = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent / "_internal")) / SHIPPED_CACHE
    if not shipped.is_dir():
        return
    seed_cache(shipped, d)
    os.environ["NUMBA_CPU_NAME"] = "generic"  # the shipped kernels' target (numba then uses no CPU features)
    if kind == "gui":
        t = threading.Timer(HOST_COMPILE_DELAY_S, compile_host_kernels, args=(d,))
        t.daemon = True
        t.start()


def seed_cache(shipped: Path, cache: Path) -> int:
    """Copy the files of ``shipped`` that ``cache`` lacks (same relative paths); returns how many.

    A file that cannot be copied is skipped (numba then compiles that kernel)."""
    n = 0
    for src in shipped.rglob("*"):
        if not src.is_file():
            continue
        dst = cache / src.relative_to(shipped)
        if dst.exists():
            continue
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            n += 1
        except OSError:
            continue
    return n


def compile_host_kernels(cache: Path, timeout_s: float = 1800.0) -> bool:
    """Compile the host-tuned kernels into ``cache`` with the bundle's console executable
    (``mia-elite analyze default``, low priority); write :data:`HOST_MARK` when it succeeded."""
    exe = Path(sys.executable).with_name("mia-elite.exe" if sys.platform == "win32" else "mia-elite")
    if not exe.is_file():
        return False
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env[HOST_ENV] = "1"
    env["NUMBA_CACHE_DIR"] = str(cache)
    kw: dict = {}
    if sys.platform == "win32":
        kw["creationflags"] = 0x00004000 | 0x08000000  # BELOW_NORMAL_PRIORITY_CLASS | CREATE_NO_WINDOW
    else:
        kw["preexec_fn"] = lambda: os.nice(10)
    try:
        r = subprocess.run([str(exe), "analyze", "default", "--progress", "never"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout_s, **kw)
    except (OSError, subprocess.SubprocessError):
        return False
    if r.returncode == 0:
        (cache / HOST_MARK).write_text("host-tuned kernels compiled by mia-elite analyze default\n")
        return True
    return False


def _wire_window_helpers() -> None:
    import app.ui.main as ui_main

    orig = ui_main.make_app
    if getattr(orig, "_mia_wired", False):
        return

    def make_app():
        qapp = orig()
        from app.ui.crash import install_excepthook
        from app.ui.splash import show_splash

        install_excepthook(qapp)
        show_splash(qapp)
        return qapp

    make_app.__doc__ = orig.__doc__
    make_app._mia_wired = True
    ui_main.make_app = make_app


def setup(kind: str) -> None:
    """Prepare the frozen process; ``kind`` is ``"gui"`` or ``"cli"`` (names the numba cache)."""
    _null_streams()
    _numba_cache(kind)
    from app.ui.crash import install_cli_excepthook

    install_cli_excepthook()
    _wire_window_helpers()
