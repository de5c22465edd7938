"""Writers for the subgroup analysis: CSV tables, a forest plot per model, a terminal table and the
plain-language reading."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from medrep.io import write_csv_atomic
from medrep.results import Metric
from medrep.subgroups.result import SubgroupResult

FIGURE_WORDS = {"knn_accuracy": "kNN accuracy", "linear_probe_accuracy": "linear-probe accuracy",
                "linear_probe_auc": "linear-probe AUC", "attacked_accuracy": "attacked accuracy",
                "clean_accuracy": "clean accuracy", "pointing": "pointing game"}


def figure_words(key: str) -> str:
    """``demo-cnn/linear_probe_accuracy`` → "linear-probe accuracy" (the model is named elsewhere)."""
    last = key.rsplit("/", 1)[-1]
    return FIGURE_WORDS.get(last, last.replace("_", " "))


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return write_csv_atomic(path, cols, ([r.get(c) for c in cols] for r in rows))  # subgroup names are user data


def group_rows(result: SubgroupResult) -> list[dict[str, Any]]:
    """One row per attribute, subgroup and figure: value, interval, n, too small; and the figure's gap and p."""
    rows = []
    for a in result.attributes.values():
        for f, b in a.figures.items():
            for g, d in b["groups"].items():
                m: Metric = d["metric"]
                rows.append({"attribute": a.name, "subgroup": g, "figure": f, "value": m.value, "low": m.low,
                             "high": m.high, "n": d["n"], "too_small": d["too_small"], "gap": b["gap"],
                             "gap_p": b["gap_p"]})
    return rows


def separability_rows(result: SubgroupResult) -> list[dict[str, Any]]:
    """One row per attribute and model: probe AUROC with interval and null p, KS counts, the shortcut check."""
    rows = []
    for a in result.attributes.values():
        for model in dict.fromkeys([*a.separability, *a.shortcut]):
            s, c = a.separability.get(model, {}), a.shortcut.get(model, {})
            auc: Metric | None = s.get("auroc")
            drop: Metric | None = c.get("drop")
            rows.append({"model": model, "attribute": a.name,
                         "attribute AUROC": auc.value if auc else None, "AUROC low": auc.low if auc else None,
                         "AUROC high": auc.high if auc else None, "AUROC p (permutation)": s.get("p_value"),
                         "KS significant": f"{s.get('ks_significant', 0)}/{s.get('ks_tests', 0)}",
                         "accuracy": c["accuracy"].value if c else None,
                         "re-weighted accuracy": c["reweighted_accuracy"].value if c else None,
                         "drop": drop.value if drop else None, "drop low": drop.low if drop else None,
                         "drop high": drop.high if drop else None, "shortcut": c.get("flagged") if c else None})
    return rows


def forest_plot(result: SubgroupResult, model: str, overall: dict[str, Metric], path: str | Path,
                title: str | None = None) -> Path | None:
    """Each subgroup's figure with its 95% interval (hollow grey: too small to judge), one panel per figure of
    ``model`` (keys ``model/figure``), the overall figure as a dashed line."""
    from medrep.features.figures import _plt

    keys = [f for f in dict.fromkeys(f for a in result.attributes.values() for f in a.figures)
            if f.startswith(f"{model}/") or f == model]
    if not keys:
        return None
    rows = [(a.name, g) for a in result.attributes.values() for g in a.groups]
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(2.2 + 2.6 * len(keys), 0.9 + 0.32 * len(rows)), dpi=120,
                             sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for y, (attr, g) in enumerate(rows):
            d = result.attributes[attr].figures.get(key, {}).get("groups", {}).get(g)
            if d is None or d["metric"].value != d["metric"].value:
                continue
            m = d["metric"]
            err = None if m.low is None else [[m.value - m.low], [m.high - m.value]]
            colour = "#999999" if d["too_small"] else "#1f4e79"
            ax.errorbar(m.value, y, xerr=err, fmt="o", color=colour, mfc="white" if d["too_small"] else colour,
                        capsize=3, ms=5)
        if key in overall and overall[key].value == overall[key].value:
            ax.axvline(overall[key].value, color="#c0392b", ls="--", lw=1, label="overall")
        ax.set_title(figure_words(key), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=9)
    axes[0][0].set_yticks(range(len(rows)), labels=[f"{a}: {g} (n={result.attributes[a].groups[g]['n']})" for a, g in rows])
    axes[0][0].invert_yaxis()
    fig.suptitle(title or f"{model}: figures by subgroup (95% CI; dashed: overall)", fontsize=10)
    fig.tight_layout()
    from medrep.plotting import label_px_metadata

    fig.savefig(path, metadata=label_px_metadata(axes[0][0].get_yticklabels(), fig.dpi))
    plt.close(fig)
    return Path(path)


