"""kNN, linear and few-shot probes against scikit-learn and hand-made cases."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from medrep.errors import MedrepError
from medrep.features.neighbours import cosine_topk
from medrep.features.probes import (KNNClassifier, LinearProbe, few_shot_accuracy, knn_accuracy, knn_vote,
                                    linear_probe_scores, macro_auc)
from medrep.intervals import wilson_interval


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8))
    ytr, yte = rng.integers(0, 2, 200), rng.integers(0, 2, 80)
    xtr = centres[ytr] + 0.9 * rng.normal(size=(200, 8))
    xte = centres[yte] + 0.9 * rng.normal(size=(80, 8))
    return xtr, ytr, xte, yte


def test_cosine_topk_chunked_equals_brute_force(data):
    xtr, _, xte, _ = data
    sims, idx = cosine_topk(xte, xtr, 7, chunk_size=13)
    a = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    b = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    full = a @ b.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :7])
    np.testing.assert_allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :7], atol=1e-5)
    _, self_idx = cosine_topk(xtr, xtr, 3, exclude_self=True, chunk_size=17)
    assert not (self_idx == np.arange(200)[:, None]).any()


def test_knn_matches_sklearn_cosine_knn(data):
    xtr, ytr, xte, yte = data
    # two classes and odd k: no ties, so majority vote must agree exactly with scikit-learn's
    ref = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(xtr, ytr).predict(xte)
    np.testing.assert_array_equal(KNNClassifier(5, chunk_size=11).fit(xtr, ytr).predict(xte), ref)
    res = knn_accuracy(xtr, ytr, xte, yte, k=5, n_boot=200)
    assert res.accuracy.value == pytest.approx(np.mean(ref == yte))
    assert res.accuracy.low <= res.accuracy.value <= res.accuracy.high


def test_knn_vote_breaks_ties_by_similarity():
    labels = np.array([[0, 1, 1, 0]])
    sims = np.array([[0.9, 0.8, 0.7, 0.95]])  # 2 v 2; class 0 has the larger summed similarity
    assert knn_vote(labels, sims, 2)[0] == 0
    assert knn_vote(np.array([[2, 2, 0]]), np.array([[0.1, 0.1, 1.0]]), 3)[0] == 2  # a count beats similarity


def test_linear_probe_and_auc(data):
    xtr, ytr, xte, yte = data
    s = linear_probe_scores(xtr, ytr, xte, yte, n_boot=200, n_boot_auc=50)
    probe = LinearProbe().fit(xtr, ytr)
    assert s.accuracy.value == pytest.approx(np.mean(probe.predict(xte) == yte))
    assert s.auc.value == pytest.approx(roc_auc_score(yte, probe.predict_proba(xte)[:, 1]))
    assert s.accuracy.value > 0.8


def test_macro_auc_multiclass_matches_sklearn_and_nan_when_class_missing():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet(np.ones(3), 60)
    assert macro_auc(y, p, np.arange(3)) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert np.isnan(macro_auc(np.zeros(5, int), p[:5], np.arange(3)))


def test_few_shot(data):
    xtr, ytr, xte, yte = data
    m = few_shot_accuracy(xtr, ytr, xte, yte, shots=5, n_draws=4, n_boot=100)
    assert m.n == 4 and 0.5 < m.value <= 1 and m.low <= m.value <= m.high
    assert few_shot_accuracy(xtr[:3], np.array([0, 1, 1]), xte, yte, shots=2) is None  # class 0 has one item


def test_one_class_is_a_clear_error(data):
    xtr, _, _, _ = data
    with pytest.raises(MedrepError, match="kNN train labels"):
        KNNClassifier(3).fit(xtr, np.zeros(200, int))
    with pytest.raises(MedrepError, match="linear-probe train labels"):
        LinearProbe().fit(xtr, np.zeros(200, int))


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
