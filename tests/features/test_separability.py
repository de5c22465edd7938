"""Separability measures against scikit-learn and closed forms."""
import numpy as np
import pytest
from sklearn import metrics as skm

from medrep.errors import MedrepError
from medrep.features.separability import (calinski_harabasz, centroid_cosine_matrix, davies_bouldin, fisher_ratio,
                                          pairwise_distances, silhouette, silhouette_samples_from_distances)


@pytest.fixture()
def blobs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=150)
    x = rng.normal(size=(150, 12)) + 1.5 * rng.normal(size=(4, 12))[y]
    return x, y


def test_silhouette_matches_sklearn(blobs):
    x, y = blobs
    assert silhouette(x, y) == pytest.approx(skm.silhouette_score(x, y), abs=1e-10)
    assert silhouette(x, y, metric="cosine") == pytest.approx(skm.silhouette_score(x, y, metric="cosine"), abs=1e-10)
    s = silhouette_samples_from_distances(pairwise_distances(x), y)
    np.testing.assert_allclose(s, skm.silhouette_samples(x, y), atol=1e-10)


def test_silhouette_singleton_cluster_is_zero_like_sklearn():
    x = np.array([[0.0, 0], [0.1, 0], [0.0, 0.1], [5, 5], [9, 0]])
    y = np.array([0, 0, 0, 1, 2])
    np.testing.assert_allclose(silhouette_samples_from_distances(pairwise_distances(x), y), skm.silhouette_samples(x, y))


def test_davies_bouldin_and_calinski_harabasz_match_sklearn(blobs):
    x, y = blobs
    assert davies_bouldin(x, y) == pytest.approx(skm.davies_bouldin_score(x, y), rel=1e-10)
    assert calinski_harabasz(x, y) == pytest.approx(skm.calinski_harabasz_score(x, y), rel=1e-10)
    # labels need not be 0..K-1
    assert calinski_harabasz(x, y * 3 + 7) == pytest.approx(skm.calinski_harabasz_score(x, y), rel=1e-10)


def test_fisher_ratio_closed_form_two_gaussians():
    # 1-D, two equal-size classes at ±μ with within-class variance σ²: tr(S_W⁻¹S_B) = μ² / σ²
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=2000), rng.normal(size=2000)
    a, b = (a - a.mean()) / a.std() * 0.5 + 1.0, (b - b.mean()) / b.std() * 0.5 - 1.0
    x = np.concatenate([a, b])[:, None]
    y = np.repeat([0, 1], 2000)
    assert fisher_ratio(x, y, shrinkage=0) == pytest.approx(1.0 / 0.25, rel=1e-10)


def test_fisher_ratio_is_affine_invariant_and_woodbury_path_agrees():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=200)
    x = rng.normal(size=(200, 6)) + rng.normal(size=(3, 6))[y]
    a = rng.normal(size=(6, 6))
    assert fisher_ratio(x @ a + 3, y, shrinkage=0) == pytest.approx(fisher_ratio(x, y, shrinkage=0), rel=1e-8)
    # D > N goes through the sample-space (Woodbury) solve; compare with the direct D×D solve
    xw = rng.normal(size=(30, 80)) + 2 * rng.normal(size=(3, 80))[y[:30]]
    yw = y[:30]
    cents = np.stack([xw[yw == c].mean(0) for c in range(3)])
    w = (xw - cents[yw]).T @ (xw - cents[yw]) / 30
    w = 0.7 * w + 0.3 * np.trace(w) / 80 * np.eye(80)
    b = sum((yw == c).mean() * np.outer(cents[c] - xw.mean(0), cents[c] - xw.mean(0)) for c in range(3))
    assert fisher_ratio(xw, yw, shrinkage=0.3) == pytest.approx(np.trace(np.linalg.solve(w, b)), rel=1e-8)


def test_centroid_cosine_matrix_hand_case():
    x = np.array([[1.0, 0], [2, 0], [0, 1], [0, 3], [1, 1]])
    y = np.array([0, 0, 1, 1, 2])
    m = centroid_cosine_matrix(x, y)
    expected = np.array([[1, 0, np.sqrt(0.5)], [0, 1, np.sqrt(0.5)], [np.sqrt(0.5), np.sqrt(0.5), 1]])
    np.testing.assert_allclose(m, expected, atol=1e-6)


def test_one_class_is_a_clear_error():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(MedrepError, match="at least 2 classes"):
        davies_bouldin(x, np.zeros(10, int))
    with pytest.raises(MedrepError, match="silhouette labels"):
        silhouette(x, np.ones(10, int))
