"""Analysis profiles: Scalping, Production, Development and Budget.

A profile is a TOML file under ``resources/profiles/<name>.toml`` (found through
:func:`app.paths.resource_path`, so it works from source and from a frozen bundle) with the
sections ``[engine]``, ``[dom]``, ``[vix]``, ``[battle_navale]``, ``[orderflow]``,
``[advanced]``, ``[elite]``, ``[sizing]`` and ``[outcomes]``. Each section is a Struct of the common settings
schema (:mod:`app.config.schema`): every key is required, has a type and an allowed range, and
an unknown key is an error. A file or a user override that breaks it raises
:class:`~app.config.schema.ConfigError` naming the dotted key and the range. The meaning and units
of the analyzer keys are in ``docs/patterns.md``.

Example
-------
>>> p = load_profile("production", {"elite.min_elite_score": 0.75})
>>> p.get("engine.analysis_interval_ms")
250
"""

import copy
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from app.config.files import read_toml
from app.config.schema import ConfigError, Section, decode, literal_values
from app.paths import resource_path

#: Profile names, in the order the GUI lists them.
ProfileName = Literal["scalping", "production", "development", "budget"]
PROFILE_NAMES = literal_values(ProfileName)


def _int(lo: int, hi: int) -> Any:
    """An integer field in [lo, hi]."""
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


def _num(lo: float, hi: float) -> Any:
    """A number field in [lo, hi] (an integer in the file is read as a float)."""
    return Annotated[float, msgspec.Meta(ge=lo, le=hi)]


def _nums(n: int, lo: float, hi: float) -> Any:
    """A list of exactly ``n`` numbers, each in [lo, hi] (kept as a tuple)."""
    return tuple[(_num(lo, hi),) * n]


class EngineProfile(Section, frozen=True):
    """Analysis step, heatmap and bar timing (ms, rows, s), ticks per row (0 = automatic). Units: ``docs/patterns.md``."""

    analysis_interval_ms: _int(10, 10_000)
    heatmap_column_ms: _int(10, 60_000)
    heatmap_rows: _int(20, 4_000)
    bar_seconds: _int(1, 3_600)
    row_ticks: _int(0, 1_000_000)


class DomProfile(Section, frozen=True):
    """Depth-of-market detectors: icebergs, walls, ladders, spoofs, absorption, squeezes. Units: ``docs/patterns.md``."""

    depth_levels: _int(1, 200)
    refire_s: _num(0.0, 3_600.0)
    iceberg_window_s: _num(0.1, 3_600.0)
    iceberg_ratio: _num(1.0, 100.0)
    iceberg_quantile: _num(0.5, 1.0)
    wall_ratio: _num(1.0, 1_000.0)
    wall_min_size: _num(0.0, 1e9)
    wall_neighbours: _int(2, 200)
    ladder_min_levels: _int(3, 50)
    ladder_step_ratio: _num(1.0, 10.0)
    ladder_quantile: _num(0.5, 1.0)
    spoof_window_s: _num(0.1, 600.0)
    spoof_ratio: _num(1.0, 1_000.0)
    spoof_distance_ticks: _int(1, 200)
    spoof_max_traded_frac: _num(0.0, 1.0)
    absorption_window_s: _num(0.1, 600.0)
    absorption_ratio: _num(1.0, 100.0)
    absorption_quantile: _num(0.5, 1.0)
    absorption_max_give_ticks: _int(0, 100)
    squeeze_levels: _int(1, 100)
    squeeze_window_s: _num(0.1, 600.0)
    squeeze_quantile: _num(0.0, 0.5)
    squeeze_imbalance: _num(0.0, 1.0)
    squeeze_max_spread_ticks: _int(1, 100)
    stats_window_s: _num(10.0, 86_400.0)
    stats_min_s: _num(0.0, 86_400.0)

    def check(self) -> None:
        """``stats_min_s`` must not exceed ``stats_window_s``.

        Raises
        ------
        ConfigError
            Names ``stats_min_s``.
        """
        if self.stats_min_s > self.stats_window_s:
            raise ConfigError("stats_min_s", f"a number <= stats_window_s ({self.stats_window_s:g})", self.stats_min_s)


