"""Memory that must not grow with N: bootstrap resamples are drawn block by block, with the same results."""
from __future__ import annotations

import tracemalloc

import numpy as np

import medrep.intervals as R
from medrep.robustness.metrics import detector_auc_bootstrap


def test_blocked_bootstraps_equal_the_one_big_draw(monkeypatch):
    rng = np.random.default_rng(0)
    v, c, a = rng.random(3001), rng.random(500), rng.random(500) + 0.1
    whole = (R.bootstrap_metric(v, n_boot=300, seed=4), R.bootstrap_metric(v, np.median, n_boot=50, seed=4),
             detector_auc_bootstrap(c, a, n_boot=300, seed=4))
    monkeypatch.setattr(R, "BOOTSTRAP_BLOCK_ELEMENTS", 7 * 3001)  # blocks of a few rows, a ragged last one
    blocked = (R.bootstrap_metric(v, n_boot=300, seed=4), R.bootstrap_metric(v, np.median, n_boot=50, seed=4),
               detector_auc_bootstrap(c, a, n_boot=300, seed=4))
    assert blocked == whole


def test_bootstrap_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(R, "BOOTSTRAP_BLOCK_ELEMENTS", 1 << 18)  # 2 MiB of indices per block
    v = np.random.default_rng(1).random(50_000)
    tracemalloc.start()
    R.bootstrap_metric(v, n_boot=200, seed=0)  # one (200, 50 000) draw would be 160 MiB with its values
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 * 2**20
