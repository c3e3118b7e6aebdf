"""Sierra Chart's data files as a market data source: find the folder and a symbol's files.

Used when the DTC server answers ``MARKET_DATA_REJECT`` (Sierra Chart's DTC server refuses CME,
CBOE, EUREX and NASDAQ market data): the window offers the file source, finds the files with
:func:`find_sierra_data_dir` and :func:`files_for_symbol`, and, when no ``.depth`` file is being
written, shows :func:`explain_missing_depth`. :func:`make_follower` builds the
:class:`app.feeds.follow.SierraFollower` for a symbol, and :class:`SierraFilesSource` is that
follower behind the :class:`~app.live.sources.MarketSource` interface (the pipeline's third
source, beside the embedded replay and an external DTC server).

Where Sierra Chart keeps its files (Sierra Chart "Chart Data and Chart Data Files"): the Data
Files Folder set in *Global Settings >> General Settings*, by default the ``Data`` subfolder of the
installation folder (usually ``C:\\SierraChart``). Intraday files ``<symbol>.scid`` and daily files
``<symbol>.dly`` sit there; depth files in ``MarketDepthData\\<symbol>.<YYYY-MM-DD>.depth``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.core.events import Instrument
from app.feeds.depthfile import depth_file_date
from app.live.sources import Deliver, MarketSource, ProblemFn, StateFn

log = logging.getLogger(__name__)

#: Sierra Chart's default Data folder on Windows (its installer's default installation folder
#: ``C:\SierraChart`` plus ``Data``; Sierra Chart "Chart Data and Chart Data Files").
DEFAULT_DATA_DIR_WINDOWS = r"C:\SierraChart\Data"
#: Where the Data folder is set in Sierra Chart (one spelling everywhere).
SC_DATA_FOLDER_MENU = "Global Settings >> General Settings >> Data Files Folder"
#: Where depth recording is turned on, and the option's name (Sierra Chart documentation,
#: "Market Depth Historical Graph", ``doc/MarketDepthHistoricalGraph.php``, "Step by Step
#: Instructions").
SC_SYMBOL_SETTINGS_MENU = "Global Settings >> Symbol Settings"
SC_RECORD_DEPTH_OPTION = "Record Market Depth Data"

#: Installation folder names tried on every drive (Sierra Chart's installer default first).
_INSTALL_NAMES = ("SierraChart", "SierraChart2", "SierraChart3", "Sierra Chart", "SierraChart64")


def candidate_data_dirs() -> list[Path]:
    """Usual Sierra Chart Data folders on this machine, most likely first (existing or not).

    Windows: ``<drive>:\\SierraChart\\Data`` (also ``SierraChart2``..., ``Sierra Chart``) on C: then
    the other fixed-letter drives D:..H:, then the same names under ``%ProgramFiles%``,
    ``%ProgramFiles(x86)%`` and the user's home folder. Elsewhere (Sierra Chart under Wine):
    ``~/.wine/drive_c/SierraChart/Data``. ``SIERRA_CHART_DATA`` (environment) comes first.
    """
    out: list[Path] = []
    env = os.environ.get("SIERRA_CHART_DATA")
    if env:
        out.append(Path(env))
    if sys.platform == "win32":
        drives = ["C"] + [d for d in string.ascii_uppercase[3:8]]
        for d in drives:
            for name in _INSTALL_NAMES:
                out.append(Path(f"{d}:\\") / name / "Data")
        for var in ("ProgramFiles", "ProgramFiles(x86)", "USERPROFILE"):
            base = os.environ.get(var)
            if base:
                for name in _INSTALL_NAMES:
                    out.append(Path(base) / name / "Data")
    else:
        home = Path.home()
        for name in _INSTALL_NAMES:
            out.append(home / ".wine" / "drive_c" / name / "Data")
    return out


def find_sierra_data_dir(configured: str | os.PathLike | None = None,
                         candidates: list[Path] | None = None) -> Path | None:
    """The Sierra Chart Data folder to use, or None when none is found.

    Parameters
    ----------
    configured : path-like, optional
        The folder from the user's settings. Used when it exists; when it is the installation
        folder (it contains a ``Data`` subfolder), that subfolder is returned.
    candidates : list of Path, optional
        Folders to try (default :func:`candidate_data_dirs`).

    Returns
    -------
    Path or None
    """
    if configured:
        p = Path(configured).expanduser()
        if p.is_dir():
            if not any(p.glob("*.scid")) and (p / "Data").is_dir():
                return p / "Data"
            return p
        log.warning("configured Sierra Chart Data folder %s does not exist", p)
    for c in candidates if candidates is not None else candidate_data_dirs():
        try:
            if c.is_dir():
                return c
        except OSError:
            continue
    return None


@dataclass
class SierraFiles:
    """A symbol's files in a Data folder.

    Attributes
    ----------
    scid : Path or None
        ``<symbol>.scid`` (trades with bid/ask).
    depth_files : list of Path
        ``MarketDepthData/<symbol>.<date>.depth``, oldest date first.
    dly : Path or None
        ``<symbol>.dly`` (daily bars).
    """

    scid: Path | None = None
    depth_files: list[Path] = field(default_factory=list)
    dly: Path | None = None

    @property
    def latest_depth(self) -> Path | None:
        """The newest depth day file, or None."""
        return self.depth_files[-1] if self.depth_files else None

    def depth_is_current(self, today: _dt.date | None = None, max_age_s: float = 600.0) -> bool:
        """True when a depth file of today's UTC date exists or one was written in the last ``max_age_s``."""
        p = self.latest_depth
        if p is None:
            return False
        today = today or _dt.datetime.now(_dt.timezone.utc).date()
        d = depth_file_date(p, p.name.rsplit(".", 2)[0])
        if d == today:
            return True
        try:
            import time

            return time.time() - p.stat().st_mtime < max_age_s
        except OSError:
            return False


