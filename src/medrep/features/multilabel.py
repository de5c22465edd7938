"""Multi-label findings (CheXpert, MIMIC-CXR, NIH ChestX-ray14): one linear probe per finding, fitted one-vs-rest
on the train embeddings, scored by ROC AUC on the test embeddings, and the macro mean over findings — the
figures CheXpert / MIMIC users report.  Images whose label a finding's policy leaves unused (NaN: uncertain
under U-Ignore, blank under blank=ignore) are left out of that finding's fit and score.

Intervals: one bootstrap over the test images (whole patients when the source has patient ids), the same
resample for every finding, so the macro mean's interval is of the mean itself.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from medrep.features.probes import LinearProbe
from medrep.intervals import CLUSTER_INTERVAL, cluster_members, is_clustered, percentile_bounds
from medrep.results import Metric


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))


def finding_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   seed: int = 0) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(N_test, F) positive-class probabilities of one probe per finding (NaN columns where a finding has
    only one class among the usable train labels), and (finding index, why) for each such finding."""
    scores = np.full(test_y.shape, np.nan)
    notes = []
    for j in range(train_y.shape[1]):
        use = ~np.isnan(train_y[:, j])
        y = train_y[use, j].astype(np.int64)
        if np.unique(y).size < 2:
            notes.append((j, f"the train split has {'no usable labels' if not y.size else 'one class only'}: no probe"))
            continue
        probe = LinearProbe(seed=seed).fit(train_x[use], y)
        scores[:, j] = probe.predict_proba(test_x)[:, list(probe.classes_).index(1)]
    return scores, notes


def finding_aurocs(test_y: np.ndarray, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-finding AUROC on test rows ``rows`` (all when None), over the rows with a usable label."""
    idx = np.arange(len(test_y)) if rows is None else rows
    out = np.full(test_y.shape[1], np.nan)
    for j in range(test_y.shape[1]):
        y, s = test_y[idx, j], scores[idx, j]
        ok = ~np.isnan(y) & ~np.isnan(s)
        out[j] = _auc(y[ok].astype(np.int64), s[ok])
    return out


def auroc_metrics(test_y: np.ndarray, scores: np.ndarray, findings: Sequence[str], n_boot: int = 200, seed: int = 0,
                  groups: np.ndarray | None = None, confidence: float = 0.95) -> dict[str, Metric]:
    """``auroc/<finding>`` per finding and ``macro_auroc`` (mean over findings with a finite AUROC), each with
    a percentile-bootstrap interval from the same resamples of the test images (of patients with ``groups``)."""
    n = len(test_y)
    point = finding_aurocs(test_y, scores)
    rng = np.random.default_rng(seed)
    clustered = is_clustered(groups, n)
    members = cluster_members(groups) if clustered else None
    boots = np.full((n_boot, len(findings)), np.nan)
    for b in range(n_boot):
        if members is not None:
            rows = np.concatenate([members[k] for k in rng.integers(0, len(members), size=len(members))])
        else:
            rows = rng.integers(0, n, size=n)
        boots[b] = finding_aurocs(test_y, scores, rows)
    kind = (CLUSTER_INTERVAL, len(members)) if members is not None else (None, None)

    def metric(value: float, samples: np.ndarray, count: int) -> Metric:
        samples = samples[np.isfinite(samples)]
        if not np.isfinite(value) or samples.size < 2:
            return Metric(value, None, None, count, *kind)
        low, high = percentile_bounds(samples, confidence)
        return Metric(value, low, high, count, *kind)

    out = {f"auroc/{f}": metric(point[j], boots[:, j], int((~np.isnan(test_y[:, j])).sum()))
           for j, f in enumerate(findings)}
    finite = np.isfinite(point)
    with warnings.catch_warnings():  # a resample where every finding lost a class: that draw is dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_boots = np.nanmean(np.where(finite, boots, np.nan), axis=1) if finite.any() else np.full(n_boot, np.nan)
    out["macro_auroc"] = metric(float(point[finite].mean()) if finite.any() else float("nan"), macro_boots, n)
    return out


def run_multilabel_features(encoders, train, test, layers, pool=None, n_boot: int = 200, batch_size: int = 64,
                            cache=None, seed: int = 0, settings: dict[str, Any] | None = None):
    """Per model (and layer): per-finding probe AUROCs and their macro mean; per pair of models: CKA and
    mutual kNN as for single-label data."""
    from medrep.features.result import FeaturesResult
    from medrep.features.run import load_representations
    from medrep.features.similarity import compare_spaces
    from medrep.progress import progress_bar

    findings = list(train.findings)
    reps = load_representations(encoders, train, test, layers, pool=pool, batch_size=batch_size, cache=cache)
    train_y, test_y = train.finding_matrix, test.finding_matrix
    groups = test.patients
    result = FeaturesResult(classes=list(train.classes), findings=findings, settings={
        **(settings or {}), "seed": seed, "n_boot": n_boot, "layers": list(layers), "task": "multi-label",
        "n_images": len(test), "n_patients": None if groups is None else len(set(groups.tolist())),
        "intervals": "95%: percentile bootstrap over " + ("patients (cluster bootstrap)" if is_clustered(groups, len(test))
                                                           else "test images") + ", one resample for all findings"})
    notes: list[str] = []
    with progress_bar("features analysis", len(reps)) as bar:
        for rep in reps:
            scores, missing = finding_scores(rep.train.vectors, train_y, rep.test.vectors, test_y, seed=seed)
            notes += [f"{rep.name}: {findings[j]}: {why}" for j, why in missing]
            result.models[rep.name] = {
                "metrics": auroc_metrics(test_y, scores, findings, n_boot=n_boot, seed=seed, groups=groups),
                "dim": int(rep.test.vectors.shape[1]), "n_train": len(rep.train), "n_test": len(rep.test),
                "encoder": rep.test.meta.get("encoder"), "layer": rep.test.meta.get("layer"),
                "cache_keys": {"train": rep.train.key, "test": rep.test.key}}
            result.centroid_cosine[rep.name] = np.zeros((0, 0))
            bar.advance(1)
    for i in range(len(reps)):
        for j in range(i + 1, len(reps)):
            result.pairs.append(compare_spaces(reps[i].test.vectors, reps[j].test.vectors, reps[i].name, reps[j].name,
                                               n_boot=min(n_boot, 100), seed=seed))
    if notes:
        result.settings["notes"] = notes
    return result
