"""File > Connection: where the market data comes from and which account trades.

Fields: built-in replay server (with recording and speed) or an external DTC server (host,
port, encoding, optional username and password), the trade account, and the symbol map: one
row per symbol with the exact data-service symbol (opaque, never parsed, e.g.
``ESZ25_FUT_CME``), exchange, tick size, tick value and the data source (DTC, or Sierra
Chart's data files; CME/CBOE data is refused over Sierra Chart's DTC server). The password is
kept in the OS keyring, never in a file or a log.

Trading mode: paper (default: orders filled locally), a Sierra Chart simulated account
(``Sim1``...) or live; live needs the same typed confirmation as ``trading.toml``'s live mode
(:data:`app.config.trading.LIVE_CONFIRM_PHRASE`). The choice is saved as ``[trading] mode`` of
``settings.toml``; a ``mode`` in ``trading.toml`` overrides it, so OK refuses a choice that
``trading.toml`` would silently undo and names the file.

Presets fill the form with a worked example: "CME through Sierra Chart data files" sets the
symbol (the one in use, else an ES example), tick size 0.25, tick value 12.50 USD, the Data
folder found on this computer (or typed / browsed), and shows the Sierra Chart setting to turn
on (*Record Market Depth Data*). OK checks that the folder exists, that it holds
``<symbol>.scid`` and that the tick size is positive, and names what is wrong.

TLS: with the TLS box ticked and no certificate pinned yet, OK reads the server's certificate;
one that verifies against the computer's authorities needs no pin, otherwise (Sierra Chart's
usual self-signed one) its SHA-256 fingerprint is shown and the user decides whether to trust it;
trusted, it is saved (``[connection] tls_fingerprint``) and checked at every connection.
"""

from __future__ import annotations

import copy

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.live.pipeline import PipelineConfig
from app.live.sierra_source import default_data_dir_text, record_depth_steps, sierra_files_problem
from app.live.sources import SC_DTC_SERVER_MENU
from app.config.files import read_toml
from app.config.prefs import get_password, set_password
from app.config.schema import ConfigError
from app.config.settings import LOGON_TEXT_MAX_BYTES, settings_path
from app.config.trading import LIVE_CONFIRM_PHRASE, MODE_LIVE, MODE_PAPER, MODE_SIM, TRADING_FILE
from app.dtc.client import fetch_fingerprint, normalize_fingerprint

ENCODINGS = (("binary", "Binary"), ("json", "JSON"), ("json_compact", "Compact JSON"))
SOURCES = (("dtc", "DTC"), ("sierra_files", "Sierra Chart data files"))
SYMBOL_COLS = ("Name", "Data-service symbol", "Exchange", "Tick size", "Tick value", "Data source")
SYMBOL_TIPS = (
    "Your name for the symbol (shown in the window)",
    "The symbol exactly as the data service spells it (Sierra Chart: File >> Find Symbol), e.g. ESZ25_FUT_CME",
    "Exchange, e.g. CME (informative; Sierra Chart ignores it)",
    "Price units per tick, e.g. 0.25 for ES",
    "USD per tick per contract, e.g. 12.50 for ES",
    "Where the market data comes from: the DTC server, or Sierra Chart's own data files (CME, CBOE...)",
)
#: Trading modes of the selector: (key, label); live needs :data:`LIVE_CONFIRM_PHRASE` typed.
MODES = ((MODE_PAPER, "Paper: orders filled locally, never sent"),
         (MODE_SIM, "Sierra Chart simulated account (Sim1...) over DTC"),
         (MODE_LIVE, "Live account: real orders"))
PRESET_SIERRA_FILES = "sierra_files_es"
PRESET_REPLAY = "replay"
PRESET_SIERRA_DTC = "sierra_dtc"
PRESETS = (("", "Choose a preset to fill the form..."),
           (PRESET_SIERRA_FILES, "CME through Sierra Chart data files (ES example)"),
           (PRESET_SIERRA_DTC, "Sierra Chart DTC server on this computer (non-CME symbols)"),
           (PRESET_REPLAY, "Built-in replay server (paper practice on the ES sample)"))
