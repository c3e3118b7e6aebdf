"""CLI dispatch, README's two commands and CI's test command stay in sync."""

import re
import subprocess
import sys

from app import cli


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in cli.COMMANDS:
        assert name in out.stdout


def test_unknown_command_option_fails_cleanly():
    out = subprocess.run([sys.executable, "-m", "app", "bench", "--no-such-flag"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "unrecognized arguments" in out.stderr


def test_readme_test_command_is_what_ci_runs(repo_root):
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert len(blocks) >= 2, "README must give the run command and the test command"
    test_cmd = blocks[1].strip()
    assert "pytest" in test_cmd
    ci = (repo_root / ".ci" / "run").read_text()
    assert test_cmd in ci, f"README's test command {test_cmd!r} is not what .ci/run runs"
    assert "mia-elite" in blocks[0]
