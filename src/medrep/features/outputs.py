"""The features analysis's files (results.json, models.csv, pairs.csv, centroid_cosine.csv, PNGs) and its
terminal table."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medrep.features.registry import PROJECTIONS
from medrep.features.result import MODEL_METRICS, FeaturesResult
from medrep.io import slug


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of dicts as CSV (columns in order of first appearance), through medrep's one CSV writer."""
    from medrep.io import write_csv_atomic

    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return write_csv_atomic(path, cols, ([r.get(c) for c in cols] for r in rows))


def write_features_outputs(result: FeaturesResult, out_dir: str | Path) -> dict[str, Path]:
    """results.json, models.csv, pairs.csv, centroid_cosine.csv and the PNGs; returns {figure name: path}."""
    from medrep.features.figures import heatmap, scatter_by_class
    from medrep.io import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result.to_dict())
    write_csv(out / "models.csv", result.model_table())
    if result.pairs:
        write_csv(out / "pairs.csv", result.pair_table())
    write_csv(out / "centroid_cosine.csv", [
        {"model": name, "class": result.classes[i], **{c: float(m[i, j]) for j, c in enumerate(result.classes)}}
        for name, m in result.centroid_cosine.items() for i in range(m.shape[0])])
    figures: dict[str, Path] = {}
    for name, projs in result.projections.items():
        for method, (coords, labels) in projs.items():
            title = f"{name}: {PROJECTIONS.meta(method, 'title', method)} of test embeddings"
            figures[f"{method}:{name}"] = scatter_by_class(coords, labels, result.classes, title,
                                                           out / f"{method}_{slug(name)}.png")
    for name, m in result.centroid_cosine.items():
        if not m.size:
            continue
        figures[f"centroid_cosine:{name}"] = heatmap(m, result.classes, result.classes,
                                                     f"{name}: class-centroid cosine", out / f"centroid_cosine_{slug(name)}.png",
                                                     vmin=-1, vmax=1)
    if result.pairs:
        names, cka, pval = result.cka_matrix()
        ann = np.array([[f"{cka[i, j]:.2f}" + ("" if i == j else ("*" if pval[i, j] < 0.01 else " (ns)"))
                         for j in range(len(names))] for i in range(len(names))])
        figures["cka"] = heatmap(cka, names, names, "linear CKA (* p < 0.01 vs permutation null)", out / "cka_heatmap.png",
                                 vmin=0, vmax=1, annotations=ann)
    if result.subgroups is not None:
        from medrep.subgroups.outputs import write_subgroup_outputs

        overall = {f"{name}/{k}": v for name, m in result.models.items() for k, v in m["metrics"].items()}
        figures.update(write_subgroup_outputs(result.subgroups, out, overall, list(result.models)))
    return figures


def format_model_table(result: FeaturesResult) -> str:
    """A plain-text table of the headline metrics, one row per model, for the terminal."""
    keys = [k for k in MODEL_METRICS] + sorted({k for m in result.models.values() for k in m["metrics"]
                                                 if k.startswith("few_shot")}, key=lambda s: int(s.split("_")[2]))
    if result.findings:  # a multi-label set: one probe AUROC per finding and their macro mean
        keys = ["macro_auroc", *(f"auroc/{f}" for f in result.findings)]
    short = {"knn_accuracy": "kNN acc", "linear_probe_accuracy": "linear acc", "linear_probe_auc": "linear AUC",
             "silhouette": "silhouette", "davies_bouldin": "Davies-B.", "calinski_harabasz": "Calinski-H.",
             "fisher_ratio": "Fisher"}
    labels = [short.get(k, k.replace("few_shot_", "").replace("_accuracy", "-shot acc")) for k in keys]
    labels = ["macro AUROC" if k == "macro_auroc" else lab.replace("auroc/", "AUROC ") for k, lab in zip(keys, labels)]
    width = max(14, *(len(lab) for lab in labels))
    lines = []
    for key, label in zip(keys, labels):
        cells = [f"{label:<{width}}"]
        for name, m in result.models.items():
            met = m["metrics"].get(key)
            # a finding with one class in train or test has no probe AUROC
            text = "—" if met is None or met.value != met.value else str(met)
            cells.append(f"{text:>32}")
        lines.append(" ".join(cells))
    header = " ".join([f"{'metric':<{width}}"] + [f"{n:>32}" for n in result.models])
    out = [header, *lines]
    for p in result.pairs:
        rows = (f" on {p.cka.n} of {p.mutual_knn.n} items, all items {p.extra['cka_all_rows']:.4g}"
                if "cka_all_rows" in p.extra else "")
        out.append(f"{p.a} vs {p.b}: CKA {p.cka} (p = {p.cka_p_value:.3g}, null mean {p.cka_null_mean:.3f}{rows}); "
                   f"mutual kNN@{p.k} {p.mutual_knn} (p = {p.mutual_knn_p_value:.3g}, null mean {p.mutual_knn_null_mean:.3f})")
    return "\n".join(out)
