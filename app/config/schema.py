"""The settings schema's common parts: one error type, one unknown-key policy, typed decoding.

Every settings file of the app (``settings.toml`` and its ``[ui]`` window prefs, ``trading.toml``,
the analysis profiles under ``resources/profiles/``) is described by :class:`msgspec.Struct`
classes derived from :class:`Section`. Ranges and allowed values are declared on the fields
(``Annotated[int, msgspec.Meta(ge=1, le=65535)]``, ``Literal["dtc", "sierra_files"]``), so the
schema *is* the documentation of what is allowed.

Policies (the same for every file):

* **Unknown keys are errors.** A key the schema does not know (a typo such as ``max_lots``, or
  a key of another version) makes the load fail with a :class:`ConfigError` naming the key path
  and the keys allowed there. It is never dropped silently: a dropped risk limit is a limit the
  trader believes in and does not have. The file itself is left untouched (see
  :mod:`app.config.files`), so nothing is lost.
* **One error type**, :class:`ConfigError` (a ``ValueError``), whose message always names the
  file, the dotted key path (``display.contrast``) and what is allowed there::

      settings.toml: display.contrast = 1.5 is invalid; allowed: a number in [0.5, 1]
      trading.toml: trading.max_lots is an unknown key; allowed keys: account, mode, ...

* **Validation on construction and on decoding.** :func:`decode` checks a plain mapping (from
  TOML) against a Struct; building a Struct in code checks each field the same way
  (:meth:`Section.__post_init__`), so a bad value never travels far.
"""

from __future__ import annotations

import re
from typing import Any, Annotated, Literal, get_args, get_origin

import msgspec

__all__ = ["ConfigError", "Section", "allowed_text", "decode", "literal_values"]

