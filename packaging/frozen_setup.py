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
4. ``PySide6.QtOpenGL`` is not shipped (8.5 MiB of bindings; packaging/BUNDLE.md):
   :func:`qtopengl_standin` puts a stand-in module in its place before pyqtgraph is imported
   (pyqtgraph imports it at import time but uses it only to draw through OpenGL, which the app
   turns off); any use of it raises ``ImportError`` naming the reason.
5. With ``MIA_ELITE_LOADED_REPORT=<file>`` in the environment, the process writes at exit what
   it loaded (:func:`write_loaded_report`): the bundle check compares it with what the bundle
   ships and with a run from source.
6. The window's start-up helpers: ``app.ui.main.make_app`` is wrapped so that the crash dialog
   (:func:`app.ui.crash.install_excepthook`) and the splash (:func:`app.ui.splash.show_splash`)
   are installed as soon as the ``QApplication`` exists. Both are idempotent, so this stays
   harmless once ``app/ui/main.py`` calls them itself.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

#: Folder of the bundle (``_internal``) holding the kernels compiled for a generic x86-64 CPU.
SHIPPED_CACHE = "numba_cache_generic"
#: File in the user's numba folder saying the host-tuned kernels were compiled there.
HOST_MARK = "host-kernels.ok"
#: Seconds after the window's start before the host-tuned compile begins.
HOST_COMPILE_DELAY_S = 60.0
#: Environment variable of the host-tuned compile (a child process): no generic CPU for it.
HOST_ENV = "MIA_ELITE_HOST_KERNELS"
#: Environment variable naming the file :func:`write_loaded_report` writes at exit.
LOADED_REPORT_ENV = "MIA_ELITE_LOADED_REPORT"
#: The Qt module left out of the bundle and replaced by :func:`qtopengl_standin`.
QTOPENGL = "PySide6.QtOpenGL"


def qtopengl_standin(force: bool = False) -> types.ModuleType | None:
    """Put a stand-in for ``PySide6.QtOpenGL`` in ``sys.modules`` when the real one is absent.

    pyqtgraph (0.13-0.14) imports ``PySide6.QtOpenGL`` in ``graphicsItems/PlotCurveItem.py``,
    ``PColorMeshItem.py`` and ``Qt/OpenGLHelpers.py`` but reads its attributes only on the
    OpenGL drawing path (``useOpenGL``/``enableExperimental``), which the app never enables. The
    stand-in's attribute access raises ``ImportError`` ("... not in this bundle ..."), so a path
    that would need OpenGL fails loudly instead of drawing wrong.

    Parameters
    ----------
    force : bool
        Install it even when the real module can be found (tests).

    Returns
    -------
    module or None
        The stand-in, or None when the real module exists (or one is already imported).
    """
    if QTOPENGL in sys.modules:
        return None
    if not force:
        try:
            if importlib.util.find_spec(QTOPENGL) is not None:
                return None
        except (ImportError, ValueError):
            pass
    mod = types.ModuleType(QTOPENGL, "Stand-in: PySide6.QtOpenGL is not shipped in this bundle "
                                     "(packaging/BUNDLE.md); the app draws without OpenGL.")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"{QTOPENGL}.{name}: PySide6.QtOpenGL is not in this bundle (the app draws "
                          "with Qt's raster engine; pyqtgraph's useOpenGL must stay off)")

    mod.__getattr__ = __getattr__
    mod.__mia_standin__ = True
    sys.modules[QTOPENGL] = mod
    return mod


def loaded_files() -> list[str]:
    """Paths of the shared libraries mapped into this process (psutil memory maps; on Linux
    ``/proc/self/maps`` when psutil is missing), sorted, each once."""
    paths: set[str] = set()
    try:
        import psutil

        for m in psutil.Process().memory_maps(grouped=True):
            paths.add(m.path)
    except Exception:  # psutil missing or the platform refuses: Linux's own table
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].startswith("/"):
                        paths.add(parts[5].strip())
        except OSError:
            pass
    low = (".so", ".pyd", ".dll", ".dylib")
    return sorted(p for p in paths if p.lower().endswith(low) or ".so." in os.path.basename(p))


def write_loaded_report(path: str | os.PathLike) -> None:
    """Write ``{"modules": [...], "shared_objects": [...], "executable": ..}`` (JSON) to ``path``:
    the names in ``sys.modules`` (stand-ins marked ``"<name> (stand-in)"``) and
    :func:`loaded_files`. Errors are ignored (a report must never fail the run)."""
    try:
        mods = sorted(f"{k} (stand-in)" if getattr(v, "__mia_standin__", False) else k
                      for k, v in list(sys.modules.items()))
        doc = {"executable": sys.executable, "frozen": bool(getattr(sys, "frozen", False)),
               "modules": mods, "shared_objects": loaded_files()}
        Path(path).write_text(json.dumps(doc, indent=0), encoding="utf-8")
    except Exception:
        pass


def _loaded_report_at_exit() -> None:
    target = os.environ.get(LOADED_REPORT_ENV)
    if target:
        atexit.register(write_loaded_report, target)


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
    _loaded_report_at_exit()
    if getattr(sys, "frozen", False):
        qtopengl_standin()
    _numba_cache(kind)
    from app.ui.crash import install_cli_excepthook

    install_cli_excepthook()
    _wire_window_helpers()
