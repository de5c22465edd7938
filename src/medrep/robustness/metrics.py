"""Per-item measures of a perturbation (batched) and the noise label-consistency detector.

PSNR and SSIM come from scikit-image; norms and cosines are computed on the batch in torch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medrep.errors import MedrepError, Param

#: PSNR of an unchanged image is infinite; capping keeps means and JSON finite (documented in results).
PSNR_CAP_DB = 100.0


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    d = (x_adv - x).flatten(1).float()  # float16 pixels: norms in float32
    return d.abs().amax(1).cpu().numpy().astype(np.float64), d.norm(dim=1).cpu().numpy().astype(np.float64)


def image_quality(x: torch.Tensor, x_adv: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-item PSNR (dB, capped) and SSIM with data range 1 (pixels in [0, 1])."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = x.detach().cpu().numpy().astype(np.float64)
    b = x_adv.detach().cpu().numpy().astype(np.float64)
    if min(a.shape[-2:]) < 7:
        raise MedrepError(f"images of {a.shape[-2]}×{a.shape[-1]} px are too small for SSIM (needs ≥ 7)", where=Param("data"))
    psnr = np.empty(len(a))
    ssim = np.empty(len(a))
    for i in range(len(a)):  # scikit-image works on one image at a time
        if np.array_equal(a[i], b[i]):
            psnr[i] = PSNR_CAP_DB
        else:
            psnr[i] = min(PSNR_CAP_DB, peak_signal_noise_ratio(a[i], b[i], data_range=1.0))
        ssim[i] = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0)
    return psnr, ssim


def cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return F.cosine_similarity(a.float(), b.float(), dim=1).cpu().numpy().astype(np.float64)


def relative_change(z_adv: torch.Tensor, z: torch.Tensor) -> np.ndarray:
    z_adv, z = z_adv.float(), z.float()  # float16 features: their norms overflow from 65504
    return ((z_adv - z).norm(dim=1) / z.norm(dim=1).clamp_min(1e-12)).cpu().numpy().astype(np.float64)


def noise_inconsistency(classify, pixels: torch.Tensor, sigma: float, draws: int,
                        generator: torch.Generator | None = None, base: np.ndarray | None = None) -> np.ndarray:
    """Share of ``draws`` Gaussian-noise copies (σ, clipped to [0, 1]) whose label differs from the input's.

    The paper's proposed defence: attacked inputs sit close to a decision boundary they were pushed
    across, so noise flips their label more often than it flips a clean image's.  Batched: all copies
    of the batch go through the classifier together.  ``base``: the input's labels when the caller
    already has them (``classify(pixels)``), so they are not predicted again.
    """
    if not sigma > 0:
        raise MedrepError(f"needs σ > 0 (got {sigma})", where=Param("noise_sigma"))
    if draws < 1:
        raise MedrepError(f"must be at least 1 (got {draws})", where=Param("noise_draws"))
    if base is None:
        base = classify(pixels)
    noise = torch.randn((draws, *pixels.shape), generator=generator, dtype=pixels.dtype, device="cpu").to(pixels.device)
    noisy = (pixels.unsqueeze(0) + sigma * noise).clamp_(0, 1).flatten(0, 1)
    labels = classify(noisy).reshape(draws, pixels.shape[0])
    return (labels != base[None]).mean(0).astype(np.float64)


def detector_auc(clean_scores: np.ndarray, attacked_scores: np.ndarray) -> float:
    """ROC AUC of the scores separating attacked (positive) from clean inputs."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(clean_scores)), np.ones(len(attacked_scores))]
    s = np.r_[clean_scores, attacked_scores]
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def detector_auc_bootstrap(clean_scores: np.ndarray, attacked_scores: np.ndarray, n_boot: int = 200,
                           confidence: float = 0.95, seed: int = 0, groups: np.ndarray | None = None):
    """AUC (scikit-learn) with a percentile interval from resampling items (each item gives a clean and
    an attacked score).  Resamples use the rank form of the AUC (Mann–Whitney U / n²), vectorised, since
    hundreds of ``roc_auc_score`` calls dominate small runs.  ``groups`` (each item's patient): whole
    patients are resampled (a cluster bootstrap), as for every other interval of the attack."""
    from dataclasses import replace

    from scipy.stats import rankdata

    from medrep.intervals import CLUSTER_INTERVAL, bootstrap_blocks, cluster_bootstrap_metric, is_clustered, percentile_bounds
    from medrep.results import Metric

    c, a = np.asarray(clean_scores, np.float64), np.asarray(attacked_scores, np.float64)
    n = len(c)
    if n == 0:
        return Metric(float("nan"), None, None, 0)
    point = detector_auc(c, a)
    if is_clustered(groups, n):
        def rank_auc(idx: np.ndarray) -> float:
            ranks, m = rankdata(np.concatenate([c[idx], a[idx]])), len(idx)
            return float((ranks[m:].sum() - m * (m + 1) / 2) / (m * m))

        m = cluster_bootstrap_metric(rank_auc, groups, n_boot=n_boot, confidence=confidence, seed=seed)
        return replace(m, value=point, interval=CLUSTER_INTERVAL,
                       n_patients=len(set(np.asarray(groups, dtype=object).tolist())))
    boots = np.empty(n_boot, dtype=np.float64)
    for lo, idx in bootstrap_blocks(np.random.default_rng(seed), n, n_boot, width=6):  # bounded memory
        ranks = rankdata(np.concatenate([c[idx], a[idx]], axis=1), axis=1)  # ties get average ranks
        boots[lo:lo + len(idx)] = (ranks[:, n:].sum(1) - n * (n + 1) / 2) / (n * n)
    low, high = percentile_bounds(boots, confidence)
    return Metric(point, low, high, n)
