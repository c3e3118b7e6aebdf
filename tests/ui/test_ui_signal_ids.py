"""The window seeds each new pipeline's signal ids from the journal (issue 14, item 15)."""

from app.analysis.frame import Signal
from app.trading.journal import Journal


def test_new_pipeline_starts_past_the_journal_and_the_tape(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    from app.live.pipeline import PipelineConfig
    from app.trading import journal as jmod
    from app.ui.main_window import MainWindow

    j = Journal(jmod.default_path())
    try:
        j.record_signal(Signal(57, 1, "ES", 1, 0.8, (), (), 1000, 996, 1008, 1), {})
    finally:
        j.close()
    w = MainWindow(PipelineConfig(embedded=True), prefs=None)
    qtbot.addWidget(w)
    assert w.next_signal_id() == 58
    w.tape.model.signals.append(Signal(90, 1, "ES", -1, 0.8, (), (), 1000, 1004, 992, 1))
    assert w.next_signal_id() == 91
    pl = w._new_pipeline()
    assert pl.config.engine_options["first_signal_id"] == 91