class VixProfile(Section, frozen=True):
    """VIX regime bands, percentiles, spikes and sizing factors. Units: ``docs/patterns.md``."""

    bands: _nums(4, 1.0, 200.0)
    percentile_window: _int(20, 5_000)
    momentum_stress: _num(0.0, 10.0)
    backwardation: _num(0.5, 3.0)
    calm_percentile: _num(0.0, 1.0)
    spike_threshold: _num(0.0, 10.0)
    spike_lookback: _int(2, 250)
    reversal_pct: _num(0.0, 1.0)
    complacency_level: _num(1.0, 100.0)
    complacency_percentile: _num(0.0, 1.0)
    complacency_term: _num(0.1, 3.0)
    change_lookback: _int(1, 250)
    change_steps: _int(1, 4)
    sizing_factors: _nums(5, 0.0, 10.0)

    def check(self) -> None:
        """``bands`` must increase strictly.

        Raises
        ------
        ConfigError
            Names ``bands``.
        """
        b = self.bands
        if any(hi <= lo for lo, hi in zip(b, b[1:])):
            raise ConfigError("bands", "4 numbers in [1, 200] whose bands increase strictly", list(b))


class BattleNavaleProfile(Section, frozen=True):
    """Battle Navale bar patterns. Units: ``docs/patterns.md``."""

    lookback_bars: _int(2, 500)
    long_bar_mult: _num(1.0, 50.0)
    color_delta_ratio: _num(0.0, 1.0)
    vikings_volume_mult: _num(1.0, 50.0)
    vikings_delta_ratio: _num(0.0, 1.0)
    defenders_rows: _int(1, 50)
    defenders_ratio: _num(0.0, 1.0)
    min_bar_volume: _num(0.0, 1e9)
    rsv_required: bool


class OrderflowProfile(Section, frozen=True):
    """Order-flow window, imbalance and large lots. Units: ``docs/patterns.md``."""

    window_s: _num(0.1, 3_600.0)
    imbalance_levels: _int(1, 200)
    large_lot_size: _num(0.0, 1e9)
    large_lot_quantile: _num(0.5, 1.0)


class AdvancedProfile(Section, frozen=True):
    """Head fakes, micro bursts, regime transitions, volume-profile touches. Units: ``docs/patterns.md``."""

    headfake_lookback_bars: _int(2, 500)
    headfake_volume_mult: _num(0.0, 50.0)
    micro_window_ms: _num(10.0, 60_000.0)
    micro_burst_mult: _num(1.0, 1_000.0)
    micro_min_trades: _int(2, 100_000)
    micro_side_ratio: _num(0.0, 1.0)
    transition_bars: _int(3, 500)
    trend_er: _num(0.0, 1.0)
    range_er: _num(0.0, 1.0)
    vp_window_s: _num(1.0, 3_600.0)
    vp_touch_ticks: _int(0, 100)
    vp_reaction_ticks: _int(1, 1_000)
    vp_min_volume_bars: _num(0.0, 10_000.0)

    def check(self) -> None:
        """``range_er`` must not exceed ``trend_er``.

        Raises
        ------
        ConfigError
            Names ``range_er``.
        """
        if self.range_er > self.trend_er:
            raise ConfigError("range_er", f"a number <= trend_er ({self.trend_er:g})", self.range_er)


class EliteProfile(Section, frozen=True):
    """Elite score weights, confluence, cooldown and bracket sizing (ticks). Units: ``docs/patterns.md``."""

    min_elite_score: _num(0.0, 1.0)
    max_signals_per_hour: _int(0, 3_600)
    weight_vix: _num(0.0, 1.0)
    weight_dom: _num(0.0, 1.0)
    weight_regime: _num(0.0, 1.0)
    confluence_window_s: _num(0.0, 3_600.0)
    min_patterns: _int(1, 19)
    cooldown_s: _num(0.0, 3_600.0)
    max_recent_signals: _int(1, 10_000)
    atr_bars: _int(1, 500)
    stop_atr_mult: _num(0.1, 20.0)
    min_stop_ticks: _int(1, 10_000)
    max_stop_atr: _num(0.5, 100.0)
    reward_risk: _num(0.1, 20.0)


class SizingProfile(Section, frozen=True):
    """Risk per trade (USD) and the size ceiling (contracts). Units: ``docs/patterns.md``."""

    risk_per_trade_usd: _num(0.0, 1e7)
    max_contracts: _int(1, 100_000)


