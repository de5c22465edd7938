"""Every confidence interval medrep reports, in one module: the percentile bootstrap over items (vectorised
for the mean, drawn block by block), the Wilson score interval for proportions, the cluster bootstrap over
patients, the paired bootstrap of set-level statistics, and the delete-half jackknife.

The delete-half jackknife is for set-level statistics that a with-replacement bootstrap would bias:
Duplicated rows are zero-distance neighbours: they inflate CKA and the silhouette, so percentile
bootstrap intervals of those sit above the point estimate.  The delete-half jackknife (Shao & Wu
1989) draws half-samples without replacement; with d = n/2 its variance factor (n − d)/d is 1, so
the spread of the half-sample values around their mean estimates the spread of the full-sample
statistic directly.  The interval is that spread placed around the full-sample value.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from medrep.results import Metric

#: Resample indices drawn per block: memory stays bounded (≈ 8 MiB of indices) whatever the number of items.
BOOTSTRAP_BLOCK_ELEMENTS = 1 << 20


def bootstrap_blocks(rng: np.random.Generator, n: int, n_boot: int, width: int = 1):
    """Yield (first replicate, (rows, n) resample indices) blocks of ``rng.integers(0, n, (n_boot, n))``.

    Drawn block by block, the values are exactly those of the one big array (the generator's stream is
    consumed in the same order), so results do not change, but memory no longer grows as n_boot · n.
    ``width``: how many (rows, n)-sized arrays the caller builds per block (to keep their sum bounded).
    """
    rows = max(1, BOOTSTRAP_BLOCK_ELEMENTS // max(1, n * width))
    for lo in range(0, n_boot, rows):
        yield lo, rng.integers(0, n, size=(min(rows, n_boot - lo), n))


def percentile_bounds(replicates: np.ndarray, confidence: float = 0.95, *, ignore_nan: bool = False) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates: their (1 − confidence)/2 and (1 + confidence)/2 quantiles
    (``ignore_nan``: NaN replicates, resamples where the statistic is undefined, left out)."""
    alpha = (1 - confidence) / 2
    quantile = np.nanquantile if ignore_nan else np.quantile
    low, high = quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_metric(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    proportion: bool | None = None,
    groups: np.ndarray | None = None,
) -> Metric:
    """Percentile bootstrap over items; vectorised for the mean.  The mean of 0/1 outcomes (an accuracy, a
    pointing-game hit rate) gets the Wilson score interval instead: the bootstrap collapses to [1, 1] at
    12/12 correct, while the proportion is only known to lie in about [0.76, 1].

    ``proportion``: True — the values are 0/1 outcomes (Wilson; anything else is an error); False — they
    are not, even where every value happens to be 0 or 1 (per-draw accuracies, overlap fractions: the
    bootstrap); None — Wilson exactly when every value is 0 or 1.  With ``groups`` (a patient id per value)
    holding several values: a cluster bootstrap over groups instead, never Wilson (see
    :func:`cluster_bootstrap_values`)."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.shape[0])
    if n == 0:
        return Metric(float("nan"), None, None, 0)
    if is_clustered(groups, n):
        return cluster_bootstrap_values(v, groups, statistic, n_boot, confidence, seed)
    point = float(statistic(v))
    outcomes = bool(np.isin(v, (0.0, 1.0)).all())
    if proportion and not outcomes:
        raise ValueError("a proportion needs 0/1 outcomes")
    if statistic is np.mean and outcomes and proportion is not False:
        low, high = wilson_interval(int(v.sum()), n, confidence)
        return Metric(point, low, high, n)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot, dtype=np.float64)
    for lo, idx in bootstrap_blocks(rng, n, n_boot):  # bounded memory; the same draws as one (n_boot, n) array
        if statistic is np.mean:
            boots[lo:lo + len(idx)] = v[idx].mean(axis=1)
        else:
            boots[lo:lo + len(idx)] = [statistic(v[i]) for i in idx]
    low, high = percentile_bounds(boots, confidence)
    return Metric(point, low, high, n)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; well-behaved at 0 and n successes)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # in exact arithmetic the bounds reach 0 at k = 0 and 1 at k = n; floats can miss by an ulp
    low = 0.0 if successes == 0 else min(p, max(0.0, centre - half))
    high = 1.0 if successes == n else max(p, min(1.0, centre + half))
    return low, high


def is_clustered(groups: np.ndarray | None, n: int) -> bool:
    """Whether ``groups`` asks for a cluster bootstrap: given, and some group holds more than one item."""
    if groups is None:
        return False
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group ids for {n} values")
    return len(set(np.asarray(groups, dtype=object).tolist())) < n


CLUSTER_INTERVAL = "cluster bootstrap over patients"


def cluster_members(groups: np.ndarray) -> list[np.ndarray]:
    """Item indices of each group, groups in order of first appearance."""
    _, first, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of first appearance: independent of how ids sort
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inv = rank[inverse.ravel()]
    by_group = np.argsort(inv, kind="stable")
    bounds = np.cumsum(np.bincount(inv, minlength=len(order)))[:-1]
    return np.split(by_group, bounds)


def cluster_bootstrap_values(values: np.ndarray, groups: np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean,
                             n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Metric:
    """Percentile cluster bootstrap (Davison & Hinkley 1997, §3.8): each replicate draws as many patients as
    there are, with replacement, and takes all images of each drawn patient; the statistic is computed over
    those images.  For the mean this is the ratio Σ sums / Σ counts of the drawn patients."""
    v = np.asarray(values, dtype=np.float64)
    members = cluster_members(groups)
    g = len(members)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(n_boot, g))
    if statistic is np.mean:
        sums = np.array([v[m].sum() for m in members])
        counts = np.array([len(m) for m in members], dtype=np.float64)
        boots = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    else:
        boots = np.array([statistic(v[np.concatenate([members[k] for k in row])]) for row in draws], dtype=np.float64)
    low, high = percentile_bounds(boots, confidence)
    return Metric(float(statistic(v)), low, high, len(v), CLUSTER_INTERVAL, g)


def bootstrap_paired(
    fn: Callable[[np.ndarray], float], n: int, n_boot: int = 200, confidence: float = 0.95, seed: int = 0,
    groups: np.ndarray | None = None,
) -> Metric:
    """Bootstrap a statistic that needs the whole resampled set (e.g. silhouette): ``fn(indices)``.  With
    ``groups`` holding several items per group, whole groups are resampled (a cluster bootstrap)."""
    point = float(fn(np.arange(n)))
    rng = np.random.default_rng(seed)
    if is_clustered(groups, n):
        m = cluster_bootstrap_metric(fn, groups, n_boot=n_boot, confidence=confidence, seed=seed)
        return replace(m, interval=CLUSTER_INTERVAL, n_patients=len(set(np.asarray(groups, dtype=object).tolist())))
    boots = np.array([fn(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=np.float64)
    return _percentile_metric(point, boots, n, confidence)


def _percentile_metric(point: float, boots: np.ndarray, n: int, confidence: float) -> Metric:
    """The point estimate with the percentile interval of its finite bootstrap replicates (none: no interval)."""
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Metric(point, None, None, n)
    low, high = percentile_bounds(boots, confidence)
    return Metric(point, low, high, n)


def cluster_bootstrap_metric(
    fn: Callable[[np.ndarray], float],
    clusters: Sequence[Any] | np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Metric:
    """Percentile bootstrap that resamples whole clusters (patients) with replacement: ``fn(indices)`` is the
    statistic on the items of the drawn clusters.  Images of one patient are not independent, so resampling
    them one by one would give intervals that are too narrow.  ``n`` is the number of items.  Where some cluster
    holds several items, the Metric says so (``interval``, ``n_patients``): tables mark such intervals."""
    codes = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)[1]
    n = int(codes.shape[0])
    point = float(fn(np.arange(n)))
    n_clusters = int(codes.max()) + 1 if n else 0
    if n_clusters < 2:
        return Metric(point, None, None, n)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_clusters + 1))
    members = [order[starts[c]:starts[c + 1]] for c in range(n_clusters)]
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        drawn = rng.integers(0, n_clusters, size=n_clusters)
        boots[b] = fn(np.concatenate([members[c] for c in drawn]))
    m = _percentile_metric(point, boots, n, confidence)
    return replace(m, interval=CLUSTER_INTERVAL, n_patients=n_clusters) if n_clusters < n and m.low is not None else m


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
    lo, hi = percentile_bounds(vals - vals.mean(), confidence)
    return Metric(point, point + lo, point + hi, n)
