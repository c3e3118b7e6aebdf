"""File > Connection: where the market data comes from and which account trades.

Fields: built-in replay server (with recording and speed) or an external DTC server (host,
port, encoding, optional username and password), the trade account, and the symbol map: one
row per symbol with the exact data-service symbol (opaque, never parsed, e.g.
``ESZ25_FUT_CME``), exchange, tick size, tick value and the data source (DTC, or Sierra
Chart's data files; CME/CBOE data is refused over Sierra Chart's DTC server). The password is
kept in the OS keyring, never in a file or a log.

TLS: with the TLS box ticked and no certificate pinned yet, OK reads the server's certificate;
one that verifies against the computer's authorities needs no pin, otherwise (Sierra Chart's
usual self-signed one) its SHA-256 fingerprint is shown and the user decides whether to trust it;
trusted, it is saved (``[connection] tls_fingerprint``) and checked at every connection.
"""

from __future__ import annotations

import copy

from PySide6 import QtWidgets

from app.live.pipeline import PipelineConfig
from app.config.prefs import get_password, set_password
from app.config.settings import LOGON_TEXT_MAX_BYTES
from app.dtc.client import fetch_fingerprint, normalize_fingerprint

ENCODINGS = (("binary", "Binary"), ("json", "JSON"), ("json_compact", "Compact JSON"))
SOURCES = (("dtc", "DTC"), ("sierra_files", "Sierra Chart data files"))
SYMBOL_COLS = ("Name", "Data-service symbol", "Exchange", "Tick size", "Tick value", "Data source")


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
    """

    def __init__(self, config: PipelineConfig, prefs=None, parent=None, focus_source: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Connection")
        self.setMinimumWidth(640)
        self._config = copy.copy(config)
        self.prefs = prefs
        form = QtWidgets.QFormLayout()

        self.embedded = QtWidgets.QCheckBox("Use the built-in replay server (paper practice on a recording)")
        self.embedded.setChecked(config.embedded)
        self.recording = QtWidgets.QLineEdit(config.recording if isinstance(config.recording, str) else "")
        self.recording.setPlaceholderText("shipped real CME ES sample")
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
        self.port = QtWidgets.QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(config.port))
        self.encoding = QtWidgets.QComboBox()
        for key, label in ENCODINGS:
            self.encoding.addItem(label, key)
        self.encoding.setCurrentIndex(max(0, [k for k, _ in ENCODINGS].index(config.encoding)
                                          if config.encoding in [k for k, _ in ENCODINGS] else 0))
        self.username = QtWidgets.QLineEdit(config.username)
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
        self.trade_account.setPlaceholderText("e.g. Sim1 (empty = paper only)")
        self.sierra_dir = QtWidgets.QLineEdit(config.sierra_data_dir)
        self.sierra_dir.setPlaceholderText(r"C:\SierraChart\Data")

        form.addRow(self.embedded)
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
        form.addRow("Sierra Chart Data folder", self.sierra_dir)

        self.symbols = QtWidgets.QTableWidget(0, len(SYMBOL_COLS))
        self.symbols.setHorizontalHeaderLabels(SYMBOL_COLS)
        self.symbols.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Stretch)
        self.symbols.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        rows = symbols_from_prefs(prefs)
        if not rows and config.symbol:
            rows = [{"name": config.symbol, "symbol": config.symbol, "exchange": config.exchange,
                     "tick_size": config.tick_size, "tick_value": config.tick_value, "source": config.data_source}]
        for r in rows:
            self.add_symbol_row(r)
        active = prefs.get("connection.active_symbol", "") if prefs is not None else ""
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

        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.error_label = QtWidgets.QLabel("")
        self.error_label.setStyleSheet("color:#e85060")
        if prefs is not None and not prefs.writable:
            self.error_label.setText("The settings file did not load (see View > Problems): changes apply to "
                                     "this session only; the file is not overwritten until it is fixed.")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(sym_buttons)
        lay.addWidget(self.symbols)
        lay.addWidget(self.error_label)
        lay.addWidget(self.buttons)
        self.embedded.toggled.connect(self._update_enabled)
        self._update_enabled()
        if focus_source == "sierra_files":
            self.embedded.setChecked(False)
            row = self.active_row()
            if row < 0 and self.symbols.rowCount() == 0:
                self.add_symbol_row({"name": config.symbol, "symbol": config.symbol, "source": "sierra_files"})
                row = 0
            if row >= 0:
                combo = self.symbols.cellWidget(row, 5)
                combo.setCurrentIndex(1)
            self.sierra_dir.setFocus()

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

    def _update_enabled(self) -> None:
        emb = self.embedded.isChecked()
        for w in (self.recording, self.speed):
            w.setEnabled(emb)
        for w in (self.host, self.port, self.encoding, self.username, self.password, self.tls,
                  self.tls_fingerprint):
            w.setEnabled(not emb)

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
            p.save()
        if cfg.username and cfg.password:
            set_password(cfg.host, cfg.port, cfg.username, cfg.password)
        return cfg

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