def _find_file(folder: Path, name: str) -> Path | None:
    p = folder / name
    if p.is_file():
        return p
    try:  # case-insensitive match (Windows file names; copies on other systems)
        low = name.lower()
        for n in os.listdir(folder):
            if n.lower() == low:
                return folder / n
    except OSError:
        pass
    return None


def files_for_symbol(data_dir: str | os.PathLike, symbol: str) -> SierraFiles:
    """Find ``symbol``'s ``.scid``, ``.depth`` day files and ``.dly`` in ``data_dir``.

    The symbol is used verbatim (never parsed), matched case-insensitively.
    """
    data_dir = Path(data_dir)
    out = SierraFiles(scid=_find_file(data_dir, f"{symbol}.scid"), dly=_find_file(data_dir, f"{symbol}.dly"))
    ddir = data_dir / "MarketDepthData"
    try:
        names = os.listdir(ddir)
    except OSError:
        names = []
    dated = []
    for n in names:
        d = depth_file_date(n, symbol)
        if d is not None:
            dated.append((d, ddir / n))
    out.depth_files = [p for _, p in sorted(dated)]
    return out


def record_depth_steps(symbol: str) -> list[str]:
    """The steps that make Sierra Chart write ``symbol``'s ``.depth`` files, one line each.

    Source: Sierra Chart documentation, "Market Depth Historical Graph", section "Step by Step
    Instructions" (sierrachart.com ``doc/MarketDepthHistoricalGraph.php``).
    """
    return [
        f"{SC_SYMBOL_SETTINGS_MENU}.",
        f"Select the symbol or symbol pattern that covers {symbol}.",
        f"Open the Intraday tab and set '{SC_RECORD_DEPTH_OPTION}' to Yes.",
        "Press OK, then reconnect the data feed: File >> Disconnect, then File >> Connect to Data Feed.",
        f"Keep a chart or Trade DOM of {symbol} open: Sierra Chart records depth only while it "
        "receives the symbol's market depth in real time (no history is downloaded).",
    ]


