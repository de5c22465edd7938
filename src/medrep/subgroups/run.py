"""Build a subgroup analysis from a command's own per-item figures and embeddings.

Commands call it the same way: ``attribute_groups`` reads the attributes named by ``--by`` from the data
(ages binned); ``SubgroupAnalysis.add_figures`` breaks any per-item figure down by subgroup;
``add_representation`` adds separability and the shortcut check for one model's embeddings."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medrep.errors import MedrepError, Param
from medrep.subgroups.config import SubgroupConfig
from medrep.subgroups.result import AttributeResult, SubgroupResult
from medrep.subgroups.separability import attribute_probe, ks_tests, principal_components
from medrep.subgroups.shortcut import shortcut_check
from medrep.subgroups.stats import UNKNOWN, ItemFigure, bin_ages, breakdown, is_age_attribute, subgroup_names


def attribute_groups(dataset, by: Sequence[str], age_bins: Sequence[float], where: str = Param("by")) -> dict[str, np.ndarray]:
    """{attribute: subgroup per item} for the attributes ``by``; numeric ages become bands at ``age_bins``."""
    available = list(getattr(dataset, "attribute_names", []) or [])
    out = {}
    for name in by:
        if name not in available:
            known = ", ".join(available) or "none (give CSV `attributes=` columns, a dataset recipe, DICOM headers or "\
                                              "demo?attributes=site,sex)"
            raise MedrepError(f"the data has no attribute {name!r} (available: {known})", where=where)
        values = np.asarray(dataset.attribute_values(name), dtype=object).astype(str)
        out[name] = bin_ages(values, tuple(age_bins)) if is_age_attribute(name, values) else values.astype(object)
    return out


class SubgroupAnalysis:
    """Accumulates one SubgroupResult over the figures and models of a run, on one fixed set of items."""

    def __init__(self, config: SubgroupConfig, groups: dict[str, np.ndarray], labels: np.ndarray,
                 patients: np.ndarray | None = None):
        self.config = config
        self.groups = {k: np.asarray(v, dtype=object).astype(str) for k, v in groups.items()}
        self.labels = np.asarray(labels)
        self.patients = None if patients is None else np.asarray(patients, dtype=object).astype(str)
        n = len(self.labels)
        for name, g in self.groups.items():
            if len(g) != n:
                raise MedrepError(f"{len(g)} values of {name!r} for {n} items", where="subgroups")
        self.result = SubgroupResult(settings={
            "min_group_size": config.min_group_size, "n_boot": config.n_boot, "n_permutations": config.n_permutations,
            "separability_permutations": config.separability_permutations, "folds": config.folds,
            "probe_dims": config.probe_dims, "pca_modes": config.pca_modes, "age_bins": list(config.age_bins),
            "alpha": config.alpha, "min_drop": config.min_drop,
            "intervals": "95%: " + ("patients resampled whole (cluster bootstrap)" if self.patients is not None
                                    else "bootstrap over items (Wilson for proportions)"),
            "gap_test": "the attribute shuffled within each class; p = (1 + #{shuffled gap >= observed}) / (1 + shuffles)"})
        for name, g in self.groups.items():
            attr = AttributeResult(name)
            for sub in subgroup_names(g):
                n_sub = int((g == sub).sum())
                attr.groups[sub] = {"n": n_sub, "too_small": n_sub < config.min_group_size}
            unknown = int((g == UNKNOWN).sum())
            if unknown:
                self.result.notes.append(f"{name}: {unknown} of {n} items have no value and belong to no subgroup")
            if len(attr.groups) < 2:
                self.result.notes.append(f"{name}: only one subgroup ({', '.join(attr.groups) or 'none'}); nothing to compare")
            self.result.attributes[name] = attr

    def add_figures(self, figures: Sequence[ItemFigure]) -> None:
        """Each figure by subgroup, with its interval, the gap between subgroups and its p-value."""
        c = self.config
        for name, g in self.groups.items():
            for k, fig in enumerate(figures):
                self.result.attributes[name].figures[fig.name] = breakdown(
                    fig, g, self.labels, self.patients, c.min_group_size, c.n_boot, c.n_permutations, c.seed + k)

    def add_representation(self, model: str, vectors: np.ndarray, class_scores: np.ndarray | None = None,
                           correct: np.ndarray | None = None, class_names: Sequence[str] = (),
                           probe_items: tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None] | None = None) -> None:
        """Separability of each attribute in ``vectors`` (and, with the disease probe's ``class_scores``, the KS
        tests on them) and, with the probe's per-item ``correct``, the shortcut check.  ``probe_items`` (vectors,
        {attribute: groups}, patients) gives the attribute probe more items than the analysed ones (e.g. train and
        test together: separability is a property of the space, and more items make it less noisy)."""
        c = self.config
        z = principal_components(vectors, max(c.probe_dims, c.pca_modes))
        zp, probe_groups, probe_patients = z, self.groups, self.patients
        if probe_items is not None:
            zp = principal_components(probe_items[0], c.probe_dims)
            probe_groups = {k: np.asarray(v, dtype=object).astype(str) for k, v in probe_items[1].items()}
            probe_patients = None if probe_items[2] is None else np.asarray(probe_items[2], dtype=object).astype(str)
        scores = np.zeros((len(self.labels), 0)) if class_scores is None else np.asarray(class_scores, dtype=np.float64)
        for name, g in self.groups.items():
            attr = self.result.attributes[name]
            probe = attribute_probe(zp[:, :c.probe_dims], probe_groups[name], probe_patients, c.folds, c.n_boot,
                                    c.separability_permutations, c.seed)
            tests = ks_tests(z[:, :c.pca_modes], scores, list(class_names)[:scores.shape[1]], g, c.alpha)
            if probe is not None or tests:
                attr.separability[model] = {**(probe or {}), "probe_items": int(len(zp)), "ks": tests,
                                            "ks_significant": sum(t["significant"] for t in tests), "ks_tests": len(tests)}
            if correct is not None:
                check = shortcut_check(correct, g, self.labels, self.patients, c.n_boot, c.min_drop, c.seed)
                if check is not None:
                    attr.shortcut[model] = check


def subgroup_figures(metric_values: dict[str, Any]) -> list[ItemFigure]:
    """ItemFigures from {name: per-item values or a fn(indices)}."""
    return [ItemFigure(k, fn=v) if callable(v) else ItemFigure(k, values=np.asarray(v)) for k, v in metric_values.items()]


def run_subgroups(config: SubgroupConfig, dataset, figures: dict[str, Any],
                  representations: Sequence[dict[str, Any]] = ()) -> SubgroupResult:
    """The whole analysis on ``dataset``'s items: ``figures`` {name: per-item values | fn(indices)};
    ``representations`` [{model, vectors, class_scores?, correct?, class_names?}]."""
    groups = attribute_groups(dataset, config.by, config.age_bins)
    analysis = SubgroupAnalysis(config, groups, np.asarray(dataset.labels), dataset.patients)
    analysis.add_figures(subgroup_figures(figures))
    for rep in representations:
        analysis.add_representation(**rep)
    return analysis.result
