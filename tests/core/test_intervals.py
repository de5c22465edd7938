"""Intervals of the one result schema: proportions of 0/1 outcomes get the Wilson score interval (checked
against scipy), other means the seeded percentile bootstrap."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from medrep.intervals import bootstrap_metric, wilson_interval


@pytest.mark.parametrize("k, n", [(12, 12), (0, 12), (41, 48), (3, 48), (1, 1), (500, 1000)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_zero_one_means_get_wilson_and_others_the_bootstrap():
    hits = np.array([1.0] * 12)
    m = bootstrap_metric(hits)
    assert (m.value, m.n) == (1.0, 12) and m.high == 1.0 and m.low == pytest.approx(0.7575, abs=1e-4)  # not [1, 1]
    for k, n in [(60, 60), (0, 60), (7, 60)]:  # the estimate always lies inside its interval, ends included
        low, high = wilson_interval(k, n)
        assert low <= k / n <= high
    scores = np.random.default_rng(0).random(200)
    b = bootstrap_metric(scores, n_boot=500, seed=3)
    assert b.low < scores.mean() < b.high and b.low > 0.4 and b.high < 0.6
    assert bootstrap_metric(scores, n_boot=500, seed=3) == b  # seeded
    med = bootstrap_metric(hits, statistic=np.median, n_boot=50)  # another statistic: still the bootstrap
    assert (med.low, med.high) == (1.0, 1.0)


def test_interval_over_draws_matches_a_percentile_bootstrap_reference():
    scipy_stats = pytest.importorskip("scipy.stats")
    draws = np.array([0.90, 0.95, 1.0, 0.85, 1.0, 0.92, 0.97, 1.0, 0.88, 0.93])
    ours = bootstrap_metric(draws, n_boot=40000, seed=1, proportion=False)
    ref = scipy_stats.bootstrap((draws,), np.mean, n_resamples=40000, method="percentile", random_state=2)
    assert ours.value == pytest.approx(draws.mean())
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.004)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.004)


def test_proportion_is_declared_not_guessed():
    hits = np.array([1, 1, 0, 1, 1, 1, 1, 0, 1, 1], dtype=float)
    assert (bootstrap_metric(hits).low, bootstrap_metric(hits).high) == pytest.approx(wilson_interval(8, 10))
    assert bootstrap_metric(hits, proportion=True).low == pytest.approx(wilson_interval(8, 10)[0])
    boot = bootstrap_metric(np.ones(10), proportion=False)
    assert (boot.low, boot.high) == (1.0, 1.0)
    with pytest.raises(ValueError, match="0/1 outcomes"):
        bootstrap_metric(np.array([0.5, 1.0]), proportion=True)
