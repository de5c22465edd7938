"""The shortcut check: does the label probe lean on an attribute?

Where an attribute and the label are correlated (one scanner sees more malignant cases), a probe can learn
the attribute instead of the disease.  It is then right on the common attribute–label combinations and
wrong on the rare ones.  Re-weighting the test items by P(a)·P(y) / P(a, y) builds an evaluation set in
which attribute and label are independent; the probe's accuracy there, against its accuracy on the test
set as it is, measures what the correlation was worth to it.  A drop whose 95% interval excludes zero (and
that reaches ``min_drop``) flags the attribute as a likely shortcut.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from medrep.subgroups.stats import ItemFigure, UNKNOWN, interval, subgroup_names


def independence_weights(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """w(a, y) = P(a) · P(y) / P(a, y), from the items' own frequencies (zero where a cell is empty)."""
    n = len(labels)
    w = np.zeros(n)
    if n == 0:
        return w
    for a in np.unique(groups):
        in_a = groups == a
        for y in np.unique(labels):
            cell = in_a & (labels == y)
            if cell.any():
                w[cell] = (in_a.mean() * (labels == y).mean()) / cell.mean()
    return w


def reweighted_drop(correct: np.ndarray, groups: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> float:
    c, g, y = correct[idx], groups[idx], labels[idx]
    w = independence_weights(g, y)
    if w.sum() <= 0:
        return float("nan")
    return float(c.mean() - (w * c).sum() / w.sum())


def shortcut_check(correct: np.ndarray, groups: np.ndarray, labels: np.ndarray, patients: np.ndarray | None,
                   n_boot: int, min_drop: float, seed: int) -> dict[str, Any] | None:
    """Label-probe accuracy overall, inside each subgroup and re-weighted to independence; the drop and the flag."""
    known = np.flatnonzero(groups != UNKNOWN)
    names = subgroup_names(groups)
    if len(names) < 2:
        return None
    correct = np.asarray(correct, dtype=np.float64)
    g, y = groups[known], np.asarray(labels)[known]
    pats = patients[known] if patients is not None else None
    acc = ItemFigure("accuracy", values=correct[known])
    local = np.arange(len(known))
    weights = independence_weights(g, y)
    reweighted = ItemFigure("reweighted_accuracy",
                            fn=lambda i: float((independence_weights(g[i], y[i]) * acc.values[i]).sum()
                                               / max(independence_weights(g[i], y[i]).sum(), 1e-12)))
    drop = ItemFigure("drop", fn=lambda i: reweighted_drop(acc.values, g, y, i))
    drop_metric = interval(drop, local, pats, n_boot, seed)
    flagged = bool(drop_metric.low is not None and drop_metric.low > 0 and drop_metric.value >= min_drop)
    return {"accuracy": interval(acc, local, pats, n_boot, seed),
            "by_group": {a: interval(acc, np.flatnonzero(g == a), pats, n_boot, seed) for a in names},
            "reweighted_accuracy": interval(reweighted, local, pats, n_boot, seed),
            "drop": drop_metric, "flagged": flagged,
            "max_weight": float(weights.max()) if len(weights) else None}
