"""The one spelling of the DTC encodings on the command line and in settings.

``binary``, ``json`` and ``json_compact`` are the names of :class:`app.dtc.messages.Encoding`
members ``BINARY``, ``JSON`` and ``JSON_COMPACT`` in lower case (DTC ``EncodingEnum``:
``BINARY_ENCODING``, ``JSON_ENCODING``, ``JSON_COMPACT_ENCODING``). Earlier versions spelled the
compact one ``compact`` (``mia-elite serve``) and ``compact_json`` (the window); both are still
accepted and mapped, with a note saying the new spelling.
"""

from __future__ import annotations

import sys

from app.dtc.messages import Encoding

#: The encodings this app speaks, as spelled on the command line and in ``settings.toml``.
ENCODING_NAMES = ("binary", "json", "json_compact")

#: Old spellings -> their name in :data:`ENCODING_NAMES`.
OLD_SPELLINGS = {"compact": "json_compact", "compact_json": "json_compact"}

_ENUM = {"binary": Encoding.BINARY, "json": Encoding.JSON, "json_compact": Encoding.JSON_COMPACT}


def encoding_name(text: str) -> str:
    """The name in :data:`ENCODING_NAMES` of ``text`` (case and ``-`` / ``_`` ignored, old spellings mapped).

    Raises
    ------
    ValueError
        ``text`` names no encoding this app speaks (the message lists the names).
    """
    key = str(text).strip().lower().replace("-", "_")
    key = OLD_SPELLINGS.get(key, key)
    if key not in ENCODING_NAMES:
        raise ValueError(f"encoding {text!r}: use {', '.join(ENCODING_NAMES)}")
    return key


def encoding_enum(text: str) -> Encoding:
    """The :class:`~app.dtc.messages.Encoding` member of ``text`` (see :func:`encoding_name`).

    Raises
    ------
    ValueError
        As :func:`encoding_name`.
    """
    return _ENUM[encoding_name(text)]


def encoding_option(text: str) -> str:
    """``type=`` of every ``--encoding`` option: the canonical name, with a note on stderr for
    an old spelling. An unknown text is returned unchanged, so argparse's ``choices`` names
    the allowed values in its error."""
    try:
        name = encoding_name(text)
    except ValueError:
        return text
    if name != text:
        print(f"note: --encoding {text} is now spelled {name}", file=sys.stderr)
    return name
