"""Subgroup separability: how well an attribute can be read from the embeddings.

- The attribute probe (Jones et al., MICCAI 2023): a logistic regression on the embeddings' leading
  principal components, cross-validated (patients kept within one fold where ids exist); its out-of-fold
  AUROC (macro one-vs-rest for more than two subgroups) with a 95% interval and a permutation null (the
  whole cross-validation refitted on shuffled attributes).
- The Glocker et al. (Radiology: AI 2023) test: two-sample Kolmogorov–Smirnov tests between subgroups on
  the leading PCA modes and on the disease probe's class scores, Holm-corrected within the attribute.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from medrep.features.neighbours import l2_normalise
from medrep.subgroups.stats import ItemFigure, UNKNOWN, holm, interval, macro_auc_fast as macro_auc, subgroup_names


def principal_components(x: np.ndarray, n_components: int) -> np.ndarray:
    """Scores on the leading principal components of the L2-normalised embeddings (unsupervised: no label or
    attribute is seen, so fitting it on every item leaks nothing into the probe's folds)."""
    from sklearn.decomposition import PCA

    xn = l2_normalise(np.asarray(x, dtype=np.float32)).astype(np.float64)
    k = max(1, min(n_components, xn.shape[1], xn.shape[0] - 1))
    return PCA(n_components=k, svd_solver="full").fit_transform(xn)


def _folds(y: np.ndarray, patients: np.ndarray | None, folds: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if patients is not None:
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y, patients)
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y)


def cross_validated_scores(z: np.ndarray, y: np.ndarray, patients: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold class probabilities (n, n_classes) of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    n_classes = int(y.max()) + 1
    out = np.full((len(y), n_classes), np.nan)
    for train, test in _folds(y, patients, folds, seed):
        if np.unique(y[train]).size < n_classes:  # a fold without some subgroup cannot score it
            continue
        scaler = StandardScaler().fit(z[train])
        model = LogisticRegression(max_iter=500).fit(scaler.transform(z[train]), y[train])
        out[test] = model.predict_proba(scaler.transform(z[test]))
    return out


def attribute_probe(z: np.ndarray, groups: np.ndarray, patients: np.ndarray | None, folds: int, n_boot: int,
                    n_permutations: int, seed: int) -> dict[str, Any] | None:
    """Cross-validated AUROC of the attribute from the components ``z``, its interval and permutation p-value."""
    known = np.flatnonzero(groups != UNKNOWN)
    names = subgroup_names(groups)
    if len(names) < 2:
        return None
    y = np.searchsorted(np.asarray(names, dtype=object), groups[known]).astype(np.int64)
    pats = patients[known] if patients is not None else None
    folds = int(min(folds, np.bincount(y).min()))
    if folds < 2:
        return None
    classes = np.arange(len(names))
    zk = z[known]
    scores = cross_validated_scores(zk, y, pats, folds, seed)
    ok = np.flatnonzero(np.isfinite(scores).all(axis=1))
    y_ok, scores_ok = y[ok], scores[ok]
    auc = ItemFigure("attribute_auroc", fn=lambda i: macro_auc(y_ok[i], scores_ok[i], classes))
    metric = interval(auc, np.arange(len(ok)), pats[ok] if pats is not None else None, n_boot, seed)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(n_permutations):
        yp = y[rng.permutation(len(y))]
        sp = cross_validated_scores(zk, yp, pats, folds, seed)
        good = np.isfinite(sp).all(axis=1)
        null.append(macro_auc(yp[good], sp[good], classes))
    null_arr = np.asarray([v for v in null if np.isfinite(v)])
    p = (1 + int((null_arr >= metric.value).sum())) / (1 + len(null_arr)) if len(null_arr) else None
    return {"auroc": metric, "p_value": p, "null_mean": float(null_arr.mean()) if len(null_arr) else None,
            "n_permutations": int(len(null_arr)), "folds": folds, "groups": names}


def ks_tests(pcs: np.ndarray, disease_scores: np.ndarray, class_names: list[str], groups: np.ndarray,
             alpha: float) -> list[dict[str, Any]]:
    """Two-sample KS between subgroups (two subgroups: one against the other; more: each against the rest) on each
    PCA mode and each class score of the disease probe; p-values Holm-adjusted over all of the attribute's tests."""
    from scipy.stats import ks_2samp

    names = subgroup_names(groups)
    if len(names) < 2:
        return []
    contrasts = [(names[0], names[1])] if len(names) == 2 else [(g, "rest") for g in names]
    features = [(f"PC{j + 1}", pcs[:, j]) for j in range(pcs.shape[1])]
    features += [(f"score:{c}", disease_scores[:, k]) for k, c in enumerate(class_names)]
    tests = []
    for a, b in contrasts:
        in_a = groups == a
        in_b = (groups == b) if b != "rest" else (~in_a & (groups != UNKNOWN))
        if in_a.sum() < 1 or in_b.sum() < 1:
            continue
        for feature, values in features:
            res = ks_2samp(values[in_a], values[in_b])
            tests.append({"feature": feature, "a": a, "b": b, "statistic": float(res.statistic),
                          "p_value": float(res.pvalue), "n_a": int(in_a.sum()), "n_b": int(in_b.sum())})
    for t, adj in zip(tests, holm([t["p_value"] for t in tests])):
        t["p_holm"] = adj
        t["significant"] = bool(adj < alpha)
    return tests
