"""The overlay test's files (results.json, overlay.csv, a flip-rate chart, example images) and its terminal table."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medrep.features.probes import describe_adapted
from medrep.overlay.result import OverlayResult


def write_overlay_outputs(result: OverlayResult, out_dir: str | Path, dataset=None, n_examples: int = 4) -> dict[str, Path]:
    """results.json, overlay.csv, a flip-rate chart and (given the dataset) example images."""
    from medrep.features.outputs import write_csv
    from medrep.io import write_json_atomic
    from medrep.plotting import pyplot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result.to_dict())
    write_csv(out / "overlay.csv", result.table())
    figures: dict[str, Path] = {}
    plt = pyplot()
    words = [o.text for o in result.overlays]
    names = list(result.models)
    fig, axes = plt.subplots(1, 2, figsize=(3 + 1.2 * len(words) * max(1, len(names)) / 2, 3.6), dpi=120, squeeze=False)
    width = 0.8 / max(1, len(names))
    for ax, key, label in ((axes[0, 0], "probe_flip_rate", "probe flip rate"), (axes[0, 1], "cosine_shift", "cosine shift")):
        for j, name in enumerate(names):
            vals = [result.models[name]["words"][w]["metrics"][key] for w in words]
            pos = np.arange(len(words)) + (j - (len(names) - 1) / 2) * width
            err = np.array([[v.value - (v.low if v.low is not None else v.value) for v in vals],
                            [(v.high if v.high is not None else v.value) - v.value for v in vals]])
            ax.bar(pos, [v.value for v in vals], width, yerr=err, capsize=2, label=name)
        ax.set_xticks(range(len(words)), labels=words, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
    # the models' legend under the panels: inside an axis it hides bars as soon as a flip rate is high
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, min(len(names), 4)), fontsize=8, frameon=False)
    rows = -(-len(names) // 4)
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    figures["overlay_flip_rates"] = out / "overlay_flip_rates.png"
    fig.savefig(figures["overlay_flip_rates"])
    plt.close(fig)
    if dataset is not None:
        test = dataset.split(result.settings["test_split"]) if getattr(dataset, "splits", None) else dataset
        n = min(n_examples, len(test))
        fig, axes = plt.subplots(n, 1 + len(result.overlays), figsize=(1.4 * (1 + len(result.overlays)), 1.4 * n),
                                 dpi=120, squeeze=False)
        for r in range(n):
            item = test[r]
            for cidx, img in enumerate([item.image] + [o.apply(item.image) for o in result.overlays]):
                ax = axes[r, cidx]
                arr = img.clamp(0, 1).permute(1, 2, 0).numpy()
                ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
                ax.set_axis_off()
                if r == 0:
                    ax.set_title("clean" if cidx == 0 else f"'{result.overlays[cidx - 1].text}'", fontsize=8)
        fig.tight_layout()
        figures["overlay_examples"] = out / "overlay_examples.png"
        fig.savefig(figures["overlay_examples"])
        plt.close(fig)
    return figures


def format_overlay_table(result: OverlayResult) -> str:
    lines = []
    for name, m in result.models.items():
        clean = ", ".join(f"{k} {v}" for k, v in m["clean"].items())
        lines.append(f"{name} (clean: {clean}; zero-shot: {m['zero_shot']})")
        for word, w in m["words"].items():
            ms = w["metrics"]
            parts = [f"cos shift {ms['cosine_shift']}", f"probe flips {ms['probe_flip_rate']}",
                     f"kNN flips {ms['knn_flip_rate']}"]
            if "probe_to_target_rate" in ms:
                parts.append(f"probe→{w['target_class']} {ms['probe_to_target_rate']}")
            if "zero_shot_shift" in ms:
                parts.append(f"zero-shot Δp({w['target_class']}) {ms['zero_shot_shift']}")
            lines.append(f"  '{word}': " + "; ".join(parts))
    return "\n".join(lines + describe_adapted(result.settings.get("adapted", {})) + result.readings())
