"""The statistics behind the subgroup analysis: intervals (patient-clustered where ids exist), per-group
figures, the largest gap with a within-class permutation test, age bins and Holm's correction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from medrep.data.ages import UNKNOWN, age_in_years, bin_ages  # noqa: F401  (re-exported: one definition of a band)
from medrep.intervals import bootstrap_metric, bootstrap_paired, cluster_bootstrap_metric
from medrep.results import Metric


@dataclass
class ItemFigure:
    """A headline figure over a set of items: either the mean of per-item ``values`` (an accuracy from 0/1
    correctness, a pointing-game hit rate, a per-image score) or ``fn(indices)`` for set statistics (AUC)."""

    name: str
    values: np.ndarray | None = None
    fn: Callable[[np.ndarray], float] | None = None

    def __post_init__(self) -> None:
        if (self.values is None) == (self.fn is None):
            raise ValueError("an ItemFigure needs exactly one of values and fn")
        if self.values is not None:
            self.values = np.asarray(self.values, dtype=np.float64)

    def on(self, idx: np.ndarray) -> float:
        if self.values is not None:
            return float(self.values[idx].mean()) if len(idx) else float("nan")
        return float(self.fn(idx))


def interval(figure: ItemFigure, idx: np.ndarray, patients: np.ndarray | None, n_boot: int, seed: int) -> Metric:
    """The figure on items ``idx`` with its 95% interval: patients resampled whole where ids exist; else the
    items (a proportion of 0/1 outcomes gets the Wilson interval, as everywhere in medrep)."""
    idx = np.asarray(idx)
    if len(idx) == 0:
        return Metric(float("nan"), None, None, 0)
    if patients is not None:
        return cluster_bootstrap_metric(lambda i: figure.on(idx[i]), patients[idx], n_boot=n_boot, seed=seed)
    if figure.values is not None:
        return bootstrap_metric(figure.values[idx], n_boot=n_boot, seed=seed)
    return bootstrap_paired(lambda i: figure.on(idx[i]), len(idx), n_boot=n_boot, seed=seed)


def subgroup_names(groups: np.ndarray) -> list[str]:
    return sorted({str(g) for g in groups if str(g) != UNKNOWN})


def _gap(values: dict[str, float]) -> float:
    finite = [v for v in values.values() if np.isfinite(v)]
    return float(max(finite) - min(finite)) if len(finite) >= 2 else float("nan")


def shuffle_within_class(groups: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The attribute permuted among items of the same class: prevalence differences between subgroups survive,
    so a subgroup that merely holds more of a hard class does not fake a gap."""
    out = groups.copy()
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        out[idx] = groups[rng.permutation(idx)]
    return out


def gap_permutation_p(figure: ItemFigure, groups: np.ndarray, labels: np.ndarray, judged: list[str],
                      observed: float, n_permutations: int, seed: int) -> float | None:
    """P-value of the largest gap between the ``judged`` subgroups under within-class shuffles of the attribute:
    (1 + #{shuffled gap ≥ observed}) / (1 + shuffles), which is valid at any number of shuffles."""
    if len(judged) < 2 or not np.isfinite(observed) or n_permutations < 1:
        return None
    known = np.flatnonzero(np.isin(groups, judged))
    g, y = groups[known], labels[known]
    rng = np.random.default_rng(seed)
    codes = np.searchsorted(np.asarray(judged, dtype=object), g)  # judged is sorted
    exceed = 0
    tol = 1e-12 * max(1.0, abs(observed))  # the observed gap recomputed must count as reached
    for _ in range(n_permutations):
        perm = shuffle_within_class(codes, y, rng)
        if figure.values is not None:
            sums = np.bincount(perm, weights=figure.values[known], minlength=len(judged))
            counts = np.bincount(perm, minlength=len(judged))
            means = sums / np.maximum(counts, 1)
            gap = float(means.max() - means.min())
        else:
            gap = _gap({str(k): figure.on(known[perm == k]) for k in range(len(judged))})
        exceed += int(gap >= observed - tol)
    return (1 + exceed) / (1 + n_permutations)


def breakdown(figure: ItemFigure, groups: np.ndarray, labels: np.ndarray, patients: np.ndarray | None,
              min_group_size: int, n_boot: int, n_permutations: int, seed: int) -> dict:
    """One figure by subgroup: per group {n, figure with interval, too_small}; the gap between the best and worst
    subgroup large enough to judge, and its within-class permutation p-value."""
    groups = np.asarray(groups, dtype=object).astype(str)
    labels = np.asarray(labels)
    if figure.values is not None and not np.isfinite(figure.values).all():
        # an item without a score (a NaN) belongs to no subgroup for this figure
        groups = np.where(np.isfinite(figure.values), groups, UNKNOWN).astype(object)
        figure = ItemFigure(figure.name, values=np.nan_to_num(figure.values))
    per_group: dict[str, dict] = {}
    for name in subgroup_names(groups):
        idx = np.flatnonzero(groups == name)
        per_group[name] = {"n": int(len(idx)), "metric": interval(figure, idx, patients, n_boot, seed),
                           "too_small": bool(len(idx) < min_group_size)}
    judged = [g for g, d in per_group.items() if not d["too_small"]]
    values = {g: per_group[g]["metric"].value for g in judged}
    gap = _gap(values)
    p = gap_permutation_p(figure, groups, labels, judged, gap, n_permutations, seed)
    order = sorted(values, key=lambda g: values[g]) if values else []
    return {"groups": per_group, "gap": None if not np.isfinite(gap) else gap, "gap_p": p,
            "worst": order[0] if len(order) >= 2 else None, "best": order[-1] if len(order) >= 2 else None}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (controls the family-wise error rate; no independence assumed)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def is_age_attribute(name: str, values: np.ndarray) -> bool:
    """An attribute is binned as an age when it is called age (age, age_approx, PatientAge …) and its known
    values read as ages."""
    if "age" not in name.lower():
        return False
    known = [v for v in values if str(v) != UNKNOWN]
    return bool(known) and all(age_in_years(v) is not None for v in known)


def rank_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as P(positive scores above negative) + ½ P(tie) — the Mann–Whitney statistic, equal to
    scikit-learn's roc_auc_score without its per-call validation, which dominates when an AUC is resampled
    thousands of times."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    neg = np.sort(scores[~positive])
    pos = scores[positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


def macro_auc_fast(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Macro one-vs-rest AUC as :func:`medrep.features.probes.macro_auc` computes it (NaN when a class is absent)."""
    y = np.asarray(y)
    classes = np.asarray(classes)
    if classes.size < 2 or not np.isin(classes, y).all():
        return float("nan")
    if classes.size == 2:
        return rank_auc(y == classes[1], proba[:, 1])
    return float(np.mean([rank_auc(y == c, proba[:, k]) for k, c in enumerate(classes)]))