class OutcomesProfile(Section, frozen=True):
    """How signal outcomes are booked (``app/sim/outcomes.py``): s, ticks, USD. Units: ``docs/patterns.md``."""

    decision_delay_s: _num(0.0, 600.0)
    stop_slippage_ticks: _int(0, 1_000)
    commission_per_contract_usd: _num(0.0, 1_000.0)


class ProfileFile(Section, frozen=True):
    """A whole profile file: one table per analyzer family (all required)."""

    engine: EngineProfile
    dom: DomProfile
    vix: VixProfile
    battle_navale: BattleNavaleProfile
    orderflow: OrderflowProfile
    advanced: AdvancedProfile
    elite: EliteProfile
    sizing: SizingProfile
    outcomes: OutcomesProfile


#: Every profile key, dotted (``"engine.analysis_interval_ms"``), in file order.
PROFILE_KEYS = tuple(f"{s.encode_name}.{k.encode_name}"
                     for s in msgspec.structs.fields(ProfileFile) for k in msgspec.structs.fields(s.type))


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass(frozen=True)
class Profile:
    """A validated, immutable analysis profile.

    Attributes
    ----------
    name : str
        Lower-case profile name (one of :data:`PROFILE_NAMES`).
    values : dict[str, Any]
        Flat ``{"section.key": value}``; lists are stored as tuples.
    """

    name: str
    values: dict = field(default_factory=dict)

    def get(self, dotted_key: str, default: Any = None) -> Any:
        """Value of ``"section.key"``.

        Raises
        ------
        KeyError
            If the key is unknown and no ``default`` is given.
        """
        if dotted_key in self.values:
            return self.values[dotted_key]
        if default is not None:
            return default
        raise KeyError(f"profile {self.name!r} has no key {dotted_key!r}")

    def section(self, name: str) -> dict[str, Any]:
        """The keys of one section, without the section prefix."""
        pre = name + "."
        return {k[len(pre):]: v for k, v in self.values.items() if k.startswith(pre)}

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Nested ``{section: {key: value}}`` (lists as lists), suitable for TOML or JSON."""
        out: dict[str, dict[str, Any]] = {}
        for k, v in self.values.items():
            sec, key = k.split(".", 1)
            out.setdefault(sec, {})[key] = list(v) if isinstance(v, tuple) else v
        return out


def _values(pf: ProfileFile) -> dict[str, Any]:
    return {f"{s.encode_name}.{k.encode_name}": getattr(getattr(pf, s.name), k.name)
            for s in msgspec.structs.fields(ProfileFile) for k in msgspec.structs.fields(s.type)}


def load_profile(name: str, overrides: dict | None = None) -> Profile:
    """Load a shipped profile and apply user overrides.

    Parameters
    ----------
    name : str
        ``scalping``, ``production``, ``development`` or ``budget`` (case-insensitive).
    overrides : dict, optional
        Either flat ``{"dom.wall_ratio": 5.0}`` or nested ``{"dom": {"wall_ratio": 5.0}}``
        (both may be mixed). Each value is validated like the file's.

    Returns
    -------
    Profile

    Raises
    ------
    ConfigError
        Unknown profile name, unknown key, missing key, or a value outside its allowed range
        (the message names the dotted key and the range).
    """
    key = str(name).strip().lower()
    if key not in PROFILE_NAMES:
        raise ConfigError("profile", " | ".join(repr(n) for n in PROFILE_NAMES), name)
    path = resource_path("profiles", f"{key}.toml")
    raw = read_toml(path, f"profile file {path}")
    pf = decode(raw, ProfileFile, f"profile {key}")
    if overrides:
        merged = copy.deepcopy(raw)
        for k, v in _flatten(copy.deepcopy(dict(overrides))).items():
            sec, _, sub = k.partition(".")
            table = merged.setdefault(sec, {})
            if not isinstance(table, dict) or not sub:
                raise ConfigError(k, "a profile key section.key", v, where=f"profile {key} overrides")
            table[sub] = v
        pf = decode(merged, ProfileFile, f"profile {key} with the user's overrides")
    return Profile(name=key, values=_values(pf))
