"""Map methods against independent references: pytorch-grad-cam, captum, hand-computed rules."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from medrep.explain.lrp import linear_alpha1_beta0, lrp_state, residual_rule
from medrep.explain.methods import (explain, gradient_weighted_rollout, integrated_gradients, normalize_maps,
                                    rollout_matrices)
from medrep.explain.targets import Target

CLASSES = torch.tensor([0, 1, 2, 1])


class _Logits(torch.nn.Module):
    """pytorch-grad-cam / captum call ``model(x)``: give them the encoder's logits of raw pixels."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder.logits(x)


def _corr(a, b):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def test_gradcam_on_vit_tokens_equals_pytorch_grad_cam(vit2, x32):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    grid = vit2.token_grid

    def reshape(t):
        return grid.to_map(grid.patch_tokens(t)).permute(0, 3, 1, 2)

    with GradCAM(model=_Logits(vit2), target_layers=[vit2.module.blocks[-1].norm1], reshape_transform=reshape) as cam:
        ref = cam(input_tensor=x32.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in CLASSES])
    ours = explain(vit2, x32, "gradcam", Target("class", CLASSES)).numpy()
    for i in range(len(x32)):
        assert _corr(ours[i], ref[i]) >= 0.999


def test_gradcam_on_cnn_layer_equals_pytorch_grad_cam(x32):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from medrep.models import load_encoder

    torch.manual_seed(1)  # seeded so the random network's CAMs are not all clipped to zero by the ReLU
    cnn = load_encoder("timm:resnet18?pretrained=false&num_classes=3")
    x = torch.rand(2, 3, 64, 64)
    with GradCAM(model=_Logits(cnn), target_layers=[cnn.module.layer3]) as cam:
        ref = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(c) for c in (0, 2)])
    ours = explain(cnn, x, "gradcam", Target("class", torch.tensor([0, 2])), layer="layer3").numpy()
    assert (ours > 0).mean() > 0.5
    for i in range(2):
        assert _corr(ours[i], ref[i]) >= 0.999


def test_integrated_gradients_equal_captum(vit2, x32):
    from captum.attr import IntegratedGradients

    ref = IntegratedGradients(_Logits(vit2)).attribute(x32, baselines=0.0, target=CLASSES, n_steps=6,
                                                         method="gausslegendre", internal_batch_size=5)
    # a chunk size that does not divide B·steps exercises the internal batching
    ours = integrated_gradients(vit2, x32, Target("class", CLASSES), steps=6, internal_batch_size=7)
    torch.testing.assert_close(ours, ref, atol=2e-6, rtol=1e-4)
    # (captum's riemann_trapezoid weights sum to (n-1)/n; ours is the textbook rule, so compare the midpoint rule)
    ours_rt = integrated_gradients(vit2, x32, Target("class", CLASSES), steps=5, rule="riemann_middle")
    ref_rt = IntegratedGradients(_Logits(vit2)).attribute(x32, baselines=0.0, target=CLASSES, n_steps=5,
                                                            method="riemann_middle")
    torch.testing.assert_close(ours_rt, ref_rt, atol=2e-6, rtol=1e-4)


# -- hand-computed two-block cases ---------------------------------------------------------------
A1 = np.array([[[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]],
               [[0.2, 0.2, 0.6], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]])  # block 1, heads × N × N
A2 = np.array([[[0.5, 0.5, 0.0], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]],
               [[0.1, 0.3, 0.6], [0.3, 0.3, 0.4], [0.0, 0.5, 0.5]]])
G1 = np.array([[[1.0, -2.0, 0.5], [0.0, 1.0, 1.0], [-1.0, 0.0, 2.0]],
               [[0.5, 0.5, -0.5], [1.0, -1.0, 0.0], [2.0, 0.0, 1.0]]])
G2 = np.array([[[-1.0, 1.0, 3.0], [0.5, 0.5, 0.5], [1.0, -3.0, 0.0]],
               [[2.0, 0.0, 1.0], [-1.0, 2.0, 0.0], [0.0, 1.0, -1.0]]])


