"""The analyzers' facade: one :class:`Analyzers` object runs every family on a MarketView.

The worker engine (``app.live.engine``) calls :meth:`Analyzers.step` once per analysis
interval with a fresh :class:`~app.market.view.MarketView` and copies the returned
:class:`StepResult` into the published :class:`~app.analysis.frame.AnalysisFrame`.

Per step: the six DOM detectors (one numba kernel), the VIX state of the market date (cached
per date), order flow, the advanced trade patterns, and, once per newly closed bar, Battle
Navale and the advanced bar patterns (head fake, transition). New detections pass a re-fire
filter (the same pattern, side and price is reported again only after ``dom.refire_s``), feed
the elite gate. The signals' outcomes are booked by the caller (``app.live.engine`` feeds them to
``app.sim.outcomes.OutcomeTracker``, which runs each bracket on the paper fill model).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from app.analysis import advanced as adv
from app.analysis import battle_navale as bn
from app.analysis import dom
from app.analysis import orderflow as of
from app.analysis.elite import EliteGate
from app.analysis.frame import PatternHit, Signal, VixState
from app.analysis.reasons import ReasonFormatter
from app.analysis.sizing import average_range, bracket, risk_size
from app.analysis.vix import VixAnalyzer


@dataclass
class StepResult:
    """What one analysis step found.

    Attributes
    ----------
    patterns : list of PatternHit
        New detections this step (after the re-fire filter), all families.
    vix : VixState or None
    orderflow : dict
        ``delta`` (window, contracts), ``cum_delta`` (session), ``imbalance`` (-1..1),
        ``large_buy``, ``large_sell`` (contracts in the window).
    new_signals : list of Signal
    signals : tuple of Signal
        Recent signals, oldest first.
    timings : dict[str, float]
        Milliseconds per family (``dom``, ``vix``, ``orderflow``, ``battle_navale``,
        ``advanced``, ``elite``, ``analyzers``).
    features : dict[str, float]
        The step's cross-instrument features (:data:`RELATION_FEATURES`: the pair's relation
        row in force at the step, NaN without a pair; :attr:`Analyzers.relation_features`).
    """

    patterns: list = field(default_factory=list)
    vix: VixState | None = None
    orderflow: dict = field(default_factory=dict)
    new_signals: list = field(default_factory=list)
    signals: tuple = ()
    timings: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)


#: the relation of the instrument's pair as named features (``docs/relation.md``): ``rel_corr``
#: rolling 1-s return correlation (-1..1), ``rel_rs`` relative strength (log ratio A/B since the
#: session open), ``rel_z`` the divergence statistic (standard deviations), ``rel_flag`` the
#: divergence flag (-1 / 0 / +1); NaN each when the instrument is in no pair or before the
#: pair's first closed second
RELATION_FEATURES = ("rel_corr", "rel_rs", "rel_z", "rel_flag")
_NO_RELATION = dict.fromkeys(RELATION_FEATURES, float("nan"))
_NS_PER_S = 1_000_000_000

_TREND, _RANGE, _NONE = "trend", "range", ""


def _label(name: str) -> str:
    """A pattern name as words (``long_down_up`` -> ``long down up``)."""
    return name.replace("_", " ")


class Analyzers:
    """Every MIA analyzer plus the elite gate, for one instrument.

    Parameters
    ----------
    profile : Profile
        From :func:`app.config.profiles.load_profile`.
    instrument : Instrument
        Symbol, tick size, price decimals (for the reason texts).
    vix_history : VixHistory, optional
        Daily VIX history; default: the shipped CBOE files. Pass ``False`` for none.
    use_numba : bool
        Run the numba kernels (default) or their NumPy twins from the ``*_ref`` modules (for
        comparison; ``mia-elite analyze --twin``).
    first_signal_id : int
        Id of the first signal; later ones count up by 1. A live window passes the journal's
        next free id (:meth:`app.trading.journal.Journal.next_signal_id`) so ids stay unique
        across restarts and profile changes (every journal join uses them); ``mia-elite
        analyze`` starts at 1 so its output is reproducible.
    """

    def __init__(self, profile, instrument, vix_history=None, use_numba: bool = True,
                 first_signal_id: int = 1):
        self.profile = profile
        self.instrument = instrument
        self.use_numba = use_numba
        self.dom_sec = profile.section("dom")
        self.elite_sec = profile.section("elite")
        self.flow_sec = profile.section("orderflow")
        self.adv_sec = profile.section("advanced")
        self.size_sec = profile.section("sizing")
        self.bn_params = bn.bn_params(profile.section("battle_navale"))
        self.adv_params = adv.adv_params(self.adv_sec)
        self.refire_ns = int(self.dom_sec["refire_s"] * 1e9)
        self.confl_ns = int(self.elite_sec["confluence_window_s"] * 1e9)
        if vix_history is None:
            from app.feeds.vix_history import load_vix_history

            vix_history = load_vix_history()
        self.vix = VixAnalyzer(vix_history, profile.section("vix"), use_numba) if vix_history else None
        if use_numba:
            self._dom_fn, self._bn_fn, self._flow_fn = dom.dom_scan, bn.bn_scan, of.flow_scan
            self._advt_fn, self._advb_fn = adv.adv_trades_scan, adv.adv_bars_scan
        else:  # the NumPy twins, beside the kernels in the reference modules
            from app.analysis import advanced_ref, battle_navale_ref, dom_ref, orderflow_ref

            self._dom_fn, self._bn_fn = dom_ref.dom_scan_np, battle_navale_ref.bn_scan_np
            self._flow_fn = orderflow_ref.flow_scan_np
            self._advt_fn, self._advb_fn = advanced_ref.adv_trades_scan_np, advanced_ref.adv_bars_scan_np
        self._dom_out = np.zeros(dom.DOM_OUT_SHAPE)
        self._bn_out = np.zeros(bn.BN_OUT_SHAPE)
        self._flow_out = np.zeros(7)
        self._advt_out = np.zeros((2, 5))
        self._advb_out = np.zeros((2, 5))
        self._dom_params = None
        self._dom_sums, self._dom_meta = dom.new_dom_state(0)
        self._dom_col_ns = None
        self._dom_stats = dom.DomStats(self.dom_sec)
        self._vix_day = None
        self._vix_cached = None
        self._live_vix: float | None = None
        self._last_bar_i = -1
        self._bar_hits: list[PatternHit] = []
        self._transition = _NONE
        self._trend_dir = 0
        self._lot = float(self.flow_sec["large_lot_size"]) or np.inf
        self._lot_steps = 0
        self._fired: dict[tuple, int] = {}
        self._recent: deque[PatternHit] = deque()
        self.gate = EliteGate(self.elite_sec)
        self._signals: deque[Signal] = deque(maxlen=int(self.elite_sec["max_recent_signals"]))
        self._next_id = int(first_signal_id)
        self.fmt = ReasonFormatter(instrument)
        self._fmt_steps = 0
        self._bar_median_key = None  # (bars, last bar's open) of the cached median bar volume
        self._bar_median = 0.0
        self._last_ts = -1
        self._signals_snap: tuple = ()
        self.stat_steps = 0  # analysis steps run
        self.stat_bars = 0  # closed bars evaluated by the bar families
        self.stat_fires: dict[str, int] = {}  # pattern -> steps (or bars) where its detector fired
        #: ``None`` (default, free) or ``hook(analyzers, view, window, vix, orderflow, new_signals)``
        #: called at every candidate step (new hits, a score computed), for feature snapshots
        #: (:class:`app.research.snapshots.SnapshotRecorder`)
        self.candidate_hook = None
        self._rel_pending: deque = deque()  # relation rows handed in, not yet closed at the step's time
        self._rel_row = None  # the relation row in force (numpy.void of RELATION_DTYPE)

    # ------------------------------------------------------------------------------------------
    def set_relation(self, rows) -> None:
        """Hand in the pair's relation rows (:data:`app.analysis.relation.RELATION_DTYPE`, one
        per closed second, time order), as the multi-instrument runtime computes them.

        A row is in force from the end of its second (``ts + 1 s``) on: each step uses the
        newest row whose second ended at or before the step's market time, so a row handed in
        early (the pair's other stream ran ahead) never reaches a step before its time. Rows
        not newer than the last one kept are ignored. Thread: the analysis worker's (the
        engine queues them behind the batches, :meth:`app.live.engine.AnalysisEngine.set_relation`).

        Raises
        ------
        ValueError
            ``rows`` is not of RELATION_DTYPE.
        """
        from app.analysis.relation import RELATION_DTYPE

        rows = np.asarray(rows)
        if rows.dtype != RELATION_DTYPE:
            raise ValueError(f"relation rows must have RELATION_DTYPE (ts, corr, rs, z, flag, a, b); got {rows.dtype}")
        last = (self._rel_pending[-1] if self._rel_pending else self._rel_row)
        t_last = int(last["ts"]) if last is not None else None
        for r in rows.reshape(-1):
            if t_last is None or int(r["ts"]) > t_last:
                self._rel_pending.append(r.copy())
                t_last = int(r["ts"])

    def _relation_at(self, ts: int) -> None:
        pend = self._rel_pending
        while pend and int(pend[0]["ts"]) + _NS_PER_S <= ts:
            self._rel_row = pend.popleft()

    @property
    def relation_features(self) -> dict[str, float]:
        """The relation row in force as :data:`RELATION_FEATURES` (floats; NaN without a pair
        or before its first closed second)."""
        r = self._rel_row
        if r is None:
            return dict(_NO_RELATION)
        return {"rel_corr": float(r["corr"]), "rel_rs": float(r["rs"]), "rel_z": float(r["z"]),
                "rel_flag": float(r["flag"])}

    @property
    def relation_row(self):
        """The relation row in force (``numpy.void``), or None."""
        return self._rel_row

    def _refire_ok(self, name: str, side: int, price: int, ts: int) -> bool:
        """True (and remembered) unless the same pattern/side/price fired less than refire_s ago."""
        key = (name, side, price)
        last = self._fired.get(key)
        if last is not None and ts - last < self.refire_ns:
            return False
        self._fired[key] = ts
        if len(self._fired) > 4096:  # forget old keys
            cut = ts - self.refire_ns
            self._fired = {k: t for k, t in self._fired.items() if t >= cut}
        return True

    def _dom(self, v) -> list[PatternHit]:
        if self._dom_col_ns != v.column_ns or self._dom_sums.shape[1] != v.rows:
            self._dom_params = dom.dom_params(self.dom_sec, v.column_ns)
            self._dom_col_ns = v.column_ns
            self._dom_sums, self._dom_meta = dom.new_dom_state(v.rows)
            self._dom_stats.apply(self._dom_params, int(v.ts), force=True)
        if v.hist_bid.shape[1] == 0:
            return []
        out = self._dom_out
        self._dom_stats.apply(self._dom_params, int(v.ts))
        n = self._dom_fn(v.bid, v.ask, v.hist_bid.T, v.hist_ask.T, v.traded_buy.T, v.traded_sell.T,
                         int(v.best_bid), int(v.best_ask), int(v.base), int(v.col_t0 // max(1, v.column_ns)),
                         self._dom_params, self._dom_sums, self._dom_meta, out)
        self._dom_stats.add(int(v.ts), out)
        hits = []
        if n:
            fired = np.flatnonzero(out[:dom.N_DOM_SLOTS, 0] > 0)
            self._count_fires({dom.DOM_PATTERNS[int(k) // 2] for k in fired})
            for k in fired:
                p, b = divmod(int(k), 2)
                name = dom.DOM_PATTERNS[p]
                s, row, x1, x2 = out[k]
                price = int(v.base + int(row))
                side = dom.DOM_SIDES[p][b]
                if not self._refire_ok(name, side, price, int(v.ts)):
                    continue  # the same detection as a moment ago: no new object
                n1, n2 = dom.DOM_VALUES[p]
                f = self.fmt
                hits.append(PatternHit(
                    name, "dom", int(v.ts), price, side, float(s),
                    f"{_label(name)} on the {dom.DOM_BOOK_SIDES[p][b]} at {f.price(price)}: "
                    f"{f.values(((n1, x1), (n2, x2)))}; {f.strength(s)}",
                    ((n1, float(x1)), (n2, float(x2)))))
        return hits

    def _count_fires(self, names) -> None:
        for name in names:
            self.stat_fires[name] = self.stat_fires.get(name, 0) + 1

    def pattern_stats(self) -> dict:
        """Per pattern, the share of evaluations in which its detector fired (before the re-fire filter).

        DOM, advanced trade and VIX patterns are evaluated every analysis step; bar patterns
        (Battle Navale, head fake, transition) once per closed bar, so their share is over the
        closed bars evaluated (a share over steps would only measure the bar length).

        Returns
        -------
        dict[str, dict]
            ``{name: {"fires": int, "of": int, "basis": "steps" | "bars", "share": float 0..1}}``,
            every pattern of the seed system listed (``fires = 0`` for those that never fired).
        """
        bar_names = {name for name, _ in bn.BN_SLOTS} | {"head_fake", "transition"}
        names = (list(dom.DOM_PATTERNS) + list(dict.fromkeys(name for name, _ in bn.BN_SLOTS))
                 + list(adv.ADV_TRADE_ROWS) + ["head_fake", "transition"]
                 + ["spike_reversal", "complacency", "regime_change"])
        res = {}
        for name in dict.fromkeys(names + sorted(self.stat_fires)):
            basis = "bars" if name in bar_names else "steps"
            of_n = self.stat_bars if basis == "bars" else self.stat_steps
            n = self.stat_fires.get(name, 0)
            res[name] = {"fires": n, "of": of_n, "basis": basis, "share": n / of_n if of_n else 0.0}
        return res

    def set_live_vix(self, level: float | None) -> None:
        """Intraday VIX level from a live source (index points); ``None`` goes back to the daily close.

        The next step's VixState uses it for level, band, percentile, momentum and regime (the
        daily patterns stay those of the last close). Non-finite or non-positive values are ignored.
        """
        if level is not None and not (np.isfinite(level) and level > 0):
            return
        self._live_vix = None if level is None else float(level)
        self._vix_day = None  # recompute on the next step

    def _vix_state(self, ts: int) -> VixState | None:
        if self.vix is None:
            return None
        day = ts // 86_400_000_000_000
        if day != self._vix_day:
            self._vix_day = day
            self._vix_cached = self.vix.state(ts, live_level=self._live_vix)
        return self._vix_cached

    def _flow(self, v):
        t = v.trades
        if self.flow_sec["large_lot_size"] <= 0:
            self._lot_steps -= 1
            if self._lot_steps <= 0 and t.shape[0] >= 20:
                self._lot = float(np.quantile(t["size"], self.flow_sec["large_lot_quantile"]))
                self._lot_steps = 200
        self._flow_fn(t, int(v.ts - self.flow_sec["window_s"] * 1e9), self._lot,
                      v.bid, v.ask, int(v.best_bid), int(v.best_ask), int(v.base),
                      int(self.flow_sec["imbalance_levels"]), self._flow_out)
        return self._flow_out

    def _bars(self, v) -> list[PatternHit]:
        """Battle Navale and the advanced bar patterns, once per newly closed bar."""
        b = v.bars
        K = b.shape[0]
        i = K - 2  # the last bar may be open
        if i < 1 or i == self._last_bar_i:
            return []
        self._last_bar_i = i
        self.stat_bars += 1
        c = b["close"]
        hits = []
        ts = int(v.ts)
        out = self._bn_out
        self._bn_fn(b, v.fp_buy, v.fp_sell, int(v.base), i, self.bn_params, out)
        gap = out[7, 0]
        rsv = "red under green" if out[7, 3] > 0 else "green under red"
        f = self.fmt
        self._count_fires({bn.BN_SLOTS[k][0] for k in np.flatnonzero(out[:7, 0] > 0)})
        for k in np.flatnonzero(out[:7, 0] > 0):
            name, side = bn.BN_SLOTS[k]
            s, price, x1, x2 = out[k]
            n1, n2 = bn.BN_VALUES[name]
            hits.append(PatternHit(name, "battle_navale", ts, int(price), side, float(s),
                                   f"{_label(name)} at {f.price(price)} ({rsv}, base gap {gap:.2f} ticks): "
                                   f"{f.values(((n1, x1), (n2, x2)))}; {f.strength(s)}",
                                   ((n1, float(x1)), (n2, float(x2)), ("base_gap", float(gap)))))
        out = self._advb_out
        self._advb_fn(b, v.fp_buy, v.fp_sell, int(v.base), i, self.adv_params, out)
        if out[0, 0] > 0:
            self._count_fires(("head_fake",))
            s, price, side, x1, x2 = out[0]
            hits.append(PatternHit("head_fake", "advanced", ts, int(price), int(side), float(s),
                                   f"head fake: the break of {f.price(price)} failed back inside with "
                                   f"{f.size(x1)} traded beyond (average {f.size(x2)} per row); {f.strength(s)}",
                                   (("volume_beyond", float(x1)), ("row_volume", float(x2)))))
        er, er_prev, d = out[1, 0], out[1, 1], int(out[1, 2])
        if er >= 0:
            new = self._transition
            if er >= self.adv_sec["trend_er"]:
                new = _TREND
            elif er <= self.adv_sec["range_er"]:
                new = _RANGE
            if new != self._transition:
                if self._transition != _NONE:
                    self._count_fires(("transition",))
                prev = self._transition
                self._transition = new
                self._trend_dir = d if new == _TREND else 0
                if prev != _NONE:
                    if new == _TREND:
                        s = min(1.0, 0.5 * er / self.adv_sec["trend_er"])
                        side = d
                    else:
                        s = min(1.0, 0.5 * self.adv_sec["range_er"] / max(er, 1e-9))
                        side = 0
                    hits.append(PatternHit("transition", "advanced", ts, int(c[i]), side, float(s),
                                           f"transition {prev} -> {new} at {f.price(c[i])}: efficiency ratio "
                                           f"{er:.2f} (was {er_prev:.2f}); {f.strength(s)}",
                                           (("efficiency_ratio", float(er)), ("previous_er", float(er_prev)))))
            elif new == _TREND:
                self._trend_dir = d
        return hits

    def _profile_ready(self, v) -> bool:
        """True when the session has traded at least ``advanced.vp_min_volume_bars`` times the
        median volume of the closed bars (that many typical bars of trading), so the value area
        is a reference of the session and not of its first minutes. Scales with the
        instrument's own activity (contracts for ES, coins for BTC)."""
        need = float(self.adv_sec["vp_min_volume_bars"])
        if need <= 0:
            return True
        b = v.bars
        if b.shape[0] < 2:  # the last bar may be open
            return False
        key = (b.shape[0], int(b["ts"][-1]))
        if key != self._bar_median_key:  # the closed bars change once a bar: the median with them
            self._bar_median_key = key
            self._bar_median = float(np.median(b["volume"][:-1]))
        return float(v.session_volume) >= need * self._bar_median

    def _adv_trades(self, v) -> list[PatternHit]:
        t = v.trades
        if t.shape[0] == 0:
            return []
        out = self._advt_out
        poc, vah, val = int(v.poc), int(v.vah), int(v.val)
        if not self._profile_ready(v):  # a profile of a few minutes' trading is no reference
            poc = vah = val = -1
        if not self._advt_fn(t, int(v.ts), poc, vah, val, self.adv_params, out):
            return []
        self._count_fires({adv.ADV_TRADE_ROWS[k] for k in np.flatnonzero(out[:, 0] > 0)})
        hits = []
        for k in np.flatnonzero(out[:, 0] > 0):
            name = adv.ADV_TRADE_ROWS[k]
            s, price, side, x1, x2 = out[k]
            if not self._refire_ok(name, int(side), int(price), int(v.ts)):
                continue
            n1, n2 = adv.ADV_VALUES[name]
            f = self.fmt
            if name == "volume_profile":
                lvl = ("VAL", "POC", "VAH")[int(x1)]
                det = f"reaction at the {lvl} {f.price(price)}: {x2:.0f} ticks away; {f.strength(s)}"
            else:
                det = (f"microstructure at {f.price(price)}: trade burst {x1:.1f}x the usual rate, "
                       f"side imbalance {x2:+.2f}; {f.strength(s)}")
            hits.append(PatternHit(name, "advanced", int(v.ts), int(price), int(side), float(s), det,
                                   ((n1, float(x1)), (n2, float(x2)))))
        return hits

    # ------------------------------------------------------------------------------------------
    def step(self, view) -> StepResult:
        """Run every analyzer on ``view`` and return what is new.

        Parameters
        ----------
        view : MarketView

        Returns
        -------
        StepResult
        """
        pc = time.perf_counter_ns
        t0 = pc()
        ts = int(view.ts)
        if ts < self._last_ts:  # market time went back (a replay restarted): forget recent state
            self._recent.clear()
            self._fired.clear()
            self._last_bar_i = -1
            self._dom_stats.reset()
            self._rel_pending.clear()
            self._rel_row = None
        self._last_ts = ts
        self._relation_at(ts)
        if self._fmt_steps <= 0 and view.trades.shape[0]:  # the sizes' decimals, now and then
            self.fmt.learn_sizes(view.trades["size"][-256:])
            self._fmt_steps = 200
        self._fmt_steps -= 1
        self.stat_steps += 1
        hits = self._dom(view)
        t1 = pc()
        vs = self._vix_state(ts)
        if vs is not None and vs.patterns:
            self._count_fires({h.name for h in vs.patterns})
        t2 = pc()
        fo = self._flow(view)
        t3 = pc()
        bar_hits = self._bars(view)
        t4 = pc()
        adv_hits = self._adv_trades(view)
        t5 = pc()
        new = hits  # DOM hits passed the re-fire filter in _dom
        new.extend(bar_hits)  # once per bar by construction
        new.extend(adv_hits)  # filtered in _adv_trades
        # VIX patterns are daily context (VixState.patterns, shown by the gauge), never a reason
        # or a trigger: they do not enter the confluence window (docs/patterns.md, "VIX")
        rec = self._recent
        rec.extend(new)
        cut = ts - self.confl_ns
        while rec and rec[0].ts < cut:
            rec.popleft()
        new_signals: list[Signal] = []
        if new and view.bars.shape[0] >= 2:  # warm-up: a bracket needs one closed bar
            window = list(rec)
            vol = fo[1] + fo[2]
            flow_ratio = fo[0] / vol if vol > 0 else 0.0
            for side, sc, comps, reasons in self.gate.candidates(ts, new, window, vs, flow_ratio, fo[5],
                                                                   self._trend_dir):
                sig = self._make_signal(view, side, sc, comps, reasons, vs)
                if sig is None:
                    continue
                self.gate.commit(ts, side)
                new_signals.append(sig)
                self._signals.append(sig)
            if self.candidate_hook is not None:
                self.candidate_hook(self, view, window, vs, fo, new_signals)
        if new_signals:
            self._signals_snap = tuple(self._signals)
        t6 = pc()
        return StepResult(
            patterns=new,
            vix=vs,
            orderflow={"delta": float(fo[0]), "cum_delta": float(view.cum_delta), "imbalance": float(fo[5]),
                       "large_buy": float(fo[3]), "large_sell": float(fo[4])},
            new_signals=new_signals,
            signals=self._signals_snap,
            features=self.relation_features,
            timings={"dom": (t1 - t0) / 1e6, "vix": (t2 - t1) / 1e6, "orderflow": (t3 - t2) / 1e6,
                     "battle_navale": (t4 - t3) / 1e6, "advanced": (t5 - t4) / 1e6, "elite": (t6 - t5) / 1e6,
                     "analyzers": (t6 - t0) / 1e6},
        )

    def _make_signal(self, v, side, score, comps, reasons, vs) -> Signal | None:
        if side > 0:
            entry = v.best_ask if v.best_ask >= 0 else -1
        else:
            entry = v.best_bid if v.best_bid >= 0 else -1
        if entry < 0:
            if v.trades.shape[0] == 0:
                return None
            entry = int(v.trades["price"][-1])
        b = v.bars
        closed = b[:-1] if b.shape[0] > 1 else b
        atr = average_range(closed["high"], closed["low"], int(self.elite_sec["atr_bars"]))
        levels = [r.price for r in reasons if r.family in ("dom", "battle_navale") and r.price > 0]
        stop, target = bracket(side, int(entry), atr, levels, self.elite_sec)
        factor = vs.sizing_factor if vs is not None else 1.0
        size, sizing = risk_size(float(self.size_sec["risk_per_trade_usd"]), abs(int(entry) - int(stop)),
                                 float(self.instrument.tick_value), factor, int(self.size_sec["max_contracts"]))
        sig = Signal(id=self._next_id, ts=int(v.ts), symbol=self.instrument.symbol, side=side,
                     score=round(float(score), 6), components=comps, reasons=tuple(reasons), entry=int(entry),
                     stop=int(stop), target=int(target), size=size, regime=vs.regime if vs is not None else "",
                     sizing=sizing)
        self._next_id += 1
        return sig