_NO_VALUE = object()
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>.*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>.*)`$")


class ConfigError(ValueError):
    """A settings file or value is invalid.

    The message names the file (``where``), the dotted key path and the allowed values, in one
    of four forms: a bad value (``key = value is invalid; allowed: ...``), an unknown key
    (``key is an unknown key; allowed keys: ...``), a missing key (``key is missing; allowed:
    ...``) or an unreadable file (``not valid TOML (...)`` / ``cannot be read (...)``).

    Parameters
    ----------
    key : str
        Dotted key path, e.g. ``"display.contrast"`` or ``"symbols.source.ES"``; ``""`` when
        the whole file is at fault.
    allowed : str
        What is allowed at ``key`` (a range, the choices, the known keys) or, for a file-level
        problem, the reason.
    value : object, optional
        The offending value (omitted for unknown and missing keys).
    kind : {"value", "unknown", "missing", "file"}
        Which of the forms above.
    where : str
        The file (path or label such as ``profile production``); filled in by the loader.

    Attributes
    ----------
    key, allowed, value, kind, where
        As given; :attr:`value` is absent (``ConfigError.NO_VALUE``) when there is none.
    """

    NO_VALUE = _NO_VALUE

    def __init__(self, key: str, allowed: str, value: Any = _NO_VALUE, *, kind: str = "value", where: str = ""):
        self.key = key
        self.allowed = allowed
        self.value = value
        self.kind = kind
        self.where = where
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{self.where}: " if self.where else ""
        if self.kind == "file":
            return f"{head}{self.allowed}"
        if self.kind == "unknown":
            return f"{head}{self.key} is an unknown key; allowed keys: {self.allowed}"
        if self.kind == "missing":
            return f"{head}{self.key} is missing; allowed: {self.allowed}"
        return f"{head}{self.key} = {self.value!r} is invalid; allowed: {self.allowed}"

    def located(self, where: str, prefix: str = "") -> "ConfigError":
        """A copy naming the file ``where`` and with ``prefix`` put before the key path.

        Parameters
        ----------
        where : str
            The file or label the error belongs to.
        prefix : str
            Dotted path of the table the key sits in (``"analysis.overrides"``), or ``""``.

        Returns
        -------
        ConfigError
        """
        key = ".".join(p for p in (prefix, self.key) if p)
        return ConfigError(key, self.allowed, self.value, kind=self.kind, where=where)

    def __str__(self) -> str:
        return self._text()


class Section(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every settings Struct: unknown keys refused, fields checked on construction.

    Subclasses declare their fields with ranges (``msgspec.Meta``) or ``Literal`` choices and
    may add cross-field rules in :meth:`check` (raise :class:`ConfigError` naming the key).

    Raises
    ------
    ConfigError
        On construction, for the first field outside its declared range or choices.
    """

    def __post_init__(self) -> None:
        for f in msgspec.structs.fields(type(self)):
            ann = f.type
            base = _strip(ann)
            if isinstance(base, type) and issubclass(base, msgspec.Struct):
                continue  # a nested table checked itself when it was built
            value = getattr(self, f.name)
            try:
                msgspec.convert(value, ann)
            except msgspec.ValidationError as exc:
                raise _explain(exc, ann, value, f.encode_name) from None
        self.check()

    def check(self) -> None:
        """Cross-field rules (none by default).

        Raises
        ------
        ConfigError
            A rule is broken (names the key and what is allowed).
        """


def decode(raw: Any, typ: Any, where: str = "", prefix: str = "") -> Any:
    """Check a plain value (a TOML table) against a Struct type and build it.

    Parameters
    ----------
    raw : dict
        The parsed TOML (nested dicts, lists, numbers, strings, booleans).
    typ : type
        A :class:`Section` subclass (or any msgspec-convertible annotation).
    where : str
        The file or label named in the error.
    prefix : str
        Dotted path of ``raw`` inside its file (``"trading"`` for the ``[trading]`` table).

    Returns
    -------
    object
        An instance of ``typ``.

    Raises
    ------
    ConfigError
        The first bad, unknown or missing key (names the key path and what is allowed).
    """
    try:
        return msgspec.convert(raw, typ, strict=True)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        m = _AT.match(str(exc))
        path = (m.group("path") or "") if m else ""
        if isinstance(cause, ConfigError):  # a cross-field rule of a nested Section
            inner = _walk(path, typ, raw)[0] if path else ""
            raise cause.located(where, ".".join(p for p in (prefix, inner) if p)) from None
        raise _explain(exc, typ, raw, prefix).located(where) from None


# ---------------------------------------------------------------------------- explaining
def _strip(ann: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _key_text(name: str) -> str:
    """A key as TOML writes it in a dotted path: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace('"', '\\"') + '"'


def _walk(path: str, ann: Any, raw: Any) -> tuple[str, Any, Any]:
    """Follow a msgspec error path (``.a.b[0]``, ``.m[...]``) through the annotations.

    Returns the dotted key, the annotation at the end and the raw value there (``_NO_VALUE``
    when absent). Keys that contain dots (the ``[ui]`` table's ``"window.geometry"``) are matched
    against the field names, longest first; a dict's ``[...]`` is resolved to the first key
    whose value does not fit.
    """
    keys: list[str] = []
    rest = path
    while rest:
        base = _strip(ann)
        if isinstance(base, type) and issubclass(base, msgspec.Struct) and rest.startswith("."):
            fields = sorted(msgspec.structs.fields(base), key=lambda f: -len(f.encode_name))
            for f in fields:
                name = f.encode_name
                if rest[1:].startswith(name) and (len(rest) == len(name) + 1 or rest[len(name) + 1] in ".["):
                    keys.append(_key_text(name))
                    rest = rest[len(name) + 1:]
                    ann = f.type
                    raw = raw.get(name, _NO_VALUE) if isinstance(raw, dict) else getattr(raw, f.name, _NO_VALUE)
                    break
            else:
                break
        elif rest.startswith("[...]") and get_origin(base) is dict:
            vt = get_args(base)[1] if get_args(base) else Any
            rest = rest[5:]
            bad = None
            for k, v in (raw.items() if isinstance(raw, dict) else ()):
                try:
                    msgspec.convert(v, vt, strict=True)
                except msgspec.ValidationError:
                    bad = (k, v)
                    break
            keys.append(_key_text(str(bad[0])) if bad else "*")
            ann, raw = vt, (bad[1] if bad else _NO_VALUE)
        elif rest.startswith("["):
            end = rest.index("]")
            i = int(rest[1:end])
            rest = rest[end + 1:]
            args = get_args(base)
            if get_origin(base) is list or (len(args) == 2 and args[1] is Ellipsis):
                ann = args[0] if args else Any
            else:
                ann = args[i] if i < len(args) else Any
            keys[-1:] = [f"{keys[-1] if keys else ''}[{i}]"]
            raw = raw[i] if isinstance(raw, (list, tuple)) and i < len(raw) else _NO_VALUE
        else:
            break
    return ".".join(keys), ann, raw


def _explain(exc: msgspec.ValidationError, ann: Any, raw: Any, prefix: str = "") -> ConfigError:
    m = _AT.match(str(exc))
    msg, path = (m.group("msg"), m.group("path") or "") if m else (str(exc), "")
    key, at, value = _walk(path, ann, raw)
    key = ".".join(p for p in (prefix, key) if p)
    unknown, missing = _UNKNOWN.match(msg), _MISSING.match(msg)
    if unknown:
        names = ", ".join(f.encode_name for f in msgspec.structs.fields(_strip(at)))
        name = _key_text(unknown["name"])
        return ConfigError(f"{key}.{name}" if key else name, names, kind="unknown")
    if missing:
        base = _strip(at)
        f = next((f for f in msgspec.structs.fields(base) if f.encode_name == missing["name"]), None)
        allowed = allowed_text(f.type) if f is not None else "a value"
        name = _key_text(missing["name"])
        return ConfigError(f"{key}.{name}" if key else name, allowed, kind="missing")
    return ConfigError(key or "(file)", allowed_text(at), value)


def _num(v: float) -> str:
    """A bound as a person reads it: ``1000000000`` rather than ``1e+09``, ``0.5`` as is."""
    f = float(v)
    if f.is_integer() and abs(f) < 1e16:
        return str(int(f))
    return f"{f:g}"


def _bounds(t: Any) -> str:
    lo = ("[", t.ge) if t.ge is not None else ("(", t.gt) if t.gt is not None else None
    hi = (t.le, "]") if t.le is not None else (t.lt, ")") if t.lt is not None else None
    if lo and hi:
        return f" in {lo[0]}{_num(lo[1])}, {_num(hi[0])}{hi[1]}"
    if lo:
        return f" {'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    if hi:
        return f" {'<=' if hi[1] == ']' else '<'} {_num(hi[0])}"
    return ""


def allowed_text(ann: Any) -> str:
    """What a field accepts, in words: ``an integer in [1, 65535]``, ``'dtc' | 'sierra_files'``.

    Parameters
    ----------
    ann : annotation
        A field's type (``int``, ``Annotated[float, Meta(ge=0.5, le=1.0)]``, ``Literal[...]``,
        a Struct, ``dict[str, ...]``, a fixed-length ``tuple``). A ``Meta(extra={"allowed":
        "..."})`` overrides the generated text.

    Returns
    -------
    str
    """
    if get_origin(_strip(ann)) is Literal:  # in the order declared (type_info sorts them)
        return " | ".join(repr(v) for v in get_args(_strip(ann)))
    info = ann if isinstance(ann, msgspec.inspect.Type) else msgspec.inspect.type_info(ann)
    return _info_text(info)


def _info_text(t: Any) -> str:
    I = msgspec.inspect  # noqa: E741, N806
    if isinstance(t, I.Metadata):
        if t.extra and "allowed" in t.extra:
            return str(t.extra["allowed"])
        return _info_text(t.type)
    if isinstance(t, I.BoolType):
        return "true | false"
    if isinstance(t, I.IntType):
        return "an integer" + _bounds(t)
    if isinstance(t, I.FloatType):
        return "a number" + _bounds(t)
    if isinstance(t, I.StrType):
        if t.pattern:
            return f"a string matching {t.pattern}"
        return "a non-empty string" if t.min_length else "a string"
    if isinstance(t, I.LiteralType):
        return " | ".join(repr(v) for v in t.values)
    if isinstance(t, I.DictType):
        return f"a table of name = {_info_text(t.value_type)}"
    if isinstance(t, I.TupleType):
        items = [_info_text(x) for x in t.item_types]
        n = len(items)
        if n and all(x == items[0] for x in items) and items[0].startswith("a number"):
            rest = items[0][len("a number"):]
            return f"a list of {n} numbers" + (f", each{rest}" if rest else "")
        return f"a list of {n}: " + ", ".join(items)
    if isinstance(t, (I.ListType, I.VarTupleType)):
        return f"a list of {_info_text(t.item_type)}"
    if isinstance(t, I.StructType):
        return "a table with the keys " + ", ".join(f.encode_name for f in t.fields)
    if isinstance(t, I.AnyType):
        return "any value"
    if isinstance(t, I.UnionType):  # ``X | None``: TOML has no null, so only X can be written
        return " | ".join(_info_text(x) for x in t.types if not isinstance(x, I.NoneType))
    return type(t).__name__


def literal_values(ann: Any) -> tuple:
    """The choices of a ``Literal[...]`` annotation, e.g. ``("dtc", "sierra_files")``."""
    base = _strip(ann)
    if get_origin(base) is not Literal:
        raise TypeError(f"not a Literal: {ann!r}")
    return get_args(base)

