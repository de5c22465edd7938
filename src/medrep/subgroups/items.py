"""Subgroup breakdowns of analyses that score items one by one (attacks, explanations): their per-item
results, matched to the data's attributes by item id."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medrep.errors import MedrepError, Param
from medrep.subgroups.config import SubgroupConfig
from medrep.subgroups.result import SubgroupResult
from medrep.subgroups.run import SubgroupAnalysis, attribute_groups
from medrep.subgroups.stats import ItemFigure


def analysis_for_items(config: SubgroupConfig, dataset, ids: Sequence[str], labels: np.ndarray) -> SubgroupAnalysis:
    """A SubgroupAnalysis over the items ``ids`` of ``dataset`` (in that order)."""
    groups = attribute_groups(dataset, config.by, config.age_bins)
    position = {item: k for k, item in enumerate(dataset.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise MedrepError(f"{len(missing)} analysed item(s) are not in the data (first: {missing[0]})", where=Param("by"))
    idx = np.asarray([position[i] for i in ids], dtype=np.int64)
    patients = dataset.patients
    return SubgroupAnalysis(config, {k: v[idx] for k, v in groups.items()}, np.asarray(labels),
                            None if patients is None else patients[idx])


def attack_subgroups(result: Any, dataset, config: SubgroupConfig, norm: str) -> SubgroupResult:
    """Clean accuracy and attacked accuracy at each ε (the primary classifier's), by subgroup."""
    from medrep.robustness.outputs import format_eps

    first = result.per_eps[0]
    labels = first.column("label")
    primary = result.primary
    figures = [ItemFigure("clean_accuracy", values=first.column(f"{primary}_clean_pred") == labels)]
    for r in result.per_eps:
        figures.append(ItemFigure(f"attacked_accuracy at {format_eps(r.eps, norm)}",
                                  values=r.column(f"{primary}_attacked_pred") == labels))
    analysis = analysis_for_items(config, dataset, result.source_ids, labels.astype(np.int64))
    analysis.add_figures(figures)
    return analysis.result


def explain_subgroups(result: Any, dataset, config: SubgroupConfig) -> SubgroupResult:
    """Every method's every score (pointing game, IoU, mass, deletion / insertion AUC) by subgroup."""
    figures = [ItemFigure(f"{method}/{key}", values=np.asarray(values, dtype=np.float64))
               for method, scores in result.per_image.items() for key, values in scores.items()]
    analysis = analysis_for_items(config, dataset, result.ids, np.asarray(result.labels))
    analysis.add_figures(figures)
    return analysis.result
