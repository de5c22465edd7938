"""The files of an explanation run: results.json, explain_table.csv (method × metric), per_image_scores.csv,
gallery.png and, when the sanity checks ran, sanity.png (similarity against the number of randomised units)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medrep.explain.result import ExplainResult


# -- writing ----------------------------------------------------------------------------------------
def write_explain_outputs(result: ExplainResult, out_dir: str | Path) -> dict[str, Path]:
    """results.json, explain_table.csv (method × metric, mean and 95% interval), per_image_scores.csv (one row per
    image and method: id, label, method, every metric, dead_map), gallery.png, sanity.png (with sanity checks)."""
    from medrep.io import write_csv_atomic, write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json_atomic(out / "results.json", result.to_dict())}

    table = []
    for meth in result.methods:
        row: list[Any] = [meth]
        for k in result.metric_names:
            m = result.metrics[meth][k]
            row += [_fmt(m.value), _fmt(m.low), _fmt(m.high)]
        table.append(row + [len(result.ids)])
    paths["table"] = write_csv_atomic(
        out / "explain_table.csv",
        ["method"] + [f"{k}{suffix}" for k in result.metric_names for suffix in ("", "_low", "_high")] + ["n"], table)

    classes = result.data.get("classes") or []
    per_image = []
    for i, image_id in enumerate(result.ids):
        c = int(result.labels[i])
        label = classes[c] if 0 <= c < len(classes) else c
        for meth in result.methods:
            dead = result.dead.get(meth)
            per_image.append([image_id, label, meth]
                             + [_fmt(float(result.per_image[meth][k][i])) for k in result.metric_names]
                             + ["" if dead is None else int(dead[i])])
    paths["per_image"] = write_csv_atomic(out / "per_image_scores.csv",
                                          ["id", "label", "method"] + list(result.metric_names) + ["dead_map"], per_image)
    if len(result.gallery.get("ids", [])):
        paths["gallery"] = plot_gallery(result, out / "gallery.png")
    if result.sanity is not None and any(e.get("cascading") for e in result.sanity["methods"].values()):
        from medrep.explain.sanity import plot_sanity

        paths["sanity"] = Path(plot_sanity(result.sanity, result.model, out / "sanity.png"))
    return paths


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.6g}"


def plot_gallery(result: ExplainResult, path: str | Path) -> Path:
    """Rows: images; columns: the image with the mask outline, then each method's heatmap (outline on top)."""
    from medrep.plotting import pyplot

    plt = pyplot()

    from medrep.io import atomic_write

    g = result.gallery
    images, masks, ids = g["images"], g["masks"], g["ids"]
    methods = [m for m in result.methods if m in g["maps"]]
    rows, cols = len(ids), 1 + len(methods)
    # at most 10 inches (1100 px at 110 dpi) wide, so a report page shows it unscaled and its 8 pt labels at 12 px
    tile = min(1.7, 10.0 / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(tile * cols, tile * rows + 0.3), squeeze=False)
    for r in range(rows):
        img = images[r]
        show = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(show, cmap="gray" if show.ndim == 2 else None, vmin=0, vmax=1)
            if c > 0:
                ax.imshow(g["maps"][methods[c - 1]][r], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if masks[r].any():
                ax.contour(masks[r].astype(float), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                first = "image + mask" if result.mask_area is not None else "image (no mask)"
                ax.set_title(first if c == 0 else methods[c - 1], fontsize=8)
        label = str(ids[r])
        axes[r, 0].set_ylabel(label if len(label) <= 16 else "…" + label[-15:], fontsize=8)
    fig.suptitle(f"{result.model}: explanation maps (target: {result.target})", fontsize=9)
    fig.tight_layout()
    from medrep.plotting import label_px_metadata

    labels = [t for ax in axes.flat for t in (ax.title, ax.yaxis.label)]
    metadata = label_px_metadata(labels, 110)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", metadata=metadata))
    plt.close(fig)
    return Path(path)