def default_data_dir_text(configured: str | os.PathLike | None = None) -> str:
    """The Data folder to offer in a form: the one found (:func:`find_sierra_data_dir`), else the
    configured text, else on Windows :data:`DEFAULT_DATA_DIR_WINDOWS` ("" elsewhere)."""
    found = find_sierra_data_dir(configured or None)
    if found is not None:
        return str(found)
    if configured:
        return str(configured)
    return DEFAULT_DATA_DIR_WINDOWS if sys.platform == "win32" else ""


def sierra_files_problem(data_dir: str | os.PathLike | None, symbol: str, tick_size: float) -> str:
    """What stops the Sierra Chart data files source for ``symbol``, in one line ("" when nothing).

    Checked in order: the symbol is set, the tick size is positive, the Data folder is set (or
    found in the usual places) and exists, and ``<symbol>.scid`` is in it. A missing ``.depth``
    file is not a problem here (the source starts with trades only and says how to record depth).

    Parameters
    ----------
    data_dir : path-like or None
        The configured Data folder ("" / None: look in the usual places); the installation
        folder (holding ``Data``) is accepted too.
    symbol : str
        Sierra Chart's symbol, verbatim.
    tick_size : float
        Price units per tick (the files do not carry it).

    Returns
    -------
    str
    """
    if not symbol:
        return ("Sierra Chart data files: the symbol is empty; type it exactly as Sierra Chart shows it "
                "(File >> Find Symbol), e.g. ESZ25_FUT_CME.")
    if not tick_size > 0:
        return f"{symbol}: the tick size must be positive (price units per tick; ES: 0.25), got {tick_size:g}."
    if data_dir:
        p = Path(data_dir).expanduser()
        if not p.is_dir():
            return (f"Sierra Chart Data folder {p} does not exist: browse to it (Sierra Chart: "
                    f"{SC_DATA_FOLDER_MENU}; usually {DEFAULT_DATA_DIR_WINDOWS}).")
        folder = find_sierra_data_dir(p, candidates=[])
    else:
        folder = find_sierra_data_dir(None)
        if folder is None:
            return (f"Sierra Chart Data folder not set and not found in the usual places: browse to it "
                    f"(Sierra Chart: {SC_DATA_FOLDER_MENU}; usually {DEFAULT_DATA_DIR_WINDOWS}).")
    if files_for_symbol(folder, symbol).scid is None:
        return (f"No {symbol}.scid in {folder}: open an Intraday chart of {symbol} in Sierra Chart "
                "(File >> New/Open Intraday Chart) and check the symbol is spelled exactly as Sierra Chart's.")
    return ""


def explain_missing_depth(symbol: str, data_dir: str | os.PathLike | None = None) -> str:
    """The message shown when no ``.depth`` file is being written for ``symbol``.

    Source of the steps: Sierra Chart documentation, "Market Depth Historical Graph", section
    "Step by Step Instructions" (sierrachart.com ``doc/MarketDepthHistoricalGraph.php``), and
    "Market Depth Data File Format" for the file location.
    """
    where = Path(data_dir) / "MarketDepthData" if data_dir else Path("Data") / "MarketDepthData"
    return (
        f"No market depth file is being written for {symbol}: MIA Elite looked for "
        f"{where / (symbol + '.<YYYY-MM-DD>.depth')}.\n"
        "Turn on depth recording in Sierra Chart:\n"
        + "".join(f"  {i}. {line}\n" for i, line in enumerate(record_depth_steps(symbol), 1))
        + f"Also check that the {SC_DATA_FOLDER_MENU} in Sierra Chart is the folder set in MIA Elite."
    )


def explain_missing_scid(symbol: str, data_dir: str | os.PathLike | None = None) -> str:
    """Message when ``<symbol>.scid`` is missing (no intraday chart of the symbol is open)."""
    where = Path(data_dir) if data_dir else Path("Data")
    return (
        f"No intraday data file {where / (symbol + '.scid')} was found. Open an Intraday chart of "
        f"{symbol} in Sierra Chart (File >> New/Open Intraday Chart) so it records trades, and check "
        "that the symbol in MIA Elite is spelled exactly as in Sierra Chart."
    )


