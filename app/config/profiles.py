"""Analysis profiles: Scalping, Production, Development and Budget.

A profile is a TOML file under ``resources/profiles/<name>.toml`` (found through
:func:`app.paths.resource_path`, so it works from source and from a frozen bundle) with the
sections ``[engine]``, ``[dom]``, ``[vix]``, ``[battle_navale]``, ``[orderflow]``,
``[advanced]``, ``[elite]`` and ``[sizing]``. Every key has a type and an allowed range in
:data:`SCHEMA`; a file or a user override that breaks it raises :class:`ProfileError` naming the
dotted key and the range. The meaning and units of the analyzer keys are in ``docs/patterns.md``.

Example
-------
>>> p = load_profile("production", {"elite.min_elite_score": 0.75})
>>> p.get("engine.analysis_interval_ms")
250
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

from app.paths import resource_path

#: Profile names, in the order the GUI lists them.
PROFILE_NAMES = ("scalping", "production", "development", "budget")


class ProfileError(ValueError):
    """A profile file or override is invalid; the message names the dotted key and allowed range."""


# key -> (kind, low, high).  kind: "int", "float", "bool", "floats4", "floats5".
# low/high are inclusive bounds of every number (for the lists: of every element).
SCHEMA: dict[str, tuple[str, float, float]] = {
    # engine
    "engine.analysis_interval_ms": ("int", 10, 10_000),
    "engine.heatmap_column_ms": ("int", 10, 60_000),
    "engine.heatmap_rows": ("int", 20, 4_000),
    "engine.bar_seconds": ("int", 1, 3_600),
    # dom
    "dom.depth_levels": ("int", 1, 200),
    "dom.refire_s": ("float", 0.0, 3_600.0),
    "dom.iceberg_window_s": ("float", 0.1, 3_600.0),
    "dom.iceberg_ratio": ("float", 1.0, 100.0),
    "dom.iceberg_min_volume": ("float", 0.0, 1e9),
    "dom.wall_ratio": ("float", 1.0, 1_000.0),
    "dom.wall_min_size": ("float", 0.0, 1e9),
    "dom.wall_neighbours": ("int", 2, 200),
    "dom.ladder_min_levels": ("int", 3, 50),
    "dom.ladder_step_ratio": ("float", 1.0, 10.0),
    "dom.spoof_window_s": ("float", 0.1, 600.0),
    "dom.spoof_ratio": ("float", 1.0, 1_000.0),
    "dom.spoof_distance_ticks": ("int", 1, 200),
    "dom.spoof_max_traded_frac": ("float", 0.0, 1.0),
    "dom.absorption_window_s": ("float", 0.1, 600.0),
    "dom.absorption_ratio": ("float", 1.0, 100.0),
    "dom.absorption_min_volume": ("float", 0.0, 1e9),
    "dom.absorption_max_give_ticks": ("int", 0, 100),
    "dom.squeeze_levels": ("int", 1, 100),
    "dom.squeeze_window_s": ("float", 0.1, 600.0),
    "dom.squeeze_thin_ratio": ("float", 0.0, 1.0),
    "dom.squeeze_imbalance": ("float", 0.0, 1.0),
    "dom.squeeze_max_spread_ticks": ("int", 1, 100),
    # vix
    "vix.bands": ("floats4", 1.0, 200.0),
    "vix.percentile_window": ("int", 20, 5_000),
    "vix.momentum_stress": ("float", 0.0, 10.0),
    "vix.backwardation": ("float", 0.5, 3.0),
    "vix.calm_percentile": ("float", 0.0, 1.0),
    "vix.spike_threshold": ("float", 0.0, 10.0),
    "vix.spike_lookback": ("int", 2, 250),
    "vix.reversal_pct": ("float", 0.0, 1.0),
    "vix.complacency_level": ("float", 1.0, 100.0),
    "vix.complacency_percentile": ("float", 0.0, 1.0),
    "vix.complacency_term": ("float", 0.1, 3.0),
    "vix.change_lookback": ("int", 1, 250),
    "vix.change_steps": ("int", 1, 4),
    "vix.sizing_factors": ("floats5", 0.0, 10.0),
    # battle navale
    "battle_navale.lookback_bars": ("int", 2, 500),
    "battle_navale.long_bar_mult": ("float", 1.0, 50.0),
    "battle_navale.color_delta_ratio": ("float", 0.0, 1.0),
    "battle_navale.vikings_volume_mult": ("float", 1.0, 50.0),
    "battle_navale.vikings_delta_ratio": ("float", 0.0, 1.0),
    "battle_navale.defenders_rows": ("int", 1, 50),
    "battle_navale.defenders_ratio": ("float", 0.0, 1.0),
    "battle_navale.min_bar_volume": ("float", 0.0, 1e9),
    "battle_navale.rsv_required": ("bool", 0, 1),
    # order flow
    "orderflow.window_s": ("float", 0.1, 3_600.0),
    "orderflow.imbalance_levels": ("int", 1, 200),
    "orderflow.large_lot_size": ("float", 0.0, 1e9),
    "orderflow.large_lot_quantile": ("float", 0.5, 1.0),
    # advanced
    "advanced.gamma_distance_ticks": ("int", 0, 1_000),
    "advanced.gamma_window_s": ("float", 1.0, 3_600.0),
    "advanced.gamma_max_range_ticks": ("int", 1, 10_000),
    "advanced.gamma_min_frac": ("float", 0.0, 1.0),
    "advanced.headfake_lookback_bars": ("int", 2, 500),
    "advanced.headfake_volume_mult": ("float", 0.0, 50.0),
    "advanced.micro_window_ms": ("float", 10.0, 60_000.0),
    "advanced.micro_burst_mult": ("float", 1.0, 1_000.0),
    "advanced.micro_min_trades": ("int", 2, 100_000),
    "advanced.micro_side_ratio": ("float", 0.0, 1.0),
    "advanced.transition_bars": ("int", 3, 500),
    "advanced.trend_er": ("float", 0.0, 1.0),
    "advanced.range_er": ("float", 0.0, 1.0),
    "advanced.vp_window_s": ("float", 1.0, 3_600.0),
    "advanced.vp_touch_ticks": ("int", 0, 100),
    "advanced.vp_reaction_ticks": ("int", 1, 1_000),
    # elite
    "elite.min_elite_score": ("float", 0.0, 1.0),
    "elite.max_signals_per_hour": ("int", 0, 3_600),
    "elite.weight_vix": ("float", 0.0, 1.0),
    "elite.weight_dom": ("float", 0.0, 1.0),
    "elite.weight_regime": ("float", 0.0, 1.0),
    "elite.confluence_window_s": ("float", 0.0, 3_600.0),
    "elite.min_patterns": ("int", 1, 19),
    "elite.cooldown_s": ("float", 0.0, 3_600.0),
    "elite.max_recent_signals": ("int", 1, 10_000),
    "elite.atr_bars": ("int", 1, 500),
    "elite.stop_atr_mult": ("float", 0.1, 20.0),
    "elite.min_stop_ticks": ("int", 1, 10_000),
    "elite.max_stop_ticks": ("int", 1, 100_000),
    "elite.reward_risk": ("float", 0.1, 20.0),
    # sizing
    "sizing.base_contracts": ("int", 1, 10_000),
    "sizing.max_contracts": ("int", 1, 100_000),
}

_SECTIONS = ("engine", "dom", "vix", "battle_navale", "orderflow", "advanced", "elite", "sizing")


def _range_text(kind: str, lo: float, hi: float) -> str:
    if kind == "bool":
        return "true or false"
    if kind.startswith("floats"):
        n = int(kind[-1])
        return f"a list of {n} numbers, each in [{lo:g}, {hi:g}]"
    return f"{'an integer' if kind == 'int' else 'a number'} in [{lo:g}, {hi:g}]"


def _check(key: str, value: Any) -> Any:
    """Validate and normalise one value; raise ProfileError naming ``key`` and the range."""
    if key not in SCHEMA:
        raise ProfileError(f"unknown profile key {key!r}")
    kind, lo, hi = SCHEMA[key]
    bad = ProfileError(f"{key} = {value!r} is invalid: expected {_range_text(kind, lo, hi)}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind.startswith("floats"):
        n = int(kind[-1])
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise bad
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad
            if not lo <= v <= hi:
                raise bad
            out.append(float(v))
        if key == "vix.bands" and any(b <= a for a, b in zip(out, out[1:])):
            raise ProfileError(f"{key} = {value!r} is invalid: bands must increase strictly")
        return tuple(out)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            value = int(value)
    else:
        value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise bad
    return value


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
    ProfileError
        Unknown profile name, unknown key, missing key, or a value outside its allowed range
        (the message names the dotted key and the range).
    """
    key = str(name).strip().lower()
    if key not in PROFILE_NAMES:
        raise ProfileError(f"unknown profile {name!r}: expected one of {', '.join(PROFILE_NAMES)}")
    path = resource_path("profiles", f"{key}.toml")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile file {path} is not valid TOML: {exc}") from exc
    for sec in raw:
        if sec not in _SECTIONS:
            raise ProfileError(f"profile {key}: unknown section [{sec}]")
    flat = _flatten(raw)
    values = {k: _check(k, v) for k, v in flat.items()}
    missing = sorted(set(SCHEMA) - set(values))
    if missing:
        raise ProfileError(f"profile {key}: missing keys {', '.join(missing)}")
    if overrides:
        for k, v in _flatten(copy.deepcopy(dict(overrides))).items():
            values[k] = _check(k, v)
    if values["sizing.max_contracts"] < values["sizing.base_contracts"]:
        raise ProfileError("sizing.max_contracts must be >= sizing.base_contracts")
    if values["elite.max_stop_ticks"] < values["elite.min_stop_ticks"]:
        raise ProfileError("elite.max_stop_ticks must be >= elite.min_stop_ticks")
    if values["advanced.range_er"] > values["advanced.trend_er"]:
        raise ProfileError("advanced.range_er must be <= advanced.trend_er")
    return Profile(name=key, values=values)