#: The ES example of the Sierra Chart files preset when no symbol is in use (the spelling of
#: Sierra Chart's own data feed; other services spell it otherwise: File >> Find Symbol).
ES_EXAMPLE = {"name": "ES", "symbol": "ESZ25_FUT_CME", "exchange": "CME", "tick_size": 0.25, "tick_value": 12.5}
#: Share of the way from the background to the text colour used for placeholder text: with
#: the window's dark palette it gives a contrast ratio above 7:1, with a light one above 4.5:1
#: (WCAG 2.1 success criterion 1.4.3, "Contrast (Minimum)").
PLACEHOLDER_MIX = 0.7


def _luminance(c: QtGui.QColor) -> float:
    """WCAG 2.1 relative luminance of a colour (0 black .. 1 white)."""
    def ch(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())


def contrast_ratio(a: QtGui.QColor, b: QtGui.QColor) -> float:
    """WCAG 2.1 contrast ratio of two colours, 1..21 (4.5 is the minimum for body text)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def apply_readable_placeholders(widget: QtWidgets.QWidget) -> QtGui.QColor:
    """Give ``widget`` (and its children) a placeholder colour :data:`PLACEHOLDER_MIX` of the way
    from its Base to its Text colour; returns that colour."""
    pal = widget.palette()
    base, text = pal.color(QtGui.QPalette.Base), pal.color(QtGui.QPalette.Text)
    m = PLACEHOLDER_MIX
    col = QtGui.QColor.fromRgbF(base.redF() + m * (text.redF() - base.redF()),
                                base.greenF() + m * (text.greenF() - base.greenF()),
                                base.blueF() + m * (text.blueF() - base.blueF()))
    for group in (QtGui.QPalette.Active, QtGui.QPalette.Inactive, QtGui.QPalette.Disabled):
        pal.setColor(group, QtGui.QPalette.PlaceholderText, col)
    widget.setPalette(pal)
    return col


def trading_toml_mode(prefs) -> tuple[Path, str | None]:
    """``trading.toml`` beside the settings file and the ``mode`` it sets (None when none).

    Raises
    ------
    ValueError
        The file cannot be read or is not TOML (the message names it).
    """
    spath = Path(prefs.path) if prefs is not None and getattr(prefs, "path", None) else settings_path()
    tpath = spath.with_name(TRADING_FILE)
    if not tpath.exists():
        return tpath, None
    try:
        raw = read_toml(tpath)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    table = raw.get("trading", raw) if isinstance(raw, dict) else {}
    mode = table.get("mode") if isinstance(table, dict) else None
    return tpath, (str(mode) if mode is not None else None)


def symbols_from_prefs(prefs) -> list[dict]:
    """The stored symbol map (list of dicts with ``name, symbol, exchange, tick_size, tick_value, source``)."""
    if prefs is None:
        return []
    rows = prefs.get("connection.symbols", []) or []
    return [dict(r) for r in rows if isinstance(r, dict)]


def config_from_prefs(prefs, base: PipelineConfig | None = None) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from stored preferences (missing keys keep ``base``'s)."""
    cfg = copy.copy(base) if base is not None else PipelineConfig()
    if prefs is None:
        return cfg
    g = prefs.get
    cfg.embedded = bool(g("connection.embedded", cfg.embedded))
    cfg.profile_overrides = dict(g("analysis.overrides", {}) or {})
    cfg.recording = g("connection.recording", cfg.recording) or None
    if prefs.saved("replay.speed"):  # else keep the demo default (the sample's pre-open passes quickly)
        cfg.speed = float(g("replay.speed"))
    cfg.loop_replay = bool(g("replay.loop", cfg.loop_replay))
    cfg.replay_process = bool(g("replay.process", cfg.replay_process))
    cfg.host = str(g("connection.host", cfg.host))
    cfg.port = int(g("connection.port", cfg.port))
    cfg.encoding = str(g("connection.encoding", cfg.encoding))
    cfg.username = str(g("connection.username", cfg.username))
    cfg.tls = bool(g("connection.tls", cfg.tls))
    cfg.tls_fingerprint = str(g("connection.tls_fingerprint", cfg.tls_fingerprint) or "")
    cfg.trade_account = str(g("connection.trade_account", cfg.trade_account))
    cfg.sierra_data_dir = str(g("connection.sierra_data_dir", cfg.sierra_data_dir))
    cfg.profile = str(g("profile", cfg.profile))
    active = g("connection.active_symbol", "")
    for row in symbols_from_prefs(prefs):
        if row.get("name") == active:
            cfg.symbol = str(row.get("symbol", ""))
            cfg.exchange = str(row.get("exchange", ""))
            cfg.tick_size = float(row.get("tick_size", 0) or 0)
            cfg.tick_value = float(row.get("tick_value", 0) or 0)
            cfg.data_source = str(row.get("source", "dtc"))
    if cfg.username and not cfg.embedded:
        cfg.password = get_password(cfg.host, cfg.port, cfg.username)
    return cfg


