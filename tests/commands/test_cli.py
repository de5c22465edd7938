"""The command line (cli.py): help, and one clear line (no traceback) for bad input, --debug for the traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medrep.cli import main

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2"


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "medrep.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("demo", "extract"):
        assert cmd in out


def test_python_dash_m_medrep_is_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "medrep", "--help"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "extract" in proc.stdout and proc.stdout.startswith("usage: medrep")
    bad = subprocess.run([sys.executable, "-m", "medrep", "no-such-command"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "no-such-model", "--data", "demo"], "unknown model spec"),
        (["--model", TINY, "--data", "/no/such/dir"], "/no/such/dir"),
        (["--model", TINY, "--data", "demo?n_train=5&n_test=5", "--split", "holdout"], "no split 'holdout'"),
        (["--model", TINY, "--data", "demo?n_train=5&n_test=5", "--limit", "0"], "--limit"),
        (["--model", TINY, "--data", "demo?colour=red"], "unknown option 'colour'"),
        (["--model", TINY, "--data", "demo?n_train=5&n_test=5", "--layer", "blocks.7"], "blocks.7"),
    ],
)
def test_bad_input_ends_with_one_clear_line(tmp_path, args, needle):
    proc = run_cli("extract", *args, "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("extract", "--model", "no-such-model", "--out", str(tmp_path), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
