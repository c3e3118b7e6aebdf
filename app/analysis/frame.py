"""The immutable objects the worker engine publishes to the GUI (and to ``analyze``).

Everything here is a frozen dataclass holding numpy **copies** (the worker never shares a
mutable array with the GUI). Prices are int64 ticks (multiply by ``AnalysisFrame.tick_size``
to display), times are int64 ns since the UNIX epoch UTC, sizes are contracts.

Side conventions: ``Signal.side`` and ``PatternHit.side`` are ``+1`` (long / bullish / bid side)
or ``-1`` (short / bearish / ask side), ``0`` neutral.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np



@dataclass(frozen=True, slots=True)
class PatternHit:
    """One detection of one pattern.

    Attributes
    ----------
    name : str
        Pattern name as in ``docs/patterns.md`` (``iceberg``, ``wall``, ``spoofing``, ...).
    family : str
        ``dom``, ``vix``, ``battle_navale``, ``orderflow`` or ``advanced``.
    ts : int
        Market time of the detection, ns.
    price : int
        Price in ticks where the pattern sits (0 when not price-bound, e.g. VIX patterns).
    side : int
        +1 bullish / bid side, -1 bearish / ask side, 0 neutral.
    strength : float
        0..1, as defined per pattern.
    detail : str
        Human-readable reasons with the values (shown as tooltip and in the tape).
    values : tuple of (str, float)
        The numbers behind ``detail`` (journaled with a signal).
    """

    name: str
    family: str
    ts: int
    price: int
    side: int
    strength: float
    detail: str = ""
    values: tuple = ()


@dataclass(frozen=True, slots=True)
class Signal:
    """An elite signal: a claim, with its reasons and a suggested bracket.

    Attributes
    ----------
    id : int
        Unique within an engine run, increasing.
    ts : int
        Market time, ns.
    symbol : str
    side : int
        +1 long, -1 short.
    score : float
        Elite score 0..1 = 0.30 VIX + 0.45 DOM/confluence + 0.25 regime.
    components : tuple of (str, float)
        ``(("vix", v), ("dom", d), ("regime", r))``.
    reasons : tuple of PatternHit
        The patterns behind it, strongest first.
    entry, stop, target : int
        Suggested bracket, prices in ticks.
    size : int
        Suggested contracts: risk per trade / (stop ticks x tick value) x the VIX regime's
        sizing factor, floored (0 when the stop is too wide for the risk budget).
    regime : str
        VIX regime at the time.
    sizing : str
        The arithmetic of ``size``, for the order ticket.
    """

    id: int
    ts: int
    symbol: str
    side: int
    score: float
    components: tuple
    reasons: tuple
    entry: int
    stop: int
    target: int
    size: int
    regime: str = ""
    sizing: str = ""

    def top_reasons(self, n: int = 3) -> str:
        """Short text of the ``n`` strongest reasons, e.g. ``"wall 0.91, absorption 0.77"``."""
        return ", ".join(f"{r.name} {r.strength:.2f}" for r in self.reasons[:n])


@dataclass(frozen=True, slots=True)
class VixState:
    """The VIX regime picture at a time.

    Attributes
    ----------
    date : str
        ISO date of the last daily close used.
    level : float
        VIX value (index points).
    percentile : float
        0..1, rank of ``level`` in the trailing 252 sessions.
    momentum_5d : float
        ``level / level 5 sessions ago - 1``.
    term_structure : float
        VIX / VIX3M (``nan`` when VIX3M is unknown); > 1 is backwardation (stress).
    regime : str
        ``ultra_low``, ``low``, ``normal``, ``high`` or ``extreme``.
    regime_index : int
        0..4 in that order.
    sizing_factor : float
        Position-size multiplier of the regime.
    bands : tuple of float
        Upper VIX bounds of the first four regimes (for the gauge).
    patterns : tuple of PatternHit
        Active VIX patterns (spike reversal, complacency, regime change).
    """

    date: str
    level: float
    percentile: float
    momentum_5d: float
    term_structure: float
    regime: str
    regime_index: int
    sizing_factor: float
    bands: tuple = (12.0, 16.0, 25.0, 35.0)
    patterns: tuple = ()


@dataclass(frozen=True, slots=True)
class AnalysisFrame:
    """One published picture of the market and the analyzers.

    Attributes
    ----------
    seq : int
        Increasing frame number.
    ts : int
        Market time of the last event applied, ns.
    symbol : str
    tick_size : float
        Price units per row (to display rows as prices): the exchange tick times ``row_ticks``.
        Every price of the frame (book, heatmap, bars, patterns, signals) counts these rows.
    heatmap : np.ndarray, float32, shape (rows, cols)
        Resting size (contracts) per price row x time column; row 0 is price ``heatmap_base``,
        column ``cols - 1`` is the newest. NaN-free; 0 = no liquidity.
    heatmap_base : int
        Price in ticks of row 0.
    heatmap_t0 : int
        Start time of column 0, ns.
    column_ns : int
        Width of one column, ns.
    traded_buy, traded_sell : np.ndarray, float32, shape (rows, cols)
        Volume traded at the ask / at the bid per cell (for trade bubbles).
    best_bid, best_ask : int
        Ticks; -1 when that side is empty.
    book_prices : np.ndarray, int64, shape (n,)
        Ladder rows, ticks, ascending.
    book_bid, book_ask : np.ndarray, float64, shape (n,)
        Resting size per ladder row.
    session_volume : np.ndarray, float64, shape (n,)
        Traded volume this session per ladder row.
    bars : np.ndarray of BAR_DTYPE
        Recent footprint bars, oldest first.
    patterns : tuple of PatternHit
        Recent detections (newest last), for markers.
    vix : VixState or None
    orderflow : dict
        ``delta``, ``cum_delta``, ``imbalance`` (-1..1), ``large_buy``, ``large_sell`` (contracts).
    new_signals : tuple of Signal
        Signals first published in this frame.
    signals : tuple of Signal
        Recent signals (for the tape), oldest first.
    outcomes : dict[int, app.sim.outcomes.SignalOutcome]
        Latest outcome per signal id (booked on the paper fill model by the engine).
    precision : dict[str, tuple[int, int, float]]
        Per pattern: (signals decided, target first, precision 0..1).
    timings : dict[str, float]
        Milliseconds per stage (``book``, ``dom``, ``vix``, ..., ``total``), and ``compile_s``.
    events_total : int
        Events applied since start.
    events_per_s : float
        Recent event rate (wall clock).
    error : str
        The newest analyzer error (text with traceback) reported since the previous frame,
        empty if none; ``timings["errors_new"]`` / ``timings["errors_total"]`` count them.
    vwap, vwap_sd : float
        Session VWAP and its volume-weighted standard deviation, ticks (nan before the
        session's first trade).
    session_phase : str
        ``overnight``, ``open``, ``midday``, ``close``, ``closed``, ``session`` or ``""``
        (:mod:`app.core.sessions`).
    session_start_ns : int
        Open of the trading session the profile, delta and VWAP count from, ns (-1: none).
    row_ticks : int
        Exchange ticks per price row (``app.market.grouping``; 1 for ES). A price in rows ``r``
        is the exchange tick ``r x row_ticks`` (the row's lowest tick).
    poc, vah, val : int
        Session volume profile: point of control, value-area high and low (70 % of the
        session's volume), price rows; -1 before the session's first trade
        (:meth:`app.market.model.MarketModel.volume_profile`).
    cum_delta : float
        Session cumulative delta (volume bought at the ask - sold at the bid), contracts, at
        ``ts`` (the sum of ``bars["delta"]`` of the session's bars ends here).
    session_stats : dict or None
        The precision table for the session so far (``app.research.live.session_summary``:
        ``rows`` with n, target-first rate and Wilson interval, breakeven rate, expectancy in
        ticks / USD, random baseline, p-value); None when the engine has no research observer
        or nothing is measured yet.
    model_p : dict[int, float]
        Signal id -> the active signal-quality model's probability of target first (0..1).
    model_name : str
        File name of that model; ``""``: no model is loaded.
    history_start_ns : int
        Start of the first heatmap column of the stream, ns (-1 before the first event): the
        oldest time the heatmap can show (the GUI's whole-session view starts there).
    history : app.market.history.HistoryImage or None
        The answer to the newest history request (:meth:`app.live.engine.AnalysisEngine.request_history`):
        the heatmap of a time range at the finest tier that fits, ``history.request`` the
        request's id. Every frame carries the newest answer until another replaces it (one
        shared immutable object, not a copy per frame), so a dropped frame loses nothing.
    analysis_ready : bool
        False while the analyzers are still being compiled on a first start: the book,
        heatmap, bars and volume are live, patterns and signals are empty
        (:meth:`app.live.engine.AnalysisEngine.start`).
    relation : numpy.void or None
        The newest closed second of the configured instrument pair, one row of
        :data:`app.analysis.relation.RELATION_DTYPE` (``ts, corr, rs, z, flag, a, b``), set on
        both instruments' frames by the multi-instrument runtime (:mod:`app.live.instruments`);
        None with one instrument or before the pair's first closed second.
    """

    seq: int
    ts: int
    symbol: str
    tick_size: float
    heatmap: np.ndarray
    heatmap_base: int
    heatmap_t0: int
    column_ns: int
    traded_buy: np.ndarray
    traded_sell: np.ndarray
    best_bid: int
    best_ask: int
    book_prices: np.ndarray
    book_bid: np.ndarray
    book_ask: np.ndarray
    session_volume: np.ndarray
    bars: np.ndarray
    patterns: tuple = ()
    vix: VixState | None = None
    orderflow: dict = field(default_factory=dict)
    new_signals: tuple = ()
    signals: tuple = ()
    outcomes: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    events_total: int = 0
    events_per_s: float = 0.0
    error: str = ""
    vwap: float = float("nan")
    vwap_sd: float = float("nan")
    session_phase: str = ""
    session_start_ns: int = -1
    row_ticks: int = 1
    poc: int = -1
    vah: int = -1
    val: int = -1
    cum_delta: float = 0.0
    session_stats: dict | None = None
    model_p: dict = field(default_factory=dict)
    model_name: str = ""
    history_start_ns: int = -1
    history: object = None
    analysis_ready: bool = True
    relation: object = None
