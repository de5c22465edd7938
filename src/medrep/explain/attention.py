"""Attention capture without rewriting the model: find the attention modules, switch fused attention off,
record the (B, heads, N, N) softmax attention of each block through hooks.

Three kinds of attention module are recognised generically (by structure, not by model name):

* ``timm``: modules with a ``fused_attn`` flag and an ``attn_drop`` submodule (timm ``Attention`` and
  friends).  Fused SDPA is switched off for the call, and a forward hook on ``attn_drop`` sees the
  post-softmax attention (dropout is the identity in eval mode).
* ``hf``: Hugging Face attention modules (class name ends in ``Attention``, own q/k/v projections and a
  ``config`` with ``_attn_implementation``).  The config is switched to ``"eager"`` for the call (eager
  attention returns its weights as the second output), and a forward hook reads that output.
* ``mha``: ``torch.nn.MultiheadAttention`` (open_clip's visual tower).  Its ``forward`` is replaced for
  the call by the same computation from the module's own weights that keeps the softmax attention in the
  graph (torch hands back only a detached-from-the-graph view); callers receive what they asked for.

Every switch is a context manager: hooks are registered in ``__enter__`` and removed in ``__exit__``,
flags and wrapped methods restored, also when the body raises.  Captured tensors stay in the autograd
graph, so ``torch.autograd.grad(score, record.maps)`` gives ∂score/∂A for gradient-weighted methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medrep.errors import MedrepError, Param
from medrep.models.base import Encoder, TokenGrid

_HF_PROJ_NAMES = ("q_proj", "query", "qkv", "k_proj", "key", "in_proj")


@dataclass(frozen=True)
class AttentionSite:
    """One attention module of the model: its dotted name, the module and how it is captured."""

    name: str
    module: nn.Module
    kind: str  # "timm" | "hf" | "mha"


def _site_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.MultiheadAttention):
        return "mha"
    if hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), nn.Module):
        return "timm"
    cfg = getattr(module, "config", None)
    if (type(module).__name__.endswith("Attention") and cfg is not None and hasattr(cfg, "_attn_implementation")
            and any(isinstance(getattr(module, n, None), nn.Linear) for n in _HF_PROJ_NAMES)):
        return "hf"
    return None


def vision_prefix(module: nn.Module) -> str:
    """Name prefix of the image tower of a dual-tower model ('' for a plain vision model)."""
    for attr in ("visual", "vision_model"):
        if isinstance(getattr(module, attr, None), nn.Module):
            return attr + "."
    return ""


def in_block_stack(name: str) -> bool:
    """Whether a module sits inside a numbered stack of transformer blocks (``blocks.3.attn``,
    ``encoder.layer.3.attention``, ``transformer.resblocks.3.attn``).  Attention outside such a stack is a
    pooling head (SigLIP's ``head.attention``, timm's ``attn_pool``, open_clip's ``attn_pool``): it attends
    from learned queries, not between the image tokens, so it is not a block."""
    return any(part.isdigit() for part in name.split("."))


def find_attention_sites(encoder: Encoder) -> list[AttentionSite]:
    """The self-attention of every transformer block of ``encoder``'s image tower, in forward (module)
    order; a clear error when there are none."""
    sites = []
    prefix = vision_prefix(encoder.module)
    for name, module in encoder.module.named_modules():
        kind = _site_kind(module)
        # dual-tower models (CLIP, SigLIP): the text tower's attention never runs on an image
        if kind is not None and name.startswith(prefix) and in_block_stack(name[len(prefix):]):
            sites.append(AttentionSite(name, module, kind))
    if not sites:
        raise MedrepError(
            f"model {encoder.name} has no attention modules (no timm Attention, Hugging Face attention or "
            "nn.MultiheadAttention found); attention-based methods (attention, rollout, chefer, chefer-lrp) "
            "need a vision transformer — use gradcam or ig for this model", where=Param("methods"))
    return sites


def select_sites(sites: Sequence[AttentionSite], blocks: Sequence[int] | None, model: str) -> list[AttentionSite]:
    if blocks is None:
        return list(sites)
    out = []
    for b in blocks:
        if not -len(sites) <= b < len(sites):
            raise MedrepError(f"model {model} has {len(sites)} attention blocks; block {b} does not exist", where=Param("block"))
        out.append(sites[b])
    return out


class fused_attention_off:
    """Context manager: fused / SDPA attention switched off on the given sites, restored on exit."""

    def __init__(self, sites: Sequence[AttentionSite]):
        self.sites = list(sites)
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> "fused_attention_off":
        for site in self.sites:
            if site.kind == "timm":
                self._set(site.module, "fused_attn", False)
            elif site.kind == "hf":
                self._set(site.module.config, "_attn_implementation", "eager")
        return self

    def _set(self, obj: Any, attr: str, value: Any) -> None:
        if any(o is obj and a == attr for o, a, _ in self._saved):
            return  # HF layers share one config: save its original value once
        self._saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    def __exit__(self, *exc: Any) -> None:
        for obj, attr, value in reversed(self._saved):
            setattr(obj, attr, value)
        self._saved.clear()


@dataclass
class AttentionRecord:
    """What a capture saw in the last forward pass: one (B, heads, N, N) tensor per site."""

    sites: list[AttentionSite]
    maps: list[torch.Tensor | None] = field(default_factory=list)

    def clear(self) -> None:
        self.maps = [None] * len(self.sites)

    def complete(self, model: str) -> list[torch.Tensor]:
        missing = [s.name for s, m in zip(self.sites, self.maps) if m is None]
        if missing:
            raise MedrepError(f"attention of {', '.join(missing)} in model {model} was not captured "
                              "(the module did not run, or returned no weights)", where=Param("methods"))
        return list(self.maps)  # type: ignore[arg-type]


class capture_attention:
    """Context manager recording the softmax attention of ``blocks`` (default: all) of ``encoder``.

    >>> with capture_attention(encoder) as rec:
    ...     score = target_score(encoder, pixels, target)
    ...     grads = torch.autograd.grad(score.sum(), rec.complete(encoder.name))
    """

    def __init__(self, encoder: Encoder, blocks: Sequence[int] | None = None):
        self.encoder = encoder
        self.sites = select_sites(find_attention_sites(encoder), blocks, encoder.name)
        self.record = AttentionRecord(self.sites)
        self._fused = fused_attention_off(self.sites)
        self._handles: list[Any] = []
        self._wrapped: list[tuple[nn.Module, Any]] = []

    def __enter__(self) -> AttentionRecord:
        self.record.clear()
        self._fused.__enter__()
        try:
            for i, site in enumerate(self.sites):
                if site.kind == "timm":
                    self._handles.append(site.module.attn_drop.register_forward_hook(self._store(i)))
                elif site.kind == "hf":
                    self._handles.append(site.module.register_forward_hook(self._store_second(i)))
                else:
                    self._wrap_mha(i, site.module)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.record

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for module, previous in reversed(self._wrapped):
            if previous is None:
                del module.forward  # back to the class's forward
            else:
                module.forward = previous
        self._wrapped.clear()
        self._fused.__exit__(*exc)

    # -- hooks -----------------------------------------------------------------------------------
    def _store(self, i: int):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            self.record.maps[i] = out
        return hook

    def _store_second(self, i: int):
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(out, (tuple, list)) and len(out) > 1 and torch.is_tensor(out[1]) and out[1].ndim == 4:
                self.record.maps[i] = out[1]
        return hook

    def _wrap_mha(self, i: int, module: nn.MultiheadAttention) -> None:
        previous = module.__dict__.get("forward")
        record = self.record

        def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
            out, weights = mha_with_weights(module, query, key, value, key_padding_mask, attn_mask, is_causal)
            record.maps[i] = weights
            if not need_weights:
                return out, None
            return out, (weights.mean(1) if average_attn_weights else weights)

        module.forward = forward
        self._wrapped.append((module, previous))


def mha_with_weights(m: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                     is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.MultiheadAttention``'s own computation, from its own weights, returning the (B, heads, L, S)
    softmax attention that the output is computed from.

    torch returns its weights as a *view* made after they were used, so ∂score/∂(returned weights) does not
    exist; this keeps the same tensor in the output's graph (tests check the outputs match torch's).
    """
    if m.bias_k is not None or m.add_zero_attn:
        raise MedrepError("nn.MultiheadAttention with bias_k/bias_v or add_zero_attn is not supported", where=Param("methods"))
    if not m.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    b, n_q, e = query.shape
    n_k = key.shape[1]
    h = m.num_heads
    d = e // h
    if m._qkv_same_embed_dim:
        wq, wk, wv = m.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
    bq, bk, bv = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
    q = F.linear(query, wq, bq).view(b, n_q, h, d).transpose(1, 2)
    k = F.linear(key, wk, bk).view(b, n_k, h, d).transpose(1, 2)
    v = F.linear(value, wv, bv).view(b, n_k, h, d).transpose(1, 2)
    logits = (q * d ** -0.5) @ k.transpose(-2, -1)
    if is_causal and attn_mask is None:
        attn_mask = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).triu(1)
    if attn_mask is not None:
        mask = attn_mask.view(b, h, n_q, n_k) if attn_mask.ndim == 3 else attn_mask
        logits = logits.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    if key_padding_mask is not None:
        kpm = key_padding_mask.view(b, 1, 1, n_k)
        logits = logits.masked_fill(kpm, float("-inf")) if kpm.dtype == torch.bool else logits + kpm
    attn = logits.softmax(-1)
    if m.training and m.dropout > 0:
        attn = F.dropout(attn, m.dropout)
    out = (attn @ v).transpose(1, 2).reshape(b, n_q, e)
    out = m.out_proj(out)
    if not m.batch_first:
        out = out.transpose(0, 1)
    return out, attn


