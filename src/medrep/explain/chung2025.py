"""The evaluation of Chung et al. 2025 ("Evaluating Visual Explanations of Attention Maps for Transformer-based
Medical Imaging"), as their public code does it (ugent-korea/attention_maps, ``src/func_eval.py`` and
``src/func_inter.py``), generalised from their fixed 224 × 224 to any image size:

* upsampling: raw attention by block replication (``np.kron`` with a block of ones: nearest-neighbour at an
  integer factor, no shift to the patch centre); Chefer's attribution and everything else bilinearly
  (``F.interpolate``, align_corners=False) — also no patch-centre offset; then min-max to [0, 1];
* pointing: a hit when **any** pixel holding the maximum lies in the mask (a constant map: every pixel);
* top-k%: k = ⌊N·p/100⌋, the threshold is the value at index k of the values sorted in descending order,
  and **every** pixel at or above it is kept (ties included: k + 1 pixels or more);
* box: one rectangle enclosing all connected components of the kept pixels; IoU = Σ(a·b) / Σ(a ∪ b).

Not reproduced: their Grad-CAM ran pytorch-grad-cam with ``eigen_smooth`` and ``aug_smooth``; medrep's
``gradcam`` map is the plain Grad-CAM.  How this differs from medrep's default scores is tabulated in
:data:`DIFFERENCES` (the README shows the same table).
"""
from __future__ import annotations

import torch

from medrep.explain.methods import normalize_maps, upsample
from medrep.explain.scores import enclosing_box, iou

TOPK_PERCENTS = (5, 10, 20, 40)

#: medrep's defaults against this protocol, one place (also in the README)
DIFFERENCES = (
    ("upsampling", "bilinear for every method, token maps shifted to their patch's receptive-field centre",
     "attention: block replication; others bilinear; no centre offset"),
    ("pointing, constant map", "a miss (a constant map points nowhere)", "a hit if the mask is non-empty (every pixel is maximal)"),
    ("top-k pixels", "exactly ⌈N·p/100⌉ pixels, ties broken by position", "every pixel ≥ the value at index ⌊N·p/100⌋ (ties kept)"),
    ("top-k of a constant map", "nothing kept (IoU 0)", "the whole image kept"),
    ("Grad-CAM", "plain Grad-CAM", "pytorch-grad-cam with eigen_smooth and aug_smooth (not reproduced)"),
)


def protocol_maps(raw: torch.Tensor, method: str, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] the way the paper's code makes them from ``raw`` (B, h, w)."""
    mode = "nearest" if method == "attention" else "bilinear"
    return normalize_maps(upsample(raw.float(), size, mode))


def pointing_any_maximum(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B,) 1 where any pixel holding the maximum lies in the mask (``pixel_wise_pointing_game``)."""
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)
    return ((maps == peak) & masks.bool()).flatten(1).any(1).double()


def topk_with_ties(maps: torch.Tensor, percent: float) -> torch.Tensor:
    """Bool (B, H, W): pixels ≥ the value at index ⌊N·p/100⌋ of the descending order (``binarize_inter_map``)."""
    flat = maps.flatten(1)
    k = min(int(flat.shape[1] * (percent / 100)), flat.shape[1] - 1)
    threshold = flat.sort(dim=1, descending=True).values[:, k]
    return (flat >= threshold[:, None]).view(maps.shape)


def chung_scores(maps: torch.Tensor, masks: torch.Tensor, topk: tuple[float, ...] = TOPK_PERCENTS) -> dict[str, torch.Tensor]:
    """Per-image pointing and box IoU at each top-k% under the paper's conventions."""
    masks = masks.bool()
    out = {"pointing": pointing_any_maximum(maps, masks)}
    for k in topk:
        out[f"iou_box@{k:g}"] = iou(enclosing_box(topk_with_ties(maps, k)), masks).double()
    return out
