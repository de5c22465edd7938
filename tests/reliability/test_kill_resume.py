"""SIGKILL `medrep extract` / `medrep attack` at seeded random points, rerun with --resume, and get
exactly what an uninterrupted run gives.

The uninterrupted reference runs in this process; the killed and resumed runs are subprocesses (fresh
interpreters, random hash seeds), so equality also shows the outputs do not depend on the process.
"""
from __future__ import annotations

import json
import random
import signal

import numpy as np
import pytest

from medrep.features import Embeddings

SEED = 20240917
N_TEST, CHUNK, BATCH = 24, 4, 2  # extract: 6 cache chunks of 2 batches each
ATTACK_BATCH = 4  # attack: 6 batches × 2 ε


def extract_args(cli, out, cache):
    return ["extract", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", str(BATCH),
            "--chunk-size", str(CHUNK), "--out", str(out), "--cache-dir", str(cache), "--quiet"]


def attack_args(cli, out, cache):
    return ["attack", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", str(ATTACK_BATCH),
            "--objective", "push", "--eps", "2/255,4/255", "--attack-steps", "3", "--noise-draws", "2",
            "--noise-sigma", "0.01,0.03", "--seed", "7", "--out", str(out), "--cache-dir", str(cache), "--quiet"]


@pytest.fixture(scope="module")
def reference_extract(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("extract-ref")
    assert cli.in_process(extract_args(cli, root / "out", root / "cache")) == 0
    return Embeddings.from_parquet(root / "out" / "embeddings.parquet")


@pytest.fixture(scope="module")
def reference_attack(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("attack-ref")
    assert cli.in_process(attack_args(cli, root / "out", root / "cache")) == 0
    return (root / "out" / "results.json").read_bytes()


def kill_points(n_units: int, k: int = 2):
    """Seeded (unit whose file is awaited, extra delay in seconds) pairs, in the first half of the run."""
    rng = random.Random(SEED)
    return [(rng.randrange(0, n_units // 2), round(rng.uniform(0.0, 0.03), 4)) for _ in range(k)]


@pytest.mark.parametrize("unit, delay", kill_points(N_TEST // CHUNK))
def test_killed_extract_resumes_to_the_same_embeddings(cli, reference_extract, tmp_path, unit, delay):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc, err = cli.run_and_kill(extract_args(cli, out, cache), cache, f"chunk-{unit:06d}.json", delay)
    assert rc == -signal.SIGKILL, f"the run ended on its own (rc={rc}) before it could be killed: {err[-2000:]}"
    finished = len(list(cache.rglob("chunk-*.json")))
    assert finished >= unit + 1

    done = cli.subprocess(extract_args(cli, out, cache) + ["--resume"])
    assert done.returncode == 0, done.stderr
    got = Embeddings.from_parquet(out / "embeddings.parquet")
    assert got.ids == reference_extract.ids
    np.testing.assert_array_equal(got.labels, reference_extract.labels)
    np.testing.assert_array_equal(got.vectors, reference_extract.vectors)  # bit for bit
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["output"]["rows"] == N_TEST and manifest["cache_keys"]


@pytest.mark.parametrize("unit, delay", kill_points(N_TEST // ATTACK_BATCH))
def test_killed_attack_resumes_to_identical_results(cli, reference_attack, tmp_path, capsys, unit, delay):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc, err = cli.run_and_kill(attack_args(cli, out, cache), out / "partial", f"b{unit:05d}_e01.json", delay)
    assert rc == -signal.SIGKILL, f"the run ended on its own (rc={rc}) before it could be killed: {err[-2000:]}"

    capsys.readouterr()
    assert cli.in_process(attack_args(cli, out, cache)) == 2  # without --resume, partial results are never silently reused
    assert "--resume" in capsys.readouterr().err

    done = cli.subprocess(attack_args(cli, out, cache) + ["--resume"])
    assert done.returncode == 0, done.stderr
    # results.json holds no timings or paths (those live in manifest.json): byte-identical
    assert (out / "results.json").read_bytes() == reference_attack
    assert json.loads(reference_attack)["results"][1]["metrics"]["relative_change"]["value"] > 0


EXPLAIN_BATCH = 3  # explain: 8 batches of the masked test images


def explain_args(cli, out, cache):
    return ["explain", "--model", cli.TINY, "--data", cli.DATA, "--split", "test", "--batch-size", str(EXPLAIN_BATCH),
            "--methods", "rollout,gradcam", "--metrics", "pointing,iou,deletion", "--deletion-steps", "4", "--limit", "24",
            "--seed", "5", "--out", str(out), "--cache-dir", str(cache), "--quiet"]


@pytest.fixture(scope="module")
def reference_explain(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-ref")
    assert cli.in_process(explain_args(cli, root / "out", root / "cache")) == 0
    return (root / "out" / "results.json").read_bytes()


@pytest.mark.parametrize("unit, delay", kill_points(4, k=1))
def test_killed_explain_resumes_to_identical_results(cli, reference_explain, tmp_path, capsys, unit, delay):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc, err = cli.run_and_kill(explain_args(cli, out, cache), out / "partial", f"b{unit:05d}.json", delay)
    assert rc == -signal.SIGKILL, f"the run ended on its own (rc={rc}) before it could be killed: {err[-2000:]}"
    capsys.readouterr()
    assert cli.in_process(explain_args(cli, out, cache)) == 2  # partial results are never silently reused
    assert "--resume" in capsys.readouterr().err
    done = cli.subprocess(explain_args(cli, out, cache) + ["--resume"])
    assert done.returncode == 0, done.stderr
    assert (out / "results.json").read_bytes() == reference_explain
    assert json.loads(reference_explain)["n_images"] > 0


def _audit_config(cli, path):
    import yaml

    path.write_text(yaml.safe_dump({
        "title": "killed audit", "data": cli.DATA, "models": [cli.TINY], "text": None, "seed": 3, "n_boot": 50,
        "analyses": {
            "robustness": {"objectives": ["push"], "eps": [4 / 255], "attack_steps": 3, "limit": 16, "batch_size": 4,
                           "noise_sigma": [0.01], "noise_draws": 2},
            "explain": {"methods": ["gradcam"], "metrics": ["pointing"], "limit": 8, "deletion_steps": 4},
            "features": {"enabled": False}, "overlay": {"enabled": False}, "alignment": {"enabled": False},
        }}))
    return path


def test_killed_audit_resumes_to_identical_results(cli, tmp_path, capsys):
    config = _audit_config(cli, tmp_path / "audit.yaml")
    ref, out, cache = tmp_path / "ref", tmp_path / "out", tmp_path / "cache"
    assert cli.in_process(["audit", str(config), "--out", str(ref), "--cache-dir", str(cache), "--quiet"]) == 0
    assert not list(ref.rglob("partial"))  # a finished audit keeps no partial results

    argv = ["audit", str(config), "--out", str(out), "--cache-dir", str(tmp_path / "cache2"), "--quiet"]
    rc, err = cli.run_and_kill(argv, out, "b00001_e00.json", 0.0)
    assert rc == -signal.SIGKILL, f"the audit ended on its own (rc={rc}): {err[-2000:]}"
    capsys.readouterr()
    assert cli.in_process(argv) == 2  # refused without --resume, before any work
    assert "--resume" in capsys.readouterr().err
    assert cli.in_process(argv + ["--resume"]) == 0
    assert (out / "results.json").read_bytes() == (ref / "results.json").read_bytes()
    assert not list(out.rglob("partial"))
