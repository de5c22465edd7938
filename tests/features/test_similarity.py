"""CKA and mutual kNN: invariances, an N×N reference, permutation nulls, hand-made neighbour sets."""
import numpy as np
import pytest

from medrep.errors import MedrepError
from medrep.features.similarity import (LinearCKA, compare_spaces, cka_permutation_test, linear_cka, mutual_knn,
                                        mutual_knn_permutation_test, mutual_knn_scores, neighbour_overlap)


def _reference_cka(x, y, unbiased):
    """Textbook Gram-matrix CKA (Kornblith 2019; unbiased HSIC of Song et al. 2012)."""
    n = len(x)
    k, l = x @ x.T, y @ y.T
    if not unbiased:
        h = np.eye(n) - 1 / n
        kc, lc = h @ k @ h, h @ l @ h
        return (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())

    def hsic(k, l):
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        one = np.ones(n)
        return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture()
def spaces():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16)) + 2.0
    y = np.tanh(x @ rng.normal(size=(16, 24))) + 0.5 * rng.normal(size=(120, 24))
    return x, y


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_matches_gram_reference_and_streams(spaces, unbiased):
    x, y = spaces
    ref = _reference_cka(x, y, unbiased)
    assert linear_cka(x, y, unbiased=unbiased) == pytest.approx(ref, abs=1e-6)
    # streamed over uneven row batches: same number
    acc = LinearCKA(unbiased=unbiased)
    for s in range(0, 120, 37):
        acc.update(x[s:s + 37], y[s:s + 37])
    assert acc.compute() == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_one_for_rotation_and_isotropic_scaling(spaces, unbiased):
    x, _ = spaces
    q = np.linalg.qr(np.random.default_rng(3).normal(size=(16, 16)))[0]
    assert linear_cka(x, x @ q, unbiased=unbiased) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 7.5 * x - 3, unbiased=unbiased) == pytest.approx(1.0, abs=1e-6)
    # and not for an anisotropic scaling, which CKA is not invariant to
    assert linear_cka(x, x * np.linspace(0.1, 10, 16), unbiased=unbiased) < 0.99


@pytest.mark.parametrize("unbiased", [False, True])
def test_permutation_p_values(unbiased):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(150, 20))
    q = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    rotated = cka_permutation_test(x, x @ q, n_permutations=200, unbiased=unbiased)
    assert rotated.p_value < 0.01
    assert rotated.statistic == pytest.approx(1.0, abs=1e-6)
    independent = cka_permutation_test(x, rng.normal(size=(150, 20)), n_permutations=200, unbiased=unbiased)
    assert independent.p_value > 0.05
    # the null of the biased estimator sits well above 0 (chance level for these widths), the unbiased near 0
    assert (independent.null_mean > 0.05) != unbiased


def test_permutation_null_uses_gram_path_for_wide_spaces():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 300))  # N·100 < Dx·Dy → Gram path
    y = x @ np.linalg.qr(rng.normal(size=(300, 300)))[0]
    t = cka_permutation_test(x, y, n_permutations=100)
    assert t.p_value < 0.02 and t.statistic == pytest.approx(1.0, abs=1e-6)
    t0 = cka_permutation_test(x, rng.normal(size=(40, 300)), n_permutations=100)
    assert t0.p_value > 0.05


def test_neighbour_overlap_hand_made():
    a = np.array([[1, 2, 3], [0, 2, 3]])
    b = np.array([[3, 1, 7], [5, 6, 4]])
    np.testing.assert_allclose(neighbour_overlap(a, b), [2 / 3, 0.0])


