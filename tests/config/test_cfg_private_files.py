"""The app's folders are 0700 and its log 0600 on POSIX, whatever the umask (issue 12 item 9)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

from app import paths

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes (Windows: the profile's ACL)")


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    yield
    os.umask(old)


def test_user_folders_are_created_and_kept_0700(tmp_path, monkeypatch, loose_umask):
    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path / "home"))
    for fn in (paths.config_dir, paths.data_dir, paths.log_dir, paths.cache_dir):
        assert mode(fn()) == 0o700, fn.__name__
    old = tmp_path / "home" / "data"
    os.chmod(old, 0o755)  # made by an earlier version
    assert mode(paths.data_dir()) == 0o700


def test_private_dir_creates_missing_parents_0700_and_leaves_an_existing_shared_folder(tmp_path, loose_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    d = paths.private_dir(shared / "a" / "b", restrict_existing=False)
    assert mode(shared / "a") == 0o700 and mode(d) == 0o700
    paths.private_dir(shared, restrict_existing=False)
    assert mode(shared) == 0o755  # not the app's folder: left as it was


LOGGING_CHILD = """
import logging, os, sys
os.umask(0o022)
from app.logs import setup_logging, log_file
setup_logging("INFO", console=False)
logging.getLogger("child").info("hello")
print(log_file())
"""


def test_setup_logging_creates_the_log_0600_in_a_0700_folder(tmp_path, repo_root):
    env = dict(os.environ, MIA_ELITE_HOME=str(tmp_path), PYTHONPATH=str(repo_root))
    p = subprocess.run([sys.executable, "-c", LOGGING_CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    log = p.stdout.strip().splitlines()[-1]
    assert log.endswith("mia-elite.log") and "hello" in open(log, encoding="utf-8").read()
    assert mode(log) == 0o600 and mode(os.path.dirname(log)) == 0o700


def test_rotated_and_earlier_logs_are_0600(tmp_path, monkeypatch, loose_umask):
    from app import logs

    monkeypatch.setenv("MIA_ELITE_HOME", str(tmp_path))
    old_backup = paths.log_dir() / "mia-elite.log.3"
    old_backup.write_text("written by an earlier version\n")
    os.chmod(old_backup, 0o644)
    for old in old_backup.parent.glob("mia-elite.log.*"):
        paths.private_file(old)  # what setup_logging does with the backups it finds
    assert mode(old_backup) == 0o600
    h = logs._FaultLoggingFileHandler(logs.log_file(), maxBytes=200, backupCount=2, encoding="utf-8")
    monkeypatch.setattr(h, "_enable_faults", lambda: None)  # keep faulthandler where the suite has it
    try:
        for i in range(20):
            h.emit(logging.makeLogRecord({"msg": f"line {i} " + "x" * 40}))
    finally:
        h.close()
    base = paths.log_dir() / "mia-elite.log"
    assert (paths.log_dir() / "mia-elite.log.1").exists()
    assert mode(base) == 0o600 and mode(paths.log_dir() / "mia-elite.log.1") == 0o600
    assert mode(paths.log_dir() / "mia-elite.log.2") == 0o600