def write_group_table(result: SubgroupResult, out_dir: str | Path) -> Path:
    """subgroups.csv: one row per attribute, subgroup and figure (for commands without embeddings)."""
    return _write_csv(Path(out_dir) / "subgroups.csv", group_rows(result))


def write_subgroup_outputs(result: SubgroupResult, out_dir: str | Path, overall: dict[str, Metric],
                           models: list[str]) -> dict[str, Path]:
    """subgroups.csv, separability.csv and forest_<model>.png; returns {figure name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "subgroups.csv", group_rows(result))
    _write_csv(out / "separability.csv", separability_rows(result))
    figures = {}
    for model in models:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
        path = forest_plot(result, model, overall, out / f"forest_{safe}.png")
        if path is not None:
            figures[f"forest:{model}"] = path
    return figures


def _m(metric: Metric) -> str:
    """A figure with its interval at three decimals, as the report's tables show it."""
    if metric.low is None or metric.high is None:
        return _fmt(metric.value)
    return f"{metric.value:.3f} [{metric.low:.3f}, {metric.high:.3f}]"


def _gap_sentence(a: Any, model: str) -> str | None:
    keys = [f for f in a.figures if f.startswith(f"{model}/") or f == model]
    key = next((k for k in keys if k.endswith("linear_probe_accuracy")), keys[0] if keys else None)
    b = a.figures.get(key) if key else None
    if not b or b["gap"] is None:
        return None
    worst, best = b["worst"], b["best"]
    beyond = b["gap_p"] is not None and b["gap_p"] < 0.05
    return (f"{figure_words(key)} is {b['groups'][worst]['metric'].value:.3f} for {worst} against "
            f"{b['groups'][best]['metric'].value:.3f} for {best} (gap {b['gap']:.3f}, p = {_fmt(b['gap_p'])}: "
            + ("beyond chance" if beyond else "within chance") + ")")


def _separability_sentence(a: Any, s: dict[str, Any] | None, permutations: int | None) -> str | None:
    if not s or "auroc" not in s:
        return None
    auc, p = s["auroc"], s.get("p_value")
    above = auc.low is not None and auc.low > 0.5
    floor = 1 / (1 + permutations) if permutations else None
    if above and (p or 1) < 0.05:
        verdict = f"{a.name} can be read from the embeddings"
    elif above and floor is not None and floor >= 0.05:
        verdict = (f"{a.name} looks readable from the embeddings, but {permutations} permutations cannot give p below "
                   f"{floor:.2f}: too few to call it")
    else:
        verdict = f"{a.name} cannot be read from the embeddings"
    return (f"{verdict} (probe AUROC {_m(auc)}, permutation p = {_fmt(p)}; {s['ks_significant']} of {s['ks_tests']} "
            "KS tests significant after Holm)")


def readings(result: SubgroupResult, models: list[str]) -> list[str]:
    """A plain-language paragraph per model and attribute: where it fails and whether the gap is beyond chance,
    whether the embeddings encode the attribute, and whether the probe leans on it."""
    out = []
    permutations = result.settings.get("separability_permutations")
    for model in models:
        for a in result.attributes.values():
            c = a.shortcut.get(model)
            said = [x for x in (_gap_sentence(a, model), _separability_sentence(a, a.separability.get(model), permutations))
                    if x]
            if c:
                said.append(f"re-weighting the test set so that {a.name} and the class are independent moves the probe's "
                            f"accuracy from {c['accuracy'].value:.3f} to {c['reweighted_accuracy'].value:.3f} (drop "
                            f"{_m(c['drop'])}): " + (f"{a.name} is a likely shortcut" if c["flagged"] else "no sign of a shortcut"))
            if said:
                out.append(f"{model}, by {a.name}: " + "; ".join(said) + ".")
    return out


def format_subgroup_table(result: SubgroupResult) -> str:
    """A terminal table: per attribute and figure, each subgroup's figure, then the gap and its p-value; then
    separability and the shortcut flag per model."""
    lines = []
    for a in result.attributes.values():
        for f, b in a.figures.items():
            cells = [f"{g} {d['metric']}{' (too small)' if d['too_small'] else ''} n={d['n']}" for g, d in b["groups"].items()]
            lines.append(f"{a.name:<8} {f:<40} " + " | ".join(cells)
                         + f"  gap {_fmt(b['gap'])} (p = {_fmt(b['gap_p'])})")
    for row in separability_rows(result):
        lines.append(f"{row['attribute']:<8} {row['model']:<40} attribute AUROC {_fmt(row['attribute AUROC'])} "
                     f"[{_fmt(row['AUROC low'])}, {_fmt(row['AUROC high'])}] p = {_fmt(row['AUROC p (permutation)'])}; "
                     f"KS {row['KS significant']}; re-weighted drop {_fmt(row['drop'])}"
                     + (" → likely shortcut" if row["shortcut"] else ""))
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