def make_follower(data_dir, symbol: str, instrument, on_events, poll_s: float = 0.05, **kw):
    """Build an :class:`app.feeds.follow.SierraFollower` for ``symbol`` in ``data_dir``."""
    from app.feeds.follow import SierraFollower

    return SierraFollower(data_dir, symbol, instrument, on_events, poll_s=poll_s, **kw)


class SierraFilesSource(MarketSource):
    """Sierra Chart's own data files of one symbol as a :class:`~app.live.sources.MarketSource`.

    Used for symbols whose data Sierra Chart's DTC server refuses (CME, CBOE...). The follower
    (:func:`make_follower`) polls the growing ``.scid`` and ``.depth`` files on the caller's
    asyncio loop and delivers event batches there. A missing folder or missing files are
    reported with the exact Sierra Chart setting to turn on. Live data: it cannot pause.

    Parameters
    ----------
    data_dir : str or path-like
        The configured Data folder ("" = look in the usual places, :func:`find_sierra_data_dir`).
    symbol : str
        Sierra Chart's symbol, verbatim.
    tick_size, tick_value : float
        Price units per tick and USD per tick per contract (the files do not carry them).
    exchange : str
    poll_s : float
        Follower poll interval, seconds.
    on_problem, on_state
        See :class:`~app.live.sources.MarketSource`.

    Attributes
    ----------
    follower : app.feeds.follow.SierraFollower or None
    data_dir : Path or None
        The folder in use (after :meth:`start`).
    """

    kind = "sierra_files"

    def __init__(self, data_dir, symbol: str, *, tick_size: float = 0.0, tick_value: float = 0.0,
                 exchange: str = "", poll_s: float = 0.05, on_problem: ProblemFn | None = None,
                 on_state: StateFn | None = None):
        super().__init__(on_problem, on_state)
        self.configured_dir = data_dir
        self.symbol = symbol
        self.tick_size, self.tick_value, self.exchange = float(tick_size), float(tick_value), exchange
        self.poll_s = float(poll_s)
        self.name = f"sierra files {symbol}"
        self.follower = None
        self.data_dir: Path | None = None
        self._task: asyncio.Task | None = None

    def describe(self) -> str:
        return f"Sierra Chart's data files in {self.data_dir}" if self.data_dir else "Sierra Chart's data files"

    async def start(self, deliver: Deliver) -> bool:
        self._set_state("starting")
        data_dir = find_sierra_data_dir(self.configured_dir or None)
        if data_dir is None:
            self._set_state("error")
            self._problem("error", "Sierra Chart's Data folder was not found. Set it in File > Connection "
                                   f"(Sierra Chart: {SC_DATA_FOLDER_MENU}).")
            return False
        if not self.symbol or self.tick_size <= 0:
            self._set_state("error")
            self._problem("error", "Set the symbol and its tick size in File > Connection > symbol map "
                                   "to read Sierra Chart's data files.")
            return False
        self.data_dir = data_dir
        files = files_for_symbol(data_dir, self.symbol)
        if files.latest_depth is None:
            self._problem("warning", explain_missing_depth(self.symbol, data_dir))
        if files.scid is None:
            self._problem("warning", explain_missing_scid(self.symbol, data_dir))
        self.instrument = Instrument(self.symbol, self.tick_size, self.tick_value, self.exchange)
        self.follower = make_follower(data_dir, self.symbol, self.instrument, deliver, poll_s=self.poll_s)
        self._task = asyncio.ensure_future(self.follower.run())
        self._task.add_done_callback(self._done)
        self._set_state("following")
        return True

    def _done(self, t: asyncio.Task) -> None:
        if not t.cancelled() and t.exception() is not None:
            self._set_state("error")
            self._problem("error", f"Reading Sierra Chart's files stopped: {t.exception()!r}")

    async def stop(self, timeout: float = 5.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.follower is not None:
            self.follower.stop()  # ends its run() loop at the next poll
        t = self._task
        if t is not None and not t.done():
            done, pending = await asyncio.wait([t], timeout=min(2.0, timeout))
            for p in pending:
                p.cancel()
        self._set_state("stopped")
