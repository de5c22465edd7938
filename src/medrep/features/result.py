"""What a feature-distribution analysis found: :class:`FeaturesResult` (per model, per pair of models)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrep.features.similarity import PairSimilarity
from medrep.results import Result

# the keys every model gets in results.json (few-shot keys are added per shot count)
MODEL_METRICS = ("knn_accuracy", "linear_probe_accuracy", "linear_probe_auc", "silhouette", "davies_bouldin",
                 "calinski_harabasz", "fisher_ratio")


@dataclass
class FeaturesResult(Result):
    kind: str = "features"
    classes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # a multi-label set: metrics are per-finding probe AUROCs
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    centroid_cosine: dict[str, np.ndarray] = field(default_factory=dict)
    pairs: list[PairSimilarity] = field(default_factory=list)
    projections: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    subgroups: Any = None  # medrep.subgroups.result.SubgroupResult with --by

    def model_table(self) -> list[dict[str, Any]]:
        rows = []
        for name, m in self.models.items():
            row: dict[str, Any] = {"model": name, "dim": m["dim"], "n_train": m["n_train"], "n_test": m["n_test"]}
            for key, metric in m["metrics"].items():
                row[key] = metric.value
                row[f"{key}_low"] = metric.low
                row[f"{key}_high"] = metric.high
            rows.append(row)
        return rows

    def pair_table(self) -> list[dict[str, Any]]:
        rows = []
        for p in self.pairs:
            rows.append({"a": p.a, "b": p.b, "cka": p.cka.value, "cka_low": p.cka.low, "cka_high": p.cka.high,
                         "cka_p_value": p.cka_p_value, "cka_null_mean": p.cka_null_mean,
                         "mutual_knn": p.mutual_knn.value, "mutual_knn_low": p.mutual_knn.low,
                         "mutual_knn_high": p.mutual_knn.high, "mutual_knn_p_value": p.mutual_knn_p_value,
                         "mutual_knn_null_mean": p.mutual_knn_null_mean, "n": p.mutual_knn.n, "cka_rows": p.cka.n,
                         # above compare_spaces' max_items, CKA and its interval / null are of a subsample
                         **({"cka_all_rows": p.extra["cka_all_rows"]} if "cka_all_rows" in p.extra else {})})
        return rows

    def cka_matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        names = list(self.models)
        pos = {n: i for i, n in enumerate(names)}
        cka = np.eye(len(names))
        pval = np.zeros((len(names), len(names)))
        for p in self.pairs:
            i, j = pos[p.a], pos[p.b]
            cka[i, j] = cka[j, i] = p.cka.value
            pval[i, j] = pval[j, i] = p.cka_p_value
        return names, cka, pval

    def to_dict(self) -> dict[str, Any]:
        self.metrics = {f"{name}/{k}": v for name, m in self.models.items() for k, v in m["metrics"].items()}
        self.tables = {"models": self.model_table(), "pairs": self.pair_table()}
        out = super().to_dict()
        out["classes"] = self.classes
        if self.findings:
            out["findings"] = self.findings
        out["models"] = {
            name: {**{k: v.to_dict() for k, v in m["metrics"].items()},
                   "centroid_cosine": np.round(self.centroid_cosine[name], 6).tolist(),
                   **{k: m[k] for k in ("dim", "n_train", "n_test", "encoder", "layer", "cache_keys")}}
            for name, m in self.models.items()}
        out["pairs"] = [p.to_dict() for p in self.pairs]
        out["settings"] = self.settings
        if self.subgroups is not None:
            out["subgroups"] = self.subgroups.to_dict()
            out["settings"]["subgroups"] = self.subgroups.settings
        return out
