"""Shared pieces of the reliability tests: a tiny model, a tiny phantom set, CLI runners."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"
DATA = "demo?n_train=40&n_val=0&n_test=24&seed=3&size=32"
THREADS = "1"  # every run, in-process or not, uses one thread: bitwise-equal floats, and tiny models run
# fastest on a busy machine without thread-pool wake-ups


def run_in_process(argv: list[str]) -> int:
    """``medrep.cli.main(argv)``, leaving torch's thread count as the test session had it."""
    from medrep.cli import main

    threads = torch.get_num_threads()
    try:
        return main([*argv, "--threads", THREADS])
    finally:
        torch.set_num_threads(threads)


def cli_command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "medrep.cli", *argv, "--threads", THREADS]


def cli_env() -> dict[str, str]:
    # MEDREP_CACHE is the session's isolated cache (tests/conftest.py), so phantoms are generated once
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MEDREP_QUIET="1", PYTHONHASHSEED="random")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH")) if p)
    return env


def run_subprocess(argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(argv), env=cli_env(), capture_output=True, text=True, timeout=timeout)


def run_and_kill(argv: list[str], watch: Path, pattern: str, delay: float, timeout: float = 180) -> tuple[int, str]:
    """Start the command, wait until a file matching ``pattern`` appears under ``watch``, wait ``delay``
    seconds more and SIGKILL it.  Returns (return code, stderr)."""
    proc = subprocess.Popen(cli_command(argv), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if watch.exists() and any(watch.rglob(pattern)):
                time.sleep(delay)
                proc.kill()  # SIGKILL: no handler, no cleanup, no atexit
                break
            time.sleep(0.002)
        else:
            if proc.poll() is None:
                proc.kill()
                pytest.fail(f"{pattern} never appeared under {watch} within {timeout} s")
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


class _CLI:
    """The helpers above, handed to tests as the ``cli`` fixture (test modules cannot import this conftest)."""

    TINY, DATA = TINY, DATA
    in_process = staticmethod(run_in_process)
    subprocess = staticmethod(run_subprocess)
    run_and_kill = staticmethod(run_and_kill)


@pytest.fixture(scope="session")
def cli(phantoms_generated) -> _CLI:
    return _CLI()


@pytest.fixture(scope="session")
def phantoms_generated():
    """Generate the tiny phantom set once in this process: subprocesses then read it from the shared cache."""
    from medrep.data import load_dataset

    return load_dataset(DATA)
