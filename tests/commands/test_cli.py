"""The command line: help, extract end to end, and one clear line (no traceback) for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def test_extract_writes_parquet_and_manifest_then_hits_the_cache(tmp_path, capsys):
    args = ["extract", "--model", TINY, "--data", "demo?n_train=20&n_val=0&n_test=30", "--split", "test", "--quiet"]
    torch.manual_seed(0)  # the model is randomly initialised: same seed, same weights, same cache key
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["output"]["rows"] == 30 and manifest["output"]["dim"] == 192
    assert manifest["libraries"]["torch"].startswith("2.13")
    assert len(manifest["cache_keys"]) == 1 and manifest["output"]["from_cache"] is False
    torch.manual_seed(0)
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["output"]["from_cache"] is True
    assert "(from cache)" in capsys.readouterr().out


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