# -- token helpers shared by the attention methods ---------------------------------------------------
def require_grid(encoder: Encoder) -> TokenGrid:
    if encoder.token_grid is None:
        raise MedrepError(f"model {encoder.name} has no token grid (not a vision transformer); "
                          "attention-based methods need one — use gradcam or ig", where=Param("methods"))
    return encoder.token_grid


def fuse_heads(attn: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """(B, heads, N, N) → (B, N, N)."""
    if fusion == "mean":
        return attn.mean(1)
    if fusion == "max":
        return attn.amax(1)
    if fusion == "min":
        return attn.amin(1)
    raise MedrepError(f"unknown head fusion {fusion!r} (choose mean, max, min)", where=Param("head_fusion"))


def reads_cls(encoder: Encoder) -> bool:
    """Whether the model's output is read from the CLS token (``default_pool == "cls"``).  A ViT that pools
    by mean (timm ``global_pool='avg'``, MAE-style fine-tunes) may still carry a CLS token its output never
    sees: its attention row gets no gradient, so the readout must be the patch rows."""
    grid = encoder.token_grid
    return grid is not None and grid.has_cls and encoder.default_pool == "cls"


def query_row_to_grid(matrix: torch.Tensor, grid: TokenGrid, cls_row: bool | None = None) -> torch.Tensor:
    """(B, N, N) token-to-token matrix → (B, h, w): the readout row over the patch tokens (CLS and
    registers dropped).

    ``cls_row``: the CLS row (a CLS-pooled model); otherwise the rows of all patch tokens are averaged (what
    a mean-pooled model reads out).  Default (None): the CLS row when the grid has a CLS token — pass
    :func:`reads_cls` of the encoder so the row follows the model's pooling.
    """
    p0, p1 = grid.num_prefix_tokens, grid.num_prefix_tokens + grid.num_patches
    if matrix.shape[-1] != p1 and matrix.shape[-1] < p1:
        raise MedrepError(f"attention has {matrix.shape[-1]} tokens but the token grid expects {p1}", where="token_grid")
    if cls_row is None:
        cls_row = grid.has_cls
    if cls_row and not grid.has_cls:
        raise MedrepError("the token grid has no CLS token to read a row from", where="token_grid")
    row = matrix[:, 0, p0:p1] if cls_row else matrix[:, p0:p1, p0:p1].mean(1)
    return row.reshape(row.shape[0], grid.height, grid.width)
