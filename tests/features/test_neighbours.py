"""Neighbours are ranked in float64, exact ties going to the lower index, checked against a float64 reference
(mutual kNN on near-duplicates, which float32 cannot rank)."""
from __future__ import annotations

import numpy as np
import pytest

from medrep.features.neighbours import cosine_topk
from medrep.features.similarity import compare_spaces, mutual_knn_scores, neighbour_overlap


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
