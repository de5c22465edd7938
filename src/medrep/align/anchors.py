"""Choosing anchor items from the training split: random, class-balanced, or k-means representatives.

``random`` and ``balanced`` give nested sets (the first n of one seeded order), so a sweep over anchor
counts adds anchors rather than redrawing them and the accuracy-vs-anchors curve is not jittered by
resampling.
"""
from __future__ import annotations

import numpy as np

from medrep.errors import MedrepError, Param

SELECTIONS = ("random", "balanced", "kmeans")


def select_anchors(n: int, labels: np.ndarray, method: str = "random", seed: int = 0,
                   vectors: np.ndarray | None = None) -> np.ndarray:
    """Indices (into the training items) of ``n`` anchors."""
    total = len(labels)
    if n < 1:
        raise MedrepError(f"anchor counts must be positive, got {n}", where=Param("anchors"))
    if n > total:
        raise MedrepError(f"{n} anchors requested but the training split has only {total} items", where=Param("anchors"))
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.permutation(total)[:n])
    if method == "balanced":
        return np.sort(_balanced_order(labels, rng)[:n])
    if method == "kmeans":
        if vectors is None:
            raise MedrepError("k-means anchor selection needs the source embeddings", where=Param("anchor_selection"))
        return _kmeans_anchors(vectors, n, seed)
    raise MedrepError(f"unknown anchor selection {method!r} (choose from {', '.join(SELECTIONS)})", where=Param("anchor_selection"))


def _balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round-robin over classes (each shuffled), so any prefix holds the classes as equally as possible."""
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    for k in range(max(len(p) for p in per_class)):
        order.extend(int(p[k]) for p in per_class if k < len(p))
    return np.asarray(order, dtype=np.int64)


def _kmeans_anchors(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The item nearest each of n k-means centres in source space (duplicates replaced by the next nearest)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics.pairwise import euclidean_distances

    x = np.asarray(vectors, dtype=np.float32)
    # random (data-point) init: k-means++ seeding costs O(k² log k) passes and took ~20 s for k=500 here
    km = KMeans(n_clusters=n, init="random", n_init=3, max_iter=50, random_state=seed).fit(x)
    d = euclidean_distances(km.cluster_centers_, x, squared=True)  # (n, N) via the Gram trick, no (n, N, D) temporary
    chosen: list[int] = []
    taken = np.zeros(x.shape[0], dtype=bool)
    for row in d:
        for j in np.argsort(row):
            if not taken[j]:
                taken[j] = True
                chosen.append(int(j))
                break
    return np.sort(np.asarray(chosen, dtype=np.int64))


def parse_anchor_counts(text: str | list[int] | int) -> list[int]:
    """'500' or '10,50,100,500' → sorted unique positive ints."""
    if isinstance(text, int):
        values = [text]
    elif isinstance(text, str):
        try:
            values = [int(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            raise MedrepError(f"expected comma-separated integers, got {text!r}", where=Param("anchors")) from None
    else:
        values = [int(v) for v in text]
    if not values or any(v < 1 for v in values):
        raise MedrepError(f"anchor counts must be positive integers, got {text!r}", where=Param("anchors"))
    return sorted(set(values))
