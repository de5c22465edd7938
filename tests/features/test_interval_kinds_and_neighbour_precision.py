"""Intervals say what they are: a proportion (Wilson) interval only for genuine 0/1 outcomes; few-shot
accuracies (one per draw) and mutual-kNN overlaps get a bootstrap.  Mutual-kNN neighbours are ranked in
float64, exact ties going to the lower index, checked against a float64 reference."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.features.neighbours import cosine_topk
from medrep.features.probes import few_shot_accuracy
from medrep.features.similarity import compare_spaces, mutual_knn_scores, neighbour_overlap
from medrep.intervals import bootstrap_metric, wilson_interval


def test_few_shot_with_all_perfect_draws_is_not_a_coin_flip_interval():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    train_y, test_y = np.repeat(np.arange(3), 20), np.repeat(np.arange(3), 30)
    train_x = centres[train_y] + rng.normal(size=(60, 3))
    test_x = centres[test_y] + rng.normal(size=(90, 3))
    m = few_shot_accuracy(train_x, train_y, test_x, test_y, shots=1, n_draws=10, seed=0, n_boot=500)
    # every draw scores 1: over draws there is no spread.  Ten draws treated as ten 0/1 outcomes
    # would report Wilson's [0.72, 1] instead, an interval about something else.
    assert (m.value, m.low, m.high, m.n) == (1.0, 1.0, 1.0, 10)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)


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


# -- mutual kNN in float64 -------------------------------------------------------------------------------
def _reference_sets(x: np.ndarray, k: int) -> np.ndarray:
    """Full float64 cosine matrix, stable sort: the k most similar others, ties to the lower index."""
    x = np.asarray(x, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def test_mutual_knn_on_near_duplicates_matches_a_float64_reference():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 64))
    x = (base + 1e-3 * rng.normal(size=(300, 64))).astype(np.float32)  # cosines ≈ 0.99995: float32 cannot rank them
    y = (base + 1e-3 * rng.normal(size=(300, 64)) + 0.5 * (x - base)).astype(np.float32)
    cos = (x[:2] / np.linalg.norm(x[:2], axis=1, keepdims=True)).astype(np.float64)
    assert cos[0] @ cos[1] > 0.9999
    reference = neighbour_overlap(_reference_sets(x, 10), _reference_sets(y, 10))
    np.testing.assert_array_equal(mutual_knn_scores(x, y, k=10), reference)
    pair = compare_spaces(x, y, k=10, n_permutations=5, n_boot=10)
    assert pair.mutual_knn.value == pytest.approx(reference.mean(), abs=1e-12)


def test_exact_ties_go_to_the_lower_index():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 5))
    x[3:9] = x[2]  # rows 2…8 identical: seven-way ties
    for dtype in (np.float32, np.float64):
        _, idx = cosine_topk(x, x, 3, exclude_self=True, dtype=dtype)
        assert sorted(idx[2]) == [3, 4, 5] and sorted(idx[8]) == [2, 3, 4] and sorted(idx[5]) == [2, 3, 4]
    np.testing.assert_array_equal(np.sort(cosine_topk(x, x, 3, exclude_self=True, dtype=np.float64)[1], axis=1),
                                  np.sort(_reference_sets(x, 3), axis=1))


def test_mutual_knn_interval_is_a_bootstrap_even_when_every_overlap_is_one():
    x = np.random.default_rng(2).normal(size=(40, 8))
    pair = compare_spaces(x, x, k=5, n_permutations=5, n_boot=10)
    assert (pair.mutual_knn.value, pair.mutual_knn.low, pair.mutual_knn.high) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("metrics, legend", [
    (["pointing", "deletion_auc"], "95% CI over images: Wilson score interval for pointing (a 0/1 hit per image), "
                                   "percentile bootstrap for the others, 200 resamples"),
    (["pointing"], "95% CI over images: Wilson score interval for pointing (a 0/1 hit per image)"),
    (["mass", "deletion_auc"], "95% bootstrap CI over images, 200 resamples")])
def test_explain_legend_says_which_interval_is_which(metrics, legend):
    from medrep.explain.run import ExplainResult
    from medrep.results import Metric

    res = ExplainResult(model="m", data={}, target="class", methods=["gradcam"], metric_names=metrics,
                        metrics={"gradcam": {k: Metric(0.5, 0.25, 0.75, 4) for k in metrics}}, per_image={},
                        ids=["a", "b", "c", "d"], mask_area={}, settings={"bootstrap": {"n_boot": 200}})
    assert res.interval_legend() == legend
    assert f"mean [{legend}]" in res.format_table()


def test_explain_intervals_are_wilson_for_pointing_and_bootstrap_otherwise(tmp_path):
    """Through run_explain: pointing's interval is Wilson's for its hit count; the others are not."""
    from medrep.data import load_dataset
    from medrep.explain.run import run_explain
    from medrep.models import load_encoder

    res = run_explain(load_encoder("demo-cnn"), load_dataset("demo?n_train=4&n_val=0&n_test=12&seed=3&size=32").split("test"),
                      methods=["gradcam"], metrics=["pointing", "mass"], limit=8, batch_size=8, add_baselines=False,
                      n_boot=200)
    hits = res.per_image["gradcam"]["pointing"]
    point = res.metrics["gradcam"]["pointing"]
    assert (point.low, point.high) == pytest.approx(wilson_interval(int(hits.sum()), len(hits)))
    mass = res.metrics["gradcam"]["mass"]
    assert (mass.low, mass.high) == pytest.approx(
        (lambda m: (m.low, m.high))(bootstrap_metric(res.per_image["gradcam"]["mass"], n_boot=200, seed=0, proportion=False)))
