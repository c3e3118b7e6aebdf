"""Profiles: the four shipped TOML files load, carry the seed's values, and refuse bad values."""

import pytest

from app.config.profiles import PROFILE_KEYS, PROFILE_NAMES, load_profile
from app.config.schema import ConfigError


def test_all_profiles_load_with_every_key():
    for name in PROFILE_NAMES:
        p = load_profile(name)
        assert p.name == name
        assert set(p.values) == set(PROFILE_KEYS)


@pytest.mark.parametrize(
    "name, interval, score, per_hour",
    [("scalping", 100, 0.65, 12), ("production", 250, 0.70, 6), ("development", 500, 0.50, 20)],
)
def test_seed_values(name, interval, score, per_hour):
    p = load_profile(name)
    assert p.get("engine.analysis_interval_ms") == interval
    assert p.get("elite.min_elite_score") == pytest.approx(score)
    assert p.get("elite.max_signals_per_hour") == per_hour
    w = (p.get("elite.weight_vix"), p.get("elite.weight_dom"), p.get("elite.weight_regime"))
    assert w == pytest.approx((0.30, 0.45, 0.25))


def test_overrides_flat_and_nested():
    p = load_profile("Production", {"dom.wall_ratio": 6, "elite": {"min_elite_score": 0.8}})
    assert p.get("dom.wall_ratio") == 6.0 and isinstance(p.get("dom.wall_ratio"), float)
    assert p.get("elite.min_elite_score") == 0.8
    assert p.as_dict()["dom"]["wall_ratio"] == 6.0
    assert p.section("elite")["min_elite_score"] == 0.8


@pytest.mark.parametrize(
    "over, words",
    [
        ({"elite.min_elite_score": 1.5}, ["elite.min_elite_score", "[0, 1]"]),
        ({"engine.analysis_interval_ms": 2.5}, ["engine.analysis_interval_ms", "integer"]),
        ({"vix.bands": [12, 11, 25, 35]}, ["vix.bands", "increase"]),
        ({"vix.sizing_factors": [1, 1]}, ["vix.sizing_factors", "5 numbers"]),
        ({"battle_navale.rsv_required": 1}, ["battle_navale.rsv_required", "true | false"]),
        ({"dom.no_such_key": 1}, ["dom.no_such_key"]),
    ],
)
def test_bad_values_name_key_and_range(over, words):
    with pytest.raises(ConfigError) as ei:
        load_profile("development", over)
    for w in words:
        assert w in str(ei.value)


def test_unknown_profile():
    with pytest.raises(ConfigError, match="scalping"):
        load_profile("turbo")
