"""The connection dialog matches the guide (issue 16, item 8): a trading-mode selector (live needs
the typed confirmation), the symbol in use in the symbol map, readable headers and placeholders,
a "CME through Sierra Chart data files" preset with a filled-in ES example, and validation that
names what is wrong. Choices persist in settings.toml; a bad file is never overwritten.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtGui

from app.config.prefs import Prefs
from app.config.trading import load_trading_settings
from app.core.events import Instrument
from app.feeds.scid import SCID_RECORD_DTYPE, events_to_scid_records, write_scid
from app.live.pipeline import PipelineConfig
from app.live.sierra_source import SierraFilesSource
from app.live.sources import make_source
from app.ui.connection_dialog import (PRESET_SIERRA_FILES, ConnectionDialog, config_from_prefs,
                                      contrast_ratio)

ES = Instrument("ESH4", 0.25, 12.5, "CME")


@pytest.fixture()
def data_dir(tmp_path):
    """A Sierra Chart Data folder holding ESH4.scid: real trades of the shipped ES hour."""
    from app.feeds.samples import load_default_sample

    rec = load_default_sample()
    d = tmp_path / "SierraChart" / "Data"
    d.mkdir(parents=True)
    write_scid(d / "ESH4.scid", events_to_scid_records(rec.events[-5000:], rec.instrument))
    return d


def _dialog(qtbot, cfg=None, prefs=None, **kw):
    dlg = ConnectionDialog(cfg or PipelineConfig(), prefs, **kw)
    qtbot.addWidget(dlg)
    return dlg


def _choose_preset(dlg, key):
    i = dlg.preset.findData(key)
    dlg.preset.setCurrentIndex(i)
    dlg.preset.activated.emit(i)  # what a click on the item sends


def _row(dlg, i=None):
    i = dlg.active_row() if i is None else i
    return [dlg.symbols.item(i, c).text() for c in range(5)] + [dlg.symbols.cellWidget(i, 5).currentData()]


def test_sierra_files_preset_fills_the_es_example_found_folder_and_the_setting(qtbot, tmp_path, data_dir,
                                                                               monkeypatch):
    monkeypatch.setenv("SIERRA_CHART_DATA", str(data_dir))  # the folder "found" on this computer
    settings = tmp_path / "settings.toml"
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings), instrument=ES)
    dlg.mode.setCurrentIndex(dlg.mode.findData("sim"))
    _choose_preset(dlg, PRESET_SIERRA_FILES)
    assert dlg.mode_key() == "paper"  # the only mode this source can trade
    assert not dlg.embedded.isChecked()
    assert _row(dlg) == ["ESH4", "ESH4", "CME", "0.25", "12.5", "sierra_files"]
    assert dlg.sierra_dir.text() == str(data_dir)
    assert not dlg.sierra_help.isHidden()
    help_text = dlg.sierra_help.text()
    assert "Global Settings &gt;&gt; Symbol Settings" in help_text or "Global Settings >> Symbol Settings" in help_text
    assert "Record Market Depth Data" in help_text and "ESH4" in help_text
    dlg.accept()
    assert dlg.error_label.text() == "" or "settings file" not in dlg.error_label.text()
    cfg = dlg.result_config()
    assert (cfg.embedded, cfg.data_source, cfg.symbol, cfg.tick_size, cfg.tick_value, cfg.sierra_data_dir) == (
        False, "sierra_files", "ESH4", 0.25, 12.5, str(data_dir))
    assert isinstance(make_source(cfg), SierraFilesSource)
    # persisted: the next start reads the same choice back
    again = config_from_prefs(Prefs(settings))
    assert (again.embedded, again.data_source, again.symbol, again.tick_size, again.sierra_data_dir) == (
        False, "sierra_files", "ESH4", 0.25, str(data_dir))
    text = settings.read_text()
    assert 'data_folder = ' in text and 'ESH4 = "sierra_files"' in text


def test_preset_without_a_symbol_in_use_fills_the_es_example(qtbot, data_dir, monkeypatch):
    monkeypatch.setenv("SIERRA_CHART_DATA", str(data_dir))
    dlg = _dialog(qtbot)
    _choose_preset(dlg, PRESET_SIERRA_FILES)
    name, symbol, exchange, tick, value, source = _row(dlg)
    assert (name, exchange, tick, value, source) == ("ES", "CME", "0.25", "12.5", "sierra_files")
    assert symbol == "ESZ25_FUT_CME"
    dlg.accept()  # that example has no .scid in this folder: said so, with the file's name
    assert "No ESZ25_FUT_CME.scid in" in dlg.error_label.text() and str(data_dir) in dlg.error_label.text()


def test_validation_names_the_missing_folder_the_missing_scid_and_a_bad_tick(qtbot, tmp_path, data_dir):
    settings = tmp_path / "settings.toml"
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings), instrument=ES)
    _choose_preset(dlg, PRESET_SIERRA_FILES)
    missing = tmp_path / "nowhere" / "Data"
    dlg.sierra_dir.setText(str(missing))
    dlg.accept()
    assert "does not exist" in dlg.error_label.text() and str(missing) in dlg.error_label.text()
    empty = tmp_path / "empty"
    empty.mkdir()
    dlg.sierra_dir.setText(str(empty))
    dlg.accept()
    assert f"No ESH4.scid in {empty}" in dlg.error_label.text()
    dlg.sierra_dir.setText(str(data_dir))
    dlg.symbols.item(dlg.active_row(), 3).setText("0")
    dlg.accept()
    assert "tick size" in dlg.error_label.text() and "ESH4" in dlg.error_label.text()
    dlg.symbols.item(dlg.active_row(), 3).setText("-0.25")
    dlg.accept()
    assert "Tick size must be positive" in dlg.error_label.text()
    assert not hasattr(dlg, "_cfg") and not settings.exists()  # nothing accepted, nothing written
    # the installation folder is accepted too (its Data subfolder holds the files)
    dlg.symbols.item(dlg.active_row(), 3).setText("0.25")
    dlg.sierra_dir.setText(str(data_dir.parent))
    dlg.accept()
    assert dlg.result_config().sierra_data_dir == str(data_dir.parent)


def test_mode_selector_live_needs_the_typed_confirmation_and_persists(qtbot, tmp_path):
    settings = tmp_path / "settings.toml"
    dlg = _dialog(qtbot, PipelineConfig(embedded=False, host="127.0.0.1", port=11099, symbol="ESH4",
                                        tick_size=0.25, tick_value=12.5), Prefs(settings))
    assert [dlg.mode.itemData(i) for i in range(dlg.mode.count())] == ["paper", "sim", "live"]
    assert dlg.mode_key() == "paper" and dlg.live_confirm.isHidden()
    dlg.mode.setCurrentIndex(dlg.mode.findData("live"))
    assert not dlg.live_confirm.isHidden() and dlg.live_confirm.isEnabled()
    dlg.accept()
    assert "type LIVE" in dlg.error_label.text() and not hasattr(dlg, "_cfg")
    dlg.live_confirm.setText("live")  # exactly the phrase, as trading.toml's live mode needs
    dlg.accept()
    assert "type LIVE" in dlg.error_label.text()
    dlg.live_confirm.setText("LIVE")
    dlg.accept()
    assert "trade account" in dlg.error_label.text()
    dlg.trade_account.setText("120005")
    dlg.accept()
    assert dlg.result_config().trade_account == "120005"
    assert load_trading_settings(tmp_path / "trading.toml", settings).mode == "live"
    # back to paper: the typed box hides again and the choice is saved
    dlg2 = _dialog(qtbot, dlg.result_config(), Prefs(settings))
    assert dlg2.mode_key() == "live" and dlg2.live_confirm.text() == ""  # never remembered
    dlg2.mode.setCurrentIndex(dlg2.mode.findData("paper"))
    assert dlg2.live_confirm.isHidden()
    dlg2.accept()
    assert load_trading_settings(tmp_path / "trading.toml", settings).mode == "paper"


def test_mode_rules_name_what_is_wrong(qtbot, tmp_path, data_dir):
    settings = tmp_path / "settings.toml"
    # a simulated account trades over DTC: not with the Sierra Chart files source
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings), instrument=ES)
    _choose_preset(dlg, PRESET_SIERRA_FILES)
    dlg.sierra_dir.setText(str(data_dir))
    dlg.mode.setCurrentIndex(dlg.mode.findData("sim"))
    dlg.accept()
    assert "Sierra Chart data files source does not open" in dlg.error_label.text()
    # live is never the built-in replay server
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings))
    dlg.mode.setCurrentIndex(dlg.mode.findData("live"))
    dlg.live_confirm.setText("LIVE")
    dlg.accept()
    assert "not the built-in replay server" in dlg.error_label.text()
    # trading.toml's mode would override the choice: said, with the file
    (tmp_path / "trading.toml").write_text('[trading]\nmode = "paper"\n')
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings))
    dlg.mode.setCurrentIndex(dlg.mode.findData("sim"))
    dlg.accept()
    assert str(tmp_path / "trading.toml") in dlg.error_label.text() and 'mode = "paper"' in dlg.error_label.text()
    assert not settings.exists()


def test_a_bad_settings_file_is_never_overwritten(qtbot, tmp_path, data_dir):
    settings = tmp_path / "settings.toml"
    settings.write_text('[display]\ncontrast = 1.5\n')
    before = settings.read_bytes()
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), Prefs(settings), instrument=ES)
    assert "did not load" in dlg.error_label.text()
    _choose_preset(dlg, PRESET_SIERRA_FILES)
    dlg.sierra_dir.setText(str(data_dir))
    dlg.accept()
    assert dlg.result_config().data_source == "sierra_files"  # used for this session
    assert settings.read_bytes() == before


def test_symbol_in_use_is_in_the_map_and_headers_and_placeholders_are_readable(qtbot):
    dlg = _dialog(qtbot, PipelineConfig(embedded=True), None, instrument=ES)
    assert dlg.symbols.rowCount() == 1 and dlg.active_row() == 0
    assert _row(dlg) == ["ESH4", "ESH4", "CME", "0.25", "12.5", "dtc"]
    dlg.show()
    qtbot.waitExposed(dlg)
    hdr = dlg.symbols.horizontalHeader()
    fm = hdr.fontMetrics()
    for c in range(dlg.symbols.columnCount()):
        text = dlg.symbols.horizontalHeaderItem(c).text()
        assert hdr.sectionSize(c) >= fm.horizontalAdvance(text), (text, hdr.sectionSize(c))
    # placeholder text against the field's background: at least 4.5:1 (WCAG 2.1, 1.4.3), light palette
    for edit in (dlg.recording, dlg.trade_account, dlg.sierra_dir, dlg.live_confirm, dlg.host):
        pal = edit.palette()
        ph, base = pal.color(QtGui.QPalette.PlaceholderText), pal.color(QtGui.QPalette.Base)
        assert ph.alpha() == 255 and contrast_ratio(ph, base) >= 4.5


def test_placeholders_are_readable_on_the_windows_dark_palette(qtbot):
    from app.ui.connection_dialog import apply_readable_placeholders

    dlg = _dialog(qtbot)
    pal = dlg.palette()
    pal.setColor(QtGui.QPalette.Base, QtGui.QColor(18, 20, 30))  # app.ui.main.make_app's palette
    pal.setColor(QtGui.QPalette.Text, QtGui.QColor(225, 228, 235))
    dlg.setPalette(pal)
    col = apply_readable_placeholders(dlg)
    ph = dlg.trade_account.palette().color(QtGui.QPalette.PlaceholderText)
    assert ph == col and contrast_ratio(ph, QtGui.QColor(18, 20, 30)) >= 7.0


def test_scid_fixture_is_real_es_trades(data_dir):
    from app.feeds.scid import read_scid

    _, rec = read_scid(data_dir / "ESH4.scid")
    assert rec.dtype == SCID_RECORD_DTYPE and len(rec) > 100
    assert 4700 < float(np.median(rec["close"])) < 4900  # ES around 4810 on 2023-12-25


def test_the_dialog_fits_a_1366x768_screen_for_every_source(qtbot, data_dir, monkeypatch):
    """Only the chosen source's rows are shown, so the dialog fits 1366x768 less a 40 px taskbar."""
    from app.ui.connection_dialog import PRESET_REPLAY, PRESET_SIERRA_DTC

    monkeypatch.setenv("SIERRA_CHART_DATA", str(data_dir))
    for preset in (PRESET_REPLAY, PRESET_SIERRA_DTC, PRESET_SIERRA_FILES):
        dlg = _dialog(qtbot, PipelineConfig(embedded=True), None, instrument=ES)
        _choose_preset(dlg, preset)
        dlg.mode.setCurrentIndex(dlg.mode.findData("live"))  # the tallest form: the live box shown
        hint = dlg.sizeHint()
        assert hint.height() <= 768 - 40 and hint.width() <= 1366, (preset, hint)


def test_market_data_reject_route_opens_on_sierra_files_with_the_folder_found(qtbot, data_dir, monkeypatch):
    """After "market data rejected" the window opens the dialog on the files source (focus_source):
    the row's source is Sierra Chart files, the folder found is filled in and the steps are shown."""
    monkeypatch.setenv("SIERRA_CHART_DATA", str(data_dir))
    dlg = _dialog(qtbot, PipelineConfig(embedded=False, symbol="ESH4", tick_size=0.25, tick_value=12.5), None,
                  focus_source="sierra_files")
    assert _row(dlg)[1:] == ["ESH4", "", "0.25", "12.5", "sierra_files"]
    assert dlg.sierra_dir.text() == str(data_dir)
    assert not dlg.sierra_help.isHidden() and "Record Market Depth Data" in dlg.sierra_help.text()
    assert dlg.host.isHidden()  # the DTC rows are not this source's
    dlg.accept()
    assert dlg.result_config().data_source == "sierra_files"
