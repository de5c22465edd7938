"""Intervals for set-level statistics that a with-replacement bootstrap would bias.

Duplicated rows are zero-distance neighbours: they inflate CKA and the silhouette, so percentile
bootstrap intervals of those sit above the point estimate.  The delete-half jackknife (Shao & Wu
1989) draws half-samples without replacement; with d = n/2 its variance factor (n − d)/d is 1, so
the spread of the half-sample values around their mean estimates the spread of the full-sample
statistic directly.  The interval is that spread placed around the full-sample value.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from medrep.results import Metric


def half_sample_interval(fn: Callable[[np.ndarray], float], n: int, n_draws: int = 100, confidence: float = 0.95,
                         seed: int = 0) -> Metric:
    point = float(fn(np.arange(n)))
    if n < 8 or n_draws < 2:
        return Metric(point, None, None, n)
    rng = np.random.default_rng(seed)
    half = n // 2
    vals = np.array([fn(np.sort(rng.choice(n, size=half, replace=False))) for _ in range(n_draws)], dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size < 2:
        return Metric(point, None, None, n)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(vals - vals.mean(), [alpha, 1 - alpha])
    return Metric(point, float(point + lo), float(point + hi), n)
