"""Chefer et al. (CVPR 2021) "Transformer Interpretability Beyond Attention Visualization" for timm ViTs,
computed from hooks on the unmodified model (no vendored ``ViT_LRP.py`` copy).

One forward pass records, per block, the inputs of ``qkv``, ``proj``, ``mlp.fc1``, ``mlp.fc2``, the
attention probabilities, the residual-branch outputs and the attention gradients ∂y/∂A.  Relevance is
then propagated from the output back to block ``start_block`` with these rules (those of Chefer's
``layers_ours.py``):

* ``Linear`` (head, qkv, proj, fc1, fc2): LRP-αβ with α=1, β=0 — only positive contributions
  (x⁺w⁺ + x⁻w⁻), bias ignored: R_i = Σ_j (x⁺_i w⁺_ji + x⁻_i w⁻_ji) R_j / z_j.
* LayerNorm, GELU, softmax, dropout, LayerScale: identity (relevance passes unchanged).
* residual ``x + f(x)``: gradient×input split, each operand rescaled so the two shares are proportional
  to |Σ share| and together sum to ΣR (conservation).
* ``A @ V`` and ``q @ kᵀ``: gradient×input on both operands, each halved.
* CLS pooling puts the head's relevance on token 0; average pooling spreads it as x_i / (N · x̄).

Attribution: per block Ā = E_h[(∇A ⊙ R_A)⁺], then rollout with the identity, rownorm(Ā_l + I) multiplied
from block ``start_block`` up, CLS row over the patch tokens — for an average-pooled model (whose relevance
starts on the patch tokens) the mean of the patch rows instead.

Deviations from the CVPR code (documented because users compare): (1) batched — the residual rule's
sums are per sample (the original sums over the whole batch, i.e. assumes batch 1); (2) for an
embedding target (no head) the starting relevance is gradient×input at the final norm's output tokens
of the cosine with the embedding norm held fixed, R = t ⊙ ∂(f·r̂/‖f‖)/∂t (it sums to the cosine),
instead of a one-hot logit; (3) the rollout rows are normalised after adding the identity
(``normalize_rows=True``, as the study this reproduces describes; Chefer's released ``ViT_LRP.py``
leaves that line commented out — pass ``normalize_rows=False`` for it); (4) when the score is not a linear
head on the CLS / mean token — attention pooling (timm ``global_pool='map'``) or a projection behind the
trunk (open_clip with a timm trunk) — the starting relevance is gradient×input of the score at the final
norm's output tokens, as in (2).

Supported: timm ViT-style blocks (``attn.qkv``/``proj``, ``mlp.fc1``/``fc2``, ``ls1``/``ls2``), as the model
itself or as open_clip's timm trunk; :func:`lrp_support` says so before any work for every other model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.explain.attention import capture_attention, query_row_to_grid, reads_cls, require_grid
from medrep.explain.targets import Target, model_output, resolve_classes, score_from_output
from medrep.models.base import Encoder


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b with b nudged away from 0 and 0 where b == 0 (Chefer's ``safe_divide``)."""
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).to(den.dtype) * 1e-9
    return a / den * b.ne(0).to(b.dtype)