def _t(a):
    return torch.tensor(a, dtype=torch.float32)[None]


def test_rollout_two_blocks_by_hand():
    eye = np.eye(3)
    f1, f2 = A1.mean(0), A2.mean(0)
    r1 = (f1 + eye) / 2
    r1 = r1 / r1.sum(1, keepdims=True)
    r2 = (f2 + eye) / 2
    r2 = r2 / r2.sum(1, keepdims=True)
    expected = r2 @ r1
    got = rollout_matrices([_t(A1), _t(A2)])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # max fusion and a discard ratio: drop the 3 smallest fused weights (never CLS→CLS), then the same steps
    m1 = A1.max(0).copy()
    flat = m1.ravel()
    drop = [i for i in np.argsort(flat, kind="stable")[:3]]
    flat[drop] = 0.0
    flat[0] = A1.max(0).ravel()[0]
    q1 = (flat.reshape(3, 3) + eye) / 2
    q1 = q1 / q1.sum(1, keepdims=True)
    got = rollout_matrices([_t(A1)], head_fusion="max", discard_ratio=0.34)[0].numpy()
    np.testing.assert_allclose(got, q1, atol=1e-6)


def test_chefer_rule_two_blocks_by_hand():
    eye = np.eye(3)
    cam1 = np.clip(G1 * A1, 0, None).mean(0)
    cam2 = np.clip(G2 * A2, 0, None).mean(0)
    r = eye + cam1 @ eye
    r = r + cam2 @ r
    got = gradient_weighted_rollout([_t(A1), _t(A2)], [_t(G1), _t(G2)])[0].numpy()
    np.testing.assert_allclose(got, r, atol=1e-6)


def test_readout_row_follows_the_pooling_two_blocks_by_hand():
    """Token 0 is CLS, tokens 1–2 a 1×2 patch grid.  A CLS-pooled model reads row 0 over the patch columns;
    a mean-pooled one the mean of rows 1–2 over the patch columns."""
    from medrep.explain.attention import query_row_to_grid
    from medrep.models.base import TokenGrid

    grid = TokenGrid(height=1, width=2, patch_size=(8, 8))
    eye = np.eye(3)
    r1 = (A1.mean(0) + eye) / 2
    r1 = r1 / r1.sum(1, keepdims=True)
    r2 = (A2.mean(0) + eye) / 2
    r2 = r2 / r2.sum(1, keepdims=True)
    roll = r2 @ r1
    got = rollout_matrices([_t(A1), _t(A2)])
    np.testing.assert_allclose(query_row_to_grid(got, grid, cls_row=True)[0, 0].numpy(), roll[0, 1:], atol=1e-6)
    np.testing.assert_allclose(query_row_to_grid(got, grid, cls_row=False)[0, 0].numpy(),
                               (roll[1, 1:] + roll[2, 1:]) / 2, atol=1e-6)
    cam1 = np.clip(G1 * A1, 0, None).mean(0)
    cam2 = np.clip(G2 * A2, 0, None).mean(0)
    r = eye + cam1
    r = r + cam2 @ r
    got = gradient_weighted_rollout([_t(A1), _t(A2)], [_t(G1), _t(G2)])
    np.testing.assert_allclose(query_row_to_grid(got, grid, cls_row=False)[0, 0].numpy(), (r[1, 1:] + r[2, 1:]) / 2,
                               atol=1e-6)


@pytest.fixture(scope="module")
def vit_avg():
    """2-block timm ViT that keeps its CLS token but pools by mean (global_pool='avg', like MAE fine-tunes)."""
    from medrep.models import load_encoder

    torch.manual_seed(0)
    return load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&num_classes=3&depth=2"
                        "&global_pool=avg")


