"""Attention capture: equals independently computed attention, and leaves the model exactly as it was."""
from __future__ import annotations

import pytest
import torch

from medrep.errors import MedrepError
from medrep.explain.attention import capture_attention, find_attention_sites, query_row_to_grid
from medrep.explain.methods import explain


def _hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


def _manual_timm_attention(encoder, pixels, block):
    """softmax(q kᵀ · scale) from the block's own qkv weights and the input its norm1 produced."""
    seen = {}
    h = encoder.module.blocks[block].norm1.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    with torch.no_grad():
        encoder.embed(pixels)
    h.remove()
    attn = encoder.module.blocks[block].attn
    x = seen["x"]
    b, n, c = x.shape
    qkv = torch.nn.functional.linear(x, attn.qkv.weight, attn.qkv.bias).view(b, n, 3, attn.num_heads, c // attn.num_heads)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    return ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)


def test_timm_capture_matches_manual_attention_and_restores_everything(vit2, x32):
    flags = [b.attn.fused_attn for b in vit2.module.blocks]
    hooks = _hook_count(vit2.module)
    with torch.no_grad(), capture_attention(vit2) as rec:
        vit2.embed(x32)
        maps = rec.complete(vit2.name)
        assert not any(b.attn.fused_attn for b in vit2.module.blocks)  # switched off inside
    assert len(maps) == 2 and maps[0].shape == (4, 3, 17, 17)
    for i in range(2):
        torch.testing.assert_close(maps[i], _manual_timm_attention(vit2, x32, i), atol=1e-5, rtol=1e-4)
    assert [b.attn.fused_attn for b in vit2.module.blocks] == flags
    assert _hook_count(vit2.module) == hooks


def test_nothing_leaks_when_the_body_raises(vit2, x32, hf_vit, open_clip_tiny):
    for enc in (vit2, hf_vit, open_clip_tiny):
        hooks = _hook_count(enc.module)
        forwards = [m for m in enc.module.modules() if "forward" in m.__dict__]
        impl = getattr(getattr(enc.module, "config", None), "_attn_implementation", None)
        flags = [m.fused_attn for m in enc.module.modules() if hasattr(m, "fused_attn")]
        with pytest.raises(RuntimeError, match="boom"):
            with capture_attention(enc):
                enc.embed(x32)
                raise RuntimeError("boom")
        assert _hook_count(enc.module) == hooks
        assert [m for m in enc.module.modules() if "forward" in m.__dict__] == forwards
        assert getattr(getattr(enc.module, "config", None), "_attn_implementation", None) == impl
        assert [m.fused_attn for m in enc.module.modules() if hasattr(m, "fused_attn")] == flags


def test_hf_capture_equals_transformers_output_attentions(hf_vit, x32):
    assert hf_vit.module.config._attn_implementation == "sdpa"
    with torch.no_grad(), capture_attention(hf_vit) as rec:
        hf_vit.embed(x32)
        maps = rec.complete(hf_vit.name)
    assert hf_vit.module.config._attn_implementation == "sdpa"  # restored
    hf_vit.module.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            ref = hf_vit.module(pixel_values=hf_vit.preprocess(x32), output_attentions=True).attentions
    finally:
        hf_vit.module.config._attn_implementation = "sdpa"
    assert len(maps) == len(ref) == 2
    for a, r in zip(maps, ref):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-4)


def test_open_clip_capture_equals_multihead_attention_weights(open_clip_tiny, x32):
    visual = open_clip_tiny.module.visual
    seen = {}
    h = visual.transformer.resblocks[1].ln_1.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    with torch.no_grad():
        plain = open_clip_tiny.embed(x32)
    h.remove()
    mha = visual.transformer.resblocks[1].attn
    with torch.no_grad():
        _, ref = mha(seen["x"], seen["x"], seen["x"], need_weights=True, average_attn_weights=False)
        with capture_attention(open_clip_tiny) as rec:
            captured = open_clip_tiny.embed(x32)
            maps = rec.complete(open_clip_tiny.name)
    assert len(maps) == 2  # the text tower's attention is not part of the image explanation
    torch.testing.assert_close(maps[1], ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(captured, plain)  # the wrapper changes nothing the model computes
    assert "forward" not in mha.__dict__


def test_registers_and_non_square_grid(vit_reg_rect):
    grid = vit_reg_rect.token_grid
    assert (grid.height, grid.width, grid.num_prefix_tokens) == (3, 5, 3)
    pixels = torch.rand(2, 3, 24, 40)
    with torch.no_grad(), capture_attention(vit_reg_rect, blocks=[-1]) as rec:
        vit_reg_rect.embed(pixels)
        (attn,) = rec.complete(vit_reg_rect.name)
    row = query_row_to_grid(attn.mean(1), grid)
    assert row.shape == (2, 3, 5)
    # CLS row, patch columns only (CLS and the 2 registers dropped), row-major over the 3×5 grid
    torch.testing.assert_close(row[:, 1, 2], attn.mean(1)[:, 0, 3 + 1 * 5 + 2])
    for method in ("attention", "rollout", "chefer", "chefer-lrp", "gradcam"):
        maps = explain(vit_reg_rect, pixels, method)
        assert maps.shape == (2, 24, 40) and float(maps.max()) == pytest.approx(1.0)


def test_model_without_attention_gets_a_clear_error(demo_cnn_or_resnet):
    with pytest.raises(MedrepError, match="timm:resnet18 has no attention modules"):
        find_attention_sites(demo_cnn_or_resnet)
    with pytest.raises(MedrepError, match="timm:resnet18"):
        explain(demo_cnn_or_resnet, torch.rand(2, 3, 32, 32), "rollout")


@pytest.fixture(scope="module")
def demo_cnn_or_resnet():
    from medrep.models import load_encoder

    return load_encoder("timm:resnet18?pretrained=false&num_classes=3")


@pytest.mark.parametrize("fixture", ["hf_vit", "open_clip_tiny"])
def test_attention_methods_run_on_hf_and_open_clip(fixture, request, x32):
    enc = request.getfixturevalue(fixture)
    from medrep.explain.targets import Target

    if enc.has_head:
        target = Target("class", classes=torch.tensor([0, 1, 2, 0]))
    else:
        target = Target("embedding", references=torch.randn(4, int(enc.embed(x32[:1]).shape[-1])))
    for method in ("attention", "rollout", "chefer", "gradcam"):
        maps = explain(enc, x32, method, target)
        assert maps.shape == (4, 32, 32) and torch.isfinite(maps).all()
        assert float(maps.flatten(1).amax(1).min()) == pytest.approx(1.0)
