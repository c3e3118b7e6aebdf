"""``mia-elite convert SRC OUT``: real recordings -> MIA recording (``.mrec``), Sierra ``.depth``/``.scid``.

Sources (detected from the name, or ``--from``):

==========  ===========================================================  =========================
``dbn``     Databento DBN MBO, ``*.dbn`` / ``*.dbn.zst``                  :mod:`app.feeds.dbn`
``binance`` hftbacktest Binance capture ``<recv_ns> <json>``, ``*.gz``    :mod:`app.feeds.binance`
``lobster`` LOBSTER ``*_message_L.csv`` (+ its ``_orderbook_L.csv``)       :mod:`app.feeds.lobster`
``scid``    Sierra Chart ``*.scid`` (tick records)                        :mod:`app.feeds.scid`
``depth``   Sierra Chart ``*.depth`` (one day file)                       :mod:`app.feeds.depthfile`
``mrec``    MIA recording ``*.mrec`` / ``*.mrec.zst``                       :mod:`app.feeds.recording`
==========  ===========================================================  =========================

Outputs (``--format``, several allowed separated by commas; default from OUT's suffix, else
``mrec``): ``mrec`` writes ``OUT`` with ``.mrec``; ``depth`` writes ``OUT`` with ``.depth`` (one file,
all days); ``scid`` writes ``OUT`` with ``.scid`` (the trades as tick records, bid/ask from the
book). When OUT is an existing **folder**, it is laid out like Sierra Chart's Data folder:
``OUT/<symbol>.mrec``, ``OUT/<symbol>.scid`` and ``OUT/MarketDepthData/<symbol>.<date>.depth`` (one
file per UTC day, each starting with a snapshot), which :class:`app.feeds.follow.SierraFollower`
and Sierra Chart can open. Prices in ``.depth``/``.scid`` are real prices (price multiplier 1).

Sierra's formats store quantities as whole numbers. ``--size-multiplier`` (default ``auto``: the
smallest power of ten that makes every size whole, 1 for futures, 1000 for the BTCUSDT capture)
scales sizes on writing and divides them on reading a ``.scid``/``.depth`` source; the value used
is printed (read the files back with the same value).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from app.core.events import Instrument
from app.feeds.recording import Recording

log = logging.getLogger(__name__)

SOURCES = ("dbn", "binance", "lobster", "scid", "depth", "mrec")
FORMATS = ("mrec", "depth", "scid")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="source file (DBN MBO, Binance .gz, LOBSTER message CSV, .scid, .depth, .mrec)")
    p.add_argument("out", help="output file, or an existing folder for a Sierra-style Data layout")
    p.add_argument("--format", default=None,
                   help="mrec, depth, scid or a comma list (default: from OUT's suffix, else mrec)")
    p.add_argument("--from", dest="src_type", choices=SOURCES, default=None, help="source type (default: by name)")
    p.add_argument("--symbol", default=None, help="symbol to record (default: from the source)")
    p.add_argument("--tick-size", type=float, default=None, help="price increment (scid/depth sources; DBN default 0.25)")
    p.add_argument("--tick-value", type=float, default=None, help="USD per tick per contract")
    p.add_argument("--market", default=None, choices=("USD-M", "COIN-M", "spot"),
                   help="Binance market, when the stream cannot tell it (default: from the stream)")
    p.add_argument("--price-multiplier", type=float, default=1.0,
                   help="Sierra real-time price multiplier of a .scid/.depth source")
    p.add_argument("--size-multiplier", default="auto",
                   help="stored quantity = size x this in .depth/.scid (default auto: 1 for whole sizes)")


def detect_source(path: Path) -> str:
    """Source type from the file name (see the module docstring).

    Raises
    ------
    ValueError
        When the name matches no known source (names the file and the ``--from`` option).
    """
    name = path.name.lower()
    if name.endswith((".dbn", ".dbn.zst")):
        return "dbn"
    if name.endswith((".mrec", ".mrec.zst")):
        return "mrec"
    if name.endswith(".scid"):
        return "scid"
    if name.endswith(".depth"):
        return "depth"
    if "_message_" in name and name.endswith(".csv"):
        return "lobster"
    if name.endswith(".gz"):
        return "binance"
    raise ValueError(f"{path}: cannot tell the source type from the name; pass --from {{{','.join(SOURCES)}}}")


def load_source(path: Path, kind: str, symbol: str | None = None, tick_size: float | None = None,
                tick_value: float | None = None, price_multiplier: float = 1.0,
                size_multiplier: float = 1.0, market: str | None = None) -> Recording:
    """Read ``path`` as ``kind`` into a :class:`Recording`.

    A Binance capture tells its symbol, market and tick size itself unless given
    (:func:`app.feeds.binance.read_binance_gz`).

    Raises
    ------
    ValueError
        A Sierra ``.scid``/``.depth`` source without ``tick_size``; errors of the readers.
    """
    if kind == "dbn":
        from app.feeds.dbn import read_dbn_mbo

        kw = {}
        if tick_size:
            kw["tick_size"] = tick_size
        if tick_value:
            kw["tick_value"] = tick_value
        return read_dbn_mbo(path, symbol=symbol, **kw)
    if kind == "binance":
        from app.feeds.binance import read_binance_gz

        return read_binance_gz(path, symbol=symbol, tick_size=tick_size, tick_value=tick_value, market=market)
    if kind == "lobster":
        from app.feeds.lobster import read_lobster

        return read_lobster(path, symbol=symbol, tick_size=tick_size or 0.01, tick_value=tick_value or 0.01)
    if kind == "mrec":
        from app.feeds.recording import read_recording

        return read_recording(path)
    if not tick_size:
        raise ValueError(f"{path}: a Sierra .{kind} file does not store the tick size; pass --tick-size")
    sym = symbol or path.name.split(".")[0]
    inst = Instrument(sym, tick_size, tick_value or 0.0, description=f"{sym} from Sierra Chart {path.name}")
    if kind == "scid":
        from app.feeds.scid import read_scid_events

        ev = read_scid_events(path, inst, price_multiplier, size_multiplier=size_multiplier)
    else:
        from app.feeds.depthfile import read_depth_events

        ev = read_depth_events(path, inst, price_multiplier, size_multiplier=size_multiplier)
    return Recording(instrument=inst, events=ev, source=f"Sierra Chart {path.name}")


def auto_size_multiplier(sizes: np.ndarray, max_power: int = 8) -> float:
    """Smallest ``10**k`` (k <= max_power) that makes every size a whole number (1e-6 tolerance)."""
    s = np.asarray(sizes, dtype=np.float64)
    s = s[s > 0]
    for k in range(max_power + 1):
        x = s * 10.0**k
        if np.all(np.abs(x - np.rint(x)) < 1e-6 * np.maximum(1.0, x)):
            return float(10**k)
    return float(10**max_power)


def write_outputs(rec: Recording, out: Path, formats: list[str], size_multiplier: float = 1.0) -> list[Path]:
    """Write ``rec`` in each format (see the module docstring); returns the paths written.

    ``size_multiplier`` scales sizes into the whole-number quantities of ``.depth``/``.scid``.
    """
    from app.feeds.depthfile import DepthDayWriter, DepthWriter
    from app.core.events import KIND_DEPTH, KIND_TRADE
    from app.feeds.recording import write_recording
    from app.feeds.scid import ScidWriter

    written: list[Path] = []
    folder = out.is_dir()
    sym = rec.instrument.symbol
    ev = rec.events
    for fmt in formats:
        if fmt == "mrec":
            p = out / f"{sym}.mrec" if folder else out.with_suffix(".mrec") if out.suffix != ".mrec" else out
            written.append(write_recording(p, rec))
        elif fmt == "depth":
            if not (ev["kind"] == KIND_DEPTH).any():
                log.warning("%s: no depth events; no .depth written", rec.source)
                continue
            if folder:
                with DepthDayWriter(out / "MarketDepthData", sym, rec.instrument,
                                    size_multiplier=size_multiplier) as w:
                    w.append_events(ev)
                written.extend(w.files)
            else:
                p = out.with_suffix(".depth")
                with DepthWriter(p, truncate=True, size_multiplier=size_multiplier) as w:
                    w.append_events(ev, rec.instrument)
                written.append(p)
        elif fmt == "scid":
            if not (ev["kind"] == KIND_TRADE).any():
                log.warning("%s: no trades; no .scid written", rec.source)
                continue
            p = out / f"{sym}.scid" if folder else out.with_suffix(".scid")
            with ScidWriter(p, truncate=True, size_multiplier=size_multiplier) as w:
                w.append_events(ev, rec.instrument)
            written.append(p)
        else:
            raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    return written


def run(args: argparse.Namespace) -> int:
    src = Path(args.src)
    out = Path(args.out)
    try:
        kind = args.src_type or detect_source(src)
        if args.format:
            formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
        else:
            suf = out.suffix.lower().lstrip(".")
            formats = [suf] if suf in FORMATS else ["mrec"]
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ValueError(f"--format {','.join(bad)}: choose from {', '.join(FORMATS)}")
        sm_arg = str(args.size_multiplier).lower()
        sm_in = 1.0 if sm_arg == "auto" else float(sm_arg)
        if not sm_in > 0:
            raise ValueError(f"--size-multiplier {args.size_multiplier}: must be > 0 or 'auto'")
        rec = load_source(src, kind, args.symbol, args.tick_size, args.tick_value, args.price_multiplier,
                          size_multiplier=sm_in, market=getattr(args, "market", None))
        sm_out = auto_size_multiplier(rec.events["size"]) if sm_arg == "auto" else sm_in
        paths = write_outputs(rec, out, formats, size_multiplier=sm_out)
    except (OSError, ValueError) as exc:
        print(f"mia-elite convert: {exc}", file=sys.stderr)
        return 2
    n = len(rec.events)
    print(f"{src.name} ({kind}): {n} events of {rec.instrument.symbol} "
          f"(tick {rec.instrument.tick_size:g}, {rec.instrument.tick_value:g} USD/tick)")
    for p in paths:
        print(f"  wrote {p} ({p.stat().st_size} bytes)")
    if sm_out != 1.0 and any(f in formats for f in ("depth", "scid")):
        print(f"  sizes stored x {sm_out:g} in .depth/.scid (read back with --size-multiplier {sm_out:g})")
    return 0
