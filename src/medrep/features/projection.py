"""2-D projections of an embedding space for pictures: t-SNE (scikit-learn) and UMAP (umap-learn)."""
from __future__ import annotations

import numpy as np

from medrep.errors import MedrepError
from medrep.features.neighbours import l2_normalise

METHODS = ("tsne", "umap")


def project_2d(x: np.ndarray, method: str = "tsne", seed: int = 0, max_items: int = 5000,
               perplexity: float = 30.0, n_neighbors: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """(coords (M, 2), indices of the M ≤ max_items rows used); cosine geometry via L2-normalised rows.

    Both methods are seeded.  Above ``max_items`` a seeded subsample is drawn, since t-SNE and
    UMAP are for looking at, and their cost grows faster than linearly.
    """
    x = l2_normalise(np.asarray(x).reshape(len(x), -1))
    idx = np.arange(len(x))
    if len(x) > max_items:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), size=max_items, replace=False))
        x = x[idx]
    if len(x) < 5:
        raise MedrepError(f"needs at least 5 embeddings to project, got {len(x)}", where=method)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = min(perplexity, (len(x) - 1) / 3)  # t-SNE requires perplexity < n
        coords = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, metric="euclidean").fit_transform(x)
    elif method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": expected with a seed
            reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed)
            coords = reducer.fit_transform(x)
    else:
        raise MedrepError(f"unknown projection {method!r} (choose from {', '.join(METHODS)})", where="--projection")
    return np.asarray(coords, dtype=np.float32), idx
