"""The window's view of the user settings: flat keys, change tracking, no overwrite of a bad file.

:class:`Prefs` gives the window a flat ``{"dotted.key": value}`` view of two files in the
platform's config folder, both on the common schema (:mod:`app.config.schema`):

* ``settings.toml`` (:mod:`app.config.settings`): what the user chose;
* ``window.toml`` (:class:`WindowFile`): the window's layout (geometry, dock state, splitter
  positions), which changes at every session and so is kept apart: closing the window without
  changing a setting leaves ``settings.toml`` byte for byte.

=============================  ==============================================================
window key                     stored as
=============================  ==============================================================
``connection.host/port/        ``settings.toml`` ``[connection]`` host, port, encoding, username,
encoding/username/tls/         tls, tls_fingerprint
tls_fingerprint``
``connection.trade_account``   ``[trading] account``
``trading.mode``               ``[trading] mode`` (paper / sim / live; ``trading.toml`` overrides it)
``connection.sierra_data_dir``  ``[sierra] data_folder``
``connection.symbols``         ``[symbols.map]`` name -> data-service symbol, ``[symbols.source]``
                               name -> ``dtc``/``sierra_files``; exchange, tick size and tick
                               value per name in ``[ui.symbol_details]``
``replay.speed``               ``[replay] speed``
``replay.loop``                ``[replay] loop`` (start the recording again at its end)
``replay.process``             ``[replay] process`` (the built-in server in its own process)
``profile``                    ``[analysis] profile`` (``analysis.overrides`` are read too)
``heatmap.contrast``           ``[display] contrast`` (upper cut-off quantile 0.5..1.0)
``alerts.sound``               ``[display] sound``
``connection.embedded``,       ``[ui]`` (:class:`app.config.settings.UiPrefs`)
``connection.recording``,
``connection.active_symbol``,
``alerts.notify``
``window.geometry/state``,     ``window.toml`` ``[window]`` geometry, state, ``[window.splitters]``
``splitters.<name>``           (read from ``settings.toml [ui]`` too, where earlier versions kept them)
``window.layout``              ``window.toml`` ``[window]`` layout: how several instruments' panels
                               are laid out (``tabs`` / ``split2`` / ``split4``; "" = default)
=============================  ==============================================================

Saving rules (:meth:`Prefs.save`):

* only the keys the window changed are written, merged into the file's own document (its other
  keys are written back as they were read; defaults are never written for keys not changed);
* nothing is written when nothing changed;
* **a file that failed to load is never written**: the window runs on the defaults, shows
  :meth:`Prefs.problems` in its problem strip, and the file stays byte for byte (a copy is kept
  as ``settings.toml.bad-<UTC timestamp>``) until the user fixes it;
* writes are atomic (:func:`app.config.files.atomic_write`).

Passwords never go here: they live in the OS keyring (:func:`get_password` /
:func:`set_password`, through the settings module's helpers).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal

import msgspec
import tomli_w

from app.config import settings as S
from app.config.files import LoadResult, atomic_write, load_with_result
from app.config.schema import Section, decode
from app.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

WINDOW_FILE = "window.toml"


class WindowState(Section):
    """The window's layout, as Qt saves it (base64 text).

    Attributes
    ----------
    geometry, state : str
        ``QMainWindow.saveGeometry()`` / ``saveState()``, base64.
    splitters : dict[str, str]
        Splitter object name -> ``QSplitter.saveState()``, base64.
    layout : str
        Several instruments' panels: "tabs", "split2" or "split4" ("" = the window's default;
        :data:`app.ui.instrument_panel.LAYOUT_KEYS`).
    """

    geometry: str = ""
    state: str = ""
    splitters: dict[str, str] = {}
    layout: Literal["", "tabs", "split2", "split4"] = ""


class WindowFile(Section):
    """``window.toml``: one ``[window]`` table."""

    window: WindowState = msgspec.field(default_factory=WindowState)


_TYPED = {
    "connection.host": ("connection", "host"),
    "connection.port": ("connection", "port"),
    "connection.encoding": ("connection", "encoding"),
    "connection.username": ("connection", "username"),
    "connection.tls": ("connection", "tls"),
    "connection.tls_fingerprint": ("connection", "tls_fingerprint"),
    "connection.trade_account": ("trading", "account"),
    "trading.mode": ("trading", "mode"),
    "connection.sierra_data_dir": ("sierra", "data_folder"),
    "replay.speed": ("replay", "speed"),
    "replay.loop": ("replay", "loop"),
    "replay.process": ("replay", "process"),
    "profile": ("analysis", "profile"),
    "heatmap.contrast": ("display", "contrast"),
    "alerts.sound": ("display", "sound"),
}
#: ``[ui]`` keys (their TOML names) -> UiPrefs attribute.
_UI = {f.encode_name: f.name for f in msgspec.structs.fields(S.UiPrefs)}
_LEGACY_WINDOW = {"window.geometry", "window.state"} | {k for k in _UI if k.startswith("splitters.")}

_ABSENT = object()


def _lookup(d: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return _ABSENT
        d = d[k]
    return d


def _assign(st: S.Settings, sec: str, name: str, value: Any) -> None:
    """Set ``st.<sec>.<name>``; a frozen section (TradingSettings) is replaced by a checked copy."""
    table = getattr(st, sec)
    if type(table).__struct_config__.frozen:
        setattr(st, sec, msgspec.structs.replace(table, **{name: value}))
    else:
        setattr(table, name, value)


class _Doc:
    """One settings file being edited: its load result, the values and the changed key paths."""

    def __init__(self, path: Path, build: Callable[[dict], Any], default: Callable[[], Any], clock: Clock):
        self.path = path
        self.build = build
        self.result: LoadResult = load_with_result(path, build, default, clock=clock)
        self.value = self.result.value
        self.raw: dict = self.result.raw if self.result.ok else {}
        self.dirty: set[tuple[str, ...]] = set()
        self.removed: set[tuple[str, ...]] = set()

    def current(self, path: tuple[str, ...]) -> Any:
        return _lookup(msgspec.to_builtins(self.value), path)

    def change(self, paths: list[tuple[str, ...]], apply: Callable[[], None], remove: bool = False) -> None:
        before = [self.current(p) for p in paths]
        apply()
        for p, b in zip(paths, before):
            if remove:
                if _lookup(self.raw, p) is not _ABSENT or p in self.dirty:
                    self.dirty.add(p)
                    self.removed.add(p)
            elif self.current(p) != b or p in self.removed:
                self.dirty.add(p)
                self.removed.discard(p)

    def save(self) -> Path | None:
        if not self.result.ok:
            if self.dirty:
                log.warning("%s is not written: it failed to load (%s); fix or remove it", self.path,
                            self.result.error)
            return None
        if not self.dirty:
            return self.path
        doc = copy.deepcopy(self.raw)
        values = msgspec.to_builtins(self.value)
        for p in sorted(self.dirty):
            table = doc
            for k in p[:-1]:
                table = table.setdefault(k, {})
            if p in self.removed:
                table.pop(p[-1], None)
            else:
                table[p[-1]] = _lookup(values, p)
        self.build(doc)  # a bad value raises here, naming its key: nothing is written
        atomic_write(self.path, tomli_w.dumps(doc))
        self.raw = doc
        self.dirty.clear()
        self.removed.clear()
        return self.path


class Prefs:
    """Flat key/value view of the user settings (see the module docstring for the keys and rules).

    Parameters
    ----------
    path : path, optional
        ``settings.toml`` (default: the settings module's); ``window.toml`` is beside it.
    clock : Clock
        For the timestamp of a bad file's copy.

    Attributes
    ----------
    settings : app.config.settings.Settings
        The typed settings being edited (defaults when the file failed to load).
    window : WindowFile
        The window layout being edited.
    load_result, window_result : app.config.files.LoadResult
        How each file loaded (``error`` names the key and what is allowed; ``kept_copy``).
    load_error : str
        Why ``settings.toml`` could not be loaded ("" when it was fine).
    """

    def __init__(self, path: str | os.PathLike | None = None, clock: Clock = SYSTEM_CLOCK):
        self.path = Path(path) if path else None
        self.clock = clock
        self.load()

    def load(self) -> None:
        """Read both files; a bad file is reported (:meth:`problems`), never fatal, never rewritten."""
        spath = self.path or S.settings_path()
        self._s = _Doc(spath, lambda raw: S.from_dict(raw, str(spath)), S.Settings, self.clock)
        wpath = spath.with_name(WINDOW_FILE)
        self._w = _Doc(wpath, lambda raw: decode(raw, WindowFile, str(wpath)), WindowFile, self.clock)
        self.settings: S.Settings = self._s.value
        self.window: WindowFile = self._w.value
        self.load_result = self._s.result
        self.window_result = self._w.result
        self.load_error = str(self._s.result.error) if self._s.result.error else ""

    def problems(self) -> list[str]:
        """One line per file that failed to load, for the window's problem strip ([] when fine)."""
        return [r.problem_text() for r in (self._s.result, self._w.result) if not r.ok]

    @property
    def writable(self) -> bool:
        """False when ``settings.toml`` failed to load (it is then never written)."""
        return self._s.result.ok

    def saved(self, key: str) -> bool:
        """True when the settings file itself holds ``key`` (not just the schema default)."""
        if key in _TYPED:
            return _lookup(self._s.raw, _TYPED[key]) is not _ABSENT
        if key in _UI:
            return _lookup(self._s.raw, ("ui", key)) is not _ABSENT
        return False

    # ------------------------------------------------------------------ access
    def get(self, key: str, default=None):
        """Value of ``key`` (see the module table).

        ``default`` is returned for a ``[ui]`` or window key the files do not hold; typed keys
        always have their schema default.

        Raises
        ------
        KeyError
            ``key`` is not a known setting.
        """
        st = self.settings
        if key in _TYPED:
            sec, name = _TYPED[key]
            return getattr(getattr(st, sec), name)
        if key == "connection.symbols":
            details = st.ui.symbol_details
            rows = []
            for name, sym in st.symbols.map.items():
                d = details.get(name) or S.SymbolDetail()
                rows.append({"name": name, "symbol": str(sym), "exchange": d.exchange,
                             "tick_size": float(d.tick_size), "tick_value": float(d.tick_value),
                             "source": st.symbols.data_source(name)})
            return rows or default
        if key == "analysis.overrides":
            return dict(st.analysis.overrides)
        win = self._window_value(key)
        if win is not _ABSENT:
            return win or (default if default is not None else win)
        if key in _UI:
            if default is not None and not self.saved(key) and ("ui", key) not in self._s.dirty:
                return default
            return getattr(st.ui, _UI[key])
        raise KeyError(f"unknown setting {key!r}")

    def _window_value(self, key: str) -> Any:
        w = self.window.window
        if key in ("window.geometry", "window.state", "window.layout"):
            v = getattr(w, key.split(".", 1)[1])
        elif key.startswith("splitters."):
            v = w.splitters.get(key.split(".", 1)[1], "")
        else:
            return _ABSENT
        if not v and key in _LEGACY_WINDOW:  # kept in settings.toml [ui] by earlier versions
            v = getattr(self.settings.ui, _UI[key])
        return v

    def set(self, key: str, value) -> None:
        """Set ``key`` (``None`` removes a ``[ui]`` or window key); written by :meth:`save`.

        Raises
        ------
        KeyError
            ``key`` is not a known setting.
        app.config.schema.ConfigError
            A symbol row with a bad tick size or tick value.
        """
        st = self.settings
        if key in _TYPED:
            sec, name = _TYPED[key]
            self._s.change([_TYPED[key]], lambda: _assign(st, sec, name, value))
            return
        if key == "connection.symbols":
            rows = list(value)

            def apply():
                st.symbols.map = {r["name"]: r["symbol"] for r in rows}
                st.symbols.source = {r["name"]: r.get("source", "dtc") for r in rows}
                st.ui.symbol_details = {
                    r["name"]: S.SymbolDetail(exchange=r.get("exchange", ""),
                                              tick_size=float(r.get("tick_size", 0.0) or 0.0),
                                              tick_value=float(r.get("tick_value", 0.0) or 0.0))
                    for r in rows}

            self._s.change([("symbols", "map"), ("symbols", "source"), ("ui", "symbol_details")], apply)
            return
        w = self.window.window
        if key in ("window.geometry", "window.state", "window.layout"):
            attr = key.split(".", 1)[1]
            self._w.change([("window", attr)], lambda: setattr(w, attr, value or ""), remove=value is None)
            return
        if key.startswith("splitters."):
            name = key.split(".", 1)[1]

            def apply_split():
                sp = dict(w.splitters)
                if value is None:
                    sp.pop(name, None)
                else:
                    sp[name] = value
                w.splitters = sp

            self._w.change([("window", "splitters")], apply_split)
            return
        if key in _UI:
            attr = _UI[key]
            default = getattr(S.UiPrefs(), attr)
            self._s.change([("ui", key)], lambda: setattr(st.ui, attr, default if value is None else value),
                           remove=value is None)
            return
        raise KeyError(f"unknown setting {key!r}")

    def save(self) -> Path | None:
        """Write the changed keys of both files (atomic); nothing when nothing changed.

        Returns
        -------
        Path or None
            ``settings.toml``, or ``None`` when it failed to load and so was not written.

        Raises
        ------
        app.config.schema.ConfigError
            A changed value is out of range (names the key; nothing is written).
        OSError
            A write failed (the old file is unchanged).
        """
        out = self._s.save()
        self._w.save()
        return out


def get_password(host: str, port: int, username: str) -> str:
    """Password stored in the OS keyring for ``username`` at ``host:port`` ("" when none or no keyring)."""
    if not username:
        return ""
    return S.get_password(host, port, username) or ""


def set_password(host: str, port: int, username: str, password: str) -> bool:
    """Store the password in the OS keyring; False (logged without the secret) when it cannot."""
    if not username:
        return False
    try:
        S.set_password(host, port, username, password)
        return True
    except (S.PasswordStoreError, ValueError) as exc:
        log.warning("password not stored: %s", exc)
        return False
