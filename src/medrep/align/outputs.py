"""An alignment run's files: results.json, sweep.csv, prompts.csv and the accuracy-vs-anchors figure."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from medrep.align.result import METRIC_HELP, AlignResult


_CURVES = [  # (metric, label, style)
    ("target_accuracy", "target's own", dict(color="black", ls="--")),
    ("stitched_accuracy", "stitched (T)", dict(color="tab:blue")),
    ("relative_stitched_accuracy", "relative repr.", dict(color="tab:cyan")),
    ("shuffled_accuracy", "T on shuffled pairs", dict(color="tab:red", ls=":")),
    ("naive_accuracy", "naive (no T)", dict(color="tab:gray", ls=":")),
    ("zero_shot_accuracy", "caption alignment via T", dict(color="tab:green")),
    ("zero_shot_shuffled_accuracy", "caption alignment, shuffled pairs (mean)", dict(color="tab:orange", ls=":")),
    ("zero_shot_naive_accuracy", "caption alignment, naive", dict(color="tab:olive", ls=":")),
    ("native_zero_shot_accuracy", "native zero-shot", dict(color="tab:purple", ls="--")),
    ("caption_prompt_accuracy", "captions vs prompts", dict(color="tab:brown", ls="-.")),
    ("chance_accuracy", "chance", dict(color="lightgray", ls="-")),
]


def plot_accuracy_vs_anchors(result: AlignResult, path: str | Path) -> Path:
    from medrep.io import atomic_write
    from medrep.plotting import pyplot

    plt = pyplot()

    counts = sorted(result.by_anchors)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for key, label, style in _CURVES:
        if not all(key in result.by_anchors[n] for n in counts):
            continue
        ms = [result.by_anchors[n][key] for n in counts]
        ax.plot(counts, [m.value for m in ms], marker="o" if len(counts) < 12 else None, ms=3, label=label, **style)
        if all(m.low is not None for m in ms) and key not in ("target_accuracy", "chance_accuracy"):
            ax.fill_between(counts, [m.low for m in ms], [m.high for m in ms], color=style.get("color"), alpha=0.12, lw=0)
    if len(counts) > 1 and counts[-1] / max(counts[0], 1) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(counts, [str(n) for n in counts])  # the counts actually run, not powers of ten
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("anchors")
    ax.set_ylabel(f"accuracy ({result.n_test} test items, 95% bootstrap CI)")
    ax.set_title(f"{result.source} → {result.target or result.text} ({result.estimator})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def write_align_outputs(result: AlignResult, out_dir: str | Path) -> dict[str, Path]:
    """results.json, sweep.csv, prompts.csv (zero-shot) and accuracy_vs_anchors.png; returns the figure paths."""
    from medrep.io import write_csv_atomic, write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result.to_dict())

    def _csv(name: str, header: list[str], rows: list[list[Any]]) -> None:
        write_csv_atomic(out / name, header, rows)

    _csv("sweep.csv", ["anchors", "metric", "value", "low", "high", "n", "meaning"],
         [[r["anchors"], r["metric"], r["value"], r["low"], r["high"], r["n"], METRIC_HELP.get(r["metric"], "")] for r in result.table()])
    if result.prompts:
        _csv("prompts.csv", ["class", "prompt"], [[c, p] for c, ps in result.prompts.items() for p in ps])
    return {"accuracy_vs_anchors": plot_accuracy_vs_anchors(result, out / "accuracy_vs_anchors.png")}
