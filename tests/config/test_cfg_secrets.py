"""Secrets: the log redacts a password's whole value, quoted or not; the keyring entry is keyed by
host and port, and an entry of an earlier version (``user@host``) is read once (issue 12 item 10)."""

from __future__ import annotations

import logging

import keyring
import keyring.backend
import keyring.errors
import pytest
from memory_keyring import MemoryKeyring

from app.config import prefs
from app.config import settings as S
from app.logs import RedactFilter, redact

SECRET = 'Pa ss"w:rd=S3cr3t!'


def _logged(msg, *args, exc=None) -> str:
    """What a handler with the redaction filter writes for one record."""
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc)
    assert RedactFilter().filter(rec)
    return logging.Formatter("%(message)s").format(rec)


@pytest.mark.parametrize("text", [
    f"logon Password='{SECRET}'",                              # the issue's line
    f"logon Password={SECRET!r} Username='trader'",           # repr of the message field
    f'{{"Password": "{SECRET.replace(chr(34), chr(92) + chr(34))}", "Username": "trader"}}',  # JSON
    f"{{'password': {SECRET!r}}}",                             # dict repr
    f"password: {SECRET}",                                     # unquoted, spaces and all
    f"PASSWORD = {SECRET}",
    f"LogonRequest(Username='trader', Password={SECRET!r}, TradeAccount='Sim1')",
    "passwd='it\\'s Pa ss\"w:rd=S3cr3t!'",                     # escaped quote inside
])
def test_the_whole_value_is_redacted_quoted_or_not(text):
    out = _logged(text)
    for piece in ("S3cr3t", "Pa ss", "w:rd", "ss\"w"):
        assert piece not in out, out
    assert "***" in out


def test_the_issues_line_exactly():
    assert _logged("Password='Pa ss\"w:rd=S3cr3t!'") == "Password=***"
    assert _logged("Password=%r user=%s", SECRET, "x").startswith("Password=*** user=x")


def test_what_follows_a_quoted_value_is_kept_and_other_text_untouched():
    out = _logged(f"LogonRequest(Username='trader', Password={SECRET!r}, TradeAccount='Sim1')")
    assert out == "LogonRequest(Username='trader', Password=***, TradeAccount='Sim1')"
    assert redact("passwords are checked; heartbeat 10 s") == "passwords are checked; heartbeat 10 s"


def test_an_exception_text_is_redacted_too():
    try:
        raise RuntimeError(f"logon rejected for Password={SECRET!r}")
    except RuntimeError:
        import sys

        out = _logged("logon failed", exc=sys.exc_info())
    assert "logon failed" in out and "RuntimeError" in out and "S3cr3t" not in out


# ---------------------------------------------------------------------------- keyring
@pytest.fixture
def memory_keyring():
    old = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(old)


def test_two_ports_on_one_host_keep_two_passwords(memory_keyring):
    assert prefs.set_password("10.0.0.5", 11099, "trader", "first")
    assert prefs.set_password("10.0.0.5", 11098, "trader", "second")
    assert prefs.get_password("10.0.0.5", 11099, "trader") == "first"
    assert prefs.get_password("10.0.0.5", 11098, "trader") == "second"
    assert memory_keyring.store == {(S.KEYRING_SERVICE, "trader@10.0.0.5:11099"): "first",
                                    (S.KEYRING_SERVICE, "trader@10.0.0.5:11098"): "second"}
    S.set_password("::1", 11099, "trader", "v6")
    assert (S.KEYRING_SERVICE, "trader@[::1]:11099") in memory_keyring.store
    assert S.delete_password("10.0.0.5", 11098, "trader")
    assert prefs.get_password("10.0.0.5", 11098, "trader") == "" and prefs.get_password("10.0.0.5", 11099, "trader")


def test_an_earlier_versions_entry_is_read_once_and_moved(memory_keyring, caplog):
    memory_keyring.store[(S.KEYRING_SERVICE, "trader@10.0.0.5")] = "old-secret"  # user@host, no port
    with caplog.at_level(logging.INFO):
        assert S.get_password("10.0.0.5", 11099, "trader") == "old-secret"
    assert memory_keyring.store == {(S.KEYRING_SERVICE, "trader@10.0.0.5:11099"): "old-secret"}
    assert "old-secret" not in caplog.text
    # the other server on that host does not inherit it
    assert S.get_password("10.0.0.5", 11098, "trader") is None
    assert S.get_password("10.0.0.5", 11099, "trader") == "old-secret"
