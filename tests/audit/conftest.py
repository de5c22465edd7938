"""Fixtures for the `medrep audit` tests: a tiny end-to-end audit, run once per session and shared.

The audit runs single-threaded: on a small, busy machine two BLAS/OpenMP threads that spin against other
processes make small SVDs and logistic regressions up to 100× slower, and one thread is enough here.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import pytest
import torch

TINY_DATA = "demo?n_train=60&n_val=0&n_test=30&size=32"
TINY_VIT = "timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=3"


def tiny_config(**overrides) -> dict:
    """Every analysis on, each at its smallest useful setting."""
    config = {
        "title": "tiny audit",
        "data": TINY_DATA,
        "models": [TINY_VIT, "demo-cnn"],
        "text": "minilm",
        "seed": 0,
        "batch_size": 32,
        "n_boot": 50,
        "analyses": {
            "robustness": {"objectives": ["collide"], "eps": [8 / 255], "attack_steps": 2, "limit": 8},
            "explain": {"methods": ["attention", "gradcam"], "metrics": ["pointing", "iou"], "limit": 8, "deletion_steps": 4},
            "features": {"k": 5, "shots": [1], "projections": ["tsne"], "n_permutations": 10},
            "overlay": {"limit": 16},
            "alignment": {"anchors": [10, 30]},
        },
    }
    config.update(overrides)
    return config


@contextlib.contextmanager
def single_thread():
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def loud():
    """Progress output on (the suite's conftest sets MEDREP_QUIET=1)."""
    from medrep.progress import set_quiet

    old = os.environ.pop("MEDREP_QUIET", None)
    set_quiet(False)
    try:
        yield
    finally:
        if old is not None:
            os.environ["MEDREP_QUIET"] = old


@pytest.fixture(scope="session")
def tiny_audit(tmp_path_factory):
    """(out dir, results, captured stderr, seconds) of one tiny audit over phantoms, a timm ViT and demo-cnn."""
    from medrep.audit import run_audit

    root = tmp_path_factory.mktemp("tiny-audit")
    out, cache = root / "out", root / "cache"
    err = io.StringIO()
    torch.manual_seed(0)  # the timm ViT is randomly initialised
    t0 = time.time()
    with single_thread(), loud(), contextlib.redirect_stderr(err):
        results = run_audit(tiny_config(), out, cache_dir=str(cache), device="cpu")
    return out, results, err.getvalue(), time.time() - t0


@pytest.fixture()
def artifacts() -> Path:
    path = Path(os.environ.get("MEDREP_TEST_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture()
def make_config():
    return tiny_config


@pytest.fixture()
def one_thread():
    with single_thread():
        yield


@pytest.fixture()
def progress_on():
    with loud():
        yield
