"""The ``impl`` fixture: every analyzer-behaviour test runs on the numba kernels and on their
plain-NumPy twins (the ``*_ref`` modules beside the kernels), as one suite for two implementations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def _numba() -> SimpleNamespace:
    from app.analysis import advanced, battle_navale, dom, orderflow, vix

    return SimpleNamespace(
        name="numba", use_numba=True, dom_scan=dom.dom_scan, bn_scan=battle_navale.bn_scan,
        bar_bases=battle_navale.bar_bases, flow_scan=orderflow.flow_scan,
        adv_trades_scan=advanced.adv_trades_scan, adv_bars_scan=advanced.adv_bars_scan,
        vix_series=vix.vix_series, vix_patterns=vix.vix_patterns,
    )


def _numpy() -> SimpleNamespace:
    from app.analysis import advanced_ref, battle_navale_ref, dom_ref, orderflow_ref, vix_ref

    return SimpleNamespace(
        name="numpy", use_numba=False, dom_scan=dom_ref.dom_scan_np, bn_scan=battle_navale_ref.bn_scan_np,
        bar_bases=battle_navale_ref.bar_bases_np, flow_scan=orderflow_ref.flow_scan_np,
        adv_trades_scan=advanced_ref.adv_trades_scan_np, adv_bars_scan=advanced_ref.adv_bars_scan_np,
        vix_series=vix_ref.vix_series_np, vix_patterns=vix_ref.vix_patterns_np,
    )


IMPLS = {"numba": _numba, "numpy": _numpy}


@pytest.fixture(params=list(IMPLS), scope="module")
def impl(request) -> SimpleNamespace:
    """One implementation of every analyzer kernel: ``impl.dom_scan``, ``impl.bn_scan``, ...;
    ``impl.use_numba`` is the matching ``Analyzers`` / ``VixAnalyzer`` switch."""
    return IMPLS[request.param]()