def test_mean_pooled_vit_reads_the_patch_rows(vit_avg, x32):
    from medrep.explain.attention import reads_cls
    from medrep.explain.lrp import lrp_state
    from medrep.explain.methods import METHODS, attention_and_gradients

    enc, target = vit_avg, Target("class", CLASSES)
    assert enc.token_grid.has_cls and enc.default_pool == "mean" and not reads_cls(enc)
    attns, grads, _ = attention_and_gradients(enc, x32, target)
    # the output never sees the CLS token: its query row of the last block has no gradient at all
    assert float(grads[-1][:, :, 0].abs().max()) == 0.0

    def patch_rows(m):  # (B, 17, 17) → mean of patch rows over patch columns, on the 4×4 grid
        return m[:, 1:, 1:].mean(1).view(-1, 4, 4)

    with torch.no_grad():
        torch.testing.assert_close(METHODS["attention"](enc, x32), patch_rows(attns[-1].float().mean(1)))
        torch.testing.assert_close(METHODS["rollout"](enc, x32), patch_rows(rollout_matrices(attns)))
    torch.testing.assert_close(METHODS["chefer"](enc, x32, target), patch_rows(gradient_weighted_rollout(attns, grads)),
                               atol=1e-6, rtol=1e-5)
    state = lrp_state(enc, x32, target)
    eye = torch.eye(17).expand(4, 17, 17)
    joint = None
    for g, rel in zip(state.gradients, state.attention_relevance):
        cam = (g * rel).clamp(min=0).mean(1) + eye
        cam = cam / cam.sum(-1, keepdim=True)
        joint = cam if joint is None else cam @ joint
    torch.testing.assert_close(METHODS["chefer-lrp"](enc, x32, target), patch_rows(joint), atol=1e-6, rtol=1e-5)


def test_attention_gradients_match_finite_differences(vit2, x32):
    """∂score/∂A from the hooks, checked by nudging one block's attention inside the forward pass."""
    from medrep.explain.methods import attention_and_gradients

    enc = copy.deepcopy(vit2).double()
    x = x32[:2].double()
    target = Target("class", CLASSES[:2])
    _, grads, score = attention_and_gradients(enc, x, target)
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(grads[0].shape, generator=gen, dtype=torch.float64)
    eps = 1e-6
    handle = enc.module.blocks[0].attn.attn_drop.register_forward_hook(lambda m, i, o: o + eps * direction)
    enc.module.blocks[0].attn.fused_attn = False
    try:
        with torch.no_grad():
            bumped = enc.logits(x).gather(1, CLASSES[:2, None])[:, 0]
    finally:
        handle.remove()
    predicted = (grads[0] * direction).flatten(1).sum(1)
    torch.testing.assert_close((bumped - score) / eps, predicted, rtol=1e-4, atol=1e-7)


def test_batched_maps_equal_batch_one_loops(vit2, x32):
    target = Target("class", CLASSES)
    for method in ("chefer", "chefer-lrp", "gradcam", "rollout"):
        batched = explain(vit2, x32, method, target)
        single = torch.cat([explain(vit2, x32[i:i + 1], method, target.index(slice(i, i + 1))) for i in range(len(x32))])
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


# -- LRP (Chefer CVPR 2021) ------------------------------------------------------------------------
def test_linear_alpha1_beta0_by_hand():
    x = torch.tensor([[1.0, -2.0]])
    w = torch.tensor([[1.0, 1.0], [-1.0, 2.0]])  # y_j = Σ_i w_ji x_i
    r = torch.tensor([[0.6, 0.4]])
    # positive parts: out 0: x0⁺w00⁺ = 1, x1⁻w01⁻ = 0 → z0 = 1;  out 1: x0⁺w10⁺ = 0, x1⁻w11⁻ = 0 → z1 = 0 (dropped)
    np.testing.assert_allclose(linear_alpha1_beta0(x, w, r).numpy(), [[0.6, 0.0]], atol=1e-6)
    x = torch.tensor([[1.0, 3.0]])
    # out 0: contributions 1, 3 (z=4); out 1: contributions 0, 6 (z=6)
    np.testing.assert_allclose(linear_alpha1_beta0(x, w, r).numpy(), [[0.6 / 4, 0.6 * 3 / 4 + 0.4]], atol=1e-6)


