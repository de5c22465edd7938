"""Frozen-embedding classifiers: cosine kNN, a logistic-regression linear probe, few-shot probes.

Each is a small fit/predict object over plain arrays; the ``*_accuracy`` helpers turn per-item
correctness into a bootstrapped :class:`~medrep.results.Metric`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medrep.errors import MedrepError, Param
from medrep.features.neighbours import cosine_topk, l2_normalise
from medrep.intervals import bootstrap_metric, bootstrap_paired
from medrep.results import Metric


def check_labels(labels: np.ndarray, where: str, min_classes: int = 2) -> np.ndarray:
    """The distinct classes in ``labels``; a clear error when fewer than ``min_classes`` are present."""
    classes = np.unique(np.asarray(labels))
    if classes.size < min_classes:
        found = ", ".join(str(c) for c in classes) or "none"
        raise MedrepError(f"needs at least {min_classes} classes but found {classes.size} (labels: {found})", where=where)
    return classes


def knn_vote(neighbour_labels: np.ndarray, neighbour_sims: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote over each row's neighbours; ties go to the class with the larger summed similarity."""
    n, k = neighbour_labels.shape
    counts = np.zeros((n, n_classes), dtype=np.float64)
    sims = np.zeros((n, n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(n), k)
    np.add.at(counts, (rows, neighbour_labels.ravel()), 1.0)
    np.add.at(sims, (rows, neighbour_labels.ravel()), neighbour_sims.ravel().astype(np.float64))
    # similarities lie in [-1, 1], so scaling by 1/(2k+1) can only break ties, never outvote a count
    return np.argmax(counts + sims / (2 * k + 1), axis=1)


class KNNClassifier:
    """Cosine kNN over a stored train set; chunked so the N×N similarity matrix never exists."""

    def __init__(self, k: int = 20, chunk_size: int | None = None):
        if k < 1:
            raise MedrepError("must be at least 1", where=Param("k"))
        self.k, self.chunk_size = k, chunk_size

    def fit(self, x: np.ndarray, y: np.ndarray) -> "KNNClassifier":
        check_labels(y, "kNN train labels")
        if self.k > len(y):
            raise MedrepError(f"k={self.k} exceeds the {len(y)} training embeddings", where=Param("k"))
        self.x_ = np.asarray(x, dtype=np.float32)
        self.y_ = np.asarray(y, dtype=np.int64)
        self.n_classes_ = int(self.y_.max()) + 1
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        sims, idx = cosine_topk(x, self.x_, self.k, chunk_size=self.chunk_size)
        return knn_vote(self.y_[idx], sims, self.n_classes_)


class LinearProbe:
    """Multinomial logistic regression on standardised, L2-normalised embeddings (scikit-learn, lbfgs): medrep's one
    linear probe (features, robustness and align all use it).

    ``normalise=False`` skips the L2 normalisation: alignment's stitching classifier must read translated
    vectors at the scale the translator produced, norms included."""

    def __init__(self, c: float = 1.0, max_iter: int = 1000, seed: int = 0, normalise: bool = True):
        self.c, self.max_iter, self.seed, self.normalise = c, max_iter, seed, normalise

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LinearProbe":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        check_labels(y, "linear-probe train labels")
        x = l2_normalise(x) if self.normalise else np.asarray(x)
        self.scaler_ = StandardScaler().fit(x)
        self.model_ = LogisticRegression(C=self.c, max_iter=self.max_iter, random_state=self.seed)
        self.model_.fit(self.scaler_.transform(x), np.asarray(y))
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self.scaler_.transform(l2_normalise(x) if self.normalise else np.asarray(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


def macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC; NaN when a class is missing from ``y`` (e.g. in a bootstrap resample)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if not np.isin(classes, y).all() or classes.size < 2:
        return float("nan")
    if classes.size == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


@dataclass
class ProbeScores:
    accuracy: Metric
    predictions: np.ndarray
    auc: Metric | None = None
    proba: np.ndarray | None = None  # class probabilities per test item (linear probe)
    classes: np.ndarray | None = None  # the class of each proba column


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, n_boot: int = 1000, seed: int = 0,
                 groups: np.ndarray | None = None) -> ProbeScores:
    """``groups``: patient id per test item (a cluster bootstrap over patients), or None."""
    pred = KNNClassifier(k).fit(train_x, train_y).predict(test_x)
    return ProbeScores(bootstrap_metric(pred == np.asarray(test_y), n_boot=n_boot, seed=seed, groups=groups), pred)


def linear_probe_scores(train_x, train_y, test_x, test_y, n_boot: int = 1000, n_boot_auc: int = 200,
                        seed: int = 0, probe: LinearProbe | None = None, groups: np.ndarray | None = None) -> ProbeScores:
    probe = probe or LinearProbe(seed=seed).fit(train_x, train_y)
    proba = probe.predict_proba(test_x)
    pred = probe.classes_[np.argmax(proba, axis=1)]
    test_y = np.asarray(test_y)
    acc = bootstrap_metric(pred == test_y, n_boot=n_boot, seed=seed, groups=groups)
    auc = bootstrap_paired(lambda i: macro_auc(test_y[i], proba[i], probe.classes_), len(test_y), n_boot=n_boot_auc, seed=seed,
                           groups=groups)
    return ProbeScores(acc, pred, auc, proba, probe.classes_)


def few_shot_accuracy(train_x, train_y, test_x, test_y, shots: int, n_draws: int = 10, seed: int = 0,
                      n_boot: int = 1000, groups: np.ndarray | None = None) -> Metric | None:
    """Probe fitted on ``shots`` random train items per class, repeated ``n_draws`` times.

    The value is the mean test accuracy over draws; the interval is a percentile bootstrap over draws (the
    variability that matters with so few examples), never a proportion interval: a draw's accuracy is a
    mean over the test items, not one 0/1 outcome, even when every draw scores 1.  None when some class has
    fewer than ``shots`` items.
    With ``groups`` (a patient id per train item) the shots of a class come from ``shots`` different
    patients (one image each), so k shots are k patients, not k views of one; None when some class has
    fewer patients than that.
    """
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    classes = check_labels(train_y, "few-shot train labels")
    pools = [np.flatnonzero(train_y == c) for c in classes]
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        pools_by_patient = [[p[groups[p] == g] for g in dict.fromkeys(groups[p].tolist())] for p in pools]
        if min(len(pp) for pp in pools_by_patient) < shots:
            return None
    elif min(len(p) for p in pools) < shots:
        return None
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(n_draws):
        if groups is None:
            idx = np.concatenate([rng.choice(p, size=shots, replace=False) for p in pools])
        else:
            idx = np.array([rng.choice(pp[j]) for pp in pools_by_patient
                            for j in rng.choice(len(pp), size=shots, replace=False)])
        pred = LinearProbe(seed=seed).fit(train_x[idx], train_y[idx]).predict(test_x)
        accs.append(float(np.mean(pred == test_y)))
    return bootstrap_metric(accs, n_boot=n_boot, seed=seed, proportion=False)


def adapt_k(k: int, train_labels, setting: str = "k") -> tuple[int, dict[str, Any] | None]:
    """k for a kNN on these training labels: the asked k, or — when the smallest class has fewer training items
    than that — the smallest class's count (a class must be able to fill the vote), with the record of the change."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if (counts > 0).any() else 1
    if k <= smallest:
        return k, None
    used = max(1, smallest)
    return used, {"asked": k, "used": used,
                  "why": f"the smallest class has {smallest} training item(s), fewer than {setting}={k}"}


def adapt_shots(shots, train_labels) -> tuple[list[int], dict[str, Any] | None]:
    """The few-shot sizes every class can fill from these training labels, with the record of those left out."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if (counts > 0).any() else 0
    kept = [s for s in shots if s <= smallest]
    if len(kept) == len(list(shots)):
        return kept, None
    return kept, {"asked": list(shots), "used": kept,
                  "why": f"the smallest class has {smallest} training item(s); larger shot counts cannot be drawn"}


def describe_adapted(adapted: dict[str, dict[str, Any]]) -> list[str]:
    """One line per setting that was scaled down to the data."""
    return [f"{name} scaled down to the data: {a['asked']} → {a['used']} ({a['why']})" for name, a in adapted.items()]
