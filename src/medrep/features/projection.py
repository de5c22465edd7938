"""2-D projections of an embedding space for pictures: t-SNE (scikit-learn) and UMAP (umap-learn)."""
from __future__ import annotations

import numpy as np

from medrep.errors import MedrepError, Param
from medrep.features.neighbours import l2_normalise
# the registry lives in medrep.features.registry; imported here for the projections below and for callers that
# know it by this module
from medrep.features.registry import PROJECTIONS, register_projection


@register_projection("tsne", help="t-SNE (scikit-learn)", title="t-SNE", default=True)
def _tsne(x: np.ndarray, seed: int, perplexity: float = 30.0, n_neighbors: int = 15) -> np.ndarray:
    from sklearn.manifold import TSNE

    perp = min(perplexity, (len(x) - 1) / 3)  # t-SNE requires perplexity < n
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, metric="euclidean").fit_transform(x)


@register_projection("umap", help="UMAP (umap-learn)", title="UMAP", default=True)
def _umap(x: np.ndarray, seed: int, perplexity: float = 30.0, n_neighbors: int = 15) -> np.ndarray:
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": expected with a seed
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed)
        return reducer.fit_transform(x)


def __getattr__(name: str):
    if name == "METHODS":  # the names, as a tuple (older callers)
        return tuple(PROJECTIONS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    fn = PROJECTIONS.get(method, where=Param("projection"))
    coords = fn(x, seed, perplexity=perplexity, n_neighbors=n_neighbors)
    return np.asarray(coords, dtype=np.float32), idx