def make_view(rows: int = 64, cols: int = 40, base: int = 1000, ts: int = 1_703_545_200_000_000_000,
              column_ns: int = 500_000_000, n_bars: int = 0, tick_size: float = 0.25,
              tick_value: float = 12.5, **fields):
    """A blank :class:`~app.market.view.MarketView` for hand-built tests and benchmarks.

    Every array is zero and writable (fill it in place), the book is empty (``best_bid =
    best_ask = -1``), no trades, ``n_bars`` zero bars; ``fields`` override any field.
    ``ts`` defaults to 2023-12-25 23:00 UTC (the shipped ES sample's hour).
    """
    from app.market.bars import BAR_DTYPE
    from app.market.view import MarketView
    from app.core.events import EVENT_DTYPE

    f = dict(
        ts=ts, tick_size=tick_size, tick_value=tick_value, base=base,
        bid=np.zeros(rows), ask=np.zeros(rows), bid_orders=np.zeros(rows), ask_orders=np.zeros(rows),
        best_bid=-1, best_ask=-1,
        hist_bid=np.zeros((rows, cols), np.float32), hist_ask=np.zeros((rows, cols), np.float32),
        traded_buy=np.zeros((rows, cols), np.float32), traded_sell=np.zeros((rows, cols), np.float32),
        column_ns=column_ns, col_t0=ts - (cols - 1) * column_ns,
        trades=np.zeros(0, EVENT_DTYPE), bars=np.zeros(n_bars, BAR_DTYPE),
        fp_buy=np.zeros((n_bars, rows), np.float32), fp_sell=np.zeros((n_bars, rows), np.float32),
        session_buy=np.zeros(rows), session_sell=np.zeros(rows), poc=-1, vah=-1, val=-1, cum_delta=0.0,
    )
    f.update(fields)
    return MarketView(**f)


def copy_view(v):
    """A deep copy of a MarketView (the model's views are only valid until its next apply)."""
    from dataclasses import fields as dc_fields

    from app.market.view import MarketView

    return MarketView(**{f.name: (np.array(getattr(v, f.name)) if isinstance(getattr(v, f.name), np.ndarray)
                                  else getattr(v, f.name)) for f in dc_fields(v)})
