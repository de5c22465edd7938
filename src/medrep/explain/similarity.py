"""Map-to-map similarities for the sanity checks, batched (B, H, W) → (B,): Spearman rank correlation (with
and without absolute values), SSIM and the overlap of the top-k% pixels.  Each matches its reference
(scipy.stats.spearmanr, skimage.metrics.structural_similarity with its defaults) on one pair of maps.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medrep.explain.scores import topk_pixels

SIMILARITIES = ("spearman_abs", "spearman", "ssim", "topk_overlap")


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """(B, N) 1-based ranks with ties given their average rank (scipy.stats.rankdata's 'average'): one sort;
    each run of equal sorted values gets the mean of its first and last position."""
    b, n = values.shape
    ordered, order = values.sort(dim=1)
    pos = torch.arange(n, device=values.device).expand(b, n)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(1).values
    last = torch.where(ends, pos, n).flip(1).cummin(1).values.flip(1)
    sorted_ranks = (first + last).double() / 2 + 1
    return torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def centred_ranks(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ranks of each map's pixels minus their mean, and the sum of their squares (what Spearman needs
    of one side: computed once for maps compared many times)."""
    r = average_ranks(maps.flatten(1))
    r = r - r.mean(1, keepdim=True)
    return r, r.square().sum(1)


def _spearman_from(ranks_a: tuple[torch.Tensor, torch.Tensor], ranks_b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    (ra, sa), (rb, sb) = ranks_a, ranks_b
    denom = (sa * sb).sqrt()
    return torch.where(denom > 0, (ra * rb).sum(1) / denom.clamp_min(1e-300), torch.zeros_like(denom))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) Spearman rank correlation of each pair of maps.  A constant map orders no pixel, so it shares no
    ordering with the other map: its correlation is 0 (scipy gives NaN, which would make every mean NaN)."""
    return _spearman_from(centred_ranks(a), centred_ranks(b))


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
    return _overlap(topk_pixels(a, percent), topk_pixels(b, percent))


def _overlap(ka: torch.Tensor, kb: torch.Tensor) -> torch.Tensor:
    k = ka.flatten(1).sum(1).clamp_min(1)
    return (ka & kb).flatten(1).sum(1).double() / k


def reference_statistics(raw: torch.Tensor, norm: torch.Tensor, percent: float = 10) -> dict[str, Any]:
    """What :func:`map_similarities` needs of one side, for maps compared with many others (the trained
    model's maps against every randomisation step)."""
    return {"abs": centred_ranks(raw.abs()), "signed": centred_ranks(raw), "topk": topk_pixels(norm, percent),
            "norm": norm, "percent": percent}


def map_similarities(raw_a: torch.Tensor, raw_b: torch.Tensor, norm_a: torch.Tensor, norm_b: torch.Tensor,
                     percent: float = 10, reference: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Every similarity of :data:`SIMILARITIES` between two sets of maps: the Spearman correlations on the
    method's own values (``raw``), SSIM and top-k overlap on the min-max normalised maps (``norm``).
    ``reference``: :func:`reference_statistics` of side a, when already computed."""
    ref = reference if reference is not None else reference_statistics(raw_a, norm_a, percent)
    new = reference_statistics(raw_b, norm_b, ref["percent"])
    return {
        "spearman_abs": _spearman_from(ref["abs"], new["abs"]),
        "spearman": _spearman_from(ref["signed"], new["signed"]),
        "ssim": ssim(ref["norm"], norm_b),
        "topk_overlap": _overlap(ref["topk"], new["topk"]),
    }
