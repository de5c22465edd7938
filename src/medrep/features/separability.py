"""How well classes separate in an embedding space: silhouette, Davies-Bouldin, Calinski-Harabasz,
a Fisher / LDA ratio and the class-centroid cosine matrix.

Written here (batched, chunked) rather than wrapped, so the silhouette can reuse one distance
matrix across bootstrap resamples; the tests check each against scikit-learn on the same inputs.
"""
from __future__ import annotations

import numpy as np
import torch

from medrep.errors import MedrepError
from medrep.features.neighbours import l2_normalise
from medrep.features.probes import check_labels


def _groups(labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(classes, codes): labels recoded to 0..K-1, at least two classes required."""
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    check_labels(labels, where)
    return classes, codes


def _centroids(x: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(K, D) class means for labels recoded to 0..K-1."""
    return np.stack([x[codes == c].mean(0) for c in range(k)])


def pairwise_distances(x: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Full N×N distance matrix (float64); only for the moderate N the silhouette is computed on."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if metric == "euclidean":
        sq = (xt * xt).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2 * xt @ xt.T).clamp_min_(0)
        d2.fill_diagonal_(0)
        return d2.sqrt_().numpy()
    if metric == "cosine":
        xn = xt / xt.norm(dim=1, keepdim=True).clamp_min(1e-12)
        d = (1 - xn @ xn.T).clamp_min_(0)
        d.fill_diagonal_(0)
        return d.numpy()
    raise MedrepError(f"unknown metric {metric!r} (choose euclidean or cosine)", where="metric")


def silhouette_samples_from_distances(d: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-item silhouette (b − a) / max(a, b) from a distance matrix; 0 for members of singleton clusters."""
    _, codes = _groups(labels, "silhouette labels")
    k = codes.max() + 1
    onehot = np.eye(k)[codes]  # (N, K)
    counts = onehot.sum(0)
    sums = d @ onehot  # (N, K) summed distance from each item to each cluster
    own = counts[codes]
    a = sums[np.arange(len(codes)), codes] / np.maximum(own - 1, 1)
    mean_other = sums / np.maximum(counts, 1)
    mean_other[np.arange(len(codes)), codes] = np.inf
    b = mean_other.min(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.nan_to_num(s)
    s[own == 1] = 0.0  # scikit-learn's (Rousseeuw's) convention
    return s


def silhouette(x: np.ndarray, labels: np.ndarray, metric: str = "euclidean") -> float:
    return float(silhouette_samples_from_distances(pairwise_distances(x, metric), labels).mean())


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean over clusters of the worst (s_i + s_j) / ‖c_i − c_j‖; lower is better."""
    _, codes = _groups(labels, "davies_bouldin labels")
    x = np.asarray(x, dtype=np.float64)
    k = codes.max() + 1
    centroids = _centroids(x, codes, k)
    scatter = np.array([np.linalg.norm(x[codes == c] - centroids[c], axis=1).mean() for c in range(k)])
    sep = np.linalg.norm(centroids[:, None] - centroids[None], axis=2)
    if np.allclose(scatter, 0) or np.allclose(sep, 0):
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (scatter[:, None] + scatter[None]) / sep
    r[~np.isfinite(r)] = 0.0  # coincident centroids (scikit-learn's convention)
    np.fill_diagonal(r, 0.0)
    return float(r.max(1).mean())


def calinski_harabasz(x: np.ndarray, labels: np.ndarray) -> float:
    """tr(B) / tr(W) · (N − K) / (K − 1); higher is better."""
    _, codes = _groups(labels, "calinski_harabasz labels")
    n, k = len(codes), codes.max() + 1
    x = np.asarray(x, dtype=np.float64)
    centroids = _centroids(x, codes, k)
    counts = np.bincount(codes, minlength=k)
    tr_b = float((counts * ((centroids - x.mean(0)) ** 2).sum(1)).sum())
    tr_w = float(((x - centroids[codes]) ** 2).sum())
    return 1.0 if tr_w == 0 else tr_b * (n - k) / (tr_w * (k - 1))


def fisher_ratio(x: np.ndarray, labels: np.ndarray, shrinkage: float | str = "auto") -> float:
    """Fisher / LDA criterion tr(S_W⁻¹ S_B): the summed discriminant eigenvalues (higher = more separable).

    Unlike Calinski-Harabasz it is invariant to any invertible linear map of the space (whitening
    included), so it measures linear separability rather than scale.  S_W is shrunk towards
    (tr S_W / D)·I — by the Ledoit-Wolf amount with ``"auto"`` (as scikit-learn's LDA does), or by a
    fixed share in [0, 1] — so it stays finite when D ≥ N.  With D > N the solve runs in the
    N-dimensional sample space (Woodbury), so its cost is min(N, D)³.
    """
    _, codes = _groups(labels, "fisher_ratio labels")
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    k = codes.max() + 1
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    centroids = _centroids(x, codes, k)
    m = (centroids - x.mean(0)).T * np.sqrt(counts / n)  # S_B = M Mᵀ, M is D×K
    c = x - centroids[codes]  # S_W = CᵀC / N
    if shrinkage == "auto":
        from sklearn.covariance import ledoit_wolf_shrinkage

        delta = float(ledoit_wolf_shrinkage(c, assume_centered=True))
    else:
        delta = float(shrinkage)
        if not 0 <= delta <= 1:
            raise MedrepError("shrinkage must be 'auto' or lie in [0, 1]", where="fisher_ratio")
    lam = delta * float((c ** 2).sum()) / (n * d)
    cs = c * np.sqrt((1 - delta) / n)  # S_W(shrunk) = csᵀcs + lam·I
    try:
        if d <= n or lam == 0:
            z = np.linalg.solve(cs.T @ cs + lam * np.eye(d), m)
        else:
            inner = np.linalg.solve(lam * np.eye(n) + cs @ cs.T, cs @ m)
            z = (m - cs.T @ inner) / lam
    except np.linalg.LinAlgError as err:
        raise MedrepError("within-class scatter is singular; use shrinkage > 0", where="fisher_ratio") from err
    return float((m * z).sum())


def centroid_cosine_matrix(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """K×K cosine similarity between class mean embeddings (embeddings L2-normalised first)."""
    _, codes = _groups(labels, "centroid labels")
    xn = l2_normalise(x).astype(np.float64)
    k = codes.max() + 1
    c = l2_normalise(_centroids(xn, codes, k)).astype(np.float64)
    return c @ c.T
