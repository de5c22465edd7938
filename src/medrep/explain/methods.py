"""Explanation-map methods.  One interface: ``method(encoder, pixels, target, **options) -> (B, h, w)`` raw
maps at the method's own resolution (token grid, feature map or pixels); :func:`explain` upsamples them to
the image size and min-max normalises each map to [0, 1].

All methods are batched: one forward (and at most one backward) per batch, except ``ig`` which runs
``steps`` interpolated inputs in chunks of ``internal_batch_size`` rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.explain.attention import (capture_attention, find_attention_sites, fuse_heads, query_row_to_grid, reads_cls,
                                      require_grid)
from medrep.explain.targets import Target, model_output, resolve_classes, score_from_output
# the registry and its queries live in medrep.explain.registry; imported here for the methods below and for
# callers that know them by this module
from medrep.explain.registry import (METHODS, Method, attention_methods, baseline_methods, default_methods,  # noqa: F401
                                     get_method, register_method, unsupported_reason)
from medrep.models.base import Encoder
from medrep.registry import Option

UPSAMPLING = ("nearest", "bilinear", "bicubic")
HEAD_FUSION = Option("head_fusion", str, "mean", choices=("mean", "max", "min"), flag="head-fusion",
                     help="head fusion for attention and rollout")


def attention_support(encoder: Encoder) -> str | None:
    """Attention-based methods need a token grid and the self-attention of the transformer blocks."""
    try:
        require_grid(encoder)
        find_attention_sites(encoder)
    except MedrepError as err:
        return str(err).removeprefix(f"{err.where}: ") if err.where else str(err)
    return None


def lrp_support(encoder: Encoder) -> str | None:
    from medrep.explain.lrp import lrp_support as structural

    return attention_support(encoder) or structural(encoder)


# -- attention family ---------------------------------------------------------------------------------
@register_method("attention", needs_attention=True, default=True, supports=attention_support, options=[
    Option("block", int, -1, flag="block", help="block whose attention the 'attention' method shows (default: last)"),
    HEAD_FUSION])
def raw_attention(encoder: Encoder, pixels: torch.Tensor, target: Target | None = None, block: int = -1,
                  head_fusion: str = "mean") -> torch.Tensor:
    """Softmax attention of one block (default the last) over the patch tokens, heads fused: the CLS row, or
    the mean of the patch rows for a mean-pooled model (see :func:`query_row_to_grid`)."""
    grid = require_grid(encoder)
    with torch.no_grad(), capture_attention(encoder, blocks=[block]) as rec:
        encoder.embed(pixels)
        (attn,) = rec.complete(encoder.name)
    return query_row_to_grid(fuse_heads(attn.float(), head_fusion), grid, reads_cls(encoder))


def rollout_matrices(attentions: list[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): Â_l = rownorm((A_l + I) / 2), R = Â_L ⋯ Â_1.

    ``discard_ratio`` zeroes that share of the smallest fused attention weights per image before adding the
    identity (as in jacobgil/vit-explain), never the CLS→CLS entry.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise MedrepError(f"discard ratio must be in [0, 1), got {discard_ratio}", where=Param("discard_ratio"))
    b, _, n, _ = attentions[0].shape
    eye = torch.eye(n, device=attentions[0].device, dtype=torch.float32).expand(b, n, n)
    result = eye
    for attn in attentions:
        a = fuse_heads(attn.float(), head_fusion)
        if discard_ratio > 0:
            flat = a.reshape(b, -1).clone()
            k = int(flat.shape[1] * discard_ratio)
            if k > 0:
                low = flat.topk(k, dim=-1, largest=False).indices
                keep00 = flat[:, 0].clone()
                flat.scatter_(1, low, 0.0)
                flat[:, 0] = keep00
            a = flat.reshape(b, n, n)
        a = (a + eye) / 2
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        result = a @ result
    return result


@register_method("rollout", needs_attention=True, default=True, supports=attention_support, options=[
    HEAD_FUSION,
    Option("discard_ratio", float, 0.0, flag="discard-ratio", help="rollout: share of the weakest attention weights dropped")])
def rollout(encoder: Encoder, pixels: torch.Tensor, target: Target | None = None, head_fusion: str = "mean",
            discard_ratio: float = 0.0) -> torch.Tensor:
    grid = require_grid(encoder)
    with torch.no_grad(), capture_attention(encoder) as rec:
        encoder.embed(pixels)
        attns = rec.complete(encoder.name)
    return query_row_to_grid(rollout_matrices(attns, head_fusion, discard_ratio), grid, reads_cls(encoder))


def graph_input(encoder: Encoder, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels on the encoder's device that require grad: the weights are frozen, so without this no
    autograd graph would reach the attention maps or hooked activations."""
    return pixels.detach().to(encoder.device, encoder.dtype).requires_grad_(True)


