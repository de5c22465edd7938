"""Localisation scores of explanation maps against lesion masks: pure, batched functions (torch in, (B,)
per-image values out), like torchmetrics' functional API.  Maps (B, H, W) float, masks (B, H, W) bool.

A constant ("dead") map — max == min, e.g. a Grad-CAM whose every value the ReLU clipped — ranks no pixel
above another, so it points nowhere: pointing 0, no top-k pixels kept (IoU 0), and relevance mass 0 when
it holds no positive energy at all (a constant positive map spreads its mass evenly: mass = mask area).
"""
from __future__ import annotations

import torch

from medrep.errors import MedrepError, Param
from medrep.explain.faithfulness import pixel_ranks

TOPK_PERCENTS = (5, 10, 20, 40)
IOU_MODES = ("box", "pixel")


def _check(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise MedrepError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must both be (B, H, W)", where="masks")
    return maps.float(), masks.to(device=maps.device, dtype=torch.bool)


def dead_maps(maps: torch.Tensor) -> torch.Tensor:
    """Bool (B,): maps that are constant (max == min), which :func:`explain` min-max normalises to all zeros."""
    flat = maps.flatten(1)
    return flat.amax(1) == flat.amin(1)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 where any pixel holding the map's maximum lies inside the mask, else 0 (always 0 for a constant map:
    otherwise every pixel would be the peak and any non-empty mask a hit)."""
    maps, masks = _check(maps, masks)
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)
    hit = ((maps == peak) & masks).flatten(1).any(1)
    return (hit & ~dead_maps(maps)).float()


def topk_pixels(maps: torch.Tensor, percent: float, ranks: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (B, H, W): exactly the k = ceil(percent% of the pixels) highest pixels, ties broken by position
    (row-major, the deletion order of :func:`~medrep.explain.faithfulness.pixel_ranks`): keeping every tied
    pixel would let a plateau (a ReLU'd map's zeros) keep the whole image.  Nothing for a constant map
    (keeping every pixel would score the whole image).  ``ranks``: ``pixel_ranks`` of the flattened maps,
    when the caller already has them (one sort serves every k)."""
    if not 0 < percent <= 100:
        raise MedrepError(f"top-k percentage must be in (0, 100], got {percent}", where=Param("topk"))
    flat = maps.flatten(1).float()
    k = max(1, int(-(-flat.shape[1] * percent // 100)))
    ranks = pixel_ranks(flat) if ranks is None else ranks
    return ((ranks < k) & ~dead_maps(maps)[:, None]).view(maps.shape)


def enclosing_box(keep: torch.Tensor) -> torch.Tensor:
    """Bool (B, H, W): the one axis-aligned rectangle enclosing all kept pixels (all connected components);
    empty where nothing is kept.  Vectorised: first/last occupied row and column from any() profiles."""
    b, h, w = keep.shape
    rows, cols = keep.any(2), keep.any(1)  # (B, H), (B, W)
    ar_h = torch.arange(h, device=keep.device)
    ar_w = torch.arange(w, device=keep.device)
    big = max(h, w)
    top = torch.where(rows, ar_h, big).amin(1)
    bottom = torch.where(rows, ar_h, -1).amax(1)
    left = torch.where(cols, ar_w, big).amin(1)
    right = torch.where(cols, ar_w, -1).amax(1)
    in_rows = (ar_h[None] >= top[:, None]) & (ar_h[None] <= bottom[:, None])
    in_cols = (ar_w[None] >= left[:, None]) & (ar_w[None] <= right[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def iou_topk(maps: torch.Tensor, masks: torch.Tensor, percent: float = 10, mode: str = "box",
             ranks: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of the top-``percent``% of the map with the mask.

    ``mode="box"`` is the paper's (Chung et al. 2024): connected components of the kept pixels → one
    rectangle enclosing all of them → IoU with the mask.  The rectangle enclosing all components is the
    bounding box of the kept pixels, so no labelling is needed.  ``mode="pixel"``: IoU of the kept pixels
    themselves (the right choice for pixel-exact masks).
    """
    if mode not in IOU_MODES:
        raise MedrepError(f"unknown IoU mode {mode!r} (choose {', '.join(IOU_MODES)})", where=Param("iou_mode"))
    maps, masks = _check(maps, masks)
    keep = topk_pixels(maps, percent, ranks)
    return iou(enclosing_box(keep) if mode == "box" else keep, masks)


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of the (non-negative) map's energy inside the mask (Arras et al.'s relevance mass accuracy).

    A map with no positive value has no energy to share: its mass is 0 (not NaN, so means stay defined)."""
    maps, masks = _check(maps, masks)
    m = maps.clamp(min=0).flatten(1)
    inside = (m * masks.flatten(1)).sum(1)
    total = m.sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


def mask_area(masks: torch.Tensor) -> torch.Tensor:
    """(B,) share of the image covered by each mask."""
    return masks.flatten(1).float().mean(1)


def auprc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B,) area under the precision-recall curve of the map's pixels as scores against the mask (Arun et al.,
    Radiology: AI 2021), as scikit-learn's ``average_precision_score``: Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct
    map values, tied pixels entering together.  A constant map scores the mask's share of the image."""
    maps, masks = _check(maps, masks)
    b, n = maps.shape[0], maps[0].numel()
    scores, order = maps.flatten(1).double().sort(dim=1, descending=True, stable=True)
    truth = masks.flatten(1).gather(1, order).double()
    hits = truth.cumsum(1)
    positions = torch.arange(n, device=maps.device).expand(b, n)
    # the last position of each run of tied values: precision is read there for every pixel of the run
    run_end = torch.ones_like(truth, dtype=torch.bool)
    run_end[:, :-1] = scores[:, 1:] != scores[:, :-1]
    end_at = torch.where(run_end, positions, torch.full_like(positions, n - 1))
    end_at = end_at.flip(1).cummin(1).values.flip(1)
    precision = hits.gather(1, end_at) / (end_at + 1).double()
    positives = truth.sum(1)
    return torch.where(positives > 0, (truth * precision).sum(1) / positives.clamp_min(1), torch.zeros_like(positives))