def linear_alpha1_beta0(x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """LRP-α1β0 through ``y = x Wᵀ`` (bias ignored): relevance of the inputs (…, in)."""
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px, nx = x.clamp(min=0), x.clamp(max=0)
    z = px @ pw.T + nx @ nw.T
    s = safe_divide(relevance, z)
    return px * (s @ pw) + nx * (s @ nw)


def residual_rule(x0: torch.Tensor, x1: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance of the operands of ``x0 + x1`` (per-sample renormalised so Σ is conserved)."""
    s = safe_divide(relevance, x0 + x1)
    a, b = x0 * s, x1 * s
    dims = tuple(range(1, a.ndim))
    shape = (-1,) + (1,) * (a.ndim - 1)
    a_sum, b_sum, r_sum = a.sum(dims), b.sum(dims), relevance.sum(dims)
    denom = a_sum.abs() + b_sum.abs()
    a_fact = safe_divide(a_sum.abs(), denom) * r_sum
    b_fact = safe_divide(b_sum.abs(), denom) * r_sum
    return a * safe_divide(a_fact, a_sum).view(shape), b * safe_divide(b_fact, b_sum).view(shape)


def matmul_rule(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient×input relevance of both operands of ``a @ b`` (batched over leading dims), each halved."""
    s = safe_divide(relevance, a @ b)
    return a * (s @ b.transpose(-2, -1)) / 2, b * (a.transpose(-2, -1) @ s) / 2


@dataclass
class LRPState:
    """Per-block quantities of one batch (lists ordered from the first block)."""

    attention: list[torch.Tensor]            # (B, heads, N, N) softmax attention
    gradients: list[torch.Tensor]            # ∂score/∂A
    attention_relevance: list[torch.Tensor]  # R_A (B, heads, N, N); blocks below start_block hold None
    block_input_relevance: list[torch.Tensor]  # relevance of each block's input tokens (B, N, D)
    output_relevance: torch.Tensor           # relevance at the final norm's output tokens (B, N, D)


#: The families chefer-lrp reads through hooks, named in its refusal.
LRP_FAMILIES = ("timm VisionTransformer-style models (timm:vit_*, demo-vit, timm ViTs with registers or MAP pooling) "
                "and open_clip models with a timm ViT trunk (BiomedCLIP's structure)")


def _is_timm_vit(module: nn.Module | None) -> bool:
    blocks = getattr(module, "blocks", None) if isinstance(module, nn.Module) else None
    return blocks is not None and len(blocks) > 0 and isinstance(getattr(module, "norm", None), nn.Module) and all(
        hasattr(b, "attn") and isinstance(getattr(b.attn, "qkv", None), nn.Linear) and isinstance(getattr(b.attn, "proj", None), nn.Linear)
        and isinstance(getattr(getattr(b, "mlp", None), "fc1", None), nn.Linear) and isinstance(getattr(b.mlp, "fc2", None), nn.Linear)
        and hasattr(b, "ls1") and hasattr(b, "ls2") and hasattr(b, "norm1")
        for b in blocks)


def timm_vit_root(encoder: Encoder) -> nn.Module | None:
    """The timm VisionTransformer whose blocks chefer-lrp reads: the model itself, or open_clip's timm trunk."""
    trunk = getattr(getattr(encoder.module, "visual", None), "trunk", None)
    for candidate in (encoder.module, trunk):
        if _is_timm_vit(candidate):
            return candidate
    return None


def lrp_support(encoder: Encoder) -> str | None:
    """Why chefer-lrp cannot explain ``encoder`` (None when it can): known before any work."""
    if timm_vit_root(encoder) is None:
        return (f"chefer-lrp supports {LRP_FAMILIES}; model {encoder.name} is not one — use chefer "
                "(gradient-weighted rollout), which works on any ViT")
    return None


def _check_timm_vit(encoder: Encoder) -> tuple[nn.Module, list[nn.Module]]:
    reason = lrp_support(encoder)
    if reason is not None:
        raise MedrepError(reason, where=Param("methods"))
    root = timm_vit_root(encoder)
    return root, list(root.blocks)


def lrp_state(encoder: Encoder, pixels: torch.Tensor, target: Target, start_block: int = 0) -> LRPState:
    module, blocks = _check_timm_vit(encoder)
    n_blocks = len(blocks)
    if not -n_blocks <= start_block < n_blocks:
        raise MedrepError(f"model {encoder.name} has {n_blocks} blocks; start block {start_block} does not exist", where="start_block")
    start_block %= n_blocks
    target = resolve_classes(encoder, pixels, target)
    saved: dict[tuple[int, str], torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}

    def keep_input(i: int, key: str):
        def hook(_m: nn.Module, inp: Any, _out: Any) -> None:
            saved[(i, key)] = inp[0]
        return hook

    def keep_output(i: int, key: str):
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            saved[(i, key)] = out
        return hook

    handles = []
    try:
        for i, blk in enumerate(blocks):
            handles += [
                blk.register_forward_hook(keep_input(i, "x_in")),
                blk.attn.qkv.register_forward_hook(keep_input(i, "qkv_in")),
                blk.attn.qkv.register_forward_hook(keep_output(i, "qkv_out")),
                blk.attn.proj.register_forward_hook(keep_input(i, "proj_in")),
                blk.ls1.register_forward_hook(keep_output(i, "branch1")),
                blk.ls2.register_forward_hook(keep_output(i, "branch2")),
                blk.mlp.fc1.register_forward_hook(keep_input(i, "fc1_in")),
                blk.mlp.fc2.register_forward_hook(keep_input(i, "fc2_in")),
            ]
        norm = getattr(module, "norm", None)
        if isinstance(norm, nn.Module):
            handles.append(norm.register_forward_hook(lambda _m, _i, out: final.__setitem__("tokens", out)))
        head = getattr(module, "head", None)
        if isinstance(head, nn.Linear):
            handles.append(head.register_forward_hook(lambda _m, inp, _o: final.__setitem__("head_in", inp[0])))
        x = pixels.detach().to(encoder.device, encoder.dtype).requires_grad_(True)
        with torch.enable_grad(), capture_attention(encoder) as rec:
            out = model_output(encoder, x, target)
            score = score_from_output(out, target)
            attns = rec.complete(encoder.name)
            if len(attns) != n_blocks:
                raise MedrepError(f"model {encoder.name}: {len(attns)} attention maps for {n_blocks} blocks", where=Param("methods"))
            pool = getattr(module, "global_pool", "token")
            from_tokens = target.kind == "embedding" or pool not in ("token", "avg") or module is not encoder.module
            grads = torch.autograd.grad(score.sum(), attns, retain_graph=from_tokens)
            if from_tokens and target.kind != "embedding" and "tokens" in final:
                # a head behind attention pooling (MAP): relevance starts as gradient×input at the tokens
                grads = tuple(grads) + torch.autograd.grad(score.sum(), [final["tokens"]])
            elif target.kind == "embedding" and "tokens" in final:
                # cosine = Σ_j f_j r̂_j / ‖f‖: with ‖f‖ held fixed the score is linear in f, so gradient×input
                # at the tokens sums to the cosine (plain grad×input of a cosine sums to 0: it is scale-free)
                ref = torch.nn.functional.normalize(target.references.to(out.device, out.dtype), dim=-1)
                linear = (out * ref).sum(-1) / out.norm(dim=-1).detach().clamp_min(1e-12)
                grads = tuple(grads) + torch.autograd.grad(linear.sum(), [final["tokens"]])
    finally:
        for h in handles:
            h.remove()
    attns = [a.detach().float() for a in attns]
    attn_grads = [g.detach().float() for g in grads[:n_blocks]]
    if "tokens" not in final:
        raise MedrepError(f"model {encoder.name} has no final norm to start relevance from", where=Param("methods"))
    tokens = final["tokens"].detach().float()
    b, n, d = tokens.shape
    prefix = int(getattr(module, "num_prefix_tokens", 1))

    # -- relevance at the final norm's output tokens --------------------------------------------
    if from_tokens:
        r = tokens * grads[-1].detach().float()
    else:
        if "head_in" not in final:
            raise MedrepError(f"model {encoder.name} has no linear head; use --explain-target embedding", where=Param("explain_target"))
        feat = final["head_in"].detach().float()
        one_hot = torch.nn.functional.one_hot(target.classes.to(feat.device).long(), module.head.out_features).float()
        r_feat = linear_alpha1_beta0(feat, module.head.weight.float(), one_hot)
        r = torch.zeros_like(tokens)
        if pool == "token":
            r[:, 0] = r_feat
        elif pool == "avg":
            # z = mean_i x_i: gradient×input puts x_i / (N·z) of each feature's relevance on token i
            patch = tokens[:, prefix:]
            r[:, prefix:] = patch * safe_divide(r_feat, patch.sum(1))[:, None]
        else:  # unreachable: other poolings start from the tokens (from_tokens)
            raise MedrepError(f"chefer-lrp handles CLS ('token') and 'avg' pooling, not {pool!r}", where=Param("methods"))
    output_relevance = r

    attn_rel: list[torch.Tensor | None] = [None] * n_blocks
    block_in_rel: list[torch.Tensor | None] = [None] * n_blocks
    for i in range(n_blocks - 1, start_block - 1, -1):
        saved_here = {key: t.detach().float() for (j, key), t in saved.items() if j == i}
        r, attn_rel[i] = _through_block(blocks[i], saved_here, attns[i], r, encoder.dtype)
        block_in_rel[i] = r
    return LRPState(attns, attn_grads, attn_rel, block_in_rel, output_relevance)  # type: ignore[arg-type]


def _through_block(blk: nn.Module, saved: dict[str, torch.Tensor], attention: torch.Tensor, r: torch.Tensor,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance ``r`` at a block's output carried back to its input, and the relevance of its attention map."""
    b, n, _ = r.shape
    x_in, branch1, branch2 = saved["x_in"], saved["branch1"], saved["branch2"]
    # x_out = x_mid + mlp(norm2(x_mid)),  x_mid = x_in + attn(norm1(x_in))
    r_mid, r_mlp = residual_rule(x_in + branch1, branch2, r)
    r_mlp = linear_alpha1_beta0(saved["fc2_in"], blk.mlp.fc2.weight.float(), r_mlp)
    r_mlp = linear_alpha1_beta0(saved["fc1_in"], blk.mlp.fc1.weight.float(), r_mlp)
    r_mid = r_mid + r_mlp  # clone: the two uses of x_mid add up
    r_res, r_attn_out = residual_rule(x_in, branch1, r_mid)
    attn = blk.attn
    heads = attn.num_heads
    r_ctx = linear_alpha1_beta0(saved["proj_in"], attn.proj.weight.float(), r_attn_out)  # (B, N, C)
    hd = r_ctx.shape[-1] // heads
    r_ctx = r_ctx.view(b, n, heads, hd).transpose(1, 2)  # (B, h, N, hd)
    qkv = saved["qkv_out"].view(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
    with torch.no_grad():
        q = attn.q_norm(qkv[0].to(dtype)).float() * attn.scale
        k = attn.k_norm(qkv[1].to(dtype)).float()
    v = qkv[2]
    r_a, r_v = matmul_rule(attention, v, r_ctx)
    r_q, r_kt = matmul_rule(q, k.transpose(-2, -1), r_a)  # softmax: identity
    r_k = r_kt.transpose(-2, -1)
    r_qkv = torch.stack([r_q, r_k, r_v], 0).permute(1, 3, 0, 2, 4).reshape(b, n, 3 * heads * hd)
    r_norm1 = linear_alpha1_beta0(saved["qkv_in"], attn.qkv.weight.float(), r_qkv)
    return r_res + r_norm1, r_a  # clone of x_in


def transformer_attribution(encoder: Encoder, pixels: torch.Tensor, target: Target, start_block: int = 0,
                            normalize_rows: bool = True) -> torch.Tensor:
    """(B, h, w) Chefer CVPR-2021 transformer attribution (see the module docstring)."""
    grid = require_grid(encoder)
    state = lrp_state(encoder, pixels, target, start_block)
    n = state.attention[0].shape[-1]
    b = state.attention[0].shape[0]
    eye = torch.eye(n, device=state.attention[0].device).expand(b, n, n)
    joint = None
    for grad, rel in zip(state.gradients, state.attention_relevance):
        if rel is None:
            continue
        cam = (grad * rel).clamp(min=0).mean(1) + eye
        if normalize_rows:
            cam = cam / cam.sum(-1, keepdim=True)
        joint = cam if joint is None else cam @ joint
    return query_row_to_grid(joint, grid, reads_cls(encoder))
