"""The same seeded command twice gives a byte-identical results.json.

Wall-clock timings belong in manifest.json, never in results.json.  The attack's cross-process
determinism (fresh interpreters, random hash seeds) is checked by test_kill_resume.py.
"""
from __future__ import annotations

import json

import pytest


def attack(cli, out):
    return ["attack", "--model", cli.TINY, "--data", cli.DATA, "--limit", "8", "--eps", "4/255", "--attack-steps", "2",
            "--batch-size", "4", "--noise-draws", "2", "--noise-sigma", "0.01", "--seed", "3", "--out", str(out),
            "--no-cache", "--quiet"]


def explain(cli, out):
    return ["explain", "--model", cli.TINY, "--data", cli.DATA, "--methods", "attention,rollout", "--metrics",
            "pointing,iou,mass", "--limit", "4", "--batch-size", "4", "--seed", "3", "--out", str(out), "--no-cache",
            "--quiet"]


def features(cli, out):
    return ["features", "--model", cli.TINY, "--layer", "blocks.0", "--layer", "blocks.1", "--pool", "cls",
            "--data", cli.DATA, "--limit", "24", "--shots", "1", "--draws", "2",
            "--n-boot", "10", "--n-permutations", "10", "--k", "3", "--mutual-k", "3", "--projection", "none",
            "--seed", "3", "--out", str(out), "--no-cache", "--quiet"]


@pytest.mark.parametrize("command", [attack, explain, features], ids=["attack", "explain", "features"])
def test_same_seeded_command_twice_is_byte_identical(cli, tmp_path, command):
    for run in ("a", "b"):
        assert cli.in_process(command(cli, tmp_path / run)) == 0
    a = (tmp_path / "a" / "results.json").read_bytes()
    assert a == (tmp_path / "b" / "results.json").read_bytes()
    text = a.decode()
    assert str(tmp_path) not in text  # no output paths either
    for word in ("seconds", "elapsed", "duration", "timestamp"):
        assert word not in text, word
    if command is explain:  # its timings moved to the manifest
        timing = json.loads((tmp_path / "a" / "manifest.json").read_text())["timing"]["seconds_per_image"]
        assert set(timing) >= {"attention", "rollout"} and all(v >= 0 for v in timing.values())