def test_mutual_knn_hand_made_points():
    # points on a line: neighbours in x are the adjacent ones; y reverses the order of the last three
    x = np.array([[1, 0.0], [1, 0.1], [1, 0.2], [1, 0.3], [1, 0.4], [1, 0.5]])
    assert mutual_knn(x, x, k=2) == pytest.approx(1.0)
    # y: same angles but items 0 and 5 swapped, so only their neighbour sets change
    y = x[[5, 1, 2, 3, 4, 0]]
    scores = mutual_knn_scores(x, y, k=1)
    # k=1 nearest (cosine) neighbours: x: 0→1, 1→0|2, ...; item 0 in y sits at the old 5, nearest is 4
    assert scores[0] == 0.0 and scores[5] == 0.0
    assert scores[2] == 1.0 and scores[3] == 1.0


def test_mutual_knn_permutation_test():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(120, 10))
    same = mutual_knn_permutation_test(x, x @ np.linalg.qr(rng.normal(size=(10, 10)))[0], k=5, n_permutations=100)
    assert same.statistic == pytest.approx(1.0) and same.p_value < 0.01
    other = mutual_knn_permutation_test(x, rng.normal(size=(120, 10)), k=5, n_permutations=100)
    assert other.p_value > 0.05
    assert other.null_mean == pytest.approx(5 / 119, rel=0.2)  # chance overlap k/(N−1)


def test_compare_spaces_interval_contains_value(spaces):
    x, y = spaces
    p = compare_spaces(x, y, n_permutations=50, n_boot=30)
    assert p.cka.low <= p.cka.value <= p.cka.high
    assert p.mutual_knn.low <= p.mutual_knn.value <= p.mutual_knn.high
    d = p.to_dict()
    assert {"cka", "cka_p_value", "mutual_knn", "mutual_knn_p_value"} <= set(d)


def test_compare_spaces_subsample_gives_value_interval_and_null_together():
    # independent spaces: biased CKA on 3000 rows (~0.02) is far below its value on 400 rows (~0.14),
    # so a value from all rows next to an interval / null from 400 rows excluded its own interval
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3000, 64)).astype("f4"), rng.normal(size=(3000, 64)).astype("f4")
    p = compare_spaces(x, y, k=5, n_permutations=20, n_boot=20, max_items=400)
    assert p.cka.n == 400 and p.extra["cka_rows_used"] == 400
    assert p.cka.low <= p.cka.value <= p.cka.high
    assert p.cka.value == pytest.approx(0.141, abs=0.005)
    assert p.extra["cka_all_rows"] == pytest.approx(linear_cka(x, y), abs=1e-9)
    assert p.extra["cka_all_rows"] == pytest.approx(0.021, abs=0.002)
    # the null is of the same 400 rows: unrelated spaces sit at chance, not 6x below it
    assert p.cka_null_mean == pytest.approx(p.cka.value, rel=0.1) and p.cka_p_value > 0.05
    # mutual kNN keeps every row for its value, interval and null
    assert p.mutual_knn.n == 3000
    d = p.to_dict()
    assert d["cka"]["n"] == 400 and d["cka_all_rows"] == p.extra["cka_all_rows"]


def test_compare_spaces_below_max_items_uses_every_row(spaces):
    x, y = spaces
    p = compare_spaces(x, y, n_permutations=20, n_boot=20, max_items=2000)
    assert p.cka.n == 120 and p.cka.value == pytest.approx(linear_cka(x, y), abs=1e-9)
    assert "cka_all_rows" not in p.extra


def test_bad_inputs():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(MedrepError, match="different items"):
        linear_cka(x, x[:9])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(MedrepError, match="NaN"):
        linear_cka(x, bad)
    with pytest.raises(MedrepError, match="k=20"):
        mutual_knn(x, x, k=20)


def test_mutual_knn_interval_is_a_bootstrap_even_when_every_overlap_is_one():
    x = np.random.default_rng(2).normal(size=(40, 8))
    pair = compare_spaces(x, x, k=5, n_permutations=5, n_boot=10)
    assert (pair.mutual_knn.value, pair.mutual_knn.low, pair.mutual_knn.high) == (1.0, 1.0, 1.0)
