"""The recording format (``.mrec``): a normalised market event stream that the built-in DTC
server, ``mia-elite analyze`` and the recorder all share.

Layout (little endian), appendable and crash-tolerant:

====== ======= ============================================================
offset size    content
====== ======= ============================================================
0      8       magic ``b"MIAREC1\\0"``
8      4       uint32 ``meta_len``: length of the JSON metadata
12     4       uint32 reserved (0)
16     N       UTF-8 JSON metadata, space-padded so records start at a multiple of 64
...    40 * k  records of :data:`app.core.events.EVENT_DTYPE`, in time order
====== ======= ============================================================

Metadata keys: ``instrument`` (:meth:`Instrument.to_dict`), ``source`` (provenance text),
``created`` (ISO time), optional ``extra`` (dict). A file may end with a partial record after a
crash; readers ignore the partial tail (whole records only).

A file whose name ends in ``.zst`` is the same bytes compressed with zstandard (read-only).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.events import EVENT_DTYPE, Instrument

MAGIC = b"MIAREC1\x00"
_ALIGN = 64


class RecordingError(ValueError):
    """A recording file is missing, truncated in its header, or not a recording."""


@dataclass
class Recording:
    """A loaded recording.

    Attributes
    ----------
    instrument : Instrument
    events : np.ndarray
        1-D array of :data:`EVENT_DTYPE`, time order.
    source : str
        Provenance text.
    extra : dict
        Free-form metadata (for example ``{"vix_history": "VIX_History.csv"}``).
    """

    instrument: Instrument
    events: np.ndarray
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def start_ns(self) -> int:
        """Time of the first event, ns since epoch (0 if empty)."""
        return int(self.events["ts"][0]) if len(self.events) else 0

    @property
    def end_ns(self) -> int:
        """Time of the last event, ns since epoch (0 if empty)."""
        return int(self.events["ts"][-1]) if len(self.events) else 0


def _header(meta: dict) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode("utf-8")
    total = 16 + len(body)
    pad = (-total) % _ALIGN
    body += b" " * pad
    return MAGIC + len(body).to_bytes(4, "little") + b"\x00\x00\x00\x00" + body


def _meta(instrument: Instrument, source: str, extra: dict | None) -> dict:
    return {
        "instrument": instrument.to_dict(),
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
    }


def write_recording(path: str | os.PathLike, rec: Recording) -> Path:
    """Write ``rec`` to ``path`` (overwrites). Returns the path.

    Raises
    ------
    ValueError
        If ``rec.events`` is not of :data:`EVENT_DTYPE`.
    """
    if rec.events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have EVENT_DTYPE, got {rec.events.dtype}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_header(_meta(rec.instrument, rec.source, rec.extra)))
        f.write(np.ascontiguousarray(rec.events).tobytes())
    os.replace(tmp, path)
    return path


class RecordingWriter:
    """Append events to a new recording as they arrive (the recorder's sink).

    Every :meth:`append` writes whole records and flushes, so a crash loses at most the
    batch being written; readers ignore a partial final record.
    """

    def __init__(self, path: str | os.PathLike, instrument: Instrument, source: str = "", extra=None):
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._f.write(_header(_meta(instrument, source, extra)))
        self._f.flush()
        self.count = 0

    def append(self, events: np.ndarray) -> None:
        """Append a batch (array of :data:`EVENT_DTYPE`)."""
        if events.dtype != EVENT_DTYPE:
            raise ValueError(f"events must have EVENT_DTYPE, got {events.dtype}")
        self._f.write(np.ascontiguousarray(events).tobytes())
        self._f.flush()
        self.count += len(events)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".zst":
        import zstandard

        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    return path.read_bytes()


def parse_recording(data: bytes, name: str = "<bytes>") -> Recording:
    """Parse recording bytes (see the module docstring).

    Raises
    ------
    RecordingError
        If the magic is wrong or the header is truncated.
    """
    if len(data) < 16 or data[:8] != MAGIC:
        raise RecordingError(f"{name}: not a MIA recording (bad magic)")
    meta_len = int.from_bytes(data[8:12], "little")
    start = 16 + meta_len
    if len(data) < start:
        raise RecordingError(f"{name}: truncated header ({len(data)} < {start} bytes)")
    try:
        meta = json.loads(data[16:start].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{name}: bad metadata: {exc}") from exc
    n = (len(data) - start) // EVENT_DTYPE.itemsize
    events = np.frombuffer(data, dtype=EVENT_DTYPE, count=n, offset=start).copy()
    return Recording(
        instrument=Instrument.from_dict(meta["instrument"]),
        events=events,
        source=meta.get("source", ""),
        extra=meta.get("extra", {}),
    )


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a ``.mrec`` (or ``.mrec.zst``) file.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    RecordingError
        If the file is not a recording.
    """
    path = Path(path)
    return parse_recording(_read_bytes(path), str(path))


def write_recording_zst(path: str | os.PathLike, rec: Recording, level: int = 19) -> Path:
    """Write ``rec`` zstandard-compressed (for shipped samples)."""
    import zstandard

    buf = io.BytesIO()
    buf.write(_header(_meta(rec.instrument, rec.source, rec.extra)))
    buf.write(np.ascontiguousarray(rec.events).tobytes())
    path = Path(path)
    path.write_bytes(zstandard.ZstdCompressor(level=level).compress(buf.getvalue()))
    return path