def attention_and_gradients(encoder: Encoder, pixels: torch.Tensor, target: Target) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Attention of every block, ∂score/∂A for each, and the (B,) scores; one forward + one backward."""
    target = resolve_classes(encoder, pixels, target)
    pixels = graph_input(encoder, pixels)
    with torch.enable_grad(), capture_attention(encoder) as rec:
        score = score_from_output(model_output(encoder, pixels, target), target)
        attns = rec.complete(encoder.name)
        # samples are independent in eval mode, so the gradient of the sum is each sample's own gradient
        grads = torch.autograd.grad(score.sum(), attns)
    return [a.detach() for a in attns], [g.detach() for g in grads], score.detach()


def gradient_weighted_rollout(attentions: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    """Chefer et al., ICCV 2021 ("generic attention explainability"), rule for self-attention:
    Ā_l = E_h[(∇A_l ⊙ A_l)⁺],  R ← R + Ā_l R, starting from R = I at the first block."""
    b, _, n, _ = attentions[0].shape
    r = torch.eye(n, device=attentions[0].device, dtype=torch.float32).expand(b, n, n).clone()
    for attn, grad in zip(attentions, gradients):
        cam = (grad.float() * attn.float()).clamp(min=0).mean(1)
        r = r + cam @ r
    return r


@register_method("chefer", needs_attention=True, default=True, supports=attention_support)
def chefer(encoder: Encoder, pixels: torch.Tensor, target: Target) -> torch.Tensor:
    grid = require_grid(encoder)
    attns, grads, _ = attention_and_gradients(encoder, pixels, target)
    return query_row_to_grid(gradient_weighted_rollout(attns, grads), grid, reads_cls(encoder))


@register_method("chefer-lrp", needs_attention=True, default=True, supports=lrp_support)
def chefer_lrp(encoder: Encoder, pixels: torch.Tensor, target: Target, start_block: int = 0,
               normalize_rows: bool = True) -> torch.Tensor:
    from medrep.explain.lrp import transformer_attribution

    return transformer_attribution(encoder, pixels, target, start_block=start_block, normalize_rows=normalize_rows)


# -- gradient methods ------------------------------------------------------------------------------
def default_gradcam_layer(encoder: Encoder) -> str:
    """ViTs: the first LayerNorm of the last block (timm ``blocks[-1].norm1``); CNNs: the encoder's last
    feature layer."""
    if encoder.token_grid is None:
        return encoder.default_layer
    blocks = getattr(encoder.module, "blocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks) and hasattr(blocks[-1], "norm1"):
        return f"blocks.{len(blocks) - 1}.norm1"
    sites = find_attention_sites(encoder)
    block_name = sites[-1].name.rsplit(".", 1)[0] if "." in sites[-1].name else ""
    block = encoder.module.get_submodule(block_name)
    for child_name, child in block.named_children():
        if isinstance(child, nn.LayerNorm):
            return f"{block_name}.{child_name}" if block_name else child_name
    raise MedrepError(f"cannot find the pre-attention LayerNorm of the last block of model {encoder.name}; "
                      "pass a layer name", where=Param("gradcam_layer"))


def gradcam_module(encoder: Encoder, layer: str | None) -> nn.Module:
    """The module Grad-CAM reads (``layer``, default :func:`default_gradcam_layer`); a bad name is a
    ``gradcam_layer`` error (the model's own check names ``layer``, an option of other commands)."""
    name = layer or default_gradcam_layer(encoder)
    try:
        return encoder.get_submodule_checked(name)
    except MedrepError as err:
        raise err.placed(Param("gradcam_layer")) from None


def _as_batch_first(out: torch.Tensor, batch: int) -> torch.Tensor:
    if out.ndim == 3 and out.shape[0] != batch and out.shape[1] == batch:
        return out.transpose(0, 1)  # sequence-first transformers (open_clip without batch_first)
    return out


@register_method("gradcam", default=True, options=[
    Option("layer", str, None, flag="gradcam-layer",
           help="Grad-CAM layer (default: ViT blocks[-1].norm1, CNN last feature layer)")])
def gradcam(encoder: Encoder, pixels: torch.Tensor, target: Target, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al.): ReLU(Σ_c mean_ij(∂y/∂A_c) · A_c) at ``layer``; ViT tokens are reshaped
    to the patch grid (CLS and registers dropped), as pytorch-grad-cam's reshape_transform does."""
    layer = layer or default_gradcam_layer(encoder)
    module = gradcam_module(encoder, layer)
    target = resolve_classes(encoder, pixels, target)
    pixels = graph_input(encoder, pixels)
    acts: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        acts.append(out[0] if isinstance(out, (tuple, list)) else out)

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            score = score_from_output(model_output(encoder, pixels, target), target)
            if not acts:
                raise MedrepError(f"layer {layer!r} of model {encoder.name} did not run", where=Param("gradcam_layer"))
            act = acts[-1]
            (grad,) = torch.autograd.grad(score.sum(), act)
    finally:
        handle.remove()
    b = pixels.shape[0]
    act, grad = _as_batch_first(act.detach().float(), b), _as_batch_first(grad.float(), b)
    if act.ndim == 3:
        grid = require_grid(encoder)
        if act.shape[1] < grid.num_prefix_tokens + grid.num_patches:
            raise MedrepError(f"layer {layer!r} gives {act.shape[1]} tokens, not the {grid.num_prefix_tokens} prefix and "
                              f"{grid.num_patches} patch tokens of the image; name a layer inside a transformer block",
                              where=Param("gradcam_layer"))
        act = grid.to_map(grid.patch_tokens(act)).permute(0, 3, 1, 2)
        grad = grid.to_map(grid.patch_tokens(grad)).permute(0, 3, 1, 2)
    if act.ndim != 4:
        raise MedrepError(f"layer {layer!r} gives shape {tuple(act.shape)}; Grad-CAM needs tokens or a feature map",
                          where=Param("gradcam_layer"))
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return (weights * act).sum(1).clamp(min=0)


def ig_coefficients(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(alphas, step sizes) of the path integral, the same rules captum offers."""
    if steps < 1:
        raise MedrepError("needs at least one step", where=Param("ig_steps"))
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + x), 0.5 * w
    if rule in ("riemann_left", "riemann_right", "riemann_middle"):
        start = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
        return (np.arange(steps) + start) / steps, np.full(steps, 1.0 / steps)
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise MedrepError("the trapezoid rule needs at least two steps", where=Param("ig_steps"))
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return np.linspace(0, 1, steps), w
    raise MedrepError(f"unknown integration rule {rule!r}", where="ig_rule")


def integrated_gradients(encoder: Encoder, pixels: torch.Tensor, target: Target, steps: int = 32,
                         baseline: torch.Tensor | float = 0.0, rule: str = "gausslegendre",
                         internal_batch_size: int = 64) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) w.r.t. raw pixels, (B, C, H, W).

    The B·steps interpolated inputs run in chunks of ``internal_batch_size`` rows to bound memory.
    """
    target = resolve_classes(encoder, pixels, target)
    x = pixels.to(encoder.device, encoder.dtype)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    alphas, sizes = ig_coefficients(steps, rule)
    alphas_t = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
    sizes_t = torch.as_tensor(sizes, dtype=x.dtype, device=x.device)
    b = x.shape[0]
    total = torch.zeros_like(x)
    rows = torch.arange(b * steps, device=x.device)
    chunk = max(1, int(internal_batch_size))
    for start in range(0, rows.numel(), chunk):
        r = rows[start:start + chunk]
        bi, si = r // steps, r % steps
        a = alphas_t[si].view(-1, 1, 1, 1)
        inp = (base[bi] + a * (x[bi] - base[bi])).detach().requires_grad_(True)
        with torch.enable_grad():
            score = score_from_output(model_output(encoder, inp, target.index(bi)), target.index(bi))
            (g,) = torch.autograd.grad(score.sum(), inp)
        total.index_add_(0, bi, g * sizes_t[si].view(-1, 1, 1, 1))
    return total * (x - base)


@register_method("ig", default=True, options=[
    Option("steps", int, 32, flag="ig-steps", help="integrated-gradients steps")])
def ig(encoder: Encoder, pixels: torch.Tensor, target: Target, steps: int = 32, baseline: float = 0.0,
       rule: str = "gausslegendre", internal_batch_size: int = 64, reduce: str = "abs") -> torch.Tensor:
    attr = integrated_gradients(encoder, pixels, target, steps, baseline, rule, internal_batch_size)
    if reduce == "abs":
        return attr.abs().sum(1)
    if reduce == "positive":
        return attr.sum(1).clamp(min=0)
    if reduce == "sum":
        return attr.sum(1)
    raise MedrepError(f"unknown channel reduction {reduce!r} (abs, positive, sum)", where="ig_reduce")


# -- baselines ------------------------------------------------------------------------------------
@register_method("random", default=True, baseline=True)
def random_map(encoder: Encoder, pixels: torch.Tensor, target: Target | None = None, seed: int = 0) -> torch.Tensor:
    """Uniform noise at pixel resolution: its pointing-game rate is the mask's share of the image."""
    b, _, h, w = pixels.shape
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand(b, h, w, generator=gen).to(pixels.device)


@register_method("center", default=True, baseline=True)
def center_prior(encoder: Encoder, pixels: torch.Tensor, target: Target | None = None, sigma: float = 0.25) -> torch.Tensor:
    """A centred isotropic Gaussian (σ as a share of the image side): what a centre-biased map scores."""
    b, _, h, w = pixels.shape
    ys = (torch.arange(h, dtype=torch.float32, device=pixels.device) - (h - 1) / 2) / (sigma * h)
    xs = (torch.arange(w, dtype=torch.float32, device=pixels.device) - (w - 1) / 2) / (sigma * w)
    g = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return g.expand(b, h, w).clone()


# -- post-processing ------------------------------------------------------------------------------
def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max to [0, 1]; a constant map becomes all zeros (it points nowhere)."""
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return out.reshape(maps.shape)


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear",
             offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """(B, h, w) → (B, H, W).  ``offset`` (y, x), in units of one source cell, is where each cell's value
    belongs relative to the cell's centre (a token of a padded conv stem sees a field shifted off its patch)."""
    if mode not in UPSAMPLING:
        raise MedrepError(f"unknown upsampling {mode!r} (choose {', '.join(UPSAMPLING)})", where=Param("upsample"))
    if tuple(maps.shape[-2:]) == tuple(size) and not any(offset):
        return maps
    if not any(offset):
        kw = {"align_corners": False} if mode != "nearest" else {}
        return F.interpolate(maps[:, None].float(), size=tuple(size), mode=mode, **kw)[:, 0]
    # Sample the cell grid where each output pixel's centre falls once the cells are moved by ``offset``;
    # with offset 0 this is exactly F.interpolate(align_corners=False) (border cells repeat outwards).
    (h, w), (big_h, big_w) = maps.shape[-2:], tuple(size)
    ys = (torch.arange(big_h, dtype=torch.float32, device=maps.device) + 0.5) * (h / big_h) - 0.5 - offset[0]
    xs = (torch.arange(big_w, dtype=torch.float32, device=maps.device) + 0.5) * (w / big_w) - 0.5 - offset[1]
    gy = 2 * ys / max(h - 1, 1) - 1 if h > 1 else torch.zeros_like(ys)
    gx = 2 * xs / max(w - 1, 1) - 1 if w > 1 else torch.zeros_like(xs)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    grid = grid.unsqueeze(0).expand(maps.shape[0], -1, -1, -1)
    return F.grid_sample(maps[:, None].float(), grid, mode=mode, padding_mode="border", align_corners=True)[:, 0]


def token_offset(encoder: Encoder, maps: torch.Tensor) -> tuple[float, float]:
    """The token grid's centre offset in cells, for maps at the token grid's resolution; else (0, 0)."""
    grid = encoder.token_grid
    if grid is None or tuple(maps.shape[-2:]) != (grid.height, grid.width):
        return (0.0, 0.0)
    return (grid.center_offset[0] / grid.patch_size[0], grid.center_offset[1] / grid.patch_size[1])


def explain(encoder: Encoder, pixels: torch.Tensor, method: str, target: Target | None = None,
            upsampling: str = "bilinear", **options: Any) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] at the image size for ``method`` (a name from :data:`METHODS`)."""
    return explain_with_raw(encoder, pixels, method, target, upsampling, **options)[1]


def explain_with_raw(encoder: Encoder, pixels: torch.Tensor, method: str, target: Target | None = None,
                     upsampling: str = "bilinear", **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(upsampled, maps): :func:`explain`'s maps and the same (B, H, W) maps before the min-max step.

    Scores that compare amounts (relevance mass) need the method's own values: min-max normalisation
    subtracts each map's minimum, which moves mass and lifts a flat map.
    """
    raw = raw_maps(encoder, pixels, method, target, **options)
    up = upsample(raw, tuple(pixels.shape[-2:]), upsampling, token_offset(encoder, raw))
    return up, normalize_maps(up)


def raw_maps(encoder: Encoder, pixels: torch.Tensor, method: str, target: Target | None = None,
             **options: Any) -> torch.Tensor:
    """(B, h, w) maps at the method's own resolution (token grid, feature map or pixels), float, checked finite."""
    fn = get_method(method)
    target = target if target is not None else Target("class")
    try:
        raw = fn(encoder, pixels, target, **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise MedrepError(f"method {method!r} got an unknown option: {err}", where=Param("methods")) from err
        raise
    if not torch.isfinite(raw).all():
        raise MedrepError(f"method {method!r} produced non-finite values on model {encoder.name}", where=Param("methods"))
    return raw.detach().float()


def __getattr__(name: str) -> Any:
    # read from the registry, so a baseline registered later is one too
    if name == "BASELINES":
        return baseline_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