def test_residual_rule_conserves_per_sample():
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    r = torch.rand(2, 5, 4, generator=gen) * torch.tensor([1.0, 100.0]).view(2, 1, 1)  # very different scales
    a, b = residual_rule(x0, x1, r)
    torch.testing.assert_close(a.sum((1, 2)) + b.sum((1, 2)), r.sum((1, 2)))


def test_lrp_relevance_is_conserved_through_two_blocks(vit2, x32):
    state = lrp_state(vit2, x32, Target("class", CLASSES))
    ones = torch.ones(len(x32))
    torch.testing.assert_close(state.output_relevance.sum((1, 2)), ones, atol=1e-4, rtol=0)
    for r in state.block_input_relevance:
        torch.testing.assert_close(r.sum((1, 2)), ones, atol=1e-3, rtol=0)
    assert all(r is not None and r.shape == (4, 3, 17, 17) for r in state.attention_relevance)


def test_lrp_embedding_target_starts_from_the_cosine(x32):
    from medrep.explain.targets import target_score
    from medrep.models import load_encoder

    torch.manual_seed(0)
    enc = load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=32&patch_size=8&depth=2&num_classes=0")
    refs = torch.randn(4, 192)
    target = Target("embedding", references=refs)
    state = lrp_state(enc, x32, target)
    cos = target_score(enc, x32, target).detach()
    torch.testing.assert_close(state.block_input_relevance[0].sum((1, 2)), cos, atol=1e-4, rtol=1e-3)
    maps = explain(enc, x32, "chefer-lrp", target)
    assert maps.shape == (4, 32, 32) and torch.isfinite(maps).all()


def test_chefer_lrp_refuses_non_timm_models_clearly(hf_vit, x32):
    from medrep.errors import MedrepError

    with pytest.raises(MedrepError, match="hf-vit is not one"):
        explain(hf_vit, x32, "chefer-lrp", Target("class", CLASSES))


# -- post-processing and baselines ------------------------------------------------------------------
def test_maps_are_min_max_normalised_and_upsampled(vit2, x32):
    raw = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    np.testing.assert_allclose(normalize_maps(raw).numpy(), [[[0, 0.25], [0.5, 1.0]]])
    assert normalize_maps(torch.ones(1, 2, 2)).abs().sum() == 0  # a constant map points nowhere
    near = explain(vit2, x32, "attention", upsampling="nearest")
    assert near.shape == (4, 32, 32)
    # nearest upsampling of a 4×4 grid: every 8×8 patch is constant
    patches = near.view(4, 4, 8, 4, 8)
    assert torch.allclose(patches, patches[:, :, :1, :, :1].expand_as(patches))


def test_explain_with_raw_gives_explains_maps_and_the_map_before_min_max(vit2, x32):
    from medrep.explain.methods import explain_with_raw, upsample

    target = Target("class", CLASSES)
    for method in ("attention", "gradcam", "center"):
        up, maps = explain_with_raw(vit2, x32, method, target, upsampling="nearest")
        torch.testing.assert_close(maps, explain(vit2, x32, method, target, upsampling="nearest"))
        torch.testing.assert_close(maps, normalize_maps(up))
    # nearest upsampling of the raw 4×4 attention keeps its values: each 8×8 block holds one raw value
    from medrep.explain.methods import raw_attention

    raw = raw_attention(vit2, x32)
    up, _ = explain_with_raw(vit2, x32, "attention", upsampling="nearest")
    torch.testing.assert_close(up, upsample(raw, (32, 32), "nearest"))
    torch.testing.assert_close(up[:, 8:16, 16:24], raw[:, 1:2, 2:3].expand(4, 8, 8))


def test_baselines(vit2, x32):
    c = explain(vit2, x32, "center")
    assert c.shape == (4, 32, 32)
    peak = torch.nonzero(c[0] == 1.0)
    assert {tuple(p) for p in peak.tolist()} <= {(15, 15), (15, 16), (16, 15), (16, 16)}
    r1, r2 = explain(vit2, x32, "random", seed=3), explain(vit2, x32, "random", seed=3)
    assert torch.equal(r1, r2) and not torch.equal(r1, explain(vit2, x32, "random", seed=4))
