"""A native crash leaves a trace in the log file (faulthandler on the rotating log)."""

import os
import subprocess
import sys

CHILD = """
import ctypes, logging
from app.logs import setup_logging, log_file
setup_logging("INFO", console=False)
logging.getLogger("child").info("about to crash")
print(log_file(), flush=True)
ctypes.string_at(0)  # a segfault, as a crash inside Qt would be
"""


def test_native_crash_writes_fatal_error_and_stack_to_the_log(tmp_path, repo_root):
    env = dict(os.environ, MIA_ELITE_HOME=str(tmp_path), PYTHONPATH=str(repo_root))
    p = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0  # it did crash
    log = open(p.stdout.strip().splitlines()[0], encoding="utf-8", errors="replace").read()
    assert "about to crash" in log
    assert "Fatal Python error" in log and "Segmentation fault" in log
    assert 'File "<string>"' in log  # the crashing thread's stack


def test_console_handler_follows_a_replaced_stderr(monkeypatch, capsys):
    """A record logged after the stderr the handler saw at set-up was closed still goes out."""
    import io
    import logging

    from app import logs

    h = logs._StderrHandler()
    h.setFormatter(logging.Formatter("%(message)s"))
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    h.emit(logging.makeLogRecord({"msg": "one"}))
    first.close()  # the stream seen earlier is gone (a capture that ended)
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    h.emit(logging.makeLogRecord({"msg": "two"}))
    assert second.getvalue() == "two\n"
