"""Deletion / insertion (Petsiuk et al., RISE 2018): the target score as pixels are removed from (deletion)
or added to (insertion) the image in the map's order, summarised by the area under the curve.

Batched over images *and* steps: the B·(steps+1) perturbed images are built from one rank tensor and run
through the model in chunks of ``batch_size`` rows (memory stays bounded; no per-image Python loop).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medrep.errors import MedrepError, Param
from medrep.explain.targets import Target, model_output, resolve_classes, score_from_output
from medrep.models.base import Encoder

BASELINES = ("blur", "zero", "mean")
MODES = ("deletion", "insertion")


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (B, C, H, W)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, pixels.shape[-1] - 1, pixels.shape[-2] - 1)
    x = torch.arange(-radius, radius + 1, dtype=pixels.dtype, device=pixels.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = pixels.shape[1]
    out = F.pad(pixels, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def baseline_image(pixels: torch.Tensor, baseline: str = "blur", blur_sigma: float | None = None) -> torch.Tensor:
    if baseline == "blur":
        return gaussian_blur(pixels, blur_sigma or max(1.0, pixels.shape[-1] / 16))
    if baseline == "zero":
        return torch.zeros_like(pixels)
    if baseline == "mean":
        return pixels.mean(dim=(2, 3), keepdim=True).expand_as(pixels)
    raise MedrepError(f"unknown perturbation baseline {baseline!r} (choose {', '.join(BASELINES)})", where=Param("deletion_baseline"))


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(B, H·W) rank of each pixel in descending map order (0 = most relevant); ties broken by position
    (row-major).  A constant map ranks nothing, so its deletion / insertion curve follows that fixed
    row-major order and says nothing about the method (run_explain counts such maps as dead_maps)."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def perturbation_curves(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, target: Target, mode: str = "deletion",
                        steps: int = 16, baseline: str = "blur", blur_sigma: float | None = None,
                        batch_size: int = 64, probability: bool = True) -> torch.Tensor:
    """(B, steps + 1) target scores after removing / adding the top s/steps share of pixels, s = 0…steps."""
    if mode not in MODES:
        raise MedrepError(f"unknown mode {mode!r} (choose {', '.join(MODES)})", where=Param("metrics"))
    if steps < 1:
        raise MedrepError("needs at least one step", where=Param("deletion_steps"))
    x = pixels.to(encoder.device, encoder.dtype)
    b, c, h, w = x.shape
    if tuple(maps.shape) != (b, h, w):
        raise MedrepError(f"maps {tuple(maps.shape)} do not match images {tuple(x.shape)}", where="maps")
    target = resolve_classes(encoder, x, target)
    base = baseline_image(x, baseline, blur_sigma)
    # deletion: the first n pixels take the baseline; insertion: the first n pixels take the image
    first, rest = (base, x) if mode == "deletion" else (x, base)
    ranks = pixel_ranks(maps.to(x.device)).view(b, 1, h, w)
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=x.device)).long()
    rows = torch.arange(b * (steps + 1), device=x.device)
    out = torch.empty(b * (steps + 1), device=x.device, dtype=torch.float32)
    chunk = max(1, int(batch_size))
    with torch.no_grad():
        for start in range(0, rows.numel(), chunk):
            r = rows[start:start + chunk]
            bi, si = r // (steps + 1), r % (steps + 1)
            on = ranks[bi] < counts[si].view(-1, 1, 1, 1)
            imgs = torch.where(on, first[bi], rest[bi])
            sub = target.index(bi)
            out[start:start + r.numel()] = score_from_output(model_output(encoder, imgs, sub), sub, probability).float()
    return out.view(b, steps + 1)


def curve_auc(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under (B, S+1) curves sampled evenly on [0, 1]."""
    s = curves.shape[1] - 1
    return (curves[:, 1:] + curves[:, :-1]).sum(1) / (2 * s)


def deletion_auc(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, target: Target, **kw) -> torch.Tensor:
    """Lower is better: the score should fall fast when the most relevant pixels go first."""
    return curve_auc(perturbation_curves(encoder, pixels, maps, target, "deletion", **kw))


def insertion_auc(encoder: Encoder, pixels: torch.Tensor, maps: torch.Tensor, target: Target, **kw) -> torch.Tensor:
    """Higher is better: the score should rise fast when the most relevant pixels come first."""
    return curve_auc(perturbation_curves(encoder, pixels, maps, target, "insertion", **kw))
