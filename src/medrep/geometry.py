"""How an image of any size is brought to a model's input size — one definition for the Encoder's
preprocessing, the extraction loader and the attack / explanation batches (images and their masks).

``stretch`` (the default) resizes straight to the input size: the whole image stays visible, so a lesion
at the border is never cut off, at the price of distorting non-square images.  ``crop`` is the evaluation
transform of timm and torchvision: an aspect-preserving resize to ``size / crop_pct`` (for a square input
size: the shorter side), then the centre crop of the input size.  An image already at the input size is
used as it is in both modes, so fitting is idempotent (the loaders fit, then the Encoder's preprocessing
sees the input size and leaves it alone); unlike timm, a crop never zooms into an image of exactly that size.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from medrep.errors import MedrepError

RESIZE_MODES = ("stretch", "crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")


def check_resize(resize: str, crop_pct: float, where: str = "preprocessing") -> None:
    if resize not in RESIZE_MODES:
        raise MedrepError(f"unknown resize mode {resize!r} (choose from {', '.join(RESIZE_MODES)})", where=where)
    if not isinstance(crop_pct, (int, float)) or math.isnan(crop_pct) or not 0 < crop_pct <= 1:
        raise MedrepError(f"crop_pct must lie in (0, 1], got {crop_pct!r}", where=where)


def interpolate(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """``F.interpolate`` of a float B×C×H×W batch with antialiasing where the mode supports it."""
    kw = {"align_corners": False, "antialias": True} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(x, size=tuple(int(s) for s in size), mode=mode, **kw)


def crop_geometry(height: int, width: int, size: Sequence[int], crop_pct: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """``crop`` mode's intermediate size (H′, W′) and the top-left corner of the centre crop within it."""
    th, tw = (int(s) for s in size)
    if th == tw:  # torchvision Resize(int): the shorter side becomes floor(size / crop_pct)
        short = math.floor(th / crop_pct)
        if height <= width:
            rh, rw = short, int(short * width / height)
        else:
            rh, rw = int(short * height / width), short
    else:  # a non-square input size: the smallest aspect-preserving size that covers size / crop_pct
        sh, sw = math.floor(th / crop_pct), math.floor(tw / crop_pct)
        scale = max(sh / height, sw / width)
        rh, rw = max(sh, round(height * scale)), max(sw, round(width * scale))
    rh, rw = max(rh, th), max(rw, tw)
    top, left = int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0))  # torchvision's center_crop rounding
    return (rh, rw), (top, left)


def fit_to_size(x: torch.Tensor, size: Sequence[int], interpolation: str = "bilinear", resize: str = "stretch",
                crop_pct: float = 1.0) -> torch.Tensor:
    """A float B×C×H×W batch at ``size`` (H, W) by ``resize`` mode; differentiable.  Masks pass through here
    too (as float, with ``interpolation='nearest'``) so they stay aligned with their images."""
    th, tw = (int(s) for s in size)
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):  # already fitted (e.g. by the batch loader): fitting twice must change nothing
        return x
    if resize == "stretch":
        return interpolate(x, (th, tw), interpolation)
    check_resize(resize, crop_pct)
    (rh, rw), (top, left) = crop_geometry(h, w, (th, tw), crop_pct)
    if (rh, rw) != (h, w):
        x = interpolate(x, (rh, rw), interpolation)
    return x[..., top:top + th, left:left + tw]
