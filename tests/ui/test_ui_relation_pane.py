"""Issue 17 item 5 (drawn): the relation pane on the real BTCUSDT/ETHUSDT pair, fed from the runtime.

The built-in server replays both captures of 2024-08-08 through
:class:`app.live.instruments.InstrumentsRuntime` at maximum speed; the pane is fed every frame
the runtime publishes (``frame.relation``), as the window does, and a second pane the runtime's
whole series (``rt.relation_rows``). The runtime also hands the rows to both engines'
analyzers (their ``rel_*`` features).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

import pyqtgraph as pg  # noqa: E402

from app.analysis.relation import NS_PER_S, RELATION_DTYPE, RelationParams  # noqa: E402
from app.cli.analyze import load_any  # noqa: E402
from app.live.instruments import InstrumentsRuntime  # noqa: E402
from app.live.pipeline import PipelineConfig  # noqa: E402
from app.ui.relation_pane import RelationPane  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def pair(shared_data):
    return [load_any(str(shared_data / "crypto/btcusdt_20240808.gz")),
            load_any(str(shared_data / "crypto/ethusdt_20240808.gz"))]


async def until(pred, timeout: float, poll=None) -> bool:
    t_end = time.monotonic() + timeout
    while not pred() and time.monotonic() < t_end:
        if poll is not None:
            poll()
        await asyncio.sleep(0.02)
    return pred()


def test_the_pane_draws_the_runtimes_correlation_relative_strength_and_flags(qtbot, pair):
    pane = RelationPane(("BTCUSDT", "ETHUSDT"))
    qtbot.addWidget(pane)
    heat = pg.PlotWidget()
    qtbot.addWidget(heat)
    pane.link_x(heat)
    seen = []  # (pane's newest corr, runtime's newest corr) each time a frame brought a new row
    out = {}
    # k_sigma 2: the real pair flags about one second in seven (docs/relation.md), so marks exist
    cfg = PipelineConfig(embedded=True, recording=pair, speed=0.0, profile="scalping")

    async def main():
        rt = InstrumentsRuntime(cfg, relation_params=RelationParams(k_sigma=2.0))

        def on_frame(f):
            if pane.set_frame(f):
                seen.append((pane.last().copy(), f.relation.copy()))

        rt.add_frame_listener(on_frame)
        await rt.start()
        src = rt.instruments[0].pipeline.source
        assert await until(lambda: src.replay_finished and all(
            r.engine.backlog == 0 and r.engine.events_applied == r.pipeline.events_in for r in rt.instruments),
            400, rt.poll)
        await asyncio.sleep(0.3)  # the last frames reach the listener
        rt.poll()
        out["rows"] = np.concatenate(rt.relation_rows)
        out["row"] = rt.relation_row.copy()
        out["ana"] = [r.engine.analyzers.relation_row for r in rt.instruments]
        out["ts"] = [int(r.engine.analyzers._last_ts) for r in rt.instruments]
        await rt.stop()

    asyncio.run(asyncio.wait_for(main(), 500))
    rows = out["rows"]
    assert rows.dtype == RELATION_DTYPE and len(rows) > 300
    # fed from frames: every row the pane kept is the runtime's row of that second, field for field
    kept = pane.rows()
    assert len(kept) >= 20 and np.all(np.diff(kept["ts"]) > 0)
    by_ts = {int(t): i for i, t in enumerate(rows["ts"])}
    for r in kept:
        np.testing.assert_equal(r.tolist(), rows[by_ts[int(r["ts"])]].tolist())
    for mine, theirs in seen:  # the pane's newest correlation is the runtime's, frame after frame
        np.testing.assert_equal(float(mine["corr"]), float(theirs["corr"]))
    np.testing.assert_equal(float(pane.last()["corr"]), float(seen[-1][1]["corr"]))
    # the whole series: the pane's last correlation equals the runtime's, and the lines are the rows
    full = RelationPane(("BTCUSDT", "ETHUSDT"))
    qtbot.addWidget(full)
    assert full.extend(rows) == len(rows)
    np.testing.assert_equal(float(full.last()["corr"]), float(out["row"]["corr"]))
    t, c = full.corr_curve.getData()
    np.testing.assert_array_equal(t, rows["ts"] / NS_PER_S)
    np.testing.assert_array_equal(c, rows["corr"])
    t2, r2 = full.rs_curve.getData()
    np.testing.assert_array_equal(r2, 100.0 * rows["rs"])
    up, down = full.flags()
    assert len(up) + len(down) == int((rows["flag"] != 0).sum()) > 0  # every flagged second is marked
    np.testing.assert_array_equal(full.up_marks.getData()[0], rows["ts"][rows["flag"] > 0] / NS_PER_S)
    np.testing.assert_array_equal(full.down_marks.getData()[0], rows["ts"][rows["flag"] < 0] / NS_PER_S)
    assert "corr BTCUSDT/ETHUSDT" in full.corr_label.toPlainText()
    assert full.extend(rows[:5]) == 5 and len(full.rows()) == 5  # time went back: a new replay, never mixed in
    assert pane.linked_to() is heat.getPlotItem().getViewBox()  # one time axis with the heatmap
    # the analyzers of both instruments got the rows: each holds the row in force at its last step
    for row, ts in zip(out["ana"], out["ts"]):
        assert row is not None
        k = int(np.searchsorted(rows["ts"] + NS_PER_S, ts, side="right")) - 1
        assert int(row["ts"]) <= int(rows["ts"][k]) and int(row["ts"]) + NS_PER_S <= ts  # never ahead of its step
        np.testing.assert_equal(row.tolist(), rows[by_ts[int(row["ts"])]].tolist())


def test_rows_of_another_dtype_are_refused_and_nothing_is_lost(qtbot):
    pane = RelationPane(("ES", "NQ"))
    qtbot.addWidget(pane)
    good = np.zeros(3, RELATION_DTYPE)
    good["ts"] = np.array([1, 2, 3]) * NS_PER_S
    good["corr"] = [0.1, 0.2, np.nan]
    assert pane.extend(good) == 3
    with pytest.raises(ValueError, match="RELATION_DTYPE"):
        pane.extend(np.zeros(3))
    assert len(pane.rows()) == 3 and "corr ES/NQ -" in pane.corr_label.toPlainText()
    assert not pane.set_frame(type("F", (), {"relation": None})())


def test_the_relative_strength_axis_moves_seldom_and_always_holds_the_line(qtbot):
    """Row by row (a frame a second, as the window feeds it), on a random walk of the relative
    strength: after each row the whole visible line is inside the y range, the range moved far
    less often than rows came (every move redraws the axis), and both plots' axes are drawn
    from a cached pixmap."""
    from PySide6 import QtWidgets

    from app.ui.heatmap import settle_view

    pane = RelationPane(("ES", "NQ"))
    qtbot.addWidget(pane)
    pane.resize(600, 200)
    rng = np.random.default_rng(7)
    n = 600
    rows = np.zeros(n, RELATION_DTYPE)
    rows["ts"] = (1_700_000_000 + np.arange(n)) * NS_PER_S
    rows["corr"] = np.clip(0.8 + np.cumsum(rng.normal(0, 0.01, n)), -1, 1)
    rows["rs"] = np.cumsum(rng.normal(0, 2e-5, n))  # a share: 0.002 % a second
    rows["rs"][:3] = np.nan  # the window's first seconds have none
    for i in range(n):
        assert pane.extend(rows[i:i + 1]) == 1
        settle_view(pane.rs_plot.vb)
        pane._fit_rs()
        (x0, x1), (y0, y1) = pane.rs_plot.vb.viewRange()
        vis = 100.0 * rows["rs"][:i + 1]
        vis = vis[np.isfinite(vis)]
        if len(vis):
            assert y0 <= vis.min() and vis.max() <= y1, (i, y0, y1, vis.min(), vis.max())
    assert 0 < pane.y_fits < n // 10, pane.y_fits
    for plot in (pane.corr_plot, pane.rs_plot):
        assert plot.getAxis("left").cacheMode() == QtWidgets.QGraphicsItem.DeviceCoordinateCache


def test_fit_y_range_ignores_nan_and_keeps_a_range_that_still_fits(qtbot):
    from app.ui.heatmap import fit_y_range

    w = pg.PlotWidget()
    qtbot.addWidget(w)
    vb = w.getPlotItem().getViewBox()
    vb.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
    t = np.arange(11, dtype=float)
    assert fit_y_range(vb, t, np.full(11, np.nan), 0.25, 1.0) is False  # nothing to fit
    v = np.linspace(5.0, 9.0, 11)
    v[3] = np.nan
    assert fit_y_range(vb, t, v, 0.25, 1.0) is True
    y0, y1 = vb.viewRange()[1]
    assert (y0, y1) == pytest.approx((4.0, 10.0))  # span 4 with 25 % above and below
    assert fit_y_range(vb, t, v, 0.25, 1.0) is False  # inside and not too small: left alone
    assert fit_y_range(vb, t, np.full(11, 7.0), 0.25, 1.0) is True  # a quarter of the range or less: refit
    assert vb.viewRange()[1] == pytest.approx((6.75, 8.25))  # min_span 1 with 25 %