class ConnectionDialog(QtWidgets.QDialog):
    """The connection dialog (see the module docstring).

    Parameters
    ----------
    config : PipelineConfig
        Current connection (pre-fills the fields).
    prefs : app.config.prefs.Prefs or None
        Where the fields are saved on OK (password excepted: OS keyring).
    focus_source : str, optional
        ``"sierra_files"`` opens with the active symbol's source set to Sierra Chart files
        (offered after a market-data reject).
    instrument : app.core.events.Instrument, optional
        The symbol in use (the window's): the symbol map gets its row when it has none.
    """

    def __init__(self, config: PipelineConfig, prefs=None, parent=None, focus_source: str | None = None,
                 instrument=None):
        super().__init__(parent)
        self.setWindowTitle("Connection")
        self.setMinimumWidth(820)
        self._config = copy.copy(config)
        self.prefs = prefs
        self.instrument = instrument
        form = QtWidgets.QFormLayout()

        self.preset = QtWidgets.QComboBox()
        for key, label in PRESETS:
            self.preset.addItem(label, key)
        self.preset.setToolTip("Fill the form with a worked example (every field stays editable)")
        self.preset.activated.connect(lambda i: self.apply_preset(self.preset.itemData(i)))

        self.mode = QtWidgets.QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        mode = str(prefs.get("trading.mode", MODE_PAPER)) if prefs is not None else MODE_PAPER
        self.mode.setCurrentIndex(max(0, [k for k, _ in MODES].index(mode) if mode in [k for k, _ in MODES] else 0))
        self.mode.setToolTip("Paper needs nothing from Sierra Chart. A simulated account (Sim1...) and a live "
                             "account trade through the DTC connection; live needs the typed confirmation.")
        self.live_confirm = QtWidgets.QLineEdit()
        self.live_confirm.setObjectName("live_confirm")
        self.live_confirm.setPlaceholderText(f"type {LIVE_CONFIRM_PHRASE} to use a live account (real orders)")

        self.embedded = QtWidgets.QCheckBox("Use the built-in replay server (paper practice on a recording)")
        self.embedded.setChecked(config.embedded)
        self.recording = QtWidgets.QLineEdit(config.recording if isinstance(config.recording, str) else "")
        self.recording.setPlaceholderText("empty = the shipped real CME ES sample")
        browse = QtWidgets.QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        rec_row = QtWidgets.QHBoxLayout()
        rec_row.addWidget(self.recording, 1)
        rec_row.addWidget(browse)
        self.speed = QtWidgets.QDoubleSpinBox()
        self.speed.setRange(0.1, 1000.0)
        self.speed.setValue(config.speed)
        self.speed.setSuffix(" x")

        self.host = QtWidgets.QLineEdit(config.host)
        self.host.setPlaceholderText("127.0.0.1 (Sierra Chart on this computer)")
        self.port = QtWidgets.QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(config.port))
        self.port.setToolTip(f"Sierra Chart: {SC_DTC_SERVER_MENU} >> Listening Port (commonly 11099)")
        self.encoding = QtWidgets.QComboBox()
        for key, label in ENCODINGS:
            self.encoding.addItem(label, key)
        self.encoding.setCurrentIndex(max(0, [k for k, _ in ENCODINGS].index(config.encoding)
                                          if config.encoding in [k for k, _ in ENCODINGS] else 0))
        self.username = QtWidgets.QLineEdit(config.username)
        self.username.setPlaceholderText("empty unless Sierra Chart's Require Authentication is on")
        self.tls = QtWidgets.QCheckBox("TLS (Sierra Chart: Require TLS)")
        self.tls.setChecked(bool(config.tls))
        self.tls_fingerprint = QtWidgets.QLineEdit(config.tls_fingerprint)
        self.tls_fingerprint.setPlaceholderText("pinned on first connect (SHA-256 of the server's certificate)")
        self.password = QtWidgets.QLineEdit()
        self.password.setEchoMode(QtWidgets.QLineEdit.Password)
        self.password.setPlaceholderText("kept in the OS keyring")
        if config.username:
            self.password.setText(config.password or get_password(config.host, config.port, config.username))
        self.trade_account = QtWidgets.QLineEdit(config.trade_account)
        self.trade_account.setPlaceholderText("e.g. Sim1 (a simulated account; empty = paper only)")
        self.sierra_dir = QtWidgets.QLineEdit(config.sierra_data_dir)
        self.sierra_dir.setPlaceholderText(r"C:\SierraChart\Data (Sierra Chart's Data folder)")
        sierra_browse = QtWidgets.QPushButton("Browse...")
        sierra_browse.clicked.connect(self._browse_sierra)
        sierra_row = QtWidgets.QHBoxLayout()
        sierra_row.addWidget(self.sierra_dir, 1)
        sierra_row.addWidget(sierra_browse)

        form.addRow("Preset", self.preset)
        form.addRow("Trading mode", self.mode)
        form.addRow("Live confirmation", self.live_confirm)
        form.addRow(self.embedded)
        self._rec_row = rec_row
        form.addRow("Recording", rec_row)
        form.addRow("Replay speed", self.speed)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Encoding", self.encoding)
        form.addRow("", self.tls)
        form.addRow("Certificate SHA-256", self.tls_fingerprint)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        form.addRow("Trade account", self.trade_account)
        form.addRow("Sierra Chart Data folder", sierra_row)
        self._form = form

        self.symbols = QtWidgets.QTableWidget(0, len(SYMBOL_COLS))
        self.symbols.setHorizontalHeaderLabels(SYMBOL_COLS)
        hdr = self.symbols.horizontalHeader()
        for c, tip in enumerate(SYMBOL_TIPS):
            self.symbols.horizontalHeaderItem(c).setToolTip(tip)
            # every header is shown whole: columns fit their contents and their header text
            hdr.setSectionResizeMode(c, QtWidgets.QHeaderView.ResizeToContents)
        hdr.setSectionResizeMode(1, QtWidgets.QHeaderView.Stretch)
        hdr.setMinimumSectionSize(hdr.fontMetrics().horizontalAdvance("Tick value") + 24)
        self.symbols.setMinimumHeight(120)
        self.symbols.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        rows = symbols_from_prefs(prefs)
        in_use = self._in_use_row(config, instrument)
        if in_use is not None and not any(r.get("symbol") == in_use["symbol"] for r in rows):
            rows.append(in_use)
        for r in rows:
            self.add_symbol_row(r)
        active = prefs.get("connection.active_symbol", "") if prefs is not None else ""
        if not active and in_use is not None:
            active = next((r["name"] for r in rows if r.get("symbol") == in_use["symbol"]), "")
        for i in range(self.symbols.rowCount()):
            if self.symbols.item(i, 0).text() == active:
                self.symbols.selectRow(i)
        add = QtWidgets.QPushButton("Add symbol")
        add.clicked.connect(lambda: self.add_symbol_row({}))
        remove = QtWidgets.QPushButton("Remove")
        remove.clicked.connect(self._remove_row)
        sym_buttons = QtWidgets.QHBoxLayout()
        sym_buttons.addWidget(QtWidgets.QLabel(
            "Symbol map (the selected row is the one shown; symbols are used exactly as typed):"))
        sym_buttons.addStretch(1)
        sym_buttons.addWidget(add)
        sym_buttons.addWidget(remove)

        self.sierra_help = QtWidgets.QLabel("")
        self.sierra_help.setObjectName("sierra_help")
        self.sierra_help.setWordWrap(True)
        self.sierra_help.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)

        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.error_label = QtWidgets.QLabel("")
        self.error_label.setObjectName("error_label")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color:#e85060")
        if prefs is not None and not prefs.writable:
            self.error_label.setText("The settings file did not load (see View > Problems): changes apply to "
                                     "this session only; the file is not overwritten until it is fixed.")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(sym_buttons)
        lay.addWidget(self.symbols)
        lay.addWidget(self.sierra_help)
        lay.addWidget(self.error_label)
        lay.addWidget(self.buttons)
        self.embedded.toggled.connect(self._update_enabled)
        self.mode.currentIndexChanged.connect(self._update_enabled)
        self.symbols.itemSelectionChanged.connect(self._update_enabled)
        self._update_enabled()
        apply_readable_placeholders(self)
        if focus_source == "sierra_files":
            self.embedded.setChecked(False)
            row = self.active_row()
            if row < 0 and self.symbols.rowCount() == 0:
                self.add_symbol_row({"name": config.symbol, "symbol": config.symbol, "source": "sierra_files"})
                row = 0
            if row >= 0:
                combo = self.symbols.cellWidget(row, 5)
                combo.setCurrentIndex(1)
            if not self.sierra_dir.text().strip():
                self.sierra_dir.setText(default_data_dir_text(None))
            self.sierra_dir.setFocus()

    @staticmethod
    def _in_use_row(config: PipelineConfig, instrument) -> dict | None:
        """The symbol map row of the symbol in use (the window's instrument, else the config's)."""
        if instrument is not None and getattr(instrument, "symbol", ""):
            return {"name": instrument.symbol, "symbol": instrument.symbol,
                    "exchange": getattr(instrument, "exchange", "") or config.exchange,
                    "tick_size": float(instrument.tick_size), "tick_value": float(instrument.tick_value),
                    "source": config.data_source if not config.embedded else "dtc"}
        if config.symbol:
            return {"name": config.symbol, "symbol": config.symbol, "exchange": config.exchange,
                    "tick_size": config.tick_size, "tick_value": config.tick_value, "source": config.data_source}
        return None

    def apply_preset(self, key: str) -> None:
        """Fill the form with a preset (see :data:`PRESETS`); every field stays editable.

        ``sierra_files_es``: no built-in server, paper mode (the only one this source can trade), the
        symbol in use (else :data:`ES_EXAMPLE`'s) with ES's tick size 0.25 and tick value
        12.50 USD, source Sierra Chart files, the Data folder found (default
        ``C:\\SierraChart\\Data`` on Windows; elsewhere the configured folder), and the Sierra
        Chart setting to turn on shown below the table. ``sierra_dtc``: 127.0.0.1:11099.
        ``replay``: the built-in server.
        """
        if key == PRESET_REPLAY:
            self.embedded.setChecked(True)
        elif key == PRESET_SIERRA_DTC:
            self.embedded.setChecked(False)
            self.host.setText("127.0.0.1")
            self.port.setValue(11099)
            row = self.active_row()
            if row >= 0:
                self.symbols.cellWidget(row, 5).setCurrentIndex(0)
        elif key == PRESET_SIERRA_FILES:
            self.embedded.setChecked(False)
            ex = dict(ES_EXAMPLE, source="sierra_files")
            if self.instrument is not None and getattr(self.instrument, "symbol", ""):
                ex["symbol"] = ex["name"] = self.instrument.symbol
            row = next((i for i in range(self.symbols.rowCount())
                        if self.symbols.item(i, 1) is not None and self.symbols.item(i, 1).text() == ex["symbol"]), -1)
            if row < 0:
                row = self.add_symbol_row(ex)
            else:
                for c, k in ((2, "exchange"), (3, "tick_size"), (4, "tick_value")):
                    self.symbols.item(row, c).setText(str(ex[k]))
                self.symbols.cellWidget(row, 5).setCurrentIndex(1)
            self.symbols.selectRow(row)
            self.sierra_dir.setText(default_data_dir_text(self.sierra_dir.text().strip() or None))
            self.mode.setCurrentIndex(self.mode.findData(MODE_PAPER))
        self._update_enabled()

    def sierra_help_text(self, symbol: str) -> str:
        """The Sierra Chart settings the files source needs for ``symbol`` (shown below the table)."""
        steps = "".join(f"<li>{line}</li>" for line in record_depth_steps(symbol or "the symbol"))
        return ("<b>Sierra Chart data files</b>: MIA Elite reads <i>Data\\&lt;symbol&gt;.scid</i> (trades, bid/ask) "
                "and <i>Data\\MarketDepthData\\&lt;symbol&gt;.&lt;date&gt;.depth</i> (the book). Turn on depth "
                f"recording in Sierra Chart:<ol>{steps}</ol>")
    def add_symbol_row(self, r: dict) -> int:
        """Append a symbol-map row; returns its index."""
        i = self.symbols.rowCount()
        self.symbols.insertRow(i)
        for c, key in enumerate(("name", "symbol", "exchange", "tick_size", "tick_value")):
            v = r.get(key, "")
            self.symbols.setItem(i, c, QtWidgets.QTableWidgetItem("" if v in ("", None, 0, 0.0) else str(v)))
        combo = QtWidgets.QComboBox()
        for key, label in SOURCES:
            combo.addItem(label, key)
        combo.setCurrentIndex(1 if r.get("source") == "sierra_files" else 0)
        combo.currentIndexChanged.connect(lambda _i: self._update_enabled())
        self.symbols.setCellWidget(i, 5, combo)
        self.symbols.selectRow(i)
        return i

    def _remove_row(self) -> None:
        r = self.active_row()
        if r >= 0:
            self.symbols.removeRow(r)

    def active_row(self) -> int:
        """Index of the selected symbol row (-1 if none)."""
        rows = self.symbols.selectionModel().selectedRows()
        return rows[0].row() if rows else (0 if self.symbols.rowCount() == 1 else -1)

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Recording", "", "Recordings (*.mrec *.zst);;All (*)")
        if path:
            self.recording.setText(path)

    def _browse_sierra(self) -> None:
        start = self.sierra_dir.text().strip() or default_data_dir_text(None)
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Sierra Chart Data folder", start)
        if path:
            self.sierra_dir.setText(path)

    def mode_key(self) -> str:
        """The chosen trading mode: ``paper``, ``sim`` or ``live``."""
        return str(self.mode.currentData())

    def _active_source(self) -> str:
        r = self.active_row()
        if r < 0:
            return ""
        combo = self.symbols.cellWidget(r, 5)
        return str(combo.currentData()) if combo is not None else ""

    def _update_enabled(self) -> None:
        emb = self.embedded.isChecked()
        for w in (self.recording, self.speed):
            w.setEnabled(emb)
        for w in (self.host, self.port, self.encoding, self.username, self.password, self.tls,
                  self.tls_fingerprint):
            w.setEnabled(not emb)
        live = self.mode_key() == MODE_LIVE
        self.live_confirm.setEnabled(live)
        files = not emb and self._active_source() == "sierra_files"
        # only the rows of the chosen source are shown (the dialog fits a 1366x768 screen)
        f = self._form
        f.setRowVisible(self.live_confirm, live)
        for w in (self._rec_row, self.speed):
            f.setRowVisible(w, emb)
        for w in (self.host, self.port, self.encoding, self.tls, self.tls_fingerprint, self.username, self.password):
            f.setRowVisible(w, not emb and not files)
        if files:
            r = self.active_row()
            it = self.symbols.item(r, 1)
            self.sierra_help.setText(self.sierra_help_text(it.text().strip() if it is not None else ""))
        self.sierra_help.setVisible(files)

    def symbol_rows(self) -> list[dict]:
        """The symbol map as typed; raises ValueError naming the row and field for a bad number."""
        out = []
        for i in range(self.symbols.rowCount()):
            def txt(c):
                it = self.symbols.item(i, c)
                return it.text().strip() if it is not None else ""

            row = {"name": txt(0) or txt(1), "symbol": txt(1), "exchange": txt(2)}
            for c, key in ((3, "tick_size"), (4, "tick_value")):
                t = txt(c)
                try:
                    row[key] = float(t) if t else 0.0
                except ValueError:
                    raise ValueError(f"symbol map row {i + 1}: {SYMBOL_COLS[c]} {t!r} is not a number") from None
                if row[key] < 0:
                    raise ValueError(f"symbol map row {i + 1}: {SYMBOL_COLS[c]} must be positive")
            row["source"] = self.symbols.cellWidget(i, 5).currentData()
            if not row["symbol"]:
                raise ValueError(f"symbol map row {i + 1}: the data-service symbol is empty")
            out.append(row)
        return out

    def accept(self) -> None:
        try:
            self._cfg = self._build()
        except ValueError as exc:
            self.error_label.setText(str(exc))
            return
        super().accept()

    def _build(self) -> PipelineConfig:
        cfg = copy.copy(self._config)
        cfg.embedded = self.embedded.isChecked()
        typed = self.recording.text().strip()
        if typed or isinstance(cfg.recording, str) or cfg.recording is None:
            cfg.recording = typed or None
        cfg.speed = float(self.speed.value())
        cfg.host = self.host.text().strip() or "127.0.0.1"
        cfg.port = int(self.port.value())
        cfg.encoding = self.encoding.currentData()
        cfg.username = self.username.text().strip()
        cfg.password = self.password.text()
        cfg.trade_account = self.trade_account.text().strip()
        cfg.sierra_data_dir = self.sierra_dir.text().strip()
        cfg.tls = self.tls.isChecked()
        try:
            cfg.tls_fingerprint = normalize_fingerprint(self.tls_fingerprint.text())
        except ValueError as exc:
            raise ValueError(f"Certificate SHA-256: {exc}") from None
        if not cfg.embedded and cfg.tls and not cfg.tls_fingerprint:
            cfg.tls_fingerprint = self._pin_on_first_connect(cfg.host, cfg.port)
            self.tls_fingerprint.setText(cfg.tls_fingerprint)
        if not cfg.embedded:
            for label, value in (("Username", cfg.username), ("Password", cfg.password or "")):
                n = len(value.encode("utf-8"))
                if n > LOGON_TEXT_MAX_BYTES:
                    raise ValueError(f"{label} is {n} bytes; a DTC logon holds at most {LOGON_TEXT_MAX_BYTES} "
                                     f"bytes (UTF-8)")
        rows = self.symbol_rows()
        ai = self.active_row()
        active = rows[ai] if 0 <= ai < len(rows) else None
        if active is not None:
            cfg.symbol = active["symbol"]
            cfg.exchange = active["exchange"]
            cfg.tick_size = active["tick_size"]
            cfg.tick_value = active["tick_value"]
            cfg.data_source = active["source"]
        elif not cfg.embedded:
            raise ValueError("add the symbol to show to the symbol map (and select it)")
        if not cfg.embedded and active is not None and active["tick_size"] <= 0:
            raise ValueError(f"symbol {active['symbol']}: set its tick size (e.g. 0.25 for ES)")
        if not cfg.embedded and cfg.data_source == "sierra_files":
            problem = sierra_files_problem(cfg.sierra_data_dir, cfg.symbol, cfg.tick_size)
            if problem:
                raise ValueError(problem)
        mode = self._check_mode(cfg)
        if self.prefs is not None:
            p = self.prefs
            p.set("connection.embedded", cfg.embedded)
            p.set("connection.recording", cfg.recording or "")
            p.set("replay.speed", cfg.speed)
            p.set("connection.host", cfg.host)
            p.set("connection.port", cfg.port)
            p.set("connection.encoding", cfg.encoding)
            p.set("connection.username", cfg.username)
            p.set("connection.tls", cfg.tls)
            p.set("connection.tls_fingerprint", cfg.tls_fingerprint)
            p.set("connection.trade_account", cfg.trade_account)
            p.set("connection.sierra_data_dir", cfg.sierra_data_dir)
            p.set("connection.symbols", rows)
            p.set("connection.active_symbol", active["name"] if active else "")
            p.set("trading.mode", mode)
            p.save()  # a file that failed to load is not written (Prefs); a bad value raises ConfigError
        if cfg.username and cfg.password:
            set_password(cfg.host, cfg.port, cfg.username, cfg.password)
        return cfg

    def _check_mode(self, cfg: PipelineConfig) -> str:
        """The chosen trading mode, after its rules; raises ValueError naming what is wrong.

        Live needs :data:`LIVE_CONFIRM_PHRASE` typed, an external DTC server (Sierra Chart) and
        a trade account; a simulated or live account trades over the DTC connection, which the
        Sierra Chart files source does not open; a ``mode`` in ``trading.toml`` that differs
        would override the choice.
        """
        mode = self.mode_key()
        if mode == MODE_LIVE:
            if self.live_confirm.text().strip() != LIVE_CONFIRM_PHRASE:
                raise ValueError(f"Live mode sends real orders: type {LIVE_CONFIRM_PHRASE} in the live "
                                 "confirmation box, or choose Paper or the simulated account.")
            if cfg.embedded:
                raise ValueError("Live mode needs Sierra Chart's DTC server, not the built-in replay server: "
                                 "untick the built-in server and set host and port.")
            if not cfg.trade_account:
                raise ValueError("Live mode: set the trade account (as Sierra Chart names it).")
        if mode in (MODE_SIM, MODE_LIVE) and not cfg.embedded and cfg.data_source == "sierra_files":
            raise ValueError(f"{'Live' if mode == MODE_LIVE else 'Simulated-account'} mode trades over the DTC "
                             "connection, which the Sierra Chart data files source does not open: choose Paper "
                             "mode with Sierra Chart files, or the DTC data source.")
        tpath, tmode = trading_toml_mode(self.prefs)
        if tmode is not None and tmode != mode:
            raise ValueError(f"{tpath} sets mode = \"{tmode}\", which overrides this choice: remove that line "
                             f"or set mode = \"{mode}\" there.")
        return mode

    def _pin_on_first_connect(self, host: str, port: int) -> str:
        """TLS without a pinned certificate: read the server's certificate; one that verifies
        against the system's authorities needs no pin (""); otherwise the user is shown its SHA-256
        fingerprint and asked to trust it (the pin), never trusted silently.

        Raises
        ------
        ValueError
            The certificate cannot be read, or the user did not trust it (the text says what to do).
        """
        try:
            fingerprint, verify_error = fetch_fingerprint(host, port, timeout=5.0)
        except OSError as exc:
            raise ValueError(f"{exc}. Start the server (TLS on), or paste its certificate's SHA-256.") from None
        if not verify_error:
            return ""
        if not self.confirm_fingerprint(host, port, fingerprint, verify_error):
            raise ValueError(f"the certificate of {host}:{port} is not trusted ({verify_error}); "
                             "compare its SHA-256 with the server's before trusting it")
        return fingerprint

    def confirm_fingerprint(self, host: str, port: int, fingerprint: str, verify_error: str) -> bool:
        """Ask whether to trust (pin) a certificate that does not verify; True = trust."""
        answer = QtWidgets.QMessageBox.question(
            self, "Trust this certificate?",
            f"The TLS certificate of {host}:{port} is not trusted by this computer ({verify_error}).\n\n"
            f"SHA-256 fingerprint:\n{fingerprint}\n\n"
            "Sierra Chart's certificate is usually self-signed. Trust it only if this fingerprint is the one of "
            "your server (Sierra Chart: ServerCertificate folder). It is saved and checked at every connection.",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No, QtWidgets.QMessageBox.No)
        return answer == QtWidgets.QMessageBox.Yes

    def result_config(self) -> PipelineConfig:
        """The accepted configuration (after OK)."""
        return self._cfg
