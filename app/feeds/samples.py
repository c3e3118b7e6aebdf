"""The shipped demo sample: one real hour of CME ES market-by-order (see resources/samples/PROVENANCE.md).

:func:`load_default_sample` converts the DBN file with :func:`app.feeds.dbn.read_dbn_mbo` and
caches the converted recording (``.mrec``) in the user cache folder, keyed by the sample's size,
modification time and :data:`CONVERTER_VERSION`, so later starts read it directly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app import paths
from app.feeds.recording import Recording, RecordingError, read_recording, write_recording

log = logging.getLogger(__name__)

#: File name of the shipped sample under ``resources/samples/``.
DEFAULT_SAMPLE = "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
#: Bump when :mod:`app.feeds.dbn`'s output changes, so stale caches are rebuilt.
CONVERTER_VERSION = 1


def default_sample_path() -> Path:
    """Path of the shipped ES MBO sample (source checkout or frozen bundle).

    Raises
    ------
    FileNotFoundError
        If the resource is missing (names the path looked at).
    """
    return paths.resource_path("samples", DEFAULT_SAMPLE)


def _cache_path(src: Path) -> Path:
    st = src.stat()
    key = f"{src.name}.{st.st_size}.{int(st.st_mtime)}.v{CONVERTER_VERSION}.mrec"
    return paths.cache_dir() / "samples" / key


def load_default_sample(use_cache: bool = True) -> Recording:
    """Load the demo sample as a :class:`~app.feeds.recording.Recording` (ESH4, tick 0.25, 12.50 USD).

    Parameters
    ----------
    use_cache : bool
        Read/write the converted recording in ``paths.cache_dir()/samples``.

    Returns
    -------
    Recording
        65,045 events (depth + trades) of the ESH4 hour; see :mod:`app.feeds.dbn`.
    """
    from app.feeds.dbn import read_dbn_mbo

    src = default_sample_path()
    cache = _cache_path(src) if use_cache else None
    if cache is not None and cache.exists():
        try:
            return read_recording(cache)
        except (RecordingError, OSError, ValueError, KeyError) as exc:
            log.warning("sample cache %s unreadable (%s); converting again", cache, exc)
    # this conversion runs once per user folder, on a first start: with the kernel not in the
    # numba cache yet, its Python twin (the same events, ~1 s for the hour; a compile takes 30 s)
    from app.core.jit import kernel_is_cached
    from app.feeds.dbn_kernels import _mbo_events

    rec = read_dbn_mbo(src, use_numba=kernel_is_cached(_mbo_events))
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_recording(cache, rec)
        except OSError as exc:  # a read-only cache must not stop the demo
            log.warning("cannot cache converted sample at %s: %s", cache, exc)
    return rec


def sample_dir() -> Path:
    """``resources/samples`` (exists in source checkouts and bundles)."""
    return paths.resources_root() / "samples"


__all__ = ["DEFAULT_SAMPLE", "default_sample_path", "load_default_sample", "sample_dir"]


def load_any(spec: str, symbol: str | None = None, tick_size: float | None = None, market: str | None = None):
    """Load a recording from ``default`` or a path, by its suffix.

    ``symbol``, ``tick_size`` and ``market`` go to the readers that take them (Binance: all
    three; DBN: ``symbol`` and ``tick_size``); None lets the file tell.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        Unknown suffix (the message lists the known ones).
    """
    if spec == "default":
        return load_default_sample()
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"recording not found: {path}")
    name = path.name.lower()
    if name.endswith((".mrec", ".mrec.zst")):
        return read_recording(path)
    if name.endswith((".dbn", ".dbn.zst")):
        from app.feeds.dbn import read_dbn_mbo

        kw = {"tick_size": tick_size} if tick_size else {}
        return read_dbn_mbo(path, symbol=symbol, **kw)
    if name.endswith(".gz"):
        try:
            from app.feeds.binance import read_binance_gz
        except ImportError as exc:
            raise ValueError(f"{path}: the Binance reader is not available ({exc})") from exc
        return read_binance_gz(path, symbol=symbol, tick_size=tick_size, market=market)
    raise ValueError(f"{path}: unknown recording type (known: default, .mrec, .mrec.zst, .dbn, .dbn.zst, .gz)")
