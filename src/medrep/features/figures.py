"""PNG pictures for the features report: projections coloured by class and labelled heatmaps."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


from medrep.plotting import pyplot as _plt


def scatter_by_class(coords: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, name in enumerate(classes):
        m = labels == i
        if m.any():
            ax.scatter(coords[m, 0], coords[m, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=f"{name} ({int(m.sum())})")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, markerscale=2, loc="best", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str, path: str | Path,
            vmin: float | None = None, vmax: float | None = None, annotations: np.ndarray | None = None) -> Path:
    """Annotated heatmap; ``annotations`` (same shape, str) replaces the printed numbers when given."""
    plt = _plt()
    n_r, n_c = matrix.shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * n_c, 1.4 + 0.7 * n_r), dpi=120)
    im = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_xticks(range(n_c), labels=list(col_labels), rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(n_r), labels=list(row_labels), fontsize=8)
    lo, hi = np.nanmin(matrix), np.nanmax(matrix)
    mid = (lo + hi) / 2
    for i in range(n_r):
        for j in range(n_c):
            text = annotations[i, j] if annotations is not None else f"{matrix[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="black" if matrix[i, j] > mid else "white")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
