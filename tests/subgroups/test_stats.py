"""The subgroup statistics against independent references: permutation p-values calibrated under the null,
KS figures equal to scipy's ks_2samp, Holm by hand, cluster intervals, age bands, independence weights."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from medrep.intervals import CLUSTER_INTERVAL, bootstrap_metric, cluster_bootstrap_metric
from medrep.subgroups.separability import attribute_probe, ks_tests
from medrep.subgroups.shortcut import independence_weights, shortcut_check
from medrep.subgroups.stats import ItemFigure, age_in_years, bin_ages, breakdown, holm


def _null_replicate(rng, n=90):
    """Data with no subgroup effect but a class effect and subgroup prevalences that differ by class."""
    labels = rng.integers(0, 3, n)
    groups = np.where(rng.random(n) < np.array([0.2, 0.5, 0.8])[labels], "B", "A").astype(object)
    values = rng.normal(loc=np.array([0.0, 1.0, 2.0])[labels], scale=1.0)
    return values, groups, labels


def test_gap_p_values_are_calibrated_under_the_null_even_with_prevalence_differences():
    rng = np.random.default_rng(0)
    ps = []
    for rep in range(400):
        values, groups, labels = _null_replicate(rng)
        b = breakdown(ItemFigure("x", values=values), groups, labels, None, min_group_size=1, n_boot=10,
                      n_permutations=99, seed=rep)
        ps.append(b["gap_p"])
    ps = np.asarray(ps)
    # exact binomial bounds for 400 draws at 5% are about [2.9%, 7.5%]; p-values are valid (super-uniform)
    assert 0.025 <= (ps < 0.05).mean() <= 0.08, (ps < 0.05).mean()
    assert 0.07 <= (ps < 0.10).mean() <= 0.14
    # a plain (unstratified) shuffle would call the prevalence difference a gap: the observed gap is large
    values, groups, labels = _null_replicate(np.random.default_rng(1), n=400)
    assert abs(values[groups == "A"].mean() - values[groups == "B"].mean()) > 0.5


def test_gap_p_value_detects_a_real_effect_and_marks_small_groups():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    groups = np.where(rng.random(300) < 0.5, "f", "m").astype(object)
    groups[:20] = "x"
    correct = (rng.random(300) < np.where(groups == "f", 0.6, 0.9)).astype(float)
    b = breakdown(ItemFigure("acc", values=correct), groups, labels, None, min_group_size=30, n_boot=200,
                  n_permutations=199, seed=0)
    assert b["gap_p"] == pytest.approx(1 / 200)
    assert b["groups"]["x"]["too_small"] and not b["groups"]["f"]["too_small"]
    assert {b["worst"], b["best"]} == {"f", "m"}  # the small group stays out of the gap
    f = groups == "f"
    assert b["gap"] == pytest.approx(correct[groups == "m"].mean() - correct[f].mean())
    # the per-group interval is medrep's usual one (Wilson for a proportion)
    assert b["groups"]["f"]["metric"] == bootstrap_metric(correct[f], n_boot=200, seed=0)


def test_set_figure_gap_uses_the_same_test():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 200)
    groups = np.where(rng.random(200) < 0.5, "a", "b").astype(object)
    scores = labels + rng.normal(0, np.where(groups == "a", 0.3, 2.0))
    from sklearn.metrics import roc_auc_score

    fig = ItemFigure("auc", fn=lambda i: roc_auc_score(labels[i], scores[i]))
    b = breakdown(fig, groups, labels, None, 10, 50, 99, 0)
    assert b["groups"]["a"]["metric"].value == pytest.approx(roc_auc_score(labels[groups == "a"], scores[groups == "a"]))
    assert b["gap_p"] == pytest.approx(0.01)


def test_ks_tests_equal_scipy_and_holm_matches_a_hand_computed_case():
    rng = np.random.default_rng(2)
    groups = np.where(rng.random(120) < 0.4, "female", "male").astype(object)
    pcs = rng.normal(size=(120, 3)) + (groups == "male")[:, None] * np.array([1.0, 0.0, 0.0])
    scores = rng.random((120, 2))
    tests = ks_tests(pcs, scores, ["benign", "malignant"], groups, alpha=0.05)
    assert [t["feature"] for t in tests] == ["PC1", "PC2", "PC3", "score:benign", "score:malignant"]
    f, m = groups == "female", groups == "male"
    columns = [pcs[:, 0], pcs[:, 1], pcs[:, 2], scores[:, 0], scores[:, 1]]
    for t, col in zip(tests, columns):
        ref = ks_2samp(col[f], col[m])
        assert t["statistic"] == ref.statistic and t["p_value"] == ref.pvalue
    assert tests[0]["significant"] and not any(t["significant"] for t in tests[1:])
    # Holm: sorted p (0.01, 0.02, 0.04, 0.3) × (4, 3, 2, 1) = (0.04, 0.06, 0.08, 0.3), made monotone
    assert holm([0.04, 0.01, 0.3, 0.02]) == pytest.approx([0.08, 0.04, 0.3, 0.06])


def test_cluster_bootstrap_resamples_patients_whole():
    rng = np.random.default_rng(4)
    per_patient = rng.random(40)
    values = np.repeat(per_patient, 5)  # five identical images per patient
    patients = np.repeat([f"p{i}" for i in range(40)], 5)
    clustered = cluster_bootstrap_metric(lambda i: values[i].mean(), patients, n_boot=2000, seed=0)
    naive = bootstrap_metric(values, n_boot=2000, seed=0)
    per_patient_ci = bootstrap_metric(per_patient, n_boot=2000, seed=0)
    width = lambda m: m.high - m.low  # noqa: E731
    assert width(clustered) > 1.8 * width(naive)  # images of one patient are not independent evidence
    assert width(clustered) == pytest.approx(width(per_patient_ci), rel=0.15)
    assert clustered.value == pytest.approx(values.mean()) and clustered.n == 200
    # the interval says what it is, so tables can mark it (†); one image per patient is a plain bootstrap
    assert (clustered.interval, clustered.n_patients) == (CLUSTER_INTERVAL, 40)
    assert clustered.to_dict()["interval"] == CLUSTER_INTERVAL
    single = cluster_bootstrap_metric(lambda i: per_patient[i].mean(), [f"p{i}" for i in range(40)], n_boot=200, seed=0)
    assert single.interval is None and "interval" not in single.to_dict()


@pytest.mark.parametrize("text, years", [("63", 63.0), ("045Y", 45.0), ("006M", 0.5), ("52.5", 52.5), ("unknown", None)])
def test_age_strings(text, years):
    assert age_in_years(text) == (pytest.approx(years) if years is not None else None)


def test_age_bands_default_decades_and_custom_edges():
    ages = np.array(["5", "10", "19", "45", "045Y", "90", "101", ""], dtype=object)
    decades = tuple(float(a) for a in range(10, 100, 10))
    assert bin_ages(ages, decades).tolist() == ["<10", "10-19", "10-19", "40-49", "40-49", ">=90", ">=90", ""]
    assert bin_ages(ages, (18.0, 65.0)).tolist() == ["<18", "<18", "18-64", "18-64", "18-64", ">=65", ">=65", ""]


def test_independence_weights_make_attribute_and_label_independent():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 500)
    groups = np.where(rng.random(500) < np.array([0.1, 0.5, 0.9])[labels], "B", "A")
    w = independence_weights(groups, labels)
    joint = np.array([[w[(groups == a) & (labels == y)].sum() for y in range(3)] for a in "AB"]) / w.sum()
    np.testing.assert_allclose(joint, np.outer(joint.sum(1), joint.sum(0)), atol=1e-12)
    np.testing.assert_allclose(joint.sum(1), [(groups == a).mean() for a in "AB"])


def test_shortcut_flags_a_probe_that_relies_on_the_attribute_only():
    rng = np.random.default_rng(7)
    n = 1200
    labels = rng.integers(0, 2, n)
    groups = np.where(rng.random(n) < np.where(labels == 1, 0.85, 0.15), "B", "A")
    # right on the common attribute–label cells, often wrong on the rare ones
    common = (groups == "B") == (labels == 1)
    correct = rng.random(n) < np.where(common, 0.95, 0.45)
    flagged = shortcut_check(correct, groups.astype(object), labels, None, n_boot=300, min_drop=0.01, seed=0)
    assert flagged["flagged"] and flagged["drop"].value > 0.15
    honest = shortcut_check(rng.random(n) < 0.85, groups.astype(object), labels, None, n_boot=300, min_drop=0.01, seed=0)
    assert not honest["flagged"]


def test_attribute_probe_separable_and_not():
    rng = np.random.default_rng(8)
    n = 400
    groups = np.where(rng.random(n) < 0.5, "A", "B").astype(object)
    x = rng.normal(size=(n, 8))
    shifted = x + (groups == "B")[:, None] * 2.0
    sep = attribute_probe(shifted, groups, None, folds=5, n_boot=200, n_permutations=19, seed=0)
    assert sep["auroc"].low > 0.9 and sep["p_value"] == pytest.approx(1 / 20)
    null = attribute_probe(x, groups, None, folds=5, n_boot=200, n_permutations=19, seed=0)
    assert null["auroc"].low < 0.5 < null["auroc"].high and null["p_value"] > 0.05
    # with patient ids, folds keep a patient's images together and the interval resamples patients
    patients = np.array([f"p{i // 4}" for i in range(n)], dtype=object)
    grouped = attribute_probe(shifted, groups, patients, folds=5, n_boot=200, n_permutations=5, seed=0)
    assert grouped["auroc"].value > 0.95


def test_rank_auc_equals_scikit_learn_with_ties_and_several_classes():
    from sklearn.metrics import roc_auc_score

    from medrep.features.probes import macro_auc
    from medrep.subgroups.stats import macro_auc_fast, rank_auc

    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    assert rank_auc(y == 1, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    y3 = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    classes = np.arange(3)
    assert macro_auc_fast(y3, proba, classes) == pytest.approx(macro_auc(y3, proba, classes), abs=1e-12)
    assert np.isnan(macro_auc_fast(np.zeros(10, int), proba[:10], classes))


def test_a_subgroup_interval_over_patients_is_marked_where_a_table_shows_it():
    # a subgroup's figure, a shortcut accuracy or an attribute AUROC: each comes through stats.interval
    from medrep.report.html import CLUSTER_MARK, format_value
    from medrep.subgroups.stats import interval

    values = np.tile([1.0, 0.0, 1.0, 1.0], 15)
    figure, idx = ItemFigure("accuracy", values=values), np.arange(60)
    clustered = interval(figure, idx, np.repeat([f"p{i}" for i in range(20)], 3), n_boot=200, seed=0)
    assert (clustered.interval, clustered.n_patients) == (CLUSTER_INTERVAL, 20)
    assert format_value(clustered.to_dict()).endswith(f"{CLUSTER_MARK}</span>")
    plain = interval(figure, idx, None, n_boot=200, seed=0)
    assert plain.interval is None and CLUSTER_MARK not in format_value(plain.to_dict())
