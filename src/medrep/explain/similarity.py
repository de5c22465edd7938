"""Map-to-map similarities for the sanity checks, batched (B, H, W) → (B,): Spearman rank correlation (with
and without absolute values), SSIM and the overlap of the top-k% pixels.  Each matches its reference
(scipy.stats.spearmanr, skimage.metrics.structural_similarity with its defaults) on one pair of maps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medrep.explain.scores import topk_pixels

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "topk_overlap")


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """(B, N) 1-based ranks with ties given their average rank (scipy.stats.rankdata's 'average')."""
    ordered = values.sort(dim=1).values.contiguous()
    below = torch.searchsorted(ordered, values.contiguous(), right=False)
    through = torch.searchsorted(ordered, values.contiguous(), right=True)
    return (below + through + 1).double() / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) Spearman rank correlation of each pair of maps.  A constant map orders no pixel, so it shares no
    ordering with the other map: its correlation is 0 (scipy gives NaN, which would make every mean NaN)."""
    ra, rb = average_ranks(a.flatten(1).double()), average_ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denom = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(denom > 0, (ra * rb).sum(1) / denom.clamp_min(1e-300), torch.zeros_like(denom))


def ssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """(B,) mean structural similarity of maps in [0, data_range], as skimage's structural_similarity with its
    defaults (uniform 7×7 window, sample covariance, K1 0.01, K2 0.03, the border half-window cropped)."""
    x, y = a.double()[:, None], b.double()[:, None]
    win = min(win_size, x.shape[-1], x.shape[-2])
    win -= 1 - win % 2  # an odd window, as skimage requires
    npix = win * win
    cov_norm = npix / (npix - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:  # the window mean over the fully covered region ("valid")
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def topk_overlap(a: torch.Tensor, b: torch.Tensor, percent: float = 10) -> torch.Tensor:
    """(B,) share of ``a``'s top-``percent``% pixels that are also among ``b``'s (exactly k pixels each, ties
    broken by position as in :func:`~medrep.explain.scores.topk_pixels`; 0 where either map is constant)."""
    ka, kb = topk_pixels(a, percent), topk_pixels(b, percent)
    k = ka.flatten(1).sum(1).clamp_min(1)
    return (ka & kb).flatten(1).sum(1).double() / k


def map_similarities(raw_a: torch.Tensor, raw_b: torch.Tensor, norm_a: torch.Tensor, norm_b: torch.Tensor,
                     percent: float = 10) -> dict[str, torch.Tensor]:
    """Every similarity of :data:`SIMILARITIES` between two sets of maps: the Spearman correlations on the
    method's own values (``raw``), SSIM and top-k overlap on the min-max normalised maps (``norm``)."""
    return {
        "spearman_abs": spearman(raw_a.abs(), raw_b.abs()),
        "spearman": spearman(raw_a, raw_b),
        "ssim": ssim(norm_a, norm_b),
        "topk_overlap": topk_overlap(norm_a, norm_b, percent),
    }
